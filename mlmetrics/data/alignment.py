"""Matching rows to label sets in arrival order (no ``sample_index``), and the signals that tell
when that order is wrong.

Without ``sample_index`` the i-th row a metric sees is scored against set i. That is right for an
unshuffled loader over the whole data set in file order, and silently wrong otherwise (a shuffled
or class-folder loader, a second epoch, a DDP shard). :class:`ArrivalOrder` hands out the row
indices and watches three signals:

* more rows than sets (a second pass without ``reset()``): an error, at once;
* ``torch.distributed`` with several ranks: each rank sees a shard, so arrival order cannot be the
  data set's order: an error, at once;
* with targets: the share of rows whose target lies in its matched (non-empty) set. Aligned data
  sets agree for most rows (ImageNet ReaL: the original label is in the set for most images);
  misaligned rows agree by chance (ReaL: ~0.1 %). Below :data:`MIN_AGREEMENT` over at least
  :data:`MIN_CHECKED` rows, ``check()`` warns with the fix.

Per batch everything stays on the device (no host sync, no graph break under ``torch.compile``).
"""
from __future__ import annotations

import warnings

import torch

#: rows with a target and a non-empty set needed before the agreement signal is trusted
MIN_CHECKED = 32
#: below this share of targets inside their matched set, the order is taken as wrong
MIN_AGREEMENT = 0.25

FIX = ("pass update(..., sample_index=) (the data set index of each row, e.g. from a Dataset that "
       "returns its index), or score with an unshuffled loader over the whole data set in file order")


class LabelSetAlignmentWarning(UserWarning):
    """Rows matched to label sets in arrival order look misaligned."""


def _world() -> int:
    d = torch.distributed
    return d.get_world_size() if d.is_available() and d.is_initialized() else 1


class ArrivalOrder:
    """Row indices for rows that come without ``sample_index``, over ``num_sets`` label sets."""

    def __init__(self, num_sets: int):
        self.num_sets = int(num_sets)
        self.reset()

    def reset(self) -> None:
        self.seen = 0                  # rows handed out (host count; eager mode)
        self._next = None              # int64 [] next row (device; what compiled code reads)
        self._counts = None            # int64 [3]: rows past the end, rows checked, rows agreeing
        self._keys = None              # int64 [L]: set * C + label of every label, ascending
        self._sizes = None             # int64 [num_sets]: set sizes

    def _device_state(self, sets, device):
        if self._next is None or self._next.device != device:
            nxt = torch.tensor(self.seen, dtype=torch.int64)
            self._next = nxt.to(device) if self._next is None else self._next.to(device)
            self._counts = torch.zeros(3, dtype=torch.int64, device=device) if self._counts is None \
                else self._counts.to(device)
        if self._keys is None or self._keys.device != device:
            off = sets.offsets
            row = torch.repeat_interleave(torch.arange(off.numel() - 1, device=off.device), off.diff())
            self._keys = (row * sets.num_classes + sets.labels.to(torch.int64)).to(device)
            self._sizes = off.diff().to(device)

    def rows(self, n: int, device, sets, target: torch.Tensor | None = None) -> torch.Tensor:
        """int64 [n]: the set index of each of the next ``n`` rows (rows past the last set get
        ``num_sets``, which the metric counts as an invalid index). ``sets``: the whole data set's
        :class:`~mlmetrics.LabelSets`; ``target`` [n] int64 on ``device`` feeds the agreement check."""
        self._device_state(sets, device)
        if not torch.compiler.is_compiling():
            if _world() > 1:
                raise ValueError("label sets without sample_index under torch.distributed: each rank sees a "
                                 "shard of the data, so rows cannot be matched to sets in arrival order; " + FIX)
            if self.seen + n > self.num_sets:
                raise ValueError(f"label sets matched in arrival order (no sample_index): rows "
                                 f"{self.seen}..{self.seen + n - 1} arrived but there are {self.num_sets} sets "
                                 "(a second epoch or a longer loader); call reset() between passes, or " + FIX)
            self.seen += n
        idx = self._next + torch.arange(n, device=device)
        self._next += n
        past = idx >= self.num_sets
        self._counts[0] += past.sum()
        idx = torch.where(past, torch.full_like(idx, self.num_sets), idx)
        if target is not None:
            safe = idx.clamp(max=self.num_sets - 1)
            size = self._sizes[safe]
            ok = (~past) & (size > 0) & (target >= 0) & (target < sets.num_classes)
            q = safe * sets.num_classes + target
            pos = torch.searchsorted(self._keys, q).clamp(max=max(self._keys.numel() - 1, 0))
            agree = ok & (self._keys[pos] == q) if self._keys.numel() else torch.zeros_like(ok)
            self._counts[1] += ok.sum()
            self._counts[2] += agree.sum()
        return idx

    def check(self) -> None:
        """Raise / warn (at ``compute()``) when the rows handed out look misaligned."""
        if self._counts is None:
            return
        past, checked, agree = (int(v) for v in self._counts.tolist())
        if past:
            raise ValueError(f"label sets matched in arrival order (no sample_index): {past} rows arrived past "
                             f"the last of the {self.num_sets} sets; call reset() between passes, or " + FIX)
        if checked >= MIN_CHECKED and agree < MIN_AGREEMENT * checked:
            warnings.warn(f"label sets matched in arrival order (no sample_index): only {agree} of {checked} "
                          f"targets ({100 * agree / checked:.1f} %) lie in their row's label set, so rows and "
                          "sets look misaligned (a shuffled or class-folder loader?) and every multi-label "
                          "metric is wrong; " + FIX, LabelSetAlignmentWarning, stacklevel=3)
