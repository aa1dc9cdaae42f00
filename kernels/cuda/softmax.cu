// softmax — softmax / log_softmax over the rows of contiguous [N, V] and their backward, and
// the cross-entropy rows (declared in kernels/cuda_ops.h).
//
//   log_softmax:  y = x − lse,  lse = m + log Σ exp(x − m),  m = max x
//   softmax:      y = exp(x − m) / Σ exp(x − m)
//   backward:     log: dx = g − exp(y)·Σ g;   softmax: dx = y·(g − Σ g·y)
//   cross-entropy loss_i = lse_i − x[i, t_i]; dx = g_i·(softmax(x_i) − onehot(t_i))
// One version: one block of 256 threads per row (grid-stride over rows); the row max and the
// sums are block all-reduces (warp shuffles, then the warp totals in order: deterministic);
// sums accumulate in double, as the CPU's. Rows whose max is ±inf follow the CPU's formulas
// (lse = m, so an all −inf row gives NaN as there).
// Traffic per element: forward reads x twice (max, sum) and a third time to write y (12 bytes
// float); backward reads y, g twice and writes dx. Cross-entropy forward reads the row twice
// and writes one float per row.
// Reference: kernels/cpu/softmax.h (softmax_rows, softmax_rows_backward, cross_entropy_rows*).
#include <cuda_runtime.h>

#include "kernels/cuda/common.cuh"
#include "kernels/cuda/dispatch.cuh"
#include "kernels/cuda_ops.h"

namespace rlft::kernels::cuda_ops {

namespace {

using cuda_detail::block_allreduce;
using cuda_detail::kMaxWarps;
using cuda_detail::Sum;

constexpr int kRowThreads = 256;

__device__ __forceinline__ float m_exp(float x) { return expf(x); }
__device__ __forceinline__ double m_exp(double x) { return ::exp(x); }

struct Max {
  template <typename T>
  __device__ __forceinline__ T operator()(T a, T b) const {
    return a > b ? a : b;
  }
};

// The row's max and log-sum-exp (lse = m when m is ±inf, as the CPU's row_logsumexp).
template <typename T>
__device__ void row_max_lse(const T* xr, int64_t V, T* smem_t, double* smem_d, T& m_out,
                            double& lse_out, double& sum_out) {
  T m = -INFINITY;
  for (int64_t j = threadIdx.x; j < V; j += blockDim.x) m = Max{}(m, xr[j]);
  m = block_allreduce(m, Max{}, smem_t);
  m_out = m;
  if (isinf(m)) {
    lse_out = double(m);
    sum_out = 0;
    return;
  }
  double s = 0;
  for (int64_t j = threadIdx.x; j < V; j += blockDim.x) s += double(m_exp(xr[j] - m));
  s = block_allreduce(s, Sum{}, smem_d);
  sum_out = s;
  lse_out = double(m) + ::log(s);
}

template <typename T>
__global__ void softmax_kernel(int64_t N, int64_t V, const T* x, T* y, bool log_space) {
  __shared__ T smem_t[kMaxWarps];
  __shared__ double smem_d[kMaxWarps];
  for (int64_t i = blockIdx.x; i < N; i += gridDim.x) {
    const T* xr = x + i * V;
    T* yr = y + i * V;
    T m;
    double lse, s;
    row_max_lse(xr, V, smem_t, smem_d, m, lse, s);
    if (log_space) {
      for (int64_t j = threadIdx.x; j < V; j += blockDim.x) yr[j] = T(double(xr[j]) - lse);
    } else if (isinf(m)) {
      for (int64_t j = threadIdx.x; j < V; j += blockDim.x) yr[j] = m_exp(T(double(xr[j]) - lse));
    } else {
      const T inv = T(1.0 / s);
      for (int64_t j = threadIdx.x; j < V; j += blockDim.x) yr[j] = m_exp(xr[j] - m) * inv;
    }
  }
}

template <typename T>
__global__ void softmax_backward_kernel(int64_t N, int64_t V, const T* y, const T* g, T* dx,
                                        bool log_space) {
  __shared__ double smem_d[kMaxWarps];
  for (int64_t i = blockIdx.x; i < N; i += gridDim.x) {
    const T* yr = y + i * V;
    const T* gr = g + i * V;
    T* dr = dx + i * V;
    double s = 0;
    if (log_space) {
      for (int64_t j = threadIdx.x; j < V; j += blockDim.x) s += double(gr[j]);
    } else {
      for (int64_t j = threadIdx.x; j < V; j += blockDim.x) s += double(gr[j]) * double(yr[j]);
    }
    s = block_allreduce(s, Sum{}, smem_d);
    if (log_space) {
      for (int64_t j = threadIdx.x; j < V; j += blockDim.x)
        dr[j] = T(double(gr[j]) - double(m_exp(yr[j])) * s);
    } else {
      for (int64_t j = threadIdx.x; j < V; j += blockDim.x)
        dr[j] = T(double(yr[j]) * (double(gr[j]) - s));
    }
  }
}

template <typename T>
__global__ void cross_entropy_kernel(int64_t N, int64_t V, const T* x, const int64_t* t,
                                     int64_t ignore_index, T* loss, double* lse) {
  __shared__ T smem_t[kMaxWarps];
  __shared__ double smem_d[kMaxWarps];
  for (int64_t i = blockIdx.x; i < N; i += gridDim.x) {
    const int64_t ti = t[i];
    // Ignored, or out of range (check_targets reports it): the same for the whole block, so
    // no thread reaches a barrier alone.
    if (ti == ignore_index || ti < 0 || ti >= V) {
      if (threadIdx.x == 0) {
        loss[i] = T(0);
        lse[i] = 0;
      }
      continue;
    }
    const T* xr = x + i * V;
    T m;
    double l, s;
    row_max_lse(xr, V, smem_t, smem_d, m, l, s);
    if (threadIdx.x == 0) {
      lse[i] = l;
      loss[i] = T(l - double(xr[ti]));
    }
  }
}

template <typename T>
__global__ void cross_entropy_backward_kernel(int64_t N, int64_t V, const T* x, const int64_t* t,
                                              int64_t ignore_index, const double* lse, const T* g,
                                              T* dx) {
  for (int64_t i = blockIdx.x; i < N; i += gridDim.x) {
    T* dr = dx + i * V;
    const int64_t ti = t[i];
    if (ti == ignore_index || ti < 0 || ti >= V) {
      for (int64_t j = threadIdx.x; j < V; j += blockDim.x) dr[j] = T(0);
      continue;
    }
    const T* xr = x + i * V;
    const double gi = double(g[i]), li = lse[i];
    for (int64_t j = threadIdx.x; j < V; j += blockDim.x) {
      T v = T(gi * double(m_exp(T(double(xr[j]) - li))));
      if (j == ti) v = T(double(v) - gi);
      dr[j] = v;
    }
  }
}

unsigned grid_rows(int64_t N) {
  const int64_t kMax = int64_t(1) << 20;
  return unsigned(N < kMax ? N : kMax);
}


}  // namespace

void softmax_rows(Type type, int64_t N, int64_t V, const void* x, void* y, bool log_space,
                  int device) {
  if (N == 0 || V == 0) return;
  cuda_detail::set_device(device);
  dispatch_floating(type, "cuda softmax", [&](auto tag) {
    using T = decltype(tag);
    softmax_kernel<T><<<grid_rows(N), kRowThreads>>>(N, V, static_cast<const T*>(x),
                                                     static_cast<T*>(y), log_space);
  });
  RLFT_CUDA_CHECK_LAUNCH();
}

void softmax_rows_backward(Type type, int64_t N, int64_t V, const void* y, const void* g, void* dx,
                           bool log_space, int device) {
  if (N == 0 || V == 0) return;
  cuda_detail::set_device(device);
  dispatch_floating(type, "cuda softmax backward", [&](auto tag) {
    using T = decltype(tag);
    softmax_backward_kernel<T><<<grid_rows(N), kRowThreads>>>(
        N, V, static_cast<const T*>(y), static_cast<const T*>(g), static_cast<T*>(dx), log_space);
  });
  RLFT_CUDA_CHECK_LAUNCH();
}

void cross_entropy_rows(Type type, int64_t N, int64_t V, const void* x, const int64_t* t,
                        int64_t ignore_index, void* loss, double* lse, int device) {
  if (N == 0) return;
  cuda_detail::set_device(device);
  dispatch_floating(type, "cuda cross_entropy", [&](auto tag) {
    using T = decltype(tag);
    cross_entropy_kernel<T><<<grid_rows(N), kRowThreads>>>(
        N, V, static_cast<const T*>(x), t, ignore_index, static_cast<T*>(loss), lse);
  });
  RLFT_CUDA_CHECK_LAUNCH();
}

void cross_entropy_rows_backward(Type type, int64_t N, int64_t V, const void* x, const int64_t* t,
                                 int64_t ignore_index, const double* lse, const void* g, void* dx,
                                 int device) {
  if (N == 0 || V == 0) return;
  cuda_detail::set_device(device);
  dispatch_floating(type, "cuda cross_entropy backward", [&](auto tag) {
    using T = decltype(tag);
    cross_entropy_backward_kernel<T>
        <<<grid_rows(N), kRowThreads>>>(N, V, static_cast<const T*>(x), t, ignore_index, lse,
                                        static_cast<const T*>(g), static_cast<T*>(dx));
  });
  RLFT_CUDA_CHECK_LAUNCH();
}

}  // namespace rlft::kernels::cuda_ops
