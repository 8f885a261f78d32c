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


def from_logits(logits: torch.Tensor, name: str, *, rows: torch.Tensor | None = None,
                targets: Sequence[int] | torch.Tensor | None = None, labels: Sequence[Sequence[int]] | None = None,
                topk: Sequence[int] = (1, 5), replicates: int = DEFAULT_REPLICATES, seed: int = 0,
                ece_bins: int = 15) -> Scores:
    """Scores of every metric from logits [M, C]: row i is dataset sample ``rows[i]`` (default i);
    ``targets`` [N] and ``labels`` (N lists of class ids) are indexed by dataset sample. Rows are
    paired across models by that dataset index."""
    m, c = logits.shape
    index = torch.arange(m) if rows is None else torch.as_tensor(rows, dtype=torch.int64)
    n = max(int(index.max()) + 1 if m else 0, len(labels) if labels is not None else 0,
            len(targets) if targets is not None else 0)
    tgt = None if targets is None else torch.as_tensor(list(targets) if not isinstance(targets, torch.Tensor)
                                                      else targets, dtype=torch.int64)
    sets = None
    if labels is not None:
        full = [list(v) for v in labels] + [[] for _ in range(n - len(labels))]
        sets = LabelSets.from_lists(full, c)
    if tgt is None and sets is None:
        raise ValueError(f"{name}: neither targets nor label sets are known for these logits; nothing to compare")
    topk = tuple(k for k in topk if k <= c)
    metrics = ClassificationMetrics(c, topk=topk, label_sets=sets, ece_bins=ece_bins, nonfinite="ignore",
                                    num_samples=None if sets is not None else n)
    bs = Bootstrap(metrics, replicates, seed=seed)
    for s in range(0, m, CHUNK):
        idx = index[s:s + CHUNK]
        bs.update(logits[s:s + CHUNK].float(), None if tgt is None else tgt[idx], idx)
    return from_bootstrap(bs, name)


def _logits_sources(path: str) -> list[dict]:
    """[{name, logits, rows, targets, labels}] of a logits file or store folder (dataset-indexed
    targets / labels)."""
    try:
        from ..harness.store import open_source
    except ImportError:  # a harness without logits stores: one file written by eval --save-logits
        from ..harness.engine import load_logits

        logits, meta = load_logits(path)
        rows = meta.get("sample_index")
        rows_t = torch.arange(logits.shape[0]) if rows is None else torch.as_tensor(rows, dtype=torch.int64)
        n = int(rows_t.max()) + 1 if rows_t.numel() else 0
        targets = labels = None
        if meta.get("target") is not None:
            targets = torch.zeros(n, dtype=torch.int64)
            targets[rows_t] = torch.as_tensor(meta["target"], dtype=torch.int64)
        if meta.get("labels") is not None:
            labels = [[] for _ in range(n)]
            for i, v in zip(rows_t.tolist(), meta["labels"]):
                labels[i] = v
        return [{"name": Path(path).stem.split(".")[0], "logits": logits, "rows": rows_t, "targets": targets,
                 "labels": labels}]
    return [{"name": s.name, "logits": s.logits, "rows": s.rows, "targets": s.targets, "labels": s.labels}
            for s in open_source(str(path))]


def load(path: str | os.PathLike, names: Sequence[str] | None = None, *, topk: Sequence[int] = (1, 5),
         replicates: int = DEFAULT_REPLICATES, seed: int = 0) -> list[Scores]:
    """Scores of every model in ``path``: a ``.json`` report (with per-image records), a logits file
    (``.npy`` / ``.pt`` / ``.safetensors`` ...) or a logits store folder (every model in it)."""
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"{path}: no such file or folder")
    if p.suffix == ".json":
        return [from_report(p, names[0] if names else None, topk=topk, replicates=replicates, seed=seed)]
    out = []
    for j, src in enumerate(_logits_sources(str(p))):
        name = names[j] if names and j < len(names) else src["name"]
        out.append(from_logits(src["logits"], name, rows=src["rows"], targets=src["targets"], labels=src["labels"],
                               topk=topk, replicates=replicates, seed=seed))
    return out
