"""Structured log lines: one JSON object per stage, counts and durations only (never row data)."""
from __future__ import annotations

import json
import logging
import time
from contextlib import contextmanager
from typing import Any, Iterator


def event(logger: logging.Logger, stage: str, **facts: Any) -> None:
    logger.info("%s", json.dumps({"stage": stage, **facts}, sort_keys=True, default=str))


@contextmanager
def timed(logger: logging.Logger, stage: str, **facts: Any) -> Iterator[dict[str, Any]]:
    """Log ``stage`` with its wall time; the yielded dict collects facts (e.g. row counts)."""
    start = time.perf_counter()
    extra: dict[str, Any] = {}
    yield extra
    event(logger, stage, seconds=round(time.perf_counter() - start, 3), **facts, **extra)
