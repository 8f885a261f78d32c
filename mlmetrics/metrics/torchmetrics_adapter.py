"""A ``torchmetrics.Metric`` wrapping :class:`ClassificationMetrics`, so the metrics drop into
torchmetrics / Lightning code (``MetricCollection``, ``self.log_dict``, DDP sync).

The states are our sums and counts registered with ``dist_reduce_fx="sum"`` (torchmetrics does
the all-reduce); the per-sample dedupe records are not used here (duplicates from a
DistributedSampler's padding count twice, as for any torchmetrics metric). ``compute()`` returns
the dict of :meth:`ClassificationMetrics.compute`, or one value when ``key=`` is given.
"""
from __future__ import annotations

import torch
from torchmetrics import Metric

from .classification import ClassificationMetrics


class TorchMetricsAdapter(Metric):
    is_differentiable = False
    higher_is_better = None
    full_state_update = False

    def __init__(self, num_classes: int, topk=(1, 5), label_sets=None, ece_bins: int = 15, *, key: str | None = None,
                 include=None, class_subset=None, nonfinite: str = "error", max_label_k: int = 16,
                 subgroup_cap: int | None = None, backend: str = "auto", **kwargs):
        super().__init__(**kwargs)
        self._inner = ClassificationMetrics(num_classes, topk, label_sets, ece_bins, include=include,
                                            class_subset=class_subset, nonfinite=nonfinite, dedupe=False,
                                            max_label_k=max_label_k, subgroup_cap=subgroup_cap,
                                            backend=backend)
        self._key = key
        spec = self._inner.state_spec()
        self._names = list(spec)
        for name, s in spec.items():
            self.add_state(f"mm_{name}", default=s.empty(), dist_reduce_fx=s.reduction)

    def update(self, preds: torch.Tensor, target: torch.Tensor | None = None,
               sample_index: torch.Tensor | None = None) -> None:
        inner = self._inner
        inner.state = {n: getattr(self, f"mm_{n}") for n in self._names}
        inner._device = inner.state[self._names[0]].device
        inner.update(preds, target, sample_index)
        for n in self._names:  # update() may have moved the state to the logits' device
            setattr(self, f"mm_{n}", inner.state[n])

    def compute(self):
        out = self._inner.reduce({n: getattr(self, f"mm_{n}") for n in self._names})
        return out if self._key is None else out[self._key]
