"""Shared pieces of the multi-process (gloo, CPU) tests: toy data and a spawn helper."""
import os
import tempfile

import torch
import torch.multiprocessing as mp


def toy_data(n: int, c: int):
    """(logits [n, c] float32, target [n] int64, LabelSets: {target, another} or empty every 4th row)."""
    from mlmetrics import LabelSets

    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, c, generator=g) * 2
    t = torch.randint(0, c, (n,), generator=g)
    lists = [sorted({int(t[i]), (int(t[i]) + i) % c}) if i % 4 else [] for i in range(n)]
    return x, t, LabelSets.from_lists(lists, c)


def run_ranks(worker, world: int, name: str, *args):
    """Spawn ``worker(rank, world, init_file, out_dir, *args)`` on ``world`` processes; each saves
    ``{name}{rank}.pt``: the list of those results."""
    with tempfile.TemporaryDirectory() as d:
        mp.spawn(worker, args=(world, os.path.join(d, "init"), d, *args), nprocs=world, join=True)
        return [torch.load(os.path.join(d, f"{name}{r}.pt"), weights_only=False) for r in range(world)]
