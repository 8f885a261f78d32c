// softmax_sums (kernels.h): per row, s = sum e, u = sum e*d, q = sum e*e, e = exp(d), d = x - m.
// Float lanes over blocks of kBlock elements, blocks added in double. The exp is Cephes-style:
// n = round(d * log2 e), r = d - n ln 2 (in two parts), a degree-6 polynomial in r, times 2^n;
// relative error ~2 ulp. All versions evaluate the same float operations in the same order.
#include <algorithm>
#include <cstring>
#include <limits>

#include "kernels.h"

namespace mlmetrics {
namespace cpu {
namespace {

constexpr int64_t kBlock = 1024;  // float-accumulated block of the softmax sums
constexpr int64_t kLanes = 16;    // independent accumulators of the generic version

// e^d for d <= 0; 0 for d < kExpUnderflow (so -inf gives 0). Branch-free: vectorises.
inline float exp_nonpositive(float d) {
  const bool underflow = d < kExpUnderflow;
  d = std::max(d, kExpUnderflow);
  // Round to nearest by adding 1.5 * 2^23 (exact for |d * log2(e)| < 2^22): vectorises on any ISA.
  const float n = (d * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
  float r = d - n * 0.693359375f;
  r = r + n * 2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  int32_t bits = (static_cast<int32_t>(n) + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, sizeof(scale));
  return underflow ? 0.0f : p * scale;
}

// kLanes independent float accumulators per block (vectorises without -ffast-math).
MLM_CLONES SoftmaxSums softmax_sums_generic(const float* __restrict x, int64_t n, float m, const float*) {
  SoftmaxSums out;
  float tail[kLanes];
  for (int64_t j = 0; j < n;) {
    float s[kLanes] = {}, u[kLanes] = {}, q[kLanes] = {};
    const int64_t block_end = std::min(n, j + kBlock);
    for (; j < block_end; j += kLanes) {
      const float* xs = x + j;
      if (block_end - j < kLanes) {  // the row's last, partial vector: pad with -inf (adds 0)
        std::fill(tail, tail + kLanes, -std::numeric_limits<float>::infinity());
        std::copy(x + j, x + block_end, tail);
        xs = tail;
      }
      for (int64_t l = 0; l < kLanes; ++l) {
        const float d = std::max(xs[l] - m, kExpUnderflow);  // -inf entries: e = 0 and e*d = 0
        const float e = exp_nonpositive(xs[l] - m);
        s[l] += e;
        u[l] += e * d;
        q[l] += e * e;
      }
    }
    for (int64_t w = kLanes / 2; w >= 1; w /= 2) {  // pairwise: short rows are common
      for (int64_t l = 0; l < w; ++l) {
        s[l] += s[l + w];
        u[l] += u[l + w];
        q[l] += q[l + w];
      }
    }
    out.s += s[0];
    out.u += u[0];
    out.q += q[0];
  }
  return out;
}

#if MLM_HAVE_X86
// How the AVX-512 version rounds d log2 e and forms 2^n (the same float results either way):
//   kScalef:        roundscale, then scalef(p, n): fewest instructions (the default on every
//                   vendor: llvm-mca's Zen 4 / Zen 5 models cost it 14.0 cycles per 16 floats,
//                   the other 15.7; on the Intel Xeon both measured the same).
//   kExponentBits:  n by adding and subtracting 1.5 * 2^23 (as exp_nonpositive), 2^n by writing
//                   n + 127 into the exponent bits, then a multiply: adds, shifts and a multiply
//                   only, no rounding or scalef unit (MLMETRICS_CPU_TUNE=amd).
enum class ExpScale { kScalef, kExponentBits };

// 16 lanes of exp_nonpositive and the three sums.
template <ExpScale kScale>
__attribute__((target("avx512f"), always_inline)) inline void softmax_lanes_avx512(__m512 v, __m512 mv, __m512& s,
                                                                                  __m512& u, __m512& q) {
  const __m512 lo = _mm512_set1_ps(kExpUnderflow);
  const __m512 raw = _mm512_sub_ps(v, mv);
  const __mmask16 live = _mm512_cmp_ps_mask(raw, lo, _CMP_GE_OQ);  // d < kExpUnderflow (and -inf): e = 0
  const __m512 d = _mm512_max_ps(raw, lo);
  const __m512 nl = _mm512_mul_ps(d, _mm512_set1_ps(1.44269504088896341f));
  const __m512 shifted = _mm512_add_ps(nl, _mm512_set1_ps(12582912.0f));  // n in the low mantissa bits
  const __m512 k = kScale == ExpScale::kScalef
                       ? _mm512_roundscale_ps(nl, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)
                       : _mm512_sub_ps(shifted, _mm512_set1_ps(12582912.0f));
  __m512 r = _mm512_fnmadd_ps(k, _mm512_set1_ps(0.693359375f), d);
  r = _mm512_fnmadd_ps(k, _mm512_set1_ps(-2.12194440e-4f), r);
  __m512 p = _mm512_fmadd_ps(_mm512_set1_ps(1.9875691500e-4f), r, _mm512_set1_ps(1.3981999507e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
  p = _mm512_fmadd_ps(_mm512_mul_ps(p, r), r, _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
  __m512 e;
  if (kScale == ExpScale::kScalef) {
    e = _mm512_maskz_scalef_ps(live, p, k);
  } else {  // (n + 127) << 23 = (bits(shifted) << 23) + (127 << 23): -126 <= n <= 0, a normal 2^n
    const __m512i scale = _mm512_add_epi32(_mm512_slli_epi32(_mm512_castps_si512(shifted), 23),
                                           _mm512_set1_epi32(127 << 23));
    e = _mm512_maskz_mul_ps(live, p, _mm512_castsi512_ps(scale));
  }
  s = _mm512_add_ps(s, e);
  u = _mm512_fmadd_ps(e, d, u);
  q = _mm512_fmadd_ps(e, e, q);
}

// The row's last partial vector is loaded with -inf (adds 0). Two accumulator sets per block
// hide the add latency; next is prefetched a line per 16 elements summed.
template <ExpScale kScale>
__attribute__((target("avx512f"))) SoftmaxSums softmax_sums_avx512(const float* x, int64_t n, float m,
                                                                   const float* next) {
  const __m512 mv = _mm512_set1_ps(m), ninf = _mm512_set1_ps(-std::numeric_limits<float>::infinity());
  SoftmaxSums out;
  for (int64_t j = 0; j < n;) {
    __m512 s0 = _mm512_setzero_ps(), u0 = s0, q0 = s0, s1 = s0, u1 = s0, q1 = s0;
    const int64_t block_end = std::min(n, j + kBlock);
    for (; j + 32 <= block_end; j += 32) {
      if (next != nullptr) {
        _mm_prefetch(reinterpret_cast<const char*>(next + j), _MM_HINT_T1);
        _mm_prefetch(reinterpret_cast<const char*>(next + j + 16), _MM_HINT_T1);
      }
      softmax_lanes_avx512<kScale>(_mm512_loadu_ps(x + j), mv, s0, u0, q0);
      softmax_lanes_avx512<kScale>(_mm512_loadu_ps(x + j + 16), mv, s1, u1, q1);
    }
    for (; j < block_end; j += 16) {
      softmax_lanes_avx512<kScale>(_mm512_mask_loadu_ps(ninf, first_lanes(block_end - j), x + j), mv, s0, u0, q0);
    }
    out.s += _mm512_reduce_add_ps(_mm512_add_ps(s0, s1));
    out.u += _mm512_reduce_add_ps(_mm512_add_ps(u0, u1));
    out.q += _mm512_reduce_add_ps(_mm512_add_ps(q0, q1));
  }
  return out;
}

SoftmaxSumsFn softmax_sums_avx512_tuned() {
  return tune() == Tune::kAmd ? softmax_sums_avx512<ExpScale::kExponentBits> : softmax_sums_avx512<ExpScale::kScalef>;
}
#endif

}  // namespace

const SoftmaxSumsFn softmax_sums =
    pick<SoftmaxSumsFn>(MLM_X86(softmax_sums_avx512_tuned()), nullptr, softmax_sums_generic);

}  // namespace cpu
}  // namespace mlmetrics
