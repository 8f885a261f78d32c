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


def run(args: list[str], report: Path) -> tuple[float, float, float]:
    """(wall s, decode wait s, model s summed over the run's models) of one ``mlmetrics eval``."""
    import json

    t = time.perf_counter()
    subprocess.run([sys.executable, "-m", "mlmetrics", "eval", *args, "--out", str(report)], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - t
    rep = json.loads(report.read_text())
    reps = rep.get("reports", [rep])
    return wall, reps[0]["timings"]["data_wait_s"], sum(r["timings"]["model_s"] for r in reps)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=200)
    ap.add_argument("--out", default="/tmp/mlmetrics-multi-model")
    ap.add_argument("--workers", default="0", help="DataLoader workers (0: decode in the timed process)")
    ap.add_argument("--repeats", type=int, default=2)
    a = ap.parse_args()
    out = Path(a.out)
    data = out / "val"
    if not data.is_dir() or len(os.listdir(data)) != a.images:
        make_images(data, a.images)
    common = ["--data", str(data), "-j", a.workers, "--device", "cpu", "--no-progress", "-q", "-b", "32"]
    one_run, separate = [], []
    for _ in range(a.repeats):  # interleaved, so a change in machine load hits both
        one_run.append(run(common + [x for m in MODELS for x in ("--model", m)], out / "one.json"))
        runs = [run(common + ["--model", m], out / "sep.json") for m in MODELS]
        separate.append(tuple(sum(r[i] for r in runs) for i in range(3)))
    best_one, best_sep = min(one_run), min(separate)
    print(f"{len(MODELS)} models x {a.images} images, workers={a.workers}: one run {best_one[0]:.1f} s "
          f"(decode wait {best_one[1]:.1f} s, models {best_one[2]:.1f} s), {len(MODELS)} separate runs "
          f"{best_sep[0]:.1f} s (decode wait {best_sep[1]:.1f} s, models {best_sep[2]:.1f} s): "
          f"ratio {best_one[0] / best_sep[0]:.2f}x; all walls {[round(t[0], 1) for t in one_run]} vs "
          f"{[round(t[0], 1) for t in separate]}")


if __name__ == "__main__":
    main()
