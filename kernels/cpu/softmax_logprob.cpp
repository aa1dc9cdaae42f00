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
// in each direction: with a scalar exp (version 1) the kernel is exp-bound, not memory-bound;
// version 2's vector exp is what lets it approach the read bandwidth (BENCHMARKS.md, "RL
// kernels (CPU)"). Version 2's forward reads each row twice (max, then sums), the second time
// from the cache for rows up to ~1 MB (V ≤ 256k floats), so its DRAM traffic is still 4 B.
//
// Tested against (tests/kernels/test_rl_kernels.cpp): the unfused double-precision chain
// log_softmax(row) → gather, entropy = −Σ p·log_softmax, and its backward by the chain rule
// (gather backward, then log_softmax backward); the backward also by central finite
// differences in double; spiked logits, V = 1, V = 32k, ignore_index rows, −inf logits,
// temperature, hand-computed V = 2 example.
//
// Versions (both in this file; rows split over OpenMP threads by split_rows, softmax.h, when
// N·V ≥ 2^15):
//   version 1: scalar online softmax in double for float and double rows. The plainest loop
//     that is one pass; the reference, and the default for double.
//   version 2 (float rows, the default for float): the exponentials in float with the
//     vectorised exp_fast, sums in double lanes, loops cloned for AVX-512/AVX2. Version 1's
//     float rows were bound by the scalar double exp (~6 ns a logit, 3% of the DRAM bandwidth);
//     see "version 2" below and BENCHMARKS.md, "RL kernels (CPU)".
#include "kernels/softmax_logprob.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <limits>
#include <type_traits>

#include "engine/error.h"
#include "kernels/cpu/fast_math.h"
#include "kernels/cpu/softmax.h"
#include "kernels/cpu/target_clones.h"

namespace rlft::kernels {
namespace {

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

// ---- version 1: scalar, double arithmetic ----------------------------------------------------

// One non-ignored row, forward; false when the row has no finite logit (outputs not written).
template <typename Real>
bool forward_row_v1(const Real* x, int64_t V, int64_t t, double inv_tau, Real* logp, Real* entropy,
                    Real* lse) {
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
  if (!(s > 0.0)) return false;
  const double log_s = std::log(s);
  const double row_lse = m + log_s;
  *logp = Real(double(x[t]) * inv_tau - row_lse);
  if (entropy) *entropy = Real(log_s - u / s);
  if (lse) *lse = Real(row_lse);
  return true;
}

// One non-ignored row, backward (every element of dx written, or added to).
template <typename Real>
void backward_row_v1(const Real* x, int64_t V, int64_t t, double inv_tau, double row_lse, double H,
                     double gl, double gh, Real* dx, bool accumulate) {
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

// ---- version 2: float rows, vectorised --------------------------------------------------------
//
// Two passes over the row instead of one online pass: the max (exact, 16 lanes), then
// s = Σ e^{d} and u = Σ e^{d}·d with d = z − m, summed in 16 float lanes over blocks of 256
// logits and the blocks' sums added in double; e^{d} in float by exp_fast (< 1 ulp;
// kernels/cpu/fast_math.h), z = x·(1/τ) and d in float.
// The second pass reads the row again from the cache (a row of 256k floats is 1 MB), so DRAM
// traffic stays one read per logit. Backward: one pass, p = exp_fast(z − lse) in float, the
// target's element fixed after the loop (no compare in the vector loop). Both loops are cloned
// for AVX-512/AVX2 (target_clones.h). Errors against version 1: float rounding of z and d
// (exact for τ = 1 within a factor 2 of the max, Sterbenz) and exp_fast's < 1 ulp; the tests
// hold version 2 to the double reference at 2e-6, as version 1's float path. A row whose max is
// not finite (every logit −inf, a +inf logit, or an overflowing z) goes through version 1's row.

// d·e^d with d clamped: a −inf logit has e = 0 and must add 0, not 0·(−inf) = NaN. exp_fast
// gives 0 below −87.34, so the clamp changes no finite product; NaN stays NaN.
inline float clamp_low(float d) { return std::max(d, -128.0f); }

// Logits per block of version 2's float partial sums (16 lanes × 16 terms).
constexpr int64_t kBlock = 256;

// Rows [n0, n1) of the forward; returns the first row with no finite logit, or −1.
RLFT_CLONES int64_t forward_rows_v2(int64_t n0, int64_t n1, const float* logits, int64_t V,
                                    int64_t ld, const int64_t* targets, int64_t ignore_index,
                                    float inv_tau, float* logp, float* entropy, float* lse) {
  int64_t bad = -1;
  for (int64_t n = n0; n < n1; ++n) {
    const int64_t t = targets[n];
    if (t == ignore_index) {
      logp[n] = 0.0f;
      if (entropy) entropy[n] = 0.0f;
      if (lse) lse[n] = 0.0f;
      continue;
    }
    const float* x = logits + n * ld;
    const float m = row_max(x, V) * inv_tau;  // x ↦ x·(1/τ) is monotone, also after rounding
    if (!std::isfinite(m)) {
      if (!forward_row_v1(x, V, t, double(inv_tau), logp + n, entropy ? entropy + n : nullptr,
                          lse ? lse + n : nullptr) &&
          bad < 0)
        bad = n;
      continue;
    }
    // Blocks of kBlock logits summed in 16 float lanes (each lane adds at most kBlock/16 terms
    // of one sign: relative error below kBlock/16 float ulps), each block's lanes then added
    // into the row's sums in double.
    double S = 0.0, U = 0.0;
    for (int64_t v = 0; v < V;) {
      const int64_t end = std::min(V, v + kBlock);
      float s[16] = {}, u[16] = {};
      for (; v + 16 <= end; v += 16)
        for (int k = 0; k < 16; ++k) {
          const float d = x[v + k] * inv_tau - m, e = exp_fast(d);
          s[k] += e;
          u[k] += e * clamp_low(d);
        }
      for (; v < end; ++v) {
        const float d = x[v] * inv_tau - m, e = exp_fast(d);
        s[0] += e;
        u[0] += e * clamp_low(d);
      }
      for (int k = 0; k < 16; ++k) {
        S += double(s[k]);
        U += double(u[k]);
      }
    }
    if (!(S > 0.0)) {  // a NaN logit (the max skips it; its e^d is NaN)
      if (bad < 0) bad = n;
      continue;
    }
    const double log_s = std::log(S), row_lse = double(m) + log_s;
    logp[n] = float(double(x[t] * inv_tau) - row_lse);  // z_t as the sums saw it: V = 1 gives 0
    if (entropy) entropy[n] = float(log_s - U / S);
    if (lse) lse[n] = float(row_lse);
  }
  return bad;
}

// Rows [n0, n1) of the backward.
template <bool kAccumulate>
[[gnu::always_inline]] inline void backward_row_v2(const float* x, int64_t V, int64_t t,
                                                   float inv_tau, float row_lse, float H, float gl,
                                                   float gh, float* dx) {
  const float prev_t = kAccumulate ? dx[t] : 0.0f;
  for (int64_t v = 0; v < V; ++v) {
    const float log_p = x[v] * inv_tau - row_lse, p = exp_fast(log_p);
    const float dz = -(p * (gl + gh * (clamp_low(log_p) + H)));
    dx[v] = kAccumulate ? dx[v] + dz * inv_tau : dz * inv_tau;
  }
  const float log_p = x[t] * inv_tau - row_lse, p = exp_fast(log_p);
  const float dz = gl - p * (gl + gh * (clamp_low(log_p) + H));
  dx[t] = prev_t + dz * inv_tau;
}

RLFT_CLONES void backward_rows_v2(int64_t n0, int64_t n1, const float* logits, int64_t V,
                                  int64_t ld, const int64_t* targets, int64_t ignore_index,
                                  float inv_tau, const float* lse, const float* entropy,
                                  const float* g_logp, const float* g_entropy, float* dlogits,
                                  int64_t ld_d, bool accumulate) {
  for (int64_t n = n0; n < n1; ++n) {
    float* dx = dlogits + n * ld_d;
    const int64_t t = targets[n];
    const float gl = g_logp ? g_logp[n] : 0.0f, gh = g_entropy ? g_entropy[n] : 0.0f;
    if (t == ignore_index || (gl == 0.0f && gh == 0.0f)) {
      if (!accumulate)
        for (int64_t v = 0; v < V; ++v) dx[v] = 0.0f;
      continue;
    }
    const float* x = logits + n * ld;
    const float H = entropy ? entropy[n] : 0.0f;
    if (accumulate)
      backward_row_v2<true>(x, V, t, inv_tau, lse[n], H, gl, gh, dx);
    else
      backward_row_v2<false>(x, V, t, inv_tau, lse[n], H, gl, gh, dx);
  }
}

// Version 0 (the default): 2 for float rows of at least kMinV2Logits, else 1.
constexpr int64_t kMinV2Logits = 8;
int resolve_version(const char* op, int version, bool is_float, int64_t V) {
  RLFT_CHECK(version >= 0 && version <= 2, op, ": unknown version ", version, " (0, 1 or 2)");
  RLFT_CHECK(version != 2 || is_float, op, ": version 2 is float only");
  return version == 0 ? (is_float && V >= kMinV2Logits ? 2 : 1) : version;
}

void check_no_bad_row(const char* op, int64_t bad_row) {
  RLFT_CHECK(bad_row < 0, op, ": row ", bad_row,
             " has no finite logit (all -inf or NaN; weights that blew up in training give this: "
             "a smaller learning rate?)");
}

}  // namespace

template <typename Real>
void softmax_logprob_forward_cpu(const Real* logits, int64_t N, int64_t V, int64_t ld_logits,
                                 const int64_t* targets, int64_t ignore_index, Real temperature,
                                 Real* logp, Real* entropy, Real* lse, int version) {
  constexpr const char* op = "softmax_logprob_forward_cpu";
  constexpr bool is_float = std::is_same_v<Real, float>;
  version = resolve_version(op, version, is_float, V);
  check_args(op, logits, N, V, ld_logits, targets, ignore_index, double(temperature));
  RLFT_CHECK(N == 0 || logp != nullptr, op, ": logp output is required");
  const double inv_tau = 1.0 / double(temperature);  // z = x·(1/τ): a multiply, not a divide
  std::atomic<int64_t> bad_row{-1};  // the first row with no finite logit, reported after the loop
  const auto note_bad = [&](int64_t n) {
    int64_t was = bad_row.load();
    while ((was < 0 || n < was) && !bad_row.compare_exchange_weak(was, n)) {
    }
  };
  if constexpr (is_float) {
    if (version == 2) {
      split_rows(N, V, [&](int64_t n0, int64_t n1) {
        const int64_t bad = forward_rows_v2(n0, n1, logits, V, ld_logits, targets, ignore_index,
                                            float(inv_tau), logp, entropy, lse);
        if (bad >= 0) note_bad(bad);
      });
      check_no_bad_row(op, bad_row.load());
      return;
    }
  }
  split_rows(N, V, [&](int64_t n0, int64_t n1) {
    for (int64_t n = n0; n < n1; ++n) {
      const int64_t t = targets[n];
      if (t == ignore_index) {
        logp[n] = Real(0);
        if (entropy) entropy[n] = Real(0);
        if (lse) lse[n] = Real(0);
      } else if (!forward_row_v1(logits + n * ld_logits, V, t, inv_tau, logp + n,
                                 entropy ? entropy + n : nullptr, lse ? lse + n : nullptr)) {
        note_bad(n);
      }
    }
  });
  check_no_bad_row(op, bad_row.load());
}

template <typename Real>
void softmax_logprob_backward_cpu(const Real* logits, int64_t N, int64_t V, int64_t ld_logits,
                                  const int64_t* targets, int64_t ignore_index, Real temperature,
                                  const Real* lse, const Real* entropy, const Real* g_logp,
                                  const Real* g_entropy, Real* dlogits, int64_t ld_dlogits,
                                  bool accumulate, int version) {
  constexpr const char* op = "softmax_logprob_backward_cpu";
  constexpr bool is_float = std::is_same_v<Real, float>;
  version = resolve_version(op, version, is_float, V);
  check_args(op, logits, N, V, ld_logits, targets, ignore_index, double(temperature));
  RLFT_CHECK(ld_dlogits >= V, op, ": dlogits row stride ", ld_dlogits, " < V=", V);
  if (N == 0) return;
  RLFT_CHECK(lse != nullptr && dlogits != nullptr, op, ": lse and dlogits are required");
  RLFT_CHECK(g_entropy == nullptr || entropy != nullptr, op,
             ": g_entropy given but the saved entropy is null");
  const double inv_tau = 1.0 / double(temperature);
  if constexpr (is_float) {
    if (version == 2) {
      split_rows(N, V, [&](int64_t n0, int64_t n1) {
        backward_rows_v2(n0, n1, logits, V, ld_logits, targets, ignore_index, float(inv_tau), lse,
                         entropy, g_logp, g_entropy, dlogits, ld_dlogits, accumulate);
      });
      return;
    }
  }
  split_rows(N, V, [&](int64_t n0, int64_t n1) {
    for (int64_t n = n0; n < n1; ++n) {
      Real* dx = dlogits + n * ld_dlogits;
      const int64_t t = targets[n];
      const double gl = g_logp ? double(g_logp[n]) : 0.0;
      const double gh = g_entropy ? double(g_entropy[n]) : 0.0;
      if (t == ignore_index || (gl == 0.0 && gh == 0.0)) {
        if (!accumulate)
          for (int64_t v = 0; v < V; ++v) dx[v] = Real(0);
        continue;
      }
      backward_row_v1(logits + n * ld_logits, V, t, inv_tau, double(lse[n]),
                      entropy ? double(entropy[n]) : 0.0, gl, gh, dx, accumulate);
    }
  });
}

template void softmax_logprob_forward_cpu<float>(const float*, int64_t, int64_t, int64_t,
                                                 const int64_t*, int64_t, float, float*, float*,
                                                 float*, int);
template void softmax_logprob_forward_cpu<double>(const double*, int64_t, int64_t, int64_t,
                                                  const int64_t*, int64_t, double, double*, double*,
                                                  double*, int);
template void softmax_logprob_backward_cpu<float>(const float*, int64_t, int64_t, int64_t,
                                                  const int64_t*, int64_t, float, const float*,
                                                  const float*, const float*, const float*, float*,
                                                  int64_t, bool, int);
template void softmax_logprob_backward_cpu<double>(const double*, int64_t, int64_t, int64_t,
                                                   const int64_t*, int64_t, double, const double*,
                                                   const double*, const double*, const double*,
                                                   double*, int64_t, bool, int);

}  // namespace rlft::kernels
