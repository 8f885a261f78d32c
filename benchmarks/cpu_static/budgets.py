"""The static budgets of the CPU kernel's hot loops (checked by tests/benchmarks/test_cpu_static.py).

Cycles per 16 elements of llvm-mca's model of each core in loops.MODELS. A read streamed from
memory costs about 7 cycles per 16 floats on one core of the Intel Xeon (172 ns per 1,000-float
row at 2.6 GHz, benchmarks/results/cpu-intel-xeon-2core-phases.md); a helper of the top-k path
that stays under 4 on every model hides under that read with room for the per-row work.
"""
from __future__ import annotations

#: key (loops.KERNELS) -> the most cycles per 16 elements on every model
HOT_LOOP_BUDGET = {"group_scan": 4.0, "collect_above": 4.0, "widen_bf16": 2.5, "widen_fp16": 2.5}

#: key (loops.BLOCKS) -> the most cycles per call on every model (a 1,000-float row's streamed read
#: is ~450 cycles)
BLOCK_BUDGET = {"kth_of_16": 80.0}

#: regression ceilings of the exp pass (its floor, not hidden under the read): the recorded cycles
#: per 16 floats (+5 %), by (key, model). A loop may get cheaper, never dearer.
CEILINGS = {
    ("softmax_sums", "znver4"): 14.04 * 1.05,
    ("softmax_sums", "znver5"): 14.04 * 1.05,
    ("softmax_sums", "sapphirerapids"): 16.06 * 1.05,
    ("softmax_sums", "icelake-server"): 18.05 * 1.05,
}

#: the default (auto) form of the exp pass must cost no more than the other on these models
AUTO_FORM_MODELS = ["znver4", "znver5"]


def violations(rows) -> list[str]:
    """What breaks a budget or a ceiling, one line each (rows: loops.Row of the loops and blocks)."""
    out = []
    by_key = {r.key: r for r in rows}
    for table, unit in ((HOT_LOOP_BUDGET, "cycles / 16 elements"), (BLOCK_BUDGET, "cycles per call")):
        for key, budget in table.items():
            r = by_key.get(key)
            if r is None:
                out.append(f"{key}: not analysed")
                continue
            for model, cyc in r.cycles.items():
                if cyc > budget:
                    out.append(f"{key} on {model}: {cyc:.2f} {unit} > budget {budget}")
    for (key, model), ceiling in CEILINGS.items():
        r = by_key.get(key)
        if r is None or model not in r.cycles:
            out.append(f"{key} on {model}: not analysed")
        elif r.cycles[model] > ceiling:
            out.append(f"{key} on {model}: {r.cycles[model]:.2f} cycles / 16 floats > ceiling {ceiling:.2f}")
    auto, other = by_key.get("softmax_sums"), by_key.get("softmax_sums_exponent_bits")
    if auto and other:
        for model in AUTO_FORM_MODELS:
            if model in auto.cycles and auto.cycles[model] > other.cycles[model]:
                out.append(f"softmax_sums on {model}: the auto form ({auto.cycles[model]:.2f}) costs more than "
                           f"the other ({other.cycles[model]:.2f}): revisit MLMETRICS_CPU_TUNE's auto choice")
    return out
