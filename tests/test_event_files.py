"""Events files read in Python: pieces hold every row once and no user twice; rows out of the
lake's (user_idx, seq) order are an error naming the file and row."""
from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from crossrec.errors import InputError
from crossrec.event_files import event_pieces, parquet_files, read_piece
from crossrec.schemas import columns as C


def write_lake_layout(spark, path: str, users: int, files: int) -> list[tuple[int, int]]:
    """(user_idx, seq) rows, users 0..users-1 with 1..3 events, written as ingest writes events."""
    rows = [(u, s) for u in range(users) for s in range(1 + u % 3)]
    (spark.createDataFrame(rows, f"{C.USER_IDX} int, {C.SEQ} int")
     .repartition(files, C.USER_IDX).sortWithinPartitions(C.USER_IDX, C.SEQ).write.parquet(path))
    return rows


@pytest.mark.parametrize("files, at_least", [(1, 1), (1, 4), (3, 7), (3, 2)])
def test_pieces_hold_every_row_once_and_whole_users(spark, tmp_path, files, at_least):
    rows = write_lake_layout(spark, str(tmp_path / "events"), 100, files)
    pieces = event_pieces(str(tmp_path / "events"), at_least)
    assert len(pieces) >= max(at_least, len(parquet_files(str(tmp_path / "events"))))
    got, owner = [], {}
    for i, piece in enumerate(pieces):
        for batch in read_piece(piece, [C.USER_IDX, C.SEQ]):
            pairs = list(zip(batch[C.USER_IDX].to_pylist(), batch[C.SEQ].to_pylist()))
            got += pairs
            for u, _ in pairs:
                assert owner.setdefault(u, i) == i, f"user {u} in pieces {owner[u]} and {i}"
    assert sorted(got) == sorted(rows)


def test_no_files_no_pieces(tmp_path):
    (tmp_path / "events").mkdir()
    (tmp_path / "events" / "_SUCCESS").write_text("")
    assert event_pieces(str(tmp_path / "events"), 4) == []


@pytest.mark.parametrize("user, seq, bad_row", [([1, 1, 0], [0, 1, 0], 2),   # users go back
                                                ([0, 0, 1], [0, 0, 0], 1),   # a seq repeats
                                                ([2, 2, 3], [1, 0, 0], 1)])  # a seq goes back
def test_rows_out_of_order_name_the_file_and_row(tmp_path, user, seq, bad_row):
    path = tmp_path / "part-0.parquet"
    pq.write_table(pa.table({C.USER_IDX: pa.array(user, pa.int32()),
                             C.SEQ: pa.array(seq, pa.int32())}), path)
    piece = event_pieces(str(tmp_path))[0]
    with pytest.raises(InputError, match=rf"part-0.parquet: row {bad_row}: fields 'user_idx', 'seq'"):
        list(read_piece(piece, [C.USER_IDX, C.SEQ]))


def test_out_of_order_across_batches_is_seen(tmp_path, monkeypatch):
    """The check carries the last (user, seq) from one batch to the next."""
    import crossrec.event_files as EF

    monkeypatch.setattr(EF, "BATCH_ROWS", 2)
    path = tmp_path / "part-0.parquet"
    pq.write_table(pa.table({C.USER_IDX: pa.array([0, 1, 0], pa.int32()),
                             C.SEQ: pa.array([0, 0, 1], pa.int32())}), path)
    with pytest.raises(InputError, match="row 2"):
        list(read_piece(event_pieces(str(tmp_path))[0], [C.USER_IDX, C.SEQ]))


def test_missing_fields_are_named(tmp_path):
    pq.write_table(pa.table({C.USER_IDX: pa.array([0], pa.int32())}), tmp_path / "part-0.parquet")
    with pytest.raises(InputError, match=r"fields \['seq'\] missing"):
        list(read_piece(event_pieces(str(tmp_path))[0], [C.USER_IDX, C.SEQ]))
