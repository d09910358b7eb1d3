"""From valid, pseudonymised events to the published tables (users, items, events, interactions).

Inputs here carry ``user_key`` (the person's pseudonym) and no raw account ids leave this module:
every output is projected onto its declared schema from :mod:`crossrec.schemas.lake`.
"""
from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T
from pyspark.sql.window import Window

from crossrec.schemas import columns as C
from crossrec.schemas.lake import EVENTS, INTERACTIONS, ITEMS, USERS

DEDUP_KEY = [C.PLATFORM, C.ACCOUNT, C.ITEM_ID, C.EVENT_TYPE, C.VALUE, C.TS]


def drop_exact_duplicates(events: DataFrame) -> DataFrame:
    """One row per identical event (same account, item, type, value and time on a platform)."""
    return events.dropDuplicates(DEDUP_KEY)


def dense_index(df: DataFrame, key: str, index: str) -> DataFrame:
    """``[key, index]``: 0-based dense ints in ``key`` order, so reruns give the same indices.

    zipWithIndex over the sorted keys avoids a single-partition global window.
    """
    keys = df.select(key).distinct().orderBy(key)
    schema = T.StructType([T.StructField(key, keys.schema[key].dataType, False),
                           T.StructField(index, T.IntegerType(), False)])
    rdd = keys.rdd.zipWithIndex().map(lambda row_i: (row_i[0][0], int(row_i[1])))
    return keys.sparkSession.createDataFrame(rdd, schema)


def build_items(catalog: DataFrame) -> DataFrame:
    """Valid catalog rows with ``item_idx``; every item, with or without interactions."""
    return ITEMS.select(catalog.join(dense_index(catalog, C.ITEM_ID, C.ITEM_IDX), C.ITEM_ID))


def build_users(events: DataFrame) -> DataFrame:
    """One row per person: accounts resolved to them, platforms, event counts and time span.

    ``events`` has ``[user_key, platform, account, ts]`` (account only counted, never kept).
    """
    per_user = events.groupBy(C.USER_KEY).agg(
        F.countDistinct(C.PLATFORM, C.ACCOUNT).cast("int").alias(C.N_ACCOUNTS),
        F.sort_array(F.collect_set(C.PLATFORM)).alias(C.PLATFORMS),
        F.count(F.lit(1)).alias(C.N_EVENTS),
        F.min(C.TS).alias(C.FIRST_TS),
        F.max(C.TS).alias(C.LAST_TS),
    )
    return USERS.select(per_user.join(dense_index(per_user, C.USER_KEY, C.USER_IDX), C.USER_KEY))


def build_events(events: DataFrame, users: DataFrame, items: DataFrame) -> DataFrame:
    """Events with dense indices and ``seq``: each user's history in time order (ties by item,
    platform, type, value, so the order is total and reruns agree)."""
    joined = (events.join(users.select(C.USER_KEY, C.USER_IDX), C.USER_KEY)
              .join(items.select(C.ITEM_ID, C.ITEM_IDX), C.ITEM_ID))
    order = Window.partitionBy(C.USER_IDX).orderBy(
        C.TS, C.ITEM_ID, C.PLATFORM, C.EVENT_TYPE, F.col(C.VALUE).asc_nulls_first())
    return EVENTS.select(joined.withColumn(C.SEQ, F.row_number().over(order) - 1))


def build_interactions(events: DataFrame) -> DataFrame:
    """The user-item matrix: one row per (user, item) aggregated over platforms and time."""
    latest_value = F.max_by(C.VALUE, F.when(F.col(C.VALUE).isNotNull(),
                                            F.struct(C.TS, C.VALUE)))
    # weights summed as decimals: exact, so the result cannot depend on shuffle order
    exact_sum = F.sum(F.col(C.WEIGHT).cast("decimal(20,6)")).cast("double")
    agg = events.groupBy(C.USER_IDX, C.ITEM_IDX, C.USER_KEY, C.ITEM_ID, C.DOMAIN).agg(
        exact_sum.alias(C.WEIGHT),
        F.count(F.lit(1)).cast("int").alias(C.N_EVENTS),
        F.min(C.TS).alias(C.FIRST_TS),
        F.max(C.TS).alias(C.LAST_TS),
        F.sort_array(F.collect_set(C.PLATFORM)).alias(C.PLATFORMS),
        latest_value.alias(C.VALUE_LAST),
        F.max(C.VALUE).alias(C.VALUE_MAX),
    )
    return INTERACTIONS.select(agg)
