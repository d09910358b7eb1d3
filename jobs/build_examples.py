"""Build examples: the unified events of a run date -> training examples (one row per positive
target with the user's history before it) and the domain vocabulary, published as dataset
``examples`` for the same date.

    ./spark-submit.sh build_examples --lake data/demo/lake --run-date 2026-11-23 \\
        [--max-history 50] [--min-value 4.0 | --min-value none] [--valid-frac 0.1] \\
        [--rows-per-group 65536] [--force] [--config crossrec.toml] [--master yarn --conf k=v ...]

Examples are written per split (``examples/split=train``, ``examples/split=valid``) in files of
one row group each (about ``--rows-per-group`` rows), rows in a fixed pseudo-random order (a hash
of ``(user_idx, seq)``), so that the feed can shard by row group and every row group is a sample
of all users. A rerun with the same unified version, parameters and code publishes nothing
(``--force`` builds anyway). Exit status: 0 published or unchanged, 2 bad arguments or no
unified dataset for the date, 4 another run of the date published meanwhile (nothing published).
"""
from __future__ import annotations

import hashlib
import json
import logging
import math
import sys
from dataclasses import asdict, dataclass
from typing import Any

from pyspark.sql import DataFrame, Observation, SparkSession
from pyspark.sql import functions as F

import crossrec
from crossrec import examples as X
from crossrec.cli import exit_status, job_parser, min_value_arg, parse, setup_logging
from crossrec.lake import Lake, Manifest, Staging
from crossrec.logs import event, timed
from crossrec.schemas import columns as C
from crossrec.schemas.lake import EVENTS, ITEMS, UNIFIED
from crossrec.schemas.training import DOMAINS, EXAMPLES, EXAMPLES_DATASET, SPLIT_TRAIN, SPLIT_VALID
from crossrec.session import get_session

log = logging.getLogger("crossrec.build_examples")


@dataclass(frozen=True)
class BuildExamplesConfig:
    """What one run needs (parsed from the command line)."""

    lake: str                 # lake root URL
    run_date: str             # YYYY-MM-DD: the unified dataset read and the date published
    max_history: int = 50     # L
    min_value: float | None = 4.0  # None: every event with weight > 0 is a target
    valid_frac: float = 0.1
    rows_per_group: int = 65_536
    force: bool = False       # build even if this run id is already published for the date


def parse_args(argv: list[str] | None) -> BuildExamplesConfig:
    p = job_parser("build_examples", __doc__, "unified run date to read and publish")
    p.add_argument("--max-history", type=int, default=50, help="L, the longest history (default 50)")
    p.add_argument("--min-value", type=min_value_arg, default=4.0,
                   help="value of a positive (default 4.0); 'none': every event with weight > 0")
    p.add_argument("--valid-frac", type=float, default=0.1,
                   help="each user's latest share of targets held out (default 0.1)")
    p.add_argument("--rows-per-group", type=int, default=65_536,
                   help="rows per Parquet row group and file (default 65536)")
    p.add_argument("--force", action="store_true",
                   help="build again even if the unified version and parameters are unchanged")
    a = parse(p, argv, "build_examples")
    if a.max_history < 1:
        p.error(f"--max-history: expected >= 1, got {a.max_history}")
    if not 0.0 <= a.valid_frac < 1.0:
        p.error(f"--valid-frac: expected 0 <= value < 1, got {a.valid_frac}")
    if a.rows_per_group < 1:
        p.error(f"--rows-per-group: expected >= 1, got {a.rows_per_group}")
    return BuildExamplesConfig(a.lake, a.run_date, a.max_history, a.min_value, a.valid_frac,
                               a.rows_per_group, a.force)


def params_of(cfg: BuildExamplesConfig) -> dict[str, Any]:
    """The parameters that shape the output (not where it goes, nor ``force``)."""
    return {k: v for k, v in asdict(cfg).items() if k not in ("lake", "run_date", "force")}


def run_id_for(cfg: BuildExamplesConfig, unified: Manifest) -> str:
    """Same unified version, parameters and code version -> same run id."""
    params = {"run_date": cfg.run_date, **params_of(cfg)}
    blob = json.dumps([crossrec.__version__, unified.version, params], sort_keys=True)
    return f"{cfg.run_date.replace('-', '')}-{hashlib.sha256(blob.encode()).hexdigest()[:12]}"


def write_examples(examples: DataFrame, path: str) -> dict[str, int]:
    """Write ``examples`` (one partition per file) by split, rows of a file in hash order;
    returns the rows written per split (observed by the write itself)."""
    counts = Observation("examples")
    observed = examples.observe(counts, *[
        F.sum((F.col(C.SPLIT) == s).cast("long")).alias(s) for s in (SPLIT_TRAIN, SPLIT_VALID)])
    # A second shuffle into uniformly random files costs more than the whole build (arrays are
    # heavy to move); each file already holds a random subset of users, so a hash order inside
    # it is enough for the feed's row-group shuffling.
    laid_out = observed.sortWithinPartitions(F.xxhash64(C.USER_IDX, C.SEQ), C.USER_IDX, C.SEQ)
    laid_out.write.mode("errorifexists").partitionBy(C.SPLIT).parquet(path)
    return {s: int(counts.get[s] or 0) for s in (SPLIT_TRAIN, SPLIT_VALID)}


def build(spark: SparkSession, cfg: BuildExamplesConfig, lake: Lake,
          staging: Staging) -> dict[str, Any]:
    """Read the unified tables, write examples and domains into ``staging``; return row counts."""
    events, items = lake.read(spark, EVENTS, cfg.run_date), lake.read(spark, ITEMS, cfg.run_date)
    index = X.domain_index(items)
    domains = spark.createDataFrame(index.collect(), index.schema)  # a few rows: computed once
    with timed(log, "count_targets") as facts:
        targets = events.where(X.target_flag(cfg.min_value)).count()
        facts.update(targets=targets)
    with timed(log, "write_examples") as facts:
        files = max(1, math.ceil(targets / cfg.rows_per_group))
        examples = X.build_examples(events, domains, cfg.max_history, cfg.min_value,
                                    cfg.valid_frac, partitions=files)
        splits = write_examples(examples, staging.path(EXAMPLES))
        facts.update(files=files, **splits)
    with timed(log, "write_domains"):
        written = spark.read.schema(EXAMPLES.as_spark_schema()).parquet(staging.path(EXAMPLES))
        table = X.domain_targets(written, domains).repartition(1).sortWithinPartitions(C.DOMAIN_IDX)
        table.write.mode("errorifexists").parquet(staging.path(DOMAINS))
    return {"splits": splits, "domains": domains.count()}


def run(spark: SparkSession, cfg: BuildExamplesConfig) -> Manifest:
    """One run: returns the published manifest; raises InputError without unified data."""
    lake = Lake.open(cfg.lake, spark)
    unified = lake.require(UNIFIED, cfg.run_date, "ingest")
    run_id = run_id_for(cfg, unified)
    published = lake.manifest(EXAMPLES_DATASET, cfg.run_date)
    if published is not None and published.run_id == run_id and not cfg.force:
        event(log, "skipped", dataset=EXAMPLES_DATASET, run_date=cfg.run_date,
              version=published.version, reason="unified version and parameters unchanged")
        return published
    staging = lake.stage(EXAMPLES_DATASET, cfg.run_date, run_id)
    rows = build(spark, cfg, lake, staging)
    splits = rows["splits"]
    tables = {EXAMPLES.name: {"rows": sum(splits.values()), "splits": splits},
              DOMAINS.name: {"rows": rows["domains"]}}
    params = params_of(cfg)
    manifest = lake.commit(staging, run_id, tables, extra={
        "unified": {"run_date": unified.run_date, "version": unified.version,
                    "run_id": unified.run_id},
        "params": params, "rows": splits})
    event(log, "published", dataset=EXAMPLES_DATASET, run_date=cfg.run_date,
          version=manifest.version, rows=splits)
    return manifest


def main(argv: list[str] | None = None) -> int:
    cfg = parse_args(argv)
    setup_logging()
    spark = get_session("crossrec-build-examples")

    def body() -> int:
        manifest = run(spark, cfg)
        lake = Lake.open(cfg.lake, spark)
        summary = {"run_date": manifest.run_date, "version": manifest.version,
                   "run_id": manifest.run_id, **manifest.extra,
                   "tables": {t.name: {**manifest.tables[t.name],
                                       "path": lake.path(t, manifest.run_date)}
                              for t in (DOMAINS, EXAMPLES)}}
        print(json.dumps(summary, indent=2, sort_keys=True))
        return 0

    return exit_status(log, body)

if __name__ == "__main__":
    sys.exit(main())
