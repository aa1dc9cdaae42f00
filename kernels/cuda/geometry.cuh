// Device-side use of kernels/cuda_ops.h's Geometry: the element offset of a flat index.
#pragma once

#include <cuda_runtime.h>

#include "kernels/cuda_ops.h"

namespace rlft::kernels::cuda_ops {

// Offset (in elements) of operand k at flat index i, row-major over g.shape (the index itself
// when every operand is dense).
__device__ __forceinline__ int64_t offset_of(const Geometry& g, int k, int64_t i) {
  if (g.contiguous) return i;
  int64_t off = 0;
  for (int d = g.ndim - 1; d >= 0; --d) {
    const int64_t n = g.shape[d];
    const int64_t c = i % n;
    i /= n;
    off += c * g.strides[k][d];
  }
  return off;
}

}  // namespace rlft::kernels::cuda_ops
