"""Baselines behind the :class:`Recommender` interface, scored on the driver in numpy.

- ``popularity``: target items by the number of distinct training users with a positive on them.
- ``als_target``: Spark MLlib ALS (implicit) on the target domain's positives only.
- ``als_pooled``: the same on every domain's positives (or every interaction): one user factor
  shared by all domains (collective factorisation), target items scored.
- ``ease_pooled``: EASE (Steck 2019, "Embarrassingly Shallow Autoencoders for Sparse Data"):
  B = I - P diagMat(1 / diag(P)), P = (XᵀX + λI)⁻¹, over the pooled binary positive matrix X;
  closed form on the driver (items <= ``max_items``).

Users the model knows nothing about (no factor, no positive) get the popularity list; target
items the model has no parameters for rank after all others. ``grid`` is each model's honest
tuning grid (see :mod:`crossrec.evaluate.tuning`); the defaults are what that grid chose on the
ML-1M demo (README, "Evaluation").
"""
from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from crossrec.evaluate.recommender import (EvalData, Recommender, TargetView, to_arrays, to_frame,
                                           users_array)
from crossrec.evaluate.split import positives
from crossrec.model.transfer import Profiles, ease
from crossrec.schemas import columns as C

UNKNOWN_SCORE = np.float32(-1e30)  # finite (still a candidate), below every real score


def _pairs(data: EvalData, target_only: bool, interactions: str = "positives") -> DataFrame:
    """Distinct training (user_idx, item_idx) pairs: positives, or every event (``"all"``)."""
    if interactions not in ("positives", "all"):
        raise ValueError(f"interactions: expected 'positives' or 'all', got {interactions!r}")
    rows = data.train if interactions == "all" else positives(data.train, data.protocol.min_value)
    if target_only:
        rows = rows.where(F.col(C.DOMAIN) == data.protocol.target)
    return rows.select(C.USER_IDX, C.ITEM_IDX).distinct()


def target_popularity(data: EvalData, view: TargetView) -> np.ndarray:
    """[n_T] distinct training users with a positive on each target item."""
    (items,) = to_arrays(_pairs(data, target_only=True), C.ITEM_IDX)
    return np.bincount(np.searchsorted(view.items, items), minlength=len(view.items)).astype(np.float32)


class DriverScorer(Recommender):
    """Shared recommend(): users -> ``self._scores`` [B, n_T] -> top k via :class:`TargetView`."""

    _view: TargetView
    _popular: np.ndarray

    def _prepare(self, data: EvalData) -> None:
        self._spark = data.spark
        self._view = TargetView.of(data)
        self._popular = target_popularity(data, self._view)

    def recommend(self, users: DataFrame, k: int) -> DataFrame:
        return to_frame(self._spark, self._view.top_k(users_array(users), self._scores, k))

    def _scores(self, users: np.ndarray) -> np.ndarray:
        raise NotImplementedError


class Popularity(DriverScorer):
    name: ClassVar[str] = "popularity"

    def fit(self, data: EvalData) -> "Popularity":
        self._prepare(data)
        return self

    def _scores(self, users: np.ndarray) -> np.ndarray:
        return np.broadcast_to(self._popular, (len(users), len(self._popular)))


class _ALS(DriverScorer):
    """Implicit ALS (Hu, Koren, Volinsky 2008) in Spark MLlib on binary (user, item) pairs:
    confidence 1 + alpha, preference 1; factors collected and scored on the driver."""

    pooled: ClassVar[bool]
    defaults: ClassVar[dict[str, Any]] = {}

    def __init__(self, rank: int | None = None, reg: float | None = None,
                 alpha: float | None = None, max_iter: int = 10, interactions: str = "positives",
                 seed: int = 0) -> None:
        given = {"rank": rank, "reg": reg, "alpha": alpha}
        rank, reg, alpha = (self.defaults[k] if v is None else v for k, v in given.items())
        self.params = {"rank": rank, "reg": reg, "alpha": alpha, "max_iter": max_iter,
                       "interactions": interactions, "seed": seed}

    def settings(self) -> dict[str, Any]:
        return dict(self.params)

    def fit(self, data: EvalData) -> "_ALS":
        from pyspark.ml.recommendation import ALS

        self._prepare(data)
        p = self.params
        ratings = _pairs(data, target_only=not self.pooled, interactions=p["interactions"]) \
            .withColumn("_r", F.lit(1.0).cast("float"))
        als = ALS(rank=p["rank"], regParam=p["reg"], alpha=p["alpha"], maxIter=p["max_iter"],
                  implicitPrefs=True, userCol=C.USER_IDX, itemCol=C.ITEM_IDX, ratingCol="_r",
                  seed=p["seed"], coldStartStrategy="drop")
        model = als.fit(ratings)
        self._users, self._user_f = _factors(model.userFactors)
        item_ids, item_f = _factors(model.itemFactors)
        self._item_f = np.zeros((len(self._view.items), p["rank"]), dtype=np.float32)
        pos = np.searchsorted(self._view.items, item_ids).clip(0, len(self._view.items) - 1)
        inside = self._view.items[pos] == item_ids
        self._item_f[pos[inside]] = item_f[inside]
        self._has_item = np.zeros(len(self._view.items), dtype=bool)
        self._has_item[pos[inside]] = True
        return self

    def _scores(self, users: np.ndarray) -> np.ndarray:
        row = np.searchsorted(self._users, users).clip(0, max(len(self._users) - 1, 0))
        known = (self._users[row] == users) if len(self._users) else np.zeros(len(users), bool)
        out = np.broadcast_to(self._popular, (len(users), len(self._popular))).copy()
        out[known] = self._user_f[row[known]] @ self._item_f.T
        out[known] = np.where(self._has_item, out[known], UNKNOWN_SCORE)
        return out


def _factors(df: DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """ALS factors (id, features) -> (ids [N] sorted, factors [N, rank] float32)."""
    table = df.orderBy("id").toArrow()
    ids = table.column("id").to_numpy().astype(np.int64)
    feats = table.column("features").combine_chunks()
    flat = feats.flatten().to_numpy(zero_copy_only=False).astype(np.float32)
    return ids, flat.reshape(len(ids), -1) if len(ids) else np.zeros((0, 0), np.float32)


class ALSTarget(_ALS):
    name: ClassVar[str] = "als_target"
    pooled: ClassVar[bool] = False
    defaults: ClassVar[dict[str, Any]] = {"rank": 32, "reg": 0.1, "alpha": 1.0}  # grid's choice
    grid: ClassVar[tuple[dict[str, Any], ...]] = tuple(
        {"rank": r, "reg": g, "alpha": a} for r in (32, 64) for g in (0.01, 0.1) for a in (1.0, 10.0))


class ALSPooled(_ALS):
    name: ClassVar[str] = "als_pooled"
    pooled: ClassVar[bool] = True
    defaults: ClassVar[dict[str, Any]] = {"rank": 128, "reg": 1.0, "alpha": 10.0}  # grid's choice
    grid: ClassVar[tuple[dict[str, Any], ...]] = (
        {"rank": 32, "reg": 0.1, "alpha": 10.0},
        {"rank": 64, "reg": 0.1, "alpha": 10.0},
        {"rank": 128, "reg": 0.1, "alpha": 10.0},
        {"rank": 64, "reg": 0.1, "alpha": 2.0},
        {"rank": 128, "reg": 0.1, "alpha": 2.0},
        {"rank": 64, "reg": 1.0, "alpha": 10.0},
        {"rank": 128, "reg": 1.0, "alpha": 10.0},
        {"rank": 128, "reg": 0.1, "alpha": 30.0},
    )


class ItemItemScorer(DriverScorer):
    """Shared part of item-to-item models: a person's binary training positives over the item
    vocabulary ``[B, V]`` times the fitted target weights ``[V, n_T]``; people with no positive get
    the popularity list, target items outside the vocabulary rank last."""

    _profiles: Profiles
    _vocab: np.ndarray
    _weights: np.ndarray
    _has_item: np.ndarray

    def _index(self, users: np.ndarray, items: np.ndarray, max_items: int,
               domains: np.ndarray | None = None, ts: np.ndarray | None = None) -> np.ndarray:
        """Build the vocabulary and profiles of the training pairs; returns the vocabulary
        columns [n_T'] of the target items that have one (``_has_item`` marks them)."""
        self._vocab = np.unique(items)
        if len(self._vocab) > max_items:
            raise ValueError(f"{self.name}: {len(self._vocab)} items exceed max_items={max_items} "
                             "(the closed form solves an items x items system)")
        zeros = np.zeros(len(items), dtype=np.int64)
        self._profiles = Profiles.of(users, np.searchsorted(self._vocab, items),
                                     zeros if domains is None else domains, zeros if ts is None else ts)
        pos = np.searchsorted(self._vocab, self._view.items).clip(0, max(len(self._vocab) - 1, 0))
        self._has_item = self._vocab[pos] == self._view.items if len(self._vocab) else \
            np.zeros(len(self._view.items), bool)
        return pos[self._has_item]

    def _scores(self, users: np.ndarray) -> np.ndarray:
        p = self._profiles
        row = np.searchsorted(p.users, users).clip(0, max(len(p.users) - 1, 0))
        known = p.users[row] == users if len(p.users) else np.zeros(len(users), bool)
        out = np.broadcast_to(self._popular, (len(users), len(self._popular))).copy()
        if known.any():
            s = np.full((int(known.sum()), len(self._popular)), UNKNOWN_SCORE, dtype=np.float32)
            s[:, self._has_item] = p.binary(row[known], len(self._vocab)) @ self._weights
            out[known] = s
        return out


class EASEPooled(ItemItemScorer):
    """EASE on the pooled positives of every domain; target columns of B kept for scoring."""

    name: ClassVar[str] = "ease_pooled"
    grid: ClassVar[tuple[dict[str, Any], ...]] = tuple(
        {"l2": v} for v in (50.0, 100.0, 200.0, 500.0, 1000.0, 2000.0, 5000.0))

    def __init__(self, l2: float = 2000.0, interactions: str = "positives",
                 max_items: int = 20_000) -> None:
        self.params = {"l2": l2, "interactions": interactions, "max_items": max_items}

    def settings(self) -> dict[str, Any]:
        return dict(self.params)

    def fit(self, data: EvalData) -> "EASEPooled":
        self._prepare(data)
        users, items = to_arrays(_pairs(data, False, self.params["interactions"]),
                                 C.USER_IDX, C.ITEM_IDX)
        cols = self._index(users, items, self.params["max_items"])
        weights = ease(self._profiles.gram(len(self._vocab)), self.params["l2"])
        self._weights = weights[:, cols].astype(np.float32)  # [n_vocab, n_T']
        return self
