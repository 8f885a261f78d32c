"""Bootstrap intervals (mlmetrics.stats) against torchmetrics' ``BootStrapper``.

Group ``bootstrap_accuracy``: top-1 accuracy with 1,000 Poisson bootstrap replicates over
``BATCHES`` batches of N x C logits, update + compute, metric objects built inside the timed call:
  mlmetrics      Bootstrap(ClassificationMetrics(C, topk=(1,), include=("accuracy",)), 1000)
                 (hash-based Poisson weights; replicate sums updated from the one op call per batch)
  torchmetrics   BootStrapper(MulticlassAccuracy(num_classes=C, average="micro"), num_bootstraps=1000,
                 sampling_strategy="poisson") (1,000 deep copies of the metric, each updated per batch)
Group ``bootstrap_update``: the per-update cost of the intervals, on one N x C batch:
  update         ClassificationMetrics(C, topk=(1, 5)).update(x, t)            (every metric, no intervals)
  update+bootstrap  the same wrapped in Bootstrap(..., 1000)                   (streaming replicate sums)
The ratio of the two is the bootstrap's overhead per update (aim: <= 20 % at 256 x 1000, B = 1000).
"""
from __future__ import annotations

import pytest
import torch

import benchutil as bu
from benchutil import Shape

REPLICATES = 1000
BATCHES = 4
ACC_SHAPES = [Shape(256, 1000, 1, "float32")]
UPDATE_SHAPES = [Shape(256, 1000, 5, "float32"), Shape(1024, 1000, 5, "float32")]


def _batches(shape, device):
    x = bu.logits(Shape(shape.n * BATCHES, shape.c, shape.k, shape.dtype), device)
    t = bu.targets(shape.n * BATCHES, shape.c, device)
    t[::2] = x[::2].argmax(1)  # an accuracy near 0.5, where the bootstrap spread is easy to check
    return [(x[i * shape.n:(i + 1) * shape.n], t[i * shape.n:(i + 1) * shape.n]) for i in range(BATCHES)]


def _ours(batches, c):
    from mlmetrics.metrics import ClassificationMetrics
    from mlmetrics.stats import Bootstrap

    bs = Bootstrap(ClassificationMetrics(c, topk=(1,), include=("accuracy",)), REPLICATES)
    for x, t in batches:
        bs.update(x, t)
    reps = bs.replicate_values()["top1"]
    return float(reps.mean()), float(reps.std())


def _torchmetrics(batches, c):
    from torchmetrics.classification import MulticlassAccuracy
    from torchmetrics.wrappers import BootStrapper

    m = BootStrapper(MulticlassAccuracy(num_classes=c, average="micro"), num_bootstraps=REPLICATES,
                     sampling_strategy="poisson").to(batches[0][0].device)
    for x, t in batches:
        m.update(x, t)
    out = m.compute()
    return float(out["mean"]), float(out["std"])


@pytest.mark.parametrize("device,shape,impl", bu.cases(ACC_SHAPES, ["mlmetrics", "torchmetrics"]))
def test_bootstrap_accuracy(benchmark, device, shape, impl):
    batches = _batches(shape, device)
    common = dict(op="bootstrap_accuracy", impl=impl, device=device, shape=shape, replicates=REPLICATES,
                  batches=BATCHES, bytes_read=shape.logits_bytes * BATCHES, measure_memory=False)
    x = torch.cat([b[0] for b in batches])
    t = torch.cat([b[1] for b in batches])
    acc = float((x.argmax(1) == t).double().mean())
    if impl == "mlmetrics":
        mean, sd = bu.run(benchmark, lambda: _ours(batches, shape.c), role="ours", **common)
    else:
        bu.need("torchmetrics")
        mean, sd = bu.run(benchmark, lambda: _torchmetrics(batches, shape.c), role="peer", **common)
    # both are bootstrap distributions of the same accuracy: mean ~ acc, sd ~ sqrt(acc (1 - acc) / n)
    se = (acc * (1 - acc) / x.shape[0]) ** 0.5
    assert abs(mean - acc) < 0.2 * se + 1e-12 and 0.8 * se < sd < 1.2 * se, (impl, mean, sd, acc, se)


@pytest.mark.parametrize("device,shape,impl", bu.cases(UPDATE_SHAPES, ["update", "update+bootstrap"]))
def test_bootstrap_update(benchmark, device, shape, impl):
    from mlmetrics.metrics import ClassificationMetrics
    from mlmetrics.stats import Bootstrap

    x = bu.logits(shape, device)
    t = bu.targets(shape.n, shape.c, device)
    m = ClassificationMetrics(shape.c, topk=(1, 5))
    obj = Bootstrap(m, REPLICATES) if impl == "update+bootstrap" else m
    obj.update(x, t)  # state on the device, weights op loaded
    bu.run(benchmark, lambda: obj.update(x, t), op="bootstrap_update", role="ours" if "+" in impl else "peer",
           impl=impl, device=device, shape=shape, replicates=REPLICATES, measure_memory=False)


def _interleaved(fns: dict, rounds: int = 15, inner: int = 5) -> dict:
    """Best-of-``rounds`` seconds per call of each fn, the fns timed in turn within every round
    (so a busy machine slows them alike)."""
    import time

    best = {k: float("inf") for k in fns}
    for _ in range(rounds):
        for k, f in fns.items():
            t0 = time.perf_counter()
            for _ in range(inner):
                f()
            best[k] = min(best[k], (time.perf_counter() - t0) / inner)
    return best


def main() -> None:
    """``python benchmarks/test_bench_bootstrap.py [threads]``: the update overhead and the speedup
    over torchmetrics, timed interleaved (robust to other load), one line per number."""
    import sys

    from mlmetrics.metrics import ClassificationMetrics
    from mlmetrics.stats import Bootstrap

    torch.set_num_threads(int(sys.argv[1]) if len(sys.argv) > 1 else 1)
    print(f"torch threads: {torch.get_num_threads()}")
    for n in (256, 1024):
        shape = Shape(n, 1000, 5, "float32")
        x, t = bu.logits(shape, "cpu"), bu.targets(n, 1000, "cpu")
        m = ClassificationMetrics(1000, topk=(1, 5))
        bs = Bootstrap(ClassificationMetrics(1000, topk=(1, 5)), REPLICATES)
        m.update(x, t), bs.update(x, t)
        r = _interleaved({"update": lambda: m.update(x, t), "update+bootstrap": lambda: bs.update(x, t)})
        print(f"{n}x1000 update {1e3 * r['update']:.3f} ms, with {REPLICATES} replicates "
              f"{1e3 * r['update+bootstrap']:.3f} ms: +{100 * (r['update+bootstrap'] / r['update'] - 1):.0f}%")
    import time

    n = 50000  # dedupe (num_samples known): the metric keeps per-sample records, the replicates come at compute()
    x, t, idx = bu.logits(Shape(256, 1000, 5, "float32"), "cpu"), bu.targets(256, 1000, "cpu"), torch.arange(256)
    m = ClassificationMetrics(1000, topk=(1, 5), num_samples=n)
    bs = Bootstrap(ClassificationMetrics(1000, topk=(1, 5), num_samples=n), REPLICATES)
    m.update(x, t, idx), bs.update(x, t, idx)
    r = _interleaved({"update": lambda: m.update(x, t, idx), "update+bootstrap": lambda: bs.update(x, t, idx)})
    print(f"dedupe (num_samples={n}) 256x1000 update {1e3 * r['update']:.3f} ms, with {REPLICATES} replicates "
          f"{1e3 * r['update+bootstrap']:.3f} ms: +{100 * (r['update+bootstrap'] / r['update'] - 1):.0f}%")
    for s in range(0, n, 256):
        j = torch.arange(s, min(s + 256, n))
        bs.update(x[:len(j)], t[:len(j)], j)
    t0 = time.perf_counter()
    bs.metrics.compute()
    t1 = time.perf_counter()
    bs.compute()
    t2 = time.perf_counter()
    print(f"dedupe compute() over {n} samples: {t1 - t0:.2f} s, with {REPLICATES}-replicate intervals {t2 - t1:.2f} s")
    shape = ACC_SHAPES[0]
    batches = _batches(shape, "cpu")
    from torchmetrics.classification import MulticlassAccuracy
    from torchmetrics.wrappers import BootStrapper

    tm = BootStrapper(MulticlassAccuracy(num_classes=shape.c, average="micro"), num_bootstraps=REPLICATES,
                      sampling_strategy="poisson")
    ours = Bootstrap(ClassificationMetrics(shape.c, topk=(1,), include=("accuracy",)), REPLICATES)
    x, t = batches[0]
    r = _interleaved({"mlmetrics": lambda: ours.update(x, t), "torchmetrics": lambda: tm.update(x, t)},
                     rounds=3, inner=1)
    print(f"one update of {shape.n}x{shape.c} with {REPLICATES} replicates: mlmetrics {1e3 * r['mlmetrics']:.2f} ms, "
          f"torchmetrics BootStrapper {1e3 * r['torchmetrics']:.1f} ms: {r['torchmetrics'] / r['mlmetrics']:.0f}x")
    r = _interleaved({"mlmetrics": lambda: _ours(batches, shape.c),
                      "torchmetrics": lambda: _torchmetrics(batches, shape.c)}, rounds=3, inner=1)
    print(f"top-1 with {REPLICATES} replicates over {BATCHES} batches of {shape.n}x{shape.c}: mlmetrics "
          f"{1e3 * r['mlmetrics']:.1f} ms, torchmetrics BootStrapper {1e3 * r['torchmetrics']:.1f} ms: "
          f"{r['torchmetrics'] / r['mlmetrics']:.1f}x")


if __name__ == "__main__":
    import os
    import sys

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    main()
