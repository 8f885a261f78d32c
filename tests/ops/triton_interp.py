"""Run the Triton kernels under the interpreter (CPU tensors) for the Triton tests (imported by them).

The interpreter is chosen when a kernel is *decorated*, so TRITON_INTERPRET=1 must be set when
mlmetrics.ops.triton is imported. It is set here only while importing (and re-importing, should
an earlier test module have imported mlmetrics.ops.triton without it), then restored, and set
again per test by an autouse fixture (mlmetrics._ops checks it when picking backend="triton"),
so tests in other folders see the environment unchanged.
"""
import importlib
import os
import sys

import pytest

_prev = os.environ.get("TRITON_INTERPRET")
os.environ["TRITON_INTERPRET"] = "1"
try:
    try:
        import triton  # noqa: F401

        HAVE_TRITON = True
    except Exception:  # pragma: no cover - triton missing
        HAVE_TRITON = False
    if HAVE_TRITON:
        import mlmetrics.ops.triton  # noqa: F401
        import mlmetrics.ops.triton.filtered  # noqa: F401
        import mlmetrics.ops.triton.resident  # noqa: F401
        from triton.runtime.interpreter import InterpretedFunction

        _tk = sys.modules["mlmetrics.ops.triton.topk_stats"]  # (the package attribute is the function)
        _tf = sys.modules["mlmetrics.ops.triton.filtered"]
        if not isinstance(_tk._topk_stats_kernel, InterpretedFunction):
            importlib.reload(_tk)
            importlib.reload(sys.modules["mlmetrics.ops.triton"])
        _tr = sys.modules["mlmetrics.ops.triton.resident"]
        if not isinstance(_tr._resident_kernel, InterpretedFunction):
            importlib.reload(_tr)
        if not isinstance(_tf._filtered_kernel, InterpretedFunction):
            importlib.reload(_tf)  # after topk_stats: it imports the shared jit helpers from there
finally:
    if _prev is None:
        os.environ.pop("TRITON_INTERPRET", None)
    else:
        os.environ["TRITON_INTERPRET"] = _prev


def _fused_fma():
    """The interpreter computes tl.fma as x * y + z with the product rounded; on the GPU it is one
    fused operation (PTX fma.rn). Emulate the fused form: the product of two floats is exact in
    float64, so x * y + z there, rounded once more to the input type, is the fused result (up to
    double rounding of one ulp in rare ties)."""
    import numpy as np
    from triton.runtime import interpreter

    def create_fma(self, x, y, z):
        d = x.data.astype(np.float64) * y.data.astype(np.float64) + z.data.astype(np.float64)
        return interpreter.TensorHandle(d.astype(z.data.dtype), z.dtype.scalar)

    interpreter.InterpreterBuilder.create_fma = create_fma


if HAVE_TRITON:
    _fused_fma()


@pytest.fixture(autouse=True)
def _triton_interpret(monkeypatch):
    if not HAVE_TRITON:
        pytest.skip("triton is not installed")
    monkeypatch.setenv("TRITON_INTERPRET", "1")
