"""The evaluation split: cohort sizes, the warm cut-off with ties, every row checked against a
brute-force reimplementation in plain Python, determinism across partitionings, and a planted
leak caught by check_no_leak."""
from __future__ import annotations

import math
from collections import defaultdict

import pytest
from pyspark.sql import functions as F

from crossrec.evaluate.split import (EvalProtocol, LeakError, Split, check_no_leak, cold_users,
                                    split)
from crossrec.schemas import columns as C
from crossrec.schemas.lake import EVENTS
from tests.evalfix import tiny_world
from tests.lakefix import event

PROTOCOL = EvalProtocol("drama", "comedy", min_value=4.0, seed=3)


@pytest.fixture(scope="module")
def world(spark):
    items, rows = tiny_world(n_users=40, seed=1)
    return rows, spark.createDataFrame(rows, EVENTS.as_spark_schema()).coalesce(1).cache()


@pytest.fixture(scope="module")
def the_split(world) -> Split:
    s = split(world[1], PROTOCOL)
    return Split(s.train.cache(), s.test.cache(), s.cohorts.cache(), s.target)


def _reference(rows: list[dict], cold: set[int], p: EvalProtocol, train_events: str):
    """(train keys (user, seq), test {(user, item): cohort}) by the protocol, in plain Python."""
    pos = [r for r in rows if r[C.VALUE] is not None and r[C.VALUE] >= p.min_value]
    first: dict[tuple[int, int], object] = {}
    for r in pos:
        if r[C.DOMAIN] == p.target:
            key = (r[C.USER_IDX], r[C.ITEM_IDX])
            first[key] = min(first.get(key, r[C.TS]), r[C.TS])
    per_user = defaultdict(list)
    for (u, i), ts in first.items():
        per_user[u].append((ts, i))
    test, cutoff = {}, {}
    for u, lst in per_user.items():
        if u in cold:
            test.update({(u, i): "cold" for _, i in lst})
            continue
        n = len(lst)
        quota = min(max(1, math.floor(p.warm_test_frac * n + 0.5)), n - 1)
        held = sorted(lst)[n - quota:] if quota > 0 else []
        if held:
            cutoff[u] = held[0][0]
            test.update({(u, i): "warm" for _, i in held})
    source = pos if train_events == "positives" else rows
    train = {(r[C.USER_IDX], r[C.SEQ]) for r in source
             if r[C.DOMAIN] != p.target or (r[C.USER_IDX] not in cold and
                                            (r[C.USER_IDX] not in cutoff or r[C.TS] < cutoff[r[C.USER_IDX]]))}
    return train, test


def test_split_matches_a_brute_force_reference(world, the_split):
    rows, s, p = world[0], the_split, PROTOCOL
    cohorts = {r[C.USER_IDX]: r[C.COHORT] for r in s.cohorts.collect()}
    cold = {u for u, c in cohorts.items() if c == "cold"}
    liked = defaultdict(set)
    for r in rows:
        if r[C.VALUE] >= 4:
            liked[r[C.USER_IDX]].add(r[C.DOMAIN])
    eligible = {u for u, d in liked.items() if {"drama", "comedy"} <= d}
    assert cold <= eligible and len(cold) == math.floor(0.2 * len(eligible) + 0.5) > 0
    want_train, want_test = _reference(rows, cold, p, "positives")
    got_test = {(r[C.USER_IDX], r[C.ITEM_IDX]): r[C.COHORT] for r in s.test.collect()}
    assert got_test == want_test
    assert {(r[C.USER_IDX], r[C.SEQ]) for r in s.train.collect()} == want_train
    assert s.train.columns == EVENTS.columns
    assert set(cohorts) == {u for u, _ in want_test}
    check_no_leak(s)


def test_warm_cut_off_with_ties(spark):
    # user 0: drama positives at days 1, 2, 2, 2 (items 1..4) -> quota round(0.8) = 1: item 4;
    # items 2 and 3 share its time: dropped from training, not tested. A drama 2-star at day 0 and
    # a comedy positive at day 9 stay. user 1: one drama positive: trained on, not tested.
    rows = [event(0, 0, 9, "x", "drama", 0, 2.0), event(0, 1, 1, "a", "drama", 1),
            event(0, 2, 2, "b", "drama", 2), event(0, 3, 3, "c", "drama", 2),
            event(0, 4, 4, "d", "drama", 2), event(0, 5, 7, "k", "comedy", 9),
            event(1, 0, 1, "a", "drama", 5)]
    events = spark.createDataFrame(rows, EVENTS.as_spark_schema())
    s = split(events, EvalProtocol("drama", "comedy", 4.0, cold_frac=0.0, train_events="all"))
    assert [(r[C.USER_IDX], r[C.ITEM_IDX], r[C.COHORT]) for r in s.test.collect()] == [(0, 4, "warm")]
    kept = sorted((r[C.USER_IDX], r[C.SEQ]) for r in s.train.collect())
    assert kept == [(0, 0), (0, 1), (0, 5), (1, 0)]


def test_draw_is_seeded_and_independent_of_partitioning(world, the_split):
    _, events = world

    def cold(df, seed: int) -> tuple[int, ...]:
        p = EvalProtocol("drama", "comedy", 4.0, seed=seed)
        return tuple(sorted(r[C.USER_IDX] for r in cold_users(df, p).collect()))

    reshuffled = split(events.repartition(7, C.ITEM_IDX), PROTOCOL).test.collect()
    assert sorted(map(tuple, reshuffled)) == sorted(map(tuple, the_split.test.collect()))
    assert len({cold(events.repartition(5), seed) for seed in range(4)}) > 1  # the seed matters


def test_planted_leaks_are_caught(the_split):
    s = the_split
    check_no_leak(s)  # the real split is clean
    row = s.test.where(F.col(C.COHORT) == "warm").orderBy(C.USER_IDX, C.ITEM_IDX).first()
    leaked = (s.train.where(F.col(C.USER_IDX) == row[C.USER_IDX]).limit(1)
              .withColumn(C.ITEM_IDX, F.lit(row[C.ITEM_IDX])).withColumn(C.DOMAIN, F.lit("drama"))
              .withColumn(C.TS, F.lit(row[C.TS])))
    planted = Split(s.train.unionByName(leaked), s.test, s.cohorts, s.target)
    with pytest.raises(LeakError, match=f"user_idx={row[C.USER_IDX]} item_idx={row[C.ITEM_IDX]}"):
        check_no_leak(planted)
    # a cold user's other target-domain event (not a test pair) is a leak too
    cold = s.test.where(F.col(C.COHORT) == "cold").orderBy(C.USER_IDX).first()
    early = (s.train.limit(1).withColumn(C.USER_IDX, F.lit(cold[C.USER_IDX]))
             .withColumn(C.DOMAIN, F.lit("drama")).withColumn(C.ITEM_IDX, F.lit(999)))
    with pytest.raises(LeakError, match=f"user_idx={cold[C.USER_IDX]} item_idx=999"):
        check_no_leak(Split(s.train.unionByName(early), s.test, s.cohorts, s.target))


def test_protocol_rejects_bad_settings():
    with pytest.raises(ValueError, match="both 'drama'"):
        EvalProtocol("drama", "drama")
    with pytest.raises(ValueError, match="cold_frac"):
        EvalProtocol(cold_frac=1.0)
    with pytest.raises(ValueError, match="train_events"):
        EvalProtocol(train_events="some")
