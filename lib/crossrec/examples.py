"""Training examples from the unified events: one row per positive target, with the user's
history strictly before it (newest first, at most L), and a per-user time split.

The events are shuffled once by user and sorted by ``(user_idx, ts, seq)``; each partition then
streams through ``mapInArrow`` where numpy cuts every target's history as a slice of its user's
sorted events (no self-join, no per-row Python): for the event at sorted position i the history is
positions ``[max(first, k - L), k)`` reversed, where k is the first position of the run of events
sharing the target's user and timestamp. Same-timestamp events are therefore never history
(MovieLens holds many same-second ratings; letting them in would leak the answer).

Split, per user with at least 2 targets: the latest ``ceil(valid_frac * n)`` targets by
``(ts, seq)`` (at most ``n - 1``) are the ``valid`` quota; targets of the quota that share the
timestamp of the last ``train`` target go to ``train`` too (ties at the boundary go to train), so
every valid target is strictly later than every train target of its user. A user with one target
is all train.
"""
from __future__ import annotations

from typing import Iterator

import numpy as np
import pyarrow as pa
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T
from pyspark.sql.window import Window

from crossrec.schemas import columns as C
from crossrec.schemas.training import DOMAINS, EXAMPLES, SPLIT_TRAIN, SPLIT_VALID
from crossrec.worker import freeze_long_lived

_US_PER_DAY = 86_400_000_000.0
_IS_TARGET = "_is_target"
_INPUT = [C.USER_IDX, C.SEQ, C.ITEM_IDX, C.DOMAIN_IDX, C.TS, C.VALUE, _IS_TARGET]
_ARROW_OUT = EXAMPLES.as_arrow_schema()


def domain_index(items: DataFrame) -> DataFrame:
    """``[domain_idx, domain, n_items]``: one row per catalog domain, indexed by name order."""
    counts = items.groupBy(C.DOMAIN).agg(F.count(F.lit(1)).cast(T.IntegerType()).alias(C.N_ITEMS))
    # a handful of domains: one global window is the simple, deterministic way to number them
    idx = (F.row_number().over(Window.orderBy(C.DOMAIN)) - 1).cast(T.IntegerType())
    return counts.select(idx.alias(C.DOMAIN_IDX), C.DOMAIN, C.N_ITEMS)


def domain_targets(examples: DataFrame, domains: DataFrame) -> DataFrame:
    """The DOMAINS table: ``domains`` plus ``n_targets``, the train-split targets per domain."""
    counts = (examples.where(F.col(C.SPLIT) == SPLIT_TRAIN).groupBy(C.DOMAIN_IDX)
              .agg(F.count(F.lit(1)).alias(C.N_TARGETS)))
    joined = domains.join(counts, C.DOMAIN_IDX, "left").fillna(0, subset=[C.N_TARGETS])
    return DOMAINS.select(joined)


def target_flag(min_value: float | None) -> F.Column:
    """True on positives: ``value >= min_value``, or an implicit event (null value) with
    ``weight > 0``; with ``min_value`` None every event with ``weight > 0``."""
    if min_value is None:
        return F.coalesce(F.col(C.WEIGHT) > 0, F.lit(False))
    positive = (F.col(C.VALUE) >= F.lit(float(min_value))) | \
        (F.col(C.VALUE).isNull() & (F.col(C.WEIGHT) > 0))
    return F.coalesce(positive, F.lit(False))  # null OR false is null: make it false


def build_examples(events: DataFrame, domains: DataFrame, max_history: int,
                   min_value: float | None, valid_frac: float,
                   partitions: int | None = None) -> DataFrame:
    """The EXAMPLES table from the unified ``events`` and ``domain_index`` output.

    ``max_history`` (L) caps every history array; ``valid_frac`` in [0, 1) sizes each user's
    validation quota (see the module docstring for the split and its ties). The result is
    hash-partitioned by ``user_idx`` into ``partitions`` (default: the shuffle partitions), each
    partition sorted by ``(user_idx, ts, seq)``.
    """
    if max_history < 1:
        raise ValueError(f"max_history: expected >= 1, got {max_history}")
    if not 0.0 <= valid_frac < 1.0:
        raise ValueError(f"valid_frac: expected 0 <= valid_frac < 1, got {valid_frac}")
    indexed = events.join(F.broadcast(domains.select(C.DOMAIN, C.DOMAIN_IDX)), C.DOMAIN, "left")
    sorted_events = (indexed.withColumn(_IS_TARGET, target_flag(min_value)).select(_INPUT)
                     .repartition(*([partitions] if partitions else []), C.USER_IDX)
                     .sortWithinPartitions(C.USER_IDX, C.TS, C.SEQ))

    def per_partition(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        freeze_long_lived()
        for table in whole_users(batches):
            yield from _examples_of(table, max_history, valid_frac).to_batches()

    return sorted_events.mapInArrow(per_partition, EXAMPLES.as_spark_schema())


def whole_users(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.Table]:
    """Re-cut a partition's batches (sorted by user) so that no user spans two tables."""
    carry: pa.Table | None = None
    for batch in batches:
        if batch.num_rows == 0:
            continue
        table = pa.Table.from_batches([batch])
        table = table if carry is None else pa.concat_tables([carry, table])
        users = table[C.USER_IDX].to_numpy()
        cut = int(np.searchsorted(users, users[-1], side="left"))  # the last user may go on
        if cut:
            yield table.slice(0, cut)
        carry = table.slice(cut)
    if carry is not None and carry.num_rows:
        yield carry


def _examples_of(events: pa.Table, max_history: int, valid_frac: float) -> pa.Table:
    """EXAMPLES rows of whole users' events sorted by ``(user_idx, ts, seq)``.

    Vectorised over all users: O(events + targets * L).
    """
    user = events[C.USER_IDX].to_numpy()
    ts = events[C.TS].cast(pa.int64()).to_numpy()
    domain = events[C.DOMAIN_IDX]
    if domain.null_count:
        raise ValueError(f"events: {domain.null_count} events have a '{C.DOMAIN}' that is not in "
                         f"the domains of the items table")
    first_of_user = run_starts(user)
    first_of_instant = run_starts(user, ts)
    target = np.flatnonzero(events[_IS_TARGET].to_numpy(zero_copy_only=False))
    k = first_of_instant[target]  # history = sorted positions before k, newest first
    offsets, flat = history_slices(first_of_user[target], k, max_history)
    age = (np.repeat(ts[target], np.diff(offsets)) - ts[flat]) / _US_PER_DAY
    value = events[C.VALUE].fill_null(0.0).to_numpy()
    valid = _valid_mask(user[target], ts[target], valid_frac)
    columns = {
        C.USER_IDX: events[C.USER_IDX].take(target),
        C.SEQ: events[C.SEQ].take(target),
        C.ITEM_IDX: events[C.ITEM_IDX].take(target),
        C.DOMAIN_IDX: domain.take(target),
        C.TS: events[C.TS].take(target),
        C.HIST_ITEM: _lists(offsets, events[C.ITEM_IDX].to_numpy()[flat], pa.int32()),
        C.HIST_DOMAIN: _lists(offsets, domain.to_numpy()[flat], pa.int32()),
        C.HIST_AGE: _lists(offsets, age, pa.float32()),
        C.HIST_VALUE: _lists(offsets, value[flat], pa.float32()),
        C.SPLIT: pa.array(np.where(valid, SPLIT_VALID, SPLIT_TRAIN), pa.string()),
    }
    return pa.table(columns).cast(_ARROW_OUT)


def history_slices(first: np.ndarray, stop: np.ndarray,
                   max_history: int) -> tuple[np.ndarray, np.ndarray]:
    """The history rule training and scoring share: for each row, the sorted positions
    ``[max(first, stop - L), stop)`` newest first, as list offsets ``[R + 1]`` and flat positions.

    ``first`` is the user's first sorted position, ``stop`` one past the newest event allowed.
    """
    return _slices_newest_first(np.maximum(first, stop - max_history), stop)


def run_starts(*keys: np.ndarray) -> np.ndarray:
    """For each position of sorted ``keys``, the first position of its run of equal keys."""
    n = len(keys[0])
    new = np.zeros(n, dtype=bool)
    if n:
        new[0] = True
    for key in keys:
        new[1:] |= key[1:] != key[:-1]
    return np.maximum.accumulate(np.where(new, np.arange(n), 0))


def _slices_newest_first(start: np.ndarray, stop: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """List offsets ``[T + 1]`` and flat positions ``stop-1, ..., start`` of every slice."""
    lengths = stop - start
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    within = np.arange(offsets[-1]) - np.repeat(offsets[:-1], lengths)
    return offsets, np.repeat(stop - 1, lengths) - within


def _lists(offsets: np.ndarray, values: np.ndarray, kind: pa.DataType) -> pa.ListArray:
    return pa.ListArray.from_arrays(pa.array(offsets, pa.int32()), pa.array(values, kind))


def _valid_mask(user: np.ndarray, ts: np.ndarray, valid_frac: float) -> np.ndarray:
    """Targets ``[T]`` sorted by ``(user, ts, seq)`` -> True on each user's validation targets."""
    n = len(user)
    if n == 0 or valid_frac == 0:
        return np.zeros(n, dtype=bool)
    first = run_starts(user)
    group = np.cumsum(first == np.arange(n)) - 1
    count = np.bincount(group)[group]
    # rounded first: 0.14 * 50 is 7.000000000000001 in floats, whose ceil would be 8
    quota = np.minimum(np.ceil(np.round(valid_frac * count, 9)).astype(np.int64), count - 1)
    quota = np.where(count >= 2, quota, 0)
    first_valid = first + count - quota
    last_train_ts = ts[first_valid - 1]  # exists: quota <= count - 1
    return (np.arange(n) >= first_valid) & (ts > last_train_ts)

