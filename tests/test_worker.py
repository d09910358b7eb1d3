"""The Python worker's housekeeping: long-lived objects frozen, later garbage still collected."""
from __future__ import annotations

import gc
import weakref

from crossrec import score as S
from crossrec.event_files import Piece
from crossrec.worker import freeze_long_lived


class _Node:
    pass


def test_freezing_keeps_collecting_cycles_made_after_it():
    try:
        freeze_long_lived()
        assert gc.get_freeze_count() > 0
        node = _Node()
        node.me = node           # a cycle: only the collector frees it
        gone = weakref.ref(node)
        del node
        gc.collect()
        assert gone() is None
    finally:
        gc.unfreeze()


def test_scoring_tasks_start_frozen(spark):
    """per_piece (the popularity and scoring passes) freezes before running a piece, so the
    collection the daemon runs after each task skips what was alive then: here the task's own
    closure, unpickled just before (a frozen object is in none of the collector's generations)."""
    import pyarrow as pa

    marker = [["a list the collector tracks"]]

    def run(piece):
        frozen = not any(o is marker[0] for o in gc.get_objects())
        yield pa.RecordBatch.from_arrays([pa.array([frozen])], names=["frozen"])

    got = S.per_piece(spark, [Piece("f", 0, 1), Piece("f", 1, 2)], run, "frozen boolean").toArrow()
    assert got["frozen"].to_pylist() == [True, True]
