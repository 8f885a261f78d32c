"""``timm.data.RealLabelsImagenet`` with mlmetrics' fused top-k / label-set op.

Change the import and keep the loop::

    from mlmetrics.compat.timm import RealLabelsImagenet   # was: from timm.data import ...

    real = RealLabelsImagenet(dataset.filenames(basename=True), real_json=args.real_labels)
    for images, _ in loader:                               # the loader must not shuffle
        real.add_result(model(images))
    real.get_accuracy()                                    # {1: 90.6, 5: 98.1} (percent)

Same constructor, methods and numbers as timm (accuracy in percent over the images with a
non-empty ReaL set); one fused ``topk_label_hits`` pass per batch on the logits' device (CPU or
CUDA) instead of a ``topk`` + Python loop over rows, and no host sync until ``get_accuracy``.
Differences: ``filenames`` may be any list of ImageNet val file names (timm requires all 50,000);
a batch past the end of ``filenames`` is a ``ValueError``; ``output`` may be a NumPy array or
float64; ties in the top-k go to the lower class index (``torch.topk`` leaves them unspecified).
"""
from __future__ import annotations

import os
from typing import Sequence

import torch

from ..data.real import all_real_label_sets, real_rows
from ..ops import topk_label_hits
from ._inputs import as_logits

__all__ = ["RealLabelsImagenet"]


class RealLabelsImagenet:
    """ReaL accuracy@k of rows that arrive in the order of ``filenames``.

    Args:
        filenames: image file names (any folder prefix), in the order the loader yields them.
        real_json: path of the ReaL labels JSON (default: the copy timm ships).
        topk: the k of ``get_accuracy``.
    """

    def __init__(self, filenames: Sequence[str | os.PathLike], real_json: str | os.PathLike | None = None,
                 topk: Sequence[int] = (1, 5)):
        self.filenames = filenames
        self.topk = tuple(int(k) for k in topk)
        if not self.topk or min(self.topk) < 1:
            raise ValueError(f"topk must hold positive ints, got {topk!r}")
        self.label_sets = all_real_label_sets(real_json)  # every ReaL set (cached), read-only
        self._rows = torch.tensor(real_rows(filenames, len(self.label_sets)), dtype=torch.int64)  # file -> set
        self._nonempty = self.label_sets.sizes() > 0
        self.sample_idx = 0
        self._cols = torch.tensor([k - 1 for k in self.topk])
        self._on: dict[torch.device, tuple] = {}
        self._correct: torch.Tensor | None = None  # int64 [len(topk)] hits on the logits' device
        self._count: torch.Tensor | None = None    # int64 [] rows with a non-empty set

    def _sets(self, device: torch.device):
        if device not in self._on:
            self._on[device] = (self.label_sets.to(device), self._nonempty.to(device), self._rows.to(device))
        return self._on[device]

    def add_result(self, output) -> None:
        """Score a batch: ``output`` [B, C] logits (or probabilities; any float dtype, tensor or
        NumPy array) of the next B files."""
        x = as_logits(output)
        b = x.shape[0]
        if self.sample_idx + b > len(self.filenames):
            raise ValueError(f"add_result got rows {self.sample_idx}..{self.sample_idx + b - 1} but there are "
                             f"{len(self.filenames)} filenames: one row per file, in the loader's order "
                             "(a second pass needs a new RealLabelsImagenet)")
        sets, nonempty, file_rows = self._sets(x.device)
        rows = file_rows[self.sample_idx:self.sample_idx + b]
        hits = topk_label_hits(x, sets[rows], max(self.topk))  # bool [B, maxk]
        ne = nonempty[rows]
        # hit within the top-k for every k at once: running OR along the ranks, read at column k - 1
        within = hits.to(torch.uint8).cummax(dim=1).values[:, self._cols.to(x.device)]
        correct = (within & ne[:, None].to(torch.uint8)).sum(0, dtype=torch.int64)
        if self._correct is None or self._correct.device != x.device:
            self._correct = torch.zeros_like(correct) if self._correct is None else self._correct.to(x.device)
            self._count = torch.zeros((), dtype=torch.int64, device=x.device) if self._count is None \
                else self._count.to(x.device)
        self._correct += correct
        self._count += ne.sum()
        self.sample_idx += b

    def get_accuracy(self, k: int | None = None):
        """ReaL accuracy in percent: a float for ``k``, else ``{k: percent}`` for every k of ``topk``.
        NaN before any row with a non-empty set (timm: NumPy's mean of an empty list)."""
        if k is not None and k not in self.topk:
            raise KeyError(f"k={k} is not in topk={self.topk}")
        n = int(self._count) if self._count is not None else 0
        correct = self._correct.tolist() if self._correct is not None else [0] * len(self.topk)
        acc = {k_: (c / n * 100 if n else float("nan")) for k_, c in zip(self.topk, correct)}
        return acc if k is None else acc[k]
