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
// 28 bytes in float. The portable loop did not vectorise (the divergence check's early exit):
// Adam was ~10% of a PPO CartPole run. Reference: the formula above, element by element
// (tests/engine/test_optim.cpp compares the cloned loop with it bitwise).
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

}  // namespace rlft::kernels
