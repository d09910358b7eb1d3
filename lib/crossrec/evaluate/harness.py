"""Score one fitted recommender on one split: recommend for the cohorts' users, check the lists
against the interface contract, and compute every metric per cohort. The job and the tuning use
this same path, so a tuned setting is chosen by the very numbers the report shows."""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from crossrec.errors import CrossrecError
from crossrec.evaluate import metrics as M
from crossrec.evaluate.recommender import EvalData, Recommender, TargetView, check_lists, to_arrays
from crossrec.evaluate.split import Split, positives
from crossrec.schemas import columns as C
from crossrec.schemas.evaluation import COHORTS


class ModelError(CrossrecError):
    """A recommender failed to fit or recommend, or broke the interface contract."""


@dataclass(frozen=True)
class TestSet:
    """The split's test set on the driver: ``users`` [U] sorted, their ``cohort`` [U], and the
    held-out pairs (``test_users``, ``test_items``) [N]."""

    users: np.ndarray
    cohort: np.ndarray
    test_users: np.ndarray
    test_items: np.ndarray
    users_df: DataFrame

    @staticmethod
    def of(s: Split) -> "TestSet":
        users, cohort = to_arrays(s.cohorts.orderBy(C.USER_IDX), C.USER_IDX, C.COHORT)
        if len(np.unique(users)) != len(users):
            raise ValueError("cohorts: a user is in two cohorts")
        tu, ti = to_arrays(s.test, C.USER_IDX, C.ITEM_IDX)
        return TestSet(users.astype(np.int64), cohort.astype(str), tu.astype(np.int64),
                       ti.astype(np.int64), s.cohorts.select(C.USER_IDX))


@dataclass(frozen=True)
class ItemFacts:
    """What the beyond-accuracy metrics need: target catalog size, genres, and how many training
    users liked each target item (novelty)."""

    n_items: int
    genres: dict[int, frozenset[str]]
    item_users: dict[int, int]
    n_users: int

    @staticmethod
    def of(data: EvalData, view: TargetView) -> "ItemFacts":
        target = data.protocol.target
        rows = data.items.where(F.col(C.DOMAIN) == target).select(C.ITEM_IDX, C.GENRES).collect()
        genres = {int(r[C.ITEM_IDX]): frozenset(r[C.GENRES] or ()) for r in rows}
        liked = (positives(data.train, data.protocol.min_value).where(F.col(C.DOMAIN) == target)
                 .select(C.USER_IDX, C.ITEM_IDX).distinct())
        users, items = to_arrays(liked, C.USER_IDX, C.ITEM_IDX)
        ids, counts = np.unique(items, return_counts=True)
        return ItemFacts(len(view.items), genres, dict(zip(ids.tolist(), counts.tolist())),
                         len(np.unique(users)))


def score_lists(lists: Any, test: TestSet, facts: ItemFacts, ks: list[int], k: int,
                model: str, seed: int) -> list[dict[str, Any]]:
    """METRICS rows for collected RECOMMENDATIONS rows ``lists`` (a pyarrow Table)."""
    max_k = max(ks)
    padded = M.padded_lists(test.users, *[lists.column(c).to_numpy().astype(np.int64)
                                          for c in (C.USER_IDX, C.ITEM_IDX, C.RANK)], max_k)
    hits, n_test = M.hit_matrix(test.users, padded, test.test_users, test.test_items)
    rows = []
    for cohort in COHORTS:
        mask = test.cohort == cohort
        n = int(mask.sum())
        if n == 0:
            continue

        def row(metric: str, at: int, value: float, users: int = n) -> dict[str, Any]:
            return {C.MODEL_NAME: model, C.COHORT: cohort, C.METRIC: metric, C.K: at,
                    C.EVAL_SEED: seed, C.METRIC_VALUE: float(value), C.N_USERS: users}

        for at in ks:
            values = M.ranking_metrics(hits[mask], n_test[mask], at)
            rows += [row(name, at, v.mean()) for name, v in values.items()]
        top = padded[mask, :k]
        div = M.intra_list_diversity(top, facts.genres)
        nov = M.novelty(top, facts.item_users, facts.n_users)
        rows += [row("coverage", k, M.coverage(top, facts.n_items)),
                 row("diversity", k, np.nanmean(div) if np.isfinite(div).any() else np.nan,
                     int(np.isfinite(div).sum())),
                 row("novelty", k, np.nanmean(nov) if np.isfinite(nov).any() else np.nan,
                     int(np.isfinite(nov).sum()))]
    return rows


def evaluate_model(name: str, rec: Recommender, data: EvalData, test: TestSet, view: TargetView,
                   facts: ItemFacts, seed: int) -> tuple[list[dict[str, Any]], dict[str, float]]:
    """Fit ``rec`` on ``data``, recommend for the test users, check and score the lists.
    Returns (METRICS rows, seconds per phase); any failure is a :class:`ModelError` naming it."""
    p = data.protocol
    ks = sorted({p.k, *p.ks})
    try:
        t0 = time.perf_counter()
        rec.fit(data)
        t1 = time.perf_counter()
        lists = rec.recommend(test.users_df, max(ks)).toArrow()
        t2 = time.perf_counter()
        check_lists(lists, view, test.users, max(ks), name)
    except Exception as e:  # noqa: BLE001 - any failure of a model must name the model
        raise ModelError(f"model {name!r} failed: {type(e).__name__}: {e}") from e
    rows = score_lists(lists, test, facts, ks, p.k, name, seed)
    return rows, {"fit_s": round(t1 - t0, 2), "recommend_s": round(t2 - t1, 2)}


def cohort_mean(rows: list[dict[str, Any]], metric: str, k: int) -> dict[str, float]:
    """{cohort: value} of ``metric`` at ``k`` from METRICS rows of one model and seed."""
    return {r[C.COHORT]: r[C.METRIC_VALUE] for r in rows if r[C.METRIC] == metric and r[C.K] == k}
