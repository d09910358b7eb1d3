"""Row checks: each bad row gets the field and reason of its first failed check."""
from __future__ import annotations

import datetime as dt

from pyspark.testing import assertDataFrameEqual

from crossrec.config import PlatformSpec, QualitySpec
from crossrec.ingest import validate
from crossrec.ingest.read import ERR_FIELD, ERR_REASON
from crossrec.schemas import columns as C

PARSED = ("source string, source_file string, raw string, account string, item_id string, "
          "event_type string, value string, ts string, _err_field string, _err_reason string")
SPEC = PlatformSpec(name="p", path="file:///x", format="jsonl",
                    columns={C.ACCOUNT: "u", C.ITEM_ID: "i", C.EVENT_TYPE: "e", C.VALUE: "v",
                             C.TS: "t"},
                    timestamp="epoch_ms", event_types={"rate": "rating", "view": "view"},
                    weights={"rating": 1.0, "view": 0.25}, value_range=(1.0, 5.0))


def _events(spark, rows, spec=SPEC):
    df = spark.createDataFrame([("p", "f", "raw", *r, None, None) for r in rows], PARSED)
    items = spark.createDataFrame([("i1", "comedy")], "item_id string, domain string")
    return validate.check_events(df, spec, QualitySpec(), "2026-11-23", items)


def test_valid_event_is_typed(spark):
    out = _events(spark, [(" a ", "i1", "view", "4", "978343200000")])
    row = out.select(C.ACCOUNT, C.ITEM_ID, C.DOMAIN, C.EVENT_TYPE, C.VALUE, C.WEIGHT, C.TS,
                     ERR_FIELD).first()
    assert tuple(row) == ("a", "i1", "comedy", "view", 4.0, 0.25,
                          dt.datetime(2001, 1, 1, 10, 0), None)


def test_each_bad_row_names_its_first_failing_field(spark):
    rows = [
        ("", "i1", "rate", "4", "978343200000"),            # empty id
        ("a", " ", "rate", "4", "978343200000"),            # empty item
        ("a", "i1", "click", "4", "978343200000"),          # unknown event type
        ("a", "i1", "rate", "4", None),                     # missing ts
        ("a", "i1", "rate", "4", "yesterday"),              # bad ts
        ("a", "i1", "rate", "4", "-99999999999999"),        # ts before 1970
        ("a", "i1", "rate", "4", "99999999999999"),         # ts after the run date
        ("a", "i1", "rate", "four", "978343200000"),        # not a number
        ("a", "i1", "rate", "9", "978343200000"),           # out of range
        ("a", "nope", "rate", "4", "978343200000"),         # unknown item
        ("", "nope", "click", "x", "y"),                    # several: the first one wins
    ]
    out = _events(spark, rows).select(C.ACCOUNT, C.ITEM_ID, ERR_FIELD, ERR_REASON)
    got = [(r[ERR_FIELD], r[ERR_REASON]) for r in out.collect()]
    assert sorted(got) == sorted([
        (C.ACCOUNT, "empty user id"),
        (C.ITEM_ID, "empty item id"),
        (C.EVENT_TYPE, "unknown event type (known: rate, view)"),
        (C.TS, "missing timestamp"),
        (C.TS, "not a valid epoch_ms timestamp"),
        (C.TS, "timestamp out of range [1970-01-01T00:00:00Z, 2026-11-23 + 1 day(s)]"),
        (C.TS, "timestamp out of range [1970-01-01T00:00:00Z, 2026-11-23 + 1 day(s)]"),
        (C.VALUE, "not a number"),
        (C.VALUE, "out of range [1, 5]"),
        (C.ITEM_ID, "unknown item (not in the catalog)"),
        (C.ACCOUNT, "empty user id"),
    ])


def test_structural_error_is_kept(spark):
    df = spark.createDataFrame([("p", "f", "{", None, None, None, None, None, "*", "malformed")],
                               PARSED)
    items = spark.createDataFrame([("i1", "comedy")], "item_id string, domain string")
    out = validate.check_events(df, SPEC, QualitySpec(), "2026-11-23", items)
    assert tuple(out.select(ERR_FIELD, ERR_REASON).first()) == ("*", "malformed")


def test_iso_timestamps_with_and_without_zone(spark):
    spec = PlatformSpec(**{**SPEC.__dict__, "timestamp": "iso8601"})
    out = _events(spark, [("a", "i1", "rate", "4", "2001-01-01T10:00:00+01:00"),
                          ("b", "i1", "rate", "4", "2001-01-01T10:00:00Z"),
                          ("c", "i1", "rate", "4", "2001-01-01 10:00:00")], spec)
    got = dict((r[0], r[1]) for r in out.select(C.ACCOUNT, C.TS).collect())
    assert got == {"a": dt.datetime(2001, 1, 1, 9), "b": dt.datetime(2001, 1, 1, 10),
                   "c": dt.datetime(2001, 1, 1, 10)}


CATALOG = ("source string, source_file string, raw string, item_id string, title string, "
           "year string, genres string, domain string, text string, _err_field string, "
           "_err_reason string")


def test_catalog_rejects_duplicates_and_bad_years_and_fills_text(spark):
    rows = [("catalog", "f", r, *vals, None, None) for r, vals in [
        ("r1", ("m1", "Alpha", "1999", "Comedy|Drama ", "Comedy", None)),
        ("r0", ("m1", "Alpha again", "1999", "Comedy", "comedy", None)),
        ("r2", ("m2", "Beta", "19x9", "Drama", "drama", "t")),
        ("r3", ("m3", "", "2000", "Drama", "drama", "t")),
        ("r4", ("m4", "Delta", None, None, "other", "Delta text")),
    ]]
    out = validate.check_catalog(spark.createDataFrame(rows, CATALOG))
    got = {r[C.RAW]: (r[ERR_FIELD], r[ERR_REASON]) for r in out.collect()}
    assert got == {"r0": (None, None), "r1": (C.ITEM_ID, "duplicate item id"),
                   "r2": (C.YEAR, "not a year between 1800 and 2200"),
                   "r3": (C.TITLE, "empty title"), "r4": (None, None)}
    good = validate.split(out)[0].select(C.ITEM_ID, C.YEAR, C.GENRES, C.DOMAIN, C.TEXT)
    assertDataFrameEqual(good, spark.createDataFrame(
        [("m1", 1999, ["Comedy"], "comedy", "Alpha again. Comedy"),
         ("m4", None, [], "other", "Delta text")],
        "item_id string, year int, genres array<string>, domain string, text string"))


def test_links_need_known_platforms_and_ids(spark):
    schema = ("source string, source_file string, raw string, platform_a string, "
              "account_a string, platform_b string, account_b string, _err_field string, "
              "_err_reason string")
    rows = [("links", "f", r, *v, None, None) for r, v in [
        ("ok", ("a", "1", "b", "2")), ("x", ("a", "1", "zz", "2")), ("y", ("a", "", "b", "2"))]]
    out = validate.check_links(spark.createDataFrame(rows, schema), ["a", "b"])
    got = {r[C.RAW]: (r[ERR_FIELD], r[ERR_REASON]) for r in out.collect()}
    assert got == {"ok": (None, None), "x": (C.PLATFORM_B, "unknown platform (known: a, b)"),
                   "y": (C.ACCOUNT_A, "empty user id")}
