"""Array-likes in: what the drop-ins and the torchmetrics adapter accept as logits."""
from __future__ import annotations

import torch

try:  # the ops' own converter, where it exists
    from ..ops.checks import as_logits as _as_logits
except ImportError:  # pragma: no cover
    _as_logits = None


def as_logits(x) -> torch.Tensor:
    """A tensor the ops take: NumPy arrays / lists become tensors, float64 becomes float32 (the
    kernels score fp32/fp16/bf16), autograd history is dropped."""
    if _as_logits is not None:
        return _as_logits(x).detach()
    if not isinstance(x, torch.Tensor):
        x = torch.as_tensor(x)
    if x.dtype == torch.float64:
        x = x.to(torch.float32)
    return x.detach()
