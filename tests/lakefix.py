"""Publish a tiny ``unified`` dataset straight from rows, for tests of the jobs downstream of ingest.

    lake = publish_unified(spark, tmp_path / "lake", "2026-01-01",
                           items=[item("m1", "drama", 0)], events=[event(0, 0, "m1", "drama", ts=1)])

Only ``items`` and ``events`` are written (with the declared schemas); that is what the training
side reads. Real ingest output is exercised by the end-to-end tests.
"""
from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from crossrec.lake import Lake
from crossrec.schemas import columns as C
from crossrec.schemas.lake import EVENTS, ITEMS, UNIFIED

EPOCH = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)


def item(item_id: str, domain: str, item_idx: int, title: str | None = None,
         genres: tuple[str, ...] = ()) -> dict[str, Any]:
    title = title or f"Movie {item_id}"
    return {C.ITEM_IDX: item_idx, C.ITEM_ID: item_id, C.TITLE: title, C.YEAR: 2000,
            C.GENRES: list(genres), C.DOMAIN: domain, C.TEXT: f"{title} ({domain})"}


def event(user_idx: int, seq: int, item_idx: int, item_id: str, domain: str, ts_days: float,
          value: float | None = 5.0, platform: str = "p") -> dict[str, Any]:
    """One event; ``ts_days`` after 2026-01-01 UTC."""
    return {C.USER_IDX: user_idx, C.SEQ: seq, C.USER_KEY: f"u{user_idx:04d}", C.ITEM_IDX: item_idx,
            C.ITEM_ID: item_id, C.DOMAIN: domain, C.PLATFORM: platform, C.EVENT_TYPE: "rating",
            C.VALUE: value, C.WEIGHT: 1.0, C.TS: EPOCH + dt.timedelta(days=ts_days)}


def publish_unified(spark: Any, root: Path | str, run_date: str, items: list[dict[str, Any]],
                    events: list[dict[str, Any]], run_id: str = "fixture") -> Lake:
    lake = Lake.open(str(root))
    staging = lake.stage(UNIFIED, run_date, run_id)
    counts = {}
    for table, rows in ((ITEMS, items), (EVENTS, events)):
        df = table.select(spark.createDataFrame(rows, table.as_spark_schema()))
        if table is EVENTS:  # ingest's layout: whole users per file, sorted by (user_idx, seq)
            df = df.repartition(2, C.USER_IDX).sortWithinPartitions(C.USER_IDX, C.SEQ)
        df.write.parquet(staging.path(table))
        counts[table.name] = {"rows": len(rows)}
    lake.commit(staging, run_id, counts)
    return lake
