"""Train the planted model with checkpoints in a process of its own; optionally SIGKILL itself.

    python tests/train_runner.py CKPT_DIR OUT_FILE [--kill-after-epoch K]

Writes the final parameters' sha256 to OUT_FILE. ``--kill-after-epoch K`` kills the process
(SIGKILL: no cleanup, no atexit) right after epoch K's checkpoint is written.
"""
from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from crossrec.model import TrainTask  # noqa: E402
from crossrec.train.dist import LocalDist  # noqa: E402
from crossrec.train.loop import TrainConfig, fit  # noqa: E402
from crossrec.train.loop import params_digest  # noqa: E402
from tests.modelfix import planted_batches, planted_model  # noqa: E402

CONFIG = TrainConfig(pretrain_epochs=3, finetune_epochs=2, lr=0.01, finetune_lr=0.01, k=1)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("ckpt_dir")
    p.add_argument("out_file")
    p.add_argument("--kill-after-epoch", type=int, default=-1)
    a = p.parse_args()
    logging.basicConfig(level=logging.INFO)

    def maybe_kill(epoch: int) -> None:
        if epoch == a.kill_after_epoch:
            os.kill(os.getpid(), signal.SIGKILL)

    task = TrainTask.create("full", planted_model(seed=7))
    fit(task, LocalDist(), CONFIG, planted_batches, 20, lambda: planted_batches(99, 0, 2),
        a.ckpt_dir, "planted-v1", on_checkpoint=maybe_kill)
    Path(a.out_file).write_text(bytes(params_digest(task.model).tolist()).hex())


if __name__ == "__main__":
    main()
