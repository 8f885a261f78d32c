"""Compile the CUDA C++ kernels (csrc/cuda/) ahead of time for sm_90, as the host code launches them.

The launch configuration of a shape (kernel, K slots, lanes per row, block, grid) comes from
``csrc/cuda/launch_plan.h``, the header the host code reads, compiled here into a small C++
program; the chosen kernel template instances are then compiled from the same headers with the
extension's nvcc flags (``-O3 --use_fast_math``) in a translation unit of device code alone
(``MLMETRICS_DEVICE_ONLY``: no ATen, seconds instead of minutes), and costed by :mod:`.sass`;
v2's rows kernel (C = 33 ... 1024) by :mod:`.cuda_rows` and its long-row kernel (C > 2048) by
:mod:`.cuda_long`, each with its expected data-dependent work simulated on i.i.d. rows.
Needs ``nvcc`` (``CUDA_HOME``, else ``/usr/local/cuda``, else PATH) and a host C++ compiler.
"""
from __future__ import annotations

import functools
import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from . import cuda_long, cuda_rows, sass
from .triton import exact_tiles

ROOT = Path(__file__).resolve().parents[2]
CSRC = ROOT / "csrc"
NVCC_FLAGS = ["-O3", "--use_fast_math", "-std=c++17", "-arch=sm_90"]  # setup.py's nvcc flags, sm_90
KERNEL_VERSIONS = {"cuda": 1, "cuda_v2": 2}  # backend -> kernel version (csrc/cuda/topk_v<version>.cuh)
DTYPES = {"float32": (0, 4), "float16": (1, 2), "bfloat16": (2, 2)}  # DType<DT> id, element bytes
LOADS_IN_FLIGHT = 4  # U: 128-bit vectors per lane per iteration of the row scan (scan_row, v1 and v2)
LONG_TILE_VECTORS = 8  # UL: the same for v2's long-row kernel (topk_v2_long.cuh)


class ToolMissing(RuntimeError):
    """nvcc or a host C++ compiler not found."""


def nvcc() -> str:
    for home in (os.environ.get("CUDA_HOME"), os.environ.get("CUDA_PATH"), "/usr/local/cuda"):
        if home and os.access(os.path.join(home, "bin", "nvcc"), os.X_OK):
            return os.path.join(home, "bin", "nvcc")
    p = shutil.which("nvcc")
    if p:
        return p
    raise ToolMissing("nvcc not found (set CUDA_HOME)")


def have_tools() -> bool:
    try:
        nvcc()
    except ToolMissing:
        return False
    return shutil.which(os.environ.get("CXX", "c++")) is not None and sass.have_tools()


def _run(cmd, **kw):
    r = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, cmd))} failed:\n{r.stderr.strip()}")
    return r.stdout


_PLAN_MAIN = r"""
#include <cstdio>
#include <cstdlib>
#include "launch_plan.h"
int main(int argc, char** argv) {
  for (int i = 1; i + 3 < argc; i += 4) {
    const auto p = mlmetrics::plan::launch_plan(std::atoll(argv[i]), std::atoll(argv[i + 1]), std::atoll(argv[i + 2]),
                                                std::atoi(argv[i + 3]));
    std::printf("%d %d %d %d %d %d %lld %d\n", p.layout, p.lanes, p.k_slots, p.kernel_k, int(p.general), p.threads,
                static_cast<long long>(p.blocks), p.slots);
  }
}
"""


@functools.lru_cache(maxsize=None)
def _plan_exe() -> str:
    d = tempfile.mkdtemp(prefix="mlm_plan_")
    src, exe = os.path.join(d, "plan.cpp"), os.path.join(d, "plan")
    Path(src).write_text(_PLAN_MAIN)
    _run([os.environ.get("CXX", "c++"), "-std=c++17", "-O1", f"-I{CSRC / 'cuda'}", src, "-o", exe])
    return exe


def launch_plan(n: int, c: int, k: int, version: int) -> dict:
    """The host code's launch plan of an [n, c] top-k with kernel ``version`` (plan::LaunchPlan)."""
    out = _run([_plan_exe(), str(n), str(c), str(k), str(version)]).split()
    keys = ["layout", "lanes", "k_slots", "kernel_k", "general", "threads", "blocks", "slots"]
    p = dict(zip(keys, map(int, out)))
    p["general"] = bool(p["general"])
    return p


def kernel_instance(backend: str, dtype: str, plan: dict, with_softmax: bool) -> str:
    """The kernel template instance launch_fused (topk_v1.cuh / topk_v2.cuh) launches for ``plan``
    (v1 takes the softmax switch at run time, v2 as a template parameter)."""
    version, dt = KERNEL_VERSIONS[backend], DTYPES[dtype][0]
    soft = "" if version == 1 else f", {'true' if with_softmax else 'false'}"
    if plan["layout"] == 2:
        return f"mlmetrics::cuda::v{version}::topk_rows_kernel<{dt}, {plan['lanes']}, {plan['slots']}{soft}>"
    if plan["layout"] == 0:
        return f"mlmetrics::cuda::v{version}::topk_group_kernel<{dt}, {plan['k_slots']}, {plan['lanes']}{soft}>"
    if version == 2:
        return f"mlmetrics::cuda::v2::topk_long_kernel<{dt}{soft}>"
    return f"mlmetrics::cuda::v{version}::topk_block_kernel<{dt}, {plan['k_slots']}{soft}>"


def _sources_digest() -> str:
    h = hashlib.sha256()
    for p in sorted(list((CSRC / "cuda").glob("*.cuh")) + list((CSRC / "cuda").glob("*.h")) +
                    [Path(cuda_rows.__file__), Path(cuda_long.__file__)] +
                    list((CSRC / "include").glob("*.h"))):
        h.update(p.read_bytes())
    return h.hexdigest()[:16]


def _merge_loop_instructions(instrs, labels) -> int:
    """Instructions of one iteration (cheapest) of every loop that shuffles and loads no logits:
    the k-round top-k merges, which run k times per row (the shared cost model counts loops
    other than the hot one zero times)."""
    blocks = sass.build_cfg(instrs, labels)
    reach = sass._reachable(blocks)
    total = 0
    for lp in sass.loops(blocks, reach):
        path = sass._path(blocks, lp.header, lp.latch, lp.header, lambda b, lp=lp: b == lp.latch)
        if not path:
            continue
        body = [instrs[i] for b in path for i in range(blocks[b].start, blocks[b].end)]
        if any(i.op == "SHFL" for i in body) and not any(i.op == "LDG" for i in body):
            total += len(body)
    return total


@functools.lru_cache(maxsize=None)
def _compile(instances: tuple[str, ...], digest: str) -> dict[str, tuple[sass.KernelSass, int, dict | None]]:
    """Compile the kernel instances -> {instance: (KernelSass, merge-loop instructions, rows-kernel
    or long-row kernel parts: ("rows" | "long", cuda_rows / cuda_long analysis), else None)} (cached
    per source digest)."""
    lines = ["#define MLMETRICS_DEVICE_ONLY 1", '#include "topk_v1.cuh"', '#include "topk_v2.cuh"']
    lines += [f"template __global__ void {i}(const mlmetrics::cuda::Params);" for i in instances]
    with tempfile.TemporaryDirectory() as d:
        src, cubin = os.path.join(d, "kernels.cu"), os.path.join(d, "kernels.cubin")
        Path(src).write_text("\n".join(lines) + "\n")
        _run([nvcc(), "-cubin", *NVCC_FLAGS, f"-I{CSRC / 'include'}", f"-I{CSRC / 'cuda'}", src, "-o", cubin])
        data = Path(cubin).read_bytes()
    funcs, labels, res = sass.disassemble(data)
    usage = sass.resource_usage(res)
    names = list(funcs)
    demangled = _run(["c++filt"], input="\n".join(names) + "\n").splitlines()
    out = {}
    for mangled, pretty in zip(names, demangled):
        for inst in instances:
            if pretty.replace(" ", "").startswith("void" + inst.replace(" ", "") + "("):
                rows = None
                if "topk_rows_kernel" in inst:
                    rows = ("rows", cuda_rows.analyze_rows_kernel(funcs[mangled], labels[mangled]))
                elif "topk_long_kernel" in inst:
                    rows = ("long", cuda_long.analyze_long_kernel(funcs[mangled], labels[mangled]))
                out[inst] = (sass.analyze_function(mangled, funcs[mangled], labels[mangled], usage),
                             _merge_loop_instructions(funcs[mangled], labels[mangled]), rows)
    missing = set(instances) - set(out)
    if missing:
        raise RuntimeError(f"kernels not found in the cubin: {sorted(missing)}")
    return out


def _stream_shape(plan: dict, c: int, elem_bytes: int) -> tuple[float, int, int, int]:
    """(rows per program, hot-loop iterations per program, elements per program, elements per
    iteration) of the fused kernel, from scan_row's loop: each thread loads LOADS_IN_FLIGHT
    128-bit vectors per iteration, the lanes of a row striding over its vectors."""
    v = 16 // elem_bytes
    lanes, threads = plan["lanes"], plan["threads"]
    if lanes < v:  # fewer lanes than a vector's elements: the scalar path (one element per load)
        v = 1
    rows = threads // lanes if plan["layout"] == 0 else 1
    vectors = c // v
    iters = max(1, -(-vectors // (LOADS_IN_FLIGHT * lanes)))
    return rows, iters, rows * c, threads * LOADS_IN_FLIGHT * v


def analyze(case) -> list[dict]:
    """Result rows for one ``triton.Case``-like case (backend "cuda" or "cuda_v2"): the fused
    kernel that streams the logits (for k > 32 the host also runs at::topk over rank keys)."""
    dt, eb = DTYPES[case.dtype]
    plan = launch_plan(case.n, case.c, case.k, KERNEL_VERSIONS[case.backend])
    inst = kernel_instance(case.backend, case.dtype, plan, case.with_softmax)
    info, merge, rows = _compile((inst,), _sources_digest())[inst]
    if rows is not None and rows[0] == "rows":
        return [_rows_result(case, plan, inst, info, rows[1], eb)]
    if rows is not None:
        return [_long_result(case, plan, inst, info, rows[1], eb)]
    rpp, iters, elems, per_iter = _stream_shape(plan, case.c, eb)
    # expected tiles that take the exact path (i.i.d. logits): a warp runs it when any of its rows
    # admits the tile (v1 branches per element inside its loop: its exact path is not a tile's)
    rows_per_warp = max(1, 32 // plan["lanes"]) if plan["layout"] == 0 else 1
    rare = exact_tiles(iters, max(1, per_iter // rpp), plan["kernel_k"], rows_per_warp) if case.backend == "cuda_v2" else 0.0
    launch = sass.Launch(grid=plan["blocks"], num_warps=plan["threads"] // 32, shared_bytes=0,
                         elems_per_program=elems, rows_per_program=rpp, hot_iters=iters,
                         elems_per_iter=per_iter, rare_iters=rare, elem_bytes=eb)
    cst = sass.cost(info, launch).as_dict()
    # + the k-round merges: k iterations each, per thread
    e_thread = elems / plan["threads"]
    cst["all_in_per_elem"] += plan["kernel_k"] * merge / e_thread
    cst["fixed_per_row"] += plan["kernel_k"] * merge / rpp
    # EX2 per element slot a thread processes (the last tile of a row is padded, e.g. 128 slots
    # for 125 elements): 1.0 means no exp beyond one per element on the common path
    slots = iters * per_iter / plan["threads"] if info.hot else e_thread
    cst["mufu_ex2_per_slot"] = cst["mufu_ex2_per_elem"] * e_thread / slots
    cst["kernel"] = inst
    stream = info.hot.loads if info.hot else info.fixed.loads
    return [dict(backend=case.backend, case=case.label, n=case.n, c=case.c, dtype=case.dtype, k=case.k,
                 with_softmax=case.with_softmax, target=case.target, elem_bytes=eb,
                 hot_instructions=info.hot.instructions if info.hot else 0, hot_max_instructions=info.hot_max,
                 fixed_max_per_program=info.fixed_max, static_instructions=info.instructions,
                 merge_loop_instructions=merge, stream_load_bits={int(b): int(m) for b, m in stream.items()},
                 config=dict(plan, instance=inst), **cst)]


def _rows_result(case, plan: dict, inst: str, info: sass.KernelSass, parts: dict, eb: int) -> dict:
    """The result row of a rows-layout launch (benchmarks/gpu_static/cuda_rows.py: no hot loop; the
    whole row is one thread's straight-line code plus the expected candidate and ranking loops)."""
    lanes, slots, threads = plan["lanes"], plan["slots"], plan["threads"]
    v = 16 // eb
    sim = cuda_rows.simulate(case.c, lanes, slots, v, plan["kernel_k"], case.dtype)
    cst = cuda_rows.cost_per_thread(parts, sim, plan["kernel_k"], lanes)
    e_thread = case.c / lanes
    rpp = threads // lanes
    bps = sass.blocks_per_sm(info.registers, threads // 32, info.shared_bytes)
    ex2 = info.fixed.mufu.get("MUFU.EX2", 0)
    return dict(backend=case.backend, case=case.label, n=case.n, c=case.c, dtype=case.dtype, k=case.k,
                with_softmax=case.with_softmax, target=case.target, elem_bytes=eb,
                hot_instructions=0, hot_max_instructions=None, fixed_max_per_program=info.fixed_max,
                static_instructions=info.instructions, merge_loop_instructions=0,
                stream_load_bits={int(b): int(m) for b, m in info.fixed.loads.items()},
                config=dict(plan, instance=inst), kernel=inst,
                hot_per_elem=None, hot_max_per_elem=info.fixed_max / e_thread,
                hot_rare_per_elem=(cst["candidates"] + cst["ranking"] + cst["rare"]) / e_thread,
                rare_iters=sim["trips"], extra_trips=sim["appends"],
                fixed_per_program=cst["typical"], fixed_per_row=cst["typical"] / rpp,
                all_in_per_elem=cst["total"] / e_thread, mufu_ex2_per_elem=ex2 / e_thread,
                mufu_ex2_per_slot=ex2 / slots, load_bits={int(b): int(m) for b, m in info.fixed.loads.items()},
                registers=info.registers, local_bytes=info.local_bytes, spills=info.spills, blocks_per_sm=bps,
                waves=plan["blocks"] / (sass.NUM_SMS * bps) if bps else float("inf"), grid=plan["blocks"],
                num_warps=threads // 32, other_loops=info.other_loops, rows_model=dict(sim=sim, parts=parts, cost=cst))


def _long_result(case, plan: dict, inst: str, info: sass.KernelSass, parts: dict, eb: int) -> dict:
    """The result row of a v2 block-layout launch (benchmarks/gpu_static/cuda_long.py)."""
    threads, v = plan["threads"], 16 // eb
    k = plan["kernel_k"]
    sim = cuda_long.simulate(case.c, threads, LONG_TILE_VECTORS, v, k, case.dtype)
    partial = case.c != sim["tiles"] * threads * LONG_TILE_VECTORS * v
    cst = cuda_long.cost_per_thread(parts, sim, k, partial)
    e_thread = case.c / threads
    per_iter = LONG_TILE_VECTORS * v  # elements per thread per tile
    bps = sass.blocks_per_sm(info.registers, threads // 32, info.shared_bytes)
    ex2 = info.hot.mufu.get("MUFU.EX2", 0) * (sim["tiles"] + partial) + info.fixed.mufu.get("MUFU.EX2", 0)
    loads = {int(b): int(m) for b, m in info.hot.loads.items()}
    return dict(backend=case.backend, case=case.label, n=case.n, c=case.c, dtype=case.dtype, k=case.k,
                with_softmax=case.with_softmax, target=case.target, elem_bytes=eb,
                hot_instructions=parts["hot"], hot_max_instructions=info.hot_max, fixed_max_per_program=info.fixed_max,
                static_instructions=info.instructions, merge_loop_instructions=parts["merge_trip"],
                stream_load_bits=loads, config=dict(plan, instance=inst), kernel=inst,
                hot_per_elem=parts["hot"] / per_iter, hot_max_per_elem=info.hot_max / per_iter,
                hot_rare_per_elem=(parts["exact_zero"] + parts["cand_trip"] + parts["insert_trip"]) / per_iter,
                rare_iters=sim["admitted"], extra_trips=sim["inserts"],
                fixed_per_program=cst["fixed"], fixed_per_row=cst["fixed"],
                all_in_per_elem=cst["total"] / e_thread, mufu_ex2_per_elem=ex2 / e_thread,
                mufu_ex2_per_slot=ex2 / ((sim["tiles"] + partial) * per_iter), load_bits=loads,
                registers=info.registers, local_bytes=info.local_bytes, spills=info.spills, blocks_per_sm=bps,
                waves=plan["blocks"] / (sass.NUM_SMS * bps) if bps else float("inf"), grid=plan["blocks"],
                num_warps=threads // 32, other_loops=info.other_loops, long_model=dict(sim=sim, parts=parts, cost=cst))
