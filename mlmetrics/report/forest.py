"""Plots of intervals (matplotlib, headless): a forest plot of paired differences between models,
and per-subgroup accuracies with their bootstrap error bars."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import numpy as np

VERDICT_COLORS = {"better": "#1a7f37", "worse": "#cf222e", "none": "#57606a"}


def _plt():
    from .plots import _plt as plt

    return plt()


def _finite(*v) -> bool:
    return all(x is not None and isinstance(x, (int, float)) and math.isfinite(x) for x in v)


def forest_plot(rows: Sequence[dict], path: str, title: str | None = None) -> str:
    """One line per (model, metric) of :attr:`Comparison.rows`: the difference (model - baseline)
    and its interval, a zero line; green where the model is better, red where the baseline is."""
    plt = _plt()
    rows = [r for r in rows if _finite(r.get("difference"), r.get("low"), r.get("high"))]
    if not rows:
        raise ValueError("no finite difference to plot")
    models = list(dict.fromkeys(r["model"] for r in rows))
    labels = [r["metric"] if len(models) == 1 else f"{r['model']}: {r['metric']}" for r in rows]
    y = np.arange(len(rows))[::-1]
    fig, ax = plt.subplots(figsize=(7, 0.34 * len(rows) + 1.4))
    for yi, r in zip(y, rows):
        v = r.get("verdict", "")
        c = VERDICT_COLORS["none"]
        if v.endswith("better"):
            c = VERDICT_COLORS["better"] if v.startswith(str(r["model"])) else VERDICT_COLORS["worse"]
        ax.plot([r["low"], r["high"]], [yi, yi], color=c, lw=2)
        ax.plot([r["difference"]], [yi], "o", color=c, ms=5)
    ax.axvline(0.0, color="k", lw=0.8, ls="--")
    ax.set_yticks(y)
    ax.set_yticklabels(labels, fontsize=8)
    base = rows[0]["baseline"]
    lvl = rows[0].get("level", 0.95)
    ax.set_xlabel(f"difference vs {base} ({100 * lvl:g}% paired bootstrap interval)")
    ax.set_title(title or (f"{', '.join(map(str, models))} vs {base}"), fontsize=10)
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return str(path)


def subgroup_errorbars(ax, intervals: dict, key: str = "subgroup_accuracy", x_of=None, color="k") -> int:
    """Draw the bootstrap intervals ``intervals[f"{key}[g]"]`` as error bars at x = ``x_of(g)``
    (default: the label count g) on ``ax``; returns how many were drawn."""
    n = 0
    for name, iv in intervals.items():
        if not (name.startswith(f"{key}[") and name.endswith("]")):
            continue
        g = name[len(key) + 1:-1]
        if not _finite(iv.get("estimate"), iv.get("low"), iv.get("high")):
            continue
        x = x_of(g) if x_of is not None else float(g)
        if x is None:
            continue
        e = iv["estimate"]
        ax.errorbar([x], [e], yerr=[[e - iv["low"]], [iv["high"] - e]], fmt="none", ecolor=color, capsize=3, lw=1)
        n += 1
    return n


def row_errorbars(ax, xs, rows: Sequence[dict], key: str) -> int:
    """Error bars at ``xs`` for ``rows[j]["intervals"][key]`` ([low, high], as the subgroup rows of
    a report hold with intervals) around ``rows[j][key]``; returns how many were drawn."""
    n = 0
    for x, r in zip(xs, rows):
        iv = (r.get("intervals") or {}).get(key)
        e = r.get(key)
        if iv and _finite(e, *iv):
            ax.errorbar([x], [e], yerr=[[e - iv[0]], [iv[1] - e]], fmt="none", ecolor="k", capsize=3, lw=1)
            n += 1
    return n


def subgroup_plot(values: dict, intervals: dict, path: str, key: str = "subgroup_accuracy",
                  title: str | None = None) -> str:
    """Bars of ``values[key]`` ({label count: accuracy}) with the bootstrap error bars of
    ``intervals`` (a ``Bootstrap.compute()`` result's ``"intervals"``)."""
    plt = _plt()
    groups = sorted(values.get(key, {}), key=lambda g: float(g))
    if not groups:
        raise ValueError(f"no {key} to plot")
    xs = [float(g) for g in groups]
    fig, ax = plt.subplots(figsize=(5, 3.6))
    ax.bar(xs, [values[key][g] for g in groups], width=0.6, color="#8ab6e8", edgecolor="k")
    subgroup_errorbars(ax, intervals, key)
    counts = values.get("subgroup_count", {})
    ax.set_xticks(xs)
    ax.set_xticklabels([f"{g}\n(n={counts.get(g, '?')})" for g in groups], fontsize=8)
    ax.set_xlabel("labels per image")
    ax.set_ylabel(key.replace("_", " "))
    ax.set_ylim(0, 1.05)
    ax.set_title(title or f"{key.replace('_', ' ')} by label count", fontsize=10)
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return str(path)
