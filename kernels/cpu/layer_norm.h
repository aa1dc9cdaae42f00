// Layer normalisation over the last dimension of contiguous [N, C] rows.
//
// y = (x − μ)·rstd·w + b with μ, σ² the row mean and (population) variance and
// rstd = 1/√(σ² + eps). Forward saves μ and rstd per row. Backward, with x̂ = (x − μ)·rstd
// and ĝ = g·w: dx = rstd·(ĝ − mean(ĝ) − x̂·mean(ĝ·x̂)), dw = Σ_rows g·x̂, db = Σ_rows g.
// Traffic: forward reads x twice and writes y; backward reads x, g twice. Reference: the
// composition of mean/var/mul in tests (gradient check in double).
#pragma once

#include <omp.h>

#include <cmath>
#include <cstdint>
#include <vector>

namespace rlft::kernels {

template <typename T>
void layer_norm_forward(int64_t N, int64_t C, const T* x, const T* w, const T* b, double eps, T* y, double* mean,
                        double* rstd) {
#pragma omp parallel for schedule(static) if (N * C >= (1 << 15) && omp_get_max_threads() > 1)
  for (int64_t i = 0; i < N; ++i) {
    const T* xr = x + i * C;
    double s = 0;
    for (int64_t j = 0; j < C; ++j) s += double(xr[j]);
    const double mu = s / double(C);
    double v = 0;
    for (int64_t j = 0; j < C; ++j) {
      const double d = double(xr[j]) - mu;
      v += d * d;
    }
    const double r = 1.0 / std::sqrt(v / double(C) + eps);
    mean[i] = mu;
    rstd[i] = r;
    T* yr = y + i * C;
    for (int64_t j = 0; j < C; ++j) {
      double h = (double(xr[j]) - mu) * r;
      if (w) h *= double(w[j]);
      if (b) h += double(b[j]);
      yr[j] = T(h);
    }
  }
}

// dx may be null; dw/db (length C) are overwritten when non-null.
template <typename T>
void layer_norm_backward(int64_t N, int64_t C, const T* x, const T* w, const double* mean, const double* rstd,
                         const T* g, T* dx, T* dw, T* db) {
  std::vector<double> acc_w(dw ? C : 0, 0.0), acc_b(db ? C : 0, 0.0);
  for (int64_t i = 0; i < N; ++i) {
    const T* xr = x + i * C;
    const T* gr = g + i * C;
    const double mu = mean[i], r = rstd[i];
    double sum_g = 0, sum_gx = 0;
    for (int64_t j = 0; j < C; ++j) {
      const double xh = (double(xr[j]) - mu) * r;
      const double gh = double(gr[j]) * (w ? double(w[j]) : 1.0);
      sum_g += gh;
      sum_gx += gh * xh;
      if (dw) acc_w[j] += double(gr[j]) * xh;
      if (db) acc_b[j] += double(gr[j]);
    }
    if (dx) {
      const double mg = sum_g / double(C), mgx = sum_gx / double(C);
      T* dr = dx + i * C;
      for (int64_t j = 0; j < C; ++j) {
        const double xh = (double(xr[j]) - mu) * r;
        const double gh = double(gr[j]) * (w ? double(w[j]) : 1.0);
        dr[j] = T(r * (gh - mg - xh * mgx));
      }
    }
  }
  for (int64_t j = 0; dw && j < C; ++j) dw[j] = T(acc_w[j]);
  for (int64_t j = 0; db && j < C; ++j) db[j] = T(acc_b[j]);
}

}  // namespace rlft::kernels
