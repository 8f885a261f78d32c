"""Shared helpers for backend-vs-reference parity tests: input generators and the comparison."""
from __future__ import annotations

import numpy as np
import torch
from hypothesis import strategies as st

import mlmetrics
from mlmetrics import LabelSets

# Tolerance on floating-point statistics (indices, hits, ranks and flags must match exactly).
STATS_RTOL = 3e-5
STATS_ATOL = 3e-5

SPECIALS = [float("nan"), float("inf"), float("-inf"), -0.0, 0.0]

# Row offsets far from 0: |max| > 1e7 puts fl(max log2e) more than a unit off (kernels that form
# exp arguments as x log2e - fl(r log2e) must sum such rows again relative to the exact max).
HUGE_OFFSETS = [0.0, 1e6, 1e8, 1e9, 3e10, -1e9, -3e10]


def huge_rows(n, c, dtype, g):
    """n rows of randn * 3 around the offsets HUGE_OFFSETS (row i: offset i % 7), spread by a few
    units of the dtype's spacing at the offset (so the softmax is not one-hot at 1e9 and beyond)."""
    eps = torch.finfo(dtype).eps
    rows = []
    for i in range(n):
        o = HUGE_OFFSETS[i % len(HUGE_OFFSETS)]
        ulp = eps * 2.0 ** np.floor(np.log2(abs(o))) if o else 0.0
        x = torch.randn(c, generator=g, dtype=torch.float64) * 3 + o
        x += torch.randint(-5, 6, (c,), generator=g, dtype=torch.float64) * ulp
        rows.append(x)
    return torch.stack(rows).to(dtype)


def assert_same_topk_stats(actual: mlmetrics.TopKStats, expected: mlmetrics.TopKStats, *, rtol=STATS_RTOL,
                           atol=STATS_ATOL) -> None:
    a, e = mlmetrics.TopKStats(*actual), mlmetrics.TopKStats(*expected)
    for name in ("topk_indices", "hits", "target_rank"):
        u, v = getattr(a, name).cpu(), getattr(e, name).cpu()
        assert u.dtype == v.dtype and u.shape == v.shape, (name, u.dtype, v.dtype, u.shape, v.shape)
        assert torch.equal(u, v), f"{name} differs:\n{u}\nvs reference\n{v}"
    assert a.topk_logits.dtype == torch.float32 and a.row_stats.dtype == torch.float32
    torch.testing.assert_close(a.topk_logits.cpu(), e.topk_logits.cpu(), rtol=0, atol=0, equal_nan=True)
    assert torch.equal(a.nonfinite.cpu(), e.nonfinite.cpu()), "nonfinite flags differ"
    torch.testing.assert_close(a.row_stats.cpu(), e.row_stats.cpu(), rtol=rtol, atol=atol, equal_nan=True)


@st.composite
def topk_cases(draw, max_n=12, max_c=300, max_k=40, dtypes=(torch.float32, torch.float16, torch.bfloat16)):
    """(logits, k, target, label_sets, class_subset) with ties, specials, odd layouts."""
    n = draw(st.integers(0, max_n))
    c = draw(st.integers(1, max_c))
    dtype = draw(st.sampled_from(dtypes))
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    style = draw(st.sampled_from(["normal", "ties", "specials"]))
    if style == "normal":
        x = rng.standard_normal((n, c)) * draw(st.sampled_from([1.0, 10.0, 100.0]))
    elif style == "ties":
        x = rng.integers(-3, 4, (n, c)).astype(np.float64)
    else:
        x = rng.integers(-3, 4, (n, c)).astype(np.float64)
        mask = rng.random((n, c)) < 0.1
        x[mask] = rng.choice(SPECIALS, size=int(mask.sum()))
        if n and draw(st.booleans()):
            x[rng.integers(n)] = float("-inf")  # an all -inf row
    layout = draw(st.sampled_from(["contiguous", "transposed", "strided"]))
    t = torch.tensor(x, dtype=torch.float32).to(dtype)
    if layout == "transposed":
        t = t.t().contiguous().t()
    elif layout == "strided":
        t = torch.repeat_interleave(t, 2, dim=1)[:, ::2]
    subset = None
    if c >= 2 and draw(st.booleans()) and draw(st.booleans()):
        m = draw(st.integers(1, c))
        subset = torch.from_numpy(rng.permutation(c)[:m].astype(np.int64))
    c_eff = c if subset is None else subset.numel()
    k = draw(st.integers(1, min(c_eff, max_k)))
    target = None
    if draw(st.booleans()):
        target = torch.from_numpy(rng.integers(-1, c_eff + 1, n).astype(np.int64))
    label_sets = None
    if draw(st.booleans()):
        lists = [rng.choice(c_eff, size=int(rng.integers(0, min(c_eff, 6) + 1)), replace=False).tolist()
                 for _ in range(n)]
        label_sets = LabelSets.from_lists(lists, c_eff)
    return t, k, target, label_sets, subset
