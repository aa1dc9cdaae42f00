// ratio_clip — the PPO / DAPO / DCPO / GSPO clipped surrogate loss with its statistics, in
// one pass over [B, T], and its gradient with respect to logp. See ALGORITHMS.md §0, §7–10.
//
// Shared by every backend: kernels/cpu/ratio_clip.cpp (reference, `_cpu` functions) and,
// later, kernels/cuda/ratio_clip.cu (`_cuda` functions taking the same arguments).
//
// Shapes: B sequences (rows), T positions per sequence; every [B, T] array is contiguous and
// row-major (element (i, t) at i·T + t).
//
// ---- What is computed ----------------------------------------------------------------------
// Token level (PPO, DAPO, GRPO, DCPO), with x = logp − old_logp:
//   r_{i,t} = exp(clamp(x, −20, 20))
//   l_{i,t} = −min(r·A, clip(r, lo, hi)·A)       lo = 1 − eps_low, hi = 1 + eps_high, or the
//                                                 per-token bounds lower/upper (DCPO)
//   dual clip c > 0, only where A < 0:  l = min(l, −c·A)
// Sequence level (GSPO, arXiv 2507.18071):
//   ρ_i = Σ_t m·x / Σ_t m,  s_i = exp(clamp(ρ_i, −20, 20)),
//   l_i = −min(s_i·A_i, clip(s_i, lo, hi)·A_i) (and the dual clip), and every masked token of
//   row i carries l_{i,t} = l_i, so seq_mean_token_mean gives GSPO's (1/B)·Σ_i l_i exactly.
// Sequence-token level (GSPO-token, ALGORITHMS.md §9):
//   log s_{i,t} = stopgrad(ρ_i) + logp_t − stopgrad(logp_t): the value is s_i, the gradient of
//   s_{i,t} reaches only logp_t (d s_{i,t}/d logp_t = s_i); A and the bounds may be per token.
//   With per-sequence advantages and scalar bounds it has GSPO's value and gradient.
//
// Aggregation (m = mask weight, |o_i| = Σ_t m_{i,t}, Loss = Σ_i coef_i · Σ_t m·l):
//   token_mean           coef = 1/D,            D = normalizer, or Σ_{i,t} m when 0
//   seq_mean_token_mean  coef = 1/(S·|o_i|),    S = normalizer, or B when 0
//   seq_mean_token_sum   coef = 1/S,            S = normalizer, or B when 0
//   constant_norm        coef = 1/(B·L),        L = normalizer (L_max), or T when 0
//   only_token_mean      coef = 1/|o_i|,        normalizer must be 0
// With gradient accumulation pass the whole optimizer step's token count (token_mean) or
// sequence count (seq_mean_*) as normalizer. A row with |o_i| = 0 contributes 0 (it still
// counts in B); a zero denominator gives loss 0 and gradient 0.
//
// ---- Statistics (all m-weighted means over masked tokens, 0 when Σ m = 0) -----------------
//   clip_frac_high: the clipped branch is strictly smaller, so it is taken and its gradient is
//                   zero, because the ratio is above the upper bound: A > 0 and r > hi.
//   clip_frac_low : the same below the lower bound: A < 0 and r < lo.
//   dual_clip_frac: A < 0 and −c·A < l (the dual clip strictly binds; it takes precedence, so
//                   the three fractions are disjoint).
//   In the sequence levels r is s_i and each masked token of a clipped row counts (GSPO's
//   "fraction of clipped tokens").
//   approx_kl_k1 = mean(old_logp − logp), approx_kl_k3 = mean((r − 1) − log r) with the token
//   ratio r = exp(clamp(x, ±20)) at every level.
//
// ---- Gradient and ties ---------------------------------------------------------------------
// dLoss/dlogp as autograd would give through exp, clamp and min: zero where the clipped branch
// strictly binds (r outside the bounds on the side that A makes binding), zero where the dual
// clip strictly binds, zero where the log-ratio (or ρ_i) lies strictly outside [−20, 20],
// zero at masked tokens. Ties: at r == lo or r == hi, or −c·A == l, the unclipped branch's
// gradient is used (clip passes its gradient at the boundary like torch.clamp, and both min
// branches have equal values and equal gradients there, so any split, e.g. torch's halving,
// gives the same result).
//
// Masked tokens (m = 0) are skipped: NaN or inf in their logp/old_logp/advantages is ignored.
#pragma once

#include <cstdint>

#include "kernels/cuda_launch.h"

namespace rlft::kernels {

// How the per-token losses become one number (ALGORITHMS.md §0; coefficients above).
enum class Aggregation {
  token_mean,           // Σ m·l / Σ m over the optimizer step (DAPO, DeepSpeed-Chat PPO)
  seq_mean_token_mean,  // (1/B) Σ_i (1/|o_i|) Σ_t m·l (GRPO paper, GSPO)
  seq_mean_token_sum,   // (1/B) Σ_i Σ_t m·l
  constant_norm,        // Σ m·l / (B·L_max) (Dr. GRPO)
  only_token_mean,      // Σ_i (1/|o_i|) Σ_t m·l, no 1/B (DCPO)
};

enum class RatioLevel {
  token,           // r_{i,t} per token (PPO, DAPO, GRPO, DCPO)
  sequence,        // s_i per sequence (GSPO); needs per-sequence advantages and scalar bounds
  sequence_token,  // s_{i,t} with GSPO-token's stop-gradients
};

template <typename Real>
struct RatioClipArgs {
  int64_t B = 0;                     // sequences
  int64_t T = 0;                     // positions per sequence
  const Real* logp = nullptr;        // [B, T] log π_θ of the sampled token (differentiated)
  const Real* old_logp = nullptr;    // [B, T] log π_old of the same token (no gradient)
  const Real* advantages = nullptr;  // [B, T], or [B] when advantages_per_sequence
  bool advantages_per_sequence = false;
  const Real* mask = nullptr;   // [B, T] weights m ≥ 0 (the 0/1 response mask); null = 1
  const Real* lower = nullptr;  // [B, T] per-token lower ratio bound (DCPO); null = 1−eps_low
  const Real* upper = nullptr;  // [B, T] per-token upper ratio bound; null = 1+eps_high
  double eps_low = 0.2;         // lower clip range (scalar bound 1 − eps_low)
  double eps_high = 0.2;        // upper clip range (scalar bound 1 + eps_high)
  double dual_clip = 0.0;       // c of the dual clip (c > 1, e.g. 3); 0 = off
  RatioLevel level = RatioLevel::token;
  Aggregation aggregation = Aggregation::token_mean;
  double normalizer = 0.0;  // 0 = from this batch; see the aggregation table above
};

struct RatioClipStats {
  double loss = 0.0;           // the aggregated loss
  double clip_frac_low = 0.0;  // see "Statistics" above
  double clip_frac_high = 0.0;
  double dual_clip_frac = 0.0;
  double approx_kl_k1 = 0.0;  // mean(old_logp − logp)
  double approx_kl_k3 = 0.0;  // mean((r − 1) − log r)
  double tokens = 0.0;        // Σ m over the batch
};

// Forward: loss and statistics in one pass over the inputs (two sweeps of a cached row in the
// sequence levels). Accumulates in double; rows in parallel above a size threshold, reduced in
// row order so the result does not depend on the thread count. Throws rlft::Error on
// inconsistent arguments (null inputs, eps < 0, 0 < c ≤ 1, per-token advantages or bounds
// with RatioLevel::sequence, a normalizer with only_token_mean, normalizer < 0).
//   version  0 = picked by shape: 2, except 1 for rows of T < 16 (there version 2's exp runs
//            scalar, a latency-bound polynomial, and its per-row setup dominates: PPO's flat
//            [128] batch, 128 rows of T = 1, 10.3 µs against 2.5 µs forward, BENCHMARKS.md
//            "Short rows"); 1 = the plainest loop: libm's exp per token, a branch per
//            choice; 2 = no branches, vectorised, with an exp within an ulp of libm's (the
//            backward of the sequence levels, which takes no exp per token, is version 1's).
//            Both compute in double and agree to rounding; kernels/cpu/ratio_clip.cpp has the
//            manual.
template <typename Real>
RatioClipStats ratio_clip_forward_cpu(const RatioClipArgs<Real>& args, int version = 0);

// Backward: g_logp[B, T] = g_loss · dLoss/dlogp (see "Gradient and ties"); written in full
// (0 at masked tokens), or added (+=) when accumulate is true.
// `version` as the forward's.
template <typename Real>
void ratio_clip_backward_cpu(const RatioClipArgs<Real>& args, double g_loss, Real* g_logp,
                             bool accumulate = false, int version = 0);

// The argument checks both backends run first (the conditions listed under the forward
// above); `op` names the caller in the error.
template <typename Real>
void ratio_clip_check_args(const char* op, const RatioClipArgs<Real>& args);

const char* aggregation_name(Aggregation a);
const char* ratio_level_name(RatioLevel l);

// ==== CUDA backend (kernels/cuda/ratio_clip.cu) =============================================
// Declared in every build, defined only when the CUDA backend is built (RLFT_HAVE_CUDA).
// The same arguments and results as the `_cpu` functions, except that every array in `args`
// (logp, old_logp, advantages, mask, lower, upper) and g_logp are DEVICE pointers, plus
//   stream   a cudaStream_t (CUstream_st*); null = the legacy default stream.
// The forward reduces the statistics on the device (a block per row, then one block over the
// row sums in row order: no float atomics, so the result is the same on every run) and copies
// the RatioClipStats back, so it synchronises the stream. The backward is asynchronous.
// Per-token arithmetic is in double as on the CPU; only the order of the sums differs.
//   launch   threads per row (or chunk), token groups in flight per thread (unroll 0, 1, 2 or
//            4), whether 16-byte vector loads may be used, the arithmetic (version 1: double
//            per token, the default; 2: float per token with the clip decisions on the
//            log-ratio, float data with scalar bounds only, float's relative error in the loss,
//            k3 and the gradients; 3: the token-level forward all in float up to per-thread
//            sums, as a float32 framework computes it, float's relative error in the loss, k1
//            and k3, the clip decisions on the float log-ratio; its backward is version 2's),
//            the token-level forward's layout (chunked = 1: chunks of a block each; 2:
//            flat, token_mean with per-token advantages only; 3: flat's chunks through bulk
//            copies into shared memory, float data with scalar bounds on sm_90+ only, else
//            flat), whether the finishing kernel
//            is programmatically dependent (serial), whether the first kernel is
//            (dependent), and whether the first kernel's last block does the finish instead
//            (last_block) (kernels/cuda_launch.h; kernels/cuda/ratio_clip.cu has the details);
//            0 = the dispatcher's choice. Apart from versions 2 and 3, only the order of the
//            sums changes.
// The environment variable RLFT_RATIO_CLIP_LAUNCH="field=value,..." (kernels/cuda_launch.h,
// parse_launch; e.g. "version=3,chunked=3") fills the launch fields a caller leaves 0 in every
// CUDA forward and backward, the engine op's included: a candidate default tried across the
// whole test suite, a benchmark or a training run without rebuilding. Read once per process; a
// malformed value makes each call throw an error that names the variable.
inline constexpr const char* kRatioClipLaunchEnv = "RLFT_RATIO_CLIP_LAUNCH";
}  // namespace rlft::kernels

struct CUstream_st;  // cudaStream_t is CUstream_st*; declared here so no CUDA header is needed

namespace rlft::kernels {

template <typename Real>
RatioClipStats ratio_clip_forward_cuda(const RatioClipArgs<Real>& args,
                                       CUstream_st* stream = nullptr, CudaLaunch launch = {});

// The forward without the copy back: the statistics stay on the device in `stats`, 7 doubles
// in the order loss, clip_frac_low, clip_frac_high, dual_clip_frac, approx_kl_k1,
// approx_kl_k3, tokens (all 0 for an empty batch). Asynchronous: nothing waits for the GPU.
template <typename Real>
void ratio_clip_forward_cuda_async(const RatioClipArgs<Real>& args, double* stats,
                                   CUstream_st* stream = nullptr, CudaLaunch launch = {});

// The backward. The upstream gradient is g_loss, times the device scalar *g_loss_device when
// that is given (the engine passes the loss's gradient where it lies, so nothing waits for
// the GPU). Asynchronous.
template <typename Real>
void ratio_clip_backward_cuda(const RatioClipArgs<Real>& args, double g_loss, Real* g_logp,
                              bool accumulate = false, CUstream_st* stream = nullptr,
                              CudaLaunch launch = {}, const Real* g_loss_device = nullptr);

// The unfused baseline for bench/bench_cuda_kernels.cpp and the tests: PPO's loss as an eager
// framework computes it, one kernel per op, each writing a [B, T] temporary into `workspace`
// (4·B·T elements): ratio = exp(clamp(logp − old_logp)), surr1 = ratio·A,
// surr2 = clamp(ratio, lo, hi)·A, l = −min(surr1, surr2)·m, then a two-stage sum of l and of m
// and the division. Supports only RatioLevel::token, Aggregation::token_mean, per-token
// advantages, scalar bounds and no dual clip (throws rlft::Error otherwise). Synchronises.
template <typename Real>
double ratio_clip_loss_unfused_cuda(const RatioClipArgs<Real>& args, Real* workspace,
                                    CUstream_st* stream = nullptr);
// The read ceiling for the benchmarks (CUDA builds only; no CPU stub): the token-level
// forward's loads of logp, old_logp, advantages and mask (16-byte vectors) without its
// arithmetic, a float sum per block into `partials`; returns the number of blocks (partial
// sums) written, which must not exceed `capacity`. From `launch`: unroll (groups of 4 tokens
// in flight per thread: 0 = 1, 1, 2 or 4), block, dependent, and the layout: chunked = 0 a
// block per row (the default forward's, block_for(T) threads), 1 chunks of 256·U groups
// (B·⌈T/(1024·U)⌉ blocks), 2 flat (B·T tokens as one row, one chunk per resident block), 3
// bulk copies (sm_90+: the B·T tokens in chunks of block·4·U, a block per chunk, each chunk's
// four arrays copied into shared memory by the tensor memory accelerator and summed from
// there). Needs a mask, per-token advantages, T divisible by 4 and 16-byte aligned arrays.
int64_t ratio_clip_read_ceiling_cuda(const RatioClipArgs<float>& args, float* partials,
                                     int64_t capacity, CUstream_st* stream = nullptr,
                                     CudaLaunch launch = {});
// The timeline (measurement only: bench_cuda_kernels' timeline/ lines; CUDA builds only): while
// `buffer` (device memory of kRatioClipTimelineKernels × kRatioClipTimelineBlocks × 4 uint64)
// is set, every forward and read-ceiling launch on any stream (but the bulk layout's, whose
// kernels have no stamps) writes into it, for each of its first kernel's blocks (kernel 0;
// blocks past kRatioClipTimelineBlocks are not recorded) and its finishing kernel's block
// (kernel 1), the device's %globaltimer in ns on entry, on release (after its wait for the
// kernel it depends on) and on exit, and the multiprocessor it ran on:
// buffer[(kernel·kRatioClipTimelineBlocks + block)·4 + {0, 1, 2, 3}]; kernel 1's block-1 slots
// 0 and 1 hold the finish's phases (its thread 0's partial sums added; the block's totals
// ready), written by the finishing kernel or the last-block finish. A slot no block wrote
// keeps what the caller put there. Null (the default) turns it off. Not for concurrent use:
// one process-wide buffer per device.
constexpr int kRatioClipTimelineKernels = 2;
constexpr int kRatioClipTimelineBlocks = 4096;
void ratio_clip_timeline_cuda(uint64_t* buffer);
// ==== end of the CUDA backend ===============================================================
}  // namespace rlft::kernels
