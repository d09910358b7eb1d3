"""Unified tables from valid, keyed events."""
from __future__ import annotations

import datetime as dt

from pyspark.testing import assertDataFrameEqual, assertSchemaEqual

from crossrec.ingest import unify
from crossrec.schemas import columns as C
from crossrec.schemas.lake import EVENTS, INTERACTIONS, USERS

T0 = dt.datetime(2001, 1, 1)
KEYED = ("platform string, account string, user_key string, item_id string, domain string, "
         "event_type string, value double, weight double, ts timestamp")


def _t(hours: int) -> dt.datetime:
    return T0 + dt.timedelta(hours=hours)


def _keyed(spark):
    rows = [
        ("web", "a1", "kA", "m2", "drama", "rating", 4.0, 1.0, _t(2)),
        ("web", "a1", "kA", "m2", "drama", "rating", 4.0, 1.0, _t(2)),   # exact duplicate
        ("app", "a9", "kA", "m2", "drama", "rating", 2.0, 1.0, _t(5)),   # same person, other app
        ("app", "a9", "kA", "m2", "drama", "view", None, 0.1, _t(9)),    # later, but no value
        ("web", "a1", "kA", "m1", "comedy", "rating", 5.0, 1.0, _t(1)),
        ("web", "b1", "kB", "m1", "comedy", "view", None, 0.1, _t(3)),
    ]
    return spark.createDataFrame(rows, KEYED)


def test_exact_duplicates_dropped(spark):
    assert unify.drop_exact_duplicates(_keyed(spark)).count() == 5


def test_dense_index_is_sorted_and_dense(spark):
    df = spark.createDataFrame([("z",), ("b",), ("z",), ("a",)], "k string")
    assertDataFrameEqual(unify.dense_index(df, "k", "i"),
                         spark.createDataFrame([("a", 0), ("b", 1), ("z", 2)], "k string, i int"))


def _pipeline(spark):
    events = unify.drop_exact_duplicates(_keyed(spark))
    items = spark.createDataFrame([("m1", 0), ("m2", 1)], "item_id string, item_idx int")
    users = unify.build_users(events)
    return users, unify.build_events(events, users, items)


def test_users(spark):
    users, _ = _pipeline(spark)
    assertDataFrameEqual(users, spark.createDataFrame(
        [(0, "kA", 2, ["app", "web"], 4, _t(1), _t(9)), (1, "kB", 1, ["web"], 1, _t(3), _t(3))],
        USERS.as_spark_schema()))


def test_events_are_ordered_per_user(spark):
    _, events = _pipeline(spark)
    got = [(r[C.USER_IDX], r[C.SEQ], r[C.ITEM_ID], r[C.TS].hour)
           for r in events.orderBy(C.USER_IDX, C.SEQ).collect()]
    assert got == [(0, 0, "m1", 1), (0, 1, "m2", 2), (0, 2, "m2", 5), (0, 3, "m2", 9),
                   (1, 0, "m1", 3)]
    assertSchemaEqual(events.schema, EVENTS.as_spark_schema(), ignoreNullable=True)


def test_interactions_aggregate_over_platforms(spark):
    _, events = _pipeline(spark)
    got = unify.build_interactions(events)
    assertDataFrameEqual(got, spark.createDataFrame([
        (0, 1, "kA", "m2", 2.1, 3, _t(2), _t(9), ["app", "web"], 2.0, 4.0, "drama"),
        (0, 0, "kA", "m1", 1.0, 1, _t(1), _t(1), ["web"], 5.0, 5.0, "comedy"),
        (1, 0, "kB", "m1", 0.1, 1, _t(3), _t(3), ["web"], None, None, "comedy"),
    ], INTERACTIONS.as_spark_schema()))
