"""McNemar's exact test equals statsmodels to 1e-12; paired differences use the same bootstrap
weights for both models; the verdict table reads right."""
import pytest
import torch
from statsmodels.stats.contingency_tables import mcnemar

from mlmetrics import LabelSets
from mlmetrics.metrics import ClassificationMetrics
from mlmetrics.stats import Bootstrap, compare, mcnemar_exact
from mlmetrics.stats.scores import from_bootstrap, from_hits

TABLES = [(0, 0), (0, 1), (1, 0), (3, 10), (10, 3), (7, 7), (100, 130), (5, 60), (2500, 2600), (20000, 20600)]


@pytest.mark.parametrize("b,c", TABLES)
def test_mcnemar_matches_statsmodels(b, c):
    want = mcnemar([[11, b], [c, 4]], exact=True).pvalue
    assert abs(mcnemar_exact(b, c) - want) <= 1e-12


def _models(n=800, c=12):
    g = torch.Generator().manual_seed(0)
    t = torch.randint(0, c, (n,), generator=g)
    base = torch.randn(n, c, generator=g)
    xa = base + 1.0 * torch.nn.functional.one_hot(t, c)
    xb = base + 1.6 * torch.nn.functional.one_hot(t, c) + 0.5 * torch.randn(n, c, generator=g)
    ls = LabelSets.from_lists([[int(t[i]), (int(t[i]) + 1) % c] if i % 2 else [int(t[i])] for i in range(n)], c)
    out = []
    for x in (xa, xb):
        bs = Bootstrap(ClassificationMetrics(c, topk=(1, 5), label_sets=ls), replicates=400, seed=4)
        for s in range(0, n, 100):
            bs.update(x[s:s + 100], t[s:s + 100], torch.arange(s, min(s + 100, n)))
        out.append(bs)
    return out, t


def test_compare_two_models():
    (a, b), t = _models()
    sa, sb = from_bootstrap(a, "A"), from_bootstrap(b, "B")
    cmp = compare(sa, sb)
    rows = {r["metric"]: r for r in cmp.rows}
    r = rows["top1"]
    assert r["difference"] == pytest.approx(sb.estimates["top1"] - sa.estimates["top1"])
    assert r["low"] < r["difference"] < r["high"]
    # McNemar on the per-sample hits
    ha = a.metrics.records.decode(a.metrics.state["records"][:800])[0].target_rank == 0
    hb = b.metrics.records.decode(b.metrics.state["records"][:800])[0].target_rank == 0
    n01, n10 = int((ha & ~hb).sum()), int((~ha & hb).sum())
    assert (r["only_baseline"], r["only_model"]) == (n01, n10)
    assert abs(r["mcnemar_p"] - mcnemar([[0, n01], [n10, 0]], exact=True).pvalue) <= 1e-12
    assert r["verdict"] == "B better"  # B's logits carry more signal
    assert rows["nll"]["verdict"] == "B better" and rows["nll"]["difference"] < 0
    assert "real_top1" in rows and rows["real_top1"]["mcnemar_p"] is not None
    assert "variable_topk_strict" in rows and rows["ece"]["mcnemar_p"] is None
    # paired: the interval of the difference is narrower than from unpaired (independent) replicates
    sd_paired = (sb.replicates["top1"] - sa.replicates["top1"]).std()
    sd_indep = (sa.replicates["top1"].var() + sb.replicates["top1"].var()).sqrt()
    assert sd_paired < 0.8 * sd_indep
    text = cmp.table()
    assert "B vs A" in text and "top1" in text and "B better" in text


def test_compare_model_with_itself_is_no_difference():
    (a, _), _ = _models()
    s = from_bootstrap(a, "A")
    cmp = compare(s, from_bootstrap(a, "A2"))
    for r in cmp.rows:
        assert r["difference"] == 0 and r["verdict"] == "no clear difference"
        if r["mcnemar_p"] is not None:
            assert r["mcnemar_p"] == 1.0


def test_unpaired_replicates_refused():
    keys = torch.arange(50)
    hits = {"top1": (torch.ones(50, dtype=torch.bool), torch.rand(50) > 0.5)}
    a = from_hits("a", keys, hits, replicates=100, seed=0)
    with pytest.raises(ValueError, match="not bootstrapped alike"):
        compare(a, from_hits("b", keys, hits, replicates=100, seed=1))
    with pytest.raises(ValueError, match="at least two"):
        compare(a)


def test_three_models_each_against_baseline():
    keys = torch.arange(300)
    g = torch.Generator().manual_seed(1)
    ones = torch.ones(300, dtype=torch.bool)
    ms = [from_hits(n, keys, {"top1": (ones, torch.rand(300, generator=g) < p)}, replicates=300)
          for n, p in (("a", 0.5), ("b", 0.5), ("c", 0.9))]
    rows = compare(*ms).rows
    assert [r["model"] for r in rows] == ["b", "c"]
    assert rows[1]["verdict"] == "c better"
