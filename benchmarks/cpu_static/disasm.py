"""objdump disassembly of an x86-64 shared object, one list of instructions per function."""
from __future__ import annotations

import glob
import os
import re
import shutil
import subprocess
from dataclasses import dataclass, field

_FUNC = re.compile(r"^([0-9a-f]+) <(.*)>:$")
_INSN = re.compile(r"^\s*([0-9a-f]+):\s+(\S+)\s*(.*)$")
_TARGET = re.compile(r"^([0-9a-f]+) <.*>$")


@dataclass
class Insn:
    addr: int
    mnemonic: str
    operands: str  # AT&T order: sources first, destination last
    target: int | None = None  # a direct jump's or call's target address

    def text(self) -> str:
        return f"{self.mnemonic} {self.operands}".strip()

    def operand_list(self) -> list[str]:
        """The operands, split at the commas outside a memory operand's parentheses."""
        parts, depth, start = [], 0, 0
        for i, ch in enumerate(self.operands):
            depth += ch == "("
            depth -= ch == ")"
            if ch == "," and depth == 0:
                parts.append(self.operands[start:i].strip())
                start = i + 1
        parts.append(self.operands[start:].strip())
        return parts


@dataclass
class Function:
    name: str  # demangled, with GCC's clone suffix ("[clone .avx512f]")
    addr: int
    insns: list[Insn] = field(default_factory=list)


def have_objdump() -> bool:
    return shutil.which("objdump") is not None


def extension_path() -> str | None:
    """The built mlmetrics extension (mlmetrics/_C*.so) next to the package, or None."""
    here = os.path.dirname(os.path.abspath(__file__))
    root = os.path.dirname(os.path.dirname(here))
    found = sorted(glob.glob(os.path.join(root, "mlmetrics", "_C*.so")))
    return found[0] if found else None


def compiler(path: str) -> str:
    """The compiler an object names in its .comment section ("GCC 12.2.0"), or "compiler unknown"."""
    out = subprocess.run(["objdump", "-s", "-j", ".comment", path], capture_output=True, text=True).stdout
    text = "".join(line[43:] for line in out.splitlines() if line.startswith(" "))
    m = re.search(r"GCC: \(([^)]*)\) ([0-9]+(?:\.[0-9]+)*)", text)
    return f"GCC {m.group(2)}" if m else "compiler unknown"


def disassemble(path: str) -> list[Function]:
    """Every function of the text sections of an ELF object, in address order."""
    out = subprocess.run(["objdump", "-d", "-C", "--no-show-raw-insn", "-M", "att", path],
                         check=True, capture_output=True, text=True).stdout
    funcs: list[Function] = []
    for line in out.splitlines():
        m = _FUNC.match(line)
        if m:
            funcs.append(Function(m.group(2), int(m.group(1), 16)))
            continue
        m = _INSN.match(line)
        if not m or not funcs:
            continue
        mnemonic, operands = m.group(2), m.group(3).split("#")[0].strip()
        if mnemonic in ("(bad)",):
            continue
        if mnemonic in ("rep", "repz", "repnz", "notrack", "bnd", "lock", "data16", "cs", "ds") and operands:
            prefix, _, rest = operands.partition(" ")
            mnemonic, operands = f"{mnemonic} {prefix}", rest.strip()
        target = None
        t = _TARGET.match(operands)
        if t and (mnemonic.startswith("j") or mnemonic.startswith("call")):
            target = int(t.group(1), 16)
        funcs[-1].insns.append(Insn(int(m.group(1), 16), mnemonic, operands, target))
    return funcs
