// A random GAE problem for the kernel tests (tests/kernels/test_rl_kernels.cpp checks the CPU
// kernel against a reference loop on it, tests/kernels/test_cuda_kernels.cpp the CUDA kernel
// against the CPU one): time-major [T, N] arrays of rewards, values, the next observations'
// values and the two flag arrays, with the discounts.
#pragma once

#include <cstddef>
#include <cstdint>
#include <random>
#include <vector>

namespace rlft::test {

struct GaeProblem {
  int64_t T = 0, N = 0;
  std::vector<double> rewards, values, next_values, terminated, episode_end;
  double gamma = 0.99, lambda = 0.95;
};

// N(0, 1) rewards and values; terminations (p = 0.1) and truncations (p = 0.05) at random
// steps; next_values = values[t+1] inside an episode, an independent final-observation value
// at a truncation and at T−1, and `at_termination` at a termination (a NaN or a huge value:
// the kernels must never read it into their arithmetic).
inline GaeProblem random_gae(std::mt19937_64& rng, int64_t T, int64_t N, double at_termination) {
  GaeProblem P;
  P.T = T;
  P.N = N;
  std::normal_distribution<double> normal(0.0, 1.0);
  std::uniform_real_distribution<double> u01(0.0, 1.0);
  const auto TN = static_cast<size_t>(T * N);
  P.rewards.resize(TN);
  P.values.resize(TN);
  P.next_values.resize(TN);
  P.terminated.resize(TN);
  P.episode_end.resize(TN);
  for (size_t k = 0; k < TN; ++k) {
    P.rewards[k] = normal(rng);
    P.values[k] = normal(rng);
    const double u = u01(rng);
    P.terminated[k] = u < 0.1;
    P.episode_end[k] = u < 0.15;
  }
  for (int64_t t = 0; t < T; ++t)
    for (int64_t n = 0; n < N; ++n) {
      const auto k = static_cast<size_t>(t * N + n);
      if (P.terminated[k] != 0)
        P.next_values[k] = at_termination;
      else if (P.episode_end[k] != 0 || t == T - 1)
        P.next_values[k] = normal(rng);
      else
        P.next_values[k] = P.values[static_cast<size_t>((t + 1) * N + n)];
    }
  return P;
}

}  // namespace rlft::test
