"""Events files read in Python: pieces hold every row once and no user twice; rows out of the
lake's (user_idx, seq) order are an error naming the file and row."""
from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from crossrec.errors import InputError
from crossrec.event_files import Piece, event_pieces, file_users, parquet_files, read_piece
from crossrec.schemas import columns as C


def write_lake_layout(spark, path: str, users: int, files: int) -> list[tuple[int, int]]:
    """(user_idx, seq) rows, users 0..users-1 with 1..3 events, written as ingest writes events."""
    rows = [(u, s) for u in range(users) for s in range(1 + u % 3)]
    (spark.createDataFrame(rows, f"{C.USER_IDX} int, {C.SEQ} int")
     .repartition(files, C.USER_IDX).sortWithinPartitions(C.USER_IDX, C.SEQ).write.parquet(path))
    return rows


@pytest.mark.parametrize("files, tasks", [(1, 1), (1, 4), (3, 7), (3, 2)])
def test_pieces_hold_every_row_once_and_whole_users(spark, tmp_path, files, tasks):
    rows = write_lake_layout(spark, str(tmp_path / "events"), 100, files)
    pieces = event_pieces(str(tmp_path / "events"), tasks, min_rows=1)
    assert len(pieces) >= max(tasks, len(parquet_files(str(tmp_path / "events"))))
    assert sum(p.first for p in pieces) == len(parquet_files(str(tmp_path / "events")))
    got, owner = [], {}
    for i, piece in enumerate(pieces):
        for batch in read_piece(piece, [C.USER_IDX, C.SEQ]):
            pairs = list(zip(batch[C.USER_IDX].to_pylist(), batch[C.SEQ].to_pylist()))
            got += pairs
            for u, _ in pairs:
                assert owner.setdefault(u, i) == i, f"user {u} in pieces {owner[u]} and {i}"
    assert sorted(got) == sorted(rows)


def test_files_are_not_cut_below_min_rows(spark, tmp_path):
    rows = write_lake_layout(spark, str(tmp_path / "events"), 100, 1)   # 199 rows
    assert len(event_pieces(str(tmp_path / "events"), 8, min_rows=90)) == 2
    assert len(event_pieces(str(tmp_path / "events"), 8, min_rows=len(rows) + 1)) == 1


def test_the_first_piece_checks_the_whole_file_the_others_stop_at_their_end(tmp_path,
                                                                            monkeypatch):
    import crossrec.event_files as EF

    monkeypatch.setattr(EF, "BATCH_ROWS", 2)
    users = [0, 1, 2, 3, 4, 5, 6, 7, 8, 8]
    pq.write_table(pa.table({C.USER_IDX: pa.array(users, pa.int32()),
                             C.SEQ: pa.array([0] * 9 + [0], pa.int32())}),   # last row repeats
                   tmp_path / "part-0.parquet")
    first, middle, last = event_pieces(str(tmp_path), 3, min_rows=1)
    assert first.first and not middle.first and middle.hi <= 8
    for piece in (first, last):
        with pytest.raises(InputError, match="row 9"):
            list(read_piece(piece, [C.USER_IDX, C.SEQ]))
    got = [u for b in read_piece(middle, [C.USER_IDX, C.SEQ]) for u in b[C.USER_IDX].to_pylist()]
    assert got == list(range(middle.lo, middle.hi))  # stopped before the bad row


def test_a_file_without_statistics_is_one_piece(tmp_path):
    pq.write_table(pa.table({C.USER_IDX: pa.array([0, 1, 2], pa.int32()),
                             C.SEQ: pa.array([0, 0, 0], pa.int32())}),
                   tmp_path / "part-0.parquet", write_statistics=False)
    pieces = event_pieces(str(tmp_path), 4, min_rows=1)
    assert len(pieces) == 1
    assert [u for b in read_piece(pieces[0], [C.USER_IDX, C.SEQ])
            for u in b[C.USER_IDX].to_pylist()] == [0, 1, 2]


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
    with pytest.raises(InputError,
                       match=rf"part-0.parquet: row {bad_row}: fields 'user_idx', 'seq'"):
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


def _keys_file(path, keys: list[tuple[int, int]]) -> Piece:
    """A one-file events folder of ``(user_idx, seq)`` rows; its one piece."""
    table = pa.table({C.USER_IDX: pa.array([u for u, _ in keys], pa.int32()),
                      C.SEQ: pa.array([s for _, s in keys], pa.int32())})
    path.parent.mkdir()
    pq.write_table(table, path)
    return event_pieces(str(path.parent))[0]


def test_file_users_counts_each_users_rows(tmp_path):
    got = file_users(_keys_file(tmp_path / "events" / "a.parquet", [(2, 0), (2, 1), (5, 0), (9, 0), (9, 1)]))
    assert got.to_pydict() == {C.USER_IDX: [2, 5, 9], "rows": [2, 1, 2], "error": [None] * 3}


@pytest.mark.parametrize("keys, row", [([(2, 0), (1, 0)], 1), ([(2, 0), (2, 1), (2, 1)], 2)])
def test_file_users_names_the_first_row_out_of_order(tmp_path, keys, row):
    got = file_users(_keys_file(tmp_path / "events" / "b.parquet", keys)).to_pydict()
    assert got[C.USER_IDX] == [None] and got["rows"] == [None]
    assert "b.parquet" in got["error"][0] and f"row {row}:" in got["error"][0]
