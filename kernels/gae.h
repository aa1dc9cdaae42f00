// gae — generalized advantage estimation (Schulman et al. 2016, arXiv 1506.02438), "GAE from
// the back": one backward recursion per environment or per sequence. No gradient.
//
// Shared by every backend: kernels/cpu/gae.cpp (reference, `_cpu` functions) and, later,
// kernels/cuda/gae.cu (`_cuda` functions with the same arguments). The recursion
//   A_t = δ_t + c_t·A_{t+1}
// is linear, so the CUDA version will compute it as a parallel scan (from the back) over the
// affine maps f_t(a) = δ_t + c_t·a, whose composition f_s∘f_t = (δ_s + c_s·δ_t, c_s·c_t) is
// associative: O(log T) depth instead of T sequential steps.
//
// Shapes: T time steps, N environments (classic control, time-major); B sequences, T positions
// (LLM rows, row-major). Every array is contiguous; flags are 0/1 in the same Real type as the
// data (the engine keeps them as float tensors).
#pragma once

#include <cstdint>

namespace rlft::kernels {

// (a) Classic control, time-major [T, N] (element (t, n) at t·N + n), ALGORITHMS.md §2:
//   δ_t = r_t + γ·next_values_t·(1 − terminated_t) − values_t
//   A_t = δ_t + γλ·(1 − end_t)·A_{t+1},   A_T = 0,   returns_t = A_t + values_t
// where end_t = max(episode_end_t, terminated_t): the recursion never crosses the end of an
// episode, and a termination always ends one.
//   rewards      [T, N] r_t, the reward of the transition taken at step t
//   values       [T, N] V(s_t)
//   next_values  [T, N] V(s_{t+1}): values[t+1] inside an episode; at a truncated step V of
//                the final observation (bootstrap); at a terminated step anything (unused);
//                at t = T−1 the caller's bootstrap value V(s_T)
//   terminated   [T, N] 1 where step t ended the episode in a terminal state (no bootstrap);
//                null = never
//   episode_end  [T, N] 1 where step t ended the episode (terminated OR truncated by a time
//                limit); null = only terminations end episodes
//   gamma, lambda  discount γ and GAE λ, both in [0, 1]
//   advantages   [T, N] out
//   returns      [T, N] out, may be null
// CleanRL's ppo.py corresponds to next_values_t = values_{t+1} (next_value at T−1),
// terminated_t = episode_end_t = dones_{t+1} (its `nextnonterminal`), which bootstraps nothing
// at a time limit; pass episode_end and the final-observation value to bootstrap it.
template <typename Real>
void gae_cpu(const Real* rewards, const Real* values, const Real* next_values,
             const Real* terminated, const Real* episode_end, int64_t T, int64_t N, Real gamma,
             Real lambda, Real* advantages, Real* returns);

// (b) LLM rows [B, T] (element (i, t) at i·T + t) with an action mask, ALGORITHMS.md §4, as
// DeepSpeed-Chat's get_advantages_and_returns (call site defaults γ = 1, λ = 0.95). Only the
// masked positions (response tokens) take part: for the masked positions t_1 < … < t_K of a
// row, next value of t_k is values[t_{k+1}] and 0 after the last one, and
//   δ_k = r_{t_k} + γ·next_k − values[t_k],   A_k = δ_k + γλ·A_{k+1},   A_{K+1} = 0.
// Unmasked positions (prompt, padding) get advantage 0 and return 0; their rewards and values
// are not used. For a mask that is one contiguous run this equals DeepSpeed-Chat's loop over
// [start, T) with values and rewards zeroed after the response.
//   rewards      [B, T] per-token rewards (KL penalty, plus the clipped RM score at the last
//                response token)
//   values       [B, T] V_old of the critic at each position
//   action_mask  [B, T] 1 at response tokens, 0 elsewhere; null = every position
//   gamma, lambda  in [0, 1]
//   advantages   [B, T] out
//   returns      [B, T] out (A + V at masked positions), may be null
template <typename Real>
void gae_masked_rows_cpu(const Real* rewards, const Real* values, const Real* action_mask,
                         int64_t B, int64_t T, Real gamma, Real lambda, Real* advantages,
                         Real* returns);

// ==== CUDA backend (kernels/cuda/gae.cu) ====================================================
// Declared in every build, defined only when the CUDA backend is built (RLFT_HAVE_CUDA).
// The same arguments and results as the `_cpu` functions, except that every array is a
// DEVICE pointer, plus
//   stream   a cudaStream_t (CUstream_st*); null = the legacy default stream
//   version  0 = the dispatcher's choice (see kernels/cuda/gae.cu); 1 = one thread per
//            environment or row walking back in time; 2 = parallel scan over T of the affine
//            maps a ↦ δ_t + c_t·a, in tiles of 8 sequences × 256 steps per block.
// Asynchronous; the carry is kept in double for both Real types, as on the CPU.
}  // namespace rlft::kernels

struct CUstream_st;  // cudaStream_t is CUstream_st*; declared here so no CUDA header is needed

namespace rlft::kernels {

template <typename Real>
void gae_cuda(const Real* rewards, const Real* values, const Real* next_values,
              const Real* terminated, const Real* episode_end, int64_t T, int64_t N, Real gamma,
              Real lambda, Real* advantages, Real* returns, CUstream_st* stream = nullptr,
              int version = 0);

template <typename Real>
void gae_masked_rows_cuda(const Real* rewards, const Real* values, const Real* action_mask,
                          int64_t B, int64_t T, Real gamma, Real lambda, Real* advantages,
                          Real* returns, CUstream_st* stream = nullptr, int version = 0);
// ==== end of the CUDA backend ===============================================================
}  // namespace rlft::kernels
