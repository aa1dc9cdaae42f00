// The float column sums of reduce.h's sum_middle (a linear layer's bias gradient: 1-1.5% of a
// GPT training step in portable SSE2, two doubles per vector), cloned for AVX-512/AVX2. Compiled
// with -ffp-contract=off (CMakeLists.txt); each column adds its rows in order, so every clone
// gives the plain loop's result bitwise (tests/kernels/test_reduce.cpp).
#include "kernels/cpu/reduce.h"

namespace rlft::kernels {

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
__attribute__((target_clones("avx512f", "avx2", "default")))
#endif
void column_sums_f32(int64_t R, int64_t inner, int64_t i0, int64_t i1, const float* in, double* acc) {
  for (int64_t r = 0; r < R; ++r) {
    const float* row = in + r * inner;
    for (int64_t i = i0; i < i1; ++i) acc[i - i0] += row[i];
  }
}

}  // namespace rlft::kernels
