"""Shared pieces of the harness tests: generated images, tiny timm checkpoints, report comparison."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

FAST = dict(img_size=64, batch_size=4, workers=0, progress=False, device="cpu")
#: report keys that differ between two runs of the same thing
VOLATILE = ("created", "timings", "outputs")


def write_image(path, seed):
    from PIL import Image

    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(path, quality=90)


def corrupt(path):
    path.write_bytes(b"\xff\xd8\xff\xe0 this is not really a JPEG" + bytes(range(256)))


def val_folder(d, n=10, corrupt_last=True):
    """ILSVRC2012_val_00000001.. files (ReaL labels by name), the last one corrupt."""
    d.mkdir(parents=True, exist_ok=True)
    for i in range(1, n + 1):
        write_image(d / f"ILSVRC2012_val_{i:08d}.JPEG", i)
    if corrupt_last:
        corrupt(d / f"ILSVRC2012_val_{n + 1:08d}.JPEG")
    return d


def checkpoint(tmp_path, name, seed):
    """A random-init timm ``name`` saved as a state dict (fixed ``seed``)."""
    import timm

    torch.manual_seed(seed)
    path = tmp_path / f"{name}-{seed}.pth"
    torch.save(timm.create_model(name).state_dict(), path)
    return str(path)


def comparable(rep: dict, drop_config=("models_sharing_decode", "world_size", "workers")) -> dict:
    """A report without what legitimately differs between equal runs (time, outputs, how the
    loop was shared)."""
    out = {k: v for k, v in rep.items() if k not in VOLATILE}
    out["config"] = {k: v for k, v in rep["config"].items() if k not in drop_config}
    return out


def close(a, b, key="report"):
    """Equal JSON-able values, floats to 1e-6 relative."""
    if isinstance(b, dict):
        assert set(a) == set(b), key
        for k in b:
            close(a[k], b[k], f"{key}.{k}")
    elif isinstance(b, list):
        assert len(a) == len(b), key
        for x, y in zip(a, b):
            close(x, y, key)
    elif b is None or (isinstance(b, float) and math.isnan(b)):
        assert a is None, key
    elif isinstance(b, float):
        assert a == pytest.approx(b, rel=1e-6, abs=1e-9), key
    else:
        assert a == b, key
