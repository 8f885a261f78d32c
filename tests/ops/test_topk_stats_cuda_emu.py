"""The CUDA kernels (csrc/cuda/, kernel v1 and v2) run on the CPU through the emulation build
(csrc/cuda/emu/: every GPU thread a fiber, emulated warp shuffles / ballots / __syncthreads, the
same host code and launch configurations), checked against mlmetrics.ops.reference with the
parity cases every backend uses. Built on first use with torch.utils.cpp_extension (ninja,
cached in the torch extensions folder); needs a C++20 compiler, no GPU.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings, strategies as st

import mlmetrics
from mlmetrics import LabelSets
from tests.ops.parity import assert_same_topk_stats, huge_rows, topk_cases
from tests.ops.test_topk_stats_parity import CASES, _case

ROOT = Path(__file__).resolve().parents[2]
KERNELS = ["topk_stats", "topk_stats_v2"]  # v1, v2


@pytest.fixture(scope="module")
def emu():
    from torch.utils.cpp_extension import load

    load(name="mlmetrics_cuda_emu", sources=[str(ROOT / "csrc/cuda/emu/topk_stats_emu.cpp"), str(ROOT / "csrc/checks.cpp")],
         extra_include_paths=[str(ROOT / "csrc/include")], extra_cflags=["-O2"], is_python_module=False,
         verbose=os.environ.get("MLMETRICS_EMU_VERBOSE") == "1")
    return torch.ops.mlmetrics_cuda_emu


def _run(op, x, k, target=None, label_sets=None, subset=None, with_softmax=True):
    ranges, labels = (label_sets.ranges, label_sets.labels) if label_sets is not None else (None, None)
    return mlmetrics.TopKStats(*op(x, k, target, ranges, labels, subset, with_softmax))


def _ref(x, k, target=None, label_sets=None, subset=None, with_softmax=True):
    return mlmetrics.topk_stats(x, k, target=target, label_sets=label_sets, class_subset=subset,
                                with_softmax=with_softmax, backend="reference")


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("name,n,c,k,dtype,big", CASES, ids=[f"{c[0]}-{c[1]}x{c[2]}-k{c[3]}-{str(c[4])[6:]}" for c in CASES])
def test_parity_cases(emu, kernel, name, n, c, k, dtype, big):
    x, target, sets = _case(name, n, c, dtype)
    op = getattr(emu, kernel)
    for with_softmax in (True, False):
        assert_same_topk_stats(_run(op, x, k, target, sets, with_softmax=with_softmax),
                               _ref(x, k, target, sets, with_softmax=with_softmax))


def _layout(x, layout):
    if layout == "transposed":
        return x.t().contiguous().t()
    if layout == "offset":  # rows not 16-byte aligned
        return torch.cat([x[:, :1], x], 1)[:, 1:]
    if layout == "colstride2":
        return torch.repeat_interleave(x, 2, dim=1)[:, ::2]
    return x


# Shapes at the launch-plan switches (launch_plan.h; v1: 8 / 32 lanes per row at C = 256, a block
# per row past 4096, 512 threads past 16384; v2: the rows kernel from C = 33 to 1024 (8 lanes to
# C = 128 and k = 8, 16 to k = 16, 32 past), 8 lanes to 2048, then a block per row: one warp, 4
# warps past 32768, 2 from 65536) and the K-slot buckets (k = 8 / 9, 32 / 33).
@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("c,k", [(1, 1), (10, 10), (256, 8), (257, 9), (2048, 5), (2049, 9), (4096, 32),
                                 (4097, 33), (16385, 5), (32769, 8), (65536, 3)])
@pytest.mark.parametrize("layout", ["contiguous", "transposed", "offset", "colstride2"])
def test_plan_boundaries(emu, kernel, c, k, layout):
    g = torch.Generator().manual_seed(c + k)
    n = 3 if c > 4096 else 37  # 37 rows: a partly filled last block
    x = _layout((torch.randn(n, c, generator=g) * 3).round(), layout)  # rounded: many ties
    x[0, c // 2] = float("nan")
    x[1] = float("-inf")
    target = torch.randint(-1, c + 1, (n,), generator=g)
    sets = LabelSets.from_lists([torch.randint(0, c, (i % 5,), generator=g).tolist() for i in range(n)], c)
    assert_same_topk_stats(_run(getattr(emu, kernel), x, k, target, sets), _ref(x, k, target, sets))


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16], ids=str)
def test_class_subset_block_layout(emu, kernel, dtype):
    g = torch.Generator().manual_seed(3)
    x = (torch.randn(4, 12000, generator=g) * 3).to(dtype)
    subset = torch.randperm(12000, generator=g)[:5000]
    target = torch.randint(0, 5000, (4,), generator=g)
    assert_same_topk_stats(_run(getattr(emu, kernel), x, 7, target, subset=subset), _ref(x, 7, target, subset=subset))


@pytest.mark.parametrize("kernel", KERNELS)
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=topk_cases(), with_softmax=st.booleans())
def test_random_cases(emu, kernel, case, with_softmax):
    x, k, target, sets, subset = case
    assert_same_topk_stats(_run(getattr(emu, kernel), x, k, target, sets, subset, with_softmax),
                           _ref(x, k, target, sets, subset, with_softmax))


# ---------------------------------------------------------------------------------------
# v2's rows kernel (csrc/cuda/topk_v2_rows.cuh; launch_plan.h: 33 <= C <= 1024, 8 / 16 / 32 lanes):
# the threshold from the lane maxima, candidates in shared memory, and the paths past the common one
# ---------------------------------------------------------------------------------------
def _rows_input(style, n, c, dtype, g):
    x = torch.randn(n, c, generator=g) * 3
    if style == "rounded":  # ties at the threshold
        x = x.round()
    elif style == "flood":  # every lane's maximum is the same value: the buffer overflows
        x = x.round().clamp(max=1.0)
        x[0] = 1.0
        x[1] = float("-inf")
        x[2, :] = float("nan")
    elif style == "some_ties":  # 17 ... 64 candidates: more than one per lane
        x[:, torch.randperm(c, generator=g)[: min(c, 40)]] = 20.0
    elif style == "specials":
        x = x.round()
        x[0, torch.randperm(c, generator=g)[:20]] = float("nan")  # k lanes may hold a NaN
        x[1, ::3] = float("inf")
        x[2] = float("-inf")
        x[3, 1::2] = float("-inf")
        x[4, c - 1] = float("nan")
        x[5, 0] = float("nan")
    elif style == "sorted":  # every element above the ones before it
        x = torch.arange(c, dtype=torch.float32).repeat(n, 1)
    elif style == "low":  # float16: row maxima near the rows kernel's padding value (-65504); else far
        if dtype == torch.float16:  # within 200 of the padding: the padding-free recount
            x = x.clamp(-3.0, 3.0) * 10.0 - 65450.0
            x[1] = -65504.0  # the padding value itself
        else:  # far from 0 (huge offsets: test_huge_logits_softmax)
            x = x * 30.0 - 1e6
        x[0, ::7] = float("-inf")
    return x.to(dtype)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16], ids=str)
@pytest.mark.parametrize("c,k", [(33, 1), (33, 16), (100, 8), (128, 5), (129, 9), (256, 16), (300, 12),
                                 (1000, 5), (1000, 16), (1024, 16), (33, 32), (513, 20), (1000, 17), (1024, 32)])
@pytest.mark.parametrize("style", ["normal", "rounded", "flood", "some_ties", "specials", "sorted", "low"])
def test_rows_kernel(emu, dtype, c, k, style):
    g = torch.Generator().manual_seed(c * 31 + k)
    n = 37  # a partly filled last block
    x = _rows_input(style, n, c, dtype, g)
    target = torch.randint(-1, c + 1, (n,), generator=g)
    sets = LabelSets.from_lists([torch.randint(0, c, (i % 5,), generator=g).tolist() for i in range(n)], c)
    for with_softmax in (True, False):
        assert_same_topk_stats(_run(emu.topk_stats_v2, x, k, target, sets, with_softmax=with_softmax),
                               _ref(x, k, target, sets, with_softmax=with_softmax))


@pytest.mark.parametrize("layout", ["transposed", "offset", "colstride2"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
@pytest.mark.parametrize("c", [37, 1000, 1023])
def test_rows_kernel_layouts(emu, layout, dtype, c):
    """Unaligned rows (a head and a tail slot), strides (the scalar path)."""
    g = torch.Generator().manual_seed(c)
    x = _layout(_rows_input("rounded", 9, c, torch.float32, g), layout).to(dtype)
    target = torch.randint(0, c, (9,), generator=g)
    assert_same_topk_stats(_run(emu.topk_stats_v2, x, 5, target), _ref(x, 5, target))


def test_rows_kernel_class_subset(emu):
    g = torch.Generator().manual_seed(5)
    x = (torch.randn(20, 3000, generator=g) * 3).round()
    subset = torch.randperm(3000, generator=g)[:900]
    target = torch.randint(0, 900, (20,), generator=g)
    sets = LabelSets.from_lists([torch.randint(0, 900, (3,), generator=g).tolist() for _ in range(20)], 900)
    for k in (1, 5, 16):
        assert_same_topk_stats(_run(emu.topk_stats_v2, x, k, target, sets, subset),
                               _ref(x, k, target, sets, subset))


# ---------------------------------------------------------------------------------------
# v2's long-row kernel (csrc/cuda/topk_v2_long.cuh; C > 2048: a block per row): per-warp top-k
# lists, the block-wide bound, the bf16 exp clamp
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16], ids=str)
@pytest.mark.parametrize("style", ["normal", "rounded", "flood", "specials", "sorted", "reversed", "far"])
@pytest.mark.parametrize("c", [3000, 40000])  # one warp per row, four
def test_long_rows(emu, dtype, style, c):
    n = 6
    g = torch.Generator().manual_seed(len(style))
    if style == "reversed":
        x = torch.arange(c, 0, -1, dtype=torch.float32).repeat(n, 1)
    elif style == "far":  # the softmax reference moves, terms far below it (the bf16 clamp), -inf
        x = torch.randn(n, c, generator=g)
        x[:, c // 2:] += 60.0
        x[:, 7::5] = -200.0
        x[:, 3::11] = float("-inf")
        x[1] -= 1000.0
        x[2, :100] = float("-inf")
    else:
        x = _rows_input(style, n, c, torch.float32, g)
    x = x.to(dtype)
    target = torch.randint(-1, c + 1, (n,), generator=g)
    sets = LabelSets.from_lists([torch.randint(0, c, (i % 4,), generator=g).tolist() for i in range(n)], c)
    for k in (1, 5, 32):
        assert_same_topk_stats(_run(emu.topk_stats_v2, x, k, target, sets), _ref(x, k, target, sets))


@pytest.mark.parametrize("layout", ["offset", "colstride2", "subset"])
def test_long_rows_layouts(emu, layout):
    g = torch.Generator().manual_seed(9)
    x = (torch.randn(4, 70001, generator=g) * 3).to(torch.bfloat16)
    subset = None
    if layout == "subset":
        subset = torch.randperm(70001, generator=g)[:40000]
    else:
        x = _layout(x, layout)
    c = 40000 if subset is not None else 70001
    target = torch.randint(0, c, (4,), generator=g)
    assert_same_topk_stats(_run(emu.topk_stats_v2, x, 9, target, subset=subset), _ref(x, 9, target, subset=subset))


# ---------------------------------------------------------------------------------------
# class_subset checks (csrc/checks.cpp): the same error on every device, never a clamp
# ---------------------------------------------------------------------------------------
def _ops(emu):
    return {"cpu": torch.ops.mlmetrics.topk_stats, "emu-v1": emu.topk_stats, "emu-v2": emu.topk_stats_v2}


@pytest.mark.parametrize("which", ["cpu", "emu-v1", "emu-v2"])
def test_class_subset_errors(emu, which):
    op = _ops(emu)[which]
    x = torch.randn(3, 10)
    for bad, what in [([0, 10], "must be in \\[0, C=10\\), got 10"), ([-1, 2], "got -1"),
                      ([4, 2, 4], "distinct, got 4 more than once")]:
        with pytest.raises(RuntimeError, match=what):
            op(x, 1, None, None, None, torch.tensor(bad), True)
    ok = torch.tensor([9, 0, 3])
    assert torch.equal(op(x, 3, None, None, None, ok, True)[1], _ref(x, 3, subset=ok).topk_indices)


@pytest.mark.parametrize("which", ["cpu", "emu-v1", "emu-v2"])
def test_class_subset_cache_sees_changes(emu, which):
    """A checked subset is re-checked after an in-place change and for another logits width."""
    op = _ops(emu)[which]
    subset = torch.tensor([0, 7, 3])
    op(torch.randn(2, 10), 1, None, None, None, subset, True)
    with pytest.raises(RuntimeError, match="got 7"):  # same tensor, narrower logits
        op(torch.randn(2, 5), 1, None, None, None, subset, True)
    subset[1] = 12  # in place: the version counter moves
    with pytest.raises(RuntimeError, match="got 12"):
        op(torch.randn(2, 10), 1, None, None, None, subset, True)
    subset[1] = 3
    with pytest.raises(RuntimeError, match="distinct"):
        op(torch.randn(2, 10), 1, None, None, None, subset, True)
    view = subset[:2]  # another TensorImpl over the same memory: checked on its own
    op(torch.randn(2, 10), 1, None, None, None, view, True)
    with torch.inference_mode():  # inference tensors carry no version counter: checked every call
        s = torch.tensor([1, 2])
        op(torch.randn(2, 10), 1, None, None, None, s, True)
        s[0] = 2
        with pytest.raises(RuntimeError, match="distinct"):
            op(torch.randn(2, 10), 1, None, None, None, s, True)


def test_emulation_matches_between_kernels_on_large_k(emu):
    """k > 32 (the general path) on a ties-heavy bf16 input: v1 == v2 == reference."""
    rng = np.random.default_rng(0)
    x = torch.tensor(rng.integers(-2, 3, (6, 5000)), dtype=torch.bfloat16)
    want = _ref(x, 100)
    for kernel in KERNELS:
        assert_same_topk_stats(_run(getattr(emu, kernel), x, 100), want)


# ---------------------------------------------------------------------------------------
# The emulation itself (csrc/cuda/emu/cuda_emu.h): results of small kernels, and the errors it
# raises where a GPU's behaviour would be undefined
# ---------------------------------------------------------------------------------------
def test_emulation_shuffles_votes_shared_memory(emu):
    assert emu.selftest("xor_sum")[:32].tolist() == [496] * 32
    seg = emu.selftest("segments")[:32].tolist()
    assert seg == [(i | 7) for i in range(32)]  # even segments: lane 7's value; odd: the max
    out = emu.selftest("shared_and_barrier").tolist()
    assert out == [(b * 64 + 63 - t) + 16 for b in range(2) for t in range(64)]  # + popc(ballot of odd lanes)


@pytest.mark.parametrize("name,what", [("exited_lane", "has exited"), ("outside_mask", "outside its mask"),
                                       ("deadlock", "deadlock")])
def test_emulation_reports_undefined_behaviour(emu, name, what):
    with pytest.raises(RuntimeError, match=what):
        emu.selftest(name)


# ---------------------------------------------------------------------------------------
# Rows of huge logits (|max| > 1e7: fl(max log2e) is off by more than a unit, so exp terms relative
# to it over- or underflow): every v2 kernel sums such a row again relative to its exact maximum
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
@pytest.mark.parametrize("c,k", [(10, 3), (100, 5), (1000, 5), (1000, 20), (1500, 5), (4096, 5), (40000, 9)])
def test_huge_logits_softmax(emu, kernel, dtype, c, k):
    """v2: C = 10 / 1500: the streaming kernel (1 / 8 lanes), 100 / 1000: the rows kernel (8 / 16 /
    32 lanes), 4096 / 40000: the long-row kernel (one warp, four)."""
    g = torch.Generator().manual_seed(c + k)
    n = 14 if c > 2048 else 37
    x = huge_rows(n, c, dtype, g)
    x[3, c // 3] = float("-inf")  # an -inf among huge logits
    target = torch.randint(0, c, (n,), generator=g)
    for layout in ("contiguous", "offset"):
        xl = _layout(x, layout)
        assert_same_topk_stats(_run(getattr(emu, kernel), xl, k, target), _ref(xl, k, target))
