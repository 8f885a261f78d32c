"""Precision of the probabilities on every backend here (cpu, reference, Triton under the
interpreter with small shapes): p = exp((x - max_logit) - log_normalizer) in float64 keeps the
relative error of every probability (and of max_prob, NLL) below 1e-6 at any logit magnitude,
against float64 ``torch.softmax`` of the float32 logits."""
import pytest
import torch

import mlmetrics
import mlmetrics.functional as F
import tests.ops.triton_interp as triton_interp  # re-imports the Triton kernels for the interpreter

BACKENDS = ["reference"] + (["cpu"] if mlmetrics.HAS_EXTENSION else []) + \
    (["triton"] if triton_interp.HAVE_TRITON else [])
#: rows the interpreter can run in a few seconds
SMALL = {"triton": 16, "reference": 512, "cpu": 4096}
REL = 1e-6
TINY = torch.finfo(torch.float32).tiny  # below this a float32 probability is subnormal (or 0)


@pytest.fixture(params=BACKENDS)
def backend(request, monkeypatch):
    if request.param == "triton":
        monkeypatch.setenv("TRITON_INTERPRET", "1")
    return request.param


def oracle(x: torch.Tensor, k: int):
    """float64 softmax of the float32 logits: (top-k probs, full probs, nll of class 0)."""
    x64 = x.float().double()
    return torch.softmax(x64, 1).topk(k, 1).values, -torch.log_softmax(x64, 1)[:, 0]


def rel_err(got: torch.Tensor, want: torch.Tensor) -> float:
    ok = want >= TINY
    return ((got.double() - want) / want).abs()[ok].max().item()


def test_large_magnitude_ties_give_exactly_one_half(backend):
    x = torch.tensor([[65504.0, 65504.0, -65504.0, 0.0]])
    p, i = mlmetrics.softmax_topk(x, 2, backend=backend)
    assert p.tolist() == [[0.5, 0.5]] and i.tolist() == [[0, 1]]
    assert mlmetrics.topk_stats(x, 2, backend=backend).topk_probs.tolist() == [[0.5, 0.5]]
    assert mlmetrics.topk_stats(x.half(), 1, backend=backend).max_prob.item() == 0.5


def test_two_close_large_logits(backend):
    x = torch.tensor([[20000.0, 19993.0, 0.0]])
    p, _ = mlmetrics.softmax_topk(x, 2, backend=backend)
    want, _ = oracle(x, 2)
    assert rel_err(p, want) <= REL
    assert p.double().sum().item() <= 1 + REL


@pytest.mark.parametrize("scale", [1e-3, 1.0, 100.0, 1e4])
def test_relative_error_at_any_magnitude(backend, scale):
    n = SMALL[backend]
    x = torch.randn(n, 1000, generator=torch.Generator().manual_seed(0)) * scale
    target = torch.zeros(n, dtype=torch.int64)
    want, nll = oracle(x, 5)
    p, _ = mlmetrics.softmax_topk(x, 5, backend=backend)
    st = mlmetrics.topk_stats(x, 5, target=target, backend=backend)
    assert rel_err(p, want) <= REL
    assert rel_err(st.topk_probs, want) <= REL
    assert rel_err(st.max_prob, want[:, 0]) <= REL
    assert ((st.nll.double() - nll).abs() / nll.abs().clamp(min=1)).max().item() <= REL
    assert p.double().sum(1).max().item() <= 1 + REL


def test_top5_sums_of_large_logits_stay_at_most_one(backend):
    n = SMALL[backend]
    x = torch.randn(4096, 1000, generator=torch.Generator().manual_seed(1))[:n] * 100
    p, _ = mlmetrics.softmax_topk(x, 5, backend=backend)
    assert p.double().sum(1).max().item() <= 1 + REL


def test_wide_near_uniform_rows(backend):
    # log_normalizer ~ log C = 10.3 here: the largest rounding of the normaliser
    c = 30000
    x = torch.randn(2 if backend == "triton" else 16, c, generator=torch.Generator().manual_seed(2)) * 1e-3
    want, _ = oracle(x, 3)
    p, _ = mlmetrics.softmax_topk(x, 3, backend=backend)
    assert rel_err(p, want) <= REL


def test_calibration_of_a_confident_row_matches_torchmetrics():
    # max_prob of [15.03, 0, 0] is 0.99999941 (not 1.0): the row stays in the top bin
    tm = pytest.importorskip("torchmetrics.functional.classification")
    x, t = torch.tensor([[15.03, 0.0, 0.0], [5.0, 0.0, 0.0]]), torch.tensor([1, 0])
    out = F.calibration(x, t, 10)
    want_ece = tm.multiclass_calibration_error(x, t, 3, n_bins=10, norm="l1").item()
    want_mce = tm.multiclass_calibration_error(x, t, 3, n_bins=10, norm="max").item()
    assert out["ece"] == pytest.approx(want_ece, abs=1e-6) and out["ece"] == pytest.approx(0.4934, abs=1e-4)
    assert out["mce"] == pytest.approx(want_mce, abs=1e-6)


def test_calibration_equals_torchmetrics_on_random_batches():
    # Where a row's exact max probability lies within REL of a bin edge (1.0 included), the bin is
    # decided by float32 rounding that neither torch's float32 softmax nor ours gets exactly
    # (both are within REL): such batches are left out, the others must agree.
    tm = pytest.importorskip("torchmetrics.functional.classification")
    g = torch.Generator().manual_seed(3)
    edges = torch.linspace(0, 1, 16, dtype=torch.float32).double()
    compared = 0
    for _ in range(200):
        x = torch.randn(200, 10, generator=g) * 5
        t = torch.randint(0, 10, (200,), generator=g)
        exact = torch.softmax(x.double(), 1).max(1).values
        if bool(((exact[:, None] - edges).abs() <= REL).any()):
            continue
        compared += 1
        out = F.calibration(x, t, 15)
        assert out["ece"] == pytest.approx(tm.multiclass_calibration_error(x, t, 10, n_bins=15).item(), abs=1e-6)
        assert out["mce"] == pytest.approx(
            tm.multiclass_calibration_error(x, t, 10, n_bins=15, norm="max").item(), abs=1e-6)
    assert compared >= 150
