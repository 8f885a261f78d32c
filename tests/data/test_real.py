"""The one ReaL loader / timm ``_info`` locator (mlmetrics.data.real), and the
``timm.data.RealLabelsImagenet`` drop-in (mlmetrics.compat.timm) against timm itself."""
import json

import numpy as np
import pytest
import torch

from mlmetrics import LabelSets
from mlmetrics.compat.timm import RealLabelsImagenet
from mlmetrics.data import real

timm_data = pytest.importorskip("timm.data")
NUM = real.NUM_VAL_IMAGES


def _val_name(i: int) -> str:
    return f"ILSVRC2012_val_{i + 1:08d}.JPEG"


def test_real_index_is_public_and_reads_any_folder_and_case():
    assert real.real_index("ILSVRC2012_val_00000001.JPEG") == 0
    assert real.real_index("/data/val/n01440764/ILSVRC2012_val_00050000.jpeg") == NUM - 1
    assert real.real_index("dog.png") is None
    from mlmetrics.harness import real_index as harness_real_index
    assert harness_real_index is real.real_index  # one function, re-exported


def test_one_loader_everywhere():
    lists = real.load_real_lists()
    assert len(lists) == NUM and lists[0] == json.load(open(real.imagenet_real_labels_path()))[0]
    sets = LabelSets.imagenet_real()
    assert len(sets) == NUM and sets.tolist()[:100] == [sorted(set(s)) for s in lists[:100]]
    picked = real.real_label_sets([_val_name(9), "x/" + _val_name(2)])
    assert picked.tolist() == [sorted(lists[9]), sorted(lists[2])]
    with pytest.raises(ValueError, match="1 files do not match"):
        real.real_rows(["cat.jpg", _val_name(0)])
    from mlmetrics.data.subsets import timm_info_dir
    assert timm_info_dir() == real.timm_info_dir()


def test_loader_rejects_a_file_that_is_not_real(tmp_path):
    p = tmp_path / "r.json"
    p.write_text(json.dumps({"a": 1}))
    with pytest.raises(ValueError, match="must be a JSON list of per-image label lists"):
        real.load_real_lists(p)
    p.write_text(json.dumps([[1], [2, 3]]))
    assert real.load_real_lists(p) == [[1], [2, 3]]


def _classifier_logits(lists, seed=0):
    g = torch.Generator().manual_seed(seed)
    n = len(lists)
    x = torch.randn(n, 1000, generator=g)
    first = torch.tensor([s[0] if s else 0 for s in lists])
    hit = (torch.rand(n, generator=g) < 0.7) & torch.tensor([bool(s) for s in lists])
    x[torch.arange(n)[hit], first[hit]] += 4.0  # right for about half the images
    return x


def test_real_labels_imagenet_equals_timm_on_the_50000_sets():
    files = [f"val/{_val_name(i)}" for i in range(NUM)]
    x = _classifier_logits(real.load_real_lists())
    ours, theirs = RealLabelsImagenet(files), timm_data.RealLabelsImagenet(files)
    for b in range(0, NUM, 2500):
        ours.add_result(x[b:b + 2500])
        theirs.add_result(x[b:b + 2500])
    assert ours.get_accuracy() == theirs.get_accuracy()  # identical floats, percent
    assert ours.get_accuracy(k=5) == theirs.get_accuracy(k=5)
    assert 40 < ours.get_accuracy(k=1) < ours.get_accuracy(k=5) < 90
    assert ours.sample_idx == theirs.sample_idx == NUM


def test_real_labels_imagenet_arrays_dtypes_and_errors(tmp_path):
    lists = real.load_real_lists()[:300]
    p = tmp_path / "real.json"
    p.write_text(json.dumps(lists))
    files = [_val_name(i) for i in range(300)]
    x = _classifier_logits(lists, seed=1)
    ref = timm_data.RealLabelsImagenet.__new__(timm_data.RealLabelsImagenet)  # timm insists on 50,000 files
    ref.real_labels = {_val_name(i): s for i, s in enumerate(lists)}
    ref.filenames, ref.topk, ref.is_correct, ref.sample_idx = files, (1, 3), {1: [], 3: []}, 0
    ref.add_result(x)
    for out in (x.double().numpy(), x.numpy(), x.requires_grad_(True)):
        ours = RealLabelsImagenet(files, real_json=str(p), topk=(1, 3))
        ours.add_result(out)
        assert ours.get_accuracy() == ref.get_accuracy()
    with pytest.raises(ValueError, match="one row per file"):
        ours.add_result(x[:1])
    with pytest.raises(KeyError):
        ours.get_accuracy(k=5)
    with pytest.raises(ValueError, match="do not match"):
        RealLabelsImagenet(["cat.jpg"])
    assert np.isnan(RealLabelsImagenet(files[:2]).get_accuracy(k=1))
