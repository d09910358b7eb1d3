"""The one small interface every evaluated model implements (implicit's ``RecommenderBase``).

    rec = Recommender.create("als_pooled", rank=64).fit(data)
    lists = rec.recommend(users, k=10)   # (user_idx, item_idx, score, rank)

The contract (checked by :func:`check_lists` in the job and by the shared interface tests): only
items of ``protocol.target``, never an item the user has any event on in ``data.train`` in the
target domain, at most k rows per user, ranks 1..n, ties broken by item_idx ascending; every
requested user gets a list, including users with no training data at all.

Models register by subclassing with a ``name``; :meth:`Recommender.names` imports the built-in
baselines and, when present, ``crossrec.evaluate.crossrec_model``.
"""
from __future__ import annotations

import importlib
import importlib.util
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, Callable, ClassVar

import numpy as np
import pyarrow as pa
import torch
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from crossrec.errors import ConfigError
from crossrec.evaluate.split import EvalProtocol
from crossrec.schemas import columns as C
from crossrec.schemas.evaluation import RECOMMENDATIONS
from crossrec.score import top_k

_MODULES = ("crossrec.evaluate.baselines", "crossrec.evaluate.crossrec_model")


@dataclass(frozen=True)
class EvalData:
    """What a model may train on: the split's training events (EVENTS schema, all domains), the
    catalog (ITEMS), the item_text vectors (ITEM_VECTORS) when published, the protocol, and a
    scratch folder."""

    spark: Any
    train: DataFrame
    items: DataFrame
    item_vectors: DataFrame | None
    protocol: EvalProtocol
    work_dir: str


class Recommender(ABC):
    """Base of every evaluated model. Subclasses set ``name`` and may set ``grid``: the parameter
    settings :func:`crossrec.evaluate.tuning.tune` tries (each a dict of ``create`` kwargs)."""

    name: ClassVar[str]
    grid: ClassVar[tuple[dict[str, Any], ...]] = ()
    _registry: ClassVar[dict[str, type["Recommender"]]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        name = cls.__dict__.get("name")
        if name is None:
            return
        other = Recommender._registry.get(name)
        if other is not None and other.__qualname__ != cls.__qualname__:
            raise ValueError(f"recommender {name!r} is registered twice ({other} and {cls})")
        Recommender._registry[name] = cls

    @staticmethod
    def names() -> list[str]:
        """Registered names, in registration order (baselines first)."""
        _load_builtin()
        return list(Recommender._registry)

    @staticmethod
    def create(name: str, **params: Any) -> "Recommender":
        _load_builtin()
        cls = Recommender._registry.get(name)
        if cls is None:
            raise ConfigError(f"unknown model {name!r} (registered: {', '.join(Recommender._registry)})")
        try:
            return cls(**params)
        except TypeError as e:
            raise ConfigError(f"model {name!r}: bad parameters {params}: {e}") from None

    @abstractmethod
    def fit(self, data: EvalData) -> "Recommender":
        """Train on ``data``; returns self."""

    @abstractmethod
    def recommend(self, users: DataFrame, k: int) -> DataFrame:
        """``users`` (user_idx) -> RECOMMENDATIONS rows (user_idx, item_idx, score, rank)."""

    def settings(self) -> dict[str, Any]:
        """The parameters used, for the report."""
        return {}

    def curve(self) -> list[dict[str, float]]:
        """Training curve points, each ``{"step": s, "<series>": value, ...}``; default none."""
        return []


def _load_builtin() -> None:
    for module in _MODULES:
        if importlib.util.find_spec(module) is not None:
            importlib.import_module(module)  # an existing module that fails to import must fail


def to_arrays(df: DataFrame, *cols: str) -> list[np.ndarray]:
    """Columns of a (small) DataFrame as numpy arrays, through Arrow."""
    table = df.select(*cols).toArrow()
    return [table.column(c).to_numpy() for c in cols]


class TargetView:
    """The target domain's candidates for numpy scorers: ``items`` [n_T] sorted item_idx, and
    every (user, item) the training data has in T, which no list may contain."""

    def __init__(self, items: np.ndarray, seen_users: np.ndarray, seen_items: np.ndarray) -> None:
        self.items = np.asarray(items, dtype=np.int64)
        order = np.argsort(seen_users, kind="stable")
        self.seen_users = np.asarray(seen_users, dtype=np.int64)[order]
        self.seen_cols = np.searchsorted(self.items, np.asarray(seen_items, dtype=np.int64)[order])

    @staticmethod
    def of(data: EvalData) -> "TargetView":
        target = data.protocol.target
        (items,) = to_arrays(data.items.where(F.col(C.DOMAIN) == target), C.ITEM_IDX)
        seen = data.train.where(F.col(C.DOMAIN) == target).select(C.USER_IDX, C.ITEM_IDX).distinct()
        users, seen_items = to_arrays(seen, C.USER_IDX, C.ITEM_IDX)
        items = np.sort(items)
        inside = np.isin(seen_items, items)
        if not inside.all():
            raise ValueError(f"training events in {target!r} on items not in the catalog's "
                             f"{target!r} domain, e.g. item_idx={int(seen_items[~inside][0])}")
        return TargetView(items, users, seen_items)

    def seen_mask(self, users: np.ndarray) -> np.ndarray:
        """[B, n_T] bool: True where ``users[b]`` has a training event on item column j."""
        mask = np.zeros((len(users), len(self.items)), dtype=bool)
        lo = np.searchsorted(self.seen_users, users, side="left")
        hi = np.searchsorted(self.seen_users, users, side="right")
        rows = np.repeat(np.arange(len(users)), hi - lo)
        idx = np.concatenate([np.arange(a, b) for a, b in zip(lo, hi)]) if len(users) else []
        mask[rows, self.seen_cols[np.asarray(idx, dtype=np.int64)]] = True
        return mask

    def top_k(self, users: np.ndarray, scores: Callable[[np.ndarray], np.ndarray], k: int,
              block: int = 4096) -> pa.Table:
        """RECOMMENDATIONS rows for ``users`` [U]: ``scores(users_block)`` gives [B, n_T] scores
        of the target items; seen items are removed, the rest sorted by score descending, ties by
        item_idx ascending (the columns are in item_idx order): the scoring job's top-K."""
        parts = [self._top_k_block(users[i:i + block], scores, k) for i in range(0, len(users), block)]
        if not parts:
            return RECOMMENDATIONS.as_arrow_schema().empty_table()
        return pa.concat_tables(parts)

    def _top_k_block(self, users: np.ndarray, scores: Callable[[np.ndarray], np.ndarray],
                     k: int) -> pa.Table:
        s = np.array(scores(users), dtype=np.float32)
        if s.shape != (len(users), len(self.items)):
            raise ValueError(f"scores: expected shape {(len(users), len(self.items))}, got {s.shape}")
        if np.isnan(s).any():
            raise ValueError("scores contain NaN")
        s[self.seen_mask(users)] = -np.inf
        top_t, order_t = top_k(torch.from_numpy(s), k)  # scoring's exact top-K and tie rule
        top, order = top_t.numpy(), order_t.numpy()
        keep = np.isfinite(top)  # fewer than k unseen candidates: a shorter list
        rank = np.broadcast_to(np.arange(1, order.shape[1] + 1), order.shape)
        return pa.table({
            C.USER_IDX: pa.array(np.repeat(users, order.shape[1]).reshape(order.shape)[keep], pa.int32()),
            C.ITEM_IDX: pa.array(self.items[order][keep], pa.int32()),
            C.SCORE: pa.array(top[keep], pa.float32()),
            C.RANK: pa.array(rank[keep], pa.int32()),
        }, schema=RECOMMENDATIONS.as_arrow_schema())


def users_array(users: DataFrame) -> np.ndarray:
    """Distinct user_idx of ``users``, sorted."""
    (u,) = to_arrays(users.select(C.USER_IDX).distinct(), C.USER_IDX)
    return np.sort(u.astype(np.int64))


def to_frame(spark: Any, table: pa.Table) -> DataFrame:
    return spark.createDataFrame(table, schema=RECOMMENDATIONS.as_spark_schema())


def check_lists(lists: pa.Table, view: TargetView, users: np.ndarray, k: int, model: str) -> None:
    """Raise ValueError naming ``model`` and the first offending user if ``lists`` (collected
    RECOMMENDATIONS rows) break the contract of :meth:`Recommender.recommend`."""
    u = lists.column(C.USER_IDX).to_numpy().astype(np.int64)
    i = lists.column(C.ITEM_IDX).to_numpy().astype(np.int64)
    s = lists.column(C.SCORE).to_numpy()
    r = lists.column(C.RANK).to_numpy().astype(np.int64)
    order = np.lexsort((r, u))
    u, i, s, r = u[order], i[order], s[order], r[order]

    def fail(mask: np.ndarray, what: str) -> None:
        if mask.any():
            j = int(np.flatnonzero(mask)[0])
            raise ValueError(f"model {model!r}: {what} (user_idx={u[j]}, item_idx={i[j]}, rank={r[j]})")

    fail(~np.isin(i, view.items), "recommended an item outside the target domain")
    fail(~np.isin(u, users), "recommended to a user that was not asked for")
    col = np.searchsorted(view.items, i).clip(0, len(view.items) - 1)
    seen = set(zip(view.seen_users.tolist(), view.seen_cols.tolist()))
    fail(np.array([(a, b) in seen for a, b in zip(u.tolist(), col.tolist())], dtype=bool),
         "recommended an item the user has in the training data")
    first = np.r_[True, u[1:] != u[:-1]]
    position = np.arange(len(u)) - np.maximum.accumulate(np.where(first, np.arange(len(u)), 0))
    fail(r != position + 1, "ranks are not 1..n")
    fail(r > k, f"more than k={k} items")
    same = ~first
    fail(same & np.r_[False, i[1:] == i[:-1]], "the same item twice")
    prev_s, prev_i = np.r_[np.inf, s[:-1]], np.r_[-1, i[:-1]]
    fail(same & ((s > prev_s) | ((s == prev_s) & (i < prev_i))),
         "not sorted by score descending, ties by item_idx ascending")
    n_seen = (np.searchsorted(view.seen_users, users, side="right")
              - np.searchsorted(view.seen_users, users, side="left"))
    missing = np.setdiff1d(users[n_seen < len(view.items)], u)  # others have no candidate left
    if len(missing):
        raise ValueError(f"model {model!r}: no list for {len(missing)} users, e.g. user_idx={missing[0]}")
