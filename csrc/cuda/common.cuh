// Device code shared by the topk_stats kernels (v1: topk_v1.cuh, v2: topk_v2.cuh): dtypes,
// parameters, loads, label hits, the per-row outputs, and the general path for k > 32.
// Contract: mlmetrics/ops/reference.py (rank order, ties -> lower index, NaN above +inf,
// -0 == +0, non-finite policy).
#pragma once

#include <algorithm>
#include <cstdint>
#include <limits>

#include "device.cuh"
#include "launch_plan.h"
#include "schema.h"

namespace mlmetrics {
namespace cuda {

// exp(x - m) for x - m below this is 0 in float32 (e^-104 is the last subnormal); clamping
// x - m here turns -inf - m, -inf - (-inf) (NaN) and NaN into an exact 0 contribution
// (fmaxf returns the non-NaN operand), so the e * d entropy term never becomes 0 * inf.
constexpr float kExpUnderflow = -150.0f;

// ---------------------------------------------------------------------------------------
// dtypes: storage type, elements per 128-bit vector, conversion to float (exact)
// ---------------------------------------------------------------------------------------
template <int DT>
struct DType;
template <>
struct DType<0> {  // float32
  using S = float;
  static constexpr int V = 4;
  static __device__ __forceinline__ float f(S v) { return v; }
  static __device__ __forceinline__ void unpack(const uint4& w, float (&x)[V]) {
    x[0] = __uint_as_float(w.x);
    x[1] = __uint_as_float(w.y);
    x[2] = __uint_as_float(w.z);
    x[3] = __uint_as_float(w.w);
  }
};
template <>
struct DType<1> {  // float16
  using S = unsigned short;
  static constexpr int V = 8;
  static __device__ __forceinline__ float f(S v) { return __half2float(__ushort_as_half(v)); }
  static __device__ __forceinline__ void h2(uint32_t w, float& lo, float& hi) {
    lo = __half2float(__ushort_as_half(static_cast<unsigned short>(w & 0xFFFFu)));
    hi = __half2float(__ushort_as_half(static_cast<unsigned short>(w >> 16)));
  }
  static __device__ __forceinline__ void unpack(const uint4& w, float (&x)[V]) {
    h2(w.x, x[0], x[1]);
    h2(w.y, x[2], x[3]);
    h2(w.z, x[4], x[5]);
    h2(w.w, x[6], x[7]);
  }
};
template <>
struct DType<2> {  // bfloat16
  using S = unsigned short;
  static constexpr int V = 8;
  static __device__ __forceinline__ float f(S v) { return __uint_as_float(static_cast<uint32_t>(v) << 16); }
  static __device__ __forceinline__ void unpack(const uint4& w, float (&x)[V]) {
    x[0] = __uint_as_float(w.x << 16);
    x[1] = __uint_as_float(w.x & 0xFFFF0000u);
    x[2] = __uint_as_float(w.y << 16);
    x[3] = __uint_as_float(w.y & 0xFFFF0000u);
    x[4] = __uint_as_float(w.z << 16);
    x[5] = __uint_as_float(w.z & 0xFFFF0000u);
    x[6] = __uint_as_float(w.w << 16);
    x[7] = __uint_as_float(w.w & 0xFFFF0000u);
  }
};

// ---------------------------------------------------------------------------------------
// Kernel parameters
// ---------------------------------------------------------------------------------------
struct Params {
  const void* x;
  int64_t n;        // rows
  int32_t c;        // classes the op sees (C' with class_subset)
  int64_t c_full;   // logits.size(1)
  int64_t rs, cs;   // row / column strides (elements)
  const int64_t* subset;  // [c] or nullptr
  bool fast;        // column stride 1, no subset: vectorised loads
  int32_t k;
  bool softmax;
  bool write_topk;  // false: statistics and target rank only (general path)
  const int64_t* target;  // [n] or nullptr
  const int64_t* ranges;  // [n, 2] or nullptr
  const void* labels;
  bool labels64;
  int64_t num_labels;
  float* out_val;
  int64_t* out_idx;
  bool* out_hits;  // nullptr without label sets
  float* stats;
  int64_t* out_rank;  // nullptr without target
};

template <int DT>
__device__ __forceinline__ float load_x(const Params& P, int64_t row, int64_t j) {
  using S = typename DType<DT>::S;
  int64_t col = j;
  if (P.subset != nullptr) col = __ldg(P.subset + j);  // in [0, c_full): check_class_subset
  return DType<DT>::f(__ldg(static_cast<const S*>(P.x) + row * P.rs + col * P.cs));
}

__device__ __forceinline__ bool label_hit(const Params& P, int64_t row, uint32_t idx) {
  int64_t b = P.ranges[2 * row], e = P.ranges[2 * row + 1];
  b = b < 0 ? 0 : (b > P.num_labels ? P.num_labels : b);
  e = e < b ? b : (e > P.num_labels ? P.num_labels : e);
  const int64_t v = idx;
  if (P.labels64) {
    const int64_t* lab = static_cast<const int64_t*>(P.labels);
    for (int64_t l = b; l < e; ++l)
      if (lab[l] == v) return true;
  } else {
    const int32_t* lab = static_cast<const int32_t*>(P.labels);
    for (int64_t l = b; l < e; ++l)
      if (static_cast<int64_t>(lab[l]) == v) return true;
  }
  return false;
}

// Per-row constants: the target's order key/index (load the target logit first).
struct RowConst {
  uint32_t tkey;  // kKeyNaN with tidx 0 when there is no (valid) target: counts nothing
  uint32_t tidx;
  int32_t k;
  float xt;  // target logit (NaN without a valid target)
  bool tvalid;
};

template <int DT>
__device__ __forceinline__ RowConst row_const(const Params& P, int64_t row, bool valid) {
  RowConst rc;
  rc.tkey = kKeyNaN;
  rc.tidx = 0;
  rc.k = P.k;
  rc.xt = __uint_as_float(0x7FC00000u);
  rc.tvalid = false;
  if (valid && P.target != nullptr) {
    const int64_t t = __ldg(P.target + row);
    if (t >= 0 && t < P.c) {
      rc.tvalid = true;
      rc.xt = load_x<DT>(P, row, t);
      rc.tkey = order_key(rc.xt);
      rc.tidx = static_cast<uint32_t>(t);
    }
  }
  return rc;
}

// ---------------------------------------------------------------------------------------
// Per-row outputs
// ---------------------------------------------------------------------------------------
__device__ __forceinline__ void write_topk_entry(const Params& P, int64_t row, int r, uint64_t key) {
  const int64_t o = row * P.k + r;
  const uint32_t idx = rank_key_index(key);
  P.out_val[o] = key_value(static_cast<uint32_t>(key >> 32));
  P.out_idx[o] = static_cast<int64_t>(idx);
  if (P.out_hits != nullptr) P.out_hits[o] = label_hit(P, row, idx);
}

// (ref, s, u, q): the row's softmax sums relative to a reference ref (natural units, in double):
// s = sum e^(x - ref), u = sum e^(x - ref) d with d = (x - ref) / entropy_unit (1 for natural-log
// d, ln 2 for base-2 d), q = sum e^(2 (x - ref)). Everything past the sums is float64.
__device__ __forceinline__ void write_row_stats(const Params& P, int64_t row, uint64_t top, double ref, float s,
                                                float u, float q, uint32_t cnt, const RowConst& rc,
                                                double entropy_unit = 1.0) {
  const float qnan = __uint_as_float(0x7FC00000u);
  const uint32_t maxok = static_cast<uint32_t>(top >> 32);
  const float max_logit = key_value(maxok);
  // NaN or +inf present (order keys >= +inf's), or every entry -inf (the max is -inf).
  const bool nonfinite = maxok >= kKeyPosInf || maxok == kKeyNegInf;
  float lse = qnan, ent = qnan, p2 = qnan, lnorm = qnan;
  if (P.softmax && !nonfinite) {
    const double ls = log(static_cast<double>(s));  // accurate log (fast-math maps logf to __logf)
    lse = static_cast<float>(ref + ls);
    lnorm = static_cast<float>((ref - static_cast<double>(max_logit)) + ls);
    ent = static_cast<float>(ls - entropy_unit * static_cast<double>(u) / static_cast<double>(s));
    p2 = static_cast<float>(static_cast<double>(q) / (static_cast<double>(s) * static_cast<double>(s)));
  }
  float* st = P.stats + row * kNumStats;
  st[kStatMaxLogit] = max_logit;
  st[kStatLogSumExp] = lse;
  st[kStatLogNormalizer] = lnorm;
  st[kStatEntropy] = ent;
  st[kStatSumP2] = p2;
  st[kStatTargetLogit] = rc.xt;
  st[kStatNonFinite] = nonfinite ? 1.0f : 0.0f;
  if (P.out_rank != nullptr) P.out_rank[row] = rc.tvalid ? static_cast<int64_t>(cnt) : int64_t{-1};
}

// ---------------------------------------------------------------------------------------
// General path for k > 32: unique signed rank keys, at::topk, decode.
// ---------------------------------------------------------------------------------------
constexpr uint64_t kSignFlip = 0x8000000000000000ull;

template <int DT>
__global__ void rank_keys_kernel(const Params P, int64_t row0, int64_t nrows, int64_t* __restrict__ keys) {
  const int64_t total = nrows * P.c;
  for (int64_t t = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; t < total;
       t += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t i = t / P.c;
    const int64_t j = t - i * P.c;
    const float x = load_x<DT>(P, row0 + i, j);
    keys[t] = static_cast<int64_t>(rank_key(order_key(x), static_cast<uint32_t>(j)) ^ kSignFlip);
  }
}

__global__ void decode_topk_kernel(const Params P, int64_t row0, int64_t nrows, const int64_t* __restrict__ top,
                                   int64_t top_rs) {
  const int64_t total = nrows * P.k;
  for (int64_t t = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; t < total;
       t += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t i = t / P.k;
    const int r = static_cast<int>(t - i * P.k);
    const uint64_t key = static_cast<uint64_t>(top[i * top_rs + r]) ^ kSignFlip;
    write_topk_entry(P, row0 + i, r, key);
  }
}

inline int grid_for(int64_t total, int threads) {
  const int64_t blocks = (total + threads - 1) / threads;
  return static_cast<int>(blocks < 65535 * 16 ? (blocks < 1 ? 1 : blocks) : 65535 * 16);
}

#if !defined(MLMETRICS_DEVICE_ONLY)
// The top-k of rows [0, n) by at::topk over unique 64-bit rank keys, in row chunks of at most
// ~256 MB of keys (the statistics and target rank come from a fused kernel run with k = 1).
template <int DT>
void general_topk(const Params& P, const at::TensorOptions& key_opts, cudaStream_t stream) {
  const int64_t chunk = std::max<int64_t>(1, (int64_t{256} << 20) / (static_cast<int64_t>(P.c) * 8));
  for (int64_t r0 = 0; r0 < P.n; r0 += chunk) {
    const int64_t nr = std::min(chunk, P.n - r0);
    at::Tensor keys = at::empty({nr, static_cast<int64_t>(P.c)}, key_opts);
    launch_kernel(&rank_keys_kernel<DT>, dim3(grid_for(nr * P.c, 256)), dim3(256), stream, P, r0, nr,
                  keys.data_ptr<int64_t>());
    at::Tensor top = std::get<0>(at::topk(keys, P.k, /*dim=*/1, /*largest=*/true, /*sorted=*/true)).contiguous();
    launch_kernel(&decode_topk_kernel, dim3(grid_for(nr * P.k, 256)), dim3(256), stream, P, r0, nr,
                  static_cast<const int64_t*>(top.data_ptr<int64_t>()), P.k);
  }
}
#endif  // !MLMETRICS_DEVICE_ONLY

}  // namespace cuda
}  // namespace mlmetrics
