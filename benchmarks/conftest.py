"""pytest configuration for benchmarks/ (run: ``pytest benchmarks/ --benchmark-only``).

Not part of the default test run (pyproject's testpaths is tests/). Adds the machine
description (CPU model, cores, GPU, torch/triton versions, mlmetrics backends) to the
pytest-benchmark JSON so results are self-describing, and gives every benchmark (yours too:
see ``test_bench_your_code.py``) the fixture ``bench_inputs``.

The shared helpers import as ``benchutil`` inside benchmarks/ and as ``benchmarks.benchutil``
from the repository root.
"""
from __future__ import annotations

import os
import platform
import sys

sys.path.insert(0, os.path.dirname(__file__))  # benchutil


import pytest


@pytest.fixture
def bench_inputs():
    """``bench_inputs(shape, device="cpu") -> (logits [N, C], target [N] int64)``: the suites'
    classifier-like logits (``MLMETRICS_BENCH_DATA=iid`` for i.i.d. ones), cached per shape, so
    every implementation of one pytest-benchmark group reads the same tensor."""
    import benchutil

    def make(shape, device: str = "cpu"):
        return benchutil.logits(shape, device), benchutil.targets(shape.n, shape.c, device)

    return make


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _mem_total_gib() -> float | None:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        return None
    return None


def pytest_benchmark_update_machine_info(config, machine_info):
    import torch

    info = {
        "cpu_model": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "cpu_affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "mem_total_gib": _mem_total_gib(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "cuda_available": torch.cuda.is_available(),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "torch_cuda": torch.version.cuda,
        "bench_full_grid": os.environ.get("MLMETRICS_BENCH_FULL", "0") == "1",
        "bench_data": os.environ.get("MLMETRICS_BENCH_DATA", "classifier"),
    }
    try:
        import triton

        info["triton"] = triton.__version__
    except Exception:
        info["triton"] = None
    try:
        import mlmetrics

        info["mlmetrics"] = mlmetrics.__version__
        info["mlmetrics_extension"] = bool(mlmetrics.HAS_EXTENSION)
        info["mlmetrics_backends_cpu"] = mlmetrics.available_backends("cpu")
        info["mlmetrics_cpu_isa"] = mlmetrics.cpu_isa()
        if torch.cuda.is_available():
            info["mlmetrics_backends_cuda"] = mlmetrics.available_backends("cuda")
    except Exception as e:  # pragma: no cover
        info["mlmetrics"] = f"import failed: {e}"
    for mod in ("timm", "torchmetrics", "sklearn", "numpy"):
        try:
            info[mod] = __import__(mod).__version__
        except Exception:
            info[mod] = None
    machine_info["mlmetrics_bench"] = info
