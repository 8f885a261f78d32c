"""Bootstrap intervals agree with scipy.stats.bootstrap (percentile method) on the same per-sample
data, within Monte-Carlo error: a mean (top-1), a ratio (ReaL top-1: non-empty label sets only)
and the ECE."""
import numpy as np
import pytest
import torch
from scipy import stats as sps

from mlmetrics import LabelSets
from mlmetrics.metrics import ClassificationMetrics
from mlmetrics.stats import Bootstrap

N, C, B = 1500, 10, 2000


def _data():
    g = torch.Generator().manual_seed(0)
    t = torch.randint(0, C, (N,), generator=g)
    x = torch.randn(N, C, generator=g) * 1.5
    x[torch.arange(N), t] += 1.2
    lists = [sorted({int(t[i]), (int(t[i]) + 1 + i % 3) % C}) if i % 3 else [] for i in range(N)]
    return x, t, LabelSets.from_lists(lists, C)


@pytest.fixture(scope="module")
def run():
    x, t, ls = _data()
    bs = Bootstrap(ClassificationMetrics(C, topk=(1, 3), label_sets=ls), replicates=B, seed=1)
    for s in range(0, N, 256):
        bs.update(x[s:s + 256], t[s:s + 256], torch.arange(s, min(s + 256, N)))
    out = bs.compute()
    m = bs.metrics
    st, target, has_target, sizes, seen = m.records.decode(m.state["records"][:N])
    assert bool(seen.all())
    hit = (st.target_rank == 0).numpy()
    ne = (sizes > 0).numpy()
    real = st.hits[:, 0].numpy()
    conf = st.max_prob.numpy().astype(np.float32)
    return out, hit, ne, real, conf


def _ece(conf, hit):
    edges = np.linspace(0, 1, 16, dtype=np.float32)
    b = np.clip(np.searchsorted(edges, conf, side="right") - 1, 0, 15)
    n = np.bincount(b, minlength=16)
    acc = np.bincount(b, weights=hit, minlength=16)
    cf = np.bincount(b, weights=conf.astype(np.float64), minlength=16)
    ok = n > 0
    return float(np.abs(acc[ok] - cf[ok]).sum() / len(conf))


def _scipy(data, stat):
    r = sps.bootstrap(data, stat, paired=True, vectorized=False, n_resamples=B, method="percentile",
                      confidence_level=0.95, random_state=np.random.default_rng(0))
    return r.confidence_interval.low, r.confidence_interval.high, r.standard_error


def _agree(iv, lo, hi, se):
    # endpoint quantiles of 2000 replicates: MC sd ~ 0.06 se each; Poisson vs multinomial resampling
    assert abs(iv["low"] - lo) < 0.3 * se, (iv, lo, hi)
    assert abs(iv["high"] - hi) < 0.3 * se, (iv, lo, hi)
    assert abs(iv["se"] - se) < 0.1 * se


def test_mean(run):
    out, hit, ne, real, conf = run
    assert out["top1"] == pytest.approx(hit.mean())
    _agree(out["intervals"]["top1"], *_scipy((hit.astype(float),), np.mean))


def test_ratio(run):
    out, hit, ne, real, conf = run
    stat = lambda a, b: (a * b).sum() / a.sum()  # noqa: E731
    assert out["real_top1"] == pytest.approx(stat(ne, real))
    _agree(out["intervals"]["real_top1"], *_scipy((ne.astype(float), real.astype(float)), stat))


def test_ece(run):
    out, hit, ne, real, conf = run
    assert out["ece"] == pytest.approx(_ece(conf, hit), abs=1e-6)
    _agree(out["intervals"]["ece"], *_scipy((conf, hit.astype(float)), _ece))


def test_basic_interval_mirrors_percentile(run):
    from mlmetrics.stats import interval

    out = run[0]
    iv = out["intervals"]["top1"]
    x = torch.linspace(0, 1, 11, dtype=torch.float64)
    p, b = interval(0.5, x, 0.8, "percentile"), interval(0.5, x, 0.8, "basic")
    assert (p["low"], p["high"]) == pytest.approx((0.1, 0.9))
    assert (b["low"], b["high"]) == pytest.approx((0.1, 0.9))
    b2 = interval(0.7, x, 0.8, "basic")
    assert (b2["low"], b2["high"]) == pytest.approx((0.5, 1.3))
    assert iv["method"] == "percentile" and iv["replicates"] == B and iv["low"] < out["top1"] < iv["high"]
