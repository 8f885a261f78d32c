// CUDA implementation of mlmetrics::topk_stats / softmax_topk / topk_label_hits.
// Contract: mlmetrics/reference.py (rank order, ties -> lower index, NaN above +inf, -0 == +0,
// non-finite policy). One read of the logits gives top-k, label hits, target rank and the
// online softmax statistics (max, logsumexp, entropy, sum of squared probabilities).
//
// Layouts (chosen on the host from C', the number of classes the op sees):
//   * C' <= 256   : 8 lanes per row (4 rows per warp), group kernel with G = 8;
//   * C' <= 4096  : one warp per row, group kernel with G = 32;
//   * larger      : one block per row (256 or 512 threads), per-warp merge then a block merge.
// Each thread keeps a sorted top-K buffer of 64-bit rank keys in registers (K = 8 or 32, a
// compile-time bucket >= k), filtered by the k-th key's 32-bit order key; buffers are merged with
// k rounds of a shuffle arg-max. Elements of a thread are visited in increasing class index, so an
// element whose order key equals the threshold's can never beat it (ties go to the lower index).
// Contiguous rows (column stride 1, no class_subset) use 128-bit loads after a per-row scalar head
// that reaches 16-byte alignment; anything else (strides, class_subset) uses scalar loads.
// k > 32 takes a slower general path: the fused kernel for the statistics and the target rank,
// then at::topk over unique 64-bit rank keys (built in row chunks) and a decode/hits kernel.
#include <ATen/ATen.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>
#include <cstdint>
#include <limits>

#include "schema.h"

namespace mlmetrics {
namespace {

// exp(x - m) for x - m below this is 0 in float32 (e^-104 is the last subnormal); clamping
// x - m here turns -inf - m, -inf - (-inf) (NaN) and NaN into an exact 0 contribution
// (fmaxf returns the non-NaN operand), so the e * d entropy term never becomes 0 * inf.
constexpr float kDiffFloor = -150.0f;

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
  if (P.subset != nullptr) {
    col = __ldg(P.subset + j);
    // The Python API checks the bounds; clamp so a bad index can never read out of bounds.
    col = col < 0 ? 0 : (col >= P.c_full ? P.c_full - 1 : col);
  }
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
// Per-thread accumulator: top-K rank keys (sorted, descending), target count, online softmax
// ---------------------------------------------------------------------------------------
template <int K>
struct Acc {
  uint64_t b[K];
  uint32_t thr;  // order key of b[k-1]: only a strictly larger order key can enter
  uint32_t cnt;  // elements ranked before the target
  float m, s, u, q;

  __device__ __forceinline__ void init() {
#pragma unroll
    for (int i = 0; i < K; ++i) b[i] = 0;
    thr = 0;
    cnt = 0;
    m = -INFINITY;
    s = u = q = 0.0f;
  }
  __device__ __forceinline__ void insert(uint64_t key, int k) {
#pragma unroll
    for (int i = K - 1; i > 0; --i) b[i] = key > b[i - 1] ? b[i - 1] : (key > b[i] ? key : b[i]);
    b[0] = key > b[0] ? key : b[0];
    // thr = order key of b[k-1], as a select chain (an indexed b[k-1] would put b in local memory)
    uint32_t t = static_cast<uint32_t>(b[0] >> 32);
#pragma unroll
    for (int i = 1; i < K; ++i) t = i < k ? static_cast<uint32_t>(b[i] >> 32) : t;
    thr = t;
  }
  __device__ __forceinline__ void pop() {
#pragma unroll
    for (int i = 0; i < K - 1; ++i) b[i] = b[i + 1];
    b[K - 1] = 0;
  }
  __device__ __forceinline__ void key_step(float x, uint32_t j, const RowConst& rc) {
    const uint32_t ok = order_key(x);
    if (ok > thr) insert(rank_key(ok, j), rc.k);
    cnt += (ok > rc.tkey || (ok == rc.tkey && j < rc.tidx)) ? 1u : 0u;
  }
  template <int V>
  __device__ __forceinline__ void soft_step(const float (&x)[V]) {
    float cm = x[0];
#pragma unroll
    for (int v = 1; v < V; ++v) cm = fmaxf(cm, x[v]);
    if (cm > m) {  // rescale to the new running max
      const float d = fmaxf(m - cm, kDiffFloor);
      const float a = __expf(d);
      u = a * fmaf(s, d, u);
      s *= a;
      q *= a * a;
      m = cm;
    }
#pragma unroll
    for (int v = 0; v < V; ++v) {
      const float d = fmaxf(x[v] - m, kDiffFloor);
      const float e = __expf(d);
      s += e;
      u = fmaf(e, d, u);
      q = fmaf(e, e, q);
    }
  }
};

// Merge of two online-softmax states (m, s, u, q).
__device__ __forceinline__ void merge_soft(float& m, float& s, float& u, float& q, float m2, float s2, float u2,
                                           float q2) {
  const float mn = fmaxf(m, m2);
  const float d1 = fmaxf(m - mn, kDiffFloor), d2 = fmaxf(m2 - mn, kDiffFloor);
  const float a1 = __expf(d1), a2 = __expf(d2);
  u = a1 * fmaf(s, d1, u) + a2 * fmaf(s2, d2, u2);
  s = s * a1 + s2 * a2;
  q = q * (a1 * a1) + q2 * (a2 * a2);
  m = mn;
}

template <int G>
__device__ __forceinline__ uint64_t group_max(uint64_t v) {
#pragma unroll
  for (int off = G / 2; off > 0; off >>= 1) {
    const uint64_t o = __shfl_xor_sync(0xFFFFFFFFu, v, off, G);
    v = o > v ? o : v;
  }
  return v;
}
template <int G>
__device__ __forceinline__ void group_reduce_soft(float& m, float& s, float& u, float& q, uint32_t& cnt,
                                                  bool softmax) {
#pragma unroll
  for (int off = G / 2; off > 0; off >>= 1) {
    cnt += __shfl_xor_sync(0xFFFFFFFFu, cnt, off, G);
    if (softmax) {
      const float m2 = __shfl_xor_sync(0xFFFFFFFFu, m, off, G);
      const float s2 = __shfl_xor_sync(0xFFFFFFFFu, s, off, G);
      const float u2 = __shfl_xor_sync(0xFFFFFFFFu, u, off, G);
      const float q2 = __shfl_xor_sync(0xFFFFFFFFu, q, off, G);
      merge_soft(m, s, u, q, m2, s2, u2, q2);
    }
  }
}

// Scan one row's classes [0, c) with lanes lane, lane + nl, ... (each thread in increasing index).
template <int DT, int K>
__device__ __forceinline__ void scan_row(const Params& P, int64_t row, int lane, int nl, const RowConst& rc,
                                         Acc<K>& acc) {
  using D = DType<DT>;
  using S = typename D::S;
  constexpr int V = D::V;
  constexpr int U = 4;  // vectors (or scalars) in flight per thread
  const int c = P.c;
  if (P.fast) {
    const S* rp = static_cast<const S*>(P.x) + row * P.rs;
    const uintptr_t addr = reinterpret_cast<uintptr_t>(rp);
    int h = static_cast<int>(((16u - static_cast<unsigned>(addr & 15u)) & 15u) / sizeof(S));
    if (h > c) h = c;
    if (lane < h) {  // scalar head up to 16-byte alignment (h < V <= nl)
      const float x[1] = {D::f(__ldg(rp + lane))};
      acc.key_step(x[0], static_cast<uint32_t>(lane), rc);
      if (P.softmax) acc.soft_step(x);
    }
    const int nv = (c - h) / V;
    const uint4* vp = reinterpret_cast<const uint4*>(rp + h);
    for (int v0 = lane; v0 < nv; v0 += U * nl) {
      uint4 w[U];
#pragma unroll
      for (int t = 0; t < U; ++t) {
        const int v = v0 + t * nl;
        w[t] = v < nv ? __ldg(vp + v) : make_uint4(0u, 0u, 0u, 0u);
      }
#pragma unroll
      for (int t = 0; t < U; ++t) {
        const int v = v0 + t * nl;
        if (v < nv) {
          float x[V];
          D::unpack(w[t], x);
          const uint32_t j0 = static_cast<uint32_t>(h + v * V);
#pragma unroll
          for (int e = 0; e < V; ++e) acc.key_step(x[e], j0 + e, rc);
          if (P.softmax) acc.soft_step(x);
        }
      }
    }
    const int t0 = h + nv * V;  // scalar tail (< V elements)
    if (t0 + lane < c) {
      const float x[1] = {D::f(__ldg(rp + t0 + lane))};
      acc.key_step(x[0], static_cast<uint32_t>(t0 + lane), rc);
      if (P.softmax) acc.soft_step(x);
    }
  } else {
    for (int j0 = lane; j0 < c; j0 += U * nl) {
      float x[U];
#pragma unroll
      for (int t = 0; t < U; ++t) {
        const int j = j0 + t * nl;
        x[t] = j < c ? load_x<DT>(P, row, j) : -INFINITY;  // -inf adds exactly 0 to the sums
      }
#pragma unroll
      for (int t = 0; t < U; ++t) {
        const int j = j0 + t * nl;
        if (j < c) acc.key_step(x[t], static_cast<uint32_t>(j), rc);
      }
      if (P.softmax) acc.soft_step(x);
    }
  }
}

__device__ __forceinline__ void write_topk_entry(const Params& P, int64_t row, int r, uint64_t key) {
  const int64_t o = row * P.k + r;
  const uint32_t idx = rank_key_index(key);
  P.out_val[o] = key_value(static_cast<uint32_t>(key >> 32));
  P.out_idx[o] = static_cast<int64_t>(idx);
  if (P.out_hits != nullptr) P.out_hits[o] = label_hit(P, row, idx);
}

__device__ __forceinline__ void write_row_stats(const Params& P, int64_t row, uint64_t top, float m, float s,
                                                float u, float q, uint32_t cnt, const RowConst& rc) {
  const float qnan = __uint_as_float(0x7FC00000u);
  const uint32_t maxok = static_cast<uint32_t>(top >> 32);
  // NaN or +inf present (order keys >= +inf's), or every entry -inf (the max is -inf).
  const bool nonfinite = maxok >= kKeyPosInf || maxok == kKeyNegInf;
  float lse = qnan, ent = qnan, p2 = qnan, lnorm = qnan;
  if (P.softmax && !nonfinite) {
    const double ls = log(static_cast<double>(s));  // accurate log (fast-math maps logf to __logf)
    lse = static_cast<float>(static_cast<double>(m) + ls);
    lnorm = static_cast<float>(ls);
    ent = static_cast<float>(ls - static_cast<double>(u) / static_cast<double>(s));
    p2 = static_cast<float>(static_cast<double>(q) / (static_cast<double>(s) * static_cast<double>(s)));
  }
  float* st = P.stats + row * kNumStats;
  st[kStatMaxLogit] = key_value(maxok);
  st[kStatLogSumExp] = lse;
  st[kStatLogNormalizer] = lnorm;
  st[kStatEntropy] = ent;
  st[kStatSumP2] = p2;
  st[kStatTargetLogit] = rc.xt;
  st[kStatNonFinite] = nonfinite ? 1.0f : 0.0f;
  if (P.out_rank != nullptr) P.out_rank[row] = rc.tvalid ? static_cast<int64_t>(cnt) : int64_t{-1};
}

// ---------------------------------------------------------------------------------------
// G lanes per row (G = 8 or 32), blockDim.x / G rows per block.
// ---------------------------------------------------------------------------------------
template <int DT, int K, int G>
__global__ void __launch_bounds__(256) topk_group_kernel(const Params P) {
  const int lane = static_cast<int>(threadIdx.x) % G;
  const int64_t row = static_cast<int64_t>(blockIdx.x) * (blockDim.x / G) + threadIdx.x / G;
  const bool valid = row < P.n;
  Acc<K> acc;
  acc.init();
  const RowConst rc = row_const<DT>(P, row, valid);
  if (valid) scan_row<DT, K>(P, row, lane, G, rc, acc);
  // every lane of the warp takes part in the shuffles below (rows past N hold nothing)
  group_reduce_soft<G>(acc.m, acc.s, acc.u, acc.q, acc.cnt, P.softmax);
  uint64_t top = 0;
  for (int r = 0; r < rc.k; ++r) {
    const uint64_t best = group_max<G>(acc.b[0]);
    if (acc.b[0] == best) acc.pop();  // keys are unique (class index in the low word)
    if (r == 0) top = best;
    if (valid && P.write_topk && lane == (r % G)) write_topk_entry(P, row, r, best);
  }
  if (valid && lane == 0) write_row_stats(P, row, top, acc.m, acc.s, acc.u, acc.q, acc.cnt, rc);
}

// ---------------------------------------------------------------------------------------
// One block per row (blockDim.x a multiple of 32, <= 512).
// ---------------------------------------------------------------------------------------
template <int DT, int K>
__global__ void __launch_bounds__(512) topk_block_kernel(const Params P) {
  __shared__ uint64_t s_keys[16][K];
  __shared__ float s_soft[16][4];
  __shared__ uint32_t s_cnt[16];
  const int64_t row = blockIdx.x;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
  Acc<K> acc;
  acc.init();
  const RowConst rc = row_const<DT>(P, row, true);
  scan_row<DT, K>(P, row, threadIdx.x, blockDim.x, rc, acc);
  group_reduce_soft<32>(acc.m, acc.s, acc.u, acc.q, acc.cnt, P.softmax);
  for (int r = 0; r < rc.k; ++r) {
    const uint64_t best = group_max<32>(acc.b[0]);
    if (acc.b[0] == best) acc.pop();
    if (lane == 0) s_keys[warp][r] = best;
  }
  if (lane == 0) {
    s_soft[warp][0] = acc.m;
    s_soft[warp][1] = acc.s;
    s_soft[warp][2] = acc.u;
    s_soft[warp][3] = acc.q;
    s_cnt[warp] = acc.cnt;
  }
  __syncthreads();
  if (warp != 0) return;
  const bool have = lane < nw;
  float m = have ? s_soft[lane][0] : -INFINITY, s = have ? s_soft[lane][1] : 0.0f;
  float u = have ? s_soft[lane][2] : 0.0f, q = have ? s_soft[lane][3] : 0.0f;
  uint32_t cnt = have ? s_cnt[lane] : 0u;
  group_reduce_soft<32>(m, s, u, q, cnt, P.softmax);
  int pos = 0;
  uint64_t top = 0;
  for (int r = 0; r < rc.k; ++r) {
    const uint64_t head = (have && pos < rc.k) ? s_keys[lane][pos] : uint64_t{0};
    const uint64_t best = group_max<32>(head);
    if (have && head == best) ++pos;
    if (r == 0) top = best;
    if (P.write_topk && lane == (r & 31)) write_topk_entry(P, row, r, best);
  }
  if (lane == 0) write_row_stats(P, row, top, m, s, u, q, cnt, rc);
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

int grid_for(int64_t total, int threads) {
  const int64_t blocks = (total + threads - 1) / threads;
  return static_cast<int>(blocks < 65535 * 16 ? (blocks < 1 ? 1 : blocks) : 65535 * 16);
}

template <int DT, int K>
void launch_fused(const Params& P, cudaStream_t stream) {
  const int c = P.c;
  if (c <= 256) {
    constexpr int threads = 256, G = 8;
    const int64_t blocks = (P.n + threads / G - 1) / (threads / G);
    topk_group_kernel<DT, K, G><<<static_cast<unsigned>(blocks), threads, 0, stream>>>(P);
  } else if (c <= 4096) {
    constexpr int threads = 256, G = 32;
    const int64_t blocks = (P.n + threads / G - 1) / (threads / G);
    topk_group_kernel<DT, K, G><<<static_cast<unsigned>(blocks), threads, 0, stream>>>(P);
  } else {
    const int threads = c <= 16384 ? 256 : 512;
    topk_block_kernel<DT, K><<<static_cast<unsigned>(P.n), threads, 0, stream>>>(P);
  }
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

template <int DT>
void run_dtype(Params P, cudaStream_t stream) {
  if (P.k <= 8) {
    launch_fused<DT, 8>(P, stream);
    return;
  }
  if (P.k <= 32) {
    launch_fused<DT, 32>(P, stream);
    return;
  }
  // General path. Statistics + target rank from the fused kernel (top-1 only) ...
  Params S = P;
  S.k = 1;
  S.write_topk = false;
  launch_fused<DT, 8>(S, stream);
  // ... then the top-k over unique 64-bit rank keys, in row chunks of at most ~256 MB of keys.
  const int64_t chunk = std::max<int64_t>(1, (int64_t{256} << 20) / (static_cast<int64_t>(P.c) * 8));
  auto key_opts = at::TensorOptions().dtype(at::kLong).device(at::kCUDA, c10::cuda::current_device());
  for (int64_t r0 = 0; r0 < P.n; r0 += chunk) {
    const int64_t nr = std::min(chunk, P.n - r0);
    at::Tensor keys = at::empty({nr, static_cast<int64_t>(P.c)}, key_opts);
    rank_keys_kernel<DT><<<grid_for(nr * P.c, 256), 256, 0, stream>>>(P, r0, nr, keys.data_ptr<int64_t>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
    at::Tensor top = std::get<0>(at::topk(keys, P.k, /*dim=*/1, /*largest=*/true, /*sorted=*/true)).contiguous();
    decode_topk_kernel<<<grid_for(nr * P.k, 256), 256, 0, stream>>>(P, r0, nr, top.data_ptr<int64_t>(), P.k);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  }
}

}  // namespace

TopKStatsResult topk_stats_cuda(const at::Tensor& logits, int64_t k, const std::optional<at::Tensor>& target,
                                const std::optional<at::Tensor>& label_ranges,
                                const std::optional<at::Tensor>& labels,
                                const std::optional<at::Tensor>& class_subset, bool with_softmax) {
  check_topk_stats_inputs(logits, k, target, label_ranges, labels, class_subset);
  TORCH_CHECK(logits.is_cuda(), "mlmetrics: topk_stats_cuda needs a CUDA tensor");
  const c10::cuda::CUDAGuard guard(logits.device());
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

  cudaStream_t stream = at::cuda::getCurrentCUDAStream();
  switch (logits.scalar_type()) {
    case at::kFloat:
      run_dtype<0>(P, stream);
      break;
    case at::kHalf:
      run_dtype<1>(P, stream);
      break;
    case at::kBFloat16:
      run_dtype<2>(P, stream);
      break;
    default:
      TORCH_CHECK(false, "mlmetrics: unsupported logits dtype");
  }
  return {topk_logits, topk_indices, hits, row_stats, target_rank};
}

TORCH_LIBRARY_IMPL(mlmetrics, CUDA, m) {
  m.impl("topk_stats", &topk_stats_cuda);
  m.impl("softmax_topk", &softmax_topk_via<topk_stats_cuda>);
  m.impl("topk_label_hits", &topk_label_hits_via<topk_stats_cuda>);
}

}  // namespace mlmetrics
