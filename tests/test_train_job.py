"""The train job end to end on a fixture lake: build_examples → embed_items (hashing encoder) →
train → a published, loadable artifact; rerunning the same command resumes instead of retraining."""
from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import torch

from crossrec.feed import ExampleFeed, FeedConfig, examples_dir
from crossrec.lake import Lake
from crossrec.schemas.training import EXAMPLES, MODEL
from crossrec.train.artifact import load_artifact
from crossrec.train.job import artifact_dir
from jobs import build_examples, embed_items, train
from tests.lakefix import event, item, publish_unified

DATE = "2026-01-01"
DOMAINS = ("comedy", "drama")


def fixture_rows(n_users: int = 40, per_domain: int = 6) -> tuple[list, list]:
    items = [item(f"{d[0]}{i}", d, k * per_domain + i) for k, d in enumerate(DOMAINS) for i in range(per_domain)]
    rng = random.Random(3)
    events = []
    for u in range(n_users):
        picks = rng.sample(range(len(items)), 6)
        for seq, idx in enumerate(picks):
            it = items[idx]
            events.append(event(u, seq, idx, it["item_id"], it["domain"], seq + 0.5, rng.choice([3.0, 4.0, 5.0])))
    return items, events


@pytest.fixture(scope="module")
def lake_root(spark, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("trainjob") / "lake"
    items, events = fixture_rows()
    publish_unified(spark, root, DATE, items, events)
    assert build_examples.main(["--lake", str(root), "--run-date", DATE, "--max-history", "5",
                                "--rows-per-group", "64"]) == 0
    return root


ARGS = ["--pretrain-epochs", "2", "--finetune-epochs", "1", "--batch-size", "16", "--dim", "8",
        "--hidden", "16", "--delta-rank", "2", "--max-history", "5"]


def run_train(root: Path, work: Path, capsys, *extra: str) -> tuple[int, dict]:
    capsys.readouterr()
    code = train.main(["--lake", str(root), "--run-date", DATE, "--work-dir", str(work), *ARGS, *extra])
    out = capsys.readouterr().out
    return code, (json.loads(out) if code == 0 else {})


def test_missing_item_text_is_a_clear_input_error(lake_root, tmp_path, capsys, caplog):
    assert run_train(lake_root, tmp_path / "w", capsys)[0] == 2
    assert "item_text" in caplog.text and "embed_items" in caplog.text


def test_trains_publishes_and_resumes(lake_root, tmp_path, capsys, spark):
    assert embed_items.main(["--lake", str(lake_root), "--run-date", DATE, "--encoder", "hash:32"]) == 0
    code, summary = run_train(lake_root, tmp_path / "w", capsys)
    assert code == 0 and [h["epoch"] for h in summary["history"]] == [0, 1, 2]
    lake = Lake.open(str(lake_root))
    manifest = lake.manifest(MODEL, DATE)
    assert manifest.extra["inputs"]["item_text"]["version"]
    model, meta = load_artifact(Path(artifact_dir(lake, DATE).removeprefix("file://")))
    assert meta["domains"] == sorted(DOMAINS) and meta["encoder"] == "hash:32"
    assert meta["model_config"]["n_items"] == 12 and meta["model_config"]["text_dim"] == 32
    assert meta["item_ids"] == [r["item_id"] for r in sorted(fixture_rows()[0], key=lambda r: r["item_idx"])]
    assert meta["max_history"] == 5  # what scoring rebuilds histories with

    batch = next(ExampleFeed(FeedConfig(examples_dir(lake.path(EXAMPLES, DATE), "valid"), 4, 5)).epoch(0))
    with torch.no_grad():
        users = model.user_vectors(batch)
    assert users.shape == (4, 2, 8) and torch.isfinite(users).all()

    # same command again: the checkpoint says all epochs are done, so nothing is retrained
    code, again = run_train(lake_root, tmp_path / "w", capsys)
    assert code == 0 and again["history"] == summary["history"]
    twin, _ = load_artifact(Path(artifact_dir(lake, DATE).removeprefix("file://")))
    for k, v in model.state_dict().items():
        assert torch.equal(v, twin.state_dict()[k]), k
