"""Top-label calibration: ECE, MCE, mean confidence and the reliability-diagram bins, with
torchmetrics' equal-width binning (edges ``linspace(0, 1, B + 1)`` in float32,
``bucketize(right=True) - 1``; a confidence of exactly 1.0 lands in an extra bin B).

State ("sum", float64 [B + 1]): ``bin_count``, ``bin_conf`` (sum of max probabilities),
``bin_correct`` (top-1 hits); reduce also reads ``n_target`` of :mod:`.counts`. The confidence
is ``TopKStats.max_prob`` = exp(-log_normalizer), exact at any logit magnitude.
"""
from __future__ import annotations

import torch

from ..ops import TopKStats
from . import _inputs
from ._state import Rows, StateSpec, div, masked
from .accuracy import topk_reduce, topk_update
from .config import check_int
from .counts import scored_targets


def calibration_spec(ece_bins: int) -> dict[str, StateSpec]:
    return {name: StateSpec((ece_bins + 1,)) for name in ("bin_count", "bin_conf", "bin_correct")}


def bin_edges(ece_bins: int) -> torch.Tensor:
    """float64 [B + 1]: the float32 edges ``linspace(0, 1, B + 1)``."""
    return torch.linspace(0, 1, ece_bins + 1, dtype=torch.float32).to(torch.float64)


def bin_index(conf: torch.Tensor, ece_bins: int) -> torch.Tensor:
    """int64 [N]: bin b holds ``edges[b] <= p < edges[b + 1]``; p == 1.0 goes to bin B."""
    conf32 = conf.to(torch.float32)
    edges = torch.linspace(0, 1, ece_bins + 1, dtype=torch.float32, device=conf.device)
    return (torch.bucketize(conf32, edges, right=True) - 1).clamp(0, ece_bins)


def calibration_rows(stats: TopKStats, *, ece_bins: int, keep=None, has_target=True, out: Rows | None = None) -> Rows:
    out = Rows(stats.row_stats.shape[0], stats.row_stats.device) if out is None else out
    rank, t = scored_targets(stats, has_target, keep)
    conf = stats.max_prob  # float32, as torchmetrics' softmax
    b = bin_index(masked(t, conf), ece_bins)
    out.add("bin_count", t, index=b, size=ece_bins + 1)
    out.add("bin_conf", masked(t, conf), index=b, size=ece_bins + 1)
    out.add("bin_correct", t & (rank == 0), index=b, size=ece_bins + 1)
    return out


def calibration_update(stats: TopKStats, *, ece_bins: int, **kw) -> dict[str, torch.Tensor]:
    return calibration_rows(stats, ece_bins=ece_bins, **kw).sum()


def calibration_reduce(state) -> dict:
    n_t = float(state["n_target"])
    cnt = state["bin_count"].detach().cpu()
    some = cnt > 0
    safe = cnt.clamp(min=1e-300)
    acc = torch.where(some, state["bin_correct"].detach().cpu() / safe, torch.zeros_like(cnt))
    conf = torch.where(some, state["bin_conf"].detach().cpu() / safe, torch.zeros_like(cnt))
    gap = (acc - conf).abs()
    nan = torch.full_like(cnt, float("nan"))
    return {
        "ece": div((gap * cnt).sum(), n_t),
        "mce": float(gap[some].max()) if bool(some.any()) else float("nan"),
        "confidence": div(state["bin_conf"].sum(), n_t),
        "ece_bin_edges": bin_edges(cnt.numel() - 1),
        "ece_bin_count": cnt,
        "ece_bin_accuracy": torch.where(some, acc, nan),
        "ece_bin_confidence": torch.where(some, conf, nan),
    }


def calibration(logits, target, n_bins: int = 15, *, class_subset=None, nonfinite="error", backend="auto") -> dict:
    """Top-label calibration with torchmetrics' equal-width binning.

    Returns ``{"ece", "mce", "confidence" (mean max softmax prob), "top1", "ece_bin_edges" [B+1],
    "ece_bin_count" / "ece_bin_accuracy" / "ece_bin_confidence" [B+1]}``: entry b < B is the bin
    ``edges[b] <= p < edges[b+1]``; the last entry holds rows whose max probability is exactly
    1.0 in float32 (torchmetrics puts them in an extra bin too). The per-bin arrays are the data
    of a reliability diagram (NaN for empty bins)."""
    n_bins = check_int(n_bins, "n_bins", 1)
    st, _, _, state = _inputs.score_single_label(logits, target, 1, with_softmax=True, class_subset=class_subset,
                                                 nonfinite=nonfinite, backend=backend)
    state.update(topk_update(st, topk=(1,)))
    state.update(calibration_update(st, ece_bins=n_bins))
    out = calibration_reduce(state)
    out["top1"] = topk_reduce(state, topk=(1,))["top1"]
    return out


def expected_calibration_error(logits, target, n_bins: int = 15, **kw) -> float:
    """Top-label ECE (L1) = sum_b |acc_b - conf_b| n_b / N (matches torchmetrics norm='l1')."""
    return calibration(logits, target, n_bins, **kw)["ece"]
