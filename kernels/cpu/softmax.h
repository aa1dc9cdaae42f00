// Row-wise softmax, log-softmax and cross-entropy over contiguous [N, V] rows.
//
// Each row is read twice (max, then exp-sum) and written once; the log-sum-exp is
// accumulated in double. Backward: softmax dx = y·(g − Σ g·y); log-softmax
// dx = g − softmax(x)·Σ g; cross-entropy dx = g_n·(softmax(x) − onehot(t)).
// References: the formulas evaluated in double in tests/engine (gradient checks).
#pragma once

#include <omp.h>

#include <cmath>
#include <cstdint>
#include <limits>

namespace rlft::kernels {

template <typename T>
inline double row_logsumexp(const T* x, int64_t V) {
  double m = -std::numeric_limits<double>::infinity();
  for (int64_t j = 0; j < V; ++j) m = std::max(m, double(x[j]));
  if (std::isinf(m)) return m;
  double s = 0;
  for (int64_t j = 0; j < V; ++j) s += std::exp(double(x[j]) - m);
  return m + std::log(s);
}

inline bool parallel_rows(int64_t N, int64_t V) { return N > 1 && N * V >= (1 << 15) && omp_get_max_threads() > 1; }

// y = softmax(x) (log_space: y = log_softmax(x)) per row.
template <typename T>
void softmax_rows(int64_t N, int64_t V, const T* x, T* y, bool log_space) {
#pragma omp parallel for schedule(static) if (parallel_rows(N, V))
  for (int64_t i = 0; i < N; ++i) {
    const T* xr = x + i * V;
    T* yr = y + i * V;
    const double lse = row_logsumexp(xr, V);
    for (int64_t j = 0; j < V; ++j) {
      const double l = double(xr[j]) - lse;
      yr[j] = T(log_space ? l : std::exp(l));
    }
  }
}

template <typename T>
void softmax_rows_backward(int64_t N, int64_t V, const T* y, const T* g, T* dx, bool log_space) {
#pragma omp parallel for schedule(static) if (parallel_rows(N, V))
  for (int64_t i = 0; i < N; ++i) {
    const T* yr = y + i * V;
    const T* gr = g + i * V;
    T* dr = dx + i * V;
    double s = 0;
    if (log_space) {
      for (int64_t j = 0; j < V; ++j) s += double(gr[j]);
      for (int64_t j = 0; j < V; ++j) dr[j] = T(double(gr[j]) - std::exp(double(yr[j])) * s);
    } else {
      for (int64_t j = 0; j < V; ++j) s += double(gr[j]) * double(yr[j]);
      for (int64_t j = 0; j < V; ++j) dr[j] = T(double(yr[j]) * (double(gr[j]) - s));
    }
  }
}

// loss[i] = lse_i − x[i, t_i] (0 where t_i == ignore_index); lse saved for backward.
template <typename T>
void cross_entropy_rows(int64_t N, int64_t V, const T* x, const int64_t* t, int64_t ignore_index, T* loss,
                        double* lse) {
#pragma omp parallel for schedule(static) if (parallel_rows(N, V))
  for (int64_t i = 0; i < N; ++i) {
    if (t[i] == ignore_index) {
      loss[i] = T(0);
      lse[i] = 0;
      continue;
    }
    lse[i] = row_logsumexp(x + i * V, V);
    loss[i] = T(lse[i] - double(x[i * V + t[i]]));
  }
}

// dx[i, :] = g[i]·(softmax(x_i) − onehot(t_i)); zero rows where ignored.
template <typename T>
void cross_entropy_rows_backward(int64_t N, int64_t V, const T* x, const int64_t* t, int64_t ignore_index,
                                 const double* lse, const T* g, T* dx) {
#pragma omp parallel for schedule(static) if (parallel_rows(N, V))
  for (int64_t i = 0; i < N; ++i) {
    T* dr = dx + i * V;
    if (t[i] == ignore_index) {
      for (int64_t j = 0; j < V; ++j) dr[j] = T(0);
      continue;
    }
    const T* xr = x + i * V;
    const double gi = double(g[i]);
    for (int64_t j = 0; j < V; ++j) dr[j] = T(gi * std::exp(double(xr[j]) - lse[i]));
    dr[t[i]] = T(double(dr[t[i]]) - gi);
  }
}

}  // namespace rlft::kernels
