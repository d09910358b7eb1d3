"""A planted cross-domain problem for model and training tests (no Spark, no files).

Items 0..P-1 are in domain 0 and P..2P-1 in domain 1. A user whose history holds item i of
domain 0 wants item P+i of domain 1: only a model that transfers from domain 0 to domain 1 can
rank the target first (chance is 1/P).
"""
from __future__ import annotations

import torch
from torch import Tensor

from crossrec.model import CrossDomainModel, ModelConfig
from crossrec.schemas import columns as C

P = 12
TEXT_DIM = 8


def planted_model(seed: int = 0, dim: int = 16, delta_rank: int = 4) -> CrossDomainModel:
    g = torch.Generator().manual_seed(seed)
    text = torch.nn.functional.normalize(torch.randn(2 * P, TEXT_DIM, generator=g), dim=1)
    item_domain = torch.cat([torch.zeros(P), torch.ones(P)]).long()
    torch.manual_seed(seed)
    cfg = ModelConfig(n_items=2 * P, n_domains=2, text_dim=TEXT_DIM, dim=dim, delta_rank=delta_rank,
                      hidden=32)
    return CrossDomainModel(cfg, text, item_domain)


def planted_batch(n: int, seed: int, length: int = 3) -> dict[str, Tensor]:
    """n examples: history [source item, padding...], target = its partner in domain 1."""
    g = torch.Generator().manual_seed(seed)
    src = torch.randint(0, P, (n,), generator=g)
    hist = torch.zeros(n, length, dtype=torch.long)
    hist[:, 0] = src
    mask = torch.zeros(n, length, dtype=torch.bool)
    mask[:, 0] = True
    return {C.USER_IDX: torch.arange(n), C.ITEM_IDX: src + P, C.DOMAIN_IDX: torch.ones(n, dtype=torch.long),
            C.HIST_ITEM: hist, C.HIST_DOMAIN: torch.zeros(n, length, dtype=torch.long),
            C.HIST_AGE: torch.full((n, length), 3.0) * mask, C.HIST_VALUE: torch.full((n, length), 5.0) * mask,
            C.HIST_MASK: mask}


def planted_batches(epoch: int, start: int = 0, n_batches: int = 20, size: int = 32) -> list[dict[str, Tensor]]:
    return [planted_batch(size, seed=1000 * epoch + b) for b in range(start, n_batches)]


def write_planted_examples(root, n_train: int = 2048, n_valid: int = 256, files: int = 2,
                           row_group: int = 256):
    """The planted problem as an EXAMPLES table on disk (split=train/ and split=valid/ folders)
    plus an ``inputs.safetensors`` with its text vectors, domains and log-popularity.
    Returns (train_dir, valid_dir, inputs_path)."""
    import datetime as dt
    from pathlib import Path

    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq
    from safetensors.torch import save_file

    from crossrec.schemas.training import EXAMPLES
    from crossrec.train.worker import ITEM_DOMAIN, ITEM_LOGQ, TEXT

    root = Path(root)
    schema = pa.schema([f for f in EXAMPLES.as_arrow_schema() if f.name != C.SPLIT])
    for split, n, seed in (("train", n_train, 1), ("valid", n_valid, 2)):
        b = planted_batch(n, seed=seed)
        mask = b[C.HIST_MASK].numpy()
        lists = {k: [row[m].tolist() for row, m in zip(b[k].numpy(), mask)]
                 for k in (C.HIST_ITEM, C.HIST_DOMAIN, C.HIST_AGE, C.HIST_VALUE)}
        table = pa.table({
            C.USER_IDX: np.arange(n, dtype=np.int32), C.SEQ: np.ones(n, dtype=np.int32),
            C.ITEM_IDX: b[C.ITEM_IDX].numpy().astype(np.int32),
            C.DOMAIN_IDX: b[C.DOMAIN_IDX].numpy().astype(np.int32),
            C.TS: [dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)] * n, **lists}, schema=schema)
        out = root / f"split={split}"
        out.mkdir(parents=True, exist_ok=True)
        per = -(-n // files)
        for f in range(files):
            pq.write_table(table.slice(f * per, per), out / f"part-{f:05d}.parquet", row_group_size=row_group)
    model = planted_model()
    counts = np.bincount(b[C.ITEM_IDX].numpy(), minlength=2 * P) + 1.0
    save_file({TEXT: model.items.text.clone(), ITEM_DOMAIN: model.items.item_domain.clone(),
               ITEM_LOGQ: torch.from_numpy(np.log(counts / counts.sum()).astype(np.float32))},
              str(root / "inputs.safetensors"))
    return str(root / "split=train"), str(root / "split=valid"), str(root / "inputs.safetensors")
