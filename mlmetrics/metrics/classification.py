"""Stateful classification metrics: ``ClassificationMetrics`` and its one-number subclasses."""
from __future__ import annotations

import copy
import math
from typing import Iterable, Sequence

import torch

from ..data.labels import LabelSets
from . import _core
from ._core import DEFAULT_MAX_LABEL_K, NONFINITE_POLICIES


def _dist_world() -> int:
    d = torch.distributed
    if d.is_available() and d.is_initialized():
        return d.get_world_size()
    return 1


class ClassificationMetrics:
    """Every classification metric of mlmetrics from ONE ``topk_stats`` call per batch.

    Args:
        num_classes: width C of the logits passed to :meth:`update`.
        topk: the k of top-k accuracy (``"top{k}"``), ReaL accuracy (``"real_top{k}"``),
            ``precision@k``, ``recall@k``, ``subset_accuracy@k``, ``hamming_loss@k``.
        label_sets: a :class:`~mlmetrics.LabelSets` of the whole dataset (e.g.
            ``LabelSets.imagenet_real()``); ``update(..., sample_index=)`` picks each row's set.
            Without ``sample_index`` rows are matched to sets in order (first update = sets 0..N-1,
            as timm's ``RealLabelsImagenet`` does).
        ece_bins: number of equal-width confidence bins of the ECE (torchmetrics' binning).
        include: metric groups to compute, a subset of ``("accuracy", "nll", "calibration",
            "ood", "multilabel")`` (default: all). ``with_softmax`` is only requested from the op
            when one of ``nll``, ``calibration``, ``ood`` is included.
        class_subset: int64 [C'] class indices: score ``logits[:, class_subset]`` without copying
            (ImageNet-A/R: see :func:`mlmetrics.functional.load_class_subset`). Targets, label sets,
            per-class outputs are then indices into ``class_subset``.
        nonfinite: ``"error"`` (default): :meth:`compute` raises ``ValueError`` naming how many rows
            had an undefined softmax (NaN or +inf present, or every entry -inf). ``"ignore"``: such
            rows are excluded from every metric and counted in the output as ``"nonfinite_rows"``.
        num_samples: dataset size, enabling per-sample dedupe by ``sample_index`` without label sets.
        dedupe: keep a per-sample record (float64 ``[num_samples + 1, F]``, written at
            ``sample_index``) instead of plain sums, so a sample seen twice (a DistributedSampler's
            padding, a repeated batch) counts once; ranks combine records with ``all_reduce(MAX)``.
            Default: on when the dataset size is known (``label_sets`` or ``num_samples``).
            Without it the state is sums and counts (all_reduce(SUM)), duplicates count twice.
        max_label_k: cap on |Y_i| scored by variable top-k; the op's k is
            ``max(max(topk), min(largest |Y_i| in label_sets, max_label_k, C))``. Samples with a
            larger set are left out of variable top-k / subgroups / ASMA and counted in
            ``"variable_topk_truncated"`` (ImageNet ReaL: largest set 9, so nothing is cut).
        subgroup_cap: ``None`` (default): one subgroup per label count m (keys 1, 2, 3, ...).
            An int c: label counts >= c form one subgroup under key c (e.g. 4 -> "4+"); this
            changes ``subgroup_*`` and ``asma``.
        backend: passed to :func:`mlmetrics.topk_stats` (``"auto"``, ``"cpu"``, ``"cuda"``, ...).

    State lives on the logits' device (moved there at the first ``update``); ``update`` never
    syncs the host. Invalid targets (outside ``[0, C)``) and ``sample_index`` values outside the
    label sets are counted on the device and reported by :meth:`compute` as ``ValueError``.
    """

    def __init__(self, num_classes: int, topk: Sequence[int] = (1, 5), label_sets: LabelSets | None = None,
                 ece_bins: int = 15, *, include: Iterable[str] | None = None, class_subset=None,
                 nonfinite: str = "error", num_samples: int | None = None, dedupe: bool | None = None,
                 max_label_k: int = DEFAULT_MAX_LABEL_K, subgroup_cap: int | None = None,
                 backend: str = "auto"):
        if nonfinite not in NONFINITE_POLICIES:
            raise ValueError(f"nonfinite must be one of {NONFINITE_POLICIES}, got {nonfinite!r}")
        if label_sets is not None and not isinstance(label_sets, LabelSets):
            raise TypeError(f"label_sets must be a mlmetrics.LabelSets, got {type(label_sets).__name__}")
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
            raise ValueError(f"num_classes must be a positive int, got {num_classes!r}")
        self.logits_width = num_classes
        self.class_subset = None
        scored = num_classes
        if class_subset is not None:
            cs = torch.as_tensor(class_subset)
            if cs.dim() != 1 or cs.numel() < 1 or cs.dtype.is_floating_point or cs.dtype == torch.bool:
                raise ValueError("class_subset must be a non-empty 1-D integer tensor")
            cs = cs.to(torch.int64)
            if int(cs.min()) < 0 or int(cs.max()) >= num_classes:
                raise ValueError(f"class_subset holds indices outside [0, num_classes={num_classes})")
            self.class_subset = cs
            scored = cs.numel()
        max_set = None
        if label_sets is not None:
            if label_sets.num_classes != scored:
                raise ValueError(f"label_sets has num_classes={label_sets.num_classes}, but {scored} classes are scored")
            if label_sets._ranges is not None and label_sets._ranges.shape[0] != label_sets.offsets.numel() - 1:
                raise ValueError("label_sets must be the whole data set, not a batch view")
            sizes = label_sets.sizes()
            max_set = int(sizes.max()) if sizes.numel() else 0
            max_set = max(max_set, 1)
            if num_samples is not None and num_samples != len(label_sets):
                raise ValueError(f"num_samples={num_samples} but label_sets holds {len(label_sets)} samples")
            num_samples = len(label_sets)
        if isinstance(max_label_k, bool) or not isinstance(max_label_k, int) or max_label_k < 1:
            raise ValueError(f"max_label_k must be a positive int, got {max_label_k!r}")
        self.cfg = _core.make_config(scored, topk, ece_bins, include, max_set, max_label_k, subgroup_cap)
        self.label_sets = label_sets
        self.nonfinite = nonfinite
        self.backend = backend
        self.num_samples = None if num_samples is None else int(num_samples)
        if dedupe is None:
            dedupe = self.num_samples is not None
        if dedupe and self.num_samples is None:
            raise ValueError("dedupe=True needs the data set size: pass label_sets or num_samples")
        self.dedupe = bool(dedupe)
        self._device = torch.device("cpu")
        self._sets_on_device: LabelSets | None = label_sets
        self._synced: dict | None = None
        self.row_hook = None  # called as row_hook(x [N, F], sample_index) per streamed batch (mlmetrics.stats)
        self.reset()

    # ---- state ------------------------------------------------------------------------
    def reset(self) -> None:
        """Forget every update."""
        self.state = _core.empty_state(self.cfg, self._device)
        self.errors = torch.zeros(1, dtype=torch.float64, device=self._device)  # bad sample_index rows
        self.records = None
        if self.dedupe:
            f = len(self.cfg.feature_names)
            # row num_samples is a trash row for invalid indices; unseen rows stay -inf (MAX-reducible)
            self.records = torch.full((self.num_samples + 1, f + 1), -math.inf, dtype=torch.float64,
                                      device=self._device)
        self._next_index = 0
        self._synced = None

    def _to(self, device: torch.device) -> None:
        if device == self._device:
            return
        self._device = device
        self.state = {k: v.to(device) for k, v in self.state.items()}
        self.errors = self.errors.to(device)
        if self.records is not None:
            self.records = self.records.to(device)
        if self.label_sets is not None:
            self._sets_on_device = self.label_sets.to(device)

    # ---- update -----------------------------------------------------------------------
    def update(self, logits: torch.Tensor, target: torch.Tensor | None = None,
               sample_index: torch.Tensor | None = None):
        """Add a batch: ``logits`` [N, C] (fp32/fp16/bf16), ``target`` [N] int (optional),
        ``sample_index`` [N] int (row -> sample of ``label_sets`` / dedupe record; checked but
        unused when neither ``label_sets`` nor ``num_samples`` was given).

        Returns the batch's :class:`~mlmetrics.TopKStats` (k = ``self.cfg.k``, softmax columns NaN
        when no softmax metric is included), so a caller can reuse this one read of the logits."""
        if not isinstance(logits, torch.Tensor):
            raise TypeError(f"logits must be a torch.Tensor, got {type(logits).__name__}")
        if logits.dim() != 2:
            raise ValueError(f"logits must be 2-D [N, C], got shape {tuple(logits.shape)}")
        if logits.shape[1] != self.logits_width:
            raise ValueError(f"logits have C={logits.shape[1]} columns but num_classes={self.logits_width}")
        n = logits.shape[0]
        self._to(logits.device)
        self._synced = None
        dev = logits.device
        if target is not None:
            target = torch.as_tensor(target)
            if target.dim() != 1 or target.shape[0] != n:
                raise ValueError(f"target must be [N={n}], got shape {tuple(target.shape)}")
            if target.dtype.is_floating_point or target.dtype == torch.bool or target.is_complex():
                raise TypeError(f"target must be an integer tensor, got {target.dtype}")
            target = target.to(dev, torch.int64, non_blocking=True)

        need_index = self.label_sets is not None or self.dedupe
        idx = valid_idx = None
        if sample_index is not None:
            sample_index = torch.as_tensor(sample_index)
            if sample_index.dim() != 1 or sample_index.shape[0] != n:
                raise ValueError(f"sample_index must be [N={n}], got shape {tuple(sample_index.shape)}")
            if sample_index.dtype.is_floating_point or sample_index.dtype == torch.bool:
                raise TypeError(f"sample_index must be an integer tensor, got {sample_index.dtype}")
            # without label_sets / num_samples there is nothing to index: checked, then unused
            idx = sample_index.to(dev, torch.int64, non_blocking=True) if need_index else None
        elif need_index:
            if self.dedupe and self.label_sets is None:
                raise ValueError("sample_index is required when num_samples is given (dedupe by sample)")
            idx = torch.arange(self._next_index, self._next_index + n, device=dev)
        self._next_index += n
        if idx is not None:
            valid_idx = (idx >= 0) & (idx < self.num_samples)
            self.errors += (~valid_idx).sum(dtype=torch.float64)
            idx = torch.where(valid_idx, idx, torch.zeros_like(idx))

        batch_sets = sizes = None
        if self.cfg.has_labels:
            batch_sets = self._sets_on_device[idx]
            sizes = batch_sets.sizes()
        st = _core.run_op(self.cfg, logits, target, batch_sets, self.class_subset, self.backend)
        x = _core.row_features(self.cfg, st, target is not None, sizes, target)
        if self.dedupe:
            seen = torch.ones(n, 1, dtype=torch.float64, device=dev)
            rows = torch.where(valid_idx, idx, torch.full_like(idx, self.num_samples))
            self.records.index_copy_(0, rows, torch.cat([x, seen], dim=1))
        else:
            if valid_idx is not None:
                x = x * valid_idx[:, None].to(x.dtype)  # rows with a bad index contribute nothing
            _core.accumulate(self.cfg, self.state, x)
            if self.row_hook is not None:
                self.row_hook(x, sample_index)
        return st

    # ---- reduction --------------------------------------------------------------------
    def _local_sums(self, records=None, errors=None) -> dict[str, torch.Tensor]:
        errors = self.errors if errors is None else errors
        if self.dedupe:
            records = self.records if records is None else records
            rec = records[: self.num_samples]
            seen = rec[:, -1] > 0
            s = _core.empty_state(self.cfg, rec.device)
            _core.accumulate(self.cfg, s, rec[seen][:, :-1])
        else:
            s = {k: v.clone() for k, v in self.state.items()}
        s["bad_index"] = s["bad_index"] + errors[0]
        return s

    def sync(self) -> None:
        """All-reduce the state over ``torch.distributed`` (every rank must call it). The result is
        cached for :meth:`compute`; the local state is kept, so later updates do not double count."""
        d = torch.distributed
        if _dist_world() == 1:
            self._synced = None
            return
        errors = self.errors.clone()
        d.all_reduce(errors, op=d.ReduceOp.SUM)
        if self.dedupe:
            records = self.records.clone()
            d.all_reduce(records, op=d.ReduceOp.MAX)  # duplicates hold identical rows: MAX dedupes
            self._synced = self._local_sums(records, errors)
        else:
            names = sorted(self.state)
            flat = torch.cat([self.state[k].reshape(-1) for k in names])  # one all_reduce for all sums
            d.all_reduce(flat, op=d.ReduceOp.SUM)
            s, i = {}, 0
            for k in names:
                v = self.state[k]
                s[k] = flat[i:i + v.numel()].reshape(v.shape)
                i += v.numel()
            s["bad_index"] = s["bad_index"] + errors[0]
            self._synced = s

    def compute(self, sync: bool | None = None) -> dict:
        """Metric values (documented keys: see the package docstring). Scalars are floats,
        per-class / per-bin data are CPU tensors, subgroup data are ``{label_count: value}``.

        With ``torch.distributed`` initialised (world size > 1), ``compute`` all-reduces first
        (a collective: call it on every rank) unless ``sync=False``.
        """
        if sync is None:
            sync = _dist_world() > 1
        if sync and _dist_world() > 1:
            if self._synced is None:
                self.sync()
            sums = self._synced
        else:
            sums = self._local_sums()
        return _core.finalize(self.cfg, sums, self.nonfinite, self.num_samples)

    # ---- merge / checkpoint ----------------------------------------------------------
    def _check_same(self, other: "ClassificationMetrics") -> None:
        if not isinstance(other, ClassificationMetrics) or other.cfg != self.cfg or other.dedupe != self.dedupe \
                or other.num_samples != self.num_samples:
            raise ValueError("can only merge ClassificationMetrics built with the same arguments")

    def merge(self, other: "ClassificationMetrics") -> "ClassificationMetrics":
        """Fold ``other``'s updates into ``self`` (exact: sums add, dedupe records take the max)."""
        self._check_same(other)
        self._synced = None
        self.errors += other.errors.to(self._device)
        if self.dedupe:
            torch.maximum(self.records, other.records.to(self._device), out=self.records)
        else:
            _core.merge_states(self.state, other.state)
        self._next_index += other._next_index
        return self

    def state_dict(self) -> dict:
        sd = {f"state.{k}": v for k, v in self.state.items()}
        sd["errors"] = self.errors
        if self.records is not None:
            sd["records"] = self.records
        sd["next_index"] = torch.tensor(self._next_index)
        sd["feature_names"] = list(self.cfg.feature_names)
        return {k: (v.detach().clone() if isinstance(v, torch.Tensor) else copy.copy(v)) for k, v in sd.items()}

    def load_state_dict(self, sd: dict) -> None:
        if list(sd.get("feature_names", [])) != list(self.cfg.feature_names):
            raise ValueError("state_dict comes from a ClassificationMetrics with other arguments")
        dev = self._device
        for k in self.state:
            v = sd[f"state.{k}"]
            if v.shape != self.state[k].shape:
                raise ValueError(f"state_dict entry state.{k} has shape {tuple(v.shape)}, expected "
                                 f"{tuple(self.state[k].shape)}")
            self.state[k] = v.to(dev, torch.float64).clone()
        self.errors = sd["errors"].to(dev, torch.float64).clone()
        if self.dedupe:
            if "records" not in sd or sd["records"].shape != self.records.shape:
                raise ValueError("state_dict has no matching dedupe records")
            self.records = sd["records"].to(dev, torch.float64).clone()
        self._next_index = int(sd["next_index"])
        self._synced = None

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(num_classes={self.logits_width}, topk={self.cfg.topk}, "
                f"label_sets={self.label_sets!r}, ece_bins={self.cfg.ece_bins}, dedupe={self.dedupe})")


# ---------------------------------------------------------------------------------------
# one-number metrics
# ---------------------------------------------------------------------------------------
class _OneNumber(ClassificationMetrics):
    _group: str = "accuracy"
    _key: str = ""

    def __init__(self, num_classes: int, *, topk: Sequence[int] = (1,), label_sets=None, ece_bins: int = 15, **kw):
        super().__init__(num_classes, topk=topk, label_sets=label_sets, ece_bins=ece_bins,
                         include=(self._group,), **kw)

    def compute(self, sync: bool | None = None) -> float:  # type: ignore[override]
        return super().compute(sync)[self._key]


class TopKAccuracy(_OneNumber):
    """Top-k accuracy (``"top{k}"``), no softmax computed."""

    def __init__(self, num_classes: int, k: int = 1, **kw):
        self._key = f"top{k}"
        super().__init__(num_classes, topk=(k,), **kw)


class MacroAccuracy(_OneNumber):
    """Mean over classes present in the targets of per-class top-1 accuracy (balanced accuracy)."""
    _key = "macro_accuracy"


class NLL(_OneNumber):
    """Mean negative log-likelihood (cross-entropy, nats)."""
    _group, _key = "nll", "nll"


class BrierScore(_OneNumber):
    """Mean multiclass Brier score sum_c (p_c - y_c)^2 (range [0, 2])."""
    _group, _key = "nll", "brier"


class ExpectedCalibrationError(_OneNumber):
    """Top-label ECE (L1), torchmetrics' equal-width binning (``ece_bins`` bins)."""
    _group, _key = "calibration", "ece"


class RealAccuracy(_OneNumber):
    """ReaL accuracy@k (Beyer et al. 2020): empty label sets excluded."""
    _group = "multilabel"

    def __init__(self, num_classes: int, label_sets: LabelSets, k: int = 1, **kw):
        self._key = f"real_top{k}"
        super().__init__(num_classes, topk=(k,), label_sets=label_sets, **kw)


class VariableTopKAccuracy(_OneNumber):
    """Variable top-k (k = |Y_i|), strict (``fractional=False``) or fractional."""
    _group = "multilabel"

    def __init__(self, num_classes: int, label_sets: LabelSets, fractional: bool = False, **kw):
        self._key = "variable_topk_fractional" if fractional else "variable_topk_strict"
        super().__init__(num_classes, label_sets=label_sets, **kw)


class ASMA(_OneNumber):
    """Aggregate Subgroup Model Accuracy: unweighted mean over label-count subgroups of the strict
    variable top-k accuracy (see :func:`mlmetrics.functional.asma`)."""
    _group, _key = "multilabel", "asma"

    def __init__(self, num_classes: int, label_sets: LabelSets, **kw):
        super().__init__(num_classes, label_sets=label_sets, **kw)
