"""JSON-able values: tensors and arrays as lists, non-finite floats as null."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import torch


def jsonable(v: Any) -> Any:
    """Tensors / arrays -> (nested) lists, non-finite floats -> None, dicts recursed."""
    if isinstance(v, torch.Tensor):
        v = v.detach().cpu()
        return jsonable(v.item() if v.dim() == 0 else v.tolist())
    if isinstance(v, np.ndarray):
        return jsonable(v.tolist())
    if isinstance(v, np.generic):
        return jsonable(v.item())
    if isinstance(v, float):
        return v if math.isfinite(v) else None
    if isinstance(v, dict):
        return {str(k): jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [jsonable(x) for x in v]
    if isinstance(v, (str, int, bool)) or v is None:
        return v
    if isinstance(v, Path):
        return str(v)
    return str(v)
