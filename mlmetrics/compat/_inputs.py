"""Array-likes in: what the drop-ins and the torchmetrics adapter accept as logits."""
from __future__ import annotations

import torch

from ..ops import checks


def as_logits(x) -> torch.Tensor:
    """:func:`mlmetrics.ops.checks.as_logits` (tensors, NumPy arrays, lists; float64 read as
    float32) without autograd history."""
    return checks.as_logits(x).detach()
