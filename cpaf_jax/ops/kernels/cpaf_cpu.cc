// One-pass CPU backward of CPAF (Eq. 7-12), and of APL, PAU and Swish: reads y and the cotangent
// g once, writes the input cotangent dy and accumulates the parameter sums, for float32 on
// XLA:CPU through the XLA FFI.
//
// Layout (the Python side, cpaf_jax/ops/cpu_kernel.py, views every sharing this way):
//   y, g, dy : [*V, R, M]  R rows summed over (batch; batch and space when shared), M kept
//   a, b     : [*V, k, M]  terms first, broadcast along the rows
//   sa, sd   : [*V, k, M]  sa_i = sum_r g (f(y - b_i) - offset), sd_i = sum_r g f'(y - b_i)
// *V are vmap's batch dimensions (every input broadcast to them: vmap_method="broadcast_all").
// y, g and dy keep the caller's shape (any shape holding [*V, R, M] in row-major order) and R
// comes as the attribute "rows": reshaped to [R, M] as operands, they made XLA compute the
// cotangent's producer (a max-pool's backward, say) in that view, with index arithmetic per
// element (BENCHMARKS.md section 2b).
//
// APL (Agostinelli et al. 2014, h(y) = relu(y) + sum_s a_s relu(b_s - y)) is the base kApl:
// f(u) = relu(-u) per hinge, and the fixed relu(y) adds [y > 0] to the input cotangent's sum.
// The safe PAU (Molina et al. 2019, F = P(y) / Q(y), P = sum_j p_j y^j, Q = 1 + sum_k |q_k|
// |y|^k) is kPau, with a = p_0..p_{K-1} and b = |q_1|..|q_K| (both zero-padded to K terms):
//   sa_j = sum_r g y^j / Q,   sd_k = sum_r g F |y|^(k+1) / Q   (dL/dq = -sign(q) sd).
// Swish (Ramachandran et al. 2017, y sigmoid(beta y)) is kSwish with K = 1 and a = beta (b is
// not read): sa = sum_r g y^2 s (1 - s), s = sigmoid(beta y); sd is left 0.
//
// Why a kernel: XLA:CPU emits a scalar loop for each [R, M] -> [M] reduction with its
// elementwise producer fused in (BENCHMARKS.md section 1b); here each row is one vectorised
// pass over M that updates the k per-term sums in place, and rows are split over the
// intra-op thread pool, each chunk with its own partial sums, added at the end.
#include <algorithm>
#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <thread>
#include <vector>

#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

namespace {

enum BaseId : int64_t { kRelu = 0, kSigmoid = 1, kTanh = 2, kApl = 3, kPau = 4, kSwish = 5 };

// Eigen's (and XLA:CPU's) rational float tanh: x p(x^2) / q(x^2) on x clamped to
// +-kTanhClamp, coefficients from the highest power of x^2 down.
constexpr float kTanhClamp = 7.90531110763549805f;
constexpr std::array<float, 7> kTanhP = {
    -2.76076847742355e-16f, 2.00018790482477e-13f, -8.60467152213735e-11f,
    5.12229709037114e-08f,  1.48572235717979e-05f, 6.37261928875436e-04f,
    4.89352455891786e-03f};
constexpr std::array<float, 4> kTanhQ = {1.19825839466702e-06f, 1.18534705686654e-04f,
                                         2.26843463243900e-03f, 4.89352518554385e-03f};

// Coefficients c (highest power first) each times r^(its power + extra).
template <size_t N>
constexpr std::array<float, N> scaled(const std::array<float, N>& c, float r, size_t extra) {
  std::array<float, N> out{};
  for (size_t i = 0; i < N; ++i) {
    float s = 1.0f;
    for (size_t e = 0; e < N - 1 - i + extra; ++e) s *= r;
    out[i] = c[i] * s;
  }
  return out;
}

// kHalf = false: tanh(x), branch-free, so the loop vectorises; within a few ulp of tanh. Near 0
// this is x * 0.99999987 (XLA switches to x there; the difference is 1.3e-7 x).
// kHalf = true: sigmoid(x) - 1/2 = 0.5 tanh(0.5 x), with both halvings folded into the clamp
// and coefficients: on w = x^2 = 4 (x/2)^2, p's coefficient of power j is scaled by 4^-(j+1)
// (the last 1/4 is the two halvings of the result) and q's by 4^-j. Each factor is a power of
// two, so every rounding (fused or not) is the one of 0.5f * tanh<false>(0.5f * x), with two
// multiplies fewer per term: the backward's arithmetic bounds its speed. Checked over all 2^32
// floats: bit for bit wherever |x| >= 2^-116; below that both round to within a subnormal of 0.
// A NaN passes through (the comparisons keep it).
template <bool kHalf>
inline float rational_tanh(float x) {
  constexpr float r = kHalf ? 0.25f : 1.0f;
  constexpr float c = kHalf ? 2.0f * kTanhClamp : kTanhClamp;
  constexpr std::array<float, 7> p_c = scaled(kTanhP, r, 1);
  constexpr std::array<float, 4> q_c = scaled(kTanhQ, r, 0);
  float xc = x > c ? c : (x < -c ? -c : x);
  float w = xc * xc;
  float p = p_c[0];
#pragma GCC unroll 8
  for (size_t i = 1; i < p_c.size(); ++i) p = p * w + p_c[i];
  float q = q_c[0];
#pragma GCC unroll 8
  for (size_t i = 1; i < q_c.size(); ++i) q = q * w + q_c[i];
  return xc * p / q;
}

inline float fast_tanh(float x) { return rational_tanh<false>(x); }
inline float half_tanh_half(float u) { return rational_tanh<true>(u); }

// (f(u) - offset, f'(u)) of each base, as cpaf_jax/ops/bases.py defines them.
template <int B>
inline void centered_and_df(float u, float& c, float& d) {
  if constexpr (B == kRelu) {
    c = (u < 0.0f ? 0.0f : u) - 0.5f;  // keeps a NaN, as jnp.maximum does
    d = u > 0.0f ? 1.0f : 0.0f;        // Eq. 3: y == b is on the flat side
  } else if constexpr (B == kSigmoid) {
    float h = half_tanh_half(u);  // sigmoid(u) - 1/2
    c = h;
    d = 0.25f - h * h;  // sigmoid'(u)
  } else if constexpr (B == kApl) {
    c = u > 0.0f ? 0.0f : -u;      // relu(b - y), keeping a NaN
    d = u < 0.0f ? -1.0f : 0.0f;   // d/du relu(-u); 0 at the hinge, as JAX's relu
  } else {
    float t = fast_tanh(u);
    c = t;
    d = 1.0f - t * t;
  }
}

// Columns are split between threads in whole grains, so each chunk starts on a vector boundary.
constexpr int64_t kGrain = 256;

// Columns per block for K terms: the block's 2K running sums (at most 32768 floats) stay in L2
// while the block's rows stream past in order, each read in long contiguous pieces; whole
// grains, so every block starts on a vector boundary. Blocks of 256 columns, whose sums fit in
// L1, read each row in short pieces a row's length apart, which ran slower at large batches
// when both layouts were timed side by side.
template <int K>
constexpr int64_t block_columns() {
  return 16384 / K / kGrain * kGrain;
}

// PAU's rows r.. r+RB-1 of columns [jb, je): P, P', Q, Q' by Horner (no power of |y| is
// formed before the sums), dy = g (P' - F Q') / Q, and the K + K sums above.
template <int K, int RB>
inline void pau_rows_step(const float* __restrict__ y, const float* __restrict__ g,
                          const float* __restrict__ p, const float* __restrict__ qa,
                          float* __restrict__ dy, float* __restrict__ sa,
                          float* __restrict__ sd, int64_t r, int64_t jb, int64_t je,
                          int64_t m) {
#pragma GCC ivdep
  for (int64_t j = jb; j < je; ++j) {
    float ta[K], td[K], pj[K], qj[K];
#pragma GCC unroll 8
    for (int i = 0; i < K; ++i) {
      ta[i] = 0.0f, td[i] = 0.0f, pj[i] = p[i * m + j], qj[i] = qa[i * m + j];
    }
#pragma GCC unroll 8
    for (int q = 0; q < RB; ++q) {
      const float x = y[(r + q) * m + j], gg = g[(r + q) * m + j];
      const float ax = x < 0.0f ? -x : x, sx = x >= 0.0f ? 1.0f : -1.0f;  // d|x|/dx = 1 at 0
      float P = pj[K - 1], dP = 0.0f, A = qj[K - 1], dA = 0.0f;
#pragma GCC unroll 8
      for (int i = K - 2; i >= 0; --i) {
        dP = dP * x + P, P = P * x + pj[i];
        dA = dA * ax + A, A = A * ax + qj[i];
      }
      const float rq = 1.0f / (1.0f + ax * A), f = P * rq;  // Q = 1 + |x| A(|x|)
      dy[(r + q) * m + j] = gg * (dP - f * sx * (A + ax * dA)) * rq;
      float t = gg * rq, u = t * f * ax;
#pragma GCC unroll 8
      for (int i = 0; i < K; ++i) ta[i] += t, td[i] += u, t *= x, u *= ax;
    }
#pragma GCC unroll 8
    for (int i = 0; i < K; ++i) sa[i * m + j] += ta[i], sd[i * m + j] += td[i];
  }
}

// Swish's rows r.. r+RB-1 of columns [jb, je): dy = g (s + beta y s (1 - s)) and the beta sum.
template <int RB>
inline void swish_rows_step(const float* __restrict__ y, const float* __restrict__ g,
                            const float* __restrict__ beta, float* __restrict__ dy,
                            float* __restrict__ sa, int64_t r, int64_t jb, int64_t je,
                            int64_t m) {
#pragma GCC ivdep
  for (int64_t j = jb; j < je; ++j) {
    const float bj = beta[j];
    float t = 0.0f;
#pragma GCC unroll 8
    for (int q = 0; q < RB; ++q) {
      const float x = y[(r + q) * m + j], gg = g[(r + q) * m + j];
      const float h = half_tanh_half(bj * x);  // sigmoid(beta x) - 1/2
      const float sp = 0.25f - h * h;          // s (1 - s)
      dy[(r + q) * m + j] = gg * (0.5f + h + bj * x * sp);
      t += gg * x * x * sp;
    }
    sa[j] += t;
  }
}

// A sum of terms (CPAF's bases, APL): RB rows r.. r+RB-1 of columns [jb, je), dy there, and
// the rows' sums added into sa, sd. Summing RB rows in registers before touching sa and sd
// divides the traffic to the running sums (2k loads and stores per element, the bottleneck at
// large k) by RB.
template <int B, int K, int RB>
inline void terms_rows_step(const float* __restrict__ y, const float* __restrict__ g,
                            const float* __restrict__ a, const float* __restrict__ b,
                            float* __restrict__ dy, float* __restrict__ sa,
                            float* __restrict__ sd, int64_t r, int64_t jb, int64_t je,
                            int64_t m) {
#pragma GCC ivdep
  for (int64_t j = jb; j < je; ++j) {
    float yy[RB], gg[RB], acc[RB];
#pragma GCC unroll 8
    for (int q = 0; q < RB; ++q) {
      yy[q] = y[(r + q) * m + j];
      gg[q] = g[(r + q) * m + j];
      // APL's fixed relu(y): its derivative [y > 0] (0 at 0 and for a NaN, as JAX's relu).
      acc[q] = (B == kApl && yy[q] > 0.0f) ? 1.0f : 0.0f;
    }
#pragma GCC unroll 8
    for (int i = 0; i < K; ++i) {
      const float ai = a[i * m + j], bi = b[i * m + j];
      float ta = 0.0f, td = 0.0f;
#pragma GCC unroll 8
      for (int q = 0; q < RB; ++q) {
        float c, d;
        centered_and_df<B>(yy[q] - bi, c, d);
        acc[q] += ai * d;
        ta += gg[q] * c;
        td += gg[q] * d;
      }
      sa[i * m + j] += ta;
      sd[i * m + j] += td;
    }
#pragma GCC unroll 8
    for (int q = 0; q < RB; ++q) dy[(r + q) * m + j] = gg[q] * acc[q];
  }
}

// RB rows r.. r+RB-1 of columns [jb, je) for base B.
template <int B, int K, int RB>
inline void rows_step(const float* __restrict__ y, const float* __restrict__ g,
                      const float* __restrict__ a, const float* __restrict__ b,
                      float* __restrict__ dy, float* __restrict__ sa, float* __restrict__ sd,
                      int64_t r, int64_t jb, int64_t je, int64_t m) {
  if constexpr (B == kPau) {
    pau_rows_step<K, RB>(y, g, a, b, dy, sa, sd, r, jb, je, m);
  } else if constexpr (B == kSwish) {
    swish_rows_step<RB>(y, g, a, dy, sa, r, jb, je, m);
  } else {
    terms_rows_step<B, K, RB>(y, g, a, b, dy, sa, sd, r, jb, je, m);
  }
}

// Rows [r0, r1) x columns [j0, j1) of one problem: dy there, and the rows' sums added into
// sa, sd ([K, m], only columns [j0, j1) touched).
template <int B, int K>
void block_pass(const float* __restrict__ y, const float* __restrict__ g,
                const float* __restrict__ a, const float* __restrict__ b,
                float* __restrict__ dy, float* __restrict__ sa, float* __restrict__ sd,
                int64_t r0, int64_t r1, int64_t j0, int64_t j1, int64_t m) {
  constexpr int RB = 4;
  constexpr int64_t kBlock = block_columns<K>();
  for (int64_t jb = j0; jb < j1; jb += kBlock) {
    const int64_t je = std::min(j1, jb + kBlock);
    int64_t r = r0;
    for (; r + RB <= r1; r += RB) rows_step<B, K, RB>(y, g, a, b, dy, sa, sd, r, jb, je, m);
    for (; r < r1; ++r) rows_step<B, K, 1>(y, g, a, b, dy, sa, sd, r, jb, je, m);
  }
}

using RowsFn = void (*)(const float*, const float*, const float*, const float*, float*, float*,
                        float*, int64_t, int64_t, int64_t, int64_t, int64_t);

template <int B>
RowsFn pick_k(int64_t k) {
  switch (k) {
    case 1: return block_pass<B, 1>;
    case 2: return block_pass<B, 2>;
    case 3: return block_pass<B, 3>;
    case 4: return block_pass<B, 4>;
    case 5: return block_pass<B, 5>;
    case 6: return block_pass<B, 6>;
    case 7: return block_pass<B, 7>;
    case 8: return block_pass<B, 8>;
    default: return nullptr;
  }
}

RowsFn pick(int64_t base, int64_t k) {
  switch (base) {
    case kRelu: return pick_k<kRelu>(k);
    case kSigmoid: return pick_k<kSigmoid>(k);
    case kTanh: return pick_k<kTanh>(k);
    case kApl: return pick_k<kApl>(k);
    case kPau: return pick_k<kPau>(k);
    case kSwish: return k == 1 ? block_pass<kSwish, 1> : nullptr;
    default: return nullptr;
  }
}

// Chunks claimed by the caller and by tasks on the pool. The caller works too and waits only
// for chunks already claimed, so a busy or absent pool costs speed, not a deadlock; a task that
// starts late finds nothing left and touches nothing but this shared state. Wide rows (per
// element) are split by columns, each chunk writing its own part of the sums; narrow ones by
// rows, each chunk into its own partial sums, added at the end.
struct Work {
  RowsFn fn;
  const float *y, *g, *a, *b;
  float *dy, *sa, *sd;
  int64_t v, rows, m, k, chunks, by_rows, step;
  std::vector<float> partial;  // [chunks, v, 2, k, m] when split by rows
  std::atomic<int64_t> next{0};
  std::atomic<int64_t> done{0};

  void chunk(int64_t c) {
    const int64_t km = k * m;
    const int64_t n = by_rows ? rows : m;
    const int64_t lo = c * step, hi = std::min(n, lo + step);
    for (int64_t vi = 0; vi < v; ++vi) {
      float* pa = by_rows ? partial.data() + (c * v + vi) * 2 * km : sa + vi * km;
      float* pd = by_rows ? pa + km : sd + vi * km;
      fn(y + vi * rows * m, g + vi * rows * m, a + vi * km, b + vi * km, dy + vi * rows * m,
         pa, pd, by_rows ? lo : 0, by_rows ? hi : rows, by_rows ? 0 : lo, by_rows ? m : hi, m);
    }
  }

  void run() {
    for (int64_t c; (c = next.fetch_add(1)) < chunks;) {
      chunk(c);
      done.fetch_add(1, std::memory_order_release);
    }
  }
};

ffi::Error CpafBackward(ffi::ThreadPool pool, ffi::Buffer<ffi::F32> y, ffi::Buffer<ffi::F32> g,
                        ffi::Buffer<ffi::F32> a, ffi::Buffer<ffi::F32> b, int64_t base,
                        int64_t max_threads, int64_t rows, ffi::ResultBuffer<ffi::F32> dy,
                        ffi::ResultBuffer<ffi::F32> sa, ffi::ResultBuffer<ffi::F32> sd) {
  auto ad = a.dimensions();
  if (ad.size() < 2 || rows < 0) {
    return ffi::Error::InvalidArgument("cpaf_backward: y holds [*V, R, M] and a is [*V, k, M]");
  }
  const int64_t m = ad.back(), k = ad[ad.size() - 2];
  const int64_t vk = m * k ? a.element_count() / (m * k) : 0;
  if (y.element_count() != vk * rows * m || g.element_count() != y.element_count() ||
      a.element_count() != b.element_count()) {
    return ffi::Error::InvalidArgument("cpaf_backward: shapes of y, g, a, b disagree");
  }
  auto w = std::make_shared<Work>();
  w->fn = pick(base, k);
  if (w->fn == nullptr) {
    return ffi::Error::InvalidArgument("cpaf_backward: base must be 0..5 and k 1..8 (1 for 5)");
  }
  const int64_t v = (rows * m) ? y.element_count() / (rows * m) : 0;
  const int64_t km = k * m;
  w->y = y.typed_data(), w->g = g.typed_data(), w->a = a.typed_data(), w->b = b.typed_data();
  w->dy = dy->typed_data(), w->sa = sa->typed_data(), w->sd = sd->typed_data();
  w->v = v, w->rows = rows, w->m = m, w->k = k;
  std::memset(w->sa, 0, v * km * sizeof(float));
  std::memset(w->sd, 0, v * km * sizeof(float));
  // Enough work per chunk that scheduling is noise (about 64k elements at the least).
  const int64_t threads =
      std::max<int64_t>(1, std::min<int64_t>(max_threads, pool.num_threads()));
  const int64_t most = std::max<int64_t>(1, (v * rows * m) >> 16);
  w->by_rows = m < 2 * kGrain * threads;
  const int64_t n = w->by_rows ? rows : (m + kGrain - 1) / kGrain;
  w->chunks = std::max<int64_t>(1, std::min({threads, most, n}));
  // Column chunks are whole grains, so blocks stay aligned with the vector loops.
  w->step = (n + w->chunks - 1) / w->chunks * (w->by_rows ? 1 : kGrain);
  if (w->by_rows) w->partial.assign(w->chunks * v * 2 * km, 0.0f);
  for (int64_t t = 1; t < w->chunks; ++t) {
    pool.Schedule([w] { w->run(); });
  }
  w->run();
  while (w->done.load(std::memory_order_acquire) < w->chunks) {
    std::this_thread::yield();
  }
  if (w->by_rows) {
    for (int64_t c = 0; c < w->chunks; ++c) {
      for (int64_t vi = 0; vi < v; ++vi) {
        const float* p = w->partial.data() + (c * v + vi) * 2 * km;
        float* oa = w->sa + vi * km;
        float* od = w->sd + vi * km;
        for (int64_t j = 0; j < km; ++j) oa[j] += p[j];
        for (int64_t j = 0; j < km; ++j) od[j] += p[km + j];
      }
    }
  }
  return ffi::Error::Success();
}

}  // namespace

XLA_FFI_DEFINE_HANDLER_SYMBOL(cpaf_backward_f32, CpafBackward,
                              ffi::Ffi::Bind()
                                  .Ctx<ffi::ThreadPool>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Attr<int64_t>("base")
                                  .Attr<int64_t>("max_threads")
                                  .Attr<int64_t>("rows")
                                  .Ret<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::Buffer<ffi::F32>>());
