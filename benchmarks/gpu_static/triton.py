"""Compile the Triton kernels ahead of time for sm_90, exactly as the Python wrapper launches them.

The wrapper runs on "meta" tensors inside :func:`mlmetrics.ops.triton.launch.recording`, so the
launch configuration (grid, block sizes, num_warps, specialisations such as 16-divisible
arguments) is the one a real call on that shape would use; each recorded launch is then compiled
with ``triton.compile(ASTSource(...), target=GPUTarget("cuda", 90, 32))`` (no GPU needed).
"""
from __future__ import annotations

import dataclasses

import torch

from . import sass

TARGET = ("cuda", 90, 32)


def _backend_and_target():
    from triton.backends.compiler import GPUTarget
    from triton.compiler import make_backend

    target = GPUTarget(*TARGET)
    return make_backend(target), target


def compile_launch(kernel, args, kwargs):
    """Compile one recorded launch for sm_90 -> ``triton.compiler.CompiledKernel``."""
    import triton
    from triton.compiler import ASTSource
    from triton.runtime.jit import create_function_from_signature

    backend, target = _backend_and_target()
    binder = create_function_from_signature(kernel.signature, kernel.params, backend)
    bound, spec, options = binder(*args, **kwargs)
    options, signature, constexprs, attrs = kernel._pack_args(backend, kwargs, bound, spec, options)
    return triton.compile(ASTSource(kernel, signature, constexprs, attrs), target=target,
                          options=options.__dict__)


def _stream_shape(name, kw, n, c):
    """(rows per program, hot-loop iterations per program, elements per program, elements per
    iteration) of a launch."""
    if name == "_topk_stats_kernel":
        # tiles of BLOCK_R x BLOCK_C; the masked tail tile after the loop counts as one more iteration
        r, bc = kw["BLOCK_R"], kw["BLOCK_C"]
        return r, -(-c // bc), r * c, r * bc
    if name == "_filtered_kernel":  # tiles of BLOCK_R x (TILE_REP x TILE_C), masked tail inside the loop
        r, t = kw["BLOCK_R"], kw["TILE_REP"] * kw["TILE_C"]
        return r, -(-c // t), r * c, r * t
    raise KeyError(name)


@dataclasses.dataclass
class Case:
    backend: str
    n: int
    c: int
    dtype: str
    k: int
    with_softmax: bool = True
    target: bool = False

    @property
    def label(self):
        v = "softmax" if self.with_softmax else "no-softmax"
        return f"{self.n}x{self.c} {self.dtype} k={self.k} {v}{' +target' if self.target else ''}"


def _wrapper(backend):
    if backend == "triton":
        from mlmetrics.ops.triton.topk_stats import topk_stats
    else:
        from mlmetrics.ops.triton.filtered import topk_stats
    return topk_stats


def analyze(case: Case) -> list[dict]:
    """Result rows (one per launched kernel that streams the logits) for one case."""
    from mlmetrics.ops.triton.launch import recording

    dt = getattr(torch, case.dtype)
    x = torch.empty((case.n, case.c), dtype=dt, device="meta")
    tgt = torch.zeros(case.n, dtype=torch.int64, device="meta") if case.target else None
    with recording() as launches:
        _wrapper(case.backend)(x, case.k, tgt, None, None, None, case.with_softmax)
    rows = []
    for kernel, grid, args, kw in launches:
        name = kernel.__name__
        try:
            rpp, iters, elems, per_iter = _stream_shape(name, kw, case.n, case.c)
        except KeyError:
            continue  # merge / small helper kernels: not on the logits stream
        ck = compile_launch(kernel, args, kw)
        info = sass.analyze_cubin(ck.asm["cubin"])[name]
        nw = kw.get("num_warps", 4)
        launch = sass.Launch(grid=int(torch.tensor(grid).prod()), num_warps=nw, shared_bytes=ck.metadata.shared,
                             elems_per_program=elems, rows_per_program=rpp, hot_iters=iters,
                             elems_per_iter=per_iter,
                             elem_bytes=x.element_size())
        cst = sass.cost(info, launch)
        stream = info.hot.loads if info.hot else info.fixed.loads
        row = dict(backend=case.backend, case=case.label, n=case.n, c=case.c, dtype=case.dtype, k=case.k,
                   with_softmax=case.with_softmax, target=case.target, elem_bytes=x.element_size(),
                   hot_instructions=info.hot.instructions if info.hot else 0, hot_max_instructions=info.hot_max,
                   fixed_max_per_program=info.fixed_max, static_instructions=info.instructions,
                   stream_load_bits={int(b): int(m) for b, m in stream.items()},
                   config={k: v for k, v in kw.items() if k.isupper() or k == "num_warps"},
                   **cst.as_dict())
        rows.append(row)
    return rows
