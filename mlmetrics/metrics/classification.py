"""Stateful classification metrics: ``ClassificationMetrics`` and its one-number subclasses.

``ClassificationMetrics`` composes the functional groups of :mod:`mlmetrics.functional`: each
``update`` runs the one ``topk_stats`` call and adds the groups' per-row contributions to a
declared state (:meth:`ClassificationMetrics.state_spec`), or, with ``dedupe``, writes each
sample's packed record (:mod:`._core`); ``compute`` reduces the summed state with the groups'
``*_reduce``.
"""
from __future__ import annotations

from typing import Iterable, Sequence

import torch

from ..data.labels import LabelSets
from ..functional import _inputs
from ..functional._state import Rows, StateSpec, empty_state, merge_into
from ..functional.classification import classification_reduce, classification_rows, classification_spec
from ..functional.config import DEFAULT_MAX_LABEL_K, NONFINITE_POLICIES, check_backend, check_optional_int, make_config
from ..ops import TopKStats, checks
from ..ops.checks import check_bool, check_choice
from ._core import INT32_MIN, RecordLayout


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
        class_subset: int64 [C'] distinct class indices: score ``logits[:, class_subset]`` without
            copying (ImageNet-A/R: see :func:`mlmetrics.functional.load_class_subset`). Targets,
            label sets, per-class outputs are then indices into ``class_subset``.
        nonfinite: ``"error"`` (default): :meth:`compute` raises ``ValueError`` naming how many rows
            had an undefined softmax (NaN or +inf present, or every entry -inf). ``"ignore"``: such
            rows are excluded from every metric and counted in the output as ``"nonfinite_rows"``.
        num_samples: dataset size, enabling per-sample dedupe by ``sample_index`` without label sets.
        dedupe: keep a packed per-sample record (int32 ``[num_samples + 1, words]``, 32-40 B a
            sample, written at ``sample_index``) instead of plain sums, so a sample seen twice (a
            DistributedSampler's padding, a repeated batch) counts once; ranks combine records
            with ``all_reduce(MAX)``. Default: on when the dataset size is known (``label_sets`` or
            ``num_samples``). Without it the state is sums and counts (all_reduce(SUM)), duplicates
            count twice.
        max_label_k: cap on |Y_i| scored by variable top-k; the op's k is
            ``max(max(topk), min(largest |Y_i| in label_sets, max_label_k, C))``. Samples with a
            larger set are left out of variable top-k / subgroups / ASMA and counted in
            ``"variable_topk_truncated"`` (ImageNet ReaL: largest set 9, so nothing is cut).
        subgroup_cap: ``None`` (default): one subgroup per label count m (keys 1, 2, 3, ...).
            An int c: label counts >= c form one subgroup under key c (e.g. 4 -> "4+"); this
            changes ``subgroup_*`` and ``asma``.
        backend: passed to :func:`mlmetrics.topk_stats` (``"auto"``, ``"cpu"``, ``"cuda"``, ...).

    Every argument is checked here (a one-line ``TypeError`` / ``ValueError``). State lives on
    the logits' device (moved there at the first ``update``); ``update`` never syncs the host and
    never keeps autograd history. Logits may be float32/float16/bfloat16 or float64 (scored in
    float32). State dtypes are fixed (:meth:`state_spec`): inputs are cast, never the state.
    Invalid targets (outside ``[0, C)``) and ``sample_index`` values outside the label sets are
    counted on the device and reported by :meth:`compute` as ``ValueError``.
    """

    #: compute() / sync() decode the records in this many steps (at least 256 records each):
    #: their temporaries stay a small fraction of the records
    RECORD_STEPS = 64

    def __init__(self, num_classes: int, topk: Sequence[int] = (1, 5), label_sets: LabelSets | None = None,
                 ece_bins: int = 15, *, include: Iterable[str] | None = None, class_subset=None,
                 nonfinite: str = "error", num_samples: int | None = None, dedupe: bool | None = None,
                 max_label_k: int = DEFAULT_MAX_LABEL_K, subgroup_cap: int | None = None,
                 backend: str = "auto"):
        num_classes = checks.check_num_classes(num_classes)
        self.nonfinite = check_choice(nonfinite, "nonfinite", NONFINITE_POLICIES)
        self.backend = check_backend(backend)
        num_samples = check_optional_int(num_samples, "num_samples")
        if dedupe is not None:
            dedupe = check_bool(dedupe, "dedupe")
        if label_sets is not None and not isinstance(label_sets, LabelSets):
            raise TypeError(f"label_sets must be a mlmetrics.LabelSets, got {type(label_sets).__name__}")
        self.logits_width = num_classes
        self.class_subset = None
        scored = num_classes
        if class_subset is not None:
            cs = checks.as_class_subset(class_subset, num_classes, torch.device("cpu"))
            self.class_subset = cs
            scored = cs.numel()
        max_set = None
        if label_sets is not None:
            if label_sets.num_classes != scored:
                raise ValueError(f"label_sets has num_classes={label_sets.num_classes}, but {scored} classes are scored")
            if label_sets._ranges is not None and label_sets._ranges.shape[0] != label_sets.offsets.numel() - 1:
                raise ValueError("label_sets must be the whole data set, not a batch view")
            sizes = label_sets.sizes()
            max_set = max(int(sizes.max()) if sizes.numel() else 0, 1)
            if num_samples is not None and num_samples != len(label_sets):
                raise ValueError(f"num_samples={num_samples} but label_sets holds {len(label_sets)} samples")
            num_samples = len(label_sets)
        self.cfg = make_config(scored, topk, ece_bins, include, max_set, max_label_k, subgroup_cap)
        self.label_sets = label_sets
        self.num_samples = num_samples
        if dedupe is None:
            dedupe = self.num_samples is not None
        if dedupe and self.num_samples is None:
            raise ValueError("dedupe=True needs the data set size: pass label_sets or num_samples")
        self.dedupe = dedupe
        self.records = RecordLayout.of(self.cfg) if dedupe else None
        self._sums_spec = classification_spec(self.cfg)
        self._device = torch.device("cpu")
        self._sets_on_device: LabelSets | None = label_sets
        self._synced: dict | None = None
        self.reset()

    # ---- state ------------------------------------------------------------------------
    def state_spec(self) -> dict[str, StateSpec]:
        """name -> :class:`~mlmetrics.functional.StateSpec` (shape, dtype, reduction "sum" | "max",
        fill) of every tensor in :attr:`state`: the summed state (:meth:`sums_spec`), or with
        dedupe ``bad_index`` ("sum") and ``records`` (int32 [num_samples + 1, words], "max",
        fill INT32_MIN). ``sync``/``merge`` and the torchmetrics adapter's ``add_state`` read it."""
        if not self.dedupe:
            return dict(self._sums_spec)
        return {"bad_index": StateSpec(()),
                "records": StateSpec((self.num_samples + 1, self.records.words), torch.int32, "max", INT32_MIN)}

    def sums_spec(self) -> dict[str, StateSpec]:
        """Spec of the summed state that :meth:`reduce` reads and :meth:`row_contributions` fills
        (every entry float64, "sum")."""
        return dict(self._sums_spec)

    def reset(self) -> None:
        """Forget every update."""
        self.state = empty_state(self.state_spec(), self._device)
        self._next_index = 0
        self._synced = None

    def _to(self, device: torch.device) -> None:
        if device == self._device:
            return
        self._device = device
        self.state = {k: v.to(device) for k, v in self.state.items()}
        if self.label_sets is not None:
            self._sets_on_device = self.label_sets.to(device)
        if self.class_subset is not None:  # one tensor per device: checked once (see checks.as_class_subset)
            self.class_subset = self.class_subset.to(device)

    def to(self, *args, **kwargs) -> "ClassificationMetrics":
        """Move the state to a device (``m.to("cuda")``). A dtype argument is accepted and ignored:
        state dtypes are fixed by :meth:`state_spec`, logits of any dtype are cast at ``update``."""
        for a in list(args) + list(kwargs.values()):
            if isinstance(a, (str, torch.device)):
                self._to(torch.device(a))
            elif isinstance(a, torch.Tensor):
                self._to(a.device)
        return self

    def __getstate__(self) -> dict:
        return dict(self.__dict__)

    def __setstate__(self, d: dict) -> None:
        # an unpickled metric owns its state: torch.multiprocessing (ddp_spawn) ships tensors in
        # shared memory, and two processes adding into one storage would count every row twice
        self.__dict__.update(d)
        self.state = {k: v.clone() for k, v in self.state.items()}
        self._synced = None

    # ---- update -----------------------------------------------------------------------
    def update(self, logits: torch.Tensor, target: torch.Tensor | None = None,
               sample_index: torch.Tensor | None = None) -> TopKStats:
        """Add a batch: ``logits`` [N, C] (fp32/fp16/bf16; float64 read as float32; arrays and
        lists converted; N = 0 adds no rows), ``target`` [N] int (optional),
        ``sample_index`` [N] int (row -> sample of ``label_sets`` / dedupe record; checked but
        unused when neither ``label_sets`` nor ``num_samples`` was given).

        Returns the batch's :class:`~mlmetrics.TopKStats` (k = ``self.cfg.k``, softmax columns NaN
        when no softmax metric is included), so a caller can reuse this one read of the logits."""
        return self.update_rows(logits, target, sample_index, want_rows=False)[0]

    def update_rows(self, logits: torch.Tensor, target: torch.Tensor | None = None,
                    sample_index: torch.Tensor | None = None, *, want_rows: bool = True):
        """:meth:`update`, also returning the batch's per-row contributions to the summed state:
        ``(stats, rows)`` with ``rows`` a :class:`~mlmetrics.functional.Rows` (``rows.sum()`` =
        the batch's delta of :meth:`sums_spec`; ``rows.dense()`` = float64 G [N, S] + layout;
        ``rows.weighted(W)`` = the states of row weightings W [N, R]; ``rows.sample_index`` the
        rows' sample indices or None). One op call either way."""
        with torch.no_grad():
            return self._update(logits, target, sample_index, want_rows)

    def _update(self, logits, target, sample_index, want_rows):
        logits = _inputs.as_logits(logits, self.logits_width)
        n = logits.shape[0]
        self._to(logits.device)
        self._synced = None
        dev = logits.device
        if target is not None:
            target = _inputs.as_target(target, logits)  # range: counted on the device, raised by compute()
        idx, valid = self._sample_index(sample_index, n, dev)

        batch_sets = sizes = None
        if self.cfg.has_labels:
            batch_sets = self._sets_on_device[idx]
            sizes = batch_sets.sizes()
        st = _inputs.run_op(logits, self.cfg.k, target=target, label_sets=batch_sets, class_subset=self.class_subset,
                            with_softmax=self.cfg.with_softmax, backend=self.backend)
        rows = None
        if want_rows:
            rows = classification_rows(self.cfg, st, target, sizes, keep=valid,
                                       bad_index=None if valid is None else ~valid)
            rows.sample_index = idx
        if self.dedupe:
            self.state["bad_index"] += (~valid).sum().to(self.state["bad_index"].dtype)
            slot = torch.where(valid, idx, torch.full_like(idx, self.num_samples))  # invalid -> trash row
            rec = self.state["records"]
            rec.index_copy_(0, slot, self.records.encode(st, target, sizes).to(rec.dtype))
        elif rows is not None:
            rows.add_to(self.state)
        else:
            classification_rows(self.cfg, st, target, sizes, keep=valid, bad_index=None if valid is None else ~valid,
                                into=self.state)
        return st, rows

    def _sample_index(self, sample_index, n: int, dev):
        """``(idx int64 [N] | None, valid bool [N] | None)``: the rows' samples (invalid -> 0)."""
        need_index = self.label_sets is not None or self.dedupe
        idx = None
        if sample_index is not None:
            sample_index = checks.as_int_vector(sample_index, "sample_index", n, dev)
            # without label_sets / num_samples there is nothing to index: checked, then unused
            idx = sample_index if need_index else None
        elif need_index:
            if self.dedupe and self.label_sets is None:
                raise ValueError("sample_index is required when num_samples is given (dedupe by sample)")
            idx = torch.arange(self._next_index, self._next_index + n, device=dev)
        self._next_index += n
        if idx is None:
            return None, None
        valid = (idx >= 0) & (idx < self.num_samples)
        return torch.where(valid, idx, torch.zeros_like(idx)), valid

    def row_contributions(self, stats: TopKStats, target: torch.Tensor | None = None,
                          sample_index: torch.Tensor | None = None) -> Rows:
        """Per-row contributions of a batch already scored (``stats`` = the op's output for it, e.g.
        returned by :meth:`update`) to :meth:`sums_spec`, without touching the state. Rows are
        matched to label sets by ``sample_index`` (required with label sets)."""
        n = stats.row_stats.shape[0]
        dev = stats.row_stats.device
        if target is not None:
            target = checks.as_int_vector(target, "target", n, dev)
        idx = valid = sizes = None
        if sample_index is not None and (self.label_sets is not None or self.dedupe):
            idx = checks.as_int_vector(sample_index, "sample_index", n, dev)
            valid = (idx >= 0) & (idx < self.num_samples)
            idx = torch.where(valid, idx, torch.zeros_like(idx))
        if self.cfg.has_labels:
            if idx is None:
                raise ValueError("row_contributions needs sample_index with label_sets")
            self._to(dev)
            sizes = self._sets_on_device[idx].sizes()
        rows = classification_rows(self.cfg, stats, target, sizes, keep=valid,
                                   bad_index=None if valid is None else ~valid)
        rows.sample_index = idx
        return rows

    # ---- reduction --------------------------------------------------------------------
    def _add_records(self, sums: dict[str, torch.Tensor], records: torch.Tensor) -> None:
        """Decode ``records`` (int32 [n, words]) chunk by chunk and add them into ``sums``."""
        for part in records.split(self._chunk()):
            st, target, has_target, sizes, seen = self.records.decode(part)
            classification_rows(self.cfg, st, target, sizes if self.cfg.has_labels else None,
                                has_target=has_target, keep=seen, into=sums)

    def _chunk(self) -> int:
        return max(256, -(-(self.num_samples + 1) // self.RECORD_STEPS))

    def _local_sums(self) -> dict[str, torch.Tensor]:
        if not self.dedupe:
            return self.state
        sums = empty_state(self._sums_spec, self._device)
        self._add_records(sums, self.state["records"][: self.num_samples])
        sums["bad_index"] += self.state["bad_index"]
        return sums

    def sync(self) -> None:
        """All-reduce the state over ``torch.distributed`` (every rank must call it). The result is
        cached for :meth:`compute`; the local state is kept, so later updates do not double count.
        Dedupe records are reduced (MAX) and decoded chunk by chunk: no copy of all records."""
        d = torch.distributed
        if _dist_world() == 1:
            self._synced = None
            return
        spec = self.state_spec()
        names = [k for k, s in spec.items() if s.reduction == "sum"]
        flat = torch.cat([self.state[k].reshape(-1).to(torch.float64) for k in names])  # one all_reduce
        d.all_reduce(flat, op=d.ReduceOp.SUM)
        summed, i = {}, 0
        for k in names:
            v = self.state[k]
            summed[k] = flat[i:i + v.numel()].reshape(v.shape).to(v.dtype)
            i += v.numel()
        if not self.dedupe:
            self._synced = summed
            return
        sums = empty_state(self._sums_spec, self._device)
        rec = self.state["records"][: self.num_samples]
        for part in rec.split(self._chunk()):
            part = part.clone()
            d.all_reduce(part, op=d.ReduceOp.MAX)  # duplicates hold identical words: MAX dedupes
            self._add_records(sums, part)
        sums["bad_index"] += summed["bad_index"]
        self._synced = sums

    def reduce(self, sums: dict[str, torch.Tensor]) -> dict:
        """Metric values of a summed state (:meth:`sums_spec` layout, from any non-negative row
        weighting, e.g. one bootstrap replicate); the error policy of :meth:`compute` applies."""
        return classification_reduce(self.cfg, sums, self.nonfinite, self.num_samples)

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
            return self.reduce(self._synced)
        return self.reduce(self._local_sums())

    # ---- merge / checkpoint ----------------------------------------------------------
    def config(self) -> dict:
        """The arguments that shape the state (saved by :meth:`state_dict`, checked on load / merge)."""
        return {**self.cfg.as_dict(), "logits_width": self.logits_width, "dedupe": self.dedupe,
                "num_samples": self.num_samples,
                "class_subset": None if self.class_subset is None else self.class_subset.tolist()}

    def _check_same(self, other, what: str) -> None:
        if not isinstance(other, ClassificationMetrics):
            raise TypeError(f"can only {what} a ClassificationMetrics, got {type(other).__name__}")
        mine, theirs = self.config(), other.config()
        diff = [k for k in mine if mine[k] != theirs.get(k)]
        if diff:
            raise ValueError(f"can only {what} ClassificationMetrics built with the same arguments: "
                             + ", ".join(f"{k}={theirs.get(k)!r} there, {mine[k]!r} here" for k in diff))

    def merge(self, other: "ClassificationMetrics") -> "ClassificationMetrics":
        """Fold ``other``'s updates into ``self`` (exact: sums add, dedupe records take the max)."""
        if other is self:
            raise ValueError("cannot merge a metric into itself (every row would count twice)")
        self._check_same(other, "merge")
        self._synced = None
        merge_into(self.state_spec(), self.state, other.state)
        self._next_index += other._next_index
        return self

    def state_dict(self) -> dict:
        """``{"state.<name>": tensor, "next_index", "config"}``. The tensors are the live state
        (detached, not copied, as ``torch.nn.Module.state_dict``): save or copy them before
        updating again."""
        sd: dict = {f"state.{k}": v.detach() for k, v in self.state.items()}
        sd["next_index"] = torch.tensor(self._next_index)
        sd["config"] = self.config()
        return sd

    def load_state_dict(self, sd: dict) -> None:
        """Load a :meth:`state_dict` saved by a metric built with the same arguments (else
        ``ValueError`` naming the arguments that differ)."""
        saved = sd.get("config")
        if not isinstance(saved, dict):
            raise ValueError("state_dict comes from a ClassificationMetrics with other arguments "
                             "(or an older version): it holds no 'config'")
        mine = self.config()
        diff = [k for k in mine if mine[k] != saved.get(k)]
        if diff:
            raise ValueError("state_dict comes from a ClassificationMetrics with other arguments: "
                             + ", ".join(f"{k}={saved.get(k)!r} there, {mine[k]!r} here" for k in diff))
        state = {}
        for name, spec in self.state_spec().items():
            v = sd.get(f"state.{name}")
            if not isinstance(v, torch.Tensor) or tuple(v.shape) != spec.shape:
                raise ValueError(f"state_dict entry state.{name} is missing or has the wrong shape "
                                 f"(expected {spec.shape})")
            state[name] = v.to(self._device, spec.dtype, copy=True)
        self.state = state
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
        self._key = "variable_topk_fractional" if check_bool(fractional, "fractional") else "variable_topk_strict"
        super().__init__(num_classes, label_sets=label_sets, **kw)


class ASMA(_OneNumber):
    """Aggregate Subgroup Model Accuracy: unweighted mean over label-count subgroups of the strict
    variable top-k accuracy (see :func:`mlmetrics.functional.asma`)."""
    _group, _key = "multilabel", "asma"

    def __init__(self, num_classes: int, label_sets: LabelSets, **kw):
        super().__init__(num_classes, label_sets=label_sets, **kw)
