"""Label sets matched in arrival order (no ``sample_index``): the signals that tell a wrong order
(a shuffled / class-folder loader, a second epoch, a DDP shard) raise or warn with the fix."""
import warnings

import numpy as np
import pytest
import torch

from mlmetrics import ClassificationMetrics, LabelSets
from mlmetrics.data import alignment
from mlmetrics.data.alignment import LabelSetAlignmentWarning
from mlmetrics.metrics import TorchMetricsAdapter

N, C, B = 256, 100, 32


def _data(seed=0):
    """Sets that hold the target (as ImageNet ReaL mostly does), a classifier right ~80 % of the time."""
    g = torch.Generator().manual_seed(seed)
    t = torch.randint(0, C, (N,), generator=g)
    lists = [sorted({int(t[i]), (int(t[i]) + 1 + i) % C}) if i % 4 else [int(t[i])] for i in range(N)]
    x = torch.randn(N, C, generator=g)
    right = torch.rand(N, generator=g) < 0.8
    x[torch.arange(N)[right], t[right]] += 5
    return x, t, LabelSets.from_lists(lists, C)


def _run(m, x, t, order, with_index):
    for b in range(0, N, B):
        idx = order[b:b + B]
        m.update(x[idx], None if t is None else t[idx], sample_index=idx if with_index else None)
    return m.compute()


def test_shuffled_loader_without_sample_index_warns_with_the_fix():
    x, t, sets = _data()
    order = torch.randperm(N, generator=torch.Generator().manual_seed(1))
    good = _run(ClassificationMetrics(C, topk=(1,), label_sets=sets), x, t, order, True)
    with pytest.warns(LabelSetAlignmentWarning, match=r"sample_index=.*misaligned|misaligned.*sample_index="):
        bad = _run(ClassificationMetrics(C, topk=(1,), label_sets=sets), x, t, order, False)
    assert good["real_top1"] > 0.75 and bad["real_top1"] < 0.1  # what the warning is about


def test_aligned_order_does_not_warn():
    x, t, sets = _data()
    with warnings.catch_warnings():
        warnings.simplefilter("error", LabelSetAlignmentWarning)
        out = _run(ClassificationMetrics(C, topk=(1,), label_sets=sets), x, t, torch.arange(N), False)
        _run(ClassificationMetrics(C, topk=(1,), label_sets=sets), x, None, torch.randperm(N), False)  # no targets
    assert out["real_top1"] > 0.75


def test_second_epoch_without_reset_raises_at_once():
    x, t, sets = _data()
    m = ClassificationMetrics(C, topk=(1,), label_sets=sets)
    _run(m, x, t, torch.arange(N), False)
    with pytest.raises(ValueError, match=r"rows 256\.\.287 arrived but there are 256 sets.*reset\(\)"):
        m.update(x[:B], t[:B])
    m.reset()
    assert _run(m, x, t, torch.arange(N), False)["num_samples"] == N


def test_adapter_second_epoch_without_reset_raises():
    x, t, sets = _data()
    m = TorchMetricsAdapter(C, top_k=(1,), label_sets=sets)
    for b in range(0, N, B):
        m.update(x[b:b + B], t[b:b + B])
    with pytest.raises(ValueError, match="second epoch"):
        m.update(x[:B], t[:B])


def test_distributed_shards_without_sample_index_raise(monkeypatch):
    x, t, sets = _data()
    monkeypatch.setattr(alignment, "_world", lambda: 2)
    with pytest.raises(ValueError, match="torch.distributed.*sample_index="):
        ClassificationMetrics(C, topk=(1,), label_sets=sets).update(x[:B], t[:B])


def test_compiled_rows_past_the_end_are_reported_by_compute(monkeypatch):
    # a compiled graph cannot raise from update(); the rows are counted on the device instead
    x, t, sets = _data()
    m = ClassificationMetrics(C, topk=(1,), label_sets=sets)
    monkeypatch.setattr(torch.compiler, "is_compiling", lambda: True)
    for b in range(0, N + B, B):
        m.update(x[b % N:b % N + B], t[b % N:b % N + B])
    monkeypatch.undo()
    with pytest.raises(ValueError, match="32 rows arrived past the last of the 256 sets"):
        m.compute()


def test_numpy_indices_pick_batch_views():
    _, _, sets = _data()
    lists = sets.tolist()
    for index in (np.array([5, 0, 7]), np.array([5, 0, 7], dtype=np.int32), [5, 0, 7], torch.tensor([5, 0, 7])):
        assert sets[index].tolist() == [lists[5], lists[0], lists[7]]
    with pytest.raises(IndexError, match="outside"):
        sets[np.array([N])]
