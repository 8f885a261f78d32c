"""Wall time of N models in ONE ``mlmetrics eval`` run (images decoded once) vs N separate
runs, on generated photo-sized JPEGs with tiny models (decoding dominates, as on a CPU).

    python benchmarks/harness/multi_model.py --images 200 --out /tmp/mm
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

MODELS = ("test_efficientnet", "test_byobnet", "test_efficientnet_ln")  # one preprocessing config


def make_images(d: Path, n: int, seed: int = 0) -> None:
    """``n`` 500x375 JPEGs (ImageNet's typical size): smooth colour fields plus noise."""
    from PIL import Image

    d.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:375, 0:500]
    for i in range(n):
        f = rng.uniform(0.005, 0.05, 3)
        base = np.stack([127 + 100 * np.sin(f[c] * (xx + yy * (c + 1)) + c) for c in range(3)], -1)
        img = np.clip(base + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8)
        Image.fromarray(img).save(d / f"ILSVRC2012_val_{i + 1:08d}.JPEG", quality=90)


def run(args: list[str]) -> float:
    t = time.perf_counter()
    subprocess.run([sys.executable, "-m", "mlmetrics", "eval", *args], check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=200)
    ap.add_argument("--out", default="/tmp/mlmetrics-multi-model")
    ap.add_argument("--workers", default="1")
    ap.add_argument("--repeats", type=int, default=2)
    a = ap.parse_args()
    out = Path(a.out)
    data = out / "val"
    if not data.is_dir() or len(os.listdir(data)) != a.images:
        make_images(data, a.images)
    common = ["--data", str(data), "-j", a.workers, "--device", "cpu", "--no-progress", "-q", "-b", "32"]
    one_run, separate = [], []
    for _ in range(a.repeats):
        one_run.append(run(common + [x for m in MODELS for x in ("--model", m)]))
        separate.append(sum(run(common + ["--model", m]) for m in MODELS))
    best_one, best_sep = min(one_run), min(separate)
    print(f"{len(MODELS)} models x {a.images} images, workers={a.workers}: one run {best_one:.1f} s, "
          f"{len(MODELS)} separate runs {best_sep:.1f} s, ratio {best_one / best_sep:.2f}x "
          f"(runs: {[round(t, 1) for t in one_run]} vs {[round(t, 1) for t in separate]})")


if __name__ == "__main__":
    main()
