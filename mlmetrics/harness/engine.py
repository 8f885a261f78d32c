"""Batched inference streamed into :class:`mlmetrics.metrics.ClassificationMetrics`."""
from __future__ import annotations

import contextlib
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
import torch

from ..ops import topk_stats
from ..data.labels import LabelSets
from .data import EvalDataset, collate_skip

AMP_DTYPES = {"none": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def resolve_device(device: str | None) -> torch.device:
    """``auto``/None: CUDA when available, else CPU."""
    if device in (None, "", "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    d = torch.device(device)
    if d.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"--device {device}: CUDA is not available on this machine")
    return d


@dataclass
class Records:
    """Compact per-sample results (what the report's tables and plots need; never the logits).

    index [M] dataset index of each scored row; topk_probs / topk_indices [M, k];
    hits [M, k] (label-set hits, [M, 0] without sets); target_rank [M] ([0] without targets).
    """

    index: torch.Tensor
    topk_probs: torch.Tensor
    topk_indices: torch.Tensor
    hits: torch.Tensor
    target_rank: torch.Tensor
    nonfinite: torch.Tensor | None = None  # bool [M]: softmax undefined (excluded from metrics)


class Scorer:
    """Feeds logits batches to ``ClassificationMetrics`` and keeps :class:`Records`.

    ``targets`` / ``label_sets``: for the whole dataset (indexed by ``update``'s ``index``).
    With ``keep_logits`` the logits are also gathered on the CPU (for ``--save-logits``).
    """

    def __init__(self, num_classes: int, *, targets: torch.Tensor | None = None,
                 label_sets: LabelSets | None = None, topk: Sequence[int] = (1, 5), ece_bins: int = 15,
                 device: torch.device | str = "cpu", keep_k: int = 5, keep_logits: bool = False,
                 num_samples: int | None = None, class_subset: torch.Tensor | None = None,
                 metrics_kwargs: dict | None = None):
        from ..metrics import ClassificationMetrics

        self.device = torch.device(device)
        self.num_classes = int(num_classes)  # logits width
        self.class_subset = None if class_subset is None else torch.as_tensor(class_subset, dtype=torch.int64)
        scored = self.num_classes if self.class_subset is None else self.class_subset.numel()
        self.topk = tuple(int(k) for k in topk if int(k) <= scored)
        self.keep_k = min(int(keep_k), scored)
        self._subset_dev = None if self.class_subset is None else self.class_subset.to(self.device)
        self.targets = None if targets is None else targets.to(self.device)
        self.label_sets = label_sets
        self._ls_dev = None if label_sets is None else label_sets.to(self.device)
        kw = {"nonfinite": "ignore", **(metrics_kwargs or {})}
        if label_sets is None and num_samples is not None:
            kw.setdefault("num_samples", int(num_samples))
        self._pass_index = label_sets is not None or "num_samples" in kw
        if self.class_subset is not None:
            kw["class_subset"] = self.class_subset
        self.metrics = ClassificationMetrics(self.num_classes, topk=self.topk, label_sets=label_sets,
                                             ece_bins=ece_bins, **kw)
        self.keep_logits = keep_logits
        self._logits: list[torch.Tensor] = []
        self._rec: list[tuple] = []
        self.num_scored = 0
        self.reused_metric_read = False

    def update(self, logits: torch.Tensor, index: torch.Tensor) -> None:
        if isinstance(logits, (tuple, list)):
            logits = logits[0]
        if logits.dim() != 2 or logits.shape[1] != self.num_classes:
            raise ValueError(f"model output has shape {tuple(logits.shape)}, expected [N, {self.num_classes}]")
        index = index.to(logits.device, non_blocking=True)
        target = None if self.targets is None else self.targets[index]
        st = self.metrics.update(logits, target=target, sample_index=index if self._pass_index else None)
        cfg = getattr(self.metrics, "cfg", None)
        reuse = (st is not None and getattr(cfg, "with_softmax", False) and st.topk_indices.shape[1] >= self.keep_k
                 and (self._ls_dev is None or st.hits.shape[1] >= self.keep_k))
        if not reuse:  # the metrics' one read does not hold the top-5 probabilities: read again
            sets = None if self._ls_dev is None else self._ls_dev[index]
            st = topk_stats(logits, self.keep_k, target=target, label_sets=sets, class_subset=self._subset_dev)
        k = self.keep_k
        self._rec.append((index, st.topk_probs[:, :k], st.topk_indices[:, :k], st.hits[:, :k],
                          st.target_rank, st.nonfinite))
        self.reused_metric_read = reuse
        if self.keep_logits:
            self._logits.append(logits.detach().float().cpu())
        self.num_scored += logits.shape[0]

    def compute(self) -> dict[str, Any]:
        if self.num_scored == 0:  # every file was undecodable: nothing to score
            return {"num_samples": 0}
        return self.metrics.compute()

    def records(self) -> Records:
        if not self._rec:
            z = torch.zeros
            return Records(z(0, dtype=torch.int64), z(0, self.keep_k), z(0, self.keep_k, dtype=torch.int64),
                           z(0, self.keep_k if self.label_sets is not None else 0, dtype=torch.bool),
                           z(0, dtype=torch.int64), z(0, dtype=torch.bool))
        cols = [torch.cat(c).cpu() for c in zip(*self._rec)]
        return Records(*cols)

    def logits(self) -> torch.Tensor | None:
        if not self.keep_logits:
            return None
        return torch.cat(self._logits) if self._logits else torch.zeros(0, self.num_classes)


@dataclass
class EvalResult:
    metrics: dict[str, Any]
    records: Records
    skipped: list[tuple[str, str]]
    timings: dict[str, float]
    num_images: int
    num_scored: int
    logits: torch.Tensor | None = None
    config: dict = field(default_factory=dict)


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


def evaluate(model: torch.nn.Module, dataset: EvalDataset, *, device: str | torch.device | None = None,
             batch_size: int = 128, workers: int | None = None, amp: str | None = None,
             channels_last: bool = False, topk: Sequence[int] = (1, 5), ece_bins: int = 15,
             keep_logits: bool = False, progress: bool = True, class_subset: torch.Tensor | None = None,
             compile: bool = False, normalize: tuple[Sequence[float], Sequence[float]] | None = None,
             warmup_input_size: Sequence[int] | None = None, metrics_kwargs: dict | None = None) -> EvalResult:
    """Run ``model`` over ``dataset`` and score it. Logits are streamed into the metrics
    (and kept on the CPU only with ``keep_logits``).

    ``normalize=(mean, std)``: the dataset yields uint8 images (timm's ``use_prefetcher``
    transform) and they are converted and normalised on ``device`` (as timm's prefetcher
    does: 4x less to decode-side work and host-to-device traffic).
    ``warmup_input_size`` (C, H, W): on CUDA, one forward pass on a dummy batch before the
    timed loop (cudnn autotuning, torch.compile), as timm's validate.py does."""
    device = resolve_device(device) if not isinstance(device, torch.device) else device
    workers = default_workers() if workers is None else int(workers)
    num_classes = int(getattr(model, "num_classes", 0) or 0)
    if num_classes <= 0:
        raise ValueError("the model has no classifier (num_classes == 0)")
    if device.type == "cuda":  # as timm's validate.py
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
    mean_t = std_t = None
    if normalize is not None:
        mean_t = torch.tensor([255.0 * v for v in normalize[0]], device=device).view(1, -1, 1, 1)
        std_t = torch.tensor([255.0 * v for v in normalize[1]], device=device).view(1, -1, 1, 1)
    model = model.eval().to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    if compile:
        model = torch.compile(model)
    scorer = Scorer(num_classes, targets=dataset.targets, label_sets=dataset.label_sets, topk=topk,
                    ece_bins=ece_bins, device=device, keep_logits=keep_logits, num_samples=len(dataset),
                    class_subset=class_subset, metrics_kwargs=metrics_kwargs)
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=batch_size, shuffle=False, num_workers=workers,
        pin_memory=device.type == "cuda", collate_fn=collate_skip, drop_last=False,
        persistent_workers=False, **({"prefetch_factor": 4} if workers > 0 else {}))
    t_warm = time.perf_counter()
    if warmup_input_size is not None and device.type == "cuda":
        with torch.inference_mode(), _autocast(device, amp):
            x = torch.zeros((batch_size, *warmup_input_size), device=device)
            model(x.contiguous(memory_format=torch.channels_last) if channels_last else x)
        torch.cuda.synchronize(device)
    t_warm = time.perf_counter() - t_warm
    skipped: list[tuple[str, str]] = []
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(dataset), unit="img", desc="eval", dynamic_ncols=True, leave=True)
    t_start = time.perf_counter()
    data_wait = 0.0
    first_batch_s = None
    t_fetch = time.perf_counter()
    with torch.inference_mode():
        for batch in loader:
            data_wait += time.perf_counter() - t_fetch
            for i, err in batch["failed"]:
                skipped.append((dataset.files[i], err))
            n = len(batch["failed"])
            if batch["images"] is not None:
                x = batch["images"].to(device, non_blocking=True)
                if channels_last:
                    x = x.contiguous(memory_format=torch.channels_last)
                if mean_t is not None:
                    x = x.float().sub_(mean_t).div_(std_t)
                with _autocast(device, amp):
                    logits = model(x)
                scorer.update(logits, batch["index"])
                n += x.shape[0]
            if first_batch_s is None:
                first_batch_s = time.perf_counter() - t_start
            if bar is not None:
                bar.update(n)
                el = time.perf_counter() - t_start
                bar.set_postfix_str(f"{bar.n / max(el, 1e-9):.1f} img/s, skipped {len(skipped)}", refresh=False)
            t_fetch = time.perf_counter()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
    t_loop = time.perf_counter() - t_start
    if bar is not None:
        bar.close()
    t0 = time.perf_counter()
    metrics = scorer.compute()
    records = scorer.records()
    t_compute = time.perf_counter() - t0
    timings = {
        "warmup_s": t_warm,
        "loop_s": t_loop,
        "data_wait_s": data_wait,
        "first_batch_s": first_batch_s or 0.0,
        "compute_s": t_compute,
        "images_per_s": scorer.num_scored / t_loop if t_loop > 0 else 0.0,
    }
    config = {"device": str(device), "batch_size": batch_size,
              "class_subset": None if class_subset is None else len(class_subset), "workers": workers, "amp": amp or "none",
              "channels_last": bool(channels_last), "compile": bool(compile),
              "normalize_on_device": normalize is not None, "topk": list(scorer.topk), "ece_bins": ece_bins}
    return EvalResult(metrics=metrics, records=records, skipped=skipped, timings=timings,
                      num_images=len(dataset), num_scored=scorer.num_scored,
                      logits=scorer.logits(), config=config)


# ---------------------------------------------------------------------------------------
# Saved logits
# ---------------------------------------------------------------------------------------
def save_logits(path: str | os.PathLike, logits: torch.Tensor, *, images: Sequence[str],
                sample_index: torch.Tensor, targets: torch.Tensor | None,
                label_sets: LabelSets | None, extra: dict | None = None) -> list[str]:
    """Write ``logits`` [M, C] (rows in scoring order) so that ``mlmetrics rescore`` can
    re-score them: ``.pt`` holds a dict with everything; ``.npy`` holds the float32 array and
    a ``<path>.meta.json`` sidecar holds image names, targets and label sets."""
    path = Path(path)
    idx = sample_index.cpu().long()
    meta = {
        "images": [images[i] for i in idx.tolist()],
        "sample_index": idx.tolist(),
        "target": None if targets is None else targets.cpu()[idx].tolist(),
        "labels": None if label_sets is None else label_sets[idx].tolist(),
        "num_classes": int(logits.shape[1]),
        **(extra or {}),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".pt":
        torch.save({"logits": logits.float().cpu(), **meta}, path)
        return [str(path)]
    if path.suffix != ".npy":
        raise ValueError(f"--save-logits: use a .npy or .pt file name, got {path.name}")
    np.save(path, logits.float().cpu().numpy())
    side = Path(str(path) + ".meta.json")
    with open(side, "w") as f:
        json.dump(meta, f)
    return [str(path), str(side)]


def load_logits(path: str | os.PathLike) -> tuple[torch.Tensor, dict]:
    """(logits [M, C] float32, meta dict) from a file written by :func:`save_logits`
    (or any [M, C] ``.npy`` / ``.pt`` tensor; meta is then empty)."""
    path = Path(path)
    meta: dict = {}
    if path.suffix == ".npy":
        logits = torch.from_numpy(np.load(path))
        side = Path(str(path) + ".meta.json")
        if side.is_file():
            with open(side) as f:
                meta = json.load(f)
    else:
        obj = torch.load(path, map_location="cpu", weights_only=True)
        if isinstance(obj, torch.Tensor):
            logits = obj
        else:
            logits = obj["logits"]
            meta = {k: v for k, v in obj.items() if k != "logits"}
    if logits.dim() != 2:
        raise ValueError(f"{path}: logits must be [N, C], got shape {tuple(logits.shape)}")
    return logits, meta


def score_logits(logits: torch.Tensor, *, targets: torch.Tensor | None = None,
                 label_sets: LabelSets | None = None, topk: Sequence[int] = (1, 5), ece_bins: int = 15,
                 chunk: int = 4096, device: str | torch.device = "cpu", class_subset: torch.Tensor | None = None,
                 metrics_kwargs: dict | None = None) -> tuple[dict, Records]:
    """Score saved logits [M, C] (row i is sample i of ``targets`` / ``label_sets``)."""
    device = torch.device(device)
    scorer = Scorer(logits.shape[1], targets=targets, label_sets=label_sets, topk=topk, ece_bins=ece_bins,
                    device=device, num_samples=logits.shape[0], class_subset=class_subset,
                    metrics_kwargs=metrics_kwargs)
    for s in range(0, logits.shape[0], chunk):
        idx = torch.arange(s, min(s + chunk, logits.shape[0]), dtype=torch.int64)
        scorer.update(logits[s:s + chunk].to(device), idx)
    return scorer.compute(), scorer.records()

