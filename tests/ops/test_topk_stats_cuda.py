"""Parity of the CUDA kernels (csrc/cuda/: v1 as mlmetrics::topk_stats, v2 as
mlmetrics::topk_stats_v2) with mlmetrics.reference, on a CUDA device.

Indices, hits, target ranks and the nonfinite flag must be bit-identical to the reference; the
softmax statistics agree within float32 tolerance. Skipped without a CUDA device or without the
extension's CUDA kernels. The benchmark is benchmarks/gpu/bench_cuda.py; the same device code on
the CPU: tests/ops/test_topk_stats_cuda_emu.py.
"""
from __future__ import annotations

import pytest
import torch

from mlmetrics.ops import reference
from mlmetrics.ops.schema import NUM_STATS, Stat
from mlmetrics.ops import has_cuda_kernels

_HAS_CUDA = torch.cuda.is_available()
pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not _HAS_CUDA, reason="needs a CUDA device"),
    pytest.mark.skipif(_HAS_CUDA and not has_cuda_kernels(),
                       reason="mlmetrics._C was built without its CUDA kernels"),
]

DTYPES = [torch.float32, torch.float16, torch.bfloat16]
SOFT_COLS = [Stat.LOGSUMEXP, Stat.ENTROPY, Stat.SUM_P2, Stat.LOG_NORMALIZER]
EXACT_COLS = [Stat.MAX_LOGIT, Stat.TARGET_LOGIT, Stat.NONFINITE]


KERNEL = {"op": "topk_stats"}  # the kernel under test (set per test by the `kernel` fixture)


@pytest.fixture(autouse=True, params=["topk_stats", "topk_stats_v2"], ids=["v1", "v2"])
def kernel(request):
    KERNEL["op"] = request.param
    yield request.param
    KERNEL["op"] = "topk_stats"


def _op(logits, k, target=None, ranges=None, labels=None, subset=None, with_softmax=True):
    return getattr(torch.ops.mlmetrics, KERNEL["op"])(logits, k, target, ranges, labels, subset, with_softmax)


def _check(out, ref, *, rtol=5e-5, atol=5e-5):
    names = ["topk_logits", "topk_indices", "hits", "row_stats", "target_rank"]
    for name, a, b in zip(names, out, ref):
        assert a.shape == b.shape, (name, a.shape, b.shape)
        assert a.dtype == b.dtype, (name, a.dtype, b.dtype)
        assert a.device.type == "cuda", name
    o_val, o_idx, o_hits, o_st, o_rank = (t.cpu() for t in out)
    r_val, r_idx, r_hits, r_st, r_rank = (t.cpu() for t in ref)
    bad = (o_idx != r_idx).any(1).nonzero().flatten()
    assert bad.numel() == 0, f"indices differ in rows {bad[:5].tolist()}: {o_idx[bad[:2]]} vs {r_idx[bad[:2]]}"
    assert torch.equal(o_hits, r_hits), "hits differ"
    assert torch.equal(o_rank, r_rank), f"target_rank differs: {(o_rank != r_rank).nonzero().flatten()[:5]}"
    torch.testing.assert_close(o_val, r_val, rtol=0, atol=0, equal_nan=True)
    torch.testing.assert_close(o_st[:, EXACT_COLS], r_st[:, EXACT_COLS], rtol=0, atol=0, equal_nan=True)
    torch.testing.assert_close(o_st[:, SOFT_COLS], r_st[:, SOFT_COLS], rtol=rtol, atol=atol, equal_nan=True)


def _random_sets(n, c, gen, top_idx=None, dtype=torch.int32):
    """CSR label sets of 0..5 classes each, half of them drawn from the row's top classes."""
    lists = []
    for i in range(n):
        m = int(torch.randint(0, 6, (1,), generator=gen))
        s = set(torch.randint(0, c, (m,), generator=gen).tolist())
        if top_idx is not None and m:
            s |= set(top_idx[i, : int(torch.randint(0, 4, (1,), generator=gen))].tolist())
        lists.append(sorted(s))
    sizes = torch.tensor([len(s) for s in lists], dtype=torch.int64)
    offsets = torch.zeros(n + 1, dtype=torch.int64)
    torch.cumsum(sizes, 0, out=offsets[1:])
    flat = torch.tensor([v for s in lists for v in s], dtype=dtype)
    ranges = torch.stack([offsets[:-1], offsets[1:]], 1)
    return ranges, flat


def _logits(n, c, dtype, gen, kind="normal"):
    if kind == "normal":
        x = torch.randn(n, c, generator=gen) * 4
    elif kind == "ties":  # few distinct values: ties everywhere
        x = torch.randint(-3, 4, (n, c), generator=gen).float()
    elif kind == "special":  # NaN, +-inf, -0, subnormals, all -inf rows
        x = torch.randn(n, c, generator=gen) * 4
        vals = torch.tensor([float("nan"), float("inf"), float("-inf"), -0.0, 0.0, 1e-40, -1e-40, 3e-39])
        mask = torch.rand(n, c, generator=gen) < 0.15
        x[mask] = vals[torch.randint(0, len(vals), (int(mask.sum()),), generator=gen)]
        x[0] = float("-inf")
        if n > 1:
            x[1] = float("-inf")
            x[1, c // 2] = 2.0
        if n > 2:
            x[2] = 0.0
            x[2, ::3] = -0.0
        if n > 3:
            x[3] = torch.where(torch.rand(c, generator=gen) < 0.5, float("-inf"), -1e-40)
    else:
        raise ValueError(kind)
    return x.to(dtype)


def _case(n, c, k, dtype, kind="normal", *, seed=0, target=True, labels=True, with_softmax=True,
          layout="contig", subset=None, label_dtype=torch.int32):
    gen = torch.Generator().manual_seed(seed)
    x = _logits(n, c, dtype, gen, kind)
    if layout == "contig":
        xd = x.cuda()
    elif layout == "transposed":  # column stride n
        xd = x.t().contiguous().cuda().t()
    elif layout == "offset":  # rows start 1 element past 16-byte alignment, padded row stride
        big = torch.zeros(n, c + 5, dtype=dtype, device="cuda")
        big[:, 1 : c + 1] = x.cuda()
        xd = big[:, 1 : c + 1]
    elif layout == "colstride2":
        big = torch.zeros(n, 2 * c, dtype=dtype, device="cuda")
        big[:, ::2] = x.cuda()
        xd = big[:, ::2]
    else:
        raise ValueError(layout)
    sub = None
    cs = c
    if subset is not None:
        sub = subset(c, gen)
        cs = sub.numel()
    tgt = torch.randint(-2, cs + 2, (n,), generator=gen) if target else None
    ranges = labs = None
    if labels:
        order = reference.rank_order(x.float()[:, sub].numpy() if sub is not None else x.float().numpy())
        ranges, labs = _random_sets(n, cs, gen, torch.from_numpy(order[:, :4]), label_dtype)
    cuda = lambda t: None if t is None else t.cuda()  # noqa: E731
    kk = min(k, cs)
    out = _op(xd, kk, cuda(tgt), cuda(ranges), cuda(labs), cuda(sub), with_softmax)
    ref = reference.topk_stats(xd, kk, cuda(tgt), cuda(ranges), cuda(labs), cuda(sub), with_softmax)
    _check(out, ref)
    return out


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("c,n", [(1, 5), (2, 37), (10, 67), (100, 67), (257, 40), (1000, 67), (1001, 67),
                                 (4096, 9), (4097, 9), (21841, 9), (131072, 3), (262144, 2)])
@pytest.mark.parametrize("k", [1, 5, 100])
def test_shapes(c, n, k, dtype):
    _case(n, c, k, dtype, seed=c + k)


@pytest.mark.parametrize("c", [2, 10, 100, 300, 1001])
def test_k_equals_c(c):
    _case(13, c, c, torch.float32, seed=c)


@pytest.mark.parametrize("k", [7, 8, 9, 31, 32, 33, 64, 129])
@pytest.mark.parametrize("c", [100, 1000, 5000])
def test_k_buckets(k, c):
    _case(21, c, k, torch.float32, kind="ties", seed=k * c)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("kind", ["ties", "special"])
@pytest.mark.parametrize("c", [7, 100, 1000, 20000])
@pytest.mark.parametrize("k", [1, 5, 40])
def test_ties_and_nonfinite(kind, c, k, dtype):
    for with_softmax in (True, False):
        _case(16, c, k, dtype, kind, seed=c + k, with_softmax=with_softmax)


@pytest.mark.parametrize("layout", ["transposed", "offset", "colstride2"])
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("c", [10, 1001, 9000])
def test_strides(layout, dtype, c):
    _case(19, c, 5, dtype, "special", layout=layout, seed=c)


def _perm_subset(c, gen):
    return torch.randperm(c, generator=gen)[: max(1, c // 3)]


@pytest.mark.parametrize("subset", [_perm_subset], ids=["perm"])
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("c,k", [(10, 2), (1000, 5), (1000, 100), (30000, 5)])
def test_class_subset(subset, dtype, c, k):
    _case(11, c, k, dtype, "ties" if c == 10 else "normal", subset=subset, seed=c + k)
    _case(11, c, k, dtype, "special", subset=subset, layout="transposed", seed=c + k + 1)


def test_class_subset_checked_never_clamped():
    x = torch.randn(3, 10, device="cuda")
    for bad, what in [([0, 10], "must be in \\[0, C=10\\), got 10"), ([-1, 2], "got -1"),
                      ([4, 2, 4], "distinct, got 4 more than once")]:
        with pytest.raises(RuntimeError, match=what):
            _op(x, 1, subset=torch.tensor(bad, device="cuda"))


def test_class_subset_checked_once_per_tensor_version():
    """The second call with the same subset tensor needs no host sync (its check is cached)."""
    x = torch.randn(300, 3000, device="cuda")
    subset = torch.randperm(3000, device="cuda")[:1000]
    ref = _op(x, 5, subset=subset)
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        out = _op(x, 5, subset=subset)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert torch.equal(out[1].cpu(), ref[1].cpu())
    subset[0] = 3000  # an in-place change: checked again
    with pytest.raises(RuntimeError, match="got 3000"):
        _op(x, 5, subset=subset)


@pytest.mark.parametrize("label_dtype", [torch.int32, torch.int64], ids=str)
def test_label_dtypes_and_no_extras(label_dtype):
    _case(33, 500, 5, torch.float32, label_dtype=label_dtype)
    _case(33, 500, 5, torch.float32, target=False, labels=False)
    _case(33, 500, 50, torch.bfloat16, target=False, labels=True, label_dtype=label_dtype)


def test_label_ranges_clamped():
    x = torch.randn(4, 50, device="cuda")
    labels = torch.arange(50, dtype=torch.int64, device="cuda")
    # end past L, end < begin, begin past L, a normal one
    ranges = torch.tensor([[0, 500], [30, 10], [70, 90], [0, 50]], device="cuda")
    hits = _op(x, 3, None, ranges, labels)[2]
    assert hits[0].all() and not hits[1].any() and not hits[2].any() and hits[3].all()


def test_empty_and_single_class():
    for dtype in DTYPES:
        x = torch.empty(0, 10, device="cuda", dtype=dtype)
        out = _op(x, 3, torch.empty(0, dtype=torch.int64, device="cuda"))
        assert [tuple(t.shape) for t in out] == [(0, 3), (0, 3), (0, 0), (0, NUM_STATS), (0,)]
    _case(5, 1, 1, torch.float32, "special", seed=3)


def test_softmax_topk_and_label_hits_ops():
    import mlmetrics

    backend = "cuda" if KERNEL["op"] == "topk_stats" else "cuda_v2"  # "cuda": the registered ops
    gen = torch.Generator().manual_seed(1)
    x = _logits(40, 777, torch.float32, gen, "special").cuda()
    probs, idx = mlmetrics.softmax_topk(x, 7, backend=backend)
    rp, ri = reference.softmax_topk(x, 7)
    assert torch.equal(idx.cpu(), ri.cpu())
    torch.testing.assert_close(probs.cpu(), rp.cpu(), rtol=1e-4, atol=1e-6, equal_nan=True)
    ranges, labs = _random_sets(40, 777, gen)
    hits = (torch.ops.mlmetrics.topk_label_hits(x, ranges.cuda(), labs.cuda(), 7) if backend == "cuda"
            else _op(x, 7, None, ranges.cuda(), labs.cuda(), None, False)[2])
    assert torch.equal(hits.cpu(), reference.topk_label_hits(x, ranges, labs, 7).cpu())


def test_public_api_backend_cuda():
    import mlmetrics

    gen = torch.Generator().manual_seed(2)
    x = _logits(64, 1000, torch.bfloat16, gen).cuda()
    sets = mlmetrics.LabelSets.from_lists([[i % 1000, (7 * i) % 1000] for i in range(64)], 1000)
    tgt = torch.randint(0, 1000, (64,), generator=gen).cuda()
    backend = "cuda" if KERNEL["op"] == "topk_stats" else "cuda_v2"
    got = mlmetrics.topk_stats(x, 5, target=tgt, label_sets=sets, backend=backend)
    ref = mlmetrics.topk_stats(x, 5, target=tgt, label_sets=sets, backend="reference")
    _check(tuple(got), tuple(ref))


def test_current_stream_and_no_host_sync():
    x = torch.randn(300, 3000, device="cuda")
    tgt = torch.randint(0, 3000, (300,), device="cuda")
    ref = _op(x, 5, tgt)
    torch.cuda.synchronize()
    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    torch.cuda.set_sync_debug_mode("error")
    try:
        with torch.cuda.stream(s):
            out = _op(x, 5, tgt)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    s.synchronize()
    assert torch.equal(out[1].cpu(), ref[1].cpu()) and torch.equal(out[4].cpu(), ref[4].cpu())
    torch.testing.assert_close(out[3].cpu(), ref[3].cpu(), equal_nan=True)


from hypothesis import given, settings, strategies as st  # noqa: E402


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 40), c=st.sampled_from([1, 3, 8, 33, 255, 256, 257, 999, 4096, 4097, 6000]),
       kfrac=st.floats(0.0, 1.0), small_k=st.booleans(), dtype=st.sampled_from(DTYPES),
       kind=st.sampled_from(["normal", "ties", "special"]),
       layout=st.sampled_from(["contig", "transposed", "offset", "colstride2"]),
       subset=st.sampled_from([None, _perm_subset]), target=st.booleans(), labels=st.booleans(),
       with_softmax=st.booleans(), seed=st.integers(0, 2**16))
def test_random_cases(n, c, kfrac, small_k, dtype, kind, layout, subset, target, labels, with_softmax, seed):
    cs = c if subset is None else max(1, c // 3)
    k = 1 + int(kfrac * (min(cs, 32) - 1 if small_k else cs - 1))
    _case(n, c, k, dtype, kind, seed=seed, target=target, labels=labels, with_softmax=with_softmax,
          layout=layout, subset=subset)


def test_large_values_accuracy():
    # large logits (|x| ~ 1e4) and a peaked row: logsumexp / entropy stay accurate
    x = torch.randn(8, 5000, dtype=torch.float64) * 50 + 1e4
    x[0, 17] += 100.0
    xd = x.float().cuda()
    out = _op(xd, 5)
    ref = reference.topk_stats(xd, 5)
    _check(out, ref, rtol=2e-5, atol=1e-4)
