"""Benchmark your own metric code against mlmetrics, on the same logits in the same process.

Copy this file next to the suites (or into a repository that has them), put your function in
``mine`` and the mlmetrics call that computes the same numbers in ``ours``, then::

    pytest benchmarks/test_bench_your_code.py --benchmark-only --benchmark-json yours.json
    python benchmarks/report.py yours.json --md yours.md     # per shape: medians and peer/ours

Each shape is one pytest-benchmark group; ``benchutil.run`` times a call (CUDA synchronised),
records the shape, bytes read and peak extra memory, and waits for a quiet machine. A first
untimed test checks that both give the same numbers, so the ratio compares equal work.
"""
from __future__ import annotations

import pytest
import torch

import benchutil as bu
from benchutil import Shape
from mlmetrics import ClassificationMetrics

SHAPES = [Shape(8192, 1000, 5, "float32"), Shape(8192, 1000, 5, "bfloat16")]


def mine(x: torch.Tensor, t: torch.Tensor) -> dict:
    """Your code: here, the usual pure-torch top-1 / top-5 accuracy and cross-entropy."""
    top5 = x.topk(5, dim=1).indices
    hit = top5 == t[:, None]
    return {"top1": hit[:, 0].double().mean().item(), "top5": hit.any(1).double().mean().item(),
            "nll": torch.nn.functional.cross_entropy(x.float(), t).item()}


def ours(x: torch.Tensor, t: torch.Tensor) -> dict:
    """mlmetrics: the same numbers from one fused pass."""
    m = ClassificationMetrics(x.shape[1], topk=(1, 5), include=("accuracy", "nll"))
    m.update(x, t)
    out = m.compute()
    return {k: out[k] for k in ("top1", "top5", "nll")}


IMPLS = {"mlmetrics": ("ours", ours), "mine": ("peer", mine)}


def _cases():
    return [pytest.param(s, d, id=f"{s.id}-{d}") for d in bu.devices() for s in SHAPES]


@pytest.mark.parametrize("shape,device", _cases())
def test_same_numbers(bench_inputs, shape, device):
    x, t = bench_inputs(shape, device)
    a, b = ours(x, t), mine(x, t)
    assert a["top1"] == pytest.approx(b["top1"], abs=1e-12) and a["top5"] == pytest.approx(b["top5"], abs=1e-12)
    assert a["nll"] == pytest.approx(b["nll"], rel=1e-5)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("shape,device", _cases())
def test_speed(benchmark, bench_inputs, shape, device, impl):
    x, t = bench_inputs(shape, device)
    role, fn = IMPLS[impl]
    bu.run(benchmark, lambda: fn(x, t), op="your_metric", role=role, impl=impl, device=device, shape=shape)
