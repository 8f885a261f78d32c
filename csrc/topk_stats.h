// Shared declarations of the mlmetrics ops (CPU and CUDA implementations).
// Semantics: mlmetrics/reference.py is the contract.
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <tuple>

#if defined(__CUDACC__)
#define MLM_HOST_DEVICE __host__ __device__ __forceinline__
#else
#define MLM_HOST_DEVICE inline
#endif

namespace mlmetrics {

// Columns of row_stats [N, kNumStats].
enum Stat : int64_t {
  kStatMaxLogit = 0,
  kStatLogSumExp = 1,
  kStatEntropy = 2,
  kStatSumP2 = 3,
  kStatTargetLogit = 4,
  kStatNonFinite = 5,
  kNumStats = 6,
};

// (topk_logits f32 [N,k], topk_indices i64 [N,k], hits bool [N,k] or [N,0],
//  row_stats f32 [N,kNumStats], target_rank i64 [N] or [0])
using TopKStatsResult = std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor>;

// order_key: a uint32 whose unsigned order is the rank order of float32 values:
// NaN (any payload) above +inf above every finite value above -inf; -0.0 == +0.0.
MLM_HOST_DEVICE uint32_t order_key(float x) {
  if (x != x) return 0xFFFFFFFFu;
  if (x == 0.0f) x = 0.0f;  // -0.0 -> +0.0
  uint32_t u;
#if defined(__CUDA_ARCH__)
  u = __float_as_uint(x);
#else
  std::memcpy(&u, &x, sizeof(u));
#endif
  return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}

// rank_key: order_key in the high word, the complemented class index in the low word,
// so a larger rank_key is earlier in rank order (ties go to the lower class index).
MLM_HOST_DEVICE uint64_t rank_key(float x, uint32_t index) {
  return (static_cast<uint64_t>(order_key(x)) << 32) | static_cast<uint64_t>(~index);
}
MLM_HOST_DEVICE uint32_t rank_key_index(uint64_t key) { return ~static_cast<uint32_t>(key); }

// class_subset (optional int64 [C']): the op then sees row i as logits[i, class_subset[j]], j in [0, C'),
// without copying the logits; every index it returns or takes (top-k, target, labels) is in [0, C').
// The effective class count is C' (k <= C'). Entries of class_subset must be in [0, C) (checked).
//
// Checks shared by every device's implementation (raise c10::Error with a clear message).
void check_topk_stats_inputs(const at::Tensor& logits, int64_t k, const std::optional<at::Tensor>& target,
                             const std::optional<at::Tensor>& label_ranges, const std::optional<at::Tensor>& labels,
                             const std::optional<at::Tensor>& class_subset);

TopKStatsResult topk_stats_cpu(const at::Tensor& logits, int64_t k, const std::optional<at::Tensor>& target,
                               const std::optional<at::Tensor>& label_ranges,
                               const std::optional<at::Tensor>& labels,
                               const std::optional<at::Tensor>& class_subset, bool with_softmax);

#ifdef MLMETRICS_WITH_CUDA
TopKStatsResult topk_stats_cuda(const at::Tensor& logits, int64_t k, const std::optional<at::Tensor>& target,
                                const std::optional<at::Tensor>& label_ranges,
                                const std::optional<at::Tensor>& labels,
                               const std::optional<at::Tensor>& class_subset, bool with_softmax);
#endif

// The instruction set the CPU kernel uses in this process: "avx512", "avx2" or "scalar" (the
// CPU's best, capped by MLMETRICS_CPU_ISA).
std::string cpu_isa();

using TopKStatsFn = TopKStatsResult (*)(const at::Tensor&, int64_t, const std::optional<at::Tensor>&,
                                        const std::optional<at::Tensor>&, const std::optional<at::Tensor>&,
                                        const std::optional<at::Tensor>&, bool);

// softmax_topk / topk_label_hits of a device, derived from its topk_stats (registered per device).
template <TopKStatsFn topk_stats>
std::tuple<at::Tensor, at::Tensor> softmax_topk_via(const at::Tensor& logits, int64_t k) {
  const TopKStatsResult s = topk_stats(logits, k, std::nullopt, std::nullopt, std::nullopt, std::nullopt, true);
  const at::Tensor lse = std::get<3>(s).select(1, kStatLogSumExp).unsqueeze(1);
  return {at::exp(std::get<0>(s) - lse), std::get<1>(s)};
}

template <TopKStatsFn topk_stats>
at::Tensor topk_label_hits_via(const at::Tensor& logits, const at::Tensor& label_ranges, const at::Tensor& labels,
                               int64_t k) {
  return std::get<2>(topk_stats(logits, k, std::nullopt, label_ranges, labels, std::nullopt, false));
}

}  // namespace mlmetrics
