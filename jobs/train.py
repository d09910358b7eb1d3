"""Train the shared cross-domain model on a date's examples and publish the artifact to the lake.

    ./spark-submit.sh train --lake data/demo/lake --run-date 2026-11-23 \\
        [--launcher local|torch|horovod] [--num-proc 2] [--gpu] [--pretrain-epochs 8] ...

Reads the published ``examples`` of the date, the latest ``item_text`` and the catalog on or before
it; trains data-parallel (one process per GPU, or CPU processes with gloo); rank 0 checkpoints every
epoch under ``--work-dir`` (rerunning the same command after a crash resumes); publishes
``weights.safetensors`` + ``model.json`` as dataset ``model``. Exit status: 0 published, 2 bad
configuration or input, 3 training failed (ranks diverged).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys

from crossrec.errors import ConfigError, InputError
from crossrec.lake import Lake, run_date_arg
from crossrec.session import get_session
from crossrec.train.job import JobConfig, artifact_dir, run
from crossrec.train.loop import TrainConfig

log = logging.getLogger("crossrec.train")


def parse_args(argv: list[str] | None) -> JobConfig:
    p = argparse.ArgumentParser(prog="train", description=__doc__.split("\n\n")[0])
    p.add_argument("--lake", required=True, help="lake root: a path, file://, hdfs:// or s3a:// URL")
    p.add_argument("--run-date", required=True, type=run_date_arg,
                   help="examples partition to train on, YYYY-MM-DD")
    p.add_argument("--launcher", choices=("local", "torch", "horovod"), default="local")
    p.add_argument("--num-proc", type=int, default=1, help="training processes (one per GPU)")
    p.add_argument("--gpu", action="store_true", help="train on GPUs (NCCL); default CPU (gloo)")
    p.add_argument("--work-dir", default=".crossrec-work",
                   help="checkpoints and the artifact before publishing (shared storage on a cluster)")
    for f in dataclasses.fields(TrainConfig):
        p.add_argument("--" + f.name.replace("_", "-"), type=type(f.default), default=f.default)
    a = p.parse_args(argv)
    train = TrainConfig(**{f.name: getattr(a, f.name) for f in dataclasses.fields(TrainConfig)})
    if a.num_proc > 1 and a.launcher == "local":
        p.error("--launcher local runs one process; use --launcher torch or horovod for --num-proc > 1")
    return JobConfig(lake=a.lake, run_date=a.run_date, launcher=a.launcher, num_proc=a.num_proc,
                     use_gpu=a.gpu, work_dir=a.work_dir, train=train)


def main(argv: list[str] | None = None) -> int:
    cfg = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    spark = get_session("crossrec-train")
    try:
        manifest, result = run(spark, cfg)
    except (ConfigError, InputError) as e:
        log.error("%s", e)
        return 2
    except RuntimeError as e:
        log.error("%s", e)
        return 3
    print(json.dumps({"run_date": manifest.run_date, "version": manifest.version,
                      "artifact": artifact_dir(Lake.open(cfg.lake, spark), manifest.run_date),
                      "launcher": cfg.launcher, "num_proc": cfg.num_proc,
                      "history": result["history"]}, indent=2, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
