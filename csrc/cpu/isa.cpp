// ISA detection, the MLMETRICS_CPU_ISA cap and the MLMETRICS_CPU_TUNE choice (see isa.h).
// Like every file here but topk_stats.cpp, free of torch: benchmarks/cpu_phases.cpp links them.
#include "isa.h"

#include <cstdlib>
#include <cstring>

namespace mlmetrics {
namespace cpu {
namespace {

Isa detect_isa() {
  Isa best = Isa::kScalar;
#if MLM_HAVE_X86
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("popcnt")) {
    best = Isa::kAvx512;
  } else if (__builtin_cpu_supports("avx2")) {
    best = Isa::kAvx2;
  }
#endif
  // mlmetrics/ops/dispatch.py rejects other values before the extension loads.
  if (const char* cap = std::getenv("MLMETRICS_CPU_ISA")) {
    const Isa limit = std::strcmp(cap, "scalar") == 0 ? Isa::kScalar
                      : std::strcmp(cap, "avx2") == 0 ? Isa::kAvx2
                                                      : Isa::kAvx512;
    if (static_cast<int>(limit) < static_cast<int>(best)) best = limit;
  }
  return best;
}

Tune detect_tune() {
  if (const char* t = std::getenv("MLMETRICS_CPU_TUNE")) {
    if (std::strcmp(t, "intel") == 0) return Tune::kIntel;
    if (std::strcmp(t, "amd") == 0) return Tune::kAmd;
  }
  // auto: kIntel on every vendor. Its one choice (vscalefps for 2^n) is also the one llvm-mca's
  // Zen 4 / Zen 5 models cost least (benchmarks/cpu_static); kAmd stays selectable by name, to
  // measure the other form on AMD hardware.
  return Tune::kIntel;
}

}  // namespace

Isa isa() {
  static const Isa value = detect_isa();  // a function-local static: safe from any file's initialiser
  return value;
}

Tune tune() {
  static const Tune value = detect_tune();
  return value;
}

const char* isa_name(Isa i) { return i == Isa::kAvx512 ? "avx512" : i == Isa::kAvx2 ? "avx2" : "scalar"; }
const char* tune_name(Tune t) { return t == Tune::kAmd ? "amd" : "intel"; }

}  // namespace cpu
}  // namespace mlmetrics
