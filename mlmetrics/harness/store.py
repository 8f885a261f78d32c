"""The logits store written by ``mlmetrics eval --save-logits DIR`` and read by
``mlmetrics rescore``; plus readers for the logits files users already have.

A store is a folder that NumPy / torch / safetensors open without mlmetrics::

    DIR/index.json            {"format": "mlmetrics.logits", "version": 1, "num_samples": N,
                               "images": [N names], "targets": [N ints] | null,
                               "labels": [N lists of class ids] | null, "label_source": ..., "data": ...,
                               "models": [{"name", "file", "dtype", "shape": [M, C], "rows": FILE | null,
                                           "class_subset": [ints] | null, "info": {...}}]}
    DIR/<model>.npy           float16 / float32 logits [M, C]   (numpy.load)
    DIR/<model>.safetensors   bfloat16 logits under key "logits" (NumPy has no bfloat16)
    DIR/<model>.rows.npy      int64 [M]: dataset index of each row; absent when rows are 0..N-1

Rows are in dataset order; ``images[rows[i]]`` is the image of row i.
"""
from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

FORMAT = "mlmetrics.logits"
INDEX = "index.json"
STORE_DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}
#: dtypes ``rescore`` reads (float64 is scored in float32)
READ_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
LOGITS_SUFFIXES = (".npy", ".npz", ".pt", ".pth", ".safetensors")


class StoreError(ValueError):
    """A logits file or store that cannot be read as [N, C] floating-point logits."""


@dataclass
class LogitsSource:
    """One model's logits to re-score: the tensor (possibly memory-mapped) and what is known
    about its rows (image names, targets, label sets by dataset index, row -> sample)."""

    name: str
    path: str
    logits: torch.Tensor                  # [M, C], a dtype of READ_DTYPES
    rows: torch.Tensor | None = None      # int64 [M] dataset index of each row (None: 0..M-1)
    images: list[str] | None = None       # [N] names by dataset index
    targets: list[int] | None = None      # [N]
    labels: list[list[int]] | None = None  # [N]
    class_subset: list[int] | None = None
    info: dict = field(default_factory=dict)
    data: str | None = None
    label_source: str | None = None

    @property
    def num_samples(self) -> int:
        return len(self.images) if self.images is not None else int(self.logits.shape[0])


def _file_stem(name: str, taken: set[str]) -> str:
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "model"
    out, i = stem, 2
    while out in taken:
        out, i = f"{stem}-{i}", i + 1
    return out


def _read_index(root: Path) -> dict:
    p = root / INDEX
    try:
        with open(p) as f:
            idx = json.load(f)
    except json.JSONDecodeError as e:
        raise StoreError(f"{p}: not valid JSON ({e})") from None
    if not isinstance(idx, dict) or idx.get("format") != FORMAT:
        raise StoreError(f"{p}: not an mlmetrics logits store index (format {FORMAT!r})")
    return idx


def write_store(root: str | os.PathLike, *, images: Sequence[str], targets: torch.Tensor | None,
                label_sets, label_source: str | None, data: str | None,
                models: Sequence[dict], dtype: str = "fp16") -> list[str]:
    """Add models to the store at ``root`` (created if needed). Each of ``models`` is a dict
    ``name``, ``logits`` [M, C], ``rows`` int64 [M] (dataset indices), ``class_subset``,
    ``info``. A model already in the store under the same name is replaced; a store of
    another dataset (other images) is an error. Returns the files written."""
    if dtype not in STORE_DTYPES:
        raise ValueError(f"--logits-dtype must be one of {list(STORE_DTYPES)}, got {dtype!r}")
    root = Path(root)
    images = list(images)
    index = check_store(root, images)
    if index is None:
        index = {"format": FORMAT, "version": 1, "num_samples": len(images), "images": images,
                 "targets": None if targets is None else targets.tolist(),
                 "labels": None if label_sets is None else label_sets.tolist(),
                 "label_source": label_source, "data": data, "models": []}
    root.mkdir(parents=True, exist_ok=True)
    names = {m["name"] for m in models}
    index["models"] = [e for e in index["models"] if e["name"] not in names]
    taken = {Path(e["file"]).stem for e in index["models"]}
    written = []
    for m in models:
        stem = _file_stem(m["name"], taken)
        taken.add(stem)
        x = m["logits"].detach().cpu().to(STORE_DTYPES[dtype]).contiguous()
        if dtype == "bf16":
            from safetensors.torch import save_file

            file = f"{stem}.safetensors"
            save_file({"logits": x}, str(root / file))
        else:
            file = f"{stem}.npy"
            np.save(root / file, x.numpy())
        rows = m["rows"].cpu().long()
        rows_file = None
        if rows.numel() != len(images) or not torch.equal(rows, torch.arange(len(images))):
            rows_file = f"{stem}.rows.npy"
            np.save(root / rows_file, rows.numpy())
            written.append(str(root / rows_file))
        cs = m.get("class_subset")
        index["models"].append({"name": m["name"], "file": file, "dtype": str(x.dtype).replace("torch.", ""),
                                "shape": list(x.shape), "rows": rows_file,
                                "class_subset": None if cs is None else [int(c) for c in cs],
                                "info": m.get("info") or {}})
        written.append(str(root / file))
    with open(root / INDEX, "w") as f:
        json.dump(index, f)
    return [str(root / INDEX)] + written


def check_store(root: str | os.PathLike, images: Sequence[str]) -> dict | None:
    """Whether models of a dataset with ``images`` can be added to the store at ``root``:
    its index (None for a new store); a file name or a store of another dataset is a StoreError."""
    root = Path(root)
    if (root.exists() and not root.is_dir()) or (not root.exists() and root.suffix.lower() in LOGITS_SUFFIXES):
        raise StoreError(f"--save-logits {root}: give a folder name (the store is a folder: index.json and one "
                         "logits file per model)")
    if not (root / INDEX).is_file():
        return None
    index = _read_index(root)
    if index.get("num_samples") != len(images) or index.get("images") != list(images):
        raise StoreError(f"--save-logits {root}: the store holds logits of another dataset "
                         f"({index.get('num_samples')} images, this run {len(images)}); use another folder")
    return index


def open_store(root: str | os.PathLike) -> list[LogitsSource]:
    """Every model of a store (logits memory-mapped where the format allows)."""
    root = Path(root)
    index = _read_index(root)
    n = index.get("num_samples")
    out = []
    for e in index.get("models", []):
        path = root / e["file"]
        logits = read_logits_file(str(path), what=f"store {root}: model {e['name']}")
        rows = None
        if e.get("rows"):
            rows = torch.from_numpy(np.load(root / e["rows"]).astype(np.int64))
        m = logits.shape[0] if rows is None else rows.numel()
        if logits.shape[0] != m or (rows is None and m != n):
            raise StoreError(f"{path}: {logits.shape[0]} rows, but the store index expects {m if rows is not None else n}")
        if rows is not None and rows.numel() and (int(rows.min()) < 0 or int(rows.max()) >= n):
            raise StoreError(f"{root / e['rows']}: row indices outside [0, {n})")
        out.append(LogitsSource(e["name"], str(path), logits, rows, index.get("images"), index.get("targets"),
                                index.get("labels"), e.get("class_subset"), e.get("info") or {},
                                index.get("data"), index.get("label_source")))
    if not out:
        raise StoreError(f"{root}: the store holds no models")
    return out


# ---------------------------------------------------------------------------------------
# Logits files users have
# ---------------------------------------------------------------------------------------
def _split_key(spec: str) -> tuple[str, str | None]:
    """``file.npz:logits`` -> (``file.npz``, ``logits``); a plain path -> (path, None)."""
    for suf in LOGITS_SUFFIXES:
        i = spec.lower().rfind(suf + ":")
        if i >= 0:
            return spec[:i + len(suf)], spec[i + len(suf) + 1:]
    return spec, None


def _pick(arrays: dict[str, Any], key: str | None, path: str):
    if key is not None:
        if key not in arrays:
            raise StoreError(f"{path}: no key {key!r}; it holds {sorted(arrays)[:10]}")
        return arrays[key]
    if "logits" in arrays:
        return arrays["logits"]
    if len(arrays) == 1:
        return next(iter(arrays.values()))
    raise StoreError(f"{path}: holds {sorted(arrays)[:10]} and no 'logits'; name the array as {path}:KEY")


def _load_any(path: str, key: str | None) -> tuple[torch.Tensor, dict]:
    suffix = Path(path).suffix.lower()
    if suffix == ".npy":
        try:
            a = np.load(path, mmap_mode="r", allow_pickle=False)
        except ValueError as e:
            raise StoreError(f"{path}: not a plain NumPy array ({e})") from None
        return _from_numpy(a, path), {}
    if suffix == ".npz":
        with np.load(path, allow_pickle=False) as z:
            return _from_numpy(_pick({k: z[k] for k in z.files}, key, path), path), {}
    if suffix == ".safetensors":
        from safetensors import safe_open

        with safe_open(path, framework="pt") as f:
            name = _pick({k: k for k in f.keys()}, key, path)
            return f.get_tensor(name), {}
    if suffix in (".pt", ".pth"):
        import pickle

        try:
            obj = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except (pickle.UnpicklingError, RuntimeError, EOFError) as e:
            raise StoreError(f"{path}: not a torch tensor file ({str(e).splitlines()[0][:160]})") from None
        if isinstance(obj, torch.Tensor):
            return obj, {}
        if not isinstance(obj, dict):
            raise StoreError(f"{path}: holds a {type(obj).__name__}; expected a tensor or a dict with 'logits'")
        tensors = {k: v for k, v in obj.items() if isinstance(v, torch.Tensor) and v.dim() == 2}
        x = _pick(tensors, key, path)
        return x, {k: v for k, v in obj.items() if not isinstance(v, torch.Tensor)}
    raise StoreError(f"{path}: unknown logits file type {suffix or '(none)'}; use {', '.join(LOGITS_SUFFIXES)} "
                     "or a store folder written by --save-logits")


def _from_numpy(a: np.ndarray, path: str) -> torch.Tensor:
    if a.dtype not in (np.float16, np.float32, np.float64):
        raise StoreError(f"{path}: logits must be floating point (float16, bfloat16, float32, float64), got {a.dtype}")
    if not a.flags.writeable:  # memory-mapped: torch wants a writable buffer, which it never writes
        a = np.ndarray(a.shape, a.dtype, buffer=a, order="C") if a.flags.c_contiguous else np.ascontiguousarray(a)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "non-writable tensor"
        return torch.from_numpy(a)


def read_logits_file(spec: str, *, what: str | None = None) -> torch.Tensor:
    """[N, C] floating-point logits from ``.npy`` / ``.npz`` / ``.pt`` / ``.pth`` /
    ``.safetensors`` (``FILE:KEY`` names an array; default ``logits`` or the only one)."""
    return read_logits_with_meta(spec, what=what)[0]


def read_logits_with_meta(spec: str, *, what: str | None = None) -> tuple[torch.Tensor, dict]:
    path, key = _split_key(spec)
    if not Path(path).is_file():
        raise FileNotFoundError(f"{path}: no such logits file")
    x, meta = _load_any(path, key)
    where = what or path
    if x.dtype not in READ_DTYPES:
        raise StoreError(f"{where}: logits must be floating point (float16, bfloat16, float32, float64), got "
                         f"{str(x.dtype).replace('torch.', '')}")
    if x.dim() != 2:
        raise StoreError(f"{where}: logits must be [N, C], got shape {tuple(x.shape)}")
    if x.shape[0] == 0 or x.shape[1] == 0:
        raise StoreError(f"{where}: empty logits, shape {tuple(x.shape)}")
    return x, meta


def sidecar_meta(path: str) -> dict:
    """``<file>.meta.json`` next to a logits file (image names, targets, label sets), or {}."""
    side = Path(path + ".meta.json")
    if not side.is_file():
        return {}
    from .annotations import read_json

    meta = read_json(side)
    if not isinstance(meta, dict):
        raise StoreError(f"{side}: expected a JSON object with images / target / labels")
    return meta


def open_source(spec: str) -> list[LogitsSource]:
    """A store folder (every model in it) or one logits file (with its sidecar, if any)."""
    if Path(spec).is_dir():
        return open_store(spec)
    x, meta = read_logits_with_meta(spec)
    path = _split_key(spec)[0]
    meta = {**meta, **sidecar_meta(path)}
    n = x.shape[0]
    images = meta.get("images")
    for k in ("images", "target", "labels"):
        v = meta.get(k)
        if v is not None and (not isinstance(v, list) or len(v) != n):
            raise StoreError(f"{path}: its metadata {k!r} holds {len(v) if isinstance(v, list) else type(v).__name__} "
                             f"entries for {n} logits rows")
    name = (meta.get("model") or {}).get("model") if isinstance(meta.get("model"), dict) else None
    return [LogitsSource(name or Path(path).stem, path, x, None, images, meta.get("target"), meta.get("labels"),
                         meta.get("class_subset"), meta.get("model") if isinstance(meta.get("model"), dict) else {},
                         meta.get("data"), "saved with the logits" if meta.get("labels") is not None else None)
            ]
