"""``mlmetrics eval``: build the models and the dataset, decode each image once per distinct
preprocessing config, score every model, and report."""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import torch

from .data import build_dataset, resolve_class_subset
from .engine import EvalResult, ModelSlot, evaluate_models, resolve_device
from .model import create_model, data_config

_HUB_PREFIXES = ("hf-hub:", "hf_hub:", "local-dir:")


@dataclass(frozen=True)
class ModelSpec:
    """A model of a run: a timm name and optional checkpoint file."""

    name: str
    checkpoint: str | None = None



def model_labels(specs: Sequence[ModelSpec]) -> list[str]:
    """Each model's name in reports: its timm name, with ``:checkpoint-stem`` where a name repeats."""
    names = [s.name for s in specs]
    out = [s.name if names.count(s.name) == 1 or not s.checkpoint else f"{s.name}:{Path(s.checkpoint).stem}"
           for s in specs]
    if len(set(out)) != len(out):
        raise ValueError(f"the same model is given twice: {sorted({o for o in out if out.count(o) > 1})}")
    return out


def parse_model_spec(spec: str) -> ModelSpec:
    """``name`` or ``name:checkpoint`` (``hf-hub:org/name`` keeps its prefix)."""
    spec = spec.strip()
    prefix = next((p for p in _HUB_PREFIXES if spec.startswith(p)), "")
    name, sep, ckpt = spec[len(prefix):].partition(":")
    if not name:
        raise ValueError(f"--model {spec!r}: empty model name")
    return ModelSpec(prefix + name, ckpt if sep and ckpt else None)


def read_models_file(path: str) -> list[ModelSpec]:
    """``--models FILE``: one ``name[:checkpoint]`` per line (blank lines and ``#`` comments skipped);
    a relative checkpoint path is relative to the file."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"--models {path}: no such file")
    out = []
    for line in p.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            s = parse_model_spec(line)
            if s.checkpoint and not Path(s.checkpoint).is_absolute() and (p.parent / s.checkpoint).exists():
                s = ModelSpec(s.name, str(p.parent / s.checkpoint))
            out.append(s)
    if not out:
        raise ValueError(f"--models {path}: lists no models")
    return out


@dataclass
class _Built:
    spec: ModelSpec
    label: str
    net: torch.nn.Module
    info: dict
    subset: torch.Tensor | None
    subset_name: str | None
    cfg: dict

    @property
    def scored(self) -> int:
        return self.info["num_classes"] if self.subset is None else self.subset.numel()


def _build(spec: ModelSpec, label: str, *, data, class_subset, pretrained, allow_download, num_classes, use_ema, reparam,
           overrides) -> _Built:
    net, info = create_model(spec.name, checkpoint=spec.checkpoint, pretrained=pretrained,
                             num_classes=num_classes, allow_download=allow_download, use_ema=use_ema)
    info["model"] = label
    if reparam:
        from timm.utils.model import reparameterize_model

        net = reparameterize_model(net)
    cs = "none" if class_subset == "auto" and info["num_classes"] != 1000 else class_subset
    subset, subset_name = resolve_class_subset(cs, data)  # ImageNet-A/R folders: a subset of a 1000-way head
    if subset is not None:
        info["class_subset"] = subset_name
        if int(subset.max()) >= info["num_classes"]:
            raise ValueError(f"class subset {subset_name} needs a model with >= {int(subset.max()) + 1} classes")
    return _Built(spec, label, net, info, subset, subset_name, data_config(net, **overrides))


def _cfg_key(cfg: dict, normalize_on_device: bool) -> tuple:
    """Models with equal keys share decoded batches (mean/std apart when normalising on device)."""
    drop = ("mean", "std") if normalize_on_device else ()
    return tuple(sorted((k, tuple(v) if isinstance(v, (list, tuple)) else v) for k, v in cfg.items() if k not in drop))


def run_eval_many(specs: Sequence[ModelSpec], *, data: str | None, labels: str | None = "auto",
                  pretrained: bool = False, allow_download: bool = False, num_classes: int | None = None,
                  layout: str = "auto", targets_file: str | None = None, batch_size: int = 128,
                  workers: int | None = None, device: str | None = None, amp: str | None = None,
                  channels_last: bool = False, limit: int | None = None, topk: Sequence[int] | None = None,
                  ece_bins: int = 15, img_size: int | None = None, crop_pct: float | None = None,
                  interpolation: str | None = None, save_logits: str | None = None, logits_dtype: str = "fp16",
                  per_image: bool = False, progress: bool = True, use_ema: bool = True,
                  class_subset: str | None = "auto", mean: Sequence[float] | None = None,
                  std: Sequence[float] | None = None, crop_mode: str | None = None, compile: bool = False,
                  reparam: bool = False, normalize_on_device: bool | None = None,
                  metrics_kwargs: dict | None = None) -> list[tuple[dict, EvalResult, Any]]:
    """Evaluate every model of ``specs`` on one dataset; returns ``(report, result, namer)`` per
    model, in ``specs`` order. Images are decoded once per distinct preprocessing config
    (input size, crop, interpolation, mean/std); each model streams into its own metrics."""
    from ..report import build_report, class_namer
    from .deps import require

    create_transform = require("timm.data").create_transform
    dev = resolve_device(device)
    if normalize_on_device is None:
        normalize_on_device = dev.type == "cuda"
    overrides = dict(img_size=img_size, crop_pct=crop_pct, interpolation=interpolation, crop_mode=crop_mode,
                     mean=tuple(mean) if mean else None, std=tuple(std) if std else None)
    t0 = time.perf_counter()
    built = [_build(s, lab, data=data, class_subset=class_subset, pretrained=pretrained, allow_download=allow_download,
                    num_classes=num_classes, use_ema=use_ema, reparam=reparam, overrides=overrides)
             for s, lab in zip(specs, model_labels(specs))]
    t_models = time.perf_counter() - t0
    datasets: dict[tuple, Any] = {}
    runs: dict[tuple, list[int]] = {}
    for j, b in enumerate(built):
        dkey = (b.scored, None if b.subset is None else tuple(b.subset.tolist()))
        if dkey not in datasets:
            datasets[dkey] = build_dataset(data, labels=labels, layout=layout, num_classes=b.scored, limit=limit,
                                           targets_file=targets_file, class_subset=b.subset)
        runs.setdefault((dkey, _cfg_key(b.cfg, normalize_on_device)), []).append(j)
    if save_logits is not None:  # refuse a bad store before the models run
        from .store import check_store

        check_store(save_logits, next(iter(datasets.values())).files)
    results: list[EvalResult | None] = [None] * len(built)
    for (dkey, _), members in runs.items():
        cfg = built[members[0]].cfg
        dataset = datasets[dkey].with_transform(
            create_transform(**cfg, is_training=False, use_prefetcher=bool(normalize_on_device)))
        out = evaluate_models([ModelSlot(built[j].net, built[j].subset) for j in members], dataset, device=dev,
                              batch_size=batch_size, workers=workers, amp=amp, channels_last=channels_last,
                              topk=topk, ece_bins=ece_bins, keep_logits=save_logits is not None, progress=progress,
                              compile=compile, metrics_kwargs=metrics_kwargs,
                              normalize=(cfg["mean"], cfg["std"]) if normalize_on_device else None,
                              warmup_input_size=cfg["input_size"])
        for j, r in zip(members, out):
            results[j] = r
    total = time.perf_counter() - t0
    outputs: dict[str, str] = {}
    if save_logits is not None:
        outputs["logits"] = _save(save_logits, logits_dtype, built, results, datasets)
    reports = []
    for b, r in zip(built, results):
        dkey = (b.scored, None if b.subset is None else tuple(b.subset.tolist()))
        ds = datasets[dkey]
        r.timings["model_build_s"] = t_models / len(built)
        r.timings["total_s"] = total
        namer = class_namer(b.info["num_classes"], ds.class_names, b.net, class_subset=b.subset)
        config = {**r.config, "data_config": {k: (list(v) if isinstance(v, tuple) else v) for k, v in b.cfg.items()},
                  "limit": limit, "labels": labels, "layout": layout}
        rep = build_report(metrics=r.metrics, subgroups=r.subgroups, records=r.records, files=ds.files,
                           targets=ds.targets, label_sets=ds.label_sets, namer=namer, config=config, model=b.info,
                           dataset=ds.describe(), timings=r.timings, skipped=r.skipped, num_images=r.num_images,
                           per_image=per_image, topk=r.config["topk"], outputs=dict(outputs))
        reports.append((rep, r, namer))
    return reports


def _save(root: str, dtype: str, built, results, datasets) -> str:
    from . import distributed as dist
    from .store import write_store

    if dist.world()[0] != 0:
        return root
    first = next(iter(datasets.values()))
    write_store(root, images=first.files, targets=first.targets, label_sets=first.label_sets,
                label_source=first.label_source, data=str(first.root), dtype=dtype,
                models=[{"name": b.label, "logits": r.logits, "rows": r.records.index,
                         "class_subset": None if b.subset is None else b.subset.tolist(), "info": b.info}
                        for b, r in zip(built, results)])
    return root


def run_eval(*, model: str, checkpoint: str | None = None, save_logits_path: str | None = None,
             **kw) -> tuple[dict, EvalResult, Any]:
    """One model (see :func:`run_eval_many`); returns ``(report, result, namer)``."""
    return run_eval_many([ModelSpec(model, checkpoint)], save_logits=save_logits_path, **kw)[0]
