"""Property: every CSV row read is either kept or quarantined with the field that is wrong.

Random batches mix valid rows of the CSV platform ``cp`` with corruptions of known kinds; the
pipeline's own read and check steps (``read_all``, ``check_all``, ``validate.split``) must account
for each physical row exactly once.
"""
from __future__ import annotations

import dataclasses
import string
import tempfile
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from pyspark.sql import functions as F

from crossrec.config import Sources, load_sources
from crossrec.ingest import validate
from crossrec.ingest.pipeline import check_all, read_all
from crossrec.ingest.read import ERR_FIELD
from crossrec.schemas import columns as C
from crossrec.store import Store
from tests.rawdata import CP, write_raw

DATE = "2026-11-23"
EARLIEST_MS, LATEST_MS = 946_684_800_000, 1_577_836_800_000  # 2000-01-01 .. 2020-01-01
WHOLE_ROW = "*"
# corruption kind -> the field it must be quarantined under (None: the row is valid)
KINDS = {"valid": None, "short": WHOLE_ROW, "long": WHOLE_ROW, "blank": WHOLE_ROW,
         "bad_score": C.VALUE, "bad_epoch": C.TS, "unknown_item": C.ITEM_ID,
         "empty_id": C.ACCOUNT}
Row = tuple[str, "str | None"]  # (raw line, expected error field)


@st.composite
def cp_rows(draw) -> Row:
    """One line of cp's CSV (member_id,item,score,event,epoch_ms) and its expected field."""
    kind = draw(st.sampled_from(sorted(KINDS)))
    fields = [draw(st.text(string.ascii_letters + string.digits + "-_", min_size=1, max_size=8)),
              draw(st.sampled_from(["i1", "i2", "i3", "i4"])),
              str(draw(st.integers(1, 5))), "rate",
              str(draw(st.integers(EARLIEST_MS, LATEST_MS)))]
    if kind == "short":
        fields = fields[:draw(st.integers(1, 4))]
    elif kind == "long":
        fields += draw(st.lists(st.sampled_from(["", "x", "7"]), min_size=1, max_size=2))
    elif kind == "bad_score":
        fields[2] = draw(st.sampled_from(["five", "x", "?", "4..5", ""]))
    elif kind == "bad_epoch":
        fields[4] = draw(st.sampled_from(["soon", "12:00", "-", "-5", "99999999999999999", ""]))
    elif kind == "unknown_item":
        fields[1] = draw(st.sampled_from(["i9", "zz", "I1"]))
    elif kind == "empty_id":
        fields[0] = draw(st.sampled_from(["", " "]))
    return ("" if kind == "blank" else ",".join(fields)), KINDS[kind]


ONE_OF_EACH = [("ann,i1,4,rate,978343200000", None), ("bob,i1,4", WHOLE_ROW),
               ("cid,i2,3,rate,978343200000,x", WHOLE_ROW), ("", WHOLE_ROW),
               ("dan,i3,five,rate,978343200000", C.VALUE), ("eve,i4,2,rate,soon", C.TS),
               ("fay,i9,1,rate,978343200000", C.ITEM_ID), (",i1,5,rate,978343200000", C.ACCOUNT)]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("property")


@pytest.fixture(scope="module")
def small_plans(spark):
    """Each example checks a dozen rows: one shuffle partition and no adaptive re-planning make
    its query two Spark jobs instead of six (the checks themselves are unaffected)."""
    quick = {"spark.sql.adaptive.enabled": "false", "spark.sql.shuffle.partitions": "1"}
    saved = {k: spark.conf.get(k, None) for k in quick}
    for k, v in quick.items():
        spark.conf.set(k, v)
    yield spark
    for k, v in saved.items():
        spark.conf.set(k, v) if v is not None else spark.conf.unset(k)


def cp_only(sources: Sources) -> Sources:
    """The catalog and the CSV platform: nothing else is read."""
    return dataclasses.replace(sources, links=None,
                               platforms=tuple(p for p in sources.platforms if p.name == "cp"))


@settings(max_examples=15, deadline=None)
@example(rows=ONE_OF_EACH)
@given(rows=st.lists(cp_rows(), min_size=1, max_size=12))
def test_each_csv_row_is_kept_or_quarantined_with_its_field(small_plans, workdir,
                                                            rows: list[Row]):
    spark = small_plans
    root = Path(tempfile.mkdtemp(dir=workdir))
    sources = cp_only(load_sources(write_raw(root, cp_extra=[line for line, _ in rows]), DATE))
    parsed = read_all(spark, sources, lambda url: Store.create(url, spark))
    checked = check_all(parsed, sources, DATE)["cp"]

    good, bad = validate.split(checked)
    kept = good.select(C.RAW, F.lit(None).cast("string").alias(ERR_FIELD))
    out = kept.unionByName(bad.select(C.RAW, ERR_FIELD)).collect()  # one job for both sides

    # rows read = kept + quarantined; each row is on the side (and under the field) expected
    assert len(out) == len(CP) + len(rows)
    got = Counter((r[C.RAW], r[ERR_FIELD]) for r in out)
    assert got == Counter([*((line, None) for line in CP), *rows])
