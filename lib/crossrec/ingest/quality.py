"""The data-quality gate: checks on the staged tables before anything is published.

One aggregation pass per table gathers everything the checks need. Referential integrity needs
no join: parent indices are checked to be unique and dense (exactly 0..n-1), so a child's index
refers to an existing parent exactly when it lies in [0, n). The events files are also read by
one pyarrow task each, for the layout scoring relies on, which proves the events key unique.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.pandas.types import from_arrow_schema

from crossrec.config import QualitySpec
from crossrec.errors import LakeUnreadable, raised_in_tasks
from crossrec.event_files import (LAYOUT_SCHEMA, UNREADABLE, event_pieces, file_users,
                                  per_piece)
from crossrec.schemas import columns as C
from crossrec.schemas.lake import EVENTS, INTERACTIONS, ITEMS, QUALITY, QUARANTINE, USERS
from crossrec.schemas.table import Table


@dataclass(frozen=True)
class Counts:
    """Row counts gathered while the job ran."""

    read: dict[str, int]          # rows read per source (each physical row once)
    quarantined: dict[str, int]   # rows rejected per source
    joined: int                   # valid events after the identity join, before de-duplication

    @property
    def good_events(self) -> int:
        sources = set(self.read) - {"catalog", "links"}
        return sum(self.read[s] - self.quarantined.get(s, 0) for s in sources)


@dataclass(frozen=True)
class CheckResult:
    check: str
    passed: bool
    observed: float
    expected: str
    detail: str = ""


def _eq(name: str, observed: int, expected: int, detail: str = "") -> CheckResult:
    return CheckResult(name, observed == expected, float(observed), f"== {expected}", detail)


def profile(df: DataFrame, table: Table, extra: dict[str, Column] | None = None,
            keys: bool = True) -> dict:
    """Rows, nulls per non-nullable column, distinct keys (unless not ``keys``) and ``extra``
    aggregates, in one job."""
    required = [f.name for f in table.fields if not f.nullable]
    aggs = [F.count(F.lit(1)).alias("rows")]
    aggs += [F.sum(F.col(c).isNull().cast("long")).alias(f"null:{c}") for c in required]
    if table.key and keys:
        aggs.append(_distinct_keys(table))
    aggs += [col.alias(name) for name, col in (extra or {}).items()]
    return df.agg(*aggs).first().asDict()


def _distinct_keys(table: Table) -> Column:
    return F.count_distinct(*[F.col(k) for k in table.key]).alias("keys")


def events_layout(spark: SparkSession, url: str) -> dict | None:
    """The events files' layout, read by tasks with pyarrow (:func:`file_users`): users found in
    some file (``layout:pairs``), distinct users (``layout:users``), rows and the first order
    error. None where pyarrow cannot open the files, here or on an executor (as scoring then,
    Spark does without).
    """
    try:
        pieces = event_pieces(url)  # one piece per non-empty file
    except UNREADABLE:
        return None
    if not pieces:
        return {"layout:pairs": 0, "layout:users": 0, "layout:rows": 0, "layout:error": None}
    users = per_piece(spark, pieces, lambda piece: iter([file_users(piece)]),
                      from_arrow_schema(LAYOUT_SCHEMA))
    try:
        with raised_in_tasks(LakeUnreadable):
            return users.agg(F.count(C.USER_IDX).alias("layout:pairs"),
                             F.count_distinct(C.USER_IDX).alias("layout:users"),
                             F.coalesce(F.sum("rows"), F.lit(0)).alias("layout:rows"),
                             F.min("error").alias("layout:error")).first().asDict()
    except LakeUnreadable:
        return None


def _laid_out(p: dict) -> bool:
    """Every events file in (user_idx, seq) order, no user in two files, all rows seen: then
    the key is unique, and ``keys`` need not be counted."""
    checked = "layout:error" in p  # absent where pyarrow could not open the files
    return (checked and p["layout:error"] is None and p["layout:pairs"] == p["layout:users"]
            and p["layout:rows"] == p["rows"])


def _layout_check(p: dict) -> CheckResult:
    name, expected = f"layout:{EVENTS.name}", "whole users per file, in (user_idx, seq) order"
    if "layout:error" not in p:
        return CheckResult(name, True, -1.0, expected, "not checked: pyarrow cannot open the "
                           "files on the driver or an executor (the key was counted by Spark)")
    split = int(p["layout:pairs"]) - int(p["layout:users"])
    detail = p["layout:error"] or (f"{split} user(s) in more than one file; the files hold "
                                   f"{p['layout:rows']} rows, Spark read {p['rows']}")
    return CheckResult(name, _laid_out(p), float(split), expected, detail)


def _table_checks(p: dict, table: Table) -> list[CheckResult]:
    nulls = {k[5:]: int(v or 0) for k, v in p.items() if k.startswith("null:")}
    out = [_eq(f"no_nulls:{table.name}", sum(nulls.values()), 0,
               ", ".join(f"{c}={n}" for c, n in nulls.items() if n))]
    if table.key:
        out.append(_eq(f"unique_key:{table.name}", int(p["keys"]), int(p["rows"]),
                       f"key ({', '.join(table.key)})"))
    return out


def _dense(p: dict, col: str, table: str) -> CheckResult:
    lo, hi, n = p[f"min:{col}"], p[f"max:{col}"], p["rows"]
    ok = n == 0 or (lo == 0 and hi == n - 1 and p["keys"] == n)
    return CheckResult(f"dense_index:{table}.{col}", ok, float(n), "0..rows-1",
                       f"min={lo} max={hi}")


def _refers(p: dict, col: str, parents: int, name: str) -> CheckResult:
    lo, hi = p[f"min:{col}"], p[f"max:{col}"]
    ok = p["rows"] == 0 or (lo >= 0 and hi < parents)
    return CheckResult(f"referential:{name}.{col}", ok, float(hi if hi is not None else -1),
                       f"< {parents}", f"indices span {lo}..{hi}")


def _bounds(*cols: str) -> dict[str, Column]:
    return {k: v for c in cols for k, v in ((f"min:{c}", F.min(c)), (f"max:{c}", F.max(c)))}


def profiles(tables: dict[str, DataFrame], domains: list[str],
             events_url: str | None = None) -> dict[str, dict]:
    """The aggregates every check reads, one job per table.

    With ``events_url`` (where ``tables``' events were read from) the events' key is proven
    unique by their files' layout (:func:`events_layout`) rather than counted: counting 5M
    distinct keys was ~3 s of a 4.4 s profile. Spark counts them when the proof fails or
    cannot be made.
    """
    n_events = {"sum:n_events": F.sum(C.N_EVENTS)}
    jobs: dict[str, tuple[Table, dict[str, Column]]] = {
        ITEMS.name: (ITEMS, _bounds(C.ITEM_IDX)),
        USERS.name: (USERS, {**_bounds(C.USER_IDX), **n_events}),
        EVENTS.name: (EVENTS, _bounds(C.USER_IDX, C.ITEM_IDX)),
        INTERACTIONS.name: (INTERACTIONS, {
            **_bounds(C.USER_IDX, C.ITEM_IDX), **n_events,
            **{f"domain:{d}": F.sum((F.col(C.DOMAIN) == d).cast("long")) for d in domains}}),
        QUARANTINE.name: (QUARANTINE, {}),
    }
    events = tables[EVENTS.name]
    # Independent jobs, submitted together: the small tables' jobs and each job's planning and
    # scheduling overlap the large ones' tasks instead of leaving cores idle between jobs.
    with ThreadPoolExecutor(max_workers=len(jobs) + 1) as pool:
        futures = {name: pool.submit(profile, tables[name], table, extra,
                                     keys=name != EVENTS.name or events_url is None)
                   for name, (table, extra) in jobs.items()}
        layout = pool.submit(events_layout, events.sparkSession, events_url) \
            if events_url else None
        out = {name: f.result() for name, f in futures.items()}
    ev = out[EVENTS.name]
    if layout is not None and (found := layout.result()) is not None:
        ev.update(found)
    if "keys" not in ev:
        ev["keys"] = ev["rows"] if _laid_out(ev) else \
            events.agg(_distinct_keys(EVENTS)).first()["keys"]
    return out


def run_checks(p: dict[str, dict], counts: Counts, quality: QualitySpec,
               domains: list[str]) -> list[CheckResult]:
    """Every gate check from the tables' profiles and the run's counts."""
    n_events = int(p[EVENTS.name]["rows"])
    read, bad = sum(counts.read.values()), sum(counts.quarantined.values())
    out = [
        _eq("rows_conserved:quarantine", int(p[QUARANTINE.name]["rows"]), bad,
            "quarantine table vs rows rejected"),
        _eq("rows_conserved:identity_join", counts.joined, counts.good_events,
            "events after the person/item joins vs valid rows read"),
        CheckResult("rows_conserved:dedup", 0 <= counts.joined - n_events <= counts.joined,
                    float(counts.joined - n_events), ">= 0",
                    "exact duplicates dropped (joined events - events)"),
        _eq("rows_conserved:interactions", int(p[INTERACTIONS.name]["sum:n_events"] or 0),
            n_events, "sum(n_events) vs events"),
        _eq("rows_conserved:users", int(p[USERS.name]["sum:n_events"] or 0), n_events,
            "sum(n_events) vs events"),
        CheckResult("quarantine_share", read > 0 and bad / read <= quality.max_quarantine_share,
                    bad / read if read else 0.0, f"<= {quality.max_quarantine_share}",
                    f"{bad} of {read} rows rejected"),
    ]
    for table in (ITEMS, USERS, EVENTS, INTERACTIONS):
        out += _table_checks(p[table.name], table)
    out.append(_layout_check(p[EVENTS.name]))
    out += [_dense(p[ITEMS.name], C.ITEM_IDX, ITEMS.name),
            _dense(p[USERS.name], C.USER_IDX, USERS.name)]
    n_users, n_items = int(p[USERS.name]["rows"]), int(p[ITEMS.name]["rows"])
    for name in (EVENTS.name, INTERACTIONS.name):
        out += [_refers(p[name], C.USER_IDX, n_users, name),
                _refers(p[name], C.ITEM_IDX, n_items, name)]
    for d in domains:
        n = int(p[INTERACTIONS.name][f"domain:{d}"] or 0)
        out.append(CheckResult(f"min_rows:{d}", n >= quality.min_rows_per_domain, float(n),
                               f">= {quality.min_rows_per_domain}", "interactions in the domain"))
    return out


def as_table(spark: SparkSession, run_id: str, results: list[CheckResult]) -> DataFrame:
    rows = [(run_id, r.check, r.passed, r.observed, r.expected, r.detail) for r in results]
    return QUALITY.local_frame(spark, rows)
