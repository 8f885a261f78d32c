"""Plots a person can trust: drawn from the metrics' numbers (never recomputed), legend colours =
bar colours, every bin's count shown, zero-height bars labelled, titles that fit the data, and a
variable top-k / ASMA panel."""

import pytest
import torch

from mlmetrics import ClassificationMetrics, LabelSets
from mlmetrics.report import jsonable
from mlmetrics.report import plots

pytest.importorskip("matplotlib")
from matplotlib.colors import to_rgba  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402

N, C = 600, 12


def _metrics(with_sets=True, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(N, C, generator=g) * 2
    t = torch.randint(0, C, (N,), generator=g)
    x[torch.arange(N), t] += 3
    x[:2] *= 100  # two rows with a max probability of exactly 1.0: the metric's extra top bin
    sets = LabelSets.from_lists([sorted({int(t[i]), (int(t[i]) + 1) % C}) if i % 3 == 0 else [int(t[i])]
                                 for i in range(N)], C) if with_sets else None
    m = ClassificationMetrics(C, topk=(1, 5), label_sets=sets, ece_bins=10)
    m.update(x, t)
    return m.compute()


def _bars(ax):
    return [p for p in ax.patches if isinstance(p, Rectangle) and p.get_height() > 0]


def test_reliability_takes_the_metrics_bins_and_ece():
    out = _metrics()
    fig, (ax, axc) = plots.reliability_figure(out)
    assert f"ECE {out['ece']:.3f}" in ax.get_title() and f"n={out['num_targets']}" in ax.get_title()
    cnt = out["ece_bin_count"]
    assert cnt[-1] == 2  # the p == 1.0 bin is drawn, as the metric counts it
    drawn = sorted(round(p.get_height()) for p in axc.patches)
    assert drawn == sorted(int(c) for c in cnt if c > 0)  # one count bar per non-empty metric bin
    texts = {t.get_text() for t in ax.texts}
    assert {str(int(c)) for c in cnt if c > 0} <= texts  # every bin's count written on it
    # the same figure from the report's JSON (string keys, None for NaN)
    fig2, (ax2, _) = plots.reliability_figure(jsonable(out))
    assert ax2.get_title() == ax.get_title()


def test_reliability_legend_colours_are_the_bar_colours():
    out = _metrics()
    fig, (ax, _) = plots.reliability_figure(out)
    legend = {t.get_text(): h for t, h in zip(ax.get_legend().get_texts(), ax.get_legend().legend_handles)}
    bar_colours = {to_rgba(p.get_facecolor()) for p in _bars(ax)}
    for label, handle in legend.items():
        if label != "perfect calibration":
            assert to_rgba(handle.get_facecolor()) in bar_colours, label
    over = [label for label in legend if label.startswith("over")]
    acc, conf, cnt = (out[k] for k in ("ece_bin_accuracy", "ece_bin_confidence", "ece_bin_count"))
    has_over = bool(((conf > acc) & (cnt > 0)).any())
    assert bool(over) == has_over  # a legend entry only for what is drawn
    # no transparency: a colour seen on screen is the colour in the legend
    assert all(p.get_facecolor()[3] == 1.0 for p in _bars(ax))


def test_zero_height_bars_are_labelled():
    out = _metrics()
    out = dict(out, subgroup_accuracy={1: 0.5, 2: 0.0}, subgroup_accuracy_fractional={1: 0.5, 2: 0.25},
               subgroup_count={1: 10, 2: 3}, asma=0.25)
    fig, ax = plots.label_count_figure(out)
    texts = [t.get_text() for t in ax.texts]
    assert "0.000" in texts and "0.250" in texts
    assert any("ASMA 0.250" in t.get_text() for t in ax.get_legend().get_texts())
    assert [t.get_text() for t in ax.get_xticklabels()] == ["1 label\n(n=10)", "2 labels\n(n=3)"]


def test_label_count_panel_shows_the_metrics_subgroups():
    out = _metrics()
    fig, ax = plots.label_count_figure(out)
    heights = sorted(round(p.get_height(), 9) for p in ax.patches)
    want = sorted(round(v, 9) for v in list(out["subgroup_accuracy"].values())
                  + list(out["subgroup_accuracy_fractional"].values()))
    assert heights == want
    assert f"{out['variable_topk_strict']:.3f}" in ax.get_title()


def test_titles_fit_the_data():
    single = _metrics(with_sets=False)
    fig, ax = plots.summary_figure(single)
    assert ax.get_title() == "Top-k accuracy"
    assert [t.get_text() for t in ax.get_xticklabels()] == ["top-1", "top-5"]
    both = _metrics()
    fig, ax = plots.summary_figure(both)
    assert "Single-label vs multi-label" in ax.get_title()
    heights = [p.get_height() for p in ax.patches]
    assert heights == [both["top1"], both["real_top1"], both["top5"], both["real_top5"]]
    with pytest.raises(ValueError, match="need label sets"):
        plots.label_count_figure(single)


def test_write_plots_from_a_report(tmp_path):
    out = _metrics()
    paths = plots.write_plots(None, {"metrics": jsonable(out), "subgroups": []}, tmp_path)
    assert sorted(p.rsplit("/", 1)[1] for p in paths) == ["reliability.png", "top1_vs_real.png",
                                                           "variable_topk_by_label_count.png"]
    assert plots.write_plots(None, {"metrics": {}}, tmp_path / "none") == []
