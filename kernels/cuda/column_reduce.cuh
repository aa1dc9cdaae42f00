// column_reduce — the shared skeleton of every reduction over the middle axis of a contiguous
// [outer, R, inner] array with inner > 1 (a "column" reduction: bias gradients, sums over
// dim 0, the batch mean, LayerNorm's dw/db), used by kernels/cuda/reduce.cu and
// kernels/cuda/layer_norm.cu. reduce.cu also runs it with inner == 1 (one column: cols = 1,
// 256 row slices, so a warp reads 32 neighbouring elements) for rows too few to fill the GPU,
// e.g. a full reduction: there the row splits are what spread the work over blocks.
//
//   out[o, i] = op.combine over r = 0 … R−1 of op.load(o, r, i)
//
// Version 2 (this file; version 1, one thread per output walking all R rows, stays in
// reduce.cu for short R). A block of 256 threads owns a tile of `cols` neighbouring columns
// of one outer slice (cols = 32, or inner itself when inner < 32) and splits the rows among
// `slices` = 256 / cols row slices: thread (c, s) combines rows s, s + slices, s + 2·slices, …
// of its column. A warp therefore reads 32 neighbouring elements (one 128-byte line for
// float) per step, and a column of R rows is walked by `slices` threads at once instead of
// one. The slices' partials then meet in shared memory in a fixed tree (slice s with slice
// s + h, lower slice first). When the tiles alone cannot fill the GPU (few columns, large R),
// the rows are also cut into `splits` contiguous ranges, one per blockIdx.y: each block
// writes its partial to a scratch buffer [splits, outer·inner] and a second kernel combines
// the splits of each output in split order. Nothing uses atomics, so a result depends on the
// shape only: identical from run to run.
//
// Traffic: one read per input element; with splits > 1, plus splits·outer·inner partials
// written and read once (sizeof(Acc) each; at most 1024 splits of a few thousand columns).
// References: kernels/cpu/reduce.h (sum_middle, extreme_middle) and kernels/cpu/layer_norm.h
// (layer_norm_backward's dw, db); tests/engine/test_cuda_ops.cpp (CudaOps.ColumnReductions*,
// CudaOps.LayerNormBackward*) check every path.
//
// An Op is a small struct passed by value to the kernels:
//   using Acc = …;                                   trivially copyable partial
//   __device__ Acc init() const;                     the empty partial
//   __device__ Acc load(int64_t o, int64_t r, int64_t i) const;
//   __device__ Acc combine(Acc a, Acc b) const;      a covers lower rows than b
//   __device__ void store(int64_t k, Acc a) const;   the final value of output k = o·inner + i
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "kernels/cuda/common.cuh"

namespace rlft::kernels::cuda_detail {

constexpr int kColumnThreads = 256;

// How a column reduction is laid out over blocks (host-side choice, passed to the kernels).
struct ColumnPlan {
  int64_t outer = 0, R = 0, inner = 0;
  int cols = 0;    // columns per tile
  int slices = 0;  // row slices per tile: kColumnThreads / cols
  int64_t tiles_per_outer = 0, tiles = 0;
  int64_t splits = 1;          // row ranges, one per blockIdx.y
  int64_t rows_per_split = 0;  // the last range may be shorter
};

// The split count aims at ~1024 blocks in flight (an H100 holds 132 SMs × 8 such blocks) but
// leaves every thread at least 32 rows of a split, so the second pass stays small.
inline ColumnPlan plan_columns(int64_t outer, int64_t R, int64_t inner) {
  constexpr int64_t kTargetBlocks = 1024, kMinRowsPerThread = 32, kMaxSplits = 1024;
  ColumnPlan p;
  p.outer = outer;
  p.R = R;
  p.inner = inner;
  p.cols = inner < kWarp ? int(inner) : kWarp;
  p.slices = kColumnThreads / p.cols;
  p.tiles_per_outer = (inner + p.cols - 1) / p.cols;
  p.tiles = outer * p.tiles_per_outer;
  p.splits = 1;
  if (p.tiles < kTargetBlocks / 2) {
    const int64_t want = (kTargetBlocks + p.tiles - 1) / p.tiles;
    const int64_t by_rows = R / (int64_t(p.slices) * kMinRowsPerThread);
    int64_t s = want < by_rows ? want : by_rows;
    if (s > kMaxSplits) s = kMaxSplits;
    p.splits = s < 1 ? 1 : s;
  }
  p.rows_per_split = (R + p.splits - 1) / p.splits;
  return p;
}

// Pass 1: one tile (blockIdx.x, grid-stride) × one row range (blockIdx.y). With one split the
// tile's result goes straight to op.store; otherwise to partial[split·outer·inner + k].
template <typename Op>
__global__ void __launch_bounds__(kColumnThreads)
    column_reduce_kernel(Op op, ColumnPlan p, typename Op::Acc* partial) {
  using Acc = typename Op::Acc;
  __shared__ Acc part[kColumnThreads];
  const int t = threadIdx.x;
  const int c = t % p.cols, s = t / p.cols;
  const bool active = s < p.slices;  // the last threads idle when cols does not divide 256
  const int64_t split = blockIdx.y;
  const int64_t r0 = split * p.rows_per_split;
  const int64_t r1 = r0 + p.rows_per_split < p.R ? r0 + p.rows_per_split : p.R;
  const int64_t step = p.slices;
  for (int64_t tile = blockIdx.x; tile < p.tiles; tile += gridDim.x) {
    const int64_t o = tile / p.tiles_per_outer;
    const int64_t i = (tile - o * p.tiles_per_outer) * p.cols + c;
    const bool mine = active && i < p.inner;
    Acc acc = op.init();
    if (mine) {
      int64_t r = r0 + s;
      // Four loads in flight before their (in-order) combines: the same order as the plain
      // loop, so the same result.
      for (; r + 3 * step < r1; r += 4 * step) {
        const Acc a0 = op.load(o, r, i), a1 = op.load(o, r + step, i);
        const Acc a2 = op.load(o, r + 2 * step, i), a3 = op.load(o, r + 3 * step, i);
        acc = op.combine(acc, a0);
        acc = op.combine(acc, a1);
        acc = op.combine(acc, a2);
        acc = op.combine(acc, a3);
      }
      for (; r < r1; r += step) acc = op.combine(acc, op.load(o, r, i));
    }
    part[t] = acc;
    __syncthreads();
    for (int n = p.slices; n > 1;) {
      const int h = (n + 1) / 2;
      if (active && s < n - h) part[t] = op.combine(part[t], part[t + h * p.cols]);
      __syncthreads();
      n = h;
    }
    if (s == 0 && i < p.inner) {
      const int64_t k = o * p.inner + i;
      if (p.splits == 1) {
        op.store(k, part[c]);
      } else {
        partial[split * p.outer * p.inner + k] = part[c];
      }
    }
    __syncthreads();  // part[c] is read before the next tile overwrites it
  }
}

// Pass 2 (splits > 1): output k combines its splits' partials in split order.
template <typename Op>
__global__ void column_finish_kernel(Op op, int64_t total, int64_t splits,
                                     const typename Op::Acc* partial) {
  for (int64_t k = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; k < total;
       k += int64_t(gridDim.x) * blockDim.x) {
    typename Op::Acc acc = partial[k];
    for (int64_t s = 1; s < splits; ++s) acc = op.combine(acc, partial[s * total + k]);
    op.store(k, acc);
  }
}

// Launches both passes on the legacy default stream (the caller has set the device and
// checks nothing itself: the launches are checked here).
template <typename Op>
void column_reduce(const Op& op, const ColumnPlan& p) {
  if (p.tiles == 0) return;
  const int64_t kMaxGridX = int64_t(1) << 20;
  const dim3 grid(unsigned(p.tiles < kMaxGridX ? p.tiles : kMaxGridX), unsigned(p.splits));
  if (p.splits == 1) {
    column_reduce_kernel<Op><<<grid, kColumnThreads>>>(op, p, nullptr);
    RLFT_CUDA_CHECK_LAUNCH();
    return;
  }
  using Acc = typename Op::Acc;
  const int64_t total = p.outer * p.inner;
  StreamScratch scratch(size_t(p.splits * total) * sizeof(Acc), nullptr);  // the launches' stream
  column_reduce_kernel<Op><<<grid, kColumnThreads>>>(op, p, scratch.as<Acc>());
  RLFT_CUDA_CHECK_LAUNCH();
  column_finish_kernel<Op><<<blocks_for(total), kThreads>>>(op, total, p.splits, scratch.as<Acc>());
  RLFT_CUDA_CHECK_LAUNCH();
}

}  // namespace rlft::kernels::cuda_detail
