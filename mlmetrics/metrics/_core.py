"""Shared machinery of every metric: one ``topk_stats`` call per batch -> per-row features ->
exactly mergeable sums -> the metric values.

Nothing here syncs the host in the per-batch path (:func:`row_features`, :func:`accumulate`):
no ``.item()``, no boolean-mask indexing, no ``bincount``; every scatter uses ``scatter_add_``
with weights, so invalid rows are given weight 0 instead of being filtered out.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Sequence

import torch

from ..ops import topk_stats

#: metric groups a ``ClassificationMetrics`` can be asked for (``include=``)
GROUPS = ("accuracy", "nll", "calibration", "ood", "multilabel")
#: groups that need the softmax (``with_softmax=True`` in the one ``topk_stats`` call)
SOFTMAX_GROUPS = ("nll", "calibration", "ood")
#: default cap on the extra top-k columns fetched for variable top-k (k = |Y_i|)
DEFAULT_MAX_LABEL_K = 16
NONFINITE_POLICIES = ("error", "ignore")


@dataclass(frozen=True)
class Config:
    num_classes: int                  # classes scored (len(class_subset) when one is given)
    topk: tuple[int, ...]
    ece_bins: int
    include: frozenset
    k: int                            # the k of the single topk_stats call
    label_k: int                      # largest |Y_i| scored by variable top-k (0 without label sets)
    hist_size: int                    # label-count histogram bins 0..hist_size-1
    with_softmax: bool
    has_labels: bool
    subgroup_cap: int | None = None   # label counts >= cap form one subgroup (key cap, "cap+")
    feature_names: tuple[str, ...] = field(default=())

    def col(self, name: str) -> int:
        return self.feature_names.index(name)


def make_config(num_classes: int, topk: Sequence[int], ece_bins: int, include, max_set_size: int | None,
                max_label_k: int, subgroup_cap: int | None = None) -> Config:
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive int, got {num_classes!r}")
    if isinstance(topk, int):
        topk = (topk,)
    topk = tuple(int(k) for k in topk)
    if not topk:
        raise ValueError("topk must hold at least one k")
    if len(set(topk)) != len(topk):
        raise ValueError(f"topk has duplicates: {topk}")
    for k in topk:
        if not 1 <= k <= num_classes:
            raise ValueError(f"every k in topk must be in [1, num_classes={num_classes}], got {k}")
    if isinstance(ece_bins, bool) or not isinstance(ece_bins, int) or ece_bins < 1:
        raise ValueError(f"ece_bins must be a positive int, got {ece_bins!r}")
    include = frozenset(GROUPS if include is None else include)
    unknown = include - set(GROUPS)
    if unknown:
        raise ValueError(f"unknown metric groups {sorted(unknown)}; choose from {GROUPS}")
    if subgroup_cap is not None and (isinstance(subgroup_cap, bool) or not isinstance(subgroup_cap, int)
                                     or subgroup_cap < 1):
        raise ValueError(f"subgroup_cap must be a positive int or None, got {subgroup_cap!r}")
    has_labels = max_set_size is not None and "multilabel" in include
    label_k = min(max_set_size, max_label_k, num_classes) if has_labels else 0
    k = max(max(topk), label_k)
    names = ["row", "nonfinite", "has_target", "bad_target", "rank", "target",
             "max_logit", "max_prob", "lse", "entropy", "nll", "brier"]
    if has_labels:
        names += ["label_row", "set_size", "h_var"] + [f"h@{k_}" for k_ in topk]
    return Config(num_classes=num_classes, topk=topk, ece_bins=ece_bins, include=include, k=k,
                  label_k=label_k, hist_size=(max_set_size + 1) if has_labels else 0,
                  with_softmax=bool(include & set(SOFTMAX_GROUPS)), has_labels=has_labels,
                  subgroup_cap=subgroup_cap, feature_names=tuple(names))


# ---------------------------------------------------------------------------------------
# per batch
# ---------------------------------------------------------------------------------------
def run_op(cfg: Config, logits, target, batch_sets, class_subset, backend):
    """The one read of ``logits``: a single topk_stats call."""
    return topk_stats(logits, cfg.k, target=target, label_sets=batch_sets, class_subset=class_subset,
                      with_softmax=cfg.with_softmax, backend=backend)


def row_features(cfg: Config, st, has_target: bool, set_sizes: torch.Tensor | None,
                 target: torch.Tensor | None) -> torch.Tensor:
    """float64 [N, F] per-row features (NaN replaced by 0; flags say what is valid)."""
    n = st.row_stats.shape[0]
    dev = st.row_stats.device
    f64 = torch.float64
    cols: list[torch.Tensor] = []
    one = torch.ones(n, dtype=f64, device=dev)
    zero = torch.zeros(n, dtype=f64, device=dev)
    nonfinite = st.nonfinite.to(f64)
    cols += [one, nonfinite]
    if has_target:
        rank = st.target_rank
        bad = (rank < 0).to(f64)
        cols += [one, bad, rank.to(f64), target.to(f64)]
    else:
        cols += [zero, zero, zero, zero]
    stats = st.row_stats.to(f64)
    max_logit = stats[:, 0]
    lse = stats[:, 1]
    cols += [max_logit]
    if cfg.with_softmax:
        max_prob = st.max_prob.to(f64)  # exp(-log_normalizer): full fp32 precision at any magnitude
        entropy = stats[:, 2]
        sum_p2 = stats[:, 3]
        if has_target:
            nll = st.nll.to(f64)
            p_t = torch.exp(-nll)
            brier = sum_p2 - 2.0 * p_t + 1.0
        else:
            nll = brier = zero
        cols += [max_prob, lse, entropy, nll, brier]
    else:
        cols += [zero, zero, zero, zero, zero]
    if cfg.has_labels:
        if set_sizes is None:
            cols += [zero, zero, zero] + [zero for _ in cfg.topk]
        else:
            s = set_sizes.to(torch.int64)
            cs = st.hits.to(torch.int64).cumsum(1)  # [N, k]: hits within the top-(j+1)
            k = cs.shape[1]
            inside = (s >= 1) & (s <= cfg.label_k)
            h_var = cs.gather(1, (s - 1).clamp(0, k - 1)[:, None])[:, 0]
            h_var = torch.where(inside, h_var, torch.full_like(h_var, -1))
            cols += [one, s.to(f64), h_var.to(f64)]
            cols += [cs[:, k_ - 1].to(f64) for k_ in cfg.topk]
    x = torch.stack(cols, dim=1)
    return torch.nan_to_num(x, nan=0.0, posinf=0.0, neginf=0.0)


# ---------------------------------------------------------------------------------------
# sums
# ---------------------------------------------------------------------------------------
def empty_state(cfg: Config, device=None) -> dict[str, torch.Tensor]:
    """The mergeable state: float64 sums and counts, O(C + bins + label_k) in size, O(1) in N."""
    z = lambda *shape: torch.zeros(*shape, dtype=torch.float64, device=device)  # noqa: E731
    t = len(cfg.topk)
    s = {
        "rows": z(()), "nonfinite": z(()), "bad_target": z(()), "bad_index": z(()),
        "scored": z(()), "sum_max_logit": z(()), "sum_max_prob": z(()), "sum_lse": z(()), "sum_entropy": z(()),
        "n_target": z(()), "correct": z(t), "class_count": z(cfg.num_classes), "class_correct": z(cfg.num_classes),
        "sum_nll": z(()), "sum_brier": z(()),
        "bin_count": z(cfg.ece_bins + 1), "bin_conf": z(cfg.ece_bins + 1), "bin_correct": z(cfg.ece_bins + 1),
    }
    if cfg.has_labels:
        s.update({
            "label_rows": z(()), "label_hist": z(cfg.hist_size), "n_labeled": z(()), "n_empty": z(()),
            "real": z(t), "prec": z(t), "rec": z(t), "subset": z(t), "hamming": z(t),
            "n_var": z(()), "n_trunc": z(()), "var_strict": z(()), "var_frac": z(()),
            "grp_count": z(cfg.label_k + 1), "grp_strict": z(cfg.label_k + 1), "grp_frac": z(cfg.label_k + 1),
        })
    return s


def bin_index(cfg: Config, conf: torch.Tensor) -> torch.Tensor:
    """torchmetrics' binning: edges linspace(0, 1, B + 1) in float32, bucketize(right=True) - 1.

    Bin b holds edges[b] <= p < edges[b + 1]; a confidence of exactly 1.0 lands in an extra
    bin B (as in ``torchmetrics.functional.classification.calibration_error``).
    """
    conf32 = conf.to(torch.float32)
    edges = torch.linspace(0, 1, cfg.ece_bins + 1, dtype=torch.float32, device=conf.device)
    return (torch.bucketize(conf32, edges, right=True) - 1).clamp(0, cfg.ece_bins)


def accumulate(cfg: Config, state: dict[str, torch.Tensor], x: torch.Tensor) -> None:
    """Add the features ``x`` [N, F] of N rows into ``state`` in place (no host sync)."""
    c = {name: x[:, i] for i, name in enumerate(cfg.feature_names)}
    ok = 1.0 - c["nonfinite"]
    state["rows"] += c["row"].sum()
    state["nonfinite"] += c["nonfinite"].sum()
    state["bad_target"] += (c["has_target"] * c["bad_target"]).sum()
    state["scored"] += ok.sum()
    state["sum_max_logit"] += (ok * c["max_logit"]).sum()
    state["sum_max_prob"] += (ok * c["max_prob"]).sum()
    state["sum_lse"] += (ok * c["lse"]).sum()
    state["sum_entropy"] += (ok * c["entropy"]).sum()

    t = ok * c["has_target"] * (1.0 - c["bad_target"])
    rank = c["rank"]
    state["n_target"] += t.sum()
    for j, k in enumerate(cfg.topk):
        state["correct"][j] += (t * (rank < k)).sum()
    cls = c["target"].to(torch.int64).clamp(0, cfg.num_classes - 1)
    top1 = t * (rank == 0)
    state["class_count"].scatter_add_(0, cls, t)
    state["class_correct"].scatter_add_(0, cls, top1)
    state["sum_nll"] += (t * c["nll"]).sum()
    state["sum_brier"] += (t * c["brier"]).sum()
    b = bin_index(cfg, c["max_prob"])
    state["bin_count"].scatter_add_(0, b, t)
    state["bin_conf"].scatter_add_(0, b, t * c["max_prob"].to(torch.float32).to(torch.float64))
    state["bin_correct"].scatter_add_(0, b, top1)

    if cfg.has_labels:
        lr = c["label_row"]
        s = c["set_size"]
        state["label_rows"] += lr.sum()
        state["label_hist"].scatter_add_(0, s.to(torch.int64).clamp(0, cfg.hist_size - 1), lr)
        l_ok = ok * lr
        ne = l_ok * (s > 0)
        state["n_labeled"] += ne.sum()
        state["n_empty"] += (l_ok * (s == 0)).sum()
        s1 = s.clamp(min=1)
        for j, k in enumerate(cfg.topk):
            h = c[f"h@{k}"]
            state["real"][j] += (ne * (h > 0)).sum()
            state["prec"][j] += (ne * h / k).sum()
            state["rec"][j] += (ne * h / s1).sum()
            state["subset"][j] += (ne * ((s == k) & (h == k))).sum()
            state["hamming"][j] += (ne * (k + s - 2.0 * h)).sum()
        hv = c["h_var"]
        v = ne * (hv >= 0)
        strict = v * (hv == s)
        frac = v * hv.clamp(min=0) / s1
        state["n_var"] += v.sum()
        state["n_trunc"] += (ne * (hv < 0)).sum()
        state["var_strict"] += strict.sum()
        state["var_frac"] += frac.sum()
        g = s.to(torch.int64).clamp(0, cfg.label_k)
        state["grp_count"].scatter_add_(0, g, v)
        state["grp_strict"].scatter_add_(0, g, strict)
        state["grp_frac"].scatter_add_(0, g, frac)


def merge_states(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    for name, v in b.items():
        a[name] += v.to(a[name].device)


# ---------------------------------------------------------------------------------------
# values
# ---------------------------------------------------------------------------------------
def _div(a, b) -> float:
    a, b = float(a), float(b)
    return a / b if b > 0 else math.nan


def check_errors(s: dict[str, torch.Tensor], nonfinite: str, num_classes: int, num_samples: int | None) -> None:
    if float(s["rows"]) == 0:
        raise RuntimeError("no rows to score: compute() was called before any update() with a non-empty batch "
                           "(an empty batch, N=0, adds no rows)")
    if float(s["bad_target"]) > 0:
        raise ValueError(f"{int(s['bad_target'])} target(s) outside [0, num_classes={num_classes}) were passed "
                         "to update()")
    if float(s["bad_index"]) > 0:
        raise ValueError(f"{int(s['bad_index'])} sample_index value(s) outside [0, {num_samples}) were passed "
                         "to update()")
    if nonfinite == "error" and float(s["nonfinite"]) > 0:
        raise ValueError(f"{int(s['nonfinite'])} logits row(s) hold NaN or +inf (or are all -inf), so their "
                         "softmax is undefined; pass nonfinite='ignore' to exclude such rows from every metric")


def finalize(cfg: Config, s: dict[str, torch.Tensor], nonfinite: str, num_samples: int | None = None) -> dict:
    """Metric values from summed state. Scalars are Python floats; per-class/per-bin data tensors."""
    check_errors(s, nonfinite, cfg.num_classes, num_samples)
    s = {k: v.detach().to("cpu") for k, v in s.items()}
    out: dict = {"num_samples": int(s["rows"])}
    if nonfinite == "ignore":
        out["nonfinite_rows"] = int(s["nonfinite"])
    inc = cfg.include
    n_t = float(s["n_target"])
    if n_t > 0:
        out["num_targets"] = int(n_t)
        if "accuracy" in inc or "calibration" in inc:
            for j, k in enumerate(cfg.topk):
                out[f"top{k}"] = _div(s["correct"][j], n_t)
        if "accuracy" in inc:
            cnt = s["class_count"]
            per_class = torch.where(cnt > 0, s["class_correct"] / cnt.clamp(min=1), torch.full_like(cnt, math.nan))
            out["per_class_accuracy"] = per_class
            present = cnt > 0
            out["macro_accuracy"] = float(per_class[present].mean()) if bool(present.any()) else math.nan
        if "nll" in inc:
            out["nll"] = _div(s["sum_nll"], n_t)
            out["brier"] = _div(s["sum_brier"], n_t)
        if "calibration" in inc:
            cnt = s["bin_count"]
            acc = torch.where(cnt > 0, s["bin_correct"] / cnt.clamp(min=1), torch.zeros_like(cnt))
            conf = torch.where(cnt > 0, s["bin_conf"] / cnt.clamp(min=1), torch.zeros_like(cnt))
            gap = (acc - conf).abs()
            out["ece"] = float((gap * cnt).sum() / n_t)
            out["mce"] = float(gap[cnt > 0].max()) if bool((cnt > 0).any()) else math.nan
            out["confidence"] = _div(s["bin_conf"].sum(), n_t)
            out["ece_bin_edges"] = torch.linspace(0, 1, cfg.ece_bins + 1, dtype=torch.float32).to(torch.float64)
            out["ece_bin_count"] = cnt
            out["ece_bin_accuracy"] = torch.where(cnt > 0, acc, torch.full_like(cnt, math.nan))
            out["ece_bin_confidence"] = torch.where(cnt > 0, conf, torch.full_like(cnt, math.nan))
    if "ood" in inc:
        n_s = float(s["scored"])
        out["mean_max_logit"] = _div(s["sum_max_logit"], n_s)
        out["mean_max_prob"] = _div(s["sum_max_prob"], n_s)
        out["mean_energy"] = -_div(s["sum_lse"], n_s) if n_s > 0 else math.nan
        out["mean_entropy"] = _div(s["sum_entropy"], n_s)
    if cfg.has_labels and float(s["label_rows"]) > 0:
        n_l = float(s["n_labeled"])
        out["num_labeled"] = int(n_l)
        out["empty_label_sets"] = int(s["n_empty"])
        for j, k in enumerate(cfg.topk):
            out[f"real_top{k}"] = _div(s["real"][j], n_l)
        for j, k in enumerate(cfg.topk):
            out[f"precision@{k}"] = _div(s["prec"][j], n_l)
            out[f"recall@{k}"] = _div(s["rec"][j], n_l)
            out[f"subset_accuracy@{k}"] = _div(s["subset"][j], n_l)
            out[f"hamming_loss@{k}"] = _div(s["hamming"][j], n_l * cfg.num_classes)
        n_v = float(s["n_var"])
        out["variable_topk_strict"] = _div(s["var_strict"], n_v)
        out["variable_topk_fractional"] = _div(s["var_frac"], n_v)
        out["variable_topk_truncated"] = int(s["n_trunc"])
        gc, gs, gf = s["grp_count"].clone(), s["grp_strict"].clone(), s["grp_frac"].clone()
        cap = cfg.subgroup_cap
        if cap is not None and cap < gc.numel():  # merge label counts >= cap into group "cap+"
            for t_ in (gc, gs, gf):
                t_[cap] = t_[cap:].sum()
                t_[cap + 1:] = 0
        groups = [m for m in range(1, cfg.label_k + 1) if float(gc[m]) > 0]
        out["subgroup_count"] = {m: int(gc[m]) for m in groups}
        out["subgroup_accuracy"] = {m: float(gs[m] / gc[m]) for m in groups}
        out["subgroup_accuracy_fractional"] = {m: float(gf[m] / gc[m]) for m in groups}
        out["asma"] = (sum(out["subgroup_accuracy"].values()) / len(groups)) if groups else math.nan
        out["asma_fractional"] = (sum(out["subgroup_accuracy_fractional"].values()) / len(groups)) if groups else math.nan
        hist = s["label_hist"]
        out["label_count_histogram"] = hist
        nonempty = float(hist[1:].sum())
        out["multilabel_proportion"] = _div(hist[2:].sum(), nonempty)
        out["mean_label_count"] = _div((hist * torch.arange(hist.numel(), dtype=hist.dtype)).sum(), nonempty)
    return out
