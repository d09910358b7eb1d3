"""The feed on small Parquet files with several row groups: batch shapes and padding, sharding
(each example once per epoch over all ranks, ranks disjoint, equal batch counts), determinism,
resume at a batch, read-ahead."""
from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from crossrec.feed import ExampleFeed, FeedConfig, examples_dir
from crossrec.schemas import columns as C
from crossrec.schemas.training import EXAMPLES

GROUPS = {"part-00000.parquet": [50, 30, 45], "part-00001.parquet": [64, 11]}  # 200 rows
N_ROWS = 200
SCHEMA = pa.schema([f for f in EXAMPLES.as_arrow_schema() if f.name != C.SPLIT])


def _length(i: int) -> int:
    return i % 7  # 0..6: some histories shorter than L=4, some longer


def _rows(ids: range) -> pa.Table:
    """Example i: user_idx i, item_idx 2i, history j of length i % 7 holds 10i + j."""
    hist = [[10 * i + j for j in range(_length(i))] for i in ids]
    return pa.table({
        C.USER_IDX: pa.array(list(ids), pa.int32()),
        C.SEQ: pa.array([0] * len(ids), pa.int32()),
        C.ITEM_IDX: pa.array([2 * i for i in ids], pa.int32()),
        C.DOMAIN_IDX: pa.array([i % 3 for i in ids], pa.int32()),
        C.TS: pa.array([i * 1_000_000 for i in ids], pa.timestamp("us", tz="UTC")),
        C.HIST_ITEM: pa.array(hist, pa.list_(pa.int32())),
        C.HIST_DOMAIN: pa.array([[j % 3 for j in range(len(h))] for h in hist],
                                pa.list_(pa.int32())),
        C.HIST_AGE: pa.array([[j + 0.5 for j in range(len(h))] for h in hist],
                             pa.list_(pa.float32())),
        C.HIST_VALUE: pa.array([[float(i % 5)] * len(h) for i, h in zip(ids, hist)],
                               pa.list_(pa.float32())),
    }).cast(SCHEMA)


@pytest.fixture(scope="module")
def split_dir(tmp_path_factory: pytest.TempPathFactory) -> str:
    root = tmp_path_factory.mktemp("examples") / "examples"
    folder = Path(examples_dir(str(root), "train"))
    folder.mkdir(parents=True)
    start = 0
    for name, sizes in GROUPS.items():
        with pq.ParquetWriter(folder / name, SCHEMA) as writer:
            for size in sizes:
                writer.write_table(_rows(range(start, start + size)))
                start += size
    (folder / "_SUCCESS").write_text("")  # as Spark leaves it: not data
    assert start == N_ROWS
    return str(folder)


def _feed(path: str, rank: int = 0, world: int = 1, **kw) -> ExampleFeed:
    cfg = dict(batch_size=8, max_history=4, shuffle_buffer=20, seed=7, read_ahead=0)
    return ExampleFeed(FeedConfig(path, **{**cfg, **kw}), rank, world)


def _ids(batches) -> list[int]:
    return [int(i) for b in batches for i in b[C.USER_IDX]]


def _same(a: list[dict[str, torch.Tensor]], b: list[dict[str, torch.Tensor]]) -> bool:
    return len(a) == len(b) and all(
        x.keys() == y.keys() and all(torch.equal(x[k], y[k]) for k in x) for x, y in zip(a, b))


def test_batches_have_fixed_shapes_dtypes_padding_and_mask(split_dir):
    L = 4
    batches = list(_feed(split_dir, batch_size=16, max_history=L).epoch(0))
    assert len(batches) == N_ROWS // 16
    for b in batches:
        assert {k: (tuple(v.shape), v.dtype) for k, v in b.items()} == {
            C.USER_IDX: ((16,), torch.int64), C.ITEM_IDX: ((16,), torch.int64),
            C.DOMAIN_IDX: ((16,), torch.int64),
            C.HIST_ITEM: ((16, L), torch.int64), C.HIST_DOMAIN: ((16, L), torch.int64),
            C.HIST_AGE: ((16, L), torch.float32), C.HIST_VALUE: ((16, L), torch.float32),
            C.HIST_MASK: ((16, L), torch.bool)}
        for r, i in enumerate(b[C.USER_IDX].tolist()):
            n = min(_length(i), L)  # newest first: truncation keeps the first L
            assert b[C.ITEM_IDX][r] == 2 * i and b[C.DOMAIN_IDX][r] == i % 3
            assert b[C.HIST_MASK][r].tolist() == [True] * n + [False] * (L - n)
            assert b[C.HIST_ITEM][r].tolist() == [10 * i + j for j in range(n)] + [0] * (L - n)
            assert b[C.HIST_DOMAIN][r].tolist() == [j % 3 for j in range(n)] + [0] * (L - n)
            assert b[C.HIST_AGE][r].tolist() == [j + 0.5 for j in range(n)] + [0.0] * (L - n)
            assert b[C.HIST_VALUE][r].tolist() == [float(i % 5)] * n + [0.0] * (L - n)


def test_a_longer_l_pads_every_history(split_dir):
    b = next(_feed(split_dir, max_history=9).epoch(0))
    assert b[C.HIST_ITEM].shape == (8, 9) and not b[C.HIST_MASK][:, 6:].any()
    assert b[C.HIST_MASK].sum(1).tolist() == [_length(i) for i in b[C.USER_IDX].tolist()]


@pytest.mark.parametrize("world", [2, 3])
def test_every_example_once_per_epoch_over_disjoint_ranks(split_dir, world):
    for epoch in (0, 1):
        feeds = [_feed(split_dir, r, world, drop_last=False) for r in range(world)]
        batches = [list(f.epoch(epoch)) for f in feeds]
        assert [len(b) for b in batches] == [feeds[0].batches_per_epoch()] * world
        per_rank = [_ids(b) for b in batches]
        assert [len(ids) for ids in per_rank] == [N_ROWS // world] * world
        seen = [i for ids in per_rank for i in ids]
        assert len(seen) == len(set(seen))  # disjoint, no repeats
        assert set(seen) <= set(range(N_ROWS)) and len(seen) == N_ROWS - N_ROWS % world


@pytest.mark.parametrize("world", [2, 3])
def test_ranks_get_the_same_number_of_batches_with_drop_last(split_dir, world):
    feeds = [_feed(split_dir, r, world) for r in range(world)]
    lengths = [len(list(f.epoch(3))) for f in feeds]
    assert lengths == [feeds[0].batches_per_epoch()] * world == [(N_ROWS // world) // 8] * world
    seen = [i for f in feeds for i in _ids(f.epoch(3))]
    assert len(set(seen)) == len(seen) == world * ((N_ROWS // world) // 8) * 8


def test_a_fixed_seed_repeats_epochs_differ(split_dir):
    first, again = list(_feed(split_dir).epoch(0)), list(_feed(split_dir, read_ahead=2).epoch(0))
    assert _same(first, again)
    orders = [_ids(_feed(split_dir).epoch(e)) for e in range(3)]
    assert len({tuple(o) for o in orders}) == 3  # every epoch a new order ...
    other_seed = _ids(_feed(split_dir, seed=8).epoch(0))
    assert other_seed != orders[0]
    # ... over all the data: with one rank and drop_last only N_ROWS % 8 rows are left out
    assert all(len(set(o)) == N_ROWS - N_ROWS % 8 for o in orders)


def test_the_shuffle_mixes_row_groups(split_dir):
    first = _ids(_feed(split_dir, shuffle_buffer=100).epoch(0))[:8]
    groups = np.searchsorted(np.cumsum([s for g in GROUPS.values() for s in g]), first, "right")
    assert len(set(groups.tolist())) > 1  # one batch draws from more than one row group


@pytest.mark.parametrize("world,rank", [(1, 0), (3, 2)])
def test_resume_at_a_batch_gives_the_tail_of_the_epoch(split_dir, world, rank):
    feed = _feed(split_dir, rank, world, drop_last=False)
    full = list(feed.epoch(2))
    for k in sorted({0, 1, 5, len(full) // 2, len(full) - 1, len(full)}):
        assert _same(list(feed.epoch(2, start_batch=k)), full[k:]), k


def test_resume_decodes_only_row_groups_still_needed(split_dir, monkeypatch):
    feed = _feed(split_dir, shuffle_buffer=0)
    loads: list[int] = []
    load = feed._load
    monkeypatch.setattr(feed, "_load", lambda piece: loads.append(piece.group) or load(piece))
    full = list(feed.epoch(0))
    assert sorted(loads) == list(range(5))
    loads.clear()
    tail = list(feed.epoch(0, start_batch=len(full) - 1))
    assert _same(tail, full[-1:]) and len(loads) < 5


def test_read_ahead_thread_stops_when_the_caller_does(split_dir):
    batches = _feed(split_dir, read_ahead=1).epoch(0)
    next(batches)
    batches.close()
    deadline = time.monotonic() + 5
    while any(t.name == "example-feed-read-ahead" for t in threading.enumerate()):
        assert time.monotonic() < deadline, "read-ahead thread still running"
        time.sleep(0.05)


def test_a_file_url_works_and_bad_inputs_are_named(split_dir, tmp_path):
    assert _ids(_feed(Path(split_dir).as_uri()).epoch(0)) == _ids(_feed(split_dir).epoch(0))
    with pytest.raises(ValueError, match="start_batch"):
        _feed(split_dir).epoch(0, start_batch=10_000)
    with pytest.raises(ValueError, match="cannot fill one batch"):
        _feed(split_dir, batch_size=N_ROWS // 2 + 1, world=2)
    bad = tmp_path / "bad"
    bad.mkdir()
    pq.write_table(_rows(range(3)).drop_columns([C.HIST_AGE]), bad / "part-0.parquet")
    with pytest.raises(ValueError, match=f"{bad}.*'{C.HIST_AGE}'"):
        _feed(str(bad))
    with pytest.raises(ValueError, match="split"):
        examples_dir(split_dir, "test")
    with pytest.raises(ValueError, match="rank"):
        _feed(split_dir, rank=2, world=2)
