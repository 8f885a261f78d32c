"""The ops: one fused pass over [N, C] logits (softmax statistics + top-k + label-set hits + target
rank). Contract: :mod:`.schema`; checks: :mod:`.checks`; backends: :mod:`.dispatch`; fake impls:
:mod:`.fake`; oracle: :mod:`.reference`; Triton kernels: :mod:`.triton`; C++/CUDA: ``csrc/``."""
from __future__ import annotations

import torch

from . import checks, dispatch
from .dispatch import (BACKENDS, EXTENSION_ERROR, HAS_EXTENSION, available_backends, cpu_isa, has_cuda_kernels,
                       resolve_backend)
from .schema import NUM_STATS, Stat, TopKStats

if HAS_EXTENSION:
    from . import fake as _fake

    _fake.register()


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
    """One fused pass over ``logits`` [N, C] (fp32/fp16/bf16, any strides; float64 is read as
    float32, NumPy arrays and lists are converted; N = 0 gives empty results).

    Returns :class:`TopKStats`: the top-k logits/indices, hits against ``label_sets``
    (a :class:`~mlmetrics.LabelSets` of N samples), per-row statistics and the rank of
    ``target`` [N] (int; a target outside [0, C) gets rank -1). ``with_softmax=False`` skips
    every exp (logsumexp, entropy and sum_p2 come back NaN): top-k, hits and ranks then cost
    one read of the logits. ``class_subset`` [C'] (distinct ints in [0, C)): score only those
    columns (e.g. the 200 ImageNet-R classes of a 1000-way model) without copying the logits;
    every class index in and out (top-k indices, target, label sets) is then an index into
    ``class_subset``. Bad input raises a one-line error (:mod:`.checks`).
    """
    logits = checks.as_logits(logits)
    num_classes = logits.shape[1]
    if class_subset is not None:
        class_subset = checks.as_class_subset(class_subset, num_classes, logits.device)
        num_classes = class_subset.numel()
    k = checks.check_k(k, num_classes)
    with_softmax = checks.check_bool(with_softmax, "with_softmax")
    if target is not None:
        target = checks.as_target(target, logits)
    ranges = labels = None
    if label_sets is not None:
        ranges, labels = checks.label_inputs(label_sets, logits, num_classes)
    name = dispatch.resolve_backend(backend, logits, k)
    out = dispatch.RUNNERS[name](logits, k, target, ranges, labels, class_subset, with_softmax)
    return TopKStats(*out)


def softmax_topk(logits: torch.Tensor, k: int, *, backend: str = "auto"):
    """The k largest softmax probabilities of each row of ``logits`` [N, C].

    Returns ``(probs, indices)``: probs f32 [N, k] sorted descending, indices i64 [N, k].
    Ties resolve to the lower class index. Rows whose softmax is undefined (NaN or +inf
    present, or all -inf) give NaN probabilities; their indices follow the rank order
    (NaN first). See :mod:`mlmetrics.reference`.
    """
    logits = checks.as_logits(logits)
    k = checks.check_k(k, logits.shape[1])
    name = dispatch.resolve_backend(backend, logits, k)
    if name in ("cpu", "cuda"):
        return torch.ops.mlmetrics.softmax_topk(logits, k)
    s = dispatch.RUNNERS[name](logits, k, None, None, None, None, True)
    st = TopKStats(*s)
    return st.topk_probs, st.topk_indices


def topk_label_hits(logits: torch.Tensor, label_sets, k: int, *, backend: str = "auto") -> torch.Tensor:
    """bool [N, k]: hits[i, j] is True when the j-th ranked class of row i is in sample i's set.

    Fused with the top-k pass (one read of the logits, no exp, no N x C intermediate).
    ReaL accuracy@k = hits[:, :k].any(1) averaged over samples with a non-empty set.
    """
    logits = checks.as_logits(logits)
    k = checks.check_k(k, logits.shape[1])
    ranges, labels = checks.label_inputs(label_sets, logits, logits.shape[1])
    name = dispatch.resolve_backend(backend, logits, k)
    if name in ("cpu", "cuda"):
        return torch.ops.mlmetrics.topk_label_hits(logits, ranges, labels, k)
    return dispatch.RUNNERS[name](logits, k, None, ranges, labels, None, False)[2]
