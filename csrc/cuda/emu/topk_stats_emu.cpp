// The CUDA kernels (kernel v1 and v2) compiled as C++ on the CPU through the emulation header
// cuda_emu.h, with the same host code and launch configurations, registered as
// torch.ops.mlmetrics_cuda_emu.topk_stats / topk_stats_v2 on CPU tensors. Built (and cached) at
// test time by tests/ops/test_topk_stats_cuda_emu.py, which checks it against the reference.
#define MLM_CUDA_EMU 1

#include <torch/library.h>

#include <functional>
#include <map>
#include <string>

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

// Small kernels that check the emulation itself (tests/ops/test_topk_stats_cuda_emu.py).
namespace selftest {
__global__ void xor_sum(int* out) {  // every lane: 0 + 1 + ... + 31 = 496
  int v = static_cast<int>(threadIdx.x);
  for (int off = 16; off > 0; off >>= 1) v += __shfl_xor_sync(0xFFFFFFFFu, v, off);
  out[threadIdx.x] = v;
}
__global__ void segments(int* out) {  // 8-lane segments with their own masks: the segment's max lane
  const unsigned lane = threadIdx.x & 31u, seg = 0xFFu << (lane & ~7u);
  int v = static_cast<int>(threadIdx.x);
  if ((lane >> 3) & 1u) {  // odd segments diverge and still shuffle among themselves
    for (int off = 4; off > 0; off >>= 1) v = max(v, __shfl_xor_sync(seg, v, off, 8));
  } else {
    v = __shfl_sync(seg, v, 7, 8);
  }
  out[threadIdx.x] = v;
}
__global__ void shared_and_barrier(int* out) {  // reversed through shared memory, twice per block
  __shared__ int s[64];
  s[threadIdx.x] = static_cast<int>(blockIdx.x * 64 + threadIdx.x);
  __syncthreads();
  out[blockIdx.x * 64 + threadIdx.x] = s[63 - threadIdx.x] + static_cast<int>(__popc(__ballot_sync(0xFFFFFFFFu, threadIdx.x & 1u)));
}
__global__ void exited_lane(int* out) {  // undefined on a GPU: a lane of the mask has returned
  if (threadIdx.x == 3) return;
  out[threadIdx.x] = __shfl_xor_sync(0xFFFFFFFFu, 1, 1);
}
__global__ void outside_mask(int* out) {  // undefined on a GPU: reading a lane outside the mask
  if (threadIdx.x < 16) out[threadIdx.x] = __shfl_sync(0x0000FFFFu, 1, 20);
}
__global__ void deadlock(int* out) {  // half a warp waits at a shuffle, the other half at a barrier
  if (threadIdx.x < 16) {
    out[threadIdx.x] = __shfl_xor_sync(0xFFFFFFFFu, 1, 1);
  } else {
    __syncthreads();
  }
}
}  // namespace selftest

at::Tensor run_selftest(const std::string& name) {
  at::Tensor out = at::zeros({128}, at::kInt);
  int* o = out.data_ptr<int>();
  std::map<std::string, std::function<void()>> runs = {
      {"xor_sum", [&] { launch_kernel(&selftest::xor_sum, dim3(1), dim3(32), 0, o); }},
      {"segments", [&] { launch_kernel(&selftest::segments, dim3(1), dim3(32), 0, o); }},
      {"shared_and_barrier", [&] { launch_kernel(&selftest::shared_and_barrier, dim3(2), dim3(64), 0, o); }},
      {"exited_lane", [&] { launch_kernel(&selftest::exited_lane, dim3(1), dim3(32), 0, o); }},
      {"outside_mask", [&] { launch_kernel(&selftest::outside_mask, dim3(1), dim3(32), 0, o); }},
      {"deadlock", [&] { launch_kernel(&selftest::deadlock, dim3(1), dim3(32), 0, o); }},
  };
  auto it = runs.find(name);
  TORCH_CHECK(it != runs.end(), "unknown self-test ", name);
  try {
    it->second();
  } catch (const std::exception& e) {
    TORCH_CHECK(false, e.what());
  }
  return out;
}

}  // namespace

TORCH_LIBRARY(mlmetrics_cuda_emu, m) {
  m.def("selftest(str name) -> Tensor", &run_selftest);
  const char* args =
      "(Tensor logits, int k, Tensor? target, Tensor? label_ranges, Tensor? labels, Tensor? class_subset, "
      "bool with_softmax) "
      "-> (Tensor topk_logits, Tensor topk_indices, Tensor hits, Tensor row_stats, Tensor target_rank)";
  m.def((std::string("topk_stats") + args).c_str(), &emulated<cuda::v1::Kernel>);
  m.def((std::string("topk_stats_v2") + args).c_str(), &emulated<cuda::v2::Kernel>);
}

}  // namespace mlmetrics
