"""Variable top-k accuracy (k = |Y_i| per row), its label-count subgroups and ASMA
(Anzaku, Mousavi, Van Messem, De Neve, arXiv 2412.18409).

Rows are grouped by label count m = |Y_i| (m >= 1; empty sets excluded). A row is strictly
correct when all m labels are within its top m; its fractional score is |top-m ∩ Y_i| / m.
ASMA is the unweighted mean of the subgroup accuracies over the subgroups present. Rows with
|Y_i| > ``label_k`` (the cap on the op's k) are left out and counted as truncated.

State ("sum", float64): ``n_var``, ``n_trunc``, ``var_strict``, ``var_frac``;
``grp_count`` / ``grp_strict`` / ``grp_frac`` [label_k + 1] (by label count).
"""
from __future__ import annotations

import torch

from ..ops import TopKStats
from ._state import Rows, StateSpec, div, masked
from .multilabel import hit_counts


def variable_topk_spec(label_k: int) -> dict[str, StateSpec]:
    spec = {name: StateSpec(()) for name in ("n_var", "n_trunc", "var_strict", "var_frac")}
    spec.update({name: StateSpec((label_k + 1,)) for name in ("grp_count", "grp_strict", "grp_frac")})
    return spec


def variable_topk_rows(stats: TopKStats, set_sizes: torch.Tensor, *, label_k: int, keep=None,
                       out: Rows | None = None) -> Rows:
    n = stats.row_stats.shape[0]
    out = Rows(n, stats.row_stats.device) if out is None else out
    s = set_sizes.to(torch.int64)
    ok = ~stats.nonfinite if keep is None else keep & ~stats.nonfinite
    ne = ok & (s > 0)
    cs = hit_counts(stats)
    inside = (s >= 1) & (s <= label_k)
    h = cs.gather(1, (s - 1).clamp(0, cs.shape[1] - 1)[:, None])[:, 0]   # hits within the top-|Y_i|
    v = ne & inside
    strict = v & (h == s)
    frac = masked(v, h.to(torch.float64) / s.clamp(min=1))
    g = s.clamp(0, label_k)
    out.add("n_var", v)
    out.add("n_trunc", ne & ~inside)
    out.add("var_strict", strict)
    out.add("var_frac", frac)
    out.add("grp_count", v, index=g, size=label_k + 1)
    out.add("grp_strict", strict, index=g, size=label_k + 1)
    out.add("grp_frac", frac, index=g, size=label_k + 1)
    return out


def variable_topk_update(stats: TopKStats, set_sizes: torch.Tensor, **kw) -> dict[str, torch.Tensor]:
    return variable_topk_rows(stats, set_sizes, **kw).sum()


def variable_topk_reduce(state, *, subgroup_cap: int | None = None) -> dict:
    n_v = float(state["n_var"])
    out: dict = {"variable_topk_strict": div(state["var_strict"], n_v),
                 "variable_topk_fractional": div(state["var_frac"], n_v),
                 "variable_topk_truncated": int(round(float(state["n_trunc"])))}
    gc, gs, gf = (state[k].detach().cpu().clone() for k in ("grp_count", "grp_strict", "grp_frac"))
    if subgroup_cap is not None and subgroup_cap < gc.numel():  # merge label counts >= cap into group "cap+"
        for t_ in (gc, gs, gf):
            t_[subgroup_cap] = t_[subgroup_cap:].sum()
            t_[subgroup_cap + 1:] = 0
    groups = [m for m in range(1, gc.numel()) if float(gc[m]) > 0]
    out["subgroup_count"] = {m: int(round(float(gc[m]))) for m in groups}
    out["subgroup_accuracy"] = {m: float(gs[m] / gc[m]) for m in groups}
    out["subgroup_accuracy_fractional"] = {m: float(gf[m] / gc[m]) for m in groups}
    nan = float("nan")
    out["asma"] = (sum(out["subgroup_accuracy"].values()) / len(groups)) if groups else nan
    out["asma_fractional"] = (sum(out["subgroup_accuracy_fractional"].values()) / len(groups)) if groups else nan
    return out


# ---------------------------------------------------------------------------------------
# public functional metrics
# ---------------------------------------------------------------------------------------
def _variable(logits, label_sets, subgroup_cap=None, **kw) -> dict:
    from . import _inputs
    from .config import check_optional_int

    subgroup_cap = check_optional_int(subgroup_cap, "subgroup_cap")
    st, sizes, _, label_k, _ = _inputs.score_label_sets(logits, label_sets, variable=True, **kw)
    return variable_topk_reduce(variable_topk_update(st, sizes, label_k=label_k), subgroup_cap=subgroup_cap)


def variable_topk_accuracy(logits, label_sets, **kw) -> dict:
    """Variable top-k (Anzaku et al., arXiv 2412.18409): k = |Y_i| per row.

    ``{"strict": mean 1[Y_i within the top-|Y_i|], "fractional": mean |top-|Y_i| ∩ Y_i| / |Y_i|}``
    over rows with a non-empty set."""
    out = _variable(logits, label_sets, **kw)
    return {"strict": out["variable_topk_strict"], "fractional": out["variable_topk_fractional"]}


def subgroup_accuracy(logits, label_sets, *, fractional: bool = False, **kw) -> dict[int, float]:
    """``{label_count m: variable top-k accuracy of the rows with |Y_i| = m}`` (strict, or
    fractional), for every m present. ``subgroup_cap=4`` merges counts >= 4 into key 4 ("4+")."""
    from .config import check_bool

    key = "subgroup_accuracy_fractional" if check_bool(fractional, "fractional") else "subgroup_accuracy"
    return _variable(logits, label_sets, **kw)[key]


def asma(logits, label_sets, *, fractional: bool = False, **kw) -> float:
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
    from .config import check_bool

    key = "asma_fractional" if check_bool(fractional, "fractional") else "asma"
    return _variable(logits, label_sets, **kw)[key]
