// Reductions over the middle axis of a contiguous [outer, R, inner] array.
//
// sum: out[o, i] = Σ_r in[o, r, i], accumulated in double (float inputs lose nothing on long
// rows). argmax/argmin: first index of the extreme value (NaN propagates as PyTorch does).
// cumsum: the inclusive prefix sums along r (or suffix sums, reversed), each output rounded once
// from a running sum kept in double (floating types) or int64 (integers), as PyTorch's CPU
// cumsum accumulates.
// Traffic: one read per input element, one write per output element. OpenMP over `outer`
// when the work is large (over columns when outer = 1). Reference: the formula itself (tests
// compare with hand sums; tests/kernels/test_reduce.cpp with the plain loop, bitwise).
#pragma once

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <type_traits>
#include <vector>

#include "kernels/cpu/parallel.h"

namespace rlft::kernels {

// acc[i − i0] += Σ_r in[r, i] for columns [i0, i1), rows in order: float loop cloned for
// AVX-512/AVX2 in reduce.cpp (-ffp-contract=off; bitwise the plain loop's result).
void column_sums_f32(int64_t R, int64_t inner, int64_t i0, int64_t i1, const float* in, double* acc);

template <typename T>
void sum_middle(int64_t outer, int64_t R, int64_t inner, const T* in, T* out) {
  const bool par = outer * R * inner >= (1 << 16) && outer > 1;
  if (inner == 1) {
    parallel_for(outer, par, [&](int64_t o) {
      const T* row = in + o * R;
      double acc0 = 0, acc1 = 0, acc2 = 0, acc3 = 0;
      int64_t r = 0;
      for (; r + 4 <= R; r += 4) {
        acc0 += row[r];
        acc1 += row[r + 1];
        acc2 += row[r + 2];
        acc3 += row[r + 3];
      }
      for (; r < R; ++r) acc0 += row[r];
      out[o] = T((acc0 + acc1) + (acc2 + acc3));
    });
    return;
  }
  // One outer slice (a bias gradient: the sum over rows of [rows, C]): threads split the
  // columns instead, each column still adding its rows in order (results independent of the
  // thread count).
  if (outer == 1 && inner >= 64) {
    parallel_region(R * inner >= (1 << 16), [&](int64_t t, int64_t nt) {
      const int64_t i0 = inner * t / nt / 8 * 8, i1 = t + 1 == nt ? inner : inner * (t + 1) / nt / 8 * 8;
      std::vector<double> acc(size_t(std::max<int64_t>(i1 - i0, 0)), 0.0);
      if (i1 > i0) {
        if constexpr (std::is_same_v<T, float>) {
          column_sums_f32(R, inner, i0, i1, in, acc.data());
        } else {
          for (int64_t r = 0; r < R; ++r) {
            const T* row = in + r * inner;
            for (int64_t i = i0; i < i1; ++i) acc[size_t(i - i0)] += row[i];
          }
        }
      }
      for (int64_t i = i0; i < i1; ++i) out[i] = T(acc[size_t(i - i0)]);
    });
    return;
  }
  parallel_region(par, [&](int64_t t, int64_t nt) {
    std::vector<double> acc(size_t(inner), 0.0);
    for (int64_t o = share_begin(outer, t, nt); o < share_begin(outer, t + 1, nt); ++o) {
      std::fill(acc.begin(), acc.end(), 0.0);
      const T* base = in + o * R * inner;
      for (int64_t r = 0; r < R; ++r) {
        const T* row = base + r * inner;
        for (int64_t i = 0; i < inner; ++i) acc[i] += row[i];
      }
      T* dst = out + o * inner;
      for (int64_t i = 0; i < inner; ++i) dst[i] = T(acc[i]);
    }
  });
}

// values[o, i] and indices[o, i] of the max (is_max) or min over r.
template <typename T>
void extreme_middle(int64_t outer, int64_t R, int64_t inner, const T* in, T* values, int64_t* indices,
                    bool is_max) {
  for (int64_t o = 0; o < outer; ++o) {
    for (int64_t i = 0; i < inner; ++i) {
      const T* p = in + o * R * inner + i;
      T best = p[0];
      int64_t arg = 0;
      if (!std::isnan(double(best))) {
        for (int64_t r = 1; r < R; ++r) {
          const T v = p[r * inner];
          if (std::isnan(double(v))) { best = v; arg = r; break; }
          if (is_max ? v > best : v < best) { best = v; arg = r; }
        }
      }
      if (values) values[o * inner + i] = best;
      if (indices) indices[o * inner + i] = arg;
    }
  }
}

// out[o, r, i] = Σ_{s ≤ r} in[o, s, i] (reverse: Σ_{s ≥ r}); in and out may not overlap.
// Sequential in r for each line (o, i); OpenMP over outer when the work is large.
template <typename T>
void cumsum_middle(int64_t outer, int64_t R, int64_t inner, const T* in, T* out, bool reverse) {
  using Acc = std::conditional_t<std::is_floating_point_v<T>, double, int64_t>;
  const bool par = outer * R * inner >= (1 << 16) && outer > 1;
  parallel_region(par, [&](int64_t t, int64_t nt) {
    std::vector<Acc> acc(static_cast<size_t>(inner));
    for (int64_t o = share_begin(outer, t, nt); o < share_begin(outer, t + 1, nt); ++o) {
      std::fill(acc.begin(), acc.end(), Acc(0));
      for (int64_t k = 0; k < R; ++k) {
        const int64_t r = reverse ? R - 1 - k : k;
        const T* src = in + (o * R + r) * inner;
        T* dst = out + (o * R + r) * inner;
        for (int64_t i = 0; i < inner; ++i) {
          acc[size_t(i)] += Acc(src[i]);
          dst[i] = T(acc[size_t(i)]);
        }
      }
    }
  });
}

}  // namespace rlft::kernels
