"""Out-of-distribution scores: max softmax probability (MSP), max logit, energy
(= -logsumexp, Liu et al. 2020) and entropy, per row and as means over finite rows.

State ("sum", float64 scalars): ``sum_max_logit``, ``sum_max_prob``, ``sum_lse``,
``sum_entropy``; reduce also reads ``scored`` of :mod:`.counts`. Needs the softmax columns.
"""
from __future__ import annotations

import torch

from ..ops import TopKStats
from . import _inputs
from ._state import Rows, StateSpec, div, masked
from .config import check_backend

NAMES = ("sum_max_logit", "sum_max_prob", "sum_lse", "sum_entropy")


def ood_spec() -> dict[str, StateSpec]:
    return {name: StateSpec(()) for name in NAMES}


def ood_rows(stats: TopKStats, *, keep=None, out: Rows | None = None) -> Rows:
    out = Rows(stats.row_stats.shape[0], stats.row_stats.device) if out is None else out
    ok = ~stats.nonfinite if keep is None else keep & ~stats.nonfinite
    max_logit = stats.max_logit.to(torch.float64)
    out.add("sum_max_logit", masked(ok, max_logit))
    out.add("sum_max_prob", masked(ok, stats.max_prob))
    out.add("sum_lse", masked(ok, max_logit + stats.log_normalizer.to(torch.float64)))
    out.add("sum_entropy", masked(ok, stats.entropy))
    return out


def ood_update(stats: TopKStats, **kw) -> dict[str, torch.Tensor]:
    return ood_rows(stats, **kw).sum()


def ood_reduce(state) -> dict:
    n_s = float(state["scored"])
    return {"mean_max_logit": div(state["sum_max_logit"], n_s), "mean_max_prob": div(state["sum_max_prob"], n_s),
            "mean_energy": -div(state["sum_lse"], n_s), "mean_entropy": div(state["sum_entropy"], n_s)}


def ood_scores(logits, *, class_subset=None, backend="auto") -> dict[str, torch.Tensor]:
    """Per-row OOD-style scores from one pass: ``max_prob`` (MSP), ``max_logit``, ``logsumexp``,
    ``energy`` (= -logsumexp, the free energy of Liu et al. 2020; lower = more in-distribution),
    ``entropy`` (nats). float32 [N] each; NaN on rows whose softmax is undefined (and
    ``max_logit`` NaN on rows holding NaN)."""
    check_backend(backend)
    x = _inputs.as_logits(logits)
    class_subset, _ = _inputs.as_class_subset(x, class_subset)
    st = _inputs.run_op(x, 1, class_subset=class_subset, with_softmax=True, backend=backend)
    return {"max_prob": st.max_prob, "max_logit": st.max_logit, "logsumexp": st.logsumexp,
            "energy": -st.logsumexp, "entropy": st.entropy}
