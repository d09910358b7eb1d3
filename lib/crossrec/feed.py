"""The training feed: examples Parquet -> fixed-shape torch batches (Petastorm's role, on
pyarrow.dataset; no Spark).

    feed = ExampleFeed(FeedConfig(examples_dir(table, "train"), batch_size=512, max_history=50),
                       rank=hvd.rank(), world_size=hvd.size())
    for epoch in range(n):
        for batch in feed.epoch(epoch):      # batch[C.HIST_ITEM]: int64 [B, L]
            ...

Sharding: the unit is a Parquet row group, listed from the footers (no data read). Each epoch
the row groups are permuted with ``(seed, epoch)`` and laid end to end; rank r takes rows
``[r * R, (r + 1) * R)`` of that sequence, ``R = rows // world_size``, so ranks are disjoint, each
gets exactly R rows and every rank has the same number of batches in every epoch (a data-parallel
allreduce would deadlock otherwise). A row group on a boundary is decoded by both ranks, each
keeping its own slice. Truncation per epoch: the last ``rows % world_size`` rows of the sequence,
and with ``drop_last`` the ``R % batch_size`` rows each rank's shuffle leaves last.

Within a rank, a shuffle buffer (at least ``shuffle_buffer`` rows kept back) draws from a
``(seed, epoch, rank)`` generator. The draws depend on row counts only, never on the data, so the
whole epoch's order is planned up front: ``epoch(e, start_batch=k)`` replays the plan on row ids
and decodes only the row groups whose rows are still needed from batch k on.
"""
from __future__ import annotations

import itertools
import math
import queue
import threading
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.dataset as ds
import torch

from crossrec.schemas import columns as C
from crossrec.schemas.training import SPLIT_TRAIN, SPLIT_VALID
from crossrec.store import arrow_filesystem

Batch = dict[str, torch.Tensor]
Arrays = dict[str, np.ndarray]
SCALARS = (C.USER_IDX, C.ITEM_IDX, C.DOMAIN_IDX)
LISTS = (C.HIST_ITEM, C.HIST_DOMAIN, C.HIST_AGE, C.HIST_VALUE)
_DTYPES = {C.HIST_ITEM: np.int32, C.HIST_DOMAIN: np.int32,
           C.HIST_AGE: np.float32, C.HIST_VALUE: np.float32}
_LENGTH = "_length"  # real history slots per row, kept instead of a [n, L] mask


@dataclass(frozen=True)
class FeedConfig:
    """Where the examples of one split are and how to batch them."""

    path: str            # e.g. <version>/examples/split=train; a path, file://, s3a:// or hdfs://
    batch_size: int
    max_history: int     # L: histories truncated (newest kept) or zero-padded to exactly L
    shuffle_buffer: int = 10_000
    seed: int = 0
    drop_last: bool = True
    read_ahead: int = 2  # row groups decoded ahead in a background thread (0: in the caller)


def examples_dir(table_path: str, split: str) -> str:
    """The directory of one split of a published examples table (``Lake.path(EXAMPLES)``)."""
    if split not in (SPLIT_TRAIN, SPLIT_VALID):
        raise ValueError(f"split: expected {SPLIT_TRAIN!r} or {SPLIT_VALID!r}, got {split!r}")
    return f"{table_path.rstrip('/')}/{C.SPLIT}={split}"


@dataclass(frozen=True)
class _Group:
    fragment: Any        # ds.ParquetFileFragment
    row_group: int
    rows: int


@dataclass(frozen=True)
class _Piece:
    """Rows ``[start, stop)`` of one row group."""

    group: int
    start: int
    stop: int

    @property
    def rows(self) -> int:
        return self.stop - self.start


@dataclass(frozen=True)
class _Step:
    """Append piece ``piece`` (None: the final flush) to the buffer, reorder the buffer by
    ``order``, emit its first ``emit`` rows as batches ``first_batch, ...``, keep the rest.

    Within each batch and within the rows kept, ``order`` lists rows of the old buffer first,
    so both are gathered from the buffer and the piece without concatenating the two.
    """

    piece: int | None
    order: np.ndarray
    emit: int
    first_batch: int


class ExampleFeed:
    """One rank's view of an examples split: ``epoch(e)`` yields dicts of tensors.

    Batch: ``user_idx``, ``item_idx``, ``domain_idx`` int64 ``[B]``; ``hist_item``,
    ``hist_domain`` int64 ``[B, L]``; ``hist_age``, ``hist_value`` float32 ``[B, L]``;
    ``hist_mask`` bool ``[B, L]`` (True on real slots; padding is 0 everywhere).
    """

    def __init__(self, cfg: FeedConfig, rank: int = 0, world_size: int = 1) -> None:
        _check_config(cfg, rank, world_size)
        self.cfg, self.rank, self.world_size = cfg, rank, world_size
        self._groups = _row_groups(cfg.path)
        self.rows = sum(g.rows for g in self._groups)
        self.rows_per_rank = self.rows // world_size
        if self.batches_per_epoch() == 0:
            raise ValueError(f"{cfg.path}: {self.rows} examples cannot fill one batch of "
                             f"{cfg.batch_size} on each of {world_size} ranks")

    def batches_per_epoch(self) -> int:
        """The same on every rank and in every epoch."""
        b = self.cfg.batch_size
        return self.rows_per_rank // b if self.cfg.drop_last else math.ceil(self.rows_per_rank / b)

    def epoch(self, epoch: int, start_batch: int = 0) -> Iterator[Batch]:
        """Batches ``start_batch, ..., batches_per_epoch() - 1`` of ``epoch``; the same for the
        same ``(seed, epoch, rank, world_size)``, resumed or not."""
        if not 0 <= start_batch <= self.batches_per_epoch():
            raise ValueError(f"start_batch: expected 0..{self.batches_per_epoch()}, got {start_batch}")
        if epoch < 0:
            raise ValueError(f"epoch: expected >= 0, got {epoch}")
        return self._batches(epoch, start_batch)

    def _batches(self, epoch: int, start_batch: int) -> Iterator[Batch]:
        if start_batch == self.batches_per_epoch():
            return
        pieces = self._pieces(epoch)
        steps = _plan([p.rows for p in pieces], self.cfg.batch_size, self.cfg.shuffle_buffer,
                      np.random.default_rng([self.cfg.seed, epoch, self.rank, 1]),
                      self.cfg.drop_last)
        replay = _Replay(pieces)
        step = next(steps)
        while step.first_batch + _n_batches(step.emit, self.cfg.batch_size) <= start_batch:
            replay.apply(step)  # batches before start_batch: planned, never decoded
            step = next(steps)
        buffer = self._restore(pieces, replay)
        todo = range(len(pieces) if step.piece is None else step.piece, len(pieces))
        loaded = _prefetch(lambda i: self._load(pieces[i]), todo, self.cfg.read_ahead)
        try:
            for step in itertools.chain([step], steps):
                piece = None if step.piece is None else next(loaded)
                yield from self._emit(buffer, piece, step, start_batch)
                buffer = _gather(buffer, piece, step.order[step.emit:])
        finally:
            loaded.close()  # stops the read-ahead thread when the caller stops early

    def _pieces(self, epoch: int) -> list[_Piece]:
        """This rank's slices of the epoch's row-group sequence."""
        perm = np.random.default_rng([self.cfg.seed, epoch, 0]).permutation(len(self._groups))
        lo, hi = self.rank * self.rows_per_rank, (self.rank + 1) * self.rows_per_rank
        pieces, pos = [], 0
        for g in perm:
            n = self._groups[g].rows
            a, b = max(lo, pos), min(hi, pos + n)
            if a < b:
                pieces.append(_Piece(int(g), a - pos, b - pos))
            pos += n
        return pieces

    def _emit(self, buffer: Arrays, piece: Arrays | None, step: _Step,
              start_batch: int) -> Iterator[Batch]:
        b = self.cfg.batch_size
        for j in range(_n_batches(step.emit, b)):
            if step.first_batch + j >= start_batch:
                rows = step.order[j * b:min((j + 1) * b, step.emit)]
                yield _to_batch(_gather(buffer, piece, rows), self.cfg.max_history)

    def _restore(self, pieces: list[_Piece], replay: "_Replay") -> Arrays:
        """The buffer the replayed steps left: only pieces with rows in it are decoded."""
        ids, starts = replay.ids, replay.starts
        if not len(ids):
            return _empty(self.cfg.max_history)
        owner = np.searchsorted(starts, ids, side="right") - 1
        parts, where = [], []
        for i in np.unique(owner):
            rows = np.flatnonzero(owner == i)
            parts.append(_take(self._load(pieces[i]), ids[rows] - starts[i]))
            where.append(rows)
        # back into the replayed order: row where[k][j] of the buffer is parts[k][j]
        return _take(_concat_all(parts), np.argsort(np.concatenate(where), kind="stable"))

    def _load(self, piece: _Piece) -> Arrays:
        g = self._groups[piece.group]
        table = g.fragment.subset(row_group_ids=[g.row_group]).to_table(
            columns=[*SCALARS, *LISTS], use_threads=False).slice(piece.start, piece.rows)
        return _arrays(table, self.cfg.max_history, f"{g.fragment.path} row group {g.row_group}")


def _check_config(cfg: FeedConfig, rank: int, world_size: int) -> None:
    if cfg.batch_size < 1 or cfg.max_history < 1 or cfg.shuffle_buffer < 0 or cfg.read_ahead < 0:
        raise ValueError(f"FeedConfig: batch_size and max_history must be >= 1, shuffle_buffer "
                         f"and read_ahead >= 0; got {cfg}")
    if world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} of world_size {world_size}: expected 0 <= rank < world_size")


def _row_groups(path: str) -> list[_Group]:
    """Every row group under ``path`` (footers only), in file then row-group order."""
    fs, root = arrow_filesystem(path)
    try:
        dataset = ds.dataset(root, filesystem=fs, format="parquet")
    except (FileNotFoundError, OSError) as e:
        raise FileNotFoundError(f"{path}: cannot list examples: {e}") from None
    _check_schema(dataset.schema, path)
    groups = []
    for fragment in sorted(dataset.get_fragments(), key=lambda f: f.path):
        fragment.ensure_complete_metadata()
        groups += [_Group(fragment, rg.id, rg.num_rows) for rg in fragment.row_groups
                   if rg.num_rows]
    if not groups:
        raise ValueError(f"{path}: no Parquet rows (expected an examples split directory)")
    return groups


def _check_schema(schema: pa.Schema, path: str) -> None:
    for name in SCALARS:
        if name not in schema.names or not pa.types.is_integer(schema.field(name).type):
            raise ValueError(f"{path}: field {name!r} missing or not an integer column")
    for name in LISTS:
        kind = schema.field(name).type if name in schema.names else None
        if kind is None or not pa.types.is_list(kind):
            raise ValueError(f"{path}: field {name!r} missing or not a list column")


def _arrays(table: pa.Table, max_history: int, where: str) -> Arrays:
    """Decoded columns -> numpy: scalars ``[n]`` int64, histories zero-padded ``[n, L]``."""
    out: Arrays = {name: table[name].to_numpy().astype(np.int64) for name in SCALARS}
    lists = {name: table[name].combine_chunks() for name in LISTS}
    lengths = np.diff(lists[C.HIST_ITEM].offsets.to_numpy())
    index = _pad_index(lengths, max_history)  # shared by the four columns
    for name, arr in lists.items():
        offsets = arr.offsets.to_numpy()
        if arr.null_count or arr.values.null_count:
            raise ValueError(f"{where}: field {name!r} holds nulls")
        if not np.array_equal(np.diff(offsets), lengths):
            raise ValueError(f"{where}: field {name!r} differs in length from {C.HIST_ITEM!r}")
        values = arr.values.to_numpy()[offsets[0]:offsets[-1]]
        # a trailing 0 for the padding slots to point at: one gather per column, no mask pass
        values = np.concatenate([values.astype(_DTYPES[name], copy=False),
                                 np.zeros(1, _DTYPES[name])])
        out[name] = np.take(values, index)
    out[_LENGTH] = np.minimum(lengths, max_history).astype(np.int64)
    return out


def _pad_index(lengths: np.ndarray, max_history: int) -> np.ndarray:
    """List lengths ``[n]`` -> flat value index ``[n, L]``, ``sum(lengths)`` on padding slots.

    Lists are newest first, so truncation keeps their first L values.
    """
    total = int(lengths.sum())
    kind = np.int32 if total < 2**31 - 1 else np.int64  # half the bytes to write and read
    starts = np.zeros(len(lengths), dtype=kind)
    np.cumsum(lengths[:-1], out=starts[1:])
    slots = np.arange(max_history, dtype=kind)
    return np.where(slots < lengths[:, None], starts[:, None] + slots, kind(total))


def _to_batch(rows: Arrays, max_history: int) -> Batch:
    out = {name: torch.from_numpy(rows[name]) for name in SCALARS}
    for name in LISTS:
        a = rows[name]
        out[name] = torch.from_numpy(a.astype(np.int64) if a.dtype == np.int32 else a)
    out[C.HIST_MASK] = torch.from_numpy(np.arange(max_history) < rows[_LENGTH][:, None])
    return out


def _plan(sizes: list[int], batch: int, keep: int, rng: np.random.Generator,
          drop_last: bool) -> Iterator[_Step]:
    """The shuffle buffer's steps for pieces of ``sizes`` rows, one per piece then the flush;
    they depend on counts only. Lazy: memory stays O(buffer + piece)."""
    held, emitted = 0, 0
    for i, size in enumerate(sizes):
        emit = max(0, (held + size - keep) // batch) * batch  # keep at least `keep` rows back
        order = _buffer_first(rng.permutation(held + size), held, emit, batch)
        yield _Step(i, order, emit, emitted)
        held, emitted = held + size - emit, emitted + emit // batch
    emit = held - held % batch if drop_last else held
    yield _Step(None, rng.permutation(held), emit, emitted)


class _Replay:
    """The buffer's rows as ids (positions in this rank's concatenated pieces), step by step."""

    def __init__(self, pieces: list[_Piece]) -> None:
        self.starts = np.cumsum([0] + [p.rows for p in pieces])
        self.ids = np.zeros(0, dtype=np.int64)

    def apply(self, step: _Step) -> None:
        if step.piece is not None:
            new = np.arange(self.starts[step.piece], self.starts[step.piece + 1])
            self.ids = np.concatenate([self.ids, new])
        self.ids = self.ids[step.order[step.emit:]]


def _buffer_first(order: np.ndarray, held: int, emit: int, batch: int) -> np.ndarray:
    """``order`` with, inside each batch and inside the kept rows, rows ``< held`` first."""
    segment = np.minimum(np.arange(len(order)) // batch, emit // batch)  # kept rows: last one
    return order[np.argsort(segment * 2 + (order >= held), kind="stable")]


def _n_batches(rows: int, batch: int) -> int:
    return math.ceil(rows / batch)


def _empty(max_history: int) -> Arrays:
    out: Arrays = {name: np.zeros(0, np.int64) for name in (*SCALARS, _LENGTH)}
    out.update({name: np.zeros((0, max_history), _DTYPES[name]) for name in LISTS})
    return out


def _gather(buffer: Arrays, piece: Arrays | None, rows: np.ndarray) -> Arrays:
    """Rows of the buffer followed by the piece; ``rows`` lists buffer rows first."""
    held = len(buffer[C.USER_IDX])
    k = int(np.count_nonzero(rows < held))
    if piece is None or k == len(rows):
        return _take(buffer, rows)
    if k == 0:
        return _take(piece, rows - held)
    return _concat(_take(buffer, rows[:k]), _take(piece, rows[k:] - held))


def _take(data: Arrays, rows: np.ndarray) -> Arrays:
    return {name: np.take(a, rows, axis=0) for name, a in data.items()}


def _concat(a: Arrays, b: Arrays) -> Arrays:
    return {name: np.concatenate([a[name], b[name]]) for name in a}


def _concat_all(parts: list[Arrays]) -> Arrays:
    return {name: np.concatenate([p[name] for p in parts]) for name in parts[0]}


def _prefetch(load: Callable[[int], Arrays], items: Iterable[int], depth: int) -> Iterator[Arrays]:
    """``load(i)`` for each item, up to ``depth`` ahead in a daemon thread (in order)."""
    if depth == 0:
        yield from map(load, items)
        return
    results: queue.Queue[tuple[str, Any]] = queue.Queue(depth)
    stop = threading.Event()

    def put(item: tuple[str, Any]) -> bool:
        while not stop.is_set():
            try:
                results.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def work() -> None:
        try:
            for i in items:
                if not put(("ok", load(i))):
                    return
            put(("done", None))
        except BaseException as e:  # handed to the consumer, raised there
            put(("error", e))

    threading.Thread(target=work, name="example-feed-read-ahead", daemon=True).start()
    try:
        while True:
            kind, value = results.get()
            if kind == "error":
                raise value
            if kind == "done":
                return
            yield value
    finally:
        stop.set()  # the consumer stopped early: let the thread end
