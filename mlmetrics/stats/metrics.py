"""Confidence intervals for every scalar metric of a :class:`~mlmetrics.ClassificationMetrics`:
the streaming Poisson bootstrap, computed in the metric's own update (no second read of the logits)."""
from __future__ import annotations

import math

import torch

from ..functional import classification_reduce, classification_rows
from ..metrics import ClassificationMetrics
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
        shapes = {k: tuple(v.shape) for k, v in metrics.sums_spec().items()}
        self.boot = PoissonBootstrap(shapes, replicates, seed, device=metrics._device)
        self._next = 0

    def __getattr__(self, name: str):
        """Anything else (``cfg``, ``label_sets``, ``dedupe``, ``num_samples`` ...) is the wrapped
        metric's, so a ``Bootstrap`` stands in where a ``ClassificationMetrics`` is expected."""
        if name == "metrics":
            raise AttributeError(name)
        return getattr(self.metrics, name)

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
        """``ClassificationMetrics.update`` plus the replicate sums (from the same op call);
        returns its TopKStats."""
        st, rows = self.metrics.update_rows(logits, target, sample_index, want_rows=not self.metrics.dedupe)
        if rows is not None and not self.metrics.dedupe:
            n = st.row_stats.shape[0]
            keys = rows.sample_index
            if keys is None:
                keys = (torch.as_tensor(sample_index) if sample_index is not None
                        else torch.arange(self._next, self._next + n))
            self._next += n
            self.boot.to(st.row_stats.device)
            self.boot.add_rows(rows, keys)
        return st

    def _add_records(self, boot: PoissonBootstrap, records: torch.Tensor) -> None:
        """Add the seen per-sample records (int32 [num_samples, words], row = sample index)."""
        m = self.metrics
        seen = (records[:, 0] >= 0).nonzero()[:, 0]
        for a in range(0, seen.numel(), CHUNK):
            idx = seen[a:a + CHUNK]
            st, target, has_target, sizes, ok = m.records.decode(records[idx])
            rows = classification_rows(m.cfg, st, target, sizes if m.cfg.has_labels else None,
                                       has_target=has_target, keep=ok)
            boot.add_rows(rows, idx)

    # ---- replicates ---------------------------------------------------------------------
    def _records(self, sync: bool) -> torch.Tensor:
        rec = self.metrics.state["records"][: self.metrics.num_samples]
        if sync:
            rec = rec.clone()
            torch.distributed.all_reduce(rec, op=torch.distributed.ReduceOp.MAX)  # duplicates: identical words
        return rec

    def replicate_sums(self, sync: bool | None = None) -> torch.Tensor:
        """float64 [state size, replicates]: the replicate states (all-reduced when distributed)."""
        d = torch.distributed
        world = d.get_world_size() if d.is_available() and d.is_initialized() else 1
        sync = world > 1 if sync is None else (sync and world > 1)
        if not self.metrics.dedupe:
            return self.boot.all_reduce() if sync else self.boot.sums
        rec = self._records(sync)
        boot = PoissonBootstrap(self.boot.shapes, self.replicates, self.seed, device=rec.device)
        self._add_records(boot, rec)
        return boot.sums

    def replicate_values(self, sync: bool | None = None) -> dict[str, torch.Tensor]:
        """{metric: float64 [replicates]} (NaN where a replicate leaves the metric undefined)."""
        reps = self.replicate_sums(sync).to("cpu").t().contiguous()  # [B, total]: each replicate contiguous
        cfg, m = self.metrics.cfg, self.metrics
        rows: list[dict[str, float]] = []
        for b in range(self.replicates):
            s = self.boot.replicate_row(reps[b])
            try:
                rows.append(scalar_metrics(classification_reduce(cfg, s, m.nonfinite, m.num_samples, check=False)))
            except (RuntimeError, ValueError, ZeroDivisionError):  # a replicate without rows
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
