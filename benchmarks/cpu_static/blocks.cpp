// Straight-line pieces of the CPU kernel's per-row work, as functions llvm-mca can cost
// (benchmarks/cpu_static/loops.py compiles this file with the extension's flags).
#include "kernels.h"

namespace mlmetrics {
namespace cpu {

// kth_of_16 of the lane maxima / group maxima: once per row at k <= 16.
__attribute__((target("avx512f"), noinline)) float block_kth_of_16(__m512 v, int64_t k) {
  return kth_of_16_avx512(v, k);
}

}  // namespace cpu
}  // namespace mlmetrics
