"""``torchrun --nproc-per-node 2 -m mlmetrics eval`` (gloo, CPU) writes the report and store a
single process writes: 7 files over 2 ranks, so one sample is a padding duplicate and one
file is undecodable."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from mlmetrics.harness import open_store

from .helpers import checkpoint, comparable, val_folder

pytestmark = pytest.mark.distributed
ROOT = Path(__file__).resolve().parents[2]


def _run(prefix, argv, tmp_path):
    # one thread and batch size 1 in both runs: the model's own CPU arithmetic is then the
    # same bit for bit, so any difference would be the harness's
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    p = subprocess.run([sys.executable, *prefix, "-m", "mlmetrics", "eval", *argv], cwd=tmp_path, env=env,
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-2000:]
    return p


def test_two_gloo_processes_equal_one(tmp_path):
    data = val_folder(tmp_path / "val", n=6)
    ckpt = checkpoint(tmp_path, "test_efficientnet", 1)
    common = ["--model", f"test_efficientnet:{ckpt}", "--data", str(data), "--img-size", "64", "-b", "1", "-j", "0",
              "--device", "cpu", "--no-progress", "--per-image", "--logits-dtype", "fp32", "-q"]
    _run([], common + ["--out", str(tmp_path / "one.json"), "--save-logits", str(tmp_path / "one")], tmp_path)
    _run(["-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"],
         common + ["--out", str(tmp_path / "two.json"), "--save-logits", str(tmp_path / "two")], tmp_path)
    one, two = (json.loads((tmp_path / f"{n}.json").read_text()) for n in ("one", "two"))
    assert two["config"]["world_size"] == 2 and one["config"]["world_size"] == 1
    assert comparable(two) == comparable(one)
    assert two["num_scored"] == 6 and two["num_skipped"] == 1 and two["metrics"]["num_samples"] == 6
    (a,), (b,) = open_store(tmp_path / "one"), open_store(tmp_path / "two")
    assert torch.equal(a.logits, b.logits) and torch.equal(a.rows, b.rows)
