"""Metric functions against hand-computed cases: short lists, users with fewer (and more) test
items than K, users with no hit."""
from __future__ import annotations

import math

import numpy as np
import pytest

from crossrec.evaluate import metrics as M

D2, D3 = 1 / math.log2(3), 1 / math.log2(4)  # discounts of ranks 2 and 3 (rank 1: 1)

# users 10, 11, 12, 13; lists of length 3 (user 11's list has one item)
USERS = np.array([10, 11, 12, 13])
LIST_ROWS = [(10, 1, 1), (10, 2, 2), (10, 3, 3), (11, 4, 1), (12, 7, 1), (12, 8, 2), (12, 9, 3),
             (13, 20, 1), (13, 21, 2), (13, 22, 3)]
TEST = [(10, 2), (10, 5), (11, 4), (12, 1), (13, 20), (13, 21), (13, 22), (13, 23), (13, 24)]


def _hits() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    lu, li, lr = (np.array(c) for c in zip(*LIST_ROWS))
    lists = M.padded_lists(USERS, lu, li, lr, 3)
    tu, ti = (np.array(c) for c in zip(*TEST))
    hits, n_test = M.hit_matrix(USERS, lists, tu, ti)
    return lists, hits, n_test


def test_padded_lists_and_hits():
    lists, hits, n_test = _hits()
    assert lists.tolist() == [[1, 2, 3], [4, -1, -1], [7, 8, 9], [20, 21, 22]]
    assert hits.tolist() == [[False, True, False], [True, False, False], [False, False, False],
                             [True, True, True]]
    assert n_test.tolist() == [2, 1, 1, 5]


def test_ranking_metrics_at_3_by_hand():
    _, hits, n_test = _hits()
    m = M.ranking_metrics(hits, n_test, 3)
    # user 10: one hit at rank 2 of 2 test items; ideal DCG covers min(3, 2) = 2 ranks
    # user 11: a list of 1 item, its only test item at rank 1 (fewer test items than K)
    # user 12: no hit; user 13: 3 hits of 5 test items (more test items than K)
    expected = {
        "ndcg": [D2 / (1 + D2), 1.0, 0.0, 1.0],
        "recall": [1 / 2, 1.0, 0.0, 3 / 5],
        "recall_capped": [1 / 2, 1.0, 0.0, 1.0],
        "precision": [1 / 3, 1 / 3, 0.0, 1.0],
        "f1": [2 * (1 / 3) * (1 / 2) / (1 / 3 + 1 / 2), 2 * (1 / 3) / (1 / 3 + 1), 0.0,
               2 * 0.6 / 1.6],
        "hit_rate": [1.0, 1.0, 0.0, 1.0],
        "mrr": [1 / 2, 1.0, 0.0, 1.0],
    }
    assert set(m) == set(expected)
    for name, want in expected.items():
        np.testing.assert_allclose(m[name], want, err_msg=name)


def test_ranking_metrics_cut_at_1():
    _, hits, n_test = _hits()
    m = M.ranking_metrics(hits, n_test, 1)
    np.testing.assert_allclose(m["ndcg"], [0.0, 1.0, 0.0, 1.0])
    np.testing.assert_allclose(m["recall"], [0.0, 1.0, 0.0, 1 / 5])
    np.testing.assert_allclose(m["precision"], [0.0, 1.0, 0.0, 1.0])
    np.testing.assert_allclose(m["mrr"], [0.0, 1.0, 0.0, 1.0])


def test_ndcg_of_a_hit_at_rank_3_with_three_test_items():
    hits = np.array([[False, False, True]])
    m = M.ranking_metrics(hits, np.array([3]), 3)
    np.testing.assert_allclose(m["ndcg"], [D3 / (1 + D2 + D3)])
    np.testing.assert_allclose(m["mrr"], [1 / 3])


def test_bad_inputs():
    with pytest.raises(ValueError, match="longer than the lists"):
        M.ranking_metrics(np.zeros((1, 2), bool), np.array([1]), 3)
    with pytest.raises(ValueError, match="at least one test item"):
        M.ranking_metrics(np.zeros((1, 2), bool), np.array([0]), 2)
    with pytest.raises(ValueError, match="not evaluated"):
        M.padded_lists(np.array([1]), np.array([2]), np.array([5]), np.array([1]), 2)


def test_coverage_diversity_novelty_by_hand():
    lists = np.array([[1, 2, 3], [2, -1, -1], [4, 5, -1]])
    assert M.coverage(lists, 10) == pytest.approx(5 / 10)
    genres = {1: frozenset({"a"}), 2: frozenset({"a", "b"}), 3: frozenset(), 4: frozenset(),
              5: frozenset()}
    div = M.intra_list_diversity(lists, genres)
    # list 0: d(1,2) = 1 - 1/2, d(1,3) = 1, d(2,3) = 1; list 1: one item; list 2: two empty sets
    assert div[0] == pytest.approx((0.5 + 1 + 1) / 3)
    assert math.isnan(div[1]) and div[2] == 0.0
    nov = M.novelty(np.array([[1, 2], [-1, -1]]), {1: 3}, 3)
    # item 1: p = (3 + 1) / (3 + 1) -> 0 bits; item 2 (nobody): p = 1/4 -> 2 bits
    assert nov[0] == pytest.approx(1.0) and math.isnan(nov[1])
