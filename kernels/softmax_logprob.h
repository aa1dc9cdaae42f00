// softmax_logprob — the log-probability of the sampled token and the entropy of each row of
// logits, fused into one pass over the row (forward) and one more pass (backward).
//
// Shared by every backend: kernels/cpu/softmax_logprob.cpp (reference, this declaration's
// `_cpu` functions) and, later, kernels/cuda/softmax_logprob.cu (`_cuda` functions with the
// same arguments). The CPU version is the ground truth the CUDA one is tested against.
//
// Shapes (vocabulary of the project): N rows (B·T flattened token positions), V vocabulary.
//
// With temperature τ > 0 and z = logits / τ, for each row n with target t = targets[n]:
//   lse[n]     = log Σ_v exp(z_v)
//   logp[n]    = z_t − lse[n]                         (log softmax(z)[t])
//   entropy[n] = −Σ_v p_v log p_v = lse[n] − Σ_v p_v z_v,  p = softmax(z)
// Backward, given upstream g_logp[n] and g_entropy[n]:
//   dlogits[n, v] = (1/τ) · ( g_logp·(1[v = t] − p_v) − g_entropy·p_v·(log p_v + H) )
//
// Ignored rows: a row whose target equals `ignore_index` does not take part at all — it is not
// read, its logp, entropy and lse are 0, and its dlogits row is 0 (padding and prompt
// positions cost nothing). Any other target must lie in [0, V) or the call throws rlft::Error.
// −inf logits are allowed (masked-out vocabulary entries: probability 0, no entropy, zero
// gradient); a non-ignored row with no finite logit or with a NaN makes the forward throw
// rlft::Error (checked on the sums, at no extra cost).
#pragma once

#include <cstdint>

#include "kernels/cuda_launch.h"

namespace rlft::kernels {

// Forward, one pass over each non-ignored row.
//   logits      [N, V], row n starts at logits + n·ld_logits (ld_logits ≥ V)
//   targets     [N] token ids, int64; ignore_index marks rows that are skipped
//   temperature τ > 0; the logits are divided by it (1 = plain softmax)
//   logp        [N] out, required
//   entropy     [N] out, may be null (not written)
//   lse         [N] out, may be null; log-sum-exp of z = logits/τ, saved for the backward
//   version     0 = picked by dtype and shape: 2 for float rows of V >= 8, else 1 (below 8
//               logits version 2's per-row setup costs more than its vector loop saves: 128
//               rows of V = 2, PPO's CartPole minibatch, 5.9 µs against 2.3 µs forward,
//               BENCHMARKS.md "Short rows"); 1 = the scalar reference, every
//               step in double; 2 = float only: the row's exponentials in float (vectorised,
//               < 1 ulp), its sums in float over blocks of 256 logits and the blocks in double.
//               They agree to float rounding (the tests hold both to the double reference at
//               2e-6); kernels/cpu/softmax_logprob.cpp has the manual.
// Rows run in parallel (OpenMP) when N·V is large enough.
template <typename Real>
void softmax_logprob_forward_cpu(const Real* logits, int64_t N, int64_t V, int64_t ld_logits,
                                 const int64_t* targets, int64_t ignore_index, Real temperature,
                                 Real* logp, Real* entropy, Real* lse, int version = 0);

// Backward, one pass over each non-ignored row using the saved lse (and entropy).
//   logits, targets, ignore_index, temperature: exactly as given to the forward
//   lse         [N] from the forward, required
//   entropy     [N] from the forward; required when g_entropy is given, else may be null
//   g_logp      [N] upstream gradient of logp, may be null (= zero)
//   g_entropy   [N] upstream gradient of entropy, may be null (= zero)
//   dlogits     [N, V] out, row n at dlogits + n·ld_dlogits (ld_dlogits ≥ V); every element
//               of every row is written (ignored rows get 0). With accumulate = true the
//               gradient is added (+=) to what dlogits holds instead.
//   version     as the forward's (2: float arithmetic, vectorised; 1: double, scalar)
template <typename Real>
void softmax_logprob_backward_cpu(const Real* logits, int64_t N, int64_t V, int64_t ld_logits,
                                  const int64_t* targets, int64_t ignore_index, Real temperature,
                                  const Real* lse, const Real* entropy, const Real* g_logp,
                                  const Real* g_entropy, Real* dlogits, int64_t ld_dlogits,
                                  bool accumulate = false, int version = 0);

// ==== CUDA backend (kernels/cuda/softmax_logprob.cu) ========================================
// Declared in every build, defined only when the CUDA backend is built (RLFT_HAVE_CUDA).
// The same arguments and results as the `_cpu` functions, except that every pointer (logits,
// targets, outputs, saved tensors, gradients) is a DEVICE pointer, plus
//   stream   a cudaStream_t (CUstream_st*); null = the legacy default stream
//   version  0 = the dispatcher's choice (version 2); 1 = naive three-pass / scalar, kept for
//            comparison; 2 = one pass, 16-byte vector loads, one block per row
//   check    true: wait for the kernel and throw rlft::Error, as the CPU version does, for a
//            target outside [0, V) that is not ignore_index or a row with no finite logit
//            (costs one stream synchronisation and a 16-byte copy); false: fully asynchronous,
//            such rows get NaN outputs (NaN gradient rows) and nothing throws.
//   launch   threads per row (block) and, for version 2, vector loads in flight per thread
//            (unroll); 0 = the dispatcher's rule (kernels/cuda/softmax_logprob.cu). For
//            benchmark sweeps and tests; the results differ only in the order of the sums.
// Accumulation: per thread in Real (float or double), combined across threads in a fixed
// order (deterministic for a given V), so float results differ from the CPU's double
// accumulation by up to ~1e-5 in lse, logp and the entropy (the tests allow 5e-5). A +inf logit is
// reported as a row with no finite logit on the GPU (the CPU returns inf/NaN there).
}  // namespace rlft::kernels

struct CUstream_st;  // cudaStream_t is CUstream_st*; declared here so no CUDA header is needed

namespace rlft::kernels {

template <typename Real>
void softmax_logprob_forward_cuda(const Real* logits, int64_t N, int64_t V, int64_t ld_logits,
                                  const int64_t* targets, int64_t ignore_index, Real temperature,
                                  Real* logp, Real* entropy, Real* lse,
                                  CUstream_st* stream = nullptr, int version = 0, bool check = true,
                                  CudaLaunch launch = {});

template <typename Real>
void softmax_logprob_backward_cuda(const Real* logits, int64_t N, int64_t V, int64_t ld_logits,
                                   const int64_t* targets, int64_t ignore_index, Real temperature,
                                   const Real* lse, const Real* entropy, const Real* g_logp,
                                   const Real* g_entropy, Real* dlogits, int64_t ld_dlogits,
                                   bool accumulate = false, CUstream_st* stream = nullptr,
                                   int version = 0, bool check = true, CudaLaunch launch = {});

// The unfused baseline an eager framework runs, for bench/bench_cuda_kernels.cpp and the
// tests (device pointers, no input checks on the device): log_softmax written densely to
// `log_softmax` [N, V] (a max pass, a sum pass, a write pass), then a gather kernel for logp
// and an entropy kernel reading the [N, V] tensor again. Every row is computed; ignored rows
// get logp = entropy = lse = 0.
template <typename Real>
void softmax_logprob_forward_unfused_cuda(const Real* logits, int64_t N, int64_t V,
                                          int64_t ld_logits, const int64_t* targets,
                                          int64_t ignore_index, Real temperature, Real* logp,
                                          Real* entropy, Real* lse, Real* log_softmax,
                                          CUstream_st* stream = nullptr);
// Its backward from the saved log_softmax [N, V]: the gather's and the entropy's backward write
// g_ls into dlogits [N, V] (dense), a row-sum kernel, then log_softmax's backward in place:
// dlogits = (g_ls − p·Σ g_ls)/τ.
template <typename Real>
void softmax_logprob_backward_unfused_cuda(const Real* log_softmax, int64_t N, int64_t V,
                                           const int64_t* targets, int64_t ignore_index,
                                           Real temperature, const Real* entropy,
                                           const Real* g_logp, const Real* g_entropy, Real* dlogits,
                                           CUstream_st* stream = nullptr);
// ==== end of the CUDA backend ===============================================================
}  // namespace rlft::kernels
