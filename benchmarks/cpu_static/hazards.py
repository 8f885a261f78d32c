"""Instructions the CPU kernel keeps out of its compiled code: slow on one x86 vendor, with an
equivalent sequence that is not slow on any (see the package doc).

``scan(functions)`` -> one Finding per offending instruction. Each rule names its instructions by
mnemonic and form; the kernel's replacement is in ``fix``.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable

from .disasm import Function, Insn

_COMPRESS = re.compile(r"^v(pcompress[bwdq]|compressp[sd])$")
_EXPAND = re.compile(r"^v(pexpand[bwdq]|expandp[sd])$")
_GATHER_SCATTER = re.compile(r"^v(p)?(gather|scatter)")


def _compress_to_memory(insn: Insn) -> bool:
    return bool(_COMPRESS.match(insn.mnemonic)) and "(" in insn.operand_list()[-1]


def _expand_from_memory(insn: Insn) -> bool:
    return bool(_EXPAND.match(insn.mnemonic)) and "(" in insn.operand_list()[0]


def _zero_masked(insn: Insn) -> bool:
    return bool(_COMPRESS.match(insn.mnemonic) or _EXPAND.match(insn.mnemonic)) and "{z}" in insn.operands


def _gather_scatter(insn: Insn) -> bool:
    return bool(_GATHER_SCATTER.match(insn.mnemonic))


@dataclass(frozen=True)
class Rule:
    name: str
    why: str
    fix: str
    matches: Callable[[Insn], bool]


RULES = [
    Rule("compress to memory", "microcoded on AMD Zen 4 / Zen 5",
         "compress into a register, store the whole vector (the buffer has room)", _compress_to_memory),
    Rule("expand from memory", "microcoded on AMD Zen 4 / Zen 5", "load the vector, expand in a register",
         _expand_from_memory),
    Rule("zero-masked compress/expand",
         "false dependency on the destination register on AMD Zen 4 / Zen 5 (back-to-back ones ~4-5 cycles apart)",
         "merge-mask over a freshly zeroed register (compress_ps / compress_epi32 in csrc/cpu/kernels.h)",
         _zero_masked),
    Rule("gather/scatter", "many micro-ops on every x86, far more on AMD Zen 4",
         "contiguous loads and stores (place_by_rank in csrc/cpu/short_row.cpp keeps a scatter out)",
         _gather_scatter),
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
