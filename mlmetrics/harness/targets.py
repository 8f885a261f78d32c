"""Single-label targets: ImageNet synsets, ``--targets`` files, ImageNet val file numbers."""
from __future__ import annotations

import csv
import os
import re
from functools import lru_cache
from pathlib import Path
from typing import Sequence

_VAL_RE = re.compile(r"ILSVRC2012_val_(\d{8})", re.IGNORECASE)
SYNSET_RE = re.compile(r"^n\d{8}$")


def real_index(file_name: str) -> int | None:
    """0-based ImageNet val index of ``ILSVRC2012_val_00000001.JPEG`` (-> 0), else None."""
    m = _VAL_RE.search(os.path.basename(file_name))
    return int(m.group(1)) - 1 if m else None


@lru_cache(maxsize=1)
def imagenet_synsets() -> dict[str, int]:
    """ImageNet-1k synset -> class index, in timm's order."""
    from .deps import require

    info = require("timm.data").ImageNetInfo("imagenet-1k")
    return {info.index_to_label_name(i): i for i in range(info.num_classes())}


def synset_index(synset: str, where: str) -> int:
    syn = imagenet_synsets()
    if synset not in syn:
        raise ValueError(f"{where}: {synset!r} is not an ImageNet-1k synset (like n01440764)")
    return syn[synset]


def _loc_csv(path: Path, files: Sequence[str]) -> list[int]:
    """``LOC_val_solution.csv`` (ImageId,PredictionString): the first synset of each image."""
    by_name = {}
    with open(path, newline="") as f:
        for r in csv.reader(f):
            if len(r) >= 2 and r[0] != "ImageId" and r[1].split():
                by_name[r[0]] = r[1].split()[0]
    missing = [f for f in files if Path(f).stem not in by_name]
    if missing:
        raise ValueError(f"--targets {path}: {len(missing)} of {len(files)} images are not in the file, "
                         f"e.g. {missing[:3]}")
    return [synset_index(by_name[Path(f).stem], f"--targets {path}") for f in files]


def read_targets_file(path: str | os.PathLike, files: Sequence[str]) -> list[int]:
    """Single-label targets for ``files``: one int (or synset) per line in file order
    (ImageNet val files take the line of their number), or a ``LOC_val_solution.csv``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"--targets {path}: no such file")
    if path.suffix.lower() == ".csv":
        return _loc_csv(path, files)
    lines = [ln.strip() for ln in open(path) if ln.strip()]
    if lines and SYNSET_RE.match(lines[0]):
        vals = [synset_index(s, f"--targets {path} line {i + 1}") for i, s in enumerate(lines)]
    else:
        bad = next((i for i, s in enumerate(lines) if not s.isdigit()), None)
        if bad is not None:
            raise ValueError(f"--targets {path} line {bad + 1}: {lines[bad]!r} is neither a class index nor a synset")
        vals = [int(s) for s in lines]
    idx = [real_index(f) for f in files]
    if files and all(i is not None for i in idx) and len(vals) >= max(idx) + 1:
        return [vals[i] for i in idx]
    if len(vals) != len(files):
        raise ValueError(f"--targets {path}: {len(vals)} targets for {len(files)} images")
    return vals
