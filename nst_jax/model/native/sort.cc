// Stable sorts of the columns of X (…, M, K) along M, for XLA-CPU (`NstSortColumns`), and the permutation's
// inverse (`NstUnsortColumns`), called through XLA's foreign-function interface. XLA-CPU sorts with a
// comparison function called per pair: 1.06 s for one 65536 × 64 array on a 2-core Xeon, where the sliced
// Wasserstein and histogram statistics sort several such arrays per iteration (docs/benchmarks.md).
//
// Each column is sorted by a least-significant-digit radix sort (four passes of 8 bits; a pass whose digit
// is the same for every key is skipped) on keys that order floats as JAX's sort does: -0 equal to +0, every
// NaN equal and after +inf. The sort is stable, so `order` is the permutation `jnp.argsort(x, axis=-2)`
// (stable) gives, and `sorted` is x taken in that order: the bits of `jnp.sort`. Columns are independent
// items of work, so nothing depends on the number of threads.
//
// Built with the fused Winograd kernel into one library by `nst_jax/model/fused.py`.

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstring>
#include <memory>
#include <new>
#include <string>

#include "share.h"
#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

namespace {

// The key whose unsigned order is JAX's order of floats (`lax._sort_lt_comparator`).
constexpr uint32_t ZERO_KEY = 0x80000000u, NAN_KEY = 0xFFC00000u;
inline uint32_t key_of(float x) {
  uint32_t u;
  if (x == 0.f) return ZERO_KEY;
  if (x != x) return NAN_KEY;
  std::memcpy(&u, &x, 4);
  return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}

// The float of a key; zeros and NaNs (whose sign or payload the key dropped) are read from x instead.
inline float value_of(uint32_t key) {
  const uint32_t u = (key & 0x80000000u) ? (key & 0x7FFFFFFFu) : ~key;
  float x;
  std::memcpy(&x, &u, 4);
  return x;
}

// Columns are sorted in groups of G: one pass over the rows reads the group's keys (a cache line holds 16
// columns) and one writes its results; the group's keys take at most 4 MB.
constexpr int MOST_COLUMNS = 16;
int group_columns(int64_t M) { return (int)std::max<int64_t>(1, std::min<int64_t>(MOST_COLUMNS, (1 << 20) / M)); }

// One column's keys (M) sorted in place, stably, by least-significant-digit radix sort (8-bit digits; a
// digit the same for every key is skipped); `rows` gets the rows they came from. `counts`: its 4×256
// digit counts; `keys2`, `rows2`: scratch of M.
void radix_sort(uint32_t* keys, int32_t* rows, int64_t M, const int32_t (*counts)[256], uint32_t* keys2,
                int32_t* rows2) {
  for (int64_t i = 0; i < M; ++i) rows[i] = (int32_t)i;
  uint32_t *kin = keys, *kout = keys2;
  int32_t *rin = rows, *rout = rows2;
  for (int d = 0; d < 4; ++d) {
    const int shift = 8 * d;
    if (counts[d][(kin[0] >> shift) & 255] == M) continue;
    int64_t start[256];
    for (int64_t b = 0, sum = 0; b < 256; ++b) {
      start[b] = sum;
      sum += counts[d][b];
    }
    for (int64_t i = 0; i < M; ++i) {
      const int64_t at = start[(kin[i] >> shift) & 255]++;
      kout[at] = kin[i];
      rout[at] = rin[i];
    }
    std::swap(kin, kout);
    std::swap(rin, rout);
  }
  if (kin != keys) {
    std::copy(kin, kin + M, keys);
    std::copy(rin, rin + M, rows);
  }
}

// Columns k0..k0+G of the (M, K) array x sorted: the rows in sorted order into `order`, and x taken in
// that order into `sorted` (both (M, K)).
void sort_group(const float* x, int64_t M, int64_t K, int64_t k0, int G, float* sorted, int32_t* order) {
  std::unique_ptr<uint32_t[]> keys(new uint32_t[(size_t)G * M + M]);
  std::unique_ptr<int32_t[]> rows(new int32_t[(size_t)G * M + M]);
  std::unique_ptr<int32_t[][4][256]> counts(new int32_t[G][4][256]());
  for (int64_t i = 0; i < M; ++i) {
    const float* xi = x + i * K + k0;
    for (int g = 0; g < G; ++g) {
      const uint32_t key = key_of(xi[g]);
      keys[(size_t)g * M + i] = key;
      for (int d = 0; d < 4; ++d) ++counts[g][d][(key >> (8 * d)) & 255];
    }
  }
  uint32_t* keys2 = keys.get() + (size_t)G * M;
  int32_t* rows2 = rows.get() + (size_t)G * M;
  for (int g = 0; g < G; ++g) radix_sort(keys.get() + (size_t)g * M, rows.get() + (size_t)g * M, M, counts[g], keys2, rows2);
  for (int64_t i = 0; i < M; ++i)
    for (int g = 0; g < G; ++g) {
      const uint32_t key = keys[(size_t)g * M + i];
      const int32_t r = rows[(size_t)g * M + i];
      order[i * K + k0 + g] = r;
      sorted[i * K + k0 + g] = (key == ZERO_KEY || key == NAN_KEY) ? x[(int64_t)r * K + k0 + g] : value_of(key);
    }
}

ffi::Error shape_error(const char* what, ffi::Span<const int64_t> d) {
  std::string dims;
  for (size_t i = 0; i < d.size(); ++i) dims += (i ? "×" : "") + std::to_string(d[i]);
  return ffi::Error::InvalidArgument(std::string("nst_jax sort: ") + what + " (" + dims +
                                     "; want (…, M, K) with M < 2³¹, the same for every argument and result)");
}

bool same(ffi::Span<const int64_t> a, ffi::Span<const int64_t> b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin());
}

// (images, M, K) of dimensions (…, M, K); `ok` false when they are not such.
struct Dims {
  int64_t images = 1, M = 0, K = 0;
  bool ok = false;
  bool empty() const { return images == 0 || M == 0 || K == 0; }
};
Dims dims_of(ffi::Span<const int64_t> d) {
  Dims out;
  if (d.size() < 2 || d[d.size() - 2] > INT32_MAX) return out;
  for (size_t i = 0; i + 2 < d.size(); ++i) out.images *= d[i];
  out.M = d[d.size() - 2];
  out.K = d.back();
  out.ok = true;
  return out;
}

ffi::Error sort_columns(ffi::ThreadPool pool, ffi::Buffer<ffi::F32> xb, ffi::ResultBuffer<ffi::F32> sb,
                        ffi::ResultBuffer<ffi::S32> ob) {
  try {
    const Dims s = dims_of(xb.dimensions());
    if (!s.ok) return shape_error("argument shape", xb.dimensions());
    if (!same(sb->dimensions(), xb.dimensions()) || !same(ob->dimensions(), xb.dimensions()))
      return shape_error("result shape", sb->dimensions());
    if (s.empty()) return ffi::Error::Success();
    const float* x = xb.typed_data();
    float* sorted = sb->typed_data();
    int32_t* order = ob->typed_data();
    const int G = group_columns(s.M);
    const int64_t groups = (s.K + G - 1) / G;
    std::atomic<bool> short_of_memory{false};
    if (s.images * groups > INT32_MAX) return shape_error("argument shape (too many columns)", xb.dimensions());
    share(pool, (int)(s.images * groups), [=, &short_of_memory](int item) {
      const int64_t n = item / groups, k0 = item % groups * G;
      const size_t at = (size_t)n * s.M * s.K;
      try {
        sort_group(x + at, s.M, s.K, k0, (int)std::min<int64_t>(G, s.K - k0), sorted + at, order + at);
      } catch (const std::bad_alloc&) {
        short_of_memory = true;
      }
    });
    if (short_of_memory) return ffi::Error(ffi::ErrorCode::kResourceExhausted, "nst_jax sort: out of memory");
    return ffi::Error::Success();
  } catch (const std::bad_alloc&) {
    return ffi::Error(ffi::ErrorCode::kResourceExhausted, "nst_jax sort: out of memory");
  }
}

// out[…, order[…, i, k], k] = v[…, i, k]: v put back where `sort_columns` took its rows from; with
// `plus_zero`, v + 0 (as a scatter-add into zeros gives it: -0 becomes +0, the gradient of a sort). An order
// outside 0..M-1 is an error (nothing is written out of bounds); where `order` is not a permutation of
// each column (as `sort_columns` gives), the entries it misses are left unwritten.
ffi::Error unsort_columns(ffi::ThreadPool pool, ffi::Buffer<ffi::F32> vb, ffi::Buffer<ffi::S32> ob,
                          ffi::ResultBuffer<ffi::F32> outb, int32_t plus_zero) {
  try {
    const Dims s = dims_of(vb.dimensions());
    if (!s.ok) return shape_error("argument shape", vb.dimensions());
    if (!same(ob.dimensions(), vb.dimensions()) || !same(outb->dimensions(), vb.dimensions()))
      return shape_error("order or result shape", ob.dimensions());
    if (s.empty()) return ffi::Error::Success();
    const float* v = vb.typed_data();
    const int32_t* order = ob.typed_data();
    float* out = outb->typed_data();
    constexpr int64_t ROWS = 4096;  // rows per item of work
    const int64_t blocks = (s.M + ROWS - 1) / ROWS;
    std::atomic<bool> outside{false};
    if (s.images * blocks > INT32_MAX) return shape_error("argument shape (too many rows)", vb.dimensions());
    share(pool, (int)(s.images * blocks), [=, &outside](int item) {
      const int64_t n = item / blocks, i0 = item % blocks * ROWS, i1 = std::min(s.M, i0 + ROWS);
      const size_t at = (size_t)n * s.M * s.K;
      for (int64_t i = i0; i < i1; ++i)
        for (int64_t k = 0; k < s.K; ++k) {
          const int32_t r = order[at + i * s.K + k];
          if (r < 0 || r >= s.M) {
            outside = true;
            continue;
          }
          const float value = v[at + i * s.K + k];
          out[at + (int64_t)r * s.K + k] = plus_zero ? value + 0.f : value;
        }
    });
    if (outside) return ffi::Error::InvalidArgument("nst_jax unsort: an order entry is outside 0..M-1");
    return ffi::Error::Success();
  } catch (const std::bad_alloc&) {
    return ffi::Error(ffi::ErrorCode::kResourceExhausted, "nst_jax unsort: out of memory");
  }
}

}  // namespace

XLA_FFI_DEFINE_HANDLER_SYMBOL(NstSortColumns, sort_columns,
                              ffi::Ffi::Bind()
                                  .Ctx<ffi::ThreadPool>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::Buffer<ffi::S32>>());

XLA_FFI_DEFINE_HANDLER_SYMBOL(NstUnsortColumns, unsort_columns,
                              ffi::Ffi::Bind()
                                  .Ctx<ffi::ThreadPool>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::S32>>()
                                  .Ret<ffi::Buffer<ffi::F32>>()
                                  .Attr<int32_t>("plus_zero"));
