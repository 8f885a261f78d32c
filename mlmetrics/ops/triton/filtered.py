"""Triton ``topk_stats``, filtered variant (backend ``"triton_filtered"``; semantics: :mod:`..reference`).

Same answers as :mod:`.topk_stats` (same rank keys, same top-k buffer and output code), with a
cheaper common path per tile of ``TILE_REP x TILE_C`` columns of ``BLOCK_R`` rows:

* one NaN-propagating float max per element gives the tile max; the tile is *admitted* (the
  exact path below runs) only when that max can enter the running top-k (v_k = the k-th best
  value so far; NaN is always admitted) or reaches the softmax reference plus ``SLACK_X`` = 22
  nats: one compare, ``!(max < min(v_k, r + SLACK_X))``. Otherwise no order keys, no 64-bit keys
  and no cross-lane work besides that one max;
* softmax sums are kept per element slot ([BLOCK_R, TILE_REP, TILE_C] accumulators, FFMA chains)
  relative to a row reference ``r`` that moves only on admitted tiles: no per-tile reductions
  and no rescaling exp on the common path, so exactly one ``exp2`` per element
  (``e = 2^(x log2e - r log2e)``, one FFMA for the argument). The reference stays within 22 nats
  of the running max, so e <= 2^32 and sum e^2 stays finite in fp32. The offset between r and the
  row max is applied once per row, exactly, in float64. Rows where that cannot work (|max| >
  1e7, where fl(r log2e) is off by more than 1, or an entry of -inf, which makes e * log e NaN)
  are summed a second time relative to the exact max;
* the exact path (admitted tiles, always including a row's first tile) moves the reference when
  the tile max is 22 nats above it and inserts the tile's values that beat the buffer's minimum,
  best first, once every row's k-th best is above -inf: bf16 by int32 order keys with the tile
  column in their 16 zero low bits (one integer max per insertion), other types by float compares
  and tile-local column searches; else (a row's first values, -inf, a NaN in the tile) by int32
  order keys and column searches;
* bf16 rows with an even stride are read as 32-bit words (two values per word, 2 integer ops);
* ``ROW_ALIGN`` / ``C_ALIGN`` (set by the host when the row stride / C is a multiple of the
  vector width) let the compiler emit 128-bit loads.

k > MAX_FUSED_K: the row statistics come from this kernel, the top-k from the shared large-k path.
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from . import resident
from .launch import launch
from .topk_stats import (S_NUM, S_TARGET_LOGIT, _INT32_MIN, _KEY_NEGINF, _KEY_POSINF, Prepared, _device_guard,
                         _store_topk, key_value, no_softmax_stats, order_key, rank_key, row_block, softmax_stats,
                         store_row_stats, target_logit, topk_buffer)

@triton.jit
def _max_nan(a, b):
    return tl.maximum(a, b, propagate_nan=tl.PropagateNan.ALL)


@triton.jit
def _insert_by_values(x, tm, tcols, start, buf, thr):
    """Insert the values of a NaN-free tile x [R, REP, TC] (columns ``start + tcols``, tile max ``tm``
    [R]) that beat the buffer's minimum ``thr``, best first: the best value's lowest column (ties:
    lower index; -0.0 == +0.0 as in the order keys), then that column reads -inf. Every row's k-th
    best value is above -inf (the caller checks), so a value of -inf (or a padding column) never
    enters and the search stops at the first value below it. Columns are searched tile-local."""
    KEY_MIN: tl.constexpr = -9223372036854775808
    BIG: tl.constexpr = 2147483647
    m = tm
    col = tl.min(tl.min(tl.where(x == m[:, None, None], tcols[None, :, :], BIG), 2), 1)
    key = rank_key(order_key(m), start + col)
    go = key > thr
    xs = x
    n_go = tl.sum(go.to(tl.int32), 0)
    while n_go > 0:
        buf = tl.where((buf == thr[:, None]) & go[:, None], key[:, None], buf)
        thr = tl.where(go, tl.min(buf, 1), thr)
        xs = tl.where(go[:, None, None] & (tcols[None, :, :] == col[:, None, None]), float("-inf"), xs)
        m = tl.max(tl.max(xs, 2), 1)
        thr_ok = (thr >> 32).to(tl.int32)
        v_k = tl.where(thr_ok == _INT32_MIN, float("-inf"), key_value(thr_ok))
        go = go & ~(m < v_k)  # can the next value still enter? (else no column search)
        if tl.max(go.to(tl.int32), 0) == 0:
            col = tl.full(m.shape, 0, tl.int32)
        else:
            col = tl.min(tl.min(tl.where(xs == m[:, None, None], tcols[None, :, :], BIG), 2), 1)
        key = tl.where(go, rank_key(order_key(m), start + col), KEY_MIN)
        go = key > thr
        n_go = tl.sum(go.to(tl.int32), 0)
    return buf, thr


@triton.jit
def _insert_by_packed_keys(x, tcols, start, buf, thr, LOW_BITS: tl.constexpr):
    """``_insert_by_values`` for values read from a 16-bit type (the low ``LOW_BITS`` bits of their
    float32 are zero: 16 for bf16, 13 for fp16; the tile has at most 2^LOW_BITS columns): the int32
    order key with the tile column in its low bits, ``order_key(x) | (LOW - tcol)``, orders the tile
    like the rank keys, so one integer max per insertion finds both the value and its column."""
    KEY_MIN: tl.constexpr = -9223372036854775808
    LOW: tl.constexpr = (1 << LOW_BITS) - 1
    b = x.to(tl.int32, bitcast=True)
    mag = b & 0x7FFFFFFF
    pk = tl.where(b < 0, -mag, mag) | (LOW - tcols[None, :, :])  # NaN-free: order_key(x) | column
    best = tl.max(tl.max(pk, 2), 1)
    key = rank_key(best & ~LOW, start + (LOW - (best & LOW)))
    go = key > thr
    n_go = tl.sum(go.to(tl.int32), 0)
    while n_go > 0:
        buf = tl.where((buf == thr[:, None]) & go[:, None], key[:, None], buf)
        thr = tl.where(go, tl.min(buf, 1), thr)
        pk = tl.where(go[:, None, None] & (pk == best[:, None, None]), _INT32_MIN, pk)
        best = tl.max(tl.max(pk, 2), 1)
        key = tl.where(go, rank_key(best & ~LOW, start + (LOW - (best & LOW))), KEY_MIN)
        go = key > thr
        n_go = tl.sum(go.to(tl.int32), 0)
    return buf, thr


@triton.jit
def _insert_by_keys(x, tcols, start, buf, thr):
    """Insert the keys of tile x [R, REP, TC] (columns ``start + tcols``) that beat the buffer's minimum ``thr``, best first, by
    int32 order keys (any values, NaN included); taken columns read as INT32_MIN."""
    KEY_MIN: tl.constexpr = -9223372036854775808
    BIG: tl.constexpr = 2147483647
    ok = order_key(x)
    m_ok = tl.max(tl.max(ok, 2), 1)
    col = tl.min(tl.min(tl.where(ok == m_ok[:, None, None], tcols[None, :, :], BIG), 2), 1)
    key = rank_key(m_ok, start + col)
    go = key > thr
    n_go = tl.sum(go.to(tl.int32), 0)
    while n_go > 0:
        buf = tl.where((buf == thr[:, None]) & go[:, None], key[:, None], buf)
        thr = tl.where(go, tl.min(buf, 1), thr)
        ok = tl.where(go[:, None, None] & (tcols[None, :, :] == col[:, None, None]), _INT32_MIN, ok)
        m_ok = tl.max(tl.max(ok, 2), 1)
        col = tl.min(tl.min(tl.where(ok == m_ok[:, None, None], tcols[None, :, :], BIG), 2), 1)
        key = tl.where(m_ok == _INT32_MIN, KEY_MIN, rank_key(m_ok, start + col))  # nothing left
        go = key > thr
        n_go = tl.sum(go.to(tl.int32), 0)
    return buf, thr


@triton.jit
def _load_masked(x_ptr, row_off, stride_c, subset_ptr, cols, C, HAS_SUBSET: tl.constexpr):
    """float32 [R, REP, TC] tile at columns ``cols`` [REP, TC]; columns >= C read as -inf (below every
    real key since their index is >= C, and they add 0 to the softmax sums)."""
    cmask = cols < C
    if HAS_SUBSET:
        src = tl.load(subset_ptr + cols, mask=cmask, other=0)
    else:
        src = cols
    return tl.load(x_ptr + row_off[:, None, None] + src[None, :, :] * stride_c, mask=cmask[None, :, :],
                   other=float("-inf")).to(tl.float32)


@triton.jit
def _tile(x_ptr, row_off, stride_c, subset_ptr, start, tcols, C, buf, thr, lim, r, s_acc, u_acc, q_acc, cnt, t_ok,
          t_safe, xw_ptr, row_off_w, wcols,
          MASKED: tl.constexpr, BF16_PAIRS: tl.constexpr, HAS_SUBSET: tl.constexpr, HAS_TARGET: tl.constexpr,
          WITH_SOFTMAX: tl.constexpr, LOW_BITS: tl.constexpr):
    """Fold one [BLOCK_R, TILE_REP, TILE_C] tile (columns ``start + tcols``, tcols [TILE_REP, TILE_C])
    into its rows' state. ``lim`` = min(v_k, r + SLACK_X) [R] (v_k: the k-th best value so far, -inf
    until k are seen): a tile whose max is below it changes no top-k and moves no reference."""
    LOG2E: tl.constexpr = 1.4426950408889634
    SLACK_X: tl.constexpr = 22.0  # nats the softmax reference may trail the running row max
    cols = start + tcols
    if MASKED:
        x = _load_masked(x_ptr, row_off, stride_c, subset_ptr, cols, C, HAS_SUBSET)
    elif BF16_PAIRS:
        # two bf16 per 32-bit word: a bf16 is the top half of its float32, so the two floats are
        # (w << 16) and (w & 0xFFFF0000): 2 integer ops per pair instead of the generic 3
        w = tl.load(xw_ptr + row_off_w[:, None, None] + wcols[None, :, :])
        lo = (w << 16).to(tl.float32, bitcast=True)
        hi = (w & -65536).to(tl.float32, bitcast=True)
        x = tl.interleave(lo, hi)  # [R, REP, TC] in column order
    else:
        if HAS_SUBSET:
            src = tl.load(subset_ptr + cols)
        else:
            src = cols
        x = tl.load(x_ptr + row_off[:, None, None] + src[None, :, :] * stride_c).to(tl.float32)
    tm = tl.reduce(tl.reduce(x, 1, _max_nan), 1, _max_nan)  # [R], NaN when the tile holds one
    need = ~(tm < lim)  # NaN: always
    exact = tl.max(need.to(tl.int32), 0) > 0  # the exact path (rare after a row's first tiles)
    if exact:
        # by values when the tile is NaN-free and every row's k-th best is above -inf (then no -inf
        # and no padding column can enter); else by int32 order keys (NaN, -inf, a row's first values)
        if tl.max(((tm != tm) | (lim == float("-inf"))).to(tl.int32), 0) > 0:  # (lim = -inf iff v_k = -inf)
            buf, thr = _insert_by_keys(x, tcols, start, buf, thr)
        elif LOW_BITS > 0:
            buf, thr = _insert_by_packed_keys(x, tcols, start, buf, thr, LOW_BITS)
        else:
            buf, thr = _insert_by_values(x, tm, tcols, start, buf, thr)
        thr_ok = (thr >> 32).to(tl.int32)
        v_k = tl.where(thr_ok == _INT32_MIN, float("-inf"), key_value(thr_ok))
        lim = v_k
        if WITH_SOFTMAX:
            r_new = tl.maximum(r, tm)  # (maximum ignores a NaN tm)
            move = r_new > r + SLACK_X
            if tl.max(move.to(tl.int32), 0) > 0:  # move the softmax reference up to the tile max
                r_new = tl.where(move, r_new, r)
                g = (r * LOG2E - r_new * LOG2E)[:, None, None]  # the change of the exponents' offset
                a = tl.exp2(g)
                u_acc = a * (u_acc + s_acc * g)
                s_acc = a * s_acc
                q_acc = (a * a) * q_acc
                r = r_new
            lim = tl.minimum(v_k, r + SLACK_X)
    if WITH_SOFTMAX:
        # e = 2^(x log2e - r log2e) <= 2^32 (one fused multiply-add: x log2e is exact inside it).
        # An entry of -inf adds e = 0 but e * tt = NaN to u: such rows are summed again at the end
        tt = tl.fma(x, LOG2E, -(r * LOG2E)[:, None, None])
        e = tl.exp2(tt)
        s_acc += e
        u_acc = tl.fma(e, tt, u_acc)
        q_acc = tl.fma(e, e, q_acc)
    if HAS_TARGET:
        # key(j) > key(t) <=> ok_j > ok_t, or ok_j == ok_t and j < t
        okt = order_key(x)
        t_thr = tl.where(cols[None, :, :] < t_safe[:, None, None], t_ok[:, None, None] - 1, t_ok[:, None, None])
        cnt += tl.sum((okt > t_thr).to(tl.int32), 1)
    return buf, thr, lim, r, s_acc, u_acc, q_acc, cnt


@triton.jit
def _filtered_kernel(
    x_ptr, stride_r, stride_c, N, C,
    subset_ptr, target_ptr, ranges_ptr, labels_ptr, L,
    out_vals_ptr, out_idx_ptr, out_hits_ptr, out_stats_ptr, out_rank_ptr,
    K: tl.constexpr, KP: tl.constexpr, BLOCK_R: tl.constexpr, TILE_REP: tl.constexpr, TILE_C: tl.constexpr,
    ROW_ALIGN: tl.constexpr, C_ALIGN: tl.constexpr, BF16_PAIRS: tl.constexpr,
    HAS_SUBSET: tl.constexpr, HAS_TARGET: tl.constexpr, HAS_LABELS: tl.constexpr, WITH_SOFTMAX: tl.constexpr,
    LOW_BITS: tl.constexpr,
):
    KEY_MIN: tl.constexpr = -9223372036854775808
    LOG2E: tl.constexpr = 1.4426950408889634
    LOG2E_F: tl.constexpr = 1.44269502162933349609375  # LOG2E as the float32 the kernel multiplies by
    R_INIT: tl.constexpr = -1.0e38  # finite: x log2e - r log2e never meets inf - inf
    TILE: tl.constexpr = TILE_REP * TILE_C
    stride_r, C, rows, rmask, row_off = row_block(stride_r, N, C, BLOCK_R, ROW_ALIGN, C_ALIGN)
    slots = tl.arange(0, KP)
    tcols = tl.arange(0, TILE_REP)[:, None] * TILE_C + tl.arange(0, TILE_C)[None, :]  # [REP, TC]

    if HAS_TARGET:
        tvalid, t_safe, xt = target_logit(target_ptr, rows, rmask, x_ptr, row_off, stride_c, subset_ptr, C,
                                          HAS_SUBSET)
        t_ok = order_key(xt)
    else:
        t_safe = tl.zeros([BLOCK_R], dtype=tl.int64)
        t_ok = tl.zeros([BLOCK_R], dtype=tl.int32)
    cnt = tl.zeros([BLOCK_R, TILE_C], dtype=tl.int32)

    buf, thr = topk_buffer(BLOCK_R, KP, K)
    lim = tl.full([BLOCK_R], float("-inf"), tl.float32)  # min(k-th best value, r + SLACK_X): see _tile
    r = tl.full([BLOCK_R], R_INIT, tl.float32)
    s_acc = tl.zeros([BLOCK_R, TILE_REP, TILE_C], dtype=tl.float32)  # per element slot: FFMA chains
    u_acc = tl.zeros([BLOCK_R, TILE_REP, TILE_C], dtype=tl.float32)
    q_acc = tl.zeros([BLOCK_R, TILE_REP, TILE_C], dtype=tl.float32)

    if BF16_PAIRS:  # the row as 32-bit words (stride_r is even, the base 4-byte aligned)
        xw_ptr = x_ptr.to(tl.pointer_type(tl.int32), bitcast=True)
        row_off_w = tl.minimum(rows, N - 1) * (stride_r // 2)
        wt = tl.arange(0, TILE_REP)[:, None] * (TILE_C // 2) + tl.arange(0, TILE_C // 2)[None, :]
    else:
        xw_ptr = x_ptr
        row_off_w = row_off
        wt = tcols
    t_full = (C // TILE) * TILE
    for start in range(0, t_full, TILE):
        buf, thr, lim, r, s_acc, u_acc, q_acc, cnt = _tile(
            x_ptr, row_off, stride_c, subset_ptr, start, tcols, C, buf, thr, lim, r, s_acc, u_acc, q_acc, cnt,
            t_ok, t_safe, xw_ptr, row_off_w, start // 2 + wt, False, BF16_PAIRS, HAS_SUBSET, HAS_TARGET, WITH_SOFTMAX,
            LOW_BITS)
    if t_full < C:
        buf, thr, lim, r, s_acc, u_acc, q_acc, cnt = _tile(
            x_ptr, row_off, stride_c, subset_ptr, t_full, tcols, C, buf, thr, lim, r, s_acc, u_acc, q_acc, cnt,
            t_ok, t_safe, xw_ptr, row_off_w, wt, True, False, HAS_SUBSET, HAS_TARGET, WITH_SOFTMAX, LOW_BITS)

    # ---- row statistics (the top-1 key is the row's max in rank order)
    top_ok = (tl.max(tl.where(slots[None, :] < K, buf, KEY_MIN), 1) >> 32).to(tl.int32)
    nonfinite = (top_ok >= _KEY_POSINF) | (top_ok == _KEY_NEGINF)
    sbase = out_stats_ptr + rows * S_NUM
    if WITH_SOFTMAX:
        m = key_value(top_ok)
        s = tl.sum(tl.sum(s_acc, 2), 1)
        u = tl.sum(tl.sum(u_acc, 2), 1)
        q = tl.sum(tl.sum(q_acc, 2), 1)
        # e_j = 2^(x_j log2e - fl(r log2e)): relative to the max m the exponent gains
        # g = fl(r log2e) - m log2e, exact in float64 (the product of two floats)
        g = (r * LOG2E).to(tl.float64) - m.to(tl.float64) * LOG2E_F
        # sums again, relative to m, where fl(r log2e) is off by more than 1 (|r| > 1e7: 2^err would
        # overflow or vanish) or an entry of -inf made u NaN
        huge = (~nonfinite) & ((tl.abs(m) > 1.0e7) | (u != u))
        if tl.max(huge.to(tl.int32), 0) > 0:
            s = tl.zeros([BLOCK_R], dtype=tl.float32)
            u = tl.zeros([BLOCK_R], dtype=tl.float32)
            q = tl.zeros([BLOCK_R], dtype=tl.float32)
            for start in range(0, C, TILE):
                x = _load_masked(x_ptr, row_off, stride_c, subset_ptr, start + tcols, C, HAS_SUBSET)
                tt = tl.maximum((x - m[:, None, None]) * LOG2E, -150.0)
                e = tl.exp2(tt)
                s += tl.sum(tl.sum(e, 2), 1)
                u += tl.sum(tl.sum(e * tt, 2), 1)
                q += tl.sum(tl.sum(e * e, 2), 1)
            g = tl.zeros([BLOCK_R], dtype=tl.float64)
        lse, ent, sp2, lnorm = softmax_stats(m, s, u, q, g, nonfinite)
    else:
        lse, ent, sp2, lnorm = no_softmax_stats(BLOCK_R)
    store_row_stats(sbase, rmask, lse, ent, sp2, lnorm, nonfinite)
    if HAS_TARGET:
        tl.store(sbase + S_TARGET_LOGIT, xt, mask=rmask)
        tl.store(out_rank_ptr + rows, tl.where(tvalid, tl.sum(cnt, 1).to(tl.int64), -1), mask=rmask)
    else:
        tl.store(sbase + S_TARGET_LOGIT, tl.full([BLOCK_R], float("nan"), tl.float32), mask=rmask)
    _store_topk(buf, slots, rows, rmask, row_off, stride_c, x_ptr, subset_ptr, ranges_ptr, labels_ptr, L,
                out_vals_ptr, out_idx_ptr, out_hits_ptr, sbase, K, KP, BLOCK_R, HAS_SUBSET, HAS_LABELS)


def _config(n: int, c: int, k: int, elem_size: int):
    """(BLOCK_R, TILE_REP, TILE_C, num_warps): one warp per program; a row's tile is TILE_REP
    vectors of 16 bytes per lane (up to 32 values per thread: 8 fp32 / 4 16-bit vectors); several
    rows per program (up to 16 values per thread) when a row is shorter than one warp-wide vector row."""
    vec = 16 // elem_size
    warp_row = 32 * vec
    if c >= warp_row:
        tile_c = warp_row
        tile_rep = min(32 // vec, triton.next_power_of_2(triton.cdiv(c, warp_row)))
        block_r = 1
    else:
        tile_c = max(16, triton.next_power_of_2(c))
        tile_rep = 1
        block_r = min(16, 512 // tile_c)  # <= 16 values per thread: three accumulators each
    block_r = max(1, min(block_r, triton.next_power_of_2(max(n, 1))))
    kp = triton.next_power_of_2(k)
    while block_r > 1 and block_r * kp > 512:
        block_r //= 2
    return block_r, tile_rep, tile_c, 1


def topk_stats(logits, k, target=None, label_ranges=None, labels=None, class_subset=None,
               with_softmax=True, *, tile_c=None, tile_rep=None, block_r=None):
    """Filtered Triton ``topk_stats``; returns (topk_logits, topk_indices, hits, row_stats, target_rank).

    Rows that fit in registers (:func:`.resident.fits`) take :mod:`.resident`; ``tile_c``/``tile_rep``/
    ``block_r`` force the tiled kernel and override its launch configuration (tests use small tiles
    to get several tiles per row at small C).
    """
    p = Prepared(logits, k, target, label_ranges, labels, class_subset)
    if p.n == 0:
        return p.finish(logits)
    n, c, kk = p.n, p.c, p.kk
    if tile_c is None and tile_rep is None and block_r is None and resident.fits(c, kk, logits.element_size()):
        return resident.topk_stats(p, logits, with_softmax)  # the row fits in registers
    br, rep, tc, nw = _config(n, c, kk, logits.element_size())
    tc = int(tile_c) if tile_c is not None else tc
    rep = int(tile_rep) if tile_rep is not None else rep
    br = int(block_r) if block_r is not None else br
    vec = 16 // logits.element_size()
    dense = p.subset is None and logits.stride(1) == 1
    row_align = vec if dense and logits.stride(0) % vec == 0 else 1
    c_align = vec if dense and c % vec == 0 else 1
    # bf16 values leave the low 16 bits of their float32 zero: room for the tile column (fp16 would
    # leave 13; not used: at 21841 classes the extra tile of keys spills)
    low_bits = 16 if logits.dtype == torch.bfloat16 and rep * tc <= (1 << 16) else 0
    with _device_guard(p.dev):
        launch(_filtered_kernel, (triton.cdiv(n, br),),
               logits, logits.stride(0), logits.stride(1), n, c, *p.kernel_args(),
               K=kk, KP=triton.next_power_of_2(kk), BLOCK_R=br, TILE_REP=rep, TILE_C=tc,
               ROW_ALIGN=row_align, C_ALIGN=c_align,
               BF16_PAIRS=logits.dtype == torch.bfloat16 and row_align > 1 and tc % 2 == 0 and logits.data_ptr() % 4 == 0,
               HAS_SUBSET=p.subset is not None, HAS_TARGET=p.tgt is not None,
               HAS_LABELS=p.fused_labels, WITH_SOFTMAX=bool(with_softmax), LOW_BITS=low_bits,
               num_warps=nw)
    return p.finish(logits)
