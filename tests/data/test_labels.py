"""LabelSets: construction, validation, batch views, ReaL loading; ReaL accuracy vs timm."""
import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st

import mlmetrics
from mlmetrics import LabelSets


def test_from_lists_sorts_dedupes_and_round_trips():
    s = LabelSets.from_lists([[3, 1, 3], [], [0]], 5)
    assert s.tolist() == [[1, 3], [], [0]]
    assert s.sizes().tolist() == [2, 0, 1]
    assert len(s) == 3 and s.num_classes == 5
    assert s.offsets.dtype == torch.int64 and s.labels.dtype == torch.int32


def test_from_dense_matches_from_lists():
    m = torch.tensor([[0, 1, 1, 0], [0, 0, 0, 0], [1, 0, 0, 1]])
    s = LabelSets.from_dense(m)
    assert s.tolist() == [[1, 2], [], [0, 3]]
    assert torch.equal(s.to_dense(), m.bool())
    with pytest.raises(ValueError, match="only 0 and 1"):
        LabelSets.from_dense(torch.tensor([[0, 2]]))
    with pytest.raises(ValueError, match=r"\[N, C\]"):
        LabelSets.from_dense(torch.tensor([1, 0]))


def test_out_of_range_label_names_sample_and_label():
    with pytest.raises(ValueError, match=r"sample 1: label 7 outside \[0, 5\)"):
        LabelSets.from_lists([[1], [2, 7]], 5)
    with pytest.raises(ValueError, match=r"sample 1: label -1 outside"):
        LabelSets(torch.tensor([0, 1, 2]), torch.tensor([1, -1]), 5)
    with pytest.raises(ValueError, match="offsets"):
        LabelSets(torch.tensor([0, 3]), torch.tensor([1, 2]), 5)


def test_batch_view_by_sample_index():
    s = LabelSets.from_lists([[0], [1, 2], [], [3]], 4)
    v = s[torch.tensor([3, 1, 1])]
    assert v.tolist() == [[3], [1, 2], [1, 2]] and len(v) == 3
    assert s[1:3].tolist() == [[1, 2], []]
    assert s[[0]].tolist() == [[0]]
    with pytest.raises(IndexError, match="sample index outside"):
        s[torch.tensor([4])]
    # a view feeds the op like any set
    x = torch.tensor([[0.0, 0, 0, 9], [0, 9, 0, 0], [0, 0, 9, 0]])
    assert mlmetrics.topk_label_hits(x, v, 1)[:, 0].tolist() == [True, True, True]


def test_imagenet_real_loads_timm_json():
    s = LabelSets.imagenet_real()
    assert len(s) == 50000 and s.num_classes == 1000
    sizes = s.sizes()
    assert int((sizes == 0).sum()) > 0  # excluded images have empty sets
    assert int(sizes.max()) <= 10


def test_real_accuracy_equals_timm_real_labels_imagenet():
    from timm.data import RealLabelsImagenet

    sets = LabelSets.imagenet_real()
    n = len(sets)
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(n, 1000, generator=g)
    # make the models "good" on some images so accuracies are far from 0
    real = sets.tolist()
    for i in range(0, n, 3):
        if real[i]:
            logits[i, real[i][0]] += 6.0
    filenames = [f"ILSVRC2012_val_{i + 1:08d}.JPEG" for i in range(n)]
    timm_real = RealLabelsImagenet(filenames, topk=(1, 5))
    for b in range(0, n, 5000):
        timm_real.add_result(logits[b:b + 5000])
    hits = mlmetrics.topk_label_hits(logits, sets, 5)
    valid = sets.sizes() > 0
    for k in (1, 5):
        ours = hits[valid, :k].any(1).double().mean().item() * 100
        assert ours == pytest.approx(timm_real.get_accuracy(k), abs=1e-9)


_label = st.integers(0, 9)
_sample = st.one_of(st.lists(_label, max_size=5), st.lists(_label, max_size=5).map(tuple),
                    st.sets(_label, max_size=5), st.lists(_label, max_size=5).map(lambda v: np.array(v, np.int64)),
                    st.lists(_label.map(np.int32), max_size=5))


@settings(max_examples=200, deadline=None)
@given(lists=st.lists(_sample, max_size=8))
def test_from_lists_is_sorted_unique_and_the_constructor_accepts_it(lists):
    s = LabelSets.from_lists(lists, 10)
    want = [sorted({int(v) for v in x}) for x in lists]
    assert s.tolist() == want and len(s) == len(lists)
    again = LabelSets(s.offsets, s.labels, 10)  # validated: sorted unique sets pass
    assert again.tolist() == want
    assert LabelSets(s.offsets, s.labels.to(torch.int64), 10).tolist() == want
