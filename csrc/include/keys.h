// Rank-order keys: one definition for the CPU and CUDA kernels (Triton's twin is
// mlmetrics/ops/triton/keys.py: order_key / rank_key / key_value, the same names).
//
// order_key(x): a uint32 whose unsigned order is the rank order of float32 values:
//   NaN (any payload) above +inf above every finite value above -inf; -0.0 == +0.0;
//   subnormals keep their order (computed on the bits, so -ftz / --use_fast_math cannot merge them).
// rank_key(x, j): order_key in the high word, ~j in the low word: a larger rank_key is earlier in
//   rank order, and equal values go to the lower class index.
// key_value(order key): the float32 of an order key (-0.0 comes back as +0.0, NaN as a quiet NaN).
#pragma once

#include <cstdint>
#include <cstring>

#if defined(__CUDACC__)
#define MLM_HOST_DEVICE __host__ __device__ __forceinline__
#else
#define MLM_HOST_DEVICE inline
#endif

namespace mlmetrics {

constexpr uint32_t kKeyNaN = 0xFFFFFFFFu;     // order_key(NaN)
constexpr uint32_t kKeyPosInf = 0xFF800000u;  // order_key(+inf)
constexpr uint32_t kKeyNegInf = 0x007FFFFFu;  // order_key(-inf)

MLM_HOST_DEVICE uint32_t float_bits(float x) {
#if defined(__CUDA_ARCH__)
  return __float_as_uint(x);
#else
  uint32_t u;
  std::memcpy(&u, &x, sizeof(u));
  return u;
#endif
}

MLM_HOST_DEVICE float bits_float(uint32_t u) {
#if defined(__CUDA_ARCH__)
  return __uint_as_float(u);
#else
  float x;
  std::memcpy(&x, &u, sizeof(x));
  return x;
#endif
}

MLM_HOST_DEVICE uint32_t order_key(float x) {
  uint32_t u = float_bits(x);
  const uint32_t a = u & 0x7FFFFFFFu;
  if (a > 0x7F800000u) return kKeyNaN;
  if (a == 0u) u = 0u;  // -0.0 -> +0.0
  return u ^ (static_cast<uint32_t>(static_cast<int32_t>(u) >> 31) | 0x80000000u);
}

MLM_HOST_DEVICE uint64_t rank_key(uint32_t order, uint32_t index) {
  return (static_cast<uint64_t>(order) << 32) | static_cast<uint64_t>(~index);
}
MLM_HOST_DEVICE uint64_t rank_key(float x, uint32_t index) { return rank_key(order_key(x), index); }
MLM_HOST_DEVICE uint32_t rank_key_index(uint64_t key) { return ~static_cast<uint32_t>(key); }

MLM_HOST_DEVICE float key_value(uint32_t key) {
  if (key == kKeyNaN) return bits_float(0x7FC00000u);
  return bits_float((key & 0x80000000u) ? (key & 0x7FFFFFFFu) : ~key);
}

}  // namespace mlmetrics
