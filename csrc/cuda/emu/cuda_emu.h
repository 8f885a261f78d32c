// CPU emulation of the CUDA C++ subset the kernels in csrc/cuda/ use, so their device code compiles
// as plain C++ and runs on CPU tensors (tests/ops/test_topk_stats_cuda_emu.py).
//
// Every thread of a block is a fiber (ucontext) with its own stack; a block runs on one OS thread,
// its fibers switching only at the synchronisation points: warp shuffles / votes (a rendezvous of
// exactly the lanes in `mask`, which must all call the same function with the same mask) and
// __syncthreads (every thread of the block that has not exited). Blocks run one after another in
// block-index order, so __shared__ (a thread_local static) is the block's shared memory and
// atomics need no locking. What would be undefined behaviour on a GPU is an error here: a
// shuffle from a lane outside `mask`, a mask without the caller's lane, lanes of one mask waiting
// in different calls, or a rendezvous that can never complete (a lane of `mask` exited).
// Not emulated: -ftz / approximate-math numerics (exp is the accurate libm one), memory-order
// effects between blocks, warp-synchronous code that relies on implicit lockstep.
#pragma once

#include <sys/mman.h>
#include <ucontext.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <stdexcept>
#include <string>
#include <vector>

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __shared__ static thread_local

struct dim3 {
  unsigned x, y, z;
  dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};
struct uint3 {
  unsigned x, y, z;
};
struct uint4 {
  unsigned x, y, z, w;
};
inline uint4 make_uint4(unsigned x, unsigned y, unsigned z, unsigned w) { return {x, y, z, w}; }
struct __half {
  unsigned short bits;
};
using cudaStream_t = int;

inline unsigned __float_as_uint(float x) {
  unsigned u;
  std::memcpy(&u, &x, 4);
  return u;
}
inline float __uint_as_float(unsigned u) {
  float x;
  std::memcpy(&x, &u, 4);
  return x;
}
inline __half __ushort_as_half(unsigned short v) { return {v}; }
inline float __half2float(__half h) {  // exact, subnormals included
  const unsigned sign = (h.bits & 0x8000u) << 16, e = (h.bits >> 10) & 0x1Fu, m = h.bits & 0x3FFu;
  if (e == 0x1Fu) return __uint_as_float(sign | 0x7F800000u | (m << 13));
  if (e != 0u) return __uint_as_float(sign | ((e + 112u) << 23) | (m << 13));
  const float mag = std::ldexp(static_cast<float>(m), -24);
  return sign ? -mag : mag;
}
inline float __expf(float x) { return std::exp(x); }
inline float __logf(float x) { return std::log(x); }
inline float __fdividef(float a, float b) { return a / b; }
inline int __popc(unsigned v) { return __builtin_popcount(v); }
inline int __popcll(unsigned long long v) { return __builtin_popcountll(v); }
inline int __clz(unsigned v) { return v ? __builtin_clz(v) : 32; }
inline int __ffs(unsigned v) { return __builtin_ffs(static_cast<int>(v)); }
inline int __ffsll(long long v) { return __builtin_ffsll(v); }
inline unsigned __brev(unsigned v) {
  unsigned r = 0;
  for (int i = 0; i < 32; ++i) r |= ((v >> i) & 1u) << (31 - i);
  return r;
}
inline unsigned max(unsigned a, unsigned b) { return a > b ? a : b; }
inline unsigned min(unsigned a, unsigned b) { return a < b ? a : b; }
inline int max(int a, int b) { return a > b ? a : b; }
inline int min(int a, int b) { return a < b ? a : b; }
inline long long max(long long a, long long b) { return a > b ? a : b; }
inline long long min(long long a, long long b) { return a < b ? a : b; }
inline unsigned long long max(unsigned long long a, unsigned long long b) { return a > b ? a : b; }
inline unsigned long long min(unsigned long long a, unsigned long long b) { return a < b ? a : b; }
template <class T>
inline T __ldg(const T* p) {
  return *p;
}
// Fibers never run concurrently: atomics are plain read-modify-writes.
template <class T>
inline T atomicAdd(T* p, T v) {
  const T o = *p;
  *p = o + v;
  return o;
}
template <class T>
inline T atomicMax(T* p, T v) {
  const T o = *p;
  *p = o > v ? o : v;
  return o;
}
template <class T>
inline T atomicMin(T* p, T v) {
  const T o = *p;
  *p = o < v ? o : v;
  return o;
}
inline void __threadfence() {}
inline void __threadfence_block() {}

namespace mlm_emu {

constexpr size_t kStackBytes = 256 << 10;

struct Fiber {
  ucontext_t ctx;
  uint3 tid;
  int lane = 0, warp = 0;
  bool exited = false;
  bool at_barrier = false;
  // warp rendezvous slot
  bool waiting = false, done = false;
  int kind = 0;
  unsigned mask = 0;
  int src = 0;
  uint64_t val = 0, result = 0;
  void* stack = nullptr;
};

struct Block {
  dim3 grid_dim, block_dim;
  uint3 block_idx;
  std::vector<Fiber> fibers;
  ucontext_t sched;
  std::function<void()> body;
  int alive = 0, arrived = 0;
  std::string error;
};

inline thread_local Block* cur_block = nullptr;
inline thread_local Fiber* cur = nullptr;

[[noreturn]] inline void fail(const std::string& what) { throw std::runtime_error("CUDA emulation: " + what); }

inline void yield() { swapcontext(&cur->ctx, &cur_block->sched); }

inline void fiber_main() {
  Block* b = cur_block;
  try {
    b->body();
  } catch (const std::exception& e) {
    if (b->error.empty()) b->error = e.what();
  }
  Fiber* f = cur;
  f->exited = true;
  --b->alive;
  if (b->arrived > 0 && b->arrived == b->alive) {  // exited threads no longer hold a barrier up
    for (Fiber& o : b->fibers) o.at_barrier = false;
    b->arrived = 0;
  }
  swapcontext(&f->ctx, &b->sched);
}

enum Kind { kShfl = 1, kBallot = 2 };

// Completes the rendezvous of `mask` in warp `w` if every lane of it is waiting in the same call.
inline void try_complete(Fiber* w, unsigned mask, int kind) {
  for (int i = 0; i < 32; ++i) {
    if (!((mask >> i) & 1u)) continue;
    const Fiber& f = w[i];
    if (f.exited) fail("lane " + std::to_string(i) + " of a warp-sync mask has exited");
    if (!f.waiting || f.done) return;
    if (f.mask != mask || f.kind != kind) fail("lanes of one warp-sync mask wait in different calls");
  }
  uint64_t ballot = 0;
  if (kind == kBallot)
    for (int i = 0; i < 32; ++i)
      if (((mask >> i) & 1u) && w[i].val) ballot |= uint64_t{1} << i;
  for (int i = 0; i < 32; ++i) {
    if (!((mask >> i) & 1u)) continue;
    Fiber& f = w[i];
    if (kind == kShfl) {
      if (!((mask >> f.src) & 1u)) fail("shuffle from a lane outside its mask");
      f.result = w[f.src].val;
    } else {
      f.result = ballot;
    }
    f.done = true;
  }
}

inline uint64_t rendezvous(int kind, unsigned mask, uint64_t val, int src) {
  Fiber* f = cur;
  if (!((mask >> f->lane) & 1u)) fail("warp-sync mask without the calling lane");
  const int nthreads = static_cast<int>(cur_block->fibers.size());
  const int warp_lanes = std::min(32, nthreads - f->warp * 32);
  if (warp_lanes < 32 && (mask >> warp_lanes) != 0u) fail("warp-sync mask names lanes past the block");
  f->kind = kind;
  f->mask = mask;
  f->val = val;
  f->src = src;
  f->done = false;
  f->waiting = true;
  Fiber* w = cur_block->fibers.data() + f->warp * 32;
  try_complete(w, mask, kind);
  if (!f->done) yield();
  f->waiting = false;
  return f->result;
}

template <class T>
inline uint64_t to_bits(T v) {
  static_assert(sizeof(T) <= 8, "shuffle of a type wider than 64 bits");
  uint64_t u = 0;
  std::memcpy(&u, &v, sizeof(T));
  return u;
}
template <class T>
inline T from_bits(uint64_t u) {
  T v;
  std::memcpy(&v, &u, sizeof(T));
  return v;
}

inline void run_block(Block& b) {
  for (Fiber& f : b.fibers) {
    f.exited = f.at_barrier = f.waiting = f.done = false;
    getcontext(&f.ctx);
    f.ctx.uc_stack.ss_sp = f.stack;
    f.ctx.uc_stack.ss_size = kStackBytes;
    f.ctx.uc_link = nullptr;
    makecontext(&f.ctx, fiber_main, 0);
  }
  b.alive = static_cast<int>(b.fibers.size());
  b.arrived = 0;
  while (b.alive > 0) {
    bool progress = false;
    for (Fiber& f : b.fibers) {
      if (f.exited || f.at_barrier || (f.waiting && !f.done)) continue;
      cur = &f;
      swapcontext(&b.sched, &f.ctx);
      progress = true;
      if (!b.error.empty()) break;
    }
    if (!b.error.empty()) break;
    if (!progress) fail("deadlock: every live thread waits in a barrier or shuffle that cannot complete");
  }
  cur = nullptr;
  if (!b.error.empty()) throw std::runtime_error(b.error);
}

// Runs kernel body `body` (which reads threadIdx / blockIdx) on grid x block threads.
inline void launch(dim3 grid, dim3 block, const std::function<void()>& body) {
  const size_t nthreads = static_cast<size_t>(block.x) * block.y * block.z;
  if (nthreads == 0 || nthreads > 1024) fail("block size must be in [1, 1024]");
  if (grid.x == 0 || grid.y == 0 || grid.z == 0) fail("empty grid");
  Block b;
  b.grid_dim = grid;
  b.block_dim = block;
  b.body = body;
  b.fibers.resize(nthreads);
  for (size_t t = 0; t < nthreads; ++t) {
    Fiber& f = b.fibers[t];
    f.tid = {static_cast<unsigned>(t % block.x), static_cast<unsigned>((t / block.x) % block.y),
             static_cast<unsigned>(t / (static_cast<size_t>(block.x) * block.y))};
    f.lane = static_cast<int>(t % 32);
    f.warp = static_cast<int>(t / 32);
    // a guard page below each stack turns an overflow into a crash, not silent corruption
    void* m = mmap(nullptr, kStackBytes + 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) fail("cannot map a fiber stack");
    mprotect(m, 4096, PROT_NONE);
    f.stack = static_cast<char*>(m) + 4096;
  }
  Block* outer = cur_block;
  cur_block = &b;
  std::string err;
  try {
    for (unsigned z = 0; z < grid.z; ++z)
      for (unsigned y = 0; y < grid.y; ++y)
        for (unsigned x = 0; x < grid.x; ++x) {
          b.block_idx = {x, y, z};
          run_block(b);
        }
  } catch (const std::exception& e) {
    err = e.what();
  }
  cur_block = outer;
  for (Fiber& f : b.fibers) munmap(static_cast<char*>(f.stack) - 4096, kStackBytes + 4096);
  if (!err.empty()) throw std::runtime_error(err);
}

}  // namespace mlm_emu

#define threadIdx (::mlm_emu::cur->tid)
#define blockIdx (::mlm_emu::cur_block->block_idx)
#define blockDim (::mlm_emu::cur_block->block_dim)
#define gridDim (::mlm_emu::cur_block->grid_dim)

inline void __syncthreads() {
  using namespace mlm_emu;
  Fiber* f = cur;
  Block* b = cur_block;
  f->at_barrier = true;
  if (++b->arrived == b->alive) {
    for (Fiber& o : b->fibers) o.at_barrier = false;
    b->arrived = 0;
    return;
  }
  yield();
}
inline void __syncwarp(unsigned mask = 0xFFFFFFFFu) { mlm_emu::rendezvous(mlm_emu::kBallot, mask, 0, 0); }

// Shuffles: lanes are split into segments of `width`; a source outside the caller's segment
// returns the caller's own value (as on the GPU for down / up / xor past the segment).
template <class T>
inline T __shfl_sync(unsigned mask, T v, int src_lane, int width = 32) {
  const int lane = mlm_emu::cur->lane, base = lane & ~(width - 1);
  const int src = base + (src_lane & (width - 1));
  return mlm_emu::from_bits<T>(mlm_emu::rendezvous(mlm_emu::kShfl, mask, mlm_emu::to_bits(v), src));
}
template <class T>
inline T __shfl_xor_sync(unsigned mask, T v, int lane_mask, int width = 32) {
  const int lane = mlm_emu::cur->lane, base = lane & ~(width - 1);
  int src = lane ^ lane_mask;
  if (src >= base + width) src = lane;
  return mlm_emu::from_bits<T>(mlm_emu::rendezvous(mlm_emu::kShfl, mask, mlm_emu::to_bits(v), src));
}
template <class T>
inline T __shfl_down_sync(unsigned mask, T v, unsigned delta, int width = 32) {
  const int lane = mlm_emu::cur->lane, base = lane & ~(width - 1);
  int src = lane + static_cast<int>(delta);
  if (src >= base + width) src = lane;
  return mlm_emu::from_bits<T>(mlm_emu::rendezvous(mlm_emu::kShfl, mask, mlm_emu::to_bits(v), src));
}
template <class T>
inline T __shfl_up_sync(unsigned mask, T v, unsigned delta, int width = 32) {
  const int lane = mlm_emu::cur->lane, base = lane & ~(width - 1);
  int src = lane - static_cast<int>(delta);
  if (src < base) src = lane;
  return mlm_emu::from_bits<T>(mlm_emu::rendezvous(mlm_emu::kShfl, mask, mlm_emu::to_bits(v), src));
}
inline unsigned __ballot_sync(unsigned mask, int pred) {
  return static_cast<unsigned>(mlm_emu::rendezvous(mlm_emu::kBallot, mask, pred ? 1u : 0u, 0));
}
inline int __any_sync(unsigned mask, int pred) { return __ballot_sync(mask, pred) != 0u; }
inline int __all_sync(unsigned mask, int pred) { return __ballot_sync(mask, pred) == mask; }
