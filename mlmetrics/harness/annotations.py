"""Multi-label annotation files: image -> list of class ids (JSON or CSV)."""
from __future__ import annotations

import csv
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

_IMAGE_KEYS = ("file", "filename", "file_name", "path", "img_path", "img")
_LABEL_KEYS = ("gt_label", "label", "classes", "class_ids")


@dataclass
class Annotations:
    files: list[str]
    labels: list[list[int]]
    targets: list[int] | None
    groups: list[str] | None
    meta: dict


def _class_id(v, path: Path, image: str) -> int:
    if isinstance(v, bool) or not (isinstance(v, int) or (isinstance(v, str) and re.fullmatch(r"\d+", v))):
        raise ValueError(f"{path}: {image!r}: class ids must be non-negative integers, got {v!r}")
    return int(v)


def class_ids(v, path: Path, image: str) -> list[int]:
    """One annotation's labels (an int, a list of ints, or ids in a string separated by
    spaces, ``,``, ``;`` or ``|``) as a list of ints; anything else is a ValueError naming the file."""
    if v is None or v == "":
        return []
    if isinstance(v, str):
        return [_class_id(t, path, image) for t in re.split(r"[\s,;|]+", v.strip()) if t]
    if isinstance(v, (list, tuple)):
        return [_class_id(t, path, image) for t in v]
    return [_class_id(v, path, image)]


def read_json(path: Path):
    """``json.load`` with the file name in the error."""
    try:
        with open(path) as f:
            return json.load(f)
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not valid JSON ({e})") from None
    except UnicodeDecodeError:
        raise ValueError(f"{path}: not a text (JSON) file") from None


def _csv_rows(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        fields = {c.lower().strip(): c for c in (reader.fieldnames or [])}
        img_col = next((fields[c] for c in ("image", "file", "filename", "path", "image_id") if c in fields), None)
        lab_col = next((fields[c] for c in ("labels", "label", "classes", "class_ids") if c in fields), None)
        if img_col is None or lab_col is None:
            raise ValueError(f"{path}: CSV needs an 'image' and a 'labels' column, got {reader.fieldnames}")
        t_col, g_col = fields.get("target"), fields.get("group")
        return [{"image": r[img_col], "labels": r[lab_col], "target": r.get(t_col) if t_col else None,
                 "group": r.get(g_col) if g_col else None} for r in reader]


def _json_rows(path: Path) -> tuple[list[dict], dict]:
    obj, meta = read_json(path), {}
    for key in ("images", "data_list", "annotations"):  # data_list: OpenMMLab's multi-label format
        if isinstance(obj, dict) and isinstance(obj.get(key), (list, dict)):
            meta = {k: v for k, v in obj.items() if k != key}
            obj = obj[key]
            break
    if isinstance(obj, dict):
        return [{"image": k, **v} if isinstance(v, dict) else {"image": k, "labels": v} for k, v in obj.items()], meta
    if not (isinstance(obj, list) and all(isinstance(r, dict) for r in obj)):
        raise ValueError(f"{path}: not an annotation file (image -> list of class ids)")
    rows = [dict(r) for r in obj]
    for r in rows:
        r.setdefault("image", next((r[k] for k in _IMAGE_KEYS if r.get(k) is not None), None))
        r.setdefault("labels", next((r[k] for k in _LABEL_KEYS if r.get(k) is not None), None))
        if r["image"] is None:
            raise ValueError(f"{path}: an entry has no image name: {str(r)[:120]}")
    return rows, meta


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
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such annotation file")
    rows, meta = (_csv_rows(path), {}) if path.suffix.lower() == ".csv" else _json_rows(path)
    files = [str(r["image"]) for r in rows]
    labels = [class_ids(r.get("labels"), path, f) for r, f in zip(rows, files)]
    raw_t = [r.get("target") for r in rows]
    has_t = [t not in (None, "") for t in raw_t]
    if any(has_t) and not all(has_t):
        raise ValueError(f"{path}: 'target' given for {sum(has_t)} of {len(rows)} images; give it for all or none")
    targets = [_class_id(t, path, f) for t, f in zip(raw_t, files)] if rows and all(has_t) else None
    groups = [str(r.get("group") or "") for r in rows]
    return Annotations(files, labels, targets, groups if any(groups) else None, meta)


def is_real_list(path: Path) -> bool:
    """A ReaL-format JSON (a list of per-image lists, in ImageNet val order)."""
    if path.suffix.lower() != ".json":
        return False
    with open(path) as f:
        head = f.read(64).lstrip()
    return head.startswith("[") and (head[1:].lstrip().startswith("[") or head[1:].lstrip().startswith("]"))


def read_real(path: str | os.PathLike) -> list[list[int]]:
    """A ReaL-format label file (``real.json``): one list of class ids per ImageNet val image."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such ReaL label file")
    obj = read_json(path)
    if not isinstance(obj, list) or not all(isinstance(v, list) for v in obj):
        raise ValueError(f"{path}: a ReaL label file is a JSON list of lists of class ids")
    if all(type(c) is int and c >= 0 for v in obj for c in v):  # the common case, checked fast
        return obj
    return [class_ids(v, path, f"entry {i}") for i, v in enumerate(obj)]
