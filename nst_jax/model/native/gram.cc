// The Gram matrix's product G (…, C, C) = Fᵀ F of features F (…, M, C), row-major, for XLA-CPU, called
// through XLA's foreign-function interface (`NstGram`): XLA-CPU's own product, contracting the long axis
// of positions, ran at 80–180 GFLOP/s on a 2-core Xeon (docs/benchmarks.md). Fᵀ F is symmetric, so only
// the blocks on and above the diagonal are computed (about half the products) and mirrored. The
// positions are cut into chunks of fixed length; each (chunk, column panel) is one item of work, summed
// into its own partial, and the partials are added in chunk order: the result does not depend on the
// number of threads or on which thread took which item.
//
// Built with the fused Winograd kernel into one library by `nst_jax/model/fused.py`.

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <functional>
#include <memory>
#include <thread>
#include <vector>

#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

namespace {

#if defined(__AVX512F__)
constexpr int VL = 16;
#elif defined(__AVX__)
constexpr int VL = 8;
#else
constexpr int VL = 4;
#endif
constexpr int NQ = 2, NR = VL * NQ;  // columns per panel
constexpr int MR = 6;                // rows per micro-kernel call

typedef float vf __attribute__((vector_size(VL * 4)));
typedef float vfu __attribute__((vector_size(VL * 4), aligned(4)));
inline vf load(const float* p) { return *reinterpret_cast<const vfu*>(p); }
inline void store(float* p, vf v) { *reinterpret_cast<vfu*>(p) = v; }

// g[R×NR] (row stride ldg) = Σ_k f[k, i0..i0+R) ⊗ f[k, j0..j0+NR), k over `rows` rows of stride C.
template <int R>
inline void gram_block(const float* __restrict f, int C, int rows, int i0, int j0, float* __restrict g, int ldg) {
  vf acc[R][NQ];
  for (int r = 0; r < R; ++r)
    for (int q = 0; q < NQ; ++q) acc[r][q] = vf{};
  for (int k = 0; k < rows; ++k) {
    const float* row = f + (size_t)k * C;
    vf b[NQ];
#pragma GCC unroll 2
    for (int q = 0; q < NQ; ++q) b[q] = load(row + j0 + q * VL);
#pragma GCC unroll 6
    for (int r = 0; r < R; ++r) {
      const float s = row[i0 + r];
#pragma GCC unroll 2
      for (int q = 0; q < NQ; ++q) acc[r][q] += s * b[q];
    }
  }
  for (int r = 0; r < R; ++r)
    for (int q = 0; q < NQ; ++q) store(g + (size_t)r * ldg + q * VL, acc[r][q]);
}

// Rows i0..i0+n in micro-kernel calls of MR rows, the last one shorter.
template <typename Fn>
inline void by_rows(int n, Fn&& fn) {
  int i = 0;
  for (; i + MR <= n; i += MR) fn(i, std::integral_constant<int, MR>{});
  switch (n - i) {
    case 1: fn(i, std::integral_constant<int, 1>{}); break;
    case 2: fn(i, std::integral_constant<int, 2>{}); break;
    case 3: fn(i, std::integral_constant<int, 3>{}); break;
    case 4: fn(i, std::integral_constant<int, 4>{}); break;
    case 5: fn(i, std::integral_constant<int, 5>{}); break;
    default: break;
  }
}

// Items 0..n-1 shared among the pool's threads and this one; returns when all are done.
void share(ffi::ThreadPool& pool, int n, const std::function<void(int)>& fn) {
  struct Job {
    std::atomic<int> next{0}, done{0};
    int n;
    std::function<void(int)> fn;
  };
  auto job = std::make_shared<Job>();
  job->n = n;
  job->fn = fn;
  auto work = [](Job& j) {
    for (int i; (i = j.next.fetch_add(1)) < j.n;) {
      j.fn(i);
      j.done.fetch_add(1, std::memory_order_release);
    }
  };
  const int helpers = std::min<int64_t>(std::max<int64_t>(pool.num_threads(), 1) - 1, n - 1);
  for (int h = 0; h < helpers; ++h) pool.Schedule([job, work] { work(*job); });
  work(*job);
  while (job->done.load(std::memory_order_acquire) < job->n) std::this_thread::yield();
}

// Positions per chunk: about 1 MB of features, at least 256 positions.
int chunk_rows(int C) { return std::max(256, (1 << 18) / C); }

bool batch_of(ffi::Span<const int64_t> d, int64_t& n, int64_t& m, int& c) {
  if (d.size() < 2) return false;
  n = 1;
  for (size_t i = 0; i + 2 < d.size(); ++i) n *= d[i];
  m = d[d.size() - 2];
  c = (int)d[d.size() - 1];
  return c > 0 && c % NR == 0 && m > 0;
}

ffi::Error gram(ffi::ThreadPool pool, ffi::Buffer<ffi::F32> fb, ffi::ResultBuffer<ffi::F32> gb) {
  int64_t N, M;
  int C;
  if (!batch_of(fb.dimensions(), N, M, C)) return ffi::Error::InvalidArgument("nst_jax gram: features shape");
  const auto gd = gb->dimensions();
  if (gd.size() != fb.dimensions().size() || gd[gd.size() - 1] != C || gd[gd.size() - 2] != C)
    return ffi::Error::InvalidArgument("nst_jax gram: output shape");
  const int KC = chunk_rows(C), P = C / NR;
  const int64_t chunks = (M + KC - 1) / KC;
  std::vector<float> partial;
  try {
    partial.resize((size_t)N * chunks * C * C);
  } catch (const std::bad_alloc&) {
    return ffi::Error(ffi::ErrorCode::kResourceExhausted, "nst_jax gram: out of memory");
  }
  const float* f = fb.typed_data();
  float* g = gb->typed_data();
  float* part = partial.data();
  // item (n, chunk, panel): rows 0..(panel+1)·NR of the panel's columns, over the chunk's positions
  share(pool, (int)(N * chunks * P), [=](int item) {
    const int p = item % P;
    const int64_t c = (item / P) % chunks, n = item / P / chunks;
    const int64_t k0 = c * KC;
    const int rows = (int)std::min<int64_t>(KC, M - k0);
    const float* fk = f + ((size_t)n * M + k0) * C;
    float* out = part + ((size_t)n * chunks + c) * C * C;
    by_rows((p + 1) * NR, [&](int i, auto r) { gram_block<decltype(r)::value>(fk, C, rows, i, p * NR, out + (size_t)i * C + p * NR, C); });
  });
  // sum the chunks in order into the upper triangle, then mirror it
  share(pool, (int)(N * C), [=](int item) {
    const int i = item % C;
    const int64_t n = item / C;
    float* gi = g + ((size_t)n * C + i) * C;
    const int j0 = i / NR * NR;
    for (int j = j0; j < C; ++j) {
      float s = 0.f;
      for (int64_t c = 0; c < chunks; ++c) s += part[(((size_t)n * chunks + c) * C + i) * C + j];
      gi[j] = s;
    }
  });
  share(pool, (int)(N * C), [=](int item) {
    const int i = item % C;
    const int64_t n = item / C;
    float* gn = g + (size_t)n * C * C;
    for (int j = 0; j < i / NR * NR; ++j) gn[(size_t)i * C + j] = gn[(size_t)j * C + i];
  });
  return ffi::Error::Success();
}

}  // namespace

XLA_FFI_DEFINE_HANDLER_SYMBOL(NstGram, gram,
                              ffi::Ffi::Bind().Ctx<ffi::ThreadPool>().Arg<ffi::Buffer<ffi::F32>>().Ret<ffi::Buffer<ffi::F32>>());

// Channels must be a multiple of this (the panel's width).
extern "C" int nst_gram_channels() { return NR; }
