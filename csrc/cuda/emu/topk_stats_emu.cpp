// The CUDA kernels (kernel v1 and v2) compiled as C++ on the CPU through the emulation header
// cuda_emu.h, with the same host code and launch configurations, registered as
// torch.ops.mlmetrics_cuda_emu.topk_stats / topk_stats_v2 on CPU tensors. Built (and cached) at
// test time by tests/ops/test_topk_stats_cuda_emu.py, which checks it against the reference.
#define MLM_CUDA_EMU 1

#include <torch/library.h>

#include "../entry.cuh"
#include "../topk_v1.cuh"
#include "../topk_v2.cuh"

namespace mlmetrics {
namespace {

template <class Kernel>
TopKStatsResult emulated(const at::Tensor& logits, int64_t k, const std::optional<at::Tensor>& target,
                         const std::optional<at::Tensor>& label_ranges, const std::optional<at::Tensor>& labels,
                         const std::optional<at::Tensor>& class_subset, bool with_softmax) {
  try {
    return cuda::topk_stats_device<Kernel>(logits, k, target, label_ranges, labels, class_subset, with_softmax);
  } catch (const c10::Error&) {
    throw;
  } catch (const std::exception& e) {  // an emulation error (what would be undefined behaviour on a GPU)
    TORCH_CHECK(false, e.what());
  }
}

}  // namespace

TORCH_LIBRARY(mlmetrics_cuda_emu, m) {
  const char* args =
      "(Tensor logits, int k, Tensor? target, Tensor? label_ranges, Tensor? labels, Tensor? class_subset, "
      "bool with_softmax) "
      "-> (Tensor topk_logits, Tensor topk_indices, Tensor hits, Tensor row_stats, Tensor target_rank)";
  m.def((std::string("topk_stats") + args).c_str(), &emulated<cuda::v1::Kernel>);
  m.def((std::string("topk_stats_v2") + args).c_str(), &emulated<cuda::v2::Kernel>);
}

}  // namespace mlmetrics
