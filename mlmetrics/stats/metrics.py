"""Confidence intervals for every scalar metric of a :class:`~mlmetrics.ClassificationMetrics`:
the streaming Poisson bootstrap, computed in the metric's own update (no second read of the logits)."""
from __future__ import annotations

import math

import torch

from ..metrics import ClassificationMetrics, _core
from ._contrib import contributions
from .bootstrap import DEFAULT_REPLICATES, PoissonBootstrap
from .intervals import METHODS, check_level, interval

#: rows per chunk when the replicates are built from per-sample records at compute time
CHUNK = 4096


def scalar_metrics(values: dict) -> dict[str, float]:
    """The scalar metrics of a ``compute()`` dict: float values, and per-subgroup dict entries as
    ``"subgroup_accuracy[2]"`` (counts and tensors are left out)."""
    out: dict[str, float] = {}
    for k, v in values.items():
        if isinstance(v, float):
            out[k] = v
        elif isinstance(v, dict) and k != "subgroup_count":
            for g, x in v.items():
                if isinstance(x, float):
                    out[f"{k}[{g}]"] = x
    return out


class Bootstrap:
    """Bootstrap intervals of every scalar metric of ``metrics`` (a ``ClassificationMetrics``).

    Feed batches through :meth:`update` (same arguments as ``ClassificationMetrics.update``, which
    it calls). Replicate b weights sample i by ``W[i, b] ~ Poisson(1)`` from a hash of
    ``(sample_index[i], b, seed)``, so the intervals do not depend on batch size, batch order or
    the number of processes. Without ``sample_index`` rows are numbered in arrival order.

    * streaming (``metrics.dedupe`` off): the replicate sums (float64 [state size, replicates])
      grow in every ``update``; ``sync``/``compute`` all-reduce them with SUM.
    * dedupe (``metrics`` given ``num_samples`` or ``label_sets``): the metric already keeps one
      record per sample; the replicates are built from those records in ``compute`` (a sample seen
      twice counts once, exactly as in the point estimate).

    ``compute()`` returns ``metrics.compute()`` plus ``"intervals"``:
    ``{metric: {"estimate", "low", "high", "se", "method", "level", "replicates", "undefined"}}``.
    """

    def __init__(self, metrics: ClassificationMetrics, replicates: int = DEFAULT_REPLICATES, level: float = 0.95,
                 seed: int = 0, method: str = "percentile"):
        if not isinstance(metrics, ClassificationMetrics):
            raise TypeError(f"metrics must be a ClassificationMetrics, got {type(metrics).__name__}")
        if method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {method!r}")
        self.metrics = metrics
        self.level = check_level(level)
        self.method = method
        shapes = {k: tuple(v.shape) for k, v in _core.empty_state(metrics.cfg).items()}
        self.boot = PoissonBootstrap(shapes, replicates, seed, device=metrics._device)
        self._next = 0
        if not metrics.dedupe:
            metrics.row_hook = self._add_rows

    @property
    def replicates(self) -> int:
        return self.boot.replicates

    @property
    def seed(self) -> int:
        return self.boot.seed

    def reset(self) -> None:
        self.metrics.reset()
        self.boot.sums.zero_()
        self._next = 0

    def update(self, logits, target=None, sample_index=None):
        """``ClassificationMetrics.update`` plus the replicate sums; returns its TopKStats."""
        return self.metrics.update(logits, target, sample_index)

    def _add_rows(self, x: torch.Tensor, sample_index: torch.Tensor | None) -> None:
        n = x.shape[0]
        if sample_index is None:
            sample_index = torch.arange(self._next, self._next + n, device=x.device)
        self._next += n
        self.boot.to(x.device)
        self._add(x, sample_index)

    def _add(self, x: torch.Tensor, sample_index: torch.Tensor) -> None:
        dense, layout, scattered = contributions(self.metrics.cfg, x)
        w = self.boot.weights(sample_index)
        self.boot.add(sample_index, dense, layout, weights=w)
        for name, index, values in scattered:
            self.boot.add_scattered(sample_index, name, index, values, weights=w)

    # ---- replicates ---------------------------------------------------------------------
    def _records(self, sync: bool) -> torch.Tensor:
        rec = self.metrics.records
        d = torch.distributed
        if sync and d.is_available() and d.is_initialized() and d.get_world_size() > 1:
            rec = rec.clone()
            d.all_reduce(rec, op=d.ReduceOp.MAX)
        return rec

    def replicate_sums(self, sync: bool | None = None) -> torch.Tensor:
        """float64 [state size, replicates]: the replicate states (all-reduced when distributed)."""
        if sync is None:
            d = torch.distributed
            sync = d.is_available() and d.is_initialized() and d.get_world_size() > 1
        if not self.metrics.dedupe:
            return self.boot.all_reduce() if sync else self.boot.sums
        rec = self._records(sync)[: self.metrics.num_samples]
        boot = PoissonBootstrap(self.boot.shapes, self.replicates, self.seed, device=rec.device)
        seen = (rec[:, -1] > 0).nonzero()[:, 0]
        for s in range(0, seen.numel(), CHUNK):
            idx = seen[s:s + CHUNK]
            bb = Bootstrap.__new__(Bootstrap)
            bb.metrics, bb.boot = self.metrics, boot
            bb._add(rec[idx, :-1], idx)
        return boot.sums

    def replicate_values(self, sync: bool | None = None) -> dict[str, torch.Tensor]:
        """{metric: float64 [replicates]} (NaN where a replicate leaves the metric undefined)."""
        sums = self.replicate_sums(sync).to("cpu")
        cfg, m = self.metrics.cfg, self.metrics
        rows: list[dict[str, float]] = []
        for b in range(self.replicates):
            s = self.boot.replicate(b, sums)
            try:
                rows.append(scalar_metrics(_core.finalize(cfg, s, "ignore", m.num_samples)))
            except (RuntimeError, ValueError):  # a replicate without rows
                rows.append({})
        keys = sorted({k for r in rows for k in r})
        return {k: torch.tensor([r.get(k, math.nan) for r in rows], dtype=torch.float64) for k in keys}

    def compute(self, sync: bool | None = None) -> dict:
        """``metrics.compute()`` plus ``"intervals"`` (see the class docstring)."""
        values = self.metrics.compute(sync)
        reps = self.replicate_values(sync)
        est = scalar_metrics(values)
        values["intervals"] = {k: interval(v, reps[k], self.level, self.method)
                               for k, v in est.items() if k in reps}
        values["bootstrap"] = {"replicates": self.replicates, "seed": self.seed, "level": self.level,
                               "method": self.method}
        return values

    # ---- merge / checkpoint -------------------------------------------------------------
    def merge(self, other: "Bootstrap") -> "Bootstrap":
        self.metrics.merge(other.metrics)
        self.boot.merge(other.boot)
        self._next += other._next
        return self

    def state_dict(self) -> dict:
        return {"metrics": self.metrics.state_dict(), "bootstrap": self.boot.state_dict(), "next": self._next}

    def load_state_dict(self, sd: dict) -> None:
        self.metrics.load_state_dict(sd["metrics"])
        self.boot.load_state_dict(sd["bootstrap"])
        self._next = int(sd["next"])
