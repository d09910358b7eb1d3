"""Closed-form cross-domain transfer: item-to-item weights shared by every domain (θ_s) plus a
per-domain delta (Δθ_t) fitted on what the target domain must predict, regularised toward θ_s.

With every person's positives as binary rows over the item vocabulary V:

- θ_s [V, V] is EASE over all domains (Steck 2019, "Embarrassingly Shallow Autoencoders for Sparse
  Data", eq. 8): each item reconstructed from a person's other items.
- θ_t [V, n_t] answers the question asked of domain t at recommendation time. Training rows are
  cut from the people's own histories the way the evaluation protocol cuts test users:
  a *profile row* (x = every event outside t, y = their t items: a person new to t) and
  *time-cut rows* (x = events outside t at any time plus t events before a cut, y = the t items
  at or after the cut: the latest ``round(c·n)`` of n, for each ``c`` in ``cuts``). Then

      θ_t = argmin_B Σ_r w_r ‖y_r − x_r B‖² + λ ‖B − θ_s‖²_F = (XᵀWX + λI)⁻¹ (XᵀWY + λ θ_s)

  so θ_t = θ_s + Δθ_t with Δθ_t pulled to zero by λ: a domain with few rows keeps the shared
  weights, one with many learns its own. ``w_r = (1 + |x_r|)^-row_pow`` stops the few people with
  thousands of events from dominating the fit.

Scores of person u in domain t: ``x_u θ_t`` [n_t]. Everything is numpy on one machine: memory is
O(V²) (``max_items`` guards it), rows are streamed in blocks, time O(V³ + rows·V²/block).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterator

import numpy as np

Rows = tuple[np.ndarray, np.ndarray]  # (x item columns, y item columns) of one training row


def ease(gram: np.ndarray, l2: float) -> np.ndarray:
    """EASE weights B [n, n] from XᵀX (Steck 2019, eq. 8): zero diagonal."""
    p = np.linalg.inv(gram + l2 * np.eye(len(gram)))
    b = p / (-np.diag(p))
    np.fill_diagonal(b, 0.0)
    return b


@dataclass(frozen=True)
class Profiles:
    """Every person's positives, sorted by (user, ts, col): ``users`` [U] sorted, ``offsets``
    [U + 1], and per event ``cols`` (vocabulary column), ``domains``, ``ts`` [E]."""

    users: np.ndarray
    offsets: np.ndarray
    cols: np.ndarray
    domains: np.ndarray
    ts: np.ndarray

    @staticmethod
    def of(users: np.ndarray, cols: np.ndarray, domains: np.ndarray, ts: np.ndarray) -> "Profiles":
        order = np.lexsort((cols, ts, users))
        u = np.asarray(users, dtype=np.int64)[order]
        starts = np.flatnonzero(np.r_[True, u[1:] != u[:-1]]) if len(u) else np.zeros(0, np.int64)
        return Profiles(u[starts], np.r_[starts, len(u)].astype(np.int64),
                        np.asarray(cols, dtype=np.int64)[order],
                        np.asarray(domains, dtype=np.int64)[order], np.asarray(ts)[order])

    def of_user(self, j: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(cols, domains, ts) of the j-th user, time-ordered."""
        a, b = self.offsets[j], self.offsets[j + 1]
        return self.cols[a:b], self.domains[a:b], self.ts[a:b]

    def binary(self, rows: np.ndarray, n_cols: int) -> np.ndarray:
        """[len(rows), n_cols] float32 0/1 matrix of the users at positions ``rows``."""
        rows = np.asarray(rows, dtype=np.int64)
        lo, hi = self.offsets[rows], self.offsets[rows + 1]
        x = np.zeros((len(rows), n_cols), dtype=np.float32)
        x[np.repeat(np.arange(len(rows)), hi - lo), self.cols[_ranges(lo, hi)]] = 1.0
        return x

    def gram(self, n_cols: int, block: int = 4096) -> np.ndarray:
        """XᵀX [n_cols, n_cols] float64 of every user's binary row."""
        g = np.zeros((n_cols, n_cols), dtype=np.float64)
        for i in range(0, len(self.users), block):
            x = self.binary(np.arange(i, min(i + block, len(self.users))), n_cols)
            g += x.T @ x
        return g


def _ranges(lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Concatenated ``arange(lo[i], hi[i])`` for every i."""
    n = hi - lo
    return np.repeat(lo - np.r_[0, np.cumsum(n)[:-1]], n) + np.arange(int(n.sum()))


def held_out_count(n: int, frac: float) -> int:
    """The protocol's quota: ``max(1, round_half_up(frac·n))``, at most ``n - 1``."""
    return min(max(1, math.floor(frac * n + 0.5)), n - 1)


def protocol_rows(p: Profiles, domain: int, cuts: tuple[float, ...]) -> Iterator[Rows]:
    """Training rows for ``domain`` (see the module docstring): per person a profile row when they
    have events both in and outside it, and one time-cut row per cut when they have >= 2 in it."""
    for j in range(len(p.users)):
        cols, doms, ts = p.of_user(j)
        inside = doms == domain
        n = int(inside.sum())
        if 0 < n < len(cols):
            yield cols[~inside], cols[inside]
        if n < 2:
            continue
        pos = np.flatnonzero(inside)  # time-ordered, ties by column (the protocol's order)
        for c in cuts:
            first = pos[n - held_out_count(n, c)]
            keep = ~inside | (ts < ts[first])  # same-time events before the cut: neither x nor y
            yield cols[keep], cols[pos[pos >= first]]


def row_gram(rows: Iterator[Rows], n_cols: int, y_cols: np.ndarray, row_pow: float,
             block: int = 4096) -> tuple[np.ndarray, np.ndarray, int]:
    """(XᵀWX [V, V], XᵀWY [V, len(y_cols)], rows) of weighted binary rows; ``y_cols`` [n_t]
    are the target columns. A y item also in x is dropped from y (not a prediction)."""
    g = np.zeros((n_cols, n_cols), dtype=np.float64)
    xy = np.zeros((n_cols, len(y_cols)), dtype=np.float64)
    where = np.full(n_cols, -1, dtype=np.int64)
    where[y_cols] = np.arange(len(y_cols))
    n_rows, batch = 0, []
    for row in rows:
        batch.append(row)
        if len(batch) == block:
            n_rows += _accumulate(batch, g, xy, where, row_pow)
            batch = []
    n_rows += _accumulate(batch, g, xy, where, row_pow)
    return g, xy, n_rows


def _accumulate(batch: list[Rows], g: np.ndarray, xy: np.ndarray, where: np.ndarray,
                row_pow: float) -> int:
    x = np.zeros((len(batch), len(g)), dtype=np.float32)
    y = np.zeros((len(batch), xy.shape[1]), dtype=np.float32)
    for r, (xc, yc) in enumerate(batch):
        x[r, xc] = 1.0
        yc = np.setdiff1d(yc, xc)
        y[r, where[yc[where[yc] >= 0]]] = 1.0
    w = (1.0 + x.sum(axis=1, keepdims=True)) ** (-row_pow)
    g += (x * w).T @ x
    xy += (x * w).T @ y
    return len(batch)


@dataclass(frozen=True)
class TransferConfig:
    l2: float = 1000.0          # λ: pull of Δθ_t toward zero
    l2_shared: float = 2000.0   # EASE's λ for θ_s
    cuts: tuple[float, ...] = (0.1, 0.2, 0.35, 0.5)
    row_pow: float = 0.5

    def __post_init__(self) -> None:
        if not self.cuts or any(not 0.0 < c < 1.0 for c in self.cuts):
            raise ValueError(f"cuts: expected fractions in (0, 1), got {self.cuts}")


def fit_domain(p: Profiles, n_cols: int, domain: int, y_cols: np.ndarray,
               cfg: TransferConfig, shared: np.ndarray | None = None) -> tuple[np.ndarray, int]:
    """(θ_t [V, n_t] float32, training rows) for ``domain`` whose items are columns ``y_cols``;
    ``shared``: θ_s [V, V] when already computed (it is the same for every domain)."""
    if shared is None:
        shared = ease(p.gram(n_cols), cfg.l2_shared)
    g, xy, n_rows = row_gram(protocol_rows(p, domain, cfg.cuts), n_cols, y_cols, cfg.row_pow)
    g[np.diag_indices_from(g)] += cfg.l2
    return np.linalg.solve(g, xy + cfg.l2 * shared[:, y_cols]).astype(np.float32), n_rows


def fit_domains(p: Profiles, n_cols: int, columns: dict[int, np.ndarray],
                cfg: TransferConfig) -> dict[int, tuple[np.ndarray, int]]:
    """:func:`fit_domain` for every ``{domain: y_cols}``, θ_s computed once."""
    shared = ease(p.gram(n_cols), cfg.l2_shared)
    return {d: fit_domain(p, n_cols, d, cols, cfg, shared) for d, cols in columns.items()}
