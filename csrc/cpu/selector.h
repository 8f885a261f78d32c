// TopKSelector: the top-k of one row as rank_keys sorted descending (ties: lower index first).
//   n <= kShortRow: short_row_topk.
//   prefiltered (NaN-free rows of > kShortRow; k <= 16, or k <= 128 on rows that fit L1): a
//     bound from per-group top-2 values (group_scan), then the few elements above it; see
//     selector.cpp.
//   otherwise, k <= kSmallK: the k best are kept sorted; a candidate is placed by insertion, so
//     the threshold is always exact (few candidates pass the filter, next_candidate).
//   k > kSmallK and k >= n/16: rank_keys of the whole row, nth_element, sort the first k.
//   larger k: candidates are appended to a buffer of capacity 2k; a full buffer is cut back
//     to its k best with nth_element, which raises the threshold. Amortised O(1) per candidate.
// One selector per thread; it keeps its buffers between rows.
#pragma once

#include <cstdint>
#include <vector>

#include "kernels.h"

namespace mlmetrics {
namespace cpu {

class TopKSelector {
 public:
  static constexpr int64_t kSmallK = 16;

  explicit TopKSelector(int64_t k);

  // Top-k of x[0, n) into out[0, k). next: a row to fetch into cache while this one's
  // candidates are ranked (or nullptr).
  void run(const float* x, int64_t n, uint64_t* out, const float* next = nullptr);

 private:
  bool prefiltered(const float* x, int64_t n, uint64_t* out, const float* next);
  void shrink();
  void set_threshold(uint64_t weakest);
  void select_keys(uint64_t* out);

  std::vector<uint32_t> candidates_;
  int64_t k_, capacity_, max_candidates_;
  std::vector<uint64_t> keys_;  // may grow to the row length on the select-over-all path
  float threshold_ = 0.f;
  bool saturated_ = false;
};

}  // namespace cpu
}  // namespace mlmetrics
