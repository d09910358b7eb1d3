"""One training function, three launchers: local, TorchDistributor (DDP) and Horovod.

The distributed ones run 2 CPU processes (gloo) on the session's local[2] Spark; every rank
returns the sha256 of its final parameters, and they must be identical, trained (different from
the initial weights) and equal to nothing a single-process run of another seed gives.
"""
from __future__ import annotations

import os

import pytest

from crossrec.train.launch import Launcher
from crossrec.train.loop import TrainConfig, params_digest
from crossrec.train.worker import TrainSpec, build_task
from tests.modelfix import write_planted_examples

CFG = TrainConfig(pretrain_epochs=2, finetune_epochs=1, batch_size=128, lr=0.01, dim=16, hidden=32,
                  delta_rank=4, max_history=3, shuffle_buffer=512, k=1)


def spec_for(tmp_path, name: str, cfg: TrainConfig = CFG) -> TrainSpec:
    train, valid, inputs = write_planted_examples(tmp_path / "data")
    return TrainSpec(train_dir=train, valid_dir=valid, inputs=inputs, ckpt_dir=str(tmp_path / name / "ckpt"),
                     out_dir=str(tmp_path / name / "artifact"), n_domains=2, config=cfg,
                     fingerprint=name, threads=1)


def initial_digest(spec: TrainSpec) -> str:
    from safetensors.torch import load_file

    task = build_task(spec.config, spec.n_domains, load_file(spec.inputs))
    return bytes(params_digest(task.model).tolist()).hex()


def check(result: dict, spec: TrainSpec, world: int) -> None:
    digests = result["param_sha256"]
    assert result["world_size"] == world and len(digests) == world
    assert len(set(digests)) == 1, f"ranks diverged: {digests}"
    assert digests[0] != initial_digest(spec)
    history = result["history"]
    assert [h["epoch"] for h in history] == [0, 1, 2]
    assert history[-1]["loss"] < history[0]["loss"]
    assert history[-1]["valid_recall@1"] > 0.5
    assert os.path.exists(os.path.join(spec.out_dir, "weights.safetensors"))


def test_local_launcher(tmp_path):
    spec = spec_for(tmp_path, "local")
    check(Launcher.create("local").run(spec), spec, 1)


def test_torch_distributor_two_processes_end_identical(spark, tmp_path):
    spec = spec_for(tmp_path, "torch")
    check(Launcher.create("torch", num_proc=2, spark=spark).run(spec), spec, 2)


def test_horovod_two_processes_end_identical(spark, tmp_path):
    if os.environ.get("CROSSREC_SKIP_HOROVOD") == "1":
        pytest.skip("CROSSREC_SKIP_HOROVOD=1: horovod not built")
    spec = spec_for(tmp_path, "horovod")
    check(Launcher.create("horovod", num_proc=2, spark=spark).run(spec), spec, 2)


def test_local_launcher_refuses_more_processes():
    with pytest.raises(ValueError, match="torch or horovod"):
        Launcher.create("local", num_proc=2).run(None)
