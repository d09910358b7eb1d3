"""Exact top-k by a screen: a fast low-precision product finds a few candidates per user, an
exact product of those alone ranks them.

    screen = make_screen(rows, torch.bfloat16)            # rows [M, D]: item vectors, bias last
    approx = screen_scores(users, screen, out)            # [c, M'] bf16 (fill -inf to exclude)
    vals, cols = screened_top_k(approx, users, screen, k)

The screen's error is bounded (:meth:`Screen.user_error`): ``|approx - u.w| <= E_u + rho *
|approx|`` for every item. Let t be at most a user's k-th best screen score (the k-th best group
maximum): k items score at least ``t - rho |t| - E_u`` exactly, so an item whose screen score
cannot reach that (:func:`threshold`) is not in the top k, and every other one is re-scored in
float64 (:func:`exact_scores`). The lists are those of ranking the float64 scores rounded to
float32 (as the output holds them; equal scores by smaller column) whatever the screen's
precision, slicing or device; only the time depends on them.

On CPU with native bf16 (AMX, AVX512-BF16) the bf16 product of ``[208, 66] x [66, 20000]`` took
1.0 ms against 3.0 ms in fp32 (one thread), and its scores take half the memory. Groups are
strided (group i: columns i, i + n, i + 2n, ...) so their maxima are elementwise maxima of the
contiguous rows of ``[c, group, n]``, taken over the bf16 bits as int16 (:func:`group_maxima`):
0.25 ms against 1.7 for bf16's own maximum over 32 adjacent columns.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

SCREEN_GROUP = 32
SCREENS = ("auto", "bf16", "fp32")
# the output is float32: two scores within one float32 step of the threshold may round equal
_F32_STEPS = 2.0 ** -22
# flushed subnormals (bf16 dot products on CPU flush them) lose under 2^-126 a term
_TINY = 2.0 ** -100
_LOWEST = float(torch.finfo(torch.float32).min)
_EXACT_ELEMENTS = 1 << 20       # float64 re-score memory bound per chunk (elements)


@dataclass(frozen=True)
class Screen:
    """A domain's item matrix for the screen, with what its error bound needs."""

    weights: Tensor        # [D', M'] the screen's dtype: rows^T, zero rows to an even D' for
                           # bf16, M' = M rounded up to a multiple of group (extra columns -inf)
    rows: Tensor           # [M, D] fp32: the items, re-scored from here in float64
    group: int
    vmax: float            # max ||w|| over the finite items
    rmax: float            # max ||w - q(w)||: q rounds to the precision the product uses
    bmax: float            # max ||q(w)||
    rho: float             # relative error of rounding the sum (bf16 output: 2^-8)
    gamma: float           # relative error of summing D' exact products in fp32
    rounds_inputs: bool    # whether the product rounds its inputs to bf16

    @property
    def items(self) -> int:
        return self.rows.shape[0]

    @property
    def n_groups(self) -> int:
        return self.weights.shape[1] // self.group

    def user_error(self, users: Tensor) -> Tensor:
        """[c] float64 E: ``|approx - u.w| <= E + rho * |approx|`` for every finite item w."""
        u = users.double()
        norm = u.norm(dim=1)
        if self.rounds_inputs:
            ub = users.to(torch.bfloat16).double()
            bound = ((u - ub).norm(dim=1) * self.vmax
                     + ub.norm(dim=1) * (self.rmax + self.gamma * self.bmax))
        else:
            bound = norm * self.gamma * self.vmax
        # a quarter on top for the bound's own rounding; flushed subnormals lose under 2^-126 a term
        return 1.25 * bound + _TINY * users.shape[1] * (1.0 + norm + self.vmax)


def native_bf16() -> bool:
    """Whether this CPU multiplies bf16 in hardware (AMX or AVX512-BF16); elsewhere torch
    emulates it, slower than fp32."""
    probes = ("_is_amx_tile_supported", "_is_avx512_bf16_supported")  # private, so guarded
    return any(getattr(torch.cpu, name, lambda: False)() for name in probes)


def check_screen(choice: str) -> str:
    """``choice`` if it names a screen, else a ValueError saying which do."""
    if choice not in SCREENS:
        raise ValueError(f"screen: expected one of {SCREENS}, got {choice!r}")
    return choice


def screen_dtype(choice: str, device: torch.device) -> torch.dtype:
    """``auto``: bf16 on a CPU with native bf16, fp32 elsewhere (on CUDA cuBLAS may reduce bf16
    products in bf16, outside the bound of :meth:`Screen.user_error`)."""
    if check_screen(choice) == "auto":
        choice = "bf16" if device.type == "cpu" and native_bf16() else "fp32"
    return torch.bfloat16 if choice == "bf16" else torch.float32


def make_screen(rows: Tensor, dtype: torch.dtype, group: int = SCREEN_GROUP) -> Screen:
    """The screen of the items ``rows`` [M, D] (fp32; the bias last, its user entry 1; an item
    whose row holds -inf is never a candidate).

    The error bound: bf16 rounds both operands (``u = ub + ur``, ``w = wb + wr``: the error is
    ``ur.w + ub.wr``), sums the exact products in fp32 (``D' 2^-24`` relative to ``|ub| |wb|``)
    and rounds the sum to bf16 (``2^-8``). fp32 only sums, unless torch may multiply fp32 in
    lower precision (``set_float32_matmul_precision``), when the inputs count as rounded to bf16.
    """
    rows = rows.detach()
    m, d = rows.shape
    bf16 = dtype == torch.bfloat16
    d_pad = d + d % 2 if bf16 else d                      # oneDNN's bf16 kernels want even D
    m_pad = math.ceil(m / group) * group
    w = torch.zeros(d_pad, m_pad, device=rows.device)
    w[:d, :m] = rows.T
    if d:
        w[d - 1, m:] = float("-inf")
    finite = rows[torch.isfinite(rows).all(dim=1)].double()
    rounds = bf16 or torch.get_float32_matmul_precision() != "highest"
    q = finite.float().to(torch.bfloat16).double() if rounds else finite
    top = lambda x: float(x.norm(dim=1).max()) if len(x) else 0.0   # noqa: E731
    return Screen(w.to(dtype).contiguous(), rows.contiguous(), group, top(finite),
                  top(finite - q), top(q), 2.0 ** -8 * 1.25 if bf16 else 0.0,
                  d_pad * 2.0 ** -24 / (1 - d_pad * 2.0 ** -24), rounds)


def screen_scores(users: Tensor, screen: Screen, out: Tensor | None = None) -> Tensor:
    """``users`` [c, D] (fp32) -> screen scores [c, M'] in the screen's dtype (into ``out``)."""
    d_pad = screen.weights.shape[0]
    u = users.to(screen.weights.dtype)
    if u.shape[1] < d_pad:
        u = torch.nn.functional.pad(u, (0, d_pad - u.shape[1]))
    return torch.mm(u, screen.weights, out=out)


def screened_top_k(approx: Tensor, users: Tensor, screen: Screen, k: int) -> tuple[Tensor, Tensor]:
    """Screen scores ``approx`` [c, M'] (-inf: excluded) of ``users`` [c, D] -> the best min(k, M)
    items per user by exact score, as (values fp32, columns) [c, min(k, M)]: higher score first,
    equal scores by smaller column, -inf where a user has fewer candidates."""
    c, k = len(approx), min(k, screen.items)
    if k == 0 or c == 0:
        return (approx.new_full((c, k), float("-inf"), dtype=torch.float32),
                torch.zeros((c, k), dtype=torch.long, device=approx.device))
    n, g = screen.n_groups, screen.group
    maxima = group_maxima(approx, g)                                      # [c, n] fp32
    # the k-th best group maximum: k items score at least that (a lower bound is enough)
    kth = kth_largest(maxima if n >= k else approx.float(), k)
    # above -inf: a user with fewer than k items takes all their finite ones
    thr = threshold(kth, screen.user_error(users), screen.rho).clamp_(min=_LOWEST)   # [c]
    if approx.dtype == torch.bfloat16:   # its group_maxima is exact only where a value is >= 0
        low = flat_nonzero(thr <= 0)
        if len(low):
            maxima[low] = approx[low].view(len(low), g, n).amax(dim=1).float()
    row, col = candidates(approx, maxima, thr, n, g)
    return ragged_top_k(row, col, exact_scores(users, screen.rows, row, col), c, k)


def candidates(approx: Tensor, maxima: Tensor, thr: Tensor, n: int, g: int) -> tuple[Tensor, Tensor]:
    """(row, column) [P] of every screen score >= the row's ``thr``, found in the groups whose
    maxima reach it: a group's members are ``approx.view(c, g, n)[row, :, group]``, gathered
    without a [H, g] index tensor (0.27 against 0.38 ms for 3,200 groups of 32)."""
    hit = flat_nonzero(maxima >= thr[:, None])                            # row * n + group
    row = hit.div(n, rounding_mode="floor")
    group = hit - row * n
    vals = approx.view(len(approx), g, n)[row, :, group]                  # [H, g]
    keep = flat_nonzero(vals >= thr.index_select(0, row)[:, None])        # h * g + member
    h = keep.div(g, rounding_mode="floor")
    return row.index_select(0, h), group.index_select(0, h) + n * (keep - h * g)


def flat_nonzero(mask: Tensor) -> Tensor:
    """[P] int64: the flat positions of ``mask``'s true entries, ascending. On CPU numpy's
    ``flatnonzero``, 4x faster than torch's ``nonzero`` ([209, 625]: 29 against 112 us)."""
    if mask.device.type != "cpu":
        return mask.reshape(-1).nonzero().squeeze(1)
    return torch.from_numpy(np.flatnonzero(mask.numpy()))


def kth_largest(x: Tensor, k: int) -> Tensor:
    """[B] the k-th largest of each row of ``x`` [B, n] (k <= n). On CPU numpy's ``partition``:
    values only, no columns to gather (half the time of ``argpartition`` and a gather: [208, 625],
    k 10: 160 vs 325 us)."""
    if x.device.type != "cpu":
        return x.topk(k, dim=1).values[:, -1]
    n = x.shape[1]
    return torch.from_numpy(np.partition(x.numpy(), n - k, axis=1)[:, n - k])


def group_maxima(approx: Tensor, g: int) -> Tensor:
    """[c, n] fp32: the maximum of every strided group of ``approx`` [c, g * n]. For bf16 the
    maximum of the bits as int16 (4x faster than bf16's own amax on CPU): the true maximum of a
    group holding a value >= 0, and at most the true one elsewhere (negative floats order
    backwards as ints)."""
    c, m_pad = approx.shape
    if approx.dtype != torch.bfloat16:
        return approx.view(c, g, m_pad // g).amax(dim=1).float()
    bits = approx.view(torch.int16).view(c, g, m_pad // g).amax(dim=1)
    return bits.view(torch.bfloat16).float()


def threshold(kth: Tensor, err: Tensor, rho: float) -> Tensor:
    """[c] fp32, rounded down: the least screen score an item of the exact top k can have, given
    k items with screen scores >= ``kth`` and screen errors ``<= err + rho * |approx|``."""
    t = kth.double()
    # the exact k-th best is at least low; an item ranked by its float32 score can be one float32
    # step under it
    low = t - rho * t.abs() - err - _F32_STEPS * (t.abs() + err)
    y = low - err
    thr64 = torch.where(y >= 0, y / (1 + rho), y / (1 - rho))
    thr = thr64.float()
    thr = torch.where(thr.double() > thr64, torch.nextafter(thr, thr.new_tensor(float("-inf"))), thr)
    return thr.masked_fill_(kth == float("-inf"), float("-inf"))  # not NaN (0 * inf) with rho 0


def exact_scores(users: Tensor, rows: Tensor, row: Tensor, col: Tensor) -> Tensor:
    """[P] fp32: the float64 dot products of ``users[row]`` and ``rows[col]``, rounded once
    (``index_select``: 4x faster than indexing; ``bmm`` of [P, 1, D] by [P, D, 1]: half the time
    of a product and a sum over D)."""
    u = users.double()
    step = max(1, _EXACT_ELEMENTS // max(1, users.shape[1]))
    parts = [torch.bmm(u.index_select(0, r)[:, None, :],
                       rows.index_select(0, c_).double()[:, :, None]).view(-1)
             for r, c_ in zip(row.split(step), col.split(step))]
    return (torch.cat(parts) if parts else u.new_zeros(0)).float()


def ragged_top_k(row: Tensor, col: Tensor, val: Tensor, c: int, k: int) -> tuple[Tensor, Tensor]:
    """Candidates (row, column, value) [P] -> the top k per row as [c, k] (values, columns): higher
    value first, then smaller column; -inf and column 0 where a row has fewer."""
    key = row << 32 | descending_key(val + 0.0)   # -0.0 + 0.0 is 0.0: equal zeros tie         # one sort by (row, value desc)
    order = key.argsort()
    ordered = key[order]
    if bool((ordered[1:] == ordered[:-1]).any()):  # exact ties (rare): by column first
        by_col = col.argsort()
        order = by_col[key[by_col].argsort(stable=True)]
    row, col, val = row[order], col[order], val[order]
    counts = torch.bincount(row, minlength=c)
    rank = torch.arange(len(row), device=row.device) - (counts.cumsum(0) - counts)[row]
    # past the k-th: into one spare slot (no boolean index: its nonzero cost more than this)
    dest = torch.where(rank < k, row * k + rank, c * k)
    vals = val.new_full((c * k + 1,), float("-inf"))
    cols = torch.zeros(c * k + 1, dtype=torch.long, device=row.device)
    vals[dest], cols[dest] = val, col
    return vals[:-1].view(c, k), cols[:-1].view(c, k)


def descending_key(val: Tensor) -> Tensor:
    """[P] int64 in [0, 2^32): smaller for a larger float32 ``val`` (its bits, flipped so that
    they order as the floats do, then reversed)."""
    bits = val.contiguous().view(torch.int32).long()
    ordered = torch.where(bits < 0, bits ^ 0x7FFFFFFF, bits) + (1 << 31)   # ascending with val
    return (1 << 32) - 1 - ordered

