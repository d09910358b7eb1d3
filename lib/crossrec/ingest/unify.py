"""From valid events to the published tables (users, items, events, interactions).

The heavy path is laid out for one shuffle: identities are resolved, pseudonymised and indexed on
the small account table (``persons``), joined to the events by broadcast, and the events are then
hash-partitioned by ``user_idx`` once; de-duplication, per-user ordering, the write and the
per-user and per-(user, item) aggregates all reuse that partitioning. No raw account id leaves
this module: outputs are projected onto their declared schemas from :mod:`crossrec.schemas.lake`.
"""
from __future__ import annotations

from collections.abc import Sequence
from functools import reduce

from pyspark.sql import Column, DataFrame, Observation
from pyspark.sql import functions as F
from pyspark.sql import types as T
from pyspark.sql.window import Window

from crossrec.ingest.identity import PERSON, resolve_accounts
from crossrec.ingest.pseudonym import PERSON_NS, pseudonymize
from crossrec.schemas import columns as C
from crossrec.schemas.lake import EVENTS, INTERACTIONS, ITEMS, USERS

DEDUP_KEY = [C.USER_IDX, C.PLATFORM, C.ACCOUNT, C.ITEM_IDX, C.EVENT_TYPE, C.VALUE, C.TS]
EVENTS_IN = "events_in"  # observed row count before de-duplication
BROADCAST_ACCOUNTS = 2_000_000  # above this many accounts the persons join shuffles instead
WEIGHT_SCALE = 1_000_000  # event weights are summed exactly in units of 1e-6
_REPEAT = "_repeat"
_PLATFORM_MASK = "_platform_mask"
_RANGE = "_range"
_BELOW = "_below"
_OF_RANGE = "_of_range"
USER_KEY_PREFIX = 2  # user keys are hex digests: ranges by their first 2 digits, 256 of them


def dense_index(df: DataFrame, key: str, index: str) -> DataFrame:
    """``[key, index]``: 0-based dense ints in ``key`` order, so reruns give the same indices."""
    return with_dense_index(df.select(key).distinct(), key, index)


def with_dense_index(df: DataFrame, key: str, index: str, prefix: int = 0) -> DataFrame:
    """``df`` plus ``index``: 0-based dense ints in ``key`` order (equal keys, one index).

    ``prefix`` 0 ranks every key in one window, one task: for a few hundred thousand keys far
    cheaper than ``rdd.zipWithIndex``, which ships every key through Python and runs its input
    twice. ``prefix`` n > 0 splits the keys by their first n characters (an order-preserving
    cut: a smaller prefix means a smaller key): each range is ranked in its own task and
    shifted by the distinct keys of the ranges below it, counted in one small aggregate, so no
    task sees more than its range. Any n gives the same indices; n only balances the ranges,
    which suits keys spread evenly over their first characters (hex digests: n = 2 gives 256).
    """
    if prefix <= 0:
        return df.withColumn(index, (F.dense_rank().over(Window.orderBy(key)) - 1)
                             .cast(T.IntegerType()))
    # two reads of df: the ranks, and the key counts behind the offsets (a cheap df, or cached)
    ranged = df.withColumn(_RANGE, F.substring(key, 1, prefix)).repartition(_RANGE)
    # distinct keys per range, null (which count_distinct skips) one of them
    sizes = ranged.groupBy(_RANGE).agg(
        (F.count_distinct(key) + F.max(F.col(key).isNull().cast("long"))).alias(_BELOW))
    below = Window.orderBy(_RANGE).rowsBetween(Window.unboundedPreceding, -1)
    offsets = sizes.select(_RANGE, F.coalesce(F.sum(_BELOW).over(below), F.lit(0)).alias(_BELOW))
    offsets = offsets.withColumnRenamed(_RANGE, _OF_RANGE)
    local = F.dense_rank().over(Window.partitionBy(_RANGE).orderBy(key)) - 1
    ranked = ranged.withColumn(index, local)
    # null-safe: null keys (range null) come first, as in the single window
    return (ranked.join(F.broadcast(offsets), ranked[_RANGE].eqNullSafe(offsets[_OF_RANGE]))
            .withColumn(index, (F.col(_BELOW) + F.col(index)).cast(T.IntegerType()))
            .drop(_RANGE, _OF_RANGE, _BELOW))


def build_persons(events: DataFrame, links: DataFrame, key: bytes,
                  ranged: bool = False) -> DataFrame:
    """``[user_key, platform, account, user_idx]``: one row per account seen in ``events``.

    Accounts linked (directly or through chains) share one person; ``user_key`` is the person's
    HMAC pseudonym and ``user_idx`` its dense index in ``user_key`` order, computed by ranges of
    keys when ``ranged`` (the same indices; see :func:`with_dense_index`).
    """
    persons = pseudonymize(resolve_accounts(events, links), PERSON, C.USER_KEY, key, PERSON_NS)
    persons = persons.select(C.USER_KEY, C.PLATFORM, C.ACCOUNT)
    if ranged:  # ranges read it twice: resolve and pseudonymise once
        persons = persons.localCheckpoint()
    # indexed in place rather than joined to dense_index(persons): the resolution and HMAC
    # upstream then run once, not twice
    return with_dense_index(persons, C.USER_KEY, C.USER_IDX, USER_KEY_PREFIX if ranged else 0)


def build_items(catalog: DataFrame) -> DataFrame:
    """Valid catalog rows with ``item_idx``; every item, with or without interactions."""
    return ITEMS.select(catalog.join(dense_index(catalog, C.ITEM_ID, C.ITEM_IDX), C.ITEM_ID))


def _event_order() -> list[Column]:
    """A user's events in time order; ties by item (``item_idx`` is in ``item_id`` order),
    platform, type and value, so the order is total and reruns agree."""
    return [F.col(C.TS), F.col(C.ITEM_IDX), F.col(C.PLATFORM), F.col(C.EVENT_TYPE),
            F.col(C.VALUE).asc_nulls_first()]


def order_events(events: DataFrame, persons: DataFrame, items: DataFrame, n_accounts: int,
                 partitions: int, observed: Observation) -> DataFrame:
    """Valid events de-duplicated and ordered: ``[user_idx, seq, item_idx, platform, event_type,
    value, weight, ts]`` in ``partitions`` partitions holding whole users (hashed by
    ``user_idx``), each sorted by ``(user_idx, seq)``. :func:`name_events` adds the names.

    Exact duplicates (same account, item, type, value and time on a platform) are dropped;
    ``seq`` orders each user's history by time (ties by item, platform, type, value, so the
    order is total and reruns agree). ``observed`` gets the row count before de-duplication,
    gathered by the first action on the result. Above ``BROADCAST_ACCOUNTS`` accounts the
    result also carries ``user_key`` (see :func:`name_events`).
    """
    large = n_accounts > BROADCAST_ACCOUNTS
    persons = persons.select(C.PLATFORM, C.ACCOUNT, C.USER_IDX, *([C.USER_KEY] if large else []))
    # Only indices and short fields cross the shuffle and the sort: the 64-character user_key
    # and the item's id and domain are joined back after them (name_events). item_idx is dense in
    # item_id order, so ordering and de-duplicating by it is the same as by item_id.
    # Hash, not range, partitioning: a range exchange first runs a sampling job over its whole
    # input (here the joins), and no reader needs users in file order, only each user in one file.
    joined = (events.join(persons if large else F.broadcast(persons), [C.PLATFORM, C.ACCOUNT])
              .join(F.broadcast(items.select(C.ITEM_ID, C.ITEM_IDX)), C.ITEM_ID)
              .select(C.USER_IDX, *([C.USER_KEY] if large else []), *DEDUP_KEY[1:], C.WEIGHT)
              .repartition(partitions, C.USER_IDX))
    counted = joined.observe(observed, F.count(F.lit(1)).alias(EVENTS_IN))
    # One sort serves both steps: in this order a user's exact duplicates are adjacent, so each
    # is dropped by comparing it with the row before it (dropDuplicates would plan a sort-based
    # aggregate, two more sorts, as its kept columns are strings); seq is then the position.
    by_user = Window.partitionBy(C.USER_IDX).orderBy(*_event_order(), C.ACCOUNT)
    # null-safe: value may be null (the first row's lags are all null, and its ts is not)
    repeat = reduce(Column.__and__, [F.lag(c).over(by_user).eqNullSafe(F.col(c))
                                     for c in DEDUP_KEY[1:]])
    unique = counted.withColumn(_REPEAT, repeat).where(~F.col(_REPEAT))
    out = unique.withColumn(C.SEQ, (F.row_number().over(by_user) - 1).cast(T.IntegerType()))
    kept = [C.USER_IDX, C.SEQ, *([C.USER_KEY] if large else []), C.ITEM_IDX, C.PLATFORM,
            C.EVENT_TYPE, C.VALUE, C.WEIGHT, C.TS]
    # (user_idx, seq) order is the windows' own order: this sort is satisfied, not run again
    return out.select(*kept).sortWithinPartitions(C.USER_IDX, *_event_order())


def name_events(ordered: DataFrame, persons: DataFrame, items: DataFrame) -> DataFrame:
    """The events table from :func:`order_events`' rows, in their partitions and order.

    ``user_key`` (unless ``ordered`` carries it) and the item's id and domain are joined by
    broadcast, which keeps the streamed rows' partitioning and order: the write needs no sort.
    """
    named = ordered.join(F.broadcast(items.select(C.ITEM_IDX, C.ITEM_ID, C.DOMAIN)), C.ITEM_IDX)
    if C.USER_KEY not in ordered.columns:
        keys = persons.select(C.USER_IDX, C.USER_KEY).distinct()
        named = named.join(F.broadcast(keys), C.USER_IDX)
    return EVENTS.select(named)


def build_users(events: DataFrame, persons: DataFrame, platforms: Sequence[str]) -> DataFrame:
    """One row per person: accounts resolved to them, platforms, event counts and time span.

    ``events`` clustered by ``user_idx`` (as :func:`order_events` returns them) aggregate in place;
    ``platforms``: every platform name the events may carry.
    """
    per_user = events.groupBy(C.USER_IDX).agg(
        F.bit_or(_platform_bit(platforms)).alias(_PLATFORM_MASK),
        F.count(F.lit(1)).alias(C.N_EVENTS),
        F.min(C.TS).alias(C.FIRST_TS),
        F.max(C.TS).alias(C.LAST_TS),
    )
    accounts = persons.groupBy(C.USER_IDX, C.USER_KEY) \
        .agg(F.count(F.lit(1)).cast("int").alias(C.N_ACCOUNTS))
    return USERS.select(per_user.join(F.broadcast(accounts), C.USER_IDX)
                        .withColumn(C.PLATFORMS, _platform_names(platforms)))


def build_interactions(events: DataFrame, users: DataFrame, items: DataFrame,
                       platforms: Sequence[str]) -> DataFrame:
    """The user-item matrix: one row per (user, item) aggregated over platforms and time.

    ``events`` clustered by ``user_idx`` (as :func:`order_events` returns them) aggregate in place;
    ``users``/``items`` give each index its key and domain; ``platforms``: every platform name
    the events may carry. Each partition comes out sorted by ``(domain, user_idx, item_idx)``,
    ready for a write partitioned by domain.
    """
    # Every aggregate below has a fixed-width buffer, so Spark hash-aggregates in place; a string
    # key, collect_set, a struct or a wide decimal would each force a sort of all the events.
    latest_value = F.max_by(C.VALUE, F.when(F.col(C.VALUE).isNotNull(), F.col(C.SEQ)))
    # weights summed exactly in millionths, so the result cannot depend on row order
    micro_weight = F.round(F.col(C.WEIGHT) * WEIGHT_SCALE).cast("long")
    agg = events.groupBy(C.USER_IDX, C.ITEM_IDX).agg(
        (F.sum(micro_weight) / WEIGHT_SCALE).alias(C.WEIGHT),
        F.count(F.lit(1)).cast("int").alias(C.N_EVENTS),
        F.min(C.TS).alias(C.FIRST_TS),
        F.max(C.TS).alias(C.LAST_TS),
        F.bit_or(_platform_bit(platforms)).alias(_PLATFORM_MASK),
        latest_value.alias(C.VALUE_LAST),
        F.max(C.VALUE).alias(C.VALUE_MAX),
    )
    named = (agg.join(F.broadcast(users.select(C.USER_IDX, C.USER_KEY)), C.USER_IDX)
             .join(F.broadcast(items.select(C.ITEM_IDX, C.ITEM_ID, C.DOMAIN)), C.ITEM_IDX)
             .withColumn(C.PLATFORMS, _platform_names(platforms)))
    return INTERACTIONS.select(named).sortWithinPartitions(C.DOMAIN, C.USER_IDX, C.ITEM_IDX)


def _platform_bit(platforms: Sequence[str]) -> Column:
    """``1 << i`` for the event's platform, i its position among the sorted ``platforms``."""
    names = sorted(platforms)
    if len(names) > 63:
        raise ValueError(f"at most 63 platforms fit a platform mask, got {len(names)}")
    bits = F.create_map(*[x for i, p in enumerate(names) for x in (F.lit(p), F.lit(1 << i))])
    return bits[F.col(C.PLATFORM)].cast("long")


def _platform_names(platforms: Sequence[str]) -> Column:
    """The sorted names of the platforms whose bits are set in ``_PLATFORM_MASK``."""
    mask = F.col(_PLATFORM_MASK)
    return F.array_compact(F.array(*[F.when((mask.bitwiseAND(1 << i)) != 0, F.lit(p))
                                     for i, p in enumerate(sorted(platforms))]))
