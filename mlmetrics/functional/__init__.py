"""Functional metrics, the base layer: one ``topk_stats`` call per metric, and per metric group
``<group>_update`` (op output -> state delta) / ``<group>_reduce`` (state -> values).

Groups (one module each): :mod:`.counts` (rows, non-finite rows, bad targets), :mod:`.accuracy`
(top-k, per-class, macro), :mod:`.nll` (NLL, Brier), :mod:`.calibration` (ECE, MCE,
reliability bins), :mod:`.ood` (MSP, max logit, energy, entropy), :mod:`.multilabel` (ReaL@k,
precision/recall/subset/hamming@k, label counts), :mod:`.variable_topk` (variable top-k,
subgroups, ASMA); :mod:`.classification` composes them. State specs and per-row contributions
(the linearity contract used by bootstrap intervals): :mod:`._state`. Argument checks:
:mod:`.config`. See :mod:`mlmetrics.metrics` for the stateful API and the output keys.
"""
from ..data.subsets import TIMM_SUBSETS, load_class_subset
from ._state import Rows, StateSpec
from .accuracy import (accuracy, macro_accuracy, per_class_accuracy, per_class_reduce, per_class_update, topk_accuracy,
                       topk_reduce, topk_update)
from .calibration import calibration, calibration_reduce, calibration_update, expected_calibration_error
from .classification import classification_metrics, classification_reduce, classification_rows, classification_spec
from .config import Config, make_config
from .counts import counts_reduce, counts_update
from .multilabel import (hamming_loss_at_k, label_count_histogram, label_count_summary, multilabel_proportion,
                         multilabel_reduce, multilabel_update, precision_at_k, real_accuracy, recall_at_k,
                         subset_accuracy, topk_hit_counts)
from .nll import brier_score, cross_entropy, nll, nll_reduce, nll_update
from .ood import ood_reduce, ood_scores, ood_update
from .variable_topk import asma, subgroup_accuracy, variable_topk_accuracy, variable_topk_reduce, variable_topk_update

__all__ = [
    "TIMM_SUBSETS", "accuracy", "asma", "brier_score", "calibration", "classification_metrics", "cross_entropy",
    "expected_calibration_error", "hamming_loss_at_k", "label_count_histogram", "label_count_summary",
    "load_class_subset", "macro_accuracy", "multilabel_proportion", "nll", "ood_scores", "per_class_accuracy",
    "precision_at_k", "real_accuracy", "recall_at_k", "subgroup_accuracy", "subset_accuracy", "topk_accuracy",
    "topk_hit_counts", "variable_topk_accuracy",
    # the layer below: state specs, per-row contributions, update / reduce per group
    "Config", "Rows", "StateSpec", "make_config", "classification_reduce", "classification_rows",
    "classification_spec", "counts_update", "counts_reduce", "topk_update", "topk_reduce", "per_class_update",
    "per_class_reduce", "nll_update", "nll_reduce", "calibration_update", "calibration_reduce", "ood_update",
    "ood_reduce", "multilabel_update", "multilabel_reduce", "variable_topk_update", "variable_topk_reduce",
]
