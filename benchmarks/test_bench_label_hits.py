"""Groups ``label_hits`` and ``real_accuracy``: top-k membership in per-sample label sets.

``label_hits`` (shape grid; ReaL label sets cycled to N rows, see benchutil.real_sized_sets):
  mlmetrics-<backend>          mlmetrics.topk_label_hits(x, sets, k)
  torch-softmax-topk-gather    torch.softmax(x,-1).topk(k) then multi-hot mask gather (the
                               core issue's "torch softmax+topk+membership" baseline)
  torch-topk-gather            x.topk(k) then multi-hot mask gather (no softmax: the best
                               pure-torch version; the [N, C] bool mask is built outside timing)
  torch-amax (bound)           x.amax(dim=1): one read of the logits

``real_accuracy`` (ImageNet ReaL top-1 and top-5 accuracy over 50,000 x 1,000 logits, the
50,000 real ReaL sets; every impl returns both accuracies as Python floats):
  mlmetrics-<backend>          topk_label_hits(k=5) -> accuracies over samples with a set
  timm-RealLabelsImagenet      timm.data.RealLabelsImagenet.add_result(logits) + get_accuracy()
                               (one add_result call on the whole tensor: its fastest use; the
                               evaluator is built once outside timing, its state reset per call)
  timm-RealLabelsImagenet-b256 the same, add_result per batch of 256 rows, as timm's
                               validate.py drives it during evaluation
  torch-topk-multihot-gather   x.topk(5) + gather from a precomputed [N, C] multi-hot mask
  torch-topk-padded-eq         x.topk(5) == padded label matrix [N, max_set] (no N x C mask)
  torch-amax (bound)           x.amax(dim=1)
"""
from __future__ import annotations

import os

import pytest
import torch

import benchutil as bu
from benchutil import Shape

# ------------------------------------------------------------------------------------------
# label_hits over the shape grid
# ------------------------------------------------------------------------------------------
DEFAULT_SHAPES = [
    Shape(8192, 1000, 5, "float32"),   # target: >= 3x torch, <= 2x one amax pass
    Shape(8192, 1000, 1, "float32"),
    Shape(8192, 1000, 100, "float32"),
    Shape(8192, 1000, 5, "bfloat16"),
    # speedup vs C at N=1024, k=5 (the plot)
    Shape(1024, 10, 5, "float32"),
    Shape(1024, 1000, 5, "float32"),
    Shape(1024, 21841, 5, "float32"),
    Shape(1024, 131072, 5, "float32"),
]
SHAPES = [s for s in bu.full_grid() if s.c >= 10] if bu.FULL else DEFAULT_SHAPES
IMPLS = bu.ours_impls() + ["torch-softmax-topk-gather", "torch-topk-gather", "torch-amax"]

_SETS: dict = {}


def _sets(n, c, device):
    key = (n, c, device)
    if key not in _SETS:
        _SETS.clear()
        sets = bu.real_sized_sets(n, c).to(device)
        _SETS[key] = (sets, None)
    return _SETS[key][0]


def _mask(n, c, device):
    """bool [N, C] multi-hot of the same sets (built once, outside timing)."""
    key = (n, c, device)
    sets, mask = _SETS.get(key, (None, None))
    if sets is None:
        sets = _sets(n, c, device)
    if mask is None:
        cpu = bu.real_sized_sets(n, c)
        mask = torch.zeros(n, c, dtype=torch.bool)
        rows = torch.repeat_interleave(torch.arange(n), cpu.sizes())
        mask[rows, cpu.labels.long()] = True
        mask = mask.to(device)
        _SETS[key] = (sets, mask)
    return mask


def _aux_bytes(sets) -> int:
    return sets.labels.numel() * sets.labels.element_size() + sets.ranges.numel() * 8


@pytest.mark.parametrize("device,shape,impl", bu.cases(SHAPES, IMPLS, copies=2.75))
def test_label_hits(benchmark, device, shape, impl):
    x = bu.logits(shape, device)
    k = shape.k
    n, c = shape.n, shape.c
    sets = _sets(n, c, device)
    common = dict(op="label_hits", impl=impl, device=device, shape=shape)
    if impl.startswith("mlmetrics-"):
        backend = bu.require_backend(impl, device)
        import mlmetrics

        hits = bu.run(benchmark, lambda: mlmetrics.topk_label_hits(x, sets, k, backend=backend),
                      role="ours", backend=backend,
                      bytes_read=shape.logits_bytes + _aux_bytes(sets), **common)
        if shape.dtype == "float32" and c >= 1000:  # sanity, outside timing
            ref = _mask(n, c, device).gather(1, x.topk(k).indices)
            assert (hits == ref).float().mean().item() > 0.999
    elif impl == "torch-softmax-topk-gather":
        mask = _mask(n, c, device)
        bu.run(benchmark, lambda: mask.gather(1, torch.softmax(x, -1).topk(k).indices),
               role="peer", bytes_read=shape.logits_bytes + n * k, **common)
    elif impl == "torch-topk-gather":
        mask = _mask(n, c, device)
        bu.run(benchmark, lambda: mask.gather(1, x.topk(k).indices), role="peer",
               bytes_read=shape.logits_bytes + n * k, **common)
    elif impl == "torch-amax":
        bu.run(benchmark, lambda: x.amax(dim=1), role="bound", **common)
    else:  # pragma: no cover
        raise AssertionError(impl)


# ------------------------------------------------------------------------------------------
# ImageNet ReaL accuracy, 50,000 x 1,000
# ------------------------------------------------------------------------------------------
REAL_SHAPES = [Shape(50000, 1000, 5, "float32")] + ([Shape(50000, 1000, 5, "bfloat16")] if bu.FULL else [])
REAL_IMPLS = bu.ours_impls() + ["timm-RealLabelsImagenet", "timm-RealLabelsImagenet-b256",
                                "torch-topk-multihot-gather",
                                "torch-topk-padded-eq", "torch-amax"]

_REAL: dict = {}


def _real_inputs(device):
    if device not in _REAL:
        _REAL.clear()
        from mlmetrics import LabelSets

        sets = LabelSets.from_lists(bu.real_lists(), 1000)
        sizes = sets.sizes()
        valid = (sizes > 0).to(device)
        _REAL[device] = dict(sets=sets.to(device), valid=valid, sizes=sizes)
    return _REAL[device]


def _accuracies(hits, valid):
    h = hits[valid]
    return h[:, 0].float().mean().item() * 100, h.any(1).float().mean().item() * 100


def _real_mask(device):
    d = _real_inputs(device)
    if "mask" not in d:
        sets = d["sets"].to("cpu")
        m = torch.zeros(len(sets), 1000, dtype=torch.bool)
        rows = torch.repeat_interleave(torch.arange(len(sets)), d["sizes"])
        m[rows, sets.labels.long()] = True
        d["mask"] = m.to(device)
    return d["mask"]


def _real_padded(device):
    d = _real_inputs(device)
    if "padded" not in d:
        lists = bu.real_lists()
        width = max(len(s) for s in lists)
        p = torch.full((len(lists), width), -1, dtype=torch.int64)
        for i, s in enumerate(lists):
            if s:
                p[i, :len(s)] = torch.tensor(s)
        d["padded"] = p.to(device)
    return d["padded"]


_TIMM = {}


def _timm_evaluator():
    if "r" not in _TIMM:
        real_labels = bu.need("timm.data.real_labels")
        files = [f"ILSVRC2012_val_{i + 1:08d}.JPEG" for i in range(50000)]
        _TIMM["r"] = real_labels.RealLabelsImagenet(files, topk=(1, 5))
    return _TIMM["r"]


def _torch_reference_acc(x, device):
    mask, valid = _real_mask(device), _real_inputs(device)["valid"]
    return _accuracies(mask.gather(1, x.topk(5).indices), valid)


@pytest.mark.parametrize("device,shape,impl", bu.cases(REAL_SHAPES, REAL_IMPLS))
def test_real_accuracy(benchmark, device, shape, impl):
    x = bu.logits(shape, device, seed=7)
    d = _real_inputs(device)
    sets, valid = d["sets"], d["valid"]
    common = dict(op="real_accuracy", impl=impl, device=device, shape=shape)
    if impl.startswith("mlmetrics-"):
        backend = bu.require_backend(impl, device)
        import mlmetrics

        acc = bu.run(benchmark,
                     lambda: _accuracies(mlmetrics.topk_label_hits(x, sets, 5, backend=backend), valid),
                     role="ours", backend=backend, bytes_read=shape.logits_bytes + _aux_bytes(sets), **common)
        assert acc == pytest.approx(_torch_reference_acc(x, device), abs=1e-6)
    elif impl.startswith("timm-RealLabelsImagenet"):
        r = _timm_evaluator()

        bs = 256 if impl.endswith("-b256") else shape.n

        def timm_real():
            r.is_correct = {k: [] for k in r.topk}
            r.sample_idx = 0
            for i in range(0, shape.n, bs):
                r.add_result(x[i:i + bs])
            a = r.get_accuracy()
            return a[1], a[5]

        acc = bu.run(benchmark, timm_real, role="peer", **common)
        assert acc == pytest.approx(_torch_reference_acc(x, device), abs=1e-6)
    elif impl == "torch-topk-multihot-gather":
        mask = _real_mask(device)
        bu.run(benchmark, lambda: _accuracies(mask.gather(1, x.topk(5).indices), valid),
               role="peer", bytes_read=shape.logits_bytes + shape.n * 5, **common)
    elif impl == "torch-topk-padded-eq":
        padded = _real_padded(device)

        def padded_eq():
            idx = x.topk(5).indices
            return _accuracies((idx[:, :, None] == padded[:, None, :]).any(-1), valid)

        acc = bu.run(benchmark, padded_eq, role="peer",
                     bytes_read=shape.logits_bytes + padded.numel() * 8, **common)
        assert acc == pytest.approx(_torch_reference_acc(x, device), abs=1e-6)
    elif impl == "torch-amax":
        bu.run(benchmark, lambda: x.amax(dim=1), role="bound", **common)
    else:  # pragma: no cover
        raise AssertionError(impl)
