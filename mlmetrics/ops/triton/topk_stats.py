"""Triton backend of ``mlmetrics::topk_stats`` (semantics: :mod:`mlmetrics.reference`).

One program handles ``BLOCK_R`` rows (several rows for small C, one row for large C) and
streams them in column tiles of ``BLOCK_C``:

* rank order uses the same keys as ``csrc/topk_stats.h`` up to an order-preserving change
  that lets Triton compare them as *signed* integers (it has no handy unsigned 64-bit compare):
    - ``order_key(x)``: int32; NaN (any payload) -> INT32_MAX, -0.0 and +0.0 -> 0, a finite or
      infinite x -> its bits if x >= 0, minus its magnitude bits if x < 0. Signed order of
      these == unsigned order of the C++ ``order_key`` (equal keys exactly where C++ has them).
    - ``rank_key(ok, idx)``: int64; ``ok`` in the high word, ``~idx`` (as uint32) in the low
      word, like C++ ``rank_key``. Larger key = earlier in rank order (ties: lower index).
* a running top-k of rank keys lives in registers (``KP = next_pow2(k)`` slots per row, unsorted);
  its minimum is the admission threshold. A tile whose max order key cannot beat the
  threshold costs one int32 max reduction; otherwise the tile's keys are extracted by
  repeated max (at most k rounds, usually 0-2 after the first tiles). Full tiles load
  without masks; rows past N re-read row N-1 and are not stored.
* the tile's max order key also gives the tile's max float (for online softmax) and,
  over the row, the non-finite flag (max key is NaN / +inf, or is -inf).
* online softmax statistics (fp32): m (running max), s = sum e^(x-m), u = sum e^(x-m)(x-m),
  q = sum e^(2(x-m)); rescaled per tile. lse = m + log s, entropy = log s - u/s,
  sum_p2 = q / s^2.
* target rank = number of keys greater than the target's key (target logit loaded first).
* hits: every top-k slot's class index is compared against the row's CSR label slice.

No N x C intermediate is written. For k > ``MAX_FUSED_K`` a slower path runs the fused
kernel for the row statistics and takes the top-k of the rank keys with ``torch.topk``
(this path does materialise an N x C int64 key tensor).
"""
from __future__ import annotations

import contextlib

import torch
import triton
import triton.language as tl

from ..schema import MAX_FUSED_K, NUM_STATS, Stat
from .launch import launch

S_MAX_LOGIT: tl.constexpr = tl.constexpr(int(Stat.MAX_LOGIT))
S_LOGSUMEXP: tl.constexpr = tl.constexpr(int(Stat.LOGSUMEXP))
S_ENTROPY: tl.constexpr = tl.constexpr(int(Stat.ENTROPY))
S_SUM_P2: tl.constexpr = tl.constexpr(int(Stat.SUM_P2))
S_TARGET_LOGIT: tl.constexpr = tl.constexpr(int(Stat.TARGET_LOGIT))
S_NONFINITE: tl.constexpr = tl.constexpr(int(Stat.NONFINITE))
S_LOG_NORMALIZER: tl.constexpr = tl.constexpr(int(Stat.LOG_NORMALIZER))
S_NUM: tl.constexpr = tl.constexpr(NUM_STATS)

_INT32_MAX = 2147483647
_INT32_MIN: tl.constexpr = tl.constexpr(-2147483648)
_KEY_POSINF: tl.constexpr = tl.constexpr(0x7F800000)  # order_key(+inf)
_KEY_NEGINF: tl.constexpr = tl.constexpr(-0x7F800000)  # order_key(-inf)


@triton.jit
def order_key(x):
    """float32 -> int32 whose signed order is the rank order of the values (see module doc).

    NaN (any payload) -> INT32_MAX; -0.0 and +0.0 -> 0; a negative float -> minus its magnitude
    bits (order-equivalent to C++ ``order_key(x) ^ 0x80000000``, which maps -0.0 onto +0.0 too).
    """
    b = x.to(tl.int32, bitcast=True)
    mag = b & 0x7FFFFFFF
    k = tl.where(b < 0, -mag, mag)
    return tl.where(x != x, 0x7FFFFFFF, k)


@triton.jit
def key_value(k):
    """Inverse of order_key (NaN keys give a NaN, -0.0 comes back as +0.0)."""
    b = tl.where(k < 0, (-k) | -2147483648, k)
    return b.to(tl.float32, bitcast=True)


@triton.jit
def rank_key(ok, idx):
    """int32 order key, int class index -> int64 key; larger = earlier (ties: lower index)."""
    low = tl.full([], 0xFFFFFFFF, tl.int64) - idx.to(tl.int64)  # ~idx as uint32
    return (ok.to(tl.int64) << 32) | low


@triton.jit
def rank_key_index(key):
    return tl.full([], 0xFFFFFFFF, tl.int64) - (key & tl.full([], 0xFFFFFFFF, tl.int64))


@triton.jit
def row_block(stride_r, N, C, BLOCK_R: tl.constexpr, ROW_ALIGN: tl.constexpr, C_ALIGN: tl.constexpr):
    """(stride_r, C with their alignment shown to the compiler (the host checked stride_r % ROW_ALIGN
    == 0 and C % C_ALIGN == 0), rows, rmask, row offsets) of this program's row block; rows past N
    re-read row N-1 (never stored)."""
    if ROW_ALIGN > 1:
        stride_r = (stride_r // ROW_ALIGN) * ROW_ALIGN
    if C_ALIGN > 1:
        C = (C // C_ALIGN) * C_ALIGN
    rows = tl.program_id(0).to(tl.int64) * BLOCK_R + tl.arange(0, BLOCK_R)
    rmask = rows < N
    return stride_r, C, rows, rmask, tl.minimum(rows, N - 1) * stride_r


@triton.jit
def store_row_stats(sbase, rmask, lse, ent, sp2, lnorm, nonfinite):
    """Store the softmax columns and the non-finite flag of a row block's ``row_stats``."""
    tl.store(sbase + S_LOGSUMEXP, lse, mask=rmask)
    tl.store(sbase + S_ENTROPY, ent, mask=rmask)
    tl.store(sbase + S_SUM_P2, sp2, mask=rmask)
    tl.store(sbase + S_LOG_NORMALIZER, lnorm, mask=rmask)
    tl.store(sbase + S_NONFINITE, nonfinite.to(tl.float32), mask=rmask)


@triton.jit
def no_softmax_stats(BLOCK_R: tl.constexpr):
    """(logsumexp, entropy, sum_p2, log_normalizer) [BLOCK_R] of a call without softmax: all NaN."""
    nan = tl.full([BLOCK_R], float("nan"), tl.float32)
    return nan, nan, nan, nan


@triton.jit
def softmax_stats(m, s, u, q, g, nonfinite):
    """(logsumexp, entropy, sum_p2, log_normalizer) [R] from sums relative to a reference:
    s = sum 2^t, u = sum 2^t t, q = sum 2^(2t) with t = x log2e - ref; ``g`` (float64) = ref - m log2e
    for the row max m (0 when the sums are relative to m); NaN where ``nonfinite``."""
    LN2: tl.constexpr = 0.6931471805599453
    log_s = tl.log2(s) * LN2
    lnorm64 = log_s.to(tl.float64) + g * LN2
    lnorm = tl.where(nonfinite, float("nan"), lnorm64.to(tl.float32))
    lse = tl.where(nonfinite, float("nan"), (m.to(tl.float64) + lnorm64).to(tl.float32))
    ent = tl.where(nonfinite, float("nan"), log_s - LN2 * (u / s))
    sp2 = tl.where(nonfinite, float("nan"), q / (s * s))
    return lse, ent, sp2, lnorm


@triton.jit
def topk_buffer(BLOCK_R: tl.constexpr, KP: tl.constexpr, K: tl.constexpr):
    """An empty running top-k buffer: int64 rank keys [BLOCK_R, KP] (slots < K unique keys below every
    real one, so exactly one slot is the minimum; slots >= K unique keys above) and its minimum [BLOCK_R]."""
    slots = tl.arange(0, KP)
    pad_lo = tl.full([BLOCK_R, KP], -9223372036854775808, tl.int64) + slots[None, :]
    pad_hi = tl.full([BLOCK_R, KP], 9223372036854775807, tl.int64) - slots[None, :]
    buf = tl.where(slots[None, :] < K, pad_lo, pad_hi)
    return buf, tl.min(buf, 1)


@triton.jit
def target_logit(target_ptr, rows, rmask, x_ptr, row_off, stride_c, subset_ptr, C, HAS_SUBSET: tl.constexpr):
    """(valid, index clamped to 0 where not, float32 logit, NaN where not) of the rows' targets."""
    t = tl.load(target_ptr + rows, mask=rmask, other=-1)
    tvalid = rmask & (t >= 0) & (t < C)
    t_safe = tl.where(tvalid, t, 0)
    if HAS_SUBSET:
        t_col = tl.load(subset_ptr + t_safe, mask=tvalid, other=0)
    else:
        t_col = t_safe
    xt = tl.load(x_ptr + row_off + t_col * stride_c, mask=tvalid, other=float("nan")).to(tl.float32)
    return tvalid, t_safe, tl.where(tvalid, xt, float("nan"))


@triton.jit
def _tile(x_ptr, row_off, stride_c, subset_ptr, start, C, lanes,
          buf, thr, row_max_ok, m_run, s_run, u_run, q_run, cnt_lane, t_ok, t_rel,
          BLOCK_C: tl.constexpr, MASKED: tl.constexpr, HAS_SUBSET: tl.constexpr,
          HAS_TARGET: tl.constexpr, WITH_SOFTMAX: tl.constexpr):
    """Fold one [BLOCK_R, BLOCK_C] column tile into the running state of its rows."""
    KEY_MIN: tl.constexpr = -9223372036854775808
    LOG2E: tl.constexpr = 1.4426950408889634
    cols = start + lanes
    if MASKED:
        cmask = cols < C
        if HAS_SUBSET:
            src = tl.load(subset_ptr + cols, mask=cmask, other=0)
        else:
            src = cols.to(tl.int64)
        # padding columns read as -inf: their rank keys (index >= C) sit below every real entry,
        # they add 0 to the softmax sums and never count above a target
        x = tl.load(x_ptr + row_off[:, None] + src[None, :] * stride_c, mask=cmask[None, :],
                    other=float("-inf")).to(tl.float32)
    else:
        if HAS_SUBSET:
            src = tl.load(subset_ptr + cols)
        else:
            src = cols.to(tl.int64)
        x = tl.load(x_ptr + row_off[:, None] + src[None, :] * stride_c).to(tl.float32)
    ok = order_key(x)
    t_max_ok = tl.max(ok, 1)
    row_max_ok = tl.maximum(row_max_ok, t_max_ok)

    if HAS_TARGET:
        # key(j) > key(t)  <=>  ok_j > ok_t, or ok_j == ok_t and j < t. ok_t >= order_key(-inf),
        # so ok_t - 1 cannot overflow. t_rel = t - start per row.
        t_thr = tl.where(lanes[None, :] < t_rel[:, None], t_ok[:, None] - 1, t_ok[:, None])
        cnt_lane += (ok > t_thr).to(tl.int32)

    if WITH_SOFTMAX:
        # online softmax; differences to the max are clamped at -200 (e^-200 is 0 in fp32),
        # which keeps e * d = 0 for -inf entries and for differences that overflow.
        mt = key_value(t_max_ok)
        m_new = tl.maximum(m_run, mt)
        ms = tl.where(m_new == float("-inf"), 0.0, m_new)
        dmx = tl.maximum(m_run - ms, -200.0)
        a = tl.exp2(dmx * LOG2E)
        d = tl.maximum(x - ms[:, None], -200.0)
        e = tl.exp2(d * LOG2E)
        u_run = a * (u_run + s_run * dmx) + tl.sum(e * d, 1)
        s_run = s_run * a + tl.sum(e, 1)
        q_run = q_run * a * a + tl.sum(e * e, 1)
        m_run = m_new

    # Can a key of the tile beat the row's current k-th best? (>=: ties on the value are
    # settled by the index in the exact 64-bit test below.) Usually not after the first tiles.
    need = t_max_ok >= (thr >> 32).to(tl.int32)
    if tl.max(need.to(tl.int32), 0) > 0:
        keys = rank_key(ok, cols[None, :])
        km = tl.max(keys, 1)
        go = km > thr
        n_go = tl.sum(go.to(tl.int32), 0)
        while n_go > 0:  # move the tile's best key into the slot of the buffer's minimum
            buf = tl.where((buf == thr[:, None]) & go[:, None], km[:, None], buf)
            keys = tl.where(keys == km[:, None], KEY_MIN, keys)  # (harmless where not go)
            thr = tl.min(buf, 1)
            km = tl.max(keys, 1)
            go = km > thr
            n_go = tl.sum(go.to(tl.int32), 0)
    return buf, thr, row_max_ok, m_run, s_run, u_run, q_run, cnt_lane


@triton.jit
def _store_topk(buf, slots, rows, rmask, row_off, stride_c, x_ptr, subset_ptr, ranges_ptr, labels_ptr, L,
                out_vals_ptr, out_idx_ptr, out_hits_ptr, sbase,
                K: tl.constexpr, KP: tl.constexpr, BLOCK_R: tl.constexpr, HAS_SUBSET: tl.constexpr,
                HAS_LABELS: tl.constexpr):
    """Write a row block's top-k from its buffer of rank keys [BLOCK_R, KP] (slots >= K unused):
    logits, indices, hits against the CSR label slice, and the MAX_LOGIT column."""
    KEY_MIN: tl.constexpr = -9223372036854775808
    # top-k in rank order (k rounds of max over the buffer), hits against the CSR slice
    buf = tl.where(slots[None, :] < K, buf, KEY_MIN)
    buf_idx = rank_key_index(buf)
    if HAS_LABELS:
        b = tl.load(ranges_ptr + rows * 2, mask=rmask, other=0)
        e_ = tl.load(ranges_ptr + rows * 2 + 1, mask=rmask, other=0)
        b = tl.minimum(tl.maximum(b, 0), L)
        e_ = tl.minimum(tl.maximum(e_, b), L)
        n_lab = e_ - b
        max_lab = tl.max(n_lab, 0)
        hit = tl.zeros([BLOCK_R, KP], dtype=tl.int32)
        for j in range(0, max_lab):
            lv = tl.load(labels_ptr + b + j, mask=rmask & (j < n_lab), other=-1).to(tl.int64)
            lv = tl.where(j < n_lab, lv, -1)
            hit = hit | (buf_idx == lv[:, None]).to(tl.int32)
    obase = rows * K
    for j in range(0, K):
        km = tl.max(buf, 1)
        sel = buf == km[:, None]
        buf = tl.where(sel, KEY_MIN, buf)
        idx = rank_key_index(km)
        if HAS_SUBSET:
            col = tl.load(subset_ptr + idx, mask=rmask, other=0)
        else:
            col = idx
        v = tl.load(x_ptr + row_off + col * stride_c, mask=rmask, other=0.0).to(tl.float32)
        tl.store(out_vals_ptr + obase + j, v, mask=rmask)
        tl.store(out_idx_ptr + obase + j, idx, mask=rmask)
        if HAS_LABELS:
            h = tl.max(tl.where(sel, hit, 0), 1)
            tl.store(out_hits_ptr + obase + j, h.to(tl.int8), mask=rmask)
        if j == 0:
            tl.store(sbase + S_MAX_LOGIT, v, mask=rmask)


@triton.jit
def _topk_stats_kernel(
    x_ptr, stride_r, stride_c, N, C,
    subset_ptr, target_ptr, ranges_ptr, labels_ptr, L,
    out_vals_ptr, out_idx_ptr, out_hits_ptr, out_stats_ptr, out_rank_ptr,
    K: tl.constexpr, KP: tl.constexpr, BLOCK_R: tl.constexpr, BLOCK_C: tl.constexpr,
    HAS_SUBSET: tl.constexpr, HAS_TARGET: tl.constexpr, HAS_LABELS: tl.constexpr,
    WITH_SOFTMAX: tl.constexpr,
):
    LN2: tl.constexpr = 0.6931471805599453
    pid = tl.program_id(0)
    rows = pid.to(tl.int64) * BLOCK_R + tl.arange(0, BLOCK_R)
    rmask = rows < N
    # rows past N re-read row N-1 (never stored): the streaming loads need no row mask
    row_off = tl.minimum(rows, N - 1) * stride_r  # int64 [R]
    slots = tl.arange(0, KP)
    lanes = tl.arange(0, BLOCK_C)

    # ---- target: load its logit first, then count keys above its key while streaming
    if HAS_TARGET:
        tvalid, t_safe, xt = target_logit(target_ptr, rows, rmask, x_ptr, row_off, stride_c, subset_ptr, C,
                                          HAS_SUBSET)
        t_ok = order_key(xt)
        t_idx = t_safe.to(tl.int32)
    else:
        t_ok = tl.zeros([BLOCK_R], dtype=tl.int32)
        t_idx = tl.zeros([BLOCK_R], dtype=tl.int32)
    cnt_lane = tl.zeros([BLOCK_R, BLOCK_C], dtype=tl.int32)

    buf, thr = topk_buffer(BLOCK_R, KP, K)  # running top-k buffer and its minimum
    row_max_ok = tl.full([BLOCK_R], _INT32_MIN, tl.int32)
    m_run = tl.full([BLOCK_R], float("-inf"), tl.float32)
    s_run = tl.zeros([BLOCK_R], dtype=tl.float32)
    u_run = tl.zeros([BLOCK_R], dtype=tl.float32)
    q_run = tl.zeros([BLOCK_R], dtype=tl.float32)

    c_full = (C // BLOCK_C) * BLOCK_C
    for start in range(0, c_full, BLOCK_C):
        buf, thr, row_max_ok, m_run, s_run, u_run, q_run, cnt_lane = _tile(
            x_ptr, row_off, stride_c, subset_ptr, start, C, lanes,
            buf, thr, row_max_ok, m_run, s_run, u_run, q_run, cnt_lane, t_ok, t_idx - start,
            BLOCK_C, False, HAS_SUBSET, HAS_TARGET, WITH_SOFTMAX)
    if c_full < C:
        buf, thr, row_max_ok, m_run, s_run, u_run, q_run, cnt_lane = _tile(
            x_ptr, row_off, stride_c, subset_ptr, c_full, C, lanes,
            buf, thr, row_max_ok, m_run, s_run, u_run, q_run, cnt_lane, t_ok, t_idx - c_full,
            BLOCK_C, True, HAS_SUBSET, HAS_TARGET, WITH_SOFTMAX)

    # ---- row statistics
    nonfinite = (row_max_ok >= _KEY_POSINF) | (row_max_ok == _KEY_NEGINF)
    sbase = out_stats_ptr + rows * S_NUM
    if WITH_SOFTMAX:
        log_s = tl.log2(s_run) * LN2
        lse = tl.where(nonfinite, float("nan"), m_run + log_s)
        lnorm = tl.where(nonfinite, float("nan"), log_s)
        ent = tl.where(nonfinite, float("nan"), log_s - u_run / s_run)
        sp2 = tl.where(nonfinite, float("nan"), q_run / (s_run * s_run))
    else:
        lse, ent, sp2, lnorm = no_softmax_stats(BLOCK_R)
    store_row_stats(sbase, rmask, lse, ent, sp2, lnorm, nonfinite)
    if HAS_TARGET:
        tl.store(sbase + S_TARGET_LOGIT, xt, mask=rmask)
        cnt = tl.sum(cnt_lane, 1)
        tl.store(out_rank_ptr + rows, tl.where(tvalid, cnt.to(tl.int64), -1), mask=rmask)
    else:
        tl.store(sbase + S_TARGET_LOGIT, tl.full([BLOCK_R], float("nan"), tl.float32), mask=rmask)

    _store_topk(buf, slots, rows, rmask, row_off, stride_c, x_ptr, subset_ptr, ranges_ptr, labels_ptr, L,
                out_vals_ptr, out_idx_ptr, out_hits_ptr, sbase, K, KP, BLOCK_R, HAS_SUBSET, HAS_LABELS)


@triton.jit
def _hits_kernel(idx_ptr, ranges_ptr, labels_ptr, L, out_ptr, K, BLOCK_K: tl.constexpr):
    row = tl.program_id(0).to(tl.int64)
    b = tl.load(ranges_ptr + row * 2)
    e = tl.load(ranges_ptr + row * 2 + 1)
    b = tl.minimum(tl.maximum(b, 0), L)
    e = tl.minimum(tl.maximum(e, b), L)
    for k0 in range(0, K, BLOCK_K):
        offs = k0 + tl.arange(0, BLOCK_K)
        km = offs < K
        idx = tl.load(idx_ptr + row * K + offs, mask=km, other=-1)
        hit = tl.zeros([BLOCK_K], dtype=tl.int32)
        for j in range(b, e):
            lv = tl.load(labels_ptr + j).to(tl.int64)
            hit = hit | (idx == lv).to(tl.int32)
        tl.store(out_ptr + row * K + offs, hit.to(tl.int8), mask=km)


def _torch_order_key(x32: torch.Tensor) -> torch.Tensor:
    """int32 order key in torch (the same map as the Triton ``order_key``)."""
    b = x32.view(torch.int32)
    mag = b & 0x7FFFFFFF
    k = torch.where(b < 0, -mag, mag)
    return torch.where(torch.isnan(x32), torch.full_like(k, _INT32_MAX), k)


def _config(n: int, c: int, k: int, elem_size: int):
    """(BLOCK_R, BLOCK_C, num_warps), from a sweep on an H100 (benchmarks/results/gpu_triton_notes.md).

    One warp per program (every reduction stays inside the warp: no shared memory, no
    barriers), column tiles of ~1 KiB per row (256 fp32 / 512 fp16-bf16 columns), and
    several rows per program for small C.
    """
    block_c = max(16, min(triton.next_power_of_2(c), 1024 // elem_size))
    if block_c >= 256:
        block_r = max(1, 512 // block_c)
    else:
        block_r = min(32, 1024 // block_c)
    block_r = max(1, min(block_r, triton.next_power_of_2(max(n, 1))))
    kp = triton.next_power_of_2(k)
    while block_r > 1 and block_r * kp > 512:  # register top-k buffer: <= 16 int64 per thread
        block_r //= 2
    return block_r, block_c, 1


def _device_guard(dev: torch.device):
    """Launch on the tensors' GPU (Triton launches on the current device)."""
    return torch.cuda.device(dev) if dev.type == "cuda" else contextlib.nullcontext()


class Prepared:
    """The host side shared by the Triton wrappers: checked inputs on the logits' device, the
    outputs, and the kernel's pointer arguments. For k > MAX_FUSED_K the kernel runs with k = 1
    (row statistics, ranks) and :meth:`finish` takes the top-k with the large-k path."""

    def __init__(self, logits, k, target, label_ranges, labels, class_subset):
        if logits.dim() != 2:
            raise ValueError("logits must be [N, C]")
        if logits.dtype not in (torch.float32, torch.float16, torch.bfloat16):
            raise TypeError(f"unsupported logits dtype {logits.dtype}")
        self.dev = dev = logits.device
        self.n = n = logits.shape[0]
        self.c = c = int(class_subset.numel()) if class_subset is not None else logits.shape[1]
        self.k = k = int(k)
        if not 1 <= k <= c:
            raise ValueError(f"k must be in [1, C={c}], got {k}")
        self.has_labels = label_ranges is not None
        self.vals = torch.empty((n, k), dtype=torch.float32, device=dev)
        self.idx = torch.empty((n, k), dtype=torch.int64, device=dev)
        self.hits = torch.empty((n, k if self.has_labels else 0), dtype=torch.bool, device=dev)
        self.stats = torch.empty((n, NUM_STATS), dtype=torch.float32, device=dev)
        self.rank = torch.empty((n if target is not None else 0,), dtype=torch.int64, device=dev)
        self.subset = self.tgt = self.rng = self.lab = None
        self.n_lab = 0
        self.fused = k <= MAX_FUSED_K
        self.kk = k if self.fused else 1
        self.fused_labels = self.fused and self.has_labels
        if n == 0:
            return
        if class_subset is not None:
            self.subset = class_subset.to(device=dev, dtype=torch.int64).contiguous()
        if target is not None:
            self.tgt = target.to(device=dev, dtype=torch.int64).contiguous()
        if self.has_labels:
            if labels is None:
                raise ValueError("label_ranges needs labels")
            self.rng = label_ranges.to(device=dev, dtype=torch.int64).contiguous()
            lab = labels.to(device=dev).contiguous()
            if lab.dtype not in (torch.int32, torch.int64):
                lab = lab.to(torch.int64)
            self.n_lab = lab.numel()
            self.lab = lab if self.n_lab else torch.zeros(1, dtype=torch.int64, device=dev)
        if self.fused:
            self.k_vals, self.k_idx = self.vals, self.idx
        else:
            self.k_vals = torch.empty((n, 1), dtype=torch.float32, device=dev)
            self.k_idx = torch.empty((n, 1), dtype=torch.int64, device=dev)

    def kernel_args(self):
        """subset, target, ranges, labels, L, out_vals, out_idx, out_hits, out_stats, out_rank
        (``stats`` stands in for an absent tensor: never dereferenced when its flag is off)."""
        d = self.stats
        return (self.subset if self.subset is not None else d, self.tgt if self.tgt is not None else d,
                self.rng if self.fused_labels else d, self.lab if self.fused_labels else d, self.n_lab,
                self.k_vals, self.k_idx, self.hits.view(torch.int8) if self.fused_labels else d, self.stats,
                self.rank if self.tgt is not None else d)

    def finish(self, logits):
        """(topk_logits, topk_indices, hits, row_stats, target_rank) after the kernel ran."""
        if not self.fused and self.n:
            self.vals, self.idx, self.hits = _large_k_topk(logits, self.subset, self.k, self.hits, self.rng,
                                                           self.lab, self.n_lab, self.dev)
        return self.vals, self.idx, self.hits, self.stats, self.rank


def topk_stats(logits, k, target=None, label_ranges=None, labels=None, class_subset=None,
               with_softmax=True, *, block_c=None, block_r=None, num_warps=None):
    """Triton ``topk_stats``; returns (topk_logits, topk_indices, hits, row_stats, target_rank).

    ``block_c``/``block_r``/``num_warps`` override the launch configuration (tests use a small
    ``block_c`` to get several column tiles at small C).
    """
    p = Prepared(logits, k, target, label_ranges, labels, class_subset)
    if p.n == 0:
        return p.finish(logits)
    n, c, kk = p.n, p.c, p.kk
    br, bc, nw = _config(n, c, kk, logits.element_size())
    if block_c is not None:
        bc = int(block_c)
    if block_r is not None:
        br = int(block_r)
    if num_warps is not None:
        nw = int(num_warps)
    with _device_guard(p.dev):
        launch(_topk_stats_kernel, (triton.cdiv(n, br),),
            logits, logits.stride(0), logits.stride(1), n, c,
            *p.kernel_args(),
            K=kk, KP=triton.next_power_of_2(kk), BLOCK_R=br, BLOCK_C=bc,
            HAS_SUBSET=p.subset is not None, HAS_TARGET=p.tgt is not None,
            HAS_LABELS=p.fused_labels, WITH_SOFTMAX=bool(with_softmax),
            num_warps=nw,
        )
    return p.finish(logits)


def _large_k_topk(logits, subset, k, hits, rng, lab, n_lab, dev):
    """Top-k for k > MAX_FUSED_K: torch.topk of the 64-bit rank keys (materialises N x C keys),
    hits by ``_hits_kernel``. Returns (topk_logits, topk_indices, hits); ``hits`` [N, k] or [N, 0]."""
    c = logits.shape[1] if subset is None else subset.numel()
    n = logits.shape[0]
    has_labels = hits.shape[1] > 0
    x32 = logits if subset is None else logits.index_select(1, subset)
    x32 = x32.to(torch.float32)
    ok = _torch_order_key(x32).to(torch.int64)
    low = 0xFFFFFFFF - torch.arange(c, device=dev, dtype=torch.int64)
    keys = (ok << 32) | low
    top = torch.topk(keys, k, dim=1, largest=True, sorted=True).values
    idx = 0xFFFFFFFF - (top & 0xFFFFFFFF)
    vals = torch.gather(x32, 1, idx)
    if has_labels:
        with _device_guard(dev):
            launch(_hits_kernel, (n,), idx, rng, lab, n_lab, hits.view(torch.int8), k, BLOCK_K=128)
    return vals, idx, hits
