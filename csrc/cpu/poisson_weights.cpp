// mlmetrics::poisson_weights (CPU): Poisson(1) bootstrap weights W[i, b] from a counter-based hash of
// (sample index, replicate, seed). Bit-identical to mlmetrics/stats/weights.py:poisson_weights_torch,
// which documents the hash; the schema is in ops.cpp.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <cmath>
#include <cstdint>
#include <vector>

namespace mlmetrics {
namespace {

constexpr uint64_t kGolden = 0x9E3779B97F4A7C15ull;
constexpr uint64_t kMix1 = 0xBF58476D1CE4E5B9ull;
constexpr uint64_t kMix2 = 0x94D049BB133111EBull;
constexpr uint64_t kStream = 0x5851F42D4C957F2Dull;

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
#define MLM_WEIGHT_CLONES __attribute__((target_clones("arch=skylake-avx512", "avx2", "default")))
#else
#define MLM_WEIGHT_CLONES
#endif

constexpr int kNumThresholds = 12;  // P(Poisson(1) > 12) < 2^-32: weights are 0..12

inline uint64_t mix(uint64_t z) {
  z = (z ^ (z >> 30)) * kMix1;
  z = (z ^ (z >> 27)) * kMix2;
  return z ^ (z >> 31);
}

// T_k = floor(2^32 P(Poisson(1) <= k)) while below 2^32 - 1 (the same loop as the Python twin).
std::vector<uint32_t> thresholds() {
  std::vector<uint32_t> t;
  double cdf = 0.0, p = std::exp(-1.0);
  for (int k = 0; k <= 30; ++k) {
    cdf += p;
    const double v = std::floor(cdf * 4294967296.0);
    if (v >= 4294967295.0) break;
    t.push_back(static_cast<uint32_t>(v));
    p /= (k + 1);
  }
  return t;
}

// One row: out[b] = #{k : u_b >= t[k]}, u_b = top 32 bits of the two finaliser rounds of h + rkey[b].
MLM_WEIGHT_CLONES void weights_row(uint64_t h, const uint64_t* __restrict rkey, const uint32_t* __restrict t,
                                   int64_t nb, double* __restrict out) {
  for (int64_t b = 0; b < nb; ++b) {
    uint64_t z = h + rkey[b];
    z = (z ^ (z >> 30)) * kMix1;
    z = (z ^ (z >> 27)) * kMix2;
    const uint32_t u = static_cast<uint32_t>(z >> 32);
    int32_t w = 0;
    for (int k = 0; k < kNumThresholds; ++k) w += static_cast<int32_t>(u >= t[k]);
    out[b] = static_cast<double>(w);
  }
}

}  // namespace

at::Tensor poisson_weights_cpu(const at::Tensor& sample_index, int64_t replicates, int64_t seed) {
  TORCH_CHECK(sample_index.dim() == 1 && sample_index.scalar_type() == at::kLong,
              "mlmetrics: sample_index must be a 1-D int64 tensor");
  TORCH_CHECK(replicates >= 1, "mlmetrics: replicates must be >= 1, got ", replicates);
  static const std::vector<uint32_t> t = thresholds();
  TORCH_CHECK(static_cast<int>(t.size()) == kNumThresholds, "mlmetrics: Poisson table has ", t.size(), " entries");
  const int64_t n = sample_index.size(0), nb = replicates;
  auto idx = sample_index.contiguous();
  auto out = at::empty({n, nb}, sample_index.options().dtype(at::kDouble));
  const uint64_t s = static_cast<uint64_t>(seed);
  std::vector<uint64_t> rkey(nb);
  for (int64_t b = 0; b < nb; ++b) rkey[b] = mix(static_cast<uint64_t>(b) * kGolden + (s ^ kStream) * kGolden);
  const int64_t* ip = idx.data_ptr<int64_t>();
  double* op = out.data_ptr<double>();
  const uint32_t* tp = t.data();
  at::parallel_for(0, n, 64, [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i) {
      const uint64_t h = mix(static_cast<uint64_t>(ip[i]) * kGolden + (s * kGolden + kGolden));
      weights_row(h, rkey.data(), tp, nb, op + i * nb);
    }
  });
  return out;
}

TORCH_LIBRARY_IMPL(mlmetrics, CPU, m) { m.impl("poisson_weights", &poisson_weights_cpu); }

}  // namespace mlmetrics
