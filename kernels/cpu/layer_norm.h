// Layer normalisation over the last dimension of contiguous [N, C] rows.
//
// y = (x − μ)·rstd·w + b with μ, σ² the row mean and (population) variance and
// rstd = 1/√(σ² + eps). Forward saves μ and rstd per row. Backward, with x̂ = (x − μ)·rstd
// and ĝ = g·w: dx = rstd·(ĝ − mean(ĝ) − x̂·mean(ĝ·x̂)), dw = Σ_rows g·x̂, db = Σ_rows g.
// Traffic: forward reads x twice and writes y; backward reads x and g twice (rows for dx, then
// columns for dw, db). Reference: the
// composition of mean/var/mul in tests (gradient check in double).
#pragma once

#include <omp.h>

#include <cmath>
#include <cstdint>
#include <vector>

#include "kernels/cpu/lane_sum.h"

namespace rlft::kernels {

template <typename T>
void layer_norm_forward(int64_t N, int64_t C, const T* x, const T* w, const T* b, double eps, T* y, double* mean,
                        double* rstd) {
#pragma omp parallel for schedule(static) if (N * C >= (1 << 15) && omp_get_max_threads() > 1)
  for (int64_t i = 0; i < N; ++i) {
    const T* xr = x + i * C;
    // Moments in double (two passes: no cancellation), branch-free loops that vectorise.
    const double mu = lane_sum(C, [&](int64_t j) { return double(xr[j]); }) / double(C);
    const double v = lane_sum(C, [&](int64_t j) {
      const double d = double(xr[j]) - mu;
      return d * d;
    });
    const double r = 1.0 / std::sqrt(v / double(C) + eps);
    mean[i] = mu;
    rstd[i] = r;
    // y = x·r − μ·r, then ·w, +b: in T (float rows stay in float lanes), each a separate loop
    // so none holds a branch.
    T* yr = y + i * C;
    const T scale = T(r), shift = T(-mu * r);
    for (int64_t j = 0; j < C; ++j) yr[j] = xr[j] * scale + shift;
    if (w)
      for (int64_t j = 0; j < C; ++j) yr[j] *= w[j];
    if (b)
      for (int64_t j = 0; j < C; ++j) yr[j] += b[j];
  }
}

// dx may be null; dw/db (length C) are overwritten when non-null. In layer_norm.cpp: rows of
// dx and columns of dw/db split between threads (each column still sums its rows in order, so
// results do not depend on the thread count), loops cloned for AVX-512/AVX2.
void layer_norm_backward(int64_t N, int64_t C, const float* x, const float* w, const double* mean,
                         const double* rstd, const float* g, float* dx, float* dw, float* db);
void layer_norm_backward(int64_t N, int64_t C, const double* x, const double* w, const double* mean,
                         const double* rstd, const double* g, double* dx, double* dw, double* db);

}  // namespace rlft::kernels
