// reduce — sum and max/min (with the index) over the middle axis of a contiguous
// [outer, R, inner] array (declared in kernels/cuda_ops.h); the engine reduces any set of
// dimensions by viewing the tensor this way, one dimension at a time.
//
//   sum:      out[o, i] = Σ_r in[o, r, i], accumulated in double for float and double data
//   extreme:  values[o, i], indices[o, i] = the max (or min) over r and its first index; the
//             first NaN wins (NaN propagates, as kernels/cpu/reduce.h and PyTorch)
//   cumsum:   out[o, r, i] = Σ_{s ≤ r} in[o, s, i] (or Σ_{s ≥ r}): one thread per line (o, i)
//             walking r with a running sum in double (int64 for i64), so each output has the
//             CPU's bits; it loads 8 elements ahead of its adds (reasoned, not timed: a line of
//             R waits ~R/8 load latencies, not R). Neighbouring threads read neighbouring i
//             (coalesced when inner > 1; with inner = 1 each thread walks its own row). Meant
//             for short lines (position ids from a [B, T] mask, the gradient of that): a long
//             line is one thread's serial walk, not a parallel scan (gae.cu's version 2 is the
//             parallel scan of this project).
//
// Versions, picked by shape (every one deterministic: no atomics, a fixed combining order):
//   rows       inner == 1 and enough rows to fill the GPU (or rows too short to split): one
//              block of 256 threads per row (grid-stride over rows): each thread walks the row
//              with stride 256, then a shared-memory tree combines the 256 partials.
//   split rows inner == 1 otherwise (a full reduction is one row of every element): columns 2
//              below with one column, so each row is also cut into contiguous ranges, one per
//              block (a warp still reads 32 neighbouring elements per step), and a second pass
//              combines the ranges in order. A full sum of 2M floats used to run on one block
//              of 256 threads (~2.3 ms a sum on an H200, inferred from the composed ratio_clip
//              baseline: BENCHMARKS.md); split, on ~256 blocks.
//   columns 1  inner > 1 and R shorter than version 2's row slices: one thread per output
//              (o, i) walking r; neighbouring threads read neighbouring i, so the loads
//              coalesce. Few threads when outer·inner is small, but R is short here.
//   columns 2  inner > 1 otherwise: kernels/cuda/column_reduce.cuh — 32-column tiles (or the
//              whole row when inner < 32) with the rows split among 256/cols thread slices
//              and, when the tiles cannot fill the GPU, among blocks (a second pass combines
//              the splits in order). A [100000, 64] sum over dim 0 runs on ~1024 blocks
//              instead of 64 threads.
// Traffic: one read per input element, one write per output (plus 8 bytes per index; cumsum:
// one read and one write per element); columns 2 with splits adds splits·outer·inner partials (16
// bytes each) written and read once. Reference: kernels/cpu/reduce.h (sum_middle, extreme_middle,
// cumsum_middle); tests/engine/test_cuda_ops.cpp (CudaOps.ReductionsOverAnyDims,
// CudaOps.ColumnReductionsAtEveryShape, CudaOps.CumsumIsTheCpus).
#include <cuda_runtime.h>

#include <type_traits>

#include "kernels/cuda/column_reduce.cuh"
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/dispatch.cuh"
#include "kernels/cuda_ops.h"

namespace rlft::kernels::cuda_ops {

namespace {

constexpr int kReduceThreads = 256;

template <typename T>
__device__ __forceinline__ bool is_nan(T x) {
  if constexpr (std::is_floating_point_v<T>) {
    return isnan(x);
  } else {
    return false;
  }
}

// Whether candidate (a, ia) beats (b, ib): NaN first, then the larger (max) or smaller (min)
// value, ties to the smaller index; index −1 marks an empty slot that never wins.
template <typename T>
__device__ __forceinline__ bool beats(T a, int64_t ia, T b, int64_t ib, bool is_max) {
  if (ia < 0) return false;
  if (ib < 0) return true;
  const bool na = is_nan(a), nb = is_nan(b);
  if (na || nb) return na && nb ? ia < ib : na;
  if (a == b) return ia < ib;
  return is_max ? a > b : a < b;
}

template <typename T>
__global__ void sum_rows_kernel(int64_t outer, int64_t R, const T* in, T* out) {
  __shared__ double part[kReduceThreads];
  for (int64_t o = blockIdx.x; o < outer; o += gridDim.x) {
    const T* row = in + o * R;
    double acc = 0;
    for (int64_t r = threadIdx.x; r < R; r += blockDim.x) acc += double(row[r]);
    part[threadIdx.x] = acc;
    __syncthreads();
    for (int s = blockDim.x / 2; s > 0; s >>= 1) {
      if (int(threadIdx.x) < s) part[threadIdx.x] += part[threadIdx.x + s];
      __syncthreads();
    }
    if (threadIdx.x == 0) out[o] = T(part[0]);
    __syncthreads();  // part[0] is read before the next row overwrites it
  }
}

template <typename T>
__global__ void sum_columns_kernel(int64_t outer, int64_t R, int64_t inner, const T* in, T* out) {
  const int64_t total = outer * inner;
  for (int64_t k = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; k < total;
       k += int64_t(gridDim.x) * blockDim.x) {
    const int64_t o = k / inner, i = k - o * inner;
    const T* p = in + o * R * inner + i;
    double acc = 0;
    for (int64_t r = 0; r < R; ++r) acc += double(p[r * inner]);
    out[k] = T(acc);
  }
}

template <typename T>
__global__ void extreme_rows_kernel(int64_t outer, int64_t R, const T* in, T* values,
                                    int64_t* indices, bool is_max) {
  __shared__ T best_v[kReduceThreads];
  __shared__ int64_t best_i[kReduceThreads];
  for (int64_t o = blockIdx.x; o < outer; o += gridDim.x) {
    const T* row = in + o * R;
    T bv = T(0);
    int64_t bi = -1;
    for (int64_t r = threadIdx.x; r < R; r += blockDim.x) {
      const T v = row[r];
      if (beats(v, r, bv, bi, is_max)) {
        bv = v;
        bi = r;
      }
    }
    best_v[threadIdx.x] = bv;
    best_i[threadIdx.x] = bi;
    __syncthreads();
    for (int s = blockDim.x / 2; s > 0; s >>= 1) {
      if (int(threadIdx.x) < s && beats(best_v[threadIdx.x + s], best_i[threadIdx.x + s],
                                        best_v[threadIdx.x], best_i[threadIdx.x], is_max)) {
        best_v[threadIdx.x] = best_v[threadIdx.x + s];
        best_i[threadIdx.x] = best_i[threadIdx.x + s];
      }
      __syncthreads();
    }
    if (threadIdx.x == 0) {
      if (values) values[o] = best_v[0];
      if (indices) indices[o] = best_i[0];
    }
    __syncthreads();
  }
}

template <typename T>
__global__ void extreme_columns_kernel(int64_t outer, int64_t R, int64_t inner, const T* in,
                                       T* values, int64_t* indices, bool is_max) {
  const int64_t total = outer * inner;
  for (int64_t k = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; k < total;
       k += int64_t(gridDim.x) * blockDim.x) {
    const int64_t o = k / inner, i = k - o * inner;
    const T* p = in + o * R * inner + i;
    T bv = p[0];
    int64_t bi = 0;
    for (int64_t r = 1; r < R; ++r) {
      const T v = p[r * inner];
      if (beats(v, r, bv, bi, is_max)) {
        bv = v;
        bi = r;
      }
    }
    if (values) values[k] = bv;
    if (indices) indices[k] = bi;
  }
}

// Column-reduction ops for kernels/cuda/column_reduce.cuh.
template <typename T>
struct SumColumns {
  using Acc = double;
  const T* in;
  T* out;
  int64_t R, inner;
  __device__ Acc init() const { return 0.0; }
  __device__ Acc load(int64_t o, int64_t r, int64_t i) const {
    return double(in[(o * R + r) * inner + i]);
  }
  __device__ Acc combine(Acc a, Acc b) const { return a + b; }
  __device__ void store(int64_t k, Acc a) const { out[k] = T(a); }
};

template <typename T>
struct Best {
  T v;
  int64_t i;  // −1: empty
};

template <typename T>
struct ExtremeColumns {
  using Acc = Best<T>;
  const T* in;
  T* values;
  int64_t* indices;
  int64_t R, inner;
  bool is_max;
  __device__ Acc init() const { return Acc{T(0), -1}; }
  __device__ Acc load(int64_t o, int64_t r, int64_t i) const {
    return Acc{in[(o * R + r) * inner + i], r};
  }
  // `beats` is a total order (ties go to the smaller index), so any combining order agrees.
  __device__ Acc combine(Acc a, Acc b) const { return beats(b.v, b.i, a.v, a.i, is_max) ? b : a; }
  __device__ void store(int64_t k, Acc a) const {
    if (values) values[k] = a.v;
    if (indices) indices[k] = a.i;
  }
};

unsigned grid_rows(int64_t outer) {
  const int64_t kMax = int64_t(1) << 20;
  return unsigned(outer < kMax ? outer : kMax);
}

// Version 1 when R is shorter than version 2's row slices (most of its threads would idle).
bool use_columns_v1(int column_version, const cuda_detail::ColumnPlan& plan) {
  RLFT_CHECK(column_version >= 0 && column_version <= 2, "cuda reduce: column version ",
             column_version, " (expected 0 for by shape, 1 or 2)");
  return column_version == 1 || (column_version == 0 && plan.R < plan.slices);
}

// inner == 1: the block-per-row kernel (version 1) unless the plan cuts the rows among blocks
// (too few rows to fill the GPU and rows long enough to cut), or version 2 is asked for.
bool use_rows_kernel(int version, const cuda_detail::ColumnPlan& plan) {
  RLFT_CHECK(version >= 0 && version <= 2, "cuda reduce: version ", version,
             " (expected 0 for by shape, 1 or 2)");
  return version == 1 || (version == 0 && plan.splits == 1);
}

}  // namespace

void sum(Type type, int64_t outer, int64_t R, int64_t inner, const void* in, void* out, int device,
         int column_version) {
  if (outer * inner == 0) return;
  cuda_detail::set_device(device);
  auto run = [&](auto tag) {
    using T = decltype(tag);
    const T* x = static_cast<const T*>(in);
    T* y = static_cast<T*>(out);
    const cuda_detail::ColumnPlan plan = cuda_detail::plan_columns(outer, R, inner);
    if (inner == 1 && use_rows_kernel(column_version, plan)) {
      sum_rows_kernel<T><<<grid_rows(outer), kReduceThreads>>>(outer, R, x, y);
      RLFT_CUDA_CHECK_LAUNCH();
      return;
    }
    if (inner > 1 && use_columns_v1(column_version, plan)) {
      sum_columns_kernel<T><<<cuda_detail::blocks_for(outer * inner), cuda_detail::kThreads>>>(
          outer, R, inner, x, y);
      RLFT_CUDA_CHECK_LAUNCH();
      return;
    }
    cuda_detail::column_reduce(SumColumns<T>{x, y, R, inner}, plan);
  };
  dispatch_floating(type, "cuda sum", run);
}

void extreme(Type type, int64_t outer, int64_t R, int64_t inner, const void* in, void* values,
             int64_t* indices, bool is_max, int device, int column_version) {
  if (outer * inner == 0) return;
  RLFT_CHECK(R > 0, "cuda extreme: empty reduction");
  cuda_detail::set_device(device);
  auto run = [&](auto tag) {
    using T = decltype(tag);
    const T* x = static_cast<const T*>(in);
    T* v = static_cast<T*>(values);
    const cuda_detail::ColumnPlan plan = cuda_detail::plan_columns(outer, R, inner);
    if (inner == 1 && use_rows_kernel(column_version, plan)) {
      extreme_rows_kernel<T><<<grid_rows(outer), kReduceThreads>>>(outer, R, x, v, indices, is_max);
      RLFT_CUDA_CHECK_LAUNCH();
      return;
    }
    if (inner > 1 && use_columns_v1(column_version, plan)) {
      extreme_columns_kernel<T><<<cuda_detail::blocks_for(outer * inner), cuda_detail::kThreads>>>(
          outer, R, inner, x, v, indices, is_max);
      RLFT_CUDA_CHECK_LAUNCH();
      return;
    }
    cuda_detail::column_reduce(ExtremeColumns<T>{x, v, indices, R, inner, is_max}, plan);
  };
  dispatch_all(type, run);
}

namespace {

constexpr int kCumsumBatch = 8;

template <typename T>
__global__ void cumsum_kernel(int64_t lines, int64_t R, int64_t inner, const T* in, T* out,
                              bool reverse) {
  using Acc = std::conditional_t<std::is_floating_point_v<T>, double, int64_t>;
  for (int64_t line = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; line < lines;
       line += int64_t(gridDim.x) * blockDim.x) {
    const int64_t o = line / inner, i = line % inner;
    // Element k of the line (in the scan's order) is at base + k·step.
    const int64_t base = (o * R + (reverse ? R - 1 : 0)) * inner + i;
    const int64_t step = reverse ? -inner : inner;
    Acc acc = 0;
    // kCumsumBatch loads issued together before their adds: the running sum is one dependency
    // chain, but the loads are not, so a line costs R/kCumsumBatch load latencies, not R.
    for (int64_t k0 = 0; k0 < R; k0 += kCumsumBatch) {
      T v[kCumsumBatch];
#pragma unroll
      for (int u = 0; u < kCumsumBatch; ++u)
        if (k0 + u < R) v[u] = in[base + (k0 + u) * step];
#pragma unroll
      for (int u = 0; u < kCumsumBatch; ++u)
        if (k0 + u < R) {
          acc += Acc(v[u]);
          out[base + (k0 + u) * step] = T(acc);
        }
    }
  }
}

}  // namespace

void cumsum(Type type, int64_t outer, int64_t R, int64_t inner, const void* in, void* out,
            bool reverse, int device) {
  if (outer * R * inner == 0) return;
  RLFT_CHECK(type != Type::b8, "cuda cumsum: bool data (the engine sums it as int64)");
  cuda_detail::set_device(device);
  dispatch_all(type, [&](auto tag) {
    using T = decltype(tag);
    if constexpr (!std::is_same_v<T, uint8_t>) {
      const int64_t lines = outer * inner;
      cumsum_kernel<T><<<cuda_detail::blocks_for(lines), cuda_detail::kThreads>>>(
          lines, R, inner, static_cast<const T*>(in), static_cast<T*>(out), reverse);
      RLFT_CUDA_CHECK_LAUNCH();
    }
  });
}

}  // namespace rlft::kernels::cuda_ops
