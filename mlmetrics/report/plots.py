"""PNG plots of a run (matplotlib, headless): reliability diagram, accuracy by label
count, single-label top-1 vs ReaL-style multi-label accuracy."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from .forest import row_errorbars


def _plt():
    try:
        import matplotlib

        matplotlib.use("Agg", force=True)
        import matplotlib.pyplot as plt
    except ImportError as e:  # pragma: no cover
        raise RuntimeError("--plots needs matplotlib: pip install 'mlmetrics[plots]'") from e
    return plt


def reliability(conf: np.ndarray, correct: np.ndarray, bins: int = 15):
    """(bin centres, accuracy per bin, mean confidence per bin, count per bin, ECE);
    equal-width bins over [0, 1], the top bin closed."""
    edges = np.linspace(0.0, 1.0, bins + 1)
    b = np.clip(np.searchsorted(edges, conf, side="right") - 1, 0, bins - 1)
    cnt = np.bincount(b, minlength=bins).astype(float)
    acc = np.bincount(b, weights=correct.astype(float), minlength=bins)
    cf = np.bincount(b, weights=conf, minlength=bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        acc, cf = acc / cnt, cf / cnt
    n = max(cnt.sum(), 1.0)
    ece = float(np.nansum(cnt / n * np.abs(acc - cf)))
    return (edges[:-1] + edges[1:]) / 2, acc, cf, cnt, ece


def write_plots(records, rep: dict, out_dir: str | os.PathLike, *, targets: torch.Tensor | None = None,
                bins: int = 15) -> list[str]:
    plt = _plt()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    conf = records.topk_probs[:, 0].numpy().astype(float)
    finite = np.isfinite(conf)
    has_t = targets is not None and records.target_rank.numel() == records.index.numel()
    has_l = records.hits.shape[1] > 0
    if has_t:
        correct, what = records.target_rank.numpy() == 0, "top-1 accuracy"
    elif has_l:
        correct, what = records.hits[:, 0].numpy(), "ReaL top-1 hit rate"
    else:
        correct, what = None, None

    if correct is not None:
        centres, acc, cf, cnt, ece = reliability(conf[finite], correct[finite], bins)
        fig, ax = plt.subplots(figsize=(5, 5))
        w = 1.0 / bins
        ok = cnt > 0
        ax.bar(centres[ok], acc[ok], width=w * 0.95, edgecolor="k", label=what)
        ax.bar(centres[ok], (cf - acc)[ok], bottom=acc[ok], width=w * 0.95, color="tab:red", alpha=0.3,
               label="gap to confidence")
        ax.plot([0, 1], [0, 1], "k--", lw=1)
        ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="confidence (max softmax prob)", ylabel=what,
               title=f"Reliability diagram (ECE {ece:.3f}, n={int(cnt.sum())})")
        ax.legend(loc="upper left")
        fig.tight_layout()
        p = out / "reliability.png"
        fig.savefig(p, dpi=100)
        plt.close(fig)
        written.append(str(p))

    rows = [r for r in rep.get("subgroups", []) if r["group"].endswith(("label", "labels", "labels)"))
            and not r["group"].startswith("0 labels")]
    if rows:
        fig, ax = plt.subplots(figsize=(6, 4))
        x = np.arange(len(rows))
        series = [(k, lab) for k, lab in (("top1", "top-1"), ("real_top1", "ReaL top-1"), ("real_top5", "ReaL top-5"))
                  if any(r.get(k) is not None for r in rows)]
        w = 0.8 / max(len(series), 1)
        for j, (k, lab) in enumerate(series):
            ax.bar(x + (j - (len(series) - 1) / 2) * w, [r.get(k) or 0 for r in rows], width=w, label=lab)
            row_errorbars(ax, x + (j - (len(series) - 1) / 2) * w, rows, k)  # with eval --intervals
        ax.set_xticks(x, [f"{r['group']}\n(n={r['n']})" for r in rows])
        ax.set(ylim=(0, 1), ylabel="accuracy", title="Accuracy by number of valid labels")
        ax.legend()
        fig.tight_layout()
        p = out / "accuracy_by_label_count.png"
        fig.savefig(p, dpi=100)
        plt.close(fig)
        written.append(str(p))

    allrow = next((r for r in rep.get("subgroups", []) if r["group"] == "all"), None)
    if allrow is not None and (has_t or has_l):
        keys = [(k, lab) for k, lab in (("top1", "top-1"), ("real_top1", "ReaL top-1"), ("top5", "top-5"),
                                        ("real_top5", "ReaL top-5")) if allrow.get(k) is not None]
        fig, ax = plt.subplots(figsize=(5, 4))
        vals = [allrow[k] for k, _ in keys]
        bars = ax.bar([lab for _, lab in keys], vals,
                      color=["tab:blue" if not k.startswith("real") else "tab:orange" for k, _ in keys])
        for b_, v in zip(bars, vals):
            ax.text(b_.get_x() + b_.get_width() / 2, v + 0.01, f"{v:.3f}", ha="center")
        ax.set(ylim=(0, 1.08), ylabel="accuracy",
               title="Single-label vs multi-label (ReaL-style) accuracy")
        fig.tight_layout()
        p = out / "top1_vs_real.png"
        fig.savefig(p, dpi=100)
        plt.close(fig)
        written.append(str(p))
    return written
