"""Ingest benchmark: crossrec's ingest beside a bare Spark read + groupBy count of the same files.

    .venv/bin/python bench/ingest.py --interactions 5000000   # prints one JSON object

Synthetic raw logs (power-law popularity, three platforms in JSONL/CSV/Parquet) are generated
once into ``--workdir`` and reused. Both passes run in the same SparkSession (``--master``,
default local[2]); the bare pass runs before and after ingest and the faster of the two is the
peer, so JVM warm-up cannot flatter the ratio. Goal: ingest <= 2x the bare pass.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import shutil
import sys
import time
from dataclasses import dataclass
from functools import reduce
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class BenchConfig:
    interactions: int
    users: int
    items: int
    workdir: Path
    master: str
    run_date: str = "2026-11-23"


def parse_args(argv: list[str] | None) -> BenchConfig:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--interactions", type=int, default=5_000_000)
    p.add_argument("--users", type=int, default=200_000)
    p.add_argument("--items", type=int, default=50_000)
    p.add_argument("--workdir", type=Path, default=ROOT / "data" / "bench")
    p.add_argument("--master", default="local[2]")
    a = p.parse_args(argv)
    return BenchConfig(a.interactions, a.users, a.items, a.workdir, a.master)


def raw_logs(cfg: BenchConfig) -> Path:
    """The synthetic drop for these sizes (generated on first use)."""
    from crossrec.demo.synthetic import SyntheticSpec, prepare_synthetic

    out = cfg.workdir / f"raw-{cfg.interactions}-{cfg.users}-{cfg.items}"
    if not (out / "sources.toml").exists():
        shutil.rmtree(out, ignore_errors=True)
        prepare_synthetic(out, SyntheticSpec(users=cfg.users, items=cfg.items,
                                             interactions=cfg.interactions, domains=3, platforms=3))
    return out / "sources.toml"


def bare_pass(spark, sources_path: Path, run_date: str) -> tuple[float, int]:
    """Spark's own readers (schemas given, no inference) + groupBy(item).count() of every log."""
    from pyspark.sql import functions as F

    from crossrec.config import load_sources
    from crossrec.ingest.read import input_files
    from crossrec.store import LocalStore

    sources = load_sources(sources_path, run_date)
    start = time.perf_counter()
    frames = []
    for spec in sources.platforms:
        files = [f.path for f in input_files(LocalStore(), spec)]
        item = spec.columns["item_id"]
        if spec.format == "parquet":
            df = spark.read.parquet(*files)
        elif spec.format == "csv":
            df = spark.read.option("header", True).csv(files)
        else:
            ddl = ", ".join(f"`{c}` STRING" for c in sorted(set(spec.columns.values())))
            df = spark.read.schema(ddl).json(files)
        frames.append(df.select(F.col(f"`{item}`").cast("string").alias("item")))
    groups = reduce(lambda a, b: a.unionByName(b), frames).groupBy("item").count().collect()
    return time.perf_counter() - start, len(groups)


class StageTimes(logging.Handler):
    """Collects the ingest job's own stage timings (its ``timed`` log lines)."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.seconds: dict[str, float] = {}

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = json.loads(record.getMessage())
        except ValueError:
            return
        if isinstance(line, dict) and "seconds" in line:
            self.seconds[line["stage"]] = line["seconds"]


def gc_seconds(spark) -> float:
    """The driver JVM's total garbage-collection time so far (local mode: all of Spark's)."""
    beans = spark._jvm.java.lang.management.ManagementFactory.getGarbageCollectorMXBeans()
    return sum(b.getCollectionTime() for b in beans) / 1000.0


def ingest_pass(spark, sources_path: Path, lake: Path,
                run_date: str) -> tuple[float, dict, dict, float]:
    """(wall seconds, published row counts, seconds per stage, seconds in JVM GC) of one run."""
    from crossrec.ingest.pipeline import IngestConfig, run

    shutil.rmtree(lake, ignore_errors=True)
    stages = StageTimes()
    logging.getLogger("crossrec.ingest").addHandler(stages)
    start, gc0 = time.perf_counter(), gc_seconds(spark)
    manifest = run(spark, IngestConfig(str(sources_path), str(lake), run_date, dev_key=True))
    wall = time.perf_counter() - start
    logging.getLogger("crossrec.ingest").removeHandler(stages)
    gc = gc_seconds(spark) - gc0
    return wall, {k: v["rows"] for k, v in manifest.tables.items()}, stages.seconds, gc


def main(argv: list[str] | None = None) -> int:
    cfg = parse_args(argv)
    os.environ.setdefault("CROSSREC_SPARK_LOG_LEVEL", "ERROR")
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(name)s: %(message)s")
    t0 = time.perf_counter()
    sources = raw_logs(cfg)
    gen_s = time.perf_counter() - t0
    from crossrec.session import get_session

    spark = get_session("crossrec-bench-ingest", master=cfg.master,
                        conf={"spark.driver.memory": "8g"})
    bare1, groups = bare_pass(spark, sources, cfg.run_date)
    ingest_s, rows, stages, gc = ingest_pass(spark, sources, cfg.workdir / "lake", cfg.run_date)
    bare2, _ = bare_pass(spark, sources, cfg.run_date)
    peer = min(bare1, bare2)
    read = rows["events"] + rows["quarantine"]
    print(json.dumps({
        "benchmark": "ingest", "master": cfg.master, "cpus": os.cpu_count(),
        "python": platform.python_version(), "interactions": cfg.interactions,
        "ingest_seconds": round(ingest_s, 2), "ingest_rows_per_s": round(read / ingest_s),
        "ingest_stage_seconds": stages, "ingest_jvm_gc_seconds": round(gc, 2),
        "peer": "bare spark read + groupBy(item).count()",
        "peer_seconds": round(peer, 2), "peer_seconds_runs": [round(bare1, 2), round(bare2, 2)],
        "peer_groups": groups, "ratio": round(ingest_s / peer, 2), "goal_ratio": 2.0,
        "goal_met": ingest_s <= 2.0 * peer, "published_rows": rows,
        "generate_seconds": round(gen_s, 2), "load_average": os.getloadavg(),
    }, indent=2))
    spark.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
