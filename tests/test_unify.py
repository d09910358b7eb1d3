"""Unified tables from valid events: persons, events, users, interactions."""
from __future__ import annotations

import datetime as dt
import hashlib
import hmac

from pyspark.sql import Observation
import pytest
from pyspark.testing import assertDataFrameEqual, assertSchemaEqual

from crossrec.ingest import unify
from crossrec.ingest.pseudonym import NS_SEP, PERSON_NS
from crossrec.schemas import columns as C
from crossrec.schemas.lake import EVENTS, INTERACTIONS, USERS

KEY = b"k" * 32
T0 = dt.datetime(2001, 1, 1)
GOOD = ("platform string, account string, item_id string, domain string, event_type string, "
        "value double, weight double, ts timestamp")
PLATFORMS = ("web", "tv", "app")  # tv has no events; names unsorted on purpose
LINKS = "platform_a string, account_a string, platform_b string, account_b string"


def _t(hours: int) -> dt.datetime:
    return T0 + dt.timedelta(hours=hours)


def _key(person: str) -> str:
    return hmac.new(KEY, f"{PERSON_NS}{NS_SEP}{person}".encode(), hashlib.sha256).hexdigest()


def _good(spark):
    return spark.createDataFrame([
        ("web", "a1", "m2", "drama", "rating", 4.0, 1.0, _t(2)),
        ("web", "a1", "m2", "drama", "rating", 4.0, 1.0, _t(2)),   # exact duplicate
        ("app", "a9", "m2", "drama", "rating", 2.0, 1.0, _t(5)),   # same person, other app
        ("app", "a9", "m2", "drama", "view", None, 0.1, _t(9)),    # later, but no value
        ("app", "a9", "m2", "drama", "view", None, 0.1, _t(9)),    # its duplicate, null and all
        ("app", "a9", "m2", "drama", "view", 1.0, 0.1, _t(9)),     # not one: it has a value
        ("web", "a1", "m1", "comedy", "rating", 5.0, 1.0, _t(1)),
        ("web", "b1", "m1", "comedy", "view", None, 0.1, _t(3)),
    ], GOOD)


def _persons(spark):
    links = spark.createDataFrame([("web", "a1", "app", "a9")], LINKS)
    return unify.build_persons(_good(spark), links, KEY)


def test_dense_index_is_sorted_and_dense(spark):
    df = spark.createDataFrame([("z",), ("b",), ("z",), ("a",)], "k string")
    assertDataFrameEqual(unify.dense_index(df, "k", "i"),
                         spark.createDataFrame([("a", 0), ("b", 1), ("z", 2)], "k string, i int"))


@pytest.mark.parametrize("prefix", [0, 1, 2, 3])
def test_dense_index_by_ranges_matches_a_sort(spark, prefix):
    # keys shorter than the prefix, one a prefix of another, non-ASCII, repeats and a null
    keys = ["ab", "a", "", "abc", "b", "zz", "é", "éa", "ab", "Z", "0", "b", None, "aa"]
    df = spark.createDataFrame([(k, i) for i, k in enumerate(keys)], "k string, row int")
    got = {r["row"]: r["i"] for r in unify.with_dense_index(df, "k", "i", prefix).collect()}
    order = [None] + sorted({k for k in keys if k is not None})   # Spark: nulls first
    assert got == {i: order.index(k) for i, k in enumerate(keys)}


def test_persons_indexed_by_ranges_or_one_window_agree(spark):
    links = spark.createDataFrame([("web", "a1", "app", "a9")], LINKS)
    assertDataFrameEqual(unify.build_persons(_good(spark), links, KEY, ranged=True),
                         _persons(spark))


def test_persons_share_a_pseudonym_and_index(spark):
    ka, kb = _key("app:a9"), _key("web:b1")  # a person is named by its smallest account
    ia, ib = (0, 1) if ka < kb else (1, 0)
    assertDataFrameEqual(_persons(spark), spark.createDataFrame(
        [(ka, "web", "a1", ia), (ka, "app", "a9", ia), (kb, "web", "b1", ib)],
        "user_key string, platform string, account string, user_idx int"))


def _items(spark):
    return spark.createDataFrame([("m1", 0, "comedy"), ("m2", 1, "drama")],
                                 "item_id string, item_idx int, domain string")


def _events(spark):
    items = _items(spark)
    observed = Observation("t")
    ordered = unify.order_events(_good(spark), _persons(spark), items, 3, 2, observed)
    events = unify.name_events(ordered, _persons(spark), items)
    return events.localCheckpoint(), observed


def test_events_deduplicated_and_ordered_per_user(spark):
    events, observed = _events(spark)
    assert observed.get[unify.EVENTS_IN] == 8
    ia = events.where(f"{C.USER_KEY} = '{_key('app:a9')}'").first()[C.USER_IDX]
    got = [(r[C.SEQ], r[C.ITEM_ID], r[C.PLATFORM], r[C.TS].hour, r[C.VALUE])
           for r in events.where(f"{C.USER_IDX} = {ia}").orderBy(C.SEQ).collect()]
    assert got == [(0, "m1", "web", 1, 5.0), (1, "m2", "web", 2, 4.0), (2, "m2", "app", 5, 2.0),
                   (3, "m2", "app", 9, None), (4, "m2", "app", 9, 1.0)]
    assert events.count() == 6
    assertSchemaEqual(events.schema, EVENTS.as_spark_schema(), ignoreNullable=True)
    # the write layout: partitions hold whole users, rows sorted by (user_idx, seq)
    parts = events.rdd.glom().collect()
    for part in parts:
        keys = [(r[C.USER_IDX], r[C.SEQ]) for r in part]
        assert keys == sorted(keys)
    users = [{r[C.USER_IDX] for r in part} for part in parts]
    assert sum(map(len, users)) == len(set().union(*users)) == 2  # no user in two partitions


def test_events_same_when_persons_are_too_many_to_broadcast(spark, monkeypatch):
    # Above BROADCAST_ACCOUNTS user_key travels with the shuffle instead of being joined after it
    events, _ = _events(spark)
    monkeypatch.setattr(unify, "BROADCAST_ACCOUNTS", 0)
    ordered = unify.order_events(_good(spark), _persons(spark), _items(spark), 3, 2,
                                 Observation("large"))
    assert C.USER_KEY in ordered.columns
    large = unify.name_events(ordered, _persons(spark), _items(spark))
    assertDataFrameEqual(large, events)
    for part in large.rdd.glom().collect():  # still in (user_idx, seq) order per partition
        keys = [(r[C.USER_IDX], r[C.SEQ]) for r in part]
        assert keys == sorted(keys)


def test_users(spark):
    events, _ = _events(spark)
    users = unify.build_users(events, _persons(spark), PLATFORMS)
    ka, kb = _key("app:a9"), _key("web:b1")
    ia, ib = (0, 1) if ka < kb else (1, 0)
    assertDataFrameEqual(users, spark.createDataFrame(
        [(ia, ka, 2, ["app", "web"], 5, _t(1), _t(9)), (ib, kb, 1, ["web"], 1, _t(3), _t(3))],
        USERS.as_spark_schema()))


def test_interactions_aggregate_over_platforms(spark):
    events, _ = _events(spark)
    ka, kb = _key("app:a9"), _key("web:b1")
    ia, ib = (0, 1) if ka < kb else (1, 0)
    users = unify.build_users(events, _persons(spark), PLATFORMS)
    interactions = unify.build_interactions(events, users, _items(spark), PLATFORMS)
    assertDataFrameEqual(interactions, spark.createDataFrame([
        (ia, 1, ka, "m2", 2.2, 4, _t(2), _t(9), ["app", "web"], 1.0, 4.0, "drama"),
        (ia, 0, ka, "m1", 1.0, 1, _t(1), _t(1), ["web"], 5.0, 5.0, "comedy"),
        (ib, 0, kb, "m1", 0.1, 1, _t(3), _t(3), ["web"], None, None, "comedy"),
    ], INTERACTIONS.as_spark_schema()))
