// The per-token arithmetic of the PPO ratio-clip (kernels/ratio_clip.h has the math and the
// tie rules), compiled for both backends: kernels/cpu/ratio_clip.cpp calls it on the host and
// kernels/cuda/ratio_clip.cu in its kernels, so the two cannot drift apart. Everything is in
// double, as both backends accumulate.
#pragma once

#include <cstdint>
#include <type_traits>

#include "kernels/cuda_launch.h"
#include "kernels/ratio_clip.h"

#if defined(__CUDACC__)
#define RLFT_RC_HD __host__ __device__ __forceinline__
#else
#define RLFT_RC_HD inline
#endif

namespace rlft::kernels::ratio_clip_math {

constexpr double kLogRatioClamp = 20.0;  // ALGORITHMS.md §0: clamp the log-ratio before exp

enum Clip : int { kNone = 0, kLow = 1, kHigh = 2, kDual = 3 };

template <typename F>
struct TermT {
  F loss;     // l
  F d_ratio;  // dl/dr: −A on the unclipped branch, 0 where a clip binds
  int clip;   // which clip binds (kNone when none)
};
using Term = TermT<double>;

// l = −min(r·A, clip(r, lo, hi)·A), then the dual clip; ties keep the unclipped branch.
// The clamp is torch.clamp(r, lo, hi) written as std::min(std::max(r, lo), hi) spells it.
RLFT_RC_HD Term surrogate(double r, double A, double lo, double hi, double c) {
  const double lo_r = r < lo ? lo : r;
  const double clipped = hi < lo_r ? hi : lo_r;
  const double surr1 = r * A, surr2 = clipped * A;
  Term o;
  if (surr2 < surr1) {
    o = {-surr2, 0.0, A > 0 ? kHigh : kLow};
  } else {
    o = {-surr1, -A, kNone};
  }
  if (c > 0.0 && A < 0.0 && -c * A < o.loss) o = {-c * A, 0.0, kDual};
  return o;
}

// In the precision of x (CUDA version 3: float). NaN stays NaN.
template <typename F>
RLFT_RC_HD F clamp_log_ratio(F x) {
  const F a = x < F(-kLogRatioClamp) ? F(-kLogRatioClamp) : x;
  return F(kLogRatioClamp) < a ? F(kLogRatioClamp) : a;
}

RLFT_RC_HD bool log_ratio_inside(double x) { return x >= -kLogRatioClamp && x <= kLogRatioClamp; }

// ---- version 2 of the CUDA kernels (float data): the exp per token in float ------------------
// A clip binds when r = e^xc crosses a bound, i.e. when xc crosses the bound's log, and the
// side depends only on the sign of A (A > 0: r > hi binds, A < 0: r < lo binds; A = 0 never;
// the dual clip, A < 0: r > c, or lo > c on the clipped branch). So the decisions can be taken
// on the log-ratio, computed exactly in double from two floats, against log(lo), log(hi),
// log(c) computed once in double, and only the VALUE r = e^xc needs an exp: float's, whose
// relative error (≤ 2 ulp, ~2.4e-7) reaches the loss and the gradients of the unclipped
// tokens, while the clip decisions are the CPU's except where e^xc lies within an ulp of a
// bound (the CPU compares the rounded double e^xc; there the two may differ). Version 3 takes
// the same decisions all in float (F = float: the float log-ratio against the bounds' logs
// rounded to float).
template <typename F>
struct LogBoundsT {
  F lo, hi, c;              // 1 − eps_low, 1 + eps_high, the dual-clip constant (0: off)
  F log_lo, log_hi, log_c;  // their logs (log_c unused when c = 0)
};
using LogBounds = LogBoundsT<double>;

// The same Term as surrogate(e^xc, A, lo, hi, c), from xc and r = e^xc, in the precision F.
template <typename F>
RLFT_RC_HD TermT<F> surrogate_from_log_ratio(F xc, F r, F A, const LogBoundsT<F>& b) {
  TermT<F> o;
  if (A > F(0) && xc > b.log_hi)
    o = {-(b.hi * A), F(0), kHigh};
  else if (A < F(0) && xc < b.log_lo)
    o = {-(b.lo * A), F(0), kLow};
  else
    o = {-(r * A), -A, kNone};
  if (b.c > F(0) && A < F(0)) {
    const bool dual = o.clip == kLow ? -b.c * A < o.loss : xc > b.log_c;
    if (dual) o = {-b.c * A, F(0), kDual};
  }
  return o;
}

// Version 3's forward token without the dual clip (c = 0), as its statistics use it: the loss
// l and which clip binds as two flags (no clip code to compare), from the float clamped
// log-ratio xc, r = e^xc and A. The decisions and the products of
// surrogate_from_log_ratio<float> with c = 0 (the same bits: l is −(ρ·A) with ρ the bound that
// binds, else r). Tested against it on the host (RatioClipMath.TokenF32MatchesTheGeneralTerm).
struct TokenF32 {
  float loss;
  bool low, high;
};
RLFT_RC_HD TokenF32 token_f32_no_dual(float xc, float r, float A, const LogBoundsT<float>& b) {
  const bool high = A > 0.f && xc > b.log_hi;
  const bool low = A < 0.f && xc < b.log_lo;
  const float ratio = high ? b.hi : low ? b.lo : r;
  return {-(ratio * A), low, high};
}

// ---- the chunked layout of the CUDA forward (CudaLaunch::chunked) ----------------------------
// A row of ng token groups is cut into chunks of groups_per_chunk (= threads per block ·
// groups per thread) groups; block b of the grid takes chunk b % chunks of row b / chunks.
struct ChunkRange {
  int64_t row, g_begin, g_end;  // groups [g_begin, g_end) of the row
};

RLFT_RC_HD int64_t chunks_per_row(int64_t ng, int64_t groups_per_chunk) {
  return ng > 0 ? (ng + groups_per_chunk - 1) / groups_per_chunk : 1;
}

RLFT_RC_HD ChunkRange chunk_range(int64_t b, int64_t chunks, int64_t groups_per_chunk,
                                  int64_t ng) {
  const int64_t g_begin = (b % chunks) * groups_per_chunk;
  const int64_t end = g_begin + groups_per_chunk;
  return {b / chunks, g_begin, end < ng ? end : ng};
}

// How a row is cut: `count` chunks of `groups` groups (the last one shorter).
struct ChunkCut {
  int64_t count, groups;
};

// The flat layout's cut (CudaLaunch::chunked = 2): its one row of ng groups (the whole batch)
// into at most P chunks (P: the blocks the GPU keeps resident) of ⌈ng/P⌉ groups, so that no
// block reads more than one group beyond an even share.
RLFT_RC_HD ChunkCut flat_cut(int64_t ng, int64_t P) {
  const int64_t groups = ng > P ? (ng + P - 1) / P : 1;
  return {chunks_per_row(ng, groups), groups};
}

// ---- which layout the CUDA forward runs (host side; tested on the CPU) ----------------------
enum class Layout { rows, chunks, flat, bulk };

inline bool aligned16(const void* p) {
  return p == nullptr || reinterpret_cast<uintptr_t>(p) % 16 == 0;
}

// launch.chunked asks for a layout; the forward runs it where it applies and falls back:
//   chunks (1): the token level (else rows);
//   flat (2):   the token level with token_mean and per-token advantages, whose loss and
//               statistics are sums over all tokens, so the batch can be read as one row
//               (else rows);
//   bulk (3):   flat's cases with float data, scalar bounds, B·T a multiple of 4, 16-byte
//               aligned arrays, vector loads allowed (vec = 0) and a GPU with bulk copies
//               (sm90: compute capability 9.0+); else flat where flat applies, else rows.
template <typename Real>
Layout forward_layout(const RatioClipArgs<Real>& a, const CudaLaunch& l, bool sm90) {
  const bool token = a.level == RatioLevel::token;
  const bool flat = (l.chunked == 2 || l.chunked == 3) && token &&
                    a.aggregation == Aggregation::token_mean && !a.advantages_per_sequence;
  if (flat && l.chunked == 3 && std::is_same_v<Real, float> && l.vec == 0 && sm90 && !a.lower &&
      !a.upper && (a.B * a.T) % 4 == 0 && aligned16(a.logp) && aligned16(a.old_logp) &&
      aligned16(a.advantages) && aligned16(a.mask))
    return Layout::bulk;
  if (flat) return Layout::flat;
  if (l.chunked == 1 && token) return Layout::chunks;
  return Layout::rows;
}

// k3 = (e^x − 1) − x in float with float's relative accuracy at every x: for |x| < 1 the series
// x²·Σ_{k=0..10} x^k/(k+2)! (the remainder is below 4e-10 relative; e^x − 1 − x would cancel
// to a relative error of ~1e-7/x² there), otherwise (r − 1) − x with r = e^x given.
RLFT_RC_HD float k3_f32(float x, float r) {
  if (x > -1.0f && x < 1.0f) {
    float p = 1.0f / 479001600.0f;  // 1/12!
    p = p * x + 1.0f / 39916800.0f;
    p = p * x + 1.0f / 3628800.0f;
    p = p * x + 1.0f / 362880.0f;
    p = p * x + 1.0f / 40320.0f;
    p = p * x + 1.0f / 5040.0f;
    p = p * x + 1.0f / 720.0f;
    p = p * x + 1.0f / 120.0f;
    p = p * x + 1.0f / 24.0f;
    p = p * x + 1.0f / 6.0f;
    p = p * x + 0.5f;
    return x * x * p;
  }
  return (r - 1.0f) - x;
}

// coef_i of the header's aggregation table; token_total is D when no normalizer is given.
RLFT_RC_HD double row_coef(Aggregation agg, double normalizer, int64_t B, int64_t T, double n_row,
                           double token_total) {
  switch (agg) {
    case Aggregation::token_mean: {
      const double D = normalizer > 0 ? normalizer : token_total;
      return D > 0 ? 1.0 / D : 0.0;
    }
    case Aggregation::seq_mean_token_mean: {
      const double S = normalizer > 0 ? normalizer : double(B);
      return n_row > 0 && S > 0 ? 1.0 / (S * n_row) : 0.0;
    }
    case Aggregation::seq_mean_token_sum: {
      const double S = normalizer > 0 ? normalizer : double(B);
      return S > 0 ? 1.0 / S : 0.0;
    }
    case Aggregation::constant_norm: {
      const double L = normalizer > 0 ? normalizer : double(T);
      return B > 0 && L > 0 ? 1.0 / (double(B) * L) : 0.0;
    }
    case Aggregation::only_token_mean:
      return n_row > 0 ? 1.0 / n_row : 0.0;
  }
  return 0.0;
}

}  // namespace rlft::kernels::ratio_clip_math

#undef RLFT_RC_HD
