"""The CPU kernel's fallbacks for machines without AVX-512 (AVX2-only x86, other CPUs).

The kernel picks its hand-written AVX-512 / AVX2 / scalar paths once, at load, from the CPU
and the MLMETRICS_CPU_ISA cap. On an AVX-512 machine the other paths only run when capped,
so this runs the CPU op tests again in a fresh interpreter with each cap."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

import mlmetrics

TESTS = Path(__file__).parent


@pytest.mark.skipif(not mlmetrics.HAS_EXTENSION, reason="compiled extension not built")
@pytest.mark.parametrize("isa", ["scalar", "avx2"])
def test_op_tests_pass_with_capped_instruction_set(isa):
    env = dict(os.environ, MLMETRICS_CPU_ISA=isa, HYPOTHESIS_PROFILE=os.environ.get("HYPOTHESIS_PROFILE", "default"))
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", str(TESTS / "test_topk_stats_cpu.py"),
         "-k", "not opcheck"],
        cwd=TESTS.parent, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert " passed" in proc.stdout


@pytest.mark.skipif(not mlmetrics.HAS_EXTENSION, reason="compiled extension not built")
def test_cpu_isa_reports_the_cap():
    assert mlmetrics.cpu_isa() in ("avx512", "avx2", "scalar")
    code = "import mlmetrics; print(mlmetrics.cpu_isa())"
    got = subprocess.run([sys.executable, "-c", code], env=dict(os.environ, MLMETRICS_CPU_ISA="scalar"),
                         capture_output=True, text=True, check=True).stdout.split()[-1]
    assert got == "scalar"


def test_unknown_cpu_isa_is_a_clear_error():
    proc = subprocess.run([sys.executable, "-c", "import mlmetrics"], env=dict(os.environ, MLMETRICS_CPU_ISA="avx3"),
                          capture_output=True, text=True)
    assert proc.returncode != 0
    assert "MLMETRICS_CPU_ISA must be one of ('avx512', 'avx2', 'scalar')" in proc.stderr
    assert "'avx3'" in proc.stderr
