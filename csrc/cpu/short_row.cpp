// short_row_topk, rank_by_counting, rank_few (kernels.h): top-k of rows of n <= kShortRow
// (C = 10 ... 128) without a selection loop. Rows of <= 16 (or k > 16): every key ranked by
// counting. Longer rows: the k-th largest of 16 lane maxima bounds the k-th value from below;
// only the elements >= it (about k) are keyed and ranked.
#include <algorithm>
#include <limits>

#include "kernels.h"

namespace mlmetrics {
namespace cpu {

// sorted[rank[i]] = keys[i]: plain stores. (Vectorised, this loop becomes a scatter, which AMD
// Zen 4 runs as microcode; every version of the kernel keeps gathers and scatters out.)
__attribute__((noinline, optimize("no-tree-vectorize"))) static void place_by_rank(const uint64_t* keys,
                                                                                 const int32_t* rank, int64_t m,
                                                                                 uint64_t* sorted) {
  for (int64_t i = 0; i < m; ++i) sorted[rank[i]] = keys[i];
}

// Each key's rank is the count of keys above it: no data-dependent branches.
MLM_CLONES void rank_by_counting(const uint64_t* keys, int64_t m, int64_t k, uint64_t* out) {
  int32_t rank[kShortRow];
  for (int64_t i = 0; i < m; ++i) {
    int32_t r = 0;
    for (int64_t j = 0; j < m; ++j) r += keys[j] > keys[i];
    rank[i] = r;
  }
  uint64_t sorted[kShortRow];
  place_by_rank(keys, rank, m, sorted);
  std::copy(sorted, sorted + k, out);
}

namespace {

MLM_CLONES bool short_row_topk_generic(const float* x, int64_t n, int64_t k, uint64_t* out) {
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
  const float t = kth_of_16_generic(lm, k);
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

#if MLM_HAVE_X86
// Up to four vectors of keys (zero-padded: 0 is below every rank_key), each key's rank from
// one unsigned compare per vector.
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

// n <= 16: every key ranked by rank_few_avx512. k <= 16 < n: the lane-maxima bound in registers;
// the candidates' indices compressed in a register and stored whole (no compress to memory).
__attribute__((target("avx512f,popcnt"))) bool short_row_topk_avx512(const float* x, int64_t n, int64_t k,
                                                                      uint64_t* out) {
  if (k == 1) return short_row_topk_generic(x, n, k, out);
  uint64_t keys[kShortRow];
  if (n <= 16) {  // every key, ranked in vector compares (NaN keys rank like any other)
    for (int64_t j = 0; j < n; ++j) keys[j] = rank_key(x[j], static_cast<uint32_t>(j));
    rank_few_avx512(keys, n, k, out);
    return true;
  }
  if (k > 16) return short_row_topk_generic(x, n, k, out);
  const __m512 ninf = _mm512_set1_ps(-std::numeric_limits<float>::infinity());
  __m512 v[kShortRow / 16];
  __m512 lm = ninf;
  __mmask16 nan = 0;
  const int64_t nv = (n + 15) / 16;
  for (int64_t q = 0; q < nv; ++q) {
    v[q] = _mm512_mask_loadu_ps(ninf, first_lanes(n - 16 * q), x + 16 * q);
    nan |= _mm512_cmp_ps_mask(v[q], v[q], _CMP_UNORD_Q);
    lm = _mm512_max_ps(lm, v[q]);
  }
  if (nan) return false;
  const __m512 t = _mm512_set1_ps(kth_of_16_avx512(lm, k));
  alignas(64) int32_t idx[kShortRow + 16];
  int64_t m = 0;
  const __m512i iota = _mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0);
  for (int64_t q = 0; q < nv; ++q) {
    const __mmask16 in = _mm512_mask_cmp_ps_mask(first_lanes(n - 16 * q), v[q], t, _CMP_GE_OQ);
    _mm512_storeu_si512(idx + m, compress_epi32(in, _mm512_add_epi32(iota, _mm512_set1_epi32(16 * q))));
    m += __builtin_popcount(in);
  }
  if (m < k) return false;  // cannot happen (k lane maxima are >= t); never rank too few
  for (int64_t i = 0; i < m; ++i) keys[i] = rank_key(x[idx[i]], static_cast<uint32_t>(idx[i]));
  if (m <= kRankFew) {
    rank_few_avx512(keys, m, k, out);
  } else {
    rank_by_counting(keys, m, k, out);
  }
  return true;
}
#endif

}  // namespace

const RankFewFn rank_few = pick<RankFewFn>(MLM_X86(rank_few_avx512), nullptr, rank_by_counting);
const ShortRowTopKFn short_row_topk =
    pick<ShortRowTopKFn>(MLM_X86(short_row_topk_avx512), nullptr, short_row_topk_generic);

}  // namespace cpu
}  // namespace mlmetrics
