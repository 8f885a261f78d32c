// The host side of topk_stats on a CUDA device (or its CPU emulation): checks, outputs,
// kernel parameters, dtype dispatch. Kernel is cuda::v1::Kernel or cuda::v2::Kernel.
#pragma once

#include <limits>

#include "common.cuh"

namespace mlmetrics {
namespace cuda {

template <class Kernel>
TopKStatsResult topk_stats_device(const at::Tensor& logits, int64_t k, const std::optional<at::Tensor>& target,
                                  const std::optional<at::Tensor>& label_ranges,
                                  const std::optional<at::Tensor>& labels,
                                  const std::optional<at::Tensor>& class_subset, bool with_softmax) {
  check_topk_stats_inputs(logits, k, target, label_ranges, labels, class_subset);
  if (kEmulated) {
    TORCH_CHECK(logits.device().is_cpu(), "mlmetrics: the CUDA emulation runs on CPU tensors");
  } else {
    TORCH_CHECK(logits.is_cuda(), "mlmetrics: topk_stats_cuda needs a CUDA tensor");
  }
  const DeviceGuard guard(logits.device());
  const int64_t n = logits.size(0);
  const int64_t c_full = logits.size(1);
  const int64_t c = class_subset.has_value() ? class_subset->numel() : c_full;
  TORCH_CHECK(c <= std::numeric_limits<int32_t>::max() - (1 << 20), "mlmetrics: C too large");
  TORCH_CHECK(n <= std::numeric_limits<int32_t>::max(), "mlmetrics: N must be < 2^31 on CUDA");
  const bool has_labels = label_ranges.has_value();
  const bool has_target = target.has_value();

  auto f32 = logits.options().dtype(at::kFloat);
  auto i64 = logits.options().dtype(at::kLong);
  at::Tensor topk_logits = at::empty({n, k}, f32);
  at::Tensor topk_indices = at::empty({n, k}, i64);
  at::Tensor hits = at::empty({n, has_labels ? k : 0}, logits.options().dtype(at::kBool));
  at::Tensor row_stats = at::empty({n, static_cast<int64_t>(kNumStats)}, f32);
  at::Tensor target_rank = at::empty({has_target ? n : 0}, i64);
  if (n == 0) return {topk_logits, topk_indices, hits, row_stats, target_rank};

  at::Tensor subset_c, target_c, ranges_c, labels_c;
  Params P{};
  P.x = logits.data_ptr();
  P.n = n;
  P.c = static_cast<int32_t>(c);
  P.c_full = c_full;
  P.rs = logits.stride(0);
  P.cs = c_full == 1 ? 1 : logits.stride(1);
  if (class_subset.has_value()) {
    subset_c = class_subset->contiguous();
    P.subset = subset_c.data_ptr<int64_t>();
  }
  P.fast = P.subset == nullptr && P.cs == 1;
  P.k = static_cast<int32_t>(k);
  P.softmax = with_softmax;
  P.write_topk = true;
  if (has_target) {
    target_c = target->contiguous();
    P.target = target_c.data_ptr<int64_t>();
    P.out_rank = target_rank.data_ptr<int64_t>();
  }
  if (has_labels) {
    ranges_c = label_ranges->contiguous();
    labels_c = labels->contiguous();
    P.ranges = ranges_c.data_ptr<int64_t>();
    P.labels = labels_c.data_ptr();
    P.labels64 = labels_c.scalar_type() == at::kLong;
    P.num_labels = labels_c.numel();
    P.out_hits = hits.data_ptr<bool>();
  }
  P.out_val = topk_logits.data_ptr<float>();
  P.out_idx = topk_indices.data_ptr<int64_t>();
  P.stats = row_stats.data_ptr<float>();

  const cudaStream_t stream = current_stream();
  switch (logits.scalar_type()) {
    case at::kFloat:
      Kernel::template run<0>(P, i64, stream);
      break;
    case at::kHalf:
      Kernel::template run<1>(P, i64, stream);
      break;
    case at::kBFloat16:
      Kernel::template run<2>(P, i64, stream);
      break;
    default:
      TORCH_CHECK(false, "mlmetrics: unsupported logits dtype");
  }
  return {topk_logits, topk_indices, hits, row_stats, target_rank};
}

}  // namespace cuda
}  // namespace mlmetrics
