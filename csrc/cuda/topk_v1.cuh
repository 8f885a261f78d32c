// topk_stats kernel v1: per-thread sorted top-K buffers of 64-bit rank keys (K = 8 or 32 slots),
// each thread filtering against its own k-th key; buffers merged with k rounds of a shuffle
// arg-max. The kernel that ran on a GPU (benchmarks/results/gpu_cuda_notes.md).
//
// Layouts: launch_plan.h. Contiguous rows (column stride 1, no class_subset) use 128-bit loads
// after a per-row scalar head that reaches 16-byte alignment; other layouts use scalar loads.
// Elements of a thread are visited in increasing class index, so an element whose order key
// equals the threshold's can never beat it (ties go to the lower index).
#pragma once

#include "common.cuh"

namespace mlmetrics {
namespace cuda {
namespace v1 {

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
      const float d = fmaxf(m - cm, kExpUnderflow);
      const float a = __expf(d);
      u = a * fmaf(s, d, u);
      s *= a;
      q *= a * a;
      m = cm;
    }
#pragma unroll
    for (int v = 0; v < V; ++v) {
      const float d = fmaxf(x[v] - m, kExpUnderflow);
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
  const float d1 = fmaxf(m - mn, kExpUnderflow), d2 = fmaxf(m2 - mn, kExpUnderflow);
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

#if !defined(MLMETRICS_DEVICE_ONLY)
template <int DT, int K>
void launch_fused(const Params& P, const plan::LaunchPlan& lp, cudaStream_t stream) {
  if (lp.layout == plan::kGroupLayout) {
    auto kernel = lp.lanes == 8 ? &topk_group_kernel<DT, K, 8> : &topk_group_kernel<DT, K, 32>;
    launch_kernel(kernel, dim3(static_cast<unsigned>(lp.blocks)), dim3(lp.threads), stream, P);
  } else {
    launch_kernel(&topk_block_kernel<DT, K>, dim3(static_cast<unsigned>(lp.blocks)), dim3(lp.threads), stream, P);
  }
}

struct Kernel {
  static constexpr const char* kName = "v1";
  template <int DT>
  static void run(Params P, const at::TensorOptions& key_opts, cudaStream_t stream) {
    const plan::LaunchPlan lp = plan::launch_plan(P.n, P.c, P.k);
    Params F = P;
    F.k = lp.kernel_k;
    F.write_topk = !lp.general;
    if (lp.k_slots == 8) {
      launch_fused<DT, 8>(F, lp, stream);
    } else {
      launch_fused<DT, 32>(F, lp, stream);
    }
    if (lp.general) general_topk<DT>(P, key_opts, stream);
  }
};
#endif  // !MLMETRICS_DEVICE_ONLY

}  // namespace v1
}  // namespace cuda
}  // namespace mlmetrics
