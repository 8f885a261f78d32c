// widen_bf16 / widen_fp16 (kernels.h): 16-bit logits to float32, exactly (every bf16 / fp16
// value, subnormals included, is a float32; NaN stays NaN).
#include <cstring>

#include "kernels.h"

namespace mlmetrics {
namespace cpu {
namespace {

// bf16 is the high half of its float32: a shift (GCC vectorises it per clone).
MLM_CLONES void widen_bf16_generic(const uint16_t* __restrict src, int64_t n, float* __restrict dst) {
  for (int64_t j = 0; j < n; ++j) {
    const uint32_t u = static_cast<uint32_t>(src[j]) << 16;
    std::memcpy(dst + j, &u, sizeof(u));
  }
}

// IEEE binary16 -> binary32 on the bits, branch-free (GCC vectorises it per clone): normals
// rebias the exponent, subnormals are m * 2^-24 (exact in float32), inf/NaN keep their class.
MLM_CLONES void widen_fp16_generic(const uint16_t* __restrict src, int64_t n, float* __restrict dst) {
  for (int64_t j = 0; j < n; ++j) {
    const uint32_t h = src[j];
    const uint32_t sign = (h & 0x8000u) << 16;
    const uint32_t mag = h & 0x7FFFu;
    const float sub = static_cast<float>(mag) * 5.9604644775390625e-8f;  // exponent 0: m * 2^-24
    uint32_t sub_bits;
    std::memcpy(&sub_bits, &sub, sizeof(sub_bits));
    const uint32_t normal = (mag << 13) + (112u << 23);
    // exponent 31: inf, or NaN made quiet (as vcvtph2ps does: every version gives the same bits)
    const uint32_t special = (mag << 13) | 0x7F800000u | (mag > 0x7C00u ? 0x00400000u : 0u);
    const uint32_t u = sign | (mag >= 0x7C00u ? special : mag >= 0x0400u ? normal : sub_bits);
    std::memcpy(dst + j, &u, sizeof(u));
  }
}

#if MLM_HAVE_X86
// vcvtph2ps converts exactly (it ignores MXCSR's DAZ for its 16-bit inputs) and makes a
// signalling NaN quiet, as the generic version does.
__attribute__((target("avx512f"))) void widen_fp16_avx512(const uint16_t* src, int64_t n, float* dst) {
  int64_t j = 0;
  for (; j + 16 <= n; j += 16) {
    _mm512_storeu_ps(dst + j, _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(src + j))));
  }
  if (j < n) widen_fp16_generic(src + j, n - j, dst + j);
}

// bf16: zero-extend 16 values to 32 bits (vpmovzxwd from memory), shift them into the high half.
// (GCC's clone of the generic loop works in 256-bit halves with an extract per 16 values.)
__attribute__((target("avx512f"))) void widen_bf16_avx512(const uint16_t* src, int64_t n, float* dst) {
  int64_t j = 0;
  for (; j + 16 <= n; j += 16) {
    const __m512i u = _mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(src + j)));
    _mm512_storeu_si512(dst + j, _mm512_slli_epi32(u, 16));
  }
  if (j < n) widen_bf16_generic(src + j, n - j, dst + j);
}
#endif

}  // namespace

const WidenFn widen_bf16 = pick<WidenFn>(MLM_X86(widen_bf16_avx512), nullptr, widen_bf16_generic);
const WidenFn widen_fp16 = pick<WidenFn>(MLM_X86(widen_fp16_avx512), nullptr, widen_fp16_generic);

}  // namespace cpu
}  // namespace mlmetrics
