"""McNemar's exact test for paired per-sample hits (two models scored on the same samples)."""
from __future__ import annotations

from fractions import Fraction
import torch


def mcnemar_exact(b: int, c: int) -> float:
    """Two-sided exact p-value from the discordant counts: ``b`` samples only model A gets right,
    ``c`` only model B. ``p = min(1, 2 * P(X <= min(b, c)))``, X ~ Binomial(b + c, 1/2), summed
    in exact integer arithmetic (statsmodels' ``mcnemar(exact=True)``)."""
    b, c = int(b), int(c)
    if b < 0 or c < 0:
        raise ValueError(f"discordant counts must be >= 0, got {b}, {c}")
    n = b + c
    if n == 0:
        return 1.0
    term = tail = 1  # C(n, 0); C(n, k + 1) = C(n, k) * (n - k) / (k + 1) stays an exact integer
    for k in range(min(b, c)):
        term = term * (n - k) // (k + 1)
        tail += term
    return float(min(Fraction(1), Fraction(2 * tail, 1 << n)))


def discordant(hits_a: torch.Tensor, hits_b: torch.Tensor) -> tuple[int, int]:
    """(only A right, only B right) of bool [M] hit vectors of the same M samples."""
    a, b = hits_a.to(torch.bool), hits_b.to(torch.bool)
    if a.shape != b.shape:
        raise ValueError(f"hit vectors of different lengths: {tuple(a.shape)} vs {tuple(b.shape)}")
    return int((a & ~b).sum()), int((~a & b).sum())
