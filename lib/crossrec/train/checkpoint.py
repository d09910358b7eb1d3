"""Checkpoints: written atomically by rank 0, read by every rank without unpickling code.

A checkpoint is a dict of tensors and plain values saved with ``torch.save`` and loaded with
``torch.load(weights_only=True)``, whose unpickler only rebuilds tensors and primitive
containers: a file crafted to run code on load is refused (tests prove it).
"""
from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.optim import Optimizer

FILE = "checkpoint.pt"


class UnsafeCheckpointError(RuntimeError):
    """The file is not a plain tensors-and-values checkpoint (possibly crafted); it was not loaded."""


@dataclass(frozen=True)
class Position:
    """Where training resumes: the next epoch to run and the batch within it."""

    epoch: int = 0
    batch: int = 0


def save(directory: str | Path, model: nn.Module, opt: Optimizer, pos: Position,
         history: list[dict[str, Any]], fingerprint: str) -> Path:
    """Write ``checkpoint.pt`` atomically (temp file + rename): a kill never leaves half a file."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    state = {
        "model": model.state_dict(),
        "optimizer": opt.state_dict(),
        "epoch": pos.epoch,
        "batch": pos.batch,
        "rng": torch.get_rng_state(),
        "history": json.dumps(history),
        "fingerprint": fingerprint,
    }
    fd, tmp = tempfile.mkstemp(prefix=".ckpt-", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, directory / FILE)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return directory / FILE


def load(directory: str | Path, device: torch.device | str = "cpu") -> dict[str, Any] | None:
    """The checkpoint in ``directory``, or None if there is none. Never unpickles code."""
    path = Path(directory) / FILE
    if not path.exists():
        return None
    try:
        state = torch.load(path, map_location=device, weights_only=True)
    except Exception as e:  # torch raises UnpicklingError naming the forbidden global
        raise UnsafeCheckpointError(f"{path}: refused to load ({type(e).__name__}: {e})") from None
    if not isinstance(state, dict) or "model" not in state:
        raise UnsafeCheckpointError(f"{path}: not a crossrec checkpoint")
    state["history"] = json.loads(state["history"])
    return state


def restore(state: dict[str, Any], model: nn.Module, opt: Optimizer) -> Position:
    model.load_state_dict(state["model"])
    opt.load_state_dict(state["optimizer"])
    torch.set_rng_state(state["rng"].cpu())
    return Position(int(state["epoch"]), int(state["batch"]))
