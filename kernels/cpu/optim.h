// Adam and AdamW over one contiguous parameter, in place: the CPU side of kernels/cuda/optim.cu
// (engine/optim.cpp calls it for every CPU parameter).
//
//   Adam (L2):       g ← g + λ·w                 AdamW (decoupled):  w ← w·(1 − lr·λ)
//   m ← β1·m + (1 − β1)·g
//   v ← β2·v + (1 − β2)·g·g
//   w ← w − (lr/bc1)·m / (√v/√bc2 + ε)           bc_i = 1 − β_i^step
//
// Every scalar arrives already rounded to the parameter's type, as the loop this replaced used
// them, and each element's operations run in that order: the float loop is cloned for
// AVX-512/AVX2 (target_clones.h, no FMA contraction), so every clone gives bitwise the
// portable loop's weights. Memory traffic per element: w, g, m, v read and w, m, v written,
// 28 bytes in float. The loop this replaced, in engine/optim.cpp, was left scalar by GCC
// (-fopt-info-vec), and Adam was ~10% of a PPO CartPole run. Reference: the formula above,
// element by element (tests/engine/test_optim.cpp compares the cloned loop with it bitwise).
// Below it, clip_grad_norm's two loops.
#pragma once

#include <cstdint>

namespace rlft::kernels {

template <typename T>
struct AdamScalars {
  T beta1, beta2, one_minus_beta1, one_minus_beta2;
  T decay;  // 1 − lr·λ (decoupled)
  T l2;     // λ (L2)
  T step_size, sqrt_bc2, eps;
  bool decoupled;
};

// Updates w, m, v over n elements; returns false when an updated weight is not finite.
bool adam_update_cpu(int64_t n, float* w, const float* g, float* m, float* v,
                     const AdamScalars<float>& s);
bool adam_update_cpu(int64_t n, double* w, const double* g, double* m, double* v,
                     const AdamScalars<double>& s);

// clip_grad_norm's two loops (engine/optim.cpp), cloned the same way.
// Σ g² in double into eight accumulators acc[0..7] (overwritten): element k into acc[k mod 8]
// for k below n rounded down to 8, the rest into acc[0]. The caller adds them in order; a
// fixed order, so every clone gives the same bits. Reads 4 bytes per float element.
void sum_of_squares_cpu(int64_t n, const float* g, double acc[8]);
void sum_of_squares_cpu(int64_t n, const double* g, double acc[8]);
// g ← T(double(g)·coef), in place. 8 bytes per float element.
void scale_cpu(int64_t n, float* g, double coef);
void scale_cpu(int64_t n, double* g, double coef);

}  // namespace rlft::kernels
