"""Permissive reading: every physical row comes out once, structural errors flagged."""
from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from crossrec.config import SourceSpec
from crossrec.errors import InputError
from crossrec.ingest.read import ERR_FIELD, ERR_REASON, read_source
from crossrec.schemas import columns as C
from crossrec.store import LocalStore

FIELDS = [C.ACCOUNT, C.ITEM_ID, C.TS]


def _spec(path: Path, fmt: str, **cols: str) -> SourceSpec:
    return SourceSpec(name="p", path=path.as_uri(), format=fmt, columns=cols)


def _rows(spark, spec: SourceSpec) -> list[tuple]:
    df = read_source(spark, LocalStore(), spec, FIELDS).df
    return sorted(tuple(r) for r in df.select(C.RAW, *FIELDS, ERR_FIELD, ERR_REASON).collect())


def test_jsonl_truncated_and_blank_lines_are_flagged(spark, tmp_path):
    (tmp_path / "a.jsonl").write_text(
        '{"u": "a", "i": "x", "t": "2001-01-01T00:00:00Z"}\n'
        '{"u": "b", "i":\n'
        '\n'
        '[1, 2]\n'
        '{"u": 7, "i": "y"}\n')
    rows = _rows(spark, _spec(tmp_path / "a.jsonl", "jsonl", account="u", item_id="i", ts="t"))
    assert len(rows) == 5  # every line, the blank one too
    by_raw = {r[0]: r for r in rows}
    assert by_raw['{"u": "a", "i": "x", "t": "2001-01-01T00:00:00Z"}'][1:] == (
        "a", "x", "2001-01-01T00:00:00Z", None, None)
    assert by_raw['{"u": "b", "i":'][4:] == ("*", "malformed JSON (not one complete object)")
    assert by_raw[""][4:] == ("*", "blank line")
    assert by_raw["[1, 2]"][4] == "*"
    # a number where a string is expected is kept as text; the missing key is null (checked later)
    assert by_raw['{"u": 7, "i": "y"}'][1:] == ("7", "y", None, None, None)


def test_csv_counts_fields_honouring_quotes(spark, tmp_path):
    (tmp_path / "a.csv").write_bytes(
        b'user,item,when\r\n'
        b'a,"Gamma, The",1\r\n'
        b'b,y\r\n'
        b'c,z,3,extra\r\n'
        b'd,"open,4\r\n'
        b'e,"say ""hi""",5\r\n')
    rows = _rows(spark, _spec(tmp_path / "a.csv", "csv", account="user", item_id="item", ts="when"))
    by_raw = {r[0]: r for r in rows}
    assert len(rows) == 5  # the header is not a row
    assert by_raw['a,"Gamma, The",1'][1:] == ("a", "Gamma, The", "1", None, None)
    assert by_raw["b,y"][4:] == ("*", "expected 3 fields, got 2")
    assert by_raw["c,z,3,extra"][4:] == ("*", "expected 3 fields, got 4")
    assert by_raw['d,"open,4'][4:] == ("*", "unbalanced quote")
    assert by_raw['e,"say ""hi""",5'][1:3] == ("e", 'say "hi"')


def test_crlf_line_ends_are_not_part_of_a_row(spark, tmp_path):
    (tmp_path / "a.jsonl").write_bytes(b'{"u": "a", "i": "x", "t": "1"}\r\n\r\n{"u": "b"}\r\n')
    rows = _rows(spark, _spec(tmp_path / "a.jsonl", "jsonl", account="u", item_id="i", ts="t"))
    assert [r[0] for r in rows] == ["", '{"u": "a", "i": "x", "t": "1"}', '{"u": "b"}']
    assert rows[0][4:] == ("*", "blank line")


def test_csv_header_mismatch_names_the_file(spark, tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "1.csv").write_text("user,item,when\na,b,1\n")
    (tmp_path / "d" / "2.csv").write_text("user,when,item\na,1,b\n")
    with pytest.raises(InputError, match=r"2\.csv: header .* differs"):
        read_source(spark, LocalStore(), _spec(tmp_path / "d", "csv", account="user",
                                               item_id="item", ts="when"), FIELDS)


def test_csv_missing_configured_column(spark, tmp_path):
    (tmp_path / "a.csv").write_text("user,item\na,b\n")
    with pytest.raises(InputError, match=r"lacks the configured columns \['when'\]"):
        read_source(spark, LocalStore(), _spec(tmp_path / "a.csv", "csv", account="user",
                                               item_id="item", ts="when"), FIELDS)


def test_parquet_values_become_strings_with_raw_json(spark, tmp_path):
    pq.write_table(pa.table({"u": ["a", None], "i": ["x", "y"], "t": pa.array([1, 2], pa.int64())}),
                   tmp_path / "a.parquet")
    rows = _rows(spark, _spec(tmp_path, "parquet", account="u", item_id="i", ts="t"))
    assert [r[1:4] for r in rows] == [("a", "x", "1"), (None, "y", "2")]
    assert rows[0][0] == '{"i":"x","t":1,"u":"a"}'


def test_parquet_missing_column_is_an_input_error(spark, tmp_path):
    pq.write_table(pa.table({"u": ["a"]}), tmp_path / "a.parquet")
    with pytest.raises(InputError, match=r"lack the configured columns"):
        read_source(spark, LocalStore(), _spec(tmp_path, "parquet", account="u", item_id="i",
                                               ts="t"), FIELDS)


def test_no_input_files(spark, tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "_SUCCESS").write_text("")
    with pytest.raises(InputError, match=r"no input files"):
        read_source(spark, LocalStore(), _spec(tmp_path / "empty", "jsonl", account="u"), FIELDS)
