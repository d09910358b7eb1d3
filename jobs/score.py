"""Score: a trained model + the date's unified events and items -> top-K recommendations per
(user, domain), published as dataset ``recommendations`` for the date.

    ./spark-submit.sh score --lake data/demo/lake --run-date 2026-11-23 \\
        [--model-date 2026-11-20] [--model-version <version>] [--k 10] [--domains drama,comedy] \\
        [--block-users 1024] [--device auto|cpu|cuda] [--screen auto|bf16|fp32] \\
        [--partitions N] [--force] \\
        [--config crossrec.toml] [--master yarn ...]

The model is the one published on ``--model-date`` (default: the latest on or before the run date;
``--model-version`` picks one of that date's kept version folders). Every user in the date's
events is scored from their latest history, users new since training included; items the model
does not know are skipped and counted in the summary. Output partitioned by domain. The run id is
a digest of the inputs (unified version, model version) and parameters: a rerun with the same run
id publishes nothing (``--force`` scores again and replaces the date with identical rows).
Exit status: 0 published or unchanged, 2 bad arguments, no unified data or no model,
4 another run of the date published meanwhile (nothing published).
"""
from __future__ import annotations

import hashlib
import json
import logging
import sys
from dataclasses import asdict, dataclass
from typing import Any

import pandas as pd
from pyspark.sql import DataFrame, Observation
from pyspark.sql import functions as F

import crossrec
from crossrec import score as S
from crossrec.cli import exit_status, job_parser, parse, setup_logging
from crossrec.errors import InputError, LakeUnreadable, raised_in_tasks
from crossrec.event_files import UNREADABLE, Piece, event_pieces
from crossrec.lake import Lake, Manifest, check_run_date, run_date_arg
from crossrec.logs import event, timed
from crossrec.schemas import columns as C
from crossrec.schemas.lake import EVENTS, ITEMS, UNIFIED
from crossrec.schemas.scoring import RECOMMENDATIONS, RECOMMENDATIONS_DATASET, SOURCE_POPULAR
from crossrec.schemas.training import MODEL
from crossrec.screen import SCREENS
from crossrec.session import get_session
from crossrec.store import join

log = logging.getLogger("crossrec.score")


@dataclass(frozen=True)
class ScoreConfig:
    """What one run needs (parsed from the command line)."""

    lake: str                          # lake root URL
    run_date: str                      # YYYY-MM-DD: unified tables read, date published
    model_date: str | None = None      # None: latest model on or before run_date
    model_version: str | None = None   # None: the version published for model_date
    k: int = 10
    domains: tuple[str, ...] | None = None  # None: every domain of the model
    block_users: int = 1024
    device: str = "auto"
    screen: str = "auto"               # the candidate screen's precision (same lists)
    partitions: int | None = None      # None: spark.sql.shuffle.partitions
    force: bool = False                # score even if this run id is already published


def parse_args(argv: list[str] | None) -> ScoreConfig:
    p = job_parser("score", __doc__, "unified run date to score and publish")
    p.add_argument("--model-date", type=run_date_arg, help="model run date (default: latest on or "
                   "before --run-date)")
    p.add_argument("--model-version", help="a kept version folder of the model date (default: "
                   "the published one)")
    p.add_argument("--k", type=int, default=10, help="items per list (default 10)")
    p.add_argument("--domains", help="comma-separated domains (default: all the model's)")
    p.add_argument("--block-users", type=int, default=1024,
                   help="users per score block: one [users, items] matrix at a time (default 1024)")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                   help="auto: cuda when the executor has one")
    p.add_argument("--screen", choices=SCREENS, default="auto",
                   help="precision of the product that picks each user's candidates before they "
                   "are scored exactly; the lists are the same (auto: bf16 on CPUs that have it)")
    p.add_argument("--partitions", type=int, help="scoring tasks, at least (default: shuffle "
                   "partitions; every events file is one task or more)")
    p.add_argument("--force", action="store_true",
                   help="score again even if the inputs and parameters are unchanged")
    a = parse(p, argv, "score")
    for name in ("k", "block_users", "partitions"):
        value = getattr(a, name)
        if value is not None and value < 1:
            p.error(f"--{name.replace('_', '-')}: expected >= 1, got {value}")
    domains = tuple(d.strip() for d in a.domains.split(",") if d.strip()) if a.domains else None
    return ScoreConfig(a.lake, a.run_date, a.model_date, a.model_version, a.k, domains,
                       a.block_users, a.device, a.screen, a.partitions, a.force)


def resolve_model(lake: Lake, cfg: ScoreConfig) -> tuple[str, str, str]:
    """(model run date, version, artifact folder) to score with."""
    if cfg.model_date:
        m = lake.manifest(MODEL, check_run_date(cfg.model_date))
    else:
        m = lake.manifest_on_or_before(MODEL, cfg.run_date)
    if m is None:
        when = cfg.model_date or f"on or before {cfg.run_date}"
        raise InputError(f"{lake.root}: no published {MODEL!r} {when}; run train first")
    version = cfg.model_version or m.version
    folder = join(lake.date_dir(MODEL, m.run_date), f"_v_{version}")
    if not lake.store.exists(join(folder, "model.json")):
        raise InputError(f"{folder}: no model artifact (kept versions of {m.run_date}: "
                         f"{m.version}, {m.previous})")
    return m.run_date, version, folder


def run_id_for(cfg: ScoreConfig, unified: Manifest, model_version: str, partitions: int) -> str:
    """Same unified version, model, parameters and code version -> same run id and rows."""
    params = {k: v for k, v in asdict(cfg).items() if k not in ("lake", "device", "screen", "force")}
    blob = json.dumps([crossrec.__version__, unified.version, model_version, partitions, params],
                      sort_keys=True)
    return f"{cfg.run_date.replace('-', '')}-{hashlib.sha256(blob.encode()).hexdigest()[:12]}"


def write_recommendations(recs: DataFrame, path: str) -> dict[str, int]:
    """Write partitioned by domain, rows of a file in (user, rank) order; counts observed."""
    seen = Observation("recommendations")
    observed = recs.observe(seen, F.count(F.lit(1)).alias("rows"),
                            F.sum((F.col(C.SOURCE) == SOURCE_POPULAR).cast("long")).alias("popular"),
                            F.sum((F.col(C.RANK) == 1).cast("long")).alias("lists"))
    (observed.sortWithinPartitions(C.DOMAIN, C.USER_IDX, C.RANK)
     .write.mode("errorifexists").partitionBy(C.DOMAIN).parquet(path))
    return {k: int(seen.get[k] or 0) for k in ("rows", "popular", "lists")}


def readable_pieces(events_url: str, partitions: int) -> list[Piece] | None:
    """The events files cut for scoring tasks that read them (:mod:`crossrec.event_files`), or
    None where pyarrow cannot open the lake here: Spark reads them then (a scan, then a shuffle
    and sort by user)."""
    try:
        return event_pieces(events_url, partitions)
    except UNREADABLE as e:
        event(log, "events_read_by_spark", path=events_url, reason=str(e).splitlines()[0])
        return None


def tasks_popularity(spark: Any, pieces: list[Piece], events_url: str) -> pd.Series | None:
    """:func:`crossrec.score.piece_popularity`, which has every task open its files before any
    scoring starts; None where an executor cannot (the driver could): Spark reads them then."""
    try:
        with raised_in_tasks(LakeUnreadable):
            return S.piece_popularity(spark, pieces)
    except LakeUnreadable as e:
        event(log, "events_read_by_spark", path=events_url, reason=f"an executor: {e}")
        return None


def run(spark: Any, cfg: ScoreConfig) -> Manifest:
    """Score and publish; raises InputError without unified data or a model."""
    lake = Lake.open(cfg.lake, spark)
    unified = lake.require(UNIFIED, cfg.run_date, "ingest")
    model_date, version, folder = resolve_model(lake, cfg)
    partitions = cfg.partitions or int(spark.conf.get("spark.sql.shuffle.partitions"))
    run_id = run_id_for(cfg, unified, version, partitions)
    published = lake.manifest(RECOMMENDATIONS_DATASET, cfg.run_date)
    if published is not None and published.run_id == run_id and not cfg.force:
        event(log, "skipped", dataset=RECOMMENDATIONS_DATASET, run_date=cfg.run_date,
              version=published.version, reason="unified version, model and parameters unchanged")
        return published
    events, items = lake.read(spark, EVENTS, cfg.run_date), lake.read(spark, ITEMS, cfg.run_date)
    events_url = lake.path(EVENTS, cfg.run_date)
    pieces = readable_pieces(events_url, partitions)
    with timed(log, "plan") as facts:
        per_item = None if pieces is None else tasks_popularity(spark, pieces, events_url)
        pieces = None if per_item is None else pieces
        read_by = facts["events_read_by"] = "spark" if pieces is None else "tasks"
        plan = S.plan_scoring(events, items, folder, cfg.k, list(cfg.domains) if cfg.domains else None,
                              block_users=cfg.block_users, device=cfg.device,
                              screen=cfg.screen, users_per_item=per_item)
        facts.update(plan.facts)
    staging = lake.stage(RECOMMENDATIONS_DATASET, cfg.run_date, run_id)
    with timed(log, "score", partitions=partitions) as facts:
        recs = (S.score_users(events, plan, partitions=partitions) if pieces is None
                else S.score_event_files(spark, pieces, plan))
        with raised_in_tasks():
            counts = write_recommendations(recs, staging.path(RECOMMENDATIONS))
        facts.update(counts)
    manifest = lake.commit(staging, run_id, {RECOMMENDATIONS.name: counts}, extra={
        "unified": {"run_date": unified.run_date, "version": unified.version},
        "model": {"run_date": model_date, "version": version},
        "params": {"k": cfg.k, "domains": [c.domain for c in plan.candidates],
                   "block_users": cfg.block_users, "partitions": partitions,
                   "screen": cfg.screen},
        "skipped": {"unknown_items": plan.facts["unknown_items"],
                    "unscored_domains": plan.facts["unscored_domains"]},
        "candidates": plan.facts["candidates"], "max_history": plan.max_history,
        "events_read_by": read_by})
    event(log, "published", dataset=RECOMMENDATIONS_DATASET, run_date=cfg.run_date,
          version=manifest.version, **counts)
    return manifest


def main(argv: list[str] | None = None) -> int:
    cfg = parse_args(argv)
    setup_logging()
    spark = get_session("crossrec-score")

    def body() -> None:
        manifest = run(spark, cfg)
        path = Lake.open(cfg.lake, spark).path(RECOMMENDATIONS, manifest.run_date)
        print(json.dumps({"run_date": manifest.run_date, "version": manifest.version,
                          "run_id": manifest.run_id, **manifest.extra,
                          "tables": {RECOMMENDATIONS.name: {
                              **manifest.tables[RECOMMENDATIONS.name], "path": path}}},
                         indent=2, sort_keys=True))

    return exit_status(log, body)


if __name__ == "__main__":
    sys.exit(main())
