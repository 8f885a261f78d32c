"""Single-label functional metrics against independent oracles (sklearn, torchmetrics, torch)."""
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as TF
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import balanced_accuracy_score, brier_score_loss, log_loss, top_k_accuracy_score
from torchmetrics.classification import MulticlassAccuracy, MulticlassCalibrationError

import mlmetrics
import mlmetrics.functional as F


def _data(n=64, c=12, seed=0, scale=2.0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, c, generator=g) * scale
    t = torch.randint(0, c, (n,), generator=g)
    return x, t


# ---- top-k -----------------------------------------------------------------------------
def test_topk_matches_sklearn_and_torchmetrics():
    x, t = _data()
    c = x.shape[1]
    res = F.topk_accuracy(x, t, (1, 3, 5))
    p = torch.softmax(x.double(), 1).numpy()
    for k in (1, 3, 5):
        assert res[k] == pytest.approx(top_k_accuracy_score(t.numpy(), p, k=k, labels=np.arange(c)), abs=1e-12)
        tm = MulticlassAccuracy(num_classes=c, top_k=k, average="micro")(x, t)
        assert res[k] == pytest.approx(float(tm), abs=1e-6)
    assert F.accuracy(x, t) == res[1]
    assert F.topk_accuracy(x, t, 3) == res[3]


def test_topk_ties_differ_from_sklearn():
    """Ties: we rank the lower class index first (torch.topk, reference.py); sklearn's
    top_k_accuracy_score (stable argsort, reversed) ranks the higher index first."""
    x = torch.tensor([[1.0, 1.0, 0.0], [1.0, 1.0, 0.0]])
    t = torch.tensor([0, 1])
    assert F.topk_accuracy(x[:1], t[:1], 1) == 1.0
    assert F.topk_accuracy(x[1:], t[1:], 1) == 0.0
    s = x.numpy()
    assert top_k_accuracy_score([0], s[:1], k=1, labels=[0, 1, 2]) == 0.0
    assert top_k_accuracy_score([1], s[1:], k=1, labels=[0, 1, 2]) == 1.0
    # torch.topk agrees with us
    assert torch.topk(x, 1).indices[:, 0].tolist() == [0, 0]


# ---- macro -----------------------------------------------------------------------------
def test_macro_accuracy_is_balanced_accuracy():
    x, t = _data(n=80, c=6, seed=1)
    pred = x.argmax(1)
    assert F.macro_accuracy(x, t) == pytest.approx(balanced_accuracy_score(t.numpy(), pred.numpy()), abs=1e-12)
    pc = F.per_class_accuracy(x, t)
    for c in range(6):
        m = t == c
        assert float(pc[c]) == pytest.approx(float((pred[m] == c).double().mean()))


def test_macro_accuracy_absent_class_differs_from_torchmetrics():
    """A class predicted but absent from the targets: we leave it out of the mean (sklearn's
    balanced accuracy); torchmetrics' macro average counts it as 0."""
    x = torch.tensor([[5.0, 0, 0], [0, 5.0, 0], [0, 0, 5.0], [5.0, 0, 0]])
    t = torch.tensor([0, 1, 1, 0])  # class 2 never a target, but predicted once
    ours = F.macro_accuracy(x, t)
    assert ours == pytest.approx((1.0 + 0.5) / 2)
    tm = float(MulticlassAccuracy(num_classes=3, average="macro")(x, t))
    assert tm == pytest.approx((1.0 + 0.5 + 0.0) / 3)
    assert math.isnan(float(F.per_class_accuracy(x, t)[2]))


# ---- nll / brier -------------------------------------------------------------------------
def test_nll_matches_sklearn_and_torch():
    x, t = _data(seed=2)
    ours = F.nll(x, t)
    assert ours == pytest.approx(float(TF.cross_entropy(x.double(), t)), rel=1e-5)
    p = torch.softmax(x.double(), 1).numpy()
    assert ours == pytest.approx(log_loss(t.numpy(), p, labels=np.arange(x.shape[1])), rel=1e-5)
    assert F.cross_entropy is F.nll


def test_brier_matches_sklearn_and_hand():
    x, t = _data(seed=3)
    p = torch.softmax(x.double(), 1)
    onehot = TF.one_hot(t, x.shape[1]).double()
    hand = float(((p - onehot) ** 2).sum(1).mean())
    ours = F.brier_score(x, t)
    assert ours == pytest.approx(hand, abs=1e-6)
    assert ours == pytest.approx(brier_score_loss(t.numpy(), p.numpy(), labels=np.arange(x.shape[1])), abs=1e-6)
    # a hand case: p = (0.5, 0.5), target 0 -> 0.25 + 0.25
    assert F.brier_score(torch.zeros(1, 2), torch.tensor([0])) == pytest.approx(0.5)


# ---- calibration -------------------------------------------------------------------------
@pytest.mark.parametrize("bins", [1, 5, 15])
def test_ece_matches_torchmetrics(bins):
    x, t = _data(n=200, c=10, seed=4, scale=3.0)
    ours = F.expected_calibration_error(x, t, bins)
    tm = float(MulticlassCalibrationError(num_classes=10, n_bins=bins, norm="l1")(x, t))
    assert ours == pytest.approx(tm, abs=1e-5)
    mce = float(MulticlassCalibrationError(num_classes=10, n_bins=bins, norm="max")(x, t))
    assert F.calibration(x, t, bins)["mce"] == pytest.approx(mce, abs=1e-5)


def test_ece_probability_one_bin_follows_torchmetrics():
    """torchmetrics puts max prob == 1.0 (fp32) in an extra bin, not the last [14/15, 1) bin."""
    x = torch.tensor([[40.0, 0.0, 0.0], [40.0, 0.0, 0.0], [3.0, 0.0, 0.0], [3.0, 0.0, 0.0]])
    t = torch.tensor([0, 1, 0, 0])
    cal = F.calibration(x, t, 15)
    tm = float(MulticlassCalibrationError(num_classes=3, n_bins=15, norm="l1")(x, t))
    assert cal["ece"] == pytest.approx(tm, abs=1e-6)
    assert cal["ece_bin_count"].tolist()[-1] == 2  # the p == 1 bin
    assert cal["ece_bin_count"].shape == (16,) and cal["ece_bin_edges"].shape == (16,)
    # hand: bin p=1: acc 0.5, conf 1 -> 0.5*2/4; bin of p=e^3/(e^3+2): acc 1
    p = math.exp(3) / (math.exp(3) + 2)
    assert cal["ece"] == pytest.approx(0.5 * 2 / 4 + (1 - p) * 2 / 4, abs=1e-6)
    assert cal["confidence"] == pytest.approx((2 + 2 * p) / 4, abs=1e-6)


def test_ece_large_logits_equal_torchmetrics():
    """max_prob = exp(-log_normalizer) keeps full precision: a confidence just below 1.0 stays in
    its bin (it used to round to exactly 1.0 and move to the p == 1 bin)."""
    from torchmetrics.functional.classification import multiclass_calibration_error as tm_ce

    x, t = torch.tensor([[15.03, 0, 0], [5, 0, 0]]), torch.tensor([1, 0])
    cal = F.calibration(x, t, 10)
    assert cal["ece"] == pytest.approx(float(tm_ce(x, t, 3, n_bins=10, norm="l1")), abs=1e-7)
    assert cal["ece"] == pytest.approx(0.4934, abs=1e-4) and cal["mce"] == pytest.approx(0.4934, abs=1e-4)
    assert cal["ece_bin_count"].tolist()[-1] == 0
    differ = 0
    for seed in range(200):
        g = torch.Generator().manual_seed(seed)
        x = torch.randn(200, 10, generator=g) * 5
        t = torch.randint(0, 10, (200,), generator=g)
        cal = F.calibration(x, t, 15)
        ece = float(tm_ce(x, t, 10, n_bins=15, norm="l1"))
        mce = float(tm_ce(x, t, 10, n_bins=15, norm="max"))
        differ += abs(cal["ece"] - ece) > 1e-6 or abs(cal["mce"] - mce) > 1e-6
    assert differ == 0


def test_reliability_bins_hand():
    # two rows in one bin: p = 0.5 each (2 classes, equal logits), one right one wrong
    x = torch.zeros(2, 2)
    t = torch.tensor([0, 1])
    cal = F.calibration(x, t, 4)  # edges 0, .25, .5, .75, 1: 0.5 -> bin 2
    assert cal["ece_bin_count"].tolist() == [0, 0, 2, 0, 0]
    assert cal["ece_bin_accuracy"][2] == 0.5 and cal["ece_bin_confidence"][2] == 0.5
    assert cal["ece"] == 0.0 and cal["top1"] == 0.5


# ---- OOD scores --------------------------------------------------------------------------
def test_ood_scores_match_torch():
    x, _ = _data(n=20, c=7, seed=5)
    s = F.ood_scores(x)
    p = torch.softmax(x.double(), 1)
    torch.testing.assert_close(s["max_prob"].double(), p.max(1).values, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(s["max_logit"], x.max(1).values)
    torch.testing.assert_close(s["logsumexp"].double(), torch.logsumexp(x.double(), 1), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(s["energy"], -s["logsumexp"])
    torch.testing.assert_close(s["entropy"].double(), -(p * p.log()).sum(1), atol=1e-5, rtol=1e-5)


def test_ood_scores_nan_row():
    x = torch.tensor([[0.0, 1.0], [float("nan"), 0.0]])
    s = F.ood_scores(x)
    assert not torch.isnan(s["max_prob"][0]) and torch.isnan(s["max_prob"][1]) and torch.isnan(s["energy"][1])


# ---- class subsets / dtypes ----------------------------------------------------------------
def test_class_subset_equals_sliced_logits():
    x, _ = _data(n=40, c=30, seed=6)
    subset = torch.tensor([3, 7, 11, 12, 20, 29])
    g = torch.Generator().manual_seed(7)
    t = torch.randint(0, subset.numel(), (40,), generator=g)
    a = F.classification_metrics(x, t, topk=(1, 3), class_subset=subset)
    b = F.classification_metrics(x[:, subset].contiguous(), t, topk=(1, 3))
    for k in ("top1", "top3", "nll", "brier", "ece", "macro_accuracy"):
        assert a[k] == pytest.approx(b[k], abs=1e-9), k


def test_load_class_subset_timm_files():
    from mlmetrics.data.subsets import timm_info_dir

    synsets_1k = (timm_info_dir() / "imagenet_synsets.txt").read_text().split()
    assert len(synsets_1k) == 1000
    for name in ("imagenet_a", "imagenet_r"):
        s = F.load_class_subset(name)
        assert s.dtype == torch.int64 and s.shape == (200,)
        # independent check: the index of each of the subset's synsets among the 1k synsets
        syn = (timm_info_dir() / f"{name}_synsets.txt").read_text().split()
        assert s.tolist() == [synsets_1k.index(w) for w in syn]
    with pytest.raises(ValueError, match="unknown class subset"):
        F.load_class_subset("imagenet_x")


def test_half_precision_logits():
    x, t = _data(seed=8)
    a = F.classification_metrics(x.half(), t)
    b = F.classification_metrics(x.half().float(), t)
    for k in ("top1", "top5", "nll", "ece"):
        assert a[k] == pytest.approx(b[k], abs=1e-9)


# ---- property-based ------------------------------------------------------------------------
@settings(max_examples=25, deadline=None)
@given(n=st.integers(1, 12), c=st.integers(2, 9), seed=st.integers(0, 2**16), ties=st.booleans())
def test_topk_random_shapes_vs_oracle(n, c, seed, ties):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, c, generator=g)
    if ties:
        x = torch.round(x)  # many equal values
    t = torch.randint(0, c, (n,), generator=g)
    ks = tuple(sorted({1, min(2, c), c}))
    res = F.topk_accuracy(x, t, ks)
    order = np.lexsort((np.arange(c)[None].repeat(n, 0), -x.numpy()), axis=1)  # desc value, then index
    for k in ks:
        want = np.mean([t[i].item() in order[i, :k] for i in range(n)])
        assert res[k] == pytest.approx(want)
    out = F.classification_metrics(x, t, topk=ks)
    assert out["nll"] == pytest.approx(float(TF.cross_entropy(x.double(), t)), rel=1e-5, abs=1e-6)
    assert out["top%d" % c] == 1.0


def test_one_class_and_top_level_export():
    x = torch.randn(3, 1)
    assert F.accuracy(x, torch.zeros(3, dtype=torch.int64)) == 1.0
    assert mlmetrics.ClassificationMetrics is mlmetrics.metrics.ClassificationMetrics


def test_functional_metrics_do_not_build_a_stateful_metric(monkeypatch):
    """The functional layer is the base: it composes the groups' update/reduce itself."""
    from mlmetrics import LabelSets

    def refuse(*a, **k):
        raise AssertionError("a functional metric built a ClassificationMetrics")

    monkeypatch.setattr(mlmetrics.metrics.ClassificationMetrics, "__init__", refuse)
    x, t = _data(n=30, c=6, seed=11)
    ls = LabelSets.from_lists([[int(t[i])] for i in range(30)], 6)
    for fn in (lambda: F.topk_accuracy(x, t, (1, 2)), lambda: F.macro_accuracy(x, t), lambda: F.nll(x, t),
               lambda: F.brier_score(x, t), lambda: F.calibration(x, t), lambda: F.ood_scores(x),
               lambda: F.real_accuracy(x, ls, 1), lambda: F.asma(x, ls), lambda: F.variable_topk_accuracy(x, ls),
               lambda: F.classification_metrics(x, t, ls)):
        fn()
