"""The hot loop of each CPU row helper through llvm-mca's scheduling models (see the package doc).

A helper's hot loop is the innermost loop of its compiled function (a backward jump and the
instructions from its target to it, holding no other backward jump) that reads the most row
elements per pass; the elements a pass reads are
the bytes of its vector loads that address neither the stack nor constants (rip), over the
element size. llvm-mca runs the loop body ``ITERATIONS`` times on a model; cycles per pass over
the elements of a pass, times 16, is the table's "cycles / 16 floats".
"""
from __future__ import annotations

import glob
import os
import re
import shutil
import subprocess
from dataclasses import dataclass

from .disasm import Function, Insn

MODELS = ["znver4", "znver5", "sapphirerapids", "icelake-server"]
ITERATIONS = 400

# (key, label, function-name pattern, element bytes): the row loop's helpers at C = 1,000
# (AVX-512 versions as picked on a CPU with AVX-512; group_scan_avx2 as MLMETRICS_CPU_ISA=avx2).
_ANON = r"\(mlmetrics::cpu::\(anonymous namespace\)::ExpScale\)"
KERNELS = [
    ("group_scan", "group_scan (top-k: the one read)", r"group_scan_avx512\(", 4),
    ("softmax_sums", "softmax_sums, 2^n by vscalefps (auto)", r"softmax_sums_avx512<" + _ANON + r"0>", 4),
    ("softmax_sums_exponent_bits", "softmax_sums, 2^n by exponent bits (tune amd)",
     r"softmax_sums_avx512<" + _ANON + r"1>", 4),
    ("collect_above", "collect_above (fallback rescan)", r"collect_above_avx512\(", 4),
    ("widen_bf16", "widen_bf16 (16-bit rows to float32)", r"widen_bf16_avx512\(", 2),
    ("widen_fp16", "widen_fp16 (16-bit rows to float32)", r"widen_fp16_avx512\(", 2),
    ("group_scan_avx2", "group_scan, AVX2 cap", r"group_scan_avx2\(", 4),
]

# The read the targets divide by: x.amax(1)'s inner loop at its best (four accumulators, one
# vmaxps with a memory operand per 16 floats).
READ_LOOP = """\
.Lloop:
vmaxps (%rdi,%rax,4), %zmm0, %zmm0
vmaxps 64(%rdi,%rax,4), %zmm1, %zmm1
vmaxps 128(%rdi,%rax,4), %zmm2, %zmm2
vmaxps 192(%rdi,%rax,4), %zmm3, %zmm3
addq $64, %rax
cmpq %rsi, %rax
jb .Lloop
"""
READ_ELEMS = 64

_VREG = re.compile(r"%([xyz])mm\d+")
_WIDTH = {"x": 16, "y": 32, "z": 64}
_HALF_WIDTH_LOADS = re.compile(r"^(vcvtph2ps|vpmovzxwd|vpmovsxwd)")


def find_llvm_mca() -> str | None:
    """An llvm-mca that knows -mcpu=znver4 (LLVM >= 17), or None."""
    candidates = [os.environ.get("LLVM_MCA", "")]
    candidates += sorted(glob.glob("/usr/lib/llvm-*/bin/llvm-mca"), key=lambda p: int(re.findall(r"llvm-(\d+)", p)[0]),
                         reverse=True)
    candidates += [shutil.which(f"llvm-mca-{v}") or "" for v in range(22, 16, -1)] + [shutil.which("llvm-mca") or ""]
    for path in candidates:
        if path and os.path.exists(path):
            out = subprocess.run([path, "-mtriple=x86_64", "-mcpu=help"], capture_output=True, text=True)
            if "znver4" in out.stdout + out.stderr:
                return path
    return None


_MEM = re.compile(r"(-?(?:0x[0-9a-f]+|\d+))?\(([^)]*)\)")


def row_load(insn: Insn) -> tuple[str, int, int] | None:
    """(address expression, displacement, bytes) of a vector load from memory that is neither
    stack nor constant; None for anything else."""
    if not insn.mnemonic.startswith("v") or "(" not in insn.operands or "prefetch" in insn.mnemonic:
        return None
    ops = insn.operand_list()
    if "(" in ops[-1] or "broadcast" in insn.mnemonic:  # a store; a broadcast constant
        return None
    mem = next(op for op in ops if "(" in op)
    if "%rip" in mem or "%rsp" in mem or "%rbp" in mem:
        return None
    regs = _VREG.findall(insn.operands)
    if not regs:
        return None
    width = _WIDTH[regs[-1]]
    m = _MEM.search(mem)
    disp = int(m.group(1), 0) if m.group(1) else 0
    return m.group(2), disp, width // 2 if _HALF_WIDTH_LOADS.match(insn.mnemonic) else width


def row_bytes(body: list[Insn]) -> int:
    """Bytes of the row a pass reads: per address expression, the union of its loads' ranges (a
    range read twice, as GCC sometimes does, counts once)."""
    spans: dict[str, list[tuple[int, int]]] = {}
    for insn in body:
        ld = row_load(insn)
        if ld:
            spans.setdefault(ld[0], []).append((ld[1], ld[1] + ld[2]))
    total = 0
    for ranges in spans.values():
        end = None
        for lo, hi in sorted(ranges):
            if end is None or lo >= end:
                total += hi - lo
                end = hi
            elif hi > end:
                total += hi - end
                end = hi
    return total


@dataclass
class Loop:
    body: list[Insn]
    elems: int  # row elements read per pass

    def asm(self) -> str:
        """The body as llvm-mca input: every direct jump goes to the loop's own label."""
        lines = [".Lloop:"]
        for insn in self.body:
            if insn.target is not None and insn.mnemonic.startswith("j"):
                lines.append(f"{insn.mnemonic} .Lloop")
            elif insn.mnemonic.startswith("call") or insn.mnemonic.startswith("nop") or insn.mnemonic in ("xchg",):
                continue
            else:
                lines.append(insn.text())
        return "\n".join(lines) + "\n"


def loops(func: Function, elem_bytes: int = 4) -> list[Loop]:
    """Every loop of func (a backward direct jump inside it and the instructions it spans)."""
    by_addr = {insn.addr: i for i, insn in enumerate(func.insns)}
    found = []
    for j, insn in enumerate(func.insns):
        if insn.target is None or not insn.mnemonic.startswith("j") or insn.target > insn.addr:
            continue
        if insn.target not in by_addr:
            continue
        body = func.insns[by_addr[insn.target]:j + 1]
        elems = row_bytes(body) // elem_bytes
        found.append(Loop(body, elems))
    return found


def _innermost(lp: Loop) -> bool:
    return not any(i.target is not None and i.mnemonic.startswith("j") and i.target <= i.addr
                   for i in lp.body[:-1])


def hot_loop(func: Function, elem_bytes: int = 4) -> Loop | None:
    """The innermost loop reading the most row elements per pass (ties: the shortest body)."""
    cands = [lp for lp in loops(func, elem_bytes) if lp.elems > 0 and _innermost(lp)]
    if not cands:
        return None
    return max(cands, key=lambda lp: (lp.elems, -len(lp.body)))


def mca_cycles(mca: str, asm: str, model: str, iterations: int = ITERATIONS) -> float:
    """Cycles per pass of the loop body on llvm-mca's model of a CPU."""
    out = subprocess.run([mca, "-mtriple=x86_64", f"-mcpu={model}", f"-iterations={iterations}",
                          "-all-stats=false", "-instruction-info=false", "-resource-pressure=false"],
                         input=asm, capture_output=True, text=True)
    if out.returncode != 0:
        last = out.stderr.strip().splitlines()[-1] if out.stderr.strip() else f"exit status {out.returncode}"
        raise RuntimeError(f"llvm-mca -mcpu={model} failed: {last}")
    total = int(re.search(r"Total Cycles:\s+(\d+)", out.stdout).group(1))
    return total / iterations


# (key, label, symbol): straight-line per-row pieces compiled from blocks.cpp; cycles per call,
# calls back to back (each waits for the last: the block's latency).
BLOCKS = [("kth_of_16", "kth_of_16 (per row, k <= 16: the bound)", "block_kth_of_16")]
_HERE = os.path.dirname(os.path.abspath(__file__))


def block_asm(symbol: str) -> str | None:
    """The body of blocks.cpp's function `symbol`, compiled by g++ -O3 as setup.py builds the
    kernel, as llvm-mca input (directives and the final ret dropped); None without g++."""
    if shutil.which("g++") is None:
        return None
    root = os.path.dirname(os.path.dirname(_HERE))
    out = subprocess.run(["g++", "-O3", "-std=c++17", "-I" + os.path.join(root, "csrc", "include"),
                          "-I" + os.path.join(root, "csrc", "cpu"), "-S", "-o", "-",
                          os.path.join(_HERE, "blocks.cpp")], capture_output=True, text=True)
    if out.returncode != 0:
        last = out.stderr.strip().splitlines()[-1] if out.stderr.strip() else f"exit status {out.returncode}"
        raise RuntimeError(f"g++ failed on blocks.cpp: {last}")
    body, inside = [], False
    for line in out.stdout.splitlines():
        if line.startswith("_Z") and symbol in line and line.endswith(":"):
            inside = True
            continue
        if inside:
            text = line.strip()
            if text.startswith("ret"):
                break
            if text and not text.startswith(".") and not text.endswith(":"):
                body.append(text)
    return "\n".join(body) + "\n" if body else None


@dataclass
class Row:
    key: str
    label: str
    function: str
    elems: int
    insns: int
    cycles: dict  # model -> cycles per 16 elements
    vs_read: dict  # model -> the same over the read's


def analyze(functions: list[Function], mca: str, models=MODELS, kernels=KERNELS) -> tuple[dict, list[Row]]:
    """The read's cycles per 16 floats per model, and a Row per kernel found in functions."""
    read = {m: mca_cycles(mca, READ_LOOP, m) * 16 / READ_ELEMS for m in models}
    rows = []
    for key, label, pattern, elem_bytes in kernels:
        func = next((f for f in functions if re.search(pattern, f.name)), None)
        if func is None:
            continue
        lp = hot_loop(func, elem_bytes)
        if lp is None:
            continue
        cyc = {m: mca_cycles(mca, lp.asm(), m) * 16 / lp.elems for m in models}
        rows.append(Row(key, label, func.name, lp.elems, len(lp.body), cyc, {m: cyc[m] / read[m] for m in models}))
    return read, rows


def analyze_blocks(mca: str, models=MODELS, blocks=BLOCKS) -> list[Row]:
    """A Row per straight-line block (elems 0; cycles per call, vs_read empty)."""
    rows = []
    for key, label, symbol in blocks:
        asm = block_asm(symbol)
        if asm is None:
            continue
        rows.append(Row(key, label, symbol, 0, asm.count("\n"), {m: mca_cycles(mca, asm, m) for m in models}, {}))
    return rows
