"""Poisson(1) bootstrap weights from a counter-based hash of (sample index, replicate, seed).

``W[i, b]`` depends only on ``sample_index[i]``, ``b`` and ``seed``: the same sample gets the same
weight in replicate ``b`` whatever the batch it arrives in, the batch order, or the process that
scores it. Hash: ``z = key(seed, index) + key(seed ^ STREAM, b)`` (``key`` = the splitmix64
finaliser of its argument), then one more finaliser round; the top 32 bits of ``z`` are a uniform
``u``, and ``W = #{k : u >= T_k}`` with ``T_k = floor(2^32 * P(Poisson(1) <= k))`` (inverse CDF).

The compiled CPU op ``mlmetrics::poisson_weights`` and :func:`poisson_weights_torch` (pure torch:
used on GPU, and the oracle in tests) give bit-identical results.
"""
from __future__ import annotations

import math

import torch

MASK64 = (1 << 64) - 1
GOLDEN = 0x9E3779B97F4A7C15           # splitmix64 increment
MIX1, MIX2 = 0xBF58476D1CE4E5B9, 0x94D049BB133111EB
STREAM = 0x5851F42D4C957F2D           # separates the replicate keys from the sample keys


def _i64(v: int) -> int:
    """An unsigned 64-bit constant as the signed int64 torch stores."""
    v &= MASK64
    return v - (1 << 64) if v >= 1 << 63 else v


def _poisson_thresholds() -> list[int]:
    """T_k = floor(2^32 * P(Poisson(1) <= k)) for k = 0, 1, ... while below 2^32."""
    out, cdf, p, k = [], 0.0, math.exp(-1.0), 0
    while True:
        cdf += p
        t = math.floor(cdf * 2.0 ** 32)
        if t >= 2 ** 32 - 1 or k > 30:
            return out
        out.append(t)
        k += 1
        p /= k


THRESHOLDS = _poisson_thresholds()    # 12 thresholds: weights are 0..12


def _shr(z: torch.Tensor, s: int) -> torch.Tensor:
    """Logical right shift of int64 viewed as uint64."""
    return (z >> s) & ((1 << (64 - s)) - 1)


def _mix(z: torch.Tensor) -> torch.Tensor:
    """The splitmix64 finaliser on int64 tensors (wrapping arithmetic)."""
    z = (z ^ _shr(z, 30)) * _i64(MIX1)
    z = (z ^ _shr(z, 27)) * _i64(MIX2)
    return z ^ _shr(z, 31)


def sample_keys(sample_index: torch.Tensor, seed: int) -> torch.Tensor:
    """int64 [N]: key(seed, index)."""
    z = sample_index.to(torch.int64) * _i64(GOLDEN) + _i64(seed * GOLDEN + GOLDEN)
    return _mix(z)


def replicate_keys(replicates: int, seed: int, device=None) -> torch.Tensor:
    """int64 [B]: key(seed ^ STREAM, b)."""
    b = torch.arange(replicates, dtype=torch.int64, device=device)
    return _mix(b * _i64(GOLDEN) + _i64((seed ^ STREAM) * GOLDEN))


def poisson_weights_torch(sample_index: torch.Tensor, replicates: int, seed: int = 0,
                          dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """``dtype`` [N, B] Poisson(1) weights (pure torch; any device)."""
    h = sample_keys(sample_index, seed)
    r = replicate_keys(replicates, seed, sample_index.device)
    z = h[:, None] + r[None, :]
    z = (z ^ _shr(z, 30)) * _i64(MIX1)
    z = (z ^ _shr(z, 27)) * _i64(MIX2)
    u = _shr(z, 32)  # the top 32 bits (the last xorshift of the finaliser does not change them)
    t = torch.tensor(THRESHOLDS, dtype=torch.int64, device=sample_index.device)
    return torch.bucketize(u, t, right=True).to(dtype)


def _has_op() -> bool:
    from ..ops import HAS_EXTENSION

    return HAS_EXTENSION and hasattr(torch.ops.mlmetrics, "poisson_weights")


def has_fused_op() -> bool:
    """Whether the compiled ``mlmetrics::poisson_accumulate`` (CPU) is available."""
    from ..ops import HAS_EXTENSION

    return HAS_EXTENSION and hasattr(torch.ops.mlmetrics, "poisson_accumulate")


def poisson_weights(sample_index: torch.Tensor, replicates: int, seed: int = 0) -> torch.Tensor:
    """float64 [N, B] Poisson(1) weights of the rows ``sample_index`` (int [N]) in replicates
    0..B-1; the compiled op on CPU tensors, :func:`poisson_weights_torch` elsewhere."""
    if sample_index.dim() != 1:
        raise ValueError(f"sample_index must be 1-D [N], got shape {tuple(sample_index.shape)}")
    if replicates < 1:
        raise ValueError(f"replicates must be >= 1, got {replicates}")
    idx = sample_index.to(torch.int64)
    if idx.device.type == "cpu" and _has_op():
        return torch.ops.mlmetrics.poisson_weights(idx.contiguous(), int(replicates), _i64(seed))
    return poisson_weights_torch(idx, replicates, seed)


def _register_fake() -> None:
    if not _has_op():
        return

    @torch.library.register_fake("mlmetrics::poisson_weights")
    def _fake(sample_index, replicates, seed):
        return sample_index.new_empty((sample_index.shape[0], replicates), dtype=torch.float64)

    if has_fused_op():
        @torch.library.register_fake("mlmetrics::poisson_accumulate")
        def _fake_accumulate(sums, sample_index, rows, values, seed):
            return None


_register_fake()
