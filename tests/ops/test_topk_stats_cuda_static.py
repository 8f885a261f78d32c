"""Static budget of the CUDA kernel v2 (no GPU): its sm_90 SASS on the gated shapes, compiled with
the launch configuration the host code chooses (benchmarks/gpu_static/cuda.py), must stay within
benchmarks/gpu_static/budgets.py: instructions per element all-in, one MUFU.EX2 per element
slot with softmax (the padded last tile of a row is the only excess), 128-bit loads of the
logits, no local memory. Skipped without nvcc / nvdisasm.
"""
import pytest

from benchmarks.gpu_static import budgets, cuda
from benchmarks.gpu_static.triton import Case

pytestmark = pytest.mark.skipif(not cuda.have_tools(), reason="needs nvcc, c++filt and nvdisasm/cuobjdump")


@pytest.mark.parametrize("n,c,dtype,k", budgets.GATED_SHAPES, ids=[f"{s[0]}x{s[1]}-{s[2]}-k{s[3]}" for s in budgets.GATED_SHAPES])
def test_cuda_v2_within_budget(n, c, dtype, k):
    (row,) = cuda.analyze(Case("cuda_v2", n, c, dtype, k, with_softmax=True))
    limit = budgets.INSTRUCTIONS_PER_ELEMENT[row["elem_bytes"]]
    assert row["all_in_per_elem"] <= limit, row
    assert abs(row["mufu_ex2_per_slot"] - budgets.MUFU_EX2_PER_ELEMENT) < 1e-9, row
    assert row["mufu_ex2_per_elem"] < 1.03, row  # padding of the last tile only
    assert set(row["stream_load_bits"]) == {budgets.LOAD_BITS}, row
    assert row["local_bytes"] <= budgets.LOCAL_BYTES and row["spills"] == 0, row


def test_launch_plan_is_the_hosts():
    """The tool reads csrc/cuda/launch_plan.h: e.g. v2 gives 8 lanes per row at C = 1000."""
    p = cuda.launch_plan(65536, 1000, 5, 2)
    assert (p["layout"], p["lanes"], p["k_slots"], p["threads"], p["blocks"]) == (0, 8, 8, 256, 2048)
    assert cuda.launch_plan(4096, 131072, 5, 2)["threads"] == 128
    assert cuda.launch_plan(10, 1000, 33, 1)["general"] is True
