"""Driver-side preparation of what every rank needs besides the examples (Spark in, arrays out).

``item_arrays`` aligns the frozen text vectors, each item's domain index and its training
log-popularity by ``item_idx``, checking that every catalog item has exactly one vector.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch
from safetensors.torch import save_file

from crossrec.errors import InputError
from crossrec.schemas import columns as C

from .worker import ITEM_DOMAIN, ITEM_LOGQ, TEXT


def item_arrays(items: Any, domains: Any, vectors: Any, train_examples: Any) -> dict[str, np.ndarray]:
    """items (ITEMS), domains (DOMAINS), vectors (ITEM_VECTORS), train examples → arrays [N, ...]."""
    from pyspark.sql import functions as F

    counts = train_examples.groupBy(C.ITEM_IDX).agg(F.count("*").alias("n"))
    rows = (items.select(C.ITEM_IDX, C.ITEM_ID, C.DOMAIN)
            .join(domains.select(C.DOMAIN, C.DOMAIN_IDX), C.DOMAIN, "left")
            .join(vectors.select(C.ITEM_IDX, C.VECTOR, F.col(C.ITEM_ID).alias("vector_item")),
                  C.ITEM_IDX, "left")
            .join(counts, C.ITEM_IDX, "left")
            .orderBy(C.ITEM_IDX).toPandas())
    n = len(rows)
    if n == 0:
        raise InputError("the items table is empty")
    if not np.array_equal(rows[C.ITEM_IDX].to_numpy(), np.arange(n)):
        raise InputError("items: item_idx is not dense 0..N-1 (or an item has two text vectors)")
    missing = rows[rows[C.VECTOR].isna()][C.ITEM_ID].head(5).tolist()
    if missing:
        raise InputError(f"item_vectors: no text vector for items {missing} ...: rerun embed_items "
                         "for this catalog")
    stale = rows[rows["vector_item"] != rows[C.ITEM_ID]][C.ITEM_ID].head(5).tolist()
    if stale:
        raise InputError(f"item_vectors were embedded for another catalog (items {stale} moved); "
                         "rerun embed_items")
    unknown = rows[rows[C.DOMAIN_IDX].isna()][C.DOMAIN].unique().tolist()
    if unknown:
        raise InputError(f"domains: items have domains {unknown[:5]} the examples' domain table lacks")
    counts = rows["n"].fillna(0).to_numpy(dtype=np.float64) + 1.0  # add-one: unseen items stay finite
    return {TEXT: np.stack(rows[C.VECTOR].to_numpy()).astype(np.float32),
            ITEM_DOMAIN: rows[C.DOMAIN_IDX].to_numpy(dtype=np.int64),
            ITEM_LOGQ: np.log(counts / counts.sum()).astype(np.float32)}


def write_inputs(arrays: dict[str, np.ndarray], path: str) -> None:
    save_file({k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in arrays.items()}, path)
