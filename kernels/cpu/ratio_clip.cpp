// ratio_clip, CPU reference — the manual.
//
// Computes (full statement in kernels/ratio_clip.h, ALGORITHMS.md §0):
//   r = exp(clamp(logp − old_logp, −20, 20)),  l = −min(r·A, clip(r, lo, hi)·A),
//   dual clip (A < 0): l = min(l, −c·A);  GSPO: r → s_i = exp(masked mean of the log-ratio);
//   Loss = Σ_i coef_i Σ_t m·l with coef_i from the aggregation mode;
//   statistics: clip fractions low / high / dual, approx-KL k1 and k3;
//   backward: dLoss/dlogp = g·coef_i·m·(dl/dr)·r·1[|log-ratio| ≤ 20], dl/dr ∈ {−A, 0}.
//
// Memory traffic per token (Real = 4 or 8 bytes):
//   forward : read logp, old_logp, advantages, mask         = 4·sizeof(Real)
//             (+2 with per-token bounds, −1 with per-sequence advantages or no mask); writes
//             one RatioClipStats. The sequence levels sweep each row twice, the second time
//             from cache (a row of T = 1k floats is 4 KB).
//   backward: the same reads + write g_logp                  = 5·sizeof(Real)
//             (+1 read of the mask for token_mean without a normalizer: the global token
//             count must be known before the first gradient is written).
// The unfused chain (log_ratio, clamp, exp, surr1, clip, surr2, min, mask, sums: each a pass
// that writes a [B, T] temporary) moves ≈ 20·sizeof(Real) per token. Compute per token: one
// exp; the kernel is memory- or exp-bound depending on cache residency.
//
// Tested against (tests/kernels/test_rl_kernels.cpp): an unfused double-precision reference
// written step by step (ratio, clamp, surrogates, min, dual clip, mask, aggregation), whose
// gradient comes from forward-mode dual numbers with the same tie rules and GSPO-token's
// stop-gradient written literally; central finite differences in double away from the kinks;
// hand-computed examples; inputs inside and outside the clip range with both signs of A,
// masked tokens, all-masked rows, per-token bounds, dual clip, every aggregation and level.
//
// Versions (both in this file; per-row partial sums reduced in row order, so deterministic
// for any thread count; OpenMP over rows when B·T ≥ kParallelElements):
//   version 1: a scalar loop per row in double with libm's exp, branching on the mask and on
//     which clip binds. On random data it is bound by those branches' mispredictions and the
//     exp (7.7 ns a token, float forward).
//   version 2 (the default): the same double arithmetic with no branch (the forward of every
//     level; the backward of the token level, the sequence levels' backward, which takes no
//     exp per token, runs version 1's loop): e^{xc} by exp_fast_f64 (kernels/cpu/fast_math.h,
//     within an ulp of libm's), each choice of surrogate_select a select, the row's sums in
//     8 double lanes, so the loop vectorises (cloned for AVX-512/AVX2). Absent per-token
//     inputs (mask, bounds, per-sequence advantages) are filled into per-thread row buffers
//     first. The two versions differ only by the ulp of each ratio and the order of the
//     row's sums (the tests hold both to the double reference).
#include "kernels/ratio_clip.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <type_traits>
#include <vector>

#include "engine/error.h"
#include "kernels/cpu/fast_math.h"
#include "kernels/cpu/parallel.h"
#include "kernels/cpu/target_clones.h"
#include "kernels/ratio_clip_math.h"

namespace rlft::kernels {

const char* aggregation_name(Aggregation a) {
  switch (a) {
    case Aggregation::token_mean:
      return "token_mean";
    case Aggregation::seq_mean_token_mean:
      return "seq_mean_token_mean";
    case Aggregation::seq_mean_token_sum:
      return "seq_mean_token_sum";
    case Aggregation::constant_norm:
      return "constant_norm";
    case Aggregation::only_token_mean:
      return "only_token_mean";
  }
  return "?";
}

const char* ratio_level_name(RatioLevel l) {
  switch (l) {
    case RatioLevel::token:
      return "token";
    case RatioLevel::sequence:
      return "sequence";
    case RatioLevel::sequence_token:
      return "sequence_token";
  }
  return "?";
}

namespace {

using namespace ratio_clip_math;

constexpr int64_t kParallelElements = int64_t(1) << 15;

// Per-row partial sums of the forward, reduced in row order afterwards.
struct RowSums {
  double n = 0, loss = 0, low = 0, high = 0, dual = 0, k1 = 0, k3 = 0;
};

template <typename Real>
struct Row {
  const RatioClipArgs<Real>& a;
  int64_t i;
  const Real* logp;
  const Real* old_logp;
  const Real* mask;
  const Real* lower;
  const Real* upper;
  const Real* adv;  // row of [B, T] advantages, or the single per-sequence value
  Row(const RatioClipArgs<Real>& args, int64_t row) : a(args), i(row) {
    const int64_t off = row * args.T;
    logp = args.logp + off;
    old_logp = args.old_logp + off;
    mask = args.mask ? args.mask + off : nullptr;
    lower = args.lower ? args.lower + off : nullptr;
    upper = args.upper ? args.upper + off : nullptr;
    adv = args.advantages_per_sequence ? args.advantages + row : args.advantages + off;
  }
  double m(int64_t t) const { return mask ? double(mask[t]) : 1.0; }
  double A(int64_t t) const { return a.advantages_per_sequence ? double(adv[0]) : double(adv[t]); }
  double lo(int64_t t) const { return lower ? double(lower[t]) : 1.0 - a.eps_low; }
  double hi(int64_t t) const { return upper ? double(upper[t]) : 1.0 + a.eps_high; }
  double count() const {
    if (!mask) return double(a.T);
    double n = 0;
    for (int64_t t = 0; t < a.T; ++t) n += double(mask[t]);
    return n;
  }
  // ρ_i = Σ m·x / Σ m (0 for an empty row); also returns Σ m.
  double mean_log_ratio(double* n_out) const {
    double n = 0, sx = 0;
    for (int64_t t = 0; t < a.T; ++t) {
      const double w = m(t);
      if (w == 0.0) continue;
      n += w;
      sx += w * (double(logp[t]) - double(old_logp[t]));
    }
    *n_out = n;
    return n > 0 ? sx / n : 0.0;
  }
};

// ---- version 2: no branches ---------------------------------------------------------------------

// One row's per-token inputs, every pointer set (absent ones point at filled row buffers).
template <typename Real>
struct TokenRow {
  int64_t T;
  const Real *logp, *old_logp, *adv, *mask;
  const double *lower, *upper;  // in double: the scalar bounds 1 ∓ eps are not rounded to Real
};

// The surrogate of ratio_clip_math::surrogate with selects instead of branches: the same
// comparisons in the same order, so the same loss, d_ratio and clip class.
struct SelectTerm {
  double loss, d_ratio, low, high, dual;  // the clip classes as 0/1
};
[[gnu::always_inline]] inline SelectTerm surrogate_select(double r, double A, double lo, double hi,
                                                          double c) {
  const double lo_r = r < lo ? lo : r;
  const double clipped = hi < lo_r ? hi : lo_r;
  const double surr1 = r * A, surr2 = clipped * A;
  const bool clip = surr2 < surr1;
  const double loss1 = clip ? -surr2 : -surr1;
  const bool dual = (c > 0.0) & (A < 0.0) & (-c * A < loss1);  // & not &&: no branch
  // The classes as nested selects of doubles (GCC's vectoriser takes these, not 0/1 from
  // bool logic such as !dual & clip).
  const double pos01 = A > 0 ? 1.0 : 0.0, neg01 = A > 0 ? 0.0 : 1.0;
  SelectTerm o;
  o.loss = dual ? -c * A : loss1;
  o.d_ratio = dual | clip ? 0.0 : -A;
  o.high = dual ? 0.0 : (clip ? pos01 : 0.0);
  o.low = dual ? 0.0 : (clip ? neg01 : 0.0);
  o.dual = dual ? 1.0 : 0.0;
  return o;
}

template <typename Real>
[[gnu::always_inline]] inline RowSums token_row_forward(const TokenRow<Real>& q, double c,
                                                        double seq_ratio) {
  // Chunks of kChunk tokens: a plain loop writes each token's seven terms (it vectorises: no
  // reduction in it), then the terms are added into 8 lanes per sum, token t into lane t mod 8,
  // so the order of additions depends on T alone. A short last chunk adds its whole lane groups,
  // then its last m mod 8 terms one by one into lanes 0, 1, …: the same sums as padding it with
  // zeros (a lane starts at +0 and is never −0), without the padding's 7·64 additions for a row
  // of T = 1 (PPO's flat batch) or a vector load of scalar stores.
  constexpr int kChunk = 64, kLanes = 8, kSums = 7;  // n, loss, low, high, dual, k1, k3
  double acc[kSums][kLanes] = {};
  double term[kSums][kChunk];
  for (int64_t t0 = 0; t0 < q.T; t0 += kChunk) {
    const int m = int(std::min<int64_t>(kChunk, q.T - t0));
    for (int j = 0; j < m; ++j) {
      const int64_t t = t0 + j;
      const double w = double(q.mask[t]);
      const double x = double(q.logp[t]) - double(q.old_logp[t]);
      const double xc = clamp_log_ratio(x), r = exp_fast_f64(xc);
      // the token's own ratio, or the sequence's s_i (the sequence levels; k1, k3 stay per token)
      const double rs = seq_ratio > 0.0 ? seq_ratio : r;
      const SelectTerm o = surrogate_select(rs, double(q.adv[t]), q.lower[t], q.upper[t], c);
      const bool on = w != 0.0;  // a masked token adds nothing, even a NaN of its inputs
      term[0][j] = on ? w : 0.0;
      term[1][j] = on ? w * o.loss : 0.0;
      term[2][j] = on ? w * o.low : 0.0;
      term[3][j] = on ? w * o.high : 0.0;
      term[4][j] = on ? w * o.dual : 0.0;
      term[5][j] = on ? -(w * x) : 0.0;
      term[6][j] = on ? w * ((r - 1.0) - xc) : 0.0;
    }
    const int full = m / kLanes * kLanes;  // whole lane groups, then m − full < 8 single terms
    for (int s = 0; s < kSums; ++s) {
      for (int j = 0; j < full; j += kLanes)
        for (int k = 0; k < kLanes; ++k) acc[s][k] += term[s][j + k];
      for (int k = 0; k < m - full; ++k) acc[s][k] += term[s][full + k];
    }
  }
  const auto total = [](const double* v) {
    return ((v[0] + v[1]) + (v[2] + v[3])) + ((v[4] + v[5]) + (v[6] + v[7]));
  };
  RowSums p;
  p.n = total(acc[0]);
  p.loss = total(acc[1]);
  p.low = total(acc[2]);
  p.high = total(acc[3]);
  p.dual = total(acc[4]);
  p.k1 = total(acc[5]);
  p.k3 = total(acc[6]);
  return p;
}

// g[t] (+)= k·w·(dl/dr)·r, 0 at masked tokens and where the clamp of the log-ratio binds.
template <typename Real, bool kAccumulate>
[[gnu::always_inline]] inline void token_row_backward(const TokenRow<Real>& q, double c, double k,
                                                      Real* g) {
  for (int64_t t = 0; t < q.T; ++t) {
    const double w = double(q.mask[t]);
    const double x = double(q.logp[t]) - double(q.old_logp[t]);
    const double r = exp_fast_f64(clamp_log_ratio(x));
    const SelectTerm o = surrogate_select(r, double(q.adv[t]), q.lower[t], q.upper[t], c);
    const bool on = (w != 0.0) & (k != 0.0) & (x >= -kLogRatioClamp) & (x <= kLogRatioClamp);
    const double value = on ? k * w * o.d_ratio * r : 0.0;
    g[t] = kAccumulate ? Real(double(g[t]) + value) : Real(value);
  }
}

RLFT_CLONES RowSums token_row_forward_f32(const TokenRow<float>& q, double c, double s) {
  return token_row_forward(q, c, s);
}
RLFT_CLONES RowSums token_row_forward_f64(const TokenRow<double>& q, double c, double s) {
  return token_row_forward(q, c, s);
}
RLFT_CLONES void token_row_backward_f32(const TokenRow<float>& q, double c, double k, float* g,
                                        bool accumulate) {
  if (accumulate)
    token_row_backward<float, true>(q, c, k, g);
  else
    token_row_backward<float, false>(q, c, k, g);
}
RLFT_CLONES void token_row_backward_f64(const TokenRow<double>& q, double c, double k, double* g,
                                        bool accumulate) {
  if (accumulate)
    token_row_backward<double, true>(q, c, k, g);
  else
    token_row_backward<double, false>(q, c, k, g);
}

// a and b the same value to the bit (−0 is not 0, a NaN is itself): a cached fill is reused.
template <typename F>
bool same_bits(F a, F b) {
  return std::memcmp(&a, &b, sizeof(F)) == 0;
}

// Row i's TokenRow: the given arrays, and for each absent one a per-thread buffer holding its
// constant (mask 1, the sequence's advantage). The bounds always come as double buffers: the
// given per-token bounds converted, or the scalar bounds 1 − eps_low, 1 + eps_high as version 1
// uses them (in Real they would move: float(0.8) = 0.8000000119 would clip a ratio of
// 0.8000000028 that version 1 leaves unclipped).
template <typename Real>
TokenRow<Real> token_row(const RatioClipArgs<Real>& a, const Row<Real>& row) {
  thread_local std::vector<Real> fill[2];      // mask, advantages
  thread_local std::vector<double> bounds[2];  // lower, upper
  const size_t T = size_t(a.T);
  const auto filled = [&](int slot, const Real* given, Real value) -> const Real* {
    if (given) return given;
    std::vector<Real>& b = fill[slot];
    if (b.size() != T || (T > 0 && !same_bits(b[0], value))) b.assign(T, value);
    return b.data();
  };
  thread_local bool constant[2] = {false, false};  // bounds[slot] holds one value throughout
  const auto bound = [&](int slot, const Real* given, double value) -> const double* {
    std::vector<double>& b = bounds[slot];
    if (given) {
      b.resize(T);
      for (size_t t = 0; t < T; ++t) b[t] = double(given[t]);
      constant[slot] = false;
    } else if (!constant[slot] || b.size() != T || (T > 0 && !same_bits(b[0], value))) {
      b.assign(T, value);
      constant[slot] = true;
    }
    return b.data();
  };
  return {a.T,
          row.logp,
          row.old_logp,
          a.advantages_per_sequence ? filled(1, nullptr, row.adv[0]) : row.adv,
          filled(0, row.mask, Real(1)),
          bound(0, row.lower, 1.0 - a.eps_low),
          bound(1, row.upper, 1.0 + a.eps_high)};
}

// `seq_ratio` > 0: the sequence levels' s_i in every token's surrogate (GSPO: with per-sequence
// advantages and scalar bounds, the same term at every token, as version 1's seq_term);
// 0: the token level (s_i = e^{clamp(ρ)} is never 0).
template <typename Real>
RowSums token_row_forward_v2(const RatioClipArgs<Real>& a, const Row<Real>& row,
                             double seq_ratio = 0.0) {
  if constexpr (std::is_same_v<Real, float>)
    return token_row_forward_f32(token_row(a, row), a.dual_clip, seq_ratio);
  else
    return token_row_forward_f64(token_row(a, row), a.dual_clip, seq_ratio);
}

template <typename Real>
void token_row_backward_v2(const RatioClipArgs<Real>& a, const Row<Real>& row, double k, Real* g,
                           bool accumulate) {
  if constexpr (std::is_same_v<Real, float>)
    token_row_backward_f32(token_row(a, row), a.dual_clip, k, g, accumulate);
  else
    token_row_backward_f64(token_row(a, row), a.dual_clip, k, g, accumulate);
}

// Version 0 (the default) is 2, except 1 for rows shorter than kMinV2Tokens (ratio_clip.h
// says why).
constexpr int64_t kMinV2Tokens = 16;
int resolve_version(const char* op, int version, int64_t T) {
  RLFT_CHECK(version >= 0 && version <= 2, op, ": unknown version ", version, " (0, 1 or 2)");
  return version == 0 ? (T < kMinV2Tokens ? 1 : 2) : version;
}

}  // namespace

template <typename Real>
void ratio_clip_check_args(const char* op, const RatioClipArgs<Real>& a) {
  RLFT_CHECK(a.B >= 0 && a.T >= 0, op, ": need B >= 0 and T >= 0, got B=", a.B, " T=", a.T);
  RLFT_CHECK(
      std::isfinite(a.eps_low) && std::isfinite(a.eps_high) && a.eps_low >= 0 && a.eps_high >= 0,
      op, ": clip ranges must be finite and >= 0, got eps_low=", a.eps_low,
      " eps_high=", a.eps_high);
  RLFT_CHECK(a.dual_clip == 0.0 || a.dual_clip > 1.0, op,
             ": dual_clip must be 0 (off) or > 1, got ", a.dual_clip);
  RLFT_CHECK(a.normalizer >= 0.0 && std::isfinite(a.normalizer), op,
             ": normalizer must be >= 0 (0 = from the batch), got ", a.normalizer);
  RLFT_CHECK(a.aggregation != Aggregation::only_token_mean || a.normalizer == 0.0, op,
             ": only_token_mean takes no normalizer, got ", a.normalizer);
  if (a.level == RatioLevel::sequence) {
    RLFT_CHECK(a.advantages_per_sequence, op,
               ": RatioLevel::sequence (GSPO) needs per-sequence advantages [B]");
    RLFT_CHECK(a.lower == nullptr && a.upper == nullptr, op,
               ": RatioLevel::sequence clips s_i with the scalar bounds; per-token bounds given");
  }
  if (a.B * a.T > 0)
    RLFT_CHECK(a.logp && a.old_logp && a.advantages, op,
               ": logp, old_logp and advantages are required");
}

template <typename Real>
RatioClipStats ratio_clip_forward_cpu(const RatioClipArgs<Real>& a, int version) {
  version = resolve_version("ratio_clip_forward_cpu", version, a.T);
  ratio_clip_check_args("ratio_clip_forward_cpu", a);
  const int64_t B = a.B, T = a.T;
  const double c = a.dual_clip;
  std::vector<RowSums> rows(static_cast<size_t>(B));

  parallel_for(B, B * T >= kParallelElements, [&](int64_t i) {
    const Row<Real> row(a, i);
    RowSums p;
    auto count_clip = [&p](int clip, double w) {
      if (clip == kLow)
        p.low += w;
      else if (clip == kHigh)
        p.high += w;
      else if (clip == kDual)
        p.dual += w;
    };
    if (a.level == RatioLevel::token && version == 2) {
      p = token_row_forward_v2(a, row);
    } else if (a.level == RatioLevel::token) {
      for (int64_t t = 0; t < T; ++t) {
        const double w = row.m(t);
        if (w == 0.0) continue;
        const double x = double(row.logp[t]) - double(row.old_logp[t]);
        const double xc = clamp_log_ratio(x), r = std::exp(xc);
        const Term term = surrogate(r, row.A(t), row.lo(t), row.hi(t), c);
        p.n += w;
        p.loss += w * term.loss;
        count_clip(term.clip, w);
        p.k1 -= w * x;
        p.k3 += w * ((r - 1.0) - xc);
      }
    } else if (version == 2) {
      double n;
      p = token_row_forward_v2(a, row, std::exp(clamp_log_ratio(row.mean_log_ratio(&n))));
    } else {
      double n;
      const double s = std::exp(clamp_log_ratio(row.mean_log_ratio(&n)));
      Term seq_term{};
      if (a.level == RatioLevel::sequence)
        seq_term = surrogate(s, row.A(0), row.lo(0), row.hi(0), c);
      for (int64_t t = 0; t < T; ++t) {
        const double w = row.m(t);
        if (w == 0.0) continue;
        const double x = double(row.logp[t]) - double(row.old_logp[t]);
        const double xc = clamp_log_ratio(x), r = std::exp(xc);
        const Term term = a.level == RatioLevel::sequence
                              ? seq_term
                              : surrogate(s, row.A(t), row.lo(t), row.hi(t), c);
        p.n += w;
        p.loss += w * term.loss;
        count_clip(term.clip, w);
        p.k1 -= w * x;
        p.k3 += w * ((r - 1.0) - xc);
      }
    }
    rows[size_t(i)] = p;
  });

  RowSums total;
  for (const RowSums& p : rows) {
    total.n += p.n;
    total.low += p.low;
    total.high += p.high;
    total.dual += p.dual;
    total.k1 += p.k1;
    total.k3 += p.k3;
  }
  RatioClipStats out;
  for (int64_t i = 0; i < B; ++i) {
    const RowSums& p = rows[size_t(i)];
    if (p.n == 0.0) continue;
    out.loss += row_coef(a.aggregation, a.normalizer, B, T, p.n, total.n) * p.loss;
  }
  out.tokens = total.n;
  if (total.n > 0) {
    out.clip_frac_low = total.low / total.n;
    out.clip_frac_high = total.high / total.n;
    out.dual_clip_frac = total.dual / total.n;
    out.approx_kl_k1 = total.k1 / total.n;
    out.approx_kl_k3 = total.k3 / total.n;
  }
  return out;
}

template <typename Real>
void ratio_clip_backward_cpu(const RatioClipArgs<Real>& a, double g_loss, Real* g_logp,
                             bool accumulate, int version) {
  version = resolve_version("ratio_clip_backward_cpu", version, a.T);
  ratio_clip_check_args("ratio_clip_backward_cpu", a);
  const int64_t B = a.B, T = a.T;
  if (B * T == 0) return;
  RLFT_CHECK(g_logp != nullptr, "ratio_clip_backward_cpu: g_logp output is required");
  const double c = a.dual_clip;
  const bool parallel = B * T >= kParallelElements;

  // token_mean without a normalizer divides by the global token count: one pass over the mask
  // first (row counts reduced in row order, so the sum does not depend on the thread count).
  double token_total = 0.0;
  if (a.aggregation == Aggregation::token_mean && a.normalizer == 0.0) {
    if (!a.mask) {
      token_total = double(B) * double(T);
    } else {
      std::vector<double> counts(static_cast<size_t>(B));
      parallel_for(B, parallel, [&](int64_t i) { counts[size_t(i)] = Row<Real>(a, i).count(); });
      for (double n : counts) token_total += n;
    }
  }
  const bool needs_row_count = a.aggregation == Aggregation::seq_mean_token_mean ||
                               a.aggregation == Aggregation::only_token_mean;

  parallel_for(B, parallel, [&](int64_t i) {
    const Row<Real> row(a, i);
    Real* g = g_logp + i * T;
    auto store = [&](int64_t t, double value) {
      g[t] = accumulate ? Real(double(g[t]) + value) : Real(value);
    };
    if (a.level == RatioLevel::token) {
      const double n = needs_row_count ? row.count() : 0.0;
      const double k = g_loss * row_coef(a.aggregation, a.normalizer, B, T, n, token_total);
      if (version == 2) {
        token_row_backward_v2(a, row, k, g, accumulate);
        return;
      }
      for (int64_t t = 0; t < T; ++t) {
        const double w = row.m(t);
        if (w == 0.0 || k == 0.0) {
          store(t, 0.0);
          continue;
        }
        const double x = double(row.logp[t]) - double(row.old_logp[t]);
        if (!log_ratio_inside(x)) {  // clamp cuts the gradient
          store(t, 0.0);
          continue;
        }
        const double r = std::exp(x);
        const Term term = surrogate(r, row.A(t), row.lo(t), row.hi(t), c);
        store(t, k * w * term.d_ratio * r);
      }
    } else {
      // Both sequence levels: d s_{i,t}/d logp_t = s_i·1[|ρ| ≤ 20] (GSPO through the mean:
      // n_i·coef_i·(dl_i/ds)·s·m_t/n_i; GSPO-token through its own token only).
      double n;
      const double rho = row.mean_log_ratio(&n);
      const double s = std::exp(clamp_log_ratio(rho));
      const double k = log_ratio_inside(rho)
                           ? g_loss * row_coef(a.aggregation, a.normalizer, B, T, n, token_total)
                           : 0.0;
      const double seq_d = a.level == RatioLevel::sequence
                               ? surrogate(s, row.A(0), row.lo(0), row.hi(0), c).d_ratio
                               : 0.0;
      for (int64_t t = 0; t < T; ++t) {
        const double w = row.m(t);
        if (w == 0.0 || k == 0.0) {
          store(t, 0.0);
          continue;
        }
        const double d = a.level == RatioLevel::sequence
                             ? seq_d
                             : surrogate(s, row.A(t), row.lo(t), row.hi(t), c).d_ratio;
        store(t, k * w * d * s);
      }
    }
  });
}

template RatioClipStats ratio_clip_forward_cpu<float>(const RatioClipArgs<float>&, int);
template RatioClipStats ratio_clip_forward_cpu<double>(const RatioClipArgs<double>&, int);
template void ratio_clip_backward_cpu<float>(const RatioClipArgs<float>&, double, float*, bool,
                                             int);
template void ratio_clip_backward_cpu<double>(const RatioClipArgs<double>&, double, double*, bool,
                                              int);
template void ratio_clip_check_args<float>(const char*, const RatioClipArgs<float>&);
template void ratio_clip_check_args<double>(const char*, const RatioClipArgs<double>&);

}  // namespace rlft::kernels
