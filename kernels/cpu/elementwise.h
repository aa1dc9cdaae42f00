// Elementwise kernels over raw pointers: out[i] = f(a[i]) and out[i] = f(a[i], b[i]) with
// arbitrary (broadcast) strides for the inputs and a contiguous output.
//
// Memory traffic: one read per input element and one write per output element; the
// functors are inlined templates, so the contiguous path compiles to a vectorised loop.
// OpenMP splits the flat contiguous case above kParallelMin elements (below it the
// fork/join costs more than the loop). The reference is the scalar formula itself.
#pragma once

#include <omp.h>

#include <array>
#include <cstdint>

#include "kernels/cpu/parallel.h"
#include "kernels/cpu/strided.h"

namespace rlft::kernels {

constexpr int64_t kParallelMin = 1 << 15;

template <typename In, typename Out, typename F>
void unary_contiguous(int64_t n, const In* a, Out* out, F f) {
  parallel_for(n, n >= kParallelMin, [&](int64_t i) { out[i] = f(a[i]); });
}

// out contiguous with `shape`; a addressed with `a_strides`.
template <typename In, typename Out, typename F>
void unary_strided(int ndim, const int64_t* shape, const In* a, const int64_t* a_strides, Out* out,
                   const int64_t* out_strides, F f) {
  strided_loop<2>(ndim, shape, {out_strides, a_strides},
                  [&](const std::array<int64_t, 2>& off, int64_t n, const std::array<int64_t, 2>& inc) {
                    Out* o = out + off[0];
                    const In* x = a + off[1];
                    if (inc[0] == 1 && inc[1] == 1) {
                      for (int64_t i = 0; i < n; ++i) o[i] = f(x[i]);
                    } else {
                      for (int64_t i = 0; i < n; ++i) o[i * inc[0]] = f(x[i * inc[1]]);
                    }
                  });
}

template <typename In, typename Out, typename F>
void binary_contiguous(int64_t n, const In* a, const In* b, Out* out, F f) {
  parallel_for(n, n >= kParallelMin, [&](int64_t i) { out[i] = f(a[i], b[i]); });
}

template <typename In, typename Out, typename F>
void binary_strided(int ndim, const int64_t* shape, const In* a, const int64_t* a_strides,
                    const In* b, const int64_t* b_strides, Out* out, const int64_t* out_strides, F f) {
  strided_loop<3>(ndim, shape, {out_strides, a_strides, b_strides},
                  [&](const std::array<int64_t, 3>& off, int64_t n, const std::array<int64_t, 3>& inc) {
                    Out* o = out + off[0];
                    const In* x = a + off[1];
                    const In* y = b + off[2];
                    if (inc[0] == 1 && inc[1] == 1 && inc[2] == 1) {
                      for (int64_t i = 0; i < n; ++i) o[i] = f(x[i], y[i]);
                    } else if (inc[0] == 1 && inc[1] == 1 && inc[2] == 0) {
                      const In yv = *y;
                      for (int64_t i = 0; i < n; ++i) o[i] = f(x[i], yv);
                    } else if (inc[0] == 1 && inc[1] == 0 && inc[2] == 1) {
                      const In xv = *x;
                      for (int64_t i = 0; i < n; ++i) o[i] = f(xv, y[i]);
                    } else {
                      for (int64_t i = 0; i < n; ++i) o[i * inc[0]] = f(x[i * inc[1]], y[i * inc[2]]);
                    }
                  });
}

}  // namespace rlft::kernels
