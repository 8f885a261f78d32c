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


def exact_tiles(tiles: int, tile: int, k: int, rows: int = 1) -> float:
    """Expected number of a program's tiles that take the exact (longest) path, for i.i.d. logits.

    A streaming top-k admits tile t when one of its ``tile`` values is among the k largest of the
    first t tiles: probability 1 - C((t-1) tile, k) / C(t tile, k) (1 for the first tile); with
    several rows per program, when any row does. Sorted or adversarial rows admit more.
    """
    total = 0.0
    for t in range(1, tiles + 1):
        prev, cur = (t - 1) * tile, t * tile
        keep = 1.0
        for j in range(min(k, prev + 1)):
            keep *= max(prev - j, 0) / (cur - j)
        total += 1.0 - keep ** rows
    return total


def insertions(tiles: int, tile: int, k: int, rows: int = 1) -> float:
    """Expected top-k insertions (inner-loop trips) of a streaming top-k per program, for i.i.d.
    logits: the first tile inserts min(k, tile) values; tile t >= 2 holds k/t of the k largest of
    the first t tiles on average (each of them is in tile t with probability 1/t). With several rows
    per program a trip serves every row at once: rows x k/t (at most k) is an upper bound."""
    total = float(min(k, tile))
    for t in range(2, tiles + 1):
        total += min(float(min(k, tile)), rows * k / t)
    return total


def _stream_shape(name, kw, n, c, k):
    """(rows per program, hot-loop iterations, elements per program, elements per iteration,
    expected exact-path iterations, expected top-k insertions) of a launch. The masked tail tile, where a kernel has one after
    its loop, counts as one more iteration. ``_resident_kernel`` (whole rows in registers) has no
    tile loop: its cost is the cheapest path through the whole kernel per element."""
    if name == "_topk_stats_kernel":
        r, t = kw["BLOCK_R"], kw["BLOCK_C"]
    elif name == "_filtered_kernel":
        r, t = kw["BLOCK_R"], kw["TILE_REP"] * kw["TILE_C"]
    elif name == "_resident_kernel":
        r = kw["BLOCK_R"]
        return r, 0, r * c, 0, 0.0, 0.0
    else:
        raise KeyError(name)
    iters = -(-c // t)
    kk = min(k, c)
    return r, iters, r * c, r * t, exact_tiles(iters, min(t, c), kk, r), insertions(iters, min(t, c), kk, r)


def resident_fallback_rate(c: int, k: int, block_r: int, rep: int, lanes: int, vec: int,
                           programs: int = 4000, seed: int = 0) -> float:
    """Fraction of ``_resident_kernel`` programs (candidate path; DIRECT never falls back on finite
    rows) that take the exact rounds over the whole row, for i.i.d. normal logits (simulated with
    the kernel's rule): a row falls back when one of its lanes holds more than 4 groups whose max
    reaches the k-th largest lane maximum, or the row more than ``lanes``; a program when any of
    its ``block_r`` rows does."""
    import numpy as np

    cp = rep * lanes * vec
    x = np.full((programs * block_r, cp), -np.inf, dtype=np.float32)
    x[:, :c] = np.random.default_rng(seed).standard_normal((programs * block_r, c), dtype=np.float32)
    gm = x.reshape(-1, rep, lanes, vec).max(3)  # [rows, rep, lanes]
    t = -np.sort(-gm.max(1), axis=1)[:, k - 1]
    cnt = (gm >= t[:, None, None]).sum(1)  # candidate groups per lane
    bad = (cnt > 4).any(1) | (cnt.sum(1) > lanes)
    return float(bad.reshape(programs, block_r).any(1).mean())


def _slots_per_program(name, kw, c):
    """Element slots (padding included) one program reads: its tiles x their size."""
    import triton

    if name == "_resident_kernel":
        return kw["BLOCK_R"] * kw["REP"] * kw["LANES"] * kw["VEC"]
    if name == "_filtered_kernel":
        t = kw["TILE_REP"] * kw["TILE_C"]
    else:
        t = kw["BLOCK_C"]
    return kw["BLOCK_R"] * triton.cdiv(c, t) * t


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
            rpp, iters, elems, per_iter, rare, trips = _stream_shape(name, kw, case.n, case.c, kw.get("K", case.k))
        except KeyError:
            continue  # merge / small helper kernels: not on the logits stream
        ck = compile_launch(kernel, args, kw)
        info = sass.analyze_cubin(ck.asm["cubin"])[name]
        nw = kw.get("num_warps", 4)
        launch = sass.Launch(grid=int(torch.tensor(grid).prod()), num_warps=nw, shared_bytes=ck.metadata.shared,
                             elems_per_program=elems, rows_per_program=rpp, hot_iters=iters,
                             elems_per_iter=per_iter, rare_iters=rare,
                             extra_trips=max(0.0, trips - min(rare, iters)),
                             elem_bytes=x.element_size())
        cst = sass.cost(info, launch).as_dict()
        if name == "_resident_kernel":
            # straight-line per-row code: the cheapest path is the common case; the fallback (exact
            # rounds over the row) at its simulated i.i.d. rate, charged at the longest path
            e_thread = elems / (32 * nw)
            rate = 0.0 if kw["DIRECT"] else resident_fallback_rate(case.c, kw["K"], kw["BLOCK_R"], kw["REP"],
                                                                    kw["LANES"], kw["VEC"])
            cst["rare_iters"] = rate
            cst["hot_rare_per_elem"] = info.fixed_max / e_thread
            cst["all_in_per_elem"] += rate * (info.fixed_max - info.fixed.instructions) / e_thread
        stream = info.hot.loads if info.hot else info.fixed.loads
        slots = _slots_per_program(name, kw, case.c)
        row = dict(backend=case.backend, case=case.label, n=case.n, c=case.c, dtype=case.dtype, k=case.k,
                   with_softmax=case.with_softmax, target=case.target, elem_bytes=x.element_size(),
                   hot_instructions=info.hot.instructions if info.hot else 0, hot_max_instructions=info.hot_max,
                   fixed_max_per_program=info.fixed_max, static_instructions=info.instructions,
                   stream_load_bits={int(b): int(m) for b, m in stream.items()},
                   config={k: v for k, v in kw.items() if k.isupper() or k == "num_warps"},
                   **cst)
        # EX2 per element slot the program reads (a row's padded last tile: e.g. 1,024 slots for
        # 1,000 elements): 1.0 means one exp per element read, none for rescaling
        row["mufu_ex2_per_slot"] = row["mufu_ex2_per_elem"] * elems / slots
        rows.append(row)
    return rows
