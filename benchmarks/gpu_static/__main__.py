"""python -m benchmarks.gpu_static: a table per benchmark shape and kernel (see the package doc)."""
from __future__ import annotations

import argparse
import json
import os
import sys
import warnings

from . import budgets, sass

SHAPES = [(65536, 1000, "float32", 5), (4096, 131072, "bfloat16", 5), (4096, 21841, "float16", 5),
          (65536, 100, "float32", 5), (65536, 10, "float32", 5), (1024, 262144, "bfloat16", 5),
          (65536, 1000, "float32", 100)]
BACKENDS = ["triton", "triton_filtered", "cuda", "cuda_v2"]

COLUMNS = [("case", "shape / variant", "{}"), ("backend", "backend", "{}"), ("kernel", "kernel", "{}"),
           ("hot_per_elem", "hot loop /elem", "{:.2f}"), ("hot_rare_per_elem", "exact path /elem", "{:.1f}"),
           ("rare_iters", "exact tiles /program", "{:.3g}"), ("extra_trips", "more insertions /program", "{:.1f}"),
           ("hot_max_per_elem", "longest /elem", "{:.1f}"),
           ("fixed_per_row", "fixed /row", "{:.0f}"), ("all_in_per_elem", "all-in /elem", "{:.2f}"),
           ("mufu_ex2_per_elem", "EX2 /elem", "{:.3f}"), ("mufu_ex2_per_slot", "EX2 /slot", "{:.3f}"),
           ("stream_load_bits", "stream loads (bits: n)", "{}"),
           ("registers", "regs", "{}"), ("local_bytes", "local B", "{}"), ("waves", "waves", "{:.2f}"),
           ("budget", "budget", "{}")]


def parse_shape(s):
    dims, dtype, k = s.split(":")
    n, c = dims.lower().split("x")
    return int(n), int(c), dtype, int(k)


def _analyzer(backend):
    """analyze(Case) -> result rows, for a backend name: the Triton kernels here, the CUDA C++
    kernels in benchmarks/gpu_static/cuda.py (backend names starting with "cuda")."""
    if backend.startswith("cuda"):
        from .cuda import analyze
    else:
        from .triton import analyze
    return analyze


def run(shapes, backends, variants=("softmax",)):
    from .triton import Case

    rows = []
    for n, c, dtype, k in shapes:
        for b in backends:
            analyze = _analyzer(b)
            for v in variants:
                case = Case(b, n, c, dtype, k, with_softmax=v != "no-softmax", target=v == "target")
                for r in analyze(case):
                    bad = budgets.violations(r)
                    r["budget"] = "ok" if not bad else "; ".join(bad)
                    rows.append(r)
    return rows


def fmt(v, f):
    if v is None:
        return "-"
    if isinstance(v, dict):
        return ", ".join(f"{a}: {b}" for a, b in v.items()) or "-"
    return f.format(v)


def markdown(rows):
    out = ["| " + " | ".join(h for _, h, _ in COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for r in rows:
        out.append("| " + " | ".join(fmt(r.get(k), f) for k, _, f in COLUMNS) + " |")
    return "\n".join(out)


def main(argv=None):
    warnings.simplefilter("ignore")
    # compiled (not interpreted) kernels: Triton decides when mlmetrics.ops.triton is imported
    os.environ.pop("TRITON_INTERPRET", None)
    p = argparse.ArgumentParser(prog="python -m benchmarks.gpu_static", description=__doc__)
    p.add_argument("--shape", action="append", help="NxC:dtype:k, e.g. 65536x1000:float32:5 (repeatable)")
    p.add_argument("--backend", action="append", choices=BACKENDS)
    p.add_argument("--variants", default="softmax", help="comma list of softmax,no-softmax,target")
    p.add_argument("--json", help="write the rows as JSON here")
    p.add_argument("--md", help="write the table as Markdown here")
    a = p.parse_args(argv)
    if not sass.have_tools():
        print("nvdisasm/cuobjdump not found (they ship with triton's NVIDIA backend)", file=sys.stderr)
        return 2
    shapes = [parse_shape(s) for s in a.shape] if a.shape else SHAPES
    rows = run(shapes, a.backend or BACKENDS, tuple(a.variants.split(",")))
    table = markdown(rows)
    print(table)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(rows, f, indent=1)
    if a.md:
        with open(a.md, "w") as f:
            f.write(table + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
