"""The gate passes consistent tables and catches each planted fault."""
from __future__ import annotations

import dataclasses
import datetime as dt

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from crossrec.config import QualitySpec
from crossrec.ingest import quality
from crossrec.schemas.lake import EVENTS, INTERACTIONS, ITEMS, QUARANTINE, USERS

T = dt.datetime(2001, 1, 1)
COUNTS = quality.Counts(read={"catalog": 2, "web": 4}, quarantined={"catalog": 0, "web": 1},
                        joined=3)


def _tables(spark, events_rows=None, inter_rows=None, user_rows=None):
    items = [(0, "m0", "A", 2000, ["x"], "comedy", "A"), (1, "m1", "B", None, [], "drama", "B")]
    users = user_rows or [(0, "k0", 1, ["web"], 2, T, T)]
    events = events_rows or [(0, 0, "k0", 0, "m0", "comedy", "web", "rating", 4.0, 1.0, T),
                             (0, 1, "k0", 1, "m1", "drama", "web", "rating", 3.0, 1.0, T)]
    inter = inter_rows or [(0, 0, "k0", "m0", 1.0, 1, T, T, ["web"], 4.0, 4.0, "comedy"),
                           (0, 1, "k0", "m1", 1.0, 1, T, T, ["web"], 3.0, 3.0, "drama")]
    quarantine = [("r", "web", "f", "ts", "bad", "raw")]
    make = lambda rows, t: spark.createDataFrame(rows, t.as_spark_schema())  # noqa: E731
    return {ITEMS.name: make(items, ITEMS), USERS.name: make(users, USERS),
            EVENTS.name: make(events, EVENTS), INTERACTIONS.name: make(inter, INTERACTIONS),
            QUARANTINE.name: make(quarantine, QUARANTINE)}


def _failed(spark, counts=COUNTS, spec=QualitySpec(max_quarantine_share=0.5), **tables):
    domains = ["comedy", "drama"]
    results = quality.run_checks(quality.profiles(_tables(spark, **tables), domains), counts,
                                 spec, domains)
    assert len({r.check for r in results}) == len(results)
    return sorted(r.check for r in results if not r.passed)


def test_consistent_tables_pass(spark):
    assert _failed(spark) == []


@pytest.mark.parametrize("change, expected", [
    ({"counts": quality.Counts({"catalog": 2, "web": 4}, {"web": 2}, joined=3)},
     ["rows_conserved:identity_join", "rows_conserved:quarantine"]),
    ({"counts": quality.Counts({"catalog": 2, "web": 4}, {"web": 1}, joined=4)},
     ["rows_conserved:identity_join"]),
    ({"spec": QualitySpec(max_quarantine_share=0.1)}, ["quarantine_share"]),
    ({"spec": QualitySpec(max_quarantine_share=0.5, min_rows_per_domain=2)},
     ["min_rows:comedy", "min_rows:drama"]),
])
def test_count_faults(spark, change, expected):
    assert _failed(spark, **change) == expected


def test_duplicate_key_and_orphan_index_and_lost_events(spark):
    dup = [(0, 0, "k0", "m0", 1.0, 1, T, T, ["web"], 4.0, 4.0, "comedy")] * 2
    assert _failed(spark, inter_rows=dup) == ["min_rows:drama", "unique_key:interactions"]
    orphan = [(0, 0, "k0", 0, "m0", "comedy", "web", "rating", 4.0, 1.0, T),
              (3, 0, "k9", 5, "m1", "drama", "web", "rating", 3.0, 1.0, T)]
    assert _failed(spark, events_rows=orphan) == ["referential:events.item_idx",
                                                  "referential:events.user_idx"]
    sparse = [(0, "k0", 1, ["web"], 1, T, T), (2, "k2", 1, ["web"], 1, T, T)]
    assert _failed(spark, user_rows=sparse) == ["dense_index:users.user_idx"]


def _laid_out(spark, tmp_path, files: list[list[tuple[int, int]]]):
    """The events check and key check, and the events profile, of ``(user_idx, seq)`` rows
    written one file per list, in the given order."""
    path = tmp_path / "events"
    path.mkdir()
    for i, keys in enumerate(files):
        rows = [{**dict(zip(EVENTS.columns, _tables(spark)[EVENTS.name].first())),
                 "user_idx": u, "seq": s} for u, s in keys]
        pq.write_table(pa.Table.from_pylist(rows, schema=EVENTS.as_arrow_schema()),
                       path / f"part-{i}.parquet")
    tables = {**_tables(spark), EVENTS.name: spark.read.schema(EVENTS.as_spark_schema())
              .parquet(str(path))}
    p = quality.profiles(tables, ["comedy", "drama"], str(path))
    results = {r.check: r for r in quality.run_checks(p, COUNTS, QualitySpec(), ["comedy"])}
    return results["layout:events"], results["unique_key:events"], p[EVENTS.name]


def test_events_key_proven_by_the_files_layout(spark, tmp_path):
    layout, unique, p = _laid_out(spark, tmp_path, [[(0, 0), (0, 1), (3, 0)], [(1, 0), (2, 0)]])
    assert layout.passed and unique.passed
    assert p["layout:pairs"] == p["layout:users"] == 4 and p["keys"] == p["rows"] == 5


def test_a_user_in_two_files_fails_the_layout_and_the_key_is_counted(spark, tmp_path):
    layout, unique, p = _laid_out(spark, tmp_path, [[(0, 0), (1, 0)], [(1, 1)]])
    assert not layout.passed and layout.observed == 1 and "more than one file" in layout.detail
    assert unique.passed and p["keys"] == 3   # counted by Spark: still unique


@pytest.mark.parametrize("keys", [[(1, 0), (0, 0)], [(0, 0), (0, 0)]])
def test_rows_out_of_order_fail_the_layout_and_duplicates_the_key(spark, tmp_path, keys):
    layout, unique, _ = _laid_out(spark, tmp_path, [keys])
    assert not layout.passed and "part-0.parquet" in layout.detail and "row 1" in layout.detail
    assert unique.passed == (keys[0] != keys[1])


def test_layout_not_checked_where_an_executor_cannot_open_the_files(spark, tmp_path, monkeypatch):
    listed = quality.event_pieces
    # the driver lists the files, then the tasks find none at their paths, as an executor
    # without libhdfs or the object store's credentials would fail to open them
    monkeypatch.setattr(quality, "event_pieces", lambda url: [
        dataclasses.replace(piece, path=piece.path + ".elsewhere") for piece in listed(url)])
    layout, unique, p = _laid_out(spark, tmp_path, [[(0, 0), (1, 0)], [(1, 1)]])
    assert layout.passed and "not checked" in layout.detail and "executor" in layout.detail
    assert unique.passed and p["keys"] == p["rows"] == 3   # counted by Spark instead


def test_layout_not_checked_without_the_files(spark):
    p = quality.profiles(_tables(spark), ["comedy", "drama"])
    check = quality.run_checks(p, COUNTS, QualitySpec(), ["comedy"])
    layout = next(r for r in check if r.check == "layout:events")
    assert layout.passed and "not checked" in layout.detail and p[EVENTS.name]["keys"] == 2
