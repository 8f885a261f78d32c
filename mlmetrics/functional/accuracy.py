"""Top-k accuracy (from the target's rank) and per-class / macro (balanced) top-1 accuracy.

State ("sum", float64): ``correct`` [T] (rows with rank < k, for each k of ``topk``),
``class_count`` / ``class_correct`` [C] (rows and top-1 hits per target class). Reduce also
reads ``n_target`` of :mod:`.counts`. No softmax needed.
"""
from __future__ import annotations

from typing import Sequence

import torch

from ..ops import TopKStats
from . import _inputs
from ._state import Rows, StateSpec, div
from .config import check_topk
from .counts import scored_targets


def topk_spec(topk: Sequence[int]) -> dict[str, StateSpec]:
    return {"correct": StateSpec((len(topk),))}


def per_class_spec(num_classes: int) -> dict[str, StateSpec]:
    return {"class_count": StateSpec((num_classes,)), "class_correct": StateSpec((num_classes,))}


def topk_rows(stats: TopKStats, *, topk: Sequence[int], keep=None, has_target=True, out: Rows | None = None) -> Rows:
    out = Rows(stats.row_stats.shape[0], stats.row_stats.device) if out is None else out
    rank, t = scored_targets(stats, has_target, keep)
    out.add("correct", torch.stack([t & (rank < k) for k in topk], dim=1))  # no host->device copy of topk
    return out


def per_class_rows(stats: TopKStats, target: torch.Tensor, *, num_classes: int, keep=None, has_target=True,
                   out: Rows | None = None) -> Rows:
    out = Rows(stats.row_stats.shape[0], stats.row_stats.device) if out is None else out
    rank, t = scored_targets(stats, has_target, keep)
    cls = target.clamp(0, num_classes - 1)
    out.add("class_count", t, index=cls, size=num_classes)
    out.add("class_correct", t & (rank == 0), index=cls, size=num_classes)
    return out


def topk_update(stats: TopKStats, *, topk: Sequence[int], **kw) -> dict[str, torch.Tensor]:
    return topk_rows(stats, topk=topk, **kw).sum()


def per_class_update(stats: TopKStats, target: torch.Tensor, *, num_classes: int, **kw) -> dict[str, torch.Tensor]:
    return per_class_rows(stats, target, num_classes=num_classes, **kw).sum()


def topk_reduce(state, *, topk: Sequence[int]) -> dict:
    n_t = float(state["n_target"])
    return {f"top{k}": div(state["correct"][j], n_t) for j, k in enumerate(topk)}


def per_class_reduce(state) -> dict:
    cnt = state["class_count"].detach().cpu()
    per_class = torch.where(cnt > 0, state["class_correct"].detach().cpu() / cnt.clamp(min=1e-300),
                            torch.full_like(cnt, float("nan")))
    present = cnt > 0
    macro = float(per_class[present].mean()) if bool(present.any()) else float("nan")
    return {"per_class_accuracy": per_class, "macro_accuracy": macro}


# ---------------------------------------------------------------------------------------
# public functional metrics
# ---------------------------------------------------------------------------------------
def topk_accuracy(logits, target, topk: int | Sequence[int] = (1, 5), *, class_subset=None, nonfinite="error",
                  backend="auto"):
    """Top-k accuracy from the rank of the target class (all k from one pass; no softmax).

    Returns a float for an int ``topk``, else ``{k: float}``. Ties rank the lower class index
    first (as ``torch.topk``); sklearn's ``top_k_accuracy_score`` instead counts a tied target as
    correct whenever its score is within the top-k scores (see tests)."""
    ks = check_topk(topk)
    st, _, _, state = _inputs.score_single_label(logits, target, max(ks), with_softmax=False,
                                                 class_subset=class_subset, nonfinite=nonfinite, backend=backend)
    state.update(topk_update(st, topk=ks))
    res = {k: v for k, v in zip(ks, topk_reduce(state, topk=ks).values())}
    return res if hasattr(topk, "__iter__") else res[ks[0]]


def accuracy(logits, target, **kw) -> float:
    """Top-1 accuracy."""
    return topk_accuracy(logits, target, 1, **kw)


def _per_class(logits, target, class_subset, nonfinite, backend) -> dict:
    st, t, c, _ = _inputs.score_single_label(logits, target, 1, with_softmax=False, class_subset=class_subset,
                                             nonfinite=nonfinite, backend=backend)
    return per_class_reduce(per_class_update(st, t, num_classes=c))


def macro_accuracy(logits, target, *, class_subset=None, nonfinite="error", backend="auto") -> float:
    """Mean of per-class top-1 accuracy over the classes present in ``target`` (= sklearn's
    ``balanced_accuracy_score``). torchmetrics' ``MulticlassAccuracy(average="macro")`` also
    averages in classes that are predicted but absent from the targets (as 0)."""
    return _per_class(logits, target, class_subset, nonfinite, backend)["macro_accuracy"]


def per_class_accuracy(logits, target, *, class_subset=None, nonfinite="error", backend="auto") -> torch.Tensor:
    """float64 [C] top-1 accuracy of each class (NaN for classes absent from ``target``)."""
    return _per_class(logits, target, class_subset, nonfinite, backend)["per_class_accuracy"]
