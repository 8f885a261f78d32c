"""Functional metrics (one ``topk_stats`` call each). See :mod:`mlmetrics.metrics` for the
stateful API and the documented output keys."""
from ._api import (accuracy, asma, brier_score, calibration, classification_metrics, cross_entropy,
                   expected_calibration_error, hamming_loss_at_k, label_count_histogram, label_count_summary,
                   macro_accuracy, multilabel_proportion, nll, ood_scores, per_class_accuracy, precision_at_k,
                   real_accuracy, recall_at_k, subgroup_accuracy, subset_accuracy, topk_accuracy, topk_hit_counts,
                   variable_topk_accuracy)
from ..data.subsets import TIMM_SUBSETS, load_class_subset

__all__ = [
    "TIMM_SUBSETS", "accuracy", "asma", "brier_score", "calibration", "classification_metrics", "cross_entropy",
    "expected_calibration_error", "hamming_loss_at_k", "label_count_histogram", "label_count_summary",
    "load_class_subset", "macro_accuracy", "multilabel_proportion", "nll", "ood_scores", "per_class_accuracy",
    "precision_at_k", "real_accuracy", "recall_at_k", "subgroup_accuracy", "subset_accuracy", "topk_accuracy",
    "topk_hit_counts", "variable_topk_accuracy",
]
