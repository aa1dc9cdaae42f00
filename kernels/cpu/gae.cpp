// gae, CPU reference — the manual.
//
// Computes (full statement in kernels/gae.h, ALGORITHMS.md §2 and §4):
//   classic, time-major [T, N]:
//     δ_t = r_t + γ·V(s_{t+1})·(1 − terminated_t) − V(s_t)
//     A_t = δ_t + γλ·(1 − end_t)·A_{t+1},  A_T = 0,  returns = A + V
//   LLM rows [B, T]: the same recursion over the masked (response) positions of each row only,
//     value after the last response token 0 (DeepSpeed-Chat get_advantages_and_returns).
// Flags (terminated, episode_end, action_mask) are read as booleans: nonzero = set. A
// terminated step's next value is not read into the arithmetic (so a NaN placeholder there is
// harmless), and the carried A_{t+1} is dropped, not multiplied by 0, at an episode end.
//
// Memory traffic per element (Real = 4 or 8 bytes):
//   classic: read rewards, values, next_values, terminated, episode_end; write advantages,
//            returns                                         = 7·sizeof(Real)
//   rows   : read rewards, values, action_mask; write advantages, returns = 5·sizeof(Real)
// Compute is a handful of flops per element; the loop is memory-bound when the arrays do
// not fit in cache. The time-major loop runs t from the back with n innermost, so every
// access is contiguous; the unfused "one environment at a time" loop strides by N.
//
// The recursion is sequential in t; CUDA will run it as a parallel scan over the affine maps
// a ↦ δ_t + c_t·a (c_t = γλ·(1 − end_t)), whose composition is associative (see gae.h).
//
// Tested against (tests/kernels/test_rl_kernels.cpp): an explicit per-environment backward
// loop in double (CleanRL's form), DeepSpeed-Chat's loop for contiguous response masks,
// hand-computed 3-step examples (termination and truncation), random terminations and
// truncations on 1×1, 7×3 and 129×5.
//
// Versions:
//   version 1 (this file): time-major loop over blocks of 64 environments with the carry in
//     double; OpenMP over environment blocks (classic) or rows (LLM) above a size threshold.
#include "kernels/gae.h"

#include <algorithm>
#include <cmath>

#include "engine/error.h"
#include "kernels/cpu/parallel.h"

namespace rlft::kernels {
namespace {

constexpr int64_t kParallelElements = int64_t(1) << 15;
constexpr int64_t kEnvBlock = 64;  // environments per task: a cache line of carries and more

void check_discount(const char* op, double gamma, double lambda) {
  RLFT_CHECK(gamma >= 0.0 && gamma <= 1.0 && lambda >= 0.0 && lambda <= 1.0, op,
             ": gamma and lambda must lie in [0, 1], got gamma=", gamma, " lambda=", lambda);
}

}  // namespace

template <typename Real>
void gae_cpu(const Real* rewards, const Real* values, const Real* next_values,
             const Real* terminated, const Real* episode_end, int64_t T, int64_t N, Real gamma,
             Real lambda, Real* advantages, Real* returns) {
  constexpr const char* op = "gae_cpu";
  RLFT_CHECK(T >= 0 && N >= 0, op, ": need T >= 0 and N >= 0, got T=", T, " N=", N);
  check_discount(op, double(gamma), double(lambda));
  if (T * N == 0) return;
  RLFT_CHECK(rewards && values && next_values && advantages, op,
             ": rewards, values, next_values and advantages are required");
  const double g = double(gamma), gl = double(gamma) * double(lambda);
  const int64_t blocks = (N + kEnvBlock - 1) / kEnvBlock;

  parallel_for(blocks, T * N >= kParallelElements && blocks > 1, [&](int64_t blk) {
    const int64_t n0 = blk * kEnvBlock, n1 = std::min(N, n0 + kEnvBlock);
    double carry[kEnvBlock] = {};  // A_{t+1} of each environment of the block
    for (int64_t t = T - 1; t >= 0; --t) {
      for (int64_t n = n0; n < n1; ++n) {
        const int64_t k = t * N + n;
        const bool term = terminated && terminated[k] != Real(0);
        const bool end = term || (episode_end && episode_end[k] != Real(0));
        const double v = double(values[k]);
        const double delta = double(rewards[k]) + (term ? 0.0 : g * double(next_values[k])) - v;
        // The carry is dropped, not multiplied by 0, where its coefficient is 0 (an episode's
        // end, or γλ = 0): a NaN later in the episode stays there, as in kernels/cuda/gae.cu.
        const double a = delta + (end || gl == 0.0 ? 0.0 : gl * carry[n - n0]);
        carry[n - n0] = a;
        advantages[k] = Real(a);
        if (returns) returns[k] = Real(a + v);
      }
    }
  });
}

template <typename Real>
void gae_masked_rows_cpu(const Real* rewards, const Real* values, const Real* action_mask,
                         int64_t B, int64_t T, Real gamma, Real lambda, Real* advantages,
                         Real* returns) {
  constexpr const char* op = "gae_masked_rows_cpu";
  RLFT_CHECK(B >= 0 && T >= 0, op, ": need B >= 0 and T >= 0, got B=", B, " T=", T);
  check_discount(op, double(gamma), double(lambda));
  if (B * T == 0) return;
  RLFT_CHECK(rewards && values && advantages, op, ": rewards, values and advantages are required");
  const double g = double(gamma), gl = double(gamma) * double(lambda);

  parallel_for(B, B * T >= kParallelElements, [&](int64_t i) {
    double carry = 0.0, next_value = 0.0;  // A and V of the next masked position (0 past the end)
    for (int64_t t = T - 1; t >= 0; --t) {
      const int64_t k = i * T + t;
      if (action_mask && action_mask[k] == Real(0)) {
        advantages[k] = Real(0);
        if (returns) returns[k] = Real(0);
        continue;
      }
      const double v = double(values[k]);
      carry = double(rewards[k]) + g * next_value - v + (gl == 0.0 ? 0.0 : gl * carry);
      next_value = v;
      advantages[k] = Real(carry);
      if (returns) returns[k] = Real(carry + v);
    }
  });
}

template void gae_cpu<float>(const float*, const float*, const float*, const float*, const float*,
                             int64_t, int64_t, float, float, float*, float*);
template void gae_cpu<double>(const double*, const double*, const double*, const double*,
                              const double*, int64_t, int64_t, double, double, double*, double*);
template void gae_masked_rows_cpu<float>(const float*, const float*, const float*, int64_t, int64_t,
                                         float, float, float*, float*);
template void gae_masked_rows_cpu<double>(const double*, const double*, const double*, int64_t,
                                          int64_t, double, double, double*, double*);

}  // namespace rlft::kernels
