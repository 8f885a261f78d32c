"""mlmetrics: fused softmax / top-k / label-set metrics for classifiers with big logit tensors."""
from .ops import (HAS_EXTENSION, TopKStats, available_backends, cpu_isa, has_cuda_kernels, softmax_topk,
                   topk_label_hits, topk_stats)
from .data.labels import LabelSets
from . import functional, metrics  # noqa: E402  (metrics API)
from .metrics import ClassificationMetrics

__version__ = "0.1.0"

__all__ = [
    "ClassificationMetrics",
    "HAS_EXTENSION",
    "LabelSets",
    "TopKStats",
    "available_backends",
    "cpu_isa",
    "has_cuda_kernels",
    "softmax_topk",
    "topk_label_hits",
    "topk_stats",
]
