// CUDA registration of mlmetrics::topk_stats / softmax_topk / topk_label_hits (kernel v1, the one
// measured on a GPU) and of mlmetrics::topk_stats_v2 (kernel v2, checked by the CPU emulation
// and the static SASS budget only). Host side: entry.cuh; kernels: topk_v1.cuh, topk_v2.cuh.
#include <torch/library.h>

#include "entry.cuh"
#include "topk_v1.cuh"
#include "topk_v2.cuh"

namespace mlmetrics {

TopKStatsResult topk_stats_cuda(const at::Tensor& logits, int64_t k, const std::optional<at::Tensor>& target,
                                const std::optional<at::Tensor>& label_ranges,
                                const std::optional<at::Tensor>& labels,
                                const std::optional<at::Tensor>& class_subset, bool with_softmax) {
  return cuda::topk_stats_device<cuda::v1::Kernel>(logits, k, target, label_ranges, labels, class_subset,
                                                   with_softmax);
}

TopKStatsResult topk_stats_cuda_v2(const at::Tensor& logits, int64_t k, const std::optional<at::Tensor>& target,
                                   const std::optional<at::Tensor>& label_ranges,
                                   const std::optional<at::Tensor>& labels,
                                   const std::optional<at::Tensor>& class_subset, bool with_softmax) {
  return cuda::topk_stats_device<cuda::v2::Kernel>(logits, k, target, label_ranges, labels, class_subset,
                                                   with_softmax);
}

TORCH_LIBRARY_IMPL(mlmetrics, CUDA, m) {
  m.impl("topk_stats", &topk_stats_cuda);
  m.impl("softmax_topk", &softmax_topk_via<topk_stats_cuda>);
  m.impl("topk_label_hits", &topk_label_hits_via<topk_stats_cuda>);
  m.impl("topk_stats_v2", &topk_stats_cuda_v2);
}

}  // namespace mlmetrics
