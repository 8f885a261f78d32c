// topk_stats kernel v2: the v1 layouts with warp-shared thresholds, a per-vector float
// pre-filter, 32-bit key/index buffers and a base-2 online softmax. Verified by the CPU
// emulation (tests/ops/test_topk_stats_cuda_emu.py) and the static SASS budget
// (benchmarks/gpu_static/cuda.py); not yet run on a GPU, so backend="auto" never picks it.
//
// * Warp-shared thresholds. Between batches of U = 4 vectors per lane, the lanes of a row's warp
//   segment take the max of their k-th own keys (a lower bound of the row's k-th key, exact with a
//   strict `>` because every later element has a higher class index). Before the first batch they
//   seed the threshold with the k-th largest of the lanes' maxima over that batch (bitonic sort of
//   the segment's lanes; accept `>=`).
// * A per-vector float pre-filter (`!(max_nan(vector) < key_value(thr))`, conservative under -ftz,
//   NaN-propagating) replaces the per-element order-key compare; the exact order-key test and the
//   insert run only inside that (rare) branch.
// * Top-K buffers as two 32-bit arrays (order key, index).
// * Online softmax in base 2 (exp2 of (x - m) log2 e), entropy = ln s - ln 2 u / s.
#pragma once

#include "common.cuh"

namespace mlmetrics {
namespace cuda {
namespace v2 {

// ---------------------------------------------------------------------------------------
// Per-thread accumulator: top-K (order key, index) sorted descending, target count, online softmax
// ---------------------------------------------------------------------------------------
constexpr float kLog2e = 1.4426950408889634f;
constexpr float kLn2 = 0.6931471805599453f;

// max that propagates NaN (a vector holding NaN must pass the top-k filter)
__device__ __forceinline__ float max_nan(float a, float b) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  float r;
  asm("max.NaN.f32 %0, %1, %2;" : "=f"(r) : "f"(a), "f"(b));
  return r;
#else
  return (a != a || b != b) ? __uint_as_float(0x7FFFFFFFu) : fmaxf(a, b);
#endif
}

template <int K>
struct Acc {
  uint32_t bk[K];  // order keys, descending
  uint32_t bi[K];  // their class indices
  uint32_t thr;    // filter: only an order key > thr can enter (>= the k-th key of this thread)
  float thr_f;     // key_value(thr): a conservative float pre-filter (NaN accepts everything)
  uint32_t cnt;    // elements ranked before the target
  // online softmax in base 2: m running max (natural units), s = sum 2^d, u = sum 2^d d,
  // q = sum 2^(2d) with d = (x - m) log2(e); entropy = ln s - ln2 u / s.
  float m, s, u, q;

  __device__ __forceinline__ void init() {
#pragma unroll
    for (int i = 0; i < K; ++i) bk[i] = bi[i] = 0u;
    set_thr(0u);
    cnt = 0;
    m = -INFINITY;
    s = u = q = 0.0f;
  }
  __device__ __forceinline__ void set_thr(uint32_t t) {
    thr = t;
    thr_f = key_value(t);  // key 0 (empty buffer) -> NaN -> pre-filter accepts everything
  }
  __device__ __forceinline__ uint64_t head() const { return rank_key(bk[0], bi[0]); }
  // k-th own order key, as a select chain (an indexed bk[k-1] would put the arrays in local memory)
  __device__ __forceinline__ uint32_t kth(int k) const {
    uint32_t t = bk[0];
#pragma unroll
    for (int i = 1; i < K; ++i) t = i < k ? bk[i] : t;
    return t;
  }
  // Insert (ok, j); ok > every equal-key entry's position since j is larger than any index held.
  __device__ __forceinline__ void insert(uint32_t ok, uint32_t j, int k) {
#pragma unroll
    for (int i = K - 1; i > 0; --i) {
      const bool up = ok > bk[i - 1], here = ok > bk[i];
      bk[i] = up ? bk[i - 1] : (here ? ok : bk[i]);
      bi[i] = up ? bi[i - 1] : (here ? j : bi[i]);
    }
    if (ok > bk[0]) {
      bk[0] = ok;
      bi[0] = j;
    }
    const uint32_t t = kth(k);
    if (t > thr) set_thr(t);
  }
  __device__ __forceinline__ void pop() {
#pragma unroll
    for (int i = 0; i < K - 1; ++i) {
      bk[i] = bk[i + 1];
      bi[i] = bi[i + 1];
    }
    bk[K - 1] = bi[K - 1] = 0u;
  }
  // V elements, element e has class index j0 + e * js; indices >= c are padding (-inf).
  template <int V>
  __device__ __forceinline__ void step(const float (&x)[V], uint32_t j0, uint32_t js, uint32_t c,
                                       const RowConst& rc, bool softmax) {
    float cm = x[0];
#pragma unroll
    for (int e = 1; e < V; ++e) cm = max_nan(cm, x[e]);
    if (!(cm < thr_f)) {  // rare after the first elements: exact order-key test
#pragma unroll
      for (int e = 0; e < V; ++e) {
        const uint32_t ok = order_key(x[e]), j = j0 + e * js;
        if (ok > thr && j < c) insert(ok, j, rc.k);
      }
    }
    if (rc.tvalid) {
#pragma unroll
      for (int e = 0; e < V; ++e) {
        const uint32_t ok = order_key(x[e]), j = j0 + e * js;
        cnt += (ok > rc.tkey || (ok == rc.tkey && j < rc.tidx)) ? 1u : 0u;
      }
    }
    if (softmax) {
      // cm is NaN only if the row holds NaN: its statistics are NaN whatever m, s, u, q hold.
      if (cm > m) {  // rescale to the new running max
        const float d = fmaxf((m - cm) * kLog2e, kDiffFloor);
        const float a = exp2f(d);
        u = a * fmaf(s, d, u);
        s *= a;
        q *= a * a;
        m = cm;
      }
#pragma unroll
      for (int e = 0; e < V; ++e) {
        const float d = fmaxf((x[e] - m) * kLog2e, kDiffFloor);  // x - m first: exact near m
        const float p = exp2f(d);
        s += p;
        u = fmaf(p, d, u);
        q = fmaf(p, p, q);
      }
    }
  }
};

// Merge of two online-softmax states (m, s, u, q) (base-2 form, see Acc).
__device__ __forceinline__ void merge_soft(float& m, float& s, float& u, float& q, float m2, float s2, float u2,
                                           float q2) {
  const float mn = fmaxf(m, m2);
  const float d1 = fmaxf((m - mn) * kLog2e, kDiffFloor), d2 = fmaxf((m2 - mn) * kLog2e, kDiffFloor);
  const float a1 = exp2f(d1), a2 = exp2f(d2);
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
__device__ __forceinline__ uint32_t group_max32(uint32_t v, uint32_t mask) {
#pragma unroll
  for (int off = G / 2; off > 0; off >>= 1) v = max(v, __shfl_xor_sync(mask, v, off, G));
  return v;
}
// The k-th largest of the G lanes' values (bitonic sort, descending; k <= G).
template <int G>
__device__ __forceinline__ uint32_t group_kth_largest(uint32_t v, int lane, int k, uint32_t mask) {
#pragma unroll
  for (int size = 2; size <= G; size <<= 1) {
#pragma unroll
    for (int stride = size / 2; stride > 0; stride >>= 1) {
      const uint32_t o = __shfl_xor_sync(mask, v, stride, G);
      const bool desc = (lane & size) == 0 || size == G;
      const bool lower = (lane & stride) == 0;
      v = (lower == desc) ? max(v, o) : min(v, o);
    }
  }
  return __shfl_sync(mask, v, k - 1, G);
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

// Threshold sharing among the W lanes of a warp segment (W = G for the group kernel, 32 for the
// block kernel), called at loop points every lane reaches:
//  * after a batch: the largest k-th own key of the segment (each lane holds k keys >= its own
//    k-th; every later element of any lane has a higher class index, so the strict test stays exact);
//  * before the first batch: the k-th largest of the lanes' maxima over that batch (k lanes hold an
//    element >= it, and those elements are not processed yet: accept keys >= it, thr = it - 1).
template <int W, int K>
__device__ __forceinline__ void share_thr(Acc<K>& acc, int k, uint32_t mask) {
  const uint32_t t = group_max32<W>(acc.kth(k), mask);
  if (t > acc.thr) acc.set_thr(t);
}
template <int W, int K>
__device__ __forceinline__ void seed_thr(Acc<K>& acc, uint32_t lane_max, int wl, int k, uint32_t mask) {
  if (k > W) return;
  const uint32_t t = group_kth_largest<W>(lane_max, wl, k, mask);
  if (t > 0u && t - 1u > acc.thr) acc.set_thr(t - 1u);
}

// Scan one row's classes [0, c) with lanes lane, lane + nl, ... (each thread in increasing class
// index, batch by batch; the W lanes `mask` of a warp (one row, same trip counts) share thresholds
// between batches).
template <int DT, int K, int W>
__device__ __forceinline__ void scan_row(const Params& P, int64_t row, int lane, int nl, const RowConst& rc,
                                         Acc<K>& acc, uint32_t mask) {
  using D = DType<DT>;
  using S = typename D::S;
  constexpr int V = D::V;
  constexpr int U = 4;  // vectors (or scalars) in flight per thread
  const int c = P.c;
  const int wl = lane % W;
  const bool soft = P.softmax;
  if (P.fast) {
    const S* rp = static_cast<const S*>(P.x) + row * P.rs;
    const uintptr_t addr = reinterpret_cast<uintptr_t>(rp);
    int h = static_cast<int>(((16u - static_cast<unsigned>(addr & 15u)) & 15u) / sizeof(S));
    if (h > c) h = c;
    if (lane < h) {  // scalar head up to 16-byte alignment (h < V <= nl)
      const float x[1] = {D::f(__ldg(rp + lane))};
      acc.step(x, static_cast<uint32_t>(lane), 1u, c, rc, soft);
    }
    const int nv = (c - h) / V;
    const uint4* vp = reinterpret_cast<const uint4*>(rp + h);
    for (int base = 0; base < nv; base += U * nl) {  // uniform trip count
      uint4 w[U];
#pragma unroll
      for (int t = 0; t < U; ++t) {
        const int v = base + lane + t * nl;
        w[t] = v < nv ? __ldg(vp + v) : make_uint4(0u, 0u, 0u, 0u);
      }
      if (base == 0) {
        uint32_t lm = 0u;
#pragma unroll
        for (int t = 0; t < U; ++t) {
          if (base + lane + t * nl < nv) {
            float x[V];
            D::unpack(w[t], x);
            float mx = x[0];
#pragma unroll
            for (int e = 1; e < V; ++e) mx = max_nan(mx, x[e]);
            lm = max(lm, order_key(mx));
          }
        }
        seed_thr<W>(acc, lm, wl, rc.k, mask);
      }
#pragma unroll
      for (int t = 0; t < U; ++t) {
        const int v = base + lane + t * nl;
        if (v < nv) {
          float x[V];
          D::unpack(w[t], x);
          acc.step(x, static_cast<uint32_t>(h + v * V), 1u, c, rc, soft);
        }
      }
      share_thr<W>(acc, rc.k, mask);
    }
    const int t0 = h + nv * V;  // scalar tail (< V elements)
    if (t0 + lane < c) {
      const float x[1] = {D::f(__ldg(rp + t0 + lane))};
      acc.step(x, static_cast<uint32_t>(t0 + lane), 1u, c, rc, soft);
    }
  } else {
    for (int base = 0; base < c; base += U * nl) {  // uniform trip count
      float x[U];
      uint32_t lm = 0u;
#pragma unroll
      for (int t = 0; t < U; ++t) {
        const int j = base + lane + t * nl;
        x[t] = j < c ? load_x<DT>(P, row, j) : -INFINITY;  // padding: never inserted, adds 0
        if (j < c) lm = max(lm, order_key(x[t]));
      }
      if (base == 0) seed_thr<W>(acc, lm, wl, rc.k, mask);
      acc.step(x, static_cast<uint32_t>(base + lane), static_cast<uint32_t>(nl), c, rc, soft);
      share_thr<W>(acc, rc.k, mask);
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
  // the G lanes of this row (rows past N skip the scan and its segment-wide shuffles)
  const uint32_t seg = G == 32 ? 0xFFFFFFFFu : (((1u << G) - 1u) << ((threadIdx.x & 31u) & ~(G - 1u)));
  if (valid) scan_row<DT, K, G>(P, row, lane, G, rc, acc, seg);
  // every lane of the warp takes part in the shuffles below (rows past N hold nothing)
  group_reduce_soft<G>(acc.m, acc.s, acc.u, acc.q, acc.cnt, P.softmax);
  uint64_t top = 0;
  for (int r = 0; r < rc.k; ++r) {
    const uint64_t best = group_max<G>(acc.head());
    if (acc.head() == best) acc.pop();  // keys are unique (class index in the low word)
    if (r == 0) top = best;
    if (valid && P.write_topk && lane == (r % G)) write_topk_entry(P, row, r, best);
  }
  if (valid && lane == 0) write_row_stats(P, row, top, acc.m, acc.s, acc.u, acc.q, acc.cnt, rc, kLn2);
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
  scan_row<DT, K, 32>(P, row, threadIdx.x, blockDim.x, rc, acc, 0xFFFFFFFFu);
  group_reduce_soft<32>(acc.m, acc.s, acc.u, acc.q, acc.cnt, P.softmax);
  for (int r = 0; r < rc.k; ++r) {
    const uint64_t best = group_max<32>(acc.head());
    if (acc.head() == best) acc.pop();
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
  if (lane == 0) write_row_stats(P, row, top, m, s, u, q, cnt, rc, kLn2);
}

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
  static constexpr const char* kName = "v2";
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

}  // namespace v2
}  // namespace cuda
}  // namespace mlmetrics
