"""The torchmetrics adapter inside a MetricCollection, next to torchmetrics' own metrics."""
import pytest
import torch
from torchmetrics import MetricCollection
from torchmetrics.classification import MulticlassAccuracy, MulticlassCalibrationError

import mlmetrics.functional as F
from mlmetrics import LabelSets
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
