// Cross-entropy rows in float, cloned for AVX-512/AVX2 (declarations and formulas in
// softmax.h). They were 1.8% of a GPT micro training step in portable SSE2. Compiled with
// -ffp-contract=off (CMakeLists.txt): every clone rounds like the portable code, so the
// results are those of the templates in softmax.h.
#include "kernels/cpu/softmax.h"

#include "kernels/cpu/target_clones.h"

namespace rlft::kernels {

RLFT_CLONES void cross_entropy_rows_f32_range(int64_t i0, int64_t i1, int64_t V, const float* x,
                                              const int64_t* t, int64_t ignore_index, float* loss,
                                              double* lse) {
  cross_entropy_row_range(i0, i1, V, x, t, ignore_index, loss, lse);
}

RLFT_CLONES void cross_entropy_rows_backward_f32_range(int64_t i0, int64_t i1, int64_t V,
                                                       const float* x, const int64_t* t,
                                                       int64_t ignore_index, const double* lse,
                                                       const float* g, float* dx) {
  cross_entropy_backward_row_range(i0, i1, V, x, t, ignore_index, lse, g, dx);
}

}  // namespace rlft::kernels
