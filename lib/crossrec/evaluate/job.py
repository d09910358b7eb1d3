"""The evaluation run: per seed, split once (stored in the run's staging and read back, so every
model sees exactly the stored split) -> leak check -> fit and score every model -> metrics; then
the metrics table, the report files and one atomic publish of dataset ``evaluation``."""
from __future__ import annotations

import hashlib
import json
import logging
import tempfile
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from pyspark.sql import DataFrame, SparkSession

import crossrec
from crossrec.errors import ConfigError
from crossrec.evaluate import report
from crossrec.evaluate.harness import ItemFacts, TestSet, evaluate_model
from crossrec.evaluate.recommender import EvalData, Recommender, TargetView
from crossrec.evaluate.split import EvalProtocol, Split, check_no_leak, split
from crossrec.evaluate.tuning import Validation, tune
from crossrec.lake import Lake, Manifest, Staging
from crossrec.logs import event, timed
from crossrec.schemas import columns as C
from crossrec.schemas.evaluation import EVALUATION, METRICS, SPLIT_TEST, SPLIT_TRAIN
from crossrec.schemas.lake import EVENTS, ITEMS, UNIFIED
from crossrec.schemas.training import ITEM_TEXT, ITEM_VECTORS
from crossrec.store import join

log = logging.getLogger("crossrec.evaluate")

REPORT_DIR = "report"  # files of the run: <version>/report/report.md, *.png


@dataclass(frozen=True)
class EvaluateConfig:
    lake: str
    run_date: str
    protocol: EvalProtocol
    seeds: tuple[int, ...] = (0, 1, 2)
    models: tuple[str, ...] = ()          # empty: every registered model
    params: dict[str, dict[str, Any]] = field(default_factory=dict)  # model -> create() kwargs
    tune: bool = False
    work_dir: str = ".crossrec-work/evaluate"
    force: bool = False                   # evaluate even if this run id is already published


@dataclass
class RunState:
    """What the seeds accumulate."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    settings: dict[str, dict[str, Any]] = field(default_factory=dict)
    curves: dict[str, list[dict[str, float]]] = field(default_factory=dict)
    seconds: dict[str, list[dict[str, float]]] = field(default_factory=dict)
    cohorts: dict[int, dict[str, int]] = field(default_factory=dict)
    tuning: dict[str, list[dict[str, Any]]] = field(default_factory=dict)


def run_id_for(cfg: EvaluateConfig, unified: Manifest) -> str:
    params = {k: v for k, v in asdict(cfg).items() if k not in ("lake", "work_dir", "force")}
    blob = json.dumps([crossrec.__version__, unified.version, params], sort_keys=True, default=str)
    return f"{cfg.run_date.replace('-', '')}-{hashlib.sha256(blob.encode()).hexdigest()[:12]}"


def _inputs(spark: SparkSession, lake: Lake, cfg: EvaluateConfig) -> tuple[Manifest, DataFrame,
                                                                          DataFrame, DataFrame | None]:
    unified = lake.require(UNIFIED, cfg.run_date, "ingest")
    events, items = lake.read(spark, EVENTS, cfg.run_date), lake.read(spark, ITEMS, cfg.run_date)
    domains = {r[C.DOMAIN] for r in items.select(C.DOMAIN).distinct().collect()}
    for role, d in (("--target", cfg.protocol.target), ("--source", cfg.protocol.source)):
        if d not in domains:
            raise ConfigError(f"{role} {d!r} is not a domain of the catalog ({sorted(domains)})")
    text = lake.manifest_on_or_before(ITEM_TEXT, cfg.run_date)
    vectors = lake.read(spark, ITEM_VECTORS, text.run_date) if text else None
    return unified, events, items, vectors


def _stored_split(spark: SparkSession, events: DataFrame, protocol: EvalProtocol,
                  staging: Staging) -> Split:
    """Split, write train and test under ``seed=<seed>`` of the staged tables, read them back."""
    s = split(events, protocol)
    seed = f"{C.EVAL_SEED}={protocol.seed}"
    for table, df in ((SPLIT_TRAIN, s.train), (SPLIT_TEST, s.test)):
        cols = [c for c in table.columns if c != C.EVAL_SEED]
        df.select(cols).write.mode("errorifexists").parquet(join(staging.path(table), seed))
    train = spark.read.parquet(join(staging.path(SPLIT_TRAIN), seed))
    test = spark.read.parquet(join(staging.path(SPLIT_TEST), seed))
    return Split(train, test, test.select(C.USER_IDX, C.COHORT).distinct(), protocol.target)


def _tune_all(cfg: EvaluateConfig, data: EvalData, models: list[str], state: RunState) -> dict[str, dict[str, Any]]:
    """Best params per model with a grid, chosen on a validation split of ``data.train``."""
    valid = Validation.of(data)
    chosen = {}
    for name in models:
        if not Recommender.create(name, **cfg.params.get(name, {})).grid:
            continue
        with timed(log, "tune", model=name) as facts:
            best, trials = tune(name, valid, cfg.params.get(name, {}))
            facts.update(best=best)
        chosen[name] = best
        state.tuning[name] = [{"params": t.params, "cold": t.cold, "warm": t.warm} for t in trials]
    valid.data.train.unpersist()
    return chosen


def _evaluate_seed(spark: SparkSession, cfg: EvaluateConfig, seed: int, events: DataFrame,
                   items: DataFrame, vectors: DataFrame | None, staging: Staging, models: list[str],
                   params: dict[str, dict[str, Any]], state: RunState) -> None:
    protocol = replace(cfg.protocol, seed=seed)
    with timed(log, "split", seed=seed) as facts:
        s = _stored_split(spark, events, protocol, staging)
        check_no_leak(s)
        test = TestSet.of(s)
        state.cohorts[seed] = {c: int((test.cohort == c).sum()) for c in ("cold", "warm")}
        facts.update(users=state.cohorts[seed], test_pairs=len(test.test_items))
    data = EvalData(spark, s.train, items, vectors, protocol, str(Path(cfg.work_dir) / f"seed={seed}"))
    if cfg.tune and seed == cfg.seeds[0]:
        chosen = _tune_all(cfg, data, models, state)
        params.update({m: {**params.get(m, {}), **p} for m, p in chosen.items()})
    view = TargetView.of(data)
    facts_ = ItemFacts.of(data, view)
    for name in models:
        rec = Recommender.create(name, **params.get(name, {}))
        rows, secs = evaluate_model(name, rec, data, test, view, facts_, seed)
        state.rows += rows
        state.settings.setdefault(name, rec.settings())
        state.curves.setdefault(name, rec.curve())
        state.seconds.setdefault(name, []).append(secs)
        ndcg = {r[C.COHORT]: round(r[C.METRIC_VALUE], 4) for r in rows
                if r[C.METRIC] == "ndcg" and r[C.K] == protocol.k}
        event(log, "scored", model=name, seed=seed, ndcg=ndcg, **secs)


def published_rows(spark: SparkSession, lake: Lake, run_date: str) -> list[dict[str, Any]]:
    """The METRICS rows of the date's published evaluation."""
    return [r.asDict() for r in lake.read(spark, METRICS, run_date).collect()]


def run(spark: SparkSession, cfg: EvaluateConfig) -> tuple[Manifest, list[dict[str, Any]]]:
    """One evaluation run; returns the published manifest and its METRICS rows. A run id that
    is already published for the date (same unified version, protocol, seeds, models and
    parameters) is not run again unless ``cfg.force``."""
    models = list(cfg.models) or Recommender.names()
    for name in models:  # unknown names and bad parameters fail before any work
        Recommender.create(name, **cfg.params.get(name, {}))
    unknown = set(cfg.params) - set(models)
    if unknown:
        raise ConfigError(f"--param for models not evaluated: {sorted(unknown)}")
    lake = Lake.open(cfg.lake, spark)
    unified, events, items, vectors = _inputs(spark, lake, cfg)
    run_id = run_id_for(cfg, unified)
    published = lake.manifest(EVALUATION, cfg.run_date)
    if published is not None and published.run_id == run_id and not cfg.force:
        event(log, "skipped", dataset=EVALUATION, run_date=cfg.run_date, version=published.version,
              reason="unified version, protocol, models and parameters unchanged")
        return published, published_rows(spark, lake, cfg.run_date)
    staging = lake.stage(EVALUATION, cfg.run_date, run_id)
    state, params = RunState(), {m: dict(cfg.params.get(m, {})) for m in models}
    for seed in cfg.seeds:
        _evaluate_seed(spark, cfg, seed, events, items, vectors, staging, models, params, state)
    metrics = spark.createDataFrame(state.rows, METRICS.as_spark_schema())
    metrics.repartition(1).write.mode("errorifexists").parquet(staging.path(METRICS))
    meta = {"run_date": cfg.run_date, "target": cfg.protocol.target, "source": cfg.protocol.source,
            "k": cfg.protocol.k, "seeds": list(cfg.seeds), "cohorts": state.cohorts,
            "settings": state.settings, "tuning": state.tuning}
    with tempfile.TemporaryDirectory() as tmp:
        for f in report.write_report(Path(tmp), state.rows, meta, state.curves):
            lake.store.put_file(f, join(staging.dir, REPORT_DIR, f.name))
    manifest = lake.commit(staging, run_id, {METRICS.name: {"rows": len(state.rows)}}, extra={
        "unified": {"run_date": unified.run_date, "version": unified.version},
        "protocol": asdict(cfg.protocol), "seeds": list(cfg.seeds), "models": models,
        "settings": state.settings, "params": params, "tuning": state.tuning,
        "cohorts": {str(k): v for k, v in state.cohorts.items()}, "seconds": state.seconds,
        "report": join(REPORT_DIR, "report.md")})
    event(log, "published", dataset=EVALUATION, run_date=cfg.run_date, version=manifest.version)
    return manifest, state.rows
