"""``TorchMetricsAdapter``: :class:`ClassificationMetrics` as a ``torchmetrics.Metric``, for
``MetricCollection``, Lightning's ``self.log`` / ``self.log_dict`` and torchmetrics' DDP sync."""
from __future__ import annotations

import math
from typing import Iterable, Sequence

import torch
from torchmetrics import Metric

from ..compat._inputs import as_logits
from ..functional.config import DEFAULT_MAX_LABEL_K
from .classification import ClassificationMetrics

def _pick(name: str, value, alias: str, alias_value, default):
    if value is not None and alias_value is not None:
        raise TypeError(f"pass {name}= or {alias}=, not both")
    v = value if value is not None else alias_value
    return default if v is None else v


def flatten(values: dict, device=None) -> dict[str, torch.Tensor]:
    """Scalars of a :meth:`ClassificationMetrics.compute` dict as float64 0-dim tensors:
    ``{label count: value}`` dicts become ``"subgroup_accuracy/2"``-style keys, vectors are left out."""
    out: dict[str, torch.Tensor] = {}
    for k, v in values.items():
        if isinstance(v, dict):
            for m, x in v.items():
                out[f"{k}/{m}"] = torch.tensor(float(x), dtype=torch.float64, device=device)
        elif isinstance(v, torch.Tensor):
            if v.dim() == 0:
                out[k] = v.to(device=device, dtype=torch.float64)
        else:
            out[k] = torch.tensor(float(v), dtype=torch.float64, device=device)
    return out


class TorchMetricsAdapter(Metric):
    """Every mlmetrics classification metric as one ``torchmetrics.Metric`` (one fused
    ``topk_stats`` pass per ``update``; see :class:`~mlmetrics.ClassificationMetrics` for the keys).

    ``update(preds, target=None, sample_index=None)``: ``preds`` [N, C] logits (tensor or NumPy
    array; fp32/fp16/bf16/float64, scored in fp32 at most; never kept in the autograd graph),
    ``target`` [N] int, ``sample_index`` [N] int (row -> sample of ``label_sets``).

    ``compute()`` returns tensors (float64, on the metric's device):

    * ``key="top1"``: that one value as a 0-dim tensor, so ``self.log("acc", metric)`` and
      ``self.log_dict(MetricCollection({...}))`` work;
    * ``flat=True`` (default): ``{name: 0-dim tensor}`` of every scalar, subgroup dicts flattened
      to ``"subgroup_accuracy/2"``, per-class / per-bin vectors left out: ``self.log_dict(m.compute())``;
    * ``flat=False``: the full dict, scalars as 0-dim tensors, vectors as tensors, subgroups as
      ``{label count: tensor}``.

    ``compute()`` before any ``update()`` (e.g. right after ``reset()``) warns, as every
    torchmetrics metric does, and returns NaN (``key=``) or ``{"num_samples": 0}``.
    ``plot(kind="reliability" | "label_count")`` draws the report's figures from ``compute``.

    Args:
        num_classes: width C of the logits.
        top_k: an int or a sequence of k (torchmetrics' name; ``topk=`` is accepted too).
        label_sets: a :class:`~mlmetrics.LabelSets` of the whole data set (ReaL, multi-label).
        n_bins: ECE bins (torchmetrics' name; ``ece_bins=`` is accepted too).
        ignore_index: rows whose target equals it are left out of every metric (torchmetrics'
            convention; a host sync per batch on GPU, like torchmetrics).
        dedupe: keep one record per sample (needs ``label_sets`` or ``num_samples``, and
            ``sample_index``) so DistributedSampler padding counts once: records are reduced with
            MAX across ranks. Default False: plain sums (SUM across ranks), duplicates count twice.
        include, class_subset, nonfinite, num_samples, max_label_k, subgroup_cap, backend: as for
            :class:`~mlmetrics.ClassificationMetrics`.
        **kwargs: ``torchmetrics.Metric`` options (``sync_on_compute``, ``dist_sync_on_step``, ...).
    """

    is_differentiable = False
    higher_is_better = None
    full_state_update = False

    def __init__(self, num_classes: int, top_k: int | Sequence[int] | None = None, label_sets=None,
                 n_bins: int | None = None, *, key: str | None = None, flat: bool = True,
                 ignore_index: int | None = None, include: Iterable[str] | None = None, class_subset=None,
                 nonfinite: str = "error", num_samples: int | None = None, dedupe: bool = False,
                 max_label_k: int = DEFAULT_MAX_LABEL_K, subgroup_cap: int | None = None, backend: str = "auto",
                 topk: int | Sequence[int] | None = None, ece_bins: int | None = None, **kwargs):
        super().__init__(**kwargs)
        top_k = _pick("top_k", top_k, "topk", topk, (1, 5))
        n_bins = _pick("n_bins", n_bins, "ece_bins", ece_bins, 15)
        if ignore_index is not None and (isinstance(ignore_index, bool) or not isinstance(ignore_index, int)):
            raise TypeError(f"ignore_index must be an int or None, got {type(ignore_index).__name__}")
        self._inner = ClassificationMetrics(num_classes, top_k, label_sets, n_bins, include=include,
                                            class_subset=class_subset, nonfinite=nonfinite, num_samples=num_samples,
                                            dedupe=dedupe, max_label_k=max_label_k, subgroup_cap=subgroup_cap,
                                            backend=backend)
        self._key, self._flat, self.ignore_index = key, bool(flat), ignore_index
        self._in_forward = False
        spec = self._inner.state_spec()  # name -> shape, dtype, reduction ("sum" | "max" for dedupe records)
        self._names = list(spec)
        for name, st in spec.items():
            self.add_state(f"mm_{name}", default=st.empty(), dist_reduce_fx=st.reduction)

    # ---- the wrapped metric reads and writes our (torchmetrics-managed) states ------------------
    def _bind(self) -> ClassificationMetrics:
        inner = self._inner
        inner.state = {n: getattr(self, f"mm_{n}") for n in self._names}
        inner._device = inner.state[self._names[0]].device
        inner._synced = None
        return inner

    def _unbind(self, inner: ClassificationMetrics) -> None:
        for n in self._names:  # update() may have moved the state to the logits' device
            setattr(self, f"mm_{n}", inner.state[n])

    def update(self, preds, target=None, sample_index=None) -> None:
        preds = as_logits(preds)
        inner = self._bind()
        if target is not None and not isinstance(target, torch.Tensor):
            target = torch.as_tensor(target)
        if self.ignore_index is not None and target is not None:
            target = target.to(preds.device)
            if sample_index is None and inner.label_sets is not None:  # keep the arrival order of all rows
                inner._to(preds.device)
                sample_index = inner._arrival.rows(preds.shape[0], preds.device, inner._sets_on_device, target)
            keep = target != self.ignore_index
            preds, target = preds[keep], target[keep]
            if sample_index is not None:
                sample_index = torch.as_tensor(sample_index).to(keep.device)[keep]
        inner.update(preds, target, sample_index)
        self._unbind(inner)

    def full_compute(self) -> dict:
        """The full :meth:`ClassificationMetrics.compute` dict (floats, tensors, dicts) of the
        current (already synced, when called from ``compute``) state."""
        return self._bind().compute(sync=False)

    def compute(self):
        dev = getattr(self, f"mm_{self._names[0]}").device
        if self._update_count == 0:  # torchmetrics has warned "compute called before update"
            nan = torch.tensor(math.nan, dtype=torch.float64, device=dev)
            return nan if self._key is not None else {"num_samples": torch.zeros((), dtype=torch.float64, device=dev)}
        out = self.full_compute()
        if self._key is not None:
            if self._key not in out:
                raise KeyError(f"key={self._key!r} is not among the computed values {sorted(out)}")
            v = out[self._key]
            return v.to(dev) if isinstance(v, torch.Tensor) else torch.tensor(float(v), dtype=torch.float64, device=dev)
        if self._flat:
            return flatten(out, dev)
        return {k: ({m: torch.tensor(float(x), dtype=torch.float64, device=dev) for m, x in v.items()}
                    if isinstance(v, dict) else v.to(dev) if isinstance(v, torch.Tensor)
                    else torch.tensor(float(v), dtype=torch.float64, device=dev)) for k, v in out.items()}

    # ---- torchmetrics lifecycle ----------------------------------------------------------------
    def forward(self, *args, **kwargs):
        self._in_forward = True  # forward() resets and restores the states around one batch
        try:
            return super().forward(*args, **kwargs)
        finally:
            self._in_forward = False

    def reset(self) -> None:
        super().reset()
        if not self._in_forward:  # a new pass: rows without sample_index start at set 0 again
            self._inner._next_index = 0
            if self._inner._arrival is not None:
                self._inner._arrival.reset()

    def _apply(self, fn, *args, **kwargs):
        # module.to(dtype) (Lightning's "bf16-true", "16-true", "64-true" plugins do it) moves the
        # states to a device but keeps them float64: they are exact sums, and update() writes float64
        saved = {n: (getattr(self, n), self._defaults[n]) for n in self._defaults}
        this = super()._apply(fn, *args, **kwargs)
        for n, (v, d) in saved.items():
            new = getattr(this, n)
            if isinstance(new, torch.Tensor) and new.dtype != v.dtype:
                setattr(this, n, v.to(new.device))
                this._defaults[n] = d.to(new.device)
        return this

    def __setstate__(self, state: dict) -> None:
        # a pickled copy (ddp_spawn, multiprocessing) must not share the states' storage with the
        # original: every process accumulates into its own tensors
        super().__setstate__(state)
        for name in self._defaults:
            self._defaults[name] = self._defaults[name].clone()
            setattr(self, name, getattr(self, name).clone())

    def plot(self, kind: str = "reliability", ax=None):
        """``(fig, ax)`` of the report's ``"reliability"`` diagram or its ``"label_count"`` panel
        (accuracy, variable top-k and ASMA by label count), drawn from :meth:`full_compute`."""
        from ..report import plots

        return plots.plot(self.full_compute(), kind, ax=ax)
