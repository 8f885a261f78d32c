"""Ragged per-sample label sets (CSR), e.g. ImageNet ReaL labels."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import torch

from ..ops import checks


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
        offsets = checks.as_tensor(offsets, "offsets")
        if isinstance(labels, (list, tuple)) and len(labels) == 0:
            labels = torch.zeros(0, dtype=torch.int64)  # an empty list is no float tensor
        labels = checks.as_tensor(labels, "labels")
        if offsets.dim() != 1 or offsets.numel() < 1:
            raise ValueError(f"offsets must be 1-D [N + 1], got shape {tuple(offsets.shape)}")
        if offsets.dtype != torch.int64:
            raise TypeError(f"offsets must be an int64 tensor, got {offsets.dtype}")
        if labels.dim() != 1:
            raise ValueError(f"labels must be 1-D [L], got shape {tuple(labels.shape)}")
        if labels.dtype not in (torch.int32, torch.int64):
            raise TypeError(f"labels must be an int32 or int64 tensor, got {labels.dtype}")
        num_classes = checks.check_num_classes(num_classes)
        self.offsets = offsets
        self.labels = labels
        self.num_classes = num_classes
        self._ranges = _ranges
        if validate:
            self._validate()

    # ---- construction -------------------------------------------------------------
    @classmethod
    def from_lists(cls, lists: Iterable[Sequence[int]], num_classes: int) -> "LabelSets":
        """From N per-sample lists of class indices (each sorted, duplicates removed).

        A sample is a list/tuple/set of ints (Python or NumPy) or a 1-D integer array/tensor;
        floats, bools, strings and nested lists are a ``TypeError``, a label outside
        ``[0, num_classes)`` a ``ValueError`` naming the sample."""
        num_classes = checks.check_num_classes(num_classes)
        sizes, flat = checks.label_lists(lists, num_classes)
        row = np.repeat(np.arange(sizes.size, dtype=np.int64), sizes)
        order = np.lexsort((flat, row))  # by sample, then label
        flat, row = flat[order], row[order]
        keep = np.ones(flat.size, dtype=bool)
        keep[1:] = (flat[1:] != flat[:-1]) | (row[1:] != row[:-1])  # drop duplicates within a set
        flat, row = flat[keep], row[keep]
        offsets = np.zeros(sizes.size + 1, dtype=np.int64)
        np.cumsum(np.bincount(row, minlength=sizes.size), out=offsets[1:])
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
        if path is None:
            path = imagenet_real_labels_path()
        try:
            with open(path) as f:
                lists = json.load(f)
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise ValueError(f"{path}: cannot read ReaL labels ({e})") from None
        if not isinstance(lists, list):
            raise ValueError(f"{path}: ReaL labels must be a JSON list of per-image label lists, "
                             f"got a JSON {type(lists).__name__}")
        try:
            return cls.from_lists(lists, 1000)
        except (TypeError, ValueError) as e:
            raise ValueError(f"{path}: {e}") from None

    # ---- checks -------------------------------------------------------------------
    def _validate(self) -> None:
        checks.check_label_csr(self.offsets, self.labels, self.num_classes)

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
            if index.device.type == "cpu" and index.numel():
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


def imagenet_real_labels_path() -> Path:
    """Path of the ReaL labels JSON that timm ships."""
    import timm

    p = Path(timm.__file__).parent / "data" / "_info" / "imagenet_real_labels.json"
    if not p.exists():
        raise FileNotFoundError(f"timm does not ship ReaL labels at {p}; pass path= explicitly")
    return p
