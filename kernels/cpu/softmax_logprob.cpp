// softmax_logprob, CPU reference — the manual.
//
// Computes, per row n of logits [N, V] with z = logits/τ and target t (see the header):
//   lse = log Σ exp(z),  logp = z_t − lse,  H = −Σ p log p = lse − Σ p·z,
//   dlogits = (1/τ)·( g_logp·(onehot(t) − p) − g_H·p·(log p + H) ).
//
// One pass forward (online softmax, Milakov & Gimelshein 2018, extended to the entropy): the
// running max m, s = Σ e^{z−m} and u = Σ e^{z−m}·(z−m) are updated element by element; when a
// new max m' arrives both sums are rescaled by α = e^{m−m'}: s' = α·s + 1,
// u' = α·(u + (m−m')·s). At the end lse = m + log s and H = log s − u/s. Keeping u relative
// to the max (instead of Σ e·z) avoids the cancellation lse − Σp·z when all logits share a
// large offset.
//
// Memory traffic per element of the [N, V] block (Real = 4 or 8 bytes):
//   forward  : read logits once                          = 1·sizeof(Real)
//   backward : read logits, write dlogits                = 2·sizeof(Real) (3 with accumulate)
// versus the unfused chain (max pass, sum pass, write log_softmax, read it back for the
// gather and again for the entropy) ≈ 5·sizeof(Real) forward. Compute: one exp per element
// in each direction, so on a CPU without a vector exp the kernel is exp-bound, not
// memory-bound (see BENCHMARKS.md, "RL kernels (CPU)").
//
// Tested against (tests/kernels/test_rl_kernels.cpp): the unfused double-precision chain
// log_softmax(row) → gather, entropy = −Σ p·log_softmax, and its backward by the chain rule
// (gather backward, then log_softmax backward); the backward also by central finite
// differences in double; spiked logits, V = 1, V = 32k, ignore_index rows, −inf logits,
// temperature, hand-computed V = 2 example.
//
// Versions:
//   version 1 (this file): scalar online softmax, double accumulators for float and double,
//     OpenMP over rows when N·V ≥ kParallelElements. The plainest loop that is one pass.
#include "kernels/softmax_logprob.h"

#include <cmath>
#include <limits>

#include "engine/error.h"

namespace rlft::kernels {
namespace {

// Below this many logits the whole call stays on one thread (thread start-up costs more).
constexpr int64_t kParallelElements = int64_t(1) << 15;

constexpr double kNegInf = -std::numeric_limits<double>::infinity();

void check_args(const char* op, const void* logits, int64_t N, int64_t V, int64_t ld_logits,
                const int64_t* targets, int64_t ignore_index, double temperature) {
  RLFT_CHECK(N >= 0 && V >= 1, op, ": need N >= 0 and V >= 1, got N=", N, " V=", V);
  RLFT_CHECK(ld_logits >= V, op, ": row stride ", ld_logits, " < V=", V);
  RLFT_CHECK(temperature > 0 && std::isfinite(temperature), op, ": temperature must be > 0, got ",
             temperature);
  if (N == 0) return;
  RLFT_CHECK(logits != nullptr && targets != nullptr, op, ": logits and targets are required");
  for (int64_t n = 0; n < N; ++n) {
    const int64_t t = targets[n];
    RLFT_CHECK(t == ignore_index || (t >= 0 && t < V), op, ": targets[", n, "]=", t,
               " outside [0, V=", V, ") and not ignore_index=", ignore_index);
  }
}

}  // namespace

template <typename Real>
void softmax_logprob_forward_cpu(const Real* logits, int64_t N, int64_t V, int64_t ld_logits,
                                 const int64_t* targets, int64_t ignore_index, Real temperature,
                                 Real* logp, Real* entropy, Real* lse) {
  constexpr const char* op = "softmax_logprob_forward_cpu";
  check_args(op, logits, N, V, ld_logits, targets, ignore_index, double(temperature));
  RLFT_CHECK(N == 0 || logp != nullptr, op, ": logp output is required");
  const double inv_tau = 1.0 / double(temperature);  // z = x·(1/τ): a multiply, not a divide
  int64_t bad_row = -1;  // a row with no finite logit, reported after the parallel loop

#pragma omp parallel for schedule(static) if (N * V >= kParallelElements)
  for (int64_t n = 0; n < N; ++n) {
    const int64_t t = targets[n];
    if (t == ignore_index) {
      logp[n] = Real(0);
      if (entropy) entropy[n] = Real(0);
      if (lse) lse[n] = Real(0);
      continue;
    }
    const Real* x = logits + n * ld_logits;
    double m = kNegInf, s = 0.0, u = 0.0;  // max, Σ e^{z−m}, Σ e^{z−m}·(z−m)
    for (int64_t v = 0; v < V; ++v) {
      const double z = double(x[v]) * inv_tau;
      if (z > m) {
        if (s != 0.0) {  // rescale the sums to the new max (a NaN in s stays NaN)
          const double d = m - z, a = std::exp(d);
          u = a * (u + d * s);
          s = a * s + 1.0;
        } else {
          s = 1.0;
          u = 0.0;
        }
        m = z;
      } else if (z != kNegInf) {
        const double d = z - m, e = std::exp(d);
        s += e;
        u += e * d;
      }
    }
    if (!(s > 0.0)) {
#pragma omp critical(rlft_softmax_logprob_bad_row)
      bad_row = n;
      continue;
    }
    const double log_s = std::log(s);
    const double row_lse = m + log_s;
    logp[n] = Real(double(x[t]) * inv_tau - row_lse);
    if (entropy) entropy[n] = Real(log_s - u / s);
    if (lse) lse[n] = Real(row_lse);
  }
  RLFT_CHECK(bad_row < 0, op, ": row ", bad_row,
             " has no finite logit (all -inf or NaN; weights that blew up in training give this: a "
             "smaller learning rate?)");
}

template <typename Real>
void softmax_logprob_backward_cpu(const Real* logits, int64_t N, int64_t V, int64_t ld_logits,
                                  const int64_t* targets, int64_t ignore_index, Real temperature,
                                  const Real* lse, const Real* entropy, const Real* g_logp,
                                  const Real* g_entropy, Real* dlogits, int64_t ld_dlogits,
                                  bool accumulate) {
  constexpr const char* op = "softmax_logprob_backward_cpu";
  check_args(op, logits, N, V, ld_logits, targets, ignore_index, double(temperature));
  RLFT_CHECK(ld_dlogits >= V, op, ": dlogits row stride ", ld_dlogits, " < V=", V);
  if (N == 0) return;
  RLFT_CHECK(lse != nullptr && dlogits != nullptr, op, ": lse and dlogits are required");
  RLFT_CHECK(g_entropy == nullptr || entropy != nullptr, op,
             ": g_entropy given but the saved entropy is null");
  const double inv_tau = 1.0 / double(temperature);

#pragma omp parallel for schedule(static) if (N * V >= kParallelElements)
  for (int64_t n = 0; n < N; ++n) {
    Real* dx = dlogits + n * ld_dlogits;
    const int64_t t = targets[n];
    const double gl = g_logp ? double(g_logp[n]) : 0.0;
    const double gh = g_entropy ? double(g_entropy[n]) : 0.0;
    if (t == ignore_index || (gl == 0.0 && gh == 0.0)) {
      if (!accumulate)
        for (int64_t v = 0; v < V; ++v) dx[v] = Real(0);
      continue;
    }
    const Real* x = logits + n * ld_logits;
    const double row_lse = double(lse[n]);
    const double H = entropy ? double(entropy[n]) : 0.0;
    for (int64_t v = 0; v < V; ++v) {
      const double z = double(x[v]) * inv_tau;
      // g_logp·(1[v=t] − p) − g_H·p·(log p + H); a −inf logit has p = 0 and no gradient
      double dz = v == t ? gl : 0.0;
      if (z != kNegInf) {
        const double log_p = z - row_lse, p = std::exp(log_p);
        dz -= p * (gl + gh * (log_p + H));
      }
      const double prev = accumulate ? double(dx[v]) : 0.0;
      dx[v] = Real(prev + dz * inv_tau);
    }
  }
}

template void softmax_logprob_forward_cpu<float>(const float*, int64_t, int64_t, int64_t,
                                                 const int64_t*, int64_t, float, float*, float*,
                                                 float*);
template void softmax_logprob_forward_cpu<double>(const double*, int64_t, int64_t, int64_t,
                                                  const int64_t*, int64_t, double, double*, double*,
                                                  double*);
template void softmax_logprob_backward_cpu<float>(const float*, int64_t, int64_t, int64_t,
                                                  const int64_t*, int64_t, float, const float*,
                                                  const float*, const float*, const float*, float*,
                                                  int64_t, bool);
template void softmax_logprob_backward_cpu<double>(const double*, int64_t, int64_t, int64_t,
                                                   const int64_t*, int64_t, double, const double*,
                                                   const double*, const double*, const double*,
                                                   double*, int64_t, bool);

}  // namespace rlft::kernels
