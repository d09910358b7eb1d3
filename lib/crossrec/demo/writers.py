"""How each platform delivers its log, and the writers of a raw drop.

A raw drop is what a real deployment receives: one folder of part files per platform (each platform
with its own format, column names, time unit and account-id shape), an item catalog, an
account-link table, and the ``sources.toml`` that tells ingest how to read them all.
"""
from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pv
import pyarrow.parquet as pq

from crossrec.errors import ConfigError
from crossrec.schemas import columns as C
from crossrec.schemas.lake import CATALOG_RAW, LINKS_RAW

MARKER = ".prepare-demo.json"  # marks a folder prepare-demo may delete and rewrite
SOURCES_FILE = "sources.toml"
CATALOG_FILE = "catalog.jsonl"
LINKS_FILE = "links.csv"
CODE_BITS = 40  # account codes live in [0, 2**40); every id shape below encodes them injectively
EVENT_TYPE = "rating"  # the canonical event type all demo platforms deliver
VALUE_RANGE = (1, 5)

# The three delivery styles; platform i uses style i % 3. Keys are the logical columns of ingest.
_STYLES = (
    dict(format="jsonl", timestamp="iso8601", event_name="rated", columns={
        C.ACCOUNT: "uid", C.ITEM_ID: "movie", C.EVENT_TYPE: "action", C.VALUE: "stars", C.TS: "at"}),
    dict(format="csv", timestamp="epoch_ms", event_name="rate", columns={
        C.ACCOUNT: "member_id", C.ITEM_ID: "item", C.VALUE: "score", C.EVENT_TYPE: "event",
        C.TS: "epoch_ms"}),
    dict(format="parquet", timestamp="epoch_s", event_name="rating", columns={
        C.ACCOUNT: "account_id", C.ITEM_ID: "item_ref", C.VALUE: "rating", C.EVENT_TYPE: "kind",
        C.TS: "ts_s"}),
)
_EXT = {"jsonl": "jsonl", "csv": "csv", "parquet": "parquet"}


@dataclass(frozen=True)
class Layout:
    """How one platform delivers: file format, time unit, logical -> physical columns, id shape.

    >>> layout("reelhub", 0).columns["account"]
    'uid'
    """

    name: str
    format: str
    timestamp: str
    event_name: str
    columns: dict[str, str]
    id_shape: int


def layout(name: str, index: int) -> Layout:
    """The layout of the ``index``-th platform; from the fourth on, column names get a suffix.

    >>> layout("p4", 4).columns["ts"]
    'epoch_ms_4'
    """
    style = _STYLES[index % len(_STYLES)]
    suffix = "" if index < len(_STYLES) else f"_{index}"
    cols = {k: v + suffix for k, v in style["columns"].items()}
    return Layout(name, style["format"], style["timestamp"], style["event_name"], cols,
                  index % len(_STYLES))


# --- account ids -------------------------------------------------------------------------------

def scramble(i: np.ndarray, key: int) -> np.ndarray:
    """A keyed bijection of ``[0, 2**40)``: distinct inputs give distinct, random-looking codes.

    Xor with a key, xor-shift and multiplication by an odd constant are each invertible modulo
    2**40, so their composition is a permutation (the splitmix64 finaliser, cut to 40 bits).

    >>> len(set(scramble(np.arange(1000, dtype=np.uint64), key=7).tolist()))
    1000
    """
    mask = np.uint64((1 << CODE_BITS) - 1)
    x = (i.astype(np.uint64) ^ np.uint64(key & int(mask))) & mask
    for mult in (0x9E3779B97F4A7C15 | 1, 0xBF58476D1CE4E5B9 | 1):
        x ^= x >> np.uint64(CODE_BITS // 2)
        x = (x * np.uint64(mult & int(mask))) & mask
    return x ^ (x >> np.uint64(CODE_BITS // 2))


def _digits(codes: np.ndarray, alphabet: bytes, width: int) -> np.ndarray:
    """``[n]`` codes -> ``[n, width]`` uint8 characters, most significant digit first."""
    base = np.uint64(len(alphabet))
    out = np.empty((len(codes), width), dtype=np.uint8)
    x = codes.astype(np.uint64).copy()
    lut = np.frombuffer(alphabet, dtype=np.uint8)
    for col in range(width - 1, -1, -1):
        out[:, col] = lut[(x % base).astype(np.intp)]
        x //= base
    return out


def fixed_width_strings(chars: np.ndarray) -> pa.Array:
    """``[n, w]`` uint8 ASCII characters -> a string array of n values, without a per-value copy.

    >>> fixed_width_strings(np.frombuffer(b"abcd", dtype=np.uint8).reshape(2, 2)).to_pylist()
    ['ab', 'cd']
    """
    n, w = chars.shape
    offsets = np.arange(0, n * w + 1, w, dtype=np.int64 if n * w >= 2**31 else np.int32)
    kind = pa.LargeStringArray if offsets.dtype == np.int64 else pa.StringArray
    return kind.from_buffers(n, pa.py_buffer(offsets),
                             pa.py_buffer(np.ascontiguousarray(chars, dtype=np.uint8)))


def _join(parts: list[np.ndarray | bytes], n: int) -> pa.Array:
    cols = [np.tile(np.frombuffer(p, dtype=np.uint8), (n, 1)) if isinstance(p, bytes) else p
            for p in parts]
    return fixed_width_strings(np.concatenate(cols, axis=1))


def account_ids(codes: np.ndarray, shape: int) -> pa.Array:
    """Codes in ``[0, 2**40)`` -> account ids of one of three shapes (hex, digits, base32 blocks).

    >>> account_ids(np.array([255], dtype=np.uint64), 0).to_pylist()
    ['u_00000000ff']
    """
    n = len(codes)
    if shape == 0:
        return _join([b"u_", _digits(codes, b"0123456789abcdef", 10)], n)
    if shape == 1:  # 13 digits, never a leading zero
        return _join([_digits(codes + np.uint64(2 * 10**12), b"0123456789", 13)], n)
    b32 = _digits(codes, b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789", 8)
    return _join([b"CV-", b32[:, :4], b"-", b32[:, 4:]], n)


# --- platform logs -----------------------------------------------------------------------------

def iso8601(ts_s: np.ndarray) -> pa.Array:
    """Epoch seconds ``[n]`` -> ``YYYY-MM-DDTHH:MM:SSZ`` strings (years 1970..9999).

    Digit arithmetic into a byte matrix: Arrow's ``strftime`` costs about 1 s per million values.

    >>> iso8601(np.array([978300760])).to_pylist()
    ['2000-12-31T22:12:40Z']
    """
    ts_s = np.asarray(ts_s, dtype=np.int64)
    days = ts_s // 86_400
    sec = ts_s - days * 86_400
    day = days.astype("datetime64[D]")
    month = day.astype("datetime64[M]")
    fields = ((month.astype("datetime64[Y]").astype(np.int64) + 1970, 0, 4),
              (month.astype(np.int64) % 12 + 1, 5, 2), ((day - month).astype(np.int64) + 1, 8, 2),
              (sec // 3600, 11, 2), (sec // 60 % 60, 14, 2), (sec % 60, 17, 2))
    chars = np.tile(np.frombuffer(b"0000-00-00T00:00:00Z", dtype=np.uint8), (len(ts_s), 1))
    for value, col, width in fields:
        for i in range(col + width - 1, col - 1, -1):
            chars[:, i] = 48 + value % 10
            value = value // 10
    return fixed_width_strings(chars)


def platform_table(account: pa.Array, item_id: pa.Array, value: np.ndarray, ts_s: np.ndarray,
                   lay: Layout) -> pa.Table:
    """Canonical events -> the platform's physical table (its columns, order and time unit).

    >>> platform_table(pa.array(["a"]), pa.array(["m0001"]), np.array([4]), np.array([0]),
    ...                layout("reelhub", 0)).to_pylist()
    [{'uid': 'a', 'movie': 'm0001', 'action': 'rated', 'stars': 4, 'at': '1970-01-01T00:00:00Z'}]
    """
    ts_s = np.asarray(ts_s, dtype=np.int64)
    if lay.timestamp == "iso8601":
        ts = iso8601(ts_s)
    elif lay.timestamp == "epoch_ms":
        ts = pa.array(ts_s * 1000, pa.int64())
    else:
        ts = pa.array(ts_s, pa.int64())
    data = {
        C.ACCOUNT: account, C.ITEM_ID: item_id,
        C.EVENT_TYPE: pa.repeat(pa.scalar(lay.event_name, pa.string()), len(ts_s)),
        C.VALUE: pa.array(np.asarray(value, dtype=np.int32), pa.int32()), C.TS: ts,
    }
    return pa.table({lay.columns[k]: data[k] for k in lay.columns})


_NEEDS_ESCAPE = r'["\\\x00-\x1f]'


def _json_lines(table: pa.Table) -> pa.ChunkedArray | None:
    """One JSON object per row, built column-wise; None when a string would need escaping."""
    pieces: list = []
    for i, name in enumerate(table.column_names):
        col = table.column(name)
        key = ("{" if i == 0 else ",") + json.dumps(name) + ":"
        if pa.types.is_string(col.type):
            if col.null_count or pc.any(pc.match_substring_regex(col, _NEEDS_ESCAPE)).as_py():
                return None
            pieces += [key + '"', col, '"']
        elif pa.types.is_integer(col.type) and not col.null_count:
            pieces += [key, pc.cast(col, pa.string())]
        else:
            return None
    return pc.binary_join_element_wise(*pieces, "}\n", "")


def _write_jsonl(table: pa.Table, path: Path) -> None:
    lines = _json_lines(table) if table.num_rows else None
    if lines is None:  # the general (slower) path: pandas escapes what needs escaping
        table.to_pandas().to_json(path, orient="records", lines=True, force_ascii=False)
        return
    with open(path, "wb") as f:
        for chunk in (c for c in lines.chunks if len(c)):  # data buffer = the rows, back to back
            width = np.int64 if pa.types.is_large_string(chunk.type) else np.int32
            offsets = np.frombuffer(chunk.buffers()[1], dtype=width)[chunk.offset:]
            f.write(memoryview(chunk.buffers()[2])[offsets[0]:offsets[len(chunk)]])


def _write_csv(table: pa.Table, path: Path) -> None:
    # Header and values are ids and numbers: written unquoted, as most exporters do ("none"
    # makes pyarrow fail loudly should a value ever need quoting).
    with open(path, "wb") as f:
        f.write((",".join(table.column_names) + "\n").encode())
        pv.write_csv(table, f, pv.WriteOptions(include_header=False, quoting_style="none"))


def _write_parquet(table: pa.Table, path: Path) -> None:
    pq.write_table(table, path)


_WRITERS = {"jsonl": _write_jsonl, "csv": _write_csv, "parquet": _write_parquet}


def write_parts(table: pa.Table, folder: Path, fmt: str, parts: int) -> list[Path]:
    """Split ``table`` into ``parts`` contiguous files ``part-0000i.<ext>`` (one if empty).

    >>> write_parts(pa.table({"a": [1, 2, 3]}), Path("/tmp/x"), "csv", 2)  # doctest: +SKIP
    [PosixPath('/tmp/x/part-00000.csv'), PosixPath('/tmp/x/part-00001.csv')]
    """
    folder.mkdir(parents=True, exist_ok=True)
    parts = max(1, min(parts, table.num_rows))
    bounds = np.linspace(0, table.num_rows, parts + 1).astype(int)
    paths = []
    for i in range(parts):
        path = folder / f"part-{i:05d}.{_EXT[fmt]}"
        _WRITERS[fmt](table.slice(bounds[i], bounds[i + 1] - bounds[i]), path)
        paths.append(path)
    return paths


# --- catalog, links, sources -------------------------------------------------------------------

def write_catalog(catalog: pd.DataFrame, path: Path) -> None:
    """JSON lines with the ``catalog_raw`` columns; a missing year is ``null``.

    >>> write_catalog(pd.DataFrame({"item_id": ["m0001"], "title": ["Heat"], "year": [1995],
    ...     "genres": ["Action"], "domain": ["other"], "text": ["Heat"]}), p)  # doctest: +SKIP
    """
    frame = catalog[list(CATALOG_RAW.columns)].copy()
    frame[C.YEAR] = frame[C.YEAR].astype("Int64")
    frame.to_json(path, orient="records", lines=True, force_ascii=False)


def write_links(links: pa.Table, path: Path) -> None:
    """CSV ``platform_a,account_a,platform_b,account_b``.

    >>> write_links(pa.table({"platform_a": ["a"], "account_a": ["1"], "platform_b": ["b"],
    ...     "account_b": ["2"]}), p)  # doctest: +SKIP
    """
    _write_csv(links.select(list(LINKS_RAW.columns)), path)


def _toml(value: object) -> str:
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_toml(v)}" for k, v in value.items()) + " }"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    return json.dumps(str(value))  # a TOML basic string for the ASCII values written here


def _table(header: str, entries: dict[str, object]) -> str:
    return "\n".join([header, *(f"{k} = {_toml(v)}" for k, v in entries.items())]) + "\n"


def render_sources(layouts: list[Layout], title: str, quarantine_share: float = 0.01) -> str:
    """The ``sources.toml`` of a drop, paths relative to the file (see ``crossrec.config``).

    >>> "[[platforms]]" in render_sources([layout("reelhub", 0)], "demo")
    True
    """
    blocks = [f"# {title}\n# Written by prepare-demo (crossrec.demo); paths are relative to this "
              "file.\n",
              _table("[catalog]", {"path": CATALOG_FILE, "format": "jsonl",
                                   "columns": {c: c for c in CATALOG_RAW.columns}}),
              _table("[links]", {"path": LINKS_FILE, "format": "csv",
                                 "columns": {c: c for c in LINKS_RAW.columns}})]
    for lay in layouts:
        blocks.append(_table("[[platforms]]", {
            "name": lay.name, "path": f"{lay.name}/", "format": lay.format,
            "timestamp": lay.timestamp, "columns": lay.columns,
            "event_types": {lay.event_name: EVENT_TYPE}, "weights": {EVENT_TYPE: 1.0},
            "value_range": list(VALUE_RANGE)}))
    blocks.append(_table("[quality]", {"min_rows_per_domain": 1,
                                       "max_quarantine_share": quarantine_share}))
    return "\n".join(blocks)


# --- the output folder -------------------------------------------------------------------------

def check_output(out: Path) -> None:
    """Raise unless ``out`` is absent, empty, or a previous drop (holds ``MARKER``).

    >>> check_output(Path("/etc"))  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    crossrec.errors.ConfigError: /etc: not empty and not a previous prepare-demo output ...
    """
    if out.exists() and not out.is_dir():
        raise ConfigError(f"{out}: exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not (out / MARKER).is_file():
        raise ConfigError(f"{out}: not empty and not a previous prepare-demo output "
                          f"(no {MARKER}); refusing to delete it")


def reset_output(out: Path) -> None:
    """Empty ``out`` for a new drop (see ``check_output`` for what is refused)."""
    check_output(out)
    if out.is_dir():
        shutil.rmtree(out)
    out.mkdir(parents=True)


def write_marker(out: Path, summary: dict) -> None:
    text = json.dumps(summary, indent=2, sort_keys=True) + "\n"
    (out / MARKER).write_text(text, encoding="utf-8")
