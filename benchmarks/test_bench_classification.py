"""Group ``classification_metrics``: top-1 + top-5 accuracy + ECE (15 bins) + NLL together.

Same logits and targets, same process; every impl computes all four numbers from scratch
(metric objects are built inside the timed call):
  mlmetrics-<backend>   ClassificationMetrics(C, topk=(1, 5), ece_bins=15).update(x, target=t)
                        .compute()  (backend chosen by mlmetrics, "auto"; labelled by device)
  torchmetrics          MulticlassAccuracy(top_k=1/5, average="micro") +
                        MulticlassCalibrationError(n_bins=15, norm="l1") + MeanMetric(NLL from
                        F.cross_entropy), validate_args=False (their fastest setting)
  sklearn               top_k_accuracy_score(k=1/5) + log_loss on softmax probabilities,
                        ECE with NumPy (sklearn has none); CPU only
  torch-fused-manual    the best pure-torch version: one logsumexp + one topk(5), ECE via
                        bucketize/bincount, NLL via gather
  torch-amax (bound)    x.amax(dim=1)
"""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import benchutil as bu
from benchutil import Shape

N_BINS = 15
DEFAULT_SHAPES = [
    Shape(1024, 1000, 5, "float32"),
    Shape(65536, 1000, 5, "float32"),
    Shape(1024, 21841, 5, "float32"),
]
FULL_SHAPES = [Shape(n, c, 5, dt) for dt in ("float32", "bfloat16") for n in bu.FULL_N for c in bu.FULL_C]
SHAPES = FULL_SHAPES if bu.FULL else DEFAULT_SHAPES
IMPLS = ["mlmetrics", "torchmetrics", "sklearn", "torch-fused-manual", "torch-amax"]
SKLEARN_MAX_ELEMS = 1.5e8  # sklearn's top_k_accuracy_score argsorts every row: minutes beyond


def _ours(x, t, c):
    from mlmetrics.metrics import ClassificationMetrics

    m = ClassificationMetrics(c, topk=(1, 5), ece_bins=N_BINS)
    m.update(x, target=t)
    return m.compute()


def _torchmetrics(x, t, c):
    from torchmetrics import MeanMetric
    from torchmetrics.classification import MulticlassAccuracy, MulticlassCalibrationError

    dev = x.device
    acc1 = MulticlassAccuracy(num_classes=c, top_k=1, average="micro", validate_args=False).to(dev)
    acc5 = MulticlassAccuracy(num_classes=c, top_k=5, average="micro", validate_args=False).to(dev)
    ece = MulticlassCalibrationError(num_classes=c, n_bins=N_BINS, norm="l1", validate_args=False).to(dev)
    nll = MeanMetric().to(dev)
    acc1.update(x, t)
    acc5.update(x, t)
    ece.update(x, t)
    nll.update(F.cross_entropy(x.float(), t, reduction="none"))
    return dict(top1=acc1.compute().item(), top5=acc5.compute().item(), ece=ece.compute().item(),
                nll=nll.compute().item())


def _sklearn(x, t, c):
    import numpy as np
    from scipy.special import softmax
    from sklearn.metrics import log_loss, top_k_accuracy_score

    xs = x.cpu().double().numpy()  # float64: log_loss clips at the dtype's eps
    ts = t.cpu().numpy()
    p = softmax(xs, axis=1)
    labels = np.arange(c)
    top1 = top_k_accuracy_score(ts, p, k=1, labels=labels)
    top5 = top_k_accuracy_score(ts, p, k=5, labels=labels)
    nll = log_loss(ts, p, labels=labels)
    conf = p.max(1)
    correct = p.argmax(1) == ts
    b = np.clip(np.ceil(conf * N_BINS).astype(np.int64) - 1, 0, N_BINS - 1)
    cnt = np.bincount(b, minlength=N_BINS)
    gap = np.abs(np.bincount(b, weights=conf, minlength=N_BINS) - np.bincount(b, weights=correct, minlength=N_BINS))
    ece = gap.sum() / len(ts)
    return dict(top1=float(top1), top5=float(top5), ece=float(ece), nll=float(nll))


def _torch_manual(x, t, c):
    lse = x.logsumexp(1).float()  # bf16: in the input dtype, no fp32 copy of x
    v, i = x.topk(5)
    conf = torch.exp(v[:, 0].float() - lse)
    correct1 = i[:, 0] == t
    top5 = (i == t[:, None]).any(1)
    nll = lse - x.gather(1, t[:, None])[:, 0].float()
    edges = torch.linspace(0, 1, N_BINS + 1, device=x.device)[1:-1]
    b = torch.bucketize(conf, edges, right=False)
    cnt = torch.bincount(b, minlength=N_BINS)  # noqa: F841  (kept: a real ECE needs it)
    gap = (torch.bincount(b, weights=conf, minlength=N_BINS)
           - torch.bincount(b, weights=correct1.float(), minlength=N_BINS)).abs()
    n = x.shape[0]
    return dict(top1=correct1.float().mean().item(), top5=top5.float().mean().item(),
                ece=(gap.sum() / n).item(), nll=nll.mean().item())


@pytest.mark.parametrize("device,shape,impl", bu.cases(SHAPES, IMPLS))
def test_classification_metrics(benchmark, device, shape, impl):
    x = bu.logits(shape, device)
    n, c = shape.n, shape.c
    t = bu.targets(n, c, device)
    common = dict(op="classification_metrics", impl=impl, device=device, shape=shape,
                  bytes_read=shape.logits_bytes + n * 8)
    if impl == "mlmetrics":
        import mlmetrics

        mm = bu.need("mlmetrics.metrics")

        if not hasattr(mm, "ClassificationMetrics"):
            pytest.skip("mlmetrics.metrics.ClassificationMetrics not implemented yet")
        backend = mlmetrics.ops.resolve_backend("auto", x, 5)
        res = bu.run(benchmark, lambda: _ours(x, t, c), role="ours", backend=backend, **common)
        _check(res, _torch_manual(x, t, c), loose=shape.dtype != "float32")
    elif impl == "torchmetrics":
        bu.need("torchmetrics")
        res = bu.run(benchmark, lambda: _torchmetrics(x, t, c), role="peer", **common)
        _check(res, _torch_manual(x, t, c), loose=shape.dtype != "float32")
    elif impl == "sklearn":
        if device != "cpu":
            pytest.skip("scikit-learn runs on CPU only")
        bu.need("sklearn.metrics")
        bu.need("scipy.special")
        if n * c > SKLEARN_MAX_ELEMS:
            pytest.skip(f"sklearn at N*C={n * c:.2g} takes minutes (argsort of every row)")
        res = bu.run(benchmark, lambda: _sklearn(x, t, c), role="peer", **common)
        _check(res, _torch_manual(x, t, c), loose=shape.dtype != "float32")
    elif impl == "torch-fused-manual":
        bu.run(benchmark, lambda: _torch_manual(x, t, c), role="peer", **common)
    elif impl == "torch-amax":
        bu.run(benchmark, lambda: x.amax(dim=1), role="bound", **common)
    else:  # pragma: no cover
        raise AssertionError(impl)


def _find(res, *names):
    """A scalar from a result of unknown layout (dict / attribute / nested)."""
    if isinstance(res, dict):
        for key, v in res.items():
            ks = str(key).lower().replace("_", "").replace("@", "").replace("-", "")
            if ks in names:
                return float(v) if not isinstance(v, dict) else None
    for nm in names:
        if hasattr(res, nm):
            return float(getattr(res, nm))
    return None


def _check(res, expected, loose=False):
    """Sanity (outside timing): the impl's numbers agree with the pure-torch ones."""
    for key, names, tol in (("top1", ("top1", "acc1", "accuracy1", "top1acc", "top1accuracy"), 1e-4),
                            ("top5", ("top5", "acc5", "accuracy5", "top5acc", "top5accuracy"), 1e-4),
                            ("nll", ("nll", "nlloss", "logloss"), 1e-3),
                            ("ece", ("ece", "calibrationerror"), 2e-3)):
        got = _find(res, *names)
        if got is None:
            continue
        exp = expected[key]
        if key.startswith("top") and got > 1.5:  # percent
            got /= 100
        if loose:  # bf16: ties and bf16 logsumexp in the pure-torch numbers
            tol = max(tol, 2e-2)
        assert abs(got - exp) <= tol * max(1.0, abs(exp)), (key, got, exp)
