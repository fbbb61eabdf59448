// What nst_jax's two native kernels (`winograd_f4.cc`, `gram.cc`) share: the CPU's vector of floats, and
// work items shared among XLA's intra-op threads and the calling one.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <thread>

#include "xla/ffi/api/ffi.h"

#if defined(__AVX512F__)
constexpr int VL = 16;  // floats per vector
#elif defined(__AVX__)
constexpr int VL = 8;
#else
constexpr int VL = 4;
#endif

typedef float vf __attribute__((vector_size(VL * 4)));
typedef float vfu __attribute__((vector_size(VL * 4), aligned(4)));

static inline vf load(const float* p) { return *reinterpret_cast<const vfu*>(p); }
static inline void store(float* p, vf v) { *reinterpret_cast<vfu*>(p) = v; }

// Items 0..n-1 of `fn`, taken in turn by the pool's threads and this one; returns when every item is done
// (also when a helper cannot be scheduled: this thread then does its items), so `fn` may refer to the
// caller's locals.
static inline void share(xla::ffi::ThreadPool& pool, int n, std::function<void(int)> fn) {
  struct Job {
    std::atomic<int> next{0}, done{0};
    int n;
    std::function<void(int)> fn;
  };
  auto job = std::make_shared<Job>();
  job->n = n;
  job->fn = std::move(fn);
  auto work = [](Job& j) {
    for (int i; (i = j.next.fetch_add(1)) < j.n;) {
      j.fn(i);
      j.done.fetch_add(1, std::memory_order_release);
    }
  };
  const int helpers = (int)std::min<int64_t>(std::max<int64_t>(pool.num_threads(), 1) - 1, n - 1);
  try {
    for (int h = 0; h < helpers; ++h) pool.Schedule([job, work] { work(*job); });
  } catch (...) {  // not scheduled: this thread does those items
  }
  work(*job);
  while (job->done.load(std::memory_order_acquire) < job->n) std::this_thread::yield();
}
