"""Training benchmark: feed throughput, examples/s per launcher and process count, and time to
quality beside Spark MLlib ALS fitted and scored on the same data in the same run.

    .venv/bin/python bench/train.py --lake data/demo/lake --run-date 2026-11-23   # one JSON object

Needs a lake with ``examples`` and ``item_text`` published (``./demo.sh`` makes one from
MovieLens-1M). Measured in one process, one SparkSession (``--master``, default local[2]):
1. the feed alone: one epoch of the train split, one rank, batch 512;
2. examples/s of one training epoch for local (1 process), torch and horovod (1 and 2 processes);
3. quality: crossrec trained for ``--epochs`` (pretrain) + ``--finetune-epochs`` with its
   validation NDCG@10 after each epoch, beside implicit ALS (rank ``--als-rank``) fitted on the
   same training positives and ranked on the same validation examples with the same exclusions
   (items in the example's history). Reports each one's wall time and the time crossrec needed to
   pass ALS's NDCG@10. The evaluation issue's cohort protocol and quality bar come with
   jobs/evaluate.py; this is the training-time view of the same question.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RUNS = (("local", 1), ("torch", 1), ("torch", 2), ("horovod", 1), ("horovod", 2))


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--lake", default=str(ROOT / "data" / "demo" / "lake"))
    p.add_argument("--run-date", required=True)
    p.add_argument("--master", default="local[2]")
    p.add_argument("--epochs", type=int, default=6, help="pretraining epochs of the quality run")
    p.add_argument("--finetune-epochs", type=int, default=2)
    p.add_argument("--als-rank", type=int, default=64)
    p.add_argument("--als-iter", type=int, default=10)
    p.add_argument("--als-reg", type=float, default=0.1)
    p.add_argument("--als-alpha", type=float, default=10.0)
    p.add_argument("--skip-launchers", action="store_true", help="only the feed and quality parts")
    return p.parse_args(argv)


def feed_alone(spec: Any) -> dict[str, float]:
    from crossrec.feed import ExampleFeed, FeedConfig

    cfg = spec.config
    feed = ExampleFeed(FeedConfig(spec.train_dir, cfg.batch_size, cfg.max_history, cfg.shuffle_buffer, cfg.seed))
    t0 = time.perf_counter()
    n = sum(len(b["item_idx"]) for b in feed.epoch(0))
    s = time.perf_counter() - t0
    return {"examples": n, "seconds": round(s, 2), "examples_per_s": round(n / s)}


def launcher_runs(spark: Any, spec: Any, work: Path) -> list[dict[str, Any]]:
    from crossrec.train.launch import Launcher

    one_epoch = dataclasses.replace(spec.config, pretrain_epochs=1, finetune_epochs=0)
    out = []
    for kind, n in RUNS:
        run_dir = work / f"{kind}{n}"
        run_spec = dataclasses.replace(spec, config=one_epoch, ckpt_dir=str(run_dir / "ckpt"),
                                       out_dir=str(run_dir / "art"), fingerprint=f"{kind}{n}", threads=0)
        t0 = time.perf_counter()
        result = Launcher.create(kind, n, spark=spark).run(run_spec)
        wall = time.perf_counter() - t0
        epoch = result["history"][0]
        out.append({"launcher": kind, "processes": n, "examples_per_s": epoch["examples_per_s"],
                    "epoch_seconds": epoch["seconds"], "wall_seconds_with_startup": round(wall, 1),
                    "ranks_identical": len(set(result["param_sha256"])) == 1})
    return out


def crossrec_quality(spec: Any, work: Path, epochs: int, finetune: int) -> dict[str, Any]:
    from crossrec.train.launch import Launcher

    cfg = dataclasses.replace(spec.config, pretrain_epochs=epochs, finetune_epochs=finetune)
    run_spec = dataclasses.replace(spec, config=cfg, ckpt_dir=str(work / "q" / "ckpt"),
                                   out_dir=str(work / "q" / "art"), fingerprint="quality")
    t0 = time.perf_counter()
    history = Launcher.create("local").run(run_spec)["history"]
    return {"wall_seconds": round(time.perf_counter() - t0, 1), "history": history, "config": cfg.to_dict()}


def als_quality(spark: Any, spec: Any, args: argparse.Namespace) -> dict[str, Any]:
    """Implicit ALS on the training targets (user, item), ranked like crossrec's validation."""
    import torch
    from pyspark.ml.recommendation import ALS
    from safetensors.torch import load_file

    from crossrec.feed import ExampleFeed, FeedConfig
    from crossrec.model.task import target_rank_stats
    from crossrec.schemas import columns as C

    train = spark.read.parquet(spec.train_dir).groupBy(C.USER_IDX, C.ITEM_IDX).count()
    als = ALS(rank=args.als_rank, maxIter=args.als_iter, regParam=args.als_reg, alpha=args.als_alpha,
              implicitPrefs=True, userCol=C.USER_IDX, itemCol=C.ITEM_IDX, ratingCol="count", seed=0,
              coldStartStrategy="drop")
    t0 = time.perf_counter()
    model = als.fit(train)
    users = {r[0]: r[1] for r in model.userFactors.collect()}
    fit_s = time.perf_counter() - t0
    inputs = load_file(spec.inputs)
    n_items = inputs["text"].shape[0]
    items = torch.zeros(n_items, args.als_rank)
    for r in model.itemFactors.collect():
        items[r[0]] = torch.tensor(r[1])
    total = torch.zeros(3, dtype=torch.float64)
    feed = ExampleFeed(FeedConfig(spec.valid_dir, 1024, spec.config.max_history, 1, drop_last=False))
    for b in feed.epoch(0):
        u = torch.stack([torch.tensor(users[int(i)]) if int(i) in users else torch.zeros(args.als_rank)
                         for i in b[C.USER_IDX]])
        total += target_rank_stats(u @ items.T, b, inputs["item_domain"], 10)
    hits, ndcg, n = total.tolist()
    return {"fit_seconds": round(fit_s, 1), "valid_recall@10": hits / n, "valid_ndcg@10": ndcg / n,
            "settings": {"rank": args.als_rank, "maxIter": args.als_iter, "regParam": args.als_reg,
                         "alpha": args.als_alpha, "implicitPrefs": True}}


def time_to_beat(quality: dict[str, Any], target: float) -> float | None:
    elapsed = 0.0
    for h in quality["history"]:
        elapsed += h["seconds"]
        if h["valid_ndcg@10"] >= target:
            return round(elapsed, 1)
    return None


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    os.environ.setdefault("CROSSREC_SPARK_LOG_LEVEL", "ERROR")
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(name)s: %(message)s")
    from crossrec.lake import Lake
    from crossrec.session import get_session
    from crossrec.train.job import JobConfig, prepare, resolve_inputs

    spark = get_session("crossrec-bench-train", master=args.master, conf={"spark.driver.memory": "4g"})
    work = Path(tempfile.mkdtemp(prefix="crossrec-bench-train-"))
    try:
        lake = Lake.open(args.lake, spark)
        cfg = JobConfig(lake=args.lake, run_date=args.run_date, work_dir=str(work))
        spec = prepare(spark, lake, cfg, resolve_inputs(lake, args.run_date))
        feed = feed_alone(spec)
        runs = [] if args.skip_launchers else launcher_runs(spark, spec, work)
        als = als_quality(spark, spec, args)
        quality = crossrec_quality(spec, work, args.epochs, args.finetune_epochs)
        best = max(h["valid_ndcg@10"] for h in quality["history"])
        print(json.dumps({
            "benchmark": "train", "master": args.master, "cpus": os.cpu_count(),
            "python": platform.python_version(), "lake": args.lake, "run_date": args.run_date,
            "train_examples": feed["examples"], "feed_alone": feed, "launchers": runs,
            "crossrec": {"wall_seconds": quality["wall_seconds"], "best_valid_ndcg@10": best,
                         "per_epoch": [{k: h[k] for k in ("epoch", "phase", "seconds", "examples_per_s",
                                                          "valid_ndcg@10", "valid_recall@10")}
                                       for h in quality["history"]],
                         "config": quality["config"]},
            "peer": "Spark MLlib ALS (implicit) on the same training positives",
            "als": als, "crossrec_seconds_to_beat_als": time_to_beat(quality, als["valid_ndcg@10"]),
        }, indent=2))
    finally:
        shutil.rmtree(work, ignore_errors=True)
        spark.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
