"""The closed-form transfer model: its training rows are the protocol's own cuts, its weights
are the minimiser they claim to be, and it transfers a planted cross-domain taste."""
from __future__ import annotations

from collections import defaultdict

import numpy as np
import pytest
from pyspark.sql import functions as F

from crossrec.evaluate.recommender import EvalData, Recommender
from crossrec.evaluate.split import EvalProtocol, positives, split
from crossrec.model.transfer import (Profiles, TransferConfig, ease, fit_domain, held_out_count,
                                     protocol_rows, row_gram)
from crossrec.schemas import columns as C
from crossrec.schemas.evaluation import COLD, WARM
from crossrec.schemas.lake import EVENTS, ITEMS
from tests.evalfix import tiny_world
from tests.lakefix import event, item


def _profiles_of(rows: list, names: list[str]) -> Profiles:
    """Profiles over item_idx columns from collected EVENTS rows."""
    return Profiles.of(np.array([r[C.USER_IDX] for r in rows]), np.array([r[C.ITEM_IDX] for r in rows]),
                       np.array([names.index(r[C.DOMAIN]) for r in rows]),
                       np.array([r[C.TS].timestamp() for r in rows]))


@pytest.mark.parametrize("seed", [0, 1])
def test_rows_are_the_protocols_cuts(spark, seed):
    """A profile row is exactly what a cold test user keeps and is asked for, and the 0.2 time-cut
    row exactly what a warm test user keeps and is asked for (ties at the cut-off included),
    checked against the Spark split itself."""
    _, rows = tiny_world(n_users=40, seed=seed)
    events = spark.createDataFrame(rows, EVENTS.as_spark_schema())
    protocol = EvalProtocol("drama", "comedy", 4.0, seed=seed)
    s = split(events, protocol)
    names = ["comedy", "drama", "other"]
    full = _profiles_of(positives(events, 4.0).collect(), names)
    train, test = defaultdict(set), defaultdict(set)
    for r in s.train.collect():
        train[r[C.USER_IDX]].add(r[C.ITEM_IDX])
    cohort = {}
    for r in s.test.collect():
        test[r[C.USER_IDX]].add(r[C.ITEM_IDX])
        cohort[r[C.USER_IDX]] = r[C.COHORT]
    assert {COLD, WARM} <= set(cohort.values())
    for u, c in cohort.items():
        j = int(np.searchsorted(full.users, u))
        one = Profiles(full.users[j:j + 1], full.offsets[j:j + 2] - full.offsets[j],
                       *(a[full.offsets[j]:full.offsets[j + 1]] for a in (full.cols, full.domains, full.ts)))
        made = list(protocol_rows(one, names.index("drama"), (0.2,)))
        x, y = made[0] if c == COLD else made[-1]
        assert (set(x.tolist()), set(y.tolist())) == (train[u], test[u]), (u, c)


def test_held_out_count_is_the_protocols_quota():
    assert [held_out_count(n, 0.2) for n in range(2, 13)] == [1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2]
    assert held_out_count(2, 0.9) == 1  # never every positive: one stays for training
    assert held_out_count(5, 0.5) == 3  # half up, as Spark's round


def _random_profiles(rng: np.random.Generator, n_users: int, n_cols: int) -> Profiles:
    users, cols, doms, ts = [], [], [], []
    domain_of = np.arange(n_cols) % 2
    for u in range(n_users):
        picked = rng.choice(n_cols, size=int(rng.integers(2, n_cols)), replace=False)
        users += [u] * len(picked)
        cols += picked.tolist()
        doms += domain_of[picked].tolist()
        ts += rng.integers(0, 4, size=len(picked)).tolist()
    return Profiles.of(np.array(users), np.array(cols), np.array(doms), np.array(ts, dtype=float))


def test_binary_and_gram_match_a_plain_loop():
    p = _random_profiles(np.random.default_rng(3), 9, 7)
    x = np.zeros((9, 7))
    for j in range(9):
        x[j, p.of_user(j)[0]] = 1
    np.testing.assert_array_equal(p.binary(np.array([4, 0, 8]), 7), x[[4, 0, 8]])
    np.testing.assert_array_equal(p.gram(7, block=2), x.T @ x)


def test_weights_minimise_the_stated_objective():
    """θ_t from fit_domain has zero gradient of Σ w_r ‖y_r − x_r B‖² + λ‖B − θ_s‖², rebuilt here
    from the rows with plain loops; λ → ∞ gives θ_s and no rows at all gives θ_s exactly."""
    p = _random_profiles(np.random.default_rng(0), 12, 8)
    y_cols = np.array([1, 3, 5, 7])  # domain 1
    cfg = TransferConfig(l2=3.0, l2_shared=2.0, cuts=(0.2, 0.5), row_pow=0.5)
    theta, n_rows = fit_domain(p, 8, 1, y_cols, cfg)
    x_all = p.binary(np.arange(12), 8).astype(np.float64)
    shared = ease(x_all.T @ x_all, 2.0)[:, y_cols]
    rows = list(protocol_rows(p, 1, cfg.cuts))
    assert n_rows == len(rows) > 12
    grad = 2 * cfg.l2 * (theta - shared)
    for xc, yc in rows:
        x = np.zeros(8)
        x[xc] = 1
        y = np.isin(y_cols, np.setdiff1d(yc, xc)).astype(float)
        grad -= 2 * (1 + x.sum()) ** -0.5 * np.outer(x, y - x @ theta)
    assert np.abs(grad).max() < 1e-4
    far, _ = fit_domain(p, 8, 1, y_cols, TransferConfig(l2=1e9, l2_shared=2.0))
    np.testing.assert_allclose(far, shared, atol=1e-5)
    none, _ = fit_domain(p, 8, 7, y_cols, cfg)  # domain 7 has no events: no rows
    np.testing.assert_allclose(none, shared, atol=1e-6)
    g, _, zero = row_gram(iter(()), 8, y_cols, 0.5)
    assert zero == 0 and not g.any()


def _planted_world(n_per_taste: int = 12) -> tuple[list, list]:
    """Two tastes: taste k likes comedy items of group k and drama items of group k."""
    items = [item(f"c{j}", "comedy", j) for j in range(6)] + \
        [item(f"d{j}", "drama", 6 + j) for j in range(6)]
    rows = []
    for u in range(2 * n_per_taste):
        taste = u % 2
        liked = [j for j in range(12) if (j % 6) // 3 == taste]
        for seq, j in enumerate(liked):
            rows.append(event(u, seq, j, items[j][C.ITEM_ID], items[j][C.DOMAIN], float(seq)))
    return items, rows


def test_transfers_a_planted_taste_to_people_new_to_the_domain(spark, tmp_path):
    """People with comedy only get the drama items of their own taste first; popularity cannot
    tell the tastes apart."""
    items, rows = _planted_world()
    newcomers = {100: 0, 101: 1}  # user -> taste, two comedy items each, no drama
    for u, taste in newcomers.items():
        for seq, j in enumerate((3 * taste, 3 * taste + 1)):
            rows.append(event(u, seq, j, items[j][C.ITEM_ID], "comedy", float(seq)))
    train = spark.createDataFrame(rows, EVENTS.as_spark_schema())
    data = EvalData(spark, train, spark.createDataFrame(items, ITEMS.as_spark_schema()), None,
                    EvalProtocol("drama", "comedy", 4.0), str(tmp_path))
    model = Recommender.create("crossrec", l2=1.0, l2_shared=1.0).fit(data)
    users = spark.createDataFrame([(u,) for u in newcomers], f"{C.USER_IDX} int")
    lists = model.recommend(users, 3).where(F.col(C.RANK) <= 3).collect()
    got = defaultdict(set)
    for r in lists:
        got[r[C.USER_IDX]].add(r[C.ITEM_IDX])
    assert got == {u: {6 + 3 * t, 7 + 3 * t, 8 + 3 * t} for u, t in newcomers.items()}
