// Sums of a row in double with eight independent partial sums.
//
// A plain `for (j) s += double(x[j])` is one dependency chain: the compiler may not reorder
// floating-point additions, so each add waits for the previous one (3-4 cycles) and the loop
// cannot vectorise. Eight accumulators (lane k takes terms j ≡ k mod 8) are eight chains that
// the compiler turns into vector adds, combined pairwise at the end. The order of additions is
// fixed by n alone, so results are deterministic; they differ from the sequential sum only by
// rounding (both in double, so far below float resolution for the rows summed here).
// LayerNorm and softmax rows spent most of their time in such chains (perf, GPT rollouts).
#pragma once

#include <cstdint>

namespace rlft::kernels {

// Σ_{j<n} term(j), term returning double.
template <typename Term>
[[gnu::always_inline]] inline double lane_sum(int64_t n, Term term) {
  double acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t j = 0;
  for (; j + 8 <= n; j += 8)
    for (int k = 0; k < 8; ++k) acc[k] += term(j + k);
  double tail = 0;
  for (; j < n; ++j) tail += term(j);
  return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7])) + tail;
}

}  // namespace rlft::kernels
