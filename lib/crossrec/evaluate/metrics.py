"""Top-K metrics as pure numpy functions over padded recommendation lists (no Spark).

Shapes: ``lists`` [U, K] item_idx in rank order, -1 where a list is shorter than K; ``hits``
[U, K] bool, True where the item at that rank is one of the user's test items; ``n_test`` [U] the
user's number of test items (>= 1 for every evaluated user). Per-user values are averaged over a
cohort's users by the caller; a user whose list is shorter than K simply has fewer chances.

With h = hits in the top K, rel(r) = 1 if rank r is a hit, D(r) = 1 / log2(r + 1):

- ``recall``        h / |test|                       (the textbook definition)
- ``recall_capped`` h / min(K, |test|)               (Liang et al. 2018, "Variational
  Autoencoders for Collaborative Filtering": 1.0 is reachable when |test| > K)
- ``precision``     h / K                            (K, not the list length)
- ``f1``            2 P R / (P + R), 0 when P = R = 0 (from ``precision`` and ``recall``)
- ``hit_rate``      1 if h > 0 else 0
- ``mrr``           1 / (rank of the first hit) if h > 0 else 0
- ``ndcg``          sum_{r <= K} rel(r) D(r) / sum_{r <= min(K, |test|)} D(r)
"""
from __future__ import annotations

import math

import numpy as np

RANKING = ("ndcg", "recall", "recall_capped", "precision", "f1", "hit_rate", "mrr")


def padded_lists(users: np.ndarray, list_users: np.ndarray, list_items: np.ndarray,
                 list_ranks: np.ndarray, k: int) -> np.ndarray:
    """[U, k] item_idx by rank (-1 padded) from long-format rows (user, item, rank 1..k)."""
    out = np.full((len(users), k), -1, dtype=np.int64)
    keep = list_ranks <= k
    row = np.searchsorted(users, list_users[keep])
    if len(row) and ((row >= len(users)).any() or (users[row.clip(0, len(users) - 1)]
                                                   != list_users[keep]).any()):
        raise ValueError("lists name users that are not evaluated")
    out[row, list_ranks[keep] - 1] = list_items[keep]
    return out


def hit_matrix(users: np.ndarray, lists: np.ndarray, test_users: np.ndarray,
               test_items: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(hits [U, K] bool, n_test [U]) for ``users`` [U] sorted, from test pairs (user, item)."""
    span = int(max(lists.max(initial=0), test_items.max(initial=0))) + 2
    test_codes = test_users.astype(np.int64) * span + test_items
    codes = users[:, None].astype(np.int64) * span + lists
    hits = np.isin(codes, test_codes) & (lists >= 0)
    row = np.searchsorted(users, test_users)
    n_test = np.bincount(row[users[row.clip(0, len(users) - 1)] == test_users],
                         minlength=len(users))
    return hits, n_test


def ranking_metrics(hits: np.ndarray, n_test: np.ndarray, k: int) -> dict[str, np.ndarray]:
    """Per-user values [U] of :data:`RANKING` at cut-off ``k`` (<= hits.shape[1])."""
    if k > hits.shape[1]:
        raise ValueError(f"k={k} is longer than the lists ({hits.shape[1]})")
    if (n_test < 1).any():
        raise ValueError("every evaluated user needs at least one test item")
    h = hits[:, :k]
    n_hits = h.sum(axis=1)
    discount = 1.0 / np.log2(np.arange(2, k + 2))
    ideal = np.cumsum(discount)[np.minimum(n_test, k) - 1]
    recall = n_hits / n_test
    precision = n_hits / k
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros_like(denom), where=denom > 0)
    first = np.where(h.any(axis=1), h.argmax(axis=1) + 1, 0)
    return {
        "ndcg": (h * discount).sum(axis=1) / ideal,
        "recall": recall,
        "recall_capped": n_hits / np.minimum(n_test, k),
        "precision": precision,
        "f1": f1,
        "hit_rate": (n_hits > 0).astype(np.float64),
        "mrr": np.divide(1.0, first, out=np.zeros(len(first)), where=first > 0),
    }


def coverage(lists: np.ndarray, n_catalog: int) -> float:
    """Catalog coverage: distinct items in the top-K lists of all users / items of the domain."""
    return len(np.unique(lists[lists >= 0])) / n_catalog if n_catalog else math.nan


def intra_list_diversity(lists: np.ndarray, genres: dict[int, frozenset[str]]) -> np.ndarray:
    """Per user [U]: mean over pairs i < j of the list of the Jaccard distance
    1 - |G_i ∩ G_j| / |G_i ∪ G_j| of the items' genre sets (two empty sets: distance 0).
    NaN for lists with fewer than 2 items."""
    out = np.full(len(lists), np.nan)
    for u, row in enumerate(lists):
        sets = [genres.get(int(i), frozenset()) for i in row if i >= 0]
        if len(sets) < 2:
            continue
        dist = [1.0 - (len(a & b) / len(a | b) if a | b else 1.0)
                for x, a in enumerate(sets) for b in sets[x + 1:]]
        out[u] = float(np.mean(dist))
    return out


def novelty(lists: np.ndarray, item_users: dict[int, int], n_users: int) -> np.ndarray:
    """Per user [U]: mean over the list of -log2 p_i, p_i = (n_i + 1) / (N + 1) where n_i is the
    number of training users with a positive on item i and N the number of training users with
    any positive in the domain (add-one: an item nobody liked is finite, and maximal). NaN for an
    empty list."""
    out = np.full(len(lists), np.nan)
    for u, row in enumerate(lists):
        items = [int(i) for i in row if i >= 0]
        if items:
            out[u] = float(np.mean([-math.log2((item_users.get(i, 0) + 1) / (n_users + 1))
                                    for i in items]))
    return out
