"""Negative log-likelihood (cross-entropy) and the multiclass Brier score.

State ("sum", float64 scalars): ``sum_nll``, ``sum_brier`` over finite rows with a valid
target; reduce also reads ``n_target`` of :mod:`.counts`. Needs the softmax columns.
"""
from __future__ import annotations

import torch

from ..ops import TopKStats
from . import _inputs
from ._state import Rows, StateSpec, div, masked
from .counts import scored_targets


def nll_spec() -> dict[str, StateSpec]:
    return {"sum_nll": StateSpec(()), "sum_brier": StateSpec(())}


def nll_rows(stats: TopKStats, *, keep=None, has_target=True, out: Rows | None = None) -> Rows:
    """nll_i = (max_logit - target_logit) + log_normalizer; brier_i = sum_j p_j^2 - 2 p_target + 1."""
    out = Rows(stats.row_stats.shape[0], stats.row_stats.device) if out is None else out
    _, t = scored_targets(stats, has_target, keep)
    nll = stats.nll.to(torch.float64)
    brier = stats.sum_p2.to(torch.float64) - 2.0 * torch.exp(-nll) + 1.0
    out.add("sum_nll", masked(t, nll))
    out.add("sum_brier", masked(t, brier))
    return out


def nll_update(stats: TopKStats, **kw) -> dict[str, torch.Tensor]:
    return nll_rows(stats, **kw).sum()


def nll_reduce(state) -> dict:
    n_t = float(state["n_target"])
    return {"nll": div(state["sum_nll"], n_t), "brier": div(state["sum_brier"], n_t)}


def _nll_brier(logits, target, class_subset, nonfinite, backend) -> dict:
    st, _, _, state = _inputs.score_single_label(logits, target, 1, with_softmax=True, class_subset=class_subset,
                                                 nonfinite=nonfinite, backend=backend)
    state.update(nll_update(st))
    return nll_reduce(state)


def nll(logits, target, *, class_subset=None, nonfinite="error", backend="auto") -> float:
    """Mean negative log-likelihood -log softmax(logits)[target] (= cross-entropy, nats)."""
    return _nll_brier(logits, target, class_subset, nonfinite, backend)["nll"]


cross_entropy = nll


def brier_score(logits, target, *, class_subset=None, nonfinite="error", backend="auto") -> float:
    """Mean multiclass Brier score sum_c (p_c - 1[c = y])^2, in [0, 2] (not halved)."""
    return _nll_brier(logits, target, class_subset, nonfinite, backend)["brier"]
