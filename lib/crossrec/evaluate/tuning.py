"""Honest tuning: every setting of a model's ``grid`` is scored on a validation split carved from
the TRAINING data with the same protocol (a different cold-user draw), never on the test set; the
setting with the best mean of cold and warm NDCG@k wins."""
from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from typing import Any

from crossrec.evaluate.harness import ItemFacts, TestSet, cohort_mean, evaluate_model
from crossrec.evaluate.recommender import EvalData, Recommender, TargetView
from crossrec.evaluate.split import EvalProtocol, Split, split
from crossrec.logs import event

log = logging.getLogger("crossrec.evaluate.tuning")

VALID_SEED_OFFSET = 7919  # the validation draw must differ from the test draw of the same seed


@dataclass(frozen=True)
class Trial:
    params: dict[str, Any]
    cold: float
    warm: float

    @property
    def score(self) -> float:
        return (self.cold + self.warm) / 2


@dataclass(frozen=True)
class Validation:
    """A validation split of some training data, materialised once for every trial."""

    data: EvalData
    test: TestSet
    view: TargetView
    facts: ItemFacts

    @staticmethod
    def of(data: EvalData) -> "Validation":
        return Validation.cut(data, replace(data.protocol, seed=data.protocol.seed + VALID_SEED_OFFSET))

    @staticmethod
    def cut(data: EvalData, protocol: EvalProtocol) -> "Validation":
        """``data.train`` split by ``protocol`` (cached), with what scoring a model on it needs."""
        s = split(data.train, protocol)
        s = Split(s.train.cache(), s.test.cache(), s.cohorts.cache(), s.target)
        vdata = replace(data, train=s.train, protocol=protocol)
        view = TargetView.of(vdata)
        return Validation(vdata, TestSet.of(s), view, ItemFacts.of(vdata, view))


def tune(name: str, valid: Validation, fixed: dict[str, Any],
         grid: tuple[dict[str, Any], ...] | None = None) -> tuple[dict[str, Any], list[Trial]]:
    """(best params, trials) of ``grid`` (default: the model's), each setting merged over ``fixed``."""
    grid = grid if grid is not None else (Recommender.create(name, **fixed).grid or ({},))
    k = valid.data.protocol.k
    trials = []
    for setting in grid:
        params = {**fixed, **setting}
        rows, secs = evaluate_model(name, Recommender.create(name, **params), valid.data,
                                    valid.test, valid.view, valid.facts, valid.data.protocol.seed)
        ndcg = cohort_mean(rows, "ndcg", k)
        trial = Trial(params, ndcg.get("cold", float("nan")), ndcg.get("warm", float("nan")))
        trials.append(trial)
        event(log, "trial", model=name, params=params, cold=round(trial.cold, 4),
              warm=round(trial.warm, 4), **secs)
    best = max(trials, key=lambda t: t.score)
    return best.params, trials
