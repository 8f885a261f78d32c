"""Study plots over several models: every plotted number is a report's metric."""
from __future__ import annotations

import pytest

from mlmetrics.report.study import write_study_plots

pytest.importorskip("matplotlib")


def _rep(name, top1, real, asma, sub):
    return {"model": {"model": name}, "dataset": {"labels": "real"},
            "metrics": {"top1": top1, "real_top1": real, "asma": asma, "subgroup_accuracy": sub,
                        "subgroup_count": {"1": 10, "2": 5, "3": 2}}}


def test_study_plots_written_and_skipped_without_metrics(tmp_path):
    reps = [_rep("a", 0.7, 0.8, 0.6, {"1": 0.8, "2": 0.5, "3": 0.3}),
            _rep("b", 0.8, 0.86, 0.7, {"1": 0.9, "2": 0.6, "3": 0.5})]
    files = write_study_plots(reps, tmp_path)
    assert [p.rsplit("/", 1)[1] for p in files] == [
        "study_top1_vs_real.png", "study_top1_vs_asma.png", "study_accuracy_by_label_count.png"]
    assert all((tmp_path / p.rsplit("/", 1)[1]).stat().st_size > 5000 for p in files)
    # single-label-only reports (no ReaL, no ASMA): no multi-label plot is drawn
    plain = [{"model": {"model": "c"}, "dataset": {"labels": "none"}, "metrics": {"top1": 0.5}}]
    assert write_study_plots(plain, tmp_path / "plain") == []
