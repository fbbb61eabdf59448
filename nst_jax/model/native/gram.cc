// The Gram matrix's product G (…, C, C) = Fᵀ F of features F (…, M, C), row-major, for XLA-CPU, called
// through XLA's foreign-function interface (`NstGram`): XLA-CPU's own product, contracting the long axis
// of positions, ran at about 80–270 GFLOP/s on a 2-core Xeon (docs/benchmarks.md). Fᵀ F is symmetric, so only
// the blocks on and above the diagonal are computed (about half the products) and mirrored. The
// positions are cut into chunks (as many as M and C say); each (chunk, column panel) is one item of work, summed
// into its own partial, and the partials are added in chunk order: the result does not depend on the
// number of threads or on which thread took which item. The partials take at most 4 MB per image (8·C²
// numbers where that is more: 8 MB at C = 512), and one chunk is written straight into the result.
//
// Built with the fused Winograd kernel into one library by `nst_jax/model/fused.py`.

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <functional>
#include <memory>
#include <new>
#include <string>
#include <thread>
#include <type_traits>

#include "share.h"
#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

namespace {

constexpr int NQ = 2, NR = VL * NQ;  // columns per panel
constexpr int MR = 6;                // rows per micro-kernel call

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

// Rows 0..n in micro-kernel calls of MR rows, the last one shorter (n is a multiple of NR, so even).
static_assert(NR % 2 == 0 && MR == 6, "the rows left over are 0, 2 or 4");
template <typename Fn>
inline void by_rows(int n, Fn&& fn) {
  int i = 0;
  for (; i + MR <= n; i += MR) fn(i, std::integral_constant<int, MR>{});
  if (n - i == 2) fn(i, std::integral_constant<int, 2>{});
  if (n - i == 4) fn(i, std::integral_constant<int, 4>{});
}

// Chunks of positions: about 256 KB of features each (at least 256 positions; 1 MB ones took 11 % longer
// held to AVX2, 2 MB ones twice as long, docs/benchmarks.md), and partials (C² numbers per chunk and image) of at most 4 MB or 8 chunks.
// The count depends on M and C only.
constexpr int64_t CHUNK_BYTES = 1 << 18, PARTIAL_NUMBERS = 1 << 20;
int64_t chunk_count(int64_t M, int C) {
  const int64_t rows = std::max<int64_t>(256, CHUNK_BYTES / 4 / C);
  const int64_t most = std::max<int64_t>(8, PARTIAL_NUMBERS / ((int64_t)C * C));
  return std::max<int64_t>(1, std::min(most, (M + rows - 1) / rows));
}

ffi::Error shape_error(const char* what, ffi::Span<const int64_t> d) {
  std::string dims;
  for (size_t i = 0; i < d.size(); ++i) dims += (i ? "×" : "") + std::to_string(d[i]);
  return ffi::Error::InvalidArgument(std::string("nst_jax gram: ") + what + " (" + dims + "; want features (…, M, C) "
                                     "with C a multiple of " + std::to_string(NR) + ", and a (…, C, C) result)");
}

ffi::Error gram_unchecked(ffi::ThreadPool pool, ffi::Buffer<ffi::F32> fb, ffi::ResultBuffer<ffi::F32> gb) {
  const auto fd = fb.dimensions(), gd = gb->dimensions();
  if (fd.size() < 2 || fd.back() <= 0 || fd.back() % NR) return shape_error("features shape", fd);
  const int64_t M = fd[fd.size() - 2];
  const int C = (int)fd.back();
  int64_t N = 1;
  for (size_t i = 0; i + 2 < fd.size(); ++i) N *= fd[i];
  bool shaped = gd.size() == fd.size() && gd[gd.size() - 1] == C && gd[gd.size() - 2] == C;
  for (size_t i = 0; shaped && i + 2 < fd.size(); ++i) shaped = gd[i] == fd[i];
  if (!shaped) return shape_error("result shape", gd);
  float* g = gb->typed_data();
  if (M == 0) {
    std::fill(g, g + (size_t)N * C * C, 0.f);
    return ffi::Error::Success();
  }
  const int P = C / NR;
  const int64_t chunks = chunk_count(M, C), rows = (M + chunks - 1) / chunks;
  std::unique_ptr<float[]> partial;  // per image and chunk, C×C; not needed for one chunk (written into g)
  if (chunks > 1) partial.reset(new float[(size_t)N * chunks * C * C]);  // bad_alloc: reported by `gram`
  const float* f = fb.typed_data();
  float* part = chunks > 1 ? partial.get() : g;
  // item (image, chunk, panel): rows 0..(panel+1)·NR of the panel's columns, over the chunk's positions
  share(pool, (int)(N * chunks * P), [=](int item) {
    const int p = item % P;
    const int64_t c = (item / P) % chunks, n = item / P / chunks;
    const int64_t k0 = c * rows;
    const int length = (int)std::max<int64_t>(0, std::min(rows, M - k0));
    const float* fk = f + ((size_t)n * M + k0) * C;
    float* out = part + ((size_t)n * chunks + c) * C * C + p * NR;
    by_rows((p + 1) * NR, [&](int i, auto r) {
      gram_block<decltype(r)::value>(fk, C, length, i, p * NR, out + (size_t)i * C, C);
    });
  });
  // the chunks summed in order into the upper triangle (row by row), then mirrored into the lower one
  if (chunks > 1)
    share(pool, (int)(N * C), [=](int item) {
      const int i = item % C, j0 = i / NR * NR;
      const int64_t n = item / C;
      float* gi = g + ((size_t)n * C + i) * C;
      const float* first = part + ((size_t)n * chunks * C + i) * C;
      for (int j = j0; j < C; ++j) gi[j] = first[j];
      for (int64_t c = 1; c < chunks; ++c) {
        const float* pc = first + (size_t)c * C * C;
        for (int j = j0; j < C; ++j) gi[j] += pc[j];
      }
    });
  share(pool, (int)(N * C), [=](int item) {
    const int i = item % C;
    float* gn = g + (size_t)(item / C) * C * C;
    for (int j = 0; j < i / NR * NR; ++j) gn[(size_t)i * C + j] = gn[(size_t)j * C + i];
  });
  return ffi::Error::Success();
}

// No exception leaves the handler: `share` waits for every item whatever happens, so memory running out
// (the partials, its job, an error's text) ends the call with an error and nothing left writing.
ffi::Error gram(ffi::ThreadPool pool, ffi::Buffer<ffi::F32> fb, ffi::ResultBuffer<ffi::F32> gb) {
  try {
    return gram_unchecked(pool, fb, gb);
  } catch (const std::bad_alloc&) {
    return ffi::Error(ffi::ErrorCode::kResourceExhausted, "nst_jax gram: out of memory");
  }
}

}  // namespace

XLA_FFI_DEFINE_HANDLER_SYMBOL(NstGram, gram,
                              ffi::Ffi::Bind().Ctx<ffi::ThreadPool>().Arg<ffi::Buffer<ffi::F32>>().Ret<ffi::Buffer<ffi::F32>>());

// Channels must be a multiple of this (the panel's width).
extern "C" int nst_gram_channels() { return NR; }
