// The op contract for C++ (CPU and CUDA): row_stats columns, the result tuple, the entry points.
// Python twin: mlmetrics/ops/schema.py (same columns; tests/ops/test_schema.py keeps them equal).
// Semantics: mlmetrics/ops/reference.py.
#pragma once

#include <cstdint>

#include "keys.h"

namespace mlmetrics {

// Columns of row_stats [N, kNumStats].
enum Stat : int64_t {
  kStatMaxLogit = 0,
  kStatLogSumExp = 1,
  kStatEntropy = 2,
  kStatSumP2 = 3,
  kStatTargetLogit = 4,
  kStatNonFinite = 5,
  kStatLogNormalizer = 6,  // log sum exp(x - max_logit): probabilities exp((x - max) - this), exact at any magnitude
  kNumStats = 7,
};

}  // namespace mlmetrics

// MLMETRICS_DEVICE_ONLY: the columns alone, for translation units of device code without ATen
// (benchmarks/gpu_static/cuda.py compiles the kernels so).
#if !defined(MLMETRICS_DEVICE_ONLY)

#include <ATen/ATen.h>

#include <cstring>
#include <optional>
#include <string>
#include <tuple>

namespace mlmetrics {

// (topk_logits f32 [N,k], topk_indices i64 [N,k], hits bool [N,k] or [N,0],
//  row_stats f32 [N,kNumStats], target_rank i64 [N] or [0])
using TopKStatsResult = std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor>;


// class_subset (optional int64 [C']): the op then sees row i as logits[i, class_subset[j]], j in [0, C'),
// without copying the logits; every index it returns or takes (top-k, target, labels) is in [0, C').
// The effective class count is C' (k <= C'). Entries of class_subset must be distinct and in [0, C)
// (checked: an error, never a clamp).
//
// Checks shared by every device's implementation (csrc/checks.cpp; raise c10::Error with a one-line
// message). check_topk_stats_inputs calls check_class_subset.
void check_class_subset(const at::Tensor& class_subset, int64_t c);
void check_topk_stats_inputs(const at::Tensor& logits, int64_t k, const std::optional<at::Tensor>& target,
                             const std::optional<at::Tensor>& label_ranges, const std::optional<at::Tensor>& labels,
                             const std::optional<at::Tensor>& class_subset);

TopKStatsResult topk_stats_cpu(const at::Tensor& logits, int64_t k, const std::optional<at::Tensor>& target,
                               const std::optional<at::Tensor>& label_ranges,
                               const std::optional<at::Tensor>& labels,
                               const std::optional<at::Tensor>& class_subset, bool with_softmax);
std::tuple<at::Tensor, at::Tensor> softmax_topk_cpu(const at::Tensor& logits, int64_t k);

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
  // In float64 (N x k values): x - max is then exact and exp adds no fp32 rounding, so every
  // probability keeps a relative error of a few fp32 ulps at any logit magnitude.
  const at::Tensor st = std::get<3>(s).to(at::kDouble);
  const at::Tensor shift = st.select(1, kStatMaxLogit).unsqueeze(1);
  const at::Tensor log_norm = st.select(1, kStatLogNormalizer).unsqueeze(1);
  return {at::exp((std::get<0>(s).to(at::kDouble) - shift) - log_norm).to(at::kFloat), std::get<1>(s)};
}

template <TopKStatsFn topk_stats>
at::Tensor topk_label_hits_via(const at::Tensor& logits, const at::Tensor& label_ranges, const at::Tensor& labels,
                               int64_t k) {
  return std::get<2>(topk_stats(logits, k, std::nullopt, label_ranges, labels, std::nullopt, false));
}

}  // namespace mlmetrics

#endif  // !MLMETRICS_DEVICE_ONLY
