"""Shared helpers for the mlmetrics benchmarks (shape grids, data cache, timing, memory).

Layout of every benchmark: one pytest test per (shape, implementation); all the
implementations of one shape share a pytest-benchmark *group* named

    <op>|<device>|N=<n>|C=<c>|k=<k>|<dtype>

and carry ``benchmark.extra_info`` with everything ``benchmarks/report.py`` needs:
op, role ("ours" / "peer" / "bound"), impl, backend, device, n, c, k, dtype,
bytes_read, peak_extra_bytes (and the device name on GPU).

Environment:
  MLMETRICS_BENCH_FULL=1       the whole shape grid (default: a subset that runs in a few
                               minutes on a 2-core CPU)
  MLMETRICS_BENCH_REFERENCE=1  also time the slow NumPy reference backend (smoke tests only)
  MLMETRICS_BENCH_DEVICES=cpu  restrict devices (comma list; default: cpu, plus cuda if present)
  MLMETRICS_BENCH_DATA=iid     i.i.d. N(0, 9) logits instead of the classifier-like default
  MLMETRICS_BENCH_QUIET_WAIT=20  before each benchmark, wait up to this many seconds for other
                               processes to drop below 15 % of the cores (total budget:
                               MLMETRICS_BENCH_QUIET_BUDGET=300 s); the other load during timing is
                               recorded in extra_info["other_load"]
"""
from __future__ import annotations

import ctypes
import gc
import os
import time
import tracemalloc
from typing import Callable, Iterable, NamedTuple

import pytest
import torch

FULL = os.environ.get("MLMETRICS_BENCH_FULL", "0") == "1"
WITH_REFERENCE = os.environ.get("MLMETRICS_BENCH_REFERENCE", "0") == "1"

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}
SHORT_DTYPE = {"float32": "fp32", "bfloat16": "bf16"}

# Calls slower than this are timed with a fixed, small number of rounds (pedantic mode)
# instead of pytest-benchmark's calibration, so slow peers (timm, sklearn) stay bounded.
SLOW_CALL_S = 0.25
SLOW_ROUNDS = int(os.environ.get("MLMETRICS_BENCH_SLOW_ROUNDS", "3"))


def devices() -> list[str]:
    env = os.environ.get("MLMETRICS_BENCH_DEVICES")
    if env:
        return [d.strip() for d in env.split(",") if d.strip()]
    return ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


class Shape(NamedTuple):
    n: int
    c: int
    k: int
    dtype: str  # key of DTYPES

    @property
    def id(self) -> str:
        return f"N{self.n}-C{self.c}-k{self.k}-{SHORT_DTYPE[self.dtype]}"

    @property
    def itemsize(self) -> int:
        return torch.empty((), dtype=DTYPES[self.dtype]).element_size()

    @property
    def logits_bytes(self) -> int:
        return self.n * self.c * self.itemsize


FULL_N = (1024, 65536)
FULL_C = (10, 1000, 21841, 131072)
FULL_K = (1, 5, 100)


def full_grid(ks: Iterable[int] = FULL_K, dtypes: Iterable[str] = ("float32", "bfloat16")) -> list[Shape]:
    return [Shape(n, c, k, dt) for dt in dtypes for n in FULL_N for c in FULL_C for k in ks if k <= c]


# ---------------------------------------------------------------------------------------
# Memory: does a shape fit?
# ---------------------------------------------------------------------------------------
def _mem_available_bytes() -> int:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 8 << 30


def fits(shape: Shape, device: str, copies: float = 2.5) -> bool:
    """Whether ~``copies`` N x C fp32-sized buffers fit (peers materialise N x C softmax)."""
    need = shape.n * shape.c * max(shape.itemsize, 4) * copies
    if device == "cuda":
        if not torch.cuda.is_available():
            return False
        return need <= 0.8 * torch.cuda.get_device_properties(0).total_memory
    return need <= 0.7 * _mem_available_bytes()


def cases(shapes: Iterable[Shape], impls: Iterable[str], *, copies: float = 2.5):
    """pytest params ordered shape-major (so the data cache is hit), impl-minor."""
    out = []
    for dev in devices():
        for s in shapes:
            if not fits(s, dev, copies):
                continue
            for impl in impls:
                out.append(pytest.param(dev, s, impl, id=f"{dev}-{s.id}-{impl}"))
    return out


# ---------------------------------------------------------------------------------------
# Data (cached: one logits tensor alive at a time)
# ---------------------------------------------------------------------------------------
_CACHE: dict = {}


def logits(shape: Shape, device: str, seed: int = 0) -> torch.Tensor:
    key = ("logits", shape.n, shape.c, shape.dtype, device, seed)
    if key not in _CACHE:
        _CACHE.clear()
        gc.collect()
        if device == "cuda":
            torch.cuda.empty_cache()
        # Generated on the device itself (no host copy of big GPU tensors), in row chunks:
        # bounded fp32 temporaries for bf16.
        g = torch.Generator(device=device).manual_seed(seed)
        out = torch.empty(shape.n, shape.c, dtype=DTYPES[shape.dtype], device=device)
        step = max(1, (64 << 20) // (4 * shape.c))
        for i in range(0, shape.n, step):
            rows = min(step, shape.n - i)
            out[i:i + rows] = _classifier_like(rows, shape.c, g, device)
        _CACHE[key] = out
    return _CACHE[key]


DATA = os.environ.get("MLMETRICS_BENCH_DATA", "classifier")


def _classifier_like(rows: int, c: int, g: torch.Generator, device: str) -> torch.Tensor:
    """Logits shaped like a trained classifier's, not i.i.d. rows (MLMETRICS_BENCH_DATA).

    "classifier" (default): per row, N(0, 1) noise times a random scale in [0.5, 3] (confident
    and unsure rows), plus a random offset N(0, 2^2) (logits are shift-free for softmax but
    not for value-based shortcuts), plus one class raised by 3..9 scale units (the
    prediction). Rows are independent and differ in scale and offset, so no kernel can
    profit from consecutive rows being alike. "iid": N(0, 3^2) everywhere.
    """
    z = torch.randn(rows, c, generator=g, device=device)
    if DATA == "iid":
        return z.mul_(3.0)
    scale = torch.rand(rows, 1, generator=g, device=device).mul_(2.5).add_(0.5)
    shift = torch.randn(rows, 1, generator=g, device=device).mul_(2.0)
    peak = torch.randint(0, c, (rows, 1), generator=g, device=device)
    bump = torch.rand(rows, 1, generator=g, device=device).mul_(6.0).add_(3.0)
    z.scatter_add_(1, peak, bump)
    return z.mul_(scale).add_(shift)


def targets(n: int, c: int, device: str, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, c, (n,), generator=g).to(device)


_REAL_LISTS: list | None = None


# Set sizes of the 50,000 ReaL sets (0 = excluded image): used only when timm is missing.
REAL_SIZE_COUNTS = {0: 3163, 1: 39394, 2: 5408, 3: 1319, 4: 411, 5: 161, 6: 88, 7: 41, 8: 13, 9: 2}
REAL_SOURCE = ["imagenet-real"]


def _synthetic_real_lists(seed: int = 3) -> list[list[int]]:
    """50,000 sets with ReaL's exact size histogram and random classes in [0, 1000)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    sizes = np.repeat(list(REAL_SIZE_COUNTS), list(REAL_SIZE_COUNTS.values()))
    rng.shuffle(sizes)
    return [sorted(rng.choice(1000, size=int(m), replace=False).tolist()) for m in sizes]


def real_lists() -> list[list[int]]:
    """The 50,000 ImageNet ReaL label lists (timm's JSON).

    Without timm (e.g. a bare GPU machine) label_hits falls back to synthetic sets with ReaL's
    size histogram (recorded as extra_info["label_sets"] = "synthetic-real-sizes").
    """
    global _REAL_LISTS
    if _REAL_LISTS is None:
        try:
            from mlmetrics.data.real import load_real_lists

            _REAL_LISTS = load_real_lists()
        except (ImportError, FileNotFoundError, OSError):
            _REAL_LISTS = _synthetic_real_lists()
            REAL_SOURCE[0] = "synthetic-real-sizes"
    return _REAL_LISTS


def real_sized_sets(n: int, c: int):
    """ReaL label sets cycled to ``n`` rows, as a LabelSets with ``num_classes=c``.

    For c >= 1000 these are the ReaL sets themselves; for c < 1000 each label is mapped to
    ``label * c // 1000`` (duplicates removed), keeping the set sizes ReaL-like.
    """
    from mlmetrics import LabelSets

    lists = real_lists()
    rows = [lists[i % len(lists)] for i in range(n)]
    if c < 1000:
        rows = [[v * c // 1000 for v in r] for r in rows]
    sets = LabelSets.from_lists(rows, 1000 if c >= 1000 else c)
    if c > 1000:
        sets = LabelSets(sets.offsets, sets.labels, c, validate=False)
    return sets


# ---------------------------------------------------------------------------------------
# mlmetrics backends
# ---------------------------------------------------------------------------------------
def need(module: str):
    """Import ``module`` or skip the benchmark (any import failure, e.g. timm without torchvision)."""
    import importlib

    try:
        return importlib.import_module(module)
    except Exception as e:  # noqa: BLE001
        pytest.skip(f"{module} unavailable: {type(e).__name__}: {e}")


def ours_impls() -> list[str]:
    """Implementation ids for mlmetrics: one per backend that could exist on some device."""
    impls = ["mlmetrics-cpu", "mlmetrics-cuda", "mlmetrics-triton"]
    if WITH_REFERENCE:
        impls.append("mlmetrics-reference")
    return impls


def require_backend(impl: str, device: str) -> str:
    """The backend name of an ``mlmetrics-<backend>`` impl, or skip when unavailable here."""
    mlmetrics = need("mlmetrics")
    backend = impl.split("-", 1)[1]
    avail = mlmetrics.available_backends(device)
    if backend == "triton" and device == "cpu":
        pytest.skip("triton on CPU tensors is only the interpreter: not benchmarked")
    if backend not in avail:
        pytest.skip(f"mlmetrics backend {backend!r} unavailable on {device} (available: {avail})")
    return backend


# ---------------------------------------------------------------------------------------
# Timing + memory
# ---------------------------------------------------------------------------------------
def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def _libc():
    try:
        return ctypes.CDLL("libc.so.6")
    except OSError:
        return None


_LIBC = _libc()
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3


def set_malloc_thresholds(mmap_threshold: int, trim_threshold: int) -> None:
    """Fix glibc's mmap/trim thresholds (no dynamic adjustment; no-op off glibc)."""
    if _LIBC is not None and hasattr(_LIBC, "mallopt"):
        _LIBC.mallopt(_M_MMAP_THRESHOLD, int(mmap_threshold))
        _LIBC.mallopt(_M_TRIM_THRESHOLD, int(trim_threshold))


# While timing: glibc's own "warmed-up" state (mmap threshold at its dynamic maximum,
# 32 MiB), made deterministic so every benchmark sees the same allocator.
TIMING_MMAP = 32 << 20
set_malloc_thresholds(TIMING_MMAP, 2 * TIMING_MMAP)


def _status_bytes(key: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(key):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def _reset_peak_rss() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def peak_extra_memory(fn: Callable[[], object], device: str) -> tuple[int | None, str]:
    """Peak memory one call of ``fn`` needs beyond what is already allocated.

    CPU: max(peak-RSS delta, tracemalloc peak). During this call glibc's mmap threshold is
    lowered to 128 KiB so every buffer of 128 KiB and up is a fresh mapping, counted in
    RSS while alive and returned on free (the peak RSS is reset through
    /proc/self/clear_refs). GPU: torch.cuda.max_memory_allocated delta.
    Returns (bytes or None, method).
    """
    gc.collect()
    if device == "cuda":
        torch.cuda.synchronize()
        base = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        out = fn()
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated() - base
        del out
        return max(int(peak), 0), "torch.cuda.max_memory_allocated"
    set_malloc_thresholds(128 << 10, 128 << 10)
    try:
        if _LIBC is not None and hasattr(_LIBC, "malloc_trim"):
            _LIBC.malloc_trim(0)
        base = _status_bytes("VmRSS:")
        ok = base is not None and _reset_peak_rss()
        tracemalloc.start()
        out = fn()
        _, traced = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        hwm = _status_bytes("VmHWM:") if ok else None
        del out
    finally:
        set_malloc_thresholds(TIMING_MMAP, 2 * TIMING_MMAP)
    if hwm is None:
        return int(traced), "tracemalloc"
    return max(int(hwm - base), int(traced), 0), "rss-hwm+tracemalloc"


# ---------------------------------------------------------------------------------------
# Other load on a shared machine
# ---------------------------------------------------------------------------------------
QUIET_WAIT_S = float(os.environ.get("MLMETRICS_BENCH_QUIET_WAIT", "20"))      # per benchmark
QUIET_BUDGET_S = float(os.environ.get("MLMETRICS_BENCH_QUIET_BUDGET", "300"))  # per pytest run
QUIET_LOAD = 0.15
_waited = [0.0]


def _cpu_snapshot():
    """(wall s, busy CPU s of the whole machine, CPU s of this process) or None off Linux."""
    try:
        with open("/proc/stat") as f:
            parts = f.readline().split()
    except OSError:
        return None
    v = [int(x) for x in parts[1:]]
    busy = v[0] + v[1] + v[2] + v[5] + v[6] + (v[7] if len(v) > 7 else 0)  # user nice system irq softirq steal
    t = os.times()
    return time.perf_counter(), busy / os.sysconf("SC_CLK_TCK"), t.user + t.system


def other_load(before, after) -> float | None:
    """Mean fraction of the machine's cores busy with *other* processes between two snapshots."""
    if before is None or after is None or after[0] <= before[0]:
        return None
    ncpu = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    others = (after[1] - before[1]) - (after[2] - before[2])
    return min(max(others / ((after[0] - before[0]) * ncpu), 0.0), 1.0)


def wait_for_quiet() -> float:
    """Wait (bounded) until other processes use < 15 % of the cores; returns seconds waited."""
    t0 = time.perf_counter()
    limit = min(QUIET_WAIT_S, max(QUIET_BUDGET_S - _waited[0], 0.0))
    while True:
        a = _cpu_snapshot()
        time.sleep(0.3)
        load = other_load(a, _cpu_snapshot())
        if load is None or load < QUIET_LOAD or time.perf_counter() - t0 >= limit:
            break
    waited = time.perf_counter() - t0 - 0.3
    _waited[0] += max(waited, 0.0)
    return max(waited, 0.0)


def run(benchmark, fn: Callable[[], object], *, op: str, role: str, impl: str, device: str,
        shape: Shape, bytes_read: int | None = None, backend: str | None = None,
        measure_memory: bool = True, **extra) -> object:
    """Time ``fn`` (synchronising CUDA inside the timed call) and fill extra_info.

    ``role``: "ours" (mlmetrics), "peer" (a library or pure-torch alternative) or "bound"
    (a lower bound, e.g. one amax pass reading the same logits).
    """
    def timed():
        r = fn()
        _sync(device)
        return r

    benchmark.group = f"{op}|{device}|N={shape.n}|C={shape.c}|k={shape.k}|{shape.dtype}"
    info = benchmark.extra_info
    if op in ("label_hits", "real_accuracy"):
        info["label_sets"] = REAL_SOURCE[0]
    info.update(op=op, role=role, impl=impl, backend=backend or impl, device=device,
                n=shape.n, c=shape.c, k=shape.k, dtype=shape.dtype,
                bytes_read=int(bytes_read if bytes_read is not None else shape.logits_bytes),
                torch_threads=torch.get_num_threads())
    if device == "cuda":
        info["device_name"] = torch.cuda.get_device_name(0)
    info.update(extra)

    # Warm up once (compilation / autotuning / allocator) and decide how to time.
    t0 = time.perf_counter()
    result = timed()
    first = time.perf_counter() - t0
    if measure_memory:
        peak, method = peak_extra_memory(timed, device)
        info["peak_extra_bytes"] = peak
        info["memory_method"] = method
    # On a shared machine: start when other processes are quiet, and record how busy they
    # were while we timed (report.py flags rows measured under load).
    info["quiet_wait_s"] = round(wait_for_quiet(), 2)
    before = _cpu_snapshot()
    if first > SLOW_CALL_S:
        benchmark.pedantic(timed, rounds=SLOW_ROUNDS, iterations=1, warmup_rounds=0)
    else:
        benchmark(timed)
    load = other_load(before, _cpu_snapshot())
    info["other_load"] = None if load is None else round(load, 3)
    return result
