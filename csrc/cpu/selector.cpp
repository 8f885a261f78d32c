// TopKSelector (selector.h) and next_candidate, the hot loop of its filtered scan.
#include "selector.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>

namespace mlmetrics {
namespace cpu {
namespace {

// First j' in [j, n) whose x[j'] can enter a top-k whose weakest value is th, i.e. x > th or
// x is NaN ("not less-or-equal, unordered"); n if none.
using NextCandidateFn = int64_t (*)(const float*, int64_t, int64_t, float);

int64_t next_candidate_generic(const float* x, int64_t j, int64_t n, float th) {
  for (; j < n; ++j) {
    if (!(x[j] <= th)) return j;
  }
  return n;
}

#if MLM_HAVE_X86
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
    const __mmask16 live = first_lanes(n - j);
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
  return next_candidate_generic(x, j, n, th);
}
#endif

const NextCandidateFn next_candidate =
    pick<NextCandidateFn>(MLM_X86(next_candidate_avx512), MLM_X86(next_candidate_avx2), next_candidate_generic);

inline void prefetch_row(const float* x, int64_t n) {
#if defined(__GNUC__)
  for (int64_t j = 0; j < n; j += 16) __builtin_prefetch(x + j, 0, 2);
#endif
}

}  // namespace

TopKSelector::TopKSelector(int64_t k)
    : k_(k), capacity_(std::max<int64_t>(2 * k, k + 64)), max_candidates_(std::max<int64_t>(256, 4 * k)) {
  keys_.reserve(capacity_);
}

void TopKSelector::run(const float* x, int64_t n, uint64_t* out, const float* next) {
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

void TopKSelector::shrink() {
  std::nth_element(keys_.begin(), keys_.begin() + (k_ - 1), keys_.end(), std::greater<uint64_t>());
  keys_.resize(k_);
  set_threshold(*std::min_element(keys_.begin(), keys_.end()));
}

// Later elements (higher index) enter only with an order_key strictly above the weakest kept.
void TopKSelector::set_threshold(uint64_t weakest) {
  const uint32_t key = static_cast<uint32_t>(weakest >> 32);
  saturated_ = key == kKeyNaN;  // k NaNs kept: nothing later can enter
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
bool TopKSelector::prefiltered(const float* x, int64_t n, uint64_t* out, const float* next) {
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
  if (count < k_) return false;         // ties past the cap: the general path
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
void TopKSelector::select_keys(uint64_t* out) {
  std::nth_element(keys_.begin(), keys_.begin() + (k_ - 1), keys_.end(), std::greater<uint64_t>());
  std::sort(keys_.begin(), keys_.begin() + k_, std::greater<uint64_t>());
  std::copy(keys_.begin(), keys_.begin() + k_, out);
}

}  // namespace cpu
}  // namespace mlmetrics
