"""Inputs of the metrics: logits as the kernels read them, targets, label sets, and the one op call.

* ``logits`` are checked and converted by :mod:`mlmetrics.ops.checks` (array-likes in; float64
  scored in float32: values beyond float32's range become +-inf, i.e. non-finite rows) and
  detached (a metric never keeps autograd history).
* :func:`run_op` is the single ``topk_stats`` call of every metric (functional and stateful).
"""
from __future__ import annotations

import torch

from ..data.labels import LabelSets
from ..ops import TopKStats, checks, topk_stats
from ..ops.checks import check_choice, check_int


def as_logits(logits, num_classes: int | None = None) -> torch.Tensor:
    """[N, C] logits the kernels read (:func:`mlmetrics.ops.checks.as_logits`: array-likes
    converted, float64 -> float32), without autograd history; C checked against ``num_classes``."""
    x = checks.as_logits(logits).detach()
    if num_classes is not None and x.shape[1] != num_classes:
        raise ValueError(f"logits have C={x.shape[1]} columns but num_classes={num_classes}")
    return x


def as_target(target, logits: torch.Tensor, num_classes: int | None = None, *, check_range: bool = False):
    """int64 [N] on the logits' device; ``check_range`` (the functional API): refuse a target
    outside ``[0, num_classes)`` up front (stateful metrics count such targets instead)."""
    return checks.as_target(target, logits, num_classes, check_range=check_range).detach()


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


def as_class_subset(logits: torch.Tensor, class_subset):
    """``(class_subset int64 [C'] on the logits' device or None, C scored)``."""
    if class_subset is None:
        return None, logits.shape[1]
    cs = checks.as_class_subset(class_subset, logits.shape[1], logits.device)
    return cs, cs.numel()


def score_single_label(logits, target, k: int, *, with_softmax: bool, class_subset=None, nonfinite="error",
                       backend="auto"):
    """Checked single-label inputs, the one op call and the checked row counts of a functional metric.

    Returns ``(stats, target int64 [N], C scored, counts state)``."""
    from .config import NONFINITE_POLICIES, check_backend
    from .counts import check_counts, counts_update

    check_choice(nonfinite, "nonfinite", NONFINITE_POLICIES)
    check_backend(backend)
    x = as_logits(logits)
    checks.require_rows(x)
    class_subset, c = as_class_subset(x, class_subset)
    t = as_target(target, x, c, check_range=True)
    st = run_op(x, k, target=t, class_subset=class_subset, with_softmax=with_softmax, backend=backend)
    state = counts_update(st, True)
    check_counts(state, nonfinite, c)
    return st, t, c, state


def score_label_sets(logits, label_sets, topk=None, *, variable=False, max_label_k=None, class_subset=None,
                     nonfinite="error", backend="auto"):
    """Checked multi-label inputs and the one op call (no softmax) of a functional metric, with
    k = max(max(topk), largest scored set size when ``variable``).

    Returns ``(stats, set sizes int64 [N], C scored, label_k, hist_size)``."""
    from .config import NONFINITE_POLICIES, check_backend
    from .counts import check_counts, counts_update

    check_choice(nonfinite, "nonfinite", NONFINITE_POLICIES)
    check_backend(backend)
    x = as_logits(logits)
    checks.require_rows(x)
    class_subset, c = as_class_subset(x, class_subset)
    sets = batch_label_sets(label_sets, x.shape[0])
    sizes = sets.sizes()
    max_set = max(int(sizes.max()), 1)
    cap = max_set if max_label_k is None else check_int(max_label_k, "max_label_k", 1)
    label_k = min(max_set, cap, c)
    k = max(max(topk) if topk else 1, label_k if variable else 1)
    st = run_op(x, k, label_sets=sets, class_subset=class_subset, with_softmax=False, backend=backend)
    check_counts(counts_update(st), nonfinite, c)
    return st, sizes.to(x.device), c, label_k, max_set + 1

