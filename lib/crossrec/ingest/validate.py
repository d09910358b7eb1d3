"""Row checks: typed conversion of parsed strings, and the first failing check of each row.

Each ``check_*`` function takes the output of :func:`crossrec.ingest.read.read_source` and returns
it with typed columns added and ``_err_field``/``_err_reason`` set for every row that fails; rows
that already failed keep their first error. Splitting into good and quarantined happens once, in
:func:`split`.
"""
from __future__ import annotations

import datetime as dt

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql.window import Window

from crossrec.config import PlatformSpec, QualitySpec
from crossrec.ingest.read import ERR_FIELD, ERR_REASON
from crossrec.schemas import columns as C

Check = tuple[str, Column, Column]  # (field, failed?, reason)


def first_error(df: DataFrame, checks: list[Check]) -> DataFrame:
    """Set ``_err_field``/``_err_reason`` from the first failing check, keeping earlier errors."""
    field, reason = F.col(ERR_FIELD), F.col(ERR_REASON)
    f_expr, r_expr = F.when(field.isNotNull(), field), F.when(field.isNotNull(), reason)
    for name, failed, why in checks:
        f_expr = f_expr.when(failed, F.lit(name))
        r_expr = r_expr.when(failed, why)
    # both from the old columns: a sequential withColumn would see the new field already set
    return df.withColumns({ERR_FIELD: f_expr, ERR_REASON: r_expr})


def _empty(col: Column) -> Column:
    return col.isNull() | (F.trim(col) == "")


def parse_ts(raw: Column, kind: str) -> Column:
    """A timestamp from its string form: ISO-8601 (with zone; no zone means UTC) or epoch s/ms."""
    if kind == "iso8601":
        return F.try_to_timestamp(F.trim(raw))
    # doubles, not decimals (BigDecimal per row is slow): epoch micros stay below 2**53 until
    # the year 2255, so every ms/s input converts exactly
    number = F.trim(raw).try_cast("double")
    micros = number * F.lit(1000.0 if kind == "epoch_ms" else 1_000_000.0)
    in_range = micros.between(-9.2e18, 9.2e18)  # NaN and infinities fail this too
    return F.when(in_range, F.timestamp_micros(F.round(micros).cast("long")))


def _ts_bounds(quality: QualitySpec, run_date: str) -> tuple[Column, Column]:
    earliest = dt.datetime.fromisoformat(quality.earliest_ts.replace("Z", "+00:00"))
    latest = dt.datetime.combine(dt.date.fromisoformat(run_date), dt.time(), dt.timezone.utc) + \
        dt.timedelta(days=1 + quality.max_future_days)
    return (F.lit(earliest.astimezone(dt.timezone.utc).replace(tzinfo=None)).cast("timestamp"),
            F.lit(latest.replace(tzinfo=None)).cast("timestamp"))


def check_events(df: DataFrame, spec: PlatformSpec, quality: QualitySpec, run_date: str,
                 item_domains: DataFrame) -> DataFrame:
    """Typed events ``[account, item_id, domain, event_type, value, weight, ts]`` plus errors.

    ``item_domains`` is ``[item_id, domain]`` of the valid catalog (unique item ids).
    """
    mapping = F.create_map(*[F.lit(x) for kv in spec.event_types.items() for x in kv]) \
        if spec.event_types else None
    raw_type = F.trim(F.col(C.EVENT_TYPE))
    if C.EVENT_TYPE not in spec.columns:
        event_type = F.lit(spec.default_event_type)
    elif mapping is None:
        event_type = F.coalesce(F.when(raw_type != "", raw_type), F.lit(spec.default_event_type))
    else:
        event_type = mapping[raw_type]
    weights = F.create_map(*[F.lit(x) for kv in spec.weights.items() for x in kv])
    has_value = C.VALUE in spec.columns
    value = F.trim(F.col(C.VALUE)).try_cast("double") if has_value else F.lit(None).cast("double")
    ts = parse_ts(F.col(C.TS), spec.timestamp)
    lo, hi = _ts_bounds(quality, run_date)

    df = (df.withColumn(C.ACCOUNT, F.trim(C.ACCOUNT)).withColumn(C.ITEM_ID, F.trim(C.ITEM_ID))
          .withColumn("_raw_type", F.col(C.EVENT_TYPE))
          .withColumn(C.EVENT_TYPE, event_type).withColumn("_value_raw", F.col(C.VALUE))
          .withColumn(C.VALUE, value).withColumn("_ts_raw", F.col(C.TS)).withColumn(C.TS, ts)
          .withColumn(C.WEIGHT, weights[F.col(C.EVENT_TYPE)].cast("double"))
          .join(F.broadcast(item_domains), on=C.ITEM_ID, how="left"))
    checks: list[Check] = [
        (C.ACCOUNT, _empty(F.col(C.ACCOUNT)), F.lit("empty user id")),
        (C.ITEM_ID, _empty(F.col(C.ITEM_ID)), F.lit("empty item id")),
        (C.EVENT_TYPE, F.col(C.EVENT_TYPE).isNull(),
         F.lit(f"unknown event type (known: {', '.join(sorted(spec.event_types))})")),
        (C.TS, _empty(F.col("_ts_raw")), F.lit("missing timestamp")),
        (C.TS, F.col(C.TS).isNull(), F.lit(f"not a valid {spec.timestamp} timestamp")),
        (C.TS, (F.col(C.TS) < lo) | (F.col(C.TS) >= hi),
         F.lit(f"timestamp out of range [{quality.earliest_ts}, {run_date} + "
               f"{quality.max_future_days} day(s)]")),
    ]
    if has_value:
        checks += [
            (C.VALUE, _empty(F.col("_value_raw")), F.lit("missing value")),
            (C.VALUE, F.col(C.VALUE).isNull() | F.isnan(C.VALUE), F.lit("not a number")),
        ]
        if spec.value_range is not None:
            lo_v, hi_v = spec.value_range
            checks.append((C.VALUE, (F.col(C.VALUE) < lo_v) | (F.col(C.VALUE) > hi_v),
                           F.lit(f"out of range [{lo_v:g}, {hi_v:g}]")))
    checks.append((C.ITEM_ID, F.col(C.DOMAIN).isNull(), F.lit("unknown item (not in the catalog)")))
    return first_error(df, checks).drop("_raw_type", "_value_raw", "_ts_raw")


def check_catalog(df: DataFrame) -> DataFrame:
    """Typed catalog ``[item_id, title, year, genres(array), domain, text]`` plus errors.

    Of several rows with one item id, the first by raw text is kept and the others are rejected
    as duplicates, so the choice does not depend on file order.
    """
    year_raw = F.trim(F.col(C.YEAR))
    year_d = year_raw.try_cast("double")
    year = F.when((year_d >= 1800) & (year_d <= 2200) & (year_d == F.floor(year_d)),
                  year_d.cast("int"))
    df = (df.withColumn(C.ITEM_ID, F.trim(C.ITEM_ID)).withColumn(C.TITLE, F.trim(C.TITLE))
          .withColumn(C.DOMAIN, F.lower(F.trim(C.DOMAIN))).withColumn("_year_raw", year_raw)
          .withColumn(C.YEAR, year))
    checks: list[Check] = [
        (C.ITEM_ID, _empty(F.col(C.ITEM_ID)), F.lit("empty item id")),
        (C.TITLE, _empty(F.col(C.TITLE)), F.lit("empty title")),
        (C.DOMAIN, _empty(F.col(C.DOMAIN)), F.lit("empty domain")),
        (C.YEAR, ~_empty(F.col("_year_raw")) & F.col(C.YEAR).isNull(),
         F.lit("not a year between 1800 and 2200")),
    ]
    df = first_error(df, checks)
    ok = F.col(ERR_FIELD).isNull()
    rank = F.row_number().over(Window.partitionBy(C.ITEM_ID, ok).orderBy(C.RAW, C.SOURCE_FILE))
    df = df.withColumn("_dup", ok & (rank > 1))
    df = first_error(df, [(C.ITEM_ID, F.col("_dup"), F.lit("duplicate item id"))]).drop("_dup")
    genres = F.filter(F.transform(F.split(F.coalesce(C.GENRES, F.lit("")), r"\|"), F.trim),
                      lambda g: g != "")
    text = F.coalesce(F.when(~_empty(F.col(C.TEXT)), F.trim(C.TEXT)),
                      F.concat_ws(". ", C.TITLE, F.array_join(C.GENRES, ", ")))
    return df.withColumn(C.GENRES, genres).withColumn(C.TEXT, text).drop("_year_raw")


def check_links(df: DataFrame, platforms: list[str]) -> DataFrame:
    """Account links with both ends non-empty and on configured platforms."""
    for col in (C.PLATFORM_A, C.ACCOUNT_A, C.PLATFORM_B, C.ACCOUNT_B):
        df = df.withColumn(col, F.trim(col))
    known = F.array(*[F.lit(p) for p in platforms])
    checks: list[Check] = []
    for plat, acct in ((C.PLATFORM_A, C.ACCOUNT_A), (C.PLATFORM_B, C.ACCOUNT_B)):
        checks += [
            (plat, _empty(F.col(plat)), F.lit("empty platform")),
            (plat, ~F.array_contains(known, F.col(plat)),
             F.lit(f"unknown platform (known: {', '.join(platforms)})")),
            (acct, _empty(F.col(acct)), F.lit("empty user id")),
        ]
    return first_error(df, checks)


def split(df: DataFrame) -> tuple[DataFrame, DataFrame]:
    """(rows without error, rows with one)."""
    bad = F.col(ERR_FIELD).isNotNull()
    return df.where(~bad), df.where(bad)
