// CPU kernel of mlmetrics::topk_stats (the op entry topk_stats_cpu): one pass per row, parallel
// over rows.
//
// Rows are read as float32: in place when they are contiguous float32, else converted into a
// per-thread buffer (contiguous bf16 / fp16 by widen.cpp, a block of short rows at a time).
// Per row (the row is read from memory once; later passes hit the cache):
//   1. top-k (TopKSelector, selector.h), ranked by rank_key (ties: lower index):
//      - rows of C <= 128: a bound from 16 lane maxima, then the few elements above it ranked
//        by counting (short_row.cpp);
//      - longer NaN-free rows, small k: one read tracks, for 64 interleaved groups, the
//        maximum, its first index and the second value (group_scan.cpp); the k-th largest group
//        maximum bounds the row's k-th value, and usually the top-k are exactly the largest
//        group maxima, so the row is not read again (else only the flagged groups, or one
//        pass over the cached row, are: group_candidates.cpp);
//      - other rows (NaN, large k, ties past the caps): a scan filtered 64 at a time against
//        the weakest kept value.
//   2. target rank: count of elements ranked before the target (target_rank.cpp).
//   3. softmax statistics (only with_softmax and a finite row): m = top-1 logit (no separate
//      max pass), s = sum e^(x-m), u = sum e^(x-m)(x-m), q = sum e^(2(x-m)) (softmax_sums.cpp).
//      The next row is prefetched meanwhile.
// Hand-written AVX-512 / AVX2 versions are picked at load (isa.h: MLMETRICS_CPU_ISA caps them,
// MLMETRICS_CPU_TUNE picks among equivalent ones); all give identical answers. The row's
// nonfinite flag falls out of the top-1 key: NaN ranks first, +inf next, and an all -inf row
// has -inf on top.
#include <ATen/Parallel.h>
#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <type_traits>
#include <vector>

#include "kernels.h"
#include "schema.h"
#include "selector.h"

namespace mlmetrics {
namespace cpu {
namespace {

// Rows up to 16 KiB are read in place with row i + 1 prefetched while row i is finished (see
// TopKSelector::prefiltered and softmax_sums), so its read does not wait on L3/DRAM.
constexpr int64_t kPrefetchBytes = 16384;
// Contiguous 16-bit rows are widened to float32 (widen.cpp) up to this many values at a time:
// short rows in blocks of rows, so each row's helpers read floats stored long before.
constexpr int64_t kWidenBlock = 4096;

template <typename T>
WidenFn widen_for() {
  if (std::is_same<T, c10::BFloat16>::value) return widen_bf16;
  if (std::is_same<T, c10::Half>::value) return widen_fp16;
  return nullptr;
}

template <typename T>
inline float to_float(T v) {
  return static_cast<float>(v);
}

template <typename scalar_t, typename label_t>
void topk_stats_rows(const at::Tensor& logits, int64_t k, const int64_t* subset, int64_t c, const int64_t* target,
                     const int64_t* ranges, const label_t* labels, int64_t num_labels, bool with_softmax,
                     bool topk_probs, float* topk_logits, int64_t* topk_indices, bool* hits, float* row_stats, int64_t* target_rank) {
  const int64_t n = logits.size(0);
  const int64_t rs = logits.stride(0), cs = logits.stride(1);
  const scalar_t* base = logits.const_data_ptr<scalar_t>();
  const bool direct = std::is_same<scalar_t, float>::value && cs == 1 && subset == nullptr;
  // rows per thread at least: ~16k elements of work, counting ~32 elements of fixed cost per row
  const int64_t grain = std::max<int64_t>(1, 16384 / (c + 32));
  const bool prefetch_next = direct && c * 4 <= kPrefetchBytes;
  const WidenFn widen = cs == 1 && subset == nullptr ? widen_for<scalar_t>() : nullptr;
  const int64_t block_rows = widen != nullptr ? std::max<int64_t>(1, kWidenBlock / std::max<int64_t>(c, 1)) : 1;

  at::parallel_for(0, n, grain, [&](int64_t begin, int64_t end) {
    std::vector<float> buffer(direct ? 0 : block_rows * c);
    std::vector<uint64_t> keys(k);
    TopKSelector selector(k);
    for (int64_t i = begin; i < end; ++i) {
      const scalar_t* src = base + i * rs;
      const float* x;
      if (direct) {
        x = reinterpret_cast<const float*>(src);
      } else if (widen != nullptr) {
        const int64_t r = (i - begin) % block_rows;
        if (r == 0) {  // widen this row and the next ones of the block
          const int64_t rows = std::min(block_rows, end - i);
          const uint16_t* bits = reinterpret_cast<const uint16_t*>(src);
          if (rs == c) {
            widen(bits, rows * c, buffer.data());
          } else {
            for (int64_t b = 0; b < rows; ++b) widen(bits + b * rs, c, buffer.data() + b * c);
          }
        }
        x = buffer.data() + r * c;
      } else {
        if (subset != nullptr) {
          for (int64_t j = 0; j < c; ++j) buffer[j] = to_float(src[subset[j] * cs]);
        } else if (cs == 1) {
          for (int64_t j = 0; j < c; ++j) buffer[j] = to_float(src[j]);
        } else {
          for (int64_t j = 0; j < c; ++j) buffer[j] = to_float(src[j * cs]);
        }
        x = buffer.data();
      }

      // the next row is fetched while this one is finished: during the softmax pass if there
      // is one (spread over it), else while the top-k candidates are ranked
      const float* next = prefetch_next && i + 1 < end ? x + rs : nullptr;
      selector.run(x, c, keys.data(), with_softmax ? nullptr : next);
      float* tl = topk_logits + i * k;
      int64_t* ti = topk_indices + i * k;
      for (int64_t j = 0; j < k; ++j) {
        ti[j] = rank_key_index(keys[j]);
        tl[j] = x[ti[j]];
      }

      float* st = row_stats + i * kNumStats;
      const float top = tl[0];
      const bool nonfinite = !std::isfinite(top);
      const float nan = std::numeric_limits<float>::quiet_NaN();
      st[kStatMaxLogit] = top;
      st[kStatNonFinite] = nonfinite ? 1.f : 0.f;
      st[kStatLogSumExp] = st[kStatEntropy] = st[kStatSumP2] = st[kStatLogNormalizer] = nan;
      if (with_softmax && !nonfinite) {
        const SoftmaxSums sums = softmax_sums(x, c, top, next);
        const double log_s = std::log(sums.s);
        st[kStatLogSumExp] = static_cast<float>(top + log_s);
        st[kStatLogNormalizer] = static_cast<float>(log_s);
        st[kStatEntropy] = static_cast<float>(log_s - sums.u / sums.s);
        st[kStatSumP2] = static_cast<float>(sums.q / (sums.s * sums.s));
      }
      if (topk_probs) {  // softmax_topk: the top-k logits become probabilities in place (NaN if nonfinite)
        const double shift = top, log_norm = st[kStatLogNormalizer];
        for (int64_t j = 0; j < k; ++j) {
          tl[j] = static_cast<float>(std::exp((static_cast<double>(tl[j]) - shift) - log_norm));
        }
      }
      st[kStatTargetLogit] = nan;
      if (target != nullptr) {
        const int64_t t = target[i];
        if (t >= 0 && t < c) {
          st[kStatTargetLogit] = x[t];
          target_rank[i] = rank_of(x, c, t);
        } else {
          target_rank[i] = -1;
        }
      }
      if (hits != nullptr) {
        const int64_t b = std::min(std::max<int64_t>(ranges[2 * i], 0), num_labels);
        const int64_t e = std::min(std::max<int64_t>(ranges[2 * i + 1], b), num_labels);
        label_hits(ti, k, labels + b, e - b, hits + i * k);
      }
    }
  });
}

}  // namespace
}  // namespace cpu

std::string cpu_isa() { return cpu::isa_name(cpu::isa()); }

namespace {

// topk_stats_cpu; topk_probs: the top-k values come out as softmax probabilities (softmax_topk).
TopKStatsResult topk_stats_impl(const at::Tensor& logits, int64_t k, const std::optional<at::Tensor>& target,
                                const std::optional<at::Tensor>& label_ranges, const std::optional<at::Tensor>& labels,
                                const std::optional<at::Tensor>& class_subset, bool with_softmax, bool topk_probs) {
  check_topk_stats_inputs(logits, k, target, label_ranges, labels, class_subset);
  TORCH_CHECK(logits.device().is_cpu(), "mlmetrics: topk_stats_cpu needs CPU tensors");
  const int64_t n = logits.size(0);
  at::Tensor subset;
  int64_t c = logits.size(1);
  if (class_subset.has_value()) {
    subset = class_subset->contiguous();  // in range and distinct: check_topk_stats_inputs
    c = subset.numel();
  }
  auto f32 = logits.options().dtype(at::kFloat);
  auto i64 = logits.options().dtype(at::kLong);
  at::Tensor topk_logits = at::empty({n, k}, f32);
  at::Tensor topk_indices = at::empty({n, k}, i64);
  at::Tensor hits = at::empty({n, label_ranges.has_value() ? k : 0}, logits.options().dtype(at::kBool));
  at::Tensor row_stats = at::empty({n, kNumStats}, f32);
  at::Tensor target_rank = at::empty({target.has_value() ? n : 0}, i64);
  if (n == 0) return {topk_logits, topk_indices, hits, row_stats, target_rank};

  at::Tensor tgt = target.has_value() ? target->contiguous() : at::Tensor();
  at::Tensor rng = label_ranges.has_value() ? label_ranges->contiguous() : at::Tensor();
  at::Tensor lab = labels.has_value() ? labels->contiguous() : at::Tensor();

  auto run = [&](auto scalar_tag, auto label_tag) {
    using scalar_t = decltype(scalar_tag);
    using label_t = decltype(label_tag);
    cpu::topk_stats_rows<scalar_t, label_t>(
        logits, k, subset.defined() ? subset.const_data_ptr<int64_t>() : nullptr, c,
        tgt.defined() ? tgt.const_data_ptr<int64_t>() : nullptr, rng.defined() ? rng.const_data_ptr<int64_t>() : nullptr,
        lab.defined() ? lab.const_data_ptr<label_t>() : nullptr, lab.defined() ? lab.numel() : 0, with_softmax,
        topk_probs, topk_logits.mutable_data_ptr<float>(), topk_indices.mutable_data_ptr<int64_t>(),
        rng.defined() ? hits.mutable_data_ptr<bool>() : nullptr, row_stats.mutable_data_ptr<float>(),
        tgt.defined() ? target_rank.mutable_data_ptr<int64_t>() : nullptr);
  };
  auto by_labels = [&](auto scalar_tag) {
    if (lab.defined() && lab.scalar_type() == at::kLong) {
      run(scalar_tag, int64_t{});
    } else {
      run(scalar_tag, int32_t{});
    }
  };
  switch (logits.scalar_type()) {
    case at::kFloat: by_labels(float{}); break;
    case at::kHalf: by_labels(c10::Half{}); break;
    case at::kBFloat16: by_labels(c10::BFloat16{}); break;
    default: TORCH_CHECK(false, "mlmetrics: unsupported dtype ", logits.scalar_type());
  }
  return {topk_logits, topk_indices, hits, row_stats, target_rank};
}

}  // namespace

TopKStatsResult topk_stats_cpu(const at::Tensor& logits, int64_t k, const std::optional<at::Tensor>& target,
                               const std::optional<at::Tensor>& label_ranges,
                               const std::optional<at::Tensor>& labels,
                               const std::optional<at::Tensor>& class_subset, bool with_softmax) {
  return topk_stats_impl(logits, k, target, label_ranges, labels, class_subset, with_softmax, false);
}

// softmax_topk: topk_stats with the k logits of each row turned into probabilities as the row is
// finished, exp((x - max_logit) - log_normalizer) in double.
std::tuple<at::Tensor, at::Tensor> softmax_topk_cpu(const at::Tensor& logits, int64_t k) {
  TopKStatsResult s = topk_stats_impl(logits, k, std::nullopt, std::nullopt, std::nullopt, std::nullopt, true, true);
  return {std::get<0>(s), std::get<1>(s)};
}

}  // namespace mlmetrics
