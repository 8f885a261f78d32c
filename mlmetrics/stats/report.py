"""Intervals in the reports: the text suffix of a metric line and the CSV columns."""
from __future__ import annotations

import math

#: keys a ``Bootstrap.compute()`` adds to the metrics dict (not metrics themselves)
INTERVAL_KEYS = ("intervals", "bootstrap")


def _ok(v) -> bool:
    return isinstance(v, (int, float)) and math.isfinite(v)


def interval_suffix(iv: dict | None) -> str:
    """``"  [0.6100, 0.8600]"`` for a metric's interval dict (empty without one)."""
    if not iv or not (_ok(iv.get("low")) and _ok(iv.get("high"))):
        return ""
    return f"  [{iv['low']:.4f}, {iv['high']:.4f}]"


def interval_header(metrics: dict) -> str | None:
    """The line saying what the brackets are, e.g. ``"[95% percentile bootstrap interval, 1000
    replicates, seed 0]"``; None without intervals."""
    b = metrics.get("bootstrap")
    if not isinstance(b, dict):
        return None
    return (f"[{100 * b['level']:g}% {b['method']} bootstrap interval, {b['replicates']} replicates, "
            f"seed {b['seed']}]")


def interval_columns(metrics: dict) -> dict:
    """``{"top1_low": .., "top1_high": .., ...}`` for a CSV row (empty without intervals)."""
    out = {}
    for k, iv in (metrics.get("intervals") or {}).items():
        if isinstance(iv, dict):
            out[f"{k}_low"] = iv.get("low")
            out[f"{k}_high"] = iv.get("high")
    return out
