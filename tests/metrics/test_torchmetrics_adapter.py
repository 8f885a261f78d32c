"""The torchmetrics adapter inside a MetricCollection, next to torchmetrics' own metrics; its
Lightning-native face (tensor compute, flat scalars, torchmetrics keywords, plot, reset)."""
import math

import pytest
import torch
from torchmetrics import MetricCollection
from torchmetrics.classification import MulticlassAccuracy, MulticlassCalibrationError

import mlmetrics.functional as F
from mlmetrics import ClassificationMetrics, LabelSets
from mlmetrics.metrics import TorchMetricsAdapter

N, C = 64, 10


def test_adapter_in_metric_collection():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(N, C, generator=g) * 2
    t = torch.randint(0, C, (N,), generator=g)
    coll = MetricCollection({
        "mm_top1": TorchMetricsAdapter(C, topk=(1, 5), key="top1"),
        "mm_ece": TorchMetricsAdapter(C, topk=(1,), key="ece"),
        "tm_top1": MulticlassAccuracy(num_classes=C, average="micro"),
        "tm_ece": MulticlassCalibrationError(num_classes=C, n_bins=15),
    })
    for b in range(0, N, 16):
        coll.update(x[b:b + 16], t[b:b + 16])
    out = coll.compute()
    assert float(out["mm_top1"]) == pytest.approx(float(out["tm_top1"]), abs=1e-6)
    assert float(out["mm_ece"]) == pytest.approx(float(out["tm_ece"]), abs=1e-5)
    coll.reset()
    coll.update(x[:8], t[:8])
    assert float(coll.compute()["mm_top1"]) == pytest.approx(F.accuracy(x[:8], t[:8]))


def test_adapter_full_dict_and_label_sets():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(N, C, generator=g)
    t = torch.randint(0, C, (N,), generator=g)
    ls = LabelSets.from_lists([[int(t[i])] + ([0] if i % 2 else []) for i in range(N)], C)
    m = TorchMetricsAdapter(C, topk=(1, 5), label_sets=ls)
    coll = MetricCollection([m])
    for b in range(0, N, 20):
        idx = torch.arange(b, min(b + 20, N))
        coll.update(x[idx], t[idx], sample_index=idx)
    out = coll.compute()
    want = F.classification_metrics(x, t, ls, topk=(1, 5))
    for k in ("top1", "top5", "nll", "real_top1", "asma", "variable_topk_strict"):
        hits = [v for name, v in out.items() if name.endswith(k)]
        assert hits and float(hits[0]) == pytest.approx(want[k], abs=1e-9), k
    # state_dict round trip through torchmetrics' own machinery
    m2 = TorchMetricsAdapter(C, topk=(1, 5), label_sets=ls)
    m2.persistent(True)
    m.persistent(True)
    m2.load_state_dict(m.state_dict())
    m2._update_count = 1  # loaded, not updated: silence torchmetrics' "compute before update" warning
    assert m2.compute()["top1"] == pytest.approx(want["top1"], abs=1e-9)


# ---- Lightning-native face ----------------------------------------------------------------


def _batch(seed=2, n=N, c=C):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, c, generator=g) * 2, torch.randint(0, c, (n,), generator=g)


def _sets(t):
    return LabelSets.from_lists([sorted({int(t[i]), (int(t[i]) + 1) % C}) if i % 3 else [int(t[i])]
                                 for i in range(len(t))], C)


def test_compute_returns_tensors_flat_scalars_only():
    x, t = _batch()
    m = TorchMetricsAdapter(C, top_k=(1, 5), label_sets=_sets(t))
    m.update(x, t)
    out = m.compute()
    want = ClassificationMetrics(C, topk=(1, 5), label_sets=_sets(t))
    want.update(x, t)
    want = want.compute()
    assert all(isinstance(v, torch.Tensor) and v.dim() == 0 for v in out.values())
    assert "per_class_accuracy" not in out and "ece_bin_count" not in out
    for m_, v in want["subgroup_accuracy"].items():  # {label count: value} -> "subgroup_accuracy/m"
        assert float(out[f"subgroup_accuracy/{m_}"]) == v
    assert float(out["top5"]) == want["top5"] and float(out["asma"]) == want["asma"]
    assert float(out["num_samples"]) == N


def test_full_mode_and_key_mode():
    x, t = _batch()
    full = TorchMetricsAdapter(C, top_k=1, flat=False)
    one = TorchMetricsAdapter(C, top_k=1, key="ece", n_bins=10)
    for m in (full, one):
        m.update(x, t)
    out = full.compute()
    assert out["per_class_accuracy"].shape == (C,) and isinstance(out["top1"], torch.Tensor)
    ref = MulticlassCalibrationError(num_classes=C, n_bins=10)(x.softmax(1), t)
    v = one.compute()
    assert isinstance(v, torch.Tensor) and v.dim() == 0 and float(v) == pytest.approx(float(ref), abs=1e-6)


def test_torchmetrics_keywords_top_k_ignore_index_match_torchmetrics():
    x, t = _batch(3)
    t = t.clone()
    t[::4] = -100
    m = TorchMetricsAdapter(C, top_k=(1, 3), ignore_index=-100, flat=True)
    tm1 = MulticlassAccuracy(num_classes=C, top_k=1, average="micro", ignore_index=-100)
    tm3 = MulticlassAccuracy(num_classes=C, top_k=3, average="micro", ignore_index=-100)
    for b in range(0, N, 16):
        for mm in (m, tm1, tm3):
            mm.update(x[b:b + 16], t[b:b + 16])
    out = m.compute()
    assert float(out["top1"]) == pytest.approx(float(tm1.compute()), abs=1e-6)
    assert float(out["top3"]) == pytest.approx(float(tm3.compute()), abs=1e-6)
    assert float(out["num_samples"]) == N - N // 4
    with pytest.raises(TypeError, match="not both"):
        TorchMetricsAdapter(C, top_k=1, topk=1)


def test_ignore_index_keeps_arrival_order_of_label_sets():
    x, t = _batch(4)
    sets = _sets(t)
    t2 = t.clone()
    t2[1::5] = -1
    m = TorchMetricsAdapter(C, top_k=(1,), label_sets=sets, ignore_index=-1)
    for b in range(0, N, 16):
        m.update(x[b:b + 16], t2[b:b + 16])
    keep = torch.nonzero(t2 != -1)[:, 0]
    ref = ClassificationMetrics(C, topk=(1,), label_sets=sets)
    ref.update(x[keep], t[keep], sample_index=keep)
    assert float(m.compute()["real_top1"]) == ref.compute()["real_top1"]


def test_reset_then_compute_warns_like_torchmetrics():
    x, t = _batch()
    m = TorchMetricsAdapter(C, top_k=1, key="top1")
    m.update(x, t)
    m.reset()
    with pytest.warns(UserWarning, match="before the ``update``"):
        v = m.compute()
    assert math.isnan(float(v))
    d = TorchMetricsAdapter(C, top_k=1)
    with pytest.warns(UserWarning, match="before the ``update``"):
        assert float(d.compute()["num_samples"]) == 0


def test_reset_starts_arrival_order_again_and_forward_does_not():
    x, t = _batch()
    sets = _sets(t)
    m = TorchMetricsAdapter(C, top_k=(1,), label_sets=sets)
    for _ in range(2):  # two epochs with reset() between them (Lightning does this)
        for b in range(0, N, 16):
            m(x[b:b + 16], t[b:b + 16])  # forward: update + a batch value, keeps the order
        got = float(m.compute()["real_top1"])
        m.reset()
    ref = ClassificationMetrics(C, topk=(1,), label_sets=sets)
    ref.update(x, t)
    assert got == ref.compute()["real_top1"]


def test_numpy_float64_and_grad_inputs():
    x, t = _batch()
    a, b = TorchMetricsAdapter(C, top_k=(1, 5)), TorchMetricsAdapter(C, top_k=(1, 5))
    a.update(x.double().numpy(), t.numpy())
    b.update(x.clone().requires_grad_(True), t)
    ref = ClassificationMetrics(C, topk=(1, 5))
    ref.update(x, t)
    want = ref.compute()
    for m in (a, b):
        out = m.compute()
        assert float(out["top1"]) == want["top1"] and float(out["nll"]) == pytest.approx(want["nll"], rel=1e-12)
        assert all(not v.requires_grad for v in (m.mm_sum_nll, m.mm_correct))


def test_pickled_copy_does_not_share_state_storage():
    import pickle
    from multiprocessing.reduction import ForkingPickler

    import torch.multiprocessing  # noqa: F401  (registers the shared-memory reductions)

    x, t = _batch()
    m = TorchMetricsAdapter(C, top_k=1)
    m.update(x, t)
    c = pickle.loads(ForkingPickler.dumps(m))  # what ddp_spawn's hand-off does: storage in shared memory
    c.update(x, t)
    assert float(m.compute()["num_samples"]) == N and float(c.compute()["num_samples"]) == 2 * N


def test_plot_draws_from_compute():
    pytest.importorskip("matplotlib")
    x, t = _batch()
    m = TorchMetricsAdapter(C, top_k=(1, 5), label_sets=_sets(t))
    m.update(x, t)
    fig, (ax, axc) = m.plot()
    assert f"ECE {float(m.compute()['ece']):.3f}" in ax.get_title()
    fig2, ax2 = m.plot("label_count")
    assert "ASMA" in " ".join(t_.get_text() for t_ in ax2.get_legend().get_texts())
    with pytest.raises(ValueError, match="kind must be one of"):
        m.plot("roc")


@pytest.mark.parametrize("cast", [torch.bfloat16, torch.float16, torch.float32, torch.float64])
def test_module_dtype_casts_keep_float64_state(cast):
    # Lightning's "bf16-true" / "16-true" / "64-true" call module.to(dtype) and cast the inputs
    x, t = _batch()
    m = TorchMetricsAdapter(C, top_k=(1, 5))
    m.update(x[:10], t[:10])
    m = m.to(cast)
    assert m.mm_sum_nll.dtype == torch.float64 and m._defaults["mm_sum_nll"].dtype == torch.float64
    m.update(x[10:].to(cast), t[10:])
    ref = ClassificationMetrics(C, topk=(1, 5))
    ref.update(x[:10], t[:10])
    ref.update(x[10:].to(cast) if cast != torch.float64 else x[10:], t[10:])
    out = m.compute()
    assert float(out["top5"]) == ref.compute()["top5"] and float(out["num_samples"]) == N
