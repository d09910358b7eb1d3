"""Connected components (large-star / small-star in Spark, or on the driver for small graphs)
and account resolution."""
from __future__ import annotations

import random

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pyspark.sql.types import StringType, StructField, StructType
from pyspark.testing import assertDataFrameEqual

from crossrec.ingest.identity import (COMPONENT, LOCAL_EDGES, NODE, PERSON, NotConvergedError,
                                      connected_components, local_labels, resolve_accounts)
from crossrec.schemas import columns as C

SRC, DST = "a", "b"
EDGES = StructType([StructField(SRC, StringType()), StructField(DST, StringType())])
COMPONENTS = StructType([StructField(NODE, StringType()), StructField(COMPONENT, StringType())])
ACCOUNTS = StructType([StructField(C.PLATFORM, StringType()), StructField(C.ACCOUNT, StringType())])
LINKS = StructType([StructField(name, StringType())
                    for name in (C.PLATFORM_A, C.ACCOUNT_A, C.PLATFORM_B, C.ACCOUNT_B)])
PERSONS = StructType(ACCOUNTS.fields + [StructField(PERSON, StringType())])


# every result must be the same whichever way the components are found
PATHS = {"spark": 0, "driver": LOCAL_EDGES}


@pytest.fixture(params=sorted(PATHS))
def local_edges(request):
    return PATHS[request.param]


def components(spark, edges, max_iterations=100, local_edges=0):
    return connected_components(spark.createDataFrame(edges, EDGES), SRC, DST, max_iterations,
                                local_edges)


def expected(spark, rows):
    return spark.createDataFrame(rows, COMPONENTS)


def union_find(edges: list[tuple[str, str]]) -> dict[str, str]:
    """Plain-Python reference: node -> smallest node of its component."""
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for u, v in edges:
        ru, rv = find(u), find(v)
        if ru != rv:
            parent[max(ru, rv)] = min(ru, rv)  # the root is always the smallest node
    return {x: find(x) for x in parent}


def test_chain_cycle_star_singleton_and_pair(spark, local_edges):
    # Disjoint shapes in one graph (one Spark run instead of five); each must keep its own label.
    out = components(spark, [
        ("web:u1", "tv:t7"), ("tv:t7", "app:a3"),                        # chain over 3 platforms
        ("c3", "c2"), ("c2", "c1"), ("c1", "c3"), ("c3", "c1"), ("c2", "c1"),  # cycle, duplicates
        ("s", "s"), (None, "n"),                                        # singleton; null ignored
        ("y", "x"),                                                     # isolated pair
        ("\U0001F600", "\uffff"),   # smaller in UTF-16 (Java's String order), larger in UTF-8
        ("m", "d1"), ("m", "b1"), ("m", "z1"), ("m", "m")],             # star, self-loop
        local_edges=local_edges)
    assertDataFrameEqual(out, expected(spark, [
        ("app:a3", "app:a3"), ("tv:t7", "app:a3"), ("web:u1", "app:a3"),
        ("c1", "c1"), ("c2", "c1"), ("c3", "c1"),
        ("s", "s"), ("x", "x"), ("y", "x"), ("\uffff", "\uffff"), ("\U0001F600", "\uffff"),
        ("b1", "b1"), ("d1", "b1"), ("m", "b1"), ("z1", "b1")]))


def test_not_converged_is_a_clear_error(spark):
    path = "aebdcf"  # one round links each node only to its neighbourhood's minimum
    with pytest.raises(NotConvergedError, match="within 1 iterations"):
        components(spark, list(zip(path, path[1:])), max_iterations=1)


def test_long_path_converges_in_logarithmic_rounds(spark, caplog):
    n = 2000
    rng = random.Random(7)
    labels = [f"n{i:05d}" for i in range(n)]
    rng.shuffle(labels)  # path order unrelated to label order: the hard case for min-propagation
    edges = [(labels[i], labels[i + 1]) if rng.random() < 0.5 else (labels[i + 1], labels[i])
             for i in range(n - 1)]
    rng.shuffle(edges)
    with caplog.at_level("INFO", logger="crossrec.ingest.identity"):
        # Min-label propagation would need ~2,000 rounds here; max_iterations=39 raises otherwise.
        # (Rounds that changed the graph; 9 with this seed.)
        out = components(spark, edges, max_iterations=39)
        rows = out.collect()
    assert len(rows) == n
    assert {row[COMPONENT] for row in rows} == {"n00000"}
    [iterations] = [r.args[0] for r in caplog.records if "converged" in r.getMessage()]
    assert 1 < iterations < 40


def test_random_graph_matches_union_find(spark, local_edges):
    rng = random.Random(11)
    nodes = [f"v{rng.randrange(10**6)}" for _ in range(400)]
    edges = [(rng.choice(nodes), rng.choice(nodes)) for _ in range(170)]
    edges += [(v, u) for u, v in edges[:20]] + [(nodes[0], nodes[0])]
    truth = union_find(edges)
    assert 20 < len(set(truth.values())) < 250  # a mix of sizes, not one blob nor all singletons
    out = components(spark, edges, local_edges=local_edges)
    assertDataFrameEqual(out, expected(spark, sorted(truth.items())))


def test_more_edges_than_the_driver_takes_go_to_spark(spark, caplog):
    edges = [("b", "a"), ("c", "b"), ("d", "c"), ("y", "x")]
    for local_edges, rounds in ((len(edges), False), (len(edges) - 1, True)):
        caplog.clear()
        with caplog.at_level("INFO", logger="crossrec.ingest.identity"):
            out = components(spark, edges, local_edges=local_edges)
            assertDataFrameEqual(out, expected(spark, sorted(union_find(edges).items())))
        assert any("converged" in r.getMessage() for r in caplog.records) == rounds


# names whose order differs by code point, UTF-16 unit and case: labels follow UTF-8 bytes, as
# Spark orders strings
NAMES = st.sampled_from(["a", "B", "b", "a:1", "é", "z", "\uffff", "\U0001F600", "", "10", "9"])


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(NAMES, NAMES), max_size=25))
def test_driver_components_match_union_find(edges):
    table = pa.table({SRC: [u for u, _ in edges], DST: [v for _, v in edges]},
                     schema=pa.schema([(SRC, pa.large_string()), (DST, pa.large_string())]))
    got = local_labels(table[SRC], table[DST]).to_pylist()
    truth = union_find([(u, v) for u, v in edges if u != v])  # self-loops: not nodes here
    assert [(r[NODE], r[COMPONENT]) for r in got] == sorted(truth.items())


def test_resolve_accounts_links_through_account_without_events(spark, local_edges):
    accounts = spark.createDataFrame([
        ("web", "u1"), ("web", "u1"), ("tv", "t9"), ("app", "a:b"), ("web", "u2")], ACCOUNTS)
    links = spark.createDataFrame([
        ("web", "u1", "mobile", "m5"),   # mobile:m5 has no events but joins web:u1 and tv:t9
        ("tv", "t9", "mobile", "m5"),
        ("mobile", "zz", "app", "q")],   # neither side has events
        LINKS)
    out = resolve_accounts(accounts, links, local_edges)
    assertDataFrameEqual(out, spark.createDataFrame([
        ("web", "u1", "mobile:m5"), ("tv", "t9", "mobile:m5"),
        ("app", "a:b", "app:a:b"),  # unlinked: its own person
        ("web", "u2", "web:u2")], PERSONS))


def test_resolve_accounts_one_row_per_distinct_account(spark, local_edges):
    rows = [("web", f"u{i % 7}") for i in range(30)] + [("tv", f"u{i % 3}") for i in range(10)]
    accounts = spark.createDataFrame(rows, ACCOUNTS)
    links = spark.createDataFrame([("web", "u1", "tv", "u1"), ("web", "u1", "web", "u2")], LINKS)
    out = resolve_accounts(accounts, links, local_edges)
    assert out.columns == [C.PLATFORM, C.ACCOUNT, PERSON]
    assert out.count() == len(set(rows)) == 10
    assert out.select(C.PLATFORM, C.ACCOUNT).distinct().count() == 10
    persons = {(r[C.PLATFORM], r[C.ACCOUNT]): r[PERSON] for r in out.collect()}
    assert persons[("web", "u2")] == persons[("tv", "u1")] == "tv:u1"
    assert len(set(persons.values())) == 8
