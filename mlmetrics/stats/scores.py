"""Build the :class:`~mlmetrics.stats.compare.Scores` of one model for a comparison: from a
:class:`~mlmetrics.stats.Bootstrap`, from saved logits (``eval --save-logits``), or from the
per-image records of a saved JSON report (``eval --per-image --out``)."""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Sequence

import torch

from ..data.labels import LabelSets
from ..functional import classification_rows
from ..metrics import ClassificationMetrics
from .bootstrap import DEFAULT_REPLICATES, PoissonBootstrap
from .compare import Scores
from .metrics import CHUNK, Bootstrap, scalar_metrics


def record_hits(metrics: ClassificationMetrics) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """{metric: (sample index [M], hit bool [M])} of the per-sample hit metrics (``top{k}``,
    ``real_top{k}``, ``variable_topk_strict``) from a dedupe ``ClassificationMetrics``' records."""
    if not metrics.dedupe:
        return {}
    rec = metrics.state["records"][: metrics.num_samples].cpu()
    idx = (rec[:, 0] >= 0).nonzero()[:, 0]
    st, target, has_target, sizes, ok = metrics.records.decode(rec[idx])
    cfg = metrics.cfg
    terms = classification_rows(cfg, st, target, sizes if cfg.has_labels else None, has_target=has_target,
                                keep=ok).terms
    col = lambda name: terms[name][0] if name in terms else None  # noqa: E731
    out = {}
    if col("correct") is not None:
        scored = col("n_target") > 0
        if bool(scored.any()):
            for j, k in enumerate(cfg.topk):
                out[f"top{k}"] = (idx[scored], col("correct")[scored, j] > 0)
    if col("real") is not None:
        ne = col("n_labeled") > 0
        for j, k in enumerate(cfg.topk):
            out[f"real_top{k}"] = (idx[ne], col("real")[ne, j] > 0)
    if col("var_strict") is not None:
        v = col("n_var") > 0
        out["variable_topk_strict"] = (idx[v], col("var_strict")[v] > 0)
    return out


def from_bootstrap(bs: Bootstrap, name: str, sync: bool | None = None) -> Scores:
    est = scalar_metrics(bs.metrics.compute(sync))
    return Scores(name=name, estimates=est, replicates=bs.replicate_values(sync), seed=bs.seed,
                  hits=record_hits(bs.metrics), keys="sample_index", num_samples=bs.metrics.num_samples)


def from_hits(name: str, keys: torch.Tensor, hits: dict[str, tuple[torch.Tensor, torch.Tensor]],
              replicates: int = DEFAULT_REPLICATES, seed: int = 0, key_kind: str = "image_name") -> Scores:
    """Scores of per-sample hit metrics: ``hits[metric] = (scored bool [M], hit bool [M])`` over
    the M samples with int64 ``keys`` [M]; each metric is the mean hit over its scored samples."""
    shapes = {}
    for k in hits:
        shapes[f"{k}.n"] = ()
        shapes[f"{k}.hit"] = ()
    boot = PoissonBootstrap(shapes, replicates, seed)
    est, per = {}, {}
    for s in range(0, keys.numel(), CHUNK):
        kk = keys[s:s + CHUNK]
        cols, layout = [], {}
        for k, (scored, hit) in hits.items():
            sc, h = scored[s:s + CHUNK].to(torch.float64), hit[s:s + CHUNK].to(torch.float64)
            layout[f"{k}.n"] = slice(len(cols), len(cols) + 1)
            layout[f"{k}.hit"] = slice(len(cols) + 1, len(cols) + 2)
            cols += [sc, sc * h]
        boot.add(kk, torch.stack(cols, 1), layout)
    reps = {}
    for k, (scored, hit) in hits.items():
        n = int(scored.sum())
        if n == 0:
            continue
        est[k] = float((scored & hit).sum()) / n
        num, den = boot.sums[boot.slices[f"{k}.hit"]][0], boot.sums[boot.slices[f"{k}.n"]][0]
        reps[k] = torch.where(den > 0, num / den.clamp(min=1e-300), torch.full_like(den, float("nan")))
        per[k] = (keys[scored], hit[scored])
    return Scores(name=name, estimates=est, replicates=reps, seed=seed, hits=per, keys=key_kind,
                  num_samples=int(keys.numel()))


def name_key(name: str) -> int:
    """A stable int64 key of an image name (the first 8 bytes of its BLAKE2b hash)."""
    v = int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8).digest(), "little")
    return v - (1 << 64) if v >= 1 << 63 else v


def from_report(report: dict | str | os.PathLike, name: str | None = None, topk: Sequence[int] = (1, 5),
                replicates: int = DEFAULT_REPLICATES, seed: int = 0) -> Scores:
    """Scores from a JSON report's ``per_image`` records (written with ``--per-image``): top-k
    (k <= the saved top-5), ReaL top-k and strict variable top-k (sets of at most 5 labels) per
    image; samples are paired by image name."""
    if not isinstance(report, dict):
        path = Path(report)
        with open(path) as f:
            report = json.load(f)
        name = name or path.stem
    rows = report.get("per_image")
    if not rows:
        raise ValueError(f"{name}: the report has no per-image records; re-run eval with --per-image (or compare "
                         "saved logits: eval --save-logits)")
    keys = torch.tensor([name_key(r["image"]) for r in rows], dtype=torch.int64)
    if torch.unique(keys).numel() != keys.numel():
        raise ValueError(f"{name}: the report lists an image twice")
    saved = min(len(r["top5"]) for r in rows)
    tops = [[e["index"] for e in r["top5"]] for r in rows]
    hits: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
    if all("target" in r for r in rows):
        for k in topk:
            if k <= saved:
                hit = torch.tensor([r["target"] in t[:k] for r, t in zip(rows, tops)])
                hits[f"top{k}"] = (torch.ones_like(hit), hit)
    labels = [set(r.get("labels") or []) for r in rows]
    if any(labels):
        ne = torch.tensor([len(s) > 0 for s in labels])
        for k in topk:
            if k <= saved:
                hits[f"real_top{k}"] = (ne, torch.tensor([bool(s & set(t[:k])) for s, t in zip(labels, tops)]))
        var_ok = torch.tensor([0 < len(s) <= saved for s in labels])
        hits["variable_topk_strict"] = (var_ok, torch.tensor([s <= set(t[:len(s)]) for s, t in zip(labels, tops)]))
    if not hits:
        raise ValueError(f"{name}: the per-image records hold neither targets nor label sets")
    return from_hits(name or str(report.get("model", {}).get("model", "model")), keys, hits, replicates, seed)


def from_logits(path: str | os.PathLike, name: str | None = None, topk: Sequence[int] = (1, 5),
                replicates: int = DEFAULT_REPLICATES, seed: int = 0, level: float = 0.95,
                label_sets: LabelSets | None = None, targets: torch.Tensor | None = None, ece_bins: int = 15) -> Scores:
    """Scores of every metric from logits saved by ``eval --save-logits`` (targets and label sets
    from the saved metadata unless given; rows paired by the saved dataset ``sample_index``)."""
    from ..harness.engine import load_logits

    logits, meta = load_logits(path)
    m, c = logits.shape
    index = torch.as_tensor(meta.get("sample_index") or list(range(m)), dtype=torch.int64)
    n = int(index.max()) + 1 if m else 0
    if targets is None and meta.get("target") is not None:
        targets = torch.as_tensor(meta["target"], dtype=torch.int64)
    if label_sets is None and meta.get("labels") is not None:
        full: list[list[int]] = [[] for _ in range(n)]
        for i, s in zip(index.tolist(), meta["labels"]):
            full[i] = list(s)
        label_sets = LabelSets.from_lists(full, c)
    if targets is None and label_sets is None:
        raise ValueError(f"{path}: no targets or label sets saved with the logits; nothing to compare")
    topk = tuple(k for k in topk if k <= c)
    metrics = ClassificationMetrics(c, topk=topk, label_sets=label_sets, ece_bins=ece_bins, nonfinite="ignore",
                                    num_samples=None if label_sets is not None else n)
    bs = Bootstrap(metrics, replicates, level, seed)
    for s in range(0, m, CHUNK):
        t = None if targets is None else targets[s:s + CHUNK]
        bs.update(logits[s:s + CHUNK], t, index[s:s + CHUNK])
    return from_bootstrap(bs, name or Path(path).stem.split(".")[0])


def load(path: str | os.PathLike, name: str | None = None, **kw) -> Scores:
    """Scores from a ``.json`` report or ``.npy`` / ``.pt`` saved logits."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    if p.suffix == ".json":
        kw.pop("level", None)
        return from_report(p, name, **{k: v for k, v in kw.items() if k in ("topk", "replicates", "seed")})
    if p.suffix in (".npy", ".pt"):
        return from_logits(p, name, **kw)
    raise ValueError(f"{path}: compare reads .json reports (with --per-image) or .npy/.pt saved logits")
