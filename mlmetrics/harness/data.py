"""Evaluation datasets: ImageNet val (flat or class folders, ReaL labels by file name),
ImageNetV2 (``<class index>/<image>``), any ImageFolder, and multi-label annotation files.

Every dataset is a list of image files (relative to ``root``) with optional single-label
targets and optional label sets. Files that cannot be read or decoded come back as
failures (never an exception) and the engine reports and skips them.
"""
from __future__ import annotations

import csv
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import torch

from ..data.labels import LabelSets
from ..data.real import imagenet_real_labels_path, load_real_lists, real_index, real_rows

IMG_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".gif", ".ppm", ".pgm")
_SYNSET_RE = re.compile(r"^n\d{8}$")
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

    def describe(self) -> dict:
        d = {"root": str(self.root), "layout": self.layout, "num_images": len(self.files),
             "labels": self.label_source, "has_targets": self.targets is not None}
        if self.label_sets is not None:
            sizes = self.label_sets.sizes()
            d["label_sets"] = {"num_nonempty": int((sizes > 0).sum()), "mean_size": float(sizes.float().mean()) if len(sizes) else 0.0}
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
# Annotation files
# ---------------------------------------------------------------------------------------
@dataclass
class Annotations:
    files: list[str]
    labels: list[list[int]]
    targets: list[int] | None
    groups: list[str] | None
    meta: dict


def _ids(v) -> list[int]:
    if v is None or v == "":
        return []
    if isinstance(v, (int, float)):
        return [int(v)]
    if isinstance(v, str):
        return [int(t) for t in re.split(r"[\s,;|]+", v.strip()) if t]
    return [int(t) for t in v]


def read_annotations(path: str | os.PathLike) -> Annotations:
    """A multi-label annotation file: image -> list of class ids.

    JSON: ``{"coffee.png": [967, 968]}``; or ``{"coffee.png": {"labels": [...], "target": 967,
    "group": "..."}}``; or a list of ``{"image": ..., "labels": [...], "target": ...}``
    (also under an ``"images"`` key, with other top-level keys kept as metadata); OpenMMLab's
    ``{"data_list": [{"img_path": ..., "gt_label": [...]}]}`` too.
    CSV with a header: an ``image`` (or ``file``/``filename``/``path``) column, a ``labels``
    column (ids separated by spaces, ``;`` or ``|``), optional ``target`` and ``group``.
    """
    path = Path(path)
    rows: list[dict] = []
    meta: dict = {}
    if path.suffix.lower() == ".csv":
        with open(path, newline="") as f:
            reader = csv.DictReader(f)
            fields = {c.lower().strip(): c for c in (reader.fieldnames or [])}
            img_col = next((fields[c] for c in ("image", "file", "filename", "path", "image_id") if c in fields), None)
            lab_col = next((fields[c] for c in ("labels", "label", "classes", "class_ids") if c in fields), None)
            if img_col is None or lab_col is None:
                raise ValueError(f"{path}: CSV needs an 'image' and a 'labels' column, got {reader.fieldnames}")
            for r in reader:
                rows.append({"image": r[img_col], "labels": r[lab_col],
                             "target": r.get(fields.get("target", ""), None) if "target" in fields else None,
                             "group": r.get(fields.get("group", ""), None) if "group" in fields else None})
    else:
        with open(path) as f:
            obj = json.load(f)
        for key in ("images", "data_list", "annotations"):  # data_list: OpenMMLab's multi-label format
            if isinstance(obj, dict) and isinstance(obj.get(key), (list, dict)):
                meta = {k: v for k, v in obj.items() if k != key}
                obj = obj[key]
                break
        if isinstance(obj, dict):
            for k, v in obj.items():
                if isinstance(v, dict):
                    rows.append({"image": k, **v})
                else:
                    rows.append({"image": k, "labels": v})
        elif isinstance(obj, list) and all(isinstance(r, dict) for r in obj):
            rows = [dict(r) for r in obj]
            for r in rows:
                for k in ("file", "filename", "file_name", "path", "img_path", "img"):
                    if "image" not in r and r.get(k) is not None:
                        r["image"] = r[k]
                for k in ("gt_label", "label", "classes", "class_ids"):
                    if "labels" not in r and r.get(k) is not None:
                        r["labels"] = r[k]
                if r.get("image") is None:
                    raise ValueError(f"{path}: an entry has no image name: {str(r)[:120]}")
        else:
            raise ValueError(f"{path}: not an annotation file (image -> list of class ids)")
    files = [str(r["image"]) for r in rows]
    labels = [_ids(r.get("labels")) for r in rows]
    raw_t = [r.get("target") for r in rows]
    has_t = [t not in (None, "") for t in raw_t]
    if any(has_t) and not all(has_t):
        raise ValueError(f"{path}: 'target' given for {sum(has_t)} of {len(rows)} images; give it for all or none")
    targets = [int(t) for t in raw_t] if rows and all(has_t) else None
    groups = [str(r.get("group") or "") for r in rows]
    return Annotations(files, labels, targets, groups if any(groups) else None, meta)


def _is_real_list(path: Path) -> bool:
    if path.suffix.lower() != ".json":
        return False
    with open(path) as f:
        head = f.read(64).lstrip()
    return head.startswith("[") and (head[1:].lstrip().startswith("[") or head[1:].lstrip().startswith("]"))


# ---------------------------------------------------------------------------------------
# Building a dataset
# ---------------------------------------------------------------------------------------
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


def _imagenet_synsets() -> list[str]:
    from timm.data import ImageNetInfo

    info = ImageNetInfo("imagenet-1k")
    return [info.index_to_label_name(i) for i in range(info.num_classes())]


def _read_targets_file(path: Path, files: Sequence[str]) -> list[int]:
    """Single-label targets: one int (or synset) per line in file order, or a
    ``LOC_val_solution.csv`` (ImageId,PredictionString)."""
    syn = None
    if path.suffix.lower() == ".csv":
        by_name = {}
        with open(path, newline="") as f:
            for r in csv.reader(f):
                if len(r) >= 2 and r[0] != "ImageId":
                    by_name[r[0]] = r[1].split()[0]
        syn = {s: i for i, s in enumerate(_imagenet_synsets())}
        return [syn[by_name[Path(f).stem]] for f in files]
    lines = [ln.strip() for ln in open(path) if ln.strip()]
    if lines and _SYNSET_RE.match(lines[0]):
        syn = {s: i for i, s in enumerate(_imagenet_synsets())}
        vals = [syn[s] for s in lines]
    else:
        vals = [int(s) for s in lines]
    idx = [real_index(f) for f in files]
    if all(i is not None for i in idx) and len(vals) >= max(idx) + 1:
        return [vals[i] for i in idx]  # ImageNet val files: the line of their number
    if len(vals) != len(files):
        raise ValueError(f"{path}: {len(vals)} targets for {len(files)} images")
    return vals


def build_dataset(data: str | os.PathLike | None, *, labels: str | None = "auto", layout: str = "auto",
                  num_classes: int = 1000, transform: Callable | None = None, limit: int | None = None,
                  targets_file: str | None = None, class_subset: torch.Tensor | None = None) -> EvalDataset:
    """Find the images and their labels.

    ``labels``: ``"auto"`` (ReaL when the files are ImageNet val files, else none),
    ``"real"`` or ``"real:PATH"`` (ReaL sets by val file number), ``"none"``, or the path
    of an annotation file (JSON/CSV, see :func:`read_annotations`; a ReaL-format JSON list
    of 50,000 lists also works). ``layout``: one of :data:`LAYOUTS`. ``num_classes``: the
    scored classes (``len(class_subset)`` with a subset: ImageNet synset folders then map to
    positions in ``class_subset``, e.g. ImageNet-R / ImageNet-A).
    """
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
    labels = labels or "auto"
    real_path = None
    ann = None
    if labels.startswith("real"):
        real_path = Path(labels[5:]) if labels.startswith("real:") else imagenet_real_labels_path()
    elif labels not in ("auto", "none"):
        p = Path(labels)
        if not p.is_file():
            raise FileNotFoundError(f"--labels: no such file {p} (or use real / none / auto)")
        if _is_real_list(p):
            real_path = p
        else:
            ann = read_annotations(p)
            if layout == "auto":
                layout = "annotations"
    notes: list[str] = []

    if ann is not None and layout == "annotations":
        root = Path(data) if data else Path(labels).parent
        files, lists, tg, groups = ann.files, ann.labels, ann.targets, ann.groups
        class_names = None
        label_source = f"annotations:{labels}"
        heads = [Path(f).parts[0] if len(Path(f).parts) > 1 else "" for f in files]
        if tg is None and files and all(h.isdigit() for h in heads):  # ImageNetV2 paths: <class index>/<image>
            tg = [int(h) for h in heads]
            notes.append("single-label targets from the <class index>/ folder of each annotated path (ImageNetV2)")
    else:
        if data is None:
            raise ValueError("--data is required")
        root = Path(data)
        if not root.is_dir():
            raise FileNotFoundError(f"--data: not a directory: {root}")
        top, dirs = _scan(root)
        if layout == "auto":
            if top and any(real_index(f) is not None for f in top):
                layout = "imagenet-val"
            elif dirs and all(d.isdigit() for d in dirs):
                layout = "imagenetv2"
            elif dirs:
                layout = "imagefolder"
            else:
                layout = "flat"
        tg, class_names, groups, lists = None, None, None, None
        if layout in ("imagenet-val", "flat") and top:
            files = top
        elif layout == "imagenetv2":
            pairs = _folder_files(root, [d for d in dirs if d.isdigit()])
            files = [f for f, _ in pairs]
            tg = [int(d) for _, d in pairs]
        else:  # imagefolder, or imagenet-val with class sub-folders
            pairs = _folder_files(root, dirs)
            files = [f for f, _ in pairs]
            if dirs and all(_SYNSET_RE.match(d) for d in dirs) and (num_classes == 1000 or class_subset is not None):
                syn = {s: i for i, s in enumerate(_imagenet_synsets())}
                if class_subset is not None:
                    pos = {int(c): j for j, c in enumerate(class_subset.tolist())}
                    outside = [d for d in dirs if syn.get(d) not in pos]
                    if outside:
                        raise ValueError(f"{len(outside)} class folders are not in the class subset, e.g. {outside[:3]}")
                    syn = {d: pos[syn[d]] for d in dirs}
                if all(d in syn for d in dirs):
                    tg = [syn[d] for _, d in pairs]
                    class_names = None
                    notes.append("class folders are ImageNet synsets: targets in timm's ImageNet-1k order"
                                 + (" (positions in the class subset)" if class_subset is not None else ""))
            if tg is None:
                class_names = list(dirs)
                pos = {d: i for i, d in enumerate(dirs)}
                tg = [pos[d] for _, d in pairs]
                if len(dirs) != num_classes:
                    notes.append(f"{len(dirs)} class folders but the model has {num_classes} classes")
        label_source = "none"
        if ann is not None:  # annotation file over a scanned folder: match by path, then by name
            by = {a: (l, t) for a, l, t in zip(ann.files, ann.labels, ann.targets or [None] * len(ann.files))}
            by_name = {Path(a).name: v for a, v in by.items()}
            lists = []
            for f in files:
                v = by.get(f) or by_name.get(Path(f).name)
                lists.append(v[0] if v else [])
            label_source = f"annotations:{labels}"
        if targets_file:
            tg = _read_targets_file(Path(targets_file), files)
        if layout == "imagenet-val" and files and not any(real_index(f) is not None for f in files):
            raise ValueError(f"{root}: layout imagenet-val but no ILSVRC2012_val_XXXXXXXX files found")

    if not files:
        raise ValueError(f"no images found in {root} (extensions: {', '.join(IMG_EXTENSIONS)})")
    if labels == "auto" and real_path is None and ann is None and any(real_index(f) is not None for f in files):
        real_path = imagenet_real_labels_path()
    if real_path is not None and class_subset is not None:
        if labels == "auto":
            real_path = None
        else:
            raise ValueError("ReaL labels are for all 1000 ImageNet classes; they do not combine with a class subset")
    if real_path is not None:
        real = load_real_lists(real_path)
        lists = [real[i] for i in real_rows(files, len(real))]
        label_source = f"real:{real_path}"
        num_label_classes = 1000
    else:
        num_label_classes = num_classes

    if limit is not None:
        files = files[:limit]
        lists = lists[:limit] if lists is not None else None
        tg = tg[:limit] if tg is not None else None
        groups = groups[:limit] if groups is not None else None
    label_sets = LabelSets.from_lists(lists, num_label_classes) if lists is not None else None
    if label_sets is not None and num_label_classes != num_classes:
        raise ValueError(f"label sets are for {num_label_classes} classes but the model has {num_classes}")
    targets = torch.tensor(tg, dtype=torch.int64) if tg is not None else None
    if targets is not None and len(targets) and (int(targets.min()) < 0 or int(targets.max()) >= num_classes):
        raise ValueError(f"targets outside [0, {num_classes}) (max {int(targets.max())}); check --model / --num-classes")
    return EvalDataset(root=root, files=list(files), targets=targets, label_sets=label_sets, groups=groups,
                       layout=layout, label_source=label_source, class_names=class_names,
                       transform=transform, notes=notes)


def detect_class_subset(data: str | os.PathLike | None) -> str | None:
    """``"imagenet_a"`` / ``"imagenet_r"`` when ``data``'s class folders are exactly that
    data set's 200 ImageNet synsets, else None."""
    if data is None or not Path(data).is_dir():
        return None
    _, dirs = _scan(Path(data))
    if len(dirs) < 2 or not all(_SYNSET_RE.match(d) for d in dirs):
        return None
    from ..data.real import timm_info_dir
    from ..data.subsets import TIMM_SUBSETS

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
    return load_class_subset("file", path=spec), str(spec)
