"""The README's integration snippets are the files under examples/ (and the benchmark template):
each one runs here as a user would run it (their own asserts check the numbers)."""
import os
import runpy
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_torchmetrics_swap(capsys):
    runpy.run_path(str(ROOT / "examples" / "torchmetrics_swap.py"), run_name="__main__")
    assert "ece: torchmetrics" in capsys.readouterr().out


def test_timm_validate(capsys):
    pytest.importorskip("timm")
    runpy.run_path(str(ROOT / "examples" / "timm_validate.py"), run_name="__main__")
    assert "ReaL top-1 / top-5 (%)" in capsys.readouterr().out


def test_benchmark_your_code_template():
    pytest.importorskip("pytest_benchmark")
    env = dict(os.environ, PYTHONPATH=str(ROOT), MLMETRICS_BENCH_QUIET_WAIT="0", MLMETRICS_BENCH_DEVICES="cpu")
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--benchmark-disable",
                        str(ROOT / "benchmarks" / "test_bench_your_code.py")], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]
    assert "6 passed" in r.stdout
