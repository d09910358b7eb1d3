"""The training loop: phases, epochs, validation, checkpoints. Takes any iterable of batches.

Schedule (the seeds'): ``pretrain_epochs`` train the shared parameters θ_s on all domains with
the domain deltas Δθ_t held at zero, then ``finetune_epochs`` train only the deltas (θ_s frozen),
regularised towards zero so sparse domains stay close to the shared model.
"""
from __future__ import annotations

import hashlib
import logging
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

import torch
from torch import Tensor, nn

from crossrec.logs import event
from crossrec.model import CrossDomainModel, TrainTask
from crossrec.model.task import rank_metrics

from . import checkpoint
from .dist import Dist

log = logging.getLogger("crossrec.train")
Batch = dict[str, Tensor]


@dataclass(frozen=True)
class TrainConfig:
    pretrain_epochs: int = 8
    finetune_epochs: int = 2
    batch_size: int = 512
    lr: float = 2e-3
    finetune_lr: float = 1e-3
    weight_decay: float = 0.0
    loss: str = "full"            # "full" softmax over the target domain, or "in_batch" (logQ)
    delta_reg: float = 1e-3
    k: int = 10
    seed: int = 0
    shuffle_buffer: int = 20_000
    dim: int = 64
    delta_rank: int = 8
    hidden: int = 256
    # the latest 20 events, not 50: on the demo 31 % faster per epoch and +10 % validation
    # NDCG@10 after the full schedule (README, Training benchmark)
    max_history: int = 20

    @property
    def epochs(self) -> int:
        return self.pretrain_epochs + self.finetune_epochs

    def phase(self, epoch: int) -> str:
        return "pretrain" if epoch < self.pretrain_epochs else "finetune"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def make_optimizer(model: CrossDomainModel, cfg: TrainConfig) -> torch.optim.Optimizer:
    """One Adam over two groups (shared, delta) for the whole run: phases change learning rates
    and which gradients are dropped, never the optimizer (Horovod hooks are per optimizer)."""
    return torch.optim.AdamW([
        {"params": model.shared_parameters(), "lr": cfg.lr, "name": "shared"},
        {"params": model.delta_parameters(), "lr": cfg.finetune_lr, "name": "delta"},
    ], weight_decay=cfg.weight_decay)


def frozen_in(model: CrossDomainModel, phase: str) -> list[nn.Parameter]:
    return model.delta_parameters() if phase == "pretrain" else model.shared_parameters()


def to_device(batch: Batch, device: torch.device) -> Batch:
    return {k: v.to(device, non_blocking=True) for k, v in batch.items()}


def train_epoch(forward: nn.Module, frozen: list[nn.Parameter], opt: torch.optim.Optimizer,
                dist: Dist, batches: Iterable[Batch], progress: Any = None) -> dict[str, float]:
    """One pass over this rank's batches → {"loss", "examples"} summed over ranks."""
    total = torch.zeros(2, dtype=torch.float64, device=dist.device)
    for batch in batches:
        batch = to_device(batch, dist.device)
        loss, _ = forward(batch)
        opt.zero_grad()  # Horovod's wrapper takes no arguments; torch defaults to set_to_none
        loss.backward()
        dist.step(opt, frozen)
        n = len(batch[next(iter(batch))])
        total += torch.stack([loss.detach().double() * n, torch.tensor(float(n), device=dist.device)])
        if progress is not None:
            progress.update(1)
    loss_sum, n = dist.allreduce_sum(total).tolist()
    return {"loss": loss_sum / max(n, 1), "examples": n}


@torch.no_grad()
def validate(model: CrossDomainModel, dist: Dist, batches: Iterable[Batch], k: int) -> dict[str, float]:
    """Recall@k and NDCG@k of held-out targets over every rank's validation shard."""
    model.eval()
    items = model.items.all()
    total = torch.zeros(3, dtype=torch.float64, device=dist.device)
    for batch in batches:
        total += rank_metrics(model, to_device(batch, dist.device), k, items)
    model.train()
    hits, ndcg, n = dist.allreduce_sum(total).tolist()
    return {f"valid_recall@{k}": hits / max(n, 1), f"valid_ndcg@{k}": ndcg / max(n, 1), "valid_examples": n}


def fit(task: TrainTask, dist: Dist, cfg: TrainConfig,
        train_batches: Callable[[int, int], Iterable[Batch]], batches_per_epoch: int,
        valid_batches: Callable[[], Iterable[Batch]], ckpt_dir: str | Path, fingerprint: str,
        on_checkpoint: Callable[[int], None] | None = None) -> list[dict[str, Any]]:
    """Train ``task`` for ``cfg.epochs`` epochs, resuming from ``ckpt_dir`` when a checkpoint of the
    same run (``fingerprint``) is there. Returns the per-epoch history (identical on every rank)."""
    model: CrossDomainModel = task.model
    opt = dist.optimizer(make_optimizer(model, cfg), task)
    history, start = _resume(model, opt, dist, ckpt_dir, fingerprint)
    forward = dist.wrap(task)
    for epoch in range(start.epoch, cfg.epochs):
        phase = cfg.phase(epoch)
        torch.manual_seed(cfg.seed * 100_003 + epoch * 101 + dist.rank)  # resumable: no carried RNG
        progress = _progress(dist, batches_per_epoch, epoch)
        t0 = time.perf_counter()
        stats = train_epoch(forward, frozen_in(model, phase), opt, dist,
                            train_batches(epoch, 0), progress)
        seconds = time.perf_counter() - t0
        if progress is not None:
            progress.close()
        row = {"epoch": epoch, "phase": phase, **stats, "seconds": round(seconds, 3),
               "examples_per_s": round(stats["examples"] / max(seconds, 1e-9), 1),
               **validate(model, dist, valid_batches(), cfg.k)}
        history.append(row)
        if dist.rank == 0:
            event(log, "train.epoch", **row)
            checkpoint.save(ckpt_dir, model, opt, checkpoint.Position(epoch + 1, 0), history, fingerprint)
            if on_checkpoint is not None:
                on_checkpoint(epoch)
        dist.barrier()
    return history


def params_digest(model: torch.nn.Module) -> torch.Tensor:
    """sha256 of every parameter's bytes, as 32 uint8: equal digests = bitwise-equal weights."""
    h = hashlib.sha256()
    for name, t in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return torch.frombuffer(bytearray(h.digest()), dtype=torch.uint8)


def _resume(model: nn.Module, opt: torch.optim.Optimizer, dist: Dist, ckpt_dir: str | Path,
            fingerprint: str) -> tuple[list[dict[str, Any]], checkpoint.Position]:
    state = checkpoint.load(ckpt_dir, dist.device)
    if state is None:
        dist.broadcast_parameters(model)  # every rank starts from rank 0's initialisation
        return [], checkpoint.Position()
    if state["fingerprint"] != fingerprint:
        raise ValueError(f"{ckpt_dir}: checkpoint belongs to another run (inputs or configuration "
                         "changed); use a fresh checkpoint directory")
    pos = checkpoint.restore(state, model, opt)
    if dist.rank == 0:
        event(log, "train.resume", epoch=pos.epoch, checkpoint=str(ckpt_dir))
    return state["history"], pos


def _progress(dist: Dist, total: int, epoch: int) -> Any:
    if dist.rank != 0 or not sys.stderr.isatty():
        return None
    from tqdm import tqdm

    return tqdm(total=total, desc=f"epoch {epoch}", unit="batch", leave=False)
