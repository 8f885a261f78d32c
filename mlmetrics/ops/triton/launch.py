"""Kernel launches of the Triton backend, and a way to record them instead of running them.

``recording()`` collects ``(kernel, grid, args, kwargs)`` of every launch inside it without running
anything (tensors may be on the "meta" device): the static cost tool compiles exactly those
launches ahead of time (``benchmarks/gpu_static``).
"""
from __future__ import annotations

import contextlib
import contextvars

_recorder: contextvars.ContextVar = contextvars.ContextVar("mlmetrics_triton_recorder", default=None)


def launch(kernel, grid, *args, **kwargs) -> None:
    """``kernel[grid](*args, **kwargs)``, or record it inside :func:`recording`."""
    rec = _recorder.get()
    if rec is not None:
        rec.append((kernel, tuple(grid), args, kwargs))
        return
    kernel[grid](*args, **kwargs)


def is_recording() -> bool:
    return _recorder.get() is not None


@contextlib.contextmanager
def recording():
    """Context manager yielding the list of launches made inside it (none of them runs)."""
    rec: list = []
    token = _recorder.set(rec)
    try:
        yield rec
    finally:
        _recorder.reset(token)
