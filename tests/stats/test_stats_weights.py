"""Poisson(1) hash weights: the compiled op equals the pure-torch twin bit for bit, the weights
are Poisson(1), and a sample's weight depends only on (sample index, replicate, seed)."""
import math

import numpy as np
import pytest
import torch
from scipy import stats as sps

from mlmetrics.stats import weights as W


@pytest.mark.parametrize("seed", [0, 1, -7, 2**62 + 3, 123456789])
def test_op_equals_torch_twin(seed):
    if not W._has_op():
        pytest.skip("no compiled extension")
    idx = torch.cat([torch.arange(-50, 3000), torch.tensor([2**40, 2**62, -(2**63)])])
    for b in (1, 2, 17, 1000):
        assert torch.equal(W.poisson_weights(idx, b, seed), W.poisson_weights_torch(idx, b, seed))


def test_weights_are_poisson_one():
    w = W.poisson_weights(torch.arange(2000), 500, seed=3).reshape(-1).numpy()
    n = w.size
    assert abs(w.mean() - 1.0) < 5 / math.sqrt(n)
    assert abs(w.var() - 1.0) < 5 * math.sqrt(2.0 / n)
    counts = np.bincount(w.astype(int), minlength=6)[:6].astype(float)
    counts = np.append(counts, n - counts.sum())
    p = sps.poisson.pmf(np.arange(6), 1.0)
    p = np.append(p, 1 - p.sum())
    assert sps.chisquare(counts, p * n).pvalue > 1e-4
    assert float(w.max()) <= 12


def test_replicates_and_samples_uncorrelated():
    w = W.poisson_weights(torch.arange(20000), 8, seed=5).numpy()
    c = np.corrcoef(w.T)  # between replicates
    assert np.abs(c - np.eye(8)).max() < 5 / math.sqrt(20000)
    c2 = np.corrcoef(w[:-1].reshape(-1), w[1:].reshape(-1))[0, 1]  # neighbouring samples
    assert abs(c2) < 5 / math.sqrt(w[1:].size)
    assert not torch.equal(W.poisson_weights(torch.arange(100), 5, 0), W.poisson_weights(torch.arange(100), 5, 1))


def test_weight_of_a_sample_ignores_batching():
    idx = torch.randperm(5000)
    full = W.poisson_weights(torch.arange(5000), 64, seed=9)
    parts = torch.cat([W.poisson_weights(idx[s:s + 333], 64, seed=9) for s in range(0, 5000, 333)])
    assert torch.equal(parts, full[idx])
    assert torch.equal(W.poisson_weights(torch.arange(10), 64, 9), W.poisson_weights(torch.arange(10), 200, 9)[:, :64])


def test_bad_arguments():
    with pytest.raises(ValueError, match="1-D"):
        W.poisson_weights(torch.zeros(2, 2, dtype=torch.int64), 3)
    with pytest.raises(ValueError, match="replicates"):
        W.poisson_weights(torch.arange(3), 0)


def test_fake_tensor_shape():
    if not W._has_op():
        pytest.skip("no compiled extension")
    from torch._subclasses.fake_tensor import FakeTensorMode

    with FakeTensorMode():
        out = torch.ops.mlmetrics.poisson_weights(torch.arange(7), 11, 0)
    assert tuple(out.shape) == (7, 11) and out.dtype == torch.float64


def test_fused_accumulate_equals_weights_times_contributions():
    from mlmetrics.functional import Rows
    from mlmetrics.stats import PoissonBootstrap
    from mlmetrics.stats.weights import has_fused_op

    if not has_fused_op():
        pytest.skip("no compiled extension")
    g = torch.Generator().manual_seed(0)
    n, c = 300, 40
    rows = Rows(n)
    rows.add("count", torch.ones(n, dtype=torch.bool))
    rows.add("hits", torch.rand(n, 3, generator=g) > 0.5)
    rows.add("value", torch.randn(n, generator=g, dtype=torch.float64))
    rows.add("per_class", torch.rand(n, generator=g) > 0.3, index=torch.randint(0, c, (n,), generator=g), size=c)
    rows.add("not_held", torch.ones(n))
    shapes = {"count": (), "hits": (3,), "value": (), "per_class": (c,)}
    for b in (2, 100, 300, 1000):  # replicate chunks of 256: partial and several
        fused, ref = PoissonBootstrap(shapes, b, seed=7), PoissonBootstrap(shapes, b, seed=7)
        idx = torch.randperm(5000, generator=g)[:n]
        fused.add_rows(rows, idx)
        ref.add_rows_weighted(rows, W.poisson_weights_torch(idx, b, 7))
        for k, sl in fused.slices.items():
            if k == "value":
                torch.testing.assert_close(fused.sums[sl], ref.sums[sl], rtol=1e-12, atol=1e-12)
            else:
                assert torch.equal(fused.sums[sl], ref.sums[sl]), k


def test_fused_accumulate_checks_rows():
    from mlmetrics.stats.weights import has_fused_op

    if not has_fused_op():
        pytest.skip("no compiled extension")
    sums = torch.zeros(4, 8, dtype=torch.float64)
    with pytest.raises(RuntimeError, match="rows must be in"):
        torch.ops.mlmetrics.poisson_accumulate(sums, torch.arange(2), torch.tensor([[0], [4]]),
                                               torch.ones(2, 1, dtype=torch.float64), 0)
