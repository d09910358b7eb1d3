"""Scoring against a brute-force reference: histories rebuilt by hand in Python, user vectors from
the model's own towers (no precomputed item table), scores and ranks in float64 numpy.

The model's items are in a different order from the catalog's item_idx (matched by item_id),
the catalog has an item the model never saw, some users have more than L events, one user's
only event is an unknown item, two users have no events at all, and two pairs of items have
identical vectors (exact ties)."""
from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from crossrec import score as S
from crossrec.event_files import event_pieces
from crossrec.model import CrossDomainModel, ModelConfig
from crossrec.schemas import columns as C
from crossrec.schemas.lake import EVENTS, ITEMS
from crossrec.schemas.scoring import RECOMMENDATIONS, SOURCE_MODEL, SOURCE_POPULAR
from crossrec.train.artifact import save_artifact
from tests.lakefix import event, item

DOMAINS = ("comedy", "drama")
PER_DOMAIN = 9
L = 3
K = 4
TIES = ((0, 1), (PER_DOMAIN + 2, PER_DOMAIN + 5))  # catalog positions with identical vectors


def catalog() -> list[dict]:
    items = [item(f"{d[0]}{i:02d}", d, 0) for d in DOMAINS for i in range(PER_DOMAIN)]
    items.append(item("d99", "drama", 0))      # added after training: unknown to the model
    for idx, row in enumerate(sorted(items, key=lambda r: r[C.ITEM_ID])):
        row[C.ITEM_IDX] = idx
    return sorted(items, key=lambda r: r[C.ITEM_IDX])


def write_artifact(directory: Path, items: list[dict]) -> tuple[CrossDomainModel, list[str]]:
    """A random model whose item order is a shuffle of the known catalog items."""
    known = [r for r in items if r[C.ITEM_ID] != "d99"]
    order = random.Random(5).sample(known, len(known))
    ids = [r[C.ITEM_ID] for r in order]
    domain = torch.tensor([DOMAINS.index(r[C.DOMAIN]) for r in order])
    g = torch.Generator().manual_seed(0)
    text = torch.randn(len(ids), 6, generator=g)
    torch.manual_seed(0)
    model = CrossDomainModel(ModelConfig(len(ids), 2, 6, dim=8, delta_rank=2, hidden=16), text, domain)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.5, generator=g)
        for a, b in TIES:
            i, j = ids.index(items[a][C.ITEM_ID]), ids.index(items[b][C.ITEM_ID])
            for t in (model.items.id.weight, model.items.text, model.items.bias.weight):
                t[j] = t[i]
    save_artifact(directory, model, {"domains": list(DOMAINS), "item_ids": ids, "max_history": L})
    return model, ids


def event_rows(items: list[dict]) -> list[dict]:
    rng = random.Random(11)
    rows = []
    for u in range(14):
        picks = rng.sample(items, rng.choice([1, 2, 4, 6]))
        times = [rng.choice([0.0, 1.0, 2.5, 4.0]) for _ in picks]   # same-time events happen
        for seq, (it, t) in enumerate(zip(picks, sorted(times))):
            rows.append(event(u, seq, it[C.ITEM_IDX], it[C.ITEM_ID], it[C.DOMAIN], t,
                              rng.choice([None, 1.0, 3.5, 5.0])))
    unknown = next(r for r in items if r[C.ITEM_ID] == "d99")
    rows.append(event(20, 0, unknown[C.ITEM_IDX], "d99", "drama", 1.0))  # no usable history
    return rows


# --- brute force ----------------------------------------------------------------------------------

def reference(model: CrossDomainModel, ids: list[str], items: list[dict], events: list[dict],
              users: list[int]) -> dict[tuple[int, str], list[tuple[int, float, str]]]:
    """(user_idx, domain) -> [(item_idx, score, source)] best first, by plain loops."""
    m_of = {i: m for m, i in enumerate(ids)}
    with torch.no_grad():
        vecs, bias = (t.double().numpy() for t in model.items.all())
    pop = {r[C.ITEM_ID]: len({e[C.USER_IDX] for e in events if e[C.ITEM_ID] == r[C.ITEM_ID]})
           for r in items}
    out = {}
    for u in users:
        mine = sorted((e for e in events if e[C.USER_IDX] == u), key=lambda e: (e[C.TS], e[C.SEQ]))
        usable = [e for e in mine if e[C.ITEM_ID] in m_of][::-1][:L]
        uvec = user_vector(model, usable, mine[-1][C.TS] if mine else None, m_of) if usable else None
        for d in DOMAINS:
            seen = {e[C.ITEM_ID] for e in mine}
            cands = [r for r in items if r[C.DOMAIN] == d and r[C.ITEM_ID] in m_of
                     and r[C.ITEM_ID] not in seen]
            if uvec is not None:
                scored = [(r[C.ITEM_IDX], float(uvec[DOMAINS.index(d)] @ vecs[m_of[r[C.ITEM_ID]]]
                                                 + bias[m_of[r[C.ITEM_ID]]]), SOURCE_MODEL) for r in cands]
            else:
                scored = [(r[C.ITEM_IDX], float(pop[r[C.ITEM_ID]]), SOURCE_POPULAR) for r in cands]
            out[(u, d)] = sorted(scored, key=lambda x: (-x[1], x[0]))[:K]
    return out


def user_vector(model, usable, now, m_of) -> np.ndarray:
    """[T, D] from the model's towers on a one-user batch built slot by slot."""
    n = len(usable)
    batch = {C.HIST_ITEM: torch.tensor([[m_of[e[C.ITEM_ID]] for e in usable]]),
             C.HIST_DOMAIN: torch.tensor([[DOMAINS.index(e[C.DOMAIN]) for e in usable]]),
             C.HIST_AGE: torch.tensor([[(now - e[C.TS]).total_seconds() / 86400 for e in usable]]),
             C.HIST_VALUE: torch.tensor([[e[C.VALUE] or 0.0 for e in usable]]),
             C.HIST_MASK: torch.ones(1, n, dtype=torch.bool)}
    with torch.no_grad():
        return model.user_vectors(batch)[0].double().numpy()


# --- fixtures -------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def case(spark, tmp_path_factory):
    items = catalog()
    art = tmp_path_factory.mktemp("artifact")
    model, ids = write_artifact(art, items)
    events = event_rows(items)
    ev = spark.createDataFrame(events, EVENTS.as_spark_schema())
    it = spark.createDataFrame(items, ITEMS.as_spark_schema())
    users = spark.createDataFrame([(u, f"u{u:04d}") for u in (20, 30, 31)], "user_idx int, user_key string")
    got = S.recommend(ev, it, str(art), K, users=users, block_users=4, partitions=3)
    rows = [r.asDict() for r in got.collect()]
    ref = reference(model, ids, items, events, sorted({*(e[C.USER_IDX] for e in events), 30, 31}))
    return {"rows": rows, "ref": ref, "df": got, "ev": ev, "it": it, "users": users, "art": str(art),
            "events": events, "model": model, "ids": ids, "items": items}


def lists(rows: list[dict]) -> dict[tuple[int, str], list[dict]]:
    out: dict = {}
    for r in sorted(rows, key=lambda r: (r[C.USER_IDX], r[C.DOMAIN], r[C.RANK])):
        out.setdefault((r[C.USER_IDX], r[C.DOMAIN]), []).append(r)
    return out


# --- tests ----------------------------------------------------------------------------------------

def test_matches_brute_force_order_scores_and_sources(case):
    assert_matches(case["rows"], case["ref"])


@pytest.mark.parametrize("slice_users", [1, 3])
def test_scores_sliced_blocks_like_whole_ones(case, slice_users):
    """A block scored a few users at a time (CPU's cache-sized slices; here forced small, with a
    short last slice and slices of model and popular users apart) gives the reference lists."""
    got = S.recommend(case["ev"], case["it"], case["art"], K, users=case["users"], block_users=4,
                      partitions=3, slice_users=slice_users)
    assert_matches([r.asDict() for r in got.collect()], case["ref"])


@pytest.mark.parametrize("screen", ["bf16", "fp32"])
def test_either_screen_gives_the_same_rows(case, screen):
    """The screen only picks candidates: either gives the reference lists and, scored exactly
    after, the same rows to the bit (the fixture's are the default screen's)."""
    got = [r.asDict() for r in S.recommend(case["ev"], case["it"], case["art"], K,
                                           users=case["users"], block_users=4, partitions=3,
                                           screen=screen).collect()]
    assert_matches(got, case["ref"])
    key = lambda r: (r[C.USER_IDX], r[C.DOMAIN], r[C.RANK])  # noqa: E731
    assert sorted(got, key=key) == sorted(case["rows"], key=key)


@pytest.mark.parametrize("files, pieces", [(1, 1), (2, 5)])
def test_scores_the_lakes_event_files_like_the_reference(spark, case, tmp_path, files, pieces):
    """Events written as ingest writes them (whole users per file, sorted by user and seq), read
    by the tasks themselves, in pieces of files too: the reference lists of every user."""
    path = str(tmp_path / "events")
    (case["ev"].repartition(files, C.USER_IDX).sortWithinPartitions(C.USER_IDX, C.SEQ)
     .write.parquet(path))
    cut = event_pieces(path, tasks=pieces, min_rows=1)
    assert len(cut) >= pieces
    counted = S.piece_popularity(spark, cut)
    pd.testing.assert_series_equal(counted, S.popularity(case["ev"]).sort_index(),
                                   check_index_type=False)
    plan = S.plan_scoring(case["ev"], case["it"], case["art"], K, block_users=4,
                          users_per_item=counted)
    got = S.score_event_files(spark, cut, plan)
    assert got.schema == RECOMMENDATIONS.as_spark_schema()
    assert_matches([r.asDict() for r in got.collect()],
                   {key: v for key, v in case["ref"].items() if key[0] not in (30, 31)})


def test_piece_input_finds_each_items_artifact_row_and_domain_by_item_idx(case, tmp_path):
    """What the joins of ``score_users`` find by ``item_id`` and ``domain``, found by the
    events' ``item_idx`` in the plan's catalog: null for the item the model never saw."""
    import pyarrow as pa

    path = str(tmp_path / "events")
    case["ev"].repartition(2, C.USER_IDX).sortWithinPartitions(C.USER_IDX, C.SEQ).write.parquet(path)
    plan = S.plan_scoring(case["ev"], case["it"], case["art"], K)
    got = pa.Table.from_batches([b for p in event_pieces(path, tasks=3, min_rows=1)
                                 for b in S.piece_input(p, plan)])
    got = sorted(zip(*(got[c].to_pylist() for c in (C.USER_IDX, C.SEQ, "_model_idx", C.DOMAIN_IDX))))
    want = sorted((e[C.USER_IDX], e[C.SEQ],
                   case["ids"].index(e[C.ITEM_ID]) if e[C.ITEM_ID] in case["ids"] else None,
                   DOMAINS.index(e[C.DOMAIN])) for e in case["events"])
    assert got == want
    assert any(w[2] is None for w in want)


def test_lookup_is_null_where_unknown_outside_or_null():
    import pyarrow as pa

    got = S._lookup(np.array([5, -1, 7], np.int32), pa.array([0, 1, 2, 3, -4, None], pa.int32()))
    assert got.type == pa.int32() and got.to_pylist() == [5, None, 7, None, None, None]
    assert S._lookup(np.zeros(0, np.int32), pa.array([0], pa.int32())).to_pylist() == [None]


def test_piece_popularity_counts_distinct_users_across_files_and_pieces(spark, tmp_path):
    rows = [(0, 0, 7), (0, 1, 7), (0, 2, 3), (1, 0, 7), (2, 0, 3), (2, 1, 3), (3, 0, 9)]
    path = str(tmp_path / "events")
    (spark.createDataFrame(rows, f"{C.USER_IDX} int, {C.SEQ} int, {C.ITEM_IDX} int")
     .repartition(2, C.USER_IDX).sortWithinPartitions(C.USER_IDX, C.SEQ).write.parquet(path))
    got = S.piece_popularity(spark, event_pieces(path, tasks=3, min_rows=1))
    assert got.to_dict() == {3: 2.0, 7: 2.0, 9: 1.0}


def test_per_piece_runs_every_piece_once_in_the_tasks_asked(spark):
    import pyarrow as pa
    from pyspark import TaskContext

    from crossrec.event_files import Piece

    def run(piece):
        yield pa.RecordBatch.from_arrays([pa.array([piece.lo]),
                                          pa.array([TaskContext.get().partitionId()])],
                                         names=["lo", "task"])

    pieces = [Piece("f", lo, lo + 1) for lo in range(5)]
    for tasks, want in ((2, 2), (None, 5)):
        got = S.per_piece(spark, pieces, run, "lo long, task long", tasks).toArrow()
        assert sorted(got["lo"].to_pylist()) == list(range(5))
        assert len(set(got["task"].to_pylist())) == want


def test_events_out_of_order_are_the_input_error_naming_file_and_row(spark, tmp_path):
    """Raised in a task, it reaches the driver as itself, not as a worker's traceback."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from crossrec.errors import InputError

    pq.write_table(pa.table({C.USER_IDX: pa.array([1, 0], pa.int32()),
                             C.SEQ: pa.array([0, 0], pa.int32()),
                             C.ITEM_IDX: pa.array([0, 0], pa.int32())}), tmp_path / "part-0.parquet")
    with pytest.raises(InputError, match=r"^[^\n]*part-0.parquet: row 1: fields 'user_idx', 'seq'"):
        S.piece_popularity(spark, event_pieces(str(tmp_path)))


def assert_matches(rows: list[dict], ref: dict) -> None:
    got = lists(rows)
    assert set(got) == set(ref)
    for key, want in ref.items():
        mine = got[key]
        assert [r[C.RANK] for r in mine] == list(range(1, len(want) + 1)), key
        assert [r[C.ITEM_IDX] for r in mine] == [w[0] for w in want], key
        assert [r[C.SOURCE] for r in mine] == [w[2] for w in want], key
        np.testing.assert_allclose([r[C.SCORE] for r in mine], [w[1] for w in want], rtol=1e-4, atol=1e-4)


def test_planted_ties_go_to_the_smaller_item_idx(case):
    tied = {case["items"][a][C.ITEM_IDX]: case["items"][b][C.ITEM_IDX] for a, b in TIES}
    seen = 0
    for mine in lists(case["rows"]).values():
        pos = {r[C.ITEM_IDX]: r for r in mine if r[C.SOURCE] == SOURCE_MODEL}
        for small, large in tied.items():
            if small in pos and large in pos:
                assert pos[small][C.SCORE] == pos[large][C.SCORE]
                assert pos[small][C.RANK] < pos[large][C.RANK]
                seen += 1
    assert seen, "the fixture should put a tied pair into some list"


def test_lists_exclude_consumed_unknown_and_duplicates(case):
    consumed = {(e[C.USER_IDX], e[C.ITEM_ID]) for e in case["events"]}
    counts = {(r[C.USER_IDX], r[C.DOMAIN]) for r in case["rows"]}
    for (u, d), mine in lists(case["rows"]).items():
        ids = [r[C.ITEM_ID] for r in mine]
        assert len(ids) == len(set(ids)) and "d99" not in ids
        assert not any((u, i) in consumed for i in ids)
        assert all(i[0] == d[0] for i in ids)  # the domain's own items
        available = sum(1 for r in case["items"] if r[C.DOMAIN] == d and r[C.ITEM_ID] != "d99"
                        and (u, r[C.ITEM_ID]) not in consumed)
        assert len(ids) == min(K, available)
    assert len(counts) == 2 * 17  # 14 users with events, one with only d99, two with none


def test_users_without_usable_history_get_popular_items(case):
    got = lists(case["rows"])
    for u in (20, 30, 31):
        assert {r[C.SOURCE] for d in DOMAINS for r in got[(u, d)]} == {SOURCE_POPULAR}
    usable = {e[C.USER_IDX] for e in case["events"] if e[C.ITEM_ID] != "d99"}
    assert {r[C.SOURCE] for r in case["rows"] if r[C.USER_IDX] in usable} == {SOURCE_MODEL}


def test_schema_blocking_and_rerun(spark, case):
    assert case["df"].schema == RECOMMENDATIONS.as_spark_schema()
    again = S.recommend(case["ev"], case["it"], case["art"], K, users=case["users"],
                        block_users=1000, partitions=1, device="cpu")
    other = [r.asDict() for r in again.collect()]
    # other block shapes take other GEMM kernels: the same lists, scores equal to float rounding
    strip = lambda rows: sorted(tuple(v for c, v in r.items() if c != C.SCORE) for r in rows)  # noqa: E731
    assert strip(case["rows"]) == strip(other)
    key = lambda r: (r[C.USER_IDX], r[C.DOMAIN], r[C.RANK])  # noqa: E731
    np.testing.assert_allclose([r[C.SCORE] for r in sorted(case["rows"], key=key)],
                               [r[C.SCORE] for r in sorted(other, key=key)], rtol=1e-5, atol=1e-4)
    same = S.recommend(case["ev"], case["it"], case["art"], K, users=case["users"],
                       block_users=4, partitions=3)
    assert sorted(case["rows"], key=key) == sorted((r.asDict() for r in same.collect()), key=key)


def test_one_domain_and_clear_errors(spark, case, tmp_path):
    only = S.recommend(case["ev"], case["it"], case["art"], 2, ["drama"])
    assert {r[C.DOMAIN] for r in only.collect()} == {"drama"}
    with pytest.raises(Exception, match="trained on"):
        S.recommend(case["ev"], case["it"], case["art"], 2, ["books"])
    with pytest.raises(Exception, match="no model artifact"):
        S.recommend(case["ev"], case["it"], str(tmp_path), 2)


# --- top_k alone: exact ties and -inf, against a sort ----------------------------------------------

# (k, columns, group): 30 columns take one stage; the others two (group maxima first), with a
# short last group (203, 61) or none (200), and with groups of equal maxima (values in 0..5)
@pytest.mark.parametrize("k, m, group", [(1, 30, 32), (3, 30, 32), (7, 30, 32), (40, 30, 32),
                                         (1, 203, 4), (3, 203, 4), (7, 200, 4), (10, 61, 2),
                                         (5, 2000, 32)])
def test_top_k_matches_a_stable_sort(k, m, group):
    g = torch.Generator().manual_seed(k * m)
    scores = torch.randint(0, 6, (64, m), generator=g).float()    # many exact ties
    scores[torch.rand(64, m, generator=g) < 0.3] = float("-inf")
    scores[0] = float("-inf")
    scores[1, k // 2:] = float("-inf")                             # fewer candidates than k
    scores[2, -1] = 9.0                                            # the best in the last group
    vals, cols = S.top_k(scores.clone(), k, group)
    for row, v, c in zip(scores.tolist(), vals.tolist(), cols.tolist()):
        want = sorted(((x, j) for j, x in enumerate(row) if x != float("-inf")), key=lambda t: (-t[0], t[1]))[:k]
        got = [(x, j) for x, j in zip(v, c) if x != float("-inf")]
        assert got == want


def test_top_k_of_no_columns_is_empty():
    vals, cols = S.top_k(torch.zeros(3, 0), 5)
    assert vals.shape == cols.shape == (3, 0) and cols.dtype == torch.long


@pytest.mark.parametrize("m, group", [(203, 4), (2000, 32), (20_000, 32)])
def test_largest_finds_the_values_of_a_full_topk(m, group):
    g = torch.Generator().manual_seed(m)
    scores = torch.randn(128, m, generator=g)
    scores[torch.rand(128, m, generator=g) < 0.5] = float("-inf")
    vals, cols = S.largest(scores, 11, group)                # in no particular order
    assert torch.equal(vals.sort(dim=1, descending=True).values, scores.topk(11, dim=1).values)
    assert torch.equal(scores.gather(1, cols), vals)         # the columns hold those values
    assert all(len(set(row)) == 11 for row in cols.tolist())  # and no column twice


@pytest.mark.parametrize("itemsize", [2, 4])
def test_cpu_slices_are_powers_of_two_near_the_cache_budget(itemsize):
    for n_items in (1, 7, 3_000, 5_000, 20_000, 40_000, 100_000, 10**9):
        rows = S.cpu_slice_users(n_items, itemsize)
        assert rows >= 1 and rows & (rows - 1) == 0, (n_items, rows)
        ratio = rows * itemsize * n_items / S.CPU_SCORE_BYTES
        assert rows == 1 or 2 ** -0.5 <= ratio <= 2 ** 0.5, (n_items, rows, ratio)
