// Input checks shared by every device's implementation of the ops (declared in schema.h).
// Each raises a c10::Error (RuntimeError in Python) with a one-line message.
#include <ATen/ATen.h>

#include <algorithm>
#include <cstdint>
#include <limits>
#include <mutex>
#include <vector>

#include "schema.h"

namespace mlmetrics {
namespace {

// class_subset tensors that passed check_class_subset: a weak reference to the TensorImpl (it keeps
// the allocation, so a new tensor can never take a cached one's address), its version counter
// and the logits width C. A subset passed every batch is then checked (one host sync on a GPU)
// once, and again only after an in-place change.
struct CheckedSubset {
  c10::weak_intrusive_ptr<c10::TensorImpl, c10::UndefinedTensorImpl> impl;
  int64_t version;
  int64_t c;
};
constexpr size_t kMaxCheckedSubsets = 64;
std::mutex checked_mutex;
std::vector<CheckedSubset> checked_subsets;

bool cacheable(const at::Tensor& t) { return !t.is_inference(); }  // inference tensors keep no version

bool already_checked(const at::Tensor& subset, int64_t c) {
  if (!cacheable(subset)) return false;
  const std::lock_guard<std::mutex> lock(checked_mutex);
  for (const CheckedSubset& e : checked_subsets)
    if (!e.impl.expired() && e.impl._unsafe_get_target() == subset.unsafeGetTensorImpl())
      return e.version == subset._version() && e.c == c;
  return false;
}

void remember_checked(const at::Tensor& subset, int64_t c) {
  if (!cacheable(subset)) return;
  const std::lock_guard<std::mutex> lock(checked_mutex);
  auto& v = checked_subsets;
  v.erase(std::remove_if(v.begin(), v.end(),
                         [&](const CheckedSubset& e) {
                           return e.impl.expired() || e.impl._unsafe_get_target() == subset.unsafeGetTensorImpl();
                         }),
          v.end());
  if (v.size() >= kMaxCheckedSubsets) v.erase(v.begin());  // the oldest
  v.push_back({c10::weak_intrusive_ptr<c10::TensorImpl, c10::UndefinedTensorImpl>(subset.getIntrusivePtr()),
               subset._version(), c});
}

}  // namespace

void check_class_subset(const at::Tensor& subset, int64_t c) {
  TORCH_CHECK(subset.scalar_type() == at::kLong && subset.dim() == 1 && subset.numel() >= 1,
              "mlmetrics: class_subset must be a non-empty 1-D int64 tensor");
  if (already_checked(subset, c)) return;
  // min, max and the smallest repeated entry (or INT64_MAX), computed where the subset lives and
  // copied to the host together: one sync.
  const at::Tensor sorted = std::get<0>(subset.sort());
  const int64_t m = sorted.numel();
  const at::Tensor repeated =
      m > 1 ? at::where(sorted.slice(0, 1).eq(sorted.slice(0, 0, m - 1)), sorted.slice(0, 1),
                        std::numeric_limits<int64_t>::max())
                  .min()
                  .reshape({1})
            : at::full({1}, std::numeric_limits<int64_t>::max(), sorted.options());
  const at::Tensor summary = at::cat({sorted.slice(0, 0, 1), sorted.slice(0, m - 1), repeated}).cpu();
  const int64_t* s = summary.const_data_ptr<int64_t>();
  TORCH_CHECK(s[0] >= 0 && s[1] < c, "mlmetrics: class_subset entries must be in [0, C=", c, "), got ",
              s[0] < 0 ? s[0] : s[1]);
  TORCH_CHECK(s[2] == std::numeric_limits<int64_t>::max(), "mlmetrics: class_subset entries must be distinct, got ",
              s[2], " more than once");
  remember_checked(subset, c);
}

void check_topk_stats_inputs(const at::Tensor& logits, int64_t k, const std::optional<at::Tensor>& target,
                             const std::optional<at::Tensor>& label_ranges, const std::optional<at::Tensor>& labels,
                             const std::optional<at::Tensor>& class_subset) {
  TORCH_CHECK(logits.dim() == 2, "mlmetrics: logits must be 2-D [N, C], got ", logits.dim(), "-D");
  auto st = logits.scalar_type();
  TORCH_CHECK(st == at::kFloat || st == at::kHalf || st == at::kBFloat16,
              "mlmetrics: logits must be float32, float16 or bfloat16, got ", st);
  const int64_t n = logits.size(0);
  int64_t c = logits.size(1);
  TORCH_CHECK(c >= 1, "mlmetrics: logits must have at least one class");
  if (class_subset.has_value()) {
    TORCH_CHECK(class_subset->device() == logits.device(), "mlmetrics: class_subset and logits on different devices");
    check_class_subset(*class_subset, c);
    c = class_subset->numel();
  }
  TORCH_CHECK(c < (int64_t{1} << 31), "mlmetrics: C must be < 2^31");
  TORCH_CHECK(k >= 1 && k <= c, "mlmetrics: k must be in [1, C=", c, "], got ", k);
  if (target.has_value()) {
    TORCH_CHECK(target->scalar_type() == at::kLong, "mlmetrics: target must be int64");
    TORCH_CHECK(target->dim() == 1 && target->size(0) == n, "mlmetrics: target must be [N=", n, "]");
    TORCH_CHECK(target->device() == logits.device(), "mlmetrics: target and logits on different devices");
  }
  TORCH_CHECK(label_ranges.has_value() == labels.has_value(),
              "mlmetrics: label_ranges and labels go together");
  if (label_ranges.has_value()) {
    TORCH_CHECK(label_ranges->scalar_type() == at::kLong && label_ranges->dim() == 2 &&
                    label_ranges->size(0) == n && label_ranges->size(1) == 2,
                "mlmetrics: label_ranges must be int64 [N=", n, ", 2]");
    auto lt = labels->scalar_type();
    TORCH_CHECK((lt == at::kInt || lt == at::kLong) && labels->dim() == 1,
                "mlmetrics: labels must be a 1-D int32/int64 tensor");
    TORCH_CHECK(label_ranges->device() == logits.device() && labels->device() == logits.device(),
                "mlmetrics: label sets and logits on different devices");
  }
}

}  // namespace mlmetrics
