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
// Built per machine with -march=native by `nst_jax/fused.py`; the vector width follows the CPU.
#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <thread>

#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

#if defined(__AVX512F__)
constexpr int VL = 16, NQ = 4;
#elif defined(__AVX__)
constexpr int VL = 8, NQ = 2;
#else
constexpr int VL = 4, NQ = 2;
#endif
constexpr int NR = VL * NQ;  // output channels per panel
constexpr int MR = 6;        // tiles per micro-kernel call

typedef float vf __attribute__((vector_size(VL * 4)));
typedef float vfu __attribute__((vector_size(VL * 4), aligned(4)));

static inline vf load(const float* p) { return *reinterpret_cast<const vfu*>(p); }
static inline void store(float* p, vf v) { *reinterpret_cast<vfu*>(p) = v; }

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

// Bᵀ d B of the 6×6 tile whose top-left input pixel is (y0, x0) (may lie outside: zeros), for all
// channels; plane p of the result at v + p·ps.
static void input_tile(const float* x, int H, int W, int C, int y0, int x0, float* v, size_t ps) {
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
      for (int j = 0; j < 6; ++j) store(v + (size_t)(i * 6 + j) * ps + c, o[j]);
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

struct Scratch {
  float* p = nullptr;
  size_t n = 0;
  float* get(size_t want) {  // nullptr when out of memory
    if (want > n || !p) {
      free(p);
      p = static_cast<float*>(aligned_alloc(64, ((want * 4 + 63) / 64) * 64));
      n = p ? want : 0;
    }
    return p;
  }
  ~Scratch() { free(p); }
};

struct Job {
  std::atomic<int> next{0}, done{0};
  std::atomic<bool> out_of_memory{false};
  int n = 0;
  std::function<void(int)> fn;
};

static void work(Job& job) {
  for (int i; (i = job.next.fetch_add(1)) < job.n;) {
    job.fn(i);
    job.done.fetch_add(1, std::memory_order_release);
  }
}

// Tiles per block: the block's transformed input (36 · tb · C floats) stays within a few MB (L2/L3),
// and a small map still gives each thread two blocks where it can (at least 24 tiles each).
static int tiles_per_block(int C, int64_t tiles, int threads) {
  int tb = std::max(48, std::min(192, 49152 / C));
  tb = (int)std::min<int64_t>(tb, std::max<int64_t>(24, (tiles + 2 * threads - 1) / (2 * threads)));
  tb = (int)std::min<int64_t>(tb, ((tiles + MR - 1) / MR) * MR);
  return std::max(MR, tb / MR * MR);
}

static ffi::Error conv(ffi::ThreadPool pool, ffi::Buffer<ffi::F32> xb, ffi::Buffer<ffi::F32> ub,
                       ffi::ResultBuffer<ffi::F32> yb) {
  auto xd = xb.dimensions(), ud = ub.dimensions();
  if (xd.size() < 3 || ud.size() < 4) return ffi::Error::InvalidArgument("nst_jax winograd_f4: bad ranks");
  for (size_t i = 0; i + 4 < ud.size(); ++i)
    if (ud[i] != 1) return ffi::Error::InvalidArgument("nst_jax winograd_f4: batched kernels");
  const int C = xd[xd.size() - 1], W = xd[xd.size() - 2], H = xd[xd.size() - 3];
  int64_t N = 1;
  for (size_t i = 0; i + 3 < xd.size(); ++i) N *= xd[i];
  const int P = ud[ud.size() - 3];
  if (ud[ud.size() - 4] != 36 || ud[ud.size() - 2] != C || ud[ud.size() - 1] != NR || C % VL)
    return ffi::Error::InvalidArgument("nst_jax winograd_f4: kernel shape");
  const int O = P * NR;
  const int th = (H + 3) / 4, tw = (W + 3) / 4;
  const int64_t tiles = N * th * tw;
  const int threads = std::max<int64_t>(1, pool.num_threads());
  const int TB = tiles_per_block(C, tiles, threads);
  const int64_t blocks = (tiles + TB - 1) / TB;
  int groups = 1;
  while (groups < P && blocks * groups < 2 * threads) groups *= 2;
  groups = std::min(groups, P);
  const float* x = xb.typed_data();
  const float* u = ub.typed_data();
  float* y = yb->typed_data();

  auto job = std::make_shared<Job>();
  job->n = (int)(blocks * groups);
  Job* self = job.get();
  job->fn = [=](int item) {
    thread_local Scratch sv, sm;
    const int64_t block = item / groups;
    const int group = item % groups;
    const int p0 = (int)((int64_t)P * group / groups), p1 = (int)((int64_t)P * (group + 1) / groups);
    const int64_t t0 = block * TB;
    const int nt = (int)std::min<int64_t>(TB, tiles - t0);
    const int ntp = (nt + MR - 1) / MR * MR;
    const size_t vps = (size_t)ntp * C, mps = (size_t)ntp * NR;
    float* v = sv.get(36 * vps);
    float* m = sm.get(36 * mps);
    if (!v || !m) {
      self->out_of_memory = true;
      return;
    }
    for (int t = 0; t < nt; ++t) {
      int64_t tt = t0 + t;
      int64_t n = tt / (th * tw);
      int r = (int)(tt % (th * tw));
      input_tile(x + n * H * W * C, H, W, C, 4 * (r / tw) - 1, 4 * (r % tw) - 1, v + (size_t)t * C, vps);
    }
    for (int t = nt; t < ntp; ++t)
      for (int p = 0; p < 36; ++p) memset(v + p * vps + (size_t)t * C, 0, C * 4);
    for (int j = p0; j < p1; ++j) {
      for (int p = 0; p < 36; ++p) {
        const float* up = u + ((size_t)p * P + j) * C * NR;
        for (int i = 0; i < ntp; i += MR) micro(v + p * vps + (size_t)i * C, C, up, C, m + p * mps + (size_t)i * NR);
      }
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
  };
  const int helpers = std::min<int>(threads - 1, job->n - 1);
  for (int h = 0; h < helpers; ++h) pool.Schedule([job] { work(*job); });
  work(*job);
  while (job->done.load(std::memory_order_acquire) < job->n) std::this_thread::yield();
  if (job->out_of_memory) return ffi::Error(ffi::ErrorCode::kResourceExhausted, "nst_jax winograd_f4: out of memory");
  return ffi::Error::Success();
}

XLA_FFI_DEFINE_HANDLER_SYMBOL(NstWinogradF4, conv,
                              ffi::Ffi::Bind()
                                  .Ctx<ffi::ThreadPool>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::Buffer<ffi::F32>>());

// The packing the kernel expects: output channels per panel, and the channel multiple (vector width).
extern "C" int nst_winograd_f4_panel() { return NR; }
extern "C" int nst_winograd_f4_lanes() { return VL; }
