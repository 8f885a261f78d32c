"""Row counts shared by every group: rows seen, non-finite rows, bad targets / sample indices,
rows scored, rows with a valid target; and the error policy applied at reduce time.

State (float64 scalars, "sum"): ``rows``, ``nonfinite``, ``bad_target``, ``bad_index``,
``scored`` (finite rows), ``n_target`` (finite rows with a target in ``[0, C)``).
"""
from __future__ import annotations

import torch

from ..ops import TopKStats
from ._state import Rows, StateSpec

NAMES = ("rows", "nonfinite", "bad_target", "bad_index", "scored", "n_target")


def counts_spec() -> dict[str, StateSpec]:
    return {name: StateSpec(()) for name in NAMES}


def target_ranks(stats: TopKStats, has_target) -> tuple[torch.Tensor, torch.Tensor]:
    """``(rank int64 [N] (-1 without / outside), has bool [N])`` for ``has_target`` a bool or bool [N]."""
    n = stats.row_stats.shape[0]
    dev = stats.row_stats.device
    if isinstance(has_target, bool):
        has = torch.full((n,), has_target, dtype=torch.bool, device=dev)
        rank = stats.target_rank if has_target else torch.full((n,), -1, dtype=torch.int64, device=dev)
    else:
        has = has_target
        rank = torch.where(has, stats.target_rank, torch.full_like(stats.target_rank, -1))
    return rank, has


def counts_rows(stats: TopKStats, has_target=False, *, keep: torch.Tensor | None = None,
                bad_index: torch.Tensor | None = None, out: Rows | None = None) -> Rows:
    """Add every row's counts. ``keep`` bool [N]: rows to count (others add nothing but
    ``bad_index``); ``bad_index`` bool [N]: rows whose ``sample_index`` was out of range."""
    n = stats.row_stats.shape[0]
    out = Rows(n, stats.row_stats.device) if out is None else out
    rank, has = target_ranks(stats, has_target)
    keep = torch.ones(n, dtype=torch.bool, device=rank.device) if keep is None else keep
    ok = keep & ~stats.nonfinite
    out.add("rows", keep)
    out.add("nonfinite", keep & stats.nonfinite)
    out.add("bad_target", keep & has & (rank < 0))
    out.add("bad_index", torch.zeros(n, dtype=torch.bool, device=rank.device) if bad_index is None else bad_index)
    out.add("scored", ok)
    out.add("n_target", ok & (rank >= 0))
    return out


def counts_update(stats: TopKStats, has_target=False, **kw) -> dict[str, torch.Tensor]:
    return counts_rows(stats, has_target, **kw).sum()


def check_counts(state, nonfinite: str, num_classes: int, num_samples: int | None = None) -> None:
    """The error policy: raise for no rows, bad targets / indices, non-finite rows under "error"."""
    if float(state["rows"]) == 0:
        raise RuntimeError("no rows to score: compute() was called before any update() with a non-empty batch "
                           "(an empty batch, N=0, adds no rows)")
    if float(state["bad_target"]) > 0:
        raise ValueError(f"{int(state['bad_target'])} target(s) outside [0, num_classes={num_classes}) were "
                         "passed to update()")
    if float(state["bad_index"]) > 0:
        raise ValueError(f"{int(state['bad_index'])} sample_index value(s) outside [0, {num_samples}) were "
                         "passed to update()")
    if nonfinite == "error" and float(state["nonfinite"]) > 0:
        raise ValueError(f"{int(state['nonfinite'])} logits row(s) hold NaN or +inf (or are all -inf), so their "
                         "softmax is undefined; pass nonfinite='ignore' to exclude such rows from every metric")


def counts_reduce(state, nonfinite: str = "error") -> dict:
    out = {"num_samples": int(round(float(state["rows"])))}
    if nonfinite == "ignore":
        out["nonfinite_rows"] = int(round(float(state["nonfinite"])))
    n_t = float(state["n_target"])
    if n_t > 0:
        out["num_targets"] = int(round(n_t))
    return out


def scored_targets(stats: TopKStats, has_target=False, keep: torch.Tensor | None = None):
    """``(rank int64 [N], valid bool [N])``: valid = kept, finite, with a target in ``[0, C)``."""
    rank, _ = target_ranks(stats, has_target)
    valid = ~stats.nonfinite & (rank >= 0)
    return rank, (valid if keep is None else valid & keep)
