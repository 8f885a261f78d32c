// What the kernels need from the platform, for a real CUDA build (nvcc) or the CPU emulation
// (MLM_CUDA_EMU, csrc/cuda/emu/cuda_emu.h): the device-side types, and on the host
// launch_kernel, the current stream, a device guard (left out under MLMETRICS_DEVICE_ONLY, a
// translation unit of device code alone).
#pragma once

#include <tuple>
#include <utility>

#if defined(MLM_CUDA_EMU)
#include "emu/cuda_emu.h"
#else
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#endif

#if !defined(MLMETRICS_DEVICE_ONLY)
#include <ATen/ATen.h>
#if !defined(MLM_CUDA_EMU)
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#endif

namespace mlmetrics {

#if defined(MLM_CUDA_EMU)
constexpr bool kEmulated = true;
struct DeviceGuard {
  explicit DeviceGuard(const at::Device&) {}
};
inline cudaStream_t current_stream() { return 0; }
template <class... KA, class... A>
void launch_kernel(void (*kernel)(KA...), dim3 grid, dim3 block, cudaStream_t, A&&... args) {
  std::tuple<std::decay_t<KA>...> t(std::forward<A>(args)...);
  mlm_emu::launch(grid, block, [&] { std::apply(kernel, t); });
}
#else
constexpr bool kEmulated = false;
using DeviceGuard = c10::cuda::CUDAGuard;
inline cudaStream_t current_stream() { return at::cuda::getCurrentCUDAStream(); }
template <class... KA, class... A>
void launch_kernel(void (*kernel)(KA...), dim3 grid, dim3 block, cudaStream_t stream, A&&... args) {
  std::tuple<std::decay_t<KA>...> t(std::forward<A>(args)...);
  std::apply(
      [&](auto&... a) {
        void* argv[] = {static_cast<void*>(&a)...};
        C10_CUDA_CHECK(cudaLaunchKernel(reinterpret_cast<const void*>(kernel), grid, block, argv, 0, stream));
      },
      t);
}
#endif

}  // namespace mlmetrics

#endif  // !MLMETRICS_DEVICE_ONLY
