"""Parity of the Triton topk_stats (run by the interpreter on CPU, see triton_interp.py) with the
float64 NumPy oracle mlmetrics.reference.topk_stats.

Exact: topk indices, topk logits (bit-for-bit up to NaN payloads), hits, target ranks,
max_logit, target_logit and the non-finite flag. logsumexp / entropy / sum_p2 (fp32
accumulation, base-2 exp) within STAT_RTOL / STAT_ATOL, with the same NaN pattern.
"""
import warnings

import numpy as np
import pytest
import torch

pytest.importorskip("triton")
warnings.filterwarnings("ignore", message=".*compiled extension.*")

from tests.ops.triton_interp import _triton_interpret  # noqa: E402,F401  (autouse: TRITON_INTERPRET=1)
import mlmetrics  # noqa: E402
from mlmetrics import LabelSets
from mlmetrics.ops import reference  # noqa: E402
from mlmetrics.ops.schema import NUM_STATS, Stat  # noqa: E402
import mlmetrics.ops.triton  # noqa: E402,F401

from hypothesis import given, settings, strategies as st  # noqa: E402

STAT_RTOL = 2e-5
STAT_ATOL = 2e-5


def triton_topk_stats(*args, **kw):
    import sys

    m = sys.modules["mlmetrics.ops.triton.topk_stats"]  # the (possibly re-imported) interpreted module
    return m.topk_stats(*args, **kw)


def assert_matches(out, ref, k, n):
    vals, idx, hits, stats, rank = out
    rv, ri, rh, rs, rr = ref
    assert vals.shape == rv.shape == (n, k) and vals.dtype == torch.float32
    assert idx.dtype == torch.int64 and hits.dtype == torch.bool and stats.shape == (n, NUM_STATS)
    assert rank.dtype == torch.int64
    assert torch.equal(idx, ri), f"indices differ\n{idx}\n{ri}"
    assert torch.equal(hits, rh)
    assert torch.equal(rank, rr), f"ranks differ\n{rank}\n{rr}"
    torch.testing.assert_close(vals, rv, rtol=0, atol=0, equal_nan=True)
    for col in (0, 4, 5):  # max_logit, target_logit, nonfinite: exact
        torch.testing.assert_close(stats[:, col], rs[:, col], rtol=0, atol=0, equal_nan=True)
    soft = [Stat.LOGSUMEXP, Stat.ENTROPY, Stat.SUM_P2, Stat.LOG_NORMALIZER]
    torch.testing.assert_close(stats[:, soft], rs[:, soft], rtol=STAT_RTOL, atol=STAT_ATOL, equal_nan=True)


def special_logits(n, c, dtype, seed=0):
    """Random logits with NaN, +-inf, all -inf rows, -0/+0 ties and repeated values."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, c, generator=g) * 3
    if n > 0:
        x[0, c // 3] = float("nan")
        x[0, c // 2] = float("nan")
    if n > 1:
        x[1] = float("-inf")
    if n > 2:
        x[2, c - 1] = float("inf")
    if n > 3:
        x[3, : max(1, c - 2)] = float("-inf")  # -inf entries alone: softmax defined
    if n > 4:
        x[4] = 0.0
        x[4, ::3] = -0.0  # -0 == +0: ties by index
    if n > 5:
        x[5] = x[5].round()  # many ties
    if n > 6:
        x[6] = 7.0  # constant row
    if n > 7:
        x[7, 1::2] = float("-inf")
        x[7, 0] = float("inf")
        x[7, 2] = float("nan")
    return x.to(dtype)


def random_label_sets(n, c, seed=0, max_size=4):
    g = torch.Generator().manual_seed(seed)
    sizes = torch.randint(0, max_size + 1, (n,), generator=g)
    off = torch.zeros(n + 1, dtype=torch.int64)
    off[1:] = sizes.cumsum(0)
    lab = torch.randint(0, c, (int(off[-1]),), generator=g).to(torch.int32)
    return torch.stack([off[:-1], off[1:]], 1), lab


def random_target(n, c, seed=0):
    g = torch.Generator().manual_seed(seed + 1)
    t = torch.randint(0, c, (n,), generator=g)
    if n > 3:
        t[1] = -1
        t[2] = c  # out of range -> rank -1, target logit NaN
    return t


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("block_c", [None, 16])
@pytest.mark.parametrize("with_softmax", [True, False])
def test_parity_specials(dtype, block_c, with_softmax):
    n, c, k = 11, 37, 5
    x = special_logits(n, c, dtype)
    t = random_target(n, c)
    rng, lab = random_label_sets(n, c)
    out = triton_topk_stats(x, k, t, rng, lab, None, with_softmax, block_c=block_c)
    ref = reference.topk_stats(x, k, t, rng, lab, None, with_softmax)
    assert_matches(out, ref, k, n)


@pytest.mark.parametrize("block_r", [1, 2, 8])
def test_multi_tile_rows_per_program(block_r):
    n, c, k = 13, 70, 7
    x = special_logits(n, c, torch.float32, seed=3)
    t = random_target(n, c, seed=3)
    rng, lab = random_label_sets(n, c, seed=3)
    out = triton_topk_stats(x, k, t, rng, lab, None, True, block_c=16, block_r=block_r)
    assert_matches(out, reference.topk_stats(x, k, t, rng, lab), k, n)


def test_ascending_rows_many_insertions():
    # every tile replaces the whole running top-k (worst case of the admission test)
    n, c, k = 4, 64, 6
    x = torch.arange(n * c, dtype=torch.float32).reshape(n, c)
    x[1] = x[1].flip(0)
    x[2] = torch.arange(c).float().remainder(5)  # ties spread over tiles
    t = torch.tensor([0, 63, 7, 30])
    out = triton_topk_stats(x, k, t, None, None, None, True, block_c=16)
    assert_matches(out, reference.topk_stats(x, k, t), k, n)


@pytest.mark.parametrize("layout", ["transposed", "col_slice", "row_col_slice"])
def test_non_contiguous(layout):
    base = special_logits(24, 50, torch.float32, seed=5)
    if layout == "transposed":
        x = base.t().contiguous().t()  # strides (1, N)
    elif layout == "col_slice":
        x = base[:, ::2]  # column stride 2
    else:
        x = base[1::2, 3:45]
    assert not x.is_contiguous()
    n, c = x.shape
    t = random_target(n, c, seed=5)
    rng, lab = random_label_sets(n, c, seed=5)
    for bc in (None, 16):
        out = triton_topk_stats(x, 4, t, rng, lab, None, True, block_c=bc)
        assert_matches(out, reference.topk_stats(x, 4, t, rng, lab), 4, n)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_class_subset(dtype):
    n, c = 9, 60
    x = special_logits(n, c, dtype, seed=7)
    g = torch.Generator().manual_seed(7)
    sub = torch.randperm(c, generator=g)[:23]
    sub[5] = sub[0]  # a repeated class: allowed, two positions with equal logits
    cs = sub.numel()
    t = random_target(n, cs, seed=7)
    rng, lab = random_label_sets(n, cs, seed=7)
    for bc in (None, 8):
        out = triton_topk_stats(x, 6, t, rng, lab, sub, True, block_c=bc)
        assert_matches(out, reference.topk_stats(x, 6, t, rng, lab, sub), 6, n)


@pytest.mark.parametrize("c,k", [(1, 1), (9, 1), (9, 9), (40, 40), (130, 130), (150, 129)])
def test_k_extremes(c, k):
    # k <= 128 runs fully fused; larger k takes the torch.topk-on-rank-keys path
    n = 6
    x = special_logits(n, c, torch.float16, seed=c) if c >= 2 else torch.randn(n, c)
    t = random_target(n, c, seed=c)
    rng, lab = random_label_sets(n, c, seed=c)
    out = triton_topk_stats(x, k, t, rng, lab, None, True)
    assert_matches(out, reference.topk_stats(x, k, t, rng, lab), k, n)


def test_large_k_path_with_class_subset():
    n, c = 5, 300
    x = special_logits(n, c, torch.bfloat16, seed=17)
    sub = torch.randperm(c, generator=torch.Generator().manual_seed(17))[:140]
    t = random_target(n, 140, seed=17)
    rng, lab = random_label_sets(n, 140, seed=17, max_size=30)
    out = triton_topk_stats(x, 135, t, rng, lab, sub, False)
    assert_matches(out, reference.topk_stats(x, 135, t, rng, lab, sub, False), 135, n)


def test_empty_batch_and_no_optionals():
    x = torch.randn(0, 10)
    vals, idx, hits, stats, rank = triton_topk_stats(x, 3, torch.zeros(0, dtype=torch.int64), None, None, None, True)
    assert vals.shape == (0, 3) and idx.shape == (0, 3) and hits.shape == (0, 0)
    assert stats.shape == (0, NUM_STATS) and rank.shape == (0,)
    x = torch.randn(5, 10)
    vals, idx, hits, stats, rank = triton_topk_stats(x, 3, None, None, None, None, True)
    assert hits.shape == (5, 0) and rank.shape == (0,)
    assert torch.isnan(stats[:, 4]).all()
    assert_matches((vals, idx, hits, stats, rank), reference.topk_stats(x, 3), 3, 5)


def test_labels_int64_empty_and_garbage_ranges():
    n, c, k = 6, 20, 4
    x = torch.randn(n, c, generator=torch.Generator().manual_seed(11))
    top = reference.topk_stats(x, k)[1]
    lab = torch.tensor([int(top[0, 0]), int(top[0, 2]), 3, int(top[3, 1])], dtype=torch.int64)
    # rows: normal, empty, reversed (end < begin), begin < 0, end > L, both way out of range
    rng = torch.tensor([[0, 2], [2, 2], [3, 1], [-5, 1], [3, 99], [50, 60]])
    clamped = torch.tensor([[0, 2], [2, 2], [3, 3], [0, 1], [3, 4], [4, 4]])
    out = triton_topk_stats(x, k, None, rng, lab, None, False)
    assert_matches(out, reference.topk_stats(x, k, None, clamped, lab, with_softmax=False), k, n)
    assert out[2][0, 0] and out[2][0, 2] and not out[2][1].any()
    # no labels at all (L = 0)
    empty = torch.zeros(0, dtype=torch.int32)
    rng0 = torch.zeros(n, 2, dtype=torch.int64)
    out = triton_topk_stats(x, k, None, rng0, empty, None, True)
    assert out[2].shape == (n, k) and not out[2].any()


def test_softmax_stats_against_torch():
    # an independent oracle for the statistics: torch float64
    x = torch.randn(7, 300, generator=torch.Generator().manual_seed(2)) * 4
    x[3, 10:] = float("-inf")
    out = triton_topk_stats(x, 3, None, None, None, None, True, block_c=64)
    x64 = x.double()
    lse = torch.logsumexp(x64, 1)
    p = torch.softmax(x64, 1)
    ent = -(p * torch.log(p)).nan_to_num(0.0).sum(1)
    torch.testing.assert_close(out[3][:, 1].double(), lse, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(out[3][:, 2].double(), ent, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(out[3][:, 3].double(), (p * p).sum(1), rtol=1e-4, atol=1e-6)
    assert not out[3][:, 5].any()


# --- public API --------------------------------------------------------------------------
def test_public_api_backend_triton():
    n, c, k = 10, 33, 5
    x = special_logits(n, c, torch.bfloat16, seed=13)
    t = random_target(n, c, seed=13).clamp(0, c - 1)
    sets = LabelSets.from_lists([[i % c, (3 * i) % c] if i % 3 else [] for i in range(n)], c)
    assert "triton" in mlmetrics.available_backends("cpu")
    got = mlmetrics.topk_stats(x, k, target=t, label_sets=sets, backend="triton")
    want = mlmetrics.topk_stats(x, k, target=t, label_sets=sets, backend="reference")
    assert isinstance(got, mlmetrics.TopKStats)
    assert_matches(tuple(got), tuple(want), k, n)

    sub = torch.tensor([3, 1, 4, 15, 9, 26, 5, 31])
    got = mlmetrics.topk_stats(x, 3, target=t % 8, class_subset=sub, with_softmax=False, backend="triton")
    want = mlmetrics.topk_stats(x, 3, target=t % 8, class_subset=sub, with_softmax=False, backend="reference")
    assert_matches(tuple(got), tuple(want), 3, n)

    p, i = mlmetrics.softmax_topk(x.float(), 4, backend="triton")
    rp, ri = reference.softmax_topk(x.float(), 4)
    assert torch.equal(i, ri)
    torch.testing.assert_close(p, rp, rtol=1e-5, atol=1e-6, equal_nan=True)

    h = mlmetrics.topk_label_hits(x, sets, 4, backend="triton")
    assert torch.equal(h, reference.topk_label_hits(x, sets.ranges, sets.labels, 4))


# --- property-based ----------------------------------------------------------------------
_VALUES = [0.0, -0.0, 1.0, -1.0, 2.5, 1e-30, -1e30, 3e38, float("inf"), float("-inf"), float("nan")]


@st.composite
def _case(draw):
    n = draw(st.integers(0, 5))
    c = draw(st.integers(1, 40))
    k = draw(st.integers(1, c))
    dtype = draw(st.sampled_from([torch.float32, torch.float16, torch.bfloat16]))
    pool = draw(st.lists(st.sampled_from(_VALUES) | st.floats(-10, 10, width=32), min_size=1, max_size=6))
    seed = draw(st.integers(0, 2**31 - 1))
    rs = np.random.RandomState(seed)
    x = torch.tensor(rs.choice(np.array(pool, dtype=np.float32), size=(n, c)), dtype=torch.float32)
    x = x.to(dtype)
    if dtype == torch.bfloat16:  # the interpreter widens bf16 subnormals wrongly (2.48e-39 -> 8.08e-39);
        x = torch.where(x.float().abs() < 2.0 ** -126, torch.zeros_like(x), x)  # the GPU widens them exactly
    t = torch.from_numpy(rs.randint(-1, c + 1, size=n).astype(np.int64)) if draw(st.booleans()) else None
    sizes = rs.randint(0, 4, size=n)
    off = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    lab = torch.from_numpy(rs.randint(0, c, size=int(off[-1])).astype(np.int32))
    rng = torch.from_numpy(np.stack([off[:-1], off[1:]], 1)) if draw(st.booleans()) else None
    block_c = draw(st.sampled_from([None, 8, 16]))
    with_softmax = draw(st.booleans())
    return x, k, t, rng, lab, block_c, with_softmax


@settings(max_examples=25, deadline=None)
@given(_case())
def test_hypothesis_parity(case):
    x, k, t, rng, lab, block_c, with_softmax = case
    out = triton_topk_stats(x, k, t, rng, lab if rng is not None else None, None, with_softmax, block_c=block_c)
    ref = reference.topk_stats(x, k, t, rng, lab if rng is not None else None, None, with_softmax)
    assert_matches(out, ref, k, x.shape[0])


# --- shared parity generator (tests/parity.py) through the public API ----------------------
try:
    from tests.ops.parity import assert_same_topk_stats, topk_cases
except ImportError:  # pragma: no cover - run without tests/conftest.py
    topk_cases = None


@pytest.mark.skipif(topk_cases is None, reason="tests/parity.py not importable")
@settings(max_examples=15, deadline=None)
@given(topk_cases(max_n=6, max_c=120) if topk_cases is not None else st.none(), st.booleans())
def test_hypothesis_public_api_shared_cases(case, with_softmax):
    x, k, target, label_sets, subset = case
    kw = dict(target=target, label_sets=label_sets, class_subset=subset, with_softmax=with_softmax)
    got = mlmetrics.topk_stats(x, k, backend="triton", **kw)
    want = mlmetrics.topk_stats(x, k, backend="reference", **kw)
    assert_same_topk_stats(got, want)


# --- the filtered kernel (backend "triton_filtered") ---------------------------------------
def filtered_topk_stats(*args, **kw):
    import sys

    return sys.modules["mlmetrics.ops.triton.filtered"].topk_stats(*args, **kw)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("tiles", [None, (16, 1, None), (16, 2, 2), (8, 4, 8)])
@pytest.mark.parametrize("with_softmax", [True, False])
def test_filtered_specials_and_tiles(dtype, tiles, with_softmax):
    n, c, k = 11, 70, 5
    x = special_logits(n, c, dtype, seed=21)
    t = random_target(n, c, seed=21)
    rng, lab = random_label_sets(n, c, seed=21)
    kw = {} if tiles is None else dict(tile_c=tiles[0], tile_rep=tiles[1], block_r=tiles[2])
    out = filtered_topk_stats(x, k, t, rng, lab, None, with_softmax, **kw)
    assert_matches(out, reference.topk_stats(x, k, t, rng, lab, None, with_softmax), k, n)


def test_filtered_reference_moves_and_ascending_rows():
    # rows whose max jumps by far more than the softmax reference's slack after the first tile,
    # rows that replace the whole top-k in every tile, and ties spread over tiles
    n, c, k = 5, 96, 6
    x = torch.arange(n * c, dtype=torch.float32).reshape(n, c) * 0.01
    x[1] = x[1].flip(0)
    x[2] = torch.arange(c).float().remainder(5)
    x[3, 50] = 1e4
    x[3, 90] = 3e4
    x[4, :40] = -1e4
    t = torch.tensor([0, 95, 7, 90, 41])
    for rep in (1, 2):
        out = filtered_topk_stats(x, k, t, None, None, None, True, tile_c=16, tile_rep=rep)
        assert_matches(out, reference.topk_stats(x, k, t), k, n)


@pytest.mark.parametrize("layout", ["transposed", "col_slice", "row_col_slice", "odd_row_stride"])
def test_filtered_non_contiguous(layout):
    base = special_logits(24, 50, torch.float32, seed=5)
    if layout == "transposed":
        x = base.t().contiguous().t()
    elif layout == "col_slice":
        x = base[:, ::2]
    elif layout == "row_col_slice":
        x = base[1::2, 3:45]
    else:
        x = base[:, 1:49]  # unit column stride, row stride 50 (not a multiple of the vector width)
    n, c = x.shape
    t = random_target(n, c, seed=5)
    rng, lab = random_label_sets(n, c, seed=5)
    for kw in ({}, dict(tile_c=16, tile_rep=2)):
        out = filtered_topk_stats(x, 4, t, rng, lab, None, True, **kw)
        assert_matches(out, reference.topk_stats(x, 4, t, rng, lab), 4, n)


@pytest.mark.parametrize("c,k", [(1, 1), (9, 9), (40, 40), (130, 130), (150, 129), (600, 64)])
def test_filtered_k_extremes_and_subset(c, k):
    n = 5
    x = special_logits(n, c, torch.bfloat16, seed=c) if c >= 2 else torch.randn(n, c)
    t = random_target(n, c, seed=c)
    rng, lab = random_label_sets(n, c, seed=c)
    out = filtered_topk_stats(x, k, t, rng, lab, None, True)
    assert_matches(out, reference.topk_stats(x, k, t, rng, lab), k, n)
    if c >= 2:
        sub = torch.randperm(c, generator=torch.Generator().manual_seed(c))[: max(k, c // 2)]
        ts = random_target(n, sub.numel(), seed=c)
        out = filtered_topk_stats(x, k, ts, None, None, sub, False)
        assert_matches(out, reference.topk_stats(x, k, ts, None, None, sub, False), k, n)


@settings(max_examples=25, deadline=None)
@given(_case())
def test_filtered_hypothesis_parity(case):
    x, k, t, rng, lab, block_c, with_softmax = case
    kw = {} if block_c is None else dict(tile_c=block_c, tile_rep=2)
    out = filtered_topk_stats(x, k, t, rng, lab if rng is not None else None, None, with_softmax, **kw)
    ref = reference.topk_stats(x, k, t, rng, lab if rng is not None else None, None, with_softmax)
    assert_matches(out, ref, k, x.shape[0])


@pytest.mark.skipif(topk_cases is None, reason="tests/parity.py not importable")
@settings(max_examples=15, deadline=None)
@given(topk_cases(max_n=6, max_c=300) if topk_cases is not None else st.none(), st.booleans())
def test_filtered_public_api_shared_cases(case, with_softmax):
    x, k, target, label_sets, subset = case
    kw = dict(target=target, label_sets=label_sets, class_subset=subset, with_softmax=with_softmax)
    got = mlmetrics.topk_stats(x, k, backend="triton_filtered", **kw)
    want = mlmetrics.topk_stats(x, k, backend="reference", **kw)
    assert_same_topk_stats(got, want)


def test_auto_never_picks_the_filtered_kernel():
    from mlmetrics.ops import dispatch

    assert "triton_filtered" in dispatch.UNMEASURED_BACKENDS
    for c in (10, 100, 1000, 131072):
        assert dispatch.choose_gpu_backend(4096, c, 5) != "triton_filtered"


@pytest.mark.parametrize("shape,tiles", [((5, 96), dict(tile_c=16, tile_rep=2)), ((3, 2056), {})])
def test_filtered_bf16_word_loads(shape, tiles):
    # dense bf16 rows with an even stride read two values per 32-bit word on full tiles
    n, c = shape
    x = special_logits(n, c, torch.bfloat16, seed=c)
    x[1, 5] = 3e38  # large magnitudes: the fused exponent must stay exact
    t = random_target(n, c, seed=c)
    rng, lab = random_label_sets(n, c, seed=c)
    for xs in (x, x[:, 8:]):  # base offset by 16 bytes: still word-aligned
        ts = t.clamp(max=xs.shape[1] - 1)
        out = filtered_topk_stats(xs, 5, ts, rng, lab, None, True, **tiles)
        assert_matches(out, reference.topk_stats(xs, 5, ts, rng, lab), 5, n)


@pytest.mark.parametrize("k", [1, 5, 8])
def test_filtered_bf16_packed_keys_ties_signed_zeros_and_ascending_rows(k):
    # bf16 tiles after the first take the packed (order key | column) insertion: ties resolve to
    # the lower index, -0.0 ties +0.0, -inf never enters once k finite values are held
    n, c = 6, 160
    g = torch.Generator().manual_seed(k)
    vals = torch.tensor([-0.0, 0.0, 1.0, -1.0, 2.0, 0.5, float("-inf")])
    x = vals[torch.randint(0, len(vals), (n, c), generator=g)].to(torch.bfloat16)
    x[4] = torch.arange(c, dtype=torch.float32).to(torch.bfloat16)  # ascending: many insertions
    x[5, ::2] = -0.0
    x[5, 1::2] = 0.0
    for kw in (dict(tile_c=16, tile_rep=2), {}):
        out = filtered_topk_stats(x, k, None, None, None, None, True, **kw)
        assert_matches(out, reference.topk_stats(x, k, None, None, None, None, True), k, n)


# --- rows held in registers (mlmetrics/ops/triton/resident.py, taken by "triton_filtered") ------
def resident_config(c, k, dtype):
    import sys

    return sys.modules["mlmetrics.ops.triton.resident"].config(c, k, torch.empty((), dtype=dtype).element_size())


def resident_column(rep, lane, v, c, k, dtype):
    """The column a thread holds as (rep, lane, v) in the resident kernel's layout."""
    _, _, lanes, vec, _, direct, _ = resident_config(c, k, dtype)
    assert not direct
    return rep * lanes * vec + lane * vec + v


def test_resident_path_is_taken_for_rows_that_fit():
    import sys

    from mlmetrics.ops.triton.launch import recording

    filt = sys.modules["mlmetrics.ops.triton.filtered"]
    res, tiled = "_resident_kernel", "_filtered_kernel"
    for (c, k, dtype, want) in [(1000, 5, torch.float32, res), (100, 5, torch.float32, res), (2048, 16, torch.float32, res),
                                (2048, 5, torch.bfloat16, res), (2049, 5, torch.float32, tiled),
                                (1000, 17, torch.float32, tiled), (10, 5, torch.float32, res)]:
        x = torch.empty((64, c), dtype=dtype, device="meta")
        with recording() as launches:
            filt.topk_stats(x, k)
        assert launches[0][0].__name__ == want, (c, k, dtype)
    with recording() as launches:  # tile overrides force the tiled kernel
        filt.topk_stats(torch.empty((64, 1000), device="meta"), 5, tile_c=128)
    assert launches[0][0].__name__ == "_filtered_kernel"


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("c,k", [(3, 2), (10, 5), (70, 5), (128, 3), (129, 8), (200, 16), (1000, 5), (1000, 8),
                                 (2048, 16)])
def test_resident_specials(dtype, c, k):
    # NaN, +-inf, all -inf, -0/+0 ties, rounded and constant rows (candidate overflow by ties), C equal
    # to the padded row (no padding), just above half of it and below half of it (tiny rows), rows
    # past N in the last program; short rows take the rounds over the whole row (DIRECT)
    n = 9
    x = special_logits(n, c, dtype, seed=c + k)
    t = random_target(n, c, seed=c)
    rng, lab = random_label_sets(n, c, seed=c)
    for with_softmax in (True, False):
        out = filtered_topk_stats(x, k, t, rng, lab, None, with_softmax)
        assert_matches(out, reference.topk_stats(x, k, t, rng, lab, None, with_softmax), k, n)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_resident_candidates_crowded_into_lanes(dtype):
    # the candidate groups of a row: 4 in one lane (the most a lane passes on), 5 in one lane
    # (fallback), exactly LANES in the row (the capacity), more than LANES (fallback), ties of the
    # k-th value across lanes, and -0.0 / +0.0 among the top values (no fallback: no NaN, no padding)
    c, k = 1000, 5
    _, _, lanes, vec, _, _, _ = resident_config(c, k, dtype)
    col = lambda rep, lane, v=0: resident_column(rep, lane, v, c, k, dtype)  # noqa: E731
    n = 8
    g = torch.Generator().manual_seed(3)
    x = torch.randn(n, c, generator=g)
    for rep in range(4):
        x[0, col(rep, 3, rep % vec)] = 10 + rep  # one lane holds 4 candidate groups
    for rep in range(5):
        x[1, col(rep, 7, 1)] = 10 + rep  # one lane holds 5: fallback
    for lane in range(lanes):
        x[2, col(lane % 4, lane)] = 10.0 + lane  # exactly LANES candidate groups
    x[3, ::7] = 9.0  # the k-th value tied across many lanes: fallback
    x[4] = -torch.rand(c, generator=g) - 1
    x[4, col(1, 2, 3)] = -0.0
    x[4, col(0, 9, 0)] = 0.0
    x[4, col(5, 9, 1)] = -0.0
    x[5, col(1, 1, 1)] = 5.0
    x[5, col(1, 1, 2)] = 5.0  # two top values in one group, a tie
    x[5, col(6, 1, 2)] = 5.0
    x[6, col(6, 0, 0)] = 8.0
    x[6, c - 1] = 8.0  # the last real column
    x[7] = torch.arange(c, dtype=torch.float32).flip(0)  # descending: every lane max in rep 0
    x = x.to(dtype)
    t = random_target(n, c, seed=4)
    for kk in (1, k, 8):
        out = filtered_topk_stats(x, kk, t, None, None, None, True)
        assert_matches(out, reference.topk_stats(x, kk, t), kk, n)


def test_resident_extreme_magnitudes_and_padding_value():
    # rows whose values lie at or below the padding value -2^100 (found by the max of the real
    # columns), |max| > 2e38 (the fused exponent would overflow: summed again), -inf entries (e log e
    # = NaN: summed again), -3e38 next to finite values
    c, k = 1000, 5
    x = torch.randn(6, c)
    x[0] = -1e35 + torch.randn(c) * 1e33
    x[1] = -2.0 ** 100
    x[2, 17] = 3e38
    x[3, 100:900] = float("-inf")
    x[4, :500] = -3e38
    x[5, :] = -2.0 ** 100
    x[5, 999] = -1e30  # only one value above the padding value
    t = torch.tensor([3, 17, 17, 5, 600, 999])
    for with_softmax in (True, False):
        out = filtered_topk_stats(x, k, t, None, None, None, with_softmax)
        assert_matches(out, reference.topk_stats(x, k, t, None, None, None, with_softmax), k, 6)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("kernel,c,kw", [
    ("filtered", 10, {}), ("filtered", 100, {}),  # resident
    ("filtered", 300, dict(tile_c=16, tile_rep=2, block_r=2)), ("filtered", 1500, dict(tile_c=64, tile_rep=2, block_r=1)),
    ("measured", 10, {}), ("measured", 100, {}), ("measured", 300, dict(block_c=64))])
def test_huge_logits(dtype, kernel, c, kw):
    # rows around 1e6 ... 3e10 and -3e10 (tests/ops/parity.py huge_rows). The filtered kernels sum
    # them again relative to the exact max; the measured "triton" kernel (what "auto" picks on a
    # GPU) subtracts its exact running max, so it needs no second pass
    from tests.ops.parity import huge_rows

    n, k = 7, 5
    x = huge_rows(n, c, dtype, torch.Generator().manual_seed(c))
    x[3, c // 3] = float("-inf")
    t = random_target(n, c, seed=c)
    run = filtered_topk_stats if kernel == "filtered" else triton_topk_stats
    out = run(x, k, t, None, None, None, True, **kw)
    assert_matches(out, reference.topk_stats(x, k, t), k, n)


@pytest.mark.parametrize("layout", ["transposed", "col_slice", "odd_row_stride", "offset"])
def test_resident_non_contiguous_and_subsets(layout):
    base = special_logits(10, 1100, torch.float32, seed=9)
    x = {"transposed": base[:, :1000].t().contiguous().t(), "col_slice": base[:, ::2],
         "odd_row_stride": base[:, 1:1000], "offset": base[:, 4:1004]}[layout]
    n, c = x.shape
    t = random_target(n, c, seed=9)
    rng, lab = random_label_sets(n, c, seed=9)
    out = filtered_topk_stats(x, 5, t, rng, lab, None, True)
    assert_matches(out, reference.topk_stats(x, 5, t, rng, lab), 5, n)
    sub = torch.randperm(c, generator=torch.Generator().manual_seed(1))[:700]
    ts = random_target(n, 700, seed=2)
    out = filtered_topk_stats(x, 6, ts, rng, lab, sub, True)
    assert_matches(out, reference.topk_stats(x, 6, ts, rng, lab, sub, True), 6, n)


def test_resident_fallback_rate_model():
    # the static tool charges the fallback at a simulated i.i.d. rate: k = 1 never falls back (one
    # candidate group), crowding grows with k
    from benchmarks.gpu_static.triton import resident_fallback_rate

    assert resident_fallback_rate(1000, 1, 2, 16, 16, 4, programs=500) == 0.0
    r5 = resident_fallback_rate(1000, 5, 2, 16, 16, 4, programs=2000)
    r8 = resident_fallback_rate(1000, 8, 2, 16, 16, 4, programs=2000)
    assert r5 < 0.01 < r8 < 0.2
