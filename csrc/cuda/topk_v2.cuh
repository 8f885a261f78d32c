// topk_stats kernel v2: the design of the Triton "filtered" kernel (mlmetrics/ops/triton/filtered.py)
// in CUDA. Verified by the CPU emulation (tests/ops/test_topk_stats_cuda_emu.py) and costed by the
// static SASS budget (benchmarks/gpu_static/cuda.py); not yet run on a GPU, so backend="auto"
// never picks it (backend="cuda_v2" does).
//
// Three kernels, by row length (launch_plan.h): rows of 33 ... 1024 classes are read once into
// registers (topk_v2_rows.cuh), rows past 2048 classes take a block each (topk_v2_long.cuh), the
// rest (C <= 32, C = 1025 ... 2048) the streaming kernel below.
//
// Streaming: a row is scanned by a segment of W lanes (W = 1 or 8 lanes of a warp) in tiles of
// U 128-bit vectors per lane; every index of a tile is above every index of the tiles before it.
// Per tile, on the common path:
//   * one NaN-propagating max per element gives each lane's tile max cm;
//   * the tile is admitted (the exact path runs, for the whole segment: one vote) only when some
//     lane's cm can enter the top-k (!(cm < key_value(thr)); NaN is always admitted) or exceeds
//     the softmax reference r by more than kSlack nats;
//   * softmax sums relative to r, shared by the segment: e = 2^(x log2e - r log2e) in one FFMA
//     and one MUFU.EX2 (argument clamped at kExp2Underflow so -inf entries add exactly 0), no rescaling.
// The exact path (always for a row's first tile): r moves to the segment's max (one rescale),
// each lane inserts the tile's order keys above thr into its sorted top-K buffer of 32-bit
// (order key, index) pairs, and the segment's threshold rises to the largest k-th key of its
// lanes (strict: later elements have higher indices, so an equal key cannot enter) and, on the
// first tile, to the k-th largest of the lanes' maxima (accept >=).
// The end of a row: plain segment sums (r is shared, so no exp), k rounds of a shuffle arg-max
// over the lanes' buffers. Rows whose |r| > 1e7 (fl(r log2e) more than a unit off) or whose sums
// are not finite are summed again relative to the exact maximum (resum_huge_row; every v2 kernel).
// SOFTMAX is a template parameter (no softmax branch in the loop); a target rank is counted
// with exact order keys when the row has a target.
#pragma once

#include "common.cuh"

namespace mlmetrics {
namespace cuda {
namespace v2 {

constexpr int U = 4;                                // 128-bit vectors (or scalars) per lane per tile
constexpr float kLog2e = 1.44269502162933349609375f;  // log2(e) rounded to float32 (exact in double)
constexpr double kLn2 = 0.6931471805599453;
constexpr float kExp2Underflow = -150.0f;  // 2^d is 0 in float32 below this; clamps -inf / NaN arguments
constexpr float kSlack = 22.0f;       // nats r may trail a tile max: e <= 2^32, sum e^2 finite
constexpr float kRefInit = -1.0e38f;  // finite: x log2e - r log2e never meets inf - inf

// max that propagates NaN (a tile holding NaN must be admitted)
__device__ __forceinline__ float max_nan(float a, float b) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  float r;
  asm("max.NaN.f32 %0, %1, %2;" : "=f"(r) : "f"(a), "f"(b));
  return r;
#else
  return (a != a || b != b) ? __uint_as_float(0x7FFFFFFFu) : fmaxf(a, b);
#endif
}

// The NaN-propagating max of a tile of N (U) 128-bit vectors: on 16-bit dtypes two elements per
// instruction (max.NaN.{f16,bf16}x2; exact: the max of the float conversions), then the two halves.
template <int DT, int N = U>
__device__ __forceinline__ float tile_max(const uint4 (&w)[N]) {
  using D = DType<DT>;
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  if constexpr (DT != 0) {
    uint32_t m = w[0].x;
#pragma unroll
    for (int t = 0; t < N; ++t) {
      const uint32_t v[4] = {w[t].x, w[t].y, w[t].z, w[t].w};
#pragma unroll
      for (int i = t == 0 ? 1 : 0; i < 4; ++i) {
        if constexpr (DT == 1) {
          asm("max.NaN.f16x2 %0, %1, %2;" : "=r"(m) : "r"(m), "r"(v[i]));
        } else {
          asm("max.NaN.bf16x2 %0, %1, %2;" : "=r"(m) : "r"(m), "r"(v[i]));
        }
      }
    }
    float lo, hi;
    if constexpr (DT == 1) {
      D::h2(m, lo, hi);
    } else {
      lo = __uint_as_float(m << 16);
      hi = __uint_as_float(m & 0xFFFF0000u);
    }
    return max_nan(lo, hi);
  }
#endif
  float cm = 0.0f;
#pragma unroll
  for (int t = 0; t < N; ++t) {
    float x[D::V];
    D::unpack(w[t], x);
#pragma unroll
    for (int e = 0; e < D::V; ++e) cm = t == 0 && e == 0 ? x[0] : max_nan(cm, x[e]);
  }
  return cm;
}

template <int W>
__device__ __forceinline__ uint32_t seg_max_u32(uint32_t v, uint32_t mask) {
#pragma unroll
  for (int off = W / 2; off > 0; off >>= 1) v = max(v, __shfl_xor_sync(mask, v, off, W));
  return v;
}
template <int W>
__device__ __forceinline__ float seg_max_f(float v, uint32_t mask) {
#pragma unroll
  for (int off = W / 2; off > 0; off >>= 1) v = fmaxf(v, __shfl_xor_sync(mask, v, off, W));
  return v;
}
template <int W>
__device__ __forceinline__ float seg_sum_f(float v, uint32_t mask) {
#pragma unroll
  for (int off = W / 2; off > 0; off >>= 1) v += __shfl_xor_sync(mask, v, off, W);
  return v;
}
template <int W>
__device__ __forceinline__ uint32_t seg_sum_u32(uint32_t v, uint32_t mask) {
#pragma unroll
  for (int off = W / 2; off > 0; off >>= 1) v += __shfl_xor_sync(mask, v, off, W);
  return v;
}
template <int W>
__device__ __forceinline__ uint64_t seg_max_u64(uint64_t v, uint32_t mask) {
#pragma unroll
  for (int off = W / 2; off > 0; off >>= 1) {
    const uint64_t o = __shfl_xor_sync(mask, v, off, W);
    v = o > v ? o : v;
  }
  return v;
}
// The k-th largest of the W lanes' values (bitonic sort, descending; k <= W).
template <int W>
__device__ __forceinline__ uint32_t seg_kth_largest(uint32_t v, int wl, int k, uint32_t mask) {
#pragma unroll
  for (int size = 2; size <= W; size <<= 1) {
#pragma unroll
    for (int stride = size / 2; stride > 0; stride >>= 1) {
      const uint32_t o = __shfl_xor_sync(mask, v, stride, W);
      const bool desc = (wl & size) == 0 || size == W;
      const bool lower = (wl & stride) == 0;
      v = (lower == desc) ? max(v, o) : min(v, o);
    }
  }
  return __shfl_sync(mask, v, k - 1, W);
}

// One lane's softmax sums and target count for one row.
struct Soft {
  uint32_t cnt;    // elements ranked before the target
  float r, rl;     // softmax reference (natural units) and fl(r log2e), shared by the segment
  float s, u, q;   // sum 2^d, sum 2^d d, sum 2^(2d), d = x log2e - rl

  __device__ __forceinline__ void init_soft() {
    cnt = 0u;
    r = kRefInit;
    rl = kRefInit * kLog2e;
    s = u = q = 0.0f;
  }
  // Move the reference up to r_new (>= r): one rescale of the sums.
  __device__ __forceinline__ void move_ref(float r_new) {
    const float rl_new = r_new * kLog2e;
    const float dl = fmaxf(rl - rl_new, kExp2Underflow);
    const float a = exp2f(dl);
    u = a * fmaf(s, dl, u);
    s *= a;
    q *= a * a;
    r = r_new;
    rl = rl_new;
  }
  __device__ __forceinline__ void soft(float x) {
    const float d = fmaxf(fmaf(x, kLog2e, -rl), kExp2Underflow);
    add_exp(d);
  }
  // one term, d already clamped (>= kExp2Underflow, or finite far below it)
  __device__ __forceinline__ void add_exp(float d) {
    const float p = exp2f(d);
    s += p;
    u = fmaf(p, d, u);
    q = fmaf(p, p, q);
  }
  __device__ __forceinline__ void count_target(float x, uint32_t j, uint32_t c, const RowConst& rc) {
    const uint32_t ok = order_key(x);
    cnt += (j < c && (ok > rc.tkey || (ok == rc.tkey && j < rc.tidx))) ? 1u : 0u;
  }
};

// Rows whose reference fl(r log2e) is off by more than a unit (|r| > kHugeLogit: 2^error over- or
// underflows the terms) or whose sums are not finite (-inf or NaN entries): the sums again, relative
// to the exact row maximum, clamped (-inf adds 0). Per row, after the scan: the hot loops do not change.
constexpr float kHugeLogit = 1.0e7f;
__device__ __forceinline__ bool not_finite(float v) { return (__float_as_uint(v) & 0x7F800000u) == 0x7F800000u; }

// Lane `lane` of the segment `mask` (nl lanes; rl = fl(r log2e) segment-uniform, top = the row's
// best rank key) with its sums s, u, q relative to rl: on a rare row, its sums over classes lane,
// lane + nl, ... of the row (read again) relative to the row maximum m, d = (x - m) log2e, and ref = m
// (else unchanged; ref = r in natural units). The segment sums follow as on the common path.
template <int DT>
__device__ __forceinline__ void resum_huge_row(const Params& P, int64_t row, uint64_t top, int lane, int nl,
                                               uint32_t mask, float rl, float& s, float& u, float& q, double& ref) {
  if (!__any_sync(mask, fabsf(rl) > kHugeLogit * kLog2e || not_finite(s + u + q))) return;
  const float m = key_value(static_cast<uint32_t>(top >> 32));
  if (not_finite(m)) return;  // NaN, +inf or an all -inf row: the statistics are NaN
  Soft F;
  F.init_soft();
#pragma unroll 1
  for (int64_t j = lane; j < P.c; j += nl) F.add_exp(fmaxf((load_x<DT>(P, row, j) - m) * kLog2e, kExp2Underflow));
  s = F.s;
  u = F.u;
  q = F.q;
  ref = m;
}

// The end of a row scanned by a segment `seg` of G lanes: the segment's softmax sums (a rare row
// summed again first, resum_huge_row) and lane 0 writes the row's statistics. rl: the segment's
// fl(r log2e); s, u, q: this lane's sums relative to it; cnt: the segment's target count.
template <int DT, int G, bool SOFTMAX>
__device__ __forceinline__ void finish_segment_row(const Params& P, int64_t row, uint64_t top, int lane,
                                                   uint32_t seg, float rl, float s, float u, float q, uint32_t cnt,
                                                   const RowConst& rc) {
  double ref = static_cast<double>(rl) / static_cast<double>(kLog2e);
  if (SOFTMAX) {
    resum_huge_row<DT>(P, row, top, lane, G, seg, rl, s, u, q, ref);
    s = seg_sum_f<G>(s, seg);
    u = seg_sum_f<G>(u, seg);
    q = seg_sum_f<G>(q, seg);
  } else {
    s = u = q = 0.0f;
  }
  if (lane == 0) write_row_stats(P, row, top, ref, s, u, q, cnt, rc, kLn2);
}

// One lane's state for one row: the sums and a sorted top-K buffer.
template <int K>
struct Lane : Soft {
  uint32_t bk[K];  // order keys, descending (0: empty)
  uint32_t bi[K];  // their class indices
  uint32_t thr;    // only an order key > thr can enter the top-k
  float thr_f;     // key_value(thr): the float admission test (NaN for thr = 0 admits everything)
  uint32_t lmax;   // order key of the largest element seen (first-tile seed)

  __device__ __forceinline__ void init() {
#pragma unroll
    for (int i = 0; i < K; ++i) bk[i] = bi[i] = 0u;
    set_thr(0u);
    lmax = 0u;
    init_soft();
  }
  __device__ __forceinline__ void set_thr(uint32_t t) {
    thr = t;
    thr_f = key_value(t);
  }
  __device__ __forceinline__ uint64_t head() const { return rank_key(bk[0], bi[0]); }
  // k-th own order key, as a select chain (an indexed bk[k-1] would put the arrays in local memory)
  __device__ __forceinline__ uint32_t kth(int k) const {
    uint32_t t = bk[0];
#pragma unroll
    for (int i = 1; i < K; ++i) t = i < k ? bk[i] : t;
    return t;
  }
  // Insert (ok, j): j is above every index held, so it goes below every equal key.
  __device__ __forceinline__ void insert(uint32_t ok, uint32_t j) {
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
  }
  __device__ __forceinline__ void pop() {
#pragma unroll
    for (int i = 0; i < K - 1; ++i) {
      bk[i] = bk[i + 1];
      bi[i] = bi[i + 1];
    }
    bk[K - 1] = bi[K - 1] = 0u;
  }
};

template <int NE>
__device__ __forceinline__ float elems_max(const float (&x)[NE]) {
  float cm = x[0];
#pragma unroll
  for (int e = 1; e < NE; ++e) cm = max_nan(cm, x[e]);
  return cm;
}

// One tile of NE elements per lane (x[e] at class index j[e]; j >= c marks padding, x = -inf;
// cm = the NaN-propagating max of x), called by every lane of the segment `mask` (W lanes; wl =
// lane within the segment).
template <int W, int K, bool SOFTMAX, int NE>
__device__ __forceinline__ void tile(Lane<K>& L, const float (&x)[NE], const uint32_t (&j)[NE], float cm,
                                     uint32_t c, const RowConst& rc, bool first, int wl, uint32_t mask) {
  bool want = !(cm < L.thr_f);
  if (SOFTMAX) want = want || cm > L.r + kSlack;
  if (__any_sync(mask, want) || first) {  // the exact path, segment-uniform
    if (SOFTMAX) {
      const float r_new = fmaxf(L.r, seg_max_f<W>(cm, mask));  // fmaxf: NaN never becomes r
      if (r_new > L.r) L.move_ref(r_new);
    }
    L.lmax = max(L.lmax, order_key(cm));  // (padding is -inf: a valid, weak seed)
#pragma unroll
    for (int e = 0; e < NE; ++e) {
      if (!(x[e] < L.thr_f) && j[e] < c) {  // the float test first: order keys only for candidates
        const uint32_t ok = order_key(x[e]);
        if (ok > L.thr) L.insert(ok, j[e]);
      }
    }
    uint32_t t = seg_max_u32<W>(L.kth(rc.k), mask);
    if (first && rc.k <= W) {
      const uint32_t seed = seg_kth_largest<W>(L.lmax, wl, rc.k, mask);
      if (seed > 0u && seed - 1u > t) t = seed - 1u;
    }
    if (t > L.thr) L.set_thr(t);
  }
  if (SOFTMAX) {
#pragma unroll
    for (int e = 0; e < NE; ++e) L.soft(x[e]);
  }
  if (rc.tvalid) {
#pragma unroll
    for (int e = 0; e < NE; ++e) L.count_target(x[e], j[e], c, rc);
  }
}

// Scan one row's classes [0, c): lane `lane` of `nl` lanes; W-lane segments share thresholds.
template <int DT, int K, int W, bool SOFTMAX>
__device__ __forceinline__ void scan_row(const Params& P, int64_t row, int lane, int nl, const RowConst& rc,
                                         Lane<K>& L, uint32_t mask) {
  using D = DType<DT>;
  using S = typename D::S;
  constexpr int V = D::V;
  const uint32_t c = static_cast<uint32_t>(P.c);
  const int wl = lane % W;
  const float ninf = -INFINITY;
  if (P.fast && nl >= V) {  // (the head and tail below need a lane per element of a vector)
    const S* rp = static_cast<const S*>(P.x) + row * P.rs;
    const uintptr_t addr = reinterpret_cast<uintptr_t>(rp);
    int h = static_cast<int>(((16u - static_cast<unsigned>(addr & 15u)) & 15u) / sizeof(S));
    if (h > static_cast<int>(c)) h = static_cast<int>(c);
    {  // the scalar head up to 16-byte alignment (h < V <= nl), as the row's first (exact) tile
      const bool in = lane < h;
      const float xh[1] = {in ? D::f(__ldg(rp + lane)) : ninf};
      const uint32_t jh[1] = {in ? static_cast<uint32_t>(lane) : c};
      tile<W, K, SOFTMAX, 1>(L, xh, jh, xh[0], c, rc, false, wl, mask);
    }
    const int nv = (static_cast<int>(c) - h) / V;
    const uint4* vp = reinterpret_cast<const uint4*>(rp + h);
    const int step = U * nl;
    const int full = nv - nv % step;  // vectors in full tiles
    for (int base = 0; base < full; base += step) {  // the hot loop: no bounds checks
      uint4 w[U];
#pragma unroll
      for (int t = 0; t < U; ++t) w[t] = __ldg(vp + base + lane + t * nl);
      float x[U * V];
      uint32_t j[U * V];
#pragma unroll
      for (int t = 0; t < U; ++t) {
        float xv[V];
        D::unpack(w[t], xv);
#pragma unroll
        for (int e = 0; e < V; ++e) {
          x[t * V + e] = xv[e];
          j[t * V + e] = static_cast<uint32_t>(h + (base + lane + t * nl) * V + e);
        }
      }
      tile<W, K, SOFTMAX, U * V>(L, x, j, tile_max<DT>(w), c, rc, base == 0, wl, mask);  // the first seeds thresholds
    }
    if (full < nv) {  // the last, partial tile
      float x[U * V];
      uint32_t j[U * V];
#pragma unroll
      for (int t = 0; t < U; ++t) {
        const int v = full + lane + t * nl;
        const bool in = v < nv;
        float xv[V];
        D::unpack(in ? __ldg(vp + v) : make_uint4(0u, 0u, 0u, 0u), xv);
#pragma unroll
        for (int e = 0; e < V; ++e) {
          x[t * V + e] = in ? xv[e] : ninf;
          j[t * V + e] = in ? static_cast<uint32_t>(h + v * V + e) : c;
        }
      }
      tile<W, K, SOFTMAX, U * V>(L, x, j, elems_max(x), c, rc, full == 0, wl, mask);
    }
    const int t0 = h + nv * V;  // the scalar tail (< V elements)
    if (t0 < static_cast<int>(c)) {
      const bool in = t0 + lane < static_cast<int>(c);
      const float xt[1] = {in ? D::f(__ldg(rp + t0 + lane)) : ninf};
      const uint32_t jt[1] = {in ? static_cast<uint32_t>(t0 + lane) : c};
      tile<W, K, SOFTMAX, 1>(L, xt, jt, xt[0], c, rc, false, wl, mask);
    }
  } else {
    for (int base = 0; base < static_cast<int>(c); base += U * nl) {
      float x[U];
      uint32_t j[U];
#pragma unroll
      for (int t = 0; t < U; ++t) {
        const int jj = base + lane + t * nl;
        const bool in = jj < static_cast<int>(c);
        x[t] = in ? load_x<DT>(P, row, jj) : ninf;
        j[t] = in ? static_cast<uint32_t>(jj) : c;
      }
      tile<W, K, SOFTMAX, U>(L, x, j, elems_max(x), c, rc, base == 0, wl, mask);
    }
  }
}

// Writes the row's outputs from its segment's merged state (lane wl == 0 writes the stats).
template <int W, int K>
__device__ __forceinline__ uint64_t merge_topk(const Params& P, int64_t row, Lane<K>& L, int wl, uint32_t mask,
                                               bool write) {
  uint64_t top = 0;
#pragma unroll 1
  for (int r = 0; r < P.k; ++r) {
    const uint64_t best = seg_max_u64<W>(L.head(), mask);
    if (L.head() == best) L.pop();  // keys are unique (class index in the low word)
    if (r == 0) top = best;
    if (write && P.write_topk && wl == (r % W)) write_topk_entry(P, row, r, best);
  }
  return top;
}

// ---------------------------------------------------------------------------------------
// G lanes per row (G = 1, 8 or 32), blockDim.x / G rows per block.
// ---------------------------------------------------------------------------------------
template <int DT, int K, int G, bool SOFTMAX>
__global__ void __launch_bounds__(256) topk_group_kernel(const Params P) {
  const int lane = static_cast<int>(threadIdx.x) % G;
  const int64_t row = static_cast<int64_t>(blockIdx.x) * (blockDim.x / G) + threadIdx.x / G;
  if (row >= P.n) return;  // the whole segment (one row) leaves together
  const uint32_t seg = G == 32 ? 0xFFFFFFFFu : (((1u << G) - 1u) << ((threadIdx.x & 31u) & ~(G - 1u)));
  Lane<K> L;
  L.init();
  const RowConst rc = row_const<DT>(P, row, true);
  scan_row<DT, K, G, SOFTMAX>(P, row, lane, G, rc, L, seg);
  const uint64_t top = merge_topk<G, K>(P, row, L, lane, seg, true);
  const uint32_t cnt = seg_sum_u32<G>(L.cnt, seg);
  finish_segment_row<DT, G, SOFTMAX>(P, row, top, lane, seg, L.rl, L.s, L.u, L.q, cnt, rc);  // r is shared: plain sums
}

}  // namespace v2
}  // namespace cuda
}  // namespace mlmetrics

#include "topk_v2_long.cuh"
#include "topk_v2_rows.cuh"

namespace mlmetrics {
namespace cuda {
namespace v2 {

#if !defined(MLMETRICS_DEVICE_ONLY)
template <int DT, bool SOFTMAX>
void launch_rows(const Params& P, const plan::LaunchPlan& lp, cudaStream_t stream) {
  auto kernel = lp.lanes == 8    ? &topk_rows_kernel<DT, 8, 16, SOFTMAX>
                : lp.lanes == 32 ? &topk_rows_kernel<DT, 32, 32, SOFTMAX>
                : lp.slots == 16 ? &topk_rows_kernel<DT, 16, 16, SOFTMAX>
                : lp.slots == 32 ? &topk_rows_kernel<DT, 16, 32, SOFTMAX>
                                 : &topk_rows_kernel<DT, 16, 64, SOFTMAX>;
  launch_kernel(kernel, dim3(static_cast<unsigned>(lp.blocks)), dim3(lp.threads), stream, P);
}

template <int DT, int K, bool SOFTMAX>
void launch_fused(const Params& P, const plan::LaunchPlan& lp, cudaStream_t stream) {
  if (lp.layout == plan::kRowsLayout) {
    launch_rows<DT, SOFTMAX>(P, lp, stream);
  } else if (lp.layout == plan::kGroupLayout) {
    auto kernel = lp.lanes == 1 ? &topk_group_kernel<DT, K, 1, SOFTMAX> : &topk_group_kernel<DT, K, 8, SOFTMAX>;
    launch_kernel(kernel, dim3(static_cast<unsigned>(lp.blocks)), dim3(lp.threads), stream, P);
  } else {
    launch_kernel(&topk_long_kernel<DT, SOFTMAX>, dim3(static_cast<unsigned>(lp.blocks)), dim3(lp.threads), stream,
                  P);
  }
}

struct Kernel {
  static constexpr int kVersion = 2;
  template <int DT>
  static void run(Params P, const at::TensorOptions& key_opts, cudaStream_t stream) {
    const plan::LaunchPlan lp = plan::launch_plan(P.n, P.c, P.k, kVersion);
    Params F = P;
    F.k = lp.kernel_k;
    F.write_topk = !lp.general;
    if (lp.k_slots == 8) {
      P.softmax ? launch_fused<DT, 8, true>(F, lp, stream) : launch_fused<DT, 8, false>(F, lp, stream);
    } else {
      P.softmax ? launch_fused<DT, 32, true>(F, lp, stream) : launch_fused<DT, 32, false>(F, lp, stream);
    }
    if (lp.general) general_topk<DT>(P, key_opts, stream);
  }
};
#endif  // !MLMETRICS_DEVICE_ONLY

}  // namespace v2
}  // namespace cuda
}  // namespace mlmetrics
