"""One parametrised parity test: every available backend against the reference oracle.

Backends: "cpu" (C++), "triton" (under TRITON_INTERPRET=1 on CPU tensors when there is no GPU),
and on a CUDA machine "cuda" and "triton" on CUDA tensors. Indices, hits, ranks and flags must be
identical; statistics within parity.STATS_RTOL / STATS_ATOL.
"""
import pytest
import torch

import mlmetrics
from mlmetrics import LabelSets
from tests.ops.parity import assert_same_topk_stats, huge_rows


def _backends():
    out = [("cpu", b) for b in mlmetrics.available_backends("cpu") if b != "reference"]
    if torch.cuda.is_available():
        out += [("cuda", b) for b in mlmetrics.available_backends("cuda") if b != "reference"]
    return out


def _fast(device, backend):  # the Triton interpreter is slow: keep its shapes small
    return not (device == "cpu" and backend.startswith("triton"))


def _case(name, n, c, dtype=torch.float32, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, c, generator=g) * 3
    if name == "ties":
        x = x.round()
        x[:, ::3] = -0.0
    elif name == "specials":
        x = x.round()
        x[0, c // 2] = float("nan")
        x[min(1, n - 1), 0] = float("inf")
        x[min(2, n - 1)] = float("-inf")
        x[min(3, n - 1), ::2] = float("-inf")
    x = x.to(dtype)
    if name == "transposed":
        x = x.t().contiguous().t()
    target = torch.randint(-1, c + 1, (n,), generator=g)
    sets = LabelSets.from_lists([torch.randint(0, c, (int(i % 4),), generator=g).tolist() for i in range(n)], c)
    return x, target, sets


CASES = [
    # (name, n, c, k, dtype, fast-backends-only)
    ("normal", 9, 2, 1, torch.float32, False),
    ("ties", 9, 37, 5, torch.float32, False),
    ("specials", 9, 100, 7, torch.float32, False),
    ("transposed", 9, 50, 3, torch.float16, False),
    ("normal", 6, 257, 100, torch.bfloat16, False),
    ("normal", 5, 300, 300, torch.float32, False),
    ("ties", 64, 1000, 5, torch.float32, True),
    ("specials", 16, 1000, 100, torch.float32, True),
    ("normal", 8, 21841, 5, torch.bfloat16, True),
    ("normal", 4, 262144, 5, torch.float32, True),
]


@pytest.mark.parametrize("device,backend", _backends())
@pytest.mark.parametrize("name,n,c,k,dtype,big", CASES, ids=[f"{c[0]}-{c[1]}x{c[2]}-k{c[3]}-{str(c[4])[6:]}" for c in CASES])
def test_backend_matches_reference(device, backend, name, n, c, k, dtype, big):
    if big and not _fast(device, backend):
        pytest.skip("shape too large for the Triton interpreter")
    x, target, sets = _case(name, n, c, dtype)
    want = mlmetrics.topk_stats(x, k, target=target, label_sets=sets, backend="reference")
    got = mlmetrics.topk_stats(x.to(device), k, target=target.to(device), label_sets=sets.to(device),
                               backend=backend)
    assert_same_topk_stats(got, want)
    probs, idx = mlmetrics.softmax_topk(x.to(device), k, backend=backend)
    assert torch.equal(idx.cpu(), want.topk_indices)
    torch.testing.assert_close(probs.cpu(), want.topk_probs, rtol=3e-5, atol=3e-6, equal_nan=True)
    hits = mlmetrics.topk_label_hits(x.to(device), sets.to(device), k, backend=backend)
    assert torch.equal(hits.cpu(), want.hits)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
@pytest.mark.parametrize("c", [10, 1000, 40000])
def test_cpu_huge_logits(dtype, c):
    """Rows around 1e6 ... 3e10 and -3e10: exact softmax statistics, far from 0 too."""
    n = 7 if c > 2048 else 21
    x = huge_rows(n, c, dtype, torch.Generator().manual_seed(c))
    x[3, c // 3] = float("-inf")
    target = torch.randint(0, c, (n,), generator=torch.Generator().manual_seed(1))
    assert_same_topk_stats(mlmetrics.topk_stats(x, 5, target=target, backend="cpu"),
                           mlmetrics.topk_stats(x, 5, target=target, backend="reference"))
