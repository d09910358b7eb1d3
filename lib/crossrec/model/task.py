"""Training tasks: a model's embeddings → a loss (torchrec's TwoTowerTrainTask idea).

A task is an ``nn.Module`` wrapping the model, so a data-parallel wrapper (DDP) wraps the task
and its ``forward`` returns the loss.
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from crossrec.schemas import columns as C

from .towers import CrossDomainModel

NEG_INF = -1e9


def history_mask(logits: Tensor, batch: dict[str, Tensor]) -> Tensor:
    """Items already in each example's history cannot be the next new item: mask them [B, N].

    The target itself is never masked (a repeat consumption stays learnable).
    """
    hist = batch[C.HIST_ITEM].masked_fill(~batch[C.HIST_MASK], -1)       # [B, L]
    hist = hist.masked_fill(hist == batch[C.ITEM_IDX].unsqueeze(1), -1)
    rows = torch.arange(logits.shape[0], device=logits.device).unsqueeze(1).expand_as(hist)
    keep = hist >= 0
    return logits.index_put((rows[keep], hist[keep]), torch.tensor(NEG_INF, device=logits.device))


def candidates(logits: Tensor, batch: dict[str, Tensor], item_domain: Tensor) -> Tensor:
    """Scores [B, N] of every item → only each example's candidates left: items of its target
    domain that are not already in its history (the rest at NEG_INF)."""
    other = item_domain.unsqueeze(0) != batch[C.DOMAIN_IDX].unsqueeze(1)
    return history_mask(logits.masked_fill(other, NEG_INF), batch)


def target_rank_stats(logits: Tensor, batch: dict[str, Tensor], item_domain: Tensor, k: int) -> Tensor:
    """[hits@k, ndcg@k, count] summed over the batch: each target ranked among its candidates
    (one held-out item per example), whatever model produced the scores [B, N]."""
    logits = candidates(logits, batch, item_domain)
    target = logits.gather(1, batch[C.ITEM_IDX].unsqueeze(1))
    rank = (logits > target).sum(1)                                      # 0 = best
    hit = (rank < k).double()
    ndcg = hit / torch.log2(rank.double() + 2)
    return torch.stack([hit.sum(), ndcg.sum(), torch.tensor(float(len(rank)), dtype=torch.float64,
                                                             device=hit.device)])


class TrainTask(nn.Module):
    """Base: ``forward(batch) → (loss, {stat: float})``; subclasses say which items compete."""

    registry: dict[str, Callable[..., "TrainTask"]] = {}

    def __init__(self, model: CrossDomainModel, delta_reg: float = 1e-3) -> None:
        super().__init__()
        self.model = model
        self.delta_reg = delta_reg

    def __init_subclass__(cls, name: str = "", **kw: object) -> None:
        super().__init_subclass__(**kw)
        if name:
            TrainTask.registry[name] = cls

    @staticmethod
    def create(kind: str, model: CrossDomainModel, **kw: object) -> "TrainTask":
        if kind not in TrainTask.registry:
            raise ValueError(f"unknown loss {kind!r}; choose from {sorted(TrainTask.registry)}")
        return TrainTask.registry[kind](model, **kw)

    def logits(self, batch: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
        raise NotImplementedError

    def forward(self, batch: dict[str, Tensor]) -> tuple[Tensor, dict[str, Tensor]]:
        logits, labels = self.logits(batch)
        ce = F.cross_entropy(logits, labels)
        reg = self.model.users.adapter.delta_penalty()
        return ce + self.delta_reg * reg, {"ce": ce.detach(), "delta": reg.detach()}


class FullSoftmaxTask(TrainTask, name="full"):
    """Softmax over every item of the example's target domain (cheap for ≤ ~10⁵ items per domain)."""

    def logits(self, batch: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
        vecs, bias = self.model.items.all()                              # [N, D], [N]
        u, _ = self.model(batch, vecs)                                   # [B, D]
        logits = candidates(u @ vecs.T + bias, batch, self.model.items.item_domain)  # [B, N]
        return logits, batch[C.ITEM_IDX]


class InBatchSoftmaxTask(TrainTask, name="in_batch"):
    """Sampled softmax with the batch's targets as negatives, logQ-corrected (Yi et al., RecSys'19).

    ``item_logq`` [N] is log of each item's share of training targets: popular items appear as
    negatives more often, and subtracting log q removes that bias.
    """

    def __init__(self, model: CrossDomainModel, item_logq: Tensor, delta_reg: float = 1e-3) -> None:
        super().__init__(model, delta_reg)
        self.register_buffer("item_logq", item_logq.float(), persistent=False)

    def logits(self, batch: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
        u, v = self.model(batch)                                         # [B, D] each
        items = batch[C.ITEM_IDX]
        logits = u @ v.T + (self.model.items.bias(items).squeeze(-1) - self.item_logq[items])
        dom = batch[C.DOMAIN_IDX]
        eye = torch.eye(len(items), dtype=torch.bool, device=items.device)
        clash = (dom.unsqueeze(1) != dom.unsqueeze(0)) | ((items.unsqueeze(1) == items.unsqueeze(0)) & ~eye)
        return logits.masked_fill(clash, NEG_INF), torch.arange(len(items), device=items.device)


@torch.no_grad()
def rank_metrics(model: CrossDomainModel, batch: dict[str, Tensor], k: int,
                 items: tuple[Tensor, Tensor] | None = None) -> Tensor:
    """[hits@k, ndcg@k, count] summed over the batch: each target ranked among its domain's items,
    history excluded (one held-out item per example). ``items``: precomputed ``model.items.all()``."""
    vecs, bias = items if items is not None else model.items.all()
    u, _ = model(batch, vecs)
    return target_rank_stats(u @ vecs.T + bias, batch, model.items.item_domain, k)
