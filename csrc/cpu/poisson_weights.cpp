// mlmetrics::poisson_weights (CPU): Poisson(1) bootstrap weights W[i, b] from a counter-based hash of
// (sample index, replicate, seed). Bit-identical to mlmetrics/stats/weights.py:poisson_weights_torch,
// which documents the hash; the schema is in ops.cpp.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <cmath>
#include <algorithm>
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

// sums[rows[i, j], b] += values[i, j] * W[i, b] for b in [b0, b1): the weights of row i are made once
// per replicate chunk, in a buffer, and reused by every contribution of the row.
MLM_WEIGHT_CLONES void accumulate_chunk(double* __restrict sums, int64_t nb, const uint64_t* __restrict hkey,
                                        const uint64_t* __restrict rkey, const uint32_t* __restrict t,
                                        const int64_t* __restrict rows, const double* __restrict values, int64_t n,
                                        int64_t k, int64_t b0, int64_t b1, double* __restrict buf) {
  const int64_t len = b1 - b0;
  for (int64_t i = 0; i < n; ++i) {
    const int64_t* r = rows + i * k;
    const double* v = values + i * k;
    bool any = false;
    for (int64_t j = 0; j < k; ++j) any |= (r[j] >= 0) & (v[j] != 0.0);
    if (!any) continue;
    weights_row(hkey[i], rkey + b0, t, len, buf);
    for (int64_t j = 0; j < k; ++j) {
      if (r[j] < 0 || v[j] == 0.0) continue;
      double* __restrict dst = sums + r[j] * nb + b0;
      const double vj = v[j];
      for (int64_t b = 0; b < len; ++b) dst[b] += vj * buf[b];
    }
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

void poisson_accumulate_cpu(at::Tensor& sums, const at::Tensor& sample_index, const at::Tensor& rows,
                            const at::Tensor& values, int64_t seed) {
  TORCH_CHECK(sums.dim() == 2 && sums.scalar_type() == at::kDouble && sums.is_contiguous(),
              "mlmetrics: sums must be a contiguous float64 [T, B] tensor");
  TORCH_CHECK(sample_index.dim() == 1 && sample_index.scalar_type() == at::kLong,
              "mlmetrics: sample_index must be a 1-D int64 tensor");
  const int64_t n = sample_index.size(0);
  TORCH_CHECK(rows.dim() == 2 && rows.scalar_type() == at::kLong && rows.size(0) == n,
              "mlmetrics: rows must be int64 [N=", n, ", K]");
  TORCH_CHECK(values.scalar_type() == at::kDouble && values.sizes() == rows.sizes(),
              "mlmetrics: values must be float64 of the shape of rows");
  const int64_t nt = sums.size(0), nb = sums.size(1), k = rows.size(1);
  auto r = rows.contiguous();
  auto v = values.contiguous();
  auto idx = sample_index.contiguous();
  if (n > 0 && k > 0) {
    auto lo = r.min().item<int64_t>(), hi = r.max().item<int64_t>();
    TORCH_CHECK(lo >= -1 && hi < nt, "mlmetrics: rows must be in [-1, ", nt, "), got [", lo, ", ", hi, "]");
  }
  static const std::vector<uint32_t> t = thresholds();
  TORCH_CHECK(static_cast<int>(t.size()) == kNumThresholds, "mlmetrics: Poisson table has ", t.size(), " entries");
  const uint64_t s = static_cast<uint64_t>(seed);
  std::vector<uint64_t> rkey(nb), hkey(n);
  for (int64_t b = 0; b < nb; ++b) rkey[b] = mix(static_cast<uint64_t>(b) * kGolden + (s ^ kStream) * kGolden);
  const int64_t* ip = idx.data_ptr<int64_t>();
  for (int64_t i = 0; i < n; ++i) hkey[i] = mix(static_cast<uint64_t>(ip[i]) * kGolden + (s * kGolden + kGolden));
  double* sp = sums.data_ptr<double>();
  const int64_t* rp = r.data_ptr<int64_t>();
  const double* vp = v.data_ptr<double>();
  constexpr int64_t kChunk = 256;  // replicates per task: the weight buffer stays in L1
  at::parallel_for(0, (nb + kChunk - 1) / kChunk, 1, [&](int64_t c0, int64_t c1) {
    std::vector<double> buf(kChunk);
    for (int64_t c = c0; c < c1; ++c) {
      const int64_t b0 = c * kChunk, b1 = std::min(nb, b0 + kChunk);
      accumulate_chunk(sp, nb, hkey.data(), rkey.data(), t.data(), rp, vp, n, k, b0, b1, buf.data());
    }
  });
}

TORCH_LIBRARY_IMPL(mlmetrics, CPU, m) {
  m.impl("poisson_weights", &poisson_weights_cpu);
  m.impl("poisson_accumulate", &poisson_accumulate_cpu);
}

}  // namespace mlmetrics
