"""The bootstrap does not depend on how the samples are split: 1 vs 2 vs 3 gloo processes with
uneven shards and shuffled batch orders give the same replicate sums (bit for bit for the count
states) and the same intervals."""
import os

import pytest
import torch
import torch.distributed as dist

from tests.distributed import run_ranks, toy_data

N, C, B = 90, 7, 64
INTEGER_STATES = ("rows", "scored", "n_target", "correct", "class_count", "class_correct", "bin_count",
                  "bin_correct", "label_rows", "label_hist", "n_labeled", "n_empty", "real", "subset", "n_var",
                  "var_strict", "grp_count", "grp_strict")


def _data():
    return toy_data(N, C)


def _shards(world):
    cuts = {1: [N], 2: [31, N], 3: [17, 60, N]}[world]  # uneven
    perm = torch.randperm(N, generator=torch.Generator().manual_seed(world))
    lo, out = 0, []
    for c in cuts:
        out.append(perm[lo:c])
        lo = c
    return out


def _score(mine, batch, dedupe):
    from mlmetrics.metrics import ClassificationMetrics
    from mlmetrics.stats import Bootstrap

    x, t, ls = _data()
    bs = Bootstrap(ClassificationMetrics(C, topk=(1, 3), label_sets=ls, dedupe=dedupe), replicates=B, seed=11)
    for s in range(0, len(mine), batch):
        idx = mine[s:s + batch]
        bs.update(x[idx], t[idx], sample_index=idx)
    out = bs.compute()
    sums = bs.replicate_sums()
    return {"intervals": out["intervals"], "sums": {k: sums[sl].clone() for k, sl in bs.boot.slices.items()}}


def _worker(rank, world, init_file, out_dir):
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        mine = _shards(world)[rank]
        res = {d: _score(mine, 5 + 2 * rank, d) for d in (False, True)}
        torch.save(res, os.path.join(out_dir, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


def _run(world):
    return run_ranks(_worker, world, "rank")


def _same(a, b):
    for k, v in a["sums"].items():
        if k in INTEGER_STATES:
            assert torch.equal(v, b["sums"][k]), k
        else:
            torch.testing.assert_close(v, b["sums"][k], rtol=1e-12, atol=1e-12)
    for k, iv in a["intervals"].items():
        for e in ("low", "high"):
            assert iv[e] == pytest.approx(b["intervals"][k][e], rel=1e-9, abs=1e-12, nan_ok=True), (k, e)


@pytest.mark.distributed
def test_one_two_three_processes_agree():
    ref = {d: _score(torch.arange(N), N, d) for d in (False, True)}
    shuffled = {d: _score(torch.randperm(N, generator=torch.Generator().manual_seed(5)), 4, d) for d in (False, True)}
    for d in (False, True):
        _same(ref[d], shuffled[d])
        _same(ref[d], ref[not d])  # streaming sums == sums built from the per-sample records
    for world in (2, 3):
        for rank_res in _run(world):
            for d in (False, True):
                _same(ref[d], rank_res[d])
    assert ref[False]["intervals"]["top1"]["low"] < ref[False]["intervals"]["top1"]["high"]
