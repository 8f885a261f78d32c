"""Metrics inside a training loop: no autograd history kept, no warning on backward, inputs of
any float dtype, state dtypes fixed whatever casts the loop applies."""
import gc
import warnings

import pytest
import torch

import mlmetrics.functional as F
from mlmetrics import LabelSets
from mlmetrics.metrics import ClassificationMetrics


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096


@pytest.mark.skipif(not __import__("os").path.exists("/proc/self/statm"), reason="needs /proc")
def test_updates_with_grad_requiring_logits_keep_no_graph():
    torch.manual_seed(0)
    c = 1000
    w = torch.randn(64, c, requires_grad=True)
    ls = LabelSets.from_lists([[i % c, (i * 7) % c] for i in range(512)], c)
    m = ClassificationMetrics(c, topk=(1, 5))
    m_sets = ClassificationMetrics(c, topk=(1, 5), label_sets=ls)
    feats = torch.randn(512, 64)
    t = torch.randint(0, c, (512,))

    def step():
        x = feats @ w                       # [512, 1000], requires grad
        st = m.update(x, t)
        m_sets.update(x, t, sample_index=torch.arange(512))
        x.logsumexp(1).mean().backward()    # the loop's own backward: no metric warning
        return st

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        st = step()
        gc.collect()
        before = _rss_bytes()
        for _ in range(60):
            step()
        gc.collect()
        grown = _rss_bytes() - before
    for metric in (m, m_sets):
        for name, v in metric.state.items():
            assert not v.requires_grad and v.grad_fn is None, name
    assert not any(t_.requires_grad for t_ in st if isinstance(t_, torch.Tensor))
    # keeping each batch's graph costs ~2 MB per step here (~120 MB over 60 steps)
    assert grown < 48 * 2**20, f"RSS grew {grown / 2**20:.0f} MiB over 60 updates"
    assert m.compute()["num_samples"] == 61 * 512


def test_functional_metrics_accept_grad_requiring_and_float64_logits():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(40, 7, generator=g, dtype=torch.float64) * 3
    t = torch.randint(0, 7, (40,), generator=g)
    xg = x.clone().requires_grad_(True)
    x32 = x.float()
    assert F.topk_accuracy(xg, t, (1, 3)) == F.topk_accuracy(x32, t, (1, 3))
    assert F.nll(xg, t) == F.nll(x32, t)
    assert F.calibration(x, t)["ece"] == F.calibration(x32, t)["ece"]
    a = F.classification_metrics(x, t)
    b = F.classification_metrics(x32, t)
    for k in ("top1", "top5", "nll", "brier", "ece", "mean_energy"):
        assert a[k] == b[k], k
    assert xg.grad is None


def test_stateful_dtypes_fixed_under_casts():
    g = torch.Generator().manual_seed(2)
    c = 9
    x = torch.randn(60, c, generator=g) * 2
    t = torch.randint(0, c, (60,), generator=g)
    ls = LabelSets.from_lists([[int(t[i])] for i in range(60)], c)
    scored = torch.cat([x[:20], x[20:40].bfloat16().float(), x[40:]])
    ref = F.classification_metrics(scored, t, ls, topk=(1, 3))
    for kw in ({"dedupe": False}, {}):
        m = ClassificationMetrics(c, topk=(1, 3), label_sets=ls, **kw)
        dtypes = {k: v.dtype for k, v in m.state.items()}
        m.update(x[:20].double(), t[:20], sample_index=torch.arange(20))   # "64-true": scored in fp32
        assert m.to(torch.float32) is m                                      # metric.to(dtype): no-op
        m.update(x[20:40].bfloat16(), t[20:40], sample_index=torch.arange(20, 40))  # "bf16-true"
        m.update(x[40:], t[40:], sample_index=torch.arange(40, 60))
        assert {k: v.dtype for k, v in m.state.items()} == dtypes
        got = m.compute()
        for k in ("top1", "top3", "nll", "brier", "ece", "real_top1", "asma", "mean_entropy"):
            assert got[k] == pytest.approx(ref[k], abs=1e-12), k
    # bf16 logits straight in ("bf16-true")
    m = ClassificationMetrics(c, topk=(1, 3))
    m.update(x.bfloat16(), t)
    assert m.compute()["top3"] == pytest.approx(F.topk_accuracy(x.bfloat16(), t, 3))


def test_state_cast_by_a_precision_plugin_keeps_working():
    """A wrapper that casts the state (torchmetrics' ``Metric.to(dtype)``) must not break update:
    the contributions are cast to the state's dtype, never the other way round."""
    g = torch.Generator().manual_seed(3)
    x = torch.randn(30, 5, generator=g)
    t = torch.randint(0, 5, (30,), generator=g)
    m = ClassificationMetrics(5, topk=(1, 2), dedupe=False)
    m.update(x[:10], t[:10])
    m.state = {k: v.to(torch.float32) for k, v in m.state.items()}
    m.update(x[10:], t[10:])
    assert m.compute()["top2"] == pytest.approx(F.topk_accuracy(x, t, 2), abs=1e-6)
