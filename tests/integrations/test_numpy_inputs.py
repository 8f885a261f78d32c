"""NumPy arrays (and float64) wherever a user passes them: ClassificationMetrics.update, the
torchmetrics adapter, the timm drop-in, LabelSets indexing; the same numbers as tensors."""
import numpy as np
import pytest
import torch

from mlmetrics import ClassificationMetrics, LabelSets
from mlmetrics.metrics import TorchMetricsAdapter

N, C = 80, 9


def _data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(N, C)) * 2  # float64
    t = rng.integers(0, C, size=N)   # int64
    sets = LabelSets.from_lists([sorted({int(t[i]), (int(t[i]) + 2) % C}) for i in range(N)], C)
    return x, t, sets


def _flat(out):
    return {k: v for k, v in out.items() if isinstance(v, float)}


def test_classification_metrics_take_arrays():
    x, t, sets = _data()
    idx = np.arange(N)[::-1].copy()
    a = ClassificationMetrics(C, topk=(1, 3), label_sets=sets)
    a.update(x[idx], t[idx], sample_index=idx)
    b = ClassificationMetrics(C, topk=(1, 3), label_sets=sets)
    b.update(torch.from_numpy(x).float(), torch.from_numpy(t), sample_index=torch.arange(N))
    assert _flat(a.compute()) == pytest.approx(_flat(b.compute()), abs=1e-12, nan_ok=True)


def test_adapter_takes_arrays():
    x, t, sets = _data()
    m = TorchMetricsAdapter(C, top_k=(1, 3), label_sets=sets)
    m.update(x, t, sample_index=np.arange(N))
    ref = ClassificationMetrics(C, topk=(1, 3), label_sets=sets)
    ref.update(torch.from_numpy(x).float(), torch.from_numpy(t))
    assert float(m.compute()["real_top1"]) == ref.compute()["real_top1"]


def test_label_sets_index_with_arrays():
    _, _, sets = _data()
    for idx in (np.array([3, 1]), np.array([3, 1], dtype=np.int32), [3, 1]):
        assert sets[idx].tolist() == [sets.tolist()[3], sets.tolist()[1]]
