"""The score job end to end: a model published for day 1 scores day 2's lake, where new users and
a new item have appeared; the output is published by domain; a rerun with unchanged inputs
publishes nothing, and a forced rerun replaces it exactly."""
from __future__ import annotations

import dataclasses
import json
import random
from pathlib import Path

import numpy as np
import pytest
import torch

from crossrec.lake import Lake
from crossrec.model import CrossDomainModel, ModelConfig
from crossrec.schemas import columns as C
from crossrec.schemas.lake import EVENTS
from crossrec.schemas.scoring import RECOMMENDATIONS, RECOMMENDATIONS_DATASET, SOURCE_MODEL
from crossrec.schemas.training import MODEL
from crossrec.train.artifact import save_artifact
from jobs import score
from tests.lakefix import event, item, publish_unified

DAY1, DAY2 = "2026-01-01", "2026-01-02"
DOMAINS = ("comedy", "drama")


def lake_rows(n_users: int, new_item: bool) -> tuple[list, list]:
    items = [item(f"{d[0]}{i}", d, 0) for d in DOMAINS for i in range(5)]
    items += [item("c9", "comedy", 0)] if new_item else []
    for idx, row in enumerate(sorted(items, key=lambda r: r[C.ITEM_ID])):
        row[C.ITEM_IDX] = idx
    rng = random.Random(n_users)
    events = []
    for u in range(n_users):
        for seq, it in enumerate(rng.sample(items, 3)):
            events.append(event(u, seq, it[C.ITEM_IDX], it[C.ITEM_ID], it[C.DOMAIN], seq))
    return items, events


def publish_model(root: Path, items: list[dict]) -> None:
    ids = [r[C.ITEM_ID] for r in sorted(items, key=lambda r: r[C.ITEM_IDX])]
    domain = torch.tensor([DOMAINS.index(r[C.DOMAIN]) for r in sorted(items, key=lambda r: r[C.ITEM_IDX])])
    torch.manual_seed(0)
    model = CrossDomainModel(ModelConfig(len(ids), 2, 4, dim=8, delta_rank=2, hidden=16),
                             torch.randn(len(ids), 4), domain)
    lake = Lake.open(str(root))
    staging = lake.stage(MODEL, DAY1, "fixture")
    save_artifact(staging.dir.removeprefix("file://"), model,
                  {"domains": list(DOMAINS), "item_ids": ids, "max_history": 2})
    lake.commit(staging, "fixture", {"artifact": {"files": ["weights.safetensors", "model.json"]}})


@pytest.fixture(scope="module")
def lake_root(spark, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("scorejob") / "lake"
    items1, events1 = lake_rows(6, new_item=False)
    publish_unified(spark, root, DAY1, items1, events1)
    publish_model(root, items1)
    publish_unified(spark, root, DAY2, *lake_rows(9, new_item=True))  # users 6..8 are new
    return root


def run_score(root: Path, capsys, *extra: str) -> tuple[int, dict]:
    capsys.readouterr()
    code = score.main(["--lake", str(root), "--run-date", DAY2, "--k", "3", "--partitions", "2",
                       *extra])
    out = capsys.readouterr().out
    return code, (json.loads(out) if code == 0 else {})


def test_scores_new_users_skips_new_items_skips_reruns_and_forced_reruns_identically(spark, lake_root, capsys):
    code, summary = run_score(lake_root, capsys)
    assert code == 0, summary
    assert summary["model"]["run_date"] == DAY1 and summary["skipped"]["unknown_items"] == 1
    lake = Lake.open(str(lake_root))
    df = lake.read(spark, RECOMMENDATIONS, DAY2)
    on_disk = spark.read.parquet(lake.path(RECOMMENDATIONS, DAY2)).schema  # Parquet reads nullable
    assert sorted((f.name, f.dataType) for f in on_disk) == \
        sorted((f.name, f.dataType) for f in RECOMMENDATIONS.as_spark_schema())
    rows = sorted(tuple(r) for r in df.select(RECOMMENDATIONS.columns).collect())
    assert summary["tables"][RECOMMENDATIONS.name]["rows"] == len(rows)
    lists = {(r[1], r[2]) for r in rows}
    assert lists == {(u, d) for u in range(9) for d in DOMAINS}  # new users 6..8 included
    assert all(r[4] != "c9" and r[7] == SOURCE_MODEL for r in rows)
    _, events = lake_rows(9, new_item=True)
    consumed = {(e[C.USER_IDX], e[C.ITEM_ID]) for e in events}
    assert not any((r[1], r[4]) in consumed for r in rows)
    # 5 items per domain known to the model, 3 consumed across both domains: min(3, available)
    for u, d in lists:
        available = 5 - sum(1 for e in events if e[C.USER_IDX] == u and e[C.DOMAIN] == d
                            and e[C.ITEM_ID] != "c9")
        assert sum(1 for r in rows if (r[1], r[2]) == (u, d)) == min(3, available)
    first = lake.manifest(RECOMMENDATIONS_DATASET, DAY2)

    code, again = run_score(lake_root, capsys)  # unchanged inputs: nothing published
    assert code == 0 and again["run_id"] == summary["run_id"]
    assert lake.manifest(RECOMMENDATIONS_DATASET, DAY2).version == first.version
    code, forced = run_score(lake_root, capsys, "--force")
    assert code == 0 and forced["run_id"] == summary["run_id"]
    assert lake.manifest(RECOMMENDATIONS_DATASET, DAY2).version != first.version
    df2 = lake.read(spark, RECOMMENDATIONS, DAY2)
    assert sorted(tuple(r) for r in df2.select(RECOMMENDATIONS.columns).collect()) == rows
    assert summary["events_read_by"] == forced["events_read_by"] == "tasks"


def _nowhere(url: str, tasks: int = 1) -> None:
    raise OSError(f"{url}: no libhdfs here")


def _elsewhere(listed):
    """``event_pieces`` whose pieces the driver opened but the tasks cannot (as an executor
    without libhdfs or the object store's credentials)."""
    return lambda url, tasks=1: [dataclasses.replace(piece, path=piece.path + ".elsewhere")
                                 for piece in listed(url, tasks)]


@pytest.mark.parametrize("where", ["driver", "executor"])
def test_events_pyarrow_cannot_open_go_through_spark_to_the_same_rows(spark, lake_root, capsys,
                                                                      monkeypatch, where):
    code, summary = run_score(lake_root, capsys, "--force")
    assert code == 0 and summary["events_read_by"] == "tasks"
    lake = Lake.open(str(lake_root))
    read = lambda: sorted(tuple(r) for r in lake.read(spark, RECOMMENDATIONS, DAY2)  # noqa: E731
                          .select(RECOMMENDATIONS.columns).collect())
    rows = read()
    # an executor's failure is found by the popularity pass, before any scoring
    monkeypatch.setattr(score, "event_pieces",
                        _nowhere if where == "driver" else _elsewhere(score.event_pieces))
    code, summary = run_score(lake_root, capsys, "--force")
    assert code == 0 and summary["events_read_by"] == "spark"
    other = read()
    # blocks of other users take other GEMM kernels: the same lists, scores to float rounding
    score_at = RECOMMENDATIONS.columns.index(C.SCORE)
    strip = lambda rows: [r[:score_at] + r[score_at + 1:] for r in rows]  # noqa: E731
    assert strip(other) == strip(rows)
    np.testing.assert_allclose([r[score_at] for r in other], [r[score_at] for r in rows], rtol=1e-5)


def test_the_screen_changes_no_row_and_no_run_id(spark, lake_root, capsys):
    """The screen only picks candidates, scored exactly after: bf16 and fp32 publish the same
    rows, scores too, under the same run id."""
    lake = Lake.open(str(lake_root))
    got = {}
    for screen in ("bf16", "fp32"):
        code, summary = run_score(lake_root, capsys, "--force", "--screen", screen)
        assert code == 0 and summary["params"]["screen"] == screen
        got[screen] = (summary["run_id"], sorted(
            tuple(r) for r in lake.read(spark, RECOMMENDATIONS, DAY2).select(RECOMMENDATIONS.columns)
            .collect()))
    assert got["bf16"] == got["fp32"] and got["bf16"][1]


def test_one_domain_and_input_errors(spark, lake_root, capsys, caplog):
    code, summary = run_score(lake_root, capsys, "--domains", "drama")
    assert code == 0 and summary["params"]["domains"] == ["drama"]
    assert run_score(lake_root, capsys, "--model-date", DAY2)[0] == 2
    assert "no published 'model'" in caplog.text
    assert run_score(lake_root, capsys, "--domains", "books")[0] == 2
    assert "trained on" in caplog.text
    assert run_score(lake_root, capsys, "--model-version", "nope")[0] == 2
    with pytest.raises(SystemExit):
        score.parse_args(["--lake", "x", "--run-date", DAY2, "--k", "0"])


# out of order: the planning pass (popularity) finds it; a field only scoring reads: scoring does
@pytest.mark.parametrize("spoil, message", [
    (lambda t: t.take(list(range(t.num_rows))[::-1]),
     "{name}: row 1: fields 'user_idx', 'seq' not in ascending order"),
    (lambda t: t.drop_columns([C.VALUE]), "{name}: fields ['value'] missing")])
def test_bad_events_files_exit_2_naming_the_file(spark, tmp_path, capsys, caplog, spoil, message):
    import pyarrow.parquet as pq

    root = tmp_path / "lake"
    items, events = lake_rows(6, new_item=False)
    publish_unified(spark, root, DAY1, items, events)
    publish_model(root, items)
    lake = Lake.open(str(root))
    part = next(Path(lake.path(EVENTS, DAY1).removeprefix("file://")).glob("part-*.parquet"))
    pq.write_table(spoil(pq.read_table(part)), part)
    capsys.readouterr()
    code = score.main(["--lake", str(root), "--run-date", DAY1, "--k", "3"])
    assert code == 2
    assert message.format(name=part.name) in caplog.text
    assert "Traceback" not in caplog.text
    assert lake.manifest(RECOMMENDATIONS_DATASET, DAY1) is None   # nothing published
