"""The custom ops: loading the compiled extension, fake (meta) impls, input checks and
backend choice. Every public entry point funnels into :func:`topk_stats`.

Ops (schemas live in ``csrc/ops.cpp``):
  mlmetrics::topk_stats(Tensor logits, int k, Tensor? target, Tensor? label_ranges,
                        Tensor? labels, Tensor? class_subset, bool with_softmax)
      -> (Tensor topk_logits, Tensor topk_indices, Tensor hits, Tensor row_stats, Tensor target_rank)
  mlmetrics::softmax_topk(Tensor logits, int k) -> (Tensor probs, Tensor indices)
  mlmetrics::topk_label_hits(Tensor logits, Tensor label_ranges, Tensor labels, int k) -> Tensor
Semantics (rank order, ties, NaN/inf policy): see :mod:`mlmetrics.reference`.
"""
from __future__ import annotations

import os
import warnings
import weakref
from typing import Callable, NamedTuple

import torch

from . import reference
from .reference import (NUM_STATS, STAT_ENTROPY, STAT_LOGSUMEXP, STAT_MAX_LOGIT, STAT_NONFINITE,
                        STAT_SUM_P2, STAT_TARGET_LOGIT)

BACKENDS = ("auto", "cpu", "cuda", "triton", "reference")
_FLOAT_DTYPES = (torch.float32, torch.float16, torch.bfloat16)

# ---------------------------------------------------------------------------------------
# The compiled extension
# ---------------------------------------------------------------------------------------
CPU_ISAS = ("avx512", "avx2", "scalar")
if os.environ.get("MLMETRICS_CPU_ISA", CPU_ISAS[0]) not in CPU_ISAS:  # the kernel reads it at load
    raise ValueError(f"MLMETRICS_CPU_ISA must be one of {CPU_ISAS} (a cap on the CPU kernel's instruction set), "
                     f"got {os.environ['MLMETRICS_CPU_ISA']!r}")

EXTENSION_ERROR: str | None = None
try:
    from . import _C  # noqa: F401  (registers torch.ops.mlmetrics.*)

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


if HAS_EXTENSION:

    @torch.library.register_fake("mlmetrics::topk_stats")
    def _topk_stats_fake(logits, k, target, label_ranges, labels, class_subset, with_softmax):
        n = logits.shape[0]
        return (
            logits.new_empty((n, k), dtype=torch.float32),
            logits.new_empty((n, k), dtype=torch.int64),
            logits.new_empty((n, k if label_ranges is not None else 0), dtype=torch.bool),
            logits.new_empty((n, NUM_STATS), dtype=torch.float32),
            logits.new_empty((n if target is not None else 0,), dtype=torch.int64),
        )

    @torch.library.register_fake("mlmetrics::softmax_topk")
    def _softmax_topk_fake(logits, k):
        n = logits.shape[0]
        return logits.new_empty((n, k), dtype=torch.float32), logits.new_empty((n, k), dtype=torch.int64)

    @torch.library.register_fake("mlmetrics::topk_label_hits")
    def _topk_label_hits_fake(logits, label_ranges, labels, k):
        return logits.new_empty((logits.shape[0], k), dtype=torch.bool)


# ---------------------------------------------------------------------------------------
# Results
# ---------------------------------------------------------------------------------------
class TopKStats(NamedTuple):
    """Everything one read of a logits row gives.

    topk_logits  f32  [N, k]   the k largest logits in rank order
    topk_indices i64  [N, k]   their class indices (ties: lower index first)
    hits         bool [N, k]   topk_indices[i, j] in sample i's label set ([N, 0] without sets)
    row_stats    f32  [N, 6]   columns STAT_* (max_logit, logsumexp, entropy, sum_p2,
                               target_logit, nonfinite)
    target_rank  i64  [N]      0-based rank of the target class (0 = top-1 correct);
                               -1 for a target outside [0, C); [0] without target
    """

    topk_logits: torch.Tensor
    topk_indices: torch.Tensor
    hits: torch.Tensor
    row_stats: torch.Tensor
    target_rank: torch.Tensor

    @property
    def max_logit(self) -> torch.Tensor:
        return self.row_stats[:, STAT_MAX_LOGIT]

    @property
    def logsumexp(self) -> torch.Tensor:
        return self.row_stats[:, STAT_LOGSUMEXP]

    @property
    def entropy(self) -> torch.Tensor:
        return self.row_stats[:, STAT_ENTROPY]

    @property
    def sum_p2(self) -> torch.Tensor:
        return self.row_stats[:, STAT_SUM_P2]

    @property
    def target_logit(self) -> torch.Tensor:
        return self.row_stats[:, STAT_TARGET_LOGIT]

    @property
    def nonfinite(self) -> torch.Tensor:
        """bool [N]: the row's softmax is undefined (NaN or +inf present, or all -inf)."""
        return self.row_stats[:, STAT_NONFINITE] != 0

    @property
    def topk_probs(self) -> torch.Tensor:
        """f32 [N, k]: softmax probabilities of the top-k classes (needs with_softmax)."""
        return torch.exp(self.topk_logits - self.logsumexp[:, None])

    @property
    def max_prob(self) -> torch.Tensor:
        return torch.exp(self.max_logit - self.logsumexp)

    @property
    def nll(self) -> torch.Tensor:
        """f32 [N]: -log softmax(logits)[target] (needs a target and with_softmax)."""
        return self.logsumexp - self.target_logit


# ---------------------------------------------------------------------------------------
# Input checks
# ---------------------------------------------------------------------------------------
def _check_logits(logits: torch.Tensor, k: int, num_classes: int | None = None) -> None:
    if not isinstance(logits, torch.Tensor):
        raise TypeError(f"logits must be a torch.Tensor, got {type(logits).__name__}")
    if logits.dim() != 2:
        raise ValueError(f"logits must be 2-D [N, C], got shape {tuple(logits.shape)}")
    if logits.dtype not in _FLOAT_DTYPES:
        raise TypeError(f"logits must be float32, float16 or bfloat16, got {logits.dtype}")
    if isinstance(k, bool) or not isinstance(k, int):
        raise TypeError(f"k must be an int, got {type(k).__name__}")
    c = logits.shape[1] if num_classes is None else num_classes
    if c < 1:
        raise ValueError("logits must have at least one class (C >= 1)")
    if not 1 <= k <= c:
        raise ValueError(f"k must be in [1, C={c}], got k={k}")


# class_subset tensors already checked against a logits width: (tensor version, C) by tensor, so
# a metric passing the same subset every batch pays the bounds check (a host sync on GPU) once.
# (Keyed by id, with a weak reference to tell a live tensor from a reused id; tensors compare
# elementwise, so they cannot be dict keys themselves.)
_CHECKED_SUBSETS: dict[int, tuple[weakref.ref, int, int]] = {}


def _check_class_subset(class_subset, logits: torch.Tensor) -> torch.Tensor:
    subset = torch.as_tensor(class_subset)
    if subset.dim() != 1 or subset.numel() < 1 or subset.dtype.is_floating_point or subset.dtype == torch.bool:
        raise ValueError("class_subset must be a non-empty 1-D integer tensor of class indices")
    subset = subset.to(device=logits.device, dtype=torch.int64).contiguous()
    c = logits.shape[1]
    seen = _CHECKED_SUBSETS.get(id(subset))
    if seen is not None and seen[0]() is subset and seen[1:] == (subset._version, c):
        return subset
    lo, hi = int(subset.min()), int(subset.max())  # one host sync, on a tiny tensor
    if lo < 0 or hi >= c:
        raise ValueError(f"class_subset holds {lo if lo < 0 else hi}, outside [0, C={c})")
    if len(_CHECKED_SUBSETS) > 256:
        _CHECKED_SUBSETS.clear()
    _CHECKED_SUBSETS[id(subset)] = (weakref.ref(subset), subset._version, c)
    return subset


def _check_target(target: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    if not isinstance(target, torch.Tensor):
        target = torch.as_tensor(target)
    if target.dim() != 1 or target.shape[0] != logits.shape[0]:
        raise ValueError(f"target must be [N={logits.shape[0]}], got shape {tuple(target.shape)}")
    if target.dtype.is_floating_point or target.dtype == torch.bool or target.is_complex():
        raise TypeError(f"target must be an integer tensor, got {target.dtype}")
    if target.device != logits.device:
        raise ValueError(f"target is on {target.device} but logits on {logits.device}")
    return target.to(torch.int64).contiguous()


def _label_inputs(label_sets, logits: torch.Tensor, num_classes: int):
    from .labels import LabelSets

    if not isinstance(label_sets, LabelSets):
        raise TypeError(f"label_sets must be a mlmetrics.LabelSets, got {type(label_sets).__name__}")
    if len(label_sets) != logits.shape[0]:
        raise ValueError(f"label_sets holds {len(label_sets)} samples but logits has N={logits.shape[0]} rows")
    if label_sets.num_classes != num_classes:
        raise ValueError(f"label_sets has num_classes={label_sets.num_classes} but the logits have C={num_classes} classes")
    if label_sets.device != logits.device:
        label_sets = label_sets.to(logits.device)
    return label_sets.ranges.contiguous(), label_sets.labels.contiguous()


# ---------------------------------------------------------------------------------------
# Backends
# ---------------------------------------------------------------------------------------
def _run_extension(logits, k, target, ranges, labels, class_subset, with_softmax):
    return torch.ops.mlmetrics.topk_stats(logits, k, target, ranges, labels, class_subset, with_softmax)


def _run_triton(logits, k, target, ranges, labels, class_subset, with_softmax):
    from .triton import topk_stats as triton_topk_stats

    return triton_topk_stats(logits, k, target, ranges, labels, class_subset, with_softmax)


_RUNNERS: dict[str, Callable] = {
    "cpu": _run_extension,
    "cuda": _run_extension,
    "triton": _run_triton,
    "reference": reference.topk_stats,
}


def available_backends(device: str | torch.device = "cpu") -> list[str]:
    """Backends that can run on tensors of ``device`` (excluding "auto")."""
    device = torch.device(device)
    out = []
    if device.type == "cpu" and HAS_EXTENSION:
        out.append("cpu")
    if device.type == "cuda" and has_cuda_kernels():
        out.append("cuda")
    if _triton_usable(device):
        out.append("triton")
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
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
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
            "triton": "needs triton and a CUDA tensor (or TRITON_INTERPRET=1 for CPU tensors)",
        }[backend]
        raise RuntimeError(f"backend {backend!r} is not available for a tensor on {device}: it {why}")
    return backend


# ---------------------------------------------------------------------------------------
# Public ops
# ---------------------------------------------------------------------------------------
def topk_stats(
    logits: torch.Tensor,
    k: int,
    *,
    target: torch.Tensor | None = None,
    label_sets=None,
    class_subset: torch.Tensor | None = None,
    with_softmax: bool = True,
    backend: str = "auto",
) -> TopKStats:
    """One fused pass over ``logits`` [N, C] (fp32/fp16/bf16, any strides).

    Returns :class:`TopKStats`: the top-k logits/indices, hits against ``label_sets``
    (a :class:`~mlmetrics.LabelSets` of N samples), per-row statistics and the rank of
    ``target`` [N] (int). ``with_softmax=False`` skips every exp (logsumexp, entropy and
    sum_p2 come back NaN): top-k, hits and ranks then cost one read of the logits.
    ``class_subset`` [C'] (int): score only those columns (e.g. the 200 ImageNet-R classes
    of a 1000-way model) without copying the logits; every class index in and out (top-k
    indices, target, label sets) is then an index into ``class_subset``.
    """
    if class_subset is not None:
        _check_logits(logits, 1)
        class_subset = _check_class_subset(class_subset, logits)
    num_classes = logits.shape[1] if class_subset is None else class_subset.numel()
    _check_logits(logits, k, num_classes)
    if target is not None:
        target = _check_target(target, logits)
    ranges = labels = None
    if label_sets is not None:
        ranges, labels = _label_inputs(label_sets, logits, num_classes)
    name = resolve_backend(backend, logits, k)
    out = _RUNNERS[name](logits, k, target, ranges, labels, class_subset, bool(with_softmax))
    return TopKStats(*out)


def softmax_topk(logits: torch.Tensor, k: int, *, backend: str = "auto"):
    """The k largest softmax probabilities of each row of ``logits`` [N, C].

    Returns ``(probs, indices)``: probs f32 [N, k] sorted descending, indices i64 [N, k].
    Ties resolve to the lower class index. Rows whose softmax is undefined (NaN or +inf
    present, or all -inf) give NaN probabilities; their indices follow the rank order
    (NaN first). See :mod:`mlmetrics.reference`.
    """
    _check_logits(logits, k)
    name = resolve_backend(backend, logits, k)
    if name in ("cpu", "cuda"):
        return torch.ops.mlmetrics.softmax_topk(logits, k)
    s = _RUNNERS[name](logits, k, None, None, None, None, True)
    st = TopKStats(*s)
    return st.topk_probs, st.topk_indices


def topk_label_hits(logits: torch.Tensor, label_sets, k: int, *, backend: str = "auto") -> torch.Tensor:
    """bool [N, k]: hits[i, j] is True when the j-th ranked class of row i is in sample i's set.

    Fused with the top-k pass (one read of the logits, no exp, no N x C intermediate).
    ReaL accuracy@k = hits[:, :k].any(1) averaged over samples with a non-empty set.
    """
    _check_logits(logits, k)
    ranges, labels = _label_inputs(label_sets, logits, logits.shape[1])
    name = resolve_backend(backend, logits, k)
    if name in ("cpu", "cuda"):
        return torch.ops.mlmetrics.topk_label_hits(logits, ranges, labels, k)
    return _RUNNERS[name](logits, k, None, ranges, labels, None, False)[2]
