"""Direct standardisation equals a hand computation; the drop splits exactly into the part the
subgroup mix explains and the rest; intervals cover the estimates."""
import pytest
import torch

from mlmetrics.stats import standardize
from mlmetrics.stats.standardize import label_count_groups


def _make(spec):
    """spec: [(group, n, hits)] -> (hits bool, groups int)."""
    h, g = [], []
    for grp, n, k in spec:
        h += [True] * k + [False] * (n - k)
        g += [grp] * n
    return torch.tensor(h), torch.tensor(g)


def test_hand_computation():
    # A (like ImageNet val): 80 single-label, 20 multi-label images; B (like V2): 50 / 50
    ha, ga = _make([(1, 80, 64), (2, 20, 10)])   # acc 0.8, 0.5 -> 0.74
    hb, gb = _make([(1, 50, 35), (2, 50, 15)])   # acc 0.7, 0.3 -> 0.50
    r = standardize(ha, ga, hb, gb, replicates=300)
    std_b = 0.8 * 0.7 + 0.2 * 0.3                # B's subgroup accuracies at A's mix = 0.62
    assert r["accuracy_a"] == pytest.approx(0.74)
    assert r["accuracy_b"] == pytest.approx(0.50)
    assert r["standardized_b"] == pytest.approx(std_b)
    assert r["drop"] == pytest.approx(0.24)
    assert r["explained_by_mix"] == pytest.approx(std_b - 0.50)          # 0.12
    assert r["unexplained"] == pytest.approx(0.74 - std_b)               # 0.12
    assert r["explained_by_mix"] + r["unexplained"] == pytest.approx(r["drop"])
    assert r["explained_by_mix"] == pytest.approx((0.8 - 0.5) * 0.7 + (0.2 - 0.5) * 0.3)
    g = {row["group"]: row for row in r["groups"]}
    assert g[1]["share_a"] == pytest.approx(0.8) and g[2]["share_b"] == pytest.approx(0.5)
    assert g[2]["accuracy_b"] == pytest.approx(0.3)
    for k in ("standardized_b", "drop", "explained_by_mix", "unexplained"):
        iv = r["intervals"][k]
        assert iv["low"] < r[k] < iv["high"], k


def test_same_mix_explains_nothing():
    ha, ga = _make([(1, 60, 30), (2, 40, 20)])
    hb, gb = _make([(1, 30, 12), (2, 20, 4)])   # the same 60/40 mix
    r = standardize(ha, ga, hb, gb, replicates=100)
    assert r["explained_by_mix"] == pytest.approx(0.0, abs=1e-15)
    assert r["standardized_b"] == pytest.approx(r["accuracy_b"])


def test_missing_subgroup_is_a_clear_error():
    ha, ga = _make([(1, 10, 5), (3, 10, 5)])
    hb, gb = _make([(1, 10, 5)])
    with pytest.raises(ValueError, match=r"subgroup\(s\) \['3'\] of dataset A have no samples in dataset B"):
        standardize(ha, ga, hb, gb, replicates=10)


def test_label_count_groups_cap():
    assert label_count_groups(torch.tensor([0, 1, 2, 3, 4, 9]), cap=4).tolist() == [0, 1, 2, 3, 4, 4]
