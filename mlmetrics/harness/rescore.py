"""Re-scoring stored logits (no model): every model of every source against every label
source, reading each model's logits once."""
from __future__ import annotations

import time
from typing import Callable, Sequence

import torch

from .data import resolve_class_subset
from .engine import resolve_device
from .label_sources import Labels, resolve_labels
from .scorer import Records, Scorer, sample_groups
from .store import LogitsSource, StoreError, open_source

CHUNK = 8192


def _subset(spec: str | None, src: LogitsSource) -> tuple[torch.Tensor | None, str | None]:
    if spec in (None, "saved"):
        if src.class_subset is None:
            return None, None
        return torch.tensor(src.class_subset, dtype=torch.int64), "saved with the logits"
    subset, name = resolve_class_subset(spec)
    width = int(src.logits.shape[1])
    if subset is not None and int(subset.max()) >= width:
        raise ValueError(f"--class-subset {spec}: needs logits with >= {int(subset.max()) + 1} classes; "
                         f"{src.path} has {width}")
    return subset, name


def score_source(src: LogitsSource, label_list: Sequence[Labels], *, subset: torch.Tensor | None,
                 topk: Sequence[int] | None, ece_bins: int, device: torch.device, chunk: int = CHUNK,
                 subgroups: bool = True, metrics_kwargs: dict | None = None) -> list[tuple[Scorer, float]]:
    """One pass over ``src.logits``: each chunk goes to one :class:`Scorer` per label source.
    Returns (scorer, seconds) per label source (time split evenly over the pass)."""
    n, width = src.num_samples, int(src.logits.shape[1])
    scorers = [Scorer(width, targets=lab.targets, label_sets=lab.label_sets, topk=topk, ece_bins=ece_bins,
                      device=device, num_samples=n, class_subset=subset, metrics_kwargs=metrics_kwargs,
                      groups=sample_groups(n, targets=lab.targets, label_sets=lab.label_sets, groups=lab.groups)
                      if subgroups else ())
               for lab in label_list]
    rows = src.rows if src.rows is not None else None
    m = int(src.logits.shape[0])
    t0 = time.perf_counter()
    for s in range(0, m, chunk):
        x = src.logits[s:s + chunk]
        x = (x.float() if x.dtype == torch.float64 else x).to(device)
        idx = rows[s:s + chunk] if rows is not None else torch.arange(s, min(s + chunk, m), dtype=torch.int64)
        for sc in scorers:
            sc.update(x, idx)
    dt = (time.perf_counter() - t0) / max(len(scorers), 1)
    return [(sc, dt) for sc in scorers]


def _report(src: LogitsSource, lab: Labels, sc: Scorer, records: Records, *, subset_name, namer, device, ece_bins: int,
            seconds: float, total: float, per_image: bool) -> dict:
    """The report of one (model, label source) pair."""
    from ..report import build_report

    metrics = sc.compute()
    if metrics.get("num_samples", 0) and metrics.get("nonfinite_rows", 0) == metrics["num_samples"]:
        raise StoreError(f"{src.path}: every row holds NaN or +inf (no softmax is defined); nothing to score")
    ks = list(sc.topk)
    model = {"model": src.name, **{k: v for k, v in src.info.items() if k != "model"}}
    if subset_name:
        model["class_subset"] = subset_name
    dataset = {"root": src.data, "layout": "saved logits", "num_images": src.num_samples, "labels": lab.name,
               "has_targets": lab.targets is not None, "logits": src.path,
               "dtype": str(src.logits.dtype).replace("torch.", "")}
    rows = int(src.logits.shape[0])
    return build_report(metrics=metrics, subgroups=sc.subgroup_rows(), records=records,
                        files=src.images or [f"row{i}" for i in range(src.num_samples)], targets=lab.targets,
                        label_sets=lab.label_sets, namer=namer, model=model, dataset=dataset,
                        config={"device": str(device), "topk": ks, "ece_bins": ece_bins},
                        timings={"score_s": seconds, "total_s": total,
                                 "rows_per_s": rows / seconds if seconds > 0 else 0.0},
                        num_images=src.num_samples, per_image=per_image, topk=ks)


def rescore(sources: Sequence[str], *, labels: Sequence[str] = ("auto",), targets_file: str | None = None,
            class_subset: str | None = "saved", topk: Sequence[int] | None = None, ece_bins: int = 15,
            device: str | None = "cpu", per_image: bool = False, chunk: int = CHUNK, subgroups: bool | None = None,
            metrics_kwargs: dict | None = None) -> list[tuple[dict, Records, Callable]]:
    """Score every model in ``sources`` (store folders or logits files) against every label
    source in ``labels`` (see :func:`resolve_labels`), reading each model's logits once.
    ``subgroups``: also the per-subgroup tables (their metrics cost more than the overall
    ones); None: only when there is one report. Returns ``(report, records, namer)`` per
    (model, label source)."""
    from ..report import class_namer

    dev = resolve_device(device)
    opened = [src for spec in sources for src in open_source(spec)]  # memory-mapped: cheap
    if subgroups is None:
        subgroups = len(opened) * len(labels) == 1
    cache: dict = {}
    out = []
    for src in opened:
        t0 = time.perf_counter()
        subset, subset_name = _subset(class_subset, src)
        width = int(src.logits.shape[1])
        c = width if subset is None else subset.numel()
        label_list = []
        for lab in labels:
            key = (lab, id(src.images), src.num_samples, c, targets_file)
            if key not in cache:
                cache[key] = resolve_labels(lab, src, c, targets_file)
            label_list.append(cache[key])
        namer = class_namer(width, class_subset=subset)
        scored = score_source(src, label_list, subset=subset, topk=topk, ece_bins=ece_bins, device=dev,
                              chunk=chunk, subgroups=subgroups, metrics_kwargs=metrics_kwargs)
        for lab, (sc, seconds) in zip(label_list, scored):
            records = sc.records()
            rep = _report(src, lab, sc, records, subset_name=subset_name, namer=namer, device=dev, ece_bins=ece_bins,
                          seconds=seconds, total=time.perf_counter() - t0, per_image=per_image)
            out.append((rep, records, namer))
    return out
