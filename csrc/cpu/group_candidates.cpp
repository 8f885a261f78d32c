// group_candidates and collect_above (kernels.h): from group_scan's per-group top-2, the
// elements of a row that can be in its top k.
//
// t = the k-th largest group maximum (or a floor of it, below) is a lower bound of the row's k-th
// value (the group maxima are distinct elements). A group whose second value is < t contributes its maximum (or nothing),
// index known; the few groups whose second value reaches t ("flagged": they may hold several of
// the top k) are rescanned (stride kGroups; the row is in L1), or, when that would cost more
// than a linear pass (several groups, or a row past L1 where each strided element is a cache
// line), the caller collects the elements >= t with collect_above.
//
// The k-th largest group maximum (k <= 16) in two steps, shared by every version:
//   floor = the k-th largest of the 16 maxima of 4 groups each (k group maxima are >= it);
//   t = the k-th largest of the pool of group maxima >= floor (usually about k of them); when the
//   pool holds at most k + kPoolSlack values, t = floor (also a lower bound): ranking those few
//   more candidates costs less than the second k-th (measured: benchmarks/cpu_phases.cpp).
#include <algorithm>
#include <functional>
#include <limits>

#include "kernels.h"

namespace mlmetrics {
namespace cpu {
namespace {

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

constexpr int64_t kPoolSlack = 2;

// Whether f flagged groups are rescanned group by group (else one linear pass).
inline bool rescan_groups(int64_t f, int64_t n) { return f <= (n <= kRescanMaxRow ? 4 : 1); }

MLM_CLONES float group_max_floor(const float* top1, int64_t k) {
  float lm[16];
  for (int64_t l = 0; l < 16; ++l) {
    const float a = top1[l] > top1[l + 16] ? top1[l] : top1[l + 16];
    const float b = top1[l + 32] > top1[l + 48] ? top1[l + 32] : top1[l + 48];
    lm[l] = a > b ? a : b;
  }
  return kth_of_16_generic(lm, k);
}

// The k-th largest of pool[0, m) (k <= m <= kGroups); pool has room for 16 values.
MLM_CLONES float kth_of_pool(float* pool, int64_t m, int64_t k) {
  if (m <= 16) {
    for (int64_t i = m; i < 16; ++i) pool[i] = -std::numeric_limits<float>::infinity();
    return kth_of_16_generic(pool, k);
  }
  float t = std::numeric_limits<float>::infinity();  // k > 8 or ties: 17..64 values
  for (int64_t i = 0; i < m; ++i) {
    int32_t above = 0;
    for (int64_t j = 0; j < m; ++j) above += pool[j] > pool[i] ? 1 : 0;
    t = (above < k && pool[i] < t) ? pool[i] : t;
  }
  return t;
}

// t (see the top): floor, or the k-th largest of the pool pool[0, m) of group maxima >= floor.
inline float group_max_bound(float floor, float* pool, int64_t m, int64_t k) {
  return m <= k + kPoolSlack ? floor : kth_of_pool(pool, m, k);
}

inline float kth_group_max_bound(const float* top1, int64_t k) {
  const float floor = group_max_floor(top1, k);
  float pool[kGroups];
  int64_t m = 0;
  for (int64_t g = 0; g < kGroups; ++g) {
    pool[m] = top1[g];
    m += top1[g] >= floor;
  }
  return group_max_bound(floor, pool, m, k);
}

int64_t group_candidates_generic(const float* x, int64_t n, const float* top1, const int32_t* block, const float* top2,
                                 int64_t k, uint32_t* out, int64_t cap, float* t_out) {
  float t;
  if (k <= 16) {
    t = kth_group_max_bound(top1, k);
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

int64_t collect_above_generic(const float* x, int64_t n, float lb, uint32_t* out, int64_t cap) {
  int64_t count = 0;
  for (int64_t j = 0; j < n; ++j) {
    if (x[j] >= lb) {
      if (count == cap) return -1;
      out[count++] = static_cast<uint32_t>(j);
    }
  }
  return count;
}

#if MLM_HAVE_X86
// k <= 16: the floor and the pool's k-th in vector compares. Larger k: the generic version.
__attribute__((target("avx512f,popcnt"))) int64_t group_candidates_avx512(const float* x, int64_t n,
                                                                          const float* top1, const int32_t* block,
                                                                          const float* top2, int64_t k, uint32_t* out,
                                                                          int64_t cap, float* t_out) {
  if (k > 16 || cap < kGroups) return group_candidates_generic(x, n, top1, block, top2, k, out, cap, t_out);
  const __m512 a[4] = {_mm512_loadu_ps(top1), _mm512_loadu_ps(top1 + 16), _mm512_loadu_ps(top1 + 32),
                       _mm512_loadu_ps(top1 + 48)};
  const __m512 floor = _mm512_set1_ps(
      kth_of_16_avx512(_mm512_max_ps(_mm512_max_ps(a[0], a[1]), _mm512_max_ps(a[2], a[3])), k));
  __mmask16 keep[4];  // the group maxima >= floor, m of them
  int m = 0;
  for (int q = 0; q < 4; ++q) {
    keep[q] = _mm512_cmp_ps_mask(a[q], floor, _CMP_GE_OQ);
    m += __builtin_popcount(keep[q]);
  }
  const __m512 ninf = _mm512_set1_ps(-std::numeric_limits<float>::infinity());
  const __m512i iota = _mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0);
  float t;
  if (m <= k + kPoolSlack) {
    t = _mm512_cvtss_f32(floor);
  } else if (m <= 16) {  // compressed per vector and joined in one register: no compress to memory,
    __m512 joined = ninf;  // no store-to-load round trip
    int at = 0;
    for (int q = 0; q < 4; ++q) {
      const int c = __builtin_popcount(keep[q]);  // lanes [at, at + c) take kept lanes [0, c)
      joined = _mm512_mask_permutexvar_ps(joined, first_lanes(at + c) & ~first_lanes(at),
                                          _mm512_sub_epi32(iota, _mm512_set1_epi32(at)),
                                          compress_ps(keep[q], a[q]));
      at += c;
    }
    t = kth_of_16_avx512(joined, k);
  } else {  // k > 8 or ties: count, for each pool value, the pool values above it
    alignas(64) float pool[4 * 16 + 16];
    int at = 0;
    for (int q = 0; q < 4; ++q) {
      _mm512_storeu_ps(pool + at, compress_ps(keep[q], a[q]));
      at += __builtin_popcount(keep[q]);
    }
    __m512 v[4];
    const int nv = (m + 15) / 16;
    for (int q = 0; q < nv; ++q) v[q] = _mm512_mask_loadu_ps(ninf, first_lanes(m - 16 * q), pool + 16 * q);
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
  int64_t count = 0;
  uint64_t flagged = 0;
  for (int q = 0; q < 4; ++q) {
    const __mmask16 second = _mm512_cmp_ps_mask(_mm512_loadu_ps(top2 + 16 * q), tv, _CMP_GE_OQ);
    const __mmask16 in = _mm512_mask_cmp_ps_mask(__mmask16(~second), a[q], tv, _CMP_GE_OQ);
    const __m512i idx = _mm512_add_epi32(_mm512_slli_epi32(_mm512_loadu_si512(block + 16 * q), 6),
                                         _mm512_add_epi32(iota, _mm512_set1_epi32(16 * q)));
    // compressed in a register, then stored whole (cap >= kGroups leaves room): vpcompressd
    // to memory is microcoded on AMD Zen 4
    _mm512_storeu_si512(out + count, compress_epi32(in, idx));
    count += __builtin_popcount(in);
    flagged |= uint64_t{second} << (16 * q);
  }
  if (!rescan_groups(__builtin_popcountll(flagged), n)) return -2;
  for (; flagged && count >= 0; flagged &= flagged - 1) {
    count = scan_group(x, n, __builtin_ctzll(flagged), t, out, count, cap);
  }
  return count;
}

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
  if (k > 16 || cap < kGroups) return group_candidates_generic(x, n, top1, block, top2, k, out, cap, t_out);
  const float floor = group_max_floor(top1, k);
  uint64_t keep = mask64_avx2<_CMP_GE_OQ>(top1, _mm256_set1_ps(floor));
  float pool[kGroups];
  int m = 0;
  for (; keep; keep &= keep - 1) pool[m++] = top1[__builtin_ctzll(keep)];
  const float t = group_max_bound(floor, pool, m, k);
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

// few candidates per row: 64 elements tested per branch
__attribute__((target("avx512f,popcnt"))) int64_t collect_above_avx512(const float* x, int64_t n, float lb,
                                                                        uint32_t* out, int64_t cap) {
  const __m512 t = _mm512_set1_ps(lb);
  int64_t count = 0;
  int64_t j = 0;
  for (; j + 64 <= n; j += 64) {
    const __mmask16 k0 = _mm512_cmp_ps_mask(_mm512_loadu_ps(x + j), t, _CMP_GE_OQ);
    const __mmask16 k1 = _mm512_cmp_ps_mask(_mm512_loadu_ps(x + j + 16), t, _CMP_GE_OQ);
    const __mmask16 k2 = _mm512_cmp_ps_mask(_mm512_loadu_ps(x + j + 32), t, _CMP_GE_OQ);
    const __mmask16 k3 = _mm512_cmp_ps_mask(_mm512_loadu_ps(x + j + 48), t, _CMP_GE_OQ);
    // most blocks hold none: one mask test, the 64-bit mask only for the others
    if (_mm512_kortestz(_mm512_kor(k0, k1), _mm512_kor(k2, k3))) continue;
    uint64_t m = uint64_t{k0} | (uint64_t{k1} << 16) | (uint64_t{k2} << 32) | (uint64_t{k3} << 48);
    if (count + __builtin_popcountll(m) > cap) return -1;
    for (; m; m &= m - 1) out[count++] = static_cast<uint32_t>(j + __builtin_ctzll(m));
  }
  for (; j < n; j += 16) {
    const __mmask16 live = first_lanes(n - j);
    uint32_t m = _mm512_mask_cmp_ps_mask(live, _mm512_maskz_loadu_ps(live, x + j), t, _CMP_GE_OQ);
    if (count + __builtin_popcount(m) > cap) return -1;
    for (; m; m &= m - 1) out[count++] = static_cast<uint32_t>(j + __builtin_ctz(m));
  }
  return count;
}
#endif

}  // namespace

const GroupCandidatesFn group_candidates = pick<GroupCandidatesFn>(
    MLM_X86(group_candidates_avx512), MLM_X86(group_candidates_avx2), group_candidates_generic);
const CollectAboveFn collect_above = pick<CollectAboveFn>(MLM_X86(collect_above_avx512), nullptr, collect_above_generic);

}  // namespace cpu
}  // namespace mlmetrics
