"""Model artifacts: safetensors weights + JSON metadata, never a pickle.

An artifact directory holds ``weights.safetensors`` (the model's state dict, frozen text vectors
included, so serving needs nothing else) and ``model.json`` (model and training configuration,
domain vocabulary, versions of the inputs, training metrics).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from crossrec.model import CrossDomainModel, ModelConfig

WEIGHTS = "weights.safetensors"
META = "model.json"


def save_artifact(directory: str | Path, model: CrossDomainModel, meta: dict[str, Any]) -> Path:
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(directory / WEIGHTS))
    (directory / META).write_text(json.dumps({"model_config": model.cfg.to_dict(), **meta},
                                             indent=2, sort_keys=True))
    return directory


def load_artifact(directory: str | Path, device: str | torch.device = "cpu") -> tuple[CrossDomainModel, dict[str, Any]]:
    """(model in eval mode, metadata) from an artifact directory."""
    directory = Path(directory)
    meta = json.loads((directory / META).read_text())
    state = load_file(str(directory / WEIGHTS), device=str(device))
    cfg = ModelConfig(**meta["model_config"])
    model = CrossDomainModel(cfg, state["items.text"], state["items.item_domain"])
    model.load_state_dict(state)
    return model.to(device).eval(), meta
