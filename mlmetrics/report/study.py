"""Plots over many models (a study): top-1 vs ReaL top-1 and top-1 vs ASMA scatters (one
labelled point per model, the y = x line), and accuracy by number of labels per model. Every
number is read from the reports' metrics."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

SCATTERS = (("real_top1", "ReaL top-1", "study_top1_vs_real.png"),
            ("asma", "ASMA (mean accuracy over label-count subgroups)", "study_top1_vs_asma.png"))


def _plt():
    from ..harness.deps import require

    matplotlib = require("matplotlib", "--plots")
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _name(rep: dict, several_sources: bool) -> str:
    name = str(rep.get("model", {}).get("model"))
    return f"{name} [{rep.get('dataset', {}).get('labels')}]" if several_sources else name


def _scatter(plt, points: list[tuple[str, float, float]], ylabel: str, path: Path) -> str:
    fig, ax = plt.subplots(figsize=(6, 6))
    xs, ys = [p[1] for p in points], [p[2] for p in points]
    lo = max(0.0, min(xs + ys) - 0.05)
    hi = min(1.0, max(xs + ys) + 0.08)  # room for the labels
    ax.plot([lo, hi], [lo, hi], "k--", lw=1, label="y = x")
    ax.scatter(xs, ys, s=30, zorder=3)
    for name, x, y in points:
        ax.annotate(name, (x, y), textcoords="offset points", xytext=(4, 4), fontsize=8)
    ax.set(xlim=(lo, hi), ylim=(lo, hi), xlabel="top-1 accuracy (single label)", ylabel=ylabel,
           title=f"{ylabel.split(' (')[0]} vs top-1 over {len(points)} models")
    ax.set_aspect("equal")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return str(path)


def _by_label_count(plt, reports: Sequence[dict], names: Sequence[str], path: Path) -> str | None:
    series = [(n, r["metrics"]["subgroup_accuracy"], r["metrics"].get("subgroup_count", {}))
              for n, r in zip(names, reports) if r.get("metrics", {}).get("subgroup_accuracy")]
    if not series:
        return None
    counts = sorted({int(k) for _, acc, _ in series for k in acc})
    fig, ax = plt.subplots(figsize=(max(6, 1.2 * len(counts) + 3), 4.5))
    w = 0.8 / len(series)
    for j, (name, acc, _) in enumerate(series):
        xs = [i + (j - (len(series) - 1) / 2) * w for i, _ in enumerate(counts)]
        ax.bar(xs, [acc.get(str(c), acc.get(c)) or 0.0 for c in counts], width=w, label=name)
    n_by = series[0][2]
    ax.set_xticks(range(len(counts)), [f"{c} label{'s' if c != 1 else ''}\n(n={n_by.get(str(c), n_by.get(c, '?'))})"
                                       for c in counts])
    ax.set(ylim=(0, 1), ylabel="accuracy (top-|Y| contains the whole label set)",
           title="Accuracy by number of valid labels, per model")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return str(path)


def write_study_plots(reports: Sequence[dict], out_dir: str | os.PathLike) -> list[str]:
    """The study PNGs for ``reports`` (one per model and label source) in ``out_dir``; a plot
    whose metrics no report has is left out. Returns the files written."""
    plt = _plt()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    several = len({r.get("dataset", {}).get("labels") for r in reports}) > 1
    names = [_name(r, several) for r in reports]
    written = []
    for key, ylabel, file in SCATTERS:
        pts = [(n, r["metrics"]["top1"], r["metrics"][key]) for n, r in zip(names, reports)
               if r.get("metrics", {}).get("top1") is not None and r["metrics"].get(key) is not None]
        if pts:
            written.append(_scatter(plt, pts, ylabel, out / file))
    p = _by_label_count(plt, reports, names, out / "study_accuracy_by_label_count.png")
    if p:
        written.append(p)
    return written
