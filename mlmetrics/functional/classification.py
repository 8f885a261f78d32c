"""Every metric group at once, from ONE ``topk_stats`` call: the composition that
:class:`~mlmetrics.metrics.ClassificationMetrics` streams and :func:`classification_metrics`
computes for one batch.

* :func:`classification_spec` (cfg) -> the summed state's spec (every entry "sum", float64);
* :func:`classification_rows` (cfg, op output, targets, set sizes) -> :class:`~._state.Rows`,
  the per-row contributions (``.sum()`` = state delta, ``.dense()`` = G [N, S] + layout,
  ``.weighted(W)`` = R weighted states);
* :func:`classification_reduce` (cfg, state) -> the metric values (keys: :mod:`mlmetrics.metrics`).

The groups scored follow ``cfg.include``: counts always; top-k accuracy with "accuracy" or
"calibration"; per-class with "accuracy"; nll/brier with "nll"; calibration; ood; multi-label
and variable top-k with "multilabel" and label sets.
"""
from __future__ import annotations

import torch

from ..data.labels import LabelSets
from ..ops import TopKStats, checks
from . import _inputs
from ._state import Rows, StateSpec
from .accuracy import per_class_reduce, per_class_rows, per_class_spec, topk_reduce, topk_rows, topk_spec
from .calibration import calibration_reduce, calibration_rows, calibration_spec
from ..ops.checks import check_choice
from .config import Config, NONFINITE_POLICIES, check_backend, make_config
from .counts import check_counts, counts_reduce, counts_rows, counts_spec
from .multilabel import multilabel_reduce, multilabel_rows, multilabel_spec
from .nll import nll_reduce, nll_rows, nll_spec
from .ood import ood_reduce, ood_rows, ood_spec
from .variable_topk import variable_topk_reduce, variable_topk_rows, variable_topk_spec


def _has_topk(cfg: Config) -> bool:
    return bool(cfg.include & {"accuracy", "calibration"})


def classification_spec(cfg: Config) -> dict[str, StateSpec]:
    """name -> :class:`StateSpec` of the summed state (float64, "sum")."""
    inc = cfg.include
    spec = counts_spec()
    if _has_topk(cfg):
        spec.update(topk_spec(cfg.topk))
    if "accuracy" in inc:
        spec.update(per_class_spec(cfg.num_classes))
    if "nll" in inc:
        spec.update(nll_spec())
    if "calibration" in inc:
        spec.update(calibration_spec(cfg.ece_bins))
    if "ood" in inc:
        spec.update(ood_spec())
    if cfg.has_labels:
        spec.update(multilabel_spec(cfg.topk, cfg.hist_size))
        spec.update(variable_topk_spec(cfg.label_k))
    return spec


def classification_rows(cfg: Config, stats: TopKStats, target: torch.Tensor | None = None,
                        set_sizes: torch.Tensor | None = None, *, has_target=None, keep: torch.Tensor | None = None,
                        bad_index: torch.Tensor | None = None, weight: torch.Tensor | None = None,
                        into: dict[str, torch.Tensor] | None = None) -> Rows:
    """Per-row contributions of one batch to every state of :func:`classification_spec`.

    ``stats``: the op's output for the batch (k = ``cfg.k``, softmax columns when
    ``cfg.with_softmax``); ``target`` int64 [N] or None; ``set_sizes`` int64 [N] (with label
    sets); ``has_target`` bool or bool [N] (default: ``target is not None``); ``keep`` bool [N]:
    rows to score (the others add only ``bad_index``); ``bad_index`` bool [N]; ``weight`` f64
    [N]: multiplies every row's contribution; ``into``: add straight into this state (see :class:`Rows`)."""
    n = stats.row_stats.shape[0]
    dev = stats.row_stats.device
    rows = Rows(n, dev, weight, into)
    if has_target is None:
        has_target = target is not None
    if target is None:
        target = torch.zeros(n, dtype=torch.int64, device=dev)
    inc = cfg.include
    counts_rows(stats, has_target, keep=keep, bad_index=bad_index, out=rows)
    kw = {"keep": keep, "has_target": has_target, "out": rows}
    if _has_topk(cfg):
        topk_rows(stats, topk=cfg.topk, **kw)
    if "accuracy" in inc:
        per_class_rows(stats, target, num_classes=cfg.num_classes, **kw)
    if "nll" in inc:
        nll_rows(stats, **kw)
    if "calibration" in inc:
        calibration_rows(stats, ece_bins=cfg.ece_bins, **kw)
    if "ood" in inc:
        ood_rows(stats, keep=keep, out=rows)
    if cfg.has_labels:
        if set_sizes is None:
            set_sizes = torch.zeros(n, dtype=torch.int64, device=dev)
            keep_l = torch.zeros(n, dtype=torch.bool, device=dev)
        else:
            keep_l = keep
        multilabel_rows(stats, set_sizes, topk=cfg.topk, hist_size=cfg.hist_size, keep=keep_l, out=rows)
        variable_topk_rows(stats, set_sizes, label_k=cfg.label_k, keep=keep_l, out=rows)
    return rows


def classification_reduce(cfg: Config, state, nonfinite: str = "error", num_samples: int | None = None,
                          check: bool = True) -> dict:
    """Metric values from a summed state (any non-negative row weighting). Scalars are floats,
    per-class / per-bin data CPU float64 tensors, subgroup data ``{label_count: value}``.
    ``check``: apply the error policy first (see :func:`~.counts.check_counts`)."""
    if check:
        check_counts(state, nonfinite, cfg.num_classes, num_samples)
    inc = cfg.include
    out = counts_reduce(state, nonfinite)
    if float(state["n_target"]) > 0:
        if _has_topk(cfg):
            out.update(topk_reduce(state, topk=cfg.topk))
        if "accuracy" in inc:
            out.update(per_class_reduce(state))
        if "nll" in inc:
            out.update(nll_reduce(state))
        if "calibration" in inc:
            out.update(calibration_reduce(state))
    if "ood" in inc:
        out.update(ood_reduce(state))
    if cfg.has_labels and float(state["label_rows"]) > 0:
        out.update(multilabel_reduce(state, topk=cfg.topk, num_classes=cfg.num_classes))
        out.update(variable_topk_reduce(state, subgroup_cap=cfg.subgroup_cap))
    return out


def classification_metrics(logits, target=None, label_sets: LabelSets | None = None, *, topk=(1, 5),
                           ece_bins: int = 15, include=None, class_subset=None, nonfinite="error",
                           max_label_k: int | None = None, subgroup_cap=None, backend="auto") -> dict:
    """Every metric of :class:`~mlmetrics.metrics.ClassificationMetrics` for one batch, from one
    ``topk_stats`` call (same keys as ``ClassificationMetrics.compute()``). ``label_sets``: one
    set per row (``len == N``; a batch view ``sets[index]`` is fine). Variable top-k scores every
    set size unless ``max_label_k`` caps it."""
    check_choice(nonfinite, "nonfinite", NONFINITE_POLICIES)
    check_backend(backend)
    x = _inputs.as_logits(logits)
    checks.require_rows(x)
    class_subset, c = _inputs.as_class_subset(x, class_subset)
    t = None if target is None else _inputs.as_target(target, x, c, check_range=True)
    max_set = sizes = None
    if label_sets is not None:
        label_sets = _inputs.batch_label_sets(label_sets, x.shape[0])
        sizes = label_sets.sizes()
        max_set = max(int(sizes.max()) if sizes.numel() else 1, 1)
    cfg = make_config(c, topk, ece_bins, include, max_set, max_label_k or max_set or 1, subgroup_cap)
    st = _inputs.run_op(x, cfg.k, target=t, label_sets=label_sets if cfg.has_labels else None,
                        class_subset=class_subset, with_softmax=cfg.with_softmax, backend=backend)
    if sizes is not None:
        sizes = sizes.to(x.device)
    state = classification_rows(cfg, st, t, sizes if cfg.has_labels else None).sum()
    return classification_reduce(cfg, state, nonfinite)
