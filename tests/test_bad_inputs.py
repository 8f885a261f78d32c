"""Bad inputs x public entry points -> the expected one-line error (or the documented policy).

Entry points: the ops (``topk_stats``, ``softmax_topk``, ``topk_label_hits``), the functional
metrics, ``ClassificationMetrics`` (constructor and ``update``/``compute``) and ``LabelSets``
(constructor, ``from_lists``, ``imagenet_real``). Every error is raised by
``mlmetrics.ops.checks`` before any backend runs, so it is the same on every backend. The CLI
has its own table (``tests/harness``).
"""
import json
import re

import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st

import mlmetrics
import mlmetrics.functional as F
from mlmetrics import ClassificationMetrics, LabelSets

N, C = 2, 4
X = torch.tensor([[0.5, 3.0, -1.0, 2.0], [1.0, 0.0, 4.0, 4.0]])
T = torch.tensor([1, 3])
SETS = LabelSets.from_lists([[1], [2, 3]], C)
BACKENDS = mlmetrics.available_backends("cpu")  # cpu, triton (interpreter), reference
#: (device, backend) pairs this machine runs
DEVICE_BACKENDS = [("cpu", b) for b in BACKENDS] + \
    ([("cuda", b) for b in mlmetrics.available_backends("cuda")] if torch.cuda.is_available() else [])


def raises(exc, pattern, fn, *args, **kw):
    """fn(*args, **kw) raises exc whose one-line message matches pattern."""
    with pytest.raises(exc, match=pattern) as e:
        fn(*args, **kw)
    assert "\n" not in str(e.value), f"message is not one line: {e.value!r}"
    return e.value


# ---------------------------------------------------------------------------------------
# logits
# ---------------------------------------------------------------------------------------
#: entry point name -> fn(logits) using N = 2 rows, C = 4 classes for everything else
LOGITS_ENTRY_POINTS = {
    "topk_stats": lambda x: mlmetrics.topk_stats(x, 1, target=T),
    "softmax_topk": lambda x: mlmetrics.softmax_topk(x, 1),
    "topk_label_hits": lambda x: mlmetrics.topk_label_hits(x, SETS, 1),
    "F.accuracy": lambda x: F.accuracy(x, T),
    "F.calibration": lambda x: F.calibration(x, T),
    "F.real_accuracy": lambda x: F.real_accuracy(x, SETS, 1),
    "F.ood_scores": lambda x: F.ood_scores(x),
    "ClassificationMetrics.update": lambda x: ClassificationMetrics(C, topk=(1,)).update(x, T),
}

#: bad logits -> (exception, message pattern)
BAD_LOGITS = {
    "1-D": (lambda: X[0], ValueError, r"logits must be 2-D \[N, C\], got shape \(4,\)"),
    "3-D": (lambda: X[None], ValueError, r"logits must be 2-D \[N, C\], got shape \(1, 2, 4\)"),
    "no classes": (lambda: torch.zeros(N, 0), ValueError, r"at least one class \(C >= 1\)"),
    "int64": (lambda: X.long(), TypeError, r"logits must be floating point .*got torch.int64"),
    "bool": (lambda: X > 0, TypeError, r"logits must be floating point .*got torch.bool"),
    "complex": (lambda: X.to(torch.complex64), TypeError, r"logits must be floating point .*complex64"),
    "NumPy int": (lambda: X.long().numpy(), TypeError, r"logits must be floating point .*got torch.int64"),
    "meta": (lambda: X.to("meta"), ValueError, r"logits is a meta tensor"),
    "str": (lambda: "logits", TypeError, r"logits must be a tensor, NumPy array or list, got str"),
    "None": (lambda: None, TypeError, r"logits must be a tensor, NumPy array or list, got NoneType"),
    "ragged list": (lambda: [[1.0, 2.0, 3.0, 4.0], [1.0]], TypeError, r"logits could not be converted to a tensor"),
    "object array": (lambda: np.array([[1.0, "a"]], dtype=object), TypeError, r"logits could not be converted"),
}


@pytest.mark.parametrize("entry", LOGITS_ENTRY_POINTS)
@pytest.mark.parametrize("bad", BAD_LOGITS)
def test_bad_logits(entry, bad):
    make, exc, pattern = BAD_LOGITS[bad]
    raises(exc, pattern, LOGITS_ENTRY_POINTS[entry], make())


#: logits a user has, accepted and scored exactly as the float32 tensor
GOOD_LOGITS = {
    "list": lambda: X.tolist(),
    "NumPy float32": lambda: X.numpy(),
    "NumPy float64": lambda: X.double().numpy(),
    "torch float64": lambda: X.double(),
    "NumPy read-only": lambda: _readonly(X.numpy().copy()),
    "NumPy negative strides": lambda: X.flip(1).numpy()[:, ::-1],
}


def _readonly(a):
    a.flags.writeable = False
    return a


def _same(a, b):
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (tuple, list)):
        return len(a) == len(b) and all(_same(u, v) for u, v in zip(a, b))
    if isinstance(a, torch.Tensor):
        return a.shape == b.shape and torch.equal(a.nan_to_num(-7.0), b.nan_to_num(-7.0))
    if hasattr(a, "_asdict"):
        return _same(tuple(a), tuple(b))
    return a == b or (a != a and b != b)


@pytest.mark.parametrize("entry", LOGITS_ENTRY_POINTS)
@pytest.mark.parametrize("good", GOOD_LOGITS)
def test_array_like_and_float64_logits_are_converted(entry, good):
    fn = LOGITS_ENTRY_POINTS[entry]
    assert _same(fn(GOOD_LOGITS[good]()), fn(X))


def test_float64_logits_are_ranked_in_float32():
    # two values 1e-12 apart in float64 are one float32 value: a tie, lower index first
    x = torch.tensor([[1.0, 1.0 + 1e-12, 0.0]], dtype=torch.float64)
    assert mlmetrics.topk_stats(x, 2).topk_indices.tolist() == [[0, 1]]


# ---------------------------------------------------------------------------------------
# k, with_softmax, backend
# ---------------------------------------------------------------------------------------
BAD_K = {
    "0": (0, ValueError, r"k must be in \[1, C=4\], got k=0"),
    "C + 1": (5, ValueError, r"k must be in \[1, C=4\], got k=5"),
    "float": (2.0, TypeError, r"k must be an int, got float"),
    "bool": (True, TypeError, r"k must be an int, got bool"),
    "str": ("1", TypeError, r"k must be an int, got str"),
}
K_ENTRY_POINTS = {
    "topk_stats": lambda k: mlmetrics.topk_stats(X, k),
    "softmax_topk": lambda k: mlmetrics.softmax_topk(X, k),
    "topk_label_hits": lambda k: mlmetrics.topk_label_hits(X, SETS, k),
}


@pytest.mark.parametrize("entry", K_ENTRY_POINTS)
@pytest.mark.parametrize("bad", BAD_K)
def test_bad_k(entry, bad):
    k, exc, pattern = BAD_K[bad]
    raises(exc, pattern, K_ENTRY_POINTS[entry], k)


@pytest.mark.parametrize("entry", K_ENTRY_POINTS)
def test_numpy_integer_k_is_accepted(entry):
    assert _same(K_ENTRY_POINTS[entry](np.int64(2)), K_ENTRY_POINTS[entry](2))


@pytest.mark.parametrize("flag", ["no", 0, 1, None])
def test_with_softmax_must_be_a_bool(flag):
    raises(TypeError, r"with_softmax must be True or False, got", mlmetrics.topk_stats, X, 1, with_softmax=flag)


def test_bad_backend_names_the_choices():
    raises(ValueError, r"backend must be one of \('auto', 'cpu', 'cuda', 'triton', 'reference'\), got 'bogus'",
           mlmetrics.topk_stats, X, 1, backend="bogus")


# ---------------------------------------------------------------------------------------
# target (and sample_index)
# ---------------------------------------------------------------------------------------
BAD_TARGET = {
    "float": (lambda: T.float(), TypeError, r"target must hold integers, got torch.float32"),
    "bool": (lambda: T > 0, TypeError, r"target must hold integers, got torch.bool"),
    "NumPy float": (lambda: T.double().numpy(), TypeError, r"target must hold integers, got torch.float64"),
    "too short": (lambda: T[:1], ValueError, r"target must be \[N=2\], got shape \(1,\)"),
    "2-D": (lambda: T[:, None], ValueError, r"target must be \[N=2\], got shape \(2, 1\)"),
    "str": (lambda: "13", TypeError, r"target must be a tensor, NumPy array or list, got str"),
}
TARGET_ENTRY_POINTS = {
    "topk_stats": lambda t: mlmetrics.topk_stats(X, 1, target=t),
    "F.accuracy": lambda t: F.accuracy(X, t),
    "F.nll": lambda t: F.nll(X, t),
    "ClassificationMetrics.update": lambda t: ClassificationMetrics(C, topk=(1,)).update(X, t),
}


@pytest.mark.parametrize("entry", TARGET_ENTRY_POINTS)
@pytest.mark.parametrize("bad", BAD_TARGET)
def test_bad_target(entry, bad):
    make, exc, pattern = BAD_TARGET[bad]
    raises(exc, pattern, TARGET_ENTRY_POINTS[entry], make())


@pytest.mark.parametrize("entry", TARGET_ENTRY_POINTS)
def test_list_and_numpy_targets_are_converted(entry):
    fn = TARGET_ENTRY_POINTS[entry]
    ref = fn(T)
    for t in (T.tolist(), T.numpy(), T.to(torch.int32), T.to(torch.uint8)):
        assert _same(fn(t), ref)


def test_out_of_range_target_policy():
    # the ops: rank -1 (and NaN target_logit); the functional metrics: refused up front;
    # ClassificationMetrics: counted on the device (no host sync), refused by compute()
    s = mlmetrics.topk_stats(X, 1, target=torch.tensor([4, -1]))
    assert s.target_rank.tolist() == [-1, -1] and torch.isnan(s.target_logit).all()
    raises(ValueError, r"target holds 4, outside \[0, C=4\)", F.accuracy, X, torch.tensor([0, 4]))
    raises(ValueError, r"target holds -1, outside \[0, C=4\)", F.nll, X, torch.tensor([-1, 0]))
    raises(ValueError, r"target holds 3, outside \[0, C=2\)", F.accuracy, X, T, class_subset=[0, 1])
    m = ClassificationMetrics(C, topk=(1,))
    m.update(X, torch.tensor([0, 4]))
    raises(ValueError, r"1 target\(s\) outside \[0, num_classes=4\)", m.compute)


def test_bad_sample_index():
    m = ClassificationMetrics(C, topk=(1,), label_sets=SETS)
    raises(TypeError, r"sample_index must hold integers, got torch.float32", m.update, X, T, torch.tensor([0.0, 1.0]))
    raises(ValueError, r"sample_index must be \[N=2\], got shape \(3,\)", m.update, X, T, torch.tensor([0, 1, 1]))
    m.update(X, T, [1, 0])  # a list is converted
    assert m.compute()["top1"] == 0.5


# ---------------------------------------------------------------------------------------
# class_subset
# ---------------------------------------------------------------------------------------
BAD_SUBSET = {
    "duplicates": ([1, 1, 0], ValueError, r"class_subset holds 1 more than once \(its class indices must be distinct\)"),
    "empty": ([], ValueError, r"class_subset is empty; pass class_subset=None to score every class"),
    "too large": ([0, 4], ValueError, r"class_subset holds 4, outside \[0, C=4\)"),
    "negative": ([-1, 0], ValueError, r"class_subset holds -1, outside \[0, C=4\)"),
    "float": ([0.0, 1.0], TypeError, r"class_subset must hold integer class indices, got torch.float32"),
    "bool": ([True, False], TypeError, r"class_subset must hold integer class indices, got torch.bool"),
    "2-D": ([[0, 1]], ValueError, r"class_subset must be 1-D \[C'\], got shape \(1, 2\)"),
}
SUBSET_ENTRY_POINTS = {
    "topk_stats": lambda cs: mlmetrics.topk_stats(X, 1, class_subset=cs),
    "F.accuracy": lambda cs: F.accuracy(X, torch.tensor([0, 0]), class_subset=cs),
    "F.ood_scores": lambda cs: F.ood_scores(X, class_subset=cs),
    "ClassificationMetrics": lambda cs: ClassificationMetrics(C, topk=(1,), class_subset=cs),
}


@pytest.mark.parametrize("entry", SUBSET_ENTRY_POINTS)
@pytest.mark.parametrize("bad", BAD_SUBSET)
def test_bad_class_subset(entry, bad):
    cs, exc, pattern = BAD_SUBSET[bad]
    raises(exc, pattern, SUBSET_ENTRY_POINTS[entry], cs)
    if isinstance(cs, list) and cs and exc is ValueError:  # the same as a tensor
        raises(exc, pattern, SUBSET_ENTRY_POINTS[entry], torch.tensor(cs))


@pytest.mark.parametrize("device, backend", DEVICE_BACKENDS)
@pytest.mark.parametrize("bad", ["duplicates", "too large", "negative", "empty"])
def test_class_subset_checked_identically_on_every_backend(device, backend, bad):
    cs, exc, pattern = BAD_SUBSET[bad]
    cs = torch.tensor(cs, dtype=torch.int64, device=device)
    raises(exc, pattern, mlmetrics.topk_stats, X.to(device), 1, class_subset=cs, backend=backend)
    # a valid subset after a bad one: scored, never clamped
    s = mlmetrics.topk_stats(X.to(device), 1, class_subset=torch.tensor([3, 0], device=device), backend=backend)
    assert s.topk_indices.tolist() == [[0], [0]]


def test_duplicate_class_subset_no_longer_scores_zero():
    # the target is the argmax of the scored columns, but a repeated class used to take rank 0
    # away from it (top1 0.0)
    raises(ValueError, "more than once", F.accuracy, torch.tensor([[0.0, 5.0, 1.0]]), torch.tensor([0]),
           class_subset=[1, 1, 0])


def test_checked_subset_is_checked_again_after_an_in_place_change():
    cs = torch.tensor([0, 1])
    mlmetrics.topk_stats(X, 1, class_subset=cs)
    cs[1] = 0
    raises(ValueError, "more than once", mlmetrics.topk_stats, X, 1, class_subset=cs)
    raises(ValueError, r"holds 3, outside \[0, C=3\)", mlmetrics.topk_stats, X[:, :3], 1,
           class_subset=torch.tensor([0, 3]))


# ---------------------------------------------------------------------------------------
# label sets passed to the ops and metrics
# ---------------------------------------------------------------------------------------
def test_bad_label_sets_argument():
    raises(TypeError, r"label_sets must be a mlmetrics.LabelSets, got list", mlmetrics.topk_label_hits,
           X, [[1], [2]], 1)
    raises(ValueError, r"label_sets holds 3 samples but logits has N=2 rows", mlmetrics.topk_label_hits,
           X, LabelSets.from_lists([[0]] * 3, C), 1)
    raises(ValueError, r"label_sets has num_classes=5 but the logits have C=4 classes", mlmetrics.topk_stats,
           X, 1, label_sets=LabelSets.from_lists([[0]] * 2, 5))
    raises(TypeError, r"label_sets must be a mlmetrics.LabelSets, got list", F.real_accuracy, X, [[1], [2]], 1)
    raises(TypeError, r"label_sets must be a mlmetrics.LabelSets, got list", ClassificationMetrics, C,
           label_sets=[[1], [2]])


# ---------------------------------------------------------------------------------------
# empty batch
# ---------------------------------------------------------------------------------------
E = torch.zeros(0, C)
ET = torch.zeros(0, dtype=torch.int64)


@pytest.mark.parametrize("backend", BACKENDS)
def test_empty_batch_gives_empty_results_from_the_ops(backend):
    s = mlmetrics.topk_stats(E, 2, target=ET, label_sets=LabelSets.from_lists([], C), backend=backend)
    assert [tuple(t.shape) for t in s] == [(0, 2), (0, 2), (0, 2), (0, mlmetrics.ops.NUM_STATS), (0,)]
    p, i = mlmetrics.softmax_topk(E, 2, backend=backend)
    assert p.shape == i.shape == (0, 2) and p.dtype == torch.float32 and i.dtype == torch.int64
    assert mlmetrics.topk_label_hits(E, LabelSets.from_lists([], C), 3, backend=backend).shape == (0, 3)
    assert all(v.shape == (0,) for v in F.ood_scores(E, backend=backend).values())


@pytest.mark.parametrize("metric", [
    lambda: F.accuracy(E, ET), lambda: F.topk_accuracy(E, ET, (1, 2)), lambda: F.nll(E, ET),
    lambda: F.calibration(E, ET), lambda: F.real_accuracy(E, LabelSets.from_lists([], C), 1),
    lambda: F.classification_metrics(E, ET),
])
def test_empty_batch_in_a_functional_metric_says_so(metric):
    raises(ValueError, r"logits has no rows \(N=0, shape \(0, 4\)\): a metric of an empty batch is undefined", metric)


def test_empty_batches_in_classification_metrics():
    m = ClassificationMetrics(C, topk=(1,))
    m.update(E, ET)  # accepted: adds no rows
    raises(RuntimeError, r"no rows to score: .*an empty batch, N=0, adds no rows", m.compute)
    m.update(X, T)
    m.update(E, ET)
    assert m.compute()["top1"] == 0.5 and m.compute()["num_samples"] == 2


# ---------------------------------------------------------------------------------------
# LabelSets
# ---------------------------------------------------------------------------------------
BAD_CSR = {
    "duplicate in a set": ((torch.tensor([0, 3]), torch.tensor([2, 2, 0]), 5), ValueError,
                           r"sample 0: labels must be sorted and unique within a set, got \[2, 2, 0\]"),
    "unsorted set": ((torch.tensor([0, 1, 3]), torch.tensor([4, 3, 1]), 5), ValueError,
                     r"sample 1: labels must be sorted and unique within a set, got \[3, 1\]"),
    "label too large": ((torch.tensor([0, 1]), torch.tensor([2**32 + 7]), 10), ValueError,
                        r"sample 0: label 4294967303 outside \[0, 10\)"),
    "negative label": ((torch.tensor([0, 1, 2]), torch.tensor([1, -1]), 5), ValueError,
                       r"sample 1: label -1 outside \[0, 5\)"),
    "offsets do not end at len(labels)": ((torch.tensor([0, 3]), torch.tensor([1, 2]), 5), ValueError,
                                          r"offsets must start at 0, be non-decreasing and end at len\(labels\)"),
    "float offsets": ((torch.tensor([0.0, 1.0]), torch.tensor([1]), 5), TypeError,
                      r"offsets must be an int64 tensor, got torch.float32"),
    "2-D offsets": ((torch.tensor([[0, 1]]), torch.tensor([1]), 5), ValueError,
                    r"offsets must be 1-D \[N \+ 1\], got shape \(1, 2\)"),
    "float labels": ((torch.tensor([0, 1]), torch.tensor([1.0]), 5), TypeError,
                     r"labels must be an int32 or int64 tensor, got torch.float32"),
    "num_classes 2.5": ((torch.tensor([0, 1]), torch.tensor([1]), 2.5), TypeError, r"num_classes must be an int, got float"),
    "num_classes True": ((torch.tensor([0, 1]), torch.tensor([0]), True), TypeError, r"num_classes must be an int, got bool"),
    "num_classes 0": ((torch.tensor([0]), torch.tensor([], dtype=torch.int64), 0), ValueError,
                      r"num_classes must be in \[1, 2147483647\], got 0"),
}


@pytest.mark.parametrize("bad", BAD_CSR)
def test_bad_label_sets_csr(bad):
    args, exc, pattern = BAD_CSR[bad]
    raises(exc, pattern, LabelSets, *args)


def test_csr_sets_may_differ_across_a_set_boundary():
    # [2] then [0, 4]: a decrease between two sets is fine; empty sets too
    s = LabelSets(torch.tensor([0, 1, 1, 3]), torch.tensor([2, 0, 4]), 5)
    assert s.tolist() == [[2], [], [0, 4]]
    # the constructor with validate=False trusts its input (for callers that built valid CSR)
    assert LabelSets(torch.tensor([0, 2]), torch.tensor([3, 1]), 5, validate=False).tolist() == [[3, 1]]


BAD_LISTS = {
    "floats": (([[0.5], [1.7]], 5), TypeError, r"sample 0: labels must be integer class indices, got 0.5 \(float\)"),
    "integral float": (([[1], [2.0]], 5), TypeError, r"sample 1: labels must be integer class indices, got 2.0"),
    "strings": (([["1"], ["2"]], 5), TypeError, r"sample 0: labels must be integer class indices, got '1' \(str\)"),
    "string samples": ((["12", "3"], 5), TypeError, r"sample 0 must be a list of class indices, got str"),
    "bools": (([[True], [1]], 5), TypeError, r"sample 0: labels must be integer class indices, got True \(bool\)"),
    "None label": (([[1, None]], 5), TypeError, r"sample 0: labels must be integer class indices, got None"),
    "nested lists": (([[[1]], [2]], 5), TypeError, r"sample 0: labels must be integer class indices, got a nested list"),
    "int samples": (([1, [2]], 5), TypeError, r"sample 0 must be a list of class indices, got int"),
    "dict sample": (([{1: 2}], 5), TypeError, r"sample 0 must be a list of class indices, got dict"),
    "float array": (([np.array([1.0])], 5), TypeError, r"sample 0: labels must be integers, got a NumPy float64 array"),
    "2-D array": (([np.array([[1]])], 5), ValueError, r"sample 0: labels must be a 1-D list of class indices"),
    "not a list": ((7, 5), TypeError, r"label lists must be a list of per-sample lists of class indices, got int"),
    "a string": (("0 1", 5), TypeError, r"label lists must be a list of per-sample lists"),
    "num_classes 2.5": (([[0], [1]], 2.5), TypeError, r"num_classes must be an int, got float"),
    "num_classes '5'": (([[0]], "5"), TypeError, r"num_classes must be an int, got str"),
    "num_classes 2**32 + 8": (([[2**32 + 7]], 2**32 + 8), ValueError, r"num_classes must be in \[1, 2147483647\]"),
    "label 2**32 + 7": (([[1], [2**32 + 7]], 2**31 - 1), ValueError,
                        r"sample 1: label 4294967303 outside \[0, 2147483647\)"),
    "label 2**70": (([[2**70]], 10), ValueError, r"sample 0: label 1180591620717411303424 outside \[0, 10\)"),
    "negative label": (([[], [0, -3]], 10), ValueError, r"sample 1: label -3 outside \[0, 10\)"),
}


@pytest.mark.parametrize("bad", BAD_LISTS)
def test_bad_label_lists(bad):
    args, exc, pattern = BAD_LISTS[bad]
    raises(exc, pattern, LabelSets.from_lists, *args)


def test_from_lists_accepts_what_users_have():
    lists = [[3, 1, 3], (), {2, 0}, range(1, 3), np.array([4, 0]), torch.tensor([2], dtype=torch.int32),
             [np.int64(1), np.uint8(0)]]
    s = LabelSets.from_lists(lists, np.int64(5))
    assert s.tolist() == [[1, 3], [], [0, 2], [1, 2], [0, 4], [2], [0, 1]]
    assert s.num_classes == 5 and type(s.num_classes) is int
    assert LabelSets.from_lists((x for x in [[1], [0]]), 2).tolist() == [[1], [0]]  # any iterable


def test_unsorted_duplicate_label_sets_no_longer_score_wrong():
    # LabelSets(tensor([0, 3]), tensor([2, 2, 0]), 5) used to be a set of size 3: recall@2 2/3
    x = torch.tensor([[0.0, 0.0, 9.0, 0.0, 0.0]])
    raises(ValueError, "sorted and unique", LabelSets, torch.tensor([0, 3]), torch.tensor([2, 2, 0]), 5)
    assert F.recall_at_k(x, LabelSets.from_lists([[2, 2, 0]], 5), 2) == 1.0  # top-2 = [2, 0]
    assert F.asma(x, LabelSets.from_lists([[2, 2]], 5)) == 1.0


# a junk value: ints (some out of range), floats, bools, strings, None, nested lists
_atom = st.one_of(st.integers(-3, 12), st.floats(allow_nan=True), st.booleans(), st.text(max_size=2), st.none(),
                  st.integers(2**31, 2**70))
_junk = st.recursive(_atom, lambda inner: st.lists(inner, max_size=4), max_leaves=12)


@settings(max_examples=300, deadline=None)
@given(lists=st.lists(_junk, max_size=6), num_classes=st.one_of(st.integers(-1, 12), st.floats(0, 12), st.booleans()))
def test_from_lists_on_junk_is_exact_or_a_one_line_error(lists, num_classes):
    valid_c = isinstance(num_classes, int) and not isinstance(num_classes, bool) and num_classes >= 1
    valid = valid_c and all(isinstance(s, list) and all(type(v) is int and 0 <= v < num_classes for v in s)
                            for s in lists)
    try:
        s = LabelSets.from_lists(lists, num_classes)
    except (TypeError, ValueError) as e:
        assert not valid, f"valid input refused: {e}"
        msg = str(e)
        assert "\n" not in msg
        assert re.match(r"(sample \d+|label lists|num_classes)", msg), msg
        return
    assert valid, f"junk accepted: {lists!r}, num_classes={num_classes!r}"
    assert s.tolist() == [sorted(set(v)) for v in lists] and s.num_classes == num_classes


@settings(max_examples=100, deadline=None)
@given(sets=st.lists(st.lists(st.integers(0, 7), max_size=5), max_size=6))
def test_csr_constructor_accepts_exactly_sorted_unique_sets(sets):
    sizes = [len(s) for s in sets]
    offsets = torch.tensor([0] + list(np.cumsum(sizes, dtype=np.int64)), dtype=torch.int64)
    labels = torch.tensor([v for s in sets for v in s], dtype=torch.int64)
    ok = all(s == sorted(set(s)) for s in sets)
    if ok:
        assert LabelSets(offsets, labels, 8).tolist() == sets
    else:
        first = next(i for i, s in enumerate(sets) if s != sorted(set(s)))
        raises(ValueError, rf"sample {first}: labels must be sorted and unique", LabelSets, offsets, labels, 8)


@pytest.mark.parametrize("content, pattern", [
    ("[[1], [2", r"cannot read ReaL labels \(Expecting"),
    ('{"a": [1]}', r"ReaL labels must be a JSON list of per-image label lists, got a JSON dict"),
    ("[[1], [2.5]]", r"sample 1: labels must be integer class indices, got 2.5"),
    ("[[1], [1000]]", r"sample 1: label 1000 outside \[0, 1000\)"),
    ('[[1], "2"]', r"sample 1 must be a list of class indices, got str"),
    (b"\xff\xfe[", r"cannot read ReaL labels"),
])
def test_bad_real_json_names_the_file(tmp_path, content, pattern):
    p = tmp_path / "real.json"
    (p.write_bytes if isinstance(content, bytes) else p.write_text)(content)
    e = raises(ValueError, pattern, LabelSets.imagenet_real, p)
    assert str(e).startswith(f"{p}: ")


def test_real_json_round_trip(tmp_path):
    p = tmp_path / "real.json"
    p.write_text(json.dumps([[1, 0], [], [999]]))
    assert LabelSets.imagenet_real(p).tolist() == [[0, 1], [], [999]]


def test_class_subset_made_under_inference_mode():
    # inference tensors keep no version counter: checked every call, never cached
    with torch.inference_mode():
        cs = torch.tensor([3, 1])
        assert mlmetrics.topk_stats(X, 1, class_subset=cs).topk_indices.tolist() == [[1], [0]]
        assert F.accuracy(X, torch.tensor([1, 0]), class_subset=cs) == 1.0
        raises(ValueError, "more than once", mlmetrics.topk_stats, X, 1, class_subset=torch.tensor([1, 1]))


def test_csr_from_lists_and_arrays():
    assert LabelSets([0, 2, 2], [1, 3], 4).tolist() == [[1, 3], []]
    assert LabelSets(np.array([0, 0]), [], 4).tolist() == [[]]
