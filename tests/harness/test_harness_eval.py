"""End to end: tiny random-init timm model on generated images (ImageNet-val flat layout with
ReaL labels, ImageNet class folders, ImageNetV2, a generic ImageFolder, an annotation file),
one corrupt file per folder. Oracles: numpy on the saved logits, timm's ReaL JSON, and
ClassificationMetrics run directly on the saved logits."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from mlmetrics import LabelSets
from mlmetrics.cli import main
from mlmetrics.harness import build_dataset, open_store, read_annotations, run_eval
from mlmetrics.data.labels import imagenet_real_labels_path
from mlmetrics.metrics import ClassificationMetrics

from .helpers import close

MODEL = "test_efficientnet"  # timm's ~0.1M-param test model (random init, 1000 classes)
SYNSETS = ["n01440764", "n01443537", "n01484850"]  # ImageNet classes 0, 1, 2
FAST = dict(img_size=64, batch_size=4, workers=0, progress=False, device="cpu")


def load_logits(store):
    """(float32 logits [M, C], per-row images / target / labels / class_subset) of a one-model store."""
    (src,) = open_store(store)
    rows = src.rows.tolist() if src.rows is not None else list(range(src.logits.shape[0]))
    meta = {"images": [src.images[i] for i in rows], "class_subset": src.class_subset,
            "target": None if src.targets is None else [src.targets[i] for i in rows],
            "labels": None if src.labels is None else [src.labels[i] for i in rows]}
    return src.logits.float(), meta


def _write_image(path, seed):
    from PIL import Image

    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(path, quality=90)


def _corrupt(path):
    path.write_bytes(b"\xff\xd8\xff\xe0 this is not really a JPEG" + bytes(range(256)))


@pytest.fixture(scope="module")
def real():
    with open(imagenet_real_labels_path()) as f:
        return json.load(f)


@pytest.fixture(scope="module")
def val_flat(tmp_path_factory):
    """ILSVRC2012_val_00000001..10.JPEG + a corrupt 00000011 + a non-image file."""
    d = tmp_path_factory.mktemp("val_flat")
    for i in range(1, 11):
        _write_image(d / f"ILSVRC2012_val_{i:08d}.JPEG", i)
    _corrupt(d / f"ILSVRC2012_val_{11:08d}.JPEG")
    (d / "README.txt").write_text("not an image")
    return d


@pytest.fixture(scope="module")
def val_folders(tmp_path_factory):
    """ImageNet val with synset class folders (val files inside), one corrupt file."""
    d = tmp_path_factory.mktemp("val_folders")
    n = 1
    for s in SYNSETS:
        (d / s).mkdir()
        for _ in range(3):
            _write_image(d / s / f"ILSVRC2012_val_{n:08d}.JPEG", 100 + n)
            n += 1
    _corrupt(d / SYNSETS[1] / f"ILSVRC2012_val_{n:08d}.JPEG")
    return d


@pytest.fixture(scope="module")
def flat_run(val_flat, tmp_path_factory):
    out = tmp_path_factory.mktemp("flat_out")
    rep, res, _ = run_eval(model=MODEL, data=str(val_flat), save_logits_path=str(out / "store"),
                           logits_dtype="fp32", per_image=True, **FAST)
    return rep, res, out


def test_flat_val_layout_real_labels_and_corrupt_file(flat_run, real):
    rep, res, _ = flat_run
    assert rep["dataset"]["layout"] == "imagenet-val"
    assert rep["dataset"]["labels"].startswith("real:")
    assert rep["num_images"] == 11 and rep["num_scored"] == 10 and rep["num_skipped"] == 1
    assert rep["skipped"][0]["image"] == "ILSVRC2012_val_00000011.JPEG"
    assert rep["skipped"][0]["error"]
    m = rep["metrics"]
    assert "top1" not in m  # no single-label targets for a flat folder
    assert m["num_samples"] == 10
    assert m["num_labeled"] == sum(1 for i in range(10) if real[i])
    # per-image rows: file name, top-5 with names and probs, the ReaL set of that file
    rows = rep["per_image"]
    assert [r["image"] for r in rows] == [f"ILSVRC2012_val_{i:08d}.JPEG" for i in range(1, 11)]
    for i, r in enumerate(rows):
        assert r["labels"] == sorted(real[i])
        assert len(r["top5"]) == 5
        assert all(isinstance(e["index"], int) and isinstance(e["name"], str) and 0 <= e["prob"] <= 1
                   for e in r["top5"])
        ps = [e["prob"] for e in r["top5"]]
        assert ps == sorted(ps, reverse=True)
    assert rows[0]["top5"][0]["name"]  # ImageNet names from timm


def test_flat_report_equals_scoring_saved_logits(flat_run, real):
    rep, res, out = flat_run
    logits, meta = load_logits(out / "store")
    assert logits.shape == (10, 1000)
    assert meta["images"] == [f"ILSVRC2012_val_{i:08d}.JPEG" for i in range(1, 11)]
    # independent oracle: numpy argmax / sorted top-5 against timm's ReaL JSON
    x = logits.double().numpy()
    order = np.argsort(-x, axis=1, kind="stable")
    sets = [set(real[i]) for i in range(10)]
    keep = [i for i in range(10) if sets[i]]
    assert rep["metrics"]["real_top1"] == pytest.approx(np.mean([order[i, 0] in sets[i] for i in keep]))
    assert rep["metrics"]["real_top5"] == pytest.approx(np.mean([bool(set(order[i, :5]) & sets[i]) for i in keep]))
    p = torch.softmax(logits.double(), 1).numpy()
    for i, r in enumerate(rep["per_image"]):
        assert [e["index"] for e in r["top5"]] == order[i, :5].tolist()
        assert [e["prob"] for e in r["top5"]] == pytest.approx(p[i, order[i, :5]].tolist(), rel=1e-4, abs=1e-6)
    # ClassificationMetrics on the saved logits gives every key of the report, same values
    cm = ClassificationMetrics(1000, topk=(1, 5), label_sets=LabelSets.from_lists(meta["labels"], 1000),
                               nonfinite="ignore")
    cm.update(logits, sample_index=torch.arange(10))
    _assert_same_metrics(rep["metrics"], cm.compute())


def _assert_same_metrics(reported: dict, direct: dict):
    from mlmetrics.report import jsonable

    direct = jsonable(direct)
    assert set(reported) == set(direct)
    for k, v in direct.items():
        close(reported[k], v, k)


def test_rescore_cli_matches_eval(flat_run, tmp_path):
    rep, _, out = flat_run
    assert main(["rescore", str(out / "store"), "--out", str(tmp_path / "r.json"), "-q"]) == 0
    re = json.loads((tmp_path / "r.json").read_text())
    assert re["dataset"]["labels"].startswith("real:")  # saved with the logits
    assert re["subgroups"] == rep["subgroups"]
    _assert_same_metrics(re["metrics"], rep["metrics"])
    # ReaL by file name, explicitly
    assert main(["rescore", str(out / "store"), "--labels", "real",
                 "--out", str(tmp_path / "r2.json"), "-q"]) == 0
    _assert_same_metrics(json.loads((tmp_path / "r2.json").read_text())["metrics"], rep["metrics"])


def test_class_folder_layout_cli(val_folders, tmp_path, real, capsys):
    out = tmp_path / "rep.json"
    argv = ["eval", "--model", MODEL, "--data", str(val_folders), "--img-size", "64", "-b", "4", "-j", "2",
            "--device", "cpu", "--no-progress", "--out", str(out), "--csv", str(tmp_path / "r.csv"),
            "--save-logits", str(tmp_path / "store"), "--logits-dtype", "fp32", "--plots", str(tmp_path / "plots"), "--per-image"]
    assert main(argv) == 0  # with 2 DataLoader workers
    printed = capsys.readouterr().out
    assert "1 skipped" in printed and "metrics" in printed and "subgroups" in printed
    rep = json.loads(out.read_text())
    assert rep["dataset"]["layout"] == "imagefolder" and rep["dataset"]["has_targets"]
    assert rep["num_skipped"] == 1 and rep["num_scored"] == 9
    assert rep["config"]["workers"] == 2 and rep["timings"]["images_per_s"] > 0
    assert {s["group"] for s in rep["subgroups"]} >= {"all"}
    for k in ("top1", "top5", "real_top1", "nll", "ece", "per_class_accuracy"):
        assert k in rep["metrics"]
    assert len(rep["metrics"]["per_class_accuracy"]) == 1000
    # single-label targets are the synsets' ImageNet indices; ReaL sets follow the file names
    logits, meta = load_logits(tmp_path / "store")
    assert meta["target"] == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    assert meta["labels"] == [sorted(real[i]) for i in range(9)]
    top1 = (logits.argmax(1) == torch.tensor(meta["target"])).double().mean().item()
    assert rep["metrics"]["top1"] == pytest.approx(top1)
    assert rep["subgroups"][0]["top1"] == pytest.approx(top1)
    # a second run appends a CSV row under the same header
    assert main(argv[:-11] + ["--csv", str(tmp_path / "r.csv"), "-q"]) == 0
    lines = (tmp_path / "r.csv").read_text().strip().splitlines()
    assert len(lines) == 3 and lines[0].startswith("model,")
    pngs = sorted(p.name for p in (tmp_path / "plots").iterdir())
    assert pngs == ["accuracy_by_label_count.png", "reliability.png", "top1_vs_real.png"]


def test_generic_imagefolder_and_imagenetv2(tmp_path):
    gen = tmp_path / "gen"
    for c in ("cat", "dog"):
        (gen / c).mkdir(parents=True)
        for j in range(2):
            _write_image(gen / c / f"{c}{j}.png", j)
    _corrupt(gen / "dog" / "broken.png")
    rep, res, namer = run_eval(model=MODEL, data=str(gen), num_classes=2, per_image=True, **FAST)
    assert rep["dataset"]["layout"] == "imagefolder"
    assert rep["num_skipped"] == 1 and rep["num_scored"] == 4
    assert [r["target"] for r in rep["per_image"]] == [0, 0, 1, 1]
    assert {e["name"] for r in rep["per_image"] for e in r["top5"]} == {"cat", "dog"}  # k capped at C
    assert "real_top1" not in rep["metrics"] and "top1" in rep["metrics"]

    v2 = tmp_path / "v2"
    for c in ("0", "7", "999"):
        (v2 / c).mkdir(parents=True)
        _write_image(v2 / c / "a.jpeg", int(c))
    ds = build_dataset(str(v2), num_classes=1000)
    assert ds.layout == "imagenetv2" and ds.targets.tolist() == [0, 7, 999] and ds.label_sets is None


def test_annotation_file_json_and_csv(tmp_path):
    root = tmp_path / "imgs"
    root.mkdir()
    for n in ("a.png", "b.png", "c.png"):
        _write_image(root / n, len(n))
    _corrupt(root / "d.png")
    ann = {"images": [{"image": "a.png", "labels": [1, 2], "target": 1, "group": "x"},
                      {"image": "b.png", "labels": [3], "target": 3, "group": "y"},
                      {"image": "c.png", "labels": [], "target": 4, "group": "x"},
                      {"image": "d.png", "labels": [5], "target": 5, "group": "y"},
                      {"image": "missing.png", "labels": [6], "target": 6, "group": "y"}]}
    (tmp_path / "ann.json").write_text(json.dumps(ann))
    (tmp_path / "ann.csv").write_text("image,labels,target,group\n" + "".join(
        f"{r['image']},{' '.join(map(str, r['labels']))},{r['target']},{r['group']}\n" for r in ann["images"]))
    a, b = read_annotations(tmp_path / "ann.json"), read_annotations(tmp_path / "ann.csv")
    assert a.files == b.files and a.labels == b.labels and a.targets == b.targets == [1, 3, 4, 5, 6]
    assert a.groups == b.groups == ["x", "y", "x", "y", "y"]
    simple = read_annotations(_dump(tmp_path / "s.json", {"a.png": [2, 1], "b.png": {"labels": "3;4"}}))
    assert simple.labels == [[2, 1], [3, 4]] and simple.targets is None
    mm = read_annotations(_dump(tmp_path / "mm.json", {"metainfo": {"classes": ["a"] * 10},
                                                       "data_list": [{"img_path": "a.png", "gt_label": [0, 7]}]}))
    assert mm.files == ["a.png"] and mm.labels == [[0, 7]] and mm.meta == {"metainfo": {"classes": ["a"] * 10}}

    rep, res, _ = run_eval(model=MODEL, data=str(root), labels=str(tmp_path / "ann.csv"), per_image=True, **FAST)
    assert rep["dataset"]["layout"] == "annotations"
    assert rep["num_images"] == 5 and rep["num_scored"] == 3 and rep["num_skipped"] == 2
    assert {s["image"] for s in rep["skipped"]} == {"d.png", "missing.png"}
    groups = {s["group"]: s for s in rep["subgroups"]}
    assert groups["group=x"]["n"] == 2 and groups["group=y"]["n"] == 1
    assert groups["0 labels (not scored multi-label)"]["n"] == 1
    assert rep["metrics"]["num_labeled"] == 2 and rep["metrics"]["num_targets"] == 3


def _dump(path, obj):
    path.write_text(json.dumps(obj))
    return path


def test_limit_and_errors(val_flat, tmp_path, capsys):
    rep, _, _ = run_eval(model=MODEL, data=str(val_flat), limit=3, **FAST)
    assert rep["num_images"] == 3 and rep["num_scored"] == 3
    # a clear error, exit status 1, no traceback
    assert main(["eval", "--model", "no_such_model_xyz", "--data", str(val_flat), "-q"]) == 1
    assert "not a timm model" in capsys.readouterr().err
    assert main(["eval", "--model", MODEL, "--data", str(tmp_path / "nope"), "-q"]) == 1
    assert "not a directory" in capsys.readouterr().err


def test_class_subset_imagenet_r(tmp_path):
    from mlmetrics.data.subsets import load_class_subset, timm_info_dir
    from mlmetrics.harness import detect_class_subset, rescore

    syn = (timm_info_dir() / "imagenet_r_synsets.txt").read_text().split()
    sub = load_class_subset("imagenet_r")
    full = tmp_path / "full"
    for s in syn:
        (full / s).mkdir(parents=True)
    assert detect_class_subset(full) == "imagenet_r"  # all 200 folders: auto-detected
    part = tmp_path / "part"
    picks = [0, 5, 199]
    for j in picks:
        (part / syn[j]).mkdir(parents=True)
        _write_image(part / syn[j] / "x.jpg", j)
    assert detect_class_subset(part) is None
    rep, res, namer = run_eval(model=MODEL, data=str(part), class_subset="imagenet_r", per_image=True,
                               save_logits_path=str(tmp_path / "store"), logits_dtype="fp32", **FAST)
    assert [r["target"] for r in rep["per_image"]] == picks  # positions in the subset
    assert rep["model"]["class_subset"] == "imagenet_r"
    logits, meta = load_logits(tmp_path / "store")
    assert logits.shape == (3, 1000) and meta["class_subset"] == sub.tolist()
    restricted = logits[:, sub]
    top1 = (restricted.argmax(1) == torch.tensor(picks)).double().mean().item()
    assert rep["metrics"]["top1"] == pytest.approx(top1)
    for r, row in zip(rep["per_image"], restricted):
        assert r["top5"][0]["index"] == int(row.argmax())
        assert r["top5"][0]["name"] == namer(int(row.argmax()))
    from timm.data import ImageNetInfo

    assert namer(0) == ImageNetInfo().index_to_description(int(sub[0]))
    ((re, _, _),) = rescore([str(tmp_path / "store")])
    _assert_same_metrics(re["metrics"], rep["metrics"])


def test_uint8_loader_with_device_normalisation_matches(val_flat, tmp_path):
    """The CUDA default (uint8 from the workers, normalised on the device) gives the same
    logits as the float pipeline; exercised here on the CPU."""
    kw = dict(FAST, limit=4)
    torch.manual_seed(0)  # the same random-init weights in both runs
    a, ra, _ = run_eval(model=MODEL, data=str(val_flat), normalize_on_device=False,
                        save_logits_path=str(tmp_path / "a"), logits_dtype="fp32", **kw)
    torch.manual_seed(0)
    b, rb, _ = run_eval(model=MODEL, data=str(val_flat), normalize_on_device=True,
                        save_logits_path=str(tmp_path / "b"), logits_dtype="fp32", **kw)
    assert b["config"]["normalize_on_device"] and not a["config"]["normalize_on_device"]
    la, lb = load_logits(tmp_path / "a")[0], load_logits(tmp_path / "b")[0]
    torch.testing.assert_close(la, lb, rtol=1e-4, atol=1e-6)


def test_all_corrupt_and_empty_folders(tmp_path, capsys):
    bad = tmp_path / "bad"
    bad.mkdir()
    _corrupt(bad / "ILSVRC2012_val_00000001.JPEG")
    (bad / "ILSVRC2012_val_00000002.JPEG").write_bytes(b"")
    out = tmp_path / "r.json"
    assert main(["eval", "--model", MODEL, "--data", str(bad), "--img-size", "64", "--device", "cpu",
                 "-j", "0", "--no-progress", "-q", "--out", str(out)]) == 1
    rep = json.loads(out.read_text())
    assert rep["num_skipped"] == 2 and rep["num_scored"] == 0
    assert "could be decoded" in capsys.readouterr().err
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["eval", "--model", MODEL, "--data", str(empty), "-q"]) == 1
    assert "no images found" in capsys.readouterr().err


def test_amp_bf16_and_channels_last_paths_on_cpu(val_flat, tmp_path):
    """The --amp / --channels-last code paths (CUDA's defaults to use) run and agree with fp32."""
    kw = dict(FAST, limit=4)
    torch.manual_seed(0)
    a, _, _ = run_eval(model=MODEL, data=str(val_flat), save_logits_path=str(tmp_path / "a"), logits_dtype="fp32", **kw)
    torch.manual_seed(0)
    b, _, _ = run_eval(model=MODEL, data=str(val_flat), amp="bf16", channels_last=True,
                       save_logits_path=str(tmp_path / "b"), logits_dtype="fp32", **kw)
    assert b["config"]["amp"] == "bf16" and b["config"]["channels_last"]
    la, lb = load_logits(tmp_path / "a")[0], load_logits(tmp_path / "b")[0]
    assert lb.dtype == torch.float32 and torch.isfinite(lb).all()
    assert torch.corrcoef(torch.stack([la.flatten(), lb.flatten()]))[0, 1] > 0.9


def test_targets_file_for_flat_val(val_flat, tmp_path):
    from mlmetrics.harness.targets import imagenet_synsets

    ints = [(7 * i) % 1000 for i in range(20)]
    (tmp_path / "t.txt").write_text("\n".join(map(str, ints)))
    ds = build_dataset(str(val_flat), targets_file=str(tmp_path / "t.txt"))
    assert ds.targets.tolist() == ints[:11]  # by val file number
    syn = sorted(imagenet_synsets(), key=imagenet_synsets().get)
    (tmp_path / "LOC_val_solution.csv").write_text("ImageId,PredictionString\n" + "".join(
        f"ILSVRC2012_val_{i + 1:08d},{syn[ints[i]]} 1 2 3 4 {syn[3]} 5 6 7 8\n" for i in range(11)))
    ds = build_dataset(str(val_flat), targets_file=str(tmp_path / "LOC_val_solution.csv"))
    assert ds.targets.tolist() == ints[:11]
    assert ds.label_sets is not None  # ReaL still applies


def test_rescore_bare_npy_with_annotation_file(tmp_path, capsys):
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(5, 10, generator=g)
    np.save(tmp_path / "bare.npy", logits.numpy())  # no sidecar: rows are in annotation order
    lists = [[1, 2], [3], [], [0, 9], [4]]
    targets = [1, 3, 5, 9, 4]
    ann = [{"image": f"x{i}.png", "labels": lists[i], "target": targets[i]} for i in range(5)]
    (tmp_path / "a.json").write_text(json.dumps(ann))
    assert main(["rescore", "--logits", str(tmp_path / "bare.npy"), "--labels", str(tmp_path / "a.json"),
                 "--out", str(tmp_path / "r.json"), "--per-image", "--topk", "1,3"]) == 0
    rep = json.loads((tmp_path / "r.json").read_text())
    cm = ClassificationMetrics(10, topk=(1, 3), label_sets=LabelSets.from_lists(lists, 10), nonfinite="ignore")
    cm.update(logits, target=torch.tensor(targets), sample_index=torch.arange(5))
    _assert_same_metrics(rep["metrics"], cm.compute())
    top1 = (logits.argmax(1) == torch.tensor(targets)).double().mean().item()
    assert rep["metrics"]["top1"] == pytest.approx(top1)
    assert [r["labels"] for r in rep["per_image"]] == lists
    assert "per image" in capsys.readouterr().out


def test_imagenetv2_with_multilabel_annotation(tmp_path):
    v2 = tmp_path / "v2"
    for c in ("3", "42"):
        (v2 / c).mkdir(parents=True)
        _write_image(v2 / c / "img.jpeg", int(c))
    ann = {"3/img.jpeg": [3, 4], "42/img.jpeg": [42]}
    (tmp_path / "ml.json").write_text(json.dumps(ann))
    ds = build_dataset(str(v2), labels=str(tmp_path / "ml.json"), num_classes=1000)
    assert ds.layout == "annotations" and ds.targets.tolist() == [3, 42]
    assert ds.label_sets.tolist() == [[3, 4], [42]]


def test_records_from_the_metrics_read_equal_a_fresh_read():
    """The per-image top-5 reuses ClassificationMetrics.update's top-k read when it holds the
    softmax; it must equal an independent topk_stats call (and the fallback path)."""
    from mlmetrics import topk_stats
    from mlmetrics.harness import Scorer

    g = torch.Generator().manual_seed(0)
    logits = torch.randn(12, 50, generator=g)
    target = torch.randint(0, 50, (12,), generator=g)
    sets = LabelSets.from_lists([[int(t), (int(t) + 1) % 50] if i % 3 else [] for i, t in enumerate(target)], 50)
    ref = topk_stats(logits, 5, target=target, label_sets=sets)
    for kw in ({}, {"metrics_kwargs": {"include": ("accuracy", "multilabel")}}):  # reuse / fallback
        sc = Scorer(50, targets=target, label_sets=sets, **kw)
        sc.update(logits[:7], torch.arange(7))
        sc.update(logits[7:], torch.arange(7, 12))
        assert sc.reused_metric_read == (not kw)
        rec = sc.records()
        assert torch.equal(rec.topk_indices, ref.topk_indices) and torch.equal(rec.hits, ref.hits)
        assert torch.equal(rec.target_rank, ref.target_rank)
        torch.testing.assert_close(rec.topk_probs, ref.topk_probs)
