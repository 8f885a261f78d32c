"""Stateful metrics: :class:`ClassificationMetrics` (every metric from one ``topk_stats`` call per
batch) and one-number subclasses; :class:`TorchMetricsAdapter` (lazy: needs torchmetrics).

``ClassificationMetrics.compute()`` keys (present when their inputs were seen):

* always: ``num_samples`` (rows seen, deduped); ``nonfinite_rows`` (with ``nonfinite="ignore"``)
* with targets: ``num_targets``; ``top{k}`` for k in topk; ``macro_accuracy``;
  ``per_class_accuracy`` (tensor [C], NaN for absent classes); ``nll`` (= cross-entropy);
  ``brier``; ``ece``; ``mce``; ``confidence`` (mean max softmax prob); ``ece_bin_edges`` [B+1],
  ``ece_bin_count`` / ``ece_bin_accuracy`` / ``ece_bin_confidence`` [B+1] (reliability diagram;
  last entry = rows with max prob exactly 1.0, torchmetrics' convention)
* always (group "ood"): ``mean_max_logit``, ``mean_max_prob``, ``mean_energy`` (= -mean
  logsumexp), ``mean_entropy``
* with label_sets: ``num_labeled`` (non-empty sets), ``empty_label_sets``; ``real_top{k}``;
  ``precision@{k}``, ``recall@{k}``, ``subset_accuracy@{k}``, ``hamming_loss@{k}``;
  ``variable_topk_strict``, ``variable_topk_fractional``, ``variable_topk_truncated``;
  ``subgroup_accuracy``, ``subgroup_accuracy_fractional``, ``subgroup_count`` ({label count:
  value}); ``asma``, ``asma_fractional``; ``label_count_histogram`` (tensor, of the rows
  seen); ``multilabel_proportion``; ``mean_label_count``

Policies:

* one ``mlmetrics.topk_stats`` call per ``update`` (one read of the logits), with
  ``k = max(max(topk), min(largest |Y_i| of label_sets, max_label_k=16, C))`` and
  ``with_softmax`` only when a softmax metric (groups nll / calibration / ood) is included;
* ``nonfinite="error"`` (default): rows whose softmax is undefined (NaN or +inf, or all -inf)
  make ``compute()`` raise ``ValueError`` with their count; ``"ignore"`` drops them from every
  metric and reports ``nonfinite_rows``;
* targets outside ``[0, C)`` and ``sample_index`` outside the label sets are counted on the device
  during ``update`` (no host sync) and raised as ``ValueError`` by ``compute()``; ``compute()``
  before any ``update()`` raises ``RuntimeError``;
* empty label sets are excluded from every multi-label metric (counted in ``empty_label_sets``);
* ASMA (Anzaku et al., arXiv 2412.18409) = unweighted mean over label-count subgroups
  (m = |Y_i| >= 1, optionally ``subgroup_cap``) of the strict variable top-k accuracy (k = m);
* distributed: ``compute()`` all-reduces when ``torch.distributed`` is initialised (SUM of the
  sums, or MAX of the per-sample dedupe records so DistributedSampler padding counts once);
* state: declared by ``state_spec()`` (name -> shape, dtype, reduction "sum" | "max"), which
  ``merge``/``sync`` and :class:`TorchMetricsAdapter` read; dedupe records are packed int32
  words (32 B a sample at ``topk=(1, 5)``, 36 B with ImageNet ReaL sets), and ``compute()`` /
  ``sync()`` decode them in 64 steps (extra memory a fraction of the records); ``state_dict()``
  returns the live tensors and the arguments, which ``load_state_dict`` checks;
* inputs: ``update`` runs under ``torch.no_grad`` (no autograd history is kept); float64 logits
  are scored in float32; state dtypes never follow the inputs or a ``.to(dtype)``; a metric
  unpickled in another process (``ddp_spawn``) owns a copy of its state.
"""
from .classification import (ASMA, NLL, BrierScore, ClassificationMetrics, ExpectedCalibrationError,
                             MacroAccuracy, RealAccuracy, TopKAccuracy, VariableTopKAccuracy)

__all__ = [
    "ASMA", "BrierScore", "ClassificationMetrics", "ExpectedCalibrationError", "MacroAccuracy", "NLL",
    "RealAccuracy", "TopKAccuracy", "TorchMetricsAdapter", "VariableTopKAccuracy",
]


def __getattr__(name):
    if name == "TorchMetricsAdapter":
        from .torchmetrics_adapter import TorchMetricsAdapter

        return TorchMetricsAdapter
    raise AttributeError(name)
