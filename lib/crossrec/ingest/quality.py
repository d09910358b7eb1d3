"""The data-quality gate: checks on the staged tables before anything is published."""
from __future__ import annotations

from dataclasses import dataclass

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from crossrec.config import QualitySpec
from crossrec.schemas import columns as C
from crossrec.schemas.lake import EVENTS, INTERACTIONS, ITEMS, QUALITY, USERS
from crossrec.schemas.table import Table


@dataclass(frozen=True)
class Counts:
    """Row counts gathered while the job ran, per source."""

    read: dict[str, int]          # rows read (each physical row once)
    quarantined: dict[str, int]   # rows rejected
    duplicates: int               # valid events dropped as exact duplicates

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


def _table_checks(df: DataFrame, table: Table) -> list[CheckResult]:
    """Nulls in non-nullable columns and key uniqueness, in one pass."""
    required = [f.name for f in table.fields if not f.nullable]
    aggs = [F.count(F.lit(1)).alias("_rows")]
    aggs += [F.sum(F.col(c).isNull().cast("long")).alias(f"_null_{c}") for c in required]
    if table.key:
        aggs.append(F.count_distinct(*[F.col(k) for k in table.key]).alias("_keys"))
    row = df.agg(*aggs).first()
    nulls = {c: int(row[f"_null_{c}"] or 0) for c in required}
    out = [_eq(f"no_nulls:{table.name}", sum(nulls.values()), 0,
               ", ".join(f"{c}={n}" for c, n in nulls.items() if n))]
    if table.key:
        out.append(_eq(f"unique_key:{table.name}", int(row["_keys"]), int(row["_rows"]),
                       f"key ({', '.join(table.key)})"))
    return out


def _dense(df: DataFrame, col: str, table: str) -> CheckResult:
    row = df.agg(F.min(col), F.max(col), F.count(F.lit(1))).first()
    lo, hi, n = row[0], row[1], row[2]
    ok = n == 0 or (lo == 0 and hi == n - 1)
    return CheckResult(f"dense_index:{table}.{col}", ok, float(n), "0..rows-1", f"min={lo} max={hi}")


def _orphans(child: DataFrame, parent: DataFrame, col: str, name: str) -> CheckResult:
    n = child.select(col).distinct().join(parent.select(col), col, "left_anti").count()
    return _eq(f"referential:{name}.{col}", n, 0, "values with no parent row")


def run_checks(tables: dict[str, DataFrame], counts: Counts, quality: QualitySpec,
               domains: list[str]) -> list[CheckResult]:
    """Every gate check over the staged tables (by table name)."""
    items, users = tables[ITEMS.name], tables[USERS.name]
    events, inter = tables[EVENTS.name], tables[INTERACTIONS.name]
    n_events = events.count()
    read, bad = sum(counts.read.values()), sum(counts.quarantined.values())
    n_quarantine = tables["quarantine"].count()
    sums = inter.agg(F.sum(C.N_EVENTS)).first()[0] or 0
    user_sum = users.agg(F.sum(C.N_EVENTS)).first()[0] or 0
    out = [
        _eq("rows_conserved:quarantine", n_quarantine, bad, "quarantine table vs rows rejected"),
        _eq("rows_conserved:events", n_events + counts.duplicates, counts.good_events,
            f"events + {counts.duplicates} exact duplicates vs valid rows read"),
        _eq("rows_conserved:interactions", int(sums), n_events, "sum(n_events) vs events"),
        _eq("rows_conserved:users", int(user_sum), n_events, "sum(n_events) vs events"),
        CheckResult("quarantine_share", read > 0 and bad / read <= quality.max_quarantine_share,
                    bad / read if read else 0.0, f"<= {quality.max_quarantine_share}",
                    f"{bad} of {read} rows rejected"),
    ]
    for df, table in ((items, ITEMS), (users, USERS), (events, EVENTS), (inter, INTERACTIONS)):
        out += _table_checks(df, table)
    out += [_dense(items, C.ITEM_IDX, ITEMS.name), _dense(users, C.USER_IDX, USERS.name)]
    for child, name in ((events, EVENTS.name), (inter, INTERACTIONS.name)):
        out += [_orphans(child, users, C.USER_IDX, name), _orphans(child, items, C.ITEM_IDX, name)]
    per_domain = dict(inter.groupBy(C.DOMAIN).count().collect())
    for d in domains:
        out.append(CheckResult(f"min_rows:{d}", per_domain.get(d, 0) >= quality.min_rows_per_domain,
                               float(per_domain.get(d, 0)), f">= {quality.min_rows_per_domain}",
                               "interactions in the domain"))
    return out


def as_table(spark: SparkSession, run_id: str, results: list[CheckResult]) -> DataFrame:
    rows = [(run_id, r.check, r.passed, r.observed, r.expected, r.detail) for r in results]
    return spark.createDataFrame(rows, QUALITY.as_spark_schema())
