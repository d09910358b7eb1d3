"""The lake's events table read file by file in Python, for jobs that need whole users in order.

    pieces = event_pieces(lake.path(EVENTS, run_date), tasks=8)      # on the driver: footers only
    for batch in read_piece(pieces[i], columns):                      # in a task: Arrow batches
        ...

Ingest writes EVENTS so that each file holds whole users sorted by ``(user_idx, seq)`` (see its
schema). A task can therefore read a file with pyarrow and have every user's history together
and in time order, with no JVM scan, shuffle or sort: at 200,000 users that scan, its joins and
the shuffle and sort by user were ~3 s of a 13 s scoring pass on 2 cores. A file is cut into
pieces by ranges of ``user_idx`` (from its footer's statistics) when there are fewer files than
tasks wanted (but not below :data:`MIN_PIECE_ROWS` rows a piece); a piece reads its file up to
the end of its range and keeps its range, and no user is in two pieces.

The layout is checked as the rows stream: rows out of ``(user_idx, seq)`` order raise an
:class:`InputError` naming the file and row (each file's first piece reads and checks all of
it). A user split across two files cannot be seen from one file; ingest never writes one.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from crossrec.errors import InputError, LakeUnreadable
from crossrec.schemas import columns as C
from crossrec.store import arrow_filesystem as filesystem
from crossrec.worker import freeze_long_lived

BATCH_ROWS = 65_536
# file_users' rows: a file's distinct users with their row counts, or one row naming its error
LAYOUT_SCHEMA = pa.schema([(C.USER_IDX, pa.int32()), ("rows", pa.int64()), ("error", pa.string())])
# A piece decodes its file from the start up to its users (one row group, as Spark writes
# them), so a file is not cut finer than this many rows a piece: with the cluster default of
# 200 shuffle partitions and four 500,000-row files, 50 pieces a file would decode it 50 times.
MIN_PIECE_ROWS = 100_000
_ANY_USER = (-2**31, 2**31)  # a file's user_idx span when its footer has no statistics
# What pyarrow raises where it cannot open the lake from this process (hdfs:// without libhdfs,
# s3a:// without credentials): readers then leave the files to Spark.
UNREADABLE = (OSError, pa.ArrowInvalid)


@dataclass(frozen=True)
class Piece:
    """The users ``lo <= user_idx < hi`` of one events file. The ``first`` piece of a file reads
    all of it, checking its order; the others stop at their end (every row's order is checked by
    the first)."""

    path: str
    lo: int
    hi: int
    first: bool = True


def parquet_files(url: str) -> list[str]:
    """The data files below a table folder, as URLs of the same form, sorted (names starting
    with ``_`` or ``.`` are Spark's markers and hidden files)."""
    url = url.rstrip("/")
    fs, root = filesystem(url)
    prefix = url[:len(url) - len(root)] if "://" in url and url.endswith(root) else ""
    infos = fs.get_file_info(pafs.FileSelector(root, recursive=True, allow_not_found=True))
    hidden = lambda path: any(p[:1] in "_." for p in path[len(root):].split("/") if p)  # noqa: E731
    return sorted(prefix + i.path for i in infos if i.type == pafs.FileType.File
                  and not hidden(i.path) and i.path.endswith(".parquet"))


def event_pieces(url: str, tasks: int = 1, min_rows: int = MIN_PIECE_ROWS) -> list[Piece]:
    """Every non-empty events file below ``url``, cut into about ``tasks`` pieces in all (each
    file in proportion to its rows, by even ranges of its ``user_idx`` span, into pieces of at
    least ``min_rows`` of its rows where it has them)."""
    sizes = []
    for path in parquet_files(url):
        meta = _open(path).metadata
        if meta.num_rows:
            sizes.append((path, meta.num_rows, _user_span(meta, path)))
    total = sum(rows for _, rows, _ in sizes)
    out = []
    for path, rows, (lo, hi) in sizes:
        n = min(hi - lo, math.ceil(tasks * rows / total), max(1, rows // max(1, min_rows)))
        n = 1 if (lo, hi) == _ANY_USER else n
        bounds = np.unique(np.round(np.linspace(lo, hi, max(1, n) + 1)).astype(np.int64))
        out += [Piece(path, int(a), int(b), first=bool(a == bounds[0]))
                for a, b in zip(bounds[:-1], bounds[1:])]
    return out


def _open(url: str) -> pq.ParquetFile:
    fs, path = filesystem(url)
    return pq.ParquetFile(path, filesystem=fs)


def _user_span(meta: pq.FileMetaData, path: str) -> tuple[int, int]:
    """``[min, max + 1)`` of the file's ``user_idx`` from its row groups' statistics (the whole
    int range when a writer left them out: the file is then one piece)."""
    col = meta.schema.to_arrow_schema().get_field_index(C.USER_IDX)
    if col < 0:
        raise InputError(f"{path}: field {C.USER_IDX!r} missing (not an events file)")
    lo, hi = [], []
    for g in range(meta.num_row_groups):
        stats = meta.row_group(g).column(col).statistics
        if stats is None or not stats.has_min_max:
            return _ANY_USER
        lo.append(stats.min)
        hi.append(stats.max)
    return int(min(lo)), int(max(hi)) + 1


def read_piece(piece: Piece, columns: Sequence[str]) -> Iterator[pa.RecordBatch]:
    """The piece's rows (``columns``, which must include ``user_idx`` and ``seq``) in file
    order, checking ``(user_idx, seq)`` order on the way: the first piece of a file checks all
    of it, the others the rows they read."""
    file = _open(piece.path)
    missing = sorted(set(columns) - set(file.schema_arrow.names))
    if missing:
        raise InputError(f"{piece.path}: fields {missing} missing (not an events file)")
    row, last = 0, None
    # batches that cannot hold the piece's users are decoded for the order check only
    for batch in file.iter_batches(batch_size=BATCH_ROWS, columns=list(columns)):
        if batch.num_rows == 0:
            continue
        user = batch[C.USER_IDX].to_numpy(zero_copy_only=False)
        seq = batch[C.SEQ].to_numpy(zero_copy_only=False)
        last = _check_order(user, seq, last, row, piece.path)
        row += len(user)
        if user[0] >= piece.hi and not piece.first:
            return  # sorted (the file's first piece checks it): no more of this piece's users
        if user[0] >= piece.hi or user[-1] < piece.lo:
            continue
        keep = pc.and_(pc.greater_equal(batch[C.USER_IDX], piece.lo),
                       pc.less(batch[C.USER_IDX], piece.hi))
        yield batch.filter(keep)


def _check_order(user: np.ndarray, seq: np.ndarray, last: tuple[int, int] | None, row: int,
                 path: str) -> tuple[int, int]:
    """Raises unless ``(user, seq)`` ascends strictly from ``last`` through the batch; returns
    the batch's last pair. ``row``: the batch's first row in the file."""
    u = user if last is None else np.concatenate([[last[0]], user])
    s = seq if last is None else np.concatenate([[last[1]], seq])
    bad = np.flatnonzero((np.diff(u) < 0) | ((np.diff(u) == 0) & (np.diff(s) <= 0)))
    if len(bad):
        at = row + int(bad[0]) + (0 if last is not None else 1)
        raise InputError(f"{path}: row {at}: fields {C.USER_IDX!r}, {C.SEQ!r} not in ascending "
                         "order; the lake's events files hold whole users sorted by them (score "
                         "other event tables with crossrec.score.recommend)")
    return int(user[-1]), int(seq[-1])


def per_piece(spark: Any, pieces: list[Piece], run: Callable[[Piece], Iterator[pa.RecordBatch]],
              schema: Any, tasks: int | None = None) -> Any:
    """A DataFrame of ``run(piece)``'s batches, in ``tasks`` Spark tasks (default one per piece;
    ``pieces`` not empty), each running a consecutive run of the pieces. A task that cannot
    open its file (``UNREADABLE``) fails with :class:`LakeUnreadable`: the driver could, an
    executor cannot, and the caller may leave the files to Spark (``raised_in_tasks``)."""
    def per_task(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        freeze_long_lived()
        for batch in batches:
            for i in batch.column(0).to_pylist():
                try:
                    yield from run(pieces[i])
                except UNREADABLE as e:
                    first = str(e).splitlines()[0] if str(e) else type(e).__name__
                    raise LakeUnreadable(f"{pieces[i].path}: {first}") from e

    return spark.range(len(pieces), numPartitions=tasks or len(pieces)).mapInArrow(per_task, schema)


def file_users(piece: Piece) -> pa.RecordBatch:
    """The piece's distinct users in file order with their row counts (``LAYOUT_SCHEMA``), after
    checking ``(user_idx, seq)`` order; a file out of order gives one row with the error instead.

    Over every file of a table (one piece each): the rows are in order and no user is in two
    files exactly when every file's users are distinct from all others', which also proves the
    key ``(user_idx, seq)`` unique without hashing every key.
    """
    try:
        parts = [b[C.USER_IDX].to_numpy(zero_copy_only=False)
                 for b in read_piece(piece, [C.USER_IDX, C.SEQ])]
    except InputError as e:
        return pa.RecordBatch.from_pylist([{"error": str(e)}], schema=LAYOUT_SCHEMA)
    user = np.concatenate(parts) if parts else np.empty(0, np.int32)
    starts = np.flatnonzero(np.r_[True, user[1:] != user[:-1]])[:len(user)]  # users' first rows
    rows = np.diff(np.r_[starts, len(user)])
    return pa.RecordBatch.from_arrays(
        [pa.array(user[starts], pa.int32()), pa.array(rows, pa.int64()),
         pa.nulls(len(starts), pa.string())], schema=LAYOUT_SCHEMA)
