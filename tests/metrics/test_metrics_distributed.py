"""A real 2-process gloo run on CPU: uneven shards and DistributedSampler padding give the same
result as one process (dedupe by sample_index), and plain sums add up across ranks."""
import math
import os

import pytest
import torch
import torch.distributed as dist

from tests.distributed import run_ranks, toy_data

N, C = 50, 9


def _data():
    return toy_data(N, C)


def _shards(world):
    # DistributedSampler(shuffle=False, drop_last=False): rank r gets indices r, r + world, ...
    # over a list padded with its own head to a multiple of world -> duplicates
    total = math.ceil(N / world) * world
    idx = list(range(N)) + list(range(total - N))
    return [torch.tensor(idx[r::world]) for r in range(world)]


def _worker(rank, world, init_file, out_dir):
    torch.set_num_threads(1)
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
    res = run_ranks(_worker, world, "rank")

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


def _spawned_worker(rank, world, init_file, out_dir, metrics):
    """ddp_spawn-style: the metrics were built in the parent and reach each child pickled through
    torch.multiprocessing (tensors in shared memory)."""
    from mlmetrics.metrics import ClassificationMetrics

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        x, t, _ = _data()
        mine = torch.arange(rank, N, world)
        res = {}
        for name, m in metrics.items():
            for b in range(0, len(mine), 8):
                idx = mine[b:b + 8]
                m.update(x[idx], t[idx], sample_index=idx)
            dist.barrier()  # both ranks have updated before either reads its local state
            res[name] = (m.compute(sync=False)["num_samples"], m.compute()["num_samples"], m.compute()["top1"])
        # sync() of dedupe records: reduced and decoded chunk by chunk, never a full copy
        from tests.metrics.memory import peak_extra_bytes

        big = ClassificationMetrics(C, topk=(1, 3), num_samples=30_000)
        idx = torch.arange(rank * 7, 30_000, 13)
        big.update(torch.randn(idx.numel(), C), idx % C, sample_index=idx)
        extra, _ = peak_extra_bytes(big.sync)
        rec = big.state["records"]
        res["sync_peak"] = (rec.numel() * rec.element_size() + extra) / (rec.numel() * rec.element_size())
        res["sync_rows"] = big.compute()["num_samples"]
        torch.save(res, os.path.join(out_dir, f"spawned{rank}.pt"))
    finally:
        dist.destroy_process_group()


@pytest.mark.distributed
def test_metrics_built_before_spawn_do_not_share_state():
    from mlmetrics.metrics import ClassificationMetrics

    world = 2
    metrics = {"sums": ClassificationMetrics(C, topk=(1, 3), dedupe=False),
               "records": ClassificationMetrics(C, topk=(1, 3), num_samples=N)}
    for m in metrics.values():
        m.update(torch.zeros(1, C), torch.zeros(1, dtype=torch.int64), sample_index=torch.zeros(1, dtype=torch.int64))
        m.reset()  # state allocated in the parent, as a LightningModule's metric would be
    res = run_ranks(_spawned_worker, world, "spawned", metrics)
    x, t, _ = _data()
    import mlmetrics.functional as F

    for r in range(world):
        for name in metrics:
            local, total, top1 = res[r][name]
            assert local == len(range(r, N, world)), name
            assert total == N, name
            assert top1 == pytest.approx(F.accuracy(x, t), abs=1e-12), name
        assert res[r]["sync_peak"] <= 1.5
        assert res[r]["sync_rows"] == len(set(range(0, 30_000, 13)) | set(range(7, 30_000, 13)))
