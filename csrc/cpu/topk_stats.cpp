// CPU kernel of mlmetrics::topk_stats: one pass per row, parallel over rows.
//
// Per row (the row is read from memory once; later passes hit the cache):
//   1. top-k (TopKSelector), ranked by rank_key (ties: lower index):
//      - rows of C <= 128: a bound from 16 lane maxima, then the few elements above it ranked
//        by counting (short_row_topk);
//      - longer NaN-free rows, small k: one read tracks, for 64 interleaved groups, the
//        maximum, its first index and the second value (group_scan); the k-th largest group
//        maximum bounds the row's k-th value, and usually the top-k are exactly the largest
//        group maxima, so the row is not read again (else only the flagged groups, or one
//        pass over the cached row, are);
//      - other rows (NaN, large k, ties past the caps): a scan filtered 64 at a time against
//        the weakest kept value.
//   2. target rank: count of elements ranked before the target (vectorisable compares).
//   3. softmax statistics (only with_softmax and a finite row): m = top-1 logit (no separate
//      max pass), s = sum e^(x-m), u = sum e^(x-m)(x-m), q = sum e^(2(x-m)); float lanes over
//      blocks of 1024, blocks summed in double. The next row is prefetched meanwhile.
// Hand-written AVX-512 / AVX2 versions are picked at load (MLMETRICS_CPU_ISA caps them); the
// generic versions are written for the compiler to vectorise. All give identical answers.
// The row's nonfinite flag falls out of the top-1 key: NaN ranks first, +inf next, and an
// all -inf row has -inf on top.
#include <ATen/Parallel.h>
#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <limits>
#include <vector>

#include "schema.h"

#if !defined(MLM_CLONES)  // (a build may define it empty to compile one ISA only)
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
#define MLM_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define MLM_CLONES
#endif
#endif

namespace mlmetrics {
namespace {

// Instruction sets the hand-written kernels below may use: the CPU's, capped by the
// environment variable MLMETRICS_CPU_ISA=avx512|avx2|scalar read at load (so the tests can run
// every fallback on one machine). Every path gives the same answers.
enum class Isa : int { kScalar = 0, kAvx2 = 1, kAvx512 = 2 };

Isa detect_isa() {
  Isa isa = Isa::kScalar;
#if defined(__x86_64__) && defined(__GNUC__)
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("popcnt")) {
    isa = Isa::kAvx512;
  } else if (__builtin_cpu_supports("avx2")) {
    isa = Isa::kAvx2;
  }
#endif
  if (const char* cap = std::getenv("MLMETRICS_CPU_ISA")) {
    const Isa limit = std::strcmp(cap, "scalar") == 0 ? Isa::kScalar
                      : std::strcmp(cap, "avx2") == 0 ? Isa::kAvx2
                                                      : Isa::kAvx512;
    if (static_cast<int>(limit) < static_cast<int>(isa)) isa = limit;
  }
  return isa;
}
const Isa kIsa = detect_isa();
inline bool use_avx512() { return kIsa == Isa::kAvx512; }
inline bool use_avx2() { return static_cast<int>(kIsa) >= static_cast<int>(Isa::kAvx2); }

// The best of a kernel's versions for kIsa (nullptr: no such version).
template <typename Fn>
Fn pick(Fn avx512, Fn avx2, Fn fallback) {
  if (avx512 != nullptr && use_avx512()) return avx512;
  if (avx2 != nullptr && use_avx2()) return avx2;
  return fallback;
}
#if defined(__x86_64__) && defined(__GNUC__)
#define MLM_X86(fn) fn
#else
#define MLM_X86(fn) nullptr
#endif

constexpr int64_t kBlock = 1024;  // float-accumulated block of the softmax sums
constexpr int64_t kLanes = 16;    // independent accumulators of the softmax sums


// e^d for d <= 0 (d = x - max): Cephes-style range reduction and a degree-6 polynomial,
// relative error ~2 ulp; d < -87 gives 0 (so -inf gives 0). Branch-free: vectorises.
inline float exp_nonpositive(float d) {
  const bool underflow = d < -87.0f;
  d = std::max(d, -87.0f);
  // Round to nearest by adding 1.5 * 2^23 (exact for |d * log2(e)| < 2^22): vectorises on any ISA.
  const float n = (d * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
  float r = d - n * 0.693359375f;
  r = r + n * 2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  int32_t bits = (static_cast<int32_t>(n) + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, sizeof(scale));
  return underflow ? 0.0f : p * scale;
}

struct SoftmaxSums {
  double s = 0, u = 0, q = 0;
};

// Sums over x[0, n) of e, e*d, e*e with d = x - m, e = e^d (m = row max, finite).
// kLanes independent float accumulators per block (vectorises without -ffast-math);
// blocks are added in double.
MLM_CLONES SoftmaxSums softmax_sums_generic(const float* __restrict x, int64_t n, float m, const float*) {
  SoftmaxSums out;
  float tail[kLanes];
  for (int64_t j = 0; j < n;) {
    float s[kLanes] = {}, u[kLanes] = {}, q[kLanes] = {};
    const int64_t block_end = std::min(n, j + kBlock);
    for (; j < block_end; j += kLanes) {
      const float* xs = x + j;
      if (block_end - j < kLanes) {  // the row's last, partial vector: pad with -inf (adds 0)
        std::fill(tail, tail + kLanes, -std::numeric_limits<float>::infinity());
        std::copy(x + j, x + block_end, tail);
        xs = tail;
      }
      for (int64_t l = 0; l < kLanes; ++l) {
        const float d = std::max(xs[l] - m, -87.0f);  // -inf entries: e = 0 and e*d = 0
        const float e = exp_nonpositive(xs[l] - m);
        s[l] += e;
        u[l] += e * d;
        q[l] += e * e;
      }
    }
    for (int64_t w = kLanes / 2; w >= 1; w /= 2) {  // pairwise: short rows are common
      for (int64_t l = 0; l < w; ++l) {
        s[l] += s[l + w];
        u[l] += u[l + w];
        q[l] += q[l + w];
      }
    }
    out.s += s[0];
    out.u += u[0];
    out.q += q[0];
  }
  return out;
}

#if defined(__x86_64__) && defined(__GNUC__)
// softmax_sums with AVX-512: the same range reduction and polynomial as exp_nonpositive, 2^n by
// scalef; the row's last partial vector is loaded with -inf (adds 0). Two accumulator sets
// per block hide the add latency.
__attribute__((target("avx512f"), always_inline)) inline void softmax_lanes(__m512 v, __m512 mv, __m512& s, __m512& u,
                                                                           __m512& q) {
  const __m512 lo = _mm512_set1_ps(-87.0f);
  const __m512 raw = _mm512_sub_ps(v, mv);
  const __mmask16 live = _mm512_cmp_ps_mask(raw, lo, _CMP_GE_OQ);  // d < -87 (and -inf): e = 0
  const __m512 d = _mm512_max_ps(raw, lo);
  const __m512 k = _mm512_roundscale_ps(_mm512_mul_ps(d, _mm512_set1_ps(1.44269504088896341f)),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(k, _mm512_set1_ps(0.693359375f), d);
  r = _mm512_fnmadd_ps(k, _mm512_set1_ps(-2.12194440e-4f), r);
  __m512 p = _mm512_fmadd_ps(_mm512_set1_ps(1.9875691500e-4f), r, _mm512_set1_ps(1.3981999507e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
  p = _mm512_fmadd_ps(_mm512_mul_ps(p, r), r, _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
  const __m512 e = _mm512_maskz_mov_ps(live, _mm512_scalef_ps(p, k));
  s = _mm512_add_ps(s, e);
  u = _mm512_fmadd_ps(e, d, u);
  q = _mm512_fmadd_ps(e, e, q);
}

// next (or nullptr): a row of >= n floats to prefetch, a line per 16 elements summed.
__attribute__((target("avx512f"))) SoftmaxSums softmax_sums_avx512(const float* x, int64_t n, float m,
                                                                   const float* next) {
  const __m512 mv = _mm512_set1_ps(m), ninf = _mm512_set1_ps(-std::numeric_limits<float>::infinity());
  SoftmaxSums out;
  for (int64_t j = 0; j < n;) {
    __m512 s0 = _mm512_setzero_ps(), u0 = s0, q0 = s0, s1 = s0, u1 = s0, q1 = s0;
    const int64_t block_end = std::min(n, j + kBlock);
    for (; j + 32 <= block_end; j += 32) {
      if (next != nullptr) {
        _mm_prefetch(reinterpret_cast<const char*>(next + j), _MM_HINT_T1);
        _mm_prefetch(reinterpret_cast<const char*>(next + j + 16), _MM_HINT_T1);
      }
      softmax_lanes(_mm512_loadu_ps(x + j), mv, s0, u0, q0);
      softmax_lanes(_mm512_loadu_ps(x + j + 16), mv, s1, u1, q1);
    }
    for (; j < block_end; j += 16) {
      const int64_t left = block_end - j;
      const __mmask16 in = left >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << left) - 1);
      softmax_lanes(_mm512_mask_loadu_ps(ninf, in, x + j), mv, s0, u0, q0);
    }
    out.s += _mm512_reduce_add_ps(_mm512_add_ps(s0, s1));
    out.u += _mm512_reduce_add_ps(_mm512_add_ps(u0, u1));
    out.q += _mm512_reduce_add_ps(_mm512_add_ps(q0, q1));
  }
  return out;
}
#endif

using SoftmaxSumsFn = SoftmaxSums (*)(const float*, int64_t, float, const float*);
const SoftmaxSumsFn softmax_sums = pick<SoftmaxSumsFn>(MLM_X86(softmax_sums_avx512), nullptr, softmax_sums_generic);

// Number of elements ranked before position t (value tv) in x[0, n).
MLM_CLONES int64_t rank_of(const float* __restrict x, int64_t n, int64_t t) {
  const float tv = x[t];
  int32_t count = 0;
  if (tv != tv) {  // NaN target: only NaNs of lower index rank before it
    for (int64_t j = 0; j < t; ++j) count += (x[j] != x[j]);
    return count;
  }
  for (int64_t j = 0; j < n; ++j) count += (x[j] > tv) | (x[j] != x[j]);
  for (int64_t j = 0; j < t; ++j) count += (x[j] == tv);
  return count;
}

// First j' in [j, n) whose x[j'] can enter a top-k whose weakest value is th, i.e. x > th or
// x is NaN ("not less-or-equal, unordered"); n if none. The hot loop of the top-k scan.
using NextCandidateFn = int64_t (*)(const float*, int64_t, int64_t, float);

int64_t next_candidate_scalar(const float* x, int64_t j, int64_t n, float th) {
  for (; j < n; ++j) {
    if (!(x[j] <= th)) return j;
  }
  return n;
}

#if defined(__x86_64__) && defined(__GNUC__)
__attribute__((target("avx512f"))) int64_t next_candidate_avx512(const float* x, int64_t j, int64_t n, float th) {
  const __m512 t = _mm512_set1_ps(th);
  for (; j + 64 <= n; j += 64) {
    const uint32_t m0 = _mm512_cmp_ps_mask(_mm512_loadu_ps(x + j), t, _CMP_NLE_UQ);
    const uint32_t m1 = _mm512_cmp_ps_mask(_mm512_loadu_ps(x + j + 16), t, _CMP_NLE_UQ);
    const uint32_t m2 = _mm512_cmp_ps_mask(_mm512_loadu_ps(x + j + 32), t, _CMP_NLE_UQ);
    const uint32_t m3 = _mm512_cmp_ps_mask(_mm512_loadu_ps(x + j + 48), t, _CMP_NLE_UQ);
    const uint64_t m = uint64_t{m0} | (uint64_t{m1} << 16) | (uint64_t{m2} << 32) | (uint64_t{m3} << 48);
    if (m) return j + __builtin_ctzll(m);
  }
  for (; j < n; j += 16) {
    const __mmask16 live = n - j >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << (n - j)) - 1);
    const uint32_t m = _mm512_mask_cmp_ps_mask(live, _mm512_maskz_loadu_ps(live, x + j), t, _CMP_NLE_UQ);
    if (m) return j + __builtin_ctz(m);
  }
  return n;
}

__attribute__((target("avx2"))) int64_t next_candidate_avx2(const float* x, int64_t j, int64_t n, float th) {
  const __m256 t = _mm256_set1_ps(th);
  for (; j + 32 <= n; j += 32) {
    const uint32_t m0 = _mm256_movemask_ps(_mm256_cmp_ps(_mm256_loadu_ps(x + j), t, _CMP_NLE_UQ));
    const uint32_t m1 = _mm256_movemask_ps(_mm256_cmp_ps(_mm256_loadu_ps(x + j + 8), t, _CMP_NLE_UQ));
    const uint32_t m2 = _mm256_movemask_ps(_mm256_cmp_ps(_mm256_loadu_ps(x + j + 16), t, _CMP_NLE_UQ));
    const uint32_t m3 = _mm256_movemask_ps(_mm256_cmp_ps(_mm256_loadu_ps(x + j + 24), t, _CMP_NLE_UQ));
    const uint32_t m = m0 | (m1 << 8) | (m2 << 16) | (m3 << 24);
    if (m) return j + __builtin_ctz(m);
  }
  return next_candidate_scalar(x, j, n, th);
}
#endif

const NextCandidateFn next_candidate =
    pick<NextCandidateFn>(MLM_X86(next_candidate_avx512), MLM_X86(next_candidate_avx2), next_candidate_scalar);

// One read of the row x[0, n) split into kGroups (64) interleaved groups (group g holds
// x[g], x[g + 64], x[g + 128], ...): for each group its largest value top1[g], the block
// (j / 64) of that value's first occurrence, block[g], and its second-largest value top2[g]
// (counting repeats; -inf for a group of one). Returns true when the row holds a NaN (the
// rest is then meaningless). A few vector ops per 16 elements: as fast as reading the row.
constexpr int64_t kGroups = 64;
using GroupScanFn = bool (*)(const float*, int64_t, float*, int32_t*, float*);

// Written so the compiler vectorises it (AVX2 and others): per block of 64, one pass over the
// 64 groups with selects in the form of MAXPS/MINPS.
MLM_CLONES bool group_scan_scalar(const float* __restrict x, int64_t n, float* __restrict top1,
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

#if defined(__x86_64__) && defined(__GNUC__)
// One vector of 16 groups: strict > keeps the first occurrence of the maximum.
__attribute__((target("avx512f"), always_inline)) inline void group_step(__m512 v, __m512i blk, __m512& a, __m512i& ia,
                                                                        __m512& b) {
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
  for (; j + kGroups <= n; j += kGroups) {
    const __m512i blk = _mm512_set1_epi32(static_cast<int32_t>(j / kGroups));
    const __m512 v0 = _mm512_loadu_ps(x + j), v1 = _mm512_loadu_ps(x + j + 16);
    const __m512 v2 = _mm512_loadu_ps(x + j + 32), v3 = _mm512_loadu_ps(x + j + 48);
    nan |= _mm512_cmp_ps_mask(v0, v1, _CMP_UNORD_Q) | _mm512_cmp_ps_mask(v2, v3, _CMP_UNORD_Q);
    group_step(v0, blk, a[0], ia[0], b[0]);
    group_step(v1, blk, a[1], ia[1], b[1]);
    group_step(v2, blk, a[2], ia[2], b[2]);
    group_step(v3, blk, a[3], ia[3], b[3]);
  }
  const __m512i blk = _mm512_set1_epi32(static_cast<int32_t>(j / kGroups));
  for (int q = 0; j < n; j += 16, ++q) {  // tail: group (j % 64) as in the main loop
    const __mmask16 live = n - j >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << (n - j)) - 1);
    const __m512 v = _mm512_mask_loadu_ps(ninf, live, x + j);
    nan |= _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
    group_step(v, blk, a[q], ia[q], b[q]);
  }
  for (int q = 0; q < 4; ++q) {
    _mm512_storeu_ps(top1 + 16 * q, a[q]);
    _mm512_storeu_ps(top2 + 16 * q, b[q]);
    _mm512_storeu_si512(block + 16 * q, ia[q]);
  }
  return nan != 0;
}
#endif

#if defined(__x86_64__) && defined(__GNUC__)
// One vector of 8 groups (AVX2): as group_step.
__attribute__((target("avx2"), always_inline)) inline void group_step_avx2(__m256 v, __m256i blk, __m256& a,
                                                                          __m256i& ia, __m256& b) {
  const __m256 gt = _mm256_cmp_ps(v, a, _CMP_GT_OQ);
  b = _mm256_max_ps(b, _mm256_min_ps(a, v));
  a = _mm256_blendv_ps(a, v, gt);
  ia = _mm256_blendv_epi8(ia, blk, _mm256_castps_si256(gt));
}

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
  alignas(32) float tail[kGroups];
  for (int64_t j = 0; j < n; j += kGroups) {
    const float* xs = x + j;
    if (n - j < kGroups) {  // the last, partial block: pad with -inf (changes nothing)
      for (int64_t g = 0; g < kGroups; ++g) tail[g] = j + g < n ? x[j + g] : -std::numeric_limits<float>::infinity();
      xs = tail;
    }
    const __m256i blk = _mm256_set1_epi32(static_cast<int32_t>(j / kGroups));
    for (int q = 0; q < 8; ++q) {
      const __m256 v = _mm256_loadu_ps(xs + 8 * q);
      nan = _mm256_or_ps(nan, _mm256_cmp_ps(v, v, _CMP_UNORD_Q));
      group_step_avx2(v, blk, a[q], ia[q], b[q]);
    }
  }
  for (int q = 0; q < 8; ++q) {
    _mm256_storeu_ps(top1 + 8 * q, a[q]);
    _mm256_storeu_ps(top2 + 8 * q, b[q]);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(block + 8 * q), ia[q]);
  }
  return _mm256_movemask_ps(nan) != 0;
}
#endif

const GroupScanFn group_scan =
    pick<GroupScanFn>(MLM_X86(group_scan_avx512), MLM_X86(group_scan_avx2), group_scan_scalar);

// From group_scan's output over x[0, n): t = the k-th largest group maximum (1 <= k <=
// kGroups), a lower bound of the row's k-th largest value (the group maxima are distinct
// elements of the row), written to *t_out. Writes to out the indices of every element >= t
// (>= k of them, in no particular order) and returns their count: a group whose second value
// is < t contributes its maximum (or nothing), index known; the few groups whose second value
// reaches t (they may hold several of the top k) are scanned (stride kGroups, the row is in
// L1). Returns -1 when more than cap would be written (ties; out is then garbage), -2 when
// rescanning the flagged groups would cost more than one linear pass over the row (several
// groups, or a row past L1 where each strided element is a cache line): the caller then
// collects the elements >= t with collect_above.
using GroupCandidatesFn = int64_t (*)(const float*, int64_t, const float*, const int32_t*, const float*, int64_t,
                                      uint32_t*, int64_t, float*);

constexpr int64_t kRescanMaxRow = 8192;  // floats: rows up to 32 KiB stay in L1

// Appends the indices of the elements >= t of group g of x[0, n) to out[count, ...);
// -1 if that would pass cap.
inline int64_t scan_group(const float* x, int64_t n, int64_t g, float t, uint32_t* out, int64_t count, int64_t cap) {
  if (count + (n - g + kGroups - 1) / kGroups > cap) return -1;
  for (int64_t j = g; j < n; j += kGroups) {
    out[count] = static_cast<uint32_t>(j);
    count += x[j] >= t;
  }
  return count;
}

// Indices j of x[0, n) with x[j] >= lb (NaN-free x), written to out[0, cap); their count, or
// -1 when more than cap. The collected elements are a prefix of the row's rank order.
using CollectAboveFn = int64_t (*)(const float*, int64_t, float, uint32_t*, int64_t);

int64_t collect_above_scalar(const float* x, int64_t n, float lb, uint32_t* out, int64_t cap) {
  int64_t count = 0;
  for (int64_t j = 0; j < n; ++j) {
    if (x[j] >= lb) {
      if (count == cap) return -1;
      out[count++] = static_cast<uint32_t>(j);
    }
  }
  return count;
}

#if defined(__x86_64__) && defined(__GNUC__)
__attribute__((target("avx512f,popcnt"))) int64_t collect_above_avx512(const float* x, int64_t n, float lb,
                                                                        uint32_t* out, int64_t cap) {
  const __m512 t = _mm512_set1_ps(lb);
  int64_t count = 0;
  int64_t j = 0;
  for (; j + 64 <= n; j += 64) {  // few candidates per row: test 64 elements per branch
    const uint64_t m0 = _mm512_cmp_ps_mask(_mm512_loadu_ps(x + j), t, _CMP_GE_OQ);
    const uint64_t m1 = _mm512_cmp_ps_mask(_mm512_loadu_ps(x + j + 16), t, _CMP_GE_OQ);
    const uint64_t m2 = _mm512_cmp_ps_mask(_mm512_loadu_ps(x + j + 32), t, _CMP_GE_OQ);
    const uint64_t m3 = _mm512_cmp_ps_mask(_mm512_loadu_ps(x + j + 48), t, _CMP_GE_OQ);
    uint64_t m = m0 | (m1 << 16) | (m2 << 32) | (m3 << 48);
    if (m == 0) continue;
    if (count + __builtin_popcountll(m) > cap) return -1;
    for (; m; m &= m - 1) out[count++] = static_cast<uint32_t>(j + __builtin_ctzll(m));
  }
  for (; j < n; j += 16) {
    const __mmask16 live = n - j >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << (n - j)) - 1);
    uint32_t m = _mm512_mask_cmp_ps_mask(live, _mm512_maskz_loadu_ps(live, x + j), t, _CMP_GE_OQ);
    if (count + __builtin_popcount(m) > cap) return -1;
    for (; m; m &= m - 1) out[count++] = static_cast<uint32_t>(j + __builtin_ctz(m));
  }
  return count;
}
#endif

const CollectAboveFn collect_above = pick<CollectAboveFn>(MLM_X86(collect_above_avx512), nullptr, collect_above_scalar);

// Whether f flagged groups are rescanned group by group (else one linear pass).
inline bool rescan_groups(int64_t f, int64_t n) { return f <= (n <= kRescanMaxRow ? 4 : 1); }

// The k-th largest (counting repeats) of v[0, 16): the smallest value with fewer than k values
// strictly above it, by counting (fixed trip counts, the loop order the compiler vectorises).
inline float kth_of_16(const float* v, int64_t k) {
  int32_t above[16] = {};
  for (int64_t j = 0; j < 16; ++j) {
    const float vj = v[j];
    for (int64_t i = 0; i < 16; ++i) above[i] += vj > v[i] ? 1 : 0;
  }
  float t = std::numeric_limits<float>::infinity();
  for (int64_t i = 0; i < 16; ++i) t = (above[i] < k && v[i] < t) ? v[i] : t;
  return t;
}

// The k-th largest of the kGroups group maxima (k <= 16) in two steps, shared by the generic
// and AVX2 versions (which differ only in how they gather the pool):
//   floor = the k-th largest of the 16 maxima of 4 groups each (k group maxima are >= it);
//   the answer = the k-th largest of the pool of group maxima >= floor (usually about k).
MLM_CLONES float group_max_floor(const float* top1, int64_t k) {
  float lm[16];
  for (int64_t l = 0; l < 16; ++l) {
    const float a = top1[l] > top1[l + 16] ? top1[l] : top1[l + 16];
    const float b = top1[l + 32] > top1[l + 48] ? top1[l + 32] : top1[l + 48];
    lm[l] = a > b ? a : b;
  }
  return kth_of_16(lm, k);
}

// The k-th largest of pool[0, m) (k <= m <= kGroups); pool has room for 16 values.
MLM_CLONES float kth_of_pool(float* pool, int64_t m, int64_t k) {
  if (m <= 16) {
    for (int64_t i = m; i < 16; ++i) pool[i] = -std::numeric_limits<float>::infinity();
    return kth_of_16(pool, k);
  }
  float t = std::numeric_limits<float>::infinity();  // k > 8 or ties: 17..64 values
  for (int64_t i = 0; i < m; ++i) {
    int32_t above = 0;
    for (int64_t j = 0; j < m; ++j) above += pool[j] > pool[i] ? 1 : 0;
    t = (above < k && pool[i] < t) ? pool[i] : t;
  }
  return t;
}

inline float kth_group_max(const float* top1, int64_t k) {
  const float floor = group_max_floor(top1, k);
  float pool[kGroups];
  int64_t m = 0;
  for (int64_t g = 0; g < kGroups; ++g) {
    pool[m] = top1[g];
    m += top1[g] >= floor;
  }
  return kth_of_pool(pool, m, k);
}

int64_t group_candidates_scalar(const float* x, int64_t n, const float* top1, const int32_t* block, const float* top2,
                                int64_t k, uint32_t* out, int64_t cap, float* t_out) {
  float t;
  if (k <= 16) {
    t = kth_group_max(top1, k);
  } else {
    float pool[kGroups];
    std::copy(top1, top1 + kGroups, pool);
    std::nth_element(pool, pool + (k - 1), pool + kGroups, std::greater<float>());
    t = pool[k - 1];
  }
  *t_out = t;
  int64_t flagged = 0;
  for (int64_t g = 0; g < kGroups; ++g) flagged += top2[g] >= t;
  if (!rescan_groups(flagged, n)) return -2;
  if (cap < kGroups) return -1;
  int64_t count = 0;
  for (int64_t g = 0; g < kGroups; ++g) {  // unflagged groups: their maximum, if >= t
    out[count] = static_cast<uint32_t>(block[g] * kGroups + g);
    count += (top1[g] >= t) & (top2[g] < t);
  }
  for (int64_t g = 0; g < kGroups && flagged > 0 && count >= 0; ++g) {
    if (top2[g] >= t) count = scan_group(x, n, g, t, out, count, cap);
  }
  return count;
}

#if defined(__x86_64__) && defined(__GNUC__)
// The k-th largest of the 16 lanes of v (1 <= k <= 16): the smallest lane with fewer than k
// lanes strictly above it; each lane's count from 15 lane rotations.
__attribute__((target("avx512f"), always_inline)) inline float kth_largest16(__m512 v, int64_t k) {
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

// k <= 16: floor = the k-th largest of the 16 lane maxima (k group maxima are >= it); only
// group maxima >= floor (usually about k) can be t, their k-th largest (counted in vector
// compares). Larger k: the scalar version.
__attribute__((target("avx512f,popcnt"))) int64_t group_candidates_avx512(const float* x, int64_t n,
                                                                          const float* top1, const int32_t* block,
                                                                          const float* top2, int64_t k, uint32_t* out,
                                                                          int64_t cap, float* t_out) {
  if (k > 16 || cap < kGroups) return group_candidates_scalar(x, n, top1, block, top2, k, out, cap, t_out);
  const __m512 a[4] = {_mm512_loadu_ps(top1), _mm512_loadu_ps(top1 + 16), _mm512_loadu_ps(top1 + 32),
                       _mm512_loadu_ps(top1 + 48)};
  const __m512 floor = _mm512_set1_ps(
      kth_largest16(_mm512_max_ps(_mm512_max_ps(a[0], a[1]), _mm512_max_ps(a[2], a[3])), k));
  alignas(64) float pool[4 * 16 + 16];  // the group maxima >= floor, m of them
  int m = 0;
  for (int q = 0; q < 4; ++q) {
    const __mmask16 keep = _mm512_cmp_ps_mask(a[q], floor, _CMP_GE_OQ);
    _mm512_storeu_ps(pool + m, _mm512_maskz_compress_ps(keep, a[q]));
    m += __builtin_popcount(keep);
  }
  const __m512 ninf = _mm512_set1_ps(-std::numeric_limits<float>::infinity());
  float t;
  if (m <= 16) {
    t = kth_largest16(_mm512_mask_loadu_ps(ninf, __mmask16((1u << m) - 1), pool), k);
  } else {  // k > 8 or ties: count, for each pool value, the pool values above it
    __m512 v[4];
    const int nv = (m + 15) / 16;
    for (int q = 0; q < nv; ++q) {
      const int left = m - 16 * q;
      v[q] = _mm512_mask_loadu_ps(ninf, __mmask16(left >= 16 ? 0xFFFF : (1u << left) - 1), pool + 16 * q);
    }
    t = std::numeric_limits<float>::infinity();
    for (int i = 0; i < m; ++i) {
      const __m512 pv = _mm512_set1_ps(pool[i]);
      int above = 0;
      for (int q = 0; q < nv; ++q) above += __builtin_popcount(_mm512_cmp_ps_mask(v[q], pv, _CMP_GT_OQ));
      t = above < k ? std::min(t, pool[i]) : t;
    }
  }
  *t_out = t;
  const __m512 tv = _mm512_set1_ps(t);
  const __m512i iota = _mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0);
  int64_t count = 0;
  uint64_t flagged = 0;
  for (int q = 0; q < 4; ++q) {
    const __mmask16 second = _mm512_cmp_ps_mask(_mm512_loadu_ps(top2 + 16 * q), tv, _CMP_GE_OQ);
    const __mmask16 in = _mm512_mask_cmp_ps_mask(__mmask16(~second), a[q], tv, _CMP_GE_OQ);
    const __m512i idx = _mm512_add_epi32(_mm512_slli_epi32(_mm512_loadu_si512(block + 16 * q), 6),
                                         _mm512_add_epi32(iota, _mm512_set1_epi32(16 * q)));
    _mm512_mask_compressstoreu_epi32(out + count, in, idx);
    count += __builtin_popcount(in);
    flagged |= uint64_t{second} << (16 * q);
  }
  if (!rescan_groups(__builtin_popcountll(flagged), n)) return -2;
  for (; flagged && count >= 0; flagged &= flagged - 1) {
    count = scan_group(x, n, __builtin_ctzll(flagged), t, out, count, cap);
  }
  return count;
}
#endif

#if defined(__x86_64__) && defined(__GNUC__)
// 64 group flags from 8 AVX2 compares of v[0, 64) against t (predicate P).
template <int P>
__attribute__((target("avx2"), always_inline)) inline uint64_t mask64_avx2(const float* v, __m256 t) {
  uint64_t m = 0;
  for (int q = 0; q < 8; ++q) {
    m |= uint64_t(uint32_t(_mm256_movemask_ps(_mm256_cmp_ps(_mm256_loadu_ps(v + 8 * q), t, P)))) << (8 * q);
  }
  return m;
}

// As group_candidates_avx512, with AVX2 compares and bit masks; k <= 16.
__attribute__((target("avx2,popcnt"))) int64_t group_candidates_avx2(const float* x, int64_t n, const float* top1,
                                                                      const int32_t* block, const float* top2,
                                                                      int64_t k, uint32_t* out, int64_t cap,
                                                                      float* t_out) {
  if (k > 16 || cap < kGroups) return group_candidates_scalar(x, n, top1, block, top2, k, out, cap, t_out);
  uint64_t keep = mask64_avx2<_CMP_GE_OQ>(top1, _mm256_set1_ps(group_max_floor(top1, k)));
  float pool[kGroups];
  int m = 0;
  for (; keep; keep &= keep - 1) pool[m++] = top1[__builtin_ctzll(keep)];
  const float t = kth_of_pool(pool, m, k);
  *t_out = t;
  const __m256 tv = _mm256_set1_ps(t);
  uint64_t flagged = mask64_avx2<_CMP_GE_OQ>(top2, tv);
  if (!rescan_groups(__builtin_popcountll(flagged), n)) return -2;
  int64_t count = 0;
  for (uint64_t in = mask64_avx2<_CMP_GE_OQ>(top1, tv) & ~flagged; in; in &= in - 1) {
    const int g = __builtin_ctzll(in);
    out[count++] = static_cast<uint32_t>(block[g] * kGroups + g);
  }
  for (; flagged && count >= 0; flagged &= flagged - 1) {
    count = scan_group(x, n, __builtin_ctzll(flagged), t, out, count, cap);
  }
  return count;
}
#endif

const GroupCandidatesFn group_candidates =
    pick<GroupCandidatesFn>(MLM_X86(group_candidates_avx512), MLM_X86(group_candidates_avx2), group_candidates_scalar);

constexpr int64_t kPrefetchBytes = 16384;

inline void prefetch_row(const float* x, int64_t n) {
#if defined(__GNUC__)
  for (int64_t j = 0; j < n; j += 16) __builtin_prefetch(x + j, 0, 2);
#endif
}

constexpr int64_t kShortRow = 128;

// Top-k of a short row (n <= kShortRow) as rank_keys sorted descending, written to out;
// false when the row holds a NaN (the caller takes the general path).
using ShortRowTopKFn = bool (*)(const float*, int64_t, int64_t, uint64_t*);

// Sorts keys[0, m) (distinct: the index is part of a rank_key) descending by counting, for
// each key, the keys above it: no data-dependent branches; writes the first k to out.
MLM_CLONES void rank_by_counting(const uint64_t* keys, int64_t m, int64_t k, uint64_t* out) {
  uint64_t sorted[kShortRow];
  for (int64_t i = 0; i < m; ++i) {
    int64_t rank = 0;
    for (int64_t j = 0; j < m; ++j) rank += keys[j] > keys[i];
    sorted[rank] = keys[i];
  }
  std::copy(sorted, sorted + k, out);
}

// rank_by_counting for m <= kRankFew keys with AVX-512: up to four vectors of keys (zero-padded:
// 0 is below every rank_key), each key's rank from one unsigned compare per vector.
constexpr int64_t kRankFew = 32;
using RankFewFn = void (*)(const uint64_t*, int64_t, int64_t, uint64_t*);

#if defined(__x86_64__) && defined(__GNUC__)
__attribute__((target("avx512f,popcnt"))) void rank_few_avx512(const uint64_t* keys, int64_t m, int64_t k,
                                                                uint64_t* out) {
  __m512i v[kRankFew / 8];
  for (int q = 0; q < kRankFew / 8; ++q) {
    const int64_t left = m - 8 * q;
    v[q] = _mm512_maskz_loadu_epi64(__mmask8(left >= 8 ? 0xFF : left > 0 ? (1u << left) - 1 : 0), keys + 8 * q);
  }
  const int nv = static_cast<int>((m + 7) / 8);
  uint64_t sorted[kRankFew];
  for (int64_t i = 0; i < m; ++i) {
    const __m512i key = _mm512_set1_epi64(static_cast<long long>(keys[i]));
    int rank = 0;
    for (int q = 0; q < nv; ++q) rank += __builtin_popcount(_mm512_cmpgt_epu64_mask(v[q], key));
    sorted[rank] = keys[i];
  }
  std::copy(sorted, sorted + k, out);
}
#endif

const RankFewFn rank_few = pick<RankFewFn>(MLM_X86(rank_few_avx512), nullptr, rank_by_counting);

// Rows of <= 16 (or k > 16): every key ranked by counting. Longer rows: the k-th largest of
// 16 lane maxima bounds the k-th value from below; only the elements >= it are ranked.
MLM_CLONES bool short_row_topk_scalar(const float* x, int64_t n, int64_t k, uint64_t* out) {
  if (k == 1) {  // top-1: the largest key
    uint64_t best = 0;
    for (int64_t j = 0; j < n; ++j) {
      const uint64_t key = rank_key(x[j], static_cast<uint32_t>(j));
      best = key > best ? key : best;
    }
    out[0] = best;
    return true;
  }
  uint64_t keys[kShortRow];
  int32_t nan = 0;
  for (int64_t j = 0; j < n; ++j) nan |= x[j] != x[j];
  if (n <= 16 || k > 16 || nan) {
    for (int64_t j = 0; j < n; ++j) keys[j] = rank_key(x[j], static_cast<uint32_t>(j));
    rank_by_counting(keys, n, k, out);
    return true;
  }
  float lm[16];
  for (int64_t l = 0; l < 16; ++l) lm[l] = x[l];
  for (int64_t j = 16; j < n; ++j) lm[j % 16] = x[j] > lm[j % 16] ? x[j] : lm[j % 16];
  const float t = kth_of_16(lm, k);
  uint32_t idx[kShortRow];
  int64_t m = 0;
  for (int64_t j = 0; j < n; ++j) {
    idx[m] = static_cast<uint32_t>(j);
    m += x[j] >= t;
  }
  for (int64_t i = 0; i < m; ++i) keys[i] = rank_key(x[idx[i]], idx[i]);
  rank_by_counting(keys, m, k, out);
  return true;
}

#if defined(__x86_64__) && defined(__GNUC__)
// k <= 16: t = the k-th largest of the 16 lane maxima bounds the row's k-th value from below;
// only the elements >= t (about k) are keyed and ranked.
__attribute__((target("avx512f,popcnt"))) bool short_row_topk_avx512(const float* x, int64_t n, int64_t k,
                                                                      uint64_t* out) {
  if (k > 16 || k == 1 || n <= 16) return short_row_topk_scalar(x, n, k, out);
  const __m512 ninf = _mm512_set1_ps(-std::numeric_limits<float>::infinity());
  __m512 v[kShortRow / 16];
  __m512 lm = ninf;
  __mmask16 nan = 0;
  const int64_t nv = (n + 15) / 16;
  for (int64_t q = 0; q < nv; ++q) {
    const int64_t left = n - 16 * q;
    const __mmask16 live = left >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << left) - 1);
    v[q] = _mm512_mask_loadu_ps(ninf, live, x + 16 * q);
    nan |= _mm512_cmp_ps_mask(v[q], v[q], _CMP_UNORD_Q);
    lm = _mm512_max_ps(lm, v[q]);
  }
  if (nan) return false;
  const __m512 t = _mm512_set1_ps(kth_largest16(lm, k));
  alignas(64) int32_t idx[kShortRow + 16];
  int64_t m = 0;
  const __m512i iota = _mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0);
  for (int64_t q = 0; q < nv; ++q) {
    const int64_t left = n - 16 * q;
    const __mmask16 live = left >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << left) - 1);
    const __mmask16 in = _mm512_mask_cmp_ps_mask(live, v[q], t, _CMP_GE_OQ);
    _mm512_storeu_si512(idx + m, _mm512_maskz_compress_epi32(in, _mm512_add_epi32(iota, _mm512_set1_epi32(16 * q))));
    m += __builtin_popcount(in);
  }
  if (m < k) return false;  // cannot happen (k lane maxima are >= t); never rank too few
  uint64_t keys[kShortRow];
  for (int64_t i = 0; i < m; ++i) keys[i] = rank_key(x[idx[i]], static_cast<uint32_t>(idx[i]));
  if (m <= kRankFew) {
    rank_few_avx512(keys, m, k, out);
  } else {
    rank_by_counting(keys, m, k, out);
  }
  return true;
}
#endif

const ShortRowTopKFn short_row_topk =
    pick<ShortRowTopKFn>(MLM_X86(short_row_topk_avx512), nullptr, short_row_topk_scalar);

// Top-k of x[0, n) as rank_keys sorted descending.
//   n <= kShortRow: short_row_topk.
//   prefiltered (NaN-free rows of > kShortRow; k <= 16, or k <= 128 on rows that fit L1): a
//     bound from per-group top-2 values, then the few elements above it; see below.
//   otherwise, k <= kSmallK: the k best are kept sorted; a candidate is placed by insertion, so
//     the threshold is always exact (few candidates pass the filter).
//   k > kSmallK and k >= n/16: rank_keys of the whole row, nth_element, sort the first k.
//   larger k: candidates are appended to a buffer of capacity 2k; a full buffer is cut back
//     to its k best with nth_element, which raises the threshold. Amortised O(1) per candidate.
class TopKSelector {
 public:
  static constexpr int64_t kSmallK = 16;

  explicit TopKSelector(int64_t k)
      : k_(k), capacity_(std::max<int64_t>(2 * k, k + 64)), max_candidates_(std::max<int64_t>(256, 4 * k)) {
    keys_.reserve(capacity_);
  }
  // keys_ may grow to the row length on the select-over-all path.

  // next: a row to fetch into cache while this one's candidates are ranked (or nullptr).
  void run(const float* x, int64_t n, uint64_t* out, const float* next = nullptr) {
    if (n <= kShortRow && short_row_topk(x, n, k_, out)) return;  // C = 10 ... 128
    if (n > kShortRow && prefiltered(x, n, out, next)) return;
    keys_.clear();
    if (k_ > kSmallK && 16 * k_ >= n) {  // k is a sizeable part of the row: select over all keys
      for (int64_t j = 0; j < n; ++j) keys_.push_back(rank_key(x[j], static_cast<uint32_t>(j)));
      select_keys(out);
      return;
    }
    const int64_t first = std::min(n, k_);
    for (int64_t j = 0; j < first; ++j) keys_.push_back(rank_key(x[j], static_cast<uint32_t>(j)));
    std::sort(keys_.begin(), keys_.end(), std::greater<uint64_t>());
    set_threshold(keys_.back());
    const bool small = k_ <= kSmallK;
    for (int64_t j = first; j < n && !saturated_; ++j) {
      j = next_candidate(x, j, n, threshold_);
      if (j >= n) break;
      const uint64_t key = rank_key(x[j], static_cast<uint32_t>(j));
      if (small) {
        int64_t p = k_ - 1;  // drop the weakest, shift the rest down to make room
        for (; p > 0 && keys_[p - 1] < key; --p) keys_[p] = keys_[p - 1];
        keys_[p] = key;
        set_threshold(keys_[k_ - 1]);
      } else {
        keys_.push_back(key);
        if (static_cast<int64_t>(keys_.size()) == capacity_) shrink();
      }
    }
    if (!small) {
      std::nth_element(keys_.begin(), keys_.begin() + (k_ - 1), keys_.end(), std::greater<uint64_t>());
      std::sort(keys_.begin(), keys_.begin() + k_, std::greater<uint64_t>());
    }
    std::copy(keys_.begin(), keys_.begin() + k_, out);
  }

 private:
  void shrink() {
    std::nth_element(keys_.begin(), keys_.begin() + (k_ - 1), keys_.end(), std::greater<uint64_t>());
    keys_.resize(k_);
    set_threshold(*std::min_element(keys_.begin(), keys_.end()));
  }
  // Later elements (higher index) enter only with an order_key strictly above the weakest kept.
  void set_threshold(uint64_t weakest) {
    const uint32_t key = static_cast<uint32_t>(weakest >> 32);
    saturated_ = key == 0xFFFFFFFFu;  // k NaNs kept: nothing later can enter
    threshold_ = key_value(key);
  }

  // The fast path on NaN-free rows of > kShortRow (k <= 16; k <= 128 on rows that fit L1, beyond
  // which the general path measured faster): group_scan reads the row once.
  //   k <= 64: t, the k-th largest group maximum, is a lower bound of the row's k-th largest
  //     value (the group maxima are k distinct elements). When every group's second value is
  //     < t, the elements >= t are exactly the group maxima >= t (a handful, indices known): no
  //     second pass. Else (a group may hold two of the top k; ~15 % of rows at k = 5) the
  //     flagged groups, or the whole row (now in L1), are rescanned for elements >= t.
  //   larger k (or k > 16 when that finds too many): t = the k-th largest of all 128 group
  //     top-2 values, also a lower bound; one pass over the row (in L1) collects the elements
  //     >= t, typically 1.5-2.5 k of them.
  bool prefiltered(const float* x, int64_t n, uint64_t* out, const float* next) {
    if (k_ > 2 * kGroups || (k_ > kSmallK && n > kRescanMaxRow)) return false;
    float top[2 * kGroups];
    float* top1 = top;
    float* top2 = top + kGroups;
    int32_t block[kGroups];
    if (group_scan(x, n, top1, block, top2)) return false;  // NaN present: the general path
    // the first half of the next row: the hardware prefetcher streams the rest (measured: all of
    // it stalls on full fill buffers, none leaves the next scan waiting)
    if (next != nullptr) prefetch_row(next, n / 2);
    candidates_.resize(max_candidates_);
    float t = std::numeric_limits<float>::quiet_NaN();
    int64_t count = -1;
    if (k_ <= kGroups) {
      count = group_candidates(x, n, top1, block, top2, k_, candidates_.data(), max_candidates_, &t);
      if (count == -2) count = collect_above(x, n, t, candidates_.data(), max_candidates_);
    }
    if (count < k_ && k_ > kSmallK) {
      std::nth_element(top, top + (k_ - 1), top + 2 * kGroups, std::greater<float>());
      t = top[k_ - 1];
      count = collect_above(x, n, t, candidates_.data(), max_candidates_);
    }
    if (!std::isfinite(t)) return false;  // +-inf among the top: the general path
    if (count < k_) return false;  // ties past the cap: the general path
    keys_.clear();
    for (int64_t i = 0; i < count; ++i) keys_.push_back(rank_key(x[candidates_[i]], candidates_[i]));
    if (count <= kRankFew) {  // the usual case: a handful of keys, ranked without branches
      rank_few(keys_.data(), count, k_, out);
    } else {
      select_keys(out);
    }
    return true;
  }

  // Top-k of keys_ (>= k entries, a rank-order prefix of the row) sorted into out.
  void select_keys(uint64_t* out) {
    std::nth_element(keys_.begin(), keys_.begin() + (k_ - 1), keys_.end(), std::greater<uint64_t>());
    std::sort(keys_.begin(), keys_.begin() + k_, std::greater<uint64_t>());
    std::copy(keys_.begin(), keys_.begin() + k_, out);
  }

  std::vector<uint32_t> candidates_;

  int64_t k_, capacity_, max_candidates_;
  std::vector<uint64_t> keys_;
  float threshold_ = 0.f;
  bool saturated_ = false;
};

template <typename T>
inline float to_float(T v) {
  return static_cast<float>(v);
}

template <typename scalar_t, typename label_t>
void topk_stats_rows(const at::Tensor& logits, int64_t k, const int64_t* subset, int64_t c, const int64_t* target,
                     const int64_t* ranges, const label_t* labels, int64_t num_labels, bool with_softmax,
                     float* topk_logits, int64_t* topk_indices, bool* hits, float* row_stats, int64_t* target_rank) {
  const int64_t n = logits.size(0);
  const int64_t rs = logits.stride(0), cs = logits.stride(1);
  const scalar_t* base = logits.const_data_ptr<scalar_t>();
  const bool direct = std::is_same<scalar_t, float>::value && cs == 1 && subset == nullptr;
  const int64_t grain = std::max<int64_t>(1, 65536 / std::max<int64_t>(c, 1));
  // Rows up to 16 KiB, read in place: row i + 1 is prefetched while row i is finished (see
  // TopKSelector::prefiltered and softmax_sums_avx512), so its read does not wait on L3/DRAM.
  const bool prefetch_next = direct && c * 4 <= kPrefetchBytes;

  at::parallel_for(0, n, grain, [&](int64_t begin, int64_t end) {
    std::vector<float> buffer(direct ? 0 : c);
    std::vector<uint64_t> keys(k);
    TopKSelector selector(k);
    for (int64_t i = begin; i < end; ++i) {
      const scalar_t* src = base + i * rs;
      const float* x;
      if (direct) {
        x = reinterpret_cast<const float*>(src);
      } else {
        if (subset != nullptr) {
          for (int64_t j = 0; j < c; ++j) buffer[j] = to_float(src[subset[j] * cs]);
        } else if (cs == 1) {
          for (int64_t j = 0; j < c; ++j) buffer[j] = to_float(src[j]);
        } else {
          for (int64_t j = 0; j < c; ++j) buffer[j] = to_float(src[j * cs]);
        }
        x = buffer.data();
      }

      // the next row is fetched while this one is finished: during the softmax pass if there
      // is one (spread over it), else while the top-k candidates are ranked
      const float* next = prefetch_next && i + 1 < end ? x + rs : nullptr;
      selector.run(x, c, keys.data(), with_softmax ? nullptr : next);
      float* tl = topk_logits + i * k;
      int64_t* ti = topk_indices + i * k;
      for (int64_t j = 0; j < k; ++j) {
        ti[j] = rank_key_index(keys[j]);
        tl[j] = x[ti[j]];
      }

      float* st = row_stats + i * kNumStats;
      const float top = tl[0];
      const bool nonfinite = !std::isfinite(top);
      const float nan = std::numeric_limits<float>::quiet_NaN();
      st[kStatMaxLogit] = top;
      st[kStatNonFinite] = nonfinite ? 1.f : 0.f;
      st[kStatLogSumExp] = st[kStatEntropy] = st[kStatSumP2] = st[kStatLogNormalizer] = nan;
      if (with_softmax && !nonfinite) {
        const SoftmaxSums sums = softmax_sums(x, c, top, next);
        const double log_s = std::log(sums.s);
        st[kStatLogSumExp] = static_cast<float>(top + log_s);
        st[kStatLogNormalizer] = static_cast<float>(log_s);
        st[kStatEntropy] = static_cast<float>(log_s - sums.u / sums.s);
        st[kStatSumP2] = static_cast<float>(sums.q / (sums.s * sums.s));
      }
      st[kStatTargetLogit] = nan;
      if (target != nullptr) {
        const int64_t t = target[i];
        if (t >= 0 && t < c) {
          st[kStatTargetLogit] = x[t];
          target_rank[i] = rank_of(x, c, t);
        } else {
          target_rank[i] = -1;
        }
      }
      if (hits != nullptr) {
        const int64_t b = std::min(std::max<int64_t>(ranges[2 * i], 0), num_labels);
        const int64_t e = std::min(std::max<int64_t>(ranges[2 * i + 1], b), num_labels);
        bool* h = hits + i * k;  // label-major: the inner loop has a fixed trip count (no mispredicts)
        std::fill(h, h + k, false);
        for (int64_t l = b; l < e; ++l) {
          const int64_t label = static_cast<int64_t>(labels[l]);
          for (int64_t j = 0; j < k; ++j) h[j] |= ti[j] == label;
        }
      }
    }
  });
}

}  // namespace

std::string cpu_isa() { return kIsa == Isa::kAvx512 ? "avx512" : kIsa == Isa::kAvx2 ? "avx2" : "scalar"; }

TopKStatsResult topk_stats_cpu(const at::Tensor& logits, int64_t k, const std::optional<at::Tensor>& target,
                               const std::optional<at::Tensor>& label_ranges,
                               const std::optional<at::Tensor>& labels,
                               const std::optional<at::Tensor>& class_subset, bool with_softmax) {
  check_topk_stats_inputs(logits, k, target, label_ranges, labels, class_subset);
  TORCH_CHECK(logits.device().is_cpu(), "mlmetrics: topk_stats_cpu needs CPU tensors");
  const int64_t n = logits.size(0);
  at::Tensor subset;
  int64_t c = logits.size(1);
  if (class_subset.has_value()) {
    subset = class_subset->contiguous();
    c = subset.numel();
    auto [lo, hi] = at::aminmax(subset);
    TORCH_CHECK(lo.item<int64_t>() >= 0 && hi.item<int64_t>() < logits.size(1),
                "mlmetrics: class_subset entries must be in [0, C=", logits.size(1), ")");
  }
  auto f32 = logits.options().dtype(at::kFloat);
  auto i64 = logits.options().dtype(at::kLong);
  at::Tensor topk_logits = at::empty({n, k}, f32);
  at::Tensor topk_indices = at::empty({n, k}, i64);
  at::Tensor hits = at::empty({n, label_ranges.has_value() ? k : 0}, logits.options().dtype(at::kBool));
  at::Tensor row_stats = at::empty({n, kNumStats}, f32);
  at::Tensor target_rank = at::empty({target.has_value() ? n : 0}, i64);
  if (n == 0) return {topk_logits, topk_indices, hits, row_stats, target_rank};

  at::Tensor tgt = target.has_value() ? target->contiguous() : at::Tensor();
  at::Tensor rng = label_ranges.has_value() ? label_ranges->contiguous() : at::Tensor();
  at::Tensor lab = labels.has_value() ? labels->contiguous() : at::Tensor();

  auto run = [&](auto scalar_tag, auto label_tag) {
    using scalar_t = decltype(scalar_tag);
    using label_t = decltype(label_tag);
    topk_stats_rows<scalar_t, label_t>(
        logits, k, subset.defined() ? subset.const_data_ptr<int64_t>() : nullptr, c,
        tgt.defined() ? tgt.const_data_ptr<int64_t>() : nullptr, rng.defined() ? rng.const_data_ptr<int64_t>() : nullptr,
        lab.defined() ? lab.const_data_ptr<label_t>() : nullptr, lab.defined() ? lab.numel() : 0, with_softmax,
        topk_logits.mutable_data_ptr<float>(), topk_indices.mutable_data_ptr<int64_t>(),
        rng.defined() ? hits.mutable_data_ptr<bool>() : nullptr, row_stats.mutable_data_ptr<float>(),
        tgt.defined() ? target_rank.mutable_data_ptr<int64_t>() : nullptr);
  };
  auto by_labels = [&](auto scalar_tag) {
    if (lab.defined() && lab.scalar_type() == at::kLong) {
      run(scalar_tag, int64_t{});
    } else {
      run(scalar_tag, int32_t{});
    }
  };
  switch (logits.scalar_type()) {
    case at::kFloat: by_labels(float{}); break;
    case at::kHalf: by_labels(c10::Half{}); break;
    case at::kBFloat16: by_labels(c10::BFloat16{}); break;
    default: TORCH_CHECK(false, "mlmetrics: unsupported dtype ", logits.scalar_type());
  }
  return {topk_logits, topk_indices, hits, row_stats, target_rank};
}

}  // namespace mlmetrics
