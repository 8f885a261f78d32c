// Which hand-written version of each CPU kernel runs: the CPU's instruction set, capped by the
// environment variable MLMETRICS_CPU_ISA=avx512|avx2|scalar (read once, at the first call), and
// the tuning choice MLMETRICS_CPU_TUNE=auto|intel|amd (auto: intel on every vendor, see Tune).
//
// Naming: every kernel with several versions has a `_generic` one (portable C++ written for the
// compiler to vectorise; GCC clones it per ISA with MLM_CLONES) and may have `_avx2` / `_avx512`
// ones; all versions give bit-identical answers. A version is picked into a function pointer
// once per process (pick); "scalar" caps to the generic versions.
#pragma once

#include <cstdint>

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define MLM_HAVE_X86 1
#define MLM_X86(fn) fn
#else
#define MLM_HAVE_X86 0
#define MLM_X86(fn) nullptr
#endif

#if !defined(MLM_CLONES)  // (a build may define it empty to compile one ISA only)
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
#define MLM_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define MLM_CLONES
#endif
#endif

namespace mlmetrics {
namespace cpu {

enum class Isa : int { kScalar = 0, kAvx2 = 1, kAvx512 = 2 };

// The microarchitecture family a choice between equivalent (bit-identical) versions is tuned for.
//   kIntel: Intel cores. kAmd: AMD Zen 4/5 (on Zen 4 512-bit ops run as two 256-bit halves).
// One choice depends on it: how softmax_sums_avx512 rounds and forms 2^n (softmax_sums.cpp).
// auto takes kIntel on every vendor: its form is also the one llvm-mca's Zen 4 and Zen 5 models
// cost least (benchmarks/cpu_static), and on the Intel Xeon measured the two cost the same.
// Choices that are right on both are made for both: no compress to memory (Zen 4 microcodes it),
// no zero-masked compress (a false dependency on Zen 4/5), no gathers or scatters; the CI test
// tests/benchmarks/test_cpu_static.py checks the built code for each.
enum class Tune : int { kIntel = 0, kAmd = 1 };

Isa isa();    // the CPU's, capped by MLMETRICS_CPU_ISA
Tune tune();  // MLMETRICS_CPU_TUNE=intel|amd, else (auto) kIntel
const char* isa_name(Isa isa);    // "avx512", "avx2", "scalar"
const char* tune_name(Tune tune);  // "intel", "amd"

// The best of a kernel's versions for isa() (nullptr: no such version).
template <typename Fn>
Fn pick(Fn avx512, Fn avx2, Fn generic) {
  if (avx512 != nullptr && isa() == Isa::kAvx512) return avx512;
  if (avx2 != nullptr && static_cast<int>(isa()) >= static_cast<int>(Isa::kAvx2)) return avx2;
  return generic;
}

}  // namespace cpu
}  // namespace mlmetrics
