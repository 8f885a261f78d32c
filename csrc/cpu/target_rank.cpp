// rank_of (kernels.h): the target's rank, by vectorisable compares over the row.
#include "kernels.h"

namespace mlmetrics {
namespace cpu {

// Elements ranked before position t (value tv): those > tv or NaN, and the equal ones of
// lower index.
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

}  // namespace cpu
}  // namespace mlmetrics
