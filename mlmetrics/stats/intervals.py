"""Bootstrap confidence intervals from replicate values: percentile and basic (reverse percentile)."""
from __future__ import annotations

import math

import torch

METHODS = ("percentile", "basic")


def check_level(level: float) -> float:
    if isinstance(level, bool) or not isinstance(level, (int, float)) or not 0.0 < float(level) < 1.0:
        raise ValueError(f"level must be a float in (0, 1), e.g. 0.95, got {level!r}")
    return float(level)


def interval(estimate: float, replicates: torch.Tensor, level: float = 0.95, method: str = "percentile") -> dict:
    """{"estimate", "low", "high", "se", "method", "level", "replicates"} of one metric.

    ``replicates``: float [B] bootstrap values of the metric (NaN replicates, where the metric is
    undefined, are left out and counted in ``"undefined"``). Percentile: the ``(1-level)/2`` and
    ``(1+level)/2`` quantiles (linear interpolation, as NumPy's default). Basic:
    ``2 * estimate - (those quantiles, swapped)``.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    level = check_level(level)
    v = replicates.detach().to("cpu", torch.float64).reshape(-1)
    ok = torch.isfinite(v)
    v = v[ok]
    out = {"estimate": float(estimate), "low": math.nan, "high": math.nan, "se": math.nan,
           "method": method, "level": level, "replicates": int(replicates.numel()),
           "undefined": int((~ok).sum())}
    if v.numel() < 2 or not math.isfinite(float(estimate)):
        return out
    a = (1.0 - level) / 2.0
    q = torch.quantile(v, torch.tensor([a, 1.0 - a], dtype=torch.float64))
    lo, hi = float(q[0]), float(q[1])
    if method == "basic":
        lo, hi = 2.0 * float(estimate) - hi, 2.0 * float(estimate) - lo
    out.update(low=lo, high=hi, se=float(v.std(unbiased=True)))
    return out
