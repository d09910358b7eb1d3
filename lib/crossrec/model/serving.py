"""Serving: what scoring needs from a trained model, computed once, without the loss or the optimiser.

Item vectors are a fixed table per model; user vectors are computed from history at scoring time
(the tower is inductive), so users who arrived after training get vectors too.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from .towers import CrossDomainModel


@dataclass(frozen=True)
class ItemEmbeddings:
    vectors: Tensor   # [N, D]
    bias: Tensor      # [N]
    domain: Tensor    # [N] domain_idx

    def of_domain(self, domain_idx: int) -> tuple[Tensor, Tensor, Tensor]:
        """(item indices [M], vectors [M, D], bias [M]) of one domain's items."""
        idx = (self.domain == domain_idx).nonzero().squeeze(1)
        return idx, self.vectors[idx], self.bias[idx]


@torch.no_grad()
def item_embeddings(model: CrossDomainModel) -> ItemEmbeddings:
    model.eval()
    vectors, bias = model.items.all()
    return ItemEmbeddings(vectors.contiguous(), bias.contiguous(), model.items.item_domain.clone())


@torch.no_grad()
def user_embeddings(model: CrossDomainModel, batch: dict[str, Tensor],
                    items: ItemEmbeddings | None = None) -> Tensor:
    """History batch (feed format) → user vectors [B, T, D], one per domain.

    Score of item i for a user in domain t: ``users[:, t] @ items.vectors[i] + items.bias[i]``."""
    model.eval()
    return model.user_vectors(batch, items.vectors if items is not None else None)
