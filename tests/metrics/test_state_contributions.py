"""The state layer: declared specs, per-row contributions (G [N, S] with G.sum(0) = the state
delta, weighted states W.T @ G), reduce of any row weighting, and dedupe records that reproduce
the direct path."""
import math

import pytest
import torch

import mlmetrics.functional as F
from mlmetrics import LabelSets
from mlmetrics.functional import StateSpec
from mlmetrics.metrics import ClassificationMetrics

N, C = 70, 11


@pytest.fixture(scope="module")
def data():
    g = torch.Generator().manual_seed(5)
    x = torch.randn(N, C, generator=g) * 3
    x[4, 1] = float("nan")
    t = torch.randint(0, C, (N,), generator=g)
    lists = [sorted({int(t[i]), (3 * i) % C} if i % 5 else set()) if i % 7 else list(range(i % 4 + 1))
             for i in range(N)]
    return x, t, LabelSets.from_lists(lists, C)


def _values_equal(a: dict, b: dict, tol=1e-9):
    assert set(a) == set(b)
    for k, v in a.items():
        if isinstance(v, torch.Tensor):
            torch.testing.assert_close(v, b[k], atol=tol, rtol=0, equal_nan=True)
        elif isinstance(v, float) and math.isnan(v):
            assert math.isnan(b[k]), k
        else:
            assert v == pytest.approx(b[k], abs=tol), k


def test_state_spec_declares_every_state_tensor(data):
    x, t, ls = data
    for kw in ({}, {"dedupe": False}, {"include": ("accuracy",), "dedupe": False}):
        m = ClassificationMetrics(C, topk=(1, 5), label_sets=ls, nonfinite="ignore", **kw)
        m.update(x, t, sample_index=torch.arange(N))
        spec = m.state_spec()
        assert set(spec) == set(m.state)
        for name, s in spec.items():
            assert isinstance(s, StateSpec) and s.reduction in ("sum", "max")
            assert tuple(m.state[name].shape) == s.shape and m.state[name].dtype == s.dtype, name
    assert ClassificationMetrics(C, topk=(1, 5), label_sets=ls).state_spec()["records"].reduction == "max"
    assert all(s.reduction == "sum" and s.dtype == torch.float64 for s in m.sums_spec().values())


def test_dense_contributions_sum_to_the_state_delta(data):
    x, t, ls = data
    m = ClassificationMetrics(C, topk=(1, 5), label_sets=ls, nonfinite="ignore", dedupe=False)
    idx = torch.arange(N)
    st, rows = m.update_rows(x, t, sample_index=idx)
    g, layout = rows.dense()
    assert g.dtype == torch.float64 and g.shape[0] == N
    assert set(layout) == set(m.sums_spec())
    delta = rows.sum()
    for name, (cols, shape) in layout.items():
        assert shape == m.sums_spec()[name].shape
        torch.testing.assert_close(g[:, cols].sum(0), delta[name].reshape(-1), rtol=0, atol=1e-9)
        torch.testing.assert_close(m.state[name], delta[name], rtol=0, atol=1e-9)  # fresh metric: state = delta
    # the same rows from the op output alone (e.g. for a wrapper that already called update)
    again = m.row_contributions(st, t, sample_index=idx).sum()
    for name in delta:
        torch.testing.assert_close(again[name], delta[name], rtol=0, atol=0)


def test_weighted_states_reduce_to_the_metrics_of_resampled_rows(data):
    """Integer row weights = rows repeated: the reduce of W.T @ G equals the metrics of the
    resampled batch, for every key (what a Poisson bootstrap replicate computes)."""
    x, t, ls = data
    m = ClassificationMetrics(C, topk=(1, 3), label_sets=ls, nonfinite="ignore", dedupe=False)
    _, rows = m.update_rows(x, t, sample_index=torch.arange(N))
    g = torch.Generator().manual_seed(9)
    w = torch.poisson(torch.ones(N, 4), generator=g).to(torch.float64)
    weighted = rows.weighted(w)
    gmat, layout = rows.dense()
    wg = w.T @ gmat
    for r in range(w.shape[1]):
        rep = {name: v[r] for name, v in weighted.items()}
        for name, (cols, shape) in layout.items():
            torch.testing.assert_close(wg[r, cols].reshape(shape), rep[name], rtol=1e-12, atol=1e-9)
        idx = torch.repeat_interleave(torch.arange(N), w[:, r].to(torch.int64))
        want = F.classification_metrics(x[idx], t[idx], ls[idx], topk=(1, 3), nonfinite="ignore", max_label_k=16)
        got = m.reduce(rep)
        hist = got.pop("label_count_histogram")  # sized by the data set's largest set, not the batch's
        h = want.pop("label_count_histogram")
        torch.testing.assert_close(hist[:h.numel()], h.to(hist.dtype))
        assert float(hist[h.numel():].sum()) == 0
        _values_equal(got, want)


def test_fractional_weights_and_empty_weighting_do_not_raise(data):
    x, t, ls = data
    m = ClassificationMetrics(C, topk=(1,), label_sets=ls, nonfinite="ignore", dedupe=False)
    _, rows = m.update_rows(x, t, sample_index=torch.arange(N))
    w = torch.zeros(N, 2, dtype=torch.float64)
    w[:3, 0] = 0.5
    w[:, 1] = 1.0
    w[0, 1] = 0.0
    rep = {name: v[0] for name, v in rows.weighted(w).items()}
    out = m.reduce(rep)
    assert 0.0 <= out["top1"] <= 1.0
    rep1 = {name: v[1] for name, v in rows.weighted(w).items()}
    # per-class top-1 is a ratio of weighted sums: independent of rescaling the weights
    rep2 = {name: v[1] * 2.5 for name, v in rows.weighted(w).items()}
    assert m.reduce(rep1)["macro_accuracy"] == pytest.approx(m.reduce(rep2)["macro_accuracy"], abs=1e-12)


def test_group_update_and_reduce_compose_to_classification_metrics(data):
    x, t, _ = data
    xs = x[5:]
    ts = t[5:]
    st = F.classification_metrics(xs, ts, topk=(1, 2))
    import mlmetrics

    op = mlmetrics.topk_stats(xs, 2, target=ts, with_softmax=True)
    state = {**F.counts_update(op, True), **F.topk_update(op, topk=(1, 2)), **F.nll_update(op),
             **F.calibration_update(op, ece_bins=15), **F.per_class_update(op, ts, num_classes=C),
             **F.ood_update(op)}
    got = {**F.topk_reduce(state, topk=(1, 2)), **F.nll_reduce(state), **F.calibration_reduce(state),
           **F.per_class_reduce(state), **F.ood_reduce(state)}
    for k, v in got.items():
        if isinstance(v, torch.Tensor):
            torch.testing.assert_close(v, st[k], equal_nan=True)
        else:
            assert v == pytest.approx(st[k], abs=1e-12, nan_ok=True), k


@pytest.mark.parametrize("include", [None, ("accuracy",), ("multilabel", "nll")])
def test_records_reproduce_the_direct_sums(data, include):
    x, t, ls = data
    perm = torch.randperm(N, generator=torch.Generator().manual_seed(2))
    a = ClassificationMetrics(C, topk=(1, 5), label_sets=ls, include=include, nonfinite="ignore")
    b = ClassificationMetrics(C, topk=(1, 5), label_sets=ls, include=include, nonfinite="ignore", dedupe=False)
    for s in range(0, N, 16):
        i = perm[s:s + 16]
        a.update(x[i], t[i], sample_index=i)
        b.update(x[i], t[i], sample_index=i)
    a.update(x[:3], t[:3], sample_index=torch.arange(3))  # a repeat: deduped by the records
    _values_equal(a.compute(), b.compute(), tol=1e-12)
    # rows with and without targets mixed in the records
    c = ClassificationMetrics(C, topk=(1,), num_samples=N, nonfinite="ignore")
    c.update(x[:30], t[:30], sample_index=torch.arange(30))
    c.update(x[30:], sample_index=torch.arange(30, N))
    out = c.compute()
    assert out["num_samples"] == N and out["num_targets"] == 29  # row 4 is non-finite
    assert out["top1"] == pytest.approx(F.accuracy(torch.cat([x[:4], x[5:30]]), torch.cat([t[:4], t[5:30]])))


def test_records_with_hits_over_several_words():
    """k > 31: the hits of a row span two record words."""
    g = torch.Generator().manual_seed(4)
    n, c = 50, 40
    x = torch.randn(n, c, generator=g)
    lists = [sorted({(i * 3 + j * 7) % c for j in range(i % 6)}) for i in range(n)]
    ls = LabelSets.from_lists(lists, c)
    a = ClassificationMetrics(c, topk=(1, 33, 40), label_sets=ls)
    b = ClassificationMetrics(c, topk=(1, 33, 40), label_sets=ls, dedupe=False)
    assert a.records.hit_words == 2
    for m in (a, b):
        m.update(x, sample_index=torch.arange(n))
    _values_equal(a.compute(), b.compute(), tol=1e-12)
    assert a.compute()["real_top40"] == 1.0
