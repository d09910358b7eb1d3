"""The screen's top-k against a float64 brute force: its error bound holds, the lists are the exact
ones for both screens (ties, exclusions, -inf items, short rows, negative scores), and the margin
is what makes them exact (without it near ties are lost)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from crossrec import screen as X

SCREENS = (torch.bfloat16, torch.float32)


def brute(users: torch.Tensor, rows: torch.Tensor, excluded: torch.Tensor, k: int):
    """Per row: [(value, column)] of the best k by the float64 score rounded to float32, then column."""
    exact = (users.double() @ rows.double().T).float()
    out = []
    for r in range(len(users)):
        got = [(float(exact[r, j]), j) for j in range(len(rows))
               if not excluded[r, j] and exact[r, j] > float("-inf")]
        out.append(sorted(got, key=lambda t: (-t[0], t[1]))[:k])
    return out


def screened(users, rows, excluded, k, dtype, group=X.SCREEN_GROUP):
    screen = X.make_screen(rows, dtype, group)
    approx = X.screen_scores(users, screen)
    approx[:, :len(rows)][excluded] = float("-inf")
    vals, cols = X.screened_top_k(approx, users, screen, k)
    return [[(v, c) for v, c in zip(vr, cr) if v > float("-inf")]
            for vr, cr in zip(vals.tolist(), cols.tolist())]


def data(c: int, m: int, d: int, seed: int, bias: float = 0.0):
    """Users [c, d] (last entry 1) and items [m, d] (last entry the bias), exact ties planted."""
    g = torch.Generator().manual_seed(seed)
    users = torch.randn(c, d, generator=g)
    users[:, -1] = 1.0
    rows = torch.randn(m, d, generator=g) * 0.3
    rows[:, -1] = torch.randn(m, generator=g) + bias
    rows[m // 2] = rows[m // 3]             # exact ties: equal scores, different columns
    rows[m - 1] = rows[0]
    return users, rows, g


@pytest.mark.parametrize("dtype", SCREENS)
@pytest.mark.parametrize("m, k, group", [(1000, 10, 32), (1000, 10, 4), (20, 10, 32),
                                         (7, 10, 32), (300, 1, 8)])
def test_lists_are_the_brute_force_ones(dtype, m, k, group):
    """Exclusions, -inf items (a transfer model's missing columns), users with fewer items than k
    or none, a padded last group (1000 is no multiple of 32), fewer groups than k, k over M."""
    users, rows, g = data(40, m, 65, seed=m + k)
    rows[3, -1] = float("-inf")                           # never a candidate
    excluded = torch.rand(40, m, generator=g) < 0.2
    excluded[0] = True                                    # a user with nothing left
    excluded[1, 3:] = True                                # fewer than k
    assert screened(users, rows, excluded, k, dtype, group) == brute(users, rows, excluded, k)


@pytest.mark.parametrize("dtype", SCREENS)
def test_negative_scores_take_the_exact_group_maxima(dtype):
    """All scores below 0: the int16 group maxima are wrong there, and the float ones are taken."""
    users, rows, g = data(30, 2000, 17, seed=3, bias=-50.0)
    excluded = torch.rand(30, 2000, generator=g) < 0.3
    want = brute(users, rows, excluded, 10)
    assert all(v < 0 for row in want for v, _ in row)
    assert screened(users, rows, excluded, 10, dtype) == want


def near_ties(seed: int = 0):
    """Many items whose scores differ by less than bf16 resolves: the bf16 order is not the exact one."""
    g = torch.Generator().manual_seed(seed)
    users = torch.randn(20, 64, generator=g)
    users[:, -1] = 1.0
    base = torch.randn(64, generator=g)
    rows = base + 1e-3 * torch.randn(3000, 64, generator=g)
    rows[:, -1] = 10.0 + 1e-2 * torch.randn(3000, generator=g)
    return users, rows, torch.zeros(20, 3000, dtype=torch.bool)


def test_near_ties_are_ranked_exactly_not_by_the_bf16_scores():
    users, rows, excluded = near_ties()
    want = brute(users, rows, excluded, 10)
    screen = X.make_screen(rows, torch.bfloat16)
    naive = X.screen_scores(users, screen).float().topk(10, dim=1).indices.tolist()
    assert any(sorted(n) != sorted(c for _, c in w) for n, w in zip(naive, want))  # bf16 alone errs
    assert screened(users, rows, excluded, 10, torch.bfloat16) == want


def test_without_the_margin_near_ties_are_lost(monkeypatch):
    """The threshold's margin is what makes the lists exact: at the k-th screen score itself,
    items whose screen score is just under it but whose exact score is in the top k are missed."""
    users, rows, excluded = near_ties()
    monkeypatch.setattr(X, "threshold", lambda kth, err, rho: kth.float())
    assert screened(users, rows, excluded, 10, torch.bfloat16) != brute(users, rows, excluded, 10)


@pytest.mark.parametrize("dtype", SCREENS)
@pytest.mark.parametrize("d, scale", [(8, 1.0), (66, 1e-3), (66, 1e3), (1001, 1.0)])
def test_the_error_bound_holds(dtype, d, scale):
    """|screen - exact| <= E + rho |screen| for every user and item (the bound the lists rest on),
    long dot products (a transfer model's users are rows over all items) too."""
    g = torch.Generator().manual_seed(d)
    users = torch.randn(64, d, generator=g) * scale
    rows = torch.randn(500, d, generator=g) * torch.rand(500, 1, generator=g) * 3
    screen = X.make_screen(rows, dtype)
    approx = X.screen_scores(users, screen)[:, :500].double()
    exact = users.double() @ rows.double().T
    bound = screen.user_error(users)[:, None] + screen.rho * approx.abs()
    assert bool(((approx - exact).abs() <= bound).all())
    if dtype == torch.bfloat16:  # and not vacuous: within 20x of the worst error seen
        assert float((bound / (approx - exact).abs().clamp(min=1e-30)).min()) < 20


def test_int16_group_maxima_are_exact_where_a_value_is_not_negative():
    g = torch.Generator().manual_seed(1)
    approx = (torch.randn(16, 32 * 40, generator=g) - 1.5).to(torch.bfloat16)
    approx[torch.rand(approx.shape, generator=g) < 0.2] = float("-inf")
    approx[0, :] = float("-inf")
    got = X.group_maxima(approx, 32)
    want = approx.float().view(16, 32, 40).amax(dim=1)
    assert torch.equal(got[want >= 0], want[want >= 0])
    assert bool((got <= want).all())


def test_descending_key_orders_floats_largest_first():
    vals = torch.tensor([0.0, -0.0, 1.0, -1.0, 2.5, -2.5, float("inf"), float("-inf"), 1e-40, -1e-40,
                         3.4e38, -3.4e38])
    order = X.descending_key(vals + 0.0).argsort(stable=True)
    assert vals[order].tolist() == sorted(vals.tolist(), reverse=True)


def test_ragged_top_k_matches_a_sort():
    g = torch.Generator().manual_seed(2)
    row = torch.randint(0, 6, (200,), generator=g)
    col = torch.randperm(200, generator=g)
    val = torch.randint(0, 4, (200,), generator=g).float()      # many exact ties
    vals, cols = X.ragged_top_k(row, col, val, 7, 5)
    for r in range(7):
        want = sorted(((float(v), int(c)) for rr, c, v in zip(row, col, val) if rr == r),
                      key=lambda t: (-t[0], t[1]))[:5]
        got = [(v, c) for v, c in zip(vals[r].tolist(), cols[r].tolist()) if v > float("-inf")]
        assert got == want


def test_screen_names():
    assert X.screen_dtype("fp32", torch.device("cpu")) == torch.float32
    assert X.screen_dtype("bf16", torch.device("cpu")) == torch.bfloat16
    assert X.screen_dtype("auto", torch.device("cuda")) == torch.float32
    with pytest.raises(ValueError, match="screen"):
        X.screen_dtype("int8", torch.device("cpu"))
    assert np.isfinite(X.make_screen(torch.zeros(0, 5), torch.bfloat16).vmax)


def _within_bound(users: torch.Tensor, rows: torch.Tensor) -> bool:
    screen = X.make_screen(rows, torch.bfloat16)
    approx = X.screen_scores(users, screen)[:, :len(rows)].double()
    exact = users.double() @ rows.double().T
    return bool(((approx - exact).abs() <= screen.user_error(users)[:, None]
                 + screen.rho * approx.abs()).all())


def test_each_term_of_the_bf16_bound_is_needed():
    """Cases where one error source is all the error: the sum rounded to bf16 (exact inputs),
    the users rounded (the rounded product is 0), the items rounded. Each fails without its term."""
    e, e2 = 0.99 * 2.0 ** -8, 0.99 * 2.0 ** -9           # 1 + e and 1 - e2 both round to 1
    # 1 + 2^-8 + 2^-9 is no bf16: it rounds to 1 + 2^-7
    assert _within_bound(torch.tensor([[1.0, 1.0, 1.0]]), torch.tensor([[1.0, 2.0 ** -8, 2.0 ** -9]]))
    pairs = torch.tensor([1 + e, 1 - e2]).repeat(32)[None]   # rounds to all ones
    signs = torch.tensor([1.0, -1.0]).repeat(32)[None]      # so the rounded product is 0
    assert _within_bound(pairs, signs)
    assert _within_bound(signs, pairs)
