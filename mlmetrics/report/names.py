"""Human-readable class names for a model's output indices."""
from __future__ import annotations

from typing import Callable, Sequence

import torch


def class_namer(num_classes: int, class_names: Sequence[str] | None = None, model=None,
                class_subset=None) -> Callable[[int], str]:
    """index -> human-readable class name: ImageNet names (from timm) for ImageNet-sized
    heads, else the dataset's folder names, else the index. With ``class_subset`` the index
    is a position in the subset."""
    if class_subset is not None:
        full = class_namer(num_classes, None, model)
        sub = [int(c) for c in torch.as_tensor(class_subset).tolist()]
        return lambda i: full(sub[int(i)])
    if class_names is not None and len(class_names) == num_classes:
        names = list(class_names)
        return lambda i: names[i]
    try:
        from timm.data import ImageNetInfo, infer_imagenet_subset

        subset = infer_imagenet_subset(model) if model is not None else None
        if subset is None and num_classes == 1000:
            subset = "imagenet-1k"
        if subset is not None:
            info = ImageNetInfo(subset)
            if info.num_classes() == num_classes:
                return lambda i: info.index_to_description(int(i))
    except Exception:
        pass
    return lambda i: str(int(i))
