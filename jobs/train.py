"""Train the shared cross-domain model on a date's examples and publish the artifact to the lake.

    ./spark-submit.sh train --lake data/demo/lake --run-date 2026-11-23 \\
        [--launcher local|torch|horovod] [--num-proc 2] [--gpu] [--pretrain-epochs 8] \\
        [--force] [--config crossrec.toml] ...
    ./spark-submit.sh train --model transfer --lake data/demo/lake --run-date 2026-11-23 \\
        [--l2 1000] [--l2-shared 2000] [--cuts 0.1,0.2,0.35,0.5] [--row-pow 0.5] [--min-value 4]

``--model towers`` (default) is the embedding model below. ``--model transfer`` is the closed-form
cross-domain transfer model (:mod:`crossrec.model.transfer`; the one that clears the evaluation's
quality bar): fitted on the driver from the date's unified positives, published the same way.

Reads the published ``examples`` of the date, the latest ``item_text`` and the catalog on or before
it; trains data-parallel (one process per GPU, or CPU processes with gloo); rank 0 checkpoints every
epoch under ``--work-dir`` (rerunning the same command after a crash resumes); publishes
``weights.safetensors`` + ``model.json`` as dataset ``model``. Exit status: 0 published, 2 bad
configuration or input, 3 training failed (ranks diverged), 4 another run of the date published
meanwhile (nothing published). A rerun whose inputs' versions and training configuration are
unchanged publishes nothing (``--force`` trains again).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys

from crossrec.cli import EXIT_CODES, exit_status, job_parser, min_value_arg, parse, setup_logging
from crossrec.model.transfer import TransferConfig
from crossrec.lake import Lake
from crossrec.session import get_session
from crossrec.train.job import JobConfig, artifact_dir, run
from crossrec.train.loop import TrainConfig

log = logging.getLogger("crossrec.train")


def parse_args(argv: list[str] | None) -> JobConfig:
    p = job_parser("train", __doc__, "examples partition to train on")
    p.add_argument("--launcher", choices=("local", "torch", "horovod"), default="local")
    p.add_argument("--num-proc", type=int, default=1, help="training processes (one per GPU)")
    p.add_argument("--gpu", action="store_true", help="train on GPUs (NCCL); default CPU (gloo)")
    p.add_argument("--work-dir", default=".crossrec-work",
                   help="checkpoints and the artifact before publishing (shared storage on a cluster)")
    p.add_argument("--force", action="store_true",
                   help="train again even if this run's model is already published for the date")
    for f in dataclasses.fields(TrainConfig):
        p.add_argument("--" + f.name.replace("_", "-"), type=type(f.default), default=f.default)
    p.add_argument("--model", choices=("towers", "transfer"), default="towers",
                   help="towers: the embedding model (default); transfer: the closed-form model")
    t = TransferConfig()
    p.add_argument("--l2", type=float, default=t.l2, help="transfer: pull of each domain's delta to θ_s")
    p.add_argument("--l2-shared", type=float, default=t.l2_shared, help="transfer: EASE λ of θ_s")
    p.add_argument("--cuts", type=_fractions, default=t.cuts, help="transfer: time-cut fractions")
    p.add_argument("--row-pow", type=float, default=t.row_pow, help="transfer: row weight exponent")
    p.add_argument("--min-value", type=min_value_arg, default=4.0,
                   help="transfer: value of a positive (default 4.0); 'none': weight > 0")
    a = parse(p, argv, "train")
    train = TrainConfig(**{f.name: getattr(a, f.name) for f in dataclasses.fields(TrainConfig)})
    if a.num_proc > 1 and a.launcher == "local":
        p.error("--launcher local runs one process; use --launcher torch or horovod for --num-proc > 1")
    try:
        transfer = TransferConfig(a.l2, a.l2_shared, a.cuts, a.row_pow)
    except ValueError as e:
        p.error(f"--{e}")
    return JobConfig(lake=a.lake, run_date=a.run_date, launcher=a.launcher, num_proc=a.num_proc,
                     use_gpu=a.gpu, work_dir=a.work_dir, train=train, force=a.force,
                     model=a.model, transfer=transfer, min_value=a.min_value)


def _fractions(text: str) -> tuple[float, ...]:
    """Comma-separated numbers; their range is TransferConfig's to check."""
    try:
        return tuple(float(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated fractions, got {text!r}") from None


def main(argv: list[str] | None = None) -> int:
    cfg = parse_args(argv)
    setup_logging()
    spark = get_session("crossrec-train")

    def body() -> int:
        manifest, result = run(spark, cfg)
        print(json.dumps({"run_date": manifest.run_date, "version": manifest.version,
                          "skipped": result["skipped"],
                          "artifact": artifact_dir(Lake.open(cfg.lake, spark), manifest.run_date),
                          "launcher": cfg.launcher, "num_proc": cfg.num_proc,
                          "history": result["history"]}, indent=2, sort_keys=True))
        return 0

    # ranks that ended with different weights raise RuntimeError: exit 3
    return exit_status(log, body, {**EXIT_CODES, RuntimeError: 3})

if __name__ == "__main__":
    sys.exit(main())
