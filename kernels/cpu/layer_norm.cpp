// LayerNorm forward and backward (formulas in layer_norm.h).
//
// Forward: rows split between threads, the row loop cloned for AVX-512/AVX2 (it was 1.3% of a
// micro training step in portable SSE2), each row computed as before.
//
// Backward, version 2 (this file): the one-loop version 1 (one thread; per row, two row sums, the
// dw/db accumulation and dx) was 3.3% of a GPT micro training step in perf and ran on one thread at
// any thread count. Now dx is computed per row and dw/db per column, so threads split rows for the
// first and columns for the second; every dw/db column still adds its rows in order 0…N−1 and every
// row sum is the same lane_sum, so the results are bitwise those of version 1 for any thread count.
// The loops are cloned for AVX-512/AVX2 (target_clones) and compiled with -ffp-contract=off
// (CMakeLists.txt), which keeps every clone's rounding the portable code's. Reference: the
// composition of mean/var/mul in tests/engine (gradient checks).
#include "kernels/cpu/layer_norm.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "kernels/cpu/lane_sum.h"
#include "kernels/cpu/parallel.h"
#include "kernels/cpu/target_clones.h"

namespace rlft::kernels {
namespace {

// Forward rows [i0, i1): moments in double (two passes: no cancellation), then y = x·r − μ·r,
// ·w, +b in T (float rows stay in float lanes), each a separate loop so none holds a branch.
template <typename T>
[[gnu::always_inline]] inline void forward_rows(int64_t i0, int64_t i1, int64_t C, const T* x,
                                                const T* w, const T* b, double eps, T* y,
                                                double* mean, double* rstd) {
  for (int64_t i = i0; i < i1; ++i) {
    const T* xr = x + i * C;
    const double mu = lane_sum(C, [&](int64_t j) { return double(xr[j]); }) / double(C);
    const double v = lane_sum(C, [&](int64_t j) {
      const double d = double(xr[j]) - mu;
      return d * d;
    });
    const double r = 1.0 / std::sqrt(v / double(C) + eps);
    mean[i] = mu;
    rstd[i] = r;
    T* yr = y + i * C;
    const T scale = T(r), shift = T(-mu * r);
    for (int64_t j = 0; j < C; ++j) yr[j] = xr[j] * scale + shift;
    if (w)
      for (int64_t j = 0; j < C; ++j) yr[j] *= w[j];
    if (b)
      for (int64_t j = 0; j < C; ++j) yr[j] += b[j];
  }
}

// kW: w is non-null (a template flag, so no loop holds the test and each one vectorises).
template <typename T, bool kW>
[[gnu::always_inline]] inline void dx_rows(int64_t i0, int64_t i1, int64_t C, const T* x,
                                           const T* w, const double* mean, const double* rstd,
                                           const T* g, T* dx) {
  for (int64_t i = i0; i < i1; ++i) {
    const T* xr = x + i * C;
    const T* gr = g + i * C;
    const double mu = mean[i], r = rstd[i];
    const auto gh_at = [&](int64_t j) { return double(gr[j]) * (kW ? double(w[j]) : 1.0); };
    const double sum_g = lane_sum(C, gh_at);
    const double sum_gx =
        lane_sum(C, [&](int64_t j) { return gh_at(j) * (double(xr[j]) - mu) * r; });
    const double mg = sum_g / double(C), mgx = sum_gx / double(C);
    T* dr = dx + i * C;
    for (int64_t j = 0; j < C; ++j) {
      const double xh = (double(xr[j]) - mu) * r;
      const double gh = double(gr[j]) * (kW ? double(w[j]) : 1.0);
      dr[j] = T(r * (gh - mg - xh * mgx));
    }
  }
}

// acc_w[j] += Σ_i g_ij·x̂_ij, acc_b[j] += Σ_i g_ij for j in [j0, j1), rows in order.
template <typename T>
[[gnu::always_inline]] inline void dwdb_columns(int64_t N, int64_t C, int64_t j0, int64_t j1,
                                                const T* x, const double* mean, const double* rstd,
                                                const T* g, double* acc_w, double* acc_b) {
  for (int64_t i = 0; i < N; ++i) {
    const T* xr = x + i * C;
    const T* gr = g + i * C;
    const double mu = mean[i], r = rstd[i];
    if (acc_w)
      for (int64_t j = j0; j < j1; ++j) acc_w[j] += double(gr[j]) * ((double(xr[j]) - mu) * r);
    if (acc_b)
      for (int64_t j = j0; j < j1; ++j) acc_b[j] += double(gr[j]);
  }
}

RLFT_CLONES void dx_rows_f32(int64_t i0, int64_t i1, int64_t C, const float* x, const float* w,
                             const double* mean, const double* rstd, const float* g, float* dx) {
  if (w)
    dx_rows<float, true>(i0, i1, C, x, w, mean, rstd, g, dx);
  else
    dx_rows<float, false>(i0, i1, C, x, w, mean, rstd, g, dx);
}
RLFT_CLONES void dx_rows_f64(int64_t i0, int64_t i1, int64_t C, const double* x, const double* w,
                             const double* mean, const double* rstd, const double* g, double* dx) {
  if (w)
    dx_rows<double, true>(i0, i1, C, x, w, mean, rstd, g, dx);
  else
    dx_rows<double, false>(i0, i1, C, x, w, mean, rstd, g, dx);
}
RLFT_CLONES void dwdb_columns_f32(int64_t N, int64_t C, int64_t j0, int64_t j1, const float* x,
                                  const double* mean, const double* rstd, const float* g,
                                  double* acc_w, double* acc_b) {
  dwdb_columns(N, C, j0, j1, x, mean, rstd, g, acc_w, acc_b);
}
RLFT_CLONES void dwdb_columns_f64(int64_t N, int64_t C, int64_t j0, int64_t j1, const double* x,
                                  const double* mean, const double* rstd, const double* g,
                                  double* acc_w, double* acc_b) {
  dwdb_columns(N, C, j0, j1, x, mean, rstd, g, acc_w, acc_b);
}

RLFT_CLONES void forward_rows_f32(int64_t i0, int64_t i1, int64_t C, const float* x, const float* w,
                                  const float* b, double eps, float* y, double* mean,
                                  double* rstd) {
  forward_rows(i0, i1, C, x, w, b, eps, y, mean, rstd);
}
RLFT_CLONES void forward_rows_f64(int64_t i0, int64_t i1, int64_t C, const double* x,
                                  const double* w, const double* b, double eps, double* y,
                                  double* mean, double* rstd) {
  forward_rows(i0, i1, C, x, w, b, eps, y, mean, rstd);
}

template <typename T, typename Rows>
void forward(int64_t N, int64_t C, Rows rows) {
  parallel_ranges(N, N * C >= (1 << 15), rows);
}

inline void dx_rows_any(int64_t i0, int64_t i1, int64_t C, const float* x, const float* w,
                        const double* mean, const double* rstd, const float* g, float* dx) {
  dx_rows_f32(i0, i1, C, x, w, mean, rstd, g, dx);
}
inline void dx_rows_any(int64_t i0, int64_t i1, int64_t C, const double* x, const double* w,
                        const double* mean, const double* rstd, const double* g, double* dx) {
  dx_rows_f64(i0, i1, C, x, w, mean, rstd, g, dx);
}
inline void dwdb_any(int64_t N, int64_t C, int64_t j0, int64_t j1, const float* x,
                     const double* mean, const double* rstd, const float* g, double* acc_w,
                     double* acc_b) {
  dwdb_columns_f32(N, C, j0, j1, x, mean, rstd, g, acc_w, acc_b);
}
inline void dwdb_any(int64_t N, int64_t C, int64_t j0, int64_t j1, const double* x,
                     const double* mean, const double* rstd, const double* g, double* acc_w,
                     double* acc_b) {
  dwdb_columns_f64(N, C, j0, j1, x, mean, rstd, g, acc_w, acc_b);
}

template <typename T>
void backward(int64_t N, int64_t C, const T* x, const T* w, const double* mean, const double* rstd,
              const T* g, T* dx, T* dw, T* db) {
  std::vector<double> acc_w(dw ? C : 0, 0.0), acc_b(db ? C : 0, 0.0);
  double* aw = dw ? acc_w.data() : nullptr;
  double* ab = db ? acc_b.data() : nullptr;
  parallel_region(N * C >= (1 << 15), [&](int64_t t, int64_t nt) {
    if (dx) dx_rows_any(N * t / nt, N * (t + 1) / nt, C, x, w, mean, rstd, g, dx);
    // Column chunks of whole 8-double vectors where C allows.
    const int64_t j0 = std::min(C, C * t / nt / 8 * 8),
                  j1 = t + 1 == nt ? C : std::min(C, C * (t + 1) / nt / 8 * 8);
    if ((aw || ab) && j1 > j0) dwdb_any(N, C, j0, j1, x, mean, rstd, g, aw, ab);
  });
  for (int64_t j = 0; dw && j < C; ++j) dw[j] = T(acc_w[size_t(j)]);
  for (int64_t j = 0; db && j < C; ++j) db[j] = T(acc_b[size_t(j)]);
}

}  // namespace

void layer_norm_forward(int64_t N, int64_t C, const float* x, const float* w, const float* b,
                        double eps, float* y, double* mean, double* rstd) {
  forward<float>(N, C, [&](int64_t i0, int64_t i1) {
    forward_rows_f32(i0, i1, C, x, w, b, eps, y, mean, rstd);
  });
}
void layer_norm_forward(int64_t N, int64_t C, const double* x, const double* w, const double* b,
                        double eps, double* y, double* mean, double* rstd) {
  forward<double>(N, C, [&](int64_t i0, int64_t i1) {
    forward_rows_f64(i0, i1, C, x, w, b, eps, y, mean, rstd);
  });
}

void layer_norm_backward(int64_t N, int64_t C, const float* x, const float* w, const double* mean,
                         const double* rstd, const float* g, float* dx, float* dw, float* db) {
  backward(N, C, x, w, mean, rstd, g, dx, dw, db);
}
void layer_norm_backward(int64_t N, int64_t C, const double* x, const double* w, const double* mean,
                         const double* rstd, const double* g, double* dx, double* dw, double* db) {
  backward(N, C, x, w, mean, rstd, g, dx, dw, db);
}

}  // namespace rlft::kernels
