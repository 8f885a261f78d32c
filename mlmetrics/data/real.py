"""ImageNet ReaL labels (Beyer et al. 2020, "Are we done with ImageNet?") and timm's ``_info`` folder.

The one place that finds timm's data files and reads the ReaL JSON: a list of 50,000 lists of
ImageNet-1k class indices, entry i for ``ILSVRC2012_val_{i + 1:08d}.JPEG`` (an empty list: an
image the re-assessment excluded).
"""
from __future__ import annotations

import functools
import json
import os
import re
from pathlib import Path

#: the number of ImageNet val images (= entries of the ReaL JSON)
NUM_VAL_IMAGES = 50_000
REAL_FILE = "imagenet_real_labels.json"
_VAL_RE = re.compile(r"ILSVRC2012_val_(\d{8})", re.IGNORECASE)


def timm_info_dir() -> Path:
    """timm's ``timm/data/_info`` folder (class lists, subsets, ReaL labels); needs timm installed
    (located without importing it: importing timm takes seconds)."""
    import importlib.util

    spec = importlib.util.find_spec("timm")
    if spec is None or not spec.origin:
        raise ImportError("timm's data files are needed here: pip install 'mlmetrics[eval]' "
                          "(or pass the file's path explicitly)")
    return Path(spec.origin).parent / "data" / "_info"


def timm_info_file(name: str) -> Path:
    """``timm_info_dir() / name``, or FileNotFoundError naming it."""
    p = timm_info_dir() / name
    if not p.is_file():
        raise FileNotFoundError(f"timm does not ship {name} at {p}; pass its path explicitly")
    return p


def imagenet_real_labels_path() -> Path:
    """Path of the ReaL labels JSON that timm ships."""
    return timm_info_file(REAL_FILE)


def real_index(file_name: str | os.PathLike) -> int | None:
    """0-based ImageNet val index (= ReaL row) of a file name: ``".../ILSVRC2012_val_00000001.JPEG"``
    -> 0; None when the name holds no ``ILSVRC2012_val_XXXXXXXX``."""
    m = _VAL_RE.search(os.path.basename(os.fspath(file_name)))
    return int(m.group(1)) - 1 if m else None


@functools.lru_cache(maxsize=4)
def _read(path: str, mtime_ns: int) -> tuple[tuple[int, ...], ...]:
    from ..ops import checks

    try:
        with open(path) as f:
            obj = json.load(f)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"{path}: cannot read ReaL labels ({e})") from None
    if not isinstance(obj, list):
        raise ValueError(f"{path}: ReaL labels must be a JSON list of per-image label lists, "
                         f"got a JSON {type(obj).__name__}")
    try:
        checks.label_lists(obj, 1000)  # integer class indices in [0, 1000), one list per image
    except (TypeError, ValueError) as e:
        raise ValueError(f"{path}: {e}") from None
    return tuple(tuple(s) for s in obj)


def load_real_lists(path: str | os.PathLike | None = None) -> list[list[int]]:
    """The ReaL JSON as a list of per-image lists of class indices (timm's copy unless ``path``),
    checked (a ``ValueError`` naming the file and the sample); cached per file."""
    p = Path(path) if path is not None else imagenet_real_labels_path()
    return [list(s) for s in _read(str(p.resolve()), p.stat().st_mtime_ns)]


def real_rows(files, num_rows: int = NUM_VAL_IMAGES) -> list[int]:
    """ReaL row of each file name (see :func:`real_index`); ValueError naming the files that are not
    ImageNet val files (or whose number is past ``num_rows``)."""
    idx = [real_index(f) for f in files]
    bad = [str(f) for f, i in zip(files, idx) if i is None or i >= num_rows]
    if bad:
        raise ValueError(f"ReaL labels need ImageNet val file names (ILSVRC2012_val_XXXXXXXX.JPEG); "
                         f"{len(bad)} files do not match, e.g. {bad[:3]}")
    return idx


@functools.lru_cache(maxsize=4)
def _all_sets(path: str, mtime_ns: int):
    from .labels import LabelSets

    return LabelSets.from_lists(list(_read(path, mtime_ns)), 1000)


def all_real_label_sets(path: str | os.PathLike | None = None):
    """The :class:`~mlmetrics.LabelSets` of every ReaL image in val-file order (cached per file:
    treat it as read-only)."""
    p = Path(path) if path is not None else imagenet_real_labels_path()
    return _all_sets(str(p.resolve()), p.stat().st_mtime_ns)


def real_label_sets(files=None, path: str | os.PathLike | None = None):
    """A :class:`~mlmetrics.LabelSets` of the ReaL sets: all 50,000 in val-file order, or those of
    ``files`` (file names, in that order: e.g. a dataset's list of images)."""
    from .labels import LabelSets

    if files is None:
        sets = all_real_label_sets(path)
        return LabelSets(sets.offsets, sets.labels, sets.num_classes, validate=False)
    lists = load_real_lists(path)
    return LabelSets.from_lists([lists[i] for i in real_rows(files, len(lists))], 1000)
