"""Input checks of every public entry point (one place: the ops, the functional metrics and the
stateful metrics call these). Each raises a one-line TypeError / ValueError naming the argument."""
from __future__ import annotations

import weakref

import torch

from .schema import KERNEL_DTYPES


def check_logits(logits: torch.Tensor, k: int, num_classes: int | None = None) -> None:
    if not isinstance(logits, torch.Tensor):
        raise TypeError(f"logits must be a torch.Tensor, got {type(logits).__name__}")
    if logits.dim() != 2:
        raise ValueError(f"logits must be 2-D [N, C], got shape {tuple(logits.shape)}")
    if logits.dtype not in KERNEL_DTYPES:
        raise TypeError(f"logits must be float32, float16 or bfloat16, got {logits.dtype}")
    if isinstance(k, bool) or not isinstance(k, int):
        raise TypeError(f"k must be an int, got {type(k).__name__}")
    c = logits.shape[1] if num_classes is None else num_classes
    if c < 1:
        raise ValueError("logits must have at least one class (C >= 1)")
    if not 1 <= k <= c:
        raise ValueError(f"k must be in [1, C={c}], got k={k}")


# class_subset tensors already checked against a logits width: (tensor version, C) by tensor, so
# a metric passing the same subset every batch pays the bounds check (a host sync on GPU) once.
# (Keyed by id, with a weak reference to tell a live tensor from a reused id; tensors compare
# elementwise, so they cannot be dict keys themselves.)
CHECKED_SUBSETS: dict[int, tuple[weakref.ref, int, int]] = {}
#: attribute set on a checked class_subset tensor: (C, device); what torch.compile'd code trusts
CHECKED_MARK = "_mlmetrics_checked"


def check_class_subset(class_subset, logits: torch.Tensor) -> torch.Tensor:
    if torch.compiler.is_compiling() and getattr(class_subset, CHECKED_MARK, None) == (logits.shape[1], logits.device):
        return class_subset  # checked by an eager call (a compiled graph cannot sync the host to check)
    subset = torch.as_tensor(class_subset)
    if subset.dim() != 1 or subset.numel() < 1 or subset.dtype.is_floating_point or subset.dtype == torch.bool:
        raise ValueError("class_subset must be a non-empty 1-D integer tensor of class indices")
    subset = subset.to(device=logits.device, dtype=torch.int64).contiguous()
    c = logits.shape[1]
    seen = CHECKED_SUBSETS.get(id(subset))
    if seen is not None and seen[0]() is subset and seen[1:] == (subset._version, c):
        return subset
    lo, hi = int(subset.min()), int(subset.max())  # one host sync, on a tiny tensor
    if lo < 0 or hi >= c:
        raise ValueError(f"class_subset holds {lo if lo < 0 else hi}, outside [0, C={c})")
    if len(CHECKED_SUBSETS) > 256:
        CHECKED_SUBSETS.clear()
    CHECKED_SUBSETS[id(subset)] = (weakref.ref(subset), subset._version, c)
    setattr(subset, CHECKED_MARK, (c, subset.device))
    return subset


def check_target(target: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    if not isinstance(target, torch.Tensor):
        target = torch.as_tensor(target)
    if target.dim() != 1 or target.shape[0] != logits.shape[0]:
        raise ValueError(f"target must be [N={logits.shape[0]}], got shape {tuple(target.shape)}")
    if target.dtype.is_floating_point or target.dtype == torch.bool or target.is_complex():
        raise TypeError(f"target must be an integer tensor, got {target.dtype}")
    if target.device != logits.device:
        raise ValueError(f"target is on {target.device} but logits on {logits.device}")
    return target.to(torch.int64).contiguous()


def label_inputs(label_sets, logits: torch.Tensor, num_classes: int):
    from ..data.labels import LabelSets

    if not isinstance(label_sets, LabelSets):
        raise TypeError(f"label_sets must be a mlmetrics.LabelSets, got {type(label_sets).__name__}")
    if len(label_sets) != logits.shape[0]:
        raise ValueError(f"label_sets holds {len(label_sets)} samples but logits has N={logits.shape[0]} rows")
    if label_sets.num_classes != num_classes:
        raise ValueError(f"label_sets has num_classes={label_sets.num_classes} but the logits have C={num_classes} classes")
    if label_sets.device != logits.device:
        label_sets = label_sets.to(logits.device)
    return label_sets.ranges.contiguous(), label_sets.labels.contiguous()
