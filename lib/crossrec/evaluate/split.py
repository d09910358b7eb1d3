"""The evaluation protocol as pure Spark transforms: unified events -> (train, test, cohorts).

For a target domain T and a source domain S (positives: ``value >= min_value``, or an implicit
event with ``weight > 0``, as :func:`crossrec.examples.target_flag`):

- **cold cohort:** among people with positives in both T and S, exactly
  ``round(cold_frac * n)`` (half up) are drawn: the people with the smallest
  ``xxhash64(seed, user_key)`` (ties by ``user_idx``). The draw depends on the seed and the stable
  pseudonym only, never on partitioning. They lose **every** T event from training (positives and
  not); their T positives are the test set.
- **warm cohort:** every other person with T positives. Their T positives (one per item: the first
  positive event's time) are ordered by ``(ts, item_idx)``; exactly the latest
  ``max(1, round(warm_test_frac * n))`` (at most ``n - 1``) are the test set, and **every** T event
  of theirs at or after the first held-out time is removed from training. An earlier-ordered
  positive that shares that time is therefore neither trained on nor tested (it stays a
  candidate). A person with a single T positive is not in the warm cohort (it cannot be both
  trained and tested) and keeps it in training. A held-out item the person also has an earlier
  training event on (only possible with ``train_events="all"``) is not a test item: it is not a
  candidate either.
- Everything else (other domains, other people, T events before a warm cut-off) is training data:
  with ``train_events="positives"`` (the benchmark's default) only its positives, with ``"all"``
  every event (ratings below ``min_value`` included; candidates then exclude those items too).

:func:`check_no_leak` re-checks a split from its outputs alone, so a bug or a planted row that puts
held-out information into training is caught before any model sees it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql.window import Window

from crossrec.errors import CrossrecError
from crossrec.examples import target_flag
from crossrec.schemas import columns as C
from crossrec.schemas.evaluation import COLD, WARM
from crossrec.schemas.lake import EVENTS

_CUTOFF = "_cutoff"


class LeakError(CrossrecError):
    """Held-out information is in the training data."""


@dataclass(frozen=True)
class EvalProtocol:
    """The benchmark's protocol; defaults are the issue's (ML-1M: T = drama, S = comedy).

    ``min_value`` None makes every event with ``weight > 0`` a positive (implicit data);
    ``train_events`` is "positives" (training data = positives only) or "all".
    ``ks`` are the list lengths of the recall@K curve; every metric is reported at ``k``.
    """

    target: str = "drama"
    source: str = "comedy"
    min_value: float | None = 4.0
    cold_frac: float = 0.2
    warm_test_frac: float = 0.2
    seed: int = 0
    k: int = 10
    ks: tuple[int, ...] = field(default=(1, 5, 10, 20, 50, 100))
    train_events: str = "positives"

    def __post_init__(self) -> None:
        if self.target == self.source:
            raise ValueError(f"target and source are both {self.target!r}")
        for name in ("cold_frac", "warm_test_frac"):
            v = getattr(self, name)
            if not 0.0 <= v < 1.0:
                raise ValueError(f"{name}: expected 0 <= value < 1, got {v}")
        if self.train_events not in ("positives", "all"):
            raise ValueError(f"train_events: expected 'positives' or 'all', got {self.train_events!r}")
        if self.k < 1 or any(k < 1 for k in self.ks):
            raise ValueError(f"k and ks must be >= 1, got k={self.k}, ks={self.ks}")

    @property
    def max_k(self) -> int:
        return max(self.k, *self.ks)


@dataclass(frozen=True)
class Split:
    """``train``: EVENTS rows kept for training (all domains). ``test``: (user_idx, item_idx,
    cohort, ts) held-out T positives. ``cohorts``: (user_idx, cohort), one row per tested user;
    ``target`` is the protocol's target domain."""

    train: DataFrame
    test: DataFrame
    cohorts: DataFrame
    target: str


def positives(events: DataFrame, min_value: float | None) -> DataFrame:
    """Events that count as positives under the protocol."""
    return events.where(target_flag(min_value))


def cold_users(events: DataFrame, protocol: EvalProtocol) -> DataFrame:
    """``(user_idx)`` of the drawn cold cohort: ``round(cold_frac * n)`` of the n people with
    positives in both T and S, by ``xxhash64(seed, user_key)`` then ``user_idx``."""
    both = (positives(events, protocol.min_value)
            .where(F.col(C.DOMAIN).isin(protocol.target, protocol.source))
            .groupBy(C.USER_IDX, C.USER_KEY).agg(F.countDistinct(C.DOMAIN).alias("_n"))
            .where(F.col("_n") == 2))
    n_cold = math.floor(protocol.cold_frac * both.count() + 0.5)
    draw = F.xxhash64(F.lit(protocol.seed).cast("long"), F.col(C.USER_KEY))
    # a total order (user_idx breaks hash ties): the same n_cold people whatever the partitioning
    return both.orderBy(draw, C.USER_IDX).limit(n_cold).select(C.USER_IDX)


def target_positives(events: DataFrame, protocol: EvalProtocol) -> DataFrame:
    """``(user_idx, item_idx, ts)``: one row per T item a person has a positive on (its first)."""
    return (positives(events, protocol.min_value).where(F.col(C.DOMAIN) == protocol.target)
            .groupBy(C.USER_IDX, C.ITEM_IDX).agg(F.min(C.TS).alias(C.TS)))


def warm_held_out(t_pos: DataFrame, cold: DataFrame, warm_test_frac: float) -> DataFrame:
    """``(user_idx, item_idx, ts)``: the held-out T positives of warm users (at least 2 T
    positives): the latest ``max(1, round(frac * n))`` by (ts, item_idx), at most n - 1."""
    by_user = Window.partitionBy(C.USER_IDX)
    ordered = by_user.orderBy(C.TS, C.ITEM_IDX)
    n = F.count(F.lit(1)).over(by_user)
    quota = F.greatest(F.round(F.lit(warm_test_frac) * n), F.lit(1)) if warm_test_frac > 0 else F.lit(0)
    pos = t_pos.join(cold, C.USER_IDX, "left_anti").select(
        C.USER_IDX, C.ITEM_IDX, C.TS, F.row_number().over(ordered).alias("_i"), n.alias("_n"),
        F.least(quota, n - 1).alias("_t"))
    held = pos.where((F.col("_t") > 0) & (F.col("_i") > F.col("_n") - F.col("_t")))
    return held.select(C.USER_IDX, C.ITEM_IDX, C.TS)


def split(events: DataFrame, protocol: EvalProtocol) -> Split:
    """Split unified ``events`` (EVENTS schema) by ``protocol``; see the module docstring."""
    t_pos = target_positives(events, protocol)
    cold = cold_users(events, protocol)
    warm_test = warm_held_out(t_pos, cold, protocol.warm_test_frac)
    cutoffs = warm_test.groupBy(C.USER_IDX).agg(F.min(C.TS).alias(_CUTOFF))
    if protocol.train_events == "positives":
        events = positives(events, protocol.min_value)
    # cohort + cut-off per tested user; a cold user's cut-off is null: all their T events go
    marks = (cold.select(C.USER_IDX, F.lit(COLD).alias(C.COHORT), F.lit(None).cast("timestamp")
                         .alias(_CUTOFF))
             .unionByName(cutoffs.select(C.USER_IDX, F.lit(WARM).alias(C.COHORT), _CUTOFF)))
    marked = events.join(marks, C.USER_IDX, "left")
    in_target = F.col(C.DOMAIN) == protocol.target
    kept = (~in_target) | F.col(C.COHORT).isNull() | \
        ((F.col(C.COHORT) == WARM) & (F.col(C.TS) < F.col(_CUTOFF)))
    train = EVENTS.select(marked.where(kept))
    held = (t_pos.join(cold, C.USER_IDX).withColumn(C.COHORT, F.lit(COLD))
            .unionByName(warm_test.withColumn(C.COHORT, F.lit(WARM))))
    seen = train.where(in_target).select(C.USER_IDX, C.ITEM_IDX).distinct()
    test = held.join(seen, [C.USER_IDX, C.ITEM_IDX], "left_anti").select(
        C.USER_IDX, C.ITEM_IDX, C.COHORT, C.TS)
    cohorts = test.select(C.USER_IDX, C.COHORT).distinct()
    return Split(train, test, cohorts, protocol.target)


def check_no_leak(s: Split, max_named: int = 5) -> None:
    """Raise :class:`LeakError` naming users and items if ``s.train`` holds any test pair, any T
    event of a cold user, or any T event of a warm user at or after their first test time."""
    target = s.target
    first_test = s.test.groupBy(C.USER_IDX).agg(F.min(C.TS).alias(_CUTOFF), F.first(C.COHORT)
                                                 .alias(C.COHORT))
    t_train = s.train.where(F.col(C.DOMAIN) == target).select(C.USER_IDX, C.ITEM_IDX, C.TS)
    late = (t_train.join(first_test, C.USER_IDX)
            .where((F.col(C.COHORT) == COLD) | (F.col(C.TS) >= F.col(_CUTOFF)))
            .select(C.USER_IDX, C.ITEM_IDX, C.COHORT, F.lit("a target-domain event at or after "
                                                             "the first held-out time").alias("_why")))
    pairs = (t_train.join(s.test.select(C.USER_IDX, C.ITEM_IDX, C.COHORT), [C.USER_IDX, C.ITEM_IDX])
             .select(C.USER_IDX, C.ITEM_IDX, C.COHORT, F.lit("a held-out (user, item) pair")
                     .alias("_why")))
    found = late.unionByName(pairs).orderBy(C.USER_IDX, C.ITEM_IDX).limit(max_named).collect()
    if found:
        named = "; ".join(f"user_idx={r[C.USER_IDX]} item_idx={r[C.ITEM_IDX]} ({r[C.COHORT]}): "
                          f"{r['_why']}" for r in found)
        raise LeakError(f"the evaluation split leaks into training ({target!r}): {named}")
