// Launch configuration of the fused topk_stats kernels for a shape: which kernel, its template
// parameters, grid and block. Plain C++ (no CUDA, no ATen): the host code, the CPU emulation and
// the static SASS budget tool (benchmarks/gpu_static/cuda.py) all read it from here.
#pragma once

#include <cstdint>

namespace mlmetrics {
namespace plan {

enum Layout : int {
  kGroupLayout = 0,  // `lanes` lanes per row (1, 8 or 32), threads / lanes rows per block
  kBlockLayout = 1,  // one block of `threads` threads per row
  kRowsLayout = 2,   // v2: `lanes` lanes per row hold the whole row in registers (`slots` each)
};

struct LaunchPlan {
  int layout;    // Layout
  int lanes;     // lanes per row (group layout); threads (block layout)
  int k_slots;   // K: per-thread top-K buffer slots (a compile-time bucket >= the k the kernel runs)
  int kernel_k;  // the k the fused kernel runs (1 on the general path: statistics and target rank only)
  bool general;  // k > 32: top-k by at::topk over rank keys after the fused kernel
  int threads;   // block size
  int64_t blocks;
  int slots;     // rows layout: element slots per lane (lanes * slots >= c)
};

constexpr int kMaxFusedK = 32;

// c: classes the op sees (C' with class_subset), n rows; version: the kernel (1 or 2).
// v1: 8 lanes per row up to C = 256, 32 up to 4096, then a block of 256 (512 past 16384).
// v2: one lane per row up to C = 32 (a row is one or a few tiles: nothing to share), 8 lanes up to
// C = 2048 (more elements per lane: its per-row merge is amortised over >= 32 vectors per lane),
// then the long-row kernel (topk_v2_long.cuh), a block per row: one warp up to C = 32768, 4 warps
// up to 65535, 2 from 65536 (>= 1024 elements per thread, few warps sharing a row's bound). v2 rows
// of 33 ... 1024 classes take the rows layout, read once into registers: 8 lanes x 16 slots up to
// C = 128 and k = 8, else 16 lanes x 16 / 32 / 64 slots (C <= 256 / 512 / 1024) up to k = 16, else
// 32 x 32 (the threshold is the k-th largest lane maximum: k <= lanes).
inline LaunchPlan launch_plan(int64_t n, int64_t c, int64_t k, int version = 1) {
  LaunchPlan p{};
  p.general = k > kMaxFusedK;
  p.kernel_k = p.general ? 1 : static_cast<int>(k);
  p.k_slots = p.kernel_k <= 8 ? 8 : 32;
  const int64_t group_max_c = version == 1 ? 4096 : 2048;
  const int64_t lanes8_max_c = version == 1 ? 256 : 2048;
  if (version == 2 && c > 32 && c <= 1024) {  // (k <= 32 here: the fused kernels' k)
    p.layout = kRowsLayout;
    if (c <= 128 && p.kernel_k <= 8) {
      p.lanes = 8;
      p.slots = 16;
    } else if (p.kernel_k <= 16) {
      p.lanes = 16;
      p.slots = c <= 256 ? 16 : (c <= 512 ? 32 : 64);
    } else {
      p.lanes = 32;
      p.slots = 32;
    }
    p.threads = 256;
    const int64_t rows_per_block = p.threads / p.lanes;
    p.blocks = (n + rows_per_block - 1) / rows_per_block;
  } else if (c <= group_max_c) {
    p.layout = kGroupLayout;
    p.lanes = version == 2 && c <= 32 ? 1 : (c <= lanes8_max_c ? 8 : 32);
    p.threads = 256;
    const int64_t rows_per_block = p.threads / p.lanes;
    p.blocks = (n + rows_per_block - 1) / rows_per_block;
  } else {
    p.layout = kBlockLayout;
    p.threads = version == 1 ? (c > 16384 ? 512 : 256) : (c >= 65536 ? 64 : (c > 32768 ? 128 : 32));
    p.lanes = p.threads;
    p.blocks = n;
  }
  return p;
}

}  // namespace plan
}  // namespace mlmetrics
