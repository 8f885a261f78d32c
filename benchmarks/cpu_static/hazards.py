"""Instructions the CPU kernel keeps out of its compiled code: slow on one x86 vendor, with an
equivalent sequence that is not slow on any (see the package doc).

``scan(functions)`` -> one Finding per offending instruction. Each rule names its instructions by
mnemonic and form; the kernel's replacement is in ``fix``.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from .disasm import Function, Insn

_COMPRESS = re.compile(r"^v(p)?compress[bwdq]?(ps|pd)?$|^vpcompress[bwdq]$|^vcompressp[sd]$")
_EXPAND = re.compile(r"^v(p)?expand[bwdq]?(ps|pd)?$|^vpexpand[bwdq]$|^vexpandp[sd]$")
_GATHER_SCATTER = re.compile(r"^v(p)?(gather|scatter)")


def _last_operand(insn: Insn) -> str:
    depth, start = 0, 0
    parts = []
    for i, ch in enumerate(insn.operands):
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(insn.operands[start:i])
            start = i + 1
    parts.append(insn.operands[start:])
    return parts[-1].strip()


def _is_compress(insn):
    return bool(_COMPRESS.match(insn.mnemonic))


def _is_expand(insn):
    return bool(_EXPAND.match(insn.mnemonic))


@dataclass(frozen=True)
class Rule:
    name: str
    why: str
    fix: str

    def matches(self, insn: Insn) -> bool:
        if self.name == "compress to memory":
            return _is_compress(insn) and "(" in _last_operand(insn)
        if self.name == "expand from memory":
            return _is_expand(insn) and "(" in insn.operands.split(",")[0]
        if self.name == "zero-masked compress/expand":
            return (_is_compress(insn) or _is_expand(insn)) and "{z}" in insn.operands
        if self.name == "gather/scatter":
            return bool(_GATHER_SCATTER.match(insn.mnemonic))
        raise AssertionError(self.name)


RULES = [
    Rule("compress to memory", "microcoded on AMD Zen 4 / Zen 5",
         "compress into a register, store the whole vector (the buffer has room)"),
    Rule("expand from memory", "microcoded on AMD Zen 4 / Zen 5", "load the vector, expand in a register"),
    Rule("zero-masked compress/expand",
         "false dependency on the destination register on AMD Zen 4 / Zen 5 (back-to-back ones ~4-5 cycles apart)",
         "merge-mask over a freshly zeroed register (compress_ps / compress_epi32 in csrc/cpu/kernels.h)"),
    Rule("gather/scatter", "many micro-ops on every x86, far more on AMD Zen 4",
         "contiguous loads and stores (place_by_rank in csrc/cpu/short_row.cpp keeps a scatter out)"),
]


@dataclass(frozen=True)
class Finding:
    rule: str
    function: str
    addr: int
    insn: str


def scan(functions: list[Function], rules=RULES) -> list[Finding]:
    found = []
    for f in functions:
        for insn in f.insns:
            for rule in rules:
                if rule.matches(insn):
                    found.append(Finding(rule.name, f.name, insn.addr, insn.text()))
    return found
