"""Multi-label metrics at fixed k against per-sample label sets (ImageNet ReaL and the like):
ReaL accuracy@k, precision@k, recall@k, subset accuracy@k, hamming loss@k, and the label-count
histogram of the rows seen. Rows with an empty set are excluded from every score (counted).

State ("sum", float64): ``label_rows``, ``n_labeled`` (finite rows, non-empty set),
``n_empty``; ``label_hist`` [max |Y| + 1]; ``real``, ``prec``, ``rec``, ``subset``,
``hamming`` [T] (one entry per k of ``topk``). Inputs: ``stats.hits`` [N, >= max(topk)] and the
rows' set sizes int64 [N]. No softmax needed.
"""
from __future__ import annotations

from typing import Sequence

import torch

from ..data.labels import LabelSets
from ..ops import TopKStats
from ._state import Rows, StateSpec, div, masked

AT_K = ("real", "prec", "rec", "subset", "hamming")


def multilabel_spec(topk: Sequence[int], hist_size: int) -> dict[str, StateSpec]:
    spec = {"label_rows": StateSpec(()), "label_hist": StateSpec((hist_size,)),
            "n_labeled": StateSpec(()), "n_empty": StateSpec(())}
    spec.update({name: StateSpec((len(topk),)) for name in AT_K})
    return spec


def hit_counts(stats: TopKStats) -> torch.Tensor:
    """int64 [N, k]: hits of each row within its top-(j+1) classes."""
    return stats.hits.to(torch.int64).cumsum(1)


def multilabel_rows(stats: TopKStats, set_sizes: torch.Tensor, *, topk: Sequence[int], hist_size: int, keep=None,
                    out: Rows | None = None) -> Rows:
    n = stats.row_stats.shape[0]
    out = Rows(n, stats.row_stats.device) if out is None else out
    s = set_sizes.to(torch.int64)
    lr = torch.ones(n, dtype=torch.bool, device=s.device) if keep is None else keep
    ok = lr & ~stats.nonfinite
    ne = ok & (s > 0)
    out.add("label_rows", lr)
    out.add("label_hist", lr, index=s.clamp(0, hist_size - 1), size=hist_size)
    out.add("n_labeled", ne)
    out.add("n_empty", ok & (s == 0))
    cs = hit_counts(stats)
    sf = s.to(torch.float64)
    h = torch.stack([cs[:, k - 1] for k in topk], dim=1).to(torch.float64)  # [N, T] hits within the top-k
    kf = torch.stack([torch.full_like(sf, k) for k in topk], dim=1)            # [N, T] k (no host->device copy)
    sc, ne2 = sf[:, None], ne[:, None]
    out.add("real", ne2 & (h > 0))
    out.add("prec", masked(ne2, h / kf))
    out.add("rec", masked(ne2, h / sc.clamp(min=1)))
    out.add("subset", ne2 & (sc == kf) & (h == kf))
    out.add("hamming", masked(ne2, kf + sc - 2 * h))
    return out


def multilabel_update(stats: TopKStats, set_sizes: torch.Tensor, **kw) -> dict[str, torch.Tensor]:
    return multilabel_rows(stats, set_sizes, **kw).sum()


def multilabel_reduce(state, *, topk: Sequence[int], num_classes: int) -> dict:
    n_l = float(state["n_labeled"])
    out: dict = {"num_labeled": int(round(n_l)), "empty_label_sets": int(round(float(state["n_empty"])))}
    for j, k in enumerate(topk):
        out[f"real_top{k}"] = div(state["real"][j], n_l)
    for j, k in enumerate(topk):
        out[f"precision@{k}"] = div(state["prec"][j], n_l)
        out[f"recall@{k}"] = div(state["rec"][j], n_l)
        out[f"subset_accuracy@{k}"] = div(state["subset"][j], n_l)
        out[f"hamming_loss@{k}"] = div(state["hamming"][j], n_l * num_classes)
    hist = state["label_hist"].detach().cpu()
    out["label_count_histogram"] = hist
    nonempty = float(hist[1:].sum())
    out["multilabel_proportion"] = div(hist[2:].sum(), nonempty)
    out["mean_label_count"] = div((hist * torch.arange(hist.numel(), dtype=hist.dtype)).sum(), nonempty)
    return out


# ---------------------------------------------------------------------------------------
# label-set statistics (no logits)
# ---------------------------------------------------------------------------------------
def label_count_histogram(label_sets: LabelSets) -> torch.Tensor:
    """int64 [max |Y| + 1]: number of samples with 0, 1, 2, ... labels."""
    sizes = label_sets.sizes().cpu()
    return torch.bincount(sizes, minlength=1)


def multilabel_proportion(label_sets: LabelSets) -> float:
    """Share of samples with >= 2 labels among samples with >= 1 label (the statistic Anzaku et
    al. use to explain the ImageNetV2 drop)."""
    h = label_count_histogram(label_sets)
    nonempty = int(h[1:].sum())
    return float(h[2:].sum()) / nonempty if nonempty else float("nan")
    nonempty = int(h[1:].sum())
    return float(h[2:].sum()) / nonempty if nonempty else float("nan")


def label_count_summary(label_sets: LabelSets, max_group: int = 4) -> dict:
    """Summary of the label counts: ``num_samples``, ``empty``, ``multilabel_proportion``,
    ``mean_label_count`` (non-empty sets), ``max_label_count``, ``histogram`` (tensor) and
    ``groups`` ``{"1": n, "2": n, ..., f"{max_group}+": n}``."""
    h = label_count_histogram(label_sets)
    nonempty = int(h[1:].sum())
    groups = {str(m): int(h[m]) if m < h.numel() else 0 for m in range(1, max_group)}
    groups[f"{max_group}+"] = int(h[max_group:].sum()) if h.numel() > max_group else 0
    mean = float((h * torch.arange(h.numel())).sum()) / nonempty if nonempty else float("nan")
    return {"num_samples": len(label_sets), "empty": int(h[0]), "multilabel_proportion": multilabel_proportion(label_sets),
            "mean_label_count": mean, "max_label_count": h.numel() - 1, "histogram": h, "groups": groups}


# ---------------------------------------------------------------------------------------
# public functional metrics
# ---------------------------------------------------------------------------------------
def _at_k(logits, label_sets, topk, key: str, **kw) -> dict:
    from . import _inputs
    from .config import check_topk

    ks = check_topk(topk)
    st, sizes, c, _, hist_size = _inputs.score_label_sets(logits, label_sets, ks, **kw)
    out = multilabel_reduce(multilabel_update(st, sizes, topk=ks, hist_size=hist_size), topk=ks, num_classes=c)
    return {k: out[key.format(k=k)] for k in ks}


def real_accuracy(logits, label_sets: LabelSets, topk: int | Sequence[int] = (1, 5), **kw):
    """ReaL accuracy@k (Beyer et al. 2020): a row counts when any of its top-k classes is in its
    set; rows with an empty set are excluded. Float for an int ``topk``, else ``{k: float}``."""
    res = _at_k(logits, label_sets, topk, "real_top{k}", **kw)
    return res if hasattr(topk, "__iter__") else next(iter(res.values()))


def precision_at_k(logits, label_sets: LabelSets, k: int = 5, **kw) -> float:
    """Mean |top-k ∩ Y_i| / k over rows with a non-empty set."""
    return next(iter(_at_k(logits, label_sets, k, "precision@{k}", **kw).values()))


def recall_at_k(logits, label_sets: LabelSets, k: int = 5, **kw) -> float:
    """Mean |top-k ∩ Y_i| / |Y_i| over rows with a non-empty set."""
    return next(iter(_at_k(logits, label_sets, k, "recall@{k}", **kw).values()))


def subset_accuracy(logits, label_sets: LabelSets, k: int = 1, **kw) -> float:
    """Exact match of the predicted set top-k with Y_i (so 0 whenever |Y_i| != k), over rows
    with a non-empty set. With k = |Y_i| per row this is ``variable_topk_accuracy["strict"]``."""
    return next(iter(_at_k(logits, label_sets, k, "subset_accuracy@{k}", **kw).values()))


def hamming_loss_at_k(logits, label_sets: LabelSets, k: int = 1, **kw) -> float:
    """Mean over rows (non-empty sets) of |top-k Δ Y_i| / C (symmetric difference = k + |Y_i| - 2 hits)."""
    return next(iter(_at_k(logits, label_sets, k, "hamming_loss@{k}", **kw).values()))


def topk_hit_counts(logits, label_sets: LabelSets, k: int = 5, *, backend="auto") -> dict[str, torch.Tensor]:
    """Per-row hamming-style counts at top-k: ``tp`` = |top-k ∩ Y|, ``fp`` = k - tp,
    ``fn`` = |Y| - tp (int64 [N]); one pass, no softmax."""
    from . import _inputs
    from .config import check_backend, check_int

    k = check_int(k, "k", 1)
    check_backend(backend)
    x = _inputs.as_logits(logits)
    sets = _inputs.batch_label_sets(label_sets, x.shape[0])
    st = _inputs.run_op(x, k, label_sets=sets, with_softmax=False, backend=backend)
    tp = st.hits.sum(1)
    sizes = sets.sizes().to(tp.device)
    return {"tp": tp, "fp": k - tp, "fn": sizes - tp}
