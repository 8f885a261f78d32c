"""Report building blocks against hand-computed values and torchmetrics."""
from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest
import torch

from mlmetrics import LabelSets
from mlmetrics.harness import Scorer, sample_groups, score_logits
from mlmetrics.report import build_report, format_text, jsonable, write_csv, write_json
from mlmetrics.report.plots import reliability


def test_jsonable():
    v = jsonable({"a": torch.tensor([1.0, float("nan")]), "b": torch.tensor(3), "c": np.float32(0.5),
                  "d": (1, float("inf")), 4: {"x": np.arange(2)}})
    assert v == {"a": [1.0, None], "b": 3, "c": 0.5, "d": [1, None], "4": {"x": [0, 1]}}
    json.dumps(v, allow_nan=False)


def _toy():
    # 4 samples, 6 classes; rows built so ranks are obvious
    logits = torch.tensor([[5.0, 4, 3, 2, 1, 0],    # top1 = 0
                           [0.0, 1, 2, 3, 4, 5],    # top1 = 5
                           [1.0, 9, 0, 0, 0, 0],    # top1 = 1
                           [0.0, 0, 0, 7, 0, 0]])   # top1 = 3
    targets = torch.tensor([0, 4, 2, 3])             # ranks: 0, 1, >=2 (tied zeros), 0
    sets = LabelSets.from_lists([[0, 1], [5], [], [2, 3, 4, 5]], 6)
    return logits, targets, sets


def _subgroups(logits, targets, sets, groups=None):
    """The report's subgroup rows, each from that group's ClassificationMetrics."""
    sc = Scorer(logits.shape[1], targets=targets, label_sets=sets, topk=(1, 5),
                groups=sample_groups(len(logits), targets=targets, label_sets=sets, groups=groups))
    sc.update(logits[:3], torch.arange(3))  # two batches: a group's rows may span both
    sc.update(logits[3:], torch.arange(3, len(logits)))
    return sc, {r["group"]: r for r in sc.subgroup_rows()}


def test_subgroup_table_by_hand():
    logits, targets, sets = _toy()
    _, rows = _subgroups(logits, targets, sets, groups=["a", "b", "a", "b"])
    assert rows["all"]["n"] == 4 and rows["all"]["top1"] == 0.5 and rows["all"]["top5"] == 1.0
    assert rows["all"]["n_labelled"] == 3 and rows["all"]["real_top1"] == 1.0
    assert rows["1 label"]["n"] == 1 and rows["2 labels"]["n"] == 1 and rows["4+ labels"]["n"] == 1
    assert rows["0 labels (not scored multi-label)"]["n"] == 1
    assert rows["group=a"]["top1"] == 0.5 and rows["group=b"]["top1"] == 0.5
    assert rows["target in label set"]["n"] == 2 and rows["target not in label set"]["n"] == 1
    assert rows["target not in label set"]["real_top1"] == 1.0 and rows["target not in label set"]["top1"] == 0.0


def test_build_report_and_outputs(tmp_path):
    logits, targets, sets = _toy()
    metrics, rec = score_logits(logits, targets=targets, label_sets=sets, topk=(1, 5))
    names = "abcdef"
    rep = build_report(metrics=metrics, records=rec, files=[f"f{i}.png" for i in range(4)], targets=targets,
                       label_sets=sets, namer=lambda i: names[i], per_image=True, skipped=[("bad.png", "OSError")],
                       model={"model": "toy"}, timings={"images_per_s": 10.0})
    assert rep["num_images"] == 5 and rep["num_skipped"] == 1
    assert set(rep["metrics"]) == set(metrics)
    assert rep["metrics"]["top1"] == 0.5 and rep["metrics"]["real_top1"] == 1.0
    r0 = rep["per_image"][0]
    assert r0["image"] == "f0.png" and r0["labels"] == [0, 1] and r0["target"] == 0
    assert [e["index"] for e in r0["top5"]] == [0, 1, 2, 3, 4]
    assert [e["name"] for e in r0["top5"]] == list("abcde")
    p = torch.softmax(logits[0].double(), 0)
    assert [e["prob"] for e in r0["top5"]] == pytest.approx(p[:5].tolist(), rel=1e-5)
    text = format_text(rep, namer=lambda i: names[i])
    assert "top1" in text and "f0.png" in text and "bad.png" in text and "*a 0." in text
    write_json(rep, tmp_path / "r.json")
    assert json.loads((tmp_path / "r.json").read_text())["metrics"]["top5"] == 1.0
    write_csv(rep, tmp_path / "r.csv")
    write_csv(rep, tmp_path / "r.csv")
    rows = list(csv.DictReader(open(tmp_path / "r.csv")))
    assert len(rows) == 2 and float(rows[0]["top1"]) == 0.5 and rows[0]["model"] == "toy"
    assert "per_class_accuracy" not in rows[0]  # vectors stay in the JSON


def test_reliability_ece_matches_torchmetrics():
    tm = pytest.importorskip("torchmetrics")
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(300, 7, generator=g) * 2
    target = torch.randint(0, 7, (300,), generator=g)
    p = logits.softmax(1)
    conf, pred = p.max(1)
    *_, ece = reliability(conf.double().numpy(), (pred == target).numpy(), bins=10)
    ref = tm.functional.classification.multiclass_calibration_error(p, target, num_classes=7, n_bins=10)
    assert ece == pytest.approx(float(ref), abs=1e-5)
    # and the ClassificationMetrics ECE over the same bins
    metrics, _ = score_logits(logits, targets=target, topk=(1,), ece_bins=10)
    assert metrics["ece"] == pytest.approx(ece, abs=1e-5)
    assert not math.isnan(metrics["nll"])


def test_nonfinite_rows_are_reported_not_fatal():
    logits, targets, sets = _toy()
    logits = logits.clone()
    logits[1, 2] = float("nan")
    metrics, rec = score_logits(logits, targets=targets, label_sets=sets, topk=(1, 5))
    assert metrics["nonfinite_rows"] == 1
    _, rows = _subgroups(logits, targets, sets)
    assert rows["all"]["n"] == 3 and rows["all"]["top1"] == pytest.approx(metrics["top1"])
    rep = build_report(metrics=metrics, records=rec, files=list("abcd"), targets=targets, label_sets=sets,
                       per_image=True)
    json.dumps(jsonable(rep), allow_nan=False)  # NaN probabilities become null
