"""Ragged per-sample label sets (CSR), e.g. ImageNet ReaL labels."""
from __future__ import annotations

import itertools
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import torch


class LabelSets:
    """N ragged sets of class indices in ``[0, num_classes)``, stored as CSR.

    offsets: int64 [N + 1], labels: int32/int64 [offsets[-1]]. Within a set labels are
    sorted and unique. A set may be empty (e.g. a ReaL image with no valid label:
    multi-label metrics exclude it).

    Indexing with a tensor / array / list of sample indices gives a *batch view*: the
    same ``labels`` storage with per-sample ``(begin, end)`` ranges, so picking the sets
    for a batch on the GPU never syncs the host.
    """

    def __init__(self, offsets: torch.Tensor, labels: torch.Tensor, num_classes: int,
                 *, _ranges: torch.Tensor | None = None, validate: bool = True):
        offsets = torch.as_tensor(offsets)
        labels = torch.as_tensor(labels)
        if offsets.dtype != torch.int64 or offsets.dim() != 1 or offsets.numel() < 1:
            raise ValueError("offsets must be a 1-D int64 tensor of length N + 1")
        if labels.dtype not in (torch.int32, torch.int64) or labels.dim() != 1:
            raise ValueError(f"labels must be a 1-D int32/int64 tensor, got {labels.dtype} {tuple(labels.shape)}")
        if int(num_classes) < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        self.offsets = offsets
        self.labels = labels
        self.num_classes = int(num_classes)
        self._ranges = _ranges
        if validate:
            self._validate()

    # ---- construction -------------------------------------------------------------
    @classmethod
    def from_lists(cls, lists: Iterable[Sequence[int]], num_classes: int) -> "LabelSets":
        """From a list of per-sample class-index lists (duplicates removed, sorted)."""
        lists = lists if isinstance(lists, list) else list(lists)
        sizes = np.fromiter((len(s) for s in lists), dtype=np.int64, count=len(lists))
        flat = np.fromiter(itertools.chain.from_iterable(lists), dtype=np.int64, count=int(sizes.sum()))
        row = np.repeat(np.arange(len(lists), dtype=np.int64), sizes)
        bad = np.flatnonzero((flat < 0) | (flat >= num_classes))
        if bad.size:
            j = bad[0]
            raise ValueError(f"sample {row[j]}: label {flat[j]} outside [0, {num_classes})")
        order = np.lexsort((flat, row))  # by sample, then label
        flat, row = flat[order], row[order]
        keep = np.ones(flat.size, dtype=bool)
        keep[1:] = (flat[1:] != flat[:-1]) | (row[1:] != row[:-1])  # drop duplicates within a set
        flat, row = flat[keep], row[keep]
        offsets = np.zeros(len(lists) + 1, dtype=np.int64)
        np.cumsum(np.bincount(row, minlength=len(lists)), out=offsets[1:])
        return cls(torch.from_numpy(offsets), torch.from_numpy(flat.astype(np.int32)), num_classes, validate=False)

    @classmethod
    def from_dense(cls, multi_hot: torch.Tensor) -> "LabelSets":
        """From a [N, C] multi-hot (bool or 0/1) tensor."""
        m = torch.as_tensor(multi_hot)
        if m.dim() != 2:
            raise ValueError(f"multi_hot must be [N, C], got shape {tuple(m.shape)}")
        if m.dtype != torch.bool:
            if not torch.isin(m.unique(), torch.tensor([0, 1], dtype=m.dtype, device=m.device)).all():
                raise ValueError("multi_hot must hold only 0 and 1")
            m = m != 0
        m = m.cpu()
        sizes = m.sum(dim=1, dtype=torch.int64)
        offsets = torch.zeros(m.shape[0] + 1, dtype=torch.int64)
        torch.cumsum(sizes, 0, out=offsets[1:])
        labels = m.nonzero()[:, 1].to(torch.int32)  # row-major: sorted within each row
        return cls(offsets, labels, m.shape[1], validate=False)

    @classmethod
    def imagenet_real(cls, path: str | Path | None = None) -> "LabelSets":
        """The 50,000 ImageNet ReaL label sets (Beyer et al. 2020), in val-file-name order.

        Loads the JSON that timm ships (``timm/data/_info/imagenet_real_labels.json``)
        unless ``path`` points at another copy. Excluded images have an empty set.
        """
        from .real import real_label_sets

        return real_label_sets(path=path)

    # ---- checks -------------------------------------------------------------------
    def _validate(self) -> None:
        off, lab = self.offsets.cpu(), self.labels.cpu()
        if off[0] != 0 or off[-1] != lab.numel() or bool((off[1:] < off[:-1]).any()):
            raise ValueError("offsets must start at 0, be non-decreasing and end at len(labels)")
        bad = ((lab < 0) | (lab >= self.num_classes)).nonzero()
        if bad.numel():
            j = int(bad[0, 0])
            i = int(torch.searchsorted(off, torch.tensor([j]), right=True)[0]) - 1
            raise ValueError(f"sample {i}: label {int(lab[j])} outside [0, {self.num_classes})")

    # ---- views --------------------------------------------------------------------
    @property
    def ranges(self) -> torch.Tensor:
        """int64 [N, 2]: (begin, end) of each sample's slice of ``labels``."""
        if self._ranges is None:
            self._ranges = torch.stack([self.offsets[:-1], self.offsets[1:]], dim=1)
        return self._ranges

    def sizes(self) -> torch.Tensor:
        """int64 [N]: number of labels of each sample."""
        r = self.ranges
        return r[:, 1] - r[:, 0]

    def __len__(self) -> int:
        return self.ranges.shape[0]

    def __getitem__(self, index) -> "LabelSets":
        """A batch view: sets of the samples in ``index`` (tensor, array, list or slice)."""
        r = self.ranges
        if isinstance(index, slice):
            sub = r[index]
        else:
            index = torch.as_tensor(index, device=r.device)
            if index.dtype not in (torch.int32, torch.int64) or index.dim() != 1:
                raise ValueError("index must be a 1-D integer tensor of sample indices")
            if index.device.type == "cpu" and index.numel() and not torch.compiler.is_compiling():
                lo, hi = int(index.min()), int(index.max())
                if lo < -len(self) or hi >= len(self):
                    raise IndexError(f"sample index outside [0, {len(self)}): {lo if lo < 0 else hi}")
            sub = r[index]
        return LabelSets(self.offsets, self.labels, self.num_classes, _ranges=sub, validate=False)

    def to(self, device) -> "LabelSets":
        return LabelSets(self.offsets.to(device), self.labels.to(device), self.num_classes,
                         _ranges=None if self._ranges is None else self._ranges.to(device), validate=False)

    @property
    def device(self) -> torch.device:
        return self.labels.device

    def tolist(self) -> list[list[int]]:
        r = self.ranges.cpu().tolist()
        lab = self.labels.cpu().tolist()
        return [lab[b:e] for b, e in r]

    def to_dense(self) -> torch.Tensor:
        """bool [N, num_classes] multi-hot (materialises N x C; for small N or tests)."""
        out = torch.zeros(len(self), self.num_classes, dtype=torch.bool)
        for i, s in enumerate(self.tolist()):
            out[i, s] = True
        return out

    def __repr__(self) -> str:
        return f"LabelSets(n={len(self)}, num_classes={self.num_classes}, labels={self.labels.numel()})"


from .real import imagenet_real_labels_path  # noqa: E402,F401  (the one ReaL locator; re-exported)
