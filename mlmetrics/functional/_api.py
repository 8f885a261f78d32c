"""Functional metrics: each is ONE ``topk_stats`` call over the given logits.

Single-label inputs: ``logits`` [N, C] (fp32/fp16/bf16), ``target`` [N] int in ``[0, C)``
(validated up front: ``ValueError`` otherwise). Multi-label inputs: ``label_sets`` a
:class:`~mlmetrics.LabelSets` with one set per row (``len(label_sets) == N``; pass a batch view
``sets[sample_index]`` to pick rows). Rows whose softmax is undefined (NaN / +inf / all -inf)
raise ``ValueError`` unless ``nonfinite="ignore"`` (then they are left out of every metric).
"""
from __future__ import annotations

from typing import Sequence

import torch

from ..ops import checks, topk_stats
from ..data.labels import LabelSets
from ..metrics.classification import ClassificationMetrics


def _run(logits, target=None, label_sets=None, *, topk=(1,), ece_bins=15, include=None, class_subset=None,
         nonfinite="error", max_label_k=None, subgroup_cap=None, backend="auto") -> dict:
    logits = checks.as_logits(logits)
    checks.require_rows(logits)
    if class_subset is not None:
        class_subset = checks.as_class_subset(class_subset, logits.shape[1], logits.device)
    scored = logits.shape[1] if class_subset is None else class_subset.numel()
    if target is not None:
        target = checks.as_target(target, logits, scored, check_range=True)
    kw = {}
    if label_sets is not None:
        if not isinstance(label_sets, LabelSets):
            raise TypeError(f"label_sets must be a mlmetrics.LabelSets, got {type(label_sets).__name__}")
        if len(label_sets) != logits.shape[0]:
            raise ValueError(f"label_sets holds {len(label_sets)} samples but logits has N={logits.shape[0]} rows")
        label_sets = _compact(label_sets)
        sizes = label_sets.sizes()
        kw["max_label_k"] = max_label_k or max(int(sizes.max()) if sizes.numel() else 1, 1)
    m = ClassificationMetrics(logits.shape[1], topk=topk, label_sets=label_sets, ece_bins=ece_bins, include=include,
                              class_subset=class_subset, nonfinite=nonfinite, backend=backend, dedupe=False,
                              subgroup_cap=subgroup_cap, **kw)
    m.update(logits, target)  # rows matched to the sets in order
    return m.compute(sync=False)


def _compact(view: LabelSets) -> LabelSets:
    """A standalone CSR LabelSets holding the sets of a (possibly batch-view) LabelSets."""
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


def _single(logits, target, include, key, **kw):
    return _run(logits, target, include=(include,), **kw)[key]


# ---------------------------------------------------------------------------------------
# single-label
# ---------------------------------------------------------------------------------------
def topk_accuracy(logits, target, topk: int | Sequence[int] = (1, 5), *, class_subset=None, nonfinite="error",
                  backend="auto"):
    """Top-k accuracy from the rank of the target class (all k from one pass; no softmax).

    Returns a float for an int ``topk``, else ``{k: float}``. Ties rank the lower class index
    first (as ``torch.topk``); sklearn's ``top_k_accuracy_score`` instead counts a tied target as
    correct whenever its score is within the top-k scores (see tests)."""
    ks = (topk,) if isinstance(topk, int) else tuple(topk)
    out = _run(logits, target, topk=ks, include=("accuracy",), class_subset=class_subset, nonfinite=nonfinite,
               backend=backend)
    res = {k: out[f"top{k}"] for k in ks}
    return res[topk] if isinstance(topk, int) else res


def accuracy(logits, target, **kw) -> float:
    """Top-1 accuracy."""
    return topk_accuracy(logits, target, 1, **kw)


def macro_accuracy(logits, target, *, class_subset=None, nonfinite="error", backend="auto") -> float:
    """Mean of per-class top-1 accuracy over the classes present in ``target`` (= sklearn's
    ``balanced_accuracy_score``). torchmetrics' ``MulticlassAccuracy(average="macro")`` also
    averages in classes that are predicted but absent from the targets (as 0)."""
    return _single(logits, target, "accuracy", "macro_accuracy", class_subset=class_subset, nonfinite=nonfinite,
                   backend=backend)


def per_class_accuracy(logits, target, *, class_subset=None, nonfinite="error", backend="auto") -> torch.Tensor:
    """float64 [C] top-1 accuracy of each class (NaN for classes absent from ``target``)."""
    return _single(logits, target, "accuracy", "per_class_accuracy", class_subset=class_subset,
                   nonfinite=nonfinite, backend=backend)


def nll(logits, target, *, class_subset=None, nonfinite="error", backend="auto") -> float:
    """Mean negative log-likelihood -log softmax(logits)[target] (= cross-entropy, nats)."""
    return _single(logits, target, "nll", "nll", class_subset=class_subset, nonfinite=nonfinite, backend=backend)


cross_entropy = nll


def brier_score(logits, target, *, class_subset=None, nonfinite="error", backend="auto") -> float:
    """Mean multiclass Brier score sum_c (p_c - 1[c = y])^2, in [0, 2] (not halved)."""
    return _single(logits, target, "nll", "brier", class_subset=class_subset, nonfinite=nonfinite, backend=backend)


def calibration(logits, target, n_bins: int = 15, *, class_subset=None, nonfinite="error", backend="auto") -> dict:
    """Top-label calibration with torchmetrics' equal-width binning.

    Returns ``{"ece", "mce", "confidence" (mean max softmax prob), "top1", "ece_bin_edges" [B+1],
    "ece_bin_count" / "ece_bin_accuracy" / "ece_bin_confidence" [B+1]}``: entry b < B is the bin
    ``edges[b] <= p < edges[b+1]``; the last entry holds rows whose max probability is exactly
    1.0 in float32 (torchmetrics puts them in an extra bin too). The per-bin arrays are the data
    of a reliability diagram (NaN for empty bins)."""
    out = _run(logits, target, ece_bins=n_bins, include=("calibration",), class_subset=class_subset,
               nonfinite=nonfinite, backend=backend)
    keys = ("ece", "mce", "confidence", "top1", "ece_bin_edges", "ece_bin_count", "ece_bin_accuracy",
            "ece_bin_confidence")
    return {k: out[k] for k in keys}


def expected_calibration_error(logits, target, n_bins: int = 15, **kw) -> float:
    """Top-label ECE (L1) = sum_b |acc_b - conf_b| n_b / N (matches torchmetrics norm='l1')."""
    return calibration(logits, target, n_bins, **kw)["ece"]


def ood_scores(logits, *, class_subset=None, backend="auto") -> dict[str, torch.Tensor]:
    """Per-row OOD-style scores from one pass: ``max_prob`` (MSP), ``max_logit``, ``logsumexp``,
    ``energy`` (= -logsumexp, the free energy of Liu et al. 2020; lower = more in-distribution),
    ``entropy`` (nats). float32 [N] each; NaN on rows whose softmax is undefined (and
    ``max_logit`` NaN on rows holding NaN)."""
    st = topk_stats(logits, 1, class_subset=class_subset, with_softmax=True, backend=backend)
    return {"max_prob": st.max_prob, "max_logit": st.max_logit, "logsumexp": st.logsumexp,
            "energy": -st.logsumexp, "entropy": st.entropy}


# ---------------------------------------------------------------------------------------
# multi-label
# ---------------------------------------------------------------------------------------
def _ml(logits, label_sets, keys, topk=(1,), **kw) -> dict:
    out = _run(logits, None, label_sets, topk=topk, include=("multilabel",), **kw)
    return {k: out[k] for k in keys}


def real_accuracy(logits, label_sets: LabelSets, topk: int | Sequence[int] = (1, 5), **kw):
    """ReaL accuracy@k (Beyer et al. 2020): a row counts when any of its top-k classes is in its
    set; rows with an empty set are excluded. Float for an int ``topk``, else ``{k: float}``."""
    ks = (topk,) if isinstance(topk, int) else tuple(topk)
    out = _ml(logits, label_sets, [f"real_top{k}" for k in ks], topk=ks, **kw)
    res = {k: out[f"real_top{k}"] for k in ks}
    return res[topk] if isinstance(topk, int) else res


def variable_topk_accuracy(logits, label_sets: LabelSets, **kw) -> dict:
    """Variable top-k (Anzaku et al., arXiv 2412.18409): k = |Y_i| per row.

    ``{"strict": mean 1[Y_i within the top-|Y_i|], "fractional": mean |top-|Y_i| ∩ Y_i| / |Y_i|}``
    over rows with a non-empty set."""
    out = _ml(logits, label_sets, ["variable_topk_strict", "variable_topk_fractional"], **kw)
    return {"strict": out["variable_topk_strict"], "fractional": out["variable_topk_fractional"]}


def subgroup_accuracy(logits, label_sets: LabelSets, *, fractional: bool = False, **kw) -> dict[int, float]:
    """``{label_count m: variable top-k accuracy of the rows with |Y_i| = m}`` (strict, or
    fractional), for every m present. ``subgroup_cap=4`` merges counts >= 4 into key 4 ("4+")."""
    key = "subgroup_accuracy_fractional" if fractional else "subgroup_accuracy"
    return _ml(logits, label_sets, [key], **kw)[key]


def asma(logits, label_sets: LabelSets, *, fractional: bool = False, **kw) -> float:
    """Aggregate Subgroup Model Accuracy (Anzaku et al., arXiv 2412.18409).

    Rows are grouped by label count m = |Y_i| (m >= 1; empty sets excluded); each subgroup's
    accuracy is its variable top-k accuracy (k = m, strict: all m labels within the top m);
    ASMA is the unweighted mean of the subgroup accuracies over the subgroups present:
    ``ASMA = (1 / |M|) * sum_{m in M} acc_m``. Unlike the overall variable top-k accuracy (the
    sample-weighted mean of the same acc_m) it does not depend on the proportion of
    multi-label images. ``fractional=True`` uses the fractional per-row score instead;
    ``subgroup_cap=c`` merges label counts >= c into one subgroup (default: none merged).

    Source: Anzaku, Mousavi, Van Messem, De Neve, arXiv 2412.18409 (the subgroups by label count
    and the variable top-k per subgroup; "aggregate" read as the unweighted mean over subgroups)."""
    key = "asma_fractional" if fractional else "asma"
    return _ml(logits, label_sets, [key], **kw)[key]


def precision_at_k(logits, label_sets: LabelSets, k: int = 5, **kw) -> float:
    """Mean |top-k ∩ Y_i| / k over rows with a non-empty set."""
    return _ml(logits, label_sets, [f"precision@{k}"], topk=(k,), **kw)[f"precision@{k}"]


def recall_at_k(logits, label_sets: LabelSets, k: int = 5, **kw) -> float:
    """Mean |top-k ∩ Y_i| / |Y_i| over rows with a non-empty set."""
    return _ml(logits, label_sets, [f"recall@{k}"], topk=(k,), **kw)[f"recall@{k}"]


def subset_accuracy(logits, label_sets: LabelSets, k: int = 1, **kw) -> float:
    """Exact match of the predicted set top-k with Y_i (so 0 whenever |Y_i| != k), over rows
    with a non-empty set. With k = |Y_i| per row this is ``variable_topk_accuracy["strict"]``."""
    return _ml(logits, label_sets, [f"subset_accuracy@{k}"], topk=(k,), **kw)[f"subset_accuracy@{k}"]


def hamming_loss_at_k(logits, label_sets: LabelSets, k: int = 1, **kw) -> float:
    """Mean over rows (non-empty sets) of |top-k Δ Y_i| / C (symmetric difference = k + |Y_i| - 2 hits)."""
    return _ml(logits, label_sets, [f"hamming_loss@{k}"], topk=(k,), **kw)[f"hamming_loss@{k}"]


def topk_hit_counts(logits, label_sets: LabelSets, k: int = 5, **kw) -> dict[str, torch.Tensor]:
    """Per-row hamming-style counts at top-k: ``tp`` = |top-k ∩ Y|, ``fp`` = k - tp,
    ``fn`` = |Y| - tp (int64 [N]); one pass, no softmax."""
    st = topk_stats(logits, k, label_sets=label_sets, with_softmax=False, **kw)
    tp = st.hits.sum(1)
    sizes = label_sets.sizes().to(tp.device)
    return {"tp": tp, "fp": k - tp, "fn": sizes - tp}


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
# everything at once
# ---------------------------------------------------------------------------------------
def classification_metrics(logits, target=None, label_sets: LabelSets | None = None, *, topk=(1, 5),
                           ece_bins: int = 15, include=None, class_subset=None, nonfinite="error",
                           subgroup_cap=None, backend="auto") -> dict:
    """Every metric of :class:`~mlmetrics.metrics.ClassificationMetrics` for one batch, from one
    ``topk_stats`` call (same keys as ``ClassificationMetrics.compute()``)."""
    return _run(logits, target, label_sets, topk=topk, ece_bins=ece_bins, include=include,
                class_subset=class_subset, nonfinite=nonfinite, subgroup_cap=subgroup_cap, backend=backend)
