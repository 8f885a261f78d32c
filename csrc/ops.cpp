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

TORCH_LIBRARY(mlmetrics, m) {
  m.def(
      "topk_stats(Tensor logits, int k, Tensor? target, Tensor? label_ranges, Tensor? labels, Tensor? class_subset, "
      "bool with_softmax) "
      "-> (Tensor topk_logits, Tensor topk_indices, Tensor hits, Tensor row_stats, Tensor target_rank)");
  // topk_stats of CUDA kernel v2 (csrc/cuda/topk_v2.cuh): same contract, a CUDA kernel only
  m.def(
      "topk_stats_v2(Tensor logits, int k, Tensor? target, Tensor? label_ranges, Tensor? labels, "
      "Tensor? class_subset, bool with_softmax) "
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
  m.impl("softmax_topk", &softmax_topk_cpu);
  m.impl("topk_label_hits", &topk_label_hits_via<topk_stats_cpu>);
}

}  // namespace mlmetrics
