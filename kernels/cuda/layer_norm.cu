// layer_norm — layer normalisation over the last dimension of contiguous [N, C] rows, forward
// and backward (declared in kernels/cuda_ops.h).
//
//   forward   μ = mean x, σ² = mean (x − μ)², rstd = 1/√(σ² + eps), y = (x·rstd − μ·rstd)·w + b
//   backward  x̂ = (x − μ)·rstd, ĝ = g·w: dx = rstd·(ĝ − mean ĝ − x̂·mean(ĝ·x̂)),
//             dw = Σ_rows g·x̂, db = Σ_rows g
// Versions: forward and dx — one block of 256 threads per row (grid-stride over rows), moments
// in double with two passes (no cancellation for large magnitudes), block all-reduces in a
// fixed order. dw/db, accumulated in double, deterministic (no atomics), picked by shape:
//   version 1  N shorter than version 2's row slices: one thread per column walking the N
//              rows (coalesced across columns).
//   version 2  otherwise: kernels/cuda/column_reduce.cuh — 32-column tiles whose rows are
//              split among 8 thread slices (all C columns and 256/C slices when C < 32) and,
//              when C/32 tiles cannot fill the GPU (C = 768 is 24 tiles), among up to 1024
//              blocks whose partial (Σ g·x̂, Σ g) pairs a second pass adds in order.
// Traffic: forward reads x twice and writes y (plus w, b from cache, 16 bytes of stats per
// row); backward reads x, g twice for dx and once more for dw/db (plus 16 bytes per row of
// stats, per 32-column tile, from cache; version 2 with splits: 16·splits·C bytes of partials
// written and read once).
// Reference: kernels/cpu/layer_norm.h (layer_norm_forward / layer_norm_backward);
// tests/engine/test_cuda_ops.cpp (CudaOps.LayerNormWithLargeMagnitudes,
// CudaOps.LayerNormBackwardAtEveryShape).
#include <cuda_runtime.h>

#include "kernels/cuda/column_reduce.cuh"
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/dispatch.cuh"
#include "kernels/cuda_ops.h"

namespace rlft::kernels::cuda_ops {

namespace {

using cuda_detail::block_allreduce;
using cuda_detail::kMaxWarps;
using cuda_detail::Sum;

constexpr int kRowThreads = 256;

// x·y rounded on its own (mul_rn, common.cuh): a fused x·y + z rounds once and so differs from
// the CPU's code (no FMA) by up to |z|·2⁻²⁴ for float: with a row offset of 1e3 that is 6e-5,
// visible in y.
using cuda_detail::add_rn;
using cuda_detail::mul_rn;

template <typename T>
__global__ void layer_norm_forward_kernel(int64_t N, int64_t C, const T* x, const T* w, const T* b,
                                          double eps, T* y, double* mean, double* rstd) {
  __shared__ double smem[kMaxWarps];
  for (int64_t i = blockIdx.x; i < N; i += gridDim.x) {
    const T* xr = x + i * C;
    double s = 0;
    for (int64_t j = threadIdx.x; j < C; j += blockDim.x) s += double(xr[j]);
    const double mu = block_allreduce(s, Sum{}, smem) / double(C);
    double v = 0;
    for (int64_t j = threadIdx.x; j < C; j += blockDim.x) {
      const double d = double(xr[j]) - mu;
      v += d * d;
    }
    v = block_allreduce(v, Sum{}, smem);
    const double r = 1.0 / ::sqrt(v / double(C) + eps);
    if (threadIdx.x == 0) {
      mean[i] = mu;
      rstd[i] = r;
    }
    const T scale = T(r), shift = T(-mu * r);
    T* yr = y + i * C;
    for (int64_t j = threadIdx.x; j < C; j += blockDim.x) {
      // Each step rounded on its own, as the CPU's separate loops (no FMA contraction of
      // x·scale + shift, nor of o·w + b).
      T o = add_rn(mul_rn(xr[j], scale), shift);
      if (w) o = mul_rn(o, w[j]);
      if (b) o = add_rn(o, b[j]);
      yr[j] = o;
    }
  }
}

template <typename T>
__global__ void layer_norm_dx_kernel(int64_t N, int64_t C, const T* x, const T* w,
                                     const double* mean, const double* rstd, const T* g, T* dx) {
  __shared__ double smem[kMaxWarps];
  for (int64_t i = blockIdx.x; i < N; i += gridDim.x) {
    const T* xr = x + i * C;
    const T* gr = g + i * C;
    const double mu = mean[i], r = rstd[i];
    double sg = 0, sgx = 0;
    for (int64_t j = threadIdx.x; j < C; j += blockDim.x) {
      const double gh = double(gr[j]) * (w ? double(w[j]) : 1.0);
      sg += gh;
      sgx += gh * ((double(xr[j]) - mu) * r);
    }
    const double mg = block_allreduce(sg, Sum{}, smem) / double(C);
    const double mgx = block_allreduce(sgx, Sum{}, smem) / double(C);
    T* dr = dx + i * C;
    for (int64_t j = threadIdx.x; j < C; j += blockDim.x) {
      const double xh = (double(xr[j]) - mu) * r;
      const double gh = double(gr[j]) * (w ? double(w[j]) : 1.0);
      dr[j] = T(r * (gh - mg - xh * mgx));
    }
  }
}

template <typename T>
__global__ void layer_norm_dwdb_kernel(int64_t N, int64_t C, const T* x, const double* mean,
                                       const double* rstd, const T* g, T* dw, T* db) {
  for (int64_t j = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; j < C;
       j += int64_t(gridDim.x) * blockDim.x) {
    double aw = 0, ab = 0;
    for (int64_t i = 0; i < N; ++i) {
      const double gv = double(g[i * C + j]);
      aw += gv * ((double(x[i * C + j]) - mean[i]) * rstd[i]);
      ab += gv;
    }
    if (dw) dw[j] = T(aw);
    if (db) db[j] = T(ab);
  }
}

// dw and db as one column reduction (kernels/cuda/column_reduce.cuh) over the N rows.
struct WeightBiasSums {
  double w, b;
};
template <typename T>
struct LayerNormDwDb {
  using Acc = WeightBiasSums;
  const T* x;
  const T* g;
  const double* mean;
  const double* rstd;
  T* dw;
  T* db;
  int64_t C;
  __device__ Acc init() const { return Acc{0.0, 0.0}; }
  __device__ Acc load(int64_t, int64_t r, int64_t j) const {
    const double gv = double(g[r * C + j]);
    return Acc{gv * ((double(x[r * C + j]) - mean[r]) * rstd[r]), gv};
  }
  __device__ Acc combine(Acc a, Acc b) const { return Acc{a.w + b.w, a.b + b.b}; }
  __device__ void store(int64_t j, Acc a) const {
    if (dw) dw[j] = T(a.w);
    if (db) db[j] = T(a.b);
  }
};

unsigned grid_rows(int64_t N) {
  const int64_t kMax = int64_t(1) << 20;
  return unsigned(N < kMax ? N : kMax);
}


}  // namespace

void layer_norm_forward(Type type, int64_t N, int64_t C, const void* x, const void* w,
                        const void* b, double eps, void* y, double* mean, double* rstd,
                        int device) {
  if (N == 0 || C == 0) return;
  cuda_detail::set_device(device);
  dispatch_floating(type, "cuda layer_norm", [&](auto tag) {
    using T = decltype(tag);
    layer_norm_forward_kernel<T><<<grid_rows(N), kRowThreads>>>(
        N, C, static_cast<const T*>(x), static_cast<const T*>(w), static_cast<const T*>(b), eps,
        static_cast<T*>(y), mean, rstd);
  });
  RLFT_CUDA_CHECK_LAUNCH();
}

void layer_norm_backward(Type type, int64_t N, int64_t C, const void* x, const void* w,
                         const double* mean, const double* rstd, const void* g, void* dx, void* dw,
                         void* db, int device, int dwdb_version) {
  RLFT_CHECK(dwdb_version >= 0 && dwdb_version <= 2, "cuda layer_norm backward: dw/db version ",
             dwdb_version, " (expected 0 for by shape, 1 or 2)");
  if (C == 0) return;
  cuda_detail::set_device(device);
  dispatch_floating(type, "cuda layer_norm backward", [&](auto tag) {
    using T = decltype(tag);
    if (dx && N > 0) {
      layer_norm_dx_kernel<T><<<grid_rows(N), kRowThreads>>>(
          N, C, static_cast<const T*>(x), static_cast<const T*>(w), mean, rstd,
          static_cast<const T*>(g), static_cast<T*>(dx));
      RLFT_CUDA_CHECK_LAUNCH();
    }
    if (dw || db) {
      const cuda_detail::ColumnPlan plan = cuda_detail::plan_columns(1, N, C);
      if (dwdb_version == 1 || (dwdb_version == 0 && N < plan.slices)) {
        layer_norm_dwdb_kernel<T><<<cuda_detail::blocks_for(C), cuda_detail::kThreads>>>(
            N, C, static_cast<const T*>(x), mean, rstd, static_cast<const T*>(g),
            static_cast<T*>(dw), static_cast<T*>(db));
        RLFT_CUDA_CHECK_LAUNCH();
      } else {
        cuda_detail::column_reduce(
            LayerNormDwDb<T>{static_cast<const T*>(x), static_cast<const T*>(g), mean, rstd,
                             static_cast<T*>(dw), static_cast<T*>(db), C},
            plan);
      }
    }
  });
}

}  // namespace rlft::kernels::cuda_ops
