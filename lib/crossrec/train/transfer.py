"""The transfer model's training run (``train --model transfer``): the date's unified positives
-> θ_d for every catalog domain (:mod:`crossrec.model.transfer`), published as dataset ``model``
with the same two files as the towers, so scoring finds it the same way.

Artifact: ``weights.safetensors`` holds ``theta.<d>`` [V, n_d] float32 and ``columns.<d>`` [n_d]
int64 (the vocabulary positions of domain d's items) for each index d of ``domains``;
``model.json`` has ``model_config`` (``kind: "transfer"``, ``n_items`` = V and the fit's
settings), ``domains``, ``item_ids`` (the vocabulary: items with a positive, in item_idx order) and
``min_value`` (what a positive was, so scoring builds people's rows the same way).

The fit runs on the driver: the positives are collected (O(events)) and the solve is O(V³) in
O(V²) memory, which suits catalogs up to ~20,000 items (``max_items``).
"""
from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from safetensors.torch import save_file

from crossrec.errors import InputError
from crossrec.examples import target_flag
from crossrec.model.transfer import Profiles, TransferConfig, fit_domains
from crossrec.schemas import columns as C

from .artifact import META, WEIGHTS

KIND = "transfer"


def positives_arrays(events: DataFrame, min_value: float | None) -> dict[str, np.ndarray]:
    """The positives as numpy columns (user_idx, item_id, ts in µs): collected to the driver."""
    table = (events.where(target_flag(min_value))
             .select(C.USER_IDX, C.ITEM_ID, F.unix_micros(C.TS).alias(C.TS)).toArrow())
    return {c: table.column(c).to_numpy(zero_copy_only=False) for c in table.column_names}


def fit_transfer(events: DataFrame, items: DataFrame, cfg: TransferConfig, min_value: float | None,
                 max_items: int = 20_000) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """(tensors, model.json fields) of the transfer model fitted on ``events``' positives."""
    catalog = items.select(C.ITEM_IDX, C.ITEM_ID, C.DOMAIN).orderBy(C.ITEM_IDX).toPandas()
    names = sorted(catalog[C.DOMAIN].unique().tolist())
    pos = positives_arrays(events, min_value)
    row_of = dict(zip(catalog[C.ITEM_ID], range(len(catalog))))
    rows = np.array([row_of.get(i, -1) for i in pos[C.ITEM_ID]], dtype=np.int64)
    if (rows < 0).any():
        raise InputError(f"events: item_id {pos[C.ITEM_ID][rows < 0][0]!r} is not in the catalog")
    vocab = np.unique(rows)  # catalog rows with a positive, in item_idx order
    if len(vocab) > max_items:
        raise InputError(f"{len(vocab)} items with positives exceed max_items={max_items}: the "
                         "transfer model solves an items x items system on the driver")
    domain_of = np.searchsorted(names, catalog[C.DOMAIN].to_numpy()[vocab])
    cols = np.searchsorted(vocab, rows)
    profiles = Profiles.of(pos[C.USER_IDX], cols, domain_of[cols], pos[C.TS])
    columns = {d: np.flatnonzero(domain_of == d) for d in range(len(names))}
    fitted = fit_domains(profiles, len(vocab), columns, cfg)
    tensors = {}
    for d, (theta, _) in fitted.items():
        tensors[f"theta.{d}"] = torch.from_numpy(np.ascontiguousarray(theta))
        tensors[f"columns.{d}"] = torch.from_numpy(columns[d])
    meta = {"model_config": {"kind": KIND, "n_items": len(vocab), **asdict(cfg)},
            "domains": names, "item_ids": catalog[C.ITEM_ID].to_numpy()[vocab].tolist(),
            "min_value": min_value,
            "training_rows": {names[d]: n for d, (_, n) in fitted.items()},
            "people": len(profiles.users), "positives": len(cols)}
    return tensors, meta


def save_transfer(directory: str | Path, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> Path:
    """The artifact's two files, as :func:`crossrec.train.artifact.save_artifact` writes them."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(directory / WEIGHTS))
    (directory / META).write_text(json.dumps(meta, indent=2, sort_keys=True))
    return directory
