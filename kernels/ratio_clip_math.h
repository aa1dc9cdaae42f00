// The per-token arithmetic of the PPO ratio-clip (kernels/ratio_clip.h has the math and the
// tie rules), compiled for both backends: kernels/cpu/ratio_clip.cpp calls it on the host and
// kernels/cuda/ratio_clip.cu in its kernels, so the two cannot drift apart. Everything is in
// double, as both backends accumulate.
#pragma once

#include <cstdint>

#include "kernels/ratio_clip.h"

#if defined(__CUDACC__)
#define RLFT_RC_HD __host__ __device__ __forceinline__
#else
#define RLFT_RC_HD inline
#endif

namespace rlft::kernels::ratio_clip_math {

constexpr double kLogRatioClamp = 20.0;  // ALGORITHMS.md §0: clamp the log-ratio before exp

enum Clip : int { kNone = 0, kLow = 1, kHigh = 2, kDual = 3 };

struct Term {
  double loss;     // l
  double d_ratio;  // dl/dr: −A on the unclipped branch, 0 where a clip binds
  int clip;        // which clip binds (kNone when none)
};

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

RLFT_RC_HD double clamp_log_ratio(double x) {
  const double a = x < -kLogRatioClamp ? -kLogRatioClamp : x;
  return kLogRatioClamp < a ? kLogRatioClamp : a;
}

RLFT_RC_HD bool log_ratio_inside(double x) { return x >= -kLogRatioClamp && x <= kLogRatioClamp; }

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
