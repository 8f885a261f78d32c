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
