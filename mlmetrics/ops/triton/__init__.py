"""Triton kernels of the mlmetrics ops (GPU, or CPU tensors under TRITON_INTERPRET=1)."""
from .topk_stats import topk_stats

__all__ = ["topk_stats"]
