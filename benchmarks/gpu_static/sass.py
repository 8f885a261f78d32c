"""Static cost of a compiled GPU kernel, read from its sm_90 SASS (no GPU needed).

``analyze(cubin, ...)`` disassembles a cubin with ``nvdisasm`` / ``cuobjdump`` (the copies that ship
inside triton's ``backends/nvidia/bin/``, else the ones on PATH), builds the control-flow graph of
each kernel and reports:

* the hot loop: the loop whose cheapest iteration loads the most bytes from global memory (the
  stream over the logits); its cheapest iteration ("common path": every data-dependent branch
  skipped, e.g. no candidate beats the threshold) and its longest acyclic iteration;
* the fixed cost: the cheapest path from entry to EXIT outside the hot loop (prologue, epilogue,
  per-row work); when the kernel has no hot loop, the whole cheapest path is fixed cost;
* per element: (fixed + iterations x hot loop + expected rare iterations x (exact path - cheapest
  iteration) + expected further inner-loop trips x one trip) / elements per thread, with the launch's numbers (e.g. how often a streaming top-k
  takes its exact path; the caller models that);
* MUFU (``MUFU.EX2`` etc.) per element on the same path, global load widths on it,
  registers, local memory (``LOCAL`` bytes, ``STL``/``LDL``), and waves on the SMs of an H100.

Every count is of SASS instructions one thread (one lane of a warp) issues, so "instructions per
element" = instructions on the path / elements that thread handles. Warp-divergence fallbacks
(``BRA.DIV`` targets) are not on any path: uniform code never takes them.
"""
from __future__ import annotations

import dataclasses
import os
import re
import shutil
import subprocess
import tempfile
from collections import Counter
from pathlib import Path

#: H100 SXM / H200: SMs, and the per-SM limits that bound occupancy
NUM_SMS = 132
REGS_PER_SM = 65536
MAX_WARPS_PER_SM = 64
MAX_BLOCKS_PER_SM = 32
SMEM_PER_SM = 228 * 1024
SMEM_RESERVED_PER_BLOCK = 1024
REG_ALLOC_UNIT = 256  # registers are handed to warps in units of 256 (8 per thread)


class ToolMissing(RuntimeError):
    """nvdisasm / cuobjdump not found."""


def find_tool(name: str) -> str:
    """Path of ``name`` (nvdisasm, cuobjdump): triton's bundled copy first, then PATH."""
    try:
        import triton

        p = Path(triton.__file__).parent / "backends" / "nvidia" / "bin" / name
        if p.is_file() and os.access(p, os.X_OK):
            return str(p)
    except Exception:
        pass
    p = shutil.which(name)
    if p:
        return p
    raise ToolMissing(f"{name} not found (neither in triton's backends/nvidia/bin nor on PATH)")


def have_tools() -> bool:
    try:
        find_tool("nvdisasm")
        find_tool("cuobjdump")
        return True
    except ToolMissing:
        return False


# ---------------------------------------------------------------------------------------------
# Disassembly
# ---------------------------------------------------------------------------------------------
@dataclasses.dataclass
class Instr:
    offset: int
    pred: str        # "" or e.g. "@!P0"
    opcode: str      # with modifiers, e.g. "LDG.E.128"
    operands: str
    target: str | None = None  # branch target label

    @property
    def op(self) -> str:
        return self.opcode.split(".")[0]


_LINE = re.compile(r"^\s*/\*([0-9a-f]{4,})\*/\s+(@!?U?P\w+\s+)?([A-Z][A-Z0-9_.]*)\s*(.*?)\s*;")
_LABEL = re.compile(r"^(\.L_x_\d+|[A-Za-z_][\w.$]*):\s*$")
_FUNC = re.compile(r"^\s*\.text\.(\S+?):\s*$")
_TARGET = re.compile(r"`\((\.L_x_\d+)\)")


def _run(tool: str, *args: str) -> str:
    r = subprocess.run([find_tool(tool), *args], capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"{tool} {' '.join(args)} failed: {r.stderr.strip()}")
    return r.stdout


def disassemble(cubin: bytes) -> tuple[dict[str, list[Instr]], dict[str, list[str]], str]:
    """(instructions per kernel, labels per kernel offset, raw text) of a cubin."""
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "k.cubin")
        with open(path, "wb") as f:
            f.write(cubin)
        text = _run("nvdisasm", "-c", path)
        res = _run("cuobjdump", "-res-usage", path)
    funcs: dict[str, list[Instr]] = {}
    labels: dict[str, dict[str, int]] = {}
    cur = None
    pending: list[str] = []
    for line in text.splitlines():
        m = _FUNC.match(line)
        if m:
            cur = m.group(1)
            funcs[cur] = []
            labels[cur] = {}
            pending = []
            continue
        if cur is None:
            continue
        m = _LABEL.match(line.strip())
        if m:
            pending.append(m.group(1))
            continue
        m = _LINE.match(line)
        if m:
            off = int(m.group(1), 16)
            ins = Instr(off, (m.group(2) or "").strip(), m.group(3), m.group(4))
            t = _TARGET.search(ins.operands)
            ins.target = t.group(1) if t else None
            for lab in pending:
                labels[cur][lab] = off
            pending = []
            funcs[cur].append(ins)
    return funcs, labels, res


def resource_usage(res_text: str) -> dict[str, dict[str, int]]:
    """cuobjdump -res-usage -> {kernel: {"REG": .., "STACK": .., "SHARED": .., "LOCAL": ..}}."""
    out: dict[str, dict[str, int]] = {}
    name = None
    for line in res_text.splitlines():
        m = re.match(r"\s*Function (\S+):", line)
        if m:
            name = m.group(1)
            continue
        if name and "REG:" in line:
            out[name] = {k: int(v) for k, v in re.findall(r"(\w+(?:\[\d+\])?):(\d+)", line)}
            name = None
    return out


# ---------------------------------------------------------------------------------------------
# Control flow
# ---------------------------------------------------------------------------------------------
@dataclasses.dataclass
class Block:
    start: int               # index of the first instruction
    end: int                 # one past the last
    succ: list[int] = dataclasses.field(default_factory=list)  # block ids (fallthrough / taken)
    back: list[int] = dataclasses.field(default_factory=list)  # successors that are loop headers
    exits: bool = False      # ends in an unpredicated EXIT


def _is_branch(ins: Instr) -> bool:
    return ins.op in ("BRA", "JMP", "BRX", "JMX") and not ins.opcode.startswith("BRA.DIV")


def build_cfg(instrs: list[Instr], labels: dict[str, int]) -> list[Block]:
    off_to_idx = {ins.offset: i for i, ins in enumerate(instrs)}
    starts = {0}
    for i, ins in enumerate(instrs):
        if ins.target is not None and ins.target in labels and not ins.opcode.startswith("BRA.DIV"):
            starts.add(off_to_idx[labels[ins.target]])
        if _is_branch(ins) or ins.op in ("EXIT", "RET"):
            if i + 1 < len(instrs):
                starts.add(i + 1)
    order = sorted(starts)
    block_of = {s: b for b, s in enumerate(order)}
    blocks = []
    for b, s in enumerate(order):
        e = order[b + 1] if b + 1 < len(order) else len(instrs)
        blocks.append(Block(s, e))
    for b, blk in enumerate(blocks):
        last = instrs[blk.end - 1]
        uncond = last.pred in ("", "@PT")
        falls = True
        if last.op in ("EXIT", "RET") and uncond:
            blk.exits = last.op == "EXIT"
            falls = False
        if _is_branch(last):
            if last.target in labels:
                t = block_of[off_to_idx[labels[last.target]]]
                if t <= b:
                    blk.back.append(t)
                else:
                    blk.succ.append(t)
            # "BRA P1, target" with a second predicate is conditional too
            if uncond and not re.match(r"!?U?P\d", last.operands.strip()):
                falls = False
        if falls and b + 1 < len(blocks):
            blk.succ.append(b + 1)
    return blocks


def _reachable(blocks: list[Block]) -> set[int]:
    seen, todo = set(), [0]
    while todo:
        b = todo.pop()
        if b in seen:
            continue
        seen.add(b)
        todo += blocks[b].succ + blocks[b].back
    return seen


def _path(blocks, lo, hi, src, is_end, best=min):
    """Cheapest (best=min) or dearest (best=max) path over forward edges from block src to a
    block satisfying is_end, within block ids [lo, hi]; returns the list of block ids."""
    cost = {src: blocks[src].end - blocks[src].start}
    prev = {src: None}
    found = []
    for b in range(src, hi + 1):
        if b not in cost:
            continue
        if is_end(b):
            found.append(b)
        for s in blocks[b].succ:
            if lo <= s <= hi:
                c = cost[b] + blocks[s].end - blocks[s].start
                if s not in cost or (c < cost[s] if best is min else c > cost[s]):
                    cost[s] = c
                    prev[s] = b
    if not found:
        return None
    end = best(found, key=lambda b: cost[b])
    out = []
    while end is not None:
        out.append(end)
        end = prev[end]
    return out[::-1]


@dataclasses.dataclass
class Loop:
    header: int   # block id
    latch: int    # block id holding the back edge


def loops(blocks: list[Block], reach: set[int]) -> list[Loop]:
    return [Loop(h, b) for b in sorted(reach) for h in blocks[b].back]


# ---------------------------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------------------------
def _load_bits(ins: Instr) -> int:
    mods = ins.opcode.split(".")[1:]
    for m, bits in (("128", 128), ("64", 64), ("U16", 16), ("S16", 16), ("U8", 8), ("S8", 8)):
        if m in mods:
            return bits
    return 32


@dataclasses.dataclass
class PathCount:
    instructions: int
    mufu: Counter
    loads: Counter   # global load width (bits) -> count

    @classmethod
    def of(cls, instrs, blocks, ids):
        sel = [instrs[i] for b in ids for i in range(blocks[b].start, blocks[b].end)]
        return cls(len(sel),
                   Counter(i.opcode for i in sel if i.op == "MUFU"),
                   Counter(_load_bits(i) for i in sel if i.op == "LDG"))

    @property
    def load_bytes(self) -> int:
        return sum(b // 8 * n for b, n in self.loads.items())

    def __sub__(self, o):
        return PathCount(self.instructions - o.instructions, self.mufu - o.mufu, self.loads - o.loads)


@dataclasses.dataclass
class KernelSass:
    name: str
    instructions: int       # static size
    registers: int
    local_bytes: int
    shared_bytes: int
    spills: int             # STL + LDL instructions
    hot: PathCount | None   # cheapest iteration of the hot loop
    hot_max: int | None     # longest acyclic iteration of the hot loop
    hot_rare: int | None    # cheapest iteration that runs one trip of an inner loop (an exact path)
    inner_trip: int | None  # one more trip of that inner loop (e.g. one more top-k insertion)
    fixed: PathCount        # cheapest entry -> EXIT outside the hot loop
    fixed_max: int          # longest acyclic entry -> EXIT (every branch once, loops once)
    other_loops: list[int]  # iteration sizes of the other loops (cheapest)


def _size(blocks, ids):
    return sum(blocks[b].end - blocks[b].start for b in ids)


def _one_inner_trip(blocks, hot: Loop, all_loops: list[Loop]) -> tuple[int, int] | None:
    """(cheapest hot-loop iteration that enters one inner loop and runs its body once, e.g. a
    streaming top-k's exact path with one insertion; the cheapest trip of that inner loop's body);
    None without inner loops."""
    best = None
    for lp in all_loops:
        if not (hot.header < lp.header <= lp.latch < hot.latch):
            continue
        to_inner = _path(blocks, hot.header, hot.latch, hot.header, lambda b, h=lp.header: b == h)
        body = _path(blocks, lp.header, lp.latch, lp.header, lambda b, t=lp.latch: b == t)
        exits = [x for x in blocks[lp.latch].succ if x > lp.latch]
        if not (to_inner and body and exits):
            continue
        out = _path(blocks, exits[0], hot.latch, exits[0], lambda b: b == hot.latch)
        if not out:
            continue
        n = _size(blocks, to_inner) + _size(blocks, body) - _size(blocks, [lp.header]) + _size(blocks, out)
        if best is None or n < best[0]:
            best = (n, _size(blocks, body))
    return best


def analyze_function(name, instrs, labels, res) -> KernelSass:
    blocks = build_cfg(instrs, labels)
    reach = _reachable(blocks)
    last = len(blocks) - 1
    exits = lambda b: blocks[b].exits and b in reach  # noqa: E731
    lps = loops(blocks, reach)
    iters = []
    for lp in lps:
        p = _path(blocks, lp.header, lp.latch, lp.header, lambda b, lp=lp: b == lp.latch)
        if p:
            iters.append((lp, PathCount.of(instrs, blocks, p)))
    hot = max(iters, key=lambda t: (t[1].load_bytes, -t[0].header), default=None)
    if hot is not None and hot[1].load_bytes == 0:
        hot = None
    full = _path(blocks, 0, last, 0, exits)
    if full is None:  # every EXIT predicated (e.g. "@P0 EXIT" then a branch back): end at any EXIT
        exits = lambda b: b in reach and instrs[blocks[b].end - 1].op == "EXIT"  # noqa: E731
        full = _path(blocks, 0, last, 0, exits)
    full_max = _path(blocks, 0, last, 0, exits, best=max)
    fixed = PathCount.of(instrs, blocks, full)
    hot_max = hot_rare = inner_trip = None
    if hot is not None:
        lp, hc = hot
        if lp.header in full:
            fixed = fixed - hc
        hm = _path(blocks, lp.header, lp.latch, lp.header, lambda b: b == lp.latch, best=max)
        hot_max = sum(blocks[b].end - blocks[b].start for b in hm)
        one = _one_inner_trip(blocks, lp, [x for x, _ in iters])
        if one is not None:
            hot_rare, inner_trip = one
    r = res.get(name, {})
    return KernelSass(
        name=name, instructions=len(instrs), registers=r.get("REG", 0), local_bytes=r.get("LOCAL", 0),
        shared_bytes=r.get("SHARED", 0),
        spills=sum(1 for i in instrs if i.op in ("STL", "LDL")),
        hot=hot[1] if hot else None, hot_max=hot_max, hot_rare=hot_rare, inner_trip=inner_trip, fixed=fixed,
        fixed_max=sum(blocks[b].end - blocks[b].start for b in full_max),
        other_loops=[c.instructions for lp, c in iters if hot is None or lp is not hot[0]],
    )


def analyze_cubin(cubin: bytes) -> dict[str, KernelSass]:
    funcs, labels, res = disassemble(cubin)
    usage = resource_usage(res)
    return {n: analyze_function(n, ins, labels[n], usage) for n, ins in funcs.items() if ins}


def blocks_per_sm(registers: int, num_warps: int, shared_bytes: int) -> int:
    """Resident programs (CTAs) per SM, from registers, warps, CTAs and shared memory."""
    regs_per_warp = -(-max(registers, 1) * 32 // REG_ALLOC_UNIT) * REG_ALLOC_UNIT
    by_regs = (REGS_PER_SM // regs_per_warp) // num_warps
    by_warps = MAX_WARPS_PER_SM // num_warps
    by_smem = SMEM_PER_SM // (shared_bytes + SMEM_RESERVED_PER_BLOCK) if shared_bytes else MAX_BLOCKS_PER_SM
    return max(0, min(by_regs, by_warps, MAX_BLOCKS_PER_SM, by_smem))


@dataclasses.dataclass
class Launch:
    """What one kernel launch does, from the host's point of view (per program = per CTA)."""
    grid: int                  # programs
    num_warps: int
    shared_bytes: int          # dynamic shared memory of the program (triton metadata.shared)
    elems_per_program: int     # logits elements one program reads
    rows_per_program: float    # rows (or row pieces) one program finishes
    hot_iters: int             # iterations of the hot loop per program
    elems_per_iter: int        # logits elements one program reads per hot-loop iteration
    elem_bytes: int
    rare_iters: float = 0.0    # expected iterations per program that take the hot loop's longest path
    extra_trips: float = 0.0   # expected inner-loop trips per program beyond one per rare iteration


@dataclasses.dataclass
class Cost:
    kernel: str
    hot_per_elem: float | None
    hot_max_per_elem: float | None
    hot_rare_per_elem: float | None   # the exact path (one inner-loop trip) per element
    rare_iters: float
    extra_trips: float
    fixed_per_program: int
    fixed_per_row: float
    all_in_per_elem: float
    mufu_ex2_per_elem: float
    load_bits: dict            # width -> count on the costed path
    registers: int
    local_bytes: int
    spills: int
    blocks_per_sm: int
    waves: float
    grid: int
    num_warps: int
    other_loops: list

    def as_dict(self):
        return dataclasses.asdict(self)


def cost(k: KernelSass, launch: Launch) -> Cost:
    """Per-element cost of one launch of kernel ``k``."""
    threads = 32 * launch.num_warps
    e_thread = launch.elems_per_program / threads
    it = launch.hot_iters if k.hot is not None else 0
    total = k.fixed.instructions + it * (k.hot.instructions if k.hot else 0)
    rare = None
    if k.hot is not None:
        rare = k.hot_rare if k.hot_rare is not None else k.hot_max
        total += min(launch.rare_iters, it) * (rare - k.hot.instructions)
        if k.inner_trip is not None:
            total += launch.extra_trips * k.inner_trip
    ex2 = k.fixed.mufu.get("MUFU.EX2", 0) + it * (k.hot.mufu.get("MUFU.EX2", 0) if k.hot else 0)
    loads = Counter(k.fixed.loads)
    if k.hot:
        for w, n in k.hot.loads.items():
            loads[w] += n * it
    per_iter = launch.elems_per_iter / threads if it else None
    bps = blocks_per_sm(k.registers, launch.num_warps, max(k.shared_bytes, launch.shared_bytes))
    return Cost(
        kernel=k.name,
        hot_per_elem=k.hot.instructions / per_iter if per_iter else None,
        hot_max_per_elem=k.hot_max / per_iter if per_iter else None,
        hot_rare_per_elem=rare / per_iter if per_iter and rare is not None else None,
        rare_iters=float(min(launch.rare_iters, it)),
        extra_trips=float(launch.extra_trips if k.hot is not None and k.inner_trip is not None else 0.0),
        fixed_per_program=k.fixed.instructions,
        fixed_per_row=k.fixed.instructions / launch.rows_per_program,
        all_in_per_elem=total / e_thread,
        mufu_ex2_per_elem=ex2 / e_thread,
        load_bits={int(w): int(n) for w, n in sorted(loads.items())},
        registers=k.registers, local_bytes=k.local_bytes, spills=k.spills,
        blocks_per_sm=bps, waves=launch.grid / (NUM_SMS * bps) if bps else float("inf"),
        grid=launch.grid, num_warps=launch.num_warps, other_loops=k.other_loops,
    )
