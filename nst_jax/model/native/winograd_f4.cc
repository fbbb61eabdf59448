// Winograd F(4×4, 3×3) 'same' convolution as one kernel for XLA-CPU (Lavin & Gray, CVPR 2016, "Fast
// Algorithms for Convolutional Neural Networks"), called through XLA's foreign-function interface.
//
// y (N, H, W, O) = x (N, H, W, C) ⊛ a 3×3 kernel with one pixel of zero padding, the kernel given as
// U = G g Gᵀ (`winograd.kernel_f4`) packed in panels of NR output channels: (36, O / NR, C, NR).
// The output is cut into 4×4 tiles (the last ones padded), each read from a 6×6 input tile. A block of
// tiles is transformed (Bᵀ d B), multiplied position by position with U (36 products of
// tiles × C by C × NR per panel), and transformed back (Aᵀ M A) while it is in cache; XLA's fusions
// (`winograd.conv_f4`) write the transformed tiles to memory and read them back between programs.
// Blocks (and, for few blocks, groups of panels) are shared among XLA's intra-op threads; each output
// is computed by one thread in a fixed order, so results do not depend on the threads.
//
// The products come in float32 (`NstWinogradF4`) or, where the CPU has bfloat16 units, in bfloat16 with
// float32 transforms and float32 accumulation (`NstWinogradF4Bf16`): the transformed input is rounded to
// bfloat16 after its transform, U is given in bfloat16 pairs along the input channels ("VNNI" layout,
// (36, O / NR, C / 2, NR, 2)), and the products run on AMX tiles (`tdpbf16ps`, method 2) or on
// AVX512-BF16's `vdpbf16ps` (method 1). Method 3 keeps nearly float32's accuracy on AMX: each float32
// number is split into a bfloat16 and the bfloat16 of its remainder, v = vh + vl and u = uh + ul, and
// v·u is taken as vh·uh + vl·uh + vh·ul (three products; vl·ul, below 2⁻¹⁶ of v·u, is left out); U then
// comes as (36, O / NR, 2, C / 2, NR, 2), its high half first. `phases` (1 input transform, 2 products, 4 output transform)
// leaves out phases for `bench.breakdown`; a run passes 7.
//
// Tiles per block are measured per machine: the first calls of each shape try the candidates (`Tuner`)
// and the rest use the fastest. A block's size changes no result (each tile's sums run in one order).
//
// Built per machine with -march=native by `nst_jax/fused.py`; the vector width follows the CPU.
#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <thread>
#include <tuple>

#include "share.h"
#include "xla/ffi/api/ffi.h"

#if defined(__AVX512F__) && defined(__AVX512BF16__)
#define NST_BF16 1
#include <immintrin.h>
#if defined(__AMX_TILE__) && defined(__AMX_BF16__)
#define NST_AMX 1
#include <sys/syscall.h>
#include <unistd.h>
#endif
#endif

namespace ffi = xla::ffi;

constexpr int NQ = VL == 16 ? 4 : 2;  // vectors per panel (VL: `share.h`)
constexpr int NR = VL * NQ;  // output channels per panel
constexpr int MR = 6;        // tiles per micro-kernel call

// Bᵀ of F(4×4, 3×3), points 0, ±1, ±2, ∞
static inline void bt(const vf d[6], vf r[6]) {
  r[0] = 4.0f * d[0] - 5.0f * d[2] + d[4];
  r[1] = -4.0f * (d[1] + d[2]) + d[3] + d[4];
  r[2] = 4.0f * (d[1] - d[2]) - d[3] + d[4];
  r[3] = 2.0f * (d[3] - d[1]) - d[2] + d[4];
  r[4] = 2.0f * (d[1] - d[3]) - d[2] + d[4];
  r[5] = 4.0f * d[1] - 5.0f * d[3] + d[5];
}

// Aᵀ
static inline void at(const vf m[6], vf y[4]) {
  vf s12 = m[1] + m[2], d12 = m[1] - m[2], s34 = m[3] + m[4], d34 = m[3] - m[4];
  y[0] = m[0] + s12 + s34;
  y[1] = d12 + 2.0f * d34;
  y[2] = s12 + 4.0f * s34;
  y[3] = d12 + 8.0f * d34 + m[5];
}

#if NST_BF16
static inline __m256i to_bf16(vf v) { return (__m256i)_mm512_cvtneps_pbh((__m512)v); }  // nearest
static inline vf from_bf16(__m256i h) { return (vf)_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16); }

// v rounded to bfloat16 at p; with `split`, the bfloat16 of what rounding lost at p + split
static inline void put(uint16_t* p, vf v, int split) {
  __m256i hi = to_bf16(v);
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), hi);
  if (split) _mm256_storeu_si256(reinterpret_cast<__m256i*>(p + split), to_bf16(v - from_bf16(hi)));
}
#endif
static inline void put(float* p, vf v, int) { store(p, v); }

// Bᵀ d B of the 6×6 tile whose top-left input pixel is (y0, x0) (may lie outside: zeros), for all
// channels; plane p of the result at v + p·ps, in float32 or rounded to bfloat16 (split: the remainders C
// further on).
template <typename T>
static void input_tile(const float* x, int H, int W, int C, int y0, int x0, T* v, size_t ps, int split) {
  const bool inside = y0 >= 0 && x0 >= 0 && y0 + 6 <= H && x0 + 6 <= W;
  for (int c = 0; c < C; c += VL) {
    vf r[6][6];
    for (int b = 0; b < 6; ++b) {
      vf d[6];
      for (int a = 0; a < 6; ++a) {
        int yy = y0 + a, xx = x0 + b;
        d[a] = (inside || (yy >= 0 && yy < H && xx >= 0 && xx < W)) ? load(x + ((size_t)yy * W + xx) * C + c)
                                                                    : vf{};
      }
      vf col[6];
      bt(d, col);
      for (int i = 0; i < 6; ++i) r[i][b] = col[i];
    }
    for (int i = 0; i < 6; ++i) {
      vf o[6];
      bt(r[i], o);
      for (int j = 0; j < 6; ++j) put(v + (size_t)(i * 6 + j) * ps + c, o[j], split);
    }
  }
}

// c[MR×NR] = a[MR×K] (row stride lda) · b[K×NR]
static inline void micro(const float* __restrict a, int lda, const float* __restrict b, int K,
                         float* __restrict c) {
  vf acc[MR][NQ];
  for (int r = 0; r < MR; ++r)
    for (int q = 0; q < NQ; ++q) acc[r][q] = vf{};
  for (int k = 0; k < K; ++k) {
    vf bq[NQ];
#pragma GCC unroll 4
    for (int q = 0; q < NQ; ++q) bq[q] = load(b + (size_t)k * NR + q * VL);
#pragma GCC unroll 6
    for (int r = 0; r < MR; ++r) {
      float s = a[(size_t)r * lda + k];
#pragma GCC unroll 4
      for (int q = 0; q < NQ; ++q) acc[r][q] += s * bq[q];
    }
  }
  for (int r = 0; r < MR; ++r)
    for (int q = 0; q < NQ; ++q) store(c + r * NR + q * VL, acc[r][q]);
}

// The float32 products of one position: m (ntp × NR) = v (ntp × C) · u (C × NR).
static void products(const float* v, int C, const float* u, int ntp, float* m) {
  for (int i = 0; i < ntp; i += MR) micro(v + (size_t)i * C, C, u, C, m + (size_t)i * NR);
}

#if NST_BF16
// c[MR×NR] = a[MR×K] (bfloat16, row stride lda) · b (bfloat16 pairs: K/2 rows of NR pairs), by vdpbf16ps
static inline void micro_bf16(const uint16_t* __restrict a, int lda, const uint16_t* __restrict b, int K,
                              float* __restrict c) {
  __m512 acc[MR][NQ];
  for (int r = 0; r < MR; ++r)
    for (int q = 0; q < NQ; ++q) acc[r][q] = _mm512_setzero_ps();
  for (int k = 0; k < K; k += 2) {
    __m512bh bq[NQ];
#pragma GCC unroll 4
    for (int q = 0; q < NQ; ++q) bq[q] = (__m512bh)_mm512_loadu_si512(b + (size_t)k * NR + q * 2 * VL);
#pragma GCC unroll 6
    for (int r = 0; r < MR; ++r) {
      int32_t pair;
      memcpy(&pair, a + (size_t)r * lda + k, 4);
      __m512bh s = (__m512bh)_mm512_set1_epi32(pair);
#pragma GCC unroll 4
      for (int q = 0; q < NQ; ++q) acc[r][q] = _mm512_dpbf16_ps(acc[r][q], s, bq[q]);
    }
  }
  for (int r = 0; r < MR; ++r)
    for (int q = 0; q < NQ; ++q) _mm512_storeu_ps(c + r * NR + q * VL, acc[r][q]);
}

static void products_bf16(const uint16_t* v, int C, const uint16_t* u, int ntp, float* m) {
  for (int i = 0; i < ntp; i += MR) micro_bf16(v + (size_t)i * C, C, u, C, m + (size_t)i * NR);
}
#endif

#if NST_AMX
constexpr int AMX_ROWS = 32;  // tiles per AMX step: two A tiles of 16 rows

// Linux hands out AMX state only on request, once per process; without it a tile instruction faults.
static bool amx_permitted() {
  static const bool ok = syscall(SYS_arch_prctl, 0x1023 /* ARCH_REQ_XCOMP_PERM */, 18 /* XTILEDATA */) == 0;
  return ok;
}

struct alignas(64) TileConfig {
  uint8_t palette, start_row, reserved[14];
  uint16_t bytes_per_row[16];
  uint8_t rows[16];
};

// Every tile 16 rows × 64 bytes: C (16 × 16 float32) += A (16 × 32 bfloat16) · B (16 pairs-rows × 16 pairs).
static void amx_configure() {
  TileConfig config{};
  config.palette = 1;
  for (int t = 0; t < 8; ++t) config.rows[t] = 16, config.bytes_per_row[t] = 64;
  _tile_loadconfig(&config);
}

// Tiles 0–3 hold a 32 × 32 block of m: zeroed, multiplied by tiles 4–5 (rows of v) and 6–7 (columns of
// u), and stored at rows i… and columns h… of m.
static inline void zero_block() {
  _tile_zero(0);
  _tile_zero(1);
  _tile_zero(2);
  _tile_zero(3);
}

static inline void multiply_block() {
  _tile_dpbf16ps(0, 4, 6);
  _tile_dpbf16ps(1, 4, 7);
  _tile_dpbf16ps(2, 5, 6);
  _tile_dpbf16ps(3, 5, 7);
}

static inline void store_block(float* m, int i, int h) {
  _tile_stored(0, m + (size_t)i * NR + h, NR * 4);
  _tile_stored(1, m + (size_t)i * NR + h + 16, NR * 4);
  _tile_stored(2, m + (size_t)(i + 16) * NR + h, NR * 4);
  _tile_stored(3, m + (size_t)(i + 16) * NR + h + 16, NR * 4);
}

// The products of one position on AMX tiles: m (ntp × NR) = v (ntp × C) · u, ntp a multiple of 32 and
// C of 32; tiles 0–3 accumulate a 32 × 32 block of m, 4–5 hold v's rows, 6–7 u's columns.
static void products_amx(const uint16_t* v, int C, const uint16_t* u, int ntp, float* m) {
  for (int i = 0; i < ntp; i += AMX_ROWS)
    for (int h = 0; h < NR; h += 32) {
      zero_block();
      for (int k = 0; k < C; k += 32) {
        _tile_loadd(4, v + (size_t)i * C + k, C * 2);
        _tile_loadd(5, v + (size_t)(i + 16) * C + k, C * 2);
        _tile_loadd(6, u + (size_t)k * NR + 2 * h, NR * 4);
        _tile_loadd(7, u + (size_t)k * NR + 2 * h + 32, NR * 4);
        multiply_block();
      }
      store_block(m, i, h);
    }
}

// The same with split numbers (method 3): v's rows are [vh | vl] (2C wide), u is [uh, ul] (C · NR each).
static void products_amx_split(const uint16_t* v, int C, const uint16_t* u, int ntp, float* m) {
  const uint16_t* ul = u + (size_t)C * NR;
  for (int i = 0; i < ntp; i += AMX_ROWS)
    for (int h = 0; h < NR; h += 32) {
      zero_block();
      for (int k = 0; k < C; k += 32) {
        _tile_loadd(4, v + (size_t)i * 2 * C + k, C * 4);
        _tile_loadd(5, v + (size_t)(i + 16) * 2 * C + k, C * 4);
        _tile_loadd(6, ul + (size_t)k * NR + 2 * h, NR * 4);
        _tile_loadd(7, ul + (size_t)k * NR + 2 * h + 32, NR * 4);
        multiply_block();
        _tile_loadd(6, u + (size_t)k * NR + 2 * h, NR * 4);
        _tile_loadd(7, u + (size_t)k * NR + 2 * h + 32, NR * 4);
        multiply_block();
        _tile_loadd(4, v + (size_t)i * 2 * C + C + k, C * 4);
        _tile_loadd(5, v + (size_t)(i + 16) * 2 * C + C + k, C * 4);
        multiply_block();
      }
      store_block(m, i, h);
    }
}
#endif

// Which bfloat16 products this build has and may use: 1 vdpbf16ps, 2 AMX (granted by Linux), and
// methods 1, 2 and 3 accordingly.
static int bf16_units() {
  int units = 0;
#if NST_BF16
  units |= 1;
#endif
#if NST_AMX
  if (amx_permitted()) units |= 2;
#endif
  return units;
}

static bool method_available(int method) {
  const int units = bf16_units();
  return (method == 1 && (units & 1)) || ((method == 2 || method == 3) && (units & 2));
}

struct Scratch {
  void* p = nullptr;
  size_t n = 0;
  template <typename T>
  T* get(size_t want) {  // nullptr when out of memory
    want *= sizeof(T);
    if (want > n || !p) {
      free(p);
      p = aligned_alloc(64, ((want + 63) / 64) * 64);
      n = p ? want : 0;
    }
    return static_cast<T*>(p);
  }
  ~Scratch() { free(p); }
};

// Tiles per block (a multiple of `step`): `wanted` where it is given (measured by `Tuner`: caches differ
// between CPUs), else a block whose transformed input (36 · tb · C numbers) stays within a few MB; a small
// map still gives each thread two blocks where it can (at least 24 tiles each).
static int tiles_per_block(int C, int64_t tiles, int threads, int step, int wanted) {
  int tb = wanted > 0 ? wanted : std::max(48, std::min(192, 49152 / C));
  tb = (int)std::min<int64_t>(tb, std::max<int64_t>(24, (tiles + 2 * threads - 1) / (2 * threads)));
  tb = (int)std::min<int64_t>(tb, ((tiles + step - 1) / step) * step);
  return std::max(step, tb / step * step);
}

// Tiles per block by measurement: per (channels, panels, tiles, method, phases), each candidate block size
// is timed on `TRIALS` calls (the least time counts) in turns, then the fastest is kept for the process.
// `tiles` > 0 in a call asks for that size (the bench), < 0 the fixed rule; `tiles_per_block` rounds either
// to the step and keeps two blocks per thread where the map is small.
class Tuner {
 public:
  static constexpr int TRIALS = 2;
  // 0: the fixed rule's own size; the others distinct after rounding to a step of 6 (vectors) or 32 (AMX)
  static constexpr std::array<int, 5> CANDIDATES{0, 32, 64, 128, 384};

  // The size to use now, and the candidate to record it under (-1: tuned already).
  std::pair<int, int> pick(const std::tuple<int, int, int64_t, int, int>& key) {
    std::lock_guard<std::mutex> lock(mu_);
    Entry& e = entries_[key];
    if (e.best >= 0) return {CANDIDATES[e.best], -1};
    const int c = e.calls % (int)CANDIDATES.size();
    ++e.calls;
    return {CANDIDATES[c], c};
  }

  void record(const std::tuple<int, int, int64_t, int, int>& key, int candidate, double seconds) {
    if (candidate < 0) return;
    std::lock_guard<std::mutex> lock(mu_);
    Entry& e = entries_[key];
    e.least[candidate] = std::min(e.least[candidate], seconds);
    if (++e.recorded >= TRIALS * (int)CANDIDATES.size() && e.best < 0)
      e.best = (int)(std::min_element(e.least.begin(), e.least.end()) - e.least.begin());
  }

 private:
  struct Entry {
    int calls = 0, recorded = 0, best = -1;
    std::array<double, CANDIDATES.size()> least;
    Entry() { least.fill(1e300); }
  };
  std::mutex mu_;
  std::map<std::tuple<int, int, int64_t, int, int>, Entry> entries_;
};

static Tuner& tuner() {
  static Tuner* t = new Tuner();  // never destroyed: calls may run while the process exits
  return *t;
}

enum Phase { INPUT = 1, PRODUCTS = 2, OUTPUT = 4 };

// The convolution with products of type T (float, or uint16_t for bfloat16); method: 0 float32, 1
// vdpbf16ps, 2 AMX, 3 AMX with split numbers.
template <typename T>
static ffi::Error conv(ffi::ThreadPool pool, const float* x, ffi::Span<const int64_t> xd, const T* u,
                       ffi::Span<const int64_t> ud, float* y, ffi::Span<const int64_t> yd, int method, int phases,
                       int wanted) {
  if (xd.size() < 3 || ud.size() < 4) return ffi::Error::InvalidArgument("nst_jax winograd_f4: bad ranks");
  const int S = method == 3 ? 2 : 1;            // numbers per value: split ones have two
  const size_t lead = sizeof(T) == 2 ? 4 + S : 4;  // bfloat16: (36, P, [2,] C/2, NR, 2)
  if (ud.size() < lead) return ffi::Error::InvalidArgument("nst_jax winograd_f4: bad ranks");
  for (size_t i = 0; i + lead < ud.size(); ++i)
    if (ud[i] != 1) return ffi::Error::InvalidArgument("nst_jax winograd_f4: batched kernels");
  const size_t at0 = ud.size() - lead;
  const int C = xd[xd.size() - 1], W = xd[xd.size() - 2], H = xd[xd.size() - 3];
  int64_t N = 1;
  for (size_t i = 0; i + 3 < xd.size(); ++i) N *= xd[i];
  const int P = ud[at0 + 1];
  const size_t k0 = at0 + S + 1;  // where (C/2, NR, 2) begins
  const bool shaped = sizeof(T) == 2 ? (S == 1 || ud[at0 + 2] == 2) && ud[k0] * 2 == C && ud[k0 + 1] == NR &&
                                           ud[k0 + 2] == 2 && C % 32 == 0
                                     : ud[at0 + 2] == C && ud[at0 + 3] == NR;
  if (ud[at0] != 36 || !shaped || C % VL) return ffi::Error::InvalidArgument("nst_jax winograd_f4: kernel shape");
  const int O = P * NR;
  bool out_shaped = yd.size() == xd.size() && yd[yd.size() - 1] == O;
  for (size_t i = 0; out_shaped && i + 1 < xd.size(); ++i) out_shaped = yd[i] == xd[i];
  if (!out_shaped) return ffi::Error::InvalidArgument("nst_jax winograd_f4: output shape");
  const int th = (H + 3) / 4, tw = (W + 3) / 4;
  const int64_t tiles = N * th * tw;
  const int threads = std::max<int64_t>(1, pool.num_threads());
#if NST_AMX
  const int step = method >= 2 ? AMX_ROWS : MR;
#else
  const int step = MR;
#endif
  const auto key = std::make_tuple(C, P, tiles, method, phases);
  int candidate = -1;
  if (wanted == 0) std::tie(wanted, candidate) = tuner().pick(key);
  const auto started = std::chrono::steady_clock::now();
  const int TB = tiles_per_block(C, tiles, threads, step, std::max(wanted, 0));
  const int64_t blocks = (tiles + TB - 1) / TB;
  int groups = 1;
  while (groups < P && blocks * groups < 2 * threads) groups *= 2;
  groups = std::min(groups, P);

  std::atomic<bool> out_of_memory{false};
  std::atomic<bool>* failed = &out_of_memory;  // `share` returns only after every item: the pointer stays valid
  share(pool, (int)(blocks * groups), [=](int item) {
    thread_local Scratch sv, sm;
    const int64_t block = item / groups;
    const int group = item % groups;
    const int p0 = (int)((int64_t)P * group / groups), p1 = (int)((int64_t)P * (group + 1) / groups);
    const int64_t t0 = block * TB;
    const int nt = (int)std::min<int64_t>(TB, tiles - t0);
    const int ntp = (nt + step - 1) / step * step;
    const size_t vps = (size_t)ntp * C * S, mps = (size_t)ntp * NR;
    T* v = sv.get<T>(36 * vps);
    float* m = sm.get<float>(36 * mps);
    if (!v || !m) {
      failed->store(true);
      return;
    }
    if (phases & INPUT) {
      for (int t = 0; t < nt; ++t) {
        int64_t tt = t0 + t;
        int64_t n = tt / (th * tw);
        int r = (int)(tt % (th * tw));
        input_tile(x + n * H * W * C, H, W, C, 4 * (r / tw) - 1, 4 * (r % tw) - 1, v + (size_t)t * C * S, vps,
                   S == 2 ? C : 0);
      }
      for (int t = nt; t < ntp; ++t)
        for (int p = 0; p < 36; ++p) memset(v + p * vps + (size_t)t * C * S, 0, C * S * sizeof(T));
    }
#if NST_AMX
    if (method >= 2 && (phases & PRODUCTS)) amx_configure();
#endif
    for (int j = p0; j < p1; ++j) {
      if (phases & PRODUCTS)
        for (int p = 0; p < 36; ++p) {
          const T* up = u + ((size_t)p * P + j) * S * C * NR;
          if constexpr (sizeof(T) == 4) {
            products(v + p * vps, C, up, ntp, m + p * mps);
          } else {
#if NST_AMX
            if (method >= 2) {
              (method == 3 ? products_amx_split : products_amx)(v + p * vps, C, up, ntp, m + p * mps);
              continue;
            }
#endif
#if NST_BF16
            products_bf16(v + p * vps, C, up, ntp, m + p * mps);
#endif
          }
        }
      if (!(phases & OUTPUT)) continue;
      for (int t = 0; t < nt; ++t) {
        int64_t tt = t0 + t;
        int64_t n = tt / (th * tw);
        int r = (int)(tt % (th * tw));
        int oy = 4 * (r / tw), ox = 4 * (r % tw);
        float* yn = y + n * H * W * O;
        for (int q = 0; q < NR; q += VL) {
          vf s[4][6];
          for (int b = 0; b < 6; ++b) {
            vf mm[6], o[4];
            for (int a = 0; a < 6; ++a) mm[a] = load(m + (size_t)(a * 6 + b) * mps + (size_t)t * NR + q);
            at(mm, o);
            for (int i = 0; i < 4; ++i) s[i][b] = o[i];
          }
          for (int i = 0; i < 4; ++i) {
            if (oy + i >= H) break;
            vf o[4];
            at(s[i], o);
            float* row = yn + ((size_t)(oy + i) * W + ox) * O + (size_t)j * NR + q;
            for (int k = 0; k < 4 && ox + k < W; ++k) store(row + (size_t)k * O, o[k]);
          }
        }
      }
    }
#if NST_AMX
    if (method >= 2 && (phases & PRODUCTS)) _tile_release();
#endif
  });
  if (!out_of_memory)  // a failed call's time says nothing about its block size
    tuner().record(key, candidate, std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
  if (out_of_memory) return ffi::Error(ffi::ErrorCode::kResourceExhausted, "nst_jax winograd_f4: out of memory");
  return ffi::Error::Success();
}

static ffi::Error conv_f32(ffi::ThreadPool pool, ffi::Buffer<ffi::F32> xb, ffi::Buffer<ffi::F32> ub,
                           ffi::ResultBuffer<ffi::F32> yb, int32_t phases, int32_t tiles) {
  return conv<float>(pool, xb.typed_data(), xb.dimensions(), ub.typed_data(), ub.dimensions(), yb->typed_data(),
                     yb->dimensions(), 0, phases, tiles);
}

static ffi::Error conv_bf16(ffi::ThreadPool pool, ffi::Buffer<ffi::F32> xb, ffi::Buffer<ffi::BF16> ub,
                            ffi::ResultBuffer<ffi::F32> yb, int32_t method, int32_t phases, int32_t tiles) {
  if (!method_available(method))
    return ffi::Error::InvalidArgument("nst_jax winograd_f4: these bfloat16 units are not available");
#if NST_BF16
  return conv<uint16_t>(pool, xb.typed_data(), xb.dimensions(), ub.typed_data(), ub.dimensions(),
                        yb->typed_data(), yb->dimensions(), method, phases, tiles);
#else
  return ffi::Error::InvalidArgument("nst_jax winograd_f4: built without bfloat16 units");
#endif
}

XLA_FFI_DEFINE_HANDLER_SYMBOL(NstWinogradF4, conv_f32,
                              ffi::Ffi::Bind()
                                  .Ctx<ffi::ThreadPool>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::Buffer<ffi::F32>>()
                                  .Attr<int32_t>("phases")
                                  .Attr<int32_t>("tiles"));

XLA_FFI_DEFINE_HANDLER_SYMBOL(NstWinogradF4Bf16, conv_bf16,
                              ffi::Ffi::Bind()
                                  .Ctx<ffi::ThreadPool>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::BF16>>()
                                  .Ret<ffi::Buffer<ffi::F32>>()
                                  .Attr<int32_t>("method")
                                  .Attr<int32_t>("phases")
                                  .Attr<int32_t>("tiles"));

// The packing the kernel expects: output channels per panel, and the channel multiple (vector width);
// and the bfloat16 units this build may use (1 vdpbf16ps, 2 AMX).
extern "C" int nst_winograd_f4_panel() { return NR; }
extern "C" int nst_winograd_f4_lanes() { return VL; }
extern "C" int nst_winograd_f4_bf16_units() { return bf16_units(); }
// Calls of a new shape (and method) that try block sizes (`Tuner`) before the fastest is kept: what the
// planner runs before it times a fused form.
extern "C" int nst_winograd_f4_trial_calls() { return Tuner::TRIALS * (int)Tuner::CANDIDATES.size(); }
