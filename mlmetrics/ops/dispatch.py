"""Backends of the ops and the choice between them: the compiled extension (C++ CPU, CUDA C++),
Triton, and the NumPy oracle. Schemas: :mod:`mlmetrics.ops.schema`; semantics:
:mod:`mlmetrics.ops.reference`."""
from __future__ import annotations

import os
import warnings
from typing import Callable

import torch

from . import checks, reference

BACKENDS = ("auto", "cpu", "cuda", "cuda_v2", "triton", "triton_filtered", "reference")
#: backends that "auto" never picks: kernels checked by the CPU emulation / interpreter and the static
#: SASS budget but not yet timed on a GPU ("cuda" and "triton" are the kernels measured on an H100)
UNMEASURED_BACKENDS = ("cuda_v2", "triton_filtered")

# ---------------------------------------------------------------------------------------
# The compiled extension
# ---------------------------------------------------------------------------------------
CPU_ISAS = ("avx512", "avx2", "scalar")
if os.environ.get("MLMETRICS_CPU_ISA", CPU_ISAS[0]) not in CPU_ISAS:  # the kernel reads it at load
    raise ValueError(f"MLMETRICS_CPU_ISA must be one of {CPU_ISAS} (a cap on the CPU kernel's instruction set), "
                     f"got {os.environ['MLMETRICS_CPU_ISA']!r}")
CPU_TUNES = ("auto", "intel", "amd")
if os.environ.get("MLMETRICS_CPU_TUNE", CPU_TUNES[0]) not in CPU_TUNES:  # read with MLMETRICS_CPU_ISA
    raise ValueError(f"MLMETRICS_CPU_TUNE must be one of {CPU_TUNES} (which of the CPU kernel's equivalent "
                     f"versions run; auto: intel on every vendor), got {os.environ['MLMETRICS_CPU_TUNE']!r}")

EXTENSION_ERROR: str | None = None
try:
    from .. import _C  # noqa: F401  (registers torch.ops.mlmetrics.*)

    HAS_EXTENSION = True
except Exception as e:  # ImportError, or an OSError from a .so built against another torch
    HAS_EXTENSION = False
    EXTENSION_ERROR = f"{type(e).__name__}: {e}"
    if os.environ.get("MLMETRICS_REQUIRE_EXTENSION") == "1":
        raise
    warnings.warn(
        "mlmetrics: the compiled extension mlmetrics._C could not be loaded "
        f"({EXTENSION_ERROR}); backend='auto' falls back to Triton on CUDA tensors and to "
        "the slow reference on CPU tensors. Reinstall with `pip install --no-build-isolation -e .`.",
        RuntimeWarning,
        stacklevel=2,
    )


def has_cuda_kernels() -> bool:
    """True when the extension was built with its CUDA kernels."""
    return HAS_EXTENSION and torch._C._dispatch_has_kernel_for_dispatch_key("mlmetrics::topk_stats", "CUDA")


def cpu_isa() -> str | None:
    """The instruction set the CPU kernel runs with here: "avx512", "avx2" or "scalar" (the CPU's
    best, capped by the environment variable MLMETRICS_CPU_ISA); None without the extension."""
    return torch.ops.mlmetrics.cpu_isa() if HAS_EXTENSION else None


def _triton_usable(device: torch.device) -> bool:
    try:
        import triton  # noqa: F401
    except Exception:
        return False
    if device.type == "cuda":
        return True
    return os.environ.get("TRITON_INTERPRET") == "1"  # the interpreter runs on CPU tensors


# ---------------------------------------------------------------------------------------
# Backends
# ---------------------------------------------------------------------------------------
def _run_extension(logits, k, target, ranges, labels, class_subset, with_softmax):
    return torch.ops.mlmetrics.topk_stats(logits, k, target, ranges, labels, class_subset, with_softmax)


def _run_cuda_v2(logits, k, target, ranges, labels, class_subset, with_softmax):
    return torch.ops.mlmetrics.topk_stats_v2(logits, k, target, ranges, labels, class_subset, with_softmax)


def _run_triton(logits, k, target, ranges, labels, class_subset, with_softmax):
    from .triton import topk_stats as triton_topk_stats

    return triton_topk_stats(logits, k, target, ranges, labels, class_subset, with_softmax)


def _run_triton_filtered(logits, k, target, ranges, labels, class_subset, with_softmax):
    from .triton.filtered import topk_stats as filtered_topk_stats

    return filtered_topk_stats(logits, k, target, ranges, labels, class_subset, with_softmax)


RUNNERS: dict[str, Callable] = {
    "cpu": _run_extension,
    "cuda": _run_extension,
    "cuda_v2": _run_cuda_v2,
    "triton": _run_triton,
    "triton_filtered": _run_triton_filtered,
    "reference": reference.topk_stats,
}


def available_backends(device: str | torch.device = "cpu") -> list[str]:
    """Backends that can run on tensors of ``device`` (excluding "auto")."""
    device = torch.device(device)
    out = []
    if device.type == "cpu" and HAS_EXTENSION:
        out.append("cpu")
    if device.type == "cuda" and has_cuda_kernels():
        out += ["cuda", "cuda_v2"]
    if _triton_usable(device):
        out += ["triton", "triton_filtered"]
    out.append("reference")
    return out


def choose_gpu_backend(n: int, c: int, k: int) -> str:
    """The faster GPU backend for an [n, c] top-k.

    Measured on an H100 (benchmarks/results/gpu_triton_notes.md, benchmarks/results/gpu_cuda_notes.md;
    CUDA kernel v1 = commit 870feb6): Triton is faster from C = 100 up (65,536x1,000 fp32 k=5:
    0.298 vs 0.524 ms; 4,096x131,072 bf16: 0.602 vs 2.604 ms; 65,536x100: 0.096 vs 0.099 ms),
    CUDA for tiny rows (65,536x10: 0.069 vs 0.077 ms).
    """
    triton_ok = _triton_usable(torch.device("cuda"))
    if not has_cuda_kernels():
        return "triton"
    if not triton_ok or c <= 32:
        return "cuda"
    return "triton"


def resolve_backend(backend: str, logits: torch.Tensor, k: int) -> str:
    checks.check_choice(backend, "backend", BACKENDS)
    device = logits.device
    if backend == "auto":
        if device.type == "cuda":
            choice = choose_gpu_backend(logits.shape[0], logits.shape[1], k)
            if choice == "cuda" or _triton_usable(device):
                return choice
            return "reference"
        return "cpu" if HAS_EXTENSION and device.type == "cpu" else "reference"
    if backend == "reference":
        return backend
    if backend not in available_backends(device):
        why = {
            "cpu": "needs a CPU tensor and the compiled extension"
            + ("" if HAS_EXTENSION else f" (not loaded: {EXTENSION_ERROR})"),
            "cuda": "needs a CUDA tensor and the extension built with CUDA (MLMETRICS_CUDA=1)",
            "cuda_v2": "needs a CUDA tensor and the extension built with CUDA (MLMETRICS_CUDA=1)",
            "triton": "needs triton and a CUDA tensor (or TRITON_INTERPRET=1 for CPU tensors)",
            "triton_filtered": "needs triton and a CUDA tensor (or TRITON_INTERPRET=1 for CPU tensors)",
        }[backend]
        raise RuntimeError(f"backend {backend!r} is not available for a tensor on {device}: it {why}")
    return backend


