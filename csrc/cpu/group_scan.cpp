// group_scan (kernels.h): one read of the row, a few vector ops per 16 elements (as fast as
// reading the row): per interleaved group, its top-2 values and the block of its maximum.
#include <algorithm>
#include <limits>

#include "kernels.h"

namespace mlmetrics {
namespace cpu {
namespace {

// Written so the compiler vectorises it: per block of 64, one pass over the 64 groups with
// selects in the form of MAXPS/MINPS.
MLM_CLONES bool group_scan_generic(const float* __restrict x, int64_t n, float* __restrict top1,
                                   int32_t* __restrict block, float* __restrict top2) {
  float a[kGroups], b[kGroups];
  int32_t ia[kGroups];
  int32_t nan = 0;
  for (int64_t g = 0; g < kGroups; ++g) {
    a[g] = b[g] = -std::numeric_limits<float>::infinity();
    ia[g] = 0;
  }
  for (int64_t j = 0; j < n; j += kGroups) {
    const int32_t blk = static_cast<int32_t>(j / kGroups);
    const float* xs = x + j;
    float tail[kGroups];
    if (n - j < kGroups) {  // the last, partial block: pad with -inf (changes nothing)
      for (int64_t g = 0; g < kGroups; ++g) tail[g] = j + g < n ? x[j + g] : -std::numeric_limits<float>::infinity();
      xs = tail;
    }
    for (int64_t g = 0; g < kGroups; ++g) {
      const float v = xs[g];
      nan |= v != v;
      const float low = v < a[g] ? v : a[g];
      b[g] = b[g] > low ? b[g] : low;
      const bool gt = v > a[g];
      a[g] = gt ? v : a[g];
      ia[g] = gt ? blk : ia[g];
    }
  }
  std::copy(a, a + kGroups, top1);
  std::copy(b, b + kGroups, top2);
  std::copy(ia, ia + kGroups, block);
  return nan != 0;
}

#if MLM_HAVE_X86
// One vector of 16 groups: strict > keeps the first occurrence of the maximum.
__attribute__((target("avx512f"), always_inline)) inline void group_step_avx512(__m512 v, __m512i blk, __m512& a,
                                                                               __m512i& ia, __m512& b) {
  const __mmask16 gt = _mm512_cmp_ps_mask(v, a, _CMP_GT_OQ);
  b = _mm512_max_ps(b, _mm512_min_ps(a, v));
  a = _mm512_mask_mov_ps(a, gt, v);
  ia = _mm512_mask_mov_epi32(ia, gt, blk);
}

__attribute__((target("avx512f"))) bool group_scan_avx512(const float* x, int64_t n, float* top1, int32_t* block,
                                                         float* top2) {
  const __m512 ninf = _mm512_set1_ps(-std::numeric_limits<float>::infinity());
  __m512 a[4] = {ninf, ninf, ninf, ninf}, b[4] = {ninf, ninf, ninf, ninf};
  __m512i ia[4] = {_mm512_setzero_si512(), _mm512_setzero_si512(), _mm512_setzero_si512(), _mm512_setzero_si512()};
  __mmask16 nan = 0;
  int64_t j = 0;
  // The block number as a vector, one add per block: GCC would otherwise fold a per-block
  // _mm512_set1_epi32 into four masked broadcasts from a general register per block (a
  // GPR-to-vector transfer each; 2 micro-ops on Intel).
  __m512i blk = _mm512_setzero_si512();
  const __m512i one = _mm512_set1_epi32(1);
  for (; j + kGroups <= n; j += kGroups, blk = _mm512_add_epi32(blk, one)) {
    const __m512 v0 = _mm512_loadu_ps(x + j), v1 = _mm512_loadu_ps(x + j + 16);
    const __m512 v2 = _mm512_loadu_ps(x + j + 32), v3 = _mm512_loadu_ps(x + j + 48);
    nan |= _mm512_cmp_ps_mask(v0, v1, _CMP_UNORD_Q) | _mm512_cmp_ps_mask(v2, v3, _CMP_UNORD_Q);
    group_step_avx512(v0, blk, a[0], ia[0], b[0]);
    group_step_avx512(v1, blk, a[1], ia[1], b[1]);
    group_step_avx512(v2, blk, a[2], ia[2], b[2]);
    group_step_avx512(v3, blk, a[3], ia[3], b[3]);
  }
  for (int q = 0; j < n; j += 16, ++q) {  // tail: group (j % 64) as in the main loop
    const __m512 v = _mm512_mask_loadu_ps(ninf, first_lanes(n - j), x + j);
    nan |= _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
    group_step_avx512(v, blk, a[q], ia[q], b[q]);
  }
  for (int q = 0; q < 4; ++q) {
    _mm512_storeu_ps(top1 + 16 * q, a[q]);
    _mm512_storeu_ps(top2 + 16 * q, b[q]);
    _mm512_storeu_si512(block + 16 * q, ia[q]);
  }
  return nan != 0;
}

// One vector of 8 groups: as group_step_avx512.
__attribute__((target("avx2"), always_inline)) inline void group_step_avx2(__m256 v, __m256i blk, __m256& a,
                                                                          __m256i& ia, __m256& b) {
  const __m256 gt = _mm256_cmp_ps(v, a, _CMP_GT_OQ);
  b = _mm256_max_ps(b, _mm256_min_ps(a, v));
  a = _mm256_blendv_ps(a, v, gt);
  ia = _mm256_blendv_epi8(ia, blk, _mm256_castps_si256(gt));
}

// One block of 64 floats (eight vectors of 8 groups) into the running values.
__attribute__((target("avx2"), always_inline)) inline void group_block_avx2(const float* xs, __m256i blk, __m256* a,
                                                                           __m256i* ia, __m256* b, __m256& nan) {
  for (int q = 0; q < 8; ++q) {
    const __m256 v = _mm256_loadu_ps(xs + 8 * q);
    nan = _mm256_or_ps(nan, _mm256_cmp_ps(v, v, _CMP_UNORD_Q));
    group_step_avx2(v, blk, a[q], ia[q], b[q]);
  }
}

// The block number as a vector (one add per block, no GPR-to-vector transfer), and the partial
// last block after the loop, not a test in it. (64 groups' three values need 24 registers of
// AVX2's 16: GCC keeps some on the stack either way; splitting the groups into passes cost more
// on the Intel models than the spills.)
__attribute__((target("avx2"))) bool group_scan_avx2(const float* x, int64_t n, float* top1, int32_t* block,
                                                    float* top2) {
  const __m256 ninf = _mm256_set1_ps(-std::numeric_limits<float>::infinity());
  __m256 a[8], b[8];
  __m256i ia[8];
  for (int q = 0; q < 8; ++q) {
    a[q] = b[q] = ninf;
    ia[q] = _mm256_setzero_si256();
  }
  __m256 nan = _mm256_setzero_ps();
  __m256i blk = _mm256_setzero_si256();
  const __m256i one = _mm256_set1_epi32(1);
  const int64_t full = n / kGroups * kGroups;
  for (int64_t j = 0; j < full; j += kGroups, blk = _mm256_add_epi32(blk, one)) {
    group_block_avx2(x + j, blk, a, ia, b, nan);
  }
  if (full < n) {  // the last, partial block: pad with -inf (changes nothing)
    alignas(32) float tail[kGroups];
    for (int64_t g = 0; g < kGroups; ++g) tail[g] = full + g < n ? x[full + g] : -std::numeric_limits<float>::infinity();
    group_block_avx2(tail, blk, a, ia, b, nan);
  }
  for (int q = 0; q < 8; ++q) {
    _mm256_storeu_ps(top1 + 8 * q, a[q]);
    _mm256_storeu_ps(top2 + 8 * q, b[q]);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(block + 8 * q), ia[q]);
  }
  return _mm256_movemask_ps(nan) != 0;
}
#endif

}  // namespace

const GroupScanFn group_scan =
    pick<GroupScanFn>(MLM_X86(group_scan_avx512), MLM_X86(group_scan_avx2), group_scan_generic);

}  // namespace cpu
}  // namespace mlmetrics
