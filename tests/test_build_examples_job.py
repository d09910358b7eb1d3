"""The build_examples job end to end on a fixture lake: published tables, manifest, layout, a
deterministic rerun, and the result read back with pyarrow and the feed."""
from __future__ import annotations

import json
from pathlib import Path

import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from crossrec.feed import ExampleFeed, FeedConfig, examples_dir
from crossrec.lake import Lake
from crossrec.schemas import columns as C
from crossrec.schemas.lake import UNIFIED
from crossrec.schemas.training import DOMAINS, EXAMPLES, EXAMPLES_DATASET
from jobs import build_examples
from tests.lakefix import event, item, publish_unified

DATE = "2026-01-01"
ITEMS = [item("c1", "comedy", 0), item("d1", "drama", 1), item("d2", "drama", 2),
         item("d3", "drama", 3)]
_IDS = {0: "c1", 1: "d1", 2: "d2", 3: "d3"}


def _ev(user: int, seq: int, item_idx: int, days: float, value: float | None) -> dict:
    domain = "comedy" if item_idx == 0 else "drama"
    return event(user, seq, item_idx, _IDS[item_idx], domain, days, value)


# user 0: 6 events, 5 positives (>= 4); user 1: 2 positives; user 2: one positive, one low rating
EVENTS = [
    _ev(0, 0, 0, 0, 5.0), _ev(0, 1, 1, 1, 4.0), _ev(0, 2, 2, 2, 2.0), _ev(0, 3, 3, 3, 4.5),
    _ev(0, 4, 1, 4, 5.0), _ev(0, 5, 0, 5, 4.0),
    _ev(1, 0, 3, 0, 4.0), _ev(1, 1, 2, 1, 5.0),
    _ev(2, 0, 1, 0, 1.0), _ev(2, 1, 0, 2, 4.0),
]


@pytest.fixture(scope="module")
def lake(spark, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("lake")
    publish_unified(spark, root, DATE, ITEMS, EVENTS)
    return root


def _run(lake: Path, *args: str) -> int:
    return build_examples.main(["--lake", str(lake), "--run-date", DATE, *args])


def _examples(lake: Path, split: str) -> list[dict]:
    path = examples_dir(Lake.open(str(lake)).path(EXAMPLES, DATE), split)
    rows = ds.dataset(path, format="parquet").to_table().to_pylist()
    return sorted(rows, key=lambda r: (r[C.USER_IDX], r[C.SEQ]))


def test_publishes_examples_and_domains(spark, lake, capsys):
    assert _run(lake, "--max-history", "3", "--valid-frac", "0.25", "--rows-per-group", "2") == 0
    summary = json.loads(capsys.readouterr().out)
    m = Lake.open(str(lake)).manifest(EXAMPLES_DATASET, DATE)
    unified = Lake.open(str(lake)).manifest(UNIFIED, DATE)
    assert summary["run_id"] == m.run_id and summary["version"] == m.version
    assert m.extra["unified"] == {"run_date": DATE, "version": unified.version,
                                  "run_id": unified.run_id}
    assert m.extra["params"] == {"max_history": 3, "min_value": 4.0, "valid_frac": 0.25,
                                 "rows_per_group": 2}
    train, valid = _examples(lake, "train"), _examples(lake, "valid")
    assert m.extra["rows"] == {"train": len(train), "valid": len(valid)}
    assert m.tables[EXAMPLES.name]["rows"] == len(train) + len(valid) == 8  # the positives
    # user 0: quota ceil(0.25 * 5) = 2 (seq 4, 5); user 1: ceil(0.5) = 1 (seq 1); user 2: 1 target
    assert [(r[C.USER_IDX], r[C.SEQ]) for r in valid] == [(0, 4), (0, 5), (1, 1)]
    last = valid[1]
    assert last[C.HIST_ITEM] == [1, 3, 2] and last[C.HIST_AGE] == [1.0, 2.0, 3.0]
    assert last[C.HIST_VALUE] == [5.0, 4.5, 2.0] and last[C.HIST_DOMAIN] == [1, 1, 1]
    domains = pq.read_table(Lake.open(str(lake)).path(DOMAINS, DATE)).to_pylist()
    assert domains == [  # n_targets: train split only
        {C.DOMAIN_IDX: 0, C.DOMAIN: "comedy", C.N_ITEMS: 1, C.N_TARGETS: 2},
        {C.DOMAIN_IDX: 1, C.DOMAIN: "drama", C.N_ITEMS: 3, C.N_TARGETS: 3}]
    files = sorted(Path(examples_dir(summary["tables"]["examples"]["path"][7:], "train"))
                   .glob("part-*.parquet"))
    assert len(files) > 1  # several files (row groups) for the feed to shard


def test_the_feed_reads_the_published_train_split(spark, lake):
    assert _run(lake, "--max-history", "3", "--rows-per-group", "2") == 0
    path = examples_dir(Lake.open(str(lake)).path(EXAMPLES, DATE), "train")
    feed = ExampleFeed(FeedConfig(path, batch_size=2, max_history=4, shuffle_buffer=2))
    batches = list(feed.epoch(0))
    assert len(batches) == feed.batches_per_epoch() == len(_examples(lake, "train")) // 2
    written = {(r[C.USER_IDX], r[C.ITEM_IDX], tuple(r[C.HIST_ITEM]))
               for r in _examples(lake, "train")}
    fed = [(int(b[C.USER_IDX][r]), int(b[C.ITEM_IDX][r]),
            tuple(b[C.HIST_ITEM][r][b[C.HIST_MASK][r]].tolist())) for b in batches for r in range(2)]
    assert sorted(fed) == sorted(written)  # 6 train examples, 3 batches, nothing dropped


def test_rerun_is_deterministic_and_min_value_none(spark, lake, capsys):
    def files() -> list[list[dict]]:
        root = Path(Lake.open(str(lake)).path(EXAMPLES, DATE)[len("file://"):])
        return [pq.read_table(f).to_pylist() for f in sorted(root.rglob("part-*.parquet"))]

    assert _run(lake, "--rows-per-group", "3") == 0
    first, run_id = files(), json.loads(capsys.readouterr().out)["run_id"]
    assert _run(lake, "--rows-per-group", "3", "--force") == 0  # unforced, it is skipped
    assert files() == first and json.loads(capsys.readouterr().out)["run_id"] == run_id
    assert _run(lake, "--min-value", "none", "--valid-frac", "0") == 0
    assert json.loads(capsys.readouterr().out)["rows"] == {"train": len(EVENTS), "valid": 0}


def test_missing_unified_date_and_bad_arguments(spark, tmp_path, capsys):
    assert build_examples.main(["--lake", str(tmp_path), "--run-date", DATE]) == 2
    for bad, message in ((["--valid-frac", "1"], "--valid-frac"),
                         (["--min-value", "high"], "--min-value"),
                         (["--max-history", "0"], "--max-history")):
        with pytest.raises(SystemExit) as e:
            build_examples.main(["--lake", str(tmp_path), "--run-date", DATE, *bad])
        assert e.value.code == 2 and message in capsys.readouterr().err
