"""Inputs of the metrics: logits as the kernels read them, targets, label sets, and the one op call.

* ``logits`` are detached (a metric never keeps autograd history); float64 logits are scored in
  float32 (cast here: values beyond float32's range become +-inf, i.e. non-finite rows).
* :func:`run_op` is the single ``topk_stats`` call of every metric (functional and stateful).
"""
from __future__ import annotations

import torch

from ..data.labels import LabelSets
from ..ops import TopKStats, topk_stats


def as_logits(logits, num_classes: int | None = None) -> torch.Tensor:
    """[N, C] logits without autograd history; float64 -> float32 (the kernels' widest type)."""
    if not isinstance(logits, torch.Tensor):
        raise TypeError(f"logits must be a torch.Tensor [N, C], got {type(logits).__name__}")
    if logits.dim() != 2:
        raise ValueError(f"logits must be 2-D [N, C], got shape {tuple(logits.shape)}")
    if num_classes is not None and logits.shape[1] != num_classes:
        raise ValueError(f"logits have C={logits.shape[1]} columns but num_classes={num_classes}")
    logits = logits.detach()
    if logits.dtype == torch.float64:
        logits = logits.to(torch.float32)
    return logits


def as_target(target, n: int, device) -> torch.Tensor:
    """int64 [N] on ``device`` (values are not range-checked here: the op ranks them, -1 outside)."""
    target = torch.as_tensor(target)
    if target.dim() != 1 or target.shape[0] != n:
        raise ValueError(f"target must be [N={n}], got shape {tuple(target.shape)}")
    if target.dtype.is_floating_point or target.dtype == torch.bool or target.is_complex():
        raise TypeError(f"target must be an integer tensor, got {target.dtype}")
    return target.detach().to(device, torch.int64, non_blocking=True)


def check_target_range(target: torch.Tensor, num_classes: int) -> None:
    """Eager range check of the functional API (one host sync; stateful metrics count instead)."""
    if target.numel():
        lo, hi = int(target.min()), int(target.max())
        if lo < 0 or hi >= num_classes:
            raise ValueError(f"target holds {lo if lo < 0 else hi}, outside [0, C={num_classes})")


def batch_label_sets(label_sets, n: int) -> LabelSets:
    """A standalone CSR LabelSets of the N rows' sets (a batch view is compacted)."""
    if not isinstance(label_sets, LabelSets):
        raise TypeError(f"label_sets must be a mlmetrics.LabelSets, got {type(label_sets).__name__}")
    if len(label_sets) != n:
        raise ValueError(f"label_sets holds {len(label_sets)} samples but logits has N={n} rows")
    view = label_sets
    r = view.ranges
    if view._ranges is None or (r.shape[0] == view.offsets.numel() - 1 and bool((r[:, 0] == view.offsets[:-1]).all())
                                and bool((r[:, 1] == view.offsets[1:]).all())):
        return view
    sizes = r[:, 1] - r[:, 0]
    offsets = torch.zeros(r.shape[0] + 1, dtype=torch.int64, device=r.device)
    torch.cumsum(sizes, 0, out=offsets[1:])
    pos = torch.arange(int(offsets[-1]), device=r.device)
    row = torch.searchsorted(offsets[1:], pos, right=True)
    labels = view.labels[r[row, 0] + pos - offsets[row]]
    return LabelSets(offsets, labels, view.num_classes, validate=False)


def run_op(logits: torch.Tensor, k: int, *, target=None, label_sets=None, class_subset=None,
           with_softmax: bool, backend: str = "auto") -> TopKStats:
    """The one read of ``logits``: a single ``topk_stats`` call, outside autograd."""
    with torch.no_grad():
        return topk_stats(logits, k, target=target, label_sets=label_sets, class_subset=class_subset,
                          with_softmax=with_softmax, backend=backend)


def scored_classes(logits: torch.Tensor, class_subset) -> int:
    return logits.shape[1] if class_subset is None else torch.as_tensor(class_subset).numel()


def score_single_label(logits, target, k: int, *, with_softmax: bool, class_subset=None, nonfinite="error",
                       backend="auto"):
    """Checked single-label inputs, the one op call and the checked row counts of a functional metric.

    Returns ``(stats, target int64 [N], C scored, counts state)``."""
    from .config import NONFINITE_POLICIES, check_backend, check_choice
    from .counts import check_counts, counts_update

    check_choice("nonfinite", nonfinite, NONFINITE_POLICIES)
    check_backend(backend)
    x = check_nonempty(as_logits(logits))
    c = scored_classes(x, class_subset)
    t = as_target(target, x.shape[0], x.device)
    check_target_range(t, c)
    st = run_op(x, k, target=t, class_subset=class_subset, with_softmax=with_softmax, backend=backend)
    state = counts_update(st, True)
    check_counts(state, nonfinite, c)
    return st, t, c, state


def score_label_sets(logits, label_sets, topk=None, *, variable=False, max_label_k=None, class_subset=None,
                     nonfinite="error", backend="auto"):
    """Checked multi-label inputs and the one op call (no softmax) of a functional metric, with
    k = max(max(topk), largest scored set size when ``variable``).

    Returns ``(stats, set sizes int64 [N], C scored, label_k, hist_size)``."""
    from .config import NONFINITE_POLICIES, check_backend, check_choice, check_int
    from .counts import check_counts, counts_update

    check_choice("nonfinite", nonfinite, NONFINITE_POLICIES)
    check_backend(backend)
    x = check_nonempty(as_logits(logits))
    c = scored_classes(x, class_subset)
    sets = batch_label_sets(label_sets, x.shape[0])
    sizes = sets.sizes()
    max_set = max(int(sizes.max()), 1)
    cap = check_int("max_label_k", max_label_k, optional=True) or max_set
    label_k = min(max_set, cap, c)
    k = max(max(topk) if topk else 1, label_k if variable else 1)
    st = run_op(x, k, label_sets=sets, class_subset=class_subset, with_softmax=False, backend=backend)
    check_counts(counts_update(st), nonfinite, c)
    return st, sizes.to(x.device), c, label_k, max_set + 1


def check_nonempty(logits: torch.Tensor) -> torch.Tensor:
    if logits.shape[0] == 0:
        raise ValueError("logits hold no rows (N=0): a metric of an empty batch is undefined")
    return logits
