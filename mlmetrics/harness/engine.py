"""Batched inference: one DataLoader (images decoded once) feeding one or more models, each
streamed into its own :class:`Scorer`."""
from __future__ import annotations

import contextlib
import os
import time
from dataclasses import dataclass, field
from typing import Any, Sequence

import torch

from . import distributed as dist
from .data import EvalDataset, collate_skip
from .scorer import Records, Scorer, sample_groups

AMP_DTYPES = {"none": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def resolve_device(device: str | None) -> torch.device:
    """``auto``/None: CUDA when available, else CPU."""
    if device in (None, "", "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        d = torch.device(device)
    except RuntimeError:
        raise ValueError(f"--device {device!r}: not a device (auto, cpu, cuda, cuda:1, ...)") from None
    if d.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"--device {device}: CUDA is not available on this machine")
    return d


@dataclass
class EvalResult:
    """One model's scores over a dataset."""

    metrics: dict[str, Any]
    records: Records
    skipped: list[tuple[str, str]]
    timings: dict[str, float]
    num_images: int
    num_scored: int
    logits: torch.Tensor | None = None  # [M, C] in records.index order, with keep_logits
    config: dict = field(default_factory=dict)
    subgroups: list[dict] = field(default_factory=list)


@dataclass
class ModelSlot:
    """A model to run in a shared loop: the network and its class subset."""

    net: torch.nn.Module
    class_subset: torch.Tensor | None = None


def _autocast(device: torch.device, amp: str | None):
    dtype = AMP_DTYPES.get(amp or "none", "bad")
    if dtype == "bad":
        raise ValueError(f"--amp must be one of {list(AMP_DTYPES)}, got {amp!r}")
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def default_workers() -> int:
    """DataLoader workers: one core left for the main process, at most 16 (JPEG decoding is
    what bounds a GPU run)."""
    n = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(0, min(16, n - 1))


def _prepare(net: torch.nn.Module, device, channels_last: bool, compile: bool) -> torch.nn.Module:
    if int(getattr(net, "num_classes", 0) or 0) <= 0:
        raise ValueError("the model has no classifier (num_classes == 0)")
    net = net.eval().to(device)
    if channels_last:
        net = net.to(memory_format=torch.channels_last)
    return torch.compile(net) if compile else net


def _loader(dataset, batch_size: int, workers: int, device: torch.device):
    rank, size = dist.world()
    sampler = dist.ShardSampler(len(dataset), rank, size) if size > 1 else None
    return torch.utils.data.DataLoader(
        dataset, batch_size=batch_size, shuffle=False, sampler=sampler, num_workers=workers,
        pin_memory=device.type == "cuda", collate_fn=collate_skip, drop_last=False,
        persistent_workers=False, **({"prefetch_factor": 4} if workers > 0 else {}))


def _gathered(scorer: Scorer, skipped: list[tuple[int, str]]) -> tuple[Records, torch.Tensor | None, list]:
    """Records, logits and skipped (index, error) of every rank, sorted by sample, each sample once."""
    parts = dist.gather((scorer.records(), scorer.logits(), skipped))
    if len(parts) == 1:
        return parts[0]
    rec = Records.concat([p[0] for p in parts])
    logits = None
    if parts[0][1] is not None:
        idx = torch.cat([p[0].index for p in parts])
        all_logits = torch.cat([p[1] for p in parts])
        first = {}
        for j, i in enumerate(idx.tolist()):
            first.setdefault(i, j)
        logits = all_logits[[first[i] for i in rec.index.tolist()]]
    return rec, logits, sorted(dict(e for p in parts for e in p[2]).items())


def _warmup(nets, device, batch_size: int, input_size, amp, channels_last: bool) -> float:
    """On CUDA, one forward pass per model on a dummy batch (cudnn autotuning, torch.compile)."""
    t = time.perf_counter()
    if input_size is not None and device.type == "cuda":
        with torch.inference_mode(), _autocast(device, amp):
            x = torch.zeros((batch_size, *input_size), device=device)
            for net in nets:
                net(x.contiguous(memory_format=torch.channels_last) if channels_last else x)
        torch.cuda.synchronize(device)
    return time.perf_counter() - t


def _progress(loader, enabled: bool):
    if not enabled or dist.world()[0] != 0:
        return None
    from .deps import require

    return require("tqdm.auto").tqdm(total=len(loader.sampler), unit="img", desc="eval", dynamic_ncols=True,
                                     leave=True)


def _stream(loader, nets, scorers, *, device, amp, channels_last: bool, mean_std, bar) -> tuple[list, dict, list]:
    """The loop: each batch decoded once, moved once, fed to every model and its scorer.
    Returns (skipped (index, error), loop timings, seconds per model)."""
    skipped: list[tuple[int, str]] = []
    t_start = time.perf_counter()
    data_wait, first_batch_s = 0.0, None
    model_s = [0.0] * len(nets)
    t_fetch = time.perf_counter()
    with torch.inference_mode():
        for batch in loader:
            data_wait += time.perf_counter() - t_fetch
            skipped.extend(batch["failed"])
            n = len(batch["failed"])
            if batch["images"] is not None:
                x = batch["images"].to(device, non_blocking=True)
                if channels_last:
                    x = x.contiguous(memory_format=torch.channels_last)
                if mean_std is not None:
                    x = x.float().sub_(mean_std[0]).div_(mean_std[1])
                for j, (net, scorer) in enumerate(zip(nets, scorers)):
                    t_m = time.perf_counter()
                    with _autocast(device, amp):
                        logits = net(x)
                    scorer.update(logits, batch["index"])
                    model_s[j] += time.perf_counter() - t_m
                n += x.shape[0]
            if first_batch_s is None:
                first_batch_s = time.perf_counter() - t_start
            if bar is not None:
                bar.update(n)
                bar.set_postfix_str(f"skipped {len(skipped)}", refresh=False)
            t_fetch = time.perf_counter()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
    if bar is not None:
        bar.close()
    loop = {"loop_s": time.perf_counter() - t_start, "data_wait_s": data_wait, "first_batch_s": first_batch_s or 0.0}
    return skipped, loop, model_s


def evaluate_models(models: Sequence[ModelSlot], dataset: EvalDataset, *,
                    device: str | torch.device | None = None, batch_size: int = 128, workers: int | None = None,
                    amp: str | None = None, channels_last: bool = False, topk: Sequence[int] | None = None,
                    ece_bins: int = 15, keep_logits: bool = False, progress: bool = True, compile: bool = False,
                    normalize: tuple[Sequence[float], Sequence[float]] | None = None,
                    warmup_input_size: Sequence[int] | None = None,
                    metrics_kwargs: dict | None = None) -> list[EvalResult]:
    """Run every model over ``dataset`` with ONE DataLoader: each batch is decoded once and
    fed to every model, each streaming into its own metrics. Returns one result per model.

    ``normalize=(mean, std)``: the dataset yields uint8 images (timm's ``use_prefetcher``
    transform) converted and normalised on ``device``. ``warmup_input_size`` (C, H, W): on
    CUDA, one forward pass per model on a dummy batch before the timed loop. Under
    torch.distributed each rank scores its shard; results are gathered on every rank."""
    device = resolve_device(device) if not isinstance(device, torch.device) else device
    workers = default_workers() if workers is None else int(workers)
    if device.type == "cuda":  # as timm's validate.py
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
    mean_std = None
    if normalize is not None:
        mean_std = tuple(torch.tensor([255.0 * v for v in vals], device=device).view(1, -1, 1, 1)
                         for vals in normalize)
    nets = [_prepare(m.net, device, channels_last, compile) for m in models]
    groups = sample_groups(len(dataset), targets=dataset.targets, label_sets=dataset.label_sets,
                           groups=dataset.groups)
    scorers = [Scorer(int(m.net.num_classes), targets=dataset.targets, label_sets=dataset.label_sets, topk=topk,
                      ece_bins=ece_bins, device=device, keep_logits=keep_logits, num_samples=len(dataset),
                      class_subset=m.class_subset, groups=groups, metrics_kwargs=metrics_kwargs) for m in models]
    loader = _loader(dataset, batch_size, workers, device)
    t_warm = _warmup(nets, device, batch_size, warmup_input_size, amp, channels_last)
    skipped, loop, model_s = _stream(loader, nets, scorers, device=device, amp=amp, channels_last=channels_last,
                                     mean_std=mean_std, bar=_progress(loader, progress))
    config = {"device": str(device), "batch_size": batch_size, "workers": workers, "amp": amp or "none",
              "channels_last": bool(channels_last), "compile": bool(compile),
              "normalize_on_device": normalize is not None, "ece_bins": ece_bins, "world_size": dist.world()[1],
              "models_sharing_decode": len(models)}
    results = []
    for m, scorer, t_model in zip(models, scorers, model_s):
        t0 = time.perf_counter()
        metrics = scorer.compute()
        subgroups = scorer.subgroup_rows() if metrics.get("num_samples") else []
        records, logits, skip_idx = _gathered(scorer, skipped)
        num_scored = int(records.index.numel())
        timings = {"warmup_s": t_warm, **loop, "model_s": t_model, "compute_s": time.perf_counter() - t0,
                   "images_per_s": num_scored / loop["loop_s"] if loop["loop_s"] > 0 else 0.0}
        cfg = {**config, "class_subset": None if m.class_subset is None else len(m.class_subset),
               "topk": list(scorer.topk)}
        results.append(EvalResult(metrics=metrics, records=records, timings=timings, num_images=len(dataset),
                                  skipped=[(dataset.files[i], err) for i, err in skip_idx],
                                  num_scored=num_scored, logits=logits, config=cfg, subgroups=subgroups))
    return results


def evaluate(model: torch.nn.Module, dataset: EvalDataset, *, class_subset: torch.Tensor | None = None,
             **kw) -> EvalResult:
    """One model over ``dataset`` (see :func:`evaluate_models`)."""
    return evaluate_models([ModelSlot(model, class_subset)], dataset, **kw)[0]
