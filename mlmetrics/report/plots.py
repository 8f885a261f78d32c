"""PNG plots of a run (matplotlib, headless), drawn from the numbers the metrics computed (a
:meth:`ClassificationMetrics.compute` dict, or the report's JSON ``"metrics"``); nothing here
recomputes a metric.

* ``reliability``: accuracy and mean confidence per ECE bin (the metric's own bins, the bin of
  confidence exactly 1.0 included), the gap coloured by its sign, each bin's count on the bar and
  in a count panel below;
* ``label_count``: strict / fractional variable top-k (k = |Y|) per label-count subgroup, with
  ASMA (their unweighted mean) as a line;
* ``accuracy_by_label_count`` (from the report's subgroup table) and ``summary`` (top-k and
  ReaL top-k side by side).
"""
from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np

from .forest import row_errorbars

ACC_COLOUR = "tab:blue"
OVER_COLOUR = "tab:red"     # confidence above accuracy
UNDER_COLOUR = "tab:green"  # confidence below accuracy
REAL_COLOUR = "tab:orange"
KINDS = ("reliability", "label_count", "summary")


def _plt():
    try:
        import matplotlib

        matplotlib.use("Agg", force=True)
        import matplotlib.pyplot as plt
    except ImportError as e:  # pragma: no cover
        raise RuntimeError("plots need matplotlib: pip install 'mlmetrics[plots]'") from e
    return plt


def _vec(metrics: dict, key: str) -> np.ndarray:
    v = metrics[key]
    v = v.detach().cpu().tolist() if hasattr(v, "detach") else v
    return np.array([math.nan if x is None else float(x) for x in v], dtype=float)


def _num(metrics: dict, key: str) -> float:
    v = metrics.get(key)
    return math.nan if v is None else float(v)


def _groups(metrics: dict, key: str) -> dict[int, float]:
    """``{label count: value}`` (compute() has int keys, the JSON string keys)."""
    return {int(m): (math.nan if v is None else float(v)) for m, v in (metrics.get(key) or {}).items()}


def _topk_key(k: str) -> bool:
    """``top{k}`` or ``real_top{k}``."""
    head, _, tail = k.rpartition("top")
    return head in ("", "real_") and tail.isdigit()


def _label_bars(ax, bars, values, fmt="{:.3f}") -> None:
    """Write each bar's value on it, so a zero-height bar still reads as a value, not a gap."""
    for b, v in zip(bars, values):
        ax.annotate("n/a" if math.isnan(v) else fmt.format(v), (b.get_x() + b.get_width() / 2, 0 if math.isnan(v) else v),
                    xytext=(0, 2), textcoords="offset points", ha="center", va="bottom", fontsize=8)


def reliability_figure(metrics: dict, *, what: str = "top-1 accuracy"):
    """``(fig, (ax, ax_count))``: the reliability diagram of ``metrics`` (needs the ECE bins:
    ``ece_bin_edges`` / ``_count`` / ``_accuracy`` / ``_confidence``, present with targets)."""
    if "ece_bin_count" not in metrics:
        raise ValueError("no ECE bins in these metrics: a reliability diagram needs targets and the "
                         "'calibration' group")
    plt = _plt()
    edges, cnt = _vec(metrics, "ece_bin_edges"), _vec(metrics, "ece_bin_count")
    acc, conf = _vec(metrics, "ece_bin_accuracy"), _vec(metrics, "ece_bin_confidence")
    nb = edges.size - 1
    # bins 0..B-1 are [e_b, e_b+1); the metric's bin B holds confidence exactly 1.0, drawn at 1
    left = np.append(edges[:-1], 1.0)
    width = np.append(np.diff(edges), 0.25 / nb)
    show = cnt > 0
    fig, (ax, axc) = plt.subplots(2, 1, figsize=(5.5, 6.2), sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    bars = ax.bar(left[show], acc[show], width=width[show] * 0.92, align="edge", color=ACC_COLOUR,
                  edgecolor="black", linewidth=0.5, label=what)
    gap = conf - acc
    for sign, colour, label in ((1, OVER_COLOUR, "over-confident (confidence > accuracy)"),
                                (-1, UNDER_COLOUR, "under-confident (confidence < accuracy)")):
        m = show & (np.sign(gap) == sign)
        if m.any():  # solid colours (no alpha): what the legend shows is what the bars show
            ax.bar(left[m], np.abs(gap[m]), bottom=np.minimum(acc, conf)[m], width=width[m] * 0.92, align="edge",
                   color=colour, edgecolor="black", linewidth=0.5, hatch="//", label=label)
    ax.plot([0, 1], [0, 1], "k--", lw=1, label="perfect calibration")
    for b, a, c, n in zip(bars, acc[show], conf[show], cnt[show]):
        ax.annotate(f"{int(n)}", (b.get_x() + b.get_width() / 2, max(a, c)), xytext=(0, 2),
                    textcoords="offset points", ha="center", va="bottom", fontsize=7, rotation=90)
    n_t = int(_num(metrics, "num_targets")) if not math.isnan(_num(metrics, "num_targets")) else int(cnt.sum())
    ax.set(xlim=(0, 1.0 + 0.3 / nb), ylim=(0, 1.12), ylabel=what,
           title=f"Reliability: ECE {_num(metrics, 'ece'):.3f}, MCE {_num(metrics, 'mce'):.3f}, "
                 f"{nb} bins, n={n_t}")
    ax.legend(loc="upper left", fontsize=8)
    axc.bar(left[show], cnt[show], width=width[show] * 0.92, align="edge", color="0.5")
    axc.set(ylabel="rows per bin", xlabel="confidence (max softmax probability); bar labels: rows in the bin")
    if cnt.max() > 50 * max(cnt[show].min(), 1):  # counts spanning decades: a 1-row bin stays visible
        axc.set_yscale("log")
        axc.set_ylim(bottom=0.5)
    if cnt[-1] > 0:
        axc.annotate("p = 1", (1.0 + width[-1] / 2, cnt[-1]), xytext=(0, 2), textcoords="offset points",
                     ha="right", va="bottom", fontsize=7)
    fig.tight_layout()
    return fig, (ax, axc)


def label_count_figure(metrics: dict):
    """``(fig, ax)``: variable top-k accuracy (k = |Y|, strict and fractional) per label-count
    subgroup, ASMA as a line (needs label sets)."""
    strict = _groups(metrics, "subgroup_accuracy")
    if not strict:
        raise ValueError("no label-count subgroups in these metrics: they need label sets")
    plt = _plt()
    frac, count = _groups(metrics, "subgroup_accuracy_fractional"), _groups(metrics, "subgroup_count")
    ms = sorted(strict)
    cap = metrics.get("subgroup_cap")
    x = np.arange(len(ms))
    fig, ax = plt.subplots(figsize=(max(5.0, 1.1 * len(ms) + 2), 4.2))
    w = 0.38
    for j, (vals, label, colour) in enumerate(((strict, "strict (all |Y| labels in the top-|Y|)", ACC_COLOUR),
                                               (frac, "fractional (share of Y in the top-|Y|)", REAL_COLOUR))):
        v = [vals.get(m, math.nan) for m in ms]
        bars = ax.bar(x + (j - 0.5) * w, np.nan_to_num(v), width=w, color=colour, label=label)
        _label_bars(ax, bars, v)
    asma = _num(metrics, "asma")
    if not math.isnan(asma):
        ax.axhline(asma, color="black", ls="--", lw=1, label=f"ASMA {asma:.3f} (mean of the strict bars)")
    names = [f"{m}{'+' if cap is not None and m == cap else ''} label{'s' if m != 1 else ''}\n(n={int(count.get(m, 0))})"
             for m in ms]
    ax.set_xticks(x, names)
    ax.set(ylim=(0, 1.15), ylabel="variable top-k accuracy",
           title=f"Variable top-k by label count (all: {_num(metrics, 'variable_topk_strict'):.3f} strict)")
    ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    return fig, ax


def summary_figure(metrics: dict):
    """``(fig, ax)``: top-k and ReaL top-k accuracy side by side (whichever are present)."""
    keys = sorted((k for k in metrics if _topk_key(k) and metrics[k] is not None),
                  key=lambda k: (int(k.rsplit("top", 1)[1]), k.startswith("real")))
    if not keys:
        raise ValueError("no top-k accuracy in these metrics")
    plt = _plt()
    single = any(not k.startswith("real") for k in keys)
    multi = any(k.startswith("real") for k in keys)
    vals = [float(metrics[k]) for k in keys]
    fig, ax = plt.subplots(figsize=(1.2 * len(keys) + 2, 4))
    bars = ax.bar([("ReaL " if k.startswith("real") else "") + "top-" + k.rsplit("top", 1)[1] for k in keys], vals,
                  color=[REAL_COLOUR if k.startswith("real") else ACC_COLOUR for k in keys])
    _label_bars(ax, bars, vals)
    title = ("Single-label vs multi-label (ReaL-style) accuracy" if single and multi
             else "Multi-label (ReaL-style) accuracy" if multi else "Top-k accuracy")
    ax.set(ylim=(0, 1.1), ylabel="accuracy", title=title)
    fig.tight_layout()
    return fig, ax


def accuracy_by_label_count_figure(subgroups: list[dict]):
    """``(fig, ax)`` of the report's subgroup rows by number of valid labels (top-1, ReaL
    top-1 / top-5 per group); None when the table has no such rows."""
    rows = [r for r in subgroups if r["group"].endswith(("label", "labels", "labels)"))
            and not r["group"].startswith("0 labels")]
    series = [(k, lab) for k, lab in (("top1", "top-1"), ("real_top1", "ReaL top-1"), ("real_top5", "ReaL top-5"))
              if any(r.get(k) is not None for r in rows)]
    if not rows or not series:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(max(6.0, 1.6 * len(rows) + 1), 4.2))
    x = np.arange(len(rows))
    w = 0.8 / len(series)
    for j, (k, lab) in enumerate(series):
        v = [math.nan if r.get(k) is None else float(r[k]) for r in rows]
        bars = ax.bar(x + (j - (len(series) - 1) / 2) * w, np.nan_to_num(v), width=w, label=lab)
        row_errorbars(ax, x + (j - (len(series) - 1) / 2) * w, rows, k)  # with eval --intervals
        _label_bars(ax, bars, v, "{:.2f}")
    ax.set_xticks(x, [f"{r['group']}\n(n={r['n']})" for r in rows])
    ax.set(ylim=(0, 1.12), ylabel="accuracy", title="Accuracy by number of valid labels")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig, ax


def plot(metrics: dict, kind: str = "reliability", ax=None):
    """``(fig, ax)`` of one of :data:`KINDS` from a metrics dict (``ax`` is accepted for
    torchmetrics' ``plot`` signature; these figures make their own axes)."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    return {"reliability": reliability_figure, "label_count": label_count_figure, "summary": summary_figure}[kind](metrics)


def write_plots(records, rep: dict, out_dir: str | os.PathLike, *, targets=None, bins: int = 15) -> list[str]:
    """Write the PNGs that the numbers in ``rep`` (a report: ``rep["metrics"]``,
    ``rep["subgroups"]``) support; returns their paths. ``records``, ``targets`` and ``bins`` are
    accepted for the report API and unused: the metrics carry their own bins."""
    plt = _plt()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    metrics = rep.get("metrics") or {}
    figs = []
    if metrics.get("ece_bin_count") is not None:
        figs.append(("reliability.png", reliability_figure(metrics)))
    acc = accuracy_by_label_count_figure(rep.get("subgroups") or [])
    if acc is not None:
        figs.append(("accuracy_by_label_count.png", acc))
    if metrics.get("subgroup_accuracy"):
        figs.append(("variable_topk_by_label_count.png", label_count_figure(metrics)))
    if any(_topk_key(k) and metrics[k] is not None for k in metrics):
        figs.append(("top1_vs_real.png", summary_figure(metrics)))
    written = []
    for name, (fig, _) in figs:
        p = out / name
        fig.savefig(p, dpi=100)
        plt.close(fig)
        written.append(str(p))
    return written
