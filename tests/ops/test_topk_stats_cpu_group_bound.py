"""The CPU kernel's group bound (csrc/cpu/group_candidates.cpp) at its decision points.

For rows of > 128 classes and k <= 16 the bound on the row's k-th value is either the k-th largest
of 64 group maxima or, when at most k + 2 group maxima reach it, the floor from 16 lane maxima.
These rows put exactly k - 1 ... k + 6 group maxima above the rest (the pool size on both sides
of k + 2), with ties at the floor, +inf among them, several in one group (flagged groups), and
check every output against the NumPy oracle."""
import pytest
import torch

import mlmetrics
from mlmetrics import LabelSets
from tests.ops.parity import assert_same_topk_stats

needs_ext = pytest.mark.skipif(not mlmetrics.HAS_EXTENSION, reason="compiled extension not built")


def _rows(c: int, k: int, g: torch.Generator) -> torch.Tensor:
    rows = []
    for extra in range(-1, 7):
        m = max(1, k + extra)  # group maxima raised above the rest
        x = torch.randn(c, generator=g)
        groups = torch.randperm(64, generator=g)[:m]
        x[groups] = 10 + torch.rand(m, generator=g)  # block 0 of distinct groups
        rows.append(x.clone())
        y = x.clone(); y[groups[-1]] = y[groups[0]]; rows.append(y)  # a tie among them
        y = x.clone(); y[groups[0]] = float("inf"); rows.append(y)  # +inf among them
        y = x.clone(); y[groups[0] + 64] = 10.5; rows.append(y)  # a second large value in one group
        y = x.clone(); y[groups] = 10.0; rows.append(y)  # all tied: the floor equals them
    return torch.stack(rows)


@needs_ext
@pytest.mark.parametrize("c", [129, 1000, 9000])
@pytest.mark.parametrize("k", [1, 2, 3, 5, 8, 10, 16])
def test_group_bound_around_the_pool_slack(c, k):
    g = torch.Generator().manual_seed(7 * c + k)
    x = _rows(c, k, g)
    n = x.shape[0]
    target = torch.randint(0, c, (n,), generator=g)
    sets = LabelSets.from_lists([torch.randint(0, c, (2,), generator=g).tolist() for _ in range(n)], c)
    for with_softmax in (True, False):
        got = mlmetrics.topk_stats(x, k, target=target, label_sets=sets, with_softmax=with_softmax, backend="cpu")
        want = mlmetrics.topk_stats(x, k, target=target, label_sets=sets, with_softmax=with_softmax,
                                    backend="reference")
        assert_same_topk_stats(got, want)
