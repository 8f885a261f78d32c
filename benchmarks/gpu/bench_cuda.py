"""Benchmark of the CUDA kernels (v1: backend "cuda", v2: backend "cuda_v2") on a CUDA device.

    PYTHONUNBUFFERED=1 python -m benchmarks.gpu.bench_cuda [--kernel v1|v2|both] [--quick] [--md out.md]

Per shape: the median of 20 timed calls (CUDA events, after 3 warm-ups) of
``topk_stats(x, k, label_sets=..., with_softmax=True)`` ("ours"), the same with a target
("+target"), without softmax ("hits only"), and in the same process the baseline
``torch.softmax(x, -1).topk(k)`` + a membership test against padded label sets, and
``torch.amax(x)`` as a practical read-bandwidth probe. GB/s = bytes of logits read / time.
"""
from __future__ import annotations

import argparse
import sys

import numpy as np
import torch

SHAPES = [
    (65536, 1000, torch.float32, 5), (4096, 131072, torch.bfloat16, 5),
    (65536, 1000, torch.bfloat16, 5), (65536, 1000, torch.float16, 5),
    (4096, 131072, torch.float32, 5), (8192, 21841, torch.float32, 5),
    (65536, 10, torch.float32, 5), (65536, 100, torch.float32, 5), (16384, 3000, torch.float32, 5),
    (64, 262144, torch.float32, 5), (65536, 1000, torch.float32, 1), (65536, 1000, torch.float32, 20),
    (65536, 1000, torch.float32, 100), (4096, 131072, torch.bfloat16, 100),
]
QUICK = SHAPES[:2] + [(65536, 10, torch.float32, 5), (65536, 1000, torch.float32, 100)]
OPS = {"v1": "topk_stats", "v2": "topk_stats_v2"}


def time_ms(fn, iters=20, warmup=3):
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(iters):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        fn()
        b.record()
        b.synchronize()
        times.append(a.elapsed_time(b))
    return float(np.median(times))


def bench(shapes, kernels):
    import mlmetrics  # noqa: F401  (registers the ops)

    dev = torch.device("cuda")
    rows = []
    gen = torch.Generator(device=dev).manual_seed(0)
    for n, c, dt, k in shapes:
        x = (torch.randn(n, c, device=dev, generator=gen) * 3).to(dt)
        nbytes = x.numel() * x.element_size()
        sizes = torch.randint(1, 4, (n,), device=dev, generator=gen)  # ReaL-like: 1..3 labels per row
        offsets = torch.zeros(n + 1, dtype=torch.int64, device=dev)
        torch.cumsum(sizes, 0, out=offsets[1:])
        labels = torch.randint(0, c, (int(offsets[-1]),), device=dev, generator=gen, dtype=torch.int32)
        ranges = torch.stack([offsets[:-1], offsets[1:]], 1)
        padded = torch.full((n, 3), -1, dtype=torch.int64, device=dev)
        padded[torch.arange(3, device=dev)[None, :] < sizes[:, None]] = labels.long()
        target = torch.randint(0, c, (n,), device=dev, generator=gen)

        def torch_base():
            v, i = torch.softmax(x, -1).topk(k, -1)
            return v, (i[:, :, None] == padded[:, None, :]).any(-1)

        t_torch = time_ms(torch_base)
        t_probe = time_ms(lambda: torch.amax(x))
        for kern in kernels:
            op = getattr(torch.ops.mlmetrics, OPS[kern])
            t_soft = time_ms(lambda: op(x, k, None, ranges, labels, None, True))
            t_full = time_ms(lambda: op(x, k, target, ranges, labels, None, True))
            t_hits = time_ms(lambda: op(x, k, None, ranges, labels, None, False))
            row = dict(kernel=kern, n=n, c=c, dtype=str(dt).replace("torch.", ""), k=k, MB=nbytes / 1e6,
                       ours_ms=t_soft, ours_GBs=nbytes / t_soft / 1e6, target_ms=t_full, hits_only_ms=t_hits,
                       hits_only_GBs=nbytes / t_hits / 1e6, torch_ms=t_torch, speedup=t_torch / t_soft,
                       amax_GBs=nbytes / t_probe / 1e6)
            rows.append(row)
            print(" | ".join(f"{a}={b:.4g}" if isinstance(b, float) else f"{a}={b}" for a, b in row.items()), flush=True)
        del x
        torch.cuda.empty_cache()
    return rows


def markdown(rows, device):
    cols = ["kernel", "n", "c", "dtype", "k", "MB", "ours_ms", "ours_GBs", "target_ms", "hits_only_GBs", "torch_ms",
            "speedup", "amax_GBs"]
    out = [f"device: {device}; torch {torch.__version__}", "", "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        out.append("| " + " | ".join(f"{r[c]:.4g}" if isinstance(r[c], float) else str(r[c]) for c in cols) + " |")
    return "\n".join(out) + "\n"


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m benchmarks.gpu.bench_cuda", description=__doc__)
    p.add_argument("--kernel", choices=["v1", "v2", "both"], default="both")
    p.add_argument("--quick", action="store_true", help="the two target shapes, C=10 and k=100 only")
    p.add_argument("--md", help="write the table as Markdown here")
    a = p.parse_args(argv)
    if not torch.cuda.is_available():
        print("needs a CUDA device", file=sys.stderr)
        return 2
    kernels = ["v1", "v2"] if a.kernel == "both" else [a.kernel]
    rows = bench(QUICK if a.quick else SHAPES, kernels)
    table = markdown(rows, torch.cuda.get_device_name(0))
    print(table)
    if a.md:
        with open(a.md, "w") as f:
            f.write(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
