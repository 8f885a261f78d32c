// The CPU kernel's row helpers, shared by its files (private to csrc/cpu/). Each dispatched
// helper is a function pointer set once per process to its best version (isa.h); every
// version gives bit-identical answers. Rows are float32, contiguous, x[0, n).
//
//   softmax_sums.cpp      softmax_sums: sum e, e*d, e*e of e = exp(d), d = x - row max
//   group_scan.cpp        group_scan: per interleaved group, top-2 values and the block of the top-1
//   group_candidates.cpp  group_candidates / collect_above: the elements that can be in the top k
//   short_row.cpp         short_row_topk (n <= kShortRow), rank_few / rank_by_counting
//   selector.cpp/.h       TopKSelector: the top-k of one row, picking among the above
//   target_rank.cpp       rank_of (target rank), label_hits
//   widen.cpp             widen_bf16 / widen_fp16: 16-bit logits to float32
//   topk_stats.cpp        the op entry topk_stats_cpu and its row loop
#pragma once

#include <cstdint>
#include <limits>

#include "isa.h"
#include "keys.h"

namespace mlmetrics {
namespace cpu {

// ---- softmax_sums.cpp --------------------------------------------------------------------
// exp(d) is 0 below this: exp(-87) ~ 1.6e-38 is just above FLT_MIN (2^-126 ~ 1.2e-38), so every
// e the sums see is a normal float (2^n by exponent bits, no subnormal scale) and a row's sums
// lose nothing measurable (the largest term is exp(0) = 1). -inf gives 0.
constexpr float kExpUnderflow = -87.0f;

struct SoftmaxSums {
  double s = 0, u = 0, q = 0;
};
// Sums over x[0, n) of e, e*d, e*e with d = max(x - m, kExpUnderflow), e = exp(x - m) (0 below
// kExpUnderflow); m = the row max, finite. next (or nullptr): a row of >= n floats to prefetch.
using SoftmaxSumsFn = SoftmaxSums (*)(const float* x, int64_t n, float m, const float* next);
extern const SoftmaxSumsFn softmax_sums;

// ---- group_scan.cpp ----------------------------------------------------------------------
// One read of x[0, n) split into kGroups interleaved groups (group g holds x[g], x[g + 64], ...):
// for each group its largest value top1[g], the block (j / kGroups) of that value's first
// occurrence block[g], and its second-largest value top2[g] (counting repeats; -inf for a group
// of one). Returns true when the row holds a NaN (the outputs are then meaningless).
constexpr int64_t kGroups = 64;
using GroupScanFn = bool (*)(const float* x, int64_t n, float* top1, int32_t* block, float* top2);
extern const GroupScanFn group_scan;

// ---- group_candidates.cpp ----------------------------------------------------------------
// From group_scan's output, k <= kGroups: *t_out = t, a lower bound of the row's k-th value (the
// k-th largest group maximum, or a floor of it); out[0, count) = the indices of every element >= t
// (>= k of them, any order).
// Returns count; -1 when more than cap would be written (ties); -2 when rescanning the flagged
// groups (second value >= t) would cost more than one linear pass (then: collect_above).
using GroupCandidatesFn = int64_t (*)(const float* x, int64_t n, const float* top1, const int32_t* block,
                                      const float* top2, int64_t k, uint32_t* out, int64_t cap, float* t_out);
extern const GroupCandidatesFn group_candidates;
constexpr int64_t kRescanMaxRow = 8192;  // floats: rows up to 32 KiB stay in L1

// Indices j of x[0, n) (NaN-free) with x[j] >= lb into out[0, cap); their count, -1 past cap.
using CollectAboveFn = int64_t (*)(const float* x, int64_t n, float lb, uint32_t* out, int64_t cap);
extern const CollectAboveFn collect_above;

// ---- short_row.cpp -----------------------------------------------------------------------
constexpr int64_t kShortRow = 128;
// Top-k of x[0, n), n <= kShortRow, as rank_keys sorted descending into out; false when the
// row holds a NaN on a path that does not rank NaNs (the caller takes the general path).
using ShortRowTopKFn = bool (*)(const float* x, int64_t n, int64_t k, uint64_t* out);
extern const ShortRowTopKFn short_row_topk;

// keys[0, m) (distinct rank_keys, m <= kShortRow) sorted descending by counting; the first k to out.
void rank_by_counting(const uint64_t* keys, int64_t m, int64_t k, uint64_t* out);
constexpr int64_t kRankFew = 32;
// rank_by_counting for m <= kRankFew keys (vector compares where the ISA has them).
using RankFewFn = void (*)(const uint64_t* keys, int64_t m, int64_t k, uint64_t* out);
extern const RankFewFn rank_few;

// ---- target_rank.cpp ---------------------------------------------------------------------
// Number of elements of x[0, n) ranked before position t (rank order: NaN > +inf > ... ; ties
// go to the lower index).
int64_t rank_of(const float* x, int64_t n, int64_t t);
// h[j] = whether top-k index ti[j] is one of labels[0, m), for j in [0, k).
template <typename label_t>
inline void label_hits(const int64_t* ti, int64_t k, const label_t* labels, int64_t m, bool* h) {
  for (int64_t j = 0; j < k; ++j) h[j] = false;
  for (int64_t l = 0; l < m; ++l) {  // label-major: the inner loop has a fixed trip count (no mispredicts)
    const int64_t label = static_cast<int64_t>(labels[l]);
    for (int64_t j = 0; j < k; ++j) h[j] |= ti[j] == label;
  }
}

// ---- widen.cpp ---------------------------------------------------------------------------
// dst[0, n) = src[0, n) as float32, exactly (src: the bits of bf16 / fp16 values; NaN comes out
// quiet). Rows of 16-bit logits are widened a block of rows at a time, so the vector loads of
// the row helpers never wait on the stores that made their input.
using WidenFn = void (*)(const uint16_t* src, int64_t n, float* dst);
extern const WidenFn widen_bf16;
extern const WidenFn widen_fp16;

// ---- the k-th largest of 16 values (short rows, group candidates) ------------------------
// The smallest value with fewer than k values strictly above it (1 <= k <= 16; counting repeats),
// by counting: fixed trip counts, no data-dependent branches.
inline float kth_of_16_generic(const float* v, int64_t k) {
  int32_t above[16] = {};
  for (int64_t j = 0; j < 16; ++j) {
    const float vj = v[j];
    for (int64_t i = 0; i < 16; ++i) above[i] += vj > v[i] ? 1 : 0;
  }
  float t = std::numeric_limits<float>::infinity();
  for (int64_t i = 0; i < 16; ++i) t = (above[i] < k && v[i] < t) ? v[i] : t;
  return t;
}

#if MLM_HAVE_X86
// kth_of_16 of the 16 lanes of v: each lane's count from 15 lane rotations (valignd).
__attribute__((target("avx512f"), always_inline)) inline float kth_of_16_avx512(__m512 v, int64_t k) {
  __m512i above = _mm512_setzero_si512();
  const __m512i one = _mm512_set1_epi32(1);
  const __m512i vi = _mm512_castps_si512(v);
#define MLM_ROTATE_COUNT(s)                                                                                       \
  above = _mm512_mask_add_epi32(                                                                                   \
      above, _mm512_cmp_ps_mask(_mm512_castsi512_ps(_mm512_alignr_epi32(vi, vi, s)), v, _CMP_GT_OQ), above, one);
  MLM_ROTATE_COUNT(1) MLM_ROTATE_COUNT(2) MLM_ROTATE_COUNT(3) MLM_ROTATE_COUNT(4) MLM_ROTATE_COUNT(5)
  MLM_ROTATE_COUNT(6) MLM_ROTATE_COUNT(7) MLM_ROTATE_COUNT(8) MLM_ROTATE_COUNT(9) MLM_ROTATE_COUNT(10)
  MLM_ROTATE_COUNT(11) MLM_ROTATE_COUNT(12) MLM_ROTATE_COUNT(13) MLM_ROTATE_COUNT(14) MLM_ROTATE_COUNT(15)
#undef MLM_ROTATE_COUNT
  const __mmask16 within = _mm512_cmplt_epi32_mask(above, _mm512_set1_epi32(static_cast<int32_t>(k)));
  return _mm512_mask_reduce_min_ps(within, v);
}

// The lanes of a selected by k, packed to the low lanes, the rest 0 (as _mm512_maskz_compress_*).
// Written as merge-masking over a zero the compiler cannot fold: the zero-masked instruction
// ({z}) has a false dependency on its destination register on AMD Zen 4 and Zen 5 (each one waits
// for the last write of that register, ~4-5 cycles apart instead of 1); merging into a register
// just zeroed by an idiom (vpxord) depends on nothing. Same lanes, same cost on Intel.
__attribute__((target("avx512f"), always_inline)) inline __m512 compress_ps(__mmask16 k, __m512 a) {
  __m512 zero = _mm512_setzero_ps();
  asm("" : "+v"(zero));  // opaque: keeps GCC from turning the merge into {z}
  return _mm512_mask_compress_ps(zero, k, a);
}
__attribute__((target("avx512f"), always_inline)) inline __m512i compress_epi32(__mmask16 k, __m512i a) {
  __m512i zero = _mm512_setzero_si512();
  asm("" : "+v"(zero));
  return _mm512_mask_compress_epi32(zero, k, a);
}

// Lanes [0, left) of a 16-lane vector (left may exceed 16 or be <= 0).
inline __mmask16 first_lanes(int64_t left) {
  return left >= 16 ? __mmask16(0xFFFF) : left <= 0 ? __mmask16(0) : __mmask16((1u << left) - 1);
}
#endif

}  // namespace cpu
}  // namespace mlmetrics
