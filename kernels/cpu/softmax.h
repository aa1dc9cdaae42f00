// Row-wise softmax, log-softmax and cross-entropy over contiguous [N, V] rows.
//
// softmax reads a row twice (max, then exp) and writes it twice (e^{x−max}, then its scaling);
// log-softmax and cross-entropy read it twice (max, exp-sum); the log-sum-exp is
// accumulated in double. Float rows take their exponentials in float with the vectorised
// exp_fast (< 1e-7 relative error; libm's scalar double exp was 10% of a GPT training step);
// double rows use std::exp. Backward: softmax dx = y·(g − Σ g·y); log-softmax
// dx = g − softmax(x)·Σ g; cross-entropy dx = g_n·(softmax(x) − onehot(t)).
// References: the formulas evaluated in double in tests/engine (gradient checks).
#pragma once

#include <omp.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <type_traits>

#include "kernels/cpu/fast_math.h"
#include "kernels/cpu/lane_sum.h"
#include "kernels/cpu/parallel.h"

namespace rlft::kernels {

// e^x in the row's own precision: exp_fast for float, libm for double.
template <typename T>
inline T exp_of(T x) {
  if constexpr (std::is_same_v<T, float>) return exp_fast(x);
  else return std::exp(x);
}

// max of x[0, V) in 16 independent lanes (one running max is a dependency chain that does not
// vectorise); max is exact, so the result is the sequential one.
template <typename T>
[[gnu::always_inline]] inline T row_max(const T* x, int64_t V) {
  T acc[16];
  for (int k = 0; k < 16; ++k) acc[k] = -std::numeric_limits<T>::infinity();
  int64_t j = 0;
  for (; j + 16 <= V; j += 16)
    for (int k = 0; k < 16; ++k) acc[k] = std::max(acc[k], x[j + k]);
  for (; j < V; ++j) acc[0] = std::max(acc[0], x[j]);
  for (int k = 1; k < 16; ++k) acc[0] = std::max(acc[0], acc[k]);
  return acc[0];
}

template <typename T>
[[gnu::always_inline]] inline double row_logsumexp(const T* x, int64_t V) {
  const T m = row_max(x, V);
  if (std::isinf(m)) return double(m);
  const double s = lane_sum(V, [&](int64_t j) { return double(exp_of<T>(x[j] - m)); });
  return double(m) + std::log(s);
}

inline bool parallel_rows(int64_t N, int64_t V) { return N > 1 && N * V >= (1 << 15); }

// y = softmax(x) (log_space: y = log_softmax(x)) per row.
template <typename T>
void softmax_rows(int64_t N, int64_t V, const T* x, T* y, bool log_space) {
  parallel_for(N, parallel_rows(N, V), [&](int64_t i) {
    const T* xr = x + i * V;
    T* yr = y + i * V;
    if (log_space) {
      const double lse = row_logsumexp(xr, V);
      for (int64_t j = 0; j < V; ++j) yr[j] = T(double(xr[j]) - lse);
      return;
    }
    // softmax: one exponential per element, e_j = e^{x_j − max} kept in y, then y·(1/Σe).
    T m = -std::numeric_limits<T>::infinity();
    for (int64_t j = 0; j < V; ++j) m = std::max(m, xr[j]);
    if (std::isinf(m)) {  // every entry −inf (or +inf): the reference formula's NaNs
      const double lse = row_logsumexp(xr, V);
      for (int64_t j = 0; j < V; ++j) yr[j] = exp_of<T>(T(double(xr[j]) - lse));
      return;
    }
    for (int64_t j = 0; j < V; ++j) yr[j] = exp_of<T>(xr[j] - m);
    const double s = lane_sum(V, [&](int64_t j) { return double(yr[j]); });
    const T inv = T(1.0 / s);
    for (int64_t j = 0; j < V; ++j) yr[j] *= inv;
  });
}

template <typename T>
void softmax_rows_backward(int64_t N, int64_t V, const T* y, const T* g, T* dx, bool log_space) {
  parallel_for(N, parallel_rows(N, V), [&](int64_t i) {
    const T* yr = y + i * V;
    const T* gr = g + i * V;
    T* dr = dx + i * V;
    if (log_space) {
      const double s = lane_sum(V, [&](int64_t j) { return double(gr[j]); });
      for (int64_t j = 0; j < V; ++j) dr[j] = T(double(gr[j]) - double(exp_of<T>(yr[j])) * s);
    } else {
      const double s = lane_sum(V, [&](int64_t j) { return double(gr[j]) * double(yr[j]); });
      for (int64_t j = 0; j < V; ++j) dr[j] = T(double(yr[j]) * (double(gr[j]) - s));
    }
  });
}

// loss[i] = lse_i − x[i, t_i] (0 where t_i == ignore_index); lse saved for backward.
template <typename T>
[[gnu::always_inline]] inline void cross_entropy_row_range(int64_t i0, int64_t i1, int64_t V,
                                                           const T* x, const int64_t* t,
                                                           int64_t ignore_index, T* loss,
                                                           double* lse) {
  for (int64_t i = i0; i < i1; ++i) {
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
[[gnu::always_inline]] inline void cross_entropy_backward_row_range(
    int64_t i0, int64_t i1, int64_t V, const T* x, const int64_t* t, int64_t ignore_index,
    const double* lse, const T* g, T* dx) {
  for (int64_t i = i0; i < i1; ++i) {
    T* dr = dx + i * V;
    if (t[i] == ignore_index) {
      for (int64_t j = 0; j < V; ++j) dr[j] = T(0);
      continue;
    }
    const T* xr = x + i * V;
    const double gi = double(g[i]);
    for (int64_t j = 0; j < V; ++j) dr[j] = T(gi * double(exp_of<T>(T(double(xr[j]) - lse[i]))));
    dr[t[i]] = T(double(dr[t[i]]) - gi);
  }
}

// Rows split between threads (as parallel_rows); float rows run loops cloned for AVX-512/AVX2
// (softmax.cpp, compiled with -ffp-contract=off: the same rounding as the portable code).
void cross_entropy_rows_f32_range(int64_t i0, int64_t i1, int64_t V, const float* x,
                                  const int64_t* t, int64_t ignore_index, float* loss,
                                  double* lse);
void cross_entropy_rows_backward_f32_range(int64_t i0, int64_t i1, int64_t V, const float* x,
                                           const int64_t* t, int64_t ignore_index,
                                           const double* lse, const float* g, float* dx);

template <typename F>
void split_rows(int64_t N, int64_t V, F f) {
  parallel_ranges(N, parallel_rows(N, V), f);
}

template <typename T>
void cross_entropy_rows(int64_t N, int64_t V, const T* x, const int64_t* t, int64_t ignore_index,
                        T* loss, double* lse) {
  split_rows(N, V, [&](int64_t i0, int64_t i1) {
    if constexpr (std::is_same_v<T, float>)
      cross_entropy_rows_f32_range(i0, i1, V, x, t, ignore_index, loss, lse);
    else
      cross_entropy_row_range(i0, i1, V, x, t, ignore_index, loss, lse);
  });
}

template <typename T>
void cross_entropy_rows_backward(int64_t N, int64_t V, const T* x, const int64_t* t,
                                 int64_t ignore_index, const double* lse, const T* g, T* dx) {
  split_rows(N, V, [&](int64_t i0, int64_t i1) {
    if constexpr (std::is_same_v<T, float>)
      cross_entropy_rows_backward_f32_range(i0, i1, V, x, t, ignore_index, lse, g, dx);
    else
      cross_entropy_backward_row_range(i0, i1, V, x, t, ignore_index, lse, g, dx);
  });
}

}  // namespace rlft::kernels
