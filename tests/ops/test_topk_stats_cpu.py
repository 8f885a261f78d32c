"""The ops on CPU (C++ extension) against the reference oracle, bad input, opcheck."""
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings

import mlmetrics
from mlmetrics import LabelSets
from mlmetrics.ops import reference
from tests.ops.parity import assert_same_topk_stats, topk_cases

needs_ext = pytest.mark.skipif(not mlmetrics.HAS_EXTENSION, reason="compiled extension not built")


def both(logits, k, **kw):
    return (mlmetrics.topk_stats(logits, k, backend="cpu", **kw),
            mlmetrics.topk_stats(logits, k, backend="reference", **kw))


@needs_ext
@settings(max_examples=150, deadline=None)
@given(topk_cases())
def test_topk_stats_matches_reference(case):
    logits, k, target, label_sets, subset = case
    for with_softmax in (True, False):
        got, want = both(logits, k, target=target, label_sets=label_sets, class_subset=subset,
                         with_softmax=with_softmax)
        assert_same_topk_stats(got, want)


@needs_ext
@pytest.mark.parametrize("c,k", [(1000, 1), (1000, 5), (1000, 100), (4097, 16), (4097, 17), (21841, 5),
                                 (131072, 5), (131072, 100), (125, 100)])
def test_long_rows_and_large_k(c, k):
    g = torch.Generator().manual_seed(c + k)
    x = torch.randn(6, c, generator=g) * 4
    x[1] = x[1].round()  # heavy ties
    x[2, ::7] = float("-inf")
    x[3] = torch.sort(x[3]).values  # ascending: every element is a candidate
    x[4, c // 2] = float("nan")
    target = torch.randint(0, c, (6,), generator=g)
    sets = LabelSets.from_lists([torch.randint(0, c, (3,), generator=g).tolist() for _ in range(6)], c)
    got, want = both(x, k, target=target, label_sets=sets)
    assert_same_topk_stats(got, want)


@needs_ext
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_16bit_rows_widen_exactly(dtype):
    """Every bit pattern of the 16-bit type (NaNs, infs, subnormals, -0.0) ranks and reads back as
    its float32 does: contiguous rows, rows with padding (stride > C), short rows in blocks."""
    bits = torch.arange(-32768, 32768, dtype=torch.int32).to(torch.int16)
    x16 = bits.view(dtype)[torch.randperm(65536, generator=torch.Generator().manual_seed(1))]
    padded = torch.zeros(64, 1030, dtype=dtype)
    padded[:, 3:1027] = x16.view(64, 1024)
    for rows, k in ((x16.view(64, 1024), 1024), (padded[:, 3:1027], 1000), (x16[:65530].view(6553, 10), 10),
                    (x16.view(4096, 16)[:, 1:13], 7)):
        want = torch.ops.mlmetrics.topk_stats(rows.float(), k, None, None, None, None, True)
        got = torch.ops.mlmetrics.topk_stats(rows, k, None, None, None, None, True)
        assert torch.equal(got[1], want[1])
        torch.testing.assert_close(got[0], want[0], rtol=0, atol=0, equal_nan=True)
        torch.testing.assert_close(got[3], want[3], rtol=0, atol=0, equal_nan=True)
        probs, idx = torch.ops.mlmetrics.softmax_topk(rows, min(k, 5))
        want_p, want_i = torch.ops.mlmetrics.softmax_topk(rows.float(), min(k, 5))
        assert torch.equal(idx, want_i)
        torch.testing.assert_close(probs, want_p, rtol=0, atol=0, equal_nan=True)


@needs_ext
def test_ties_resolve_to_lower_index():
    x = torch.tensor([[1.0, 3.0, 3.0, 2.0, 3.0], [0.0, -0.0, 0.0, -0.0, -1.0]])
    s = mlmetrics.topk_stats(x, 4, target=torch.tensor([4, 3]), backend="cpu")
    assert s.topk_indices.tolist() == [[1, 2, 4, 3], [0, 1, 2, 3]]
    assert s.target_rank.tolist() == [2, 3]


@needs_ext
def test_nonfinite_policy():
    nan, inf = float("nan"), float("inf")
    x = torch.tensor([[0.0, nan, 1.0, nan], [0.0, inf, 1.0, -inf], [-inf, -inf, -inf, -inf], [0.0, -inf, 1.0, 2.0]])
    s = mlmetrics.topk_stats(x, 3, backend="cpu")
    assert s.topk_indices.tolist() == [[1, 3, 2], [1, 2, 0], [0, 1, 2], [3, 2, 0]]
    assert s.nonfinite.tolist() == [True, True, True, False]
    assert torch.isnan(s.logsumexp[:3]).all() and torch.isnan(s.entropy[:3]).all()
    assert math.isclose(s.logsumexp[3].item(), math.log(1 + math.e + math.e**2), rel_tol=1e-6)
    assert math.isfinite(s.entropy[3].item())  # -inf entries contribute p = 0, not NaN
    probs, idx = mlmetrics.softmax_topk(x, 2, backend="cpu")
    assert torch.isnan(probs[:3]).all() and torch.isfinite(probs[3]).all()


@needs_ext
def test_softmax_topk_matches_torch():
    x = torch.randn(64, 1000)
    probs, idx = mlmetrics.softmax_topk(x, 5)
    ref_p, ref_i = torch.softmax(x.double(), -1).topk(5)
    torch.testing.assert_close(probs.double(), ref_p, rtol=1e-5, atol=1e-7)
    assert torch.equal(idx, ref_i)
    assert probs.dtype == torch.float32 and idx.dtype == torch.int64


@needs_ext
def test_topk_label_hits_matches_membership():
    x = torch.randn(40, 100)
    sets = LabelSets.from_lists([np.random.default_rng(i).choice(100, i % 5, replace=False).tolist() for i in range(40)], 100)
    hits = mlmetrics.topk_label_hits(x, sets, 7)
    top = x.topk(7).indices
    dense = sets.to_dense()
    assert torch.equal(hits, torch.gather(dense, 1, top))


@needs_ext
def test_stats_match_torch():
    x = torch.randn(32, 500) * 3
    t = torch.randint(0, 500, (32,))
    s = mlmetrics.topk_stats(x, 5, target=t)
    logp = torch.log_softmax(x.double(), -1)
    p = logp.exp()
    torch.testing.assert_close(s.logsumexp.double(), torch.logsumexp(x.double(), -1), rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(s.entropy.double(), -(p * logp).sum(-1), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(s.sum_p2.double(), (p * p).sum(-1), rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(s.nll.double(), -logp.gather(1, t[:, None])[:, 0], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(s.max_prob.double(), p.max(-1).values, rtol=1e-5, atol=1e-6)
    rank = (x > x.gather(1, t[:, None])).sum(1)
    assert torch.equal(s.target_rank, rank)


@needs_ext
def test_empty_batch_and_out_of_range_target():
    s = mlmetrics.topk_stats(torch.zeros(0, 10), 3, target=torch.zeros(0, dtype=torch.long),
                             label_sets=LabelSets.from_lists([], 10))
    assert s.topk_indices.shape == (0, 3) and s.hits.shape == (0, 3) and s.row_stats.shape == (0, mlmetrics.ops.NUM_STATS)
    s = mlmetrics.topk_stats(torch.randn(3, 10), 3, target=torch.tensor([-1, 10, 2]))
    assert s.target_rank[:2].tolist() == [-1, -1] and s.target_rank[2] >= 0
    assert torch.isnan(s.target_logit[:2]).all()


@pytest.mark.parametrize("backend", ["reference"] + (["cpu"] if mlmetrics.HAS_EXTENSION else []))
def test_bad_input(backend):
    x = torch.randn(4, 10)
    with pytest.raises(ValueError, match="k must be in"):
        mlmetrics.softmax_topk(x, 0, backend=backend)
    with pytest.raises(ValueError, match="k must be in"):
        mlmetrics.softmax_topk(x, 11, backend=backend)
    with pytest.raises(ValueError, match="2-D"):
        mlmetrics.softmax_topk(x[0], 1, backend=backend)
    with pytest.raises(TypeError, match="float32, float16 or bfloat16"):
        mlmetrics.softmax_topk(x.long(), 1, backend=backend)
    with pytest.raises(TypeError, match="k must be an int"):
        mlmetrics.softmax_topk(x, 2.0, backend=backend)
    with pytest.raises(ValueError, match="label_sets holds 3 samples"):
        mlmetrics.topk_label_hits(x, LabelSets.from_lists([[1], [2], [3]], 10), 2, backend=backend)
    with pytest.raises(ValueError, match="num_classes=5"):
        mlmetrics.topk_label_hits(x, LabelSets.from_lists([[1]] * 4, 5), 2, backend=backend)
    with pytest.raises(ValueError, match=r"target must be \[N=4\]"):
        mlmetrics.topk_stats(x, 2, target=torch.zeros(3, dtype=torch.long), backend=backend)
    with pytest.raises(TypeError, match="integer"):
        mlmetrics.topk_stats(x, 2, target=torch.zeros(4), backend=backend)
    with pytest.raises(ValueError, match="class_subset holds 10"):
        mlmetrics.topk_stats(x, 2, class_subset=torch.tensor([0, 10]), backend=backend)
    with pytest.raises(ValueError, match="k must be in"):
        mlmetrics.topk_stats(x, 3, class_subset=torch.tensor([0, 1]), backend=backend)
    with pytest.raises(ValueError, match="backend must be one of"):
        mlmetrics.softmax_topk(x, 1, backend="tpu")
    with pytest.raises(ValueError, match="at least one class"):
        mlmetrics.softmax_topk(torch.zeros(2, 0), 1, backend=backend)


def test_unavailable_backend_is_a_clear_error():
    with pytest.raises(RuntimeError, match="backend 'cuda' is not available"):
        mlmetrics.softmax_topk(torch.randn(2, 5), 1, backend="cuda")


@needs_ext
def test_op_level_checks_raise_not_crash():
    op = torch.ops.mlmetrics.topk_stats
    x = torch.randn(4, 10)
    with pytest.raises(RuntimeError, match="k must be in"):
        op(x, 11, None, None, None, None, True)
    with pytest.raises(RuntimeError, match="label_ranges must be int64"):
        op(x, 2, None, torch.zeros(3, 2, dtype=torch.long), torch.zeros(1, dtype=torch.int32), None, True)
    with pytest.raises(RuntimeError, match="class_subset entries"):
        op(x, 2, None, None, None, torch.tensor([0, 99]), True)
    # garbage label ranges are clamped, never read out of bounds
    r = torch.tensor([[-5, 100], [3, 1], [0, 1], [1, 2]])
    hits = op(x, 3, None, r, torch.tensor([0, 1], dtype=torch.int32), None, False)[2]
    assert hits.shape == (4, 3)


@needs_ext
def test_opcheck():
    # opcheck compares outputs without equal_nan, so use inputs whose stats hold no NaN
    x = torch.randn(5, 33)
    target = torch.randint(0, 33, (5,))
    sets = LabelSets.from_lists([[1, 2], [], [5], [0, 32], [7]], 33)
    torch.library.opcheck(torch.ops.mlmetrics.topk_stats.default,
                          (x, 4, target, sets.ranges, sets.labels, None, True))
    torch.library.opcheck(torch.ops.mlmetrics.softmax_topk.default, (x, 3))
    torch.library.opcheck(torch.ops.mlmetrics.topk_label_hits.default, (x, sets.ranges, sets.labels, 2))


def test_reference_rank_order_is_obviously_right():
    x = np.array([[2.0, np.nan, 2.0, -np.inf, np.inf, -0.0, 0.0]])
    assert reference.rank_order(x)[0].tolist() == [1, 4, 0, 2, 5, 6, 3]


@needs_ext
def test_consecutive_rows_of_different_scale():
    # rows whose scale jumps, NaN rows and tie-heavy rows side by side stay exact (an earlier CPU
    # kernel seeded each row's scan from the previous row; any such state must not leak)
    g = torch.Generator().manual_seed(7)
    x = torch.randn(64, 777, generator=g) + torch.randn(64, 1, generator=g) * 50
    x[10:14] = x[10:14].round()
    x[20, 5] = float("nan")
    x[30] = 0.0
    x[31] = x[31].clamp(max=0.5)
    target = torch.randint(0, 777, (64,), generator=g)
    for k in (1, 5, 16, 17, 100):
        got, want = both(x, k, target=target)
        assert_same_topk_stats(got, want)


def test_class_subset_checked_once_per_tensor_version():
    x = torch.randn(3, 10)
    subset = torch.tensor([1, 4, 9])
    mlmetrics.topk_stats(x, 2, class_subset=subset, backend="reference")
    subset[0] = 10  # an in-place change bumps the version: checked again
    with pytest.raises(ValueError, match="class_subset holds 10"):
        mlmetrics.topk_stats(x, 2, class_subset=subset, backend="reference")
    with pytest.raises(ValueError, match="class_subset holds 9"):  # same tensor, narrower logits
        subset[0] = 0
        mlmetrics.topk_stats(x[:, :5], 2, class_subset=subset, backend="reference")


def test_gpu_backend_choice_is_by_shape(monkeypatch):
    from mlmetrics.ops import dispatch as _ops

    monkeypatch.setattr(_ops, "has_cuda_kernels", lambda: True)
    monkeypatch.setattr(_ops, "_triton_usable", lambda device: True)
    assert _ops.choose_gpu_backend(65536, 10, 5) == "cuda"
    assert _ops.choose_gpu_backend(65536, 1000, 5) == "triton"
    monkeypatch.setattr(_ops, "_triton_usable", lambda device: False)
    assert _ops.choose_gpu_backend(65536, 1000, 5) == "cuda"
    monkeypatch.setattr(_ops, "has_cuda_kernels", lambda: False)
    assert _ops.choose_gpu_backend(65536, 1000, 5) == "triton"


def _group_stress_rows(c: int, k: int, g: torch.Generator) -> torch.Tensor:
    """Rows aimed at the CPU kernel's group prefilter: element j is in group j % 64, each group's
    top-2 values and first-maximum index are tracked, and a group holding 2+ of the top k
    (or ties at the bound) must be rescanned."""
    rows = []
    base = lambda: torch.randn(c, generator=g)  # noqa: E731
    x = base(); x[0::64][:k] += 10.0; rows.append(x)  # the top k all in group 0
    x = base(); x[5::64][:3] += 10.0; x[7] += 9.0; rows.append(x)  # 3 of the top k in one group
    x = base(); x[3::64][:2] = 8.0; x[9::64][:2] = 8.0; rows.append(x)  # equal maxima inside groups
    x = base(); x[torch.randperm(c, generator=g)[:2 * k]] = 5.0; rows.append(x)  # ties at the k-th value
    x = base(); x[1::64] = 6.0; rows.append(x)  # one group all tied at the top
    x = torch.full((c,), 2.0); rows.append(x)  # the whole row tied (past every candidate cap)
    x = torch.full((c,), float("-inf")); x[:: max(1, c // (k + 2))] = 1.0; rows.append(x)  # mostly -inf
    x = base(); x[-1] += 20.0; x[c - 1 - 64 if c > 64 else 0] += 19.0; rows.append(x)  # top in the tail block
    x = base().round(); rows.append(x)  # heavy ties everywhere
    x = base(); x[c // 3] = float("inf"); x[c // 2] = float("inf"); rows.append(x)
    return torch.stack(rows)


@needs_ext
@pytest.mark.parametrize("c", [10, 16, 17, 40, 64, 65, 100, 127, 128, 129, 1000, 4097])
@pytest.mark.parametrize("k", [1, 2, 3, 5, 16, 17, 64, 65, 100, 128])
def test_group_prefilter_edge_cases(c, k):
    if k > c:
        pytest.skip("k > C")
    g = torch.Generator().manual_seed(1000 * c + k)
    x = _group_stress_rows(c, k, g)
    target = torch.randint(0, c, (x.shape[0],), generator=g)
    sets = LabelSets.from_lists([torch.randint(0, c, (4,), generator=g).tolist() for _ in range(x.shape[0])], c)
    got, want = both(x, k, target=target, label_sets=sets)
    assert_same_topk_stats(got, want)
    got, want = both(x, k, target=target, label_sets=sets, with_softmax=False)
    assert_same_topk_stats(got, want)


def _styled_rows(rng: np.random.Generator, style: str, n: int, c: int) -> np.ndarray:
    if style == "classifier":  # per-row scale and offset, one raised class
        x = rng.standard_normal((n, c)) * rng.uniform(0.5, 3, (n, 1)) + rng.normal(0, 2, (n, 1))
        x[np.arange(n), rng.integers(0, c, n)] += 6
    elif style == "quantised":  # many ties near the top
        x = np.round(rng.standard_normal((n, c)) * 4) / 4
    elif style == "specials":
        x = rng.standard_normal((n, c))
        mask = rng.random((n, c)) < 0.05
        x[mask] = rng.choice([np.inf, -np.inf, np.nan, 0.0, -0.0], int(mask.sum()))
    elif style == "sorted":  # every element a new maximum (or none after the first)
        x = np.sort(rng.standard_normal((n, c)), axis=1)
        x = np.ascontiguousarray(x[:, ::-1]) if rng.random() < 0.5 else x
    else:  # "one_group": the top values all in one of the kernel's 64 interleaved groups
        x = rng.standard_normal((n, c))
        g = int(rng.integers(0, 64))
        x[:, g::64] += 5 + rng.random((n, len(range(g, c, 64))))
    return x


@needs_ext
@pytest.mark.parametrize("seed", range(6))
def test_random_styles_long_rows(seed):
    """Seeded sweep over the row lengths and k where the CPU kernel switches strategy
    (short rows, group prefilter, k > 16 / 64 / 128, rows past L1) and data styles that stress
    each; a larger local fuzz of the same generator (2,000 cases per ISA cap) also passed."""
    rng = np.random.default_rng(seed)
    for style in ("classifier", "quantised", "specials", "sorted", "one_group"):
        c = int(rng.choice([17, 63, 65, 128, 129, 777, 8193, 20000]))
        n = int(rng.integers(1, 9))
        k = int(rng.integers(1, min(c, 140) + 1))
        x = torch.tensor(_styled_rows(rng, style, n, c), dtype=torch.float32)
        target = torch.from_numpy(rng.integers(0, c, n))
        for with_softmax in (False, True):
            got, want = both(x, k, target=target, with_softmax=with_softmax)
            assert_same_topk_stats(got, want)
