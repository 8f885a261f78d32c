"""The CPU kernel's static gate: its compiled code (x86-64), read without running it.

* No instruction of benchmarks/cpu_static/hazards.RULES anywhere in the built extension
  (compress to memory, zero-masked compress/expand, gathers/scatters: slow on AMD Zen 4/5).
* The row helpers' hot loops (and the per-row pieces of blocks.cpp) within
  benchmarks/cpu_static/budgets.py on llvm-mca's Zen 4, Zen 5 and Intel models (skipped where no
  llvm-mca knows -mcpu=znver4, i.e. LLVM < 17).
* The scanner and the loop finder themselves, on a small object compiled here with each hazard
  and a loop of known width (needs g++).
"""
from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
from benchmarks.cpu_static import budgets, disasm, hazards, loops  # noqa: E402

if not disasm.have_objdump():
    pytest.skip("objdump (binutils) is not installed", allow_module_level=True)

EXTENSION = disasm.extension_path()
needs_extension = pytest.mark.skipif(EXTENSION is None, reason="compiled extension not built")
MCA = loops.find_llvm_mca()
needs_mca = pytest.mark.skipif(MCA is None, reason="no llvm-mca with -mcpu=znver4 (LLVM >= 17)")
needs_gxx = pytest.mark.skipif(shutil.which("g++") is None, reason="g++ not found")

SAMPLE = r"""
#include <immintrin.h>
#include <cstdint>
__attribute__((target("avx512f"))) void compress_to_memory(float* out, __mmask16 k, __m512 a) {
  _mm512_mask_compressstoreu_ps(out, k, a);
}
__attribute__((target("avx512f"))) __m512 zero_masked_compress(__mmask16 k, __m512 a) {
  return _mm512_maskz_compress_ps(k, a);
}
__attribute__((target("avx512f"))) __m512 expand_from_memory(const float* p, __mmask16 k) {
  return _mm512_mask_expandloadu_ps(_mm512_set1_ps(1.0f), k, p);
}
__attribute__((target("avx512f"))) __m512 gather(const float* p, __m512i idx) {
  return _mm512_i32gather_ps(idx, p, 4);
}
__attribute__((target("avx512f"))) float max_of(const float* x, int64_t n) {  // 64 floats a pass
  __m512 a = _mm512_set1_ps(-1e30f), b = a, c = a, d = a;
  for (int64_t j = 0; j + 64 <= n; j += 64) {
    a = _mm512_max_ps(a, _mm512_loadu_ps(x + j));
    b = _mm512_max_ps(b, _mm512_loadu_ps(x + j + 16));
    c = _mm512_max_ps(c, _mm512_loadu_ps(x + j + 32));
    d = _mm512_max_ps(d, _mm512_loadu_ps(x + j + 48));
  }
  return _mm512_reduce_max_ps(_mm512_max_ps(_mm512_max_ps(a, b), _mm512_max_ps(c, d)));
}
"""


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    d = tmp_path_factory.mktemp("cpu_static")
    (d / "sample.cpp").write_text(SAMPLE)
    subprocess.run(["g++", "-O2", "-c", str(d / "sample.cpp"), "-o", str(d / "sample.o")], check=True)
    return disasm.disassemble(str(d / "sample.o"))


@pytest.fixture(scope="module")
def extension():
    return disasm.disassemble(EXTENSION)


@needs_extension
def test_extension_has_no_vendor_hazards(extension):
    assert len(extension) > 100  # the kernel's functions, not an empty listing
    found = hazards.scan(extension)
    assert not found, "\n".join(f"{f.rule}: {f.insn} in {f.function}" for f in found)


@needs_gxx
def test_scanner_flags_each_hazard(sample):
    found = {(f.rule, f.function.split("(")[0]) for f in hazards.scan(sample)}
    assert ("compress to memory", "compress_to_memory") in found
    assert ("zero-masked compress/expand", "zero_masked_compress") in found
    assert ("expand from memory", "expand_from_memory") in found
    assert ("gather/scatter", "gather") in found
    assert not any(fn == "max_of" for _, fn in found)


@needs_gxx
def test_hot_loop_reads_what_the_source_says(sample):
    func = next(f for f in sample if f.name.startswith("max_of"))
    lp = loops.hot_loop(func)
    assert lp is not None and lp.elems == 64
    assert sum("vmaxps" in i.mnemonic for i in lp.body) == 4


@needs_extension
def test_every_kernel_loop_is_found(extension):
    for key, _, pattern, elem_bytes in loops.KERNELS:
        func = next((f for f in extension if re.search(pattern, f.name)), None)
        assert func is not None, f"{key}: no function matches {pattern}"
        lp = loops.hot_loop(func, elem_bytes)
        assert lp is not None and lp.elems in (16, 32, 64), (key, lp and lp.elems)


@needs_extension
@needs_mca
@needs_gxx
def test_hot_loops_within_budget(extension):
    _, rows = loops.analyze(extension, MCA)
    assert {r.key for r in rows} == {k for k, *_ in loops.KERNELS}
    blocks = loops.analyze_blocks(MCA)
    assert {r.key for r in blocks} == {k for k, *_ in loops.BLOCKS}
    assert budgets.violations(rows + blocks) == []


@needs_gxx
@needs_mca
def test_budget_check_flags_a_slow_loop(sample):
    _, rows = loops.analyze(sample, MCA, kernels=[("group_scan", "max_of", r"^max_of", 4)])
    assert rows and rows[0].cycles["znver4"] > 0
    slow = [loops.Row("group_scan", "", "", 64, 1, {m: 9.0 for m in loops.MODELS}, {})]
    assert any("group_scan on znver4" in v for v in budgets.violations(slow))


def test_cli_says_one_line_for_an_unreadable_object(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "benchmarks.cpu_static", "--so", str(tmp_path / "missing.so")],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: cannot disassemble") and proc.stderr.count("\n") == 1
    assert "Traceback" not in proc.stderr
