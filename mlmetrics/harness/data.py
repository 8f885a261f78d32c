"""Evaluation datasets: ImageNet val (flat or class folders, ReaL labels by file name),
ImageNetV2 (``<class index>/<image>``), any ImageFolder, and multi-label annotation files.

Every dataset is a list of image files (relative to ``root``) with optional single-label
targets and optional label sets. Files that cannot be read or decoded come back as
failures (never an exception) and the engine reports and skips them.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import torch

from ..data.labels import LabelSets
from .annotations import Annotations, is_real_list, read_annotations, read_real
from .targets import SYNSET_RE, imagenet_synsets, read_targets_file, real_index

IMG_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".gif", ".ppm", ".pgm")
LAYOUTS = ("auto", "imagenet-val", "imagenetv2", "imagefolder", "annotations", "flat")


def _is_image(name: str) -> bool:
    return name.lower().endswith(IMG_EXTENSIONS)


@dataclass
class EvalDataset(torch.utils.data.Dataset):
    """Images under ``root`` (``files`` relative to it) with optional ``targets`` [N] int64
    and ``label_sets`` (a :class:`LabelSets` of N samples)."""

    root: Path
    files: list[str]
    targets: torch.Tensor | None = None
    label_sets: LabelSets | None = None
    groups: list[str] | None = None
    layout: str = "flat"
    label_source: str = "none"
    class_names: list[str] | None = None  # folder names of an ImageFolder (index order)
    transform: Callable | None = None
    notes: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int):
        path = self.root / self.files[i]
        try:
            from PIL import Image

            with Image.open(path) as im:
                im = im.convert("RGB")
            x = self.transform(im) if self.transform is not None else im
            return x, i, None
        except Exception as e:  # unreadable, truncated, not an image, transform failure
            return None, i, f"{type(e).__name__}: {e}"

    def with_transform(self, transform: Callable | None) -> "EvalDataset":
        """The same images and labels, decoded with another transform."""
        from dataclasses import replace

        return replace(self, transform=transform)

    def describe(self) -> dict:
        d = {"root": str(self.root), "layout": self.layout, "num_images": len(self.files),
             "labels": self.label_source, "has_targets": self.targets is not None}
        if self.label_sets is not None:
            sizes = self.label_sets.sizes()
            d["label_sets"] = {"num_nonempty": int((sizes > 0).sum()),
                               "mean_size": float(sizes.float().mean()) if len(sizes) else 0.0}
        if self.notes:
            d["notes"] = list(self.notes)
        return d


def collate_skip(batch):
    """Stack the decodable images of a batch; report the others.

    Returns a dict: ``images`` [B', ...] (None when none decoded), ``index`` int64 [B'],
    ``failed`` list of (dataset index, error).
    """
    ok = [(x, i) for x, i, err in batch if err is None]
    failed = [(i, err) for x, i, err in batch if err is not None]
    images = torch.stack([x for x, _ in ok]) if ok else None
    index = torch.tensor([i for _, i in ok], dtype=torch.int64)
    return {"images": images, "index": index, "failed": failed}


# ---------------------------------------------------------------------------------------
# Finding the images
# ---------------------------------------------------------------------------------------
@dataclass
class _Parts:
    """What a layout found: files, and per file optional targets / label lists / groups."""

    root: Path
    layout: str
    files: list[str]
    targets: list[int] | None = None
    lists: list[list[int]] | None = None
    groups: list[str] | None = None
    class_names: list[str] | None = None
    label_source: str = "none"
    notes: list[str] = field(default_factory=list)


def _scan(root: Path) -> tuple[list[str], list[str]]:
    files, dirs = [], []
    for e in sorted(os.scandir(root), key=lambda e: e.name):
        if e.name.startswith("."):
            continue
        if e.is_dir():
            dirs.append(e.name)
        elif e.is_file() and _is_image(e.name):
            files.append(e.name)
    return files, dirs


def _folder_files(root: Path, dirs: Sequence[str]) -> list[tuple[str, str]]:
    out = []
    for d in dirs:
        for dirpath, dirnames, names in os.walk(root / d):
            dirnames.sort()
            rel = Path(dirpath).relative_to(root)
            out.extend((str(rel / n), d) for n in sorted(names) if _is_image(n) and not n.startswith("."))
    return out


def _detect_layout(top: list[str], dirs: list[str]) -> str:
    if top and any(real_index(f) is not None for f in top):
        return "imagenet-val"
    if dirs and all(d.isdigit() for d in dirs):
        return "imagenetv2"
    return "imagefolder" if dirs else "flat"


def _from_annotations(ann: Annotations, data, labels: str) -> _Parts:
    """Images listed by an annotation file (relative to ``data``, else to the file's folder)."""
    parts = _Parts(Path(data) if data else Path(labels).parent, "annotations", list(ann.files),
                   ann.targets, ann.labels, ann.groups, label_source=f"annotations:{labels}")
    heads = [Path(f).parts[0] if len(Path(f).parts) > 1 else "" for f in parts.files]
    if parts.targets is None and parts.files and all(h.isdigit() for h in heads):
        parts.targets = [int(h) for h in heads]  # ImageNetV2 paths: <class index>/<image>
        parts.notes.append("single-label targets from the <class index>/ folder of each annotated path (ImageNetV2)")
    return parts


def _synset_targets(parts: _Parts, pairs, dirs, class_subset) -> bool:
    """Targets of ImageNet synset class folders (positions in ``class_subset`` with one)."""
    syn = imagenet_synsets()
    if not all(d in syn for d in dirs):
        return False
    if class_subset is not None:
        pos = {int(c): j for j, c in enumerate(class_subset.tolist())}
        outside = [d for d in dirs if syn[d] not in pos]
        if outside:
            raise ValueError(f"{len(outside)} class folders are not in the class subset, e.g. {outside[:3]}")
        syn = {d: pos[syn[d]] for d in dirs}
    parts.targets = [syn[d] for _, d in pairs]
    parts.notes.append("class folders are ImageNet synsets: targets in timm's ImageNet-1k order"
                       + (" (positions in the class subset)" if class_subset is not None else ""))
    return True


def _from_folder(data, layout: str, num_classes: int, class_subset) -> _Parts:
    if data is None:
        raise ValueError("--data is required")
    root = Path(data)
    if not root.is_dir():
        raise FileNotFoundError(f"--data {root}: not a directory")
    top, dirs = _scan(root)
    layout = _detect_layout(top, dirs) if layout == "auto" else layout
    if layout in ("imagenet-val", "flat") and top:
        parts = _Parts(root, layout, top)
    elif layout == "imagenetv2":
        pairs = _folder_files(root, [d for d in dirs if d.isdigit()])
        parts = _Parts(root, layout, [f for f, _ in pairs], [int(d) for _, d in pairs])
    else:  # imagefolder, or imagenet-val with class sub-folders
        pairs = _folder_files(root, dirs)
        parts = _Parts(root, layout, [f for f, _ in pairs])
        synsets = dirs and all(SYNSET_RE.match(d) for d in dirs) and (num_classes == 1000 or class_subset is not None)
        if not (synsets and _synset_targets(parts, pairs, dirs, class_subset)):
            parts.class_names = list(dirs)
            pos = {d: i for i, d in enumerate(dirs)}
            parts.targets = [pos[d] for _, d in pairs]
            if len(dirs) != num_classes:
                parts.notes.append(f"{len(dirs)} class folders but the model has {num_classes} classes")
    if layout == "imagenet-val" and parts.files and not any(real_index(f) is not None for f in parts.files):
        raise ValueError(f"{root}: layout imagenet-val but no ILSVRC2012_val_XXXXXXXX files found")
    return parts


def _match_annotations(parts: _Parts, ann: Annotations, labels: str) -> None:
    """Label sets of a scanned folder from an annotation file: matched by path, then by name."""
    by = dict(zip(ann.files, ann.labels))
    by_name = {Path(a).name: v for a, v in by.items()}
    parts.lists = [by.get(f, by_name.get(Path(f).name, [])) for f in parts.files]
    parts.label_source = f"annotations:{labels}"


def real_lists(files: Sequence[str], real: list[list[int]], where: str) -> list[list[int]]:
    """The ReaL label list of each ImageNet val file, by its number."""
    idx = [real_index(f) for f in files]
    bad = [f for f, i in zip(files, idx) if i is None]
    if bad:
        raise ValueError(f"{where}: ReaL labels need ImageNet val file names (ILSVRC2012_val_XXXXXXXX.JPEG); "
                         f"{len(bad)} of {len(files)} files are not, e.g. {bad[:3]}")
    beyond = [f for f, i in zip(files, idx) if i >= len(real)]
    if beyond:
        raise ValueError(f"{where}: the ReaL file holds {len(real)} entries, but {beyond[0]} is image "
                         f"{real_index(beyond[0]) + 1}")
    return [real[i] for i in idx]


def _label_spec(labels: str) -> tuple[Path | None, Annotations | None]:
    """``--labels`` -> (ReaL file, annotation file); both None for ``auto`` / ``none``."""
    if labels.startswith("real"):
        from ..data.labels import imagenet_real_labels_path

        return (Path(labels[5:]) if labels.startswith("real:") else imagenet_real_labels_path()), None
    if labels in ("auto", "none"):
        return None, None
    p = Path(labels)
    if not p.is_file():
        raise FileNotFoundError(f"--labels {p}: no such file (or use real / none / auto)")
    return (p, None) if is_real_list(p) else (None, read_annotations(p))


def build_dataset(data: str | os.PathLike | None, *, labels: str | None = "auto", layout: str = "auto",
                  num_classes: int = 1000, transform: Callable | None = None, limit: int | None = None,
                  targets_file: str | None = None, class_subset: torch.Tensor | None = None) -> EvalDataset:
    """Find the images and their labels.

    ``labels``: ``"auto"`` (ReaL when the files are ImageNet val files, else none),
    ``"real"`` or ``"real:PATH"`` (ReaL sets by val file number), ``"none"``, or the path
    of an annotation file (JSON/CSV, see :func:`read_annotations`; a ReaL-format JSON list
    of 50,000 lists also works). ``layout``: one of :data:`LAYOUTS`. ``num_classes``: the
    scored classes (``len(class_subset)`` with a subset: ImageNet synset folders then map to
    positions in ``class_subset``, e.g. ImageNet-R / ImageNet-A). ``limit``: the first N images.
    """
    if layout not in LAYOUTS:
        raise ValueError(f"--layout must be one of {LAYOUTS}, got {layout!r}")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise ValueError(f"--limit must be a positive number of images, got {limit!r}")
    labels = labels or "auto"
    real_path, ann = _label_spec(labels)
    if ann is not None and layout in ("auto", "annotations"):
        parts = _from_annotations(ann, data, labels)
    else:
        parts = _from_folder(data, layout, num_classes, class_subset)
        if ann is not None:
            _match_annotations(parts, ann, labels)
        if targets_file:
            parts.targets = read_targets_file(targets_file, parts.files)
    if not parts.files:
        raise ValueError(f"no images found in {parts.root} (extensions: {', '.join(IMG_EXTENSIONS)})")
    if labels == "auto" and ann is None and any(real_index(f) is not None for f in parts.files):
        from ..data.labels import imagenet_real_labels_path

        real_path = None if class_subset is not None else imagenet_real_labels_path()
    if real_path is not None:
        if class_subset is not None:
            raise ValueError("--labels real: ReaL labels are for all 1000 ImageNet classes; "
                             "they do not combine with a class subset")
        if num_classes != 1000:
            raise ValueError(f"--labels real: ReaL labels are for 1000 classes but the model has {num_classes}")
        parts.lists = real_lists(parts.files, read_real(real_path), f"--labels {real_path}")
        parts.label_source = f"real:{real_path}"
    return _finish(parts, limit, num_classes, transform)


def _finish(parts: _Parts, limit: int | None, num_classes: int, transform) -> EvalDataset:
    def cut(v):
        return v[:limit] if v is not None and limit is not None else v

    lists, tg = cut(parts.lists), cut(parts.targets)
    label_sets = LabelSets.from_lists(lists, num_classes) if lists is not None else None
    targets = torch.tensor(tg, dtype=torch.int64) if tg is not None else None
    if targets is not None and len(targets) and (int(targets.min()) < 0 or int(targets.max()) >= num_classes):
        raise ValueError(f"targets outside [0, {num_classes}) (max {int(targets.max())}); check --model / --num-classes")
    return EvalDataset(root=parts.root, files=list(cut(parts.files)), targets=targets, label_sets=label_sets,
                       groups=cut(parts.groups), layout=parts.layout, label_source=parts.label_source,
                       class_names=parts.class_names, transform=transform, notes=parts.notes)


def detect_class_subset(data: str | os.PathLike | None) -> str | None:
    """``"imagenet_a"`` / ``"imagenet_r"`` when ``data``'s class folders are exactly that
    data set's 200 ImageNet synsets, else None."""
    if data is None or not Path(data).is_dir():
        return None
    _, dirs = _scan(Path(data))
    if len(dirs) < 2 or not all(SYNSET_RE.match(d) for d in dirs):
        return None
    from ..data.subsets import TIMM_SUBSETS, timm_info_dir

    for name in TIMM_SUBSETS:
        f = timm_info_dir() / f"{name}_synsets.txt"
        if f.is_file() and set(dirs) == {ln.strip() for ln in open(f) if ln.strip()}:
            return name
    return None


def resolve_class_subset(spec: str | None, data=None) -> tuple[torch.Tensor | None, str | None]:
    """``--class-subset``: ``auto`` (ImageNet-A/R folders), ``none``, ``imagenet_a``,
    ``imagenet_r``, or a file of ImageNet-1k class indices (one per line)."""
    if spec in (None, "", "none"):
        return None, None
    if spec == "auto":
        spec = detect_class_subset(data)
        if spec is None:
            return None, None
    from ..data.subsets import TIMM_SUBSETS, load_class_subset

    if spec in TIMM_SUBSETS:
        return load_class_subset(spec), spec
    if not Path(spec).is_file():
        raise FileNotFoundError(f"--class-subset {spec}: neither {', '.join(TIMM_SUBSETS)} nor a file")
    return load_class_subset("file", path=spec), str(spec)
