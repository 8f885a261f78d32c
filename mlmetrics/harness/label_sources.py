"""``rescore --labels``: the label sets and targets of stored logits from one label source."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from ..data.labels import LabelSets
from .annotations import is_real_list, read_annotations, read_real
from .data import real_lists
from .store import LogitsSource
from .targets import read_targets_file, real_index

REAL_SIZE = 50000


@dataclass
class Labels:
    """Label sets / targets for the N samples of a logits source, and where they came from."""

    name: str
    label_sets: LabelSets | None
    targets: torch.Tensor | None
    groups: list[str] | None = None


def _names(src: LogitsSource) -> list[str]:
    return src.images if src.images is not None else [f"row{i}" for i in range(src.num_samples)]


def _real(src: LogitsSource, path: Path, c: int) -> list[list[int]]:
    if c != 1000:
        raise ValueError(f"--labels real: ReaL labels are for all 1000 ImageNet classes; {src.name} scores {c} "
                         "(a class subset or another head)")
    real = read_real(path)
    if src.images is not None:
        return real_lists(src.images, real, f"--labels real ({src.path})")
    if src.num_samples != len(real):
        raise ValueError(f"--labels real: {src.path} holds {src.num_samples} rows without image names; "
                         f"ReaL needs {len(real)} in ImageNet val order")
    return real


def _annotations(src: LogitsSource, path: str, c: int) -> Labels:
    ann = read_annotations(path)
    n = src.num_samples
    if src.images is not None:
        by = {a: i for i, a in enumerate(ann.files)}
        by_name = {Path(a).name: i for i, a in enumerate(ann.files)}
        at = [by.get(f, by_name.get(Path(f).name)) for f in src.images]
        if all(r is None for r in at):
            raise ValueError(f"--labels {path}: none of the {n} stored image names is in the file "
                             f"(e.g. {src.images[:2]})")
    else:
        if len(ann.files) != n:
            raise ValueError(f"--labels {path}: {len(ann.files)} images but {src.path} holds {n} rows and no "
                             "image names (a store from another dataset?)")
        at = list(range(n))
    sets = LabelSets.from_lists([ann.labels[r] if r is not None else [] for r in at], c)
    targets = None
    if ann.targets is not None and all(r is not None for r in at):
        targets = torch.tensor([ann.targets[r] for r in at], dtype=torch.int64)
    groups = [ann.groups[r] if r is not None else "" for r in at] if ann.groups is not None else None
    return Labels(f"annotations:{path}", sets, targets, groups)


def resolve_labels(spec: str, src: LogitsSource, num_classes: int, targets_file: str | None = None) -> Labels:
    """``spec``: ``auto`` (saved with the logits, else ReaL for ImageNet val names or 50,000
    unnamed rows, else none), ``saved``, ``real``, ``real:PATH``, ``none``, or an annotation
    file / ReaL-format list. ``num_classes``: the scored classes."""
    from ..data.labels import imagenet_real_labels_path

    c, n = num_classes, src.num_samples
    saved_t = None if src.targets is None else torch.tensor(src.targets, dtype=torch.int64)
    if spec == "auto":
        if src.labels is not None:
            spec = "saved"
        elif ((src.images is not None and all(real_index(f) is not None for f in src.images))
              or (src.images is None and n == REAL_SIZE)) and c == 1000:
            spec = "real"
        else:
            spec = "none"
    if spec == "saved":
        if src.labels is None:
            raise ValueError(f"--labels saved: {src.path} was stored without label sets")
        out = Labels(src.label_source or "saved with the logits", LabelSets.from_lists(src.labels, c), saved_t)
    elif spec == "none":
        out = Labels("none", None, saved_t)
    elif spec.startswith("real"):
        p = Path(spec[5:]) if spec.startswith("real:") else imagenet_real_labels_path()
        out = Labels(f"real:{p}", LabelSets.from_lists(_real(src, p, c), c), saved_t)
    else:
        p = Path(spec)
        if not p.is_file():
            raise FileNotFoundError(f"--labels {spec}: no such file (or use auto, saved, real, real:PATH, none)")
        if is_real_list(p):
            out = Labels(f"real:{p}", LabelSets.from_lists(_real(src, p, c), c), saved_t)
        else:
            out = _annotations(src, spec, c)
            if out.targets is None:
                out.targets = saved_t
    if targets_file:
        out.targets = torch.tensor(read_targets_file(targets_file, _names(src)), dtype=torch.int64)
    if out.targets is not None:
        if out.targets.numel() != n:
            raise ValueError(f"{src.path}: {out.targets.numel()} targets for {n} samples")
        if n and (int(out.targets.min()) < 0 or int(out.targets.max()) >= c):
            raise ValueError(f"{src.path}: targets outside [0, {c}) (max {int(out.targets.max())}); "
                             "check --class-subset")
    return out
