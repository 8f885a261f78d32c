"""The CPU kernel's other versions: ISA fallbacks (AVX2-only x86, other CPUs) and tunings.

The kernel picks its hand-written AVX-512 / AVX2 / generic versions once, at load, from the CPU
and the MLMETRICS_CPU_ISA cap, and among equivalent versions by MLMETRICS_CPU_TUNE (auto: intel
on every vendor). On one machine the other paths only run when asked for, so this runs the CPU op
tests again in a fresh interpreter with each cap and the other tuning, and checks that both
tunings give bit-identical results under every cap."""
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import mlmetrics

TESTS = Path(__file__).parent
ROOT = TESTS.parent.parent
needs_extension = pytest.mark.skipif(not mlmetrics.HAS_EXTENSION, reason="compiled extension not built")


OTHER_TUNE = "amd"  # auto takes "intel" on every vendor


def _env(**kw):
    env = dict(os.environ, HYPOTHESIS_PROFILE=os.environ.get("HYPOTHESIS_PROFILE", "default"))
    for name, value in kw.items():
        env[f"MLMETRICS_CPU_{name.upper()}"] = value
    return env


@needs_extension
@pytest.mark.parametrize("isa,tune", [("scalar", "auto"), ("avx2", "auto"), ("avx512", OTHER_TUNE)])
def test_op_tests_pass_with_capped_instruction_set(isa, tune):
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", str(TESTS / "test_topk_stats_cpu.py"),
         "-k", "not opcheck"],
        cwd=ROOT, env=_env(isa=isa, tune=tune), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert " passed" in proc.stdout


# Rows that take every path of the row loop: short rows, group selection (with flagged groups
# and +-inf), the filtered scan (NaN, large k), softmax sums over partial blocks; bf16 and a
# class subset go through the converted-row buffer.
_DUMP = r"""
import sys, torch, mlmetrics
g = torch.Generator().manual_seed(0)
out = []
for c in (7, 37, 129, 1000, 1001, 3000):
    x = torch.randn(96, c, generator=g) * torch.rand(96, 1, generator=g) * 4 + torch.randn(96, 1, generator=g)
    x[5, 3] = float("nan"); x[6, 2] = float("inf"); x[7, :] = -float("inf"); x[8, c // 2] = -float("inf")
    x[9] = torch.randint(0, 3, (c,), generator=g).float()
    t = torch.randint(0, c, (96,), generator=g)
    ranges = torch.stack([torch.arange(96), torch.arange(96) + 1], 1)
    labels = torch.randint(0, c, (96,), generator=g)
    for k in sorted(k for k in {1, 5, 16, 100} if k <= c):
        out.append(torch.ops.mlmetrics.topk_stats(x, k, t, ranges, labels, None, True))
    out.append(torch.ops.mlmetrics.topk_stats(x.bfloat16(), 5, t, None, None, None, True))
    out.append(torch.ops.mlmetrics.topk_stats(x, 3, None, None, None, torch.arange(c - 1, -1, -2), True))
torch.save([[v.clone() for v in r] for r in out], sys.argv[1])
print(mlmetrics.cpu_isa())
"""


def _bits(t: torch.Tensor) -> torch.Tensor:
    return t.view(torch.int32) if t.dtype == torch.float32 else t


@needs_extension
@pytest.mark.parametrize("isa", ["avx512", "avx2", "scalar"])
def test_tunings_are_bit_identical_under_every_cap(isa, tmp_path):
    results = {}
    for tune in ("intel", "amd"):
        path = tmp_path / f"{tune}.pt"
        proc = subprocess.run([sys.executable, "-c", _DUMP, str(path)], cwd=ROOT, env=_env(isa=isa, tune=tune),
                              capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr[-2000:]
        results[tune] = torch.load(path)
    assert len(results["intel"]) == len(results["amd"]) > 0
    for a, b in zip(results["intel"], results["amd"]):
        for ta, tb in zip(a, b):
            assert ta.shape == tb.shape and torch.equal(_bits(ta), _bits(tb))


@needs_extension
def test_cpu_isa_reports_the_cap():
    assert mlmetrics.cpu_isa() in ("avx512", "avx2", "scalar")
    code = "import mlmetrics; print(mlmetrics.cpu_isa())"
    got = subprocess.run([sys.executable, "-c", code], env=_env(isa="scalar"),
                         capture_output=True, text=True, check=True).stdout.split()[-1]
    assert got == "scalar"


@pytest.mark.parametrize("name,allowed", [("ISA", "('avx512', 'avx2', 'scalar')"), ("TUNE", "('auto', 'intel', 'amd')")])
def test_unknown_cpu_setting_is_a_clear_error(name, allowed):
    proc = subprocess.run([sys.executable, "-c", "import mlmetrics"],
                          env=dict(os.environ, **{f"MLMETRICS_CPU_{name}": "avx3"}), capture_output=True, text=True)
    assert proc.returncode != 0
    assert f"MLMETRICS_CPU_{name} must be one of {allowed}" in proc.stderr
    assert "'avx3'" in proc.stderr
