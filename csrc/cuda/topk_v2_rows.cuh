// topk_stats kernel v2 for rows that fit in registers (C <= G * NE): G lanes per row, NE element
// slots per lane (plus one head and one tail slot on the vector path), read once. Included by
// topk_v2.cuh (its helpers: max_nan, seg_*, the constants).
//
// Per row:
//   1. load the row into registers (128-bit loads on the vector path; padding slots are -inf);
//   2. the exact row max (one NaN-propagating max per element; a segment max) and, as the
//      threshold, the k-th largest of the G lane maxima: a valid lower bound of the row's k-th
//      value (k <= G: k distinct lanes hold a value >= it), usually close to it;
//   3. one pass: softmax sums relative to the exact max (one FFMA and one MUFU.EX2 per element,
//      no reference moves, no clamp but on the slots that may hold padding: a lane that meets
//      -inf or NaN, u = NaN, sums again clamped)
//      and one compare per vector (its max) into a per-lane candidate mask;
//   4. each lane appends its candidates (order key >= the threshold; NaN always) to the row's
//      shared-memory buffer (an atomic counter; the rank key makes the order of appends
//      irrelevant), reading the candidate back from the cache line the row was just loaded from;
//   5. exact selection over candidates only: each candidate's rank is the number of candidates
//      with a larger rank key (keys are unique), and the owner of rank r < k writes entry r;
//   6. when ties flood the buffer (more than kRowCand * G candidates: constant or heavily rounded
//      rows), k rounds of a segment arg-max over the registers take over, so the answer never
//      depends on the buffer size.
// Huge logits (|max| > 1e7): the sums again from memory (resum_huge_row, topk_v2.cuh).
// Targets: a count of the keys above the target's over the registers (before step 4, so that the
// registers are free for the selection).
#pragma once

namespace mlmetrics {
namespace cuda {
namespace v2 {

constexpr int kRowCand = 4;  // candidate slots per lane of a row (the row's buffer: kRowCand * G)

// The padding a lane holds past the end of its row: a finite, very negative value (float32 and
// bf16 -1e30, float16 -65504), so that exp(pad - max) is 0 without a clamp; lane maxima and the
// threshold treat it as below every value (a threshold at or below it admits everything).
template <int DT>
__device__ __forceinline__ uint32_t pad_word() {
  return DT == 0 ? 0xF149F2CAu : (DT == 1 ? 0xFBFFFBFFu : 0xF149F149u);
}
__device__ const uint4 kPadWords[3] = {{0xF149F2CAu, 0xF149F2CAu, 0xF149F2CAu, 0xF149F2CAu},
                                       {0xFBFFFBFFu, 0xFBFFFBFFu, 0xFBFFFBFFu, 0xFBFFFBFFu},
                                       {0xF149F149u, 0xF149F149u, 0xF149F149u, 0xF149F149u}};

// The stored bits of logit j (the scalar path: strides, class subsets).
template <int DT>
__device__ __forceinline__ uint32_t load_bits(const Params& P, int64_t row, int64_t j) {
  using S = typename DType<DT>::S;
  int64_t col = j;
  if (P.subset != nullptr) col = __ldg(P.subset + j);
  const S v = __ldg(static_cast<const S*>(P.x) + row * P.rs + col * P.cs);
  if constexpr (DT == 0) {
    return __float_as_uint(v);
  } else {
    return static_cast<uint32_t>(v);
  }
}

// The NaN-propagating max of one 128-bit vector (16-bit dtypes: two elements per instruction).
template <int DT>
__device__ __forceinline__ float vector_max(const uint4& w) {
  const uint4 a[1] = {w};
  return tile_max<DT, 1>(a);
}

// Where a lane's slots are in its row: vector slot t (vector v = lane + t G of the row) holds
// classes h + v V + e on the vector path (while v < nv) and v V + e on the scalar path (below c);
// the head slot holds class `lane` (< h), the tail slot class t0 + lane (< c), both on the vector
// path only. An invalid slot's index is c.
template <int G, int V>
struct RowSlots {
  bool vec;
  int lane, h, nv, t0, c;
  __device__ __forceinline__ bool valid_vector(int t) const {
    const int v = lane + t * G;
    return vec ? v < nv : v * V < c;
  }
  __device__ __forceinline__ uint32_t index(int t, int e) const {
    const int v = lane + t * G;
    if (vec) return static_cast<uint32_t>(v < nv ? h + v * V + e : c);
    const int j = v * V + e;
    return static_cast<uint32_t>(j < c ? j : c);
  }
  __device__ __forceinline__ uint32_t head() const { return static_cast<uint32_t>(vec && lane < h ? lane : c); }
  __device__ __forceinline__ uint32_t tail() const {
    return static_cast<uint32_t>(vec && t0 + lane < c ? t0 + lane : c);
  }
};

// The best rank key below `prev` (any key in the first round: NaN at class 0 is ~0) among a lane's
// valid slots (0 if none), read again from memory: one round of the tie-flood fallback (the
// registers are free by then).
template <int DT, int G, int NV>
__device__ __forceinline__ uint64_t best_below(const Params& P, int64_t row, const RowSlots<G, DType<DT>::V>& sl,
                                               uint64_t prev, bool first) {
  constexpr int V = DType<DT>::V;
  uint64_t best = 0;
  auto take = [&](uint32_t j) {
    if (j >= static_cast<uint32_t>(sl.c)) return;
    const uint64_t key = rank_key(order_key(load_x<DT>(P, row, j)), j);
    if ((first || key < prev) && key > best) best = key;
  };
#pragma unroll 1
  for (int t = 0; t < NV; ++t) {
#pragma unroll
    for (int e = 0; e < V; ++e) take(sl.index(t, e));
  }
  take(sl.head());
  take(sl.tail());
  return best;
}

// fl(m log2e) for the row maximum m as the softmax reference; a non-finite row (its statistics
// are NaN) takes any finite one.
__device__ __forceinline__ float ref_log2(float m) {
  return ((__float_as_uint(m) & 0x7F800000u) != 0x7F800000u ? m : 0.0f) * kLog2e;
}

template <int DT, int G, int NE, bool SOFTMAX>
__global__ void __launch_bounds__(256, 1) topk_rows_kernel(const Params P) {
  using D = DType<DT>;
  using S = typename D::S;
  constexpr int V = D::V;
  constexpr int NV = NE / V;  // vector slots per lane
  constexpr int R = 256 / G;  // rows per block (blockDim.x == 256)
  constexpr int CAP = kRowCand * G;
  static_assert(NE % V == 0 && NV <= 32, "slots per lane: whole vectors, one 32-bit candidate mask");
  __shared__ uint64_t s_cand[R][CAP];
  __shared__ uint64_t s_top[R];
  __shared__ uint32_t s_n[R];

  const int lane = static_cast<int>(threadIdx.x) % G;
  const int rs = static_cast<int>(threadIdx.x) / G;
  const int64_t row = static_cast<int64_t>(blockIdx.x) * R + rs;
  if (row >= P.n) return;  // the whole segment (one row) leaves together
  const uint32_t seg = G == 32 ? 0xFFFFFFFFu : (((1u << G) - 1u) << ((threadIdx.x & 31u) & ~(G - 1u)));
  const int c = P.c;
  const float ninf = -INFINITY;
  if (lane == 0) s_n[rs] = 0u;
  const RowConst rc = row_const<DT>(P, row, true);

  // 1. the row into registers (w: the stored bits), each vector's max
  const S* rp = static_cast<const S*>(P.x) + row * P.rs;
  RowSlots<G, V> sl{P.fast, lane, 0, 0, 0, c};
  uint4 w[NV];
  float vm[NV];
  float xh = ninf, xt = ninf;  // head / tail slots (vector path)
  const uint4* vp = nullptr;
  if (P.fast) {
    const uintptr_t addr = reinterpret_cast<uintptr_t>(rp);
    int h = static_cast<int>(((16u - static_cast<unsigned>(addr & 15u)) & 15u) / sizeof(S));
    if (h > c) h = c;
    sl.h = h;
    sl.nv = (c - h) / V;
    sl.t0 = h + sl.nv * V;
    vp = reinterpret_cast<const uint4*>(rp + h);
#pragma unroll
    for (int t = 0; t < NV; ++t) {
      const int v = lane + t * G;
      w[t] = __ldg(v < sl.nv ? vp + v : &kPadWords[DT]);  // one load, no per-word moves
    }
    if (h > 0 || sl.t0 < c) {  // (rows whose start or length is not a multiple of 16 bytes)
      if (lane < h) xh = D::f(__ldg(rp + lane));
      if (sl.t0 + lane < c) xt = D::f(__ldg(rp + sl.t0 + lane));
    }
  } else {
#pragma unroll
    for (int t = 0; t < NV; ++t) {
      uint32_t b[V];
#pragma unroll
      for (int e = 0; e < V; ++e) {
        const uint32_t j = sl.index(t, e);
        const uint32_t pw = DT == 0 ? pad_word<DT>() : (pad_word<DT>() & 0xFFFFu);
        b[e] = j < static_cast<uint32_t>(c) ? load_bits<DT>(P, row, j) : pw;
      }
      if constexpr (V == 4) {
        w[t] = make_uint4(b[0], b[1], b[2], b[3]);
      } else {
        w[t] = make_uint4(b[0] | (b[1] << 16), b[2] | (b[3] << 16), b[4] | (b[5] << 16), b[6] | (b[7] << 16));
      }
    }
  }
#pragma unroll
  for (int t = 0; t < NV; ++t) vm[t] = vector_max<DT>(w[t]);
  float pad;
  {
    float pv[V];
    D::unpack(make_uint4(pad_word<DT>(), 0u, 0u, 0u), pv);
    pad = pv[0];
  }
  const float low_rl = (pad + 200.0f) * kLog2e;  // a row maximum below pad + 200: the padding counts

  // 2. the exact row max, the lane maxima, the threshold
  float lm = max_nan(xh, xt);
#pragma unroll
  for (int t = 0; t < NV; ++t) lm = max_nan(lm, vm[t]);
  uint32_t thr = seg_kth_largest<G>(order_key(lm), lane, rc.k, seg);
  if (thr <= order_key(pad)) thr = 0u;  // the padding may have set it: admit everything (the row is
                                       // mostly -inf or below the padding value)
  const float thr_f = key_value(thr);  // NaN when k lanes hold a NaN, or for 0: every slot is a candidate

  // 3. softmax sums relative to the exact max (d <= 0: no clamp, as long as no term is
  //    0 * -inf; a -inf or NaN slot makes u NaN and the lane's sums are taken again, clamped);
  //    the candidate vectors
  Soft F;
  F.init_soft();
  F.rl = 0.0f;
  if (SOFTMAX) {
    const float m = seg_max_f<G>(lm, seg);  // fmaxf: NaN never becomes the reference
    F.rl = ref_log2(m);
  }
  uint32_t vbits = 0;  // (first: the vector maxima die here)
#pragma unroll
  for (int t = 0; t < NV; ++t)
    if (!(vm[t] < thr_f)) vbits |= 1u << t;
  if (SOFTMAX) {
#pragma unroll
    for (int t = 0; t < NV; ++t) {
      float xv[V];
      D::unpack(w[t], xv);
#pragma unroll
      for (int e = 0; e < V; ++e) F.add_exp(fmaf(xv[e], kLog2e, -F.rl));
    }
  }
  // a -inf or NaN slot (u = NaN), or a row maximum so low that the padding may have set it: the
  // segment again, the padding left out: the exact maximum, clamped sums
  if (SOFTMAX && __any_sync(seg, (__float_as_uint(F.u) & 0x7FFFFFFFu) > 0x7F800000u || F.rl <= low_rl)) {
    float mv = fmaxf(xh, xt);
#pragma unroll
    for (int t = 0; t < NV; ++t) {
      float xv[V];
      D::unpack(w[t], xv);
#pragma unroll
      for (int e = 0; e < V; ++e)
        if (sl.index(t, e) < static_cast<uint32_t>(c)) mv = fmaxf(mv, xv[e]);
    }
    F.rl = ref_log2(seg_max_f<G>(mv, seg));
    F.s = F.u = F.q = 0.0f;
#pragma unroll
    for (int t = 0; t < NV; ++t) {
      float xv[V];
      D::unpack(w[t], xv);
#pragma unroll
      for (int e = 0; e < V; ++e)
        if (sl.index(t, e) < static_cast<uint32_t>(c)) F.soft(xv[e]);
    }
  }
  bool edge = false;  // the head or tail slot is a candidate
  if (sl.vec && (sl.h > 0 || sl.t0 < c)) {
    if (SOFTMAX) {
      F.soft(xh);
      F.soft(xt);
    }
    edge = !(xh < thr_f) || !(xt < thr_f);
  }

  uint32_t cnt = 0;
  if (rc.tvalid) {
    auto count = [&](float v, uint32_t j) {
      const uint32_t ok = order_key(v);
      cnt += (j < static_cast<uint32_t>(c) && (ok > rc.tkey || (ok == rc.tkey && j < rc.tidx))) ? 1u : 0u;
    };
#pragma unroll
    for (int t = 0; t < NV; ++t) {
      float xv[V];
      D::unpack(w[t], xv);
#pragma unroll
      for (int e = 0; e < V; ++e) count(xv[e], sl.index(t, e));
    }
    count(xh, sl.head());
    count(xt, sl.tail());
  }

  // 4. candidates to shared memory (a candidate vector is read again from the cache)
  auto append = [&](float v, uint32_t j) {
    if (!(v < thr_f) && j < static_cast<uint32_t>(c)) {  // (a -inf threshold admits the padding)
      const uint32_t pos = atomicAdd(&s_n[rs], 1u);
      if (pos < static_cast<uint32_t>(CAP)) s_cand[rs][pos] = rank_key(order_key(v), j);
    }
  };
  __syncwarp(seg);  // s_n[rs] = 0 is seen by every lane of the segment
#pragma unroll 1
  while (vbits != 0) {
    const int t = __ffs(static_cast<int>(vbits)) - 1;
    vbits &= vbits - 1;
    if (!sl.valid_vector(t)) continue;
    const int v = lane + t * G;
    float xv[V];
    if (P.fast) {
      D::unpack(__ldg(vp + v), xv);
    } else {
#pragma unroll
      for (int e = 0; e < V; ++e) {
        const uint32_t j = sl.index(t, e);
        xv[e] = j < static_cast<uint32_t>(c) ? load_x<DT>(P, row, j) : ninf;
      }
    }
#pragma unroll
    for (int e = 0; e < V; ++e) append(xv[e], sl.index(t, e));
  }
  if (edge) {
    append(xh, sl.head());
    append(xt, sl.tail());
  }
  __syncwarp(seg);
  const uint32_t n = s_n[rs];

  // 5. / 6. exact selection
  uint64_t top = 0;
  if (n <= static_cast<uint32_t>(G)) {  // one candidate per lane (the common case)
    const uint64_t a = static_cast<uint32_t>(lane) < n ? s_cand[rs][lane] : uint64_t{0};
    uint32_t rank = 0;
#pragma unroll 1
    for (uint32_t m = 0; m < n; ++m) rank += s_cand[rs][m] > a ? 1u : 0u;
    if (a != 0u && rank < static_cast<uint32_t>(rc.k)) {
      if (P.write_topk) write_topk_entry(P, row, static_cast<int>(rank), a);
      if (rank == 0u) s_top[rs] = a;
    }
    __syncwarp(seg);
    top = s_top[rs];
  } else if (n <= static_cast<uint32_t>(CAP)) {
    uint64_t a[kRowCand];
    uint32_t rank[kRowCand];
#pragma unroll
    for (int o = 0; o < kRowCand; ++o) {
      const uint32_t i = static_cast<uint32_t>(lane + o * G);
      a[o] = i < n ? s_cand[rs][i] : uint64_t{0};
      rank[o] = 0u;
    }
#pragma unroll 1
    for (uint32_t m = 0; m < n; ++m) {
      const uint64_t b = s_cand[rs][m];
#pragma unroll
      for (int o = 0; o < kRowCand; ++o) rank[o] += b > a[o] ? 1u : 0u;
    }
#pragma unroll
    for (int o = 0; o < kRowCand; ++o) {
      if (a[o] != 0u && rank[o] < static_cast<uint32_t>(rc.k)) {
        if (P.write_topk) write_topk_entry(P, row, static_cast<int>(rank[o]), a[o]);
        if (rank[o] == 0u) s_top[rs] = a[o];
      }
    }
    __syncwarp(seg);
    top = s_top[rs];
  } else {  // ties flood the buffer: k rounds over the registers
    uint64_t prev = 0;
#pragma unroll 1
    for (int r = 0; r < rc.k; ++r) {
      const uint64_t best = seg_max_u64<G>(best_below<DT, G, NV>(P, row, sl, prev, r == 0), seg);
      if (r == 0) top = best;
      if (P.write_topk && lane == (r % G)) write_topk_entry(P, row, r, best);
      prev = best;
    }
  }

  cnt = seg_sum_u32<G>(cnt, seg);
  finish_segment_row<DT, G, SOFTMAX>(P, row, top, lane, seg, F.rl, F.s, F.u, F.q, cnt, rc);
}

}  // namespace v2
}  // namespace cuda
}  // namespace mlmetrics
