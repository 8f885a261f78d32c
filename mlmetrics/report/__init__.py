"""The evaluation report: a JSON-able dict (every metric, per-subgroup table, config,
timings, optional per-image top-5), its text rendering, a one-row CSV and PNG plots."""
from __future__ import annotations

import csv
import datetime as _dt
import json
import math
import os
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch

__all__ = ["build_report", "class_namer", "format_text", "jsonable", "subgroup_table", "write_csv",
           "write_json", "write_plots"]


def jsonable(v: Any) -> Any:
    """Tensors / arrays -> (nested) lists, non-finite floats -> None, dicts recursed."""
    if isinstance(v, torch.Tensor):
        v = v.detach().cpu()
        return jsonable(v.item() if v.dim() == 0 else v.tolist())
    if isinstance(v, np.ndarray):
        return jsonable(v.tolist())
    if isinstance(v, np.generic):
        return jsonable(v.item())
    if isinstance(v, float):
        return v if math.isfinite(v) else None
    if isinstance(v, dict):
        return {str(k): jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [jsonable(x) for x in v]
    if isinstance(v, (str, int, bool)) or v is None:
        return v
    if isinstance(v, Path):
        return str(v)
    return str(v)


def class_namer(num_classes: int, class_names: Sequence[str] | None = None, model=None,
                class_subset=None) -> Callable[[int], str]:
    """index -> human-readable class name: ImageNet names (from timm) for ImageNet-sized
    heads, else the dataset's folder names, else the index. With ``class_subset`` the index
    is a position in the subset."""
    if class_subset is not None:
        full = class_namer(num_classes, None, model)
        sub = [int(c) for c in torch.as_tensor(class_subset).tolist()]
        return lambda i: full(sub[int(i)])
    if class_names is not None and len(class_names) == num_classes:
        names = list(class_names)
        return lambda i: names[i]
    try:
        from timm.data import ImageNetInfo, infer_imagenet_subset

        subset = infer_imagenet_subset(model) if model is not None else None
        if subset is None and num_classes == 1000:
            subset = "imagenet-1k"
        if subset is not None:
            info = ImageNetInfo(subset)
            if info.num_classes() == num_classes:
                return lambda i: info.index_to_description(int(i))
    except Exception:
        pass
    return lambda i: str(int(i))


# ---------------------------------------------------------------------------------------
# Per-subgroup table (from the compact per-sample records)
# ---------------------------------------------------------------------------------------
def _group_row(name: str, mask: np.ndarray, rec, has_t: bool, has_l: bool, ks: Sequence[int],
               nonempty: np.ndarray | None) -> dict:
    row: dict[str, Any] = {"group": name, "n": int(mask.sum())}
    if has_t:
        rank = rec.target_rank.numpy()[mask]
        for k in ks:
            row[f"top{k}"] = float(((rank >= 0) & (rank < k)).mean()) if len(rank) else None
    if has_l:
        m = mask & nonempty
        row["n_labelled"] = int(m.sum())
        hits = rec.hits.numpy()[m]
        for k in ks:
            row[f"real_top{k}"] = float(hits[:, :k].any(1).mean()) if len(hits) else None
    conf = rec.topk_probs.numpy()[mask, 0] if rec.topk_probs.shape[1] else np.zeros(0)
    row["mean_confidence"] = float(np.nanmean(conf)) if len(conf) else None
    return row


def subgroup_table(records, *, sizes: torch.Tensor | None, targets: torch.Tensor | None,
                   label_lists: list[list[int]] | None = None, groups: Sequence[str] | None = None,
                   topk: Sequence[int] = (1, 5)) -> list[dict]:
    """Rows: all; by number of labels in the sample's set (multi-label datasets); by the
    annotation's ``group`` column; by whether the single-label target is in the label set."""
    idx = records.index.numpy()
    has_t = targets is not None and records.target_rank.numel() == len(idx)
    has_l = sizes is not None and records.hits.shape[1] > 0
    ks = [k for k in topk if k <= records.topk_indices.shape[1]]
    nonempty = sizes.numpy()[idx] > 0 if has_l else None
    nf = getattr(records, "nonfinite", None)
    valid = np.ones(len(idx), dtype=bool) if nf is None or nf.numel() != len(idx) else ~nf.numpy()
    rows = [_group_row("all", valid, records, has_t, has_l, ks, nonempty)]
    if has_l:
        s = sizes.numpy()[idx]
        for lo, hi, name in ((0, 0, "0 labels (not scored multi-label)"), (1, 1, "1 label"), (2, 2, "2 labels"),
                             (3, 3, "3 labels"), (4, 1 << 30, "4+ labels")):
            m = (s >= lo) & (s <= hi) & valid
            if m.any():
                rows.append(_group_row(name, m, records, has_t, has_l, ks, nonempty))
    if groups is not None:
        g = np.array([groups[i] for i in idx], dtype=object)
        for name in sorted(set(g.tolist())):
            rows.append(_group_row(f"group={name}", (g == name) & valid, records, has_t, has_l, ks, nonempty))
    if has_t and has_l and label_lists is not None:
        t = targets.numpy()[idx]
        inside = np.array([int(t[j]) in set(label_lists[i]) for j, i in enumerate(idx)], dtype=bool)
        ne = nonempty & valid
        for m, name in ((inside & ne, "target in label set"), (~inside & ne, "target not in label set")):
            if m.any():
                rows.append(_group_row(name, m, records, has_t, has_l, ks, nonempty))
    return rows


# ---------------------------------------------------------------------------------------
# The report
# ---------------------------------------------------------------------------------------
def build_report(*, metrics: dict, records, files: Sequence[str], targets: torch.Tensor | None,
                 label_sets, groups: Sequence[str] | None = None, namer: Callable[[int], str] | None = None,
                 config: dict | None = None, model: dict | None = None, dataset: dict | None = None,
                 timings: dict | None = None, skipped: Sequence[tuple[str, str]] = (),
                 num_images: int | None = None, per_image: bool = False, topk: Sequence[int] = (1, 5),
                 outputs: dict | None = None) -> dict:
    """Everything about one run as a JSON-able dict."""
    from .. import __version__

    namer = namer or (lambda i: str(int(i)))
    label_lists = label_sets.tolist() if label_sets is not None else None
    sizes = label_sets.sizes() if label_sets is not None else None
    n_scored = int(records.index.numel())
    rep: dict[str, Any] = {
        "mlmetrics_version": __version__,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "model": model or {},
        "dataset": dataset or {},
        "config": config or {},
        "num_images": int(num_images if num_images is not None else n_scored + len(skipped)),
        "num_scored": n_scored,
        "num_skipped": len(skipped),
        "skipped": [{"image": f, "error": e} for f, e in skipped],
        "metrics": jsonable(metrics),
        "subgroups": jsonable(subgroup_table(records, sizes=sizes, targets=targets, label_lists=label_lists,
                                             groups=groups, topk=topk)),
        "timings": jsonable(timings or {}),
    }
    if outputs:
        rep["outputs"] = outputs
    if per_image:
        rows = []
        probs, ind = records.topk_probs.tolist(), records.topk_indices.tolist()
        for j, i in enumerate(records.index.tolist()):
            r = {"image": files[i],
                 "top5": [{"index": int(c), "name": namer(c), "prob": jsonable(float(p))}
                          for c, p in zip(ind[j], probs[j])],
                 "labels": label_lists[i] if label_lists is not None else []}
            if targets is not None:
                r["target"] = int(targets[i])
            rows.append(r)
        rep["per_image"] = rows
    return rep


def _fmt(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.4f}"
    if isinstance(v, list):
        return f"[{len(v)} values]"
    return str(v)


def format_text(rep: dict, *, namer: Callable[[int], str] | None = None, max_images: int = 50) -> str:
    """A human-readable rendering of :func:`build_report`'s dict."""
    m, t = rep.get("model", {}), rep.get("timings", {})
    lines = [
        f"model    {m.get('model', '?')}  weights: {m.get('weights', '?')}"
        + (f" (keys matched {m['key_matching']})" if m.get("key_matching") else ""),
        f"data     {rep.get('dataset', {}).get('root', '?')}  layout: {rep.get('dataset', {}).get('layout', '?')}"
        f"  labels: {rep.get('dataset', {}).get('labels', '?')}",
        f"images   {rep['num_images']} found, {rep['num_scored']} scored, {rep['num_skipped']} skipped (undecodable)",
    ]
    if t.get("images_per_s") is not None:
        lines.append(f"speed    {t['images_per_s']:.1f} images/s over {t.get('loop_s', 0):.2f} s "
                     f"on {rep.get('config', {}).get('device', '?')}")
    for s in rep["skipped"][:10]:
        lines.append(f"  skipped {s['image']}: {s['error'][:120]}")
    lines.append("")
    lines.append("metrics")
    w = max([len(k) for k in rep["metrics"]] + [6])
    for k, v in rep["metrics"].items():
        lines.append(f"  {k:<{w}}  {_fmt(v)}")
    rows = rep.get("subgroups", [])
    if rows:
        cols = [c for c in rows[0] if c != "group"]
        for r in rows[1:]:
            cols += [c for c in r if c != "group" and c not in cols]
        gw = max([len(r["group"]) for r in rows] + [5])
        lines += ["", "subgroups", "  " + f"{'group':<{gw}}  " + "  ".join(f"{c:>10}" for c in cols)]
        for r in rows:
            lines.append("  " + f"{r['group']:<{gw}}  " + "  ".join(f"{_fmt(r.get(c)):>10}" for c in cols))
    if rep.get("per_image"):
        lines += ["", "per image (top-5; * = in the image's label set)"]
        for r in rep["per_image"][:max_images]:
            labels = set(r.get("labels") or [])
            tops = ", ".join(f"{'*' if e['index'] in labels else ''}{e['name'].split(',')[0]} "
                             f"{(e['prob'] or 0):.2f}" for e in r["top5"])
            lab = ", ".join((namer(c).split(",")[0] if namer else str(c)) for c in sorted(labels))
            tgt = f"  |  target: {namer(r['target']).split(',')[0] if namer else r['target']}" if "target" in r else ""
            lines.append(f"  {r['image']}: {tops}")
            lines.append(f"  {'':<{len(r['image'])}}  labels: {lab or '-'}{tgt}")
        if len(rep["per_image"]) > max_images:
            lines.append(f"  ... {len(rep['per_image']) - max_images} more in the JSON report")
    if rep.get("outputs"):
        lines += [""] + [f"wrote {k}: {v}" for k, v in rep["outputs"].items()]
    return "\n".join(lines)


def write_json(rep: dict, path: str | os.PathLike) -> str:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        json.dump(jsonable(rep), f, indent=1, allow_nan=False)
    return str(path)


def write_csv(rep: dict, path: str | os.PathLike) -> str:
    """One row per run (model, data, counts, images/s and every scalar metric), appended
    when the file exists with the same columns (like timm's validate.py results file)."""
    path = Path(path)
    row = {"model": rep.get("model", {}).get("model"), "weights": rep.get("model", {}).get("weights"),
           "data": rep.get("dataset", {}).get("root"), "labels": rep.get("dataset", {}).get("labels"),
           "num_images": rep["num_images"], "num_scored": rep["num_scored"], "num_skipped": rep["num_skipped"],
           "images_per_s": rep.get("timings", {}).get("images_per_s")}
    for k, v in rep["metrics"].items():
        if not isinstance(v, (list, dict)):
            row[k] = v
    append = False
    if path.is_file():
        with open(path, newline="") as f:
            header = next(csv.reader(f), None)
        append = header == list(row)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a" if append else "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(row))
        if not append:
            w.writeheader()
        w.writerow(row)
    return str(path)


def write_plots(records, rep: dict, out_dir: str | os.PathLike, *, targets: torch.Tensor | None = None,
                bins: int = 15) -> list[str]:
    from .plots import write_plots as _wp

    return _wp(records, rep, out_dir, targets=targets, bins=bins)
