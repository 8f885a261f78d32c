"""torch.distributed for ``torchrun -m mlmetrics eval``: one shard of the data per rank,
results gathered so that rank 0 writes one report equal to a single-process run."""
from __future__ import annotations

import os
from typing import Any

import torch


def world() -> tuple[int, int]:
    """(rank, world size); (0, 1) without an initialised process group."""
    d = torch.distributed
    if d.is_available() and d.is_initialized():
        return d.get_rank(), d.get_world_size()
    return 0, 1


def init_from_env(device: torch.device) -> bool:
    """Join the process group torchrun describes (``WORLD_SIZE`` > 1): gloo on CPU, NCCL on
    CUDA (each rank on ``cuda:LOCAL_RANK``). Returns whether a group was initialised here."""
    d = torch.distributed
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or not d.is_available() or d.is_initialized():
        return False
    d.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return True


def rank_device(device: torch.device) -> torch.device:
    """``cuda`` becomes this rank's ``cuda:LOCAL_RANK`` under torchrun."""
    if device.type == "cuda" and device.index is None and "LOCAL_RANK" in os.environ:
        device = torch.device("cuda", int(os.environ["LOCAL_RANK"]))
        torch.cuda.set_device(device)
    return device


class ShardSampler(torch.utils.data.Sampler):
    """Indices ``rank, rank + world, ...`` of ``0..n-1``, padded by wrapping so every rank gets
    the same count (the metrics' per-sample dedupe counts a padded sample once)."""

    def __init__(self, n: int, rank: int, world_size: int):
        self.n, self.rank, self.world = n, rank, world_size
        self.per_rank = -(-n // world_size) if n else 0

    def __iter__(self):
        return iter([(self.rank + j * self.world) % self.n for j in range(self.per_rank)])

    def __len__(self) -> int:
        return self.per_rank


def gather(obj: Any) -> list[Any]:
    """Every rank's ``obj`` (a list of one without a process group)."""
    rank, size = world()
    if size == 1:
        return [obj]
    out: list[Any] = [None] * size
    torch.distributed.all_gather_object(out, obj)
    return out
