"""crossrec's own model inside the evaluation: the closed-form cross-domain transfer model
(:mod:`crossrec.model.transfer`, θ_t = θ_s + Δθ_t) behind the same :class:`Recommender`
interface as the baselines, fitted on the split's training positives and scored on the driver.

People with no training positives get the target domain's popular items (like every baseline);
target items with no training positive rank after all others.
"""
from __future__ import annotations

import time
from typing import Any, ClassVar

import numpy as np
from pyspark.sql import functions as F

from crossrec.evaluate.baselines import UNKNOWN_SCORE, DriverScorer
from crossrec.evaluate.recommender import EvalData, to_arrays
from crossrec.evaluate.split import positives
from crossrec.model.transfer import Profiles, TransferConfig, fit_domain
from crossrec.schemas import columns as C


class CrossrecTransfer(DriverScorer):
    """``crossrec``: shared item-to-item weights plus the target domain's regularised delta."""

    name: ClassVar[str] = "crossrec"
    grid: ClassVar[tuple[dict[str, Any], ...]] = (
        {"l2": 300.0, "row_pow": 0.5}, {"l2": 1000.0, "row_pow": 0.5}, {"l2": 3000.0, "row_pow": 0.5},
        {"l2": 100.0, "row_pow": 1.0}, {"l2": 300.0, "row_pow": 1.0},
    )

    def __init__(self, l2: float = TransferConfig.l2, l2_shared: float = TransferConfig.l2_shared,
                 cuts: tuple[float, ...] = TransferConfig.cuts, row_pow: float = TransferConfig.row_pow,
                 max_items: int = 20_000) -> None:
        self.cfg = TransferConfig(float(l2), float(l2_shared), tuple(float(c) for c in cuts),
                                  float(row_pow))
        if not self.cfg.cuts or any(not 0.0 < c < 1.0 for c in self.cfg.cuts):
            raise ValueError(f"cuts: expected fractions in (0, 1), got {cuts}")
        self.max_items = max_items
        self._fit_facts: dict[str, float] = {}

    def settings(self) -> dict[str, Any]:
        return {"l2": self.cfg.l2, "l2_shared": self.cfg.l2_shared, "cuts": list(self.cfg.cuts),
                "row_pow": self.cfg.row_pow, **self._fit_facts}

    def fit(self, data: EvalData) -> "CrossrecTransfer":
        self._prepare(data)
        t0 = time.perf_counter()
        rows = positives(data.train, data.protocol.min_value)
        users, items, domains, ts = to_arrays(
            rows.select(C.USER_IDX, C.ITEM_IDX, C.DOMAIN, F.unix_micros(C.TS).alias(C.TS)),
            C.USER_IDX, C.ITEM_IDX, C.DOMAIN, C.TS)
        self._vocab = np.unique(items)
        if len(self._vocab) > self.max_items:
            raise ValueError(f"crossrec: {len(self._vocab)} items exceed max_items={self.max_items} "
                             "(the closed form solves a items x items system)")
        names = sorted(set(domains.tolist()) | {data.protocol.target})
        target = names.index(data.protocol.target)
        dom = np.searchsorted(np.array(names), domains.astype(str))
        self._profiles = Profiles.of(users, np.searchsorted(self._vocab, items), dom, ts)
        pos = np.searchsorted(self._vocab, self._view.items).clip(0, max(len(self._vocab) - 1, 0))
        self._has_item = self._vocab[pos] == self._view.items if len(self._vocab) else \
            np.zeros(len(self._view.items), bool)
        self._weights, n_rows = fit_domain(self._profiles, len(self._vocab), target,
                                           pos[self._has_item], self.cfg)
        self._fit_facts = {"training_rows": n_rows, "fit_seconds": round(time.perf_counter() - t0, 1)}
        return self

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
