// Strided N-d iteration for raw-pointer kernels (no Tensor here).
//
// strided_loop<K>(ndim, shape, strides, f) visits every index of `shape` for K operands
// that each have their own element strides (0 for a broadcast dimension). Adjacent
// dimensions that are contiguous for every operand are merged first, so f is called once
// per innermost run with (offsets of the run's first element per operand, run length,
// inner stride per operand) and can run a tight, vectorisable loop.
#pragma once

#include <array>
#include <cstdint>

namespace rlft::kernels {

constexpr int kMaxDims = 8;

template <size_t K, typename F>
void strided_loop(int ndim, const int64_t* shape, const std::array<const int64_t*, K>& strides,
                  F&& f) {
  int64_t sh[kMaxDims];
  int64_t st[K][kMaxDims];
  int n = 0;
  for (int d = 0; d < ndim; ++d) {
    if (shape[d] == 0) return;
    if (shape[d] == 1) continue;  // size-1 dims contribute nothing
    sh[n] = shape[d];
    for (size_t k = 0; k < K; ++k) st[k][n] = strides[k][d];
    ++n;
  }
  // Merge dimension d-1 into d when stride[d-1] == stride[d] * shape[d] for every operand.
  int m = 0;
  for (int d = 0; d < n; ++d) {
    if (m > 0) {
      bool merge = true;
      for (size_t k = 0; k < K; ++k)
        if (st[k][m - 1] != st[k][d] * sh[d]) { merge = false; break; }
      if (merge) {
        sh[m - 1] *= sh[d];
        for (size_t k = 0; k < K; ++k) st[k][m - 1] = st[k][d];
        continue;
      }
    }
    sh[m] = sh[d];
    for (size_t k = 0; k < K; ++k) st[k][m] = st[k][d];
    ++m;
  }
  std::array<int64_t, K> off{};
  std::array<int64_t, K> inner{};
  if (m == 0) {  // a single element
    f(off, int64_t(1), inner);
    return;
  }
  for (size_t k = 0; k < K; ++k) inner[k] = st[k][m - 1];
  const int64_t run = sh[m - 1];
  const int outer_dims = m - 1;
  int64_t idx[kMaxDims] = {};
  while (true) {
    f(off, run, inner);
    int d = outer_dims - 1;
    for (; d >= 0; --d) {
      ++idx[d];
      for (size_t k = 0; k < K; ++k) off[k] += st[k][d];
      if (idx[d] < sh[d]) break;
      for (size_t k = 0; k < K; ++k) off[k] -= st[k][d] * sh[d];
      idx[d] = 0;
    }
    if (d < 0) return;
  }
}

}  // namespace rlft::kernels
