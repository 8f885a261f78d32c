"""On a CUDA device: state lives on the logits' device and update() never syncs the host."""
import pytest
import torch

import mlmetrics.functional as F
from mlmetrics import LabelSets
from mlmetrics.metrics import ClassificationMetrics

pytestmark = pytest.mark.gpu
cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@cuda
@pytest.mark.parametrize("dedupe", [True, False])
def test_update_does_not_sync_and_matches_cpu(dedupe):
    g = torch.Generator().manual_seed(0)
    n, c = 256, 100
    x = torch.randn(n, c, generator=g) * 3
    t = torch.randint(0, c, (n,), generator=g)
    ls = LabelSets.from_lists([[int(t[i])] + ([7] if i % 3 == 0 else []) for i in range(n)], c)
    m = ClassificationMetrics(c, topk=(1, 5), label_sets=ls, dedupe=dedupe)
    xd, td = x.cuda(), t.cuda()
    m.update(xd[:64], td[:64], sample_index=torch.arange(64, device="cuda"))  # warm-up: moves state
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        for b in range(64, n, 64):
            m.update(xd[b:b + 64], td[b:b + 64], sample_index=torch.arange(b, b + 64, device="cuda"))
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert all(v.is_cuda for v in m.state.values())
    got = m.compute()
    want = F.classification_metrics(x, t, ls, topk=(1, 5))
    for k in ("top1", "top5", "real_top1", "asma", "variable_topk_fractional", "macro_accuracy"):
        assert got[k] == pytest.approx(want[k], abs=1e-9), k
    for k in ("nll", "brier", "ece", "mean_entropy"):
        assert got[k] == pytest.approx(want[k], abs=1e-4), k
