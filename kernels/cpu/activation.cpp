// GELU and tanh kernels (the manual is in activation.h).
#include "kernels/cpu/activation.h"

#include <omp.h>

#include <algorithm>

#include "kernels/cpu/fast_math.h"
#include "kernels/cpu/parallel.h"
#include "kernels/cpu/target_clones.h"

namespace rlft::kernels {
namespace {

// The constants as the scalar reference rounds them (float(double)).
constexpr float kC = float(0.7978845608028654), kA = float(0.044715), k3A = float(3 * 0.044715);

RLFT_CLONES void gelu_forward_chunk(int64_t n, const float* x, float* y) {
  for (int64_t i = 0; i < n; ++i) {
    const float v = x[i];
    y[i] = 0.5f * v * (1.0f + tanh_fast(kC * (v + kA * v * v * v)));
  }
}

RLFT_CLONES void gelu_backward_chunk(int64_t n, const float* g, const float* x, float* dx) {
  for (int64_t i = 0; i < n; ++i) {
    const float v = x[i];
    const float th = tanh_fast(kC * (v + kA * v * v * v));
    const float du = kC * (1.0f + k3A * v * v);
    dx[i] = g[i] * (0.5f * (1.0f + th) + 0.5f * v * (1.0f - th * th) * du);
  }
}

RLFT_CLONES void tanh_forward_chunk(int64_t n, const float* x, float* y) {
  for (int64_t i = 0; i < n; ++i) y[i] = tanh_fast(x[i]);
}

RLFT_CLONES void tanh_backward_chunk(int64_t n, const float* g, const float* y, float* dx) {
  for (int64_t i = 0; i < n; ++i) dx[i] = g[i] * (1.0f - y[i] * y[i]);
}

// f(begin, count) over [0, n), split between threads above 2^15 elements (as elementwise.h).
template <typename F>
void chunks(int64_t n, F f) {
  parallel_region(n >= (int64_t(1) << 15), [&](int64_t t, int64_t nt) {
    const int64_t i0 = n * t / nt / 16 * 16, i1 = t + 1 == nt ? n : n * (t + 1) / nt / 16 * 16;
    if (i1 > i0) f(i0, i1 - i0);
  });
}

}  // namespace

void gelu_forward_f32(int64_t n, const float* x, float* y) {
  chunks(n, [&](int64_t i0, int64_t m) { gelu_forward_chunk(m, x + i0, y + i0); });
}

void gelu_backward_f32(int64_t n, const float* g, const float* x, float* dx) {
  chunks(n, [&](int64_t i0, int64_t m) { gelu_backward_chunk(m, g + i0, x + i0, dx + i0); });
}

void tanh_forward_f32(int64_t n, const float* x, float* y) {
  chunks(n, [&](int64_t i0, int64_t m) { tanh_forward_chunk(m, x + i0, y + i0); });
}

void tanh_backward_f32(int64_t n, const float* g, const float* y, float* dx) {
  chunks(n, [&](int64_t i0, int64_t m) { tanh_backward_chunk(m, g + i0, y + i0, dx + i0); });
}

}  // namespace rlft::kernels
