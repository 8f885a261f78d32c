"""Stateful ClassificationMetrics: batching, merge, checkpoints, dedupe, one op call per batch,
NaN policy and bad input."""
import math

import pytest
import torch

import mlmetrics
import mlmetrics.functional as F
from mlmetrics import LabelSets
from mlmetrics.metrics import (ASMA, NLL, BrierScore, ClassificationMetrics, ExpectedCalibrationError,
                               MacroAccuracy, RealAccuracy, TopKAccuracy, VariableTopKAccuracy)

N, C = 90, 12


@pytest.fixture(scope="module")
def data():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(N, C, generator=g) * 2
    t = torch.randint(0, C, (N,), generator=g)
    lists = []
    for i in range(N):
        m = int(torch.randint(0, 4, (1,), generator=g))
        lists.append(sorted(set(torch.randint(0, C, (m,), generator=g).tolist()) | ({int(t[i])} if m else set())))
    return x, t, LabelSets.from_lists(lists, C)


def _same(a: dict, b: dict, tol=1e-9):
    assert set(a) == set(b)
    for k in a:
        if isinstance(a[k], torch.Tensor):
            torch.testing.assert_close(a[k], b[k], atol=tol, rtol=0, equal_nan=True)
        elif isinstance(a[k], dict):
            assert a[k] == pytest.approx(b[k], abs=tol), k
        elif isinstance(a[k], float) and math.isnan(a[k]):
            assert math.isnan(b[k]), k
        else:
            assert a[k] == pytest.approx(b[k], abs=tol), k


def _batched(x, t, ls, order, bs=16, **kw):
    m = ClassificationMetrics(C, topk=(1, 5), label_sets=ls, **kw)
    for b in range(0, len(order), bs):
        idx = order[b:b + bs]
        m.update(x[idx], t[idx], sample_index=idx)
    return m


def test_batched_equals_one_shot(data):
    x, t, ls = data
    whole = F.classification_metrics(x, t, ls, topk=(1, 5))
    perm = torch.randperm(N, generator=torch.Generator().manual_seed(1))
    for dedupe in (True, False):
        m = _batched(x, t, ls, perm, dedupe=dedupe)
        _same(m.compute(), whole)
    # sequential rows without sample_index (timm RealLabelsImagenet style)
    m = ClassificationMetrics(C, topk=(1, 5), label_sets=ls)
    for b in range(0, N, 32):
        m.update(x[b:b + 32], t[b:b + 32])
    _same(m.compute(), whole)


def test_key_names(data):
    x, t, ls = data
    out = _batched(x, t, ls, torch.arange(N)).compute()
    for k in ["num_samples", "top1", "top5", "macro_accuracy", "per_class_accuracy", "nll", "brier", "ece", "mce",
              "confidence", "ece_bin_count", "ece_bin_accuracy", "ece_bin_confidence", "ece_bin_edges",
              "mean_max_logit", "mean_energy", "mean_entropy", "real_top1", "real_top5", "precision@5", "recall@5",
              "subset_accuracy@1", "hamming_loss@5", "variable_topk_strict", "variable_topk_fractional", "asma",
              "subgroup_accuracy", "subgroup_count", "multilabel_proportion", "label_count_histogram",
              "empty_label_sets", "num_labeled"]:
        assert k in out, k
    assert isinstance(out["top1"], float) and isinstance(out["per_class_accuracy"], torch.Tensor)
    assert out["num_samples"] == N


def test_dedupe_duplicates_count_once(data):
    x, t, ls = data
    whole = F.classification_metrics(x, t, ls, topk=(1, 5))
    order = torch.cat([torch.arange(N), torch.arange(7)])  # DistributedSampler-style padding
    m = _batched(x, t, ls, order)
    _same(m.compute(), whole)
    m = _batched(x, t, ls, order, dedupe=False)
    assert m.compute()["num_samples"] == N + 7  # plain sums count the padding


def test_merge_and_state_dict(data):
    x, t, ls = data
    whole = F.classification_metrics(x, t, ls, topk=(1, 5))
    for dedupe in (True, False):
        a = _batched(x, t, ls, torch.arange(0, 40), dedupe=dedupe)
        b = _batched(x, t, ls, torch.arange(40, N), dedupe=dedupe)
        a.merge(b)
        _same(a.compute(), whole)
        c = ClassificationMetrics(C, topk=(1, 5), label_sets=ls, dedupe=dedupe)
        c.load_state_dict(a.state_dict())
        _same(c.compute(), whole)
        c.reset()
        with pytest.raises(RuntimeError, match="before any update"):
            c.compute()
    with pytest.raises(ValueError, match="same arguments"):
        a.merge(ClassificationMetrics(C, topk=(1,)))
    with pytest.raises(ValueError, match="other arguments"):
        ClassificationMetrics(C, topk=(1,)).load_state_dict(a.state_dict())


def test_single_label_only_and_num_samples_dedupe(data):
    x, t, _ = data
    whole = F.classification_metrics(x, t, topk=(1, 5))
    m = ClassificationMetrics(C, topk=(1, 5))
    m.update(x[:50], t[:50])
    m.update(x[50:], t[50:])
    _same(m.compute(), whole)
    m = ClassificationMetrics(C, topk=(1, 5), num_samples=N)
    m.update(x, t, sample_index=torch.arange(N))
    m.update(x[:5], t[:5], sample_index=torch.arange(5))
    _same(m.compute(), whole)
    with pytest.raises(ValueError, match="sample_index is required"):
        m.update(x, t)


def test_one_topk_stats_call_per_batch(data, monkeypatch):
    x, t, ls = data
    import mlmetrics.functional._inputs as inputs

    calls = []
    real = inputs.topk_stats

    def spy(logits, k, **kw):
        calls.append((k, kw["with_softmax"]))
        return real(logits, k, **kw)

    monkeypatch.setattr(inputs, "topk_stats", spy)
    m = ClassificationMetrics(C, topk=(1, 5), label_sets=ls)
    m.update(x[:30], t[:30], sample_index=torch.arange(30))
    m.update(x[30:], t[30:], sample_index=torch.arange(30, N))
    m.compute()
    max_set = int(ls.sizes().max())
    assert calls == [(max(5, max_set), True)] * 2
    calls.clear()
    TopKAccuracy(C, k=3).update(x, t)
    RealAccuracy(C, ls, k=2).update(x, sample_index=torch.arange(N))
    assert calls == [(3, False), (max(2, max_set), False)]  # no softmax for accuracy-only metrics
    calls.clear()
    F.asma(x, ls)
    assert len(calls) == 1 and calls[0][1] is False


def test_max_label_k_cap_truncates():
    x = torch.randn(4, 10)
    ls = LabelSets.from_lists([[0], [1, 2], [0, 1, 2, 3, 4], [5]], 10)
    m = ClassificationMetrics(10, topk=(1,), label_sets=ls, max_label_k=3)
    assert m.cfg.k == 3
    m.update(x, sample_index=torch.arange(4))
    out = m.compute()
    assert out["variable_topk_truncated"] == 1 and sum(out["subgroup_count"].values()) == 3
    assert out["num_labeled"] == 4


def test_one_number_classes(data):
    x, t, ls = data
    whole = F.classification_metrics(x, t, ls, topk=(1, 5))
    for cls, kw, key in [(TopKAccuracy, {"k": 5}, "top5"), (MacroAccuracy, {}, "macro_accuracy"),
                         (NLL, {}, "nll"), (BrierScore, {}, "brier"), (ExpectedCalibrationError, {}, "ece")]:
        m = cls(C, **kw)
        m.update(x[:40], t[:40])
        m.update(x[40:], t[40:])
        assert m.compute() == pytest.approx(whole[key], abs=1e-9), key
    for cls, kw, key in [(RealAccuracy, {"k": 5}, "real_top5"), (ASMA, {}, "asma"),
                         (VariableTopKAccuracy, {"fractional": True}, "variable_topk_fractional")]:
        m = cls(C, ls, **kw)
        m.update(x, sample_index=torch.arange(N))
        assert m.compute() == pytest.approx(whole[key], abs=1e-9), key


def test_class_subset_stateful(data):
    x, _, _ = data
    subset = F.load_class_subset("imagenet_r")[:8] % C  # any distinct indices < C
    subset = torch.unique(subset)
    t = torch.arange(N) % subset.numel()
    m = ClassificationMetrics(C, topk=(1, 2), class_subset=subset)
    m.update(x, t)
    _same(m.compute(), F.classification_metrics(x[:, subset].contiguous(), t, topk=(1, 2)), tol=1e-9)
    assert m.compute()["per_class_accuracy"].shape == (subset.numel(),)


# ---- NaN policy ---------------------------------------------------------------------------
def test_nonfinite_error_and_ignore(data):
    x, t, ls = data
    bad = x.clone()
    bad[3, 2] = float("nan")
    bad[10, 0] = float("inf")
    bad[11] = float("-inf")
    m = ClassificationMetrics(C, topk=(1, 5), label_sets=ls)
    m.update(bad, t, sample_index=torch.arange(N))
    with pytest.raises(ValueError, match="3 logits row"):
        m.compute()
    m = ClassificationMetrics(C, topk=(1, 5), label_sets=ls, nonfinite="ignore")
    m.update(bad, t, sample_index=torch.arange(N))
    out = m.compute()
    keep = torch.ones(N, dtype=torch.bool)
    keep[[3, 10, 11]] = False
    ref = F.classification_metrics(x[keep], t[keep], ls[torch.arange(N)[keep]], topk=(1, 5))
    assert out["nonfinite_rows"] == 3 and out["num_samples"] == N
    for k in ("top1", "top5", "nll", "brier", "ece", "macro_accuracy", "real_top1", "asma", "mean_entropy",
              "variable_topk_fractional", "precision@5"):
        assert out[k] == pytest.approx(ref[k], abs=1e-9), k
    with pytest.raises(ValueError, match="nonfinite"):
        F.nll(bad, t)
    assert F.nll(bad, t, nonfinite="ignore") == pytest.approx(ref["nll"], abs=1e-9)
    with pytest.raises(ValueError, match="nonfinite must be"):
        ClassificationMetrics(C, nonfinite="skip")


# ---- bad input ------------------------------------------------------------------------------
def test_bad_inputs(data):
    x, t, ls = data
    m = ClassificationMetrics(C, topk=(1, 5), label_sets=ls)
    with pytest.raises(ValueError, match="2-D"):
        m.update(x[0], t[:1])
    with pytest.raises(ValueError, match="C=11 columns"):
        m.update(x[:, :11], t)
    with pytest.raises(ValueError, match="target must be"):
        m.update(x, t[:-1])
    with pytest.raises(TypeError, match="integer"):
        m.update(x, t.float())
    with pytest.raises(ValueError, match="sample_index must be"):
        m.update(x, t, sample_index=torch.arange(N - 1))
    with pytest.raises(ValueError, match="topk"):
        ClassificationMetrics(C, topk=(1, C + 1))
    with pytest.raises(ValueError, match="num_classes"):
        ClassificationMetrics(0)
    with pytest.raises(ValueError, match="label_sets has num_classes"):
        ClassificationMetrics(C + 1, label_sets=ls)
    m = ClassificationMetrics(C)  # sample_index without label sets / num_samples: accepted, unused
    m.update(x, t, sample_index=torch.arange(N))
    m.update(x, t, sample_index=torch.arange(N))
    assert m.compute()["num_samples"] == 2 * N
    with pytest.raises(ValueError, match="sample_index must be"):
        m.update(x, t, sample_index=torch.arange(3))
    with pytest.raises(RuntimeError, match="before any update"):
        ClassificationMetrics(C).compute()
    # targets outside [0, C): counted on the device, raised at compute()
    m = ClassificationMetrics(C, topk=(1, 5))
    tb = t.clone()
    tb[0] = C
    tb[1] = -1
    m.update(x, tb)
    with pytest.raises(ValueError, match="2 target"):
        m.compute()
    with pytest.raises(ValueError, match="outside"):
        F.topk_accuracy(x, tb)
    # sample_index outside the label sets: counted, raised at compute()
    m = ClassificationMetrics(C, topk=(1, 5), label_sets=ls)
    idx = torch.arange(N)
    idx[5] = N
    idx[6] = -3
    m.update(x, t, sample_index=idx)
    with pytest.raises(ValueError, match="2 sample_index"):
        m.compute()
    m = ClassificationMetrics(C, topk=(1, 5), label_sets=ls, dedupe=False)
    m.update(x, t, sample_index=idx)
    with pytest.raises(ValueError, match="2 sample_index"):
        m.compute()
    with pytest.raises(ValueError, match="label_sets holds"):
        F.real_accuracy(x[:-1], ls, 1)


def test_top_level_package_exports():
    assert mlmetrics.ClassificationMetrics is ClassificationMetrics
    assert hasattr(mlmetrics, "functional") and hasattr(mlmetrics, "metrics")


def test_backend_passthrough_reference_equals_auto(data):
    x, t, ls = data
    a = ClassificationMetrics(C, topk=(1, 5), label_sets=ls, backend="reference")
    a.update(x, t, sample_index=torch.arange(N))
    b = ClassificationMetrics(C, topk=(1, 5), label_sets=ls)
    b.update(x, t, sample_index=torch.arange(N))
    _same(a.compute(), b.compute(), tol=1e-6)
    with pytest.raises(ValueError, match="backend"):
        ClassificationMetrics(C, backend="nope").update(x, t)


def test_update_returns_the_batch_topk_stats(data):
    x, t, ls = data
    m = ClassificationMetrics(C, topk=(1, 5), label_sets=ls)
    st = m.update(x, t, sample_index=torch.arange(N))
    ref = mlmetrics.topk_stats(x, m.cfg.k, target=t, label_sets=ls[torch.arange(N)])
    torch.testing.assert_close(st.topk_indices, ref.topk_indices)
    torch.testing.assert_close(st.target_rank, ref.target_rank)
    torch.testing.assert_close(st.hits, ref.hits)
