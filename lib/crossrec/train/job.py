"""The train job's steps: resolve input versions, prepare item arrays, launch, publish the artifact."""
from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from crossrec.errors import InputError
from crossrec.lake import Lake, Manifest
from crossrec.logs import event, timed
from crossrec.schemas import columns as C
from crossrec.model.transfer import TransferConfig
from crossrec.schemas.lake import EVENTS, ITEMS, UNIFIED
from crossrec.schemas.training import (DOMAINS, EXAMPLES, ITEM_TEXT, ITEM_VECTORS, MODEL,
                                       SPLIT_TRAIN, SPLIT_VALID)
from crossrec.store import join

from .inputs import item_arrays, write_inputs
from .launch import Launcher
from .loop import TrainConfig
from .transfer import KIND, fit_transfer, save_transfer
from .worker import TrainSpec

log = logging.getLogger("crossrec.train")
ARTIFACT_FILES = ("weights.safetensors", "model.json")
PUBLISHER = {ITEM_TEXT: "embed_items", EXAMPLES.dataset: "build_examples", ITEMS.dataset: "ingest"}


@dataclass(frozen=True)
class JobConfig:
    lake: str
    run_date: str
    launcher: str = "local"
    num_proc: int = 1
    use_gpu: bool = False
    work_dir: str = ".crossrec-work"
    train: TrainConfig = TrainConfig()
    force: bool = False  # train even if this run (inputs, config) is already published
    model: str = "towers"                 # "towers" (the embedding model) or "transfer"
    transfer: TransferConfig = TransferConfig()
    min_value: float | None = 4.0         # transfer: what counts as a positive


def latest_on_or_before(lake: Lake, dataset: str, run_date: str) -> Manifest:
    m = lake.manifest_on_or_before(dataset, run_date)
    if m is None:
        raise InputError(f"{lake.root}: no published {dataset!r} on or before {run_date}; run "
                         f"{PUBLISHER.get(dataset, 'the job that publishes it')} first")
    return m


def resolve_inputs(lake: Lake, run_date: str) -> dict[str, Manifest]:
    """The published versions this training run reads (recorded in the artifact)."""
    examples = lake.manifest(EXAMPLES.dataset, run_date)
    if examples is None:
        raise InputError(f"{lake.root}: no published examples for {run_date}; run build_examples first")
    source = examples.extra.get("unified", {})
    unified = lake.manifest(ITEMS.dataset, source.get("run_date", run_date))
    if unified is None or unified.version != source.get("version"):
        raise InputError(f"examples of {run_date} were built from unified version "
                         f"{source.get('version')}, which is no longer published; rerun build_examples")
    return {"examples": examples, "unified": unified,
            "item_text": latest_on_or_before(lake, ITEM_TEXT, run_date)}


def fingerprint(versions: dict[str, Manifest], cfg: JobConfig) -> str:
    """Same inputs + same configuration + same process count → same run (and resumable)."""
    facts: dict[str, Any] = {name: m.version for name, m in versions.items()}
    if cfg.model == KIND:
        facts.update(model=KIND, transfer=asdict(cfg.transfer), min_value=cfg.min_value)
    else:
        facts.update(train=cfg.train.to_dict(), num_proc=cfg.num_proc)
    return hashlib.sha256(json.dumps(facts, sort_keys=True).encode()).hexdigest()[:16]


def prepare(spark: Any, lake: Lake, cfg: JobConfig, versions: dict[str, Manifest]) -> TrainSpec:
    run = fingerprint(versions, cfg)
    work = Path(cfg.work_dir).resolve() / run
    work.mkdir(parents=True, exist_ok=True)
    ex_dir = lake.path(EXAMPLES, cfg.run_date)
    domains = lake.read(spark, DOMAINS, cfg.run_date)
    train_examples = spark.read.parquet(join(ex_dir, f"split={SPLIT_TRAIN}"))
    with timed(log, "train.inputs") as facts:
        arrays = item_arrays(lake.read(spark, ITEMS, versions["unified"].run_date), domains,
                             lake.read(spark, ITEM_VECTORS, versions["item_text"].run_date),
                             train_examples)
        write_inputs(arrays, str(work / "inputs.safetensors"))
        facts.update(items=len(arrays["text"]), text_dim=int(arrays["text"].shape[1]))
    names = [r[0] for r in domains.orderBy("domain_idx").select("domain").collect()]
    # scoring maps the model's items to a later catalog by item_id, and rebuilds histories of the
    # length training saw (the examples' L, cut again by the feed's)
    item_ids = [r[0] for r in lake.read(spark, ITEMS, versions["unified"].run_date)
                .orderBy(C.ITEM_IDX).select(C.ITEM_ID).collect()]
    built_l = versions["examples"].extra.get("params", {}).get("max_history", cfg.train.max_history)
    meta = {"run_date": cfg.run_date, "fingerprint": run, "domains": names, "item_ids": item_ids,
            "max_history": min(int(built_l), cfg.train.max_history),
            "inputs": {k: {"run_date": m.run_date, "version": m.version} for k, m in versions.items()},
            "encoder": versions["item_text"].extra.get("encoder")}
    return TrainSpec(train_dir=join(ex_dir, f"split={SPLIT_TRAIN}"),
                     valid_dir=join(ex_dir, f"split={SPLIT_VALID}"),
                     inputs=str(work / "inputs.safetensors"), ckpt_dir=str(work / "checkpoint"),
                     out_dir=str(work / "artifact"), n_domains=len(names), config=cfg.train,
                     fingerprint=run, meta=meta)


def publish(lake: Lake, run_date: str, run_id: str, out_dir: str | Path,
            extra: dict[str, Any]) -> Manifest:
    """The artifact folder's files as dataset ``model`` of ``run_date``, in one commit."""
    staging = lake.stage(MODEL, run_date, run_id)
    for name in ARTIFACT_FILES:
        lake.store.put_file(Path(out_dir) / name, join(staging.dir, name))
    return lake.commit(staging, run_id, {"artifact": {"files": list(ARTIFACT_FILES)}}, extra=extra)


def already_published(lake: Lake, cfg: JobConfig, run_id: str) -> tuple[Manifest, dict[str, Any]] | None:
    """The date's publication of this very run (unless ``cfg.force``), with its history."""
    published = lake.manifest(MODEL, cfg.run_date)
    if published is None or published.run_id != run_id or cfg.force:
        return None
    event(log, "skipped", dataset=MODEL, run_date=cfg.run_date, version=published.version,
          reason="inputs and training configuration unchanged")
    meta = json.loads(lake.store.read_text(join(lake.version_dir(MODEL, cfg.run_date),
                                                ARTIFACT_FILES[1])))
    return published, {"history": meta.get("history", []), "skipped": True}


def run_transfer(spark: Any, lake: Lake, cfg: JobConfig) -> tuple[Manifest, dict[str, Any]]:
    """``--model transfer``: fit on the date's unified positives on the driver and publish."""
    unified = lake.require(UNIFIED, cfg.run_date, "ingest")
    run_id = fingerprint({"unified": unified}, cfg)
    done = already_published(lake, cfg, run_id)
    if done is not None:
        return done
    inputs = {"unified": {"run_date": unified.run_date, "version": unified.version}}
    with timed(log, "train.fit", model=KIND) as facts:
        tensors, meta = fit_transfer(lake.read(spark, EVENTS, cfg.run_date),
                                     lake.read(spark, ITEMS, cfg.run_date), cfg.transfer, cfg.min_value)
        facts.update(items=meta["model_config"]["n_items"], rows=meta["training_rows"])
    out = Path(cfg.work_dir).resolve() / run_id / "artifact"
    save_transfer(out, tensors, {**meta, "run_date": cfg.run_date, "fingerprint": run_id,
                                 "inputs": inputs})
    manifest = publish(lake, cfg.run_date, run_id, out, extra={
        "model": KIND, "inputs": inputs, "training_rows": meta["training_rows"]})
    return manifest, {"history": [], "skipped": False}


def run(spark: Any, cfg: JobConfig) -> tuple[Manifest, dict[str, Any]]:
    """Train and publish, or return the publication of the same run (same fingerprint) if the
    date already has it and not ``cfg.force``; ``result["skipped"]`` says which."""
    lake = Lake.open(cfg.lake, spark)
    if cfg.model == KIND:
        return run_transfer(spark, lake, cfg)
    versions = resolve_inputs(lake, cfg.run_date)
    done = already_published(lake, cfg, fingerprint(versions, cfg))
    if done is not None:
        return done
    spec = prepare(spark, lake, cfg, versions)
    launcher = Launcher.create(cfg.launcher, cfg.num_proc, cfg.use_gpu, spark)
    with timed(log, "train.fit", launcher=cfg.launcher, num_proc=cfg.num_proc):
        result = launcher.run(spec)
    if len(set(result["param_sha256"])) != 1:
        raise RuntimeError(f"ranks ended with different parameters: {result['param_sha256']}")
    last = result["history"][-1] if result["history"] else {}
    manifest = publish(lake, cfg.run_date, spec.fingerprint, spec.out_dir, extra={
        "launcher": cfg.launcher, "num_proc": cfg.num_proc, "metrics": last,
        "inputs": spec.meta["inputs"]})
    return manifest, {**result, "skipped": False}


def artifact_dir(lake: Lake, run_date: str | None = None) -> str:
    """Location of a published model artifact (default: the latest date)."""
    return lake.version_dir(MODEL, run_date)
