// topk_stats kernel v2 for long rows (C > 2048): one block per row, each warp a segment that
// streams tiles of UL 128-bit vectors per lane. Included by topk_v2.cuh (its helpers: Soft,
// tile_max, seg_*, the constants).
//
// Each warp keeps the exact top-k of its candidates as a sorted list spread over its lanes
// (lane r < k holds the r-th best rank key). A tile takes the exact path only when some lane's
// NaN-propagating tile max reaches the threshold or passes the softmax reference by kSlack nats;
// on it, each lane marks its vectors whose max reaches the threshold (one compare per vector; the
// row's head, tail and partial last tile: per element), reads a marked vector again to find its
// candidates, and the warp inserts them one at a time (a ballot picks the lane, a shuffle-up makes
// room). The
// threshold is the larger of
//   * the warp's own k-th order key + 1 (its later elements have higher indices: an equal key
//     cannot enter) and
//   * the block's: the largest k-th order key any warp has published in shared memory (other
//     warps may be behind, at lower indices: an equal key may enter), read once per tile;
// on a warp's first tile, the k-th largest of its lanes' tile maxima seeds it (k <= 32: k
// distinct elements reach it). Every element of the row's top-k is a candidate of its warp, so
// the merge of the warps' lists is exact. Softmax as in the streaming kernel (topk_v2.cuh); on
// bf16 the exp argument is clamped on packed pairs (max.bf16x2 against r - 120 nats and more:
// the terms it changes are 0 in float32 either way). A row of huge logits (resum_huge_row) is
// read again by warp 0 alone.
#pragma once

namespace mlmetrics {
namespace cuda {
namespace v2 {

constexpr int UL = 8;  // 128-bit vectors (or scalars) per lane per tile

// The warp's top-k so far: lane r < k holds its r-th best rank key (0: none yet).
struct WarpTop {
  uint64_t e;    // this lane's entry
  uint64_t kth;  // entry k - 1 (warp-uniform)

  // Insert a warp-uniform rank key (unique: a class index is seen once).
  __device__ __forceinline__ void insert(uint64_t c, int lane, int k) {
    if (c <= kth) return;
    const int pos = __popc(__ballot_sync(0xFFFFFFFFu, lane < k && e > c));
    const uint64_t up = __shfl_up_sync(0xFFFFFFFFu, e, 1);
    if (lane < k) e = lane == pos ? c : (lane > pos ? up : e);
    kth = __shfl_sync(0xFFFFFFFFu, e, k - 1);
  }
  // Insert every lane's key (0: none), one lane at a time (a ballot picks them).
  __device__ __forceinline__ void insert_lanes(uint64_t key, int lane, int k) {
    uint32_t who = __ballot_sync(0xFFFFFFFFu, key != 0);
#pragma unroll 1
    while (who != 0) {
      const int src = __ffs(static_cast<int>(who)) - 1;
      who &= who - 1;
      insert(__shfl_sync(0xFFFFFFFFu, key, src), lane, k);
    }
  }
  // Only an order key >= this can enter the warp's list.
  __device__ __forceinline__ uint32_t own_bound() const {
    const uint32_t ok = static_cast<uint32_t>(kth >> 32);
    return ok == 0u ? 0u : (ok == kKeyNaN ? ok : ok + 1u);
  }
};

// The exact path's candidates: lanes mark their elements x[e] (class idx(e); >= c: padding) that
// reach thr_f, then the warp inserts them one at a time. Returns nothing; T is updated.
template <int DT, int NE, class Idx>
__device__ __forceinline__ void insert_candidates(const Params& P, int64_t row, WarpTop& T, const float (&x)[NE],
                                                  Idx idx, uint32_t c, float thr_f, int lane, int k) {
  static_assert(NE <= 64, "one 64-bit candidate mask");
  uint64_t bits = 0;
#pragma unroll
  for (int e = 0; e < NE; ++e)
    if (!(x[e] < thr_f)) bits |= uint64_t{1} << e;
#pragma unroll 1
  while (__any_sync(0xFFFFFFFFu, bits != 0)) {
    uint64_t key = 0;
    if (bits != 0) {
      const int e = __ffsll(static_cast<long long>(bits)) - 1;
      bits &= bits - 1;
      const uint32_t j = idx(e);
      if (j < c) key = rank_key(order_key(load_x<DT>(P, row, j)), j);  // read again (cached)
    }
    T.insert_lanes(key, lane, k);
  }
}

// The hot loop's exact path: the same for a full tile of UL vectors per lane (w, at vector
// indices v0 + t nl of the row's aligned part vp, classes h + v V + e), one compare per vector (its
// NaN-propagating max) into a mask; a candidate vector is read again and its elements compared.
template <int DT>
__device__ __forceinline__ void insert_vector_candidates(const Params& P, int64_t row, WarpTop& T,
                                                         const uint4 (&w)[UL], const uint4* vp, int v0, int nl, int h,
                                                         float thr_f, int lane, int k) {
  using D = DType<DT>;
  constexpr int V = D::V;
  uint32_t vbits = 0;
#pragma unroll
  for (int t = 0; t < UL; ++t) {
    const uint4 one[1] = {w[t]};
    if (!(tile_max<DT, 1>(one) < thr_f)) vbits |= 1u << t;
  }
  uint32_t em = 0;  // candidates of the vector `cur` not yet inserted
  int cur = 0;
#pragma unroll 1
  while (__any_sync(0xFFFFFFFFu, (vbits | em) != 0)) {
    if (em == 0 && vbits != 0) {
      cur = v0 + (__ffs(static_cast<int>(vbits)) - 1) * nl;
      vbits &= vbits - 1;
      float xv[V];
      D::unpack(__ldg(vp + cur), xv);  // read again (cached)
#pragma unroll
      for (int e = 0; e < V; ++e)
        if (!(xv[e] < thr_f)) em |= 1u << e;
    }
    uint64_t key = 0;
    if (em != 0) {
      const int e = __ffs(static_cast<int>(em)) - 1;
      em &= em - 1;
      const uint32_t j = static_cast<uint32_t>(h + cur * V + e);
      key = rank_key(order_key(load_x<DT>(P, row, j)), j);
    }
    T.insert_lanes(key, lane, k);
  }
}

// bf16x2 pair of the clamp bound for exp arguments: at most r - 120 nats - |r| / 64 (a term
// below it is 2^(<= -173) = 0 in float32), rounded down to bf16; finite (r >= kRefInit).
__device__ __forceinline__ uint32_t bf16_floor_pair(float r) {
  const float b = r - 120.0f - fabsf(r) * 0.015625f;
  uint32_t u = __float_as_uint(b);
  // round toward -inf to bf16: b < 0 rounds its magnitude up, b >= 0 truncates
  if ((u & 0xFFFFu) != 0u && (u & 0x80000000u) != 0u) u += 0x10000u;
  u >>= 16;
  return u | (u << 16);
}

// Per-warp row state.
struct LongRow : Soft {
  WarpTop T;
  uint32_t thr;   // the admission bound (order key)
  float thr_f;    // key_value(thr) (NaN for 0: admits everything)
  uint32_t lo2;   // bf16 pair: the exp-argument clamp (bf16 only)
  __device__ __forceinline__ void init() {
    init_soft();
    T.e = T.kth = 0u;
    thr = 0u;
    thr_f = key_value(0u);
    lo2 = bf16_floor_pair(r);
  }
  __device__ __forceinline__ void raise(uint32_t t) {
    if (t > thr) {
      thr = t;
      thr_f = key_value(t);
    }
  }
};

// One tile of NE elements per lane: x[e] (padding: -inf), class idx(e), cm their NaN-propagating
// max; cands(thr_f) inserts the tile's candidates on the exact path. Every lane of the warp calls it.
template <int DT, bool SOFTMAX, int NE, class Idx, class Cands>
__device__ __forceinline__ void long_tile(const Params& P, int64_t row, LongRow& L, const float (&x)[NE], Idx idx,
                                          float cm, uint32_t c, const RowConst& rc, bool first, int lane,
                                          uint32_t* s_thr, Cands cands) {
  L.raise(*static_cast<volatile uint32_t*>(s_thr));  // the block's bound (monotone; any value is valid)
  bool want = !(cm < L.thr_f);
  if (SOFTMAX) want = want || cm > L.r + kSlack;
  if (__any_sync(0xFFFFFFFFu, want) || first) {  // the exact path, warp-uniform
    if (SOFTMAX) {
      const float r_new = fmaxf(L.r, seg_max_f<32>(cm, 0xFFFFFFFFu));  // fmaxf: NaN never becomes r
      if (r_new > L.r) {
        L.move_ref(r_new);
        if (DT == 2) L.lo2 = bf16_floor_pair(L.r);
      }
    }
    if (first && rc.k <= 32) L.raise(seg_kth_largest<32>(order_key(cm), lane, rc.k, 0xFFFFFFFFu));
    cands(L.thr_f);
    const uint32_t own = L.T.own_bound();
    L.raise(own);
    const uint32_t pub = static_cast<uint32_t>(L.T.kth >> 32);
    if (lane == 0 && pub > *static_cast<volatile uint32_t*>(s_thr)) atomicMax(s_thr, pub);
  }
  if (rc.tvalid) {
#pragma unroll
    for (int e = 0; e < NE; ++e) L.count_target(x[e], idx(e), c, rc);
  }
}

// Softmax terms of a tile's elements.
template <bool SOFTMAX, int NE>
__device__ __forceinline__ void long_soft(LongRow& L, const float (&x)[NE]) {
  if (SOFTMAX) {
#pragma unroll
    for (int e = 0; e < NE; ++e) L.soft(x[e]);
  }
}

// bf16 vectors: the exp arguments from pairs clamped with one max.bf16x2 per two elements.
template <bool SOFTMAX>
__device__ __forceinline__ void long_soft_bf16(LongRow& L, const uint4 (&w)[UL]) {
  if constexpr (SOFTMAX) {
#pragma unroll
    for (int t = 0; t < UL; ++t) {
      const uint32_t v[4] = {w[t].x, w[t].y, w[t].z, w[t].w};
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        uint32_t m;
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
        asm("max.bf16x2 %0, %1, %2;" : "=r"(m) : "r"(v[i]), "r"(L.lo2));
#else
        {  // max of each half (NaN -> the bound, as max.bf16x2)
          const float a = __uint_as_float(v[i] << 16), b = __uint_as_float(v[i] & 0xFFFF0000u);
          const float la = __uint_as_float(L.lo2 << 16);
          const uint32_t ha = (a >= la) ? (v[i] & 0xFFFFu) : (L.lo2 & 0xFFFFu);
          const uint32_t hb = (b >= la) ? (v[i] >> 16) : (L.lo2 & 0xFFFFu);
          m = ha | (hb << 16);
        }
#endif
        L.add_exp(fmaf(__uint_as_float(m << 16), kLog2e, -L.rl));
        L.add_exp(fmaf(__uint_as_float(m & 0xFFFF0000u), kLog2e, -L.rl));
      }
    }
  }
}

// Scan the warp's share of one row (lane `tid` of `nl` threads).
template <int DT, bool SOFTMAX>
__device__ __forceinline__ void scan_long_row(const Params& P, int64_t row, int tid, int nl, const RowConst& rc,
                                              LongRow& L, uint32_t* s_thr) {
  using D = DType<DT>;
  using S = typename D::S;
  constexpr int V = D::V;
  const uint32_t c = static_cast<uint32_t>(P.c);
  const int lane = tid & 31;
  const float ninf = -INFINITY;
  if (P.fast) {  // nl >= 32 >= V: a lane per element of the head and tail
    const S* rp = static_cast<const S*>(P.x) + row * P.rs;
    const uintptr_t addr = reinterpret_cast<uintptr_t>(rp);
    int h = static_cast<int>(((16u - static_cast<unsigned>(addr & 15u)) & 15u) / sizeof(S));
    if (h > static_cast<int>(c)) h = static_cast<int>(c);
    if (h > 0) {  // the scalar head up to 16-byte alignment
      const float xh[1] = {tid < h ? D::f(__ldg(rp + tid)) : ninf};
      auto ih = [&](int) { return tid < h ? static_cast<uint32_t>(tid) : c; };
      long_tile<DT, SOFTMAX, 1>(P, row, L, xh, ih, xh[0], c, rc, false, lane, s_thr,
                                [&](float tf) { insert_candidates<DT, 1>(P, row, L.T, xh, ih, c, tf, lane, rc.k); });
      long_soft<SOFTMAX, 1>(L, xh);
    }
    const int nv = (static_cast<int>(c) - h) / V;
    const uint4* vp = reinterpret_cast<const uint4*>(rp + h);
    const int step = UL * nl;
    const int full = nv - nv % step;
    for (int base = 0; base < full; base += step) {  // the hot loop: no bounds checks
      uint4 w[UL];
#pragma unroll
      for (int t = 0; t < UL; ++t) w[t] = __ldg(vp + base + tid + t * nl);
      float x[UL * V];
#pragma unroll
      for (int t = 0; t < UL; ++t) {
        float xv[V];
        D::unpack(w[t], xv);
#pragma unroll
        for (int e = 0; e < V; ++e) x[t * V + e] = xv[e];
      }
      auto idx = [&](int e) { return static_cast<uint32_t>(h + (base + tid + (e / V) * nl) * V + e % V); };
      long_tile<DT, SOFTMAX, UL * V>(P, row, L, x, idx, tile_max<DT, UL>(w), c, rc, base == 0, lane, s_thr,
                                     [&](float tf) {
                                       insert_vector_candidates<DT>(P, row, L.T, w, vp, base + tid, nl, h, tf, lane,
                                                                    rc.k);
                                     });
      if constexpr (DT == 2) {
        long_soft_bf16<SOFTMAX>(L, w);
      } else {
        long_soft<SOFTMAX, UL * V>(L, x);
      }
    }
    if (full < nv) {  // the last, partial tile
      float x[UL * V];
#pragma unroll
      for (int t = 0; t < UL; ++t) {
        const int v = full + tid + t * nl;
        float xv[V];
        D::unpack(v < nv ? __ldg(vp + v) : make_uint4(0u, 0u, 0u, 0u), xv);
#pragma unroll
        for (int e = 0; e < V; ++e) x[t * V + e] = v < nv ? xv[e] : ninf;
      }
      auto idx = [&](int e) {
        const int v = full + tid + (e / V) * nl;
        return v < nv ? static_cast<uint32_t>(h + v * V + e % V) : c;
      };
      long_tile<DT, SOFTMAX, UL * V>(P, row, L, x, idx, elems_max(x), c, rc, full == 0, lane, s_thr, [&](float tf) {
        insert_candidates<DT, UL * V>(P, row, L.T, x, idx, c, tf, lane, rc.k);
      });
      long_soft<SOFTMAX, UL * V>(L, x);
    }
    const int t0 = h + nv * V;  // the scalar tail (< V elements)
    if (t0 < static_cast<int>(c)) {
      const bool in = t0 + tid < static_cast<int>(c);
      const float xt[1] = {in ? D::f(__ldg(rp + t0 + tid)) : ninf};
      auto it = [&](int) { return in ? static_cast<uint32_t>(t0 + tid) : c; };
      long_tile<DT, SOFTMAX, 1>(P, row, L, xt, it, xt[0], c, rc, false, lane, s_thr,
                                [&](float tf) { insert_candidates<DT, 1>(P, row, L.T, xt, it, c, tf, lane, rc.k); });
      long_soft<SOFTMAX, 1>(L, xt);
    }
  } else {
    for (int base = 0; base < static_cast<int>(c); base += UL * nl) {
      float x[UL];
#pragma unroll
      for (int t = 0; t < UL; ++t) {
        const int jj = base + tid + t * nl;
        x[t] = jj < static_cast<int>(c) ? load_x<DT>(P, row, jj) : ninf;
      }
      auto idx = [&](int e) {
        const int jj = base + tid + e * nl;
        return jj < static_cast<int>(c) ? static_cast<uint32_t>(jj) : c;
      };
      long_tile<DT, SOFTMAX, UL>(P, row, L, x, idx, elems_max(x), c, rc, base == 0, lane, s_thr,
                                 [&](float tf) { insert_candidates<DT, UL>(P, row, L.T, x, idx, c, tf, lane, rc.k); });
      long_soft<SOFTMAX, UL>(L, x);
    }
  }
}

// Warp 0 of a block: the row's outputs from the nw warps' sorted top-k lists (s_keys[w][0, k)),
// softmax sums (s_soft[w]: rl, s, u, q; rescaled to the largest reference, one exp per warp) and
// target counts.
template <int DT, bool SOFTMAX>
__device__ __forceinline__ void merge_block_warps(const Params& P, int64_t row, const uint64_t (&s_keys)[16][32],
                                                  const float (&s_soft)[16][4], const uint32_t (&s_cnt)[16],
                                                  int nw, int lane, const RowConst& rc) {
  const bool have = lane < nw;
  const uint32_t all = seg_sum_u32<32>(have ? s_cnt[lane] : 0u, 0xFFFFFFFFu);
  int pos = 0;
  uint64_t top = 0;
#pragma unroll 1
  for (int r = 0; r < P.k; ++r) {
    const uint64_t head = (have && pos < P.k) ? s_keys[lane][pos] : uint64_t{0};
    const uint64_t best = seg_max_u64<32>(head, 0xFFFFFFFFu);
    if (have && head == best) ++pos;
    if (r == 0) top = best;
    if (P.write_topk && lane == (r & 31)) write_topk_entry(P, row, r, best);
  }
  float rl = have ? s_soft[lane][0] : kRefInit * kLog2e;
  float ws = 0.0f, wu = 0.0f, wq = 0.0f;
  const float rl_max = seg_max_f<32>(rl, 0xFFFFFFFFu);
  double ref = static_cast<double>(rl_max) / static_cast<double>(kLog2e);
  if (SOFTMAX && have) {
    const float dl = fmaxf(rl - rl_max, kExp2Underflow);
    const float a = exp2f(dl);
    ws = a * s_soft[lane][1];
    wu = a * fmaf(s_soft[lane][1], dl, s_soft[lane][2]);
    wq = a * a * s_soft[lane][3];
  }
  if (SOFTMAX) {
    resum_huge_row<DT>(P, row, top, lane, 32, 0xFFFFFFFFu, rl_max, ws, wu, wq, ref);  // (warp 0 alone)
    ws = seg_sum_f<32>(ws, 0xFFFFFFFFu);
    wu = seg_sum_f<32>(wu, 0xFFFFFFFFu);
    wq = seg_sum_f<32>(wq, 0xFFFFFFFFu);
  }
  if (lane == 0) write_row_stats(P, row, top, ref, ws, wu, wq, all, rc, kLn2);
}

// ---------------------------------------------------------------------------------------
// One block per row (blockDim.x a multiple of 32, <= 512): each warp a segment, then warp 0
// merges the warps' softmax sums (one exp per warp) and top-k lists in shared memory.
// ---------------------------------------------------------------------------------------
template <int DT, bool SOFTMAX>
__global__ void __launch_bounds__(512, 1) topk_long_kernel(const Params P) {
  __shared__ uint64_t s_keys[16][32];
  __shared__ float s_soft[16][4];
  __shared__ uint32_t s_cnt[16];
  __shared__ uint32_t s_thr;
  const int64_t row = blockIdx.x;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
  if (threadIdx.x == 0) s_thr = 0u;
  __syncthreads();
  LongRow L;
  L.init();
  const RowConst rc = row_const<DT>(P, row, true);
  scan_long_row<DT, SOFTMAX>(P, row, threadIdx.x, blockDim.x, rc, L, &s_thr);
  const uint32_t cnt = seg_sum_u32<32>(L.cnt, 0xFFFFFFFFu);
  float s = 0.0f, u = 0.0f, q = 0.0f;
  if (SOFTMAX) {
    s = seg_sum_f<32>(L.s, 0xFFFFFFFFu);
    u = seg_sum_f<32>(L.u, 0xFFFFFFFFu);
    q = seg_sum_f<32>(L.q, 0xFFFFFFFFu);
  }
  if (lane < P.k) s_keys[warp][lane] = L.T.e;
  if (lane == 0) {
    s_soft[warp][0] = L.rl;
    s_soft[warp][1] = s;
    s_soft[warp][2] = u;
    s_soft[warp][3] = q;
    s_cnt[warp] = cnt;
  }
  __syncthreads();
  if (warp != 0) return;
  merge_block_warps<DT, SOFTMAX>(P, row, s_keys, s_soft, s_cnt, nw, lane, rc);
}

}  // namespace v2
}  // namespace cuda
}  // namespace mlmetrics
