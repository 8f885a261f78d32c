"""The static budgets a GPU kernel must meet on the benchmark shapes (checked by the CI gate).

An H100 issues ~132 SMs x 4 schedulers x 1.8 GHz = 9.5e11 warp instructions/s; at 80 % of 3.35 TB/s
that leaves ~45 instructions per fp32 element and ~23 per 16-bit element at perfect issue. Kernels
sustain ~60 % issue, so the budget is about half of that, all-in (hot loop + per-row fixed cost).
"""
from __future__ import annotations

#: SASS instructions per logits element, all-in, by element size in bytes
INSTRUCTIONS_PER_ELEMENT = {4: 20.0, 2: 10.0}
#: MUFU.EX2 per element slot a kernel reads when the softmax statistics are on (exactly one exp
#: per logit, none for rescaling; a row's padded last tile has more slots than elements, and its
#: extra work is in the instruction count)
MUFU_EX2_PER_ELEMENT = 1.0
#: width of the loads that stream the logits
LOAD_BITS = 128
#: local memory (spills, stack arrays)
LOCAL_BYTES = 0

#: the shapes the gate checks: (rows, classes, dtype name, k)
GATED_SHAPES = [(65536, 1000, "float32", 5), (4096, 131072, "bfloat16", 5)]


#: regression ceilings: the all-in instructions per element each kernel has on the gated
#: shapes (+5 %), by (backend, case), with every expected top-k insertion counted. A kernel may get
#: cheaper, never dearer; the target budget above is checked separately (and shown as an expected
#: failure while a kernel is over it).
CEILINGS = {
    ("triton", "65536x1000 float32 k=5 softmax"): 109.96 * 1.05,
    ("triton", "4096x131072 bfloat16 k=5 softmax"): 22.72 * 1.05,
    ("triton_filtered", "65536x1000 float32 k=5 softmax"): 18.05 * 1.05,
    ("triton_filtered", "4096x131072 bfloat16 k=5 softmax"): 9.98 * 1.05,
}


def violations(row: dict) -> list[str]:
    """Budget violations of one result row of ``benchmarks.gpu_static`` (empty when within budget)."""
    out = []
    lim = INSTRUCTIONS_PER_ELEMENT[row["elem_bytes"]]
    if row["all_in_per_elem"] > lim:
        out.append(f"{row['all_in_per_elem']:.2f} instructions/element > {lim}")
    ex2 = row.get("mufu_ex2_per_slot", row["mufu_ex2_per_elem"])
    if row["with_softmax"] and abs(ex2 - MUFU_EX2_PER_ELEMENT) > 1e-9:
        out.append(f"{ex2:.3f} MUFU.EX2/element slot != {MUFU_EX2_PER_ELEMENT}")
    narrow = {int(b): n for b, n in row["stream_load_bits"].items() if int(b) < LOAD_BITS}
    if narrow:
        out.append(f"logits loads narrower than {LOAD_BITS} bits: {narrow}")
    if row["local_bytes"] > LOCAL_BYTES or row["spills"]:
        out.append(f"local memory: {row['local_bytes']} bytes, {row['spills']} STL/LDL")
    return out
