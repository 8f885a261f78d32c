"""The harness's optional dependencies (the ``[eval]`` extra): a clear error naming the
extra when one is missing."""
from __future__ import annotations

import importlib
from types import ModuleType

EVAL_EXTRA = 'pip install "mlmetrics[eval]"'


class MissingDependency(RuntimeError):
    """An optional package the harness needs is not installed."""


def require(module: str, feature: str = "the evaluation harness", extra: str = EVAL_EXTRA) -> ModuleType:
    """``import module`` or raise :class:`MissingDependency` naming ``extra``."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        top = module.split(".")[0]
        raise MissingDependency(f"{feature} needs {top}, which is not installed: {extra}") from e
