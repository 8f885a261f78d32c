"""The report of one model on one dataset: a JSON-able dict of numbers taken from the
metrics (overall and per subgroup), the run's config and timings, optional per-image top-5."""
from __future__ import annotations

import datetime as _dt
from typing import Any, Callable, Sequence

import torch

from .jsonable import jsonable


def per_image_rows(records, files: Sequence[str], label_lists: list[list[int]] | None,
                   targets: torch.Tensor | None, namer: Callable[[int], str]) -> list[dict]:
    """One row per scored image: its top-5 (index, name, probability), label set and target."""
    rows = []
    probs, ind = records.topk_probs.tolist(), records.topk_indices.tolist()
    for j, i in enumerate(records.index.tolist()):
        r = {"image": files[i],
             "top5": [{"index": int(c), "name": namer(c), "prob": jsonable(float(p))} for c, p in zip(ind[j], probs[j])],
             "labels": label_lists[i] if label_lists is not None else []}
        if targets is not None:
            r["target"] = int(targets[i])
        rows.append(r)
    return rows


def build_report(*, metrics: dict, subgroups: Sequence[dict] = (), records, files: Sequence[str],
                 targets: torch.Tensor | None, label_sets, namer: Callable[[int], str] | None = None,
                 config: dict | None = None, model: dict | None = None, dataset: dict | None = None,
                 timings: dict | None = None, skipped: Sequence[tuple[str, str]] = (),
                 num_images: int | None = None, per_image: bool = False, topk: Sequence[int] = (1, 5),
                 outputs: dict | None = None) -> dict:
    """Everything about one run as a JSON-able dict. ``metrics``: a ``ClassificationMetrics``
    result; ``subgroups``: rows of per-subgroup metrics (``Scorer.subgroup_rows``);
    ``records``: the compact per-sample records (for the per-image table only)."""
    from .. import __version__

    n_scored = int(records.index.numel())
    rep: dict[str, Any] = {
        "mlmetrics_version": __version__,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "model": model or {},
        "dataset": dataset or {},
        "config": {**(config or {}), "topk": list(topk)},
        "num_images": int(num_images if num_images is not None else n_scored + len(skipped)),
        "num_scored": n_scored,
        "num_skipped": len(skipped),
        "skipped": [{"image": f, "error": e} for f, e in skipped],
        "metrics": jsonable(metrics),
        "subgroups": jsonable(list(subgroups)),
        "timings": jsonable(timings or {}),
    }
    if outputs:
        rep["outputs"] = outputs
    if per_image:
        label_lists = label_sets.tolist() if label_sets is not None else None
        rep["per_image"] = per_image_rows(records, files, label_lists, targets, namer or (lambda i: str(int(i))))
    return rep
