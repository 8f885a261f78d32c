"""python -m benchmarks.cpu_static: the hazard scan and the per-model loop table (package doc)."""
from __future__ import annotations

import argparse
import json
import sys

from . import disasm, hazards, loops


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.cpu_static", description=__doc__)
    ap.add_argument("--so", help="the object to read (default: the built mlmetrics/_C*.so)")
    ap.add_argument("--models", default=",".join(loops.MODELS), help="llvm-mca -mcpu models, comma-separated")
    ap.add_argument("--md", help="write the tables as Markdown here")
    ap.add_argument("--json", help="write the results as JSON here")
    args = ap.parse_args(argv)
    path = args.so or disasm.extension_path()
    if path is None:
        print("error: no built extension found (build it: pip install -e . or python setup.py build_ext --inplace)",
              file=sys.stderr)
        return 2
    if not disasm.have_objdump():
        print("error: objdump not found (binutils)", file=sys.stderr)
        return 2
    try:
        funcs = disasm.disassemble(path)
    except (OSError, disasm.subprocess.CalledProcessError) as e:
        err = getattr(e, "stderr", "") or str(e)
        print(f"error: cannot disassemble {path}: {err.strip().splitlines()[-1] if err.strip() else e}", file=sys.stderr)
        return 2
    found = hazards.scan(funcs)
    md = ["# The CPU kernel's compiled code, read statically (x86-64)", "",
          f"Object: `{path.split('/')[-1]}`, {disasm.compiler(path)}. Command: "
          "`python -m benchmarks.cpu_static` (after building the extension). Nothing here ran the code: "
          "the hazards are instructions found in the disassembly, the cycles are llvm-mca's "
          "scheduling models of each core (L1-resident data, no memory bandwidth).", "",
          "## Hazard scan", "", f"{len(funcs)} functions; rules:", ""]
    for rule in hazards.RULES:
        n = sum(f.rule == rule.name for f in found)
        md.append(f"- **{rule.name}** ({rule.why}): {n} found. The kernel's way: {rule.fix}.")
    for f in found:
        md.append(f"  - `{f.insn}` in `{f.function}` at 0x{f.addr:x}")
    result = {"object": path.split("/")[-1], "functions": len(funcs),
              "hazards": [f.__dict__ for f in found]}
    mca = loops.find_llvm_mca()
    if mca is None:
        md += ["", "llvm-mca with -mcpu=znver4 (LLVM >= 17) not found: no loop table."]
    else:
        models = args.models.split(",")
        try:
            read, rows = loops.analyze(funcs, mca, models)
        except RuntimeError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        ver = loops.subprocess.run([mca, "--version"], capture_output=True, text=True).stdout
        ver = next((ln.strip() for ln in ver.splitlines() if "version" in ln.lower()), "")
        md += ["", f"## Hot loops, llvm-mca ({ver}), cycles per 16 elements (x the read on that model)", "",
               "| helper | floats / pass | insns | " + " | ".join(models) + " |",
               "|---|---|---|" + "---|" * len(models),
               "| read (x.amax(1): vmaxps, 4 accumulators) | 64 | 7 | "
               + " | ".join(f"{read[m]:.2f}" for m in models) + " |"]
        for r in rows:
            md.append(f"| {r.label} | {r.elems} | {r.insns} | "
                      + " | ".join(f"{r.cycles[m]:.2f} ({r.vs_read[m]:.1f}x)" for m in models) + " |")
        blocks = [] if args.so else loops.analyze_blocks(mca, models)  # (blocks.cpp: this checkout's source)
        if blocks:
            md += ["", "Per-row straight-line pieces (compiled from `benchmarks/cpu_static/blocks.cpp`), cycles per "
                   "call, calls back to back:", "",
                   "| piece | insns | " + " | ".join(models) + " |", "|---|---|" + "---|" * len(models)]
            for r in blocks:
                md.append(f"| {r.label} | {r.insns} | " + " | ".join(f"{r.cycles[m]:.1f}" for m in models) + " |")
        result.update(llvm_mca=ver, read=read, loops=[r.__dict__ for r in rows], blocks=[r.__dict__ for r in blocks])
    text = "\n".join(md) + "\n"
    print(text)
    if args.md:
        with open(args.md, "w") as fh:
            fh.write(text)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(result, fh, indent=1)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
