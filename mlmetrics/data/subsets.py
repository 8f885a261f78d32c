"""Class subsets shipped by timm (``timm/data/_info/``): ImageNet-A / ImageNet-R use 200 of the
1,000 ImageNet-1k classes. Pass the tensor as ``class_subset=`` to score a 1000-way model on
them without copying the logits."""
from __future__ import annotations

from pathlib import Path

import torch

from .real import timm_info_dir, timm_info_file  # noqa: F401  (timm_info_dir: re-exported)

#: subset name -> timm file of 0-based ImageNet-1k class indices (one per line, ascending)
TIMM_SUBSETS = {
    "imagenet_a": "imagenet_a_indices.txt",
    "imagenet_r": "imagenet_r_indices.txt",
}


def load_class_subset(name: str, path: str | Path | None = None) -> torch.Tensor:
    """int64 [C'] ImageNet-1k class indices of ``name`` (``"imagenet_a"`` or ``"imagenet_r"``,
    200 each), read from timm's ``<name>_indices.txt`` (or ``path``). Row j of the restricted
    logits is class ``subset[j]``; targets and label sets of such a data set are indices in
    ``[0, C')`` (the order of the file)."""
    if path is None:
        if name not in TIMM_SUBSETS:
            raise ValueError(f"unknown class subset {name!r}; known: {sorted(TIMM_SUBSETS)} (or pass path=)")
        path = timm_info_file(TIMM_SUBSETS[name])
    with open(path) as f:
        values = [int(line) for line in f.read().split()]
    if not values:
        raise ValueError(f"{path} holds no class indices")
    out = torch.tensor(values, dtype=torch.int64)
    if len(set(values)) != len(values) or int(out.min()) < 0:
        raise ValueError(f"{path} must hold distinct non-negative class indices")
    return out
