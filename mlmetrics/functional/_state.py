"""Metric state, declared: :class:`StateSpec` (shape, dtype, cross-process reduction) and
:class:`Rows`, the per-row contributions of one batch to the "sum" states.

Every metric group (``accuracy``, ``nll``, ``calibration``, ``ood``, ``multilabel``,
``variable_topk``, and the shared ``counts``) is a pair of functions over the op's output:

* ``<group>_rows(stats, ..., out=Rows)`` adds the group's per-row contributions to a
  :class:`Rows`; ``<group>_update(...)`` is ``<group>_rows(...).sum()``, the state delta;
* ``<group>_reduce(state)`` turns a summed state into metric values.

The linearity contract (what a streaming bootstrap relies on): every "sum" state is a sum over
rows, ``state = sum_i c_i`` with ``c_i`` row i's contribution. :meth:`Rows.dense` gives the
float64 matrix ``G`` [N, S] of those contributions and a layout ``{name: (column slice, shape)}``
with ``G.sum(0)`` equal to the state delta; :meth:`Rows.weighted` gives, for row weights
``W`` [N, R], the R weighted states ``W.T @ G`` without building ``G`` (class-indexed states
are scattered, not one-hot encoded). Every ``*_reduce`` accepts a state built from any
non-negative weighting of rows (zero counts give NaN, never an error), so replicate states
reduce to replicate metric values.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import torch

REDUCTIONS = ("sum", "max")
F64 = torch.float64


@dataclass(frozen=True)
class StateSpec:
    """One state entry: ``shape``, ``dtype``, ``reduction`` across processes / merges
    (``"sum"`` adds, ``"max"`` takes the elementwise maximum) and the ``fill`` of an empty state."""

    shape: tuple[int, ...]
    dtype: torch.dtype = F64
    reduction: str = "sum"
    fill: float | int = 0

    def empty(self, device=None) -> torch.Tensor:
        return torch.full(self.shape, self.fill, dtype=self.dtype, device=device)


def empty_state(spec: Mapping[str, StateSpec], device=None) -> dict[str, torch.Tensor]:
    return {name: s.empty(device) for name, s in spec.items()}


def merge_into(spec: Mapping[str, StateSpec], state: dict[str, torch.Tensor],
               other: Mapping[str, torch.Tensor]) -> None:
    """``state <- state (+ or max) other``, in place, by each entry's declared reduction."""
    for name, s in spec.items():
        v = other[name].to(state[name].device, state[name].dtype)
        if s.reduction == "sum":
            state[name].add_(v)
        else:
            torch.maximum(state[name], v, out=state[name])


class Rows:
    """Per-row float64 contributions of N rows to "sum" states.

    A term is either dense (``value`` [N] or [N, T]: row i adds ``value[i]`` to a state of
    shape ``()`` or ``(T,)``) or scattered (``value`` [N], ``index`` int64 [N]: row i adds
    ``value[i]`` at ``state[index[i]]`` of a state of shape ``(size,)``). ``weight`` [N]
    (optional) multiplies every term added afterwards. With ``into`` (a state dict), each term
    is added into it at once and not kept (the streaming form of ``add_to``: less memory).
    """

    def __init__(self, n: int, device=None, weight: torch.Tensor | None = None,
                 into: dict[str, torch.Tensor] | None = None):
        self.n = n
        self.device = device
        self.weight = None if weight is None else weight.to(F64)
        self.into = into
        self.terms: dict[str, tuple[torch.Tensor, torch.Tensor | None, tuple[int, ...]]] = {}
        self.sample_index: torch.Tensor | None = None  # the rows' samples, when a metric knows them

    def add(self, name: str, value: torch.Tensor, *, index: torch.Tensor | None = None,
            size: int | None = None) -> None:
        value = value.to(F64)
        if self.weight is not None:
            value = value * (self.weight if value.dim() == 1 else self.weight[:, None])
        shape = tuple(value.shape[1:]) if index is None else (int(size),)
        if self.into is not None:
            _add_term(self.into[name], value, index)
        else:
            self.terms[name] = (value, index, shape)

    def shapes(self) -> dict[str, tuple[int, ...]]:
        return {name: shape for name, (_, _, shape) in self.terms.items()}

    def sum(self) -> dict[str, torch.Tensor]:
        """The state delta: ``{name: sum over rows}``."""
        out = {}
        for name, (v, idx, shape) in self.terms.items():
            if idx is None:
                out[name] = v.sum(0)
            else:
                out[name] = torch.zeros(shape, dtype=F64, device=v.device).scatter_add_(0, idx, v)
        return out

    def add_to(self, state: dict[str, torch.Tensor]) -> None:
        """``state[name] += delta`` in place (no host sync; the state's dtype is kept)."""
        for name, (v, idx, _) in self.terms.items():
            _add_term(state[name], v, idx)

    def dense(self) -> tuple[torch.Tensor, dict[str, tuple[slice, tuple[int, ...]]]]:
        """``(G, layout)``: G float64 [N, S] with ``G[:, layout[name][0]].sum(0)`` equal to
        ``sum()[name].reshape(-1)``; ``layout[name] = (column slice, state shape)``."""
        cols, layout, j = [], {}, 0
        for name, (v, idx, shape) in self.terms.items():
            if idx is None:
                block = v.reshape(self.n, -1)
            else:
                block = torch.zeros(self.n, shape[0], dtype=F64, device=v.device)
                block.scatter_(1, idx[:, None], v[:, None])
            w = block.shape[1]
            layout[name] = (slice(j, j + w), shape)
            cols.append(block)
            j += w
        g = torch.cat(cols, dim=1) if cols else torch.zeros(self.n, 0, dtype=F64, device=self.device)
        return g, layout

    def weighted(self, w: torch.Tensor) -> dict[str, torch.Tensor]:
        """``{name: [R, *shape]}``: the states of R row weightings ``w`` [N, R] (= ``w.T @ G``)."""
        w = w.to(F64)
        out = {}
        for name, (v, idx, shape) in self.terms.items():
            if idx is None:
                out[name] = (w.T @ v.reshape(self.n, -1)).reshape((w.shape[1],) + shape)
            else:
                o = torch.zeros(w.shape[1], shape[0], dtype=F64, device=v.device)
                o.index_add_(1, idx, (w * v[:, None]).T)
                out[name] = o
        return out


def _add_term(state: torch.Tensor, value: torch.Tensor, index: torch.Tensor | None) -> None:
    if index is None:
        state.add_(value.sum(0).to(state.dtype))
    else:
        state.scatter_add_(0, index, value.to(state.dtype))


def masked(mask: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
    """float64 ``value`` where ``mask`` (bool, broadcast over trailing dims), else 0 (NaN-safe)."""
    value = value.to(F64)
    m = mask if value.dim() == mask.dim() else mask.reshape(mask.shape + (1,) * (value.dim() - mask.dim()))
    return torch.where(m, value, torch.zeros((), dtype=F64, device=value.device))


def div(a, b) -> float:
    """``a / b`` as a float; NaN when ``b`` is 0 (no rows)."""
    a, b = float(a), float(b)
    return a / b if b > 0 else float("nan")
