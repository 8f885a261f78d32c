"""Input checks of every public entry point, in one place: the ops, the functional metrics, the
stateful metrics and :class:`~mlmetrics.LabelSets` call these. Each raises a one-line
``TypeError`` (wrong kind of value) or ``ValueError`` (right kind, bad value) that names the
argument and the problem; the ``as_*`` functions also return the input in the form the kernels
read (a tensor of the right dtype on the right device).

Policies (the README's "Semantics" section states them for users):

* logits: a 2-D [N, C] floating tensor or array-like (NumPy array, nested list), C >= 1.
  float32/float16/bfloat16 are read as they are; float64 is rounded to float32 first (every
  backend ranks and sums in float32). Integer, bool and complex logits are a ``TypeError``;
  meta tensors (no data) a ``ValueError``. N = 0 is allowed: the ops return empty results.
* target / sample_index: 1-D integer [N] (any integer dtype, array-likes too), moved to the
  logits' device. The ops give a target outside [0, C) the rank -1; the metrics refuse it.
* class_subset: a non-empty 1-D integer vector of distinct class indices in [0, C), checked
  the same way for every backend (an error, never a clamp).
* label sets: sorted, unique class indices in [0, num_classes) per sample (``from_lists``
  sorts and dedupes; the CSR constructor refuses anything else).
"""
from __future__ import annotations

import itertools
import operator
import warnings
import weakref
from typing import Iterable

import numpy as np
import torch

from .schema import KERNEL_DTYPES

#: largest num_classes / class index: labels are stored as int32 (int64 offsets)
MAX_CLASSES = 2**31 - 1


# ---------------------------------------------------------------------------------------
# scalars
# ---------------------------------------------------------------------------------------
def check_int(value, name: str, minimum: int | None = None, maximum: int | None = None) -> int:
    """``value`` as a Python int (a Python or NumPy integer; bool, float and str refused), in
    ``[minimum, maximum]`` where given."""
    if isinstance(value, (bool, np.bool_)) or isinstance(value, torch.Tensor):
        raise TypeError(f"{name} must be an int, got {_kind(value)}")
    try:
        v = operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be an int, got {_kind(value)}") from None
    if minimum is not None and v < minimum or maximum is not None and v > maximum:
        if maximum is None:
            raise ValueError(f"{name} must be >= {minimum}, got {v}")
        if minimum is None:
            raise ValueError(f"{name} must be <= {maximum}, got {v}")
        raise ValueError(f"{name} must be in [{minimum}, {maximum}], got {v}")
    return v


def check_bool(value, name: str) -> bool:
    """``value`` as a bool (True/False or a NumPy bool; strings and numbers refused)."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {_kind(value)}")
    return bool(value)


def check_choice(value, name: str, choices: Iterable[str]) -> str:
    """``value`` if it is one of ``choices``."""
    choices = tuple(choices)
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{name} must be one of {choices}, got {value!r}")
    return value


def check_k(k, num_classes: int, name: str = "k") -> int:
    """``k`` as an int in ``[1, C]``."""
    k = check_int(k, name)
    if not 1 <= k <= num_classes:
        raise ValueError(f"{name} must be in [1, C={num_classes}], got {name}={k}")
    return k


# ---------------------------------------------------------------------------------------
# tensors
# ---------------------------------------------------------------------------------------
def as_tensor(value, name: str) -> torch.Tensor:
    """A tensor from a tensor, NumPy array or (nested) list; never copies a tensor."""
    if isinstance(value, torch.Tensor):
        return value
    if isinstance(value, (str, bytes, dict, set)) or value is None:
        raise TypeError(f"{name} must be a tensor, NumPy array or list, got {_kind(value)}")
    try:
        with warnings.catch_warnings():  # a read-only NumPy array: the ops never write to it
            warnings.simplefilter("ignore", UserWarning)
            if isinstance(value, np.ndarray):
                if value.dtype == object:
                    raise TypeError("an array of Python objects")
                if any(s < 0 for s in value.strides):
                    value = np.ascontiguousarray(value)
                return torch.from_numpy(value)
            return torch.as_tensor(value)
    except (TypeError, ValueError, RuntimeError, OverflowError) as e:
        why = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise TypeError(f"{name} could not be converted to a tensor ({why})") from None


def as_logits(logits, name: str = "logits") -> torch.Tensor:
    """``logits`` as a 2-D [N, C] tensor the kernels read: float32/float16/bfloat16 as given
    (any strides), float64 rounded to float32, array-likes converted. C >= 1; N may be 0."""
    x = as_tensor(logits, name)
    if x.is_meta:
        raise ValueError(f"{name} is a meta tensor (shape only, no data); pass a CPU or CUDA tensor")
    if x.is_complex() or not x.dtype.is_floating_point:
        raise TypeError(f"{name} must be floating point (float32, float16 or bfloat16; float64 is read as "
                        f"float32), got {x.dtype}")
    if x.dim() != 2:
        raise ValueError(f"{name} must be 2-D [N, C], got shape {tuple(x.shape)}")
    if x.shape[1] < 1:
        raise ValueError(f"{name} must have at least one class (C >= 1), got shape {tuple(x.shape)}")
    if x.dtype not in KERNEL_DTYPES:
        x = x.to(torch.float32)  # float64 (and any other float): scored in float32
    return x


def as_int_vector(value, name: str, n: int, device: torch.device) -> torch.Tensor:
    """int64 [n] on ``device`` (contiguous) from a 1-D integer tensor or array-like."""
    t = as_tensor(value, name)
    if t.dim() != 1 or t.shape[0] != n:
        raise ValueError(f"{name} must be [N={n}], got shape {tuple(t.shape)}")
    if t.is_complex() or t.dtype.is_floating_point or t.dtype == torch.bool:
        raise TypeError(f"{name} must hold integers, got {t.dtype}")
    if t.is_meta:
        raise ValueError(f"{name} is a meta tensor (shape only, no data)")
    return t.to(device=device, dtype=torch.int64, non_blocking=True).contiguous()


def as_target(target, logits: torch.Tensor, num_classes: int | None = None, *,
              check_range: bool = False) -> torch.Tensor:
    """int64 [N] class indices on the logits' device. ``check_range``: refuse a target outside
    ``[0, num_classes)`` (one host sync); without it the ops rank such a target -1."""
    t = as_int_vector(target, "target", logits.shape[0], logits.device)
    if check_range and t.numel():
        c = logits.shape[1] if num_classes is None else num_classes
        lo, hi = (int(v) for v in torch.aminmax(t))
        if lo < 0 or hi >= c:
            raise ValueError(f"target holds {lo if lo < 0 else hi}, outside [0, C={c})")
    return t


def require_rows(logits: torch.Tensor, what: str = "a metric") -> None:
    """Refuse an empty batch where a reduction over its rows is asked for."""
    if logits.shape[0] == 0:
        raise ValueError(f"logits has no rows (N=0, shape {tuple(logits.shape)}): {what} of an empty batch "
                         "is undefined")


# class_subset tensors already checked against a logits width: (tensor version, C) by tensor, so
# a metric passing the same subset every batch pays the check (a host sync on GPU) once.
# (Keyed by id, with a weak reference to tell a live tensor from a reused id; tensors compare
# elementwise, so they cannot be dict keys themselves.)
CHECKED_SUBSETS: dict[int, tuple[weakref.ref, int, int]] = {}


def as_class_subset(class_subset, num_classes: int, device: torch.device | None = None) -> torch.Tensor:
    """int64 [C'] (contiguous, on ``device``): a non-empty 1-D vector of distinct class indices in
    ``[0, num_classes)``. The same tensor passed again unchanged is not checked again."""
    t = as_tensor(class_subset, "class_subset")
    if t.dim() != 1:
        raise ValueError(f"class_subset must be 1-D [C'], got shape {tuple(t.shape)}")
    if t.numel() == 0:
        raise ValueError("class_subset is empty; pass class_subset=None to score every class")
    if t.is_complex() or t.dtype.is_floating_point or t.dtype == torch.bool:
        raise TypeError(f"class_subset must hold integer class indices, got {t.dtype}")
    t = t.to(device=t.device if device is None else device, dtype=torch.int64).contiguous()
    cacheable = not t.is_inference()  # inference tensors keep no version counter
    seen = CHECKED_SUBSETS.get(id(t)) if cacheable else None
    if seen is not None and seen[0]() is t and seen[1:] == (t._version, num_classes):
        return t
    s = t.sort().values
    repeated = torch.where(s[1:] == s[:-1], s[1:], torch.iinfo(torch.int64).max).amin() if s.numel() > 1 \
        else s.new_full((), torch.iinfo(torch.int64).max)
    lo, hi, dup = torch.stack([s[0], s[-1], repeated]).tolist()  # one host sync, on a tiny tensor
    if lo < 0 or hi >= num_classes:
        raise ValueError(f"class_subset holds {lo if lo < 0 else hi}, outside [0, C={num_classes})")
    if dup != torch.iinfo(torch.int64).max:
        raise ValueError(f"class_subset holds {dup} more than once (its class indices must be distinct)")
    if cacheable:
        if len(CHECKED_SUBSETS) > 256:
            CHECKED_SUBSETS.clear()
        CHECKED_SUBSETS[id(t)] = (weakref.ref(t), t._version, num_classes)
    return t


def label_inputs(label_sets, logits: torch.Tensor, num_classes: int):
    """(label_ranges int64 [N, 2], labels int32/int64 [L]) of a LabelSets of N samples, on the
    logits' device."""
    from ..data.labels import LabelSets

    if not isinstance(label_sets, LabelSets):
        raise TypeError(f"label_sets must be a mlmetrics.LabelSets, got {_kind(label_sets)}")
    if len(label_sets) != logits.shape[0]:
        raise ValueError(f"label_sets holds {len(label_sets)} samples but logits has N={logits.shape[0]} rows")
    if label_sets.num_classes != num_classes:
        raise ValueError(f"label_sets has num_classes={label_sets.num_classes} but the logits have C={num_classes} "
                         "classes")
    if label_sets.device != logits.device:
        label_sets = label_sets.to(logits.device)
    return label_sets.ranges.contiguous(), label_sets.labels.contiguous()


# ---------------------------------------------------------------------------------------
# label sets
# ---------------------------------------------------------------------------------------
def check_num_classes(num_classes, name: str = "num_classes") -> int:
    """A class count: an int in [1, 2**31 - 1]."""
    return check_int(num_classes, name, 1, MAX_CLASSES)


def check_label_csr(offsets: torch.Tensor, labels: torch.Tensor, num_classes: int) -> None:
    """CSR label sets: offsets int64 [N + 1] from 0, non-decreasing, ending at len(labels);
    labels in [0, num_classes), strictly increasing within each set (sorted, no duplicates)."""
    off, lab = offsets.cpu(), labels.cpu().to(torch.int64)
    if off[0] != 0 or off[-1] != lab.numel() or bool((off[1:] < off[:-1]).any()):
        raise ValueError("offsets must start at 0, be non-decreasing and end at len(labels)")
    bad = ((lab < 0) | (lab >= num_classes)).nonzero()
    if bad.numel():
        j = int(bad[0, 0])
        raise ValueError(f"sample {_sample_of(off, j)}: label {int(lab[j])} outside [0, {num_classes})")
    if lab.numel() > 1:
        starts = torch.zeros(lab.numel(), dtype=torch.bool)
        starts[off[:-1][off[:-1] < lab.numel()]] = True
        bad = ((lab[1:] <= lab[:-1]) & ~starts[1:]).nonzero()
        if bad.numel():
            j = int(bad[0, 0]) + 1
            i = _sample_of(off, j)
            raise ValueError(f"sample {i}: labels must be sorted and unique within a set, got "
                             f"{lab[off[i]:off[i + 1]].tolist()} (LabelSets.from_lists sorts and dedupes)")


def label_lists(lists, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """(sizes int64 [N], flat int64 [sum sizes]) of N per-sample lists of class indices.

    A sample is a list/tuple/set/range of integers (Python or NumPy) or a 1-D integer array or
    tensor; floats, bools, strings and nested lists are refused, and every label is range
    checked against ``[0, num_classes)`` before any narrowing."""
    if isinstance(lists, (str, bytes, dict)) or not _iterable(lists):
        raise TypeError(f"label lists must be a list of per-sample lists of class indices, got {_kind(lists)}")
    lists = lists if isinstance(lists, (list, tuple)) else list(lists)
    if all(type(s) is list for s in lists):  # the common case (e.g. JSON): nothing to convert
        samples = lists
    else:
        samples = [_label_sample(i, s) for i, s in enumerate(lists)]
    sizes = np.fromiter((len(s) for s in samples), dtype=np.int64, count=len(samples))
    flat = list(itertools.chain.from_iterable(samples))
    if set(map(type, flat)) - {int}:  # slow path only for non-int entries
        for i, s in enumerate(samples):
            for v in s:
                if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)):
                    what = f"{v!r} ({_kind(v)})" if not isinstance(v, (list, tuple)) else f"a nested {_kind(v)}"
                    raise TypeError(f"sample {i}: labels must be integer class indices, got {what}")
        flat = [int(v) for v in flat]
    if flat:
        lo, hi = min(flat), max(flat)
        if lo < 0 or hi >= num_classes:
            j = next(j for j, v in enumerate(flat) if v < 0 or v >= num_classes)
            i = int(np.searchsorted(np.cumsum(sizes), j, side="right"))
            raise ValueError(f"sample {i}: label {flat[j]} outside [0, {num_classes})")
    return sizes, np.array(flat, dtype=np.int64)


# ---------------------------------------------------------------------------------------
def _label_sample(i: int, s) -> list | tuple:
    """Sample i of ``label_lists`` as a list or tuple (its entries are checked later)."""
    if isinstance(s, (torch.Tensor, np.ndarray)):
        if s.ndim != 1:
            raise ValueError(f"sample {i}: labels must be a 1-D list of class indices, got shape {tuple(s.shape)}")
        if not _integer_dtype(s.dtype):
            raise TypeError(f"sample {i}: labels must be integers, got {_kind(s)}")
        return s.tolist()
    if isinstance(s, (str, bytes, dict)) or not _iterable(s):
        raise TypeError(f"sample {i} must be a list of class indices, got {_kind(s)}")
    return s if isinstance(s, (list, tuple)) else list(s)


def _sample_of(offsets: torch.Tensor, j: int) -> int:
    """The sample whose slice of labels holds position j."""
    return int(torch.searchsorted(offsets, torch.tensor([j]), right=True)[0]) - 1


def _integer_dtype(dtype) -> bool:
    if isinstance(dtype, torch.dtype):
        return not (dtype.is_floating_point or dtype.is_complex or dtype == torch.bool)
    return np.issubdtype(dtype, np.integer)


def _iterable(x) -> bool:
    try:
        iter(x)
    except TypeError:
        return False
    return True


def _kind(value) -> str:
    """How an error message names a value's type."""
    if isinstance(value, torch.Tensor):
        return f"a {value.dtype} tensor"
    if isinstance(value, np.ndarray):
        return f"a NumPy {value.dtype} array"
    return type(value).__name__
