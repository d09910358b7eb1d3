"""Training examples from events: history strictly before the target, newest first, truncated
to L; positives; the per-user time split; the domain vocabulary."""
from __future__ import annotations

import datetime as dt

import pytest
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from crossrec import examples as X
from crossrec.schemas import columns as C
from crossrec.schemas.training import DOMAINS, EXAMPLES

T0 = dt.datetime(2001, 1, 1)
EVENTS = ("user_idx int, seq int, item_idx int, domain string, value double, weight double, "
          "ts timestamp")
COMEDY, DRAMA = 0, 1  # domain_idx by name order


def _t(days: float) -> dt.datetime:
    return T0 + dt.timedelta(days=days)


def _events(spark, rows):
    """rows: (user, seq, item, domain, value, weight, days after T0)."""
    return spark.createDataFrame([(*r[:6], _t(r[6])) for r in rows], EVENTS)


def _domains(spark):
    return spark.createDataFrame([(COMEDY, "comedy", 1), (DRAMA, "drama", 3)],
                                 "domain_idx int, domain string, n_items int")


def _examples(spark, rows):
    """rows: (user, seq, item, domain_idx, days, hist_item, hist_domain, hist_age, hist_value,
    split)."""
    return spark.createDataFrame([(*r[:4], _t(r[4]), *r[5:]) for r in rows],
                                 EXAMPLES.as_spark_schema())


# user 0: a rating at day 0, a low rating and a high one in the same second at day 1, one at day 3
HISTORY = [
    (0, 0, 10, "drama", 5.0, 1.0, 0.0),
    (0, 1, 11, "comedy", 2.0, 1.0, 1.0),   # not a positive, but history for later targets
    (0, 2, 12, "drama", 4.0, 1.0, 1.0),    # same time as seq 1: seq 1 is NOT its history
    (0, 3, 13, "drama", 4.0, 1.0, 3.0),
    (1, 0, 10, "drama", 3.0, 1.0, 5.0),    # user 1 has no positive at all
]


def test_history_is_strictly_before_newest_first(spark):
    got = X.build_examples(_events(spark, HISTORY), _domains(spark), 5, 4.0, 0.0)
    assertDataFrameEqual(got, _examples(spark, [
        (0, 0, 10, DRAMA, 0.0, [], [], [], [], "train"),
        (0, 2, 12, DRAMA, 1.0, [10], [DRAMA], [1.0], [5.0], "train"),
        (0, 3, 13, DRAMA, 3.0, [12, 11, 10], [DRAMA, COMEDY, DRAMA], [2.0, 2.0, 3.0],
         [4.0, 2.0, 5.0], "train"),
    ]))


def test_history_is_truncated_to_the_newest_l(spark):
    got = X.build_examples(_events(spark, HISTORY), _domains(spark), 2, 4.0, 0.0)
    assertDataFrameEqual(got.where(F.col(C.SEQ) == 3).select(C.HIST_ITEM, C.HIST_AGE),
                         spark.createDataFrame([([12, 11], [2.0, 2.0])],
                                               "hist_item array<int>, hist_age array<float>"))


def test_sub_second_gaps_count_and_ages_are_positive(spark):
    rows = [(0, 0, 10, "drama", 5.0, 1.0, 0.0), (0, 1, 12, "drama", 5.0, 1.0, 1e-6 / 86400)]
    got = X.build_examples(_events(spark, rows), _domains(spark), 5, 4.0, 0.0)
    ages = got.where(F.col(C.SEQ) == 1).select(C.HIST_ITEM, C.HIST_AGE).first()
    assert ages[C.HIST_ITEM] == [10] and 0 < ages[C.HIST_AGE][0] < 1e-10  # 1 µs is history


def test_implicit_events_and_min_value_none(spark):
    rows = [
        (0, 0, 10, "drama", None, 1.0, 0.0),   # implicit, weight > 0: a target for both rules
        (0, 1, 11, "comedy", 1.0, 1.0, 1.0),   # low rating: a target only with min_value None
        (0, 2, 12, "drama", None, 0.0, 2.0),   # weight 0: never a target, still history
        (0, 3, 13, "drama", 2.0, 1.0, 3.0),
    ]
    events, domains = _events(spark, rows), _domains(spark)
    by_value = X.build_examples(events, domains, 5, 4.0, 0.0)
    assertDataFrameEqual(by_value.select(C.SEQ), spark.createDataFrame([(0,)], "seq int"))
    every = X.build_examples(events, domains, 5, None, 0.0)
    assertDataFrameEqual(every.select(C.SEQ, C.HIST_ITEM, C.HIST_VALUE), spark.createDataFrame(
        [(0, [], []), (1, [10], [0.0]), (3, [12, 11, 10], [0.0, 1.0, 0.0])],
        "seq int, hist_item array<int>, hist_value array<float>"))


def _split_of(spark, days: list[float], valid_frac: float, user: int = 0):
    rows = [(user, i, 10 + i % 4, "drama", 5.0, 1.0, d) for i, d in enumerate(days)]
    got = X.build_examples(_events(spark, rows), _domains(spark), 3, 4.0, valid_frac)
    return got.select(C.SEQ, C.SPLIT)


def _splits(spark, splits: list[str]):
    return spark.createDataFrame(list(enumerate(splits)), "seq int, split string")


def test_split_holds_out_each_users_latest_targets(spark):
    assertDataFrameEqual(_split_of(spark, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9], 0.3),
                         _splits(spark, ["train"] * 7 + ["valid"] * 3))
    # 0.14 * 50 is 7.000000000000001 in floating point: still 7, not 8
    got = _split_of(spark, list(range(50)), 0.14).where(F.col(C.SPLIT) == "valid")
    assertDataFrameEqual(got, _splits(spark, ["train"] * 43 + ["valid"] * 7).where("seq >= 43"))


def test_split_ties_at_the_boundary_go_to_train(spark):
    # quota 1 (ceil 0.25 * 4), but the last target shares its second with the last train one
    assertDataFrameEqual(_split_of(spark, [0, 1, 2, 2], 0.25), _splits(spark, ["train"] * 4))
    # quota 2: both valid targets are strictly later than every train target
    assertDataFrameEqual(_split_of(spark, [0, 1, 2, 3, 3], 0.4),
                         _splits(spark, ["train"] * 3 + ["valid"] * 2))


def test_split_a_user_with_one_target_is_all_train_and_two_keep_one(spark):
    assertDataFrameEqual(_split_of(spark, [4], 0.5), _splits(spark, ["train"]))
    # quota never takes a user's last train target: ceil(0.9 * 2) = 2 is capped at 1
    assertDataFrameEqual(_split_of(spark, [0, 1], 0.9), _splits(spark, ["train", "valid"]))


def test_users_spanning_arrow_batches_give_the_same_examples(spark):
    rows = [(u, s, 10 + (u + s) % 4, "drama" if s % 3 else "comedy", 5.0 - s % 3, 1.0, s / 2)
            for u in range(3) for s in range(7)]
    events, domains = _events(spark, rows), _domains(spark)
    whole = X.build_examples(events, domains, 4, 4.0, 0.2, partitions=1).collect()
    key = "spark.sql.execution.arrow.maxRecordsPerBatch"
    old = spark.conf.get(key)
    spark.conf.set(key, "3")  # every user's events now arrive in several batches
    try:
        cut = X.build_examples(events, domains, 4, 4.0, 0.2, partitions=1)
        assertDataFrameEqual(cut, whole)
    finally:
        spark.conf.set(key, old)
    assert len(whole) == sum(1 for r in rows if r[4] >= 4.0)


def test_an_event_domain_missing_from_the_catalog_is_an_error(spark):
    rows = [(0, 0, 10, "horror", 5.0, 1.0, 0.0)]
    with pytest.raises(Exception, match="not in the domains"):
        X.build_examples(_events(spark, rows), _domains(spark), 5, 4.0, 0.0).collect()


def test_bad_parameters_are_refused(spark):
    events, domains = _events(spark, HISTORY), _domains(spark)
    with pytest.raises(ValueError, match="max_history"):
        X.build_examples(events, domains, 0, 4.0, 0.1)
    with pytest.raises(ValueError, match="valid_frac"):
        X.build_examples(events, domains, 5, 4.0, 1.0)


def test_domain_index_by_name_order(spark):
    items = spark.createDataFrame([(0, "drama"), (1, "other"), (2, "comedy"), (3, "drama")],
                                  "item_idx int, domain string")
    assertDataFrameEqual(X.domain_index(items), spark.createDataFrame(
        [(0, "comedy", 1), (1, "drama", 2), (2, "other", 1)],
        "domain_idx int, domain string, n_items int"))


def test_domain_targets_count_train_targets_only(spark):
    examples = _examples(spark, [
        (0, 0, 10, DRAMA, 0.0, [], [], [], [], "train"),
        (0, 1, 12, DRAMA, 1.0, [10], [DRAMA], [1.0], [5.0], "train"),
        (0, 2, 11, COMEDY, 2.0, [12], [DRAMA], [1.0], [5.0], "valid"),
    ])
    assertDataFrameEqual(X.domain_targets(examples, _domains(spark)), spark.createDataFrame(
        [(COMEDY, "comedy", 1, 0), (DRAMA, "drama", 3, 2)], DOMAINS.as_spark_schema()))
