// index — row selection, gather and their scatter-add backward (declared in kernels/cuda_ops.h).
//
//   index_select  out[o, i, j] = src[o, idx[i], j]          (embedding forward: outer = 1)
//   index_add     dst[o, idx[i], j] += src[o, i, j]         (embedding / index_select backward)
//   gather        out[p] = a[p with index[p] along dim]
//   scatter_add   dst[p with index[p] along dim] += src[p]  (gather backward)
// One version each, a grid-stride loop over the output (or source) elements. The adds use
// atomicAdd (float and double: sm_60 and later), so repeated indices accumulate correctly but
// the order of the float additions — and so the last bits — can differ between runs; the CPU
// adds in index order. Indices are trusted here: the engine checks them on the host first.
// Traffic per element: select/gather read one element and the index (8 bytes, cached across
// a row for index_select), write one; the adds read the source and do one atomic.
// Reference: engine/ops_index.cpp and ops_nn.cpp (embedding) CPU branches.
#include <cuda_runtime.h>

#include "kernels/cuda/common.cuh"
#include "kernels/cuda/dispatch.cuh"
#include "kernels/cuda/geometry.cuh"
#include "kernels/cuda_ops.h"

namespace rlft::kernels::cuda_ops {

namespace {

using cuda_detail::blocks_for;
using cuda_detail::kThreads;

template <typename T>
__global__ void index_select_kernel(int64_t outer, int64_t n_src, int64_t inner, const T* src,
                                    const int64_t* idx, int64_t k, T* out) {
  const int64_t total = outer * k * inner;
  for (int64_t e = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; e < total;
       e += int64_t(gridDim.x) * blockDim.x) {
    const int64_t j = e % inner, t = e / inner;
    const int64_t i = t % k, o = t / k;
    out[e] = src[(o * n_src + idx[i]) * inner + j];
  }
}

template <typename T>
__global__ void index_add_kernel(int64_t outer, int64_t n_dst, int64_t inner, T* dst,
                                 const int64_t* idx, int64_t k, const T* src) {
  const int64_t total = outer * k * inner;
  for (int64_t e = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; e < total;
       e += int64_t(gridDim.x) * blockDim.x) {
    const int64_t j = e % inner, t = e / inner;
    const int64_t i = t % k, o = t / k;
    atomicAdd(dst + (o * n_dst + idx[i]) * inner + j, src[e]);
  }
}

template <typename T>
__global__ void gather_kernel(Geometry g, T* out, const int64_t* index, const T* a,
                              int64_t a_dim_stride) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < g.numel;
       i += int64_t(gridDim.x) * blockDim.x)
    out[offset_of(g, 0, i)] = a[offset_of(g, 2, i) + index[offset_of(g, 1, i)] * a_dim_stride];
}

template <typename T>
__global__ void scatter_add_kernel(Geometry g, const T* src, const int64_t* index, T* dst,
                                   int64_t dst_dim_stride) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < g.numel;
       i += int64_t(gridDim.x) * blockDim.x)
    atomicAdd(dst + offset_of(g, 2, i) + index[offset_of(g, 1, i)] * dst_dim_stride,
              src[offset_of(g, 0, i)]);
}


}  // namespace

void index_select(Type type, int64_t outer, int64_t n_src, int64_t inner, const void* src,
                  const int64_t* idx, int64_t k, void* out, int device) {
  const int64_t total = outer * k * inner;
  if (total == 0) return;
  cuda_detail::set_device(device);
  dispatch_all(type, [&](auto tag) {
    using T = decltype(tag);
    index_select_kernel<T><<<blocks_for(total), kThreads>>>(
        outer, n_src, inner, static_cast<const T*>(src), idx, k, static_cast<T*>(out));
  });
  RLFT_CUDA_CHECK_LAUNCH();
}

void index_add(Type type, int64_t outer, int64_t n_dst, int64_t inner, void* dst,
               const int64_t* idx, int64_t k, const void* src, int device) {
  const int64_t total = outer * k * inner;
  if (total == 0) return;
  cuda_detail::set_device(device);
  dispatch_floating(type, "cuda index_add", [&](auto tag) {
    using T = decltype(tag);
    index_add_kernel<T><<<blocks_for(total), kThreads>>>(outer, n_dst, inner, static_cast<T*>(dst),
                                                         idx, k, static_cast<const T*>(src));
  });
  RLFT_CUDA_CHECK_LAUNCH();
}

void gather(Type type, const Geometry& g, void* out, const int64_t* index, const void* a,
            int64_t a_dim_stride, int device) {
  if (g.numel == 0) return;
  cuda_detail::set_device(device);
  dispatch_all(type, [&](auto tag) {
    using T = decltype(tag);
    gather_kernel<T><<<blocks_for(g.numel), kThreads>>>(g, static_cast<T*>(out), index,
                                                        static_cast<const T*>(a), a_dim_stride);
  });
  RLFT_CUDA_CHECK_LAUNCH();
}

void scatter_add(Type type, const Geometry& g, const void* src, const int64_t* index, void* dst,
                 int64_t dst_dim_stride, int device) {
  if (g.numel == 0) return;
  cuda_detail::set_device(device);
  dispatch_floating(type, "cuda scatter_add", [&](auto tag) {
    using T = decltype(tag);
    scatter_add_kernel<T><<<blocks_for(g.numel), kThreads>>>(g, static_cast<const T*>(src), index,
                                                             static_cast<T*>(dst), dst_dim_stride);
  });
  RLFT_CUDA_CHECK_LAUNCH();
}

}  // namespace rlft::kernels::cuda_ops
