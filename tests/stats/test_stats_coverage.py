"""Coverage on simulated data: over 1,000 simulated evaluations of a classifier with a known true
accuracy, the 95 % interval of the Poisson bootstrap covers it about 95 % of the time (the measured
coverage is printed with ``-s``)."""
import pytest
import torch

from mlmetrics.stats.weights import poisson_weights

SIMS, N, B, P, CHUNK = 1000, 400, 400, 0.7, 100


def test_coverage_of_accuracy():
    g = torch.Generator().manual_seed(0)
    hits = (torch.rand(SIMS, N, generator=g) < P).to(torch.float64)
    covered = {"percentile": 0, "basic": 0}
    for s in range(0, SIMS, CHUNK):
        # evaluation j's sample i has key j * N + i: every evaluation gets its own weights
        w = poisson_weights(torch.arange(s * N, (s + CHUNK) * N), B, seed=0).view(CHUNK, N, B)
        h = hits[s:s + CHUNK]
        reps = torch.einsum("jib,ji->jb", w, h) / w.sum(1)                 # [CHUNK, B] replicate accuracies
        q = torch.quantile(reps, torch.tensor([0.025, 0.975], dtype=torch.float64), dim=1)  # [2, CHUNK]
        est = h.mean(1)
        covered["percentile"] += int(((q[0] <= P) & (P <= q[1])).sum())
        covered["basic"] += int(((2 * est - q[1] <= P) & (P <= 2 * est - q[0])).sum())
    for m, c in covered.items():
        print(f"coverage of the 95% {m} interval over {SIMS} simulated evaluations (N={N}, p={P}, "
              f"{B} replicates): {c / SIMS:.3f}")
        # binomial sd of the coverage over 1,000 runs: 0.7 %
        assert 0.93 <= c / SIMS <= 0.97, f"{m}: coverage {c / SIMS:.3f}"


def test_interval_function_matches_the_vectorised_quantiles():
    from mlmetrics.stats import interval

    reps = torch.rand(400, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    q = torch.quantile(reps, torch.tensor([0.025, 0.975], dtype=torch.float64))
    iv = interval(0.5, reps, 0.95)
    assert (iv["low"], iv["high"]) == pytest.approx((float(q[0]), float(q[1])), rel=1e-12)
    nan = torch.cat([reps, torch.tensor([float("nan")] * 3, dtype=torch.float64)])
    assert interval(0.5, nan, 0.95)["undefined"] == 3 and interval(0.5, nan, 0.95)["low"] == iv["low"]
