"""The training loop: phases, checkpoints, resume after a crash or a kill, safe loading, artifacts."""
from __future__ import annotations

import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from crossrec.model import TrainTask
from crossrec.train import checkpoint
from crossrec.train.artifact import WEIGHTS, load_artifact, save_artifact
from crossrec.train.dist import LocalDist
from crossrec.train.loop import TrainConfig, fit
from tests.modelfix import planted_batch, planted_batches, planted_model

ROOT = Path(__file__).resolve().parents[1]
CFG = TrainConfig(pretrain_epochs=3, finetune_epochs=2, lr=0.01, finetune_lr=0.01, k=1)


def train(ckpt: Path, seed: int = 7, cfg: TrainConfig = CFG, **kw):
    task = TrainTask.create("full", planted_model(seed=seed))
    history = fit(task, LocalDist(), cfg, planted_batches, 20, lambda: planted_batches(99, 0, 2),
                  ckpt, "planted-v1", **kw)
    return task.model, history


def snapshot(model) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items()}


def test_learns_and_logs_each_epoch(tmp_path):
    _, history = train(tmp_path)
    assert [h["phase"] for h in history] == ["pretrain"] * 3 + ["finetune"] * 2
    assert history[-1]["valid_recall@1"] > 0.8 and history[0]["valid_recall@1"] < 0.6
    assert all(h["examples"] == 20 * 32 and h["examples_per_s"] > 0 for h in history)


def test_phase_schedule(tmp_path):
    task = TrainTask.create("full", planted_model(seed=7))
    seen: dict[int, dict[str, torch.Tensor]] = {}
    fit(task, LocalDist(), CFG, planted_batches, 20, lambda: planted_batches(99, 0, 2), tmp_path,
        "planted-v1", on_checkpoint=lambda e: seen.__setitem__(e, snapshot(task.model)))
    delta = {n for n, _ in task.model.named_parameters() if n.startswith("users.adapter.")
             and n.split(".")[-1] in ("a", "b", "offset")}
    init = snapshot(planted_model(seed=7))
    for name in delta:  # frozen during pretraining
        assert torch.equal(seen[2][name], init[name]), name
    shared = [n for n, _ in task.model.named_parameters() if n not in delta]
    for name in shared:  # frozen during fine-tuning, trained before
        assert torch.equal(seen[4][name], seen[2][name]), name
    assert any(not torch.equal(seen[2][n], init[n]) for n in shared)
    assert any(not torch.equal(seen[4][n], seen[2][n]) for n in delta)


def test_crash_after_epoch_then_resume_equals_uninterrupted_run(tmp_path):
    whole, _ = train(tmp_path / "a")

    def crash(epoch: int) -> None:
        if epoch == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(tmp_path / "b", on_checkpoint=crash)
    assert checkpoint.load(tmp_path / "b")["epoch"] == 2
    resumed, history = train(tmp_path / "b", seed=123)  # the checkpoint, not the seed, decides
    assert [h["epoch"] for h in history] == [0, 1, 2, 3, 4]
    for k, v in whole.state_dict().items():
        assert torch.equal(v, resumed.state_dict()[k]), k


def test_sigkilled_run_resumes_to_the_same_weights(tmp_path):
    def run(ckpt: str, out: str, *extra: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "tests/train_runner.py", ckpt, out, *extra], cwd=ROOT,
                              capture_output=True, text=True, timeout=300)

    clean = run(str(tmp_path / "clean"), str(tmp_path / "clean.sha"))
    assert clean.returncode == 0, clean.stderr
    killed = run(str(tmp_path / "k"), str(tmp_path / "k.sha"), "--kill-after-epoch", "2")
    assert killed.returncode == -9 and not (tmp_path / "k.sha").exists()
    assert not [p for p in (tmp_path / "k").iterdir() if p.name != checkpoint.FILE]  # no temp left
    again = run(str(tmp_path / "k"), str(tmp_path / "k.sha"))
    assert again.returncode == 0, again.stderr
    assert "train.resume" in again.stderr and "train.resume" not in clean.stderr
    assert (tmp_path / "k.sha").read_text() == (tmp_path / "clean.sha").read_text()


class _Exploit:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_malicious_pickle_checkpoint_is_refused_and_never_runs(tmp_path):
    marker = tmp_path / "pwned"
    with open(tmp_path / checkpoint.FILE, "wb") as f:
        pickle.dump({"model": _Exploit(marker)}, f)
    with pytest.raises(checkpoint.UnsafeCheckpointError, match="refused"):
        checkpoint.load(tmp_path)
    with pytest.raises(checkpoint.UnsafeCheckpointError):
        train(tmp_path)
    assert not marker.exists()
    torch.save({"model": _Exploit(marker)}, tmp_path / checkpoint.FILE)  # torch's zip format too
    with pytest.raises(checkpoint.UnsafeCheckpointError):
        checkpoint.load(tmp_path)
    assert not marker.exists()


def test_a_checkpoint_of_another_run_is_not_resumed(tmp_path):
    train(tmp_path, cfg=TrainConfig(pretrain_epochs=1, finetune_epochs=0, k=1))
    task = TrainTask.create("full", planted_model())
    with pytest.raises(ValueError, match="another run"):
        fit(task, LocalDist(), CFG, planted_batches, 20, lambda: [], tmp_path, "other-run")


def test_artifact_round_trip_is_safetensors_and_reproduces_outputs(tmp_path):
    model, _ = train(tmp_path / "ckpt", cfg=TrainConfig(pretrain_epochs=1, finetune_epochs=1, k=1))
    save_artifact(tmp_path / "art", model, {"domains": ["a", "b"]})
    raw = (tmp_path / "art" / WEIGHTS).read_bytes()
    header = int.from_bytes(raw[:8], "little")
    assert raw[8:9] == b"{" and raw[8 + header - 1:8 + header].strip() in (b"}", b"")
    loaded, meta = load_artifact(tmp_path / "art")
    batch = planted_batch(8, seed=3)
    model.eval()
    assert meta["domains"] == ["a", "b"] and meta["model_config"]["dim"] == 16
    for a, b in zip(model(batch), loaded(batch)):
        assert torch.equal(a, b)
