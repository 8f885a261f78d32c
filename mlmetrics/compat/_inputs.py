"""Array-likes in: what the drop-ins accept as logits."""
from __future__ import annotations

import torch


def as_logits(x) -> torch.Tensor:
    """A tensor the ops take: NumPy arrays / lists become tensors, float64 becomes float32 (the
    kernels score fp32/fp16/bf16), autograd history is dropped."""
    if not isinstance(x, torch.Tensor):
        x = torch.as_tensor(x)
    if x.dtype == torch.float64:
        x = x.to(torch.float32)
    return x.detach()
