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
// Versions:
//   version 1 (this file): scalar loop per row, double accumulators, per-row partial sums
//     reduced in row order (deterministic for any thread count), OpenMP over rows when
//     B·T ≥ kParallelElements.
#include "kernels/ratio_clip.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "engine/error.h"
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
RatioClipStats ratio_clip_forward_cpu(const RatioClipArgs<Real>& a) {
  ratio_clip_check_args("ratio_clip_forward_cpu", a);
  const int64_t B = a.B, T = a.T;
  const double c = a.dual_clip;
  std::vector<RowSums> rows(static_cast<size_t>(B));

#pragma omp parallel for schedule(static) if (B * T >= kParallelElements)
  for (int64_t i = 0; i < B; ++i) {
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
    if (a.level == RatioLevel::token) {
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
  }

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
                             bool accumulate) {
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
#pragma omp parallel for schedule(static) if (parallel)
      for (int64_t i = 0; i < B; ++i) counts[size_t(i)] = Row<Real>(a, i).count();
      for (double n : counts) token_total += n;
    }
  }
  const bool needs_row_count = a.aggregation == Aggregation::seq_mean_token_mean ||
                               a.aggregation == Aggregation::only_token_mean;

#pragma omp parallel for schedule(static) if (parallel)
  for (int64_t i = 0; i < B; ++i) {
    const Row<Real> row(a, i);
    Real* g = g_logp + i * T;
    auto store = [&](int64_t t, double value) {
      g[t] = accumulate ? Real(double(g[t]) + value) : Real(value);
    };
    if (a.level == RatioLevel::token) {
      const double n = needs_row_count ? row.count() : 0.0;
      const double k = g_loss * row_coef(a.aggregation, a.normalizer, B, T, n, token_total);
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
  }
}

template RatioClipStats ratio_clip_forward_cpu<float>(const RatioClipArgs<float>&);
template RatioClipStats ratio_clip_forward_cpu<double>(const RatioClipArgs<double>&);
template void ratio_clip_backward_cpu<float>(const RatioClipArgs<float>&, double, float*, bool);
template void ratio_clip_backward_cpu<double>(const RatioClipArgs<double>&, double, double*, bool);
template void ratio_clip_check_args<float>(const char*, const RatioClipArgs<float>&);
template void ratio_clip_check_args<double>(const char*, const RatioClipArgs<double>&);

}  // namespace rlft::kernels
