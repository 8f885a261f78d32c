// Per-phase cost of the CPU kernel's row loop: each helper of csrc/cpu/ timed alone over the
// same classifier-like rows (as benchmarks/benchutil.py makes them), one thread, ns per row.
//
// Build and run (from the repository root; the kernel files but the op entry are torch-free):
//   g++ -O3 -std=c++17 -Icsrc/include -Icsrc/cpu benchmarks/cpu_phases.cpp csrc/cpu/isa.cpp \
//       csrc/cpu/softmax_sums.cpp csrc/cpu/group_scan.cpp csrc/cpu/group_candidates.cpp \
//       csrc/cpu/short_row.cpp csrc/cpu/selector.cpp csrc/cpu/target_rank.cpp -o /tmp/cpu_phases
//   /tmp/cpu_phases [rows=8192] [cols=1000] [k=5]      (MLMETRICS_CPU_ISA / _TUNE apply)
//
// Two placements: "stream" walks all rows (8,192 x 1,000 fp32 = 32 MB: L3/DRAM, as the op);
// "hot" cycles over 64 rows (256 KB, in L2: the compute cost alone). Each figure is the minimum
// over repetitions (robust to other load on the machine). "read" is one vector max per row
// (what x.amax(1) does); "row: label_hits" and "row: softmax_topk" are the op's row loop
// without the tensor plumbing.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <random>
#include <vector>

#include "kernels.h"
#include "selector.h"

using namespace mlmetrics;
using namespace mlmetrics::cpu;

namespace {

volatile float g_sink_f;
volatile uint64_t g_sink_u;

std::vector<float> classifier_like(int64_t rows, int64_t cols, uint32_t seed) {
  std::mt19937 gen(seed);
  std::normal_distribution<float> normal(0.f, 1.f);
  std::uniform_real_distribution<float> uni(0.f, 1.f);
  std::vector<float> x(rows * cols);
  for (int64_t i = 0; i < rows; ++i) {
    const float scale = 0.5f + 2.5f * uni(gen), shift = 2.f * normal(gen);
    const int64_t peak = static_cast<int64_t>(uni(gen) * cols) % cols;
    const float bump = 3.f + 6.f * uni(gen);
    for (int64_t j = 0; j < cols; ++j) x[i * cols + j] = (normal(gen) + (j == peak ? bump : 0.f)) * scale + shift;
  }
  return x;
}

// Minimum over reps of the time per row of body(row) applied to rows [0, rows) in order.
double ns_per_row(int64_t rows, int reps, const std::function<void(int64_t)>& body) {
  double best = 1e30;
  for (int r = 0; r < reps; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    for (int64_t i = 0; i < rows; ++i) body(i);
    const double ns = std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - t0).count();
    best = std::min(best, ns / rows);
  }
  return best;
}

#if MLM_HAVE_X86
__attribute__((target("avx512f"))) float row_max_avx512(const float* x, int64_t n) {
  __m512 a = _mm512_set1_ps(-INFINITY), b = a, c = a, d = a;
  int64_t j = 0;
  for (; j + 64 <= n; j += 64) {
    a = _mm512_max_ps(a, _mm512_loadu_ps(x + j));
    b = _mm512_max_ps(b, _mm512_loadu_ps(x + j + 16));
    c = _mm512_max_ps(c, _mm512_loadu_ps(x + j + 32));
    d = _mm512_max_ps(d, _mm512_loadu_ps(x + j + 48));
  }
  for (; j < n; j += 16) a = _mm512_max_ps(a, _mm512_mask_loadu_ps(a, first_lanes(n - j), x + j));
  return _mm512_reduce_max_ps(_mm512_max_ps(_mm512_max_ps(a, b), _mm512_max_ps(c, d)));
}
#endif

float row_max(const float* x, int64_t n) {
#if MLM_HAVE_X86
  if (isa() == Isa::kAvx512) return row_max_avx512(x, n);
#endif
  float m = -INFINITY;
  for (int64_t j = 0; j < n; ++j) m = std::max(m, x[j]);
  return m;
}

}  // namespace

int main(int argc, char** argv) {
  const int64_t rows = argc > 1 ? std::atoll(argv[1]) : 8192;
  const int64_t cols = argc > 2 ? std::atoll(argv[2]) : 1000;
  const int64_t k = argc > 3 ? std::atoll(argv[3]) : 5;
  const std::vector<float> x = classifier_like(rows, cols, 0);
  std::mt19937 gen(1);
  std::vector<int64_t> target(rows), lab_begin(rows + 1);
  std::vector<int32_t> labels;
  for (int64_t i = 0; i < rows; ++i) {  // ReaL-like: mostly one label, some 2-4
    target[i] = gen() % cols;
    lab_begin[i] = static_cast<int64_t>(labels.size());
    const int m = 1 + (gen() % 8 == 0) * (1 + gen() % 3);
    for (int l = 0; l < m; ++l) labels.push_back(static_cast<int32_t>(gen() % cols));
  }
  lab_begin[rows] = static_cast<int64_t>(labels.size());

  // group_scan's outputs, and the candidates, per row (inputs of the later phases)
  std::vector<float> top1(rows * kGroups), top2(rows * kGroups), thr(rows);
  std::vector<int32_t> block(rows * kGroups);
  const int64_t cap = std::max<int64_t>(256, 4 * k);
  std::vector<uint32_t> cand(rows * cap);
  std::vector<int64_t> count(rows);
  int64_t rescanned = 0, linear = 0;
  for (int64_t i = 0; i < rows; ++i) {
    const float* r = x.data() + i * cols;
    group_scan(r, cols, &top1[i * kGroups], &block[i * kGroups], &top2[i * kGroups]);
    count[i] = group_candidates(r, cols, &top1[i * kGroups], &block[i * kGroups], &top2[i * kGroups], k,
                                &cand[i * cap], cap, &thr[i]);
    if (count[i] == -2) {
      ++linear;
      count[i] = collect_above(r, cols, thr[i], &cand[i * cap], cap);
    } else {
      for (int64_t g = 0; g < kGroups; ++g) rescanned += top2[i * kGroups + g] >= thr[i];
    }
  }
  int64_t total_cand = 0;
  for (int64_t i = 0; i < rows; ++i) total_cand += count[i];

  std::printf("rows %lld x %lld, k=%lld, isa %s, tune %s; candidates/row %.2f, rows with a linear rescan %.1f %%, "
              "flagged groups/row %.3f\n",
              (long long)rows, (long long)cols, (long long)k, isa_name(isa()), tune_name(tune()),
              double(total_cand) / rows, 100.0 * linear / rows, double(rescanned) / rows);
  std::printf("%-34s %10s %10s\n", "phase (ns per row, 1 thread)", "stream", "hot");

  TopKSelector selector(k);
  std::vector<uint64_t> keys(k), kbuf(cap);
  std::vector<int64_t> ti(k);
  std::vector<bool> dummy;
  bool hits[256];
  const int64_t hot_rows = std::min<int64_t>(rows, 64);
  const int reps_stream = 5, reps_hot = 5;

  struct Phase {
    const char* name;
    std::function<void(int64_t)> body;
  };
  const float* base = x.data();
  std::vector<Phase> phases = {
      {"read (row max)", [&](int64_t i) { g_sink_f = row_max(base + i * cols, cols); }},
      {"group_scan", [&](int64_t i) {
         g_sink_u = group_scan(base + i * cols, cols, &top1[i * kGroups], &block[i * kGroups], &top2[i * kGroups]);
       }},
      {"group_candidates", [&](int64_t i) {
         float t;
         g_sink_u = group_candidates(base + i * cols, cols, &top1[i * kGroups], &block[i * kGroups],
                                     &top2[i * kGroups], k, &cand[i * cap], cap, &t);
       }},
      {"keys + rank_few", [&](int64_t i) {
         const float* r = base + i * cols;
         const uint32_t* c = &cand[i * cap];
         for (int64_t j = 0; j < count[i]; ++j) kbuf[j] = rank_key(r[c[j]], c[j]);
         rank_few(kbuf.data(), count[i], k, keys.data());
         g_sink_u = keys[0];
       }},
      {"selector (top-k, all of it)", [&](int64_t i) {
         selector.run(base + i * cols, cols, keys.data());
         g_sink_u = keys[0];
       }},
      {"softmax_sums", [&](int64_t i) { g_sink_f = float(softmax_sums(base + i * cols, cols, 0.f, nullptr).s); }},
      {"rank_of (target rank)", [&](int64_t i) { g_sink_u = rank_of(base + i * cols, cols, target[i]); }},
      {"label_hits", [&](int64_t i) {
         for (int64_t j = 0; j < k; ++j) ti[j] = (i * 7 + j) % cols;
         label_hits(ti.data(), k, labels.data() + lab_begin[i], lab_begin[i + 1] - lab_begin[i], hits);
         g_sink_u = hits[0];
       }},
      {"row: label_hits (selector + hits)", [&](int64_t i) {
         const float* r = base + i * cols;
         selector.run(r, cols, keys.data(), i + 1 < rows ? r + cols : nullptr);
         for (int64_t j = 0; j < k; ++j) ti[j] = rank_key_index(keys[j]);
         label_hits(ti.data(), k, labels.data() + lab_begin[i], lab_begin[i + 1] - lab_begin[i], hits);
         g_sink_u = hits[0];
       }},
      {"row: softmax_topk (selector + sums)", [&](int64_t i) {
         const float* r = base + i * cols;
         selector.run(r, cols, keys.data());
         const float top = r[rank_key_index(keys[0])];
         g_sink_f = float(softmax_sums(r, cols, top, i + 1 < rows ? r + cols : nullptr).s);
       }},
  };
  for (const Phase& p : phases) {
    const double stream = ns_per_row(rows, reps_stream, p.body);
    const double hot = ns_per_row(hot_rows * 64, reps_hot, [&](int64_t i) { p.body(i % hot_rows); });
    std::printf("%-34s %10.1f %10.1f\n", p.name, stream, hot);
  }
  return 0;
}
