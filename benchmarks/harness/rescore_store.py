"""Re-scoring a logits store: M models x 50,000 x 1,000 float16 synthetic logits against
ImageNet ReaL (and the stored single-label targets), one ``mlmetrics rescore`` call.

    python benchmarks/harness/rescore_store.py --models 20 --out /tmp/store20
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import torch


def build(root: Path, models: int, n: int = 50000, c: int = 1000) -> None:
    from mlmetrics.harness import write_store

    images = [f"ILSVRC2012_val_{i + 1:08d}.JPEG" for i in range(n)]
    g = torch.Generator().manual_seed(0)
    targets = torch.randint(0, c, (n,), generator=g)
    for m in range(models):
        x = torch.randn(n, c, generator=g) * 2
        x[torch.arange(n), targets] += 2.0 + m * 0.1  # models of increasing accuracy
        write_store(root, images=images, targets=targets, label_sets=None, label_source=None, data=None,
                    models=[{"name": f"model{m:02d}", "logits": x, "rows": torch.arange(n)}], dtype="fp16")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", type=int, default=20)
    ap.add_argument("--out", default="/tmp/mlmetrics-store")
    ap.add_argument("--subgroups", action="store_true", help="also the per-subgroup tables")
    a = ap.parse_args()
    root = Path(a.out)
    if not (root / "index.json").is_file():
        t = time.perf_counter()
        build(root, a.models)
        print(f"wrote {a.models} models in {time.perf_counter() - t:.1f} s")
    size = sum(p.stat().st_size for p in root.glob("*.npy")) / 1e9
    t = time.perf_counter()
    subprocess.run([sys.executable, "-m", "mlmetrics", "rescore", str(root), "--labels", "real", "-q",
                    "--leaderboard", str(root / "leaderboard.md")] + (["--subgroups"] if a.subgroups else []),
                   check=True)
    dt = time.perf_counter() - t
    print(f"rescore{' --subgroups' if a.subgroups else ''} {a.models} models x 50000 x 1000 float16 ({size:.1f} GB) against ReaL: {dt:.1f} s "
          f"({dt / a.models:.2f} s per model, process start and ReaL loading included)")


if __name__ == "__main__":
    main()
