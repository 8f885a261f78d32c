"""Direct standardisation across datasets: dataset B's accuracy reweighted to dataset A's subgroup
mix (e.g. the share of images with 1, 2, 3, 4+ labels), with bootstrap intervals, and the drop
``acc_A - acc_B`` split into the part the subgroup mix explains and the rest.

With p_g the subgroup shares and a_g the per-subgroup accuracies::

    standardized_B = sum_g p_A,g * a_B,g
    acc_A - acc_B  = (acc_A - standardized_B)  +  (standardized_B - acc_B)
                   =  unexplained (within subgroups) + explained_by_mix = sum_g (p_A,g - p_B,g) a_B,g

The two datasets hold different samples, so they are bootstrapped independently (their weights
come from different seed streams); each replicate recomputes shares and accuracies.
"""
from __future__ import annotations

import json
import os
from typing import Sequence

import torch

from .bootstrap import DEFAULT_REPLICATES, PoissonBootstrap
from .intervals import check_level, interval

#: seed offset of dataset B (its weights must be independent of dataset A's)
B_STREAM = 0x2545F4914F6CDD1D


def label_count_groups(sizes: torch.Tensor, cap: int = 4) -> torch.Tensor:
    """int64 [M] subgroup of each sample: its number of labels, counts >= ``cap`` merged into ``cap``."""
    return sizes.to(torch.int64).clamp(max=cap)


def _group_sums(hits: torch.Tensor, groups: torch.Tensor, keys: torch.Tensor, ng: int, replicates: int,
                seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(count [G], hits [G], replicate counts [G, B], replicate hits [G, B])."""
    boot = PoissonBootstrap({"count": (ng,), "hit": (ng,)}, replicates, seed)
    h = hits.to(torch.float64)
    for s in range(0, keys.numel(), 4096):
        sl = slice(s, s + 4096)
        w = boot.weights(keys[sl])
        boot.add_scattered(keys[sl], "count", groups[sl], torch.ones_like(h[sl]), weights=w)
        boot.add_scattered(keys[sl], "hit", groups[sl], h[sl], weights=w)
    cnt = torch.bincount(groups, minlength=ng).to(torch.float64)
    hit = torch.bincount(groups, weights=h, minlength=ng)
    return cnt, hit, boot.sums[boot.slices["count"]], boot.sums[boot.slices["hit"]]


def _check(name: str, hits, groups, keys):
    hits = torch.as_tensor(hits).reshape(-1)
    groups = torch.as_tensor(groups, dtype=torch.int64).reshape(-1)
    if hits.shape != groups.shape:
        raise ValueError(f"{name}: hits [{hits.numel()}] and groups [{groups.numel()}] differ in length")
    if hits.numel() == 0:
        raise ValueError(f"{name}: no samples")
    if int(groups.min()) < 0:
        raise ValueError(f"{name}: subgroups must be ints >= 0")
    keys = torch.arange(hits.numel()) if keys is None else torch.as_tensor(keys, dtype=torch.int64)
    return hits.to(torch.bool), groups, keys


def standardize(hits_a, groups_a, hits_b, groups_b, *, keys_a=None, keys_b=None,
                replicates: int = DEFAULT_REPLICATES, seed: int = 0, level: float = 0.95,
                method: str = "percentile", group_names: Sequence[str] | None = None) -> dict:
    """Standardise dataset B's accuracy to dataset A's subgroup mix.

    ``hits_*``: bool [M] per-sample hits (e.g. top-1 correct); ``groups_*``: int [M] subgroup
    (e.g. :func:`label_count_groups`); ``keys_*``: int64 [M] sample keys for the bootstrap weights
    (default 0..M-1). Every subgroup present in A must be present in B.

    Returns {"accuracy_a", "accuracy_b", "standardized_b", "drop", "explained_by_mix",
    "unexplained", "groups": [{"group", "share_a", "share_b", "accuracy_a", "accuracy_b"}],
    "intervals": {name: interval dict}}.
    """
    level = check_level(level)
    ha, ga, ka = _check("dataset A", hits_a, groups_a, keys_a)
    hb, gb, kb = _check("dataset B", hits_b, groups_b, keys_b)
    ng = int(max(ga.max(), gb.max())) + 1
    ca, sa, rca, rsa = _group_sums(ha, ga, ka, ng, replicates, seed)
    cb, sb, rcb, rsb = _group_sums(hb, gb, kb, ng, replicates, seed ^ B_STREAM)
    missing = [g for g in range(ng) if ca[g] > 0 and cb[g] == 0]
    if missing:
        names = [group_names[g] if group_names else str(g) for g in missing]
        raise ValueError(f"subgroup(s) {names} of dataset A have no samples in dataset B: B cannot be "
                         "standardised to A's mix (merge sparse subgroups, e.g. a smaller cap)")

    def parts(ca, sa, cb, sb):  # [G] or [G, B] -> dict of [] or [B]
        pa, pb = ca / ca.sum(0), cb / cb.sum(0)
        acc_ga = torch.where(ca > 0, sa / ca.clamp(min=1e-300), torch.zeros_like(sa))
        acc_gb = torch.where(cb > 0, sb / cb.clamp(min=1e-300), torch.full_like(sb, float("nan")))
        std = torch.where(pa > 0, pa * acc_gb, torch.zeros_like(pa)).sum(0)
        acc_a, acc_b = sa.sum(0) / ca.sum(0), sb.sum(0) / cb.sum(0)
        return {"accuracy_a": acc_a, "accuracy_b": acc_b, "standardized_b": std, "drop": acc_a - acc_b,
                "explained_by_mix": std - acc_b, "unexplained": acc_a - std}, pa, pb, acc_ga, acc_gb

    est, pa, pb, acc_ga, acc_gb = parts(ca, sa, cb, sb)
    reps = parts(rca, rsa, rcb, rsb)[0]
    out: dict = {k: float(v) for k, v in est.items()}
    out["groups"] = [{"group": group_names[g] if group_names else g, "count_a": int(ca[g]), "count_b": int(cb[g]),
                      "share_a": float(pa[g]), "share_b": float(pb[g]),
                      "accuracy_a": float(acc_ga[g]) if ca[g] > 0 else None,
                      "accuracy_b": float(acc_gb[g]) if cb[g] > 0 else None}
                     for g in range(ng) if ca[g] > 0 or cb[g] > 0]
    out["intervals"] = {k: interval(out[k], reps[k], level, method) for k in est}
    out["bootstrap"] = {"replicates": replicates, "seed": seed, "level": level, "method": method}
    return out


def per_sample_from_report(report: dict | str | os.PathLike, cap: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
    """(top-1 hits bool [M], label-count subgroup int [M]) of a report's ``per_image`` records
    (images with a target; an image without labels is subgroup 0)."""
    if not isinstance(report, dict):
        with open(report) as f:
            report = json.load(f)
    rows = [r for r in report.get("per_image") or [] if "target" in r]
    if not rows:
        raise ValueError("the report has no per-image records with targets (eval --per-image, single-label data)")
    hits = torch.tensor([r["top5"][0]["index"] == r["target"] for r in rows])
    sizes = torch.tensor([len(r.get("labels") or []) for r in rows])
    return hits, label_count_groups(sizes, cap)
