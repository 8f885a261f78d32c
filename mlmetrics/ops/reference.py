"""Slow, obviously-correct oracle for every op (NumPy, float64).

The semantics defined here are the contract every backend (C++ CPU, CUDA, Triton)
must reproduce exactly for indices, hits and ranks, and within a tolerance for
floating-point statistics.

Ordering of classes within a row ("rank order"):
  * logits are first cast to float32 (fp16/bf16 are exactly representable);
  * NaN ranks above every number (as ``torch.sort``/``torch.topk`` do), +inf next;
  * -0.0 and +0.0 are equal;
  * equal values are ordered by class index, lower index first.

Per-row statistics (``row_stats`` columns, :class:`mlmetrics.ops.schema.Stat`):
  * ``max_logit``: the first class in rank order's logit (NaN when the row holds NaN);
  * ``logsumexp``, ``entropy`` (nats), ``sum_p2`` (sum of squared softmax probabilities)
    are NaN when ``with_softmax=False`` (not computed) or when the softmax of the row is
    undefined: the row holds NaN or +inf, or every entry is -inf. Such rows have
    ``nonfinite == 1``. -inf entries on their own are fine (probability 0);
  * ``target_logit``: logits[i, target[i]] as float32, NaN without a target;
  * ``log_normalizer``: log sum_j exp(x_j - max_logit) (NaN where logsumexp is), so that
    probabilities exp((x - max_logit) - log_normalizer) keep full fp32 precision at any magnitude.
"""
from __future__ import annotations

import numpy as np
import torch

from .schema import NUM_STATS, Stat


def rank_order(logits: np.ndarray) -> np.ndarray:
    """[N, C] float -> [N, C] int64: class indices of each row in rank order."""
    x = np.asarray(logits, dtype=np.float64)
    n, c = x.shape
    nan = np.isnan(x)
    filled = np.where(nan, 0.0, x)
    index = np.broadcast_to(np.arange(c), (n, c))
    # np.lexsort sorts by the last key first: NaN first, then larger value, then lower index.
    keys = np.stack([index, -filled + 0.0, (~nan).astype(np.int8)])
    return np.lexsort(keys, axis=-1).astype(np.int64)


def _as_float32_numpy(logits: torch.Tensor) -> np.ndarray:
    return logits.detach().to("cpu", torch.float32).numpy().astype(np.float64)


def topk_stats(
    logits: torch.Tensor,
    k: int,
    target: torch.Tensor | None = None,
    label_ranges: torch.Tensor | None = None,
    labels: torch.Tensor | None = None,
    class_subset: torch.Tensor | None = None,
    with_softmax: bool = True,
):
    """Reference for ``mlmetrics::topk_stats``.

    logits [N, C] float; target [N] int64 or None; label_ranges [N, 2] int64 (begin, end)
    into labels [L] int32/int64, or None. class_subset [C'] int64 or None: the op then sees
    logits[:, class_subset] and every class index (top-k, target, labels) is in [0, C').
    Returns (topk_logits f32 [N, k], topk_indices i64 [N, k], hits bool [N, k] ([N, 0]
    without label sets), row_stats f32 [N, NUM_STATS], target_rank i64 [N] ([0] without
    target; -1 where target is outside [0, C)).
    """
    x = _as_float32_numpy(logits)
    if class_subset is not None:
        x = x[:, class_subset.detach().cpu().numpy()]
    n, c = x.shape
    order = rank_order(x) if n else np.zeros((0, c), dtype=np.int64)
    top = order[:, :k]
    topk_logits = np.take_along_axis(x, top, axis=1)

    stats = np.full((n, NUM_STATS), np.nan)
    for i in range(n):
        row = x[i]
        stats[i, Stat.MAX_LOGIT] = row[order[i, 0]]
        undefined = bool(np.isnan(row).any() or np.isposinf(row).any() or np.isneginf(row).all())
        stats[i, Stat.NONFINITE] = float(undefined)
        if with_softmax and not undefined:
            m = row.max()
            e = np.exp(row - m)
            s = e.sum()
            p = e / s
            stats[i, Stat.LOGSUMEXP] = m + np.log(s)
            stats[i, Stat.LOG_NORMALIZER] = np.log(s)
            nz = p > 0
            stats[i, Stat.ENTROPY] = -(p[nz] * np.log(p[nz])).sum()
            stats[i, Stat.SUM_P2] = (p * p).sum()

    target_rank = np.zeros((0,), dtype=np.int64)
    if target is not None:
        t = target.detach().to("cpu", torch.int64).numpy()
        target_rank = np.full((n,), -1, dtype=np.int64)
        for i in range(n):
            if 0 <= t[i] < c:
                stats[i, Stat.TARGET_LOGIT] = x[i, t[i]]
                target_rank[i] = int(np.nonzero(order[i] == t[i])[0][0])

    hits = np.zeros((n, 0), dtype=bool)
    if label_ranges is not None:
        r = label_ranges.detach().to("cpu", torch.int64).numpy()
        lab = labels.detach().to("cpu", torch.int64).numpy()
        hits = np.zeros((n, k), dtype=bool)
        for i in range(n):
            row_set = set(lab[r[i, 0]:r[i, 1]].tolist())
            hits[i] = [int(j) in row_set for j in top[i]]

    dev = logits.device
    return (
        torch.from_numpy(topk_logits.astype(np.float32)).to(dev),
        torch.from_numpy(top.copy()).to(dev),
        torch.from_numpy(hits).to(dev),
        torch.from_numpy(stats.astype(np.float32)).to(dev),
        torch.from_numpy(target_rank).to(dev),
    )


def softmax_topk(logits: torch.Tensor, k: int):
    """Reference for ``mlmetrics::softmax_topk``: (probs f32 [N, k], indices i64 [N, k]).

    probs are NaN on rows whose softmax is undefined (see module docstring).
    """
    topk_logits, idx, _, stats, _ = topk_stats(logits, k)
    x = topk_logits.double() - stats[:, Stat.MAX_LOGIT, None].double()
    return torch.exp(x - stats[:, Stat.LOG_NORMALIZER, None].double()).float(), idx


def topk_label_hits(logits: torch.Tensor, label_ranges: torch.Tensor, labels: torch.Tensor, k: int):
    """Reference for ``mlmetrics::topk_label_hits``: bool [N, k]."""
    return topk_stats(logits, k, None, label_ranges, labels, with_softmax=False)[2]
