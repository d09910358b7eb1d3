"""crossrec's own model inside the evaluation: the closed-form cross-domain transfer model
(:mod:`crossrec.model.transfer`, θ_t = θ_s + Δθ_t) behind the same :class:`Recommender`
interface as the baselines, fitted on the split's training positives and scored on the driver.

People with no training positives get the target domain's popular items (like every baseline);
target items with no training positive rank after all others.
"""
from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
from pyspark.sql import functions as F

from crossrec.evaluate.baselines import ItemItemScorer
from crossrec.evaluate.recommender import EvalData, to_arrays
from crossrec.evaluate.split import positives
from crossrec.model.transfer import TransferConfig, fit_domain
from crossrec.schemas import columns as C


class CrossrecTransfer(ItemItemScorer):
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
        self.max_items = max_items
        self._fit_facts: dict[str, float] = {}

    def settings(self) -> dict[str, Any]:
        return {"l2": self.cfg.l2, "l2_shared": self.cfg.l2_shared, "cuts": list(self.cfg.cuts),
                "row_pow": self.cfg.row_pow, **self._fit_facts}

    def fit(self, data: EvalData) -> "CrossrecTransfer":
        self._prepare(data)
        rows = positives(data.train, data.protocol.min_value)
        users, items, domains, ts = to_arrays(
            rows.select(C.USER_IDX, C.ITEM_IDX, C.DOMAIN, F.unix_micros(C.TS).alias(C.TS)),
            C.USER_IDX, C.ITEM_IDX, C.DOMAIN, C.TS)
        names = sorted(set(domains.tolist()) | {data.protocol.target})
        dom = np.searchsorted(np.array(names), domains.astype(str))
        cols = self._index(users, items, self.max_items, dom, ts)
        self._weights, n_rows = fit_domain(self._profiles, len(self._vocab),
                                           names.index(data.protocol.target), cols, self.cfg)
        self._fit_facts = {"training_rows": n_rows}
        return self
