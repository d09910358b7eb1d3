"""The ingest job's steps: read and check every source, unify, stage, gate, publish.

Each published table is staged as Parquet and the next one is derived from what was staged, so
the gate checks exactly the bytes that will be published and nothing is computed twice.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import logging
import math
from contextlib import ExitStack
from dataclasses import asdict, dataclass
from functools import reduce
from typing import Callable

from pyspark import StorageLevel
from pyspark.sql import DataFrame, Observation, SparkSession
from pyspark.sql import functions as F

import crossrec
from crossrec.config import Sources, SourceSpec, load_sources
from crossrec.errors import QualityGateError
from crossrec.ingest import quality, quarantine, unify, validate
from crossrec.ingest.pseudonym import load_key
from crossrec.ingest.read import ERR_FIELD, Parsed, read_source
from crossrec.lake import Lake, Manifest, Staging
from crossrec.logs import event, timed
from crossrec.schemas import columns as C
from crossrec.schemas.lake import (CATALOG_RAW, EVENTS, INTERACTIONS, ITEMS, LINKS_RAW, QUALITY,
                                   QUARANTINE, UNIFIED, USERS)
from crossrec.schemas.table import Table
from crossrec.session import scoped_conf
from crossrec.store import Store

log = logging.getLogger("crossrec.ingest")
ROWS_PER_FILE = 500_000  # also the unit of parallelism of the event shuffle
# Above this many valid events, user indices are computed by ranges of user keys, in parallel:
# one window over every account is one task (1.2M keys: 2 s here, ranges 5.6 s on 2 cores), but
# at tens of millions of accounts that task would sort and buffer them all on one executor.
RANGED_INDEX_EVENTS = 50_000_000
EVENT_FIELDS = [C.ACCOUNT, C.ITEM_ID, C.EVENT_TYPE, C.VALUE, C.TS]
StoreOf = Callable[[str], Store]
# The run's caches (checked rows, ordered events) live minutes and are read two or three times.
# Spark's cache compression tries every scheme on every column batch and found little to gain
# here (5M checked rows: 187 MB uncompressed, 184 MB compressed; ordered events 75 vs 66 MB),
# while it cost seconds (caching 5M checked rows on local[2], interleaved runs: 12.7-15.9 s
# compressed, 11.3-12.6 s not; a pass that caches nothing 9-10 s).
CACHE_CONF = {"spark.sql.inMemoryColumnarStorage.compressed": "false"}


@dataclass(frozen=True)
class IngestConfig:
    """What one ingest run needs (parsed from the command line by ``jobs/ingest.py``)."""

    sources: str           # path of the sources TOML file
    lake: str              # lake root URL
    run_date: str          # YYYY-MM-DD
    dev_key: bool = False  # use the fixed development key (demo/local only)
    force: bool = False    # ingest even if the run id (inputs, key, code) is already published


def key_id(key: bytes) -> str:
    """A public name of the pseudonymisation key: HMAC of a constant, so it reveals nothing
    about the key, yet a rotated key gets a new run id (and a new publication)."""
    return hmac.new(key, b"crossrec-key-id", hashlib.sha256).hexdigest()[:16]


def run_id_for(sources: Sources, run_date: str, parsed: dict[str, Parsed],
               key: bytes = b"") -> str:
    """Same inputs (path, size, mtime), config, date, key and code version -> same run id."""
    files = [(f.path, f.size, f.mtime_ms) for p in parsed.values() for f in p.files]
    blob = json.dumps([crossrec.__version__, run_date, asdict(sources), files, key_id(key)],
                      sort_keys=True)
    return f"{run_date.replace('-', '')}-{hashlib.sha256(blob.encode()).hexdigest()[:12]}"


def read_all(spark: SparkSession, sources: Sources, store_of: StoreOf) -> dict[str, Parsed]:
    """Every source read permissively, by source name."""
    specs: list[tuple[SourceSpec, list[str]]] = [(sources.catalog, CATALOG_RAW.columns)]
    if sources.links is not None:
        specs.append((sources.links, LINKS_RAW.columns))
    specs += [(p, EVENT_FIELDS) for p in sources.platforms]
    return {spec.name: read_source(spark, store_of(spec.path), spec, cols) for spec, cols in specs}


def _persist(df: DataFrame) -> DataFrame:
    return df.persist(StorageLevel.MEMORY_AND_DISK)


def check_all(parsed: dict[str, Parsed], sources: Sources, run_date: str,
              cache: Callable[[DataFrame], DataFrame] = _persist) -> dict[str, DataFrame]:
    """Every source with its typed columns and first error per row, by source name.

    ``cache`` persists the checked catalog (the caller may release it once the events are built)
    and links (counted, then read by identity resolution).
    """
    # Cached before the platforms' plans are built, so each platform's broadcast of the valid
    # catalog reads the cache instead of re-running the catalog's parse and duplicate window.
    catalog = cache(validate.check_catalog(parsed[sources.catalog.name].df))
    out = {sources.catalog.name: catalog}
    if sources.links is not None:
        out[sources.links.name] = cache(validate.check_links(parsed[sources.links.name].df,
                                                             [p.name for p in sources.platforms]))
    good_items = validate.split(catalog)[0].select(C.ITEM_ID, C.DOMAIN)
    for spec in sources.platforms:
        out[spec.name] = validate.check_events(parsed[spec.name].df, spec, sources.quality,
                                               run_date, good_items)
    return out


def rejected_rows(checked: dict[str, DataFrame], parsed: dict[str, Parsed], sources: Sources,
                  key: bytes, run_id: str, bad: dict[str, int]) -> DataFrame:
    """The quarantine table: every rejected row of every source, account ids redacted.

    ``bad``: rows rejected per source, as counted by ``_count``. A source with none is left
    out, so its rows are not scanned again only to be filtered away.
    """
    parts = []
    specs = [sources.catalog, *([sources.links] if sources.links else []), *sources.platforms]
    for spec in (s for s in specs if bad.get(s.name, 0) > 0):
        rejected = validate.split(checked[spec.name])[1]
        if spec.name == "links":
            pairs = [(F.col(C.PLATFORM_A), C.ACCOUNT_A), (F.col(C.PLATFORM_B), C.ACCOUNT_B)]
        elif spec.name == "catalog":
            pairs = []
        else:
            pairs = [(F.lit(spec.name), C.ACCOUNT)]
        rejected = quarantine.redact(rejected, spec, parsed[spec.name].header, key, pairs)
        parts.append(quarantine.to_quarantine(rejected, run_id))
    if not parts:  # the declared schema, so the empty table's Parquet schema is as before
        return QUARANTINE.local_frame(next(iter(checked.values())).sparkSession)
    return reduce(DataFrame.unionByName, parts)


def _files(rows: int) -> int:
    return max(1, math.ceil(rows / ROWS_PER_FILE))


def write_table(df: DataFrame, table: Table, path: str, files: int = 1,
                laid_out: bool = False) -> DataFrame:
    """Write ``df`` in a deterministic layout; return it re-read from ``path``.

    Unless ``laid_out`` (already partitioned and sorted by its builder), rows are range-
    partitioned into ``files`` partitions on the table's partition and key columns and sorted.
    """
    if not laid_out:
        order = [*table.partition_by, *table.key] or table.columns
        df = table.select(df)
        df = (df.repartition(1) if files == 1 else df.repartitionByRange(files, *order)) \
            .sortWithinPartitions(*order)
    df.write.mode("errorifexists").partitionBy(*table.partition_by).parquet(path)
    return df.sparkSession.read.schema(table.as_spark_schema()).parquet(path)


def slim(checked: DataFrame) -> DataFrame:
    """Keep the raw text and file only on rejected rows: the cache stays small, and raw text
    (for Parquet a JSON rendering) is only ever built for rows that need it. The item's domain
    has served its check (unknown items) and is dropped: events take it from the items table."""
    bad = F.col(ERR_FIELD).isNotNull()
    return (checked.withColumn(C.RAW, F.when(bad, F.col(C.RAW)))
            .withColumn(C.SOURCE_FILE, F.when(bad, F.col(C.SOURCE_FILE))).drop(C.DOMAIN))


def stage(spark: SparkSession, sources: Sources, run_date: str, key: bytes,
          parsed: dict[str, Parsed], run_id: str,
          lake: Lake) -> tuple[Staging, dict[str, DataFrame], quality.Counts]:
    """Check, unify and write every table read into ``parsed`` into a new staging version."""
    # Every cache of the run is released when it ends, failed or not: the pipeline job and the
    # tests run more work in the same session afterwards.
    with ExitStack() as caches:
        caches.enter_context(scoped_conf(spark, CACHE_CONF))
        def cache(df: DataFrame) -> DataFrame:
            caches.callback(df.unpersist)
            return _persist(df)

        return _stage(spark, sources, run_date, key, parsed, run_id, lake, cache)


def _stage(spark: SparkSession, sources: Sources, run_date: str, key: bytes,
           parsed: dict[str, Parsed], run_id: str, lake: Lake,
           cache: Callable[[DataFrame], DataFrame]
           ) -> tuple[Staging, dict[str, DataFrame], quality.Counts]:
    staging = lake.stage(UNIFIED, run_date, run_id)
    checked = check_all(parsed, sources, run_date, cache)
    checked_catalog = checked[sources.catalog.name]
    platforms = [p.name for p in sources.platforms]
    rows = cache(reduce(DataFrame.unionByName, [slim(checked[p]) for p in platforms]))
    all_events = rows.withColumn(C.PLATFORM, F.col(C.SOURCE))  # after the cache: not kept twice
    status = {name: df for name, df in checked.items() if name not in platforms}
    checked.update({p: all_events.where(F.col(C.SOURCE) == p) for p in platforms})  # reuse cache
    out: dict[str, DataFrame] = {}
    with timed(log, "read_and_check", run_id=run_id) as facts:
        read, bad = _count(all_events, status, [*status, *platforms])
        facts.update(rows_read=read, rows_quarantined=bad)
    with timed(log, "write_quarantine"):
        rejected = rejected_rows(checked, parsed, sources, key, run_id, bad)
        out[QUARANTINE.name] = write_table(rejected, QUARANTINE, staging.path(QUARANTINE),
                                           _files(sum(bad.values())))
    good = validate.split(all_events)[0]
    good_events = sum(read[p] - bad[p] for p in platforms)
    with timed(log, "resolve_identities") as facts:
        links = validate.split(checked["links"])[0] if "links" in checked else \
            LINKS_RAW.local_frame(spark)
        ranged = good_events > RANGED_INDEX_EVENTS
        persons = cache(unify.build_persons(good, links, key, ranged))
        facts.update(accounts=persons.count(), ranged_index=ranged)
    catalog = validate.split(checked["catalog"])[0]
    out[ITEMS.name] = write_table(unify.build_items(catalog), ITEMS, staging.path(ITEMS))
    observed = Observation("events")
    with timed(log, "write_events"):
        # Kept once shuffled: users and interactions aggregate the same user-clustered rows with
        # no second shuffle. The cache holds indices and short fields only: names are joined on
        # the way to the write, so the shuffle, the sort and the cache carry half the bytes.
        ordered = cache(unify.order_events(good, persons, out[ITEMS.name], facts["accounts"],
                                           _files(good_events), observed))
        events = unify.name_events(ordered, persons, out[ITEMS.name])
        out[EVENTS.name] = write_table(events, EVENTS, staging.path(EVENTS), laid_out=True)
    rows.unpersist()  # early: its memory serves the aggregates below
    checked_catalog.unpersist()
    with timed(log, "write_users_interactions"):
        out[USERS.name] = write_table(unify.build_users(ordered, persons, platforms), USERS,
                                      staging.path(USERS), _files(facts["accounts"]))
        interactions = unify.build_interactions(ordered, out[USERS.name], out[ITEMS.name],
                                                platforms)
        out[INTERACTIONS.name] = write_table(interactions, INTERACTIONS,
                                             staging.path(INTERACTIONS), laid_out=True)
    return staging, out, quality.Counts(read, bad, joined=observed.get[unify.EVENTS_IN])


def _count(events: DataFrame, others: dict[str, DataFrame],
           names: list[str]) -> tuple[dict[str, int], dict[str, int]]:
    """(rows read, rows rejected) per source; a source whose files hold no rows counts 0."""
    read: dict[str, int] = dict.fromkeys(names, 0)
    bad: dict[str, int] = dict.fromkeys(names, 0)
    for df in [events, *others.values()]:
        for row in df.groupBy(C.SOURCE).agg(
                F.count(F.lit(1)).alias("n"),
                F.sum(F.col(ERR_FIELD).isNotNull().cast("long")).alias("bad")).collect():
            read[row[C.SOURCE]], bad[row[C.SOURCE]] = int(row["n"]), int(row["bad"] or 0)
    return read, bad


def gate(spark: SparkSession, lake: Lake, staging: Staging, tables: dict[str, DataFrame],
         counts: quality.Counts, sources: Sources, run_id: str) -> dict[str, int]:
    """Run the checks and stage their table; raise (publishing nothing) if any failed.

    Returns the row count of every staged table.
    """
    domains = sorted(r[0] for r in tables[ITEMS.name].select(C.DOMAIN).distinct().collect())
    profiles = quality.profiles(tables, domains, staging.path(EVENTS))
    results = quality.run_checks(profiles, counts, sources.quality, domains)
    write_table(quality.as_table(spark, run_id, results), QUALITY, staging.path(QUALITY))
    failed = [r for r in results if not r.passed]
    if failed:
        lake.mark_failed(staging, {"failed": [asdict(r) for r in failed]})
        lines = "\n".join(f"  {r.check}: observed {r.observed:g}, expected {r.expected} {r.detail}"
                          for r in failed)
        raise QualityGateError(f"data-quality gate failed; nothing published. Staged output kept "
                               f"for inspection at {staging.dir}\n{lines}")
    return {**{name: int(p["rows"]) for name, p in profiles.items()}, QUALITY.name: len(results)}


def run(spark: SparkSession, cfg: IngestConfig) -> Manifest:
    """One ingest run: returns the published manifest, or raises with nothing published."""
    sources = load_sources(cfg.sources, cfg.run_date)
    key = load_key(cfg.dev_key)
    lake = Lake.open(cfg.lake, spark)
    stores: dict[str, Store] = {}

    def store_of(url: str) -> Store:
        scheme = url.split("://", 1)[0]
        return stores.setdefault(scheme, Store.create(url, spark))

    parsed = read_all(spark, sources, store_of)
    run_id = run_id_for(sources, cfg.run_date, parsed, key)
    published = lake.manifest(UNIFIED, cfg.run_date)
    if published is not None and published.run_id == run_id and not cfg.force:
        event(log, "skipped", dataset=UNIFIED, run_date=cfg.run_date, version=published.version,
              reason="inputs, sources, key and code unchanged")
        return published
    staging, tables, counts = stage(spark, sources, cfg.run_date, key, parsed, run_id, lake)
    with timed(log, "quality_gate"):
        rows = gate(spark, lake, staging, tables, counts, sources, run_id)
    duplicates = counts.joined - rows[EVENTS.name]
    manifest = lake.commit(staging, run_id, {name: {"rows": n} for name, n in rows.items()}, extra={
        "read": counts.read, "quarantined": counts.quarantined, "duplicates": duplicates})
    event(log, "published", dataset=UNIFIED, run_date=cfg.run_date, version=manifest.version,
          rows=rows)
    return manifest
