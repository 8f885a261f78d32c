"""Triton ``topk_stats`` for rows that fit in registers (C <= 2,048, k <= 16): the short-row path
of backend ``"triton_filtered"`` (semantics: :mod:`..reference`; design: docs/design.md, "the
filtered design").

A program is one warp; it reads ``BLOCK_R`` whole rows once, as two register tiles
[REP / 2, BLOCK_R, LANES, VEC] (``LANES`` >= 2k lanes per row, ``VEC`` = one 16-byte vector per lane
and rep, column = rep * LANES * VEC + lane * VEC + v; the first half is inside every row, only the
second is masked). Each thread holds REP * VEC (<= 64) values of one row, so every per-row value
lives once per thread and the per-row work is shared by few values:

* the exact row max m first (NaN-propagating, from the group maxima; a group is one lane's vector);
  the softmax sums are taken directly relative to it (``e = 2^(x log2e - fl(m log2e))``: one FFMA
  and one ``exp2`` per element; no reference moves, no rescaling); the offset of ``fl(m log2e)``
  to ``m log2e`` is applied once, in float64;
* a lower bound t of the k-th largest value: the k-th largest lane maximum (at least k values are
  >= t);
* candidates: the groups whose max is >= t (one compare per group), as a bit mask per thread;
  compacted to one group per lane (a prefix count over the lanes, a binary search by warp
  shuffles, the r-th set bit), read again (L1) as a [1, BLOCK_R, LANES, VEC] tile; the exact
  selection (k rounds: the largest value, then its lowest column) runs over it only;
* fallback: a row with more than 4 candidate groups in one lane or more than LANES in all (ties
  at t, rows of -inf), a NaN, or a bound not above the padding value takes the k rounds over its
  whole row (read again, by order keys), so the answer never depends on the compaction's capacity;
* rows too short for 2k lanes with 32 values each (C < ~32k; DIRECT) skip the bound: the k rounds
  run over the whole row (32 values per thread), the fallback only for a NaN or a k-th value at or
  below the padding value;
* padding columns (>= C) read as ``PAD`` = -2^100 (finite: they add exactly 0 to the softmax sums
  and keep ``e * log e`` finite); rows where that or the fused exponent cannot work (the max is
  <= PAD, |max| > 1e7, where fl(m log2e) is off by more than 1, or an entry of -inf made
  ``e * log e`` NaN) are summed again, relative to the exact max of the real columns.

Hits against label sets are computed after the kernel by the shared ``_hits_kernel``.
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from .launch import launch
from .topk_stats import (S_MAX_LOGIT, S_NUM, S_TARGET_LOGIT, _INT32_MIN, _hits_kernel, _device_guard, key_value,
                         no_softmax_stats, order_key, row_block, softmax_stats, store_row_stats, target_logit)

#: the largest padded row (power of two) held in registers, by element size
MAX_COLUMNS = {4: 2048, 2: 2048}
#: values one thread holds per row (REP * VEC), at most
PER_THREAD = 64
#: the largest k of this path (the k rounds are unrolled)
MAX_K = 16
#: the value padding columns read as: -2^100, exact in float32 and bfloat16, finite
PAD: tl.constexpr = tl.constexpr(-1.2676506002282294e30)


@triton.jit
def _max_nan(a, b):
    return tl.maximum(a, b, propagate_nan=tl.PropagateNan.ALL)


# Every per-row value is reduced from a [G, R, LANES, VEC] tensor in one order (VEC, then G, both
# in-thread, then LANES across the row's lanes) and broadcast back by the inverse expansions, so
# Triton never converts between (equivalent) layouts.
@triton.jit
def _row_max(a):
    """[G, R, LANES, VEC] -> [R]"""
    return tl.max(tl.max(tl.max(a, 3), 0), 1)


@triton.jit
def _row_min(a):
    return tl.min(tl.min(tl.min(a, 3), 0), 1)


@triton.jit
def _row_sum(a):
    return tl.sum(tl.sum(tl.sum(a, 3), 0), 1)


@triton.jit
def _lanes(a):
    """[R] -> [1, R, 1] (the shape of the group values [G, R, LANES])"""
    return tl.expand_dims(tl.expand_dims(a, 1), 0)


@triton.jit
def _b(a):
    """[R] -> [1, R, 1, 1]"""
    return tl.expand_dims(_lanes(a), 3)


@triton.jit
def _select_values(x0, ck0, x1, ck1, rows, smask, out_vals_ptr, out_idx_ptr, sbase, K: tl.constexpr):
    """Write the k best of a row's values x0 and x1 ([G, R, LANES, VEC] float32 each), in rank
    order, and return the k-th: valid when x0 and x1 hold every value of the row >= a bound that at
    least k of them reach, with no NaN and the k-th above -inf (-inf: taken or not a value).
    ``ck`` = column * 2 + sign bit (unique per row; ties: lower column). Round j: the largest
    value (-0.0 == +0.0), then its lowest column (the sign bit gives -0.0 back)."""
    BIG: tl.constexpr = 2147483647
    mv = tl.zeros([x0.shape[1]], tl.float32)
    for j in tl.static_range(K):
        mv = _row_max(tl.maximum(x0, x1))
        mb = _b(mv)
        c2 = _row_min(tl.minimum(tl.where(x0 == mb, ck0, BIG), tl.where(x1 == mb, ck1, BIG)))
        cb = _b(c2)
        x0 = tl.where(ck0 == cb, float("-inf"), x0)
        x1 = tl.where(ck1 == cb, float("-inf"), x1)
        v = tl.where(mv == 0.0, ((c2 & 1) << 31).to(tl.float32, bitcast=True), mv)
        tl.store(out_vals_ptr + rows * K + j, v, mask=smask)
        tl.store(out_idx_ptr + rows * K + j, (c2 >> 1).to(tl.int64), mask=smask)
        if j == 0:
            tl.store(sbase + S_MAX_LOGIT, v, mask=smask)
    return mv


@triton.jit
def _select_keys(ok0, ck0, ok1, ck1, rows, smask, out_vals_ptr, out_idx_ptr, sbase, K: tl.constexpr):
    """``_select_values`` by int32 order keys ``ok`` (any values: NaN, -inf; INT32_MIN: not a
    value) over a whole row: exact for every row."""
    BIG: tl.constexpr = 2147483647
    for j in tl.static_range(K):
        m_ok = _row_max(tl.maximum(ok0, ok1))
        mb = _b(m_ok)
        c2 = _row_min(tl.minimum(tl.where(ok0 == mb, ck0, BIG), tl.where(ok1 == mb, ck1, BIG)))
        cb = _b(c2)
        ok0 = tl.where(ck0 == cb, _INT32_MIN, ok0)
        ok1 = tl.where(ck1 == cb, _INT32_MIN, ok1)
        v = tl.where(m_ok == 0, ((c2 & 1) << 31).to(tl.float32, bitcast=True), key_value(m_ok))
        tl.store(out_vals_ptr + rows * K + j, v, mask=smask)
        tl.store(out_idx_ptr + rows * K + j, (c2 >> 1).to(tl.int64), mask=smask)
        if j == 0:
            tl.store(sbase + S_MAX_LOGIT, v, mask=smask)


@triton.jit
def _load_half(x_ptr, row_off, stride_c, subset_ptr, lane_off, rep_off, C, MASKED: tl.constexpr,
               HAS_SUBSET: tl.constexpr):
    """float32 [H, R, LANES, VEC] at columns ``lane_off + rep_off`` ([1, 1, LANES, 1] + [H, 1, 1, VEC]);
    with MASKED, columns >= C read as PAD (the low half is inside every row but the tiniest:
    C > CP / 2). Without a subset the addresses are one base per thread plus constants."""
    cols = lane_off + rep_off
    if HAS_SUBSET:
        ptrs = x_ptr + _b(row_off) + tl.load(subset_ptr + cols, mask=cols < C, other=0) * stride_c
    else:
        ptrs = (x_ptr + _b(row_off) + lane_off * stride_c) + rep_off * stride_c
    if MASKED:
        valid = cols < C
        if x_ptr.dtype.element_ty == tl.float16:  # (no float16 for PAD)
            x = tl.load(ptrs, mask=valid).to(tl.float32)
            x = tl.where(valid, x, PAD)
        else:
            x = tl.load(ptrs, mask=valid, other=PAD).to(tl.float32)
    else:
        x = tl.load(ptrs).to(tl.float32)
    return x


@triton.jit
def _keys(x, cols, C):
    """(order keys, INT32_MIN past C; column * 2 + sign bit) of a tile"""
    return tl.where(cols < C, order_key(x), _INT32_MIN), cols * 2 + (x.to(tl.int32, bitcast=True) < 0).to(tl.int32)


@triton.jit
def _resident_kernel(
    x_ptr, stride_r, stride_c, N, C,
    subset_ptr, target_ptr, out_vals_ptr, out_idx_ptr, out_stats_ptr, out_rank_ptr,
    K: tl.constexpr, BLOCK_R: tl.constexpr, REP: tl.constexpr, LANES: tl.constexpr, VEC: tl.constexpr,
    LOG_LANES: tl.constexpr, DIRECT: tl.constexpr, LO_MASKED: tl.constexpr, ROW_ALIGN: tl.constexpr,
    C_ALIGN: tl.constexpr,
    HAS_SUBSET: tl.constexpr, HAS_TARGET: tl.constexpr, WITH_SOFTMAX: tl.constexpr,
):
    LOG2E: tl.constexpr = 1.4426950408889634
    LOG2E_F: tl.constexpr = 1.44269502162933349609375  # LOG2E as the float32 the kernel multiplies by
    # |m| up to which the rounding of fl(m log2e) (<= ulp / 2) leaves 2^err finite and small
    M_FUSED: tl.constexpr = 1.0e7
    BIG: tl.constexpr = 2147483647
    W: tl.constexpr = LANES * VEC
    H: tl.constexpr = REP // 2
    stride_r, C, rows, rmask, row_off = row_block(stride_r, N, C, BLOCK_R, ROW_ALIGN, C_ALIGN)
    sbase = out_stats_ptr + rows * S_NUM

    # the row as two halves [H, R, LANES, VEC]: column (half * H + h) * W + lane * VEC + v
    h4 = tl.arange(0, H)[:, None, None, None]
    l4 = tl.arange(0, LANES)[None, None, :, None]
    v4 = tl.arange(0, VEC)[None, None, None, :]
    lane_off = l4 * VEC
    cols0 = h4 * W + v4 + lane_off  # [H, 1, LANES, VEC]
    cols1 = cols0 + H * W
    x0 = _load_half(x_ptr, row_off, stride_c, subset_ptr, lane_off, h4 * W + v4, C, LO_MASKED, HAS_SUBSET)
    x1 = _load_half(x_ptr, row_off, stride_c, subset_ptr, lane_off, h4 * W + v4 + H * W, C, True, HAS_SUBSET)

    # ---- the row max, from the group (one lane's vector) maxima
    gm0 = tl.reduce(x0, 3, _max_nan)  # [H, R, LANES]
    gm1 = tl.reduce(x1, 3, _max_nan)
    lm = tl.reduce(_max_nan(gm0, gm1), 0, _max_nan)  # [R, LANES]
    m = tl.reduce(lm, 1, _max_nan)  # [R], NaN when the row holds one

    # ---- target rank and softmax sums: the last uses of the register tile
    if HAS_TARGET:
        tvalid, t_safe, xt = target_logit(target_ptr, rows, rmask, x_ptr, row_off, stride_c, subset_ptr, C,
                                          HAS_SUBSET)
        # rank = #{j: x_j > x_t} + #{j < t: x_j == x_t}; in floats (-0.0 == +0.0 as in the order
        # keys) as one count of 2^16 [x_j > x_t] + [x_j >= x_t]: without a NaN, ties of x_t or a
        # target at or below PAD it is the first count; else by order keys, the row read again
        xb = _b(xt)
        both = _row_sum(tl.where(x0 > xb, 65537, tl.where(x0 >= xb, 1, 0)) +
                        tl.where(x1 > xb, 65537, tl.where(x1 >= xb, 1, 0)))
        rank = both >> 16
        exact = tvalid & (((both & 65535) - rank != 1) | (m != m) | ~(xt > PAD))
        if tl.max(exact.to(tl.int32), 0) > 0:
            # key(j) > key(t) <=> ok_j > ok_t, or ok_j == ok_t and j < t (padding: below every key)
            y0 = _load_half(x_ptr, row_off, stride_c, subset_ptr, lane_off, h4 * W + v4, C, LO_MASKED, HAS_SUBSET)
            y1 = _load_half(x_ptr, row_off, stride_c, subset_ptr, lane_off, h4 * W + v4 + H * W, C, True,
                            HAS_SUBSET)
            t_ok = _b(order_key(xt))
            ts = _b(t_safe)
            if LO_MASKED:  # (-inf: its index >= C is never below the target's)
                y0 = tl.where(cols0 < C, y0, float("-inf"))
            a0 = order_key(y0) > tl.where(cols0 < ts, t_ok - 1, t_ok)
            a1 = tl.where(cols1 < C, order_key(y1), _INT32_MIN) > tl.where(cols1 < ts, t_ok - 1, t_ok)
            rank = tl.where(exact, _row_sum(a0.to(tl.int32) + a1.to(tl.int32)), rank)
        tl.store(sbase + S_TARGET_LOGIT, xt, mask=rmask)
        tl.store(out_rank_ptr + rows, tl.where(tvalid, rank.to(tl.int64), -1), mask=rmask)
    else:
        tl.store(sbase + S_TARGET_LOGIT, tl.full([BLOCK_R], float("nan"), tl.float32), mask=rmask)
    if WITH_SOFTMAX:
        nml = -_b(m * LOG2E)
        tt0 = tl.fma(x0, LOG2E, nml)
        tt1 = tl.fma(x1, LOG2E, nml)
        e0 = tl.exp2(tt0)
        e1 = tl.exp2(tt1)
        s = _row_sum(e0 + e1)
        u = _row_sum(tl.fma(e1, tt1, e0 * tt0))
        q = _row_sum(tl.fma(e1, e1, e0 * e0))

    if DIRECT:  # short rows: the rounds over the whole row (no bound); NaN, -inf or padding: fallback
        kth = _select_values(x0, cols0 * 2 + (x0.to(tl.int32, bitcast=True) < 0).to(tl.int32),
                             x1, cols1 * 2 + (x1.to(tl.int32, bitcast=True) < 0).to(tl.int32),
                             rows, rmask, out_vals_ptr, out_idx_ptr, sbase, K)
        fallback = (m != m) | ~(kth > PAD)
    else:
        # ---- a lower bound t of the k-th largest value: the k-th largest lane maximum (at least K
        # values are >= t); ties among lane maxima drop together, which only lowers t
        t = m
        cur = lm
        for j in tl.static_range(1, K):
            cur = tl.where(cur >= tl.expand_dims(t, 1), float("-inf"), cur)
            t = tl.max(cur, 1)

        # ---- candidates: the groups whose max is >= t, compacted to one per lane. A thread's flags are
        # the bits of one word (rep r: bit r): its lowest set bit is the exponent of float(b & -b)
        # (b < 2^24), b & (b - 1) drops it. Up to 4 per thread and LANES per row (else: fallback).
        tb = _lanes(t)
        g0 = tl.arange(0, H)[:, None, None]
        b = tl.sum(tl.where(gm0 >= tb, 1 << g0, 0) + tl.where(gm1 >= tb, 1 << (g0 + H), 0), 0)  # [R, LANES]
        b2 = b & (b - 1)
        b3 = b2 & (b2 - 1)
        b4 = b3 & (b3 - 1)
        cnt = (b != 0).to(tl.int32) + (b2 != 0).to(tl.int32) + (b3 != 0).to(tl.int32) + (b4 != 0).to(tl.int32)
        incl = tl.cumsum(cnt, 1)  # candidates of lanes 0 .. lane
        n_cand = tl.max(incl, 1)  # [R]
        fallback = (tl.max(b4 & (b4 - 1), 1) != 0) | (n_cand > LANES) | (m != m) | ~(t > PAD)
        # lane j takes candidate j: from the first lane whose inclusive count exceeds j (binary search
        # over the lanes by warp shuffles), its (j - exclusive count)-th set bit
        j = tl.arange(0, LANES)[None, :] + tl.zeros_like(incl)
        src = tl.zeros_like(incl)
        for i in tl.static_range(LOG_LANES):
            step = LANES >> (i + 1)
            src = tl.where(tl.gather(incl, src + (step - 1), 1) <= j, src + step, src)
        src = tl.minimum(src, LANES - 1)
        bs = tl.gather(b, src, 1)
        r = j - (tl.gather(incl, src, 1) - tl.gather(cnt, src, 1))
        bs = tl.where(r >= 1, bs & (bs - 1), bs)
        bs = tl.where(r >= 2, bs & (bs - 1), bs)
        bs = tl.where(r >= 3, bs & (bs - 1), bs)
        gid = ((bs & -bs).to(tl.float32).to(tl.int32, bitcast=True) >> 23) - 127
        use = j < tl.expand_dims(n_cand, 1)
        ccol = tl.expand_dims(tl.expand_dims(gid * W + src * VEC, 0), 3) + v4  # [1, R, LANES, VEC]
        cok = tl.expand_dims(tl.expand_dims(use, 0), 3) & (ccol < C)
        if HAS_SUBSET:
            csrc = tl.load(subset_ptr + ccol, mask=cok, other=0)
        else:
            csrc = tl.multiple_of(ccol, [1, 1, 1, VEC])
        cx = tl.load(x_ptr + _b(row_off) + csrc * stride_c, mask=cok, other=float("-inf")).to(tl.float32)
        cx = tl.where(cok, cx, float("-inf"))
        c_ck = ccol * 2 + (cx.to(tl.int32, bitcast=True) < 0).to(tl.int32)
        _select_values(cx, c_ck, cx, c_ck, rows, rmask, out_vals_ptr, out_idx_ptr, sbase, K)
    if tl.max(fallback.to(tl.int32), 0) > 0:  # exact rounds over the whole row, read again
        y0 = _load_half(x_ptr, row_off, stride_c, subset_ptr, lane_off, h4 * W + v4, C, LO_MASKED, HAS_SUBSET)
        y1 = _load_half(x_ptr, row_off, stride_c, subset_ptr, lane_off, h4 * W + v4 + H * W, C, True, HAS_SUBSET)
        ok0, ck0 = _keys(y0, cols0, C)
        ok1, ck1 = _keys(y1, cols1, C)
        _select_keys(ok0, ck0, ok1, ck1, rows, rmask & fallback, out_vals_ptr, out_idx_ptr, sbase, K)

    # ---- row statistics
    if WITH_SOFTMAX:
        # e_j = 2^(x_j log2e - fl(m log2e)): the offset g = fl(m log2e) - m log2e, exact in float64
        g64 = (m * LOG2E).to(tl.float64) - m.to(tl.float64) * LOG2E_F
        mr = m
        redo = (m == m) & (tl.abs(m) != float("inf")) & ((m <= PAD) | (tl.abs(m) > M_FUSED) | (u != u))
        if tl.max(redo.to(tl.int32), 0) > 0:  # again, relative to the real max
            y0 = _load_half(x_ptr, row_off, stride_c, subset_ptr, lane_off, h4 * W + v4, C, LO_MASKED, HAS_SUBSET)
            y1 = _load_half(x_ptr, row_off, stride_c, subset_ptr, lane_off, h4 * W + v4 + H * W, C, True,
                            HAS_SUBSET)
            if LO_MASKED:
                y0 = tl.where(cols0 < C, y0, float("-inf"))
            y1 = tl.where(cols1 < C, y1, float("-inf"))
            mr = tl.where(redo, _row_max(_max_nan(y0, y1)), m)
            ms = _b(tl.where((mr == mr) & (tl.abs(mr) != float("inf")), mr, 0.0))
            tr0 = tl.maximum((y0 - ms) * LOG2E, -150.0)
            tr1 = tl.maximum((y1 - ms) * LOG2E, -150.0)
            er0 = tl.exp2(tr0)
            er1 = tl.exp2(tr1)
            s = tl.where(redo, _row_sum(er0 + er1), s)
            u = tl.where(redo, _row_sum(er0 * tr0 + er1 * tr1), u)
            q = tl.where(redo, _row_sum(er0 * er0 + er1 * er1), q)
            g64 = tl.where(redo, 0.0, g64)
        nonfinite = (mr != mr) | (tl.abs(mr) == float("inf"))
        lse, ent, sp2, lnorm = softmax_stats(mr, s, u, q, g64, nonfinite)
    else:
        mr = m
        low = (m == m) & (m <= PAD)
        if tl.max(low.to(tl.int32), 0) > 0:  # every real value <= PAD: the max of the real columns
            y0 = _load_half(x_ptr, row_off, stride_c, subset_ptr, lane_off, h4 * W + v4, C, LO_MASKED, HAS_SUBSET)
            y1 = _load_half(x_ptr, row_off, stride_c, subset_ptr, lane_off, h4 * W + v4 + H * W, C, True,
                            HAS_SUBSET)
            if LO_MASKED:
                y0 = tl.where(cols0 < C, y0, float("-inf"))
            mr = tl.where(low, _row_max(_max_nan(y0, tl.where(cols1 < C, y1, float("-inf")))), m)
        nonfinite = (mr != mr) | (tl.abs(mr) == float("inf"))
        lse, ent, sp2, lnorm = no_softmax_stats(BLOCK_R)
    store_row_stats(sbase, rmask, lse, ent, sp2, lnorm, nonfinite)


def config(c: int, k: int, elem_size: int):
    """(BLOCK_R, REP, LANES, VEC, LOG_LANES, DIRECT, LO_MASKED) for rows of c <= MAX_COLUMNS
    columns and k <= MAX_K, else None. Rows that leave at least 32 values per thread with 2k lanes
    per row (the k-th largest lane maximum then leaves few candidates) take the candidate path;
    shorter rows (DIRECT) take the k rounds over the whole row, with up to 64 values per thread.
    LO_MASKED: the first half of the padded row is not inside the row (c <= 2 vectors)."""
    vec = 16 // elem_size
    cp = max(triton.next_power_of_2(c), 2 * vec)
    if cp > MAX_COLUMNS[elem_size] or k > MAX_K:
        return None
    lanes = max(cp // PER_THREAD, triton.next_power_of_2(2 * k))
    direct = lanes > 32 or lanes * vec * 2 > cp or cp // lanes < 32
    if direct:  # (32 values per thread: the rounds keep the row and its column keys in registers)
        lanes = max(1, cp // (PER_THREAD // 2))
    return 32 // lanes, cp // (lanes * vec), lanes, vec, lanes.bit_length() - 1, direct, 2 * c <= cp


def fits(c: int, k: int, elem_size: int) -> bool:
    return config(c, k, elem_size) is not None


def topk_stats(p, logits, with_softmax):
    """Run the resident kernel for a :class:`.topk_stats.Prepared` ``p`` (k <= MAX_FUSED_K, c fits)."""
    n, c, kk = p.n, p.c, p.kk
    br, rep, lanes, vec, log_lanes, direct, lo_masked = config(c, kk, logits.element_size())
    dense = p.subset is None and logits.stride(1) == 1
    row_align = vec if dense and logits.stride(0) % vec == 0 else 1
    c_align = vec if dense and c % vec == 0 else 1
    grid = triton.cdiv(n, br)
    d = p.stats
    with _device_guard(p.dev):
        launch(_resident_kernel, (grid,),
               logits, logits.stride(0), logits.stride(1), n, c,
               p.subset if p.subset is not None else d, p.tgt if p.tgt is not None else d,
               p.k_vals, p.k_idx, p.stats, p.rank if p.tgt is not None else d,
               K=kk, BLOCK_R=br, REP=rep, LANES=lanes, VEC=vec, LOG_LANES=log_lanes, DIRECT=direct,
               LO_MASKED=lo_masked,
               ROW_ALIGN=row_align, C_ALIGN=c_align,
               HAS_SUBSET=p.subset is not None, HAS_TARGET=p.tgt is not None, WITH_SOFTMAX=bool(with_softmax),
               num_warps=1)
        if p.fused_labels:
            launch(_hits_kernel, (n,), p.idx, p.rng, p.lab, p.n_lab, p.hits.view(torch.int8), kk, BLOCK_K=128)
    return p.finish(logits)
