"""Source declarations for ingest, from a TOML file: adding a platform is configuration, not code.

Example (relative paths resolve against the file's folder; ``{run_date}`` is substituted)::

    [catalog]
    path = "catalog.jsonl"
    format = "jsonl"

    [links]
    path = "links.csv"
    format = "csv"

    [[platforms]]
    name = "reelhub"
    path = "reelhub/date={run_date}/"
    format = "jsonl"                       # jsonl | csv | parquet
    timestamp = "iso8601"                  # iso8601 | epoch_s | epoch_ms
    columns = { account = "uid", item_id = "movie", event_type = "action", value = "stars", ts = "at" }
    event_types = { rated = "rating" }     # platform event name -> canonical type
    weights = { rating = 1.0 }             # canonical type -> weight
    value_range = [1, 5]

    [quality]
    min_rows_per_domain = 1
    max_quarantine_share = 0.05
"""
from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from crossrec.errors import ConfigError
from crossrec.schemas import columns as C
from crossrec.schemas.lake import CATALOG_RAW, LINKS_RAW
from crossrec.store import normalize_url

FORMATS = ("jsonl", "csv", "parquet")
TIMESTAMPS = ("iso8601", "epoch_s", "epoch_ms")
EVENT_FIELDS = (C.ACCOUNT, C.ITEM_ID, C.EVENT_TYPE, C.VALUE, C.TS)
REQUIRED_EVENT_FIELDS = (C.ACCOUNT, C.ITEM_ID, C.TS)


@dataclass(frozen=True)
class SourceSpec:
    """One input: where it is, its format, and logical -> physical column names."""

    name: str
    path: str
    format: str
    columns: dict[str, str]
    delimiter: str = ","

    def physical(self, logical: str) -> str | None:
        return self.columns.get(logical)


@dataclass(frozen=True)
class PlatformSpec(SourceSpec):
    """A platform's interaction log."""

    timestamp: str = "iso8601"
    event_types: dict[str, str] = field(default_factory=dict)
    default_event_type: str = "interaction"
    weights: dict[str, float] = field(default_factory=dict)
    value_range: tuple[float, float] | None = None


@dataclass(frozen=True)
class QualitySpec:
    """Thresholds of the data-quality gate."""

    min_rows_per_domain: int = 1
    max_quarantine_share: float = 0.05
    earliest_ts: str = "1970-01-01T00:00:00Z"
    max_future_days: int = 1


@dataclass(frozen=True)
class Sources:
    catalog: SourceSpec
    links: SourceSpec | None
    platforms: tuple[PlatformSpec, ...]
    quality: QualitySpec


def _need(table: dict[str, Any], key: str, where: str, kind: type | tuple[type, ...]) -> Any:
    if key not in table:
        raise ConfigError(f"{where}: missing key {key!r}")
    value = table[key]
    if not isinstance(value, kind):
        raise ConfigError(f"{where}.{key}: expected {getattr(kind, '__name__', kind)}, got {value!r}")
    return value


def _resolve(path: str, base: Path, run_date: str) -> str:
    path = path.replace("{run_date}", run_date)
    if "://" in path or path.startswith("/"):
        return normalize_url(path)
    return normalize_url(str(base / path))


def _source_common(t: dict[str, Any], where: str, base: Path, run_date: str,
                   logical: tuple[str, ...], required: tuple[str, ...]) -> dict[str, Any]:
    fmt = _need(t, "format", where, str)
    if fmt not in FORMATS:
        raise ConfigError(f"{where}.format: {fmt!r} is not one of {', '.join(FORMATS)}")
    cols = dict(t.get("columns", {}))
    for name in required:
        cols.setdefault(name, name)
    unknown = sorted(set(cols) - set(logical))
    if unknown:
        raise ConfigError(f"{where}.columns: unknown logical columns {unknown}; known: {list(logical)}")
    delimiter = t.get("delimiter", ",")
    if not isinstance(delimiter, str) or len(delimiter) != 1 or delimiter == '"':
        raise ConfigError(f"{where}.delimiter: expected one character other than '\"'")
    return dict(path=_resolve(_need(t, "path", where, str), base, run_date), format=fmt,
                columns=cols, delimiter=delimiter)


def _platform(t: dict[str, Any], where: str, base: Path, run_date: str) -> PlatformSpec:
    name = _need(t, "name", where, str)
    if not name.isidentifier():
        raise ConfigError(f"{where}.name: {name!r} must be a plain identifier")
    common = _source_common(t, where, base, run_date, EVENT_FIELDS, REQUIRED_EVENT_FIELDS)
    ts = t.get("timestamp", "iso8601")
    if ts not in TIMESTAMPS:
        raise ConfigError(f"{where}.timestamp: {ts!r} is not one of {', '.join(TIMESTAMPS)}")
    weights = {str(k): float(v) for k, v in t.get("weights", {}).items()}
    event_types = {str(k): str(v) for k, v in t.get("event_types", {}).items()}
    default_type = str(t.get("default_event_type", "interaction"))
    for canonical in {*event_types.values(), default_type}:
        weights.setdefault(canonical, 1.0)
    bad = {k: v for k, v in weights.items() if not v > 0}
    if bad:
        raise ConfigError(f"{where}.weights: weights must be > 0, got {bad}")
    vr = t.get("value_range")
    if vr is not None and (len(vr) != 2 or not float(vr[0]) <= float(vr[1])):
        raise ConfigError(f"{where}.value_range: expected [low, high], got {vr!r}")
    return PlatformSpec(name=name, **common, timestamp=ts, event_types=event_types,
                        default_event_type=default_type, weights=weights,
                        value_range=(float(vr[0]), float(vr[1])) if vr is not None else None)


def load_sources(path: str | Path, run_date: str) -> Sources:
    """Parse and validate a sources file; errors name the file and the key."""
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such sources file") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: not valid TOML: {e}") from None
    base = path.resolve().parent
    where = str(path)
    catalog = SourceSpec(name="catalog", **_source_common(
        _need(raw, "catalog", where, dict), f"{where}: catalog", base, run_date,
        tuple(CATALOG_RAW.columns), tuple(CATALOG_RAW.columns)))
    links = None
    if "links" in raw:
        links = SourceSpec(name="links", **_source_common(
            _need(raw, "links", where, dict), f"{where}: links", base, run_date,
            tuple(LINKS_RAW.columns), tuple(LINKS_RAW.columns)))
    plats = _need(raw, "platforms", where, list)
    if not plats:
        raise ConfigError(f"{where}: at least one [[platforms]] entry is needed")
    platforms = tuple(_platform(p, f"{where}: platforms[{i}]", base, run_date)
                      for i, p in enumerate(plats))
    names = [p.name for p in platforms]
    if len(set(names)) != len(names) or {"catalog", "links"} & set(names):
        raise ConfigError(f"{where}: platform names must be unique and not 'catalog'/'links': {names}")
    q = raw.get("quality", {})
    known = set(QualitySpec.__dataclass_fields__)
    if set(q) - known:
        raise ConfigError(f"{where}: quality: unknown keys {sorted(set(q) - known)}")
    return Sources(catalog, links, platforms, QualitySpec(**q))
