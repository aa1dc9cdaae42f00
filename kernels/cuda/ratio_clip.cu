// ratio_clip, CUDA — the manual.
//
// Computes (full statement in kernels/ratio_clip.h, ALGORITHMS.md §0):
//   r = exp(clamp(logp − old_logp, −20, 20)),  l = −min(r·A, clip(r, lo, hi)·A),
//   dual clip (A < 0): l = min(l, −c·A);  GSPO: r → s_i = exp(clamp(Σ m·x / Σ m));
//   Loss = Σ_i coef_i Σ_t m·l (coef_i from the aggregation mode and the normalizer);
//   statistics: clip fractions low / high / dual, approx-KL k1 and k3, Σ m;
//   backward: dLoss/dlogp = g·coef_i·m·(dl/dr)·r·1[|log-ratio| ≤ 20], dl/dr ∈ {−A, 0}, with
//   the CPU version's tie rules (the unclipped branch's gradient at r == lo, r == hi, and
//   −c·A == l). Per-token arithmetic is in double, the same expressions as the CPU's.
//
// Forward, two kernels, no float atomics (the result is the same on every run):
//   ratio_clip_rows_kernel   one block per row (or, token level, per chunk of a row): the
//                            7 partial sums (Σm, Σm·l, clipped low/high/dual, k1, k3) →
//                            sums[B·chunks] (sequence levels: a first sweep for ρ_i, a second
//                            from L1/L2 for the terms); ratio_clip_f32_kernel is version 3's
//   ratio_clip_finish_kernel one block, a warp per quantity: the 7 totals over the rows and
//                            Σ_i coef_i·(Σm·l)_i in a fixed order (token_mean: (Σ_i (Σm·l)_i)/D),
//                            then the statistics, a thread each: 7 doubles on the device
//                            (ratio_clip_forward_cuda_async), copied back to the host by
//                            ratio_clip_forward_cuda (which therefore synchronises). On sm_90+
//                            it is launched programmatically dependent on the row kernel
//                            (common.cuh: its launch overlaps the row kernel's last blocks;
//                            CudaLaunch::serial = 1 turns that off).
// Backward, one kernel (a block per row: the row count for seq_mean_token_mean and
// only_token_mean, ρ_i for the sequence levels, then the gradients), preceded for token_mean
// without a normalizer and with a mask by a count kernel and an in-order sum of the counts.
//
// Memory traffic per token (Real = 4 or 8 bytes):
//   forward : read logp, old_logp, advantages, mask      = 4·sizeof(Real)  (+2 with per-token
//             bounds, −1 with per-sequence advantages or no mask; the sequence levels' second
//             sweep hits L2); plus 56 bytes per row of row sums.
//   backward: the same reads + write g_logp               = 5·sizeof(Real)  (+1 read of the
//             mask for token_mean without a normalizer; +1 with accumulate).
// The unfused baseline (ratio_clip_loss_unfused_cuda: ratio, surr1, surr2, masked min, sums,
// each a kernel with a [B, T] temporary) moves 13·sizeof(Real) per token for the token_mean
// loss alone (no statistics). Compute, version 1: one double exp per token and the surrogate,
// statistics and conversions around it, roughly 50 FP64 instructions per token by a count of
// the source (an estimate, not a profile; H100: 16.7 T FP64 instructions/s, so 2M tokens ≈
// 6 µs of issue against 10 µs of DRAM time at 16 B/token). Measured on an H100 at 512×4096
// (BENCHMARKS.md, CUDA-graph timing; the target is 70% of peak): version 1 20.0 µs (50%),
// version 2 19.6 µs (51%), version 3 18.7 µs (53%); a kernel that only reads the same arrays
// the same way (ratio_clip_read_ceiling_cuda) 14.7 µs (68%).
//
// Tested against (tests/kernels/test_cuda_kernels.cpp): ratio_clip_forward_cpu and
// ratio_clip_backward_cpu (themselves tested against the unfused double-precision reference,
// dual numbers and finite differences): every level × aggregation × per-sequence/per-token
// advantages × scalar/per-token bounds × dual clip × mask × normalizer, ratios inside and
// outside [lo, hi] and beyond the ±20 clamp with both signs of A, all-masked and one-token
// rows, NaN at masked tokens, B×T from 1×1 to 3×4099 and 64×1024, accumulate, and run-to-run
// bitwise reproducibility.
//
// Launch shape (kernels/cuda_launch.h, swept on an H100 in BENCHMARKS.md): a block per row,
// 16 tokens per thread (64…512 threads; T = 4096: 256), tokens in groups of one 16-byte vector
// per array when every array is aligned and the width divides T (else scalar tokens), one
// group (vector) or two tokens (scalar) loaded ahead per thread, at most 64 registers
// (__launch_bounds__(512, 2); more groups in flight spill), the row's sums combined by one
// thread, the rows' totals by one block in row order (deterministic: no atomics).
//
// Versions (CudaLaunch::version; 0 = version 1):
//   version 1: every token's arithmetic in double, the CPU's expressions (ratio_clip_math.h),
//     so the clip decisions match the CPU's except where CUDA's and glibc's exp differ by an
//     ulp across a bound. The default.
//   version 2 (float data with scalar bounds; otherwise version 1 runs): the clip decisions
//     on the log-ratio xc (exact in double from two floats) against log(lo), log(hi), log(c)
//     computed once on the host in double (surrogate_from_log_ratio); the values e^xc and k3
//     in float (expf, k3_f32). The decisions are the CPU's except within an ulp of a bound;
//     the loss, k3 and the gradients carry float's relative error (~2.4e-7). Removes the
//     double exp: 0.4 µs of 20.0 at 512×4096 on an H100.
//   version 3 (float data, scalar bounds, token level, 16-byte groups; otherwise version 2's
//     rules): the token-level forward as a float32 framework computes it, everything per token
//     in float and a thread's tokens summed in float (ratio_clip_f32_kernel, 40 registers),
//     double from the block reduction on; the clip decisions on the float log-ratio. The loss,
//     k1 and k3 carry float's relative error; the backward is version 2's. 18.7 µs on an H100,
//     15.4 µs on an H200 (5.3 over its read ceiling) with the dual clip's test in the token loop;
//     since then, without a dual clip (c = 0, the usual case), the kernel is compiled without it
//     and takes the clip decisions as two flags (token_f32_no_dual). Counted in the loop
//     (cuobjdump -sass, sm_90), a 16-byte group of 4 tokens: its tokens' work 318 → 207
//     instructions (~80 → ~52 a token), the whole iteration with its loads and addressing
//     359 → ~250. Counted, not timed: at 359, 2M tokens are ~5.9M warp instructions, ~5.6 µs
//     of issue on an H200's 132 SMs × 4 schedulers at 1.98 GHz if perfectly spread, the size
//     of the gap to the read ceiling; at ~250, ~3.9 µs.
// Chunked layout (CudaLaunch::chunked = 1; any version): the token-level forward's rows
//   cut into chunks of blockDim·U groups (default 256 threads × one 16-byte group = 1024 float
//   tokens), a block per chunk whose threads load once and never loop (the row kernels with
//   chunks > 1), the finish kernel adding each row's chunks in order.
//   Rationale (H100, BENCHMARKS.md): with a block per row the 512×4096 grid is one wave, so
//   every block loads, then computes, at the same time, and the DRAM and FP64 phases do not
//   overlap; short blocks in several waves let them. The sequence levels and the backward keep
//   a block per row.
//   Measured (H100, 512×4096): slower than a block per row (v1 26.6, v2 23.3, v3 20.8 µs), the
//   hypothesis above notwithstanding; faster at 64×1024 (v2 5.9 µs against 9.0).
// Flat layout (CudaLaunch::chunked = 2; any version; token level with token_mean and per-token
//   advantages, else a block per row): the loss and the statistics are then sums over all
//   tokens, so the batch is read as ONE row of B·T tokens (as_one_row), cut into exactly as
//   many chunks as the GPU keeps blocks resident (occupancy × multiprocessors: a persistent
//   grid of one wave, every SM the same bytes; 16-byte groups whenever B·T is a multiple of
//   4, rows notwithstanding). Rationale: a block per row at 512×4096 puts 4 blocks on some SMs
//   and 3 on others, and the finish then adds fewer partial sums. Measured (H200, 512×4096):
//   0.1–1.3 µs slower than a block per row (v3 16.7 µs against 15.4).
// Bulk layout (CudaLaunch::chunked = 3; float data with scalar bounds, B·T a multiple of 4,
//   aligned arrays, sm_90+; else the flat layout): flat's tokens in chunks of blockDim·4·U
//   (default 1024), a block per chunk, each chunk's arrays copied into shared memory by the
//   tensor memory accelerator (ratio_clip_bulk_kernel: one cp.async.bulk per array, an
//   mbarrier counting the bytes) and the tokens' arithmetic (any version) read from there.
//   Rationale: the read ceilings with per-thread loads stayed at 63–68% whatever the number in
//   flight; bulk copies put 16·U KB per block in flight with no load instruction per thread.
//   Its ceiling is measured by the read ceiling's bulk variant. Measured (H200, 512×4096): its
//   read ceiling is within 0.4 µs of the chunked one's (10.5 against 10.1 µs; the row layout's
//   was not measured), the forward 8–10 µs slower than a block per row (v3 23.4 against 15.4).
// Dependent first kernel (CudaLaunch::dependent = 1): the row kernel itself launched
//   programmatically dependent on the stream's previous kernel; every forward kernel calls
//   pdl_wait() before its first load (a no-op when launched the ordinary way) and the finish
//   kernel lets its dependents be scheduled at once, so back-to-back forwards (or any
//   predecessor that does the same) overlap one call's finish with the next call's launch.
//   Measured (H200, 512×4096): no change for the forwards; the read ceiling 10.1 → 9.46 µs.
// Last-block finish (CudaLaunch::last_block = 1; any layout): no finishing kernel. Each block
//   of the first kernel takes a ticket from a counter after its partial sums (thread 0: a
//   fence, then atomicInc); the grid's last block computes the totals with the finishing
//   kernel's code (finish_totals, the same order, so the same bits) and atomicInc's wrap
//   leaves the counter at 0 for the next call. One counter per stream (finish_counter), so
//   calls in flight at once on different streams never share one; a graph replayed on another
//   stream than the one it was captured on, while that one runs a last-block call of its own,
//   would (not done anywhere here). The device's counters are allocated by its first
//   last-block call (in relaxed capture mode, so that call may be captured). Rationale: the
//   finishing kernel and its launch are most of the 4 µs between version 3 and the read ceiling at
//   512×4096. Measured (H200): 0.9–1.5 µs slower than the finishing kernel. (Its float twin's
//   spills, ptxas sm_90, are all in the finish code that one block runs, not in the token loop.)
// Prefetch (CudaLaunch::prefetch = 1, unroll 0 or 1; version 3's kernel, else ignored): each
//   thread loads its next group before it computes the current one, so its own loads overlap
//   its arithmetic (the default loads a group, waits, computes, and relies on other warps to
//   fill the wait). Rationale: version 3 at 512×4096 is a block of 256 threads per row, 4
//   groups per thread, one wave, and its gap to the read ceiling is about its issue time
//   (version 3 above), as if loads and arithmetic did not overlap. 60 registers (sm_90, no
//   spill), so 4 blocks of 256 per SM: still one wave for 512 rows on 132 SMs. Not yet run on
//   a GPU.
// Staged loads (each thread's groups copied into shared memory with cp.async, 2–4 in flight
//   while it computes) were tried and measured slower on an H100 (best 20.4 µs with v2), then
//   removed; the code is in commit c4be5da, the figures in BENCHMARKS.md.
// All of these are opt-in; the default stays version 1 with a block per row, the arithmetic
// every engine-level GPU test ran with. Tests: RatioClipCuda.Version2AndChunksEveryModeMatchCpu,
// RatioClipCuda.EveryLaunchShapeMatchesCpu,
// RatioClipCuda.DependentAndSerialFinishAgreeAlsoInAGraph,
// RatioClipCuda.FlatAndBulkLayoutsMatchCpuAcrossRowBoundaries (all passed on an H200 at
// ad5d70e, also under compute-sanitizer memcheck, and with every test named *Cuda* rerun under
// RLFT_RATIO_CLIP_LAUNCH=chunked=2, chunked=3 and dependent=1,last_block=1); bench:
// ratio_clip_v2_*, ratio_clip_v3_*, ratio_clip_chunked_*,
// ratio_clip_flat_*, ratio_clip_bulk_*, ratio_clip_*_serial_*, ratio_clip_*_dependent_*,
// ratio_clip_read_ceiling*, sweep/ratio_clip_*.
#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>
#include <map>
#include <mutex>
#include <tuple>
#include <type_traits>

#include "engine/error.h"
#include "kernels/cuda/common.cuh"
#include "kernels/cuda_launch.h"
#include "kernels/ratio_clip.h"
#include "kernels/ratio_clip_math.h"

namespace rlft::kernels {
namespace {

using cuda_detail::block_allreduce;
using cuda_detail::block_sum;
using cuda_detail::kMaxWarps;
using cuda_detail::Vec16;
using namespace ratio_clip_math;

// Token groups per thread whose loads are issued together, by default: 2 scalar tokens (8
// loads of 4 bytes), or 1 group of 16-byte vectors (4 loads of 16 bytes, float); more spills
// under the 64-register cap of __launch_bounds__(512, 2) (ptxas -v, sm_90).
constexpr int kDefaultUnrollScalar = 2;
constexpr int kDefaultUnrollVector = 1;
// Version 1 (double per token, the CPU's decisions): versions 2 and 3 are 2% and 7% faster at
// 512×4096 on an H100 but change the arithmetic every engine-level GPU test ran with.
constexpr int kDefaultVersion = 1;
constexpr int kChunkBlock = 256;  // threads per chunk in the chunked layout
constexpr int kFinishBlock = 512;

// The timeline (measurement only; ratio_clip_timeline_cuda, bench_cuda_kernels' timeline/
// lines): while c_timeline is set, thread 0 of each of the forward's blocks writes the device's
// %globaltimer (ns) at three points: on entry, after pdl_begin (when the kernel it depends on
// has completed: the same as entry for a kernel launched the ordinary way) and after its last
// write. Plain stores into its own slots, no atomics: [kernel][block][4] with kernel 0 the
// first kernel (row, chunk or flat kernel, or the read ceiling's) and 1 the finishing kernel;
// the 4th word is the multiprocessor (%smid). Off (null, the default) it costs every thread a
// test of threadIdx.x and a branch at each of the three points, and thread 0 one load from the
// constant bank.
__constant__ uint64_t* c_timeline;
enum TimelineEdge { kEntry = 0, kReleased = 1, kExit = 2 };
__device__ __forceinline__ void timeline_mark(int kernel, TimelineEdge edge) {
  if (threadIdx.x != 0) return;  // first: the other threads skip it in two instructions
  uint64_t* const tl = c_timeline;
  if (tl == nullptr || blockIdx.x >= unsigned(kRatioClipTimelineBlocks)) return;
  uint64_t t;
  asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
  uint64_t* slot = tl + (size_t(kernel) * kRatioClipTimelineBlocks + blockIdx.x) * 4;
  slot[edge] = t;
  if (edge == kEntry) {
    unsigned sm;
    asm volatile("mov.u32 %0, %%smid;" : "=r"(sm));
    slot[3] = sm;
  }
}

// The finishing step's phases (thread 0 of the block doing it), in kernel 1's slots of block
// 1 (the finishing kernel is one block, block 0): edge 0 when the thread's loads are added,
// edge 1 when the block's totals are in shared memory.
__device__ __forceinline__ void timeline_phase(int edge) {
  if (threadIdx.x != 0) return;
  uint64_t* const tl = c_timeline;
  if (tl == nullptr) return;
  uint64_t t;
  asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
  tl[(size_t(kRatioClipTimelineBlocks) + 1) * 4 + edge] = t;
}

// Per-row partial sums. No member initialisers: it lives in shared memory.
struct RowSums {
  double n, loss, low, high, dual, k1, k3;
};
constexpr int kStats = 7;  // doubles copied back: loss, low, high, dual, k1, k3, tokens
constexpr int kFinishBatch = 16;  // partial sums a lane of the finish loads before adding them
constexpr int kStatsBlock = (kStats + 1) * 32;  // the finishing kernel: a warp per quantity

__device__ __forceinline__ RowSums zero_sums() { return {0, 0, 0, 0, 0, 0, 0}; }

__device__ __forceinline__ RowSums shfl_xor(const RowSums& a, int o) {
  using cuda_detail::shfl_xor;
  return {shfl_xor(a.n, o),    shfl_xor(a.loss, o), shfl_xor(a.low, o), shfl_xor(a.high, o),
          shfl_xor(a.dual, o), shfl_xor(a.k1, o),   shfl_xor(a.k3, o)};
}

struct AddSums {
  __device__ __forceinline__ RowSums operator()(const RowSums& a, const RowSums& b) const {
    return {a.n + b.n,       a.loss + b.loss, a.low + b.low, a.high + b.high,
            a.dual + b.dual, a.k1 + b.k1,     a.k3 + b.k3};
  }
};

// One token's inputs as loaded (kept in Real until used: fewer registers for the U
// tokens in flight); x() etc. give the double values the CPU computes with.
template <typename Real>
struct Tok {
  Real w, logp, old_logp, A, lo, hi;
};
struct TokD {
  double w, x, A, lo, hi;  // mask weight, log-ratio, advantage, bounds
};

// A row of the arguments (the CPU's Row).
template <typename Real>
struct RowView {
  const Real *logp, *old_logp, *mask, *lower, *upper, *adv;
  double A_seq, lo0, hi0;
  bool per_seq;
  __device__ RowView(const RatioClipArgs<Real>& a, int64_t row) {
    const int64_t off = row * a.T;
    logp = a.logp + off;
    old_logp = a.old_logp + off;
    mask = a.mask ? a.mask + off : nullptr;
    lower = a.lower ? a.lower + off : nullptr;
    upper = a.upper ? a.upper + off : nullptr;
    per_seq = a.advantages_per_sequence;
    adv = per_seq ? nullptr : a.advantages + off;
    A_seq = per_seq ? double(a.advantages[row]) : 0.0;
    lo0 = 1.0 - a.eps_low;
    hi0 = 1.0 + a.eps_high;
  }
  // Every array is read whatever the mask says, so the loads of U groups of tokens go out
  // together; a masked token's values (NaN allowed) are never used. Absent arrays give the
  // scalar value (per-sequence advantage, 1 − eps_low, 1 + eps_high, weight 1).
  __device__ __forceinline__ Tok<Real> load(int64_t t) const {
    Tok<Real> k;
    k.w = mask ? mask[t] : Real(1);
    k.logp = logp[t];
    k.old_logp = old_logp[t];
    k.A = per_seq ? Real(0) : adv[t];
    k.lo = lower ? lower[t] : Real(0);
    k.hi = upper ? upper[t] : Real(0);
    return k;
  }
  // The double values the CPU computes with.
  __device__ __forceinline__ TokD get(const Tok<Real>& k) const {
    return {double(k.w), double(k.logp) - double(k.old_logp), per_seq ? A_seq : double(k.A),
            lower ? double(k.lo) : lo0, upper ? double(k.hi) : hi0};
  }
  __device__ __forceinline__ double weight(int64_t t) const { return mask ? double(mask[t]) : 1.0; }
};

// Loads G consecutive tokens from t on (G = 1: scalar loads; G = Vec16<Real>::n: one 16-byte
// load per array, which needs t and every array 16-byte aligned: the dispatcher's check).
template <int G, typename Real>
__device__ __forceinline__ void load_group(const RowView<Real>& row, int64_t t, Tok<Real> (&k)[G]) {
  if constexpr (G == 1) {
    k[0] = row.load(t);
  } else {
    using VT = Vec16<Real>;
    using Vec = typename VT::type;
    static_assert(G == VT::n, "a group is one 16-byte vector");
    const auto vload = [t](const Real* p) { return __ldg(reinterpret_cast<const Vec*>(p + t)); };
    const Vec lp = vload(row.logp), ol = vload(row.old_logp);
    const Vec w = row.mask ? vload(row.mask) : Vec{};
    const Vec A = row.per_seq ? Vec{} : vload(row.adv);
    const Vec lo = row.lower ? vload(row.lower) : Vec{};
    const Vec hi = row.upper ? vload(row.upper) : Vec{};
#pragma unroll
    for (int e = 0; e < G; ++e) {
      k[e].w = row.mask ? VT::get(w, e) : Real(1);
      k[e].logp = VT::get(lp, e);
      k[e].old_logp = VT::get(ol, e);
      k[e].A = VT::get(A, e);
      k[e].lo = VT::get(lo, e);
      k[e].hi = VT::get(hi, e);
    }
  }
}

// Calls f(t, tok) for every token of groups [g_begin, g_end) of the row owned by this thread
// (masked ones included): groups of G tokens, U groups' loads issued together before any is
// used. Thread j owns groups g_begin + j, + bd, + 2·bd, …; G must divide T when G > 1.
template <int G, int U, typename Real, typename F>
__device__ __forceinline__ void for_each_token(const RowView<Real>& row, int64_t g_begin,
                                               int64_t g_end, F f) {
  const int64_t bd = blockDim.x, ng = g_end;
  for (int64_t g0 = g_begin + threadIdx.x; g0 < ng; g0 += U * bd) {
    Tok<Real> k[U][G];
#pragma unroll
    for (int u = 0; u < U; ++u) {
      const int64_t g = g0 + u * bd;
      if (g < ng) load_group<G>(row, g * G, k[u]);
    }
#pragma unroll
    for (int u = 0; u < U; ++u) {
      const int64_t g = g0 + u * bd;
      if (g < ng) {
#pragma unroll
        for (int e = 0; e < G; ++e) f(g * G + e, k[u][e]);
      }
    }
  }
}

// for_each_token with U = 1 and the next group loaded ahead (CudaLaunch::prefetch): a thread
// issues the loads of its group g + blockDim before it computes group g, so its own loads are
// in flight during its arithmetic (one group more in registers).
template <int G, typename Real, typename F>
__device__ __forceinline__ void for_each_token_prefetched(const RowView<Real>& row, int64_t g_begin,
                                                          int64_t g_end, F f) {
  const int64_t bd = blockDim.x;
  int64_t g = g_begin + threadIdx.x;
  if (g >= g_end) return;
  Tok<Real> cur[G];
  load_group<G>(row, g * G, cur);
  for (;;) {
    const int64_t next = g + bd;
    const bool more = next < g_end;
    Tok<Real> ahead[G];
    if (more) load_group<G>(row, next * G, ahead);
#pragma unroll
    for (int e = 0; e < G; ++e) f(g * G + e, cur[e]);
    if (!more) return;
#pragma unroll
    for (int e = 0; e < G; ++e) cur[e] = ahead[e];
    g = next;
  }
}

// The same over the unmasked tokens only, with the double values the CPU computes with.
template <int G, int U, typename Real, typename F>
__device__ __forceinline__ void for_tokens(const RowView<Real>& row, int64_t g_begin, int64_t g_end,
                                           F f) {
  for_each_token<G, U>(row, g_begin, g_end, [&](int64_t t, const Tok<Real>& k) {
    if (k.w != Real(0)) f(t, row.get(k));
  });
}

// ρ_i = Σ m·x / Σ m over the row (0 for an empty row), and Σ m; block-wide.
template <int G, int U, typename Real>
__device__ __forceinline__ double row_mean_log_ratio(const RowView<Real>& row, int64_t T,
                                                     double* n_out, double* smem) {
  double n = 0.0, sx = 0.0;
  for_tokens<G, U>(row, 0, T / G, [&](int64_t, const TokD& k) {
    n += k.w;
    sx += k.w * k.x;
  });
  n = block_sum(n, smem);
  sx = block_sum(sx, smem);
  *n_out = n;
  return n > 0 ? sx / n : 0.0;
}

// Adds one unmasked token's terms to the sums. k3 = (e^xc − 1) − xc is always the token's own,
// whatever ratio the surrogate uses.
__device__ __forceinline__ void add_token(RowSums& p, const TokD& k, const Term& term, double k3) {
  p.n += k.w;
  p.loss += k.w * term.loss;
  if (term.clip == kLow)
    p.low += k.w;
  else if (term.clip == kHigh)
    p.high += k.w;
  else if (term.clip == kDual)
    p.dual += k.w;
  p.k1 -= k.w * k.x;
  p.k3 += k.w * k3;
}

// A token-level token: its own ratio for the surrogate and k3 (one exp). F32 (versions 2 and
// 3, float data, scalar bounds): clip decisions on the log-ratio, e^xc and k3 in float
// (ratio_clip_math.h); otherwise all in double (version 1).
template <bool F32>
__device__ __forceinline__ void add_token_level(RowSums& p, const TokD& k, const LogBounds& lb,
                                                double c) {
  const double xc = clamp_log_ratio(k.x);
  if constexpr (F32) {
    const float xf = float(xc), r = expf(xf);
    add_token(p, k, surrogate_from_log_ratio(xc, double(r), k.A, lb), double(k3_f32(xf, r)));
  } else {
    const double r = exp(xc);
    add_token(p, k, surrogate(r, k.A, k.lo, k.hi, c), (r - 1.0) - xc);
  }
}

// ---- the finish: the 7 totals and the statistics from the partial sums ------------------
// A partial sum read through L2 (ld.global.cg), never from a stale L1 line: in the last-block
// finish another SM wrote it during this kernel.
__device__ __forceinline__ RowSums load_sums(const RowSums* p) {
  const double* d = reinterpret_cast<const double*>(p);
  return {__ldcg(d),     __ldcg(d + 1), __ldcg(d + 2), __ldcg(d + 3),
          __ldcg(d + 4), __ldcg(d + 5), __ldcg(d + 6)};
}

// Row i's sums: its `chunks` partial sums added in chunk order (one per row: a copy).
__device__ __forceinline__ RowSums row_total(const RowSums* __restrict__ sums, int64_t i,
                                             int64_t chunks) {
  RowSums r = load_sums(sums + i * chunks);
  for (int64_t c = 1; c < chunks; ++c) r = AddSums{}(r, load_sums(sums + i * chunks + c));
  return r;
}

// The 7 statistics from the totals (total[0..6]: the fields of RowSums summed over every
// partial sum; total[7]: Σ_i coef_i·loss_i, unused by token_mean), a thread per statistic so
// the five divisions' latencies overlap: out = loss, then low, high, dual, k1, k3 (each Σ
// over Σm), then Σm.
__device__ __forceinline__ void write_stats(const double* total, int64_t B, int64_t T,
                                            Aggregation agg, double normalizer,
                                            double* __restrict__ out) {
  const int q = int(threadIdx.x);
  if (q < kStats) {
    const double n = total[0];
    double v = n;
    if (q == 0)
      v = agg == Aggregation::token_mean ? row_coef(agg, normalizer, B, T, 0.0, n) * total[1]
                                         : total[kStats];
    else if (q < kStats - 1)
      v = n > 0 ? total[q + 1] / n : 0.0;
    out[q] = v;
  }
}

// One block (any multiple of 32 threads), a warp per quantity in turn: quantities 0–6 each
// add one of the 7 fields of every partial sum, lane L adding k = L, L + 32, … in that order,
// then the warp's shuffle tree (a fixed order, whichever warp does it); quantity 7 adds
// Σ_i coef_i·loss_i over the rows the same way (coef_i from the row's own count; token_mean
// instead uses the same 1/D for every row, D the normalizer or the global Σm: its loss is
// (Σ_i loss_i)/D). `sums` holds `chunks` consecutive partial sums per row (1: one per row).
// Writes the 7 statistics to out (write_stats). The partial sums are read through L2 (__ldcg:
// in the last-block finish other blocks of the calling kernel wrote them), kFinishBatch loads
// a lane issued before the first is added (ptxas still interleaves some adds with them, 4–6
// loads ahead: cuobjdump -sass, sm_90).
//
// Measured (H100, 512 rows, the timeline/ lines, BENCHMARKS.md session 19): 2.1–2.2 µs from
// the finishing block's release to its exit, 1.4–1.5 of them until warp 0's loads are added.
// The batches of 16 did not make it faster than the other forms measured, which were dropped:
// the partial sums staged into shared memory by cp.async (2.04 µs), a dry run of this code
// while the block waits for the first kernel (2.11 µs, and 2.10 with everything hot in L2: not
// cold code, parameters or data), and every thread adding whole partial sums, the fields'
// shuffle trees side by side (2.49 µs). The plain lane-strided loop they replaced (the same
// order and bits) was not timed this way.
__device__ void finish_totals(const RowSums* __restrict__ sums, int64_t chunks, int64_t B,
                              int64_t T, Aggregation agg, double normalizer,
                              double* __restrict__ out) {
  static_assert(sizeof(RowSums) == kStats * sizeof(double), "RowSums is 7 doubles");
  __shared__ double total[kStats + 1];
  const int warps = int(blockDim.x) / cuda_detail::kWarp;
  const int warp = threadIdx.x / cuda_detail::kWarp, lane = threadIdx.x % cuda_detail::kWarp;
  const bool uniform = agg == Aggregation::token_mean;
  for (int q = warp; q < kStats + 1; q += warps) {  // warp-uniform
    double v = 0.0;
    if (q < kStats) {
      const double* field = reinterpret_cast<const double*>(sums) + q;
      const int64_t n = B * chunks;
      for (int64_t k0 = lane; k0 < n; k0 += int64_t(kFinishBatch) * cuda_detail::kWarp) {
        double x[kFinishBatch];
#pragma unroll
        for (int u = 0; u < kFinishBatch; ++u) {
          const int64_t k = k0 + int64_t(u) * cuda_detail::kWarp;
          x[u] = k < n ? __ldcg(field + k * kStats) : 0.0;
        }
#pragma unroll
        for (int u = 0; u < kFinishBatch; ++u)
          if (k0 + int64_t(u) * cuda_detail::kWarp < n) v += x[u];
      }
    } else if (!uniform) {
      for (int64_t i = lane; i < B; i += cuda_detail::kWarp) {
        const RowSums r = row_total(sums, i, chunks);
        if (r.n != 0.0) v += row_coef(agg, normalizer, B, T, r.n, 0.0) * r.loss;
      }
    }
    if (q == 0) timeline_phase(0);
    v = cuda_detail::warp_allreduce(v, cuda_detail::Sum{});
    if (lane == 0) total[q] = v;
  }
  __syncthreads();
  timeline_phase(1);
  write_stats(total, B, T, agg, normalizer, out);
}

// The last-block finish (CudaLaunch::last_block = 1): instead of a finishing kernel, the first
// kernel's blocks each take a ticket from `counter` after their last partial sum (thread 0
// wrote it, then a fence), and the grid's last block to do so computes the totals. atomicInc
// wraps the counter back to 0 as that last ticket is taken, so it is ready for the stream's
// next call (a counter per stream: finish_counter on the host). counter null: a finishing
// kernel follows and this does nothing.
struct InKernelFinish {
  unsigned* counter;
  double* out;
};
__device__ __forceinline__ void finish_if_last(const InKernelFinish& fin,
                                               const RowSums* __restrict__ sums, int64_t chunks,
                                               int64_t B, int64_t T, Aggregation agg,
                                               double normalizer) {
  if (fin.counter == nullptr) return;
  __shared__ unsigned ticket;
  if (threadIdx.x == 0) {
    __threadfence();  // this block's partial sums before its ticket
    ticket = atomicInc(fin.counter, gridDim.x - 1);
  }
  __syncthreads();
  if (ticket != gridDim.x - 1) return;
  __threadfence();  // and the other blocks' before this block reads them
  finish_totals(sums, chunks, B, T, agg, normalizer, fin.out);
}

// A block per row, or (token level) per chunk of a row: `chunks` chunks of `groups_per_chunk`
// groups a row (the last one shorter; chunks = 1, groups_per_chunk = T/G: the whole row; the
// sequence levels always have one chunk a row), its partial sums → sums[row·chunks + chunk].
// Waits for the stream's previous kernel before its first load (launch.dependent; a no-op
// otherwise) and lets the finishing kernel be scheduled at once (it waits for this one).
template <typename Real, int G, int U, bool F32, bool LB = false>
__global__ void __launch_bounds__(512, 2)
    ratio_clip_rows_kernel(const RatioClipArgs<Real> a, const LogBounds lb, int64_t chunks,
                           int64_t groups_per_chunk, RowSums* __restrict__ sums,
                           const InKernelFinish fin) {
  __shared__ RowSums smem[kMaxWarps];
  __shared__ double smem_d[kMaxWarps];
  timeline_mark(0, kEntry);
  cuda_detail::pdl_begin();
  timeline_mark(0, kReleased);
  const double c = a.dual_clip;
  const int64_t ng = a.T / G;
  for (int64_t b = blockIdx.x; b < a.B * chunks; b += gridDim.x) {
    const ChunkRange cr = chunk_range(b, chunks, groups_per_chunk, ng);
    const RowView<Real> row(a, cr.row);
    RowSums p = zero_sums();
    if (a.level == RatioLevel::token) {
      for_tokens<G, U>(row, cr.g_begin, cr.g_end,
                       [&](int64_t, const TokD& k) { add_token_level<F32>(p, k, lb, c); });
    } else {
      double n;
      const double s = exp(clamp_log_ratio(row_mean_log_ratio<G, U>(row, a.T, &n, smem_d)));
      const bool seq = a.level == RatioLevel::sequence;
      const Term seq_term = seq ? surrogate(s, row.A_seq, row.lo0, row.hi0, c) : Term{0, 0, 0};
      for_tokens<G, U>(row, 0, ng, [&](int64_t, const TokD& k) {
        const double xc = clamp_log_ratio(k.x);
        const Term term = seq ? seq_term : surrogate(s, k.A, k.lo, k.hi, c);
        if constexpr (F32) {
          const float xf = float(xc);
          add_token(p, k, term, double(k3_f32(xf, expf(xf))));
        } else {
          add_token(p, k, term, (exp(xc) - 1.0) - xc);
        }
      });
    }
    p = cuda_detail::block_reduce_to_first(p, AddSums{}, smem);
    if (threadIdx.x == 0) sums[b] = p;
  }
  if constexpr (LB) finish_if_last(fin, sums, chunks, a.B, a.T, a.aggregation, a.normalizer);
  timeline_mark(0, kExit);
}

// ---- version 3: float per token, float per-thread sums -------------------------------------
// The token level on float data with scalar bounds, as a float32 framework computes it: the
// log-ratio x = logp − old_logp, its clamp, e^x, the clip decisions (on x against the bounds'
// logs, rounded to float), the surrogate, k1 and k3 all in float, summed per thread in float
// (RowSumsF: exact counts for 0/1 masks up to 2^24 tokens per thread), then in double from
// the block reduction on. Fewer registers and no float↔double conversions per token.
struct RowSumsF {
  float n, loss, low, high, dual, k1, k3;
};

// One unmasked token, all in float: the decisions of surrogate_from_log_ratio<float>; k1 on the
// unclamped log-ratio, k3 on the clamped one, as add_token does in double. MayDual = false
// (the caller knows c = 0) takes them as token_f32_no_dual's two flags: a 16-byte group's
// tokens take 207 instructions in ratio_clip_f32_kernel's loop against 318 with the dual
// clip's test and the clip code (cuobjdump -sass, sm_90; the general form given c = 0 is not
// simplified that far, and written with flags it spills).
template <bool MayDual = true>
__device__ __forceinline__ void add_token_f32(RowSumsF& p, float w, float logp, float old_logp,
                                              float A, const LogBoundsT<float>& b) {
  const float x = logp - old_logp, xc = clamp_log_ratio(x), r = expf(xc);
  p.n += w;
  if constexpr (MayDual) {
    const TermT<float> t = surrogate_from_log_ratio(xc, r, A, b);
    p.loss += w * t.loss;
    p.low += t.clip == kLow ? w : 0.f;
    p.high += t.clip == kHigh ? w : 0.f;
    p.dual += t.clip == kDual ? w : 0.f;
  } else {
    const TokenF32 t = token_f32_no_dual(xc, r, A, b);
    p.loss += w * t.loss;
    p.low += t.low ? w : 0.f;
    p.high += t.high ? w : 0.f;
  }
  p.k1 -= w * x;
  p.k3 += w * k3_f32(xc, r);
}

// The token level's layouts as ratio_clip_rows_kernel (`chunks` chunks of `groups_per_chunk`
// groups of 4 tokens a row). U = 1 fits 40 registers without spilling (ptxas -v, sm_90): 3
// blocks of 512 (6 of 256) per SM; more groups in flight get 64. MayDual = false (the
// dispatcher's choice when c = 0) compiles the dual clip out of the token loop. Prefetch (U = 1
// only; CudaLaunch::prefetch): the next group loaded before the current one is computed.
template <int U, bool LB = false, bool MayDual = true, bool Prefetch = false>
__global__ void __launch_bounds__(512, U == 1 && !Prefetch ? 3 : 2)
    ratio_clip_f32_kernel(const RatioClipArgs<float> a, const LogBoundsT<float> lb, int64_t chunks,
                          int64_t groups_per_chunk, RowSums* __restrict__ sums,
                          const InKernelFinish fin) {
  __shared__ RowSums smem[kMaxWarps];
  timeline_mark(0, kEntry);
  cuda_detail::pdl_begin();
  timeline_mark(0, kReleased);
  const int64_t ng = a.T / 4;
  for (int64_t b = blockIdx.x; b < a.B * chunks; b += gridDim.x) {
    const ChunkRange cr = chunk_range(b, chunks, groups_per_chunk, ng);
    const RowView<float> row(a, cr.row);
    const float A_seq = float(row.A_seq);
    RowSumsF q{0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f};
    const auto token = [&](int64_t, const Tok<float>& k) {
      if (k.w != 0.f)
        add_token_f32<MayDual>(q, k.w, k.logp, k.old_logp, row.per_seq ? A_seq : k.A, lb);
    };
    if constexpr (Prefetch) {
      static_assert(U == 1, "prefetch holds one group ahead");
      for_each_token_prefetched<4>(row, cr.g_begin, cr.g_end, token);
    } else {
      for_each_token<4, U>(row, cr.g_begin, cr.g_end, token);
    }
    RowSums p{q.n, q.loss, q.low, q.high, q.dual, q.k1, q.k3};
    p = cuda_detail::block_reduce_to_first(p, AddSums{}, smem);
    if (threadIdx.x == 0) sums[b] = p;
  }
  if constexpr (LB) finish_if_last(fin, sums, chunks, a.B, a.T, a.aggregation, a.normalizer);
  timeline_mark(0, kExit);
}

// The finishing kernel: one block of kStatsBlock = 256 threads, a warp per quantity
// (finish_totals). Launched programmatically dependent on the kernel that writes `sums`
// (pdl_wait first).
__global__ void __launch_bounds__(kStatsBlock)
    ratio_clip_finish_kernel(const RowSums* __restrict__ sums, int64_t chunks, int64_t B, int64_t T,
                             Aggregation agg, double normalizer, double* __restrict__ out) {
  static_assert(kStatsBlock == (kStats + 1) * cuda_detail::kWarp, "a warp per quantity");
  timeline_mark(1, kEntry);
  cuda_detail::pdl_begin();
  timeline_mark(1, kReleased);
  finish_totals(sums, chunks, B, T, agg, normalizer, out);
  timeline_mark(1, kExit);
}

// Σ_t m per row (the global token count of token_mean without a normalizer).
template <typename Real>
__global__ void __launch_bounds__(512) mask_count_kernel(const Real* __restrict__ mask, int64_t B,
                                                         int64_t T, double* __restrict__ counts) {
  __shared__ double smem[kMaxWarps];
  for (int64_t i = blockIdx.x; i < B; i += gridDim.x) {
    double n = 0.0;
    for (int64_t t = threadIdx.x; t < T; t += blockDim.x) n += double(mask[i * T + t]);
    n = block_sum(n, smem);
    if (threadIdx.x == 0) counts[i] = n;
  }
}

// out[0] = Σ x[0..n) in a fixed order (one block).
__global__ void __launch_bounds__(kFinishBlock)
    ordered_sum_kernel(const double* __restrict__ x, int64_t n, double* __restrict__ out) {
  __shared__ double smem[kMaxWarps];
  double s = 0.0;
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x) s += x[i];
  s = block_sum(s, smem);
  if (threadIdx.x == 0) out[0] = s;
}

template <typename Real, int G, int U, bool F32>
__global__ void __launch_bounds__(512, 2)
    ratio_clip_backward_kernel(const RatioClipArgs<Real> a, const LogBounds lb, double g_scale,
                               const Real* __restrict__ g_loss_dev,
                               const double* __restrict__ token_total_dev, double token_total_host,
                               Real* __restrict__ g_logp, bool accumulate) {
  __shared__ double smem[kMaxWarps];
  const double g_loss = g_loss_dev ? g_scale * double(*g_loss_dev) : g_scale;
  const double c = a.dual_clip;
  const double token_total = token_total_dev ? *token_total_dev : token_total_host;
  const bool needs_row_count = a.aggregation == Aggregation::seq_mean_token_mean ||
                               a.aggregation == Aggregation::only_token_mean;
  const int64_t T = a.T, bd = blockDim.x;
  for (int64_t i = blockIdx.x; i < a.B; i += gridDim.x) {
    const RowView<Real> row(a, i);
    Real* g = g_logp + i * T;
    auto store = [&](int64_t t, double value) {
      g[t] = accumulate ? Real(double(g[t]) + value) : Real(value);
    };
    if (a.level == RatioLevel::token) {
      double n = 0.0;
      if (needs_row_count) {
        if (row.mask) {
          for (int64_t t = threadIdx.x; t < T; t += bd) n += row.weight(t);
          n = block_sum(n, smem);
        } else {
          n = double(T);
        }
      }
      const double k = g_loss * row_coef(a.aggregation, a.normalizer, a.B, T, n, token_total);
      for_each_token<G, U>(row, 0, T / G, [&](int64_t t, const Tok<Real>& tk) {
        const TokD q = row.get(tk);
        if (q.w == 0.0 || k == 0.0 || !log_ratio_inside(q.x)) {  // clamp cuts the gradient
          store(t, 0.0);
          return;
        }
        if constexpr (F32) {
          const double r = double(expf(float(q.x)));
          store(t, k * q.w * surrogate_from_log_ratio(q.x, r, q.A, lb).d_ratio * r);
        } else {
          const double r = exp(q.x);
          store(t, k * q.w * surrogate(r, q.A, q.lo, q.hi, c).d_ratio * r);
        }
      });
    } else {
      // d s_{i,t}/d logp_t = s_i·1[|ρ| ≤ 20] in both sequence levels (kernels/ratio_clip.h).
      double n;
      const double rho = row_mean_log_ratio<G, U>(row, T, &n, smem);
      const double s = exp(clamp_log_ratio(rho));
      const double k = log_ratio_inside(rho)
                           ? g_loss * row_coef(a.aggregation, a.normalizer, a.B, T, n, token_total)
                           : 0.0;
      const bool seq = a.level == RatioLevel::sequence;
      const double seq_d = seq ? surrogate(s, row.A_seq, row.lo0, row.hi0, c).d_ratio : 0.0;
      for_each_token<G, U>(row, 0, T / G, [&](int64_t t, const Tok<Real>& tk) {
        const TokD q = row.get(tk);
        if (q.w == 0.0 || k == 0.0) {
          store(t, 0.0);
          return;
        }
        const double d = seq ? seq_d : surrogate(s, q.A, q.lo, q.hi, c).d_ratio;
        store(t, k * q.w * d * s);
      });
    }
  }
}

// ---- unfused baseline: one kernel per op, a [B, T] temporary each -------------------------
// In Real arithmetic, as an eager float32 program computes it.
__device__ __forceinline__ float real_exp(float x) { return expf(x); }
__device__ __forceinline__ double real_exp(double x) { return exp(x); }

template <typename Real>
__global__ void ratio_kernel(const Real* __restrict__ logp, const Real* __restrict__ old_logp,
                             int64_t n, Real* __restrict__ ratio) {
  for (int64_t k = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; k < n;
       k += int64_t(gridDim.x) * blockDim.x) {
    Real x = logp[k] - old_logp[k];
    x = x < Real(-kLogRatioClamp) ? Real(-kLogRatioClamp) : x;
    x = x > Real(kLogRatioClamp) ? Real(kLogRatioClamp) : x;
    ratio[k] = real_exp(x);
  }
}

template <typename Real>
__global__ void mul_kernel(const Real* __restrict__ a, const Real* __restrict__ b, int64_t n,
                           Real* __restrict__ out) {
  for (int64_t k = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; k < n;
       k += int64_t(gridDim.x) * blockDim.x)
    out[k] = a[k] * b[k];
}

template <typename Real>
__global__ void clamp_mul_kernel(const Real* __restrict__ r, Real lo, Real hi,
                                 const Real* __restrict__ A, int64_t n, Real* __restrict__ out) {
  for (int64_t k = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; k < n;
       k += int64_t(gridDim.x) * blockDim.x) {
    const Real v = r[k] < lo ? lo : (r[k] > hi ? hi : r[k]);
    out[k] = v * A[k];
  }
}

template <typename Real>
__global__ void neg_min_mask_kernel(const Real* __restrict__ s1, const Real* __restrict__ s2,
                                    const Real* __restrict__ mask, int64_t n,
                                    Real* __restrict__ out) {
  for (int64_t k = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; k < n;
       k += int64_t(gridDim.x) * blockDim.x) {
    const Real w = mask ? mask[k] : Real(1);
    out[k] = w == Real(0) ? Real(0) : -(s2[k] < s1[k] ? s2[k] : s1[k]) * w;
  }
}

// Stage 1 of a deterministic sum: one partial per block (Σ l and Σ m).
template <typename Real>
__global__ void __launch_bounds__(256)
    partial_sums_kernel(const Real* __restrict__ l, const Real* __restrict__ mask, int64_t n,
                        double* __restrict__ partial) {
  __shared__ double smem[kMaxWarps];
  double sl = 0.0, sm = 0.0;
  for (int64_t k = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; k < n;
       k += int64_t(gridDim.x) * blockDim.x) {
    sl += double(l[k]);
    sm += mask ? double(mask[k]) : 1.0;
  }
  sl = block_sum(sl, smem);
  sm = block_sum(sm, smem);
  if (threadIdx.x == 0) {
    partial[2 * blockIdx.x] = sl;
    partial[2 * blockIdx.x + 1] = sm;
  }
}

__global__ void __launch_bounds__(kFinishBlock)
    mean_from_partials_kernel(const double* __restrict__ partial, int nblocks,
                              double* __restrict__ out) {
  __shared__ double smem[kMaxWarps];
  double sl = 0.0, sm = 0.0;
  for (int b = threadIdx.x; b < nblocks; b += blockDim.x) {
    sl += partial[2 * b];
    sm += partial[2 * b + 1];
  }
  sl = block_sum(sl, smem);
  sm = block_sum(sm, smem);
  if (threadIdx.x == 0) out[0] = sm > 0 ? sl / sm : 0.0;
}

// ---- the read ceiling (benchmarks only) ----------------------------------------------------
// The token-level forward's memory traffic without its arithmetic, in any of its layouts (a
// block per row, chunks of a row, flat: `chunks` chunks of `groups_per_chunk` groups a row):
// the same 16-byte loads of logp, old_logp, advantages and mask, U groups in flight per
// thread, summed in float per block → out[block]. What a kernel of this shape reads at best on
// the GPU it runs on, the figure ratio_clip's %peak is read against.
template <int U>
__global__ void __launch_bounds__(512)
    read_ceiling_kernel(const RatioClipArgs<float> a, int64_t chunks, int64_t groups_per_chunk,
                        float* __restrict__ out) {
  __shared__ float smem[kMaxWarps];
  constexpr int G = cuda_detail::Vec16<float>::n;
  timeline_mark(0, kEntry);
  cuda_detail::pdl_begin();
  timeline_mark(0, kReleased);
  const int64_t ng = a.T / G;
  for (int64_t b = blockIdx.x; b < a.B * chunks; b += gridDim.x) {
    const ChunkRange cr = chunk_range(b, chunks, groups_per_chunk, ng);
    const RowView<float> row(a, cr.row);
    float s = 0.f;
    for_each_token<G, U>(row, cr.g_begin, cr.g_end, [&](int64_t, const Tok<float>& k) {
      s += (k.w + k.logp) + (k.old_logp + k.A);
    });
    s = block_sum(s, smem);
    if (threadIdx.x == 0) out[b] = s;
  }
  timeline_mark(0, kExit);
}

// ---- bulk copies into shared memory (sm_90+) -----------------------------------------------
// Chunks of up to four float arrays copied from global into shared memory by the tensor memory
// accelerator: thread 0 issues one cp.async.bulk per array, an mbarrier counts the bytes, and
// every thread waits for its phase. One chunk in flight per block. Used by the bulk layout's
// kernels below; on older GPUs the host never launches them (their bodies trap).
class ChunkCopier {
 public:
  // Every thread of the block: thread 0 initialises the mbarrier in `storage`, then a barrier.
  __device__ explicit ChunkCopier(uint64_t* storage) : bar_(smem_addr(storage)) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    if (threadIdx.x == 0) {
      asm volatile("mbarrier.init.shared::cta.b64 [%0], 1;" ::"r"(bar_) : "memory");
      asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory");
    }
#endif
    __syncthreads();
  }
  // Thread 0 only: copies src[k][t0, t0 + len) to dst + k·stride for k < arrays (len·4 bytes
  // each, a multiple of 16, both sides 16-byte aligned). The previous chunk's reads must have
  // ended at a block barrier (the fence orders them before the async proxy's writes).
  __device__ void issue(float* dst, int64_t stride, const float* const (&src)[4], int arrays,
                        int64_t t0, int64_t len) const {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    const uint32_t bytes = uint32_t(len) * 4u;
    asm volatile("fence.proxy.async.shared::cta;" ::: "memory");
    asm volatile("{\n .reg .b64 st;\n mbarrier.arrive.expect_tx.shared::cta.b64 st, [%0], %1;\n}"
                 ::"r"(bar_), "r"(uint32_t(arrays) * bytes)
                 : "memory");
    for (int k = 0; k < arrays; ++k)
      asm volatile(
          "cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1], %2, "
          "[%3];" ::"r"(smem_addr(dst + k * stride)),
          "l"(src[k] + t0), "r"(bytes), "r"(bar_)
          : "memory");
#endif
  }
  // Every thread: waits until the chunk issued last has landed. Traps (a launch failure, not a
  // hang) if it has not after ~2^26 polls, each of which suspends in hardware for a while.
  __device__ void wait() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    for (uint32_t spin = 0;; ++spin) {
      uint32_t done;
      asm volatile(
          "{\n .reg .pred p;\n mbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2;\n"
          " selp.u32 %0, 1, 0, p;\n}"
          : "=r"(done)
          : "r"(bar_), "r"(parity_)
          : "memory");
      if (done) break;
      if (spin > (1u << 26)) __trap();
    }
#else
    __trap();
#endif
    parity_ ^= 1u;
  }

 private:
  static __device__ uint32_t smem_addr(const void* p) {
    return uint32_t(__cvta_generic_to_shared(p));
  }
  uint32_t bar_, parity_ = 0;
};

// The read ceiling through bulk copies (benchmarks only): the flat layout's tokens in chunks of
// C = blockDim·4·U, each chunk's four arrays copied into shared memory (ChunkCopier) and
// summed from there in float → out[chunk], a block per chunk (the loop serves any grid). What
// the same reads reach without per-thread load instructions: the ceiling of the forward's bulk
// layout.
__global__ void __launch_bounds__(512)
    read_ceiling_bulk_kernel(const RatioClipArgs<float> a, int64_t chunk, float* __restrict__ out) {
  extern __shared__ __align__(128) float buf[];  // [4][chunk]: mask, logp, old_logp, advantages
  __shared__ __align__(8) uint64_t bar;
  __shared__ float smem[kMaxWarps];
  cuda_detail::pdl_begin();
  ChunkCopier copier(&bar);
  const float* src[4] = {a.mask, a.logp, a.old_logp, a.advantages};
  const int64_t n = a.B * a.T, chunks = (n + chunk - 1) / chunk;
  for (int64_t c = blockIdx.x; c < chunks; c += gridDim.x) {
    const int64_t t0 = c * chunk, len = n - t0 < chunk ? n - t0 : chunk;
    if (threadIdx.x == 0) copier.issue(buf, chunk, src, 4, t0, len);
    copier.wait();
    float s = 0.f;
    for (int64_t i = threadIdx.x; i < len; i += blockDim.x)
      s += (buf[i] + buf[chunk + i]) + (buf[2 * chunk + i] + buf[3 * chunk + i]);
    s = block_sum(s, smem);  // its barrier also ends every thread's reads of buf
    if (threadIdx.x == 0) out[c] = s;
  }
}

// ---- the bulk-copy layout (CudaLaunch::chunked = 3; sm_90+) --------------------------------
// The flat layout's tokens (token_mean, per-token advantages, float data with scalar bounds,
// B·T a multiple of 4, 16-byte aligned arrays) in chunks of C = blockDim·4·U tokens, a block
// per chunk: the chunk's logp, old_logp, advantages (and mask) copied into shared memory by
// the tensor memory accelerator (ChunkCopier: one cp.async.bulk per array, 16·U KB a block at
// 256 threads), every thread then takes its tokens from there with version V's arithmetic (3:
// add_token_f32 and float per-thread sums; 1, 2: the row kernel's), and the block's sums go
// to sums[chunk]. No load instruction per token and per thread: the bytes in flight are the
// chunks of every resident block. Slower than every other layout on an H200 (header).
template <int V, bool LB = false>
__global__ void __launch_bounds__(512)
    ratio_clip_bulk_kernel(const RatioClipArgs<float> a, const LogBounds lb,
                           const LogBoundsT<float> lbf, int64_t chunk, RowSums* __restrict__ sums,
                           const InKernelFinish fin) {
  extern __shared__ __align__(128) float buf[];  // [3 or 4][chunk]: logp, old_logp, A, mask
  __shared__ __align__(8) uint64_t bar;
  __shared__ RowSums smem[kMaxWarps];
  cuda_detail::pdl_begin();
  ChunkCopier copier(&bar);
  const float* src[4] = {a.logp, a.old_logp, a.advantages, a.mask};
  const int arrays = a.mask ? 4 : 3;
  const int64_t n = a.B * a.T, chunks = (n + chunk - 1) / chunk;
  const float *lp = buf, *ol = buf + chunk, *A = buf + 2 * chunk, *w = buf + 3 * chunk;
  for (int64_t c = blockIdx.x; c < chunks; c += gridDim.x) {
    const int64_t t0 = c * chunk, len = n - t0 < chunk ? n - t0 : chunk;
    if (threadIdx.x == 0) copier.issue(buf, chunk, src, arrays, t0, len);
    copier.wait();
    RowSums p;
    if constexpr (V == 3) {
      RowSumsF q{0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f};
      for (int64_t i = threadIdx.x; i < len; i += blockDim.x) {
        const float wi = a.mask ? w[i] : 1.f;
        if (wi != 0.f) add_token_f32(q, wi, lp[i], ol[i], A[i], lbf);
      }
      p = {q.n, q.loss, q.low, q.high, q.dual, q.k1, q.k3};
    } else {
      p = zero_sums();
      for (int64_t i = threadIdx.x; i < len; i += blockDim.x) {
        const double wi = a.mask ? double(w[i]) : 1.0;
        if (wi != 0.0)
          add_token_level<V == 2>(
              p, TokD{wi, double(lp[i]) - double(ol[i]), double(A[i]), lb.lo, lb.hi}, lb, lb.c);
      }
    }
    // Its barriers also end every thread's reads of buf before the next chunk's copies.
    p = cuda_detail::block_reduce_to_first(p, AddSums{}, smem);
    if (threadIdx.x == 0) sums[c] = p;
  }
  if constexpr (LB) finish_if_last(fin, sums, chunks, a.B, a.T, a.aggregation, a.normalizer);
}

// ---- host side -----------------------------------------------------------------------------

// Threads per row: about 16 tokens per thread, 64…512 (T = 4096: 256, the best of the
// launch sweep on an H100, BENCHMARKS.md; 512 threads were 16% slower in the forward).
int block_for(int64_t T) {
  int bd = 512;
  while (bd > 64 && T < 16 * int64_t(bd)) bd /= 2;
  return bd;
}

// Blocks of a grid-stride elementwise kernel.
unsigned elementwise_grid(int64_t n, int bd) {
  const int64_t blocks = (n + bd - 1) / bd;
  return unsigned(blocks < 65535 * 16 ? blocks : 65535 * 16);
}

}  // namespace

namespace {

void check_ratio_clip_launch(const char* op, const CudaLaunch& l) {
  check_launch(op, l);
  RLFT_CHECK(l.unroll != 8, op, ": launch.unroll 8 is not built for ratio_clip (0, 1, 2 or 4)");
  RLFT_CHECK(l.version >= 0 && l.version <= 3, op, ": launch.version must be 0, 1, 2 or 3, got ",
             l.version);
  RLFT_CHECK(l.prefetch == 0 || l.unroll <= 1, op,
             ": launch.prefetch loads one group ahead, so launch.unroll must be 0 or 1, got ",
             l.unroll);
}

// The caller's launch with the fields it leaves 0 taken from RLFT_RATIO_CLIP_LAUNCH
// (kernels/ratio_clip.h), checked. The variable is read and parsed once per process (a
// malformed value is not kept: every call throws its error).
CudaLaunch resolve_launch(const char* op, const CudaLaunch& l) {
  check_ratio_clip_launch(op, l);
  static const CudaLaunch env = [] {
    const CudaLaunch e = launch_from_env(kRatioClipLaunchEnv);
    check_ratio_clip_launch(kRatioClipLaunchEnv, e);
    return e;
  }();
  const CudaLaunch merged = with_defaults(l, env);  // e.g. the caller's unroll, the variable's
  check_ratio_clip_launch(op, merged);                // prefetch: checked together
  return merged;
}

// Version 2 applies to float data with scalar bounds (anything else runs version 1).
template <typename Real>
bool uses_f32_math(const RatioClipArgs<Real>& a, const CudaLaunch& l) {
  const int version = l.version == 0 ? kDefaultVersion : l.version;
  return std::is_same_v<Real, float> && version >= 2 && a.lower == nullptr && a.upper == nullptr;
}
// Version 3's float kernel: also the token level and 16-byte groups (else version 2 runs).
template <typename Real>
bool uses_f32_kernel(const RatioClipArgs<Real>& a, const CudaLaunch& l, int G) {
  const int version = l.version == 0 ? kDefaultVersion : l.version;
  return uses_f32_math(a, l) && version == 3 && a.level == RatioLevel::token && G > 1;
}
// Host-side state the forward's layouts keep per device, one lock for all: the host API
// answers the flat and bulk layouts need at every forward (asked once per kernel, block size
// and device: a host round trip each otherwise) and the last-block finish's counters.
struct KernelFacts {
  std::mutex m;
  std::map<std::tuple<const void*, int, int>, int> resident;  // (kernel, block, device)
  std::map<std::pair<const void*, int>, int> smem_allowed;    // (kernel, device): bytes
  std::map<std::pair<int, cudaStream_t>, unsigned*> counters;  // (device, stream)
  std::map<int, std::pair<unsigned*, int>> counter_blocks;     // device: (base, used)
  static KernelFacts& get() {
    static KernelFacts* facts = new KernelFacts;  // never destroyed: used until exit
    return *facts;
  }
};
using cuda_detail::current_device;

// Blocks of `kernel` at `bd` threads (no dynamic shared memory) one multiprocessor keeps
// resident.
int resident_blocks(const void* kernel, int bd) {
  KernelFacts& f = KernelFacts::get();
  const auto key = std::make_tuple(kernel, bd, current_device());
  {
    std::lock_guard<std::mutex> lock(f.m);
    const auto it = f.resident.find(key);
    if (it != f.resident.end()) return it->second;
  }
  int per_sm = 0;
  RLFT_CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, kernel, bd, 0));
  std::lock_guard<std::mutex> lock(f.m);
  f.resident[key] = per_sm;
  return per_sm;
}

// Lets `kernel` take `bytes` of dynamic shared memory (above 48 KB it must opt in), unless
// an earlier call on this device already allowed as much.
void allow_dynamic_smem(const void* kernel, size_t bytes) {
  KernelFacts& f = KernelFacts::get();
  const auto key = std::make_pair(kernel, current_device());
  {
    std::lock_guard<std::mutex> lock(f.m);
    const auto it = f.smem_allowed.find(key);
    if (it != f.smem_allowed.end() && size_t(it->second) >= bytes) return;
  }
  RLFT_CUDA_CHECK(
      cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(bytes)));
  std::lock_guard<std::mutex> lock(f.m);
  int& allowed = f.smem_allowed[key];
  if (size_t(allowed) < bytes) allowed = int(bytes);
}

// The ticket counter of the last-block finish for `stream` on the current device (one per
// stream: two calls in flight at once on different streams must not share one). Counters
// come from a block of kFinishCounters allocated and zeroed once per device, in relaxed
// capture mode for this thread and through a stream of their own that waits for no other, so
// the first call may come inside a stream capture of any mode; every call's last block
// leaves its counter at 0 again.
constexpr int kFinishCounters = 16384;  // 64 KB a device
unsigned* finish_counter(cudaStream_t stream) {
  KernelFacts& f = KernelFacts::get();
  const int device = current_device();
  std::lock_guard<std::mutex> lock(f.m);
  const auto it = f.counters.find({device, stream});
  if (it != f.counters.end()) return it->second;
  auto& [base, used] = f.counter_blocks[device];
  if (base == nullptr) {
    cudaStreamCaptureMode mode = cudaStreamCaptureModeRelaxed;
    RLFT_CUDA_CHECK(cudaThreadExchangeStreamCaptureMode(&mode));
    void* p = nullptr;
    cudaStream_t own{};
    cudaError_t e = cudaMalloc(&p, kFinishCounters * sizeof(unsigned));
    if (e == cudaSuccess) e = cudaStreamCreateWithFlags(&own, cudaStreamNonBlocking);
    if (e == cudaSuccess) e = cudaMemsetAsync(p, 0, kFinishCounters * sizeof(unsigned), own);
    if (e == cudaSuccess) e = cudaStreamSynchronize(own);
    if (own) cudaStreamDestroy(own);
    if (e != cudaSuccess && p) cudaFree(p);
    cudaThreadExchangeStreamCaptureMode(&mode);  // back to the caller's mode
    RLFT_CUDA_CHECK(e);
    base = static_cast<unsigned*>(p);
  }
  RLFT_CHECK(used < kFinishCounters, "ratio_clip: launch.last_block serves at most ",
             kFinishCounters, " streams per device");
  return f.counters[{device, stream}] = base + used++;
}

// The flat layout's cut of its one row of `ng` groups: one chunk per block that `kernel` (and
// `twin`, if not null) can keep resident at `bd` threads on every multiprocessor (a persistent
// grid of one wave), of ⌈ng/P⌉ groups each (the last shorter), so every SM reads the same
// number of bytes. A first kernel and its last-block twin get the same cut (the fewer resident
// blocks of the two), so both add the same partial sums: the same bits.
template <typename Kernel>
ChunkCut flat_chunks(Kernel kernel, Kernel twin, int bd, int64_t ng) {
  int per_sm = resident_blocks(reinterpret_cast<const void*>(kernel), bd);
  if (twin != nullptr) {
    const int t = resident_blocks(reinterpret_cast<const void*>(twin), bd);
    if (t < per_sm) per_sm = t;
  }
  return flat_cut(ng, int64_t(per_sm > 0 ? per_sm : 1) * cuda_detail::multiprocessors());
}

// The layout's cut for a kernel (and its twin): flat (as above), chunks of bd·U groups, or
// whole rows.
template <typename Kernel>
ChunkCut plan_chunks(Kernel kernel, Kernel twin, bool flat, bool chunked, int bd, int U,
                     int64_t ng) {
  if (flat) return flat_chunks(kernel, twin, bd, ng);
  if (chunked) return {chunks_per_row(ng, int64_t(bd) * U), int64_t(bd) * U};
  return {1, ng > 0 ? ng : 1};
}

// The flat layout's view of the arguments: one row of B·T tokens.
template <typename Real>
RatioClipArgs<Real> as_one_row(RatioClipArgs<Real> a) {
  a.T *= a.B;
  a.B = 1;
  return a;
}

// The bounds' logs for version 2, in double on the host.
template <typename Real>
LogBounds log_bounds(const RatioClipArgs<Real>& a) {
  LogBounds b;
  b.lo = 1.0 - a.eps_low;
  b.hi = 1.0 + a.eps_high;
  b.c = a.dual_clip;
  b.log_lo = std::log(b.lo);
  b.log_hi = std::log(b.hi);
  b.log_c = b.c > 0.0 ? std::log(b.c) : 0.0;
  return b;
}

// The launch's token group G (a 16-byte vector per array when every per-token array is
// 16-byte aligned and the vector width divides T, unless launch.vec = 1; else one token),
// groups loaded ahead per thread U (launch.unroll; 0: the default for G) and arithmetic (F32:
// version 2), resolved once per call.
struct Shape {
  int G, U;
  bool f32;
};

template <typename Real>
Shape resolve_shape(const RatioClipArgs<Real>& a, const CudaLaunch& l) {
  constexpr int kV = cuda_detail::Vec16<Real>::n;
  const bool vec = l.vec == 0 && a.T % kV == 0 && aligned16(a.logp) && aligned16(a.old_logp) &&
                   aligned16(a.mask) && aligned16(a.lower) && aligned16(a.upper) &&
                   (a.advantages_per_sequence || aligned16(a.advantages));
  const int G = vec ? kV : 1;
  const int U = l.unroll != 0 ? l.unroll : vec ? kDefaultUnrollVector : kDefaultUnrollScalar;
  return {G, U, uses_f32_math(a, l)};
}

// Calls f(std::integral_constant<int, G>, std::integral_constant<int, U>,
// std::integral_constant<bool, F32>) for the resolved shape: the kernels' template arguments.
template <typename Real, typename F>
void with_shape(const Shape& sh, F f) {
  const auto by_version = [&](auto g, auto u) {
    if constexpr (std::is_same_v<Real, float>) {
      if (sh.f32) return f(g, u, std::true_type{});
    }
    f(g, u, std::false_type{});
  };
  const auto by_unroll = [&](auto g) {
    switch (sh.U) {
      case 1: by_version(g, std::integral_constant<int, 1>{}); break;
      case 2: by_version(g, std::integral_constant<int, 2>{}); break;
      default: by_version(g, std::integral_constant<int, 4>{}); break;
    }
  };
  if (sh.G > 1)
    by_unroll(std::integral_constant<int, cuda_detail::Vec16<Real>::n>{});
  else
    by_unroll(std::integral_constant<int, 1>{});
}

// The first kernel of a forward and, with launch.last_block, its twin that also does the
// finish in its last block (null where no twin is built: the twin exists for float data with
// 16-byte groups and one group in flight, the default shape, and for the bulk layout, so
// that no other kernel carries the finish's registers); in_block: whether the twin runs.
template <typename Kernel>
struct FirstKernel {
  Kernel plain, with_finish;
  bool in_block(const CudaLaunch& launch) const {
    return launch.last_block == 1 && with_finish != nullptr;
  }
  Kernel pick(const CudaLaunch& launch) const { return in_block(launch) ? with_finish : plain; }
};

// Version 3's kernel with U groups in flight (LB: its last-block-finish twin): the dual clip
// compiled in only when c > 0, the next group loaded ahead when asked (U = 1 only).
template <int U, bool LB>
auto f32_kernel(bool dual, bool prefetch) -> decltype(&ratio_clip_f32_kernel<U>) {
  if constexpr (U == 1) {
    if (prefetch)
      return dual ? ratio_clip_f32_kernel<1, LB, true, true>
                  : ratio_clip_f32_kernel<1, LB, false, true>;
  }
  return dual ? ratio_clip_f32_kernel<U, LB, true> : ratio_clip_f32_kernel<U, LB, false>;
}

// The finish in the first kernel's last block: the stream's ticket counter and where the
// statistics go; {null, null} when a finishing kernel follows instead.
InKernelFinish in_kernel_finish(bool in_block, double* stats, cudaStream_t stream) {
  if (!in_block) return {nullptr, nullptr};
  return {finish_counter(stream), stats};
}

// The finishing kernel, programmatically dependent on the row (or chunk) kernel unless
// launch.serial: on sm_90+ its block is scheduled while that kernel's last blocks run and
// waits for them in pdl_wait(), which hides its launch latency.
template <typename Real>
void launch_finish(const RatioClipArgs<Real>& a, const RowSums* sums, int64_t chunks,
                   double* stats, cudaStream_t stream, const CudaLaunch& launch) {
  cuda_detail::launch_programmatic_dependent(launch.serial == 0, ratio_clip_finish_kernel, dim3(1),
                                             dim3(kStatsBlock), 0, stream, sums, chunks, a.B, a.T,
                                             a.aggregation, a.normalizer, stats);
}

// The bulk layout's cut of the batch read as one row of n tokens: chunks of blockDim·4·U
// tokens (U = launch.unroll, 0: 1), a block per chunk with `arrays` float arrays of the chunk
// in dynamic shared memory, which `kernel` is allowed to take (above 48 KB it must opt in).
struct BulkPlan {
  int block;
  int64_t chunk, chunks;
  size_t smem;
};
template <typename Kernel>
BulkPlan plan_bulk(Kernel kernel, const CudaLaunch& launch, int64_t n, int arrays) {
  BulkPlan p;
  p.block = launch.block ? launch.block : kChunkBlock;
  p.chunk = int64_t(p.block) * 4 * (launch.unroll ? launch.unroll : 1);
  p.chunks = (n + p.chunk - 1) / p.chunk;
  p.smem = size_t(arrays * p.chunk) * sizeof(float);
  allow_dynamic_smem(reinterpret_cast<const void*>(kernel), p.smem);
  return p;
}

LogBoundsT<float> to_float(const LogBounds& b) {
  return {float(b.lo), float(b.hi), float(b.c), float(b.log_lo), float(b.log_hi), float(b.log_c)};
}

// The bulk-copy layout's launch: chunks of blockDim·4·U tokens of the batch read as one row
// (U = launch.unroll, 0: 1), a block per chunk with the chunk's arrays in dynamic shared
// memory, then the finish over the chunks' sums.
void launch_bulk(const RatioClipArgs<float>& a, const LogBounds& lb, double* stats,
                 cudaStream_t stream, const CudaLaunch& launch) {
  const RatioClipArgs<float> f = as_one_row(a);
  const auto run = [&](auto first) {
    const bool in_block = first.in_block(launch);
    const auto kernel = first.pick(launch);
    const BulkPlan p = plan_bulk(kernel, launch, f.T, a.mask ? 4 : 3);
    cuda_detail::StreamScratch scratch(size_t(p.chunks) * sizeof(RowSums), stream);
    RowSums* sums = scratch.as<RowSums>();
    cuda_detail::launch_programmatic_dependent(
        launch.dependent == 1, kernel, dim3(cuda_detail::grid_for_rows(p.chunks)), dim3(p.block),
        p.smem, stream, f, lb, to_float(lb), p.chunk, sums,
        in_kernel_finish(in_block, stats, stream));
    if (!in_block) launch_finish(f, sums, p.chunks, stats, stream, launch);
  };
  using K = decltype(&ratio_clip_bulk_kernel<1>);
  const int version = launch.version == 0 ? kDefaultVersion : launch.version;
  if (version == 3)
    run(FirstKernel<K>{ratio_clip_bulk_kernel<3>, ratio_clip_bulk_kernel<3, true>});
  else if (version == 2)
    run(FirstKernel<K>{ratio_clip_bulk_kernel<2>, ratio_clip_bulk_kernel<2, true>});
  else
    run(FirstKernel<K>{ratio_clip_bulk_kernel<1>, ratio_clip_bulk_kernel<1, true>});
}

}  // namespace

template <typename Real>
void ratio_clip_forward_cuda_async(const RatioClipArgs<Real>& a, double* stats,
                                   CUstream_st* stream, CudaLaunch launch) {
  constexpr const char* op = "ratio_clip_forward_cuda_async";
  ratio_clip_check_args(op, a);
  launch = resolve_launch(op, launch);
  RLFT_CHECK(stats != nullptr, op, ": stats (7 doubles on the device) is required");
  if (a.B * a.T == 0) {
    RLFT_CUDA_CHECK(cudaMemsetAsync(stats, 0, kStats * sizeof(double), stream));
    return;
  }
  const LogBounds lb = log_bounds(a);
  // The layout (ratio_clip_math.h, forward_layout): a block per row; per chunk of blockDim·U
  // groups (default 256 threads × one 16-byte group: 1024 float tokens); the batch as one row
  // cut into one chunk per resident block (flat); or flat's tokens through bulk copies.
  // `count` partial sums a row.
  const Layout layout =
      forward_layout(a, launch, launch.chunked == 3 && cuda_detail::sm90_or_newer());
  if constexpr (std::is_same_v<Real, float>) {
    if (layout == Layout::bulk) {
      launch_bulk(a, lb, stats, stream, launch);
      return;
    }
  }
  const bool flat = layout == Layout::flat, chunked = layout == Layout::chunks;
  const RatioClipArgs<Real> f = flat ? as_one_row(a) : a;
  const Shape sh = resolve_shape(f, launch);
  const int bd = launch.block ? launch.block : flat || chunked ? kChunkBlock : block_for(a.T);
  const int64_t ng = f.T / sh.G;
  // The first kernel (programmatically dependent on the stream's previous kernel with
  // launch.dependent), then the finishing one unless the first kernel's last block does it.
  const auto run = [&](auto first, const auto& bounds) {
    const bool in_block = first.in_block(launch);
    const auto kernel = first.pick(launch);
    const ChunkCut c = plan_chunks(first.plain, first.with_finish, flat, chunked, bd, sh.U, ng);
    cuda_detail::StreamScratch scratch(size_t(f.B * c.count) * sizeof(RowSums), stream);
    RowSums* sums = scratch.as<RowSums>();
    cuda_detail::launch_programmatic_dependent(
        launch.dependent == 1, kernel, dim3(cuda_detail::grid_for_rows(f.B * c.count)), dim3(bd), 0,
        stream, f, bounds, c.count, c.groups, sums, in_kernel_finish(in_block, stats, stream));
    if (!in_block) launch_finish(f, sums, c.count, stats, stream, launch);
  };
  if constexpr (std::is_same_v<Real, float>) {
    if (uses_f32_kernel(f, launch, sh.G)) {
      with_shape<Real>(sh, [&](auto, auto u, auto) {
        constexpr int U = decltype(u)::value;
        const bool dual = a.dual_clip > 0, prefetch = launch.prefetch == 1;
        FirstKernel<decltype(&ratio_clip_f32_kernel<U>)> first{
            f32_kernel<U, false>(dual, prefetch), nullptr};
        if constexpr (U == 1) first.with_finish = f32_kernel<U, true>(dual, prefetch);
        run(first, to_float(lb));
      });
      return;
    }
  }
  with_shape<Real>(sh, [&](auto g, auto u, auto f32) {
    constexpr int G = decltype(g)::value, U = decltype(u)::value;
    constexpr bool F32 = decltype(f32)::value;
    using K = decltype(&ratio_clip_rows_kernel<Real, G, U, F32>);
    K twin = nullptr;
    if constexpr (std::is_same_v<Real, float> && G == 4 && U == 1)
      twin = ratio_clip_rows_kernel<Real, G, U, F32, true>;
    run(FirstKernel<K>{ratio_clip_rows_kernel<Real, G, U, F32>, twin}, lb);
  });
}

template <typename Real>
RatioClipStats ratio_clip_forward_cuda(const RatioClipArgs<Real>& a, CUstream_st* stream,
                                       CudaLaunch launch) {
  ratio_clip_check_args("ratio_clip_forward_cuda", a);
  check_ratio_clip_launch("ratio_clip_forward_cuda", launch);
  RatioClipStats out;
  if (a.B * a.T == 0) return out;
  cuda_detail::StreamScratch scratch(kStats * sizeof(double), stream);
  double* dev_out = scratch.as<double>();
  ratio_clip_forward_cuda_async(a, dev_out, stream, launch);
  double host[kStats];
  RLFT_CUDA_CHECK(cudaMemcpyAsync(host, dev_out, sizeof(host), cudaMemcpyDeviceToHost, stream));
  RLFT_CUDA_CHECK(cudaStreamSynchronize(stream));
  out.loss = host[0];
  out.clip_frac_low = host[1];
  out.clip_frac_high = host[2];
  out.dual_clip_frac = host[3];
  out.approx_kl_k1 = host[4];
  out.approx_kl_k3 = host[5];
  out.tokens = host[6];
  return out;
}

template <typename Real>
void ratio_clip_backward_cuda(const RatioClipArgs<Real>& a, double g_loss, Real* g_logp,
                              bool accumulate, CUstream_st* stream, CudaLaunch launch,
                              const Real* g_loss_device) {
  constexpr const char* op = "ratio_clip_backward_cuda";
  ratio_clip_check_args(op, a);
  launch = resolve_launch(op, launch);
  if (a.B * a.T == 0) return;
  RLFT_CHECK(g_logp != nullptr, op, ": g_logp output is required");
  const bool needs_total = a.aggregation == Aggregation::token_mean && a.normalizer == 0.0;
  // token_mean without a normalizer divides by the global Σ m, known only after a pass over
  // the mask: counts per row, summed in row order (deterministic).
  cuda_detail::StreamScratch scratch(needs_total && a.mask ? (size_t(a.B) + 1) * sizeof(double) : 0,
                                     stream);
  const double* total_dev = nullptr;
  const double total_host = double(a.B) * double(a.T);
  const int bd = launch.block ? launch.block : block_for(a.T);
  if (needs_total && a.mask) {
    double* counts = scratch.as<double>();
    mask_count_kernel<Real>
        <<<cuda_detail::grid_for_rows(a.B), bd, 0, stream>>>(a.mask, a.B, a.T, counts);
    RLFT_CUDA_CHECK_LAUNCH();
    ordered_sum_kernel<<<1, kFinishBlock, 0, stream>>>(counts, a.B, counts + a.B);
    RLFT_CUDA_CHECK_LAUNCH();
    total_dev = counts + a.B;
  }
  // g_logp is written per token: vector groups also need it aligned like the inputs.
  CudaLaunch l = launch;
  if (!aligned16(g_logp)) l.vec = 1;
  const LogBounds lb = log_bounds(a);
  with_shape<Real>(resolve_shape(a, l), [&](auto g, auto u, auto f32) {
    ratio_clip_backward_kernel<Real, decltype(g)::value, decltype(u)::value, decltype(f32)::value>
        <<<cuda_detail::grid_for_rows(a.B), bd, 0, stream>>>(
            a, lb, g_loss, g_loss_device, total_dev, total_host, g_logp, accumulate);
  });
  RLFT_CUDA_CHECK_LAUNCH();
}

template <typename Real>
double ratio_clip_loss_unfused_cuda(const RatioClipArgs<Real>& a, Real* workspace,
                                    CUstream_st* stream) {
  constexpr const char* op = "ratio_clip_loss_unfused_cuda";
  ratio_clip_check_args(op, a);
  RLFT_CHECK(a.level == RatioLevel::token && a.aggregation == Aggregation::token_mean &&
                 !a.advantages_per_sequence && a.lower == nullptr && a.upper == nullptr &&
                 a.dual_clip == 0.0 && a.normalizer == 0.0,
             op, ": the baseline covers token-level PPO with token_mean only");
  const int64_t n = a.B * a.T;
  if (n == 0) return 0.0;
  RLFT_CHECK(workspace != nullptr, op, ": workspace [4·B·T] is required");
  Real *ratio = workspace, *s1 = workspace + n, *s2 = workspace + 2 * n, *l = workspace + 3 * n;
  const int bd = 256;
  const unsigned grid = elementwise_grid(n, bd);
  ratio_kernel<Real><<<grid, bd, 0, stream>>>(a.logp, a.old_logp, n, ratio);
  RLFT_CUDA_CHECK_LAUNCH();
  mul_kernel<Real><<<grid, bd, 0, stream>>>(ratio, a.advantages, n, s1);
  RLFT_CUDA_CHECK_LAUNCH();
  clamp_mul_kernel<Real><<<grid, bd, 0, stream>>>(ratio, Real(1.0 - a.eps_low),
                                                  Real(1.0 + a.eps_high), a.advantages, n, s2);
  RLFT_CUDA_CHECK_LAUNCH();
  neg_min_mask_kernel<Real><<<grid, bd, 0, stream>>>(s1, s2, a.mask, n, l);
  RLFT_CUDA_CHECK_LAUNCH();
  const int partial_blocks = 1024;
  cuda_detail::StreamScratch scratch((2 * partial_blocks + 1) * sizeof(double), stream);
  double* partial = scratch.as<double>();
  partial_sums_kernel<Real><<<partial_blocks, 256, 0, stream>>>(l, a.mask, n, partial);
  RLFT_CUDA_CHECK_LAUNCH();
  mean_from_partials_kernel<<<1, kFinishBlock, 0, stream>>>(partial, partial_blocks,
                                                            partial + 2 * partial_blocks);
  RLFT_CUDA_CHECK_LAUNCH();
  double loss = 0.0;
  RLFT_CUDA_CHECK(cudaMemcpyAsync(&loss, partial + 2 * partial_blocks, sizeof(double),
                                  cudaMemcpyDeviceToHost, stream));
  RLFT_CUDA_CHECK(cudaStreamSynchronize(stream));
  return loss;
}

int64_t ratio_clip_read_ceiling_cuda(const RatioClipArgs<float>& a, float* partials,
                                     int64_t capacity, CUstream_st* stream, CudaLaunch launch) {
  constexpr const char* op = "ratio_clip_read_ceiling_cuda";
  ratio_clip_check_args(op, a);
  check_ratio_clip_launch(op, launch);
  RLFT_CHECK(a.mask && !a.advantages_per_sequence && a.T % 4 == 0 && aligned16(a.logp) &&
                 aligned16(a.old_logp) && aligned16(a.mask) && aligned16(a.advantages),
             op, ": needs a mask, per-token advantages, T divisible by 4 and 16-byte aligned "
                 "arrays");
  if (a.B * a.T == 0) return 0;
  const int U = launch.unroll ? launch.unroll : 1;
  const auto check_capacity = [&](int64_t blocks) {
    RLFT_CHECK(partials != nullptr && blocks <= capacity, op, ": partials must hold ", blocks,
               " floats for this layout, capacity ", capacity);
  };
  if (launch.chunked == 3) {
    // The tensor memory accelerator's bulk copies, as the forward's bulk layout makes them.
    RLFT_CHECK(cuda_detail::sm90_or_newer(), op,
               ": bulk copies (launch.chunked = 3) need a GPU of compute capability 9.0 or newer");
    const RatioClipArgs<float> one = as_one_row(a);
    const BulkPlan p = plan_bulk(read_ceiling_bulk_kernel, launch, one.T, 4);
    check_capacity(p.chunks);
    cuda_detail::launch_programmatic_dependent(launch.dependent == 1, read_ceiling_bulk_kernel,
                                               dim3(cuda_detail::grid_for_rows(p.chunks)),
                                               dim3(p.block), p.smem, stream, one, p.chunk,
                                               partials);
    return p.chunks;
  }
  const bool flat = launch.chunked == 2, chunked = launch.chunked == 1;
  const RatioClipArgs<float> f = flat ? as_one_row(a) : a;
  const int bd = launch.block ? launch.block : flat || chunked ? kChunkBlock : block_for(a.T);
  const auto run = [&](auto kernel) {
    const ChunkCut c =
        plan_chunks(kernel, decltype(kernel){nullptr}, flat, chunked, bd, U, f.T / 4);
    const int64_t blocks = f.B * c.count;
    check_capacity(blocks);
    cuda_detail::launch_programmatic_dependent(launch.dependent == 1, kernel,
                                               dim3(cuda_detail::grid_for_rows(blocks)), dim3(bd),
                                               0, stream, f, c.count, c.groups, partials);
    return blocks;
  };
  if (U == 1) return run(read_ceiling_kernel<1>);
  if (U == 2) return run(read_ceiling_kernel<2>);
  return run(read_ceiling_kernel<4>);
}

void ratio_clip_timeline_cuda(uint64_t* buffer) {
  RLFT_CUDA_CHECK(cudaMemcpyToSymbol(c_timeline, &buffer, sizeof(buffer)));
}

template void ratio_clip_forward_cuda_async<float>(const RatioClipArgs<float>&, double*,
                                                  CUstream_st*, CudaLaunch);
template void ratio_clip_forward_cuda_async<double>(const RatioClipArgs<double>&, double*,
                                                   CUstream_st*, CudaLaunch);
template RatioClipStats ratio_clip_forward_cuda<float>(const RatioClipArgs<float>&, CUstream_st*,
                                                       CudaLaunch);
template RatioClipStats ratio_clip_forward_cuda<double>(const RatioClipArgs<double>&, CUstream_st*,
                                                        CudaLaunch);
template void ratio_clip_backward_cuda<float>(const RatioClipArgs<float>&, double, float*, bool,
                                              CUstream_st*, CudaLaunch, const float*);
template void ratio_clip_backward_cuda<double>(const RatioClipArgs<double>&, double, double*, bool,
                                               CUstream_st*, CudaLaunch, const double*);
template double ratio_clip_loss_unfused_cuda<float>(const RatioClipArgs<float>&, float*,
                                                    CUstream_st*);
template double ratio_clip_loss_unfused_cuda<double>(const RatioClipArgs<double>&, double*,
                                                     CUstream_st*);

}  // namespace rlft::kernels
