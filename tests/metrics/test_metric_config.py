"""Metric arguments are checked where they enter (construction / the functional call), and a
checkpoint or merge from a metric with other arguments is refused."""
import numpy as np
import pytest
import torch

import mlmetrics.functional as F
from mlmetrics import LabelSets
from mlmetrics.metrics import (ASMA, ClassificationMetrics, RealAccuracy, TopKAccuracy,
                               VariableTopKAccuracy)

C = 10
X = torch.randn(20, C, generator=torch.Generator().manual_seed(0))
T = torch.arange(20) % C
LS = LabelSets.from_lists([[i % C] for i in range(20)], C)

BAD_CONSTRUCTOR = [
    ({"topk": (1.7,)}, TypeError, "every k in topk must be an int"),
    ({"topk": (True,)}, TypeError, "every k in topk must be an int"),
    ({"topk": "15"}, TypeError, "topk must be an int or a sequence of ints"),
    ({"topk": 2.5}, TypeError, "topk must be an int or a sequence of ints"),
    ({"topk": ()}, ValueError, "at least one k"),
    ({"topk": (1, 1)}, ValueError, "duplicates"),
    ({"topk": (0,)}, ValueError, "every k in topk must be >= 1, got 0"),
    ({"topk": (C + 1,)}, ValueError, r"num_classes=10\]"),
    ({"num_samples": 0}, ValueError, "num_samples must be >= 1, got 0"),
    ({"num_samples": -1}, ValueError, "num_samples must be >= 1, got -1"),
    ({"num_samples": 2.5}, TypeError, "num_samples must be an int"),
    ({"backend": "bogus"}, ValueError, "backend must be one of"),
    ({"ece_bins": 0}, ValueError, "ece_bins must be >= 1, got 0"),
    ({"ece_bins": 1.5}, TypeError, "ece_bins must be an int"),
    ({"include": "accuracy"}, TypeError, r"include must be a sequence of group names \(e.g. \('accuracy',\)\)"),
    ({"include": ("acc",)}, ValueError, r"unknown metric groups \['acc'\]"),
    ({"include": ()}, ValueError, "at least one group"),
    ({"nonfinite": "skip"}, ValueError, "nonfinite must be one of"),
    ({"dedupe": "yes", "num_samples": 20}, TypeError, "dedupe must be True or False"),
    ({"max_label_k": 0}, ValueError, "max_label_k must be >= 1, got 0"),
    ({"subgroup_cap": 0}, ValueError, "subgroup_cap must be >= 1, got 0"),
    ({"class_subset": [1, 1, 0]}, ValueError, "class_subset holds 1 more than once"),
]


@pytest.mark.parametrize("kw,exc,msg", BAD_CONSTRUCTOR, ids=[str(k) for k, _, _ in BAD_CONSTRUCTOR])
def test_constructor_rejects_bad_arguments(kw, exc, msg):
    with pytest.raises(exc, match=msg):
        ClassificationMetrics(C, **kw)


def test_integer_like_arguments_accepted():
    m = ClassificationMetrics(np.int64(C), topk=[np.int64(1), 3], num_samples=np.int32(20), ece_bins=np.int16(5))
    assert m.cfg.topk == (1, 3) and m.num_samples == 20 and m.cfg.ece_bins == 5
    assert ClassificationMetrics(C, topk=3).cfg.topk == (3,)


def test_one_number_metrics_check_their_arguments():
    with pytest.raises(TypeError, match="every k in topk must be an int"):
        TopKAccuracy(C, k=True)
    with pytest.raises(TypeError, match="fractional must be True or False"):
        VariableTopKAccuracy(C, LS, fractional="no")
    with pytest.raises(TypeError, match="label_sets must be"):
        ASMA(C, [[0]])
    RealAccuracy(C, LS, k=np.int64(2))


def test_functional_argument_errors():
    with pytest.raises(TypeError, match="topk must be an int or a sequence of ints, got bool|every k in topk"):
        F.topk_accuracy(X, T, True)
    with pytest.raises(TypeError, match="topk must be an int or a sequence of ints"):
        F.topk_accuracy(X, T, 2.5)
    assert F.topk_accuracy(X, T, np.int64(2)) == F.topk_accuracy(X, T, 2)
    assert isinstance(F.topk_accuracy(X, T, np.int64(2)), float)
    with pytest.raises(ValueError, match="backend must be one of"):
        F.nll(X, T, backend="bogus")
    with pytest.raises(TypeError, match="n_bins must be an int"):
        F.calibration(X, T, 2.5)
    with pytest.raises(TypeError, match="fractional must be True or False"):
        F.asma(X, LS, fractional="no")
    with pytest.raises(ValueError, match=r"no rows \(N=0"):
        F.real_accuracy(X[:0], LS[torch.arange(0)], 1)
    assert F.accuracy(X.tolist(), T) == F.accuracy(X.numpy(), T.numpy()) == F.accuracy(X, T)  # array-likes in


@pytest.mark.parametrize("dedupe", [False, True])
def test_load_state_dict_checks_the_config(dedupe):
    a = ClassificationMetrics(C, topk=(1, 5), label_sets=LS, dedupe=dedupe)
    a.update(X, T, sample_index=torch.arange(20))
    with pytest.raises(ValueError, match=r"other arguments: topk=\[1, 5\] there, \[1, 3\] here"):
        ClassificationMetrics(C, topk=(1, 3), label_sets=LS, dedupe=dedupe).load_state_dict(a.state_dict())
    acc = ClassificationMetrics(C, topk=(1, 5), include=("accuracy",), dedupe=False)
    acc.update(X, T)
    with pytest.raises(ValueError, match="include="):
        ClassificationMetrics(C, topk=(1, 5), dedupe=False).load_state_dict(acc.state_dict())
    with pytest.raises(ValueError, match="holds no 'config'"):
        ClassificationMetrics(C, topk=(1, 5), label_sets=LS, dedupe=dedupe).load_state_dict(
            {k: v for k, v in a.state_dict().items() if k != "config"})
    b = ClassificationMetrics(C, topk=(1, 5), label_sets=LS, dedupe=dedupe)
    b.load_state_dict(a.state_dict())
    got, want = b.compute(), a.compute()
    for k in ("num_samples", "top1", "top5", "nll", "ece", "real_top5", "asma"):
        assert got[k] == want[k], k


def test_state_dict_is_torch_save_round_trip(tmp_path):
    a = ClassificationMetrics(C, topk=(1, 5), label_sets=LS)
    a.update(X, T, sample_index=torch.arange(20))
    torch.save(a.state_dict(), tmp_path / "m.pt")
    b = ClassificationMetrics(C, topk=(1, 5), label_sets=LS)
    b.load_state_dict(torch.load(tmp_path / "m.pt", weights_only=True))
    assert b.compute()["real_top1"] == a.compute()["real_top1"]


def test_merge_refuses_itself_and_other_configs():
    a = ClassificationMetrics(C, topk=(1, 5))
    a.update(X, T)
    with pytest.raises(ValueError, match="cannot merge a metric into itself"):
        a.merge(a)
    with pytest.raises(ValueError, match=r"same arguments: topk=\[1\] there"):
        a.merge(ClassificationMetrics(C, topk=(1,)))
    with pytest.raises(TypeError, match="can only merge a ClassificationMetrics"):
        a.merge({"rows": 1})
    assert a.compute()["num_samples"] == 20
