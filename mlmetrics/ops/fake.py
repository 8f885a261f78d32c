"""Fake (meta) implementations of the ops: shapes and dtypes only, for torch.compile and FakeTensor."""
from __future__ import annotations

import torch

from .schema import NUM_STATS


def register() -> None:
    """Register the fake impls (called once, after the extension defined the ops)."""

    @torch.library.register_fake("mlmetrics::topk_stats_v2")
    @torch.library.register_fake("mlmetrics::topk_stats")
    def _topk_stats_fake(logits, k, target, label_ranges, labels, class_subset, with_softmax):
        n = logits.shape[0]
        return (
            logits.new_empty((n, k), dtype=torch.float32),
            logits.new_empty((n, k), dtype=torch.int64),
            logits.new_empty((n, k if label_ranges is not None else 0), dtype=torch.bool),
            logits.new_empty((n, NUM_STATS), dtype=torch.float32),
            logits.new_empty((n if target is not None else 0,), dtype=torch.int64),
        )

    @torch.library.register_fake("mlmetrics::softmax_topk")
    def _softmax_topk_fake(logits, k):
        n = logits.shape[0]
        return logits.new_empty((n, k), dtype=torch.float32), logits.new_empty((n, k), dtype=torch.int64)

    @torch.library.register_fake("mlmetrics::topk_label_hits")
    def _topk_label_hits_fake(logits, label_ranges, labels, k):
        return logits.new_empty((logits.shape[0], k), dtype=torch.bool)
