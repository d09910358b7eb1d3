"""One interface suite every registered recommender must pass (implicit's RecommenderBaseTestMixin),
parametrised over ``Recommender.names()``: a model registered later (crossrec's own) joins it
automatically. The contract is asserted directly here, independently of ``check_lists``."""
from __future__ import annotations

from collections import defaultdict

import numpy as np
import pytest
from pyspark.sql import functions as F

from crossrec.errors import ConfigError
from crossrec.evaluate.recommender import EvalData, Recommender, TargetView, check_lists, to_frame
from crossrec.evaluate.split import EvalProtocol, split
from crossrec.schemas import columns as C
from crossrec.schemas.evaluation import RECOMMENDATIONS
from crossrec.schemas.lake import EVENTS, ITEMS
from tests.evalfix import tiny_world

# small settings so the suite stays fast; a model without an entry runs with its defaults
FAST_PARAMS: dict[str, dict] = {
    "als_target": {"rank": 4, "max_iter": 3},
    "als_pooled": {"rank": 4, "max_iter": 3},
    "ease_pooled": {"l2": 10.0},
}
NEWCOMER = 999  # a user with no training data at all
K = 5


@pytest.fixture(scope="module")
def data(spark, tmp_path_factory) -> EvalData:
    items, rows = tiny_world(n_users=24, seed=2)
    events = spark.createDataFrame(rows, EVENTS.as_spark_schema()).coalesce(1)
    protocol = EvalProtocol("drama", "comedy", 4.0, seed=0)
    s = split(events, protocol)
    items_df = spark.createDataFrame(items, ITEMS.as_spark_schema())
    return EvalData(spark, s.train.cache(), items_df, None, protocol,
                    str(tmp_path_factory.mktemp("work")))


@pytest.fixture(scope="module")
def truth(data) -> dict:
    """What the lists are checked against, computed from the inputs with plain Python."""
    target = {r[C.ITEM_IDX] for r in data.items.collect() if r[C.DOMAIN] == "drama"}
    seen = defaultdict(set)
    for r in data.train.where(F.col(C.DOMAIN) == "drama").collect():
        seen[r[C.USER_IDX]].add(r[C.ITEM_IDX])
    users = sorted({r[C.USER_IDX] for r in data.train.collect()}) + [NEWCOMER]
    return {"target": target, "seen": seen, "users": users}


_fitted: dict[str, Recommender] = {}


def _model(name: str, data: EvalData) -> Recommender:
    if name not in _fitted:
        _fitted[name] = Recommender.create(name, **FAST_PARAMS.get(name, {})).fit(data)
    return _fitted[name]


def _lists(model: Recommender, data: EvalData, users: list[int], k: int) -> list[tuple]:
    df = model.recommend(data.spark.createDataFrame([(u,) for u in users], f"{C.USER_IDX} int"), k)
    assert df.schema == RECOMMENDATIONS.as_spark_schema()
    return sorted((r[C.USER_IDX], r[C.RANK], r[C.ITEM_IDX], r[C.SCORE]) for r in df.collect())


def test_registry_has_the_baselines():
    assert {"popularity", "als_target", "als_pooled", "ease_pooled"} <= set(Recommender.names())
    with pytest.raises(ConfigError, match="unknown model 'nope'"):
        Recommender.create("nope")
    with pytest.raises(ConfigError, match="model 'popularity': bad parameters"):
        Recommender.create("popularity", rank=3)


@pytest.mark.parametrize("name", Recommender.names())
def test_recommend_contract(name, data, truth):
    model = _model(name, data)
    rows = _lists(model, data, truth["users"], K)
    by_user = defaultdict(list)
    for u, rank, item, score in rows:
        by_user[u].append((rank, item, score))
    for u in truth["users"]:
        lst = by_user[u]
        candidates = truth["target"] - truth["seen"][u]
        assert len(lst) == min(K, len(candidates)), (name, u)  # every user, newcomers too
        assert [r for r, _, _ in lst] == list(range(1, len(lst) + 1))
        items = [i for _, i, _ in lst]
        assert set(items) <= candidates and len(set(items)) == len(items)
        keys = [(-s, i) for _, i, s in lst]
        assert keys == sorted(keys), (name, u, lst)  # score descending, ties by item_idx
    assert set(by_user) == set(truth["users"])
    assert isinstance(model.settings(), dict) and isinstance(model.curve(), list)


@pytest.mark.parametrize("name", Recommender.names())
def test_recommend_is_deterministic_and_k_bounded(name, data, truth):
    model = _model(name, data)
    users = truth["users"][:6] + [NEWCOMER]
    assert _lists(model, data, users, 3) == _lists(model, data, users, 3)
    long = _lists(model, data, users, 50)  # more than the catalog: every candidate, no more
    for u in users:
        got = [i for uu, _, i, _ in long if uu == u]
        assert sorted(got) == sorted(truth["target"] - truth["seen"][u])


def test_check_lists_catches_broken_lists(data, truth):
    view = TargetView.of(data)
    users = np.array(sorted(truth["seen"]))
    u = int(users[0])
    seen_item = sorted(truth["seen"][u])[0]
    other = sorted(truth["target"] - truth["seen"][u])
    bad = {"in the training data": [(u, seen_item, 1.0, 1)],
           "outside the target": [(u, 15, 1.0, 1)],  # an 'other' item
           "ranks are not 1..n": [(u, other[0], 1.0, 2)],
           "ties by item_idx": [(u, other[1], 1.0, 1), (u, other[0], 1.0, 2)]}
    for what, rows in bad.items():
        table = to_frame(data.spark, _arrow(rows)).toArrow()
        with pytest.raises(ValueError, match=what):
            check_lists(table, view, np.array([u]), K, "broken")
    with pytest.raises(ValueError, match="no list for 1 users"):
        check_lists(_arrow([(u, other[0], 1.0, 1)]), view, np.array([u, int(users[1])]), K, "m")


def _arrow(rows: list[tuple]):
    import pyarrow as pa

    cols = list(zip(*rows))
    return pa.table({C.USER_IDX: pa.array(cols[0], pa.int32()), C.ITEM_IDX: pa.array(cols[1], pa.int32()),
                     C.SCORE: pa.array(cols[2], pa.float32()), C.RANK: pa.array(cols[3], pa.int32())},
                    schema=RECOMMENDATIONS.as_arrow_schema())
