"""Leaderboard rows are the reports' metrics; markdown shows accuracies in %, NLL as is."""
from __future__ import annotations

import csv
import json

from mlmetrics.report import leaderboard_rows, to_markdown, write_leaderboard


def _rep(model, labels, top1, nll):
    return {"model": {"model": model}, "dataset": {"labels": labels}, "num_scored": 10,
            "metrics": {"top1": top1, "nll": nll, "per_class_accuracy": [0.1] * 3}}


def test_rows_sorted_by_source_then_accuracy_and_written(tmp_path):
    reps = [_rep("a", "real:/x/real.json", 0.5, 0.8), _rep("b", "real:/x/real.json", 0.75, 1.2),
            _rep("a", "none", 0.5, 0.8)]
    rows = leaderboard_rows(reps)
    assert [(r["model"], r["labels"]) for r in rows] == [("a", "none"), ("b", "real:real.json"), ("a", "real:real.json")]
    assert all("per_class_accuracy" not in r for r in rows)
    md = to_markdown(rows)
    assert "| b | real:real.json | 10 | 75.00 | 1.2000 |" in md  # NLL is not a percentage
    write_leaderboard(rows, tmp_path / "b.csv")
    back = list(csv.DictReader(open(tmp_path / "b.csv")))
    assert float(back[1]["top1"]) == 0.75
    write_leaderboard(rows, tmp_path / "b.json")
    assert json.loads((tmp_path / "b.json").read_text()) == rows
