// gae, CUDA — the manual.
//
// Computes (full statement in kernels/gae.h, ALGORITHMS.md §2 and §4):
//   classic, time-major [T, N]:
//     δ_t = r_t + γ·V(s_{t+1})·(1 − terminated_t) − V(s_t),  c_t = γλ·(1 − end_t)
//     A_t = δ_t + c_t·A_{t+1},  A_T = 0,  returns = A + V
//   LLM rows [B, T]: the same recursion over the masked (response) positions of each row,
//     with the value of the NEXT masked position (0 after the last) in δ.
//
// The recursion is the composition of affine maps f_t(a) = δ_t + c_t·a: A_t = f_t(A_{t+1}).
// Composition is associative, f_s∘f_t = (c_s·c_t, δ_s + c_s·δ_t) as (c, δ) pairs, so the maps
// of a segment of steps fold into one pair, and A at the start of every segment follows from
// a suffix scan of the segments' pairs. Where c_s = 0 (an episode end) the composition and
// the application return δ_s exactly instead of δ_s + 0·(…), as the CPU drops the carry
// instead of multiplying it by 0 (a NaN or inf after an episode end must not leak back).
//
// The masked-rows form needs the value of the next masked position, which is not local. It
// is itself a scan of maps: x ↦ (m_t ? v_t : x), i.e. (c, δ) = (0, v_t) at a masked position
// and the identity (1, 0) elsewhere; scanned from the back it gives, at every position, the
// value of the next masked position (the "next masked position" link, computed without
// storing indices). Then δ_t = r_t + γ·next_t − v_t and a second scan runs the GAE maps
// (γλ, δ_t) at masked positions and the identity at unmasked ones, so unmasked positions pass
// the carry through untouched, which is exactly "the recursion skips them". Unmasked
// positions output 0; their rewards and values are never used.
//
// Memory traffic per element (Real = 4 or 8 bytes), both versions:
//   classic: read rewards, values, next_values, terminated, episode_end; write advantages,
//            returns                                                = 7·sizeof(Real)
//   rows   : read rewards, values, action_mask; write advantages, returns = 5·sizeof(Real)
// (minus one read per absent flag array, one write without returns). Compute: a few double
// flops per element (version 2: plus one (classic) or two (rows) 5-step shuffle scans of
// double pairs per 8 elements).
//
// Tested against (tests/kernels/test_cuda_kernels.cpp): gae_cpu and gae_masked_rows_cpu
// (themselves tested against CleanRL's and DeepSpeed-Chat's loops), every version, float and
// double: random terminations and truncations with NaN next values at terminations, T×N from
// 1×1 to 4099×3 and odd sizes, masks with holes, all-masked and unmasked rows, NaN rewards
// and values at unmasked positions, null optional arrays, γλ = 0 and 1.
//
// Versions:
//   version 1 (gae_kernel1 / gae_rows_kernel1): one thread per environment (or row) walking
//     back in time, the CPU loop. Coalesced in the time-major form (threads = consecutive
//     environments), row-strided in the rows form. Needs N ≥ ~100k threads to hide the
//     latency of T dependent steps.
//   version 2 (gae_scan_kernel2<…, kRows>): a block of 256 threads owns a tile of 8
//     sequences; thread (x, y) owns 8 consecutive steps (segment y of 32) of sequence x in a
//     chunk of 256 steps, and the block walks the chunks from the back with the carry. Per
//     chunk: each thread folds its 8 maps into one pair; warp x suffix-scans the 32 segment
//     pairs of sequence x with shuffles (5 steps) and applies them to the carry; each thread
//     walks its 8 steps again with its incoming A. The 8 sequences of a tile are adjacent in
//     the time-major form, so a warp's loads for one step are 4 runs of 8 consecutive
//     environments (32 B per run in float: whole sectors); in the rows form each thread's 8
//     steps are one 32-byte sector. Latency per chunk is a few memory round trips whatever T,
//     so 8 sequences × 4096 steps take 16 chunks instead of 4096 dependent steps.
//     Registers: ≤ 64 in the rows form (4 blocks, 1024 threads per SM), ≤ 80 in the
//     time-major form (3 blocks; capping it at 64 spilled in float).
//   Dispatcher (version 0): version 1 for the time-major form when N ≥ 1024 × (number of SMs)
//     (enough threads to hide the latency of the sequential walk, and version 1 moves the
//     same bytes with less work); version 2 otherwise and always for the rows form (version
//     1's row-strided access wastes most of each sector there).
//   Not done: a cross-block scan (decoupled look-back) for a handful of sequences with T in
//     the millions; one block per tile already makes T = 4096 a few microseconds.
#include <cuda_runtime.h>

#include <cstdint>

#include "engine/error.h"
#include "kernels/cuda/common.cuh"
#include "kernels/gae.h"

namespace rlft::kernels {
namespace {

using cuda_detail::kFullMask;
using cuda_detail::kWarp;

constexpr int kTileSeqs = 8;   // sequences per block (x)
constexpr int kSegments = 32;  // segments per chunk (y), one warp lane each in the scan
constexpr int kSteps = 8;      // consecutive steps per thread
constexpr int kChunk = kSegments * kSteps;      // 256 steps per chunk
constexpr int kBlock2 = kTileSeqs * kSegments;  // 256 threads
static_assert(kSegments == kWarp, "the segment scan is one warp");
static_assert(kBlock2 / kWarp == kTileSeqs, "one warp per sequence of the tile");

template <typename Real>
struct GaeParams {
  const Real* rewards;
  const Real* values;
  const Real* next_values;  // classic only
  const Real* terminated;   // classic only, may be null
  const Real* episode_end;  // classic only, may be null
  const Real* mask;         // rows only, may be null
  int64_t T, S;             // steps per sequence, sequences (N or B)
  double gamma, gl;         // γ and γλ
  Real* advantages;
  Real* returns;  // may be null
};

// f(a) = δ + c·a, with the exact carry drop at c = 0.
__device__ __forceinline__ double apply(double c, double d, double a) {
  return c == 0.0 ? d : d + c * a;
}

// ---- version 1: one thread per sequence ------------------------------------------------------
template <typename Real>
__global__ void gae_kernel1(GaeParams<Real> p) {
  const int64_t n = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (n >= p.S) return;
  double carry = 0.0;
  for (int64_t t = p.T - 1; t >= 0; --t) {
    const int64_t k = t * p.S + n;
    const bool term = p.terminated && p.terminated[k] != Real(0);
    const bool end = term || (p.episode_end && p.episode_end[k] != Real(0));
    const double v = double(p.values[k]);
    const double delta =
        double(p.rewards[k]) + (term ? 0.0 : p.gamma * double(p.next_values[k])) - v;
    const double a = delta + (end ? 0.0 : p.gl * carry);
    carry = a;
    p.advantages[k] = Real(a);
    if (p.returns) p.returns[k] = Real(a + v);
  }
}

template <typename Real>
__global__ void gae_rows_kernel1(GaeParams<Real> p) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= p.S) return;
  double carry = 0.0, next_value = 0.0;  // A and V of the next masked position
  for (int64_t t = p.T - 1; t >= 0; --t) {
    const int64_t k = i * p.T + t;
    if (p.mask && p.mask[k] == Real(0)) {
      p.advantages[k] = Real(0);
      if (p.returns) p.returns[k] = Real(0);
      continue;
    }
    const double v = double(p.values[k]);
    carry = double(p.rewards[k]) + p.gamma * next_value - v + p.gl * carry;
    next_value = v;
    p.advantages[k] = Real(carry);
    if (p.returns) p.returns[k] = Real(carry + v);
  }
}

// ---- version 2: tiles of 8 sequences, chunked parallel scan over time ----------------------

// Shared state of the segment scan. Rows padded to 9 so that warp x reading column x of 32
// rows hits different banks.
struct ScanSmem {
  double c[kSegments][kTileSeqs + 1];
  double d[kSegments][kTileSeqs + 1];
  double in[kSegments][kTileSeqs + 1];
};

// Thread (x, y) passes the folded map (fc, fd) of its segment; returns the value entering its
// segment from the later side (the carry for the last segment of the chunk). Warp x scans the
// 32 segments of sequence x and advances `carry` (held, identical, by the lanes of warp x) over
// the whole chunk. Two barriers; safe to call back to back (see the comments inside).
__device__ __forceinline__ double segment_scan(double fc, double fd, double& carry, ScanSmem& sm) {
  const int x = threadIdx.x % kTileSeqs, y = threadIdx.x / kTileSeqs;
  const int w = threadIdx.x / kWarp, lane = threadIdx.x % kWarp;
  sm.c[y][x] = fc;
  sm.d[y][x] = fd;
  // Every thread has written its pair; and every lane of the previous call has finished
  // reading sm.in (it came here only after its own read).
  __syncthreads();
  double c = sm.c[lane][w], d = sm.d[lane][w];
  // Inclusive suffix scan over the lanes: lane y ends with F_y∘F_{y+1}∘…∘F_31.
#pragma unroll
  for (int o = 1; o < kWarp; o <<= 1) {
    const double c2 = __shfl_down_sync(kFullMask, c, o);
    const double d2 = __shfl_down_sync(kFullMask, d, o);
    if (lane + o < kWarp) {
      d = apply(c, d, d2);
      c = c * c2;
    }
  }
  // Entering segment y: the suffix of segment y + 1 applied to the carry (lane 31: the carry).
  double cn = __shfl_down_sync(kFullMask, c, 1), dn = __shfl_down_sync(kFullMask, d, 1);
  if (lane == kWarp - 1) {
    cn = 1.0;
    dn = 0.0;
  }
  const double c0 = __shfl_sync(kFullMask, c, 0), d0 = __shfl_sync(kFullMask, d, 0);
  sm.in[lane][w] = apply(cn, dn, carry);
  carry = apply(c0, d0, carry);
  // sm.in is complete; every warp has finished reading sm.c / sm.d, so the next call may
  // overwrite them.
  __syncthreads();
  return sm.in[y][x];
}

template <typename Real, bool kRows>
__global__ void __launch_bounds__(kBlock2, kRows ? 4 : 3) gae_scan_kernel2(GaeParams<Real> p) {
  __shared__ ScanSmem sm;
  const int x = threadIdx.x % kTileSeqs, y = threadIdx.x / kTileSeqs;
  const int64_t seq = int64_t(blockIdx.x) * kTileSeqs + x;
  const bool valid = seq < p.S;
  const int64_t T = p.T;
  // Element (seq, t): classic [T, N] at t·N + seq; rows [B, T] at seq·T + t.
  auto index = [&](int64_t t) { return kRows ? seq * T + t : t * p.S + seq; };
  double carry_a = 0.0, carry_v = 0.0;  // per warp: A and (rows) next value after the chunk
  const int64_t chunks = (T + kChunk - 1) / kChunk;
  for (int64_t ch = chunks - 1; ch >= 0; --ch) {
    const int64_t t0 = ch * kChunk + int64_t(y) * kSteps;
    // Load the segment (all loads first, then the arithmetic).
    Real r[kSteps], v[kSteps];
    bool flag[kSteps];  // rows: masked; classic: episode end
    bool term[kSteps];  // classic: terminated (no bootstrap)
    Real nv[kSteps];    // classic: next value
#pragma unroll
    for (int i = 0; i < kSteps; ++i) {
      const int64_t t = t0 + i;
      flag[i] = false;
      term[i] = false;
      r[i] = v[i] = nv[i] = Real(0);
      if (valid && t < T) {
        const int64_t k = index(t);
        r[i] = p.rewards[k];
        v[i] = p.values[k];
        if (kRows) {
          flag[i] = !p.mask || p.mask[k] != Real(0);
        } else {
          term[i] = p.terminated && p.terminated[k] != Real(0);
          flag[i] = term[i] || (p.episode_end && p.episode_end[k] != Real(0));
          nv[i] = p.next_values[k];
        }
      }
    }
    auto inside = [&](int i) { return valid && t0 + i < T; };
    double delta[kSteps];
    if (kRows) {
      // Scan 1: the value of the next masked position. Seen from before the segment, that is
      // the value at the segment's earliest masked position: the map (0, v) of that position,
      // or the identity (1, 0) when the segment has none.
      double gc = 1.0, gd = 0.0;
#pragma unroll
      for (int i = kSteps - 1; i >= 0; --i)
        if (inside(i) && flag[i]) {
          gc = 0.0;
          gd = double(v[i]);
        }
      double next = segment_scan(gc, gd, carry_v, sm);
#pragma unroll
      for (int i = kSteps - 1; i >= 0; --i) {
        delta[i] = 0.0;
        if (inside(i) && flag[i]) {
          delta[i] = double(r[i]) + p.gamma * next - double(v[i]);
          next = double(v[i]);
        }
      }
    } else {
#pragma unroll
      for (int i = 0; i < kSteps; ++i)
        delta[i] = inside(i)
                       ? double(r[i]) + (term[i] ? 0.0 : p.gamma * double(nv[i])) - double(v[i])
                       : 0.0;
    }
    // Fold the segment's GAE maps: rows — (γλ, δ) where masked, identity elsewhere; classic —
    // (γλ·(1 − end), δ).
    double fc = 1.0, fd = 0.0;
#pragma unroll
    for (int i = kSteps - 1; i >= 0; --i) {
      if (!inside(i)) continue;
      if (kRows) {
        if (!flag[i]) continue;
        fd = apply(p.gl, delta[i], fd);
        fc = p.gl * fc;
      } else {
        const double c = flag[i] ? 0.0 : p.gl;
        fd = apply(c, delta[i], fd);
        fc = c * fc;
      }
    }
    double a = segment_scan(fc, fd, carry_a, sm);
    // Walk the segment from the back with the incoming A.
#pragma unroll
    for (int i = kSteps - 1; i >= 0; --i) {
      if (!inside(i)) continue;
      const int64_t k = index(t0 + i);
      if (kRows && !flag[i]) {
        p.advantages[k] = Real(0);
        if (p.returns) p.returns[k] = Real(0);
        continue;
      }
      a = apply(kRows ? p.gl : (flag[i] ? 0.0 : p.gl), delta[i], a);
      p.advantages[k] = Real(a);
      if (p.returns) p.returns[k] = Real(a + double(v[i]));
    }
  }
}

// ---- host side -----------------------------------------------------------------------------

void check_discount(const char* op, double gamma, double lambda) {
  RLFT_CHECK(gamma >= 0.0 && gamma <= 1.0 && lambda >= 0.0 && lambda <= 1.0, op,
             ": gamma and lambda must lie in [0, 1], got gamma=", gamma, " lambda=", lambda);
}

template <typename Real, bool kRows>
void launch(const char* op, const GaeParams<Real>& p, int version, cudaStream_t stream) {
  RLFT_CHECK(version >= 0 && version <= 2, op, ": version must be 0, 1 or 2, got ", version);
  if (version == 0)
    version = !kRows && p.S >= int64_t(1024) * cuda_detail::multiprocessors() ? 1 : 2;
  if (version == 1) {
    const int bd = 128;
    const int64_t blocks = (p.S + bd - 1) / bd;
    RLFT_CHECK(blocks <= 2147483647, op, ": too many sequences (", p.S, ")");
    if (kRows)
      gae_rows_kernel1<Real><<<unsigned(blocks), bd, 0, stream>>>(p);
    else
      gae_kernel1<Real><<<unsigned(blocks), bd, 0, stream>>>(p);
  } else {
    const int64_t blocks = (p.S + kTileSeqs - 1) / kTileSeqs;
    RLFT_CHECK(blocks <= 2147483647, op, ": too many sequences (", p.S, ")");
    gae_scan_kernel2<Real, kRows><<<unsigned(blocks), kBlock2, 0, stream>>>(p);
  }
  RLFT_CUDA_CHECK_LAUNCH();
}

}  // namespace

template <typename Real>
void gae_cuda(const Real* rewards, const Real* values, const Real* next_values,
              const Real* terminated, const Real* episode_end, int64_t T, int64_t N, Real gamma,
              Real lambda, Real* advantages, Real* returns, CUstream_st* stream, int version) {
  constexpr const char* op = "gae_cuda";
  RLFT_CHECK(T >= 0 && N >= 0, op, ": need T >= 0 and N >= 0, got T=", T, " N=", N);
  check_discount(op, double(gamma), double(lambda));
  if (T * N == 0) return;
  RLFT_CHECK(rewards && values && next_values && advantages, op,
             ": rewards, values, next_values and advantages are required");
  GaeParams<Real> p{rewards,    values, next_values, terminated,    episode_end,
                    nullptr,    T,      N,           double(gamma), double(gamma) * double(lambda),
                    advantages, returns};
  launch<Real, false>(op, p, version, stream);
}

template <typename Real>
void gae_masked_rows_cuda(const Real* rewards, const Real* values, const Real* action_mask,
                          int64_t B, int64_t T, Real gamma, Real lambda, Real* advantages,
                          Real* returns, CUstream_st* stream, int version) {
  constexpr const char* op = "gae_masked_rows_cuda";
  RLFT_CHECK(B >= 0 && T >= 0, op, ": need B >= 0 and T >= 0, got B=", B, " T=", T);
  check_discount(op, double(gamma), double(lambda));
  if (B * T == 0) return;
  RLFT_CHECK(rewards && values && advantages, op, ": rewards, values and advantages are required");
  GaeParams<Real> p{rewards,     values, nullptr, nullptr,       nullptr,
                    action_mask, T,      B,       double(gamma), double(gamma) * double(lambda),
                    advantages,  returns};
  launch<Real, true>(op, p, version, stream);
}

template void gae_cuda<float>(const float*, const float*, const float*, const float*, const float*,
                              int64_t, int64_t, float, float, float*, float*, CUstream_st*, int);
template void gae_cuda<double>(const double*, const double*, const double*, const double*,
                               const double*, int64_t, int64_t, double, double, double*, double*,
                               CUstream_st*, int);
template void gae_masked_rows_cuda<float>(const float*, const float*, const float*, int64_t,
                                          int64_t, float, float, float*, float*, CUstream_st*, int);
template void gae_masked_rows_cuda<double>(const double*, const double*, const double*, int64_t,
                                           int64_t, double, double, double*, double*, CUstream_st*,
                                           int);

}  // namespace rlft::kernels
