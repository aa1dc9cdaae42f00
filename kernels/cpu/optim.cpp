// Adam / AdamW update and clip_grad_norm loops (the manual is in optim.h).
#include "kernels/cpu/optim.h"

#include <cmath>
#include <limits>

#include "kernels/cpu/target_clones.h"

namespace rlft::kernels {
namespace {

// The non-finite test as a compare (|w| ≤ max is false for ±inf and NaN) OR-ed into an integer,
// so the loop has no exit and vectorises.
template <typename T, bool kDecoupled>
[[gnu::always_inline]] inline bool update(int64_t n, T* w, const T* g, T* m, T* v,
                                          const AdamScalars<T>& s) {
  constexpr T kMax = std::numeric_limits<T>::max();
  unsigned bad = 0;
  for (int64_t k = 0; k < n; ++k) {
    T gk = g[k];
    T wk = w[k];
    if constexpr (kDecoupled)
      wk *= s.decay;
    else
      gk += s.l2 * wk;
    const T mk = s.beta1 * m[k] + s.one_minus_beta1 * gk;
    const T vk = s.beta2 * v[k] + s.one_minus_beta2 * gk * gk;
    m[k] = mk;
    v[k] = vk;
    wk -= s.step_size * mk / (std::sqrt(vk) / s.sqrt_bc2 + s.eps);
    w[k] = wk;
    bad |= unsigned(!(std::abs(wk) <= kMax));
  }
  return bad == 0;
}

RLFT_CLONES bool update_f32(int64_t n, float* w, const float* g, float* m, float* v,
                            const AdamScalars<float>& s) {
  return s.decoupled ? update<float, true>(n, w, g, m, v, s)
                     : update<float, false>(n, w, g, m, v, s);
}

bool update_f64(int64_t n, double* w, const double* g, double* m, double* v,
                const AdamScalars<double>& s) {
  return s.decoupled ? update<double, true>(n, w, g, m, v, s)
                     : update<double, false>(n, w, g, m, v, s);
}

template <typename T>
[[gnu::always_inline]] inline void squares(int64_t n, const T* g, double* out) {
  // Eight independent double accumulators: exact enough, and not one long dependency chain.
  double acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t k = 0;
  for (; k + 8 <= n; k += 8)
    for (int j = 0; j < 8; ++j) acc[j] += double(g[k + j]) * double(g[k + j]);
  for (; k < n; ++k) acc[0] += double(g[k]) * double(g[k]);
  for (int j = 0; j < 8; ++j) out[j] = acc[j];
}

template <typename T>
[[gnu::always_inline]] inline void scale(int64_t n, T* g, double coef) {
  for (int64_t k = 0; k < n; ++k) g[k] = T(double(g[k]) * coef);
}

RLFT_CLONES void squares_f32(int64_t n, const float* g, double* acc) { squares(n, g, acc); }
RLFT_CLONES void squares_f64(int64_t n, const double* g, double* acc) { squares(n, g, acc); }
RLFT_CLONES void scale_f32(int64_t n, float* g, double coef) { scale(n, g, coef); }
RLFT_CLONES void scale_f64(int64_t n, double* g, double coef) { scale(n, g, coef); }

}  // namespace

void sum_of_squares_cpu(int64_t n, const float* g, double acc[8]) { squares_f32(n, g, acc); }
void sum_of_squares_cpu(int64_t n, const double* g, double acc[8]) { squares_f64(n, g, acc); }
void scale_cpu(int64_t n, float* g, double coef) { scale_f32(n, g, coef); }
void scale_cpu(int64_t n, double* g, double coef) { scale_f64(n, g, coef); }

bool adam_update_cpu(int64_t n, float* w, const float* g, float* m, float* v,
                     const AdamScalars<float>& s) {
  return update_f32(n, w, g, m, v, s);
}

bool adam_update_cpu(int64_t n, double* w, const double* g, double* m, double* v,
                     const AdamScalars<double>& s) {
  return update_f64(n, w, g, m, v, s);
}

}  // namespace rlft::kernels
