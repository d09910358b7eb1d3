"""The one training function every launcher runs, on every rank.

``train_worker(spec_json, backend)`` takes only a JSON string (so Spark, TorchDistributor and
Horovod can ship it anywhere) and reads its inputs from paths: the examples (via the feed) and
``inputs.safetensors`` (frozen item text vectors, item domains, item log-popularity).
"""
from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass
from typing import Any

import torch
from safetensors.torch import load_file

from crossrec.feed import ExampleFeed, FeedConfig
from crossrec.model import CrossDomainModel, ModelConfig, TrainTask

from .artifact import save_artifact
from .dist import Dist
from .loop import TrainConfig, fit, params_digest

TEXT, ITEM_DOMAIN, ITEM_LOGQ = "text", "item_domain", "item_logq"


@dataclass(frozen=True)
class TrainSpec:
    """Everything a rank needs, as paths and values."""

    train_dir: str
    valid_dir: str
    inputs: str            # safetensors: text [N, E], item_domain [N], item_logq [N]
    ckpt_dir: str
    out_dir: str           # rank 0 writes the artifact here
    n_domains: int
    config: TrainConfig
    fingerprint: str
    meta: dict[str, Any] = dataclasses.field(default_factory=dict)  # copied into model.json
    threads: int = 0       # torch threads per rank; 0: the node's cores / local ranks

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @staticmethod
    def from_json(text: str) -> "TrainSpec":
        raw = json.loads(text)
        return TrainSpec(**{**raw, "config": TrainConfig(**raw["config"])})


def build_task(cfg: TrainConfig, n_domains: int, inputs: dict[str, torch.Tensor]) -> TrainTask:
    text = inputs[TEXT]
    mcfg = ModelConfig(n_items=text.shape[0], n_domains=n_domains, text_dim=text.shape[1],
                       dim=cfg.dim, delta_rank=cfg.delta_rank, hidden=cfg.hidden)
    torch.manual_seed(cfg.seed)
    model = CrossDomainModel(mcfg, text, inputs[ITEM_DOMAIN])
    extra = {"item_logq": inputs[ITEM_LOGQ]} if cfg.loss == "in_batch" else {}
    return TrainTask.create(cfg.loss, model, delta_reg=cfg.delta_reg, **extra)


def feeds(spec: TrainSpec, dist: Dist) -> tuple[ExampleFeed, ExampleFeed]:
    cfg = spec.config
    train = ExampleFeed(FeedConfig(spec.train_dir, cfg.batch_size, cfg.max_history,
                                   cfg.shuffle_buffer, cfg.seed), dist.rank, dist.size)
    valid = ExampleFeed(FeedConfig(spec.valid_dir, cfg.batch_size, cfg.max_history, 1, cfg.seed,
                                   drop_last=False), dist.rank, dist.size)
    return train, valid


def train_worker(spec_json: str, backend: str) -> dict[str, Any]:
    """Train on this rank; returns the history and every rank's parameter digest (hex)."""
    spec = TrainSpec.from_json(spec_json)
    dist = Dist.create(backend)
    try:
        torch.set_num_threads(spec.threads or max(1, (os.cpu_count() or 1) // dist.local_size))
        task = build_task(spec.config, spec.n_domains, load_file(spec.inputs)).to(dist.device)
        train, valid = feeds(spec, dist)
        history = fit(task, dist, spec.config, train.epoch, train.batches_per_epoch(),
                      lambda: valid.epoch(0), spec.ckpt_dir, spec.fingerprint)
        digests = dist.allgather(params_digest(task.model).to(dist.device)).cpu()
        if dist.rank == 0:
            save_artifact(spec.out_dir, task.model, {**spec.meta, "train_config": spec.config.to_dict(),
                                                     "history": history, "world_size": dist.size})
        dist.barrier()
        return {"history": history, "world_size": dist.size, "rank": dist.rank,
                "param_sha256": [bytes(d.tolist()).hex() for d in digests]}
    finally:
        dist.close()
