"""From valid events to the published tables (users, items, events, interactions).

The heavy path is laid out for one shuffle: identities are resolved, pseudonymised and indexed on
the small account table (``persons``), joined to the events by broadcast, and the events are then
range-partitioned by user once; de-duplication, per-user ordering and the write all reuse that
partitioning. No raw account id leaves this module: outputs are projected onto their declared
schemas from :mod:`crossrec.schemas.lake`.
"""
from __future__ import annotations

from pyspark.sql import DataFrame, Observation
from pyspark.sql import functions as F
from pyspark.sql import types as T
from pyspark.sql.window import Window

from crossrec.ingest.identity import PERSON, resolve_accounts
from crossrec.ingest.pseudonym import PERSON_NS, pseudonymize
from crossrec.schemas import columns as C
from crossrec.schemas.lake import EVENTS, INTERACTIONS, ITEMS, USERS

DEDUP_KEY = [C.USER_IDX, C.PLATFORM, C.ACCOUNT, C.ITEM_ID, C.EVENT_TYPE, C.VALUE, C.TS]
EVENTS_IN, EVENTS_OUT = "events_in", "events_out"  # observed row counts around de-duplication
BROADCAST_ACCOUNTS = 2_000_000  # above this many accounts the persons join shuffles instead


def dense_index(df: DataFrame, key: str, index: str) -> DataFrame:
    """``[key, index]``: 0-based dense ints in ``key`` order, so reruns give the same indices."""
    return _with_dense_index(df.select(key).distinct(), key, index)


def _with_dense_index(df: DataFrame, key: str, index: str) -> DataFrame:
    # One global window, sorted in a single JVM task: for the few hundred thousand keys here
    # that is far cheaper than rdd.zipWithIndex, which ships every key through Python and runs
    # its input twice (once to count partitions). dense_rank gives equal keys one index.
    rank = F.dense_rank().over(Window.orderBy(key)) - 1
    return df.withColumn(index, rank.cast(T.IntegerType()))


def build_persons(events: DataFrame, links: DataFrame, key: bytes) -> DataFrame:
    """``[user_key, platform, account, user_idx]``: one row per account seen in ``events``.

    Accounts linked (directly or through chains) share one person; ``user_key`` is the person's
    HMAC pseudonym and ``user_idx`` its dense index in ``user_key`` order.
    """
    persons = pseudonymize(resolve_accounts(events, links), PERSON, C.USER_KEY, key, PERSON_NS)
    persons = persons.select(C.USER_KEY, C.PLATFORM, C.ACCOUNT)
    # indexed in place rather than joined to dense_index(persons): the resolution and HMAC
    # upstream then run once, not twice
    return _with_dense_index(persons, C.USER_KEY, C.USER_IDX)


def build_items(catalog: DataFrame) -> DataFrame:
    """Valid catalog rows with ``item_idx``; every item, with or without interactions."""
    return ITEMS.select(catalog.join(dense_index(catalog, C.ITEM_ID, C.ITEM_IDX), C.ITEM_ID))


def build_events(events: DataFrame, persons: DataFrame, items: DataFrame, n_accounts: int,
                 partitions: int, observed: Observation) -> DataFrame:
    """The events table, range-partitioned by ``user_idx`` and sorted by ``(user_idx, seq)``.

    Exact duplicates (same account, item, type, value and time on a platform) are dropped;
    ``seq`` orders each user's history by time (ties by item, platform, type, value, so the
    order is total and reruns agree). ``observed`` gets the row counts before and after
    de-duplication, gathered by the write itself.
    """
    persons = F.broadcast(persons) if n_accounts <= BROADCAST_ACCOUNTS else persons
    joined = (events.join(persons, [C.PLATFORM, C.ACCOUNT])
              .join(F.broadcast(items.select(C.ITEM_ID, C.ITEM_IDX)), C.ITEM_ID)
              .repartitionByRange(partitions, C.USER_IDX))
    counted = joined.observe(observed, F.count(F.lit(1)).alias(EVENTS_IN))
    unique = counted.dropDuplicates(DEDUP_KEY)  # clustered by user_idx already: no shuffle
    order = Window.partitionBy(C.USER_IDX).orderBy(
        C.TS, C.ITEM_ID, C.PLATFORM, C.EVENT_TYPE, F.col(C.VALUE).asc_nulls_first())
    out = EVENTS.select(unique.withColumn(C.SEQ, F.row_number().over(order) - 1))
    return out.sortWithinPartitions(C.USER_IDX, C.SEQ)


def build_users(events: DataFrame, persons: DataFrame) -> DataFrame:
    """One row per person: accounts resolved to them, platforms, event counts and time span."""
    per_user = events.groupBy(C.USER_IDX, C.USER_KEY).agg(
        F.sort_array(F.collect_set(C.PLATFORM)).alias(C.PLATFORMS),
        F.count(F.lit(1)).alias(C.N_EVENTS),
        F.min(C.TS).alias(C.FIRST_TS),
        F.max(C.TS).alias(C.LAST_TS),
    )
    accounts = persons.groupBy(C.USER_IDX).agg(F.count(F.lit(1)).cast("int").alias(C.N_ACCOUNTS))
    return USERS.select(per_user.join(accounts, C.USER_IDX))


def build_interactions(events: DataFrame, partitions: int) -> DataFrame:
    """The user-item matrix: one row per (user, item) aggregated over platforms and time.

    Range-partitioned by (domain, user_idx), which also clusters the aggregation (one shuffle).
    """
    latest_value = F.max_by(C.VALUE, F.when(F.col(C.VALUE).isNotNull(),
                                            F.struct(C.TS, C.VALUE)))
    # weights summed as decimals: exact, so the result cannot depend on shuffle order
    exact_sum = F.sum(F.col(C.WEIGHT).cast("decimal(20,6)")).cast("double")
    agg = (events.repartitionByRange(partitions, C.DOMAIN, C.USER_IDX)
           .groupBy(C.USER_IDX, C.ITEM_IDX, C.USER_KEY, C.ITEM_ID, C.DOMAIN).agg(
        exact_sum.alias(C.WEIGHT),
        F.count(F.lit(1)).cast("int").alias(C.N_EVENTS),
        F.min(C.TS).alias(C.FIRST_TS),
        F.max(C.TS).alias(C.LAST_TS),
        F.sort_array(F.collect_set(C.PLATFORM)).alias(C.PLATFORMS),
        latest_value.alias(C.VALUE_LAST),
        F.max(C.VALUE).alias(C.VALUE_MAX),
    ))
    return INTERACTIONS.select(agg).sortWithinPartitions(C.DOMAIN, C.USER_IDX, C.ITEM_IDX)
