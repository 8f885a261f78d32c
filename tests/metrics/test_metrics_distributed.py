"""A real 2-process gloo run on CPU: uneven shards and DistributedSampler padding give the same
result as one process (dedupe by sample_index), and plain sums add up across ranks."""
import math
import os
import tempfile

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

N, C = 50, 9


def _data():
    from mlmetrics import LabelSets

    g = torch.Generator().manual_seed(0)
    x = torch.randn(N, C, generator=g) * 2
    t = torch.randint(0, C, (N,), generator=g)
    lists = [sorted({int(t[i]), (int(t[i]) + i) % C}) if i % 4 else [] for i in range(N)]
    return x, t, LabelSets.from_lists(lists, C)


def _shards(world):
    # DistributedSampler(shuffle=False, drop_last=False): rank r gets indices r, r + world, ...
    # over a list padded with its own head to a multiple of world -> duplicates
    total = math.ceil(N / world) * world
    idx = list(range(N)) + list(range(total - N))
    return [torch.tensor(idx[r::world]) for r in range(world)]


def _worker(rank, world, init_file, out_dir):
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        from mlmetrics.metrics import ClassificationMetrics

        x, t, ls = _data()
        mine = _shards(world)[rank]
        if rank == 1:
            mine = mine[:-3]  # uneven per-rank counts
        results = {}
        for dedupe in (True, False):
            m = ClassificationMetrics(C, topk=(1, 3), label_sets=ls, dedupe=dedupe)
            for b in range(0, len(mine), 7):
                idx = mine[b:b + 7]
                m.update(x[idx], t[idx], sample_index=idx)
            results[dedupe] = m.compute()
            local = m.compute(sync=False)
            results[f"local{dedupe}"] = local["num_samples"]
        # explicit sync(), then compute uses the cached global state
        m.sync()
        results["synced"] = m.compute()["num_samples"]
        torch.save(results, os.path.join(out_dir, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


@pytest.mark.distributed
def test_two_process_gloo_equals_one_process():
    from mlmetrics.metrics import ClassificationMetrics

    world = 2
    with tempfile.TemporaryDirectory() as d:
        init_file = os.path.join(d, "init")
        mp.spawn(_worker, args=(world, init_file, d), nprocs=world, join=True)
        res = [torch.load(os.path.join(d, f"rank{r}.pt"), weights_only=False) for r in range(world)]

    x, t, ls = _data()
    shards = _shards(world)
    shards[1] = shards[1][:-3]
    seen = torch.unique(torch.cat(shards))
    single = ClassificationMetrics(C, topk=(1, 3), label_sets=ls)
    single.update(x[seen], t[seen], sample_index=seen)
    want = single.compute()
    for r in range(world):
        got = res[r][True]
        assert got["num_samples"] == len(seen) == want["num_samples"]
        for k, v in want.items():
            if isinstance(v, torch.Tensor):
                torch.testing.assert_close(got[k], v, equal_nan=True)
            elif isinstance(v, dict):
                assert got[k] == pytest.approx(v)
            elif isinstance(v, float) and math.isnan(v):
                assert math.isnan(got[k])
            else:
                assert got[k] == pytest.approx(v, abs=1e-12), k
        # plain sums: every row each rank saw, padding duplicates included
        assert res[r][False]["num_samples"] == sum(len(s) for s in shards)
        assert res[r]["synced"] == len(seen)
    assert res[0]["localTrue"] + res[1]["localTrue"] >= len(seen)
