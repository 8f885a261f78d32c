"""The streaming Poisson bootstrap of row-weighted sum states.

A metric's state is a dict of float64 sums ``state[name] = sum_i g_i[name]`` over rows i (per-row
*contributions* g_i). Replicate b of the state is ``sum_i W[i, b] * g_i`` with ``W[i, b]`` the
Poisson(1) weight of row i's sample (:mod:`mlmetrics.stats.weights`). So the replicate states are
``G^T W``: float64 ``[total state size, B]``, added per batch, merged / all-reduced with SUM, and
the same (bit for bit when the contributions are integers) whatever the batching, batch order or
number of processes.
"""
from __future__ import annotations

import math
from typing import Mapping

import torch

from .weights import _i64, has_fused_op, poisson_weights

DEFAULT_REPLICATES = 1000


def _check_replicates(replicates) -> int:
    if isinstance(replicates, bool) or not isinstance(replicates, int) or replicates < 2:
        raise ValueError(f"replicates must be an int >= 2 (default {DEFAULT_REPLICATES}), got {replicates!r}")
    return replicates


class PoissonBootstrap:
    """Replicate sums of a state whose entries have the shapes ``shapes`` ({name: shape}).

    ``self.sums`` is float64 [total, B] (state entry major, so each row's contribution is a
    contiguous add); :meth:`replicate` gives replicate b as a state dict.
    """

    def __init__(self, shapes: Mapping[str, tuple], replicates: int = DEFAULT_REPLICATES, seed: int = 0,
                 device=None):
        self.replicates = _check_replicates(replicates)
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise ValueError(f"seed must be an int, got {seed!r}")
        self.seed = seed
        self.shapes = {k: tuple(v) for k, v in shapes.items()}
        self.slices: dict[str, slice] = {}
        off = 0
        for k, shp in self.shapes.items():
            n = math.prod(shp)
            self.slices[k] = slice(off, off + n)
            off += n
        self.total = off
        self.sums = torch.zeros(off, self.replicates, dtype=torch.float64, device=device)

    @property
    def device(self) -> torch.device:
        return self.sums.device

    def to(self, device) -> "PoissonBootstrap":
        self.sums = self.sums.to(device)
        return self

    def weights(self, sample_index: torch.Tensor) -> torch.Tensor:
        """float64 [N, B]: the Poisson weights of the rows ``sample_index``."""
        return poisson_weights(sample_index.to(self.device), self.replicates, self.seed)

    def add_rows(self, rows, sample_index: torch.Tensor) -> None:
        """Add a batch's per-row contributions ``rows`` (a :class:`~mlmetrics.functional.Rows`:
        dense terms [N] / [N, T], scattered terms [N] at ``index``) of the samples
        ``sample_index`` int [N]: ``sums[entry] += value^T @ W``. Terms of entries this bootstrap
        does not hold are ignored. On CPU one fused op makes each row's weights once and adds
        every contribution of the row (no [N, B] weight matrix); elsewhere weights + matmul."""
        idx = sample_index.to(self.device, torch.int64)
        if self.device.type == "cpu" and has_fused_op():
            r, v = self._flat_terms(rows)
            if r.numel():
                torch.ops.mlmetrics.poisson_accumulate(self.sums, idx, r, v, _i64(self.seed))
        else:
            self.add_rows_weighted(rows, self.weights(idx))

    def _terms(self, rows):
        """(state slice, float64 value [N] / [N, T], index [N] | None) of each term of ``rows``
        this bootstrap holds."""
        for name, (v, idx, _) in rows.terms.items():
            d = self.slices.get(name)
            if d is not None:
                yield d, v.to(self.device, torch.float64), None if idx is None else idx.to(self.device)

    def _flat_terms(self, rows) -> tuple[torch.Tensor, torch.Tensor]:
        """(state row int64 [N, K], value float64 [N, K]) of every term of ``rows``."""
        rs, vs = [], []
        for d, v, idx in self._terms(rows):
            if idx is None:
                v = v.reshape(v.shape[0], -1)
                rs.append(torch.arange(d.start, d.stop, device=self.device).expand(v.shape[0], -1))
            else:
                v = v[:, None]
                rs.append((idx + d.start)[:, None])
            vs.append(v)
        if not rs:
            return torch.zeros(0, 0, dtype=torch.int64), torch.zeros(0, 0, dtype=torch.float64)
        return torch.cat(rs, 1).contiguous(), torch.cat(vs, 1).contiguous()

    def add_rows_weighted(self, rows, weights: torch.Tensor) -> None:
        """:meth:`add_rows` with the weights given (float64 [N, B]): pure torch, any device."""
        w = weights.to(self.device, torch.float64)
        dense, dst = [], []
        for d, v, idx in self._terms(rows):
            if idx is None:
                dense.append(v.reshape(v.shape[0], -1))
                dst.append(torch.arange(d.start, d.stop, device=self.device))
            else:  # a scatter: row i adds v[i] * w[i] at entry row index[i]
                self.sums.index_add_(0, idx + d.start, w * v[:, None])
        if dense:
            self.sums.index_add_(0, torch.cat(dst), torch.cat(dense, 1).t() @ w)

    def add(self, sample_index: torch.Tensor, contributions: torch.Tensor, layout: Mapping,
            weights: torch.Tensor | None = None) -> None:
        """Add rows given as a dense float64 ``contributions`` [N, S] whose columns ``layout[name]``
        (a slice, or ``(slice, shape)`` as :meth:`Rows.dense` gives) are the per-row
        contributions to ``state[name]`` (flattened); ``sample_index`` int [N]."""
        g = contributions.to(self.device, torch.float64)
        w = self.weights(sample_index) if weights is None else weights
        src, dst = [], []
        for name, cols in layout.items():
            cols = cols[0] if isinstance(cols, tuple) else cols
            d = self.slices[name]
            if cols.stop - cols.start != d.stop - d.start:
                raise ValueError(f"contributions to {name!r} have {cols.stop - cols.start} columns, the state "
                                 f"{d.stop - d.start}")
            src.append(torch.arange(cols.start, cols.stop))
            dst.append(torch.arange(d.start, d.stop))
        if src:
            s_, d_ = torch.cat(src).to(g.device), torch.cat(dst).to(g.device)
            self.sums.index_add_(0, d_, g[:, s_].t() @ w)

    def add_scattered(self, sample_index: torch.Tensor, name: str, index: torch.Tensor, values: torch.Tensor,
                      weights: torch.Tensor | None = None) -> None:
        """Add ``values`` [N] at flat position ``index`` [N] of ``state[name]`` (a scatter_add)."""
        w = self.weights(sample_index) if weights is None else weights
        d = self.slices[name]
        self.sums.index_add_(0, index.to(self.device) + d.start, w * values.to(self.device, torch.float64)[:, None])

    def merge(self, other: "PoissonBootstrap") -> "PoissonBootstrap":
        if (other.replicates, other.seed, other.shapes) != (self.replicates, self.seed, self.shapes):
            raise ValueError("can only merge bootstraps with the same replicates, seed and state layout")
        self.sums += other.sums.to(self.device)
        return self

    def all_reduce(self) -> torch.Tensor:
        """SUM over ``torch.distributed`` (every rank must call it); returns the reduced sums
        (the local ones stay as they are)."""
        d = torch.distributed
        out = self.sums.clone()
        if d.is_available() and d.is_initialized() and d.get_world_size() > 1:
            d.all_reduce(out, op=d.ReduceOp.SUM)
        return out

    def replicate(self, b: int, sums: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Replicate b as a state dict (views into ``sums``, default ``self.sums``)."""
        return self.replicate_row((self.sums if sums is None else sums)[:, b])

    def replicate_row(self, row: torch.Tensor) -> dict[str, torch.Tensor]:
        """A state dict of views into ``row`` (float64 [total]: one replicate of every entry)."""
        return {k: row[s].view(self.shapes[k]) if row.is_contiguous() else row[s].reshape(self.shapes[k])
                for k, s in self.slices.items()}

    def state_dict(self) -> dict:
        return {"sums": self.sums.detach().clone(), "replicates": self.replicates, "seed": self.seed,
                "names": list(self.shapes)}

    def load_state_dict(self, sd: dict) -> None:
        if sd["replicates"] != self.replicates or sd["seed"] != self.seed or list(sd["names"]) != list(self.shapes) \
                or tuple(sd["sums"].shape) != tuple(self.sums.shape):
            raise ValueError("bootstrap state_dict comes from another configuration")
        self.sums = sd["sums"].to(self.device, torch.float64).clone()
