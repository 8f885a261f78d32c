// Op schemas (TORCH_LIBRARY) and CPU registration. CUDA kernels register in cuda/topk_stats.cu.
#include <Python.h>
#include <torch/library.h>

#include "schema.h"

// An importable, empty Python module: importing mlmetrics._C runs the registrations below.
PyMODINIT_FUNC PyInit__C(void) {
  static struct PyModuleDef module_def = {PyModuleDef_HEAD_INIT, "_C", nullptr, -1, nullptr};
  return PyModule_Create(&module_def);
}

namespace mlmetrics {

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
    TORCH_CHECK(class_subset->scalar_type() == at::kLong && class_subset->dim() == 1 && class_subset->numel() >= 1,
                "mlmetrics: class_subset must be a non-empty 1-D int64 tensor");
    TORCH_CHECK(class_subset->device() == logits.device(), "mlmetrics: class_subset and logits on different devices");
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

TORCH_LIBRARY(mlmetrics, m) {
  m.def(
      "topk_stats(Tensor logits, int k, Tensor? target, Tensor? label_ranges, Tensor? labels, Tensor? class_subset, "
      "bool with_softmax) "
      "-> (Tensor topk_logits, Tensor topk_indices, Tensor hits, Tensor row_stats, Tensor target_rank)");
  m.def("softmax_topk(Tensor logits, int k) -> (Tensor probs, Tensor indices)");
  m.def("topk_label_hits(Tensor logits, Tensor label_ranges, Tensor labels, int k) -> Tensor");
  m.def("cpu_isa() -> str", &cpu_isa);  // no tensors: a catch-all kernel
  // Poisson(1) bootstrap weights [N, replicates] float64 (cpu/poisson_weights.cpp)
  m.def("poisson_weights(Tensor sample_index, int replicates, int seed) -> Tensor");
  // sums[rows[i, j], b] += values[i, j] * poisson_weights(sample_index, B, seed)[i, b]  (in place)
  m.def("poisson_accumulate(Tensor(a!) sums, Tensor sample_index, Tensor rows, Tensor values, int seed) -> ()");
}

TORCH_LIBRARY_IMPL(mlmetrics, CPU, m) {
  m.impl("topk_stats", &topk_stats_cpu);
  m.impl("softmax_topk", &softmax_topk_via<topk_stats_cpu>);
  m.impl("topk_label_hits", &topk_label_hits_via<topk_stats_cpu>);
}

}  // namespace mlmetrics
