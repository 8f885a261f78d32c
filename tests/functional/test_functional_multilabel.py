"""Multi-label functional metrics: hand-computed cases, timm's RealLabelsImagenet, a brute-force
oracle (hypothesis) and label-set statistics."""
import json
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import mlmetrics.functional as F
from mlmetrics import LabelSets


def _logits_from_rankings(rankings, c):
    """Row i ranks classes rankings[i] first (descending), the rest after in index order."""
    x = torch.zeros(len(rankings), c)
    for i, r in enumerate(rankings):
        for j, cls in enumerate(r):
            x[i, cls] = 10.0 - j
    return x


# The worked example (C = 5). Ranking of each row, its label set, and by hand:
#   row  ranking          Y          top-|Y|     strict  fractional
#   0    0 1 2 3 4        {0}        {0}         1       1
#   1    1 2 0 3 4        {2}        {1}         0       0
#   2    0 1 2 3 4        {0,1}      {0,1}       1       1
#   3    0 1 2 3 4        {0,3}      {0,1}       0       1/2
#   4    4 2 1 0 3        {1,2,4}    {4,2,1}     1       1
#   5    0 1 2 3 4        {}         excluded
#   6    0 1 2 3 4        {0}        {0}         1       1
# subgroups: m=1 rows 0,1,6 -> 2/3 ; m=2 rows 2,3 -> 1/2 ; m=3 row 4 -> 1
# ASMA = (2/3 + 1/2 + 1) / 3 = 13/18 ; fractional: (2/3 + 3/4 + 1) / 3 = 29/36
# overall variable top-k: strict 4/6, fractional 4.5/6
RANKINGS = [[0, 1, 2, 3, 4], [1, 2, 0, 3, 4], [0, 1, 2, 3, 4], [0, 1, 2, 3, 4], [4, 2, 1, 0, 3],
            [0, 1, 2, 3, 4], [0, 1, 2, 3, 4]]
SETS = [[0], [2], [0, 1], [0, 3], [1, 2, 4], [], [0]]


@pytest.fixture
def worked():
    return _logits_from_rankings(RANKINGS, 5), LabelSets.from_lists(SETS, 5)


def test_asma_worked_example(worked):
    x, ls = worked
    assert F.asma(x, ls) == pytest.approx(13 / 18)
    assert F.asma(x, ls, fractional=True) == pytest.approx(29 / 36)
    assert F.subgroup_accuracy(x, ls) == pytest.approx({1: 2 / 3, 2: 1 / 2, 3: 1.0})
    assert F.subgroup_accuracy(x, ls, fractional=True) == pytest.approx({1: 2 / 3, 2: 3 / 4, 3: 1.0})
    v = F.variable_topk_accuracy(x, ls)
    assert v["strict"] == pytest.approx(4 / 6) and v["fractional"] == pytest.approx(4.5 / 6)
    # ASMA differs from the sample-weighted mean of the same subgroup accuracies
    assert F.asma(x, ls) != pytest.approx(v["strict"])


def test_other_multilabel_metrics_worked_example(worked):
    x, ls = worked
    assert F.real_accuracy(x, ls, 1) == pytest.approx(5 / 6)  # row 1 wrong; row 5 (empty) excluded
    assert F.real_accuracy(x, ls, (1, 2)) == pytest.approx({1: 5 / 6, 2: 1.0})
    assert F.precision_at_k(x, ls, 1) == pytest.approx(5 / 6)
    assert F.recall_at_k(x, ls, 1) == pytest.approx((1 + 0 + 0.5 + 0.5 + 1 / 3 + 1) / 6)
    assert F.precision_at_k(x, ls, 2) == pytest.approx((0.5 + 0.5 + 1 + 0.5 + 1 + 0.5) / 6)
    assert F.subset_accuracy(x, ls, 1) == pytest.approx(2 / 6)
    assert F.subset_accuracy(x, ls, 2) == pytest.approx(1 / 6)  # only row 2
    # |top-1 Δ Y| = 0, 2, 1, 1, 2, 0 over C = 5
    assert F.hamming_loss_at_k(x, ls, 1) == pytest.approx(6 / 30)
    c = F.topk_hit_counts(x, ls, 2)
    assert c["tp"].tolist() == [1, 1, 2, 1, 2, 0, 1]
    assert c["fp"].tolist() == [1, 1, 0, 1, 0, 2, 1]
    assert c["fn"].tolist() == [0, 0, 0, 1, 1, 0, 0]
    out = F.classification_metrics(x, None, ls, topk=(1, 2), include=("multilabel",))
    assert out["multilabel_proportion"] == pytest.approx(3 / 6)
    assert out["empty_label_sets"] == 1 and out["num_labeled"] == 6
    assert out["label_count_histogram"].tolist() == [1, 3, 2, 1]


def test_batch_view_label_sets(worked):
    x, ls = worked
    perm = torch.tensor([6, 4, 2, 0, 1, 3, 5])
    assert F.asma(x[perm], ls[perm]) == pytest.approx(13 / 18)
    assert F.real_accuracy(x[perm], ls[perm], 1) == pytest.approx(5 / 6)


def test_real_accuracy_matches_timm(tmp_path):
    from timm.data import RealLabelsImagenet

    g = torch.Generator().manual_seed(0)
    n, c = 60, 20
    x = torch.randn(n, c, generator=g)
    rng = np.random.default_rng(0)
    lists = [sorted(rng.choice(c, size=rng.integers(0, 4), replace=False).tolist()) for _ in range(n)]
    path = tmp_path / "real.json"
    path.write_text(json.dumps(lists))
    names = [f"ILSVRC2012_val_{i + 1:08d}.JPEG" for i in range(n)]
    timm_real = RealLabelsImagenet(names, real_json=str(path), topk=(1, 5))
    for b in range(0, n, 16):
        timm_real.add_result(x[b:b + 16])
    ls = LabelSets.from_lists(lists, c)
    ours = F.real_accuracy(x, ls, (1, 5))
    for k in (1, 5):
        assert ours[k] * 100 == pytest.approx(timm_real.get_accuracy(k), abs=1e-9)


def test_imagenet_real_label_statistics():
    ls = LabelSets.imagenet_real()
    hist = F.label_count_histogram(ls)
    lists = json.load(open(__import__("mlmetrics.data.labels", fromlist=["x"]).imagenet_real_labels_path()))
    want = np.bincount([len(s) for s in lists])
    assert hist.tolist() == want.tolist()
    nonempty = len(lists) - want[0]
    assert F.multilabel_proportion(ls) == pytest.approx((nonempty - want[1]) / nonempty)
    summ = F.label_count_summary(ls)
    assert summ["empty"] == want[0] and summ["num_samples"] == 50000
    assert summ["groups"]["1"] == want[1] and summ["groups"]["4+"] == want[4:].sum()
    assert sum(summ["groups"].values()) == nonempty


def test_label_summary_small():
    ls = LabelSets.from_lists([[], [1], [1, 2], [0, 1, 2, 3, 4]], 5)
    s = F.label_count_summary(ls, max_group=3)
    assert s["groups"] == {"1": 1, "2": 1, "3+": 1}
    assert s["mean_label_count"] == pytest.approx(8 / 3) and s["max_label_count"] == 5
    assert math.isnan(F.multilabel_proportion(LabelSets.from_lists([[], []], 3)))  # no labelled samples


def test_all_empty_sets_give_nan():
    x = torch.randn(3, 4)
    ls = LabelSets.from_lists([[], [], []], 4)
    assert math.isnan(F.real_accuracy(x, ls, 1))
    assert math.isnan(F.asma(x, ls))


# ---- brute force oracle ----------------------------------------------------------------------
def _oracle(x, lists, k):
    n, c = x.shape
    order = np.lexsort((np.arange(c)[None].repeat(n, 0), -x.numpy()), axis=1)
    rows = [i for i in range(n) if lists[i]]
    res = {}
    res["real"] = np.mean([bool(set(order[i, :k]) & set(lists[i])) for i in rows]) if rows else math.nan
    res["prec"] = np.mean([len(set(order[i, :k]) & set(lists[i])) / k for i in rows]) if rows else math.nan
    res["rec"] = np.mean([len(set(order[i, :k]) & set(lists[i])) / len(lists[i]) for i in rows]) if rows else math.nan
    res["subset"] = np.mean([set(order[i, :k]) == set(lists[i]) for i in rows]) if rows else math.nan
    res["ham"] = np.mean([len(set(order[i, :k]) ^ set(lists[i])) / c for i in rows]) if rows else math.nan
    strict = {}
    frac = {}
    for i in rows:
        m = len(lists[i])
        top = set(order[i, :m])
        strict.setdefault(m, []).append(float(top == set(lists[i])))
        frac.setdefault(m, []).append(len(top & set(lists[i])) / m)
    res["strict"] = np.mean([v for vs in strict.values() for v in vs]) if rows else math.nan
    res["frac"] = np.mean([v for vs in frac.values() for v in vs]) if rows else math.nan
    res["asma"] = np.mean([np.mean(v) for v in strict.values()]) if rows else math.nan
    res["groups"] = {m: np.mean(v) for m, v in strict.items()}
    return res


@settings(max_examples=30, deadline=None)
@given(n=st.integers(1, 10), c=st.integers(2, 8), seed=st.integers(0, 2**16), ties=st.booleans(),
       data=st.data())
def test_multilabel_vs_bruteforce(n, c, seed, ties, data):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, c, generator=g)
    if ties:
        x = torch.round(x * 0.7)
    lists = [data.draw(st.lists(st.integers(0, c - 1), max_size=c, unique=True)) for _ in range(n)]
    ls = LabelSets.from_lists(lists, c)
    k = data.draw(st.integers(1, c))
    out = F.classification_metrics(x, None, ls, topk=(k,), include=("multilabel",))
    want = _oracle(x, lists, k)

    def eq(a, b):
        return (math.isnan(a) and math.isnan(b)) or a == pytest.approx(b, abs=1e-12)

    assert eq(out[f"real_top{k}"], want["real"])
    assert eq(out[f"precision@{k}"], want["prec"])
    assert eq(out[f"recall@{k}"], want["rec"])
    assert eq(out[f"subset_accuracy@{k}"], want["subset"])
    assert eq(out[f"hamming_loss@{k}"], want["ham"])
    assert eq(out["variable_topk_strict"], want["strict"])
    assert eq(out["variable_topk_fractional"], want["frac"])
    assert eq(out["asma"], want["asma"])
    assert out["subgroup_accuracy"] == pytest.approx(want["groups"])


def test_subgroup_cap_merges_large_counts(worked):
    x, ls = worked
    # cap 2: groups {1: rows 0,1,6 -> 2/3, "2+": rows 2,3,4 -> 2/3}; ASMA = 2/3
    assert F.subgroup_accuracy(x, ls, subgroup_cap=2) == pytest.approx({1: 2 / 3, 2: 2 / 3})
    assert F.asma(x, ls, subgroup_cap=2) == pytest.approx(2 / 3)
    assert F.asma(x, ls, subgroup_cap=2, fractional=True) == pytest.approx((2 / 3 + (1 + 0.5 + 1) / 3) / 2)
    out = F.classification_metrics(x, None, ls, topk=(1,), subgroup_cap=2)
    assert out["subgroup_count"] == {1: 3, 2: 3}
    assert F.asma(x, ls, subgroup_cap=10) == pytest.approx(13 / 18)
    with pytest.raises(ValueError, match="subgroup_cap"):
        F.asma(x, ls, subgroup_cap=0)


def test_empty_sets_differ_from_sklearn_samples_average():
    """Empty label sets: we (and timm's RealLabelsImagenet) leave the row out; sklearn's
    sample-averaged multi-label scores keep it (recall/precision 0 via zero_division, subset
    accuracy 0, hamming loss k / C). On the non-empty rows the definitions agree."""
    from sklearn.metrics import accuracy_score, hamming_loss, precision_score, recall_score

    g = torch.Generator().manual_seed(3)
    n, c, k = 40, 8, 2
    x = torch.randn(n, c, generator=g)
    rng = np.random.default_rng(3)
    lists = [sorted(rng.choice(c, size=rng.integers(0, 4), replace=False).tolist()) for _ in range(n)]
    ls = LabelSets.from_lists(lists, c)
    y_true = ls.to_dense().numpy()
    y_pred = np.zeros_like(y_true)
    np.put_along_axis(y_pred, torch.topk(x, k).indices.numpy(), True, axis=1)
    n_l = sum(1 for s in lists if s)
    n_e = n - n_l
    assert n_e > 0
    out = F.classification_metrics(x, None, ls, topk=(k,), include=("multilabel",))
    sk_rec = recall_score(y_true, y_pred, average="samples", zero_division=0)
    sk_prec = precision_score(y_true, y_pred, average="samples", zero_division=0)
    assert sk_rec == pytest.approx(out[f"recall@{k}"] * n_l / n)
    assert sk_prec == pytest.approx(out[f"precision@{k}"] * n_l / n)
    assert accuracy_score(y_true, y_pred) == pytest.approx(out[f"subset_accuracy@{k}"] * n_l / n)
    assert hamming_loss(y_true, y_pred) == pytest.approx((out[f"hamming_loss@{k}"] * n_l + n_e * k / c) / n)
    # restricted to the non-empty rows, sklearn and we agree exactly
    keep = np.array([bool(s) for s in lists])
    assert recall_score(y_true[keep], y_pred[keep], average="samples") == pytest.approx(out[f"recall@{k}"])
