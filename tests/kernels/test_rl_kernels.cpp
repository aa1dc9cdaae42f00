// Tests of the three signature RL kernels' CPU references: softmax_logprob, ratio_clip, gae.
//
// Each fused kernel is checked against a plain, unfused double-precision reference written
// here (log_softmax then gather; ratio, clamp, surrogates, min, mask, aggregation one step at
// a time; GAE by an explicit per-environment backward loop), values and gradients, the
// gradients also by central finite differences in double, plus hand-computed examples whose
// numbers are worked out in the comments. Inputs are adversarial on purpose; each says why.
#include <gtest/gtest.h>
#include <omp.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "engine/error.h"
#include "kernels/cpu/fast_math.h"
#include "kernels/gae.h"
#include "kernels/ratio_clip.h"
#include "kernels/ratio_clip_math.h"
#include "kernels/softmax_logprob.h"
#include "tests/kernels/gae_problems.h"
#include "tests/kernels/ratio_clip_modes.h"
#include "tests/test_util.h"

namespace rk = rlft::kernels;

namespace {

// An int64 index or count as a size_t (shapes are int64 like the kernels' arguments).
constexpr size_t ix(int64_t i) { return static_cast<size_t>(i); }

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kInf = std::numeric_limits<double>::infinity();

template <typename To, typename From>
std::vector<To> cast(const std::vector<From>& v) {
  return std::vector<To>(v.begin(), v.end());
}

// |a − b| ≤ tol·max(1, |b|): relative for large values, absolute near zero.
::testing::AssertionResult close(double a, double b, double tol) {
  if (std::isnan(a) && std::isnan(b)) return ::testing::AssertionSuccess();
  if (a == b) return ::testing::AssertionSuccess();  // equal infinities
  if (std::abs(a - b) <= tol * std::max(1.0, std::abs(b))) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure()
         << a << " vs reference " << b << " (diff " << a - b << ", tol " << tol << "·max(1,|ref|))";
}

// =============================================================================================
// softmax_logprob
// =============================================================================================

struct SoftmaxProblem {
  int64_t N = 0, V = 0, ld = 0;
  std::vector<double> logits;  // [N, ld]
  std::vector<int64_t> targets;
  int64_t ignore_index = -100;
  double tau = 1.0;
};

struct SoftmaxRef {
  std::vector<double> logp, entropy, lse, dlogits;  // dlogits [N, V] (dense)
};

// The unfused chain in double: z = x/τ, ls = log_softmax(z) (two passes: max, then sum), logp =
// gather(ls, t), H = −Σ exp(ls)·ls. Backward by the chain rule through the same steps:
// gather backward puts g_logp at t; H's backward gives dH/dls_v = −p_v·(ls_v + 1); then
// log_softmax backward g_z = g_ls − p·Σ g_ls; finally g_x = g_z/τ.
SoftmaxRef ref_softmax_logprob(const SoftmaxProblem& P, const std::vector<double>& g_logp,
                               const std::vector<double>& g_entropy) {
  SoftmaxRef out;
  out.logp.assign(ix(P.N), 0.0);
  out.entropy.assign(ix(P.N), 0.0);
  out.lse.assign(ix(P.N), 0.0);
  out.dlogits.assign(ix(P.N * P.V), 0.0);
  for (int64_t n = 0; n < P.N; ++n) {
    const int64_t t = P.targets[ix(n)];
    if (t == P.ignore_index) continue;
    std::vector<double> z(ix(P.V)), ls(ix(P.V)), p(ix(P.V));
    for (int64_t v = 0; v < P.V; ++v) z[ix(v)] = P.logits[ix(n * P.ld + v)] / P.tau;
    const double mx = *std::max_element(z.begin(), z.end());
    double sum = 0;
    for (double zv : z) sum += std::exp(zv - mx);
    const double lse = mx + std::log(sum);
    for (int64_t v = 0; v < P.V; ++v) {
      ls[ix(v)] = z[ix(v)] - lse;
      p[ix(v)] = std::exp(ls[ix(v)]);
    }
    double H = 0;
    for (int64_t v = 0; v < P.V; ++v)
      if (p[ix(v)] > 0) H -= p[ix(v)] * ls[ix(v)];
    out.logp[ix(n)] = ls[ix(t)];
    out.entropy[ix(n)] = H;
    out.lse[ix(n)] = lse;
    // backward
    std::vector<double> g_ls(ix(P.V), 0.0);
    g_ls[ix(t)] += g_logp.empty() ? 0.0 : g_logp[ix(n)];
    const double gh = g_entropy.empty() ? 0.0 : g_entropy[ix(n)];
    for (int64_t v = 0; v < P.V; ++v)
      if (p[ix(v)] > 0) g_ls[ix(v)] += gh * (-p[ix(v)] * (ls[ix(v)] + 1.0));
    double sum_g = 0;
    for (double g : g_ls) sum_g += g;
    for (int64_t v = 0; v < P.V; ++v)
      out.dlogits[ix(n * P.V + v)] = (g_ls[ix(v)] - p[ix(v)] * sum_g) / P.tau;
  }
  return out;
}

template <typename Real>
struct SoftmaxOut {
  std::vector<Real> logp, entropy, lse, dlogits;  // dlogits [N, ld_d]
  int64_t ld_d = 0;
};

template <typename Real>
SoftmaxOut<Real> run_softmax(const SoftmaxProblem& P, const std::vector<double>& g_logp,
                             const std::vector<double>& g_entropy, int64_t ld_d, int version = 0) {
  SoftmaxOut<Real> o;
  const std::vector<Real> x = cast<Real>(P.logits);
  o.logp.assign(ix(P.N), Real(-7));  // sentinels: every element must be overwritten
  o.entropy.assign(ix(P.N), Real(-7));
  o.lse.assign(ix(P.N), Real(-7));
  rk::softmax_logprob_forward_cpu<Real>(x.data(), P.N, P.V, P.ld, P.targets.data(), P.ignore_index,
                                        Real(P.tau), o.logp.data(), o.entropy.data(), o.lse.data(),
                                        version);
  const std::vector<Real> gl = cast<Real>(g_logp), gh = cast<Real>(g_entropy);
  o.ld_d = ld_d;
  o.dlogits.assign(ix(P.N * ld_d), Real(123));
  rk::softmax_logprob_backward_cpu<Real>(
      x.data(), P.N, P.V, P.ld, P.targets.data(), P.ignore_index, Real(P.tau), o.lse.data(),
      o.entropy.data(), gl.empty() ? nullptr : gl.data(), gh.empty() ? nullptr : gh.data(),
      o.dlogits.data(), ld_d, false, version);
  return o;
}

// Fills logits with N(0, scale²) and random targets; `ld` leaves padding after each row that
// holds NaN, so reading past V would show.
SoftmaxProblem random_softmax(std::mt19937_64& rng, int64_t N, int64_t V, int64_t pad,
                              double scale) {
  SoftmaxProblem P;
  P.N = N;
  P.V = V;
  P.ld = V + pad;
  P.logits.assign(ix(N * P.ld), kNaN);
  std::normal_distribution<double> normal(0.0, scale);
  std::uniform_int_distribution<int64_t> tok(0, V - 1);
  for (int64_t n = 0; n < N; ++n) {
    for (int64_t v = 0; v < V; ++v) P.logits[ix(n * P.ld + v)] = normal(rng);
    P.targets.push_back(tok(rng));
  }
  return P;
}

template <typename Real>
void expect_softmax_matches(const SoftmaxProblem& P, const std::vector<double>& g_logp,
                            const std::vector<double>& g_entropy, double tol, int version = 0) {
  SCOPED_TRACE("version " + std::to_string(version));
  // The reference sees exactly the values the kernel sees (rounded to Real first).
  SoftmaxProblem Pr = P;
  for (double& x : Pr.logits) x = double(Real(x));
  const SoftmaxRef ref = ref_softmax_logprob(Pr, g_logp, g_entropy);
  const int64_t ld_d = P.V + 2;
  const SoftmaxOut<Real> out = run_softmax<Real>(P, g_logp, g_entropy, ld_d, version);
  double gmax = 0;
  for (double g : ref.dlogits) gmax = std::max(gmax, std::abs(g));
  for (int64_t n = 0; n < P.N; ++n) {
    SCOPED_TRACE("row " + std::to_string(n));
    EXPECT_TRUE(close(out.logp[ix(n)], ref.logp[ix(n)], tol));
    EXPECT_TRUE(close(out.entropy[ix(n)], ref.entropy[ix(n)], tol));
    EXPECT_TRUE(close(out.lse[ix(n)], ref.lse[ix(n)], tol));
    for (int64_t v = 0; v < P.V; ++v) {
      // gradient tolerance relative to the largest gradient element (cancellation in 1 − p)
      const double a = out.dlogits[ix(n * ld_d + v)], b = ref.dlogits[ix(n * P.V + v)];
      ASSERT_LE(std::abs(a - b), tol * std::max(1.0, gmax))
          << "v=" << v << ": " << a << " vs " << b;
    }
    EXPECT_EQ(out.dlogits[ix(n * ld_d + P.V)], Real(123)) << "wrote past V in dlogits";
  }
}

// Float rows through both versions: 1 (double arithmetic) and 2 (float exponentials, the
// default), each against the double reference at 2e-6.
void expect_float_softmax_matches(const SoftmaxProblem& P, const std::vector<double>& g_logp,
                                  const std::vector<double>& g_entropy) {
  for (int version : {1, 2}) expect_softmax_matches<float>(P, g_logp, g_entropy, 2e-6, version);
}

std::vector<double> random_vec(std::mt19937_64& rng, int64_t n, double lo, double hi) {
  std::uniform_real_distribution<double> u(lo, hi);
  std::vector<double> v(ix(n));
  for (double& x : v) x = u(rng);
  return v;
}

// Hand-computed, V = 2, logits [0, ln 3], target 1:
//   p = [1/4, 3/4], lse = ln 4 = 1.3862943611198906, logp = ln(3/4) = −0.2876820724517809,
//   H = −(1/4·ln 1/4 + 3/4·ln 3/4) = ln 4 − (3/4)·ln 3 = 0.5623351446188083.
//   g_logp = 1: dlogits = onehot − p = [−1/4, 1/4].
//   g_H = 1: −p·(log p + H): log p_0 + H = −(3/4)·ln 3, log p_1 + H = (1/4)·ln 3, so
//   dlogits = [(3/16)·ln 3, −(3/16)·ln 3] = [0.20598980412527057, −0.20598980412527057].
TEST(SoftmaxLogprob, HandComputedTwoWayRow) {
  const double x[2] = {0.0, std::log(3.0)};
  const int64_t target = 1;
  double logp, H, lse, d[2];
  rk::softmax_logprob_forward_cpu<double>(x, 1, 2, 2, &target, -100, 1.0, &logp, &H, &lse);
  EXPECT_NEAR(logp, -0.2876820724517809, 1e-15);
  EXPECT_NEAR(H, 0.5623351446188083, 1e-15);
  EXPECT_NEAR(lse, 1.3862943611198906, 1e-15);
  const double one = 1.0;
  rk::softmax_logprob_backward_cpu<double>(x, 1, 2, 2, &target, -100, 1.0, &lse, &H, &one, nullptr,
                                           d, 2);
  EXPECT_NEAR(d[0], -0.25, 1e-15);
  EXPECT_NEAR(d[1], 0.25, 1e-15);
  rk::softmax_logprob_backward_cpu<double>(x, 1, 2, 2, &target, -100, 1.0, &lse, &H, nullptr, &one,
                                           d, 2);
  EXPECT_NEAR(d[0], 0.20598980412527057, 1e-15);
  EXPECT_NEAR(d[1], -0.20598980412527057, 1e-15);
  // Temperature 2 on logits [0, 2·ln 3] gives the same z, so the same forward, and the
  // gradient with respect to the logits is halved: [−1/8, 1/8].
  const double x2[2] = {0.0, 2.0 * std::log(3.0)};
  rk::softmax_logprob_forward_cpu<double>(x2, 1, 2, 2, &target, -100, 2.0, &logp, &H, &lse);
  EXPECT_NEAR(logp, -0.2876820724517809, 1e-15);
  EXPECT_NEAR(H, 0.5623351446188083, 1e-15);
  rk::softmax_logprob_backward_cpu<double>(x2, 1, 2, 2, &target, -100, 2.0, &lse, &H, &one, nullptr,
                                           d, 2);
  EXPECT_NEAR(d[0], -0.125, 1e-15);
  EXPECT_NEAR(d[1], 0.125, 1e-15);
}

// Gaussian logits, ordinary sizes, a row stride with NaN padding, both outputs' gradients.
TEST(SoftmaxLogprob, MatchesUnfusedReferenceRandom) {
  std::mt19937_64 rng(1);
  for (int64_t V : {2, 7, 100, 1000}) {
    SCOPED_TRACE("V=" + std::to_string(V));
    const SoftmaxProblem P = random_softmax(rng, 9, V, 3, 2.0);
    const auto gl = random_vec(rng, P.N, -1, 1), gh = random_vec(rng, P.N, -1, 1);
    expect_softmax_matches<double>(P, gl, gh, 1e-12);
    expect_float_softmax_matches(P, gl, gh);
  }
}

// Spiked logits: one logit +30 above N(0,1) noise makes p ≈ 1 there (1 − p ≈ e^−30), so the
// softmax is far from flat, the entropy is tiny, and onehot − p cancels; the target sits on
// the spike in half the rows and away from it (logp ≈ −30) in the others.
TEST(SoftmaxLogprob, SpikedLogits) {
  std::mt19937_64 rng(2);
  SoftmaxProblem P = random_softmax(rng, 8, 50, 0, 1.0);
  for (int64_t n = 0; n < P.N; ++n) {
    const int64_t spike = (n * 7) % P.V;
    P.logits[ix(n * P.ld + spike)] += 30.0;
    if (n % 2 == 0) P.targets[ix(n)] = spike;
  }
  const auto gl = random_vec(rng, P.N, -1, 1), gh = random_vec(rng, P.N, -1, 1);
  expect_softmax_matches<double>(P, gl, gh, 1e-12);
  expect_float_softmax_matches(P, gl, gh);
}

// All logits share an offset of +1000: exp without the running max overflows, and an
// entropy computed as lse − Σp·x would lose every digit to cancellation (1000 − 1000).
TEST(SoftmaxLogprob, LargeCommonOffset) {
  std::mt19937_64 rng(3);
  SoftmaxProblem P = random_softmax(rng, 4, 300, 0, 1.0);
  for (double& x : P.logits) x += 1000.0;
  const auto gl = random_vec(rng, P.N, -1, 1), gh = random_vec(rng, P.N, -1, 1);
  // Offsets are exact in double, so the reference is as accurate; float rounds the inputs at
  // 1000 to 6e-5, which the reference sees too.
  expect_softmax_matches<double>(P, gl, gh, 1e-12);
  expect_float_softmax_matches(P, gl, gh);
}

// V = 1: softmax is [1], logp = 0, entropy = 0, gradient 0 whatever the logit.
TEST(SoftmaxLogprob, SingleTokenVocabulary) {
  std::mt19937_64 rng(4);
  SoftmaxProblem P = random_softmax(rng, 5, 1, 0, 10.0);
  const auto gl = random_vec(rng, P.N, -1, 1), gh = random_vec(rng, P.N, -1, 1);
  expect_softmax_matches<double>(P, gl, gh, 1e-15);
  const SoftmaxOut<double> out = run_softmax<double>(P, gl, gh, 1);
  P.tau = 0.7;  // float version 2 rounds z = x·(1/τ) once and uses that z for z_t − lse too
  const SoftmaxOut<float> out2 = run_softmax<float>(P, gl, gh, 1, 2);
  for (int64_t n = 0; n < P.N; ++n) {
    EXPECT_EQ(out.logp[ix(n)], 0.0);
    EXPECT_EQ(out.entropy[ix(n)], 0.0);
    EXPECT_EQ(out.dlogits[ix(n)], 0.0);
    EXPECT_EQ(out2.logp[ix(n)], 0.0f);
    EXPECT_EQ(out2.entropy[ix(n)], 0.0f);
    EXPECT_EQ(out2.dlogits[ix(n)], 0.0f);
  }
}

// V = 32k, an LLM vocabulary: tens of thousands of terms in each sum (accumulation error),
// and N·V above the threading threshold, on two threads (ctest runs one), so the rows are split.
TEST(SoftmaxLogprob, LargeVocabulary) {
  std::mt19937_64 rng(5);
  SoftmaxProblem P = random_softmax(rng, 6, 32000, 1, 3.0);
  P.logits[ix(2 * P.ld + 17)] += 30.0;  // and one spiked row
  const auto gl = random_vec(rng, P.N, -1, 1), gh = random_vec(rng, P.N, -1, 1);
  const int saved_threads = omp_get_max_threads();
  omp_set_num_threads(2);
  expect_softmax_matches<double>(P, gl, gh, 1e-11);
  expect_float_softmax_matches(P, gl, gh);
  omp_set_num_threads(saved_threads);
}

// ignore_index rows (prompt and padding positions) give logp = entropy = lse = 0 and a zero
// gradient row, and their logits are never read (NaN there must not leak); a custom
// ignore_index value works the same. Temperature 0.7 on the rest.
TEST(SoftmaxLogprob, IgnoreIndexAndTemperature) {
  std::mt19937_64 rng(6);
  SoftmaxProblem P = random_softmax(rng, 7, 40, 0, 2.0);
  P.tau = 0.7;
  for (int64_t n : {0, 3, 6}) {
    P.targets[ix(n)] = P.ignore_index;
    for (int64_t v = 0; v < P.V; ++v) P.logits[ix(n * P.ld + v)] = kNaN;
  }
  const auto gl = random_vec(rng, P.N, -1, 1), gh = random_vec(rng, P.N, -1, 1);
  expect_softmax_matches<double>(P, gl, gh, 1e-12);
  expect_float_softmax_matches(P, gl, gh);
  const SoftmaxOut<double> out = run_softmax<double>(P, gl, gh, P.V);
  for (int64_t n : {0, 3, 6}) {
    EXPECT_EQ(out.logp[ix(n)], 0.0);
    EXPECT_EQ(out.entropy[ix(n)], 0.0);
    EXPECT_EQ(out.lse[ix(n)], 0.0);
    for (int64_t v = 0; v < P.V; ++v) EXPECT_EQ(out.dlogits[ix(n * P.V + v)], 0.0);
  }
  P.ignore_index = 5;  // a real token id used as the ignore value: rows with target 5 drop out
  for (int64_t n : {0, 3, 6}) P.targets[ix(n)] = 5;
  P.targets[1] = 5;
  expect_softmax_matches<double>(P, gl, gh, 1e-12);
  const SoftmaxOut<double> out5 = run_softmax<double>(P, gl, gh, P.V);
  EXPECT_EQ(out5.logp[1], 0.0);
}

// −inf logits are masked-out vocabulary entries: probability 0, no entropy term, no gradient.
TEST(SoftmaxLogprob, NegativeInfinityLogits) {
  std::mt19937_64 rng(7);
  SoftmaxProblem P = random_softmax(rng, 3, 6, 0, 1.0);
  P.logits[0] = -kInf;  // first element of row 0: the running max starts at −inf
  P.logits[ix(P.ld + 4)] = -kInf;
  P.targets[1] = 2;
  const auto gl0 = random_vec(rng, P.N, -1, 1), gh0 = random_vec(rng, P.N, -1, 1);
  expect_softmax_matches<double>(P, gl0, gh0, 1e-12);
  P.logits[ix(2 * P.ld + 3)] = -kInf;  // and the target of row 2 (logp −inf, gradient g_logp)
  P.targets[2] = 3;
  P.logits[ix(2 * P.ld + 5)] = -kInf;
  const auto gl = random_vec(rng, P.N, -1, 1), gh = random_vec(rng, P.N, -1, 1);
  const SoftmaxOut<double> out = run_softmax<double>(P, gl, gh, P.V);
  EXPECT_EQ(out.dlogits[0], 0.0);
  EXPECT_EQ(out.dlogits[ix(P.V + 4)], 0.0);
  EXPECT_EQ(out.logp[2], -kInf);
  EXPECT_DOUBLE_EQ(out.dlogits[ix(2 * P.V + 3)], gl[2]);  // 1[v=t]·g_logp, p = 0
  for (int version : {1, 2}) {
    SCOPED_TRACE("float version " + std::to_string(version));
    const SoftmaxOut<float> f = run_softmax<float>(P, gl, gh, P.V, version);
    for (int64_t n = 0; n < P.N; ++n) {
      if (n != 2) {
        EXPECT_NEAR(f.logp[ix(n)], out.logp[ix(n)], 2e-6);
        EXPECT_NEAR(f.entropy[ix(n)], out.entropy[ix(n)], 2e-6);
      }
      for (int64_t v = 0; v < P.V; ++v)  // no NaN from 0·(−inf) anywhere
        EXPECT_NEAR(f.dlogits[ix(n * P.V + v)], out.dlogits[ix(n * P.V + v)], 2e-6)
            << "n=" << n << " v=" << v;
    }
    EXPECT_EQ(f.logp[2], -std::numeric_limits<float>::infinity());
    EXPECT_EQ(f.dlogits[0], 0.0f);
    EXPECT_EQ(f.dlogits[ix(2 * P.V + 5)], 0.0f);
  }
}

// Float version 2 against version 1 where it hands a row to version 1 or refuses it: a +inf
// logit (the max is not finite: version 1's row, the same outputs), a row of −inf and a NaN
// among finite logits (no finite logit: the error names the first such row, also across
// threads), and its other arguments: the gradient added with accumulate, null gradients zero.
TEST(SoftmaxLogprob, FloatVersion2EdgeRowsAndArguments) {
  using rlft::testing::error_of;
  constexpr float inf = std::numeric_limits<float>::infinity();
  const float with_inf[3] = {0.0f, inf, 1.0f};
  const int64_t t1 = 1, t0 = 0;
  float a[3], b[3];  // logp, entropy, lse
  rk::softmax_logprob_forward_cpu<float>(with_inf, 1, 3, 3, &t0, -100, 1.0f, a, a + 1, a + 2, 1);
  rk::softmax_logprob_forward_cpu<float>(with_inf, 1, 3, 3, &t0, -100, 1.0f, b, b + 1, b + 2, 2);
  for (int k = 0; k < 3; ++k)
    EXPECT_TRUE(std::memcmp(&a[k], &b[k], sizeof(float)) == 0) << k << ": " << a[k] << " " << b[k];
  // N·V above the threading threshold, on two threads (ctest runs one): row 300, in the first
  // thread's half, has only −inf logits, row 700, in the second's, a NaN. The error names the
  // lowest bad row whichever thread finishes first; with row 300 mended, row 700.
  const int64_t N = 1024, V = 64;
  std::vector<float> x(size_t(N * V), 0.5f);
  std::vector<int64_t> t(size_t(N), 1);
  for (int64_t v = 0; v < V; ++v) x[size_t(300 * V + v)] = -inf;
  x[size_t(700 * V + 3)] = std::numeric_limits<float>::quiet_NaN();
  std::vector<float> lp(ix(N)), H(ix(N)), lse(ix(N));
  const auto error_at = [&](int version) {
    return error_of([&] {
      rk::softmax_logprob_forward_cpu<float>(x.data(), N, V, V, t.data(), -100, 1.0f, lp.data(),
                                             H.data(), lse.data(), version);
    });
  };
  const int saved_threads = omp_get_max_threads();
  omp_set_num_threads(2);
  for (int version : {1, 2}) {
    SCOPED_TRACE("version " + std::to_string(version));
    EXPECT_NE(error_at(version).find("row 300 has no finite logit"), std::string::npos);
  }
  x[size_t(300 * V)] = 0.5f;
  for (int version : {1, 2}) {
    SCOPED_TRACE("version " + std::to_string(version));
    EXPECT_NE(error_at(version).find("row 700 has no finite logit"), std::string::npos);
  }
  omp_set_num_threads(saved_threads);
  // accumulate and null gradients, version 2
  std::mt19937_64 rng(10);
  const SoftmaxProblem P = random_softmax(rng, 3, 19, 0, 1.0);
  const auto gl = random_vec(rng, P.N, -1, 1), gh = random_vec(rng, P.N, -1, 1);
  const SoftmaxOut<float> out = run_softmax<float>(P, gl, gh, P.V, 2);
  const std::vector<float> xf = cast<float>(P.logits), glf = cast<float>(gl), ghf = cast<float>(gh);
  std::vector<float> acc(ix(P.N * P.V), 0.5f);
  rk::softmax_logprob_backward_cpu<float>(xf.data(), P.N, P.V, P.ld, P.targets.data(),
                                          P.ignore_index, 1.0f, out.lse.data(), out.entropy.data(),
                                          glf.data(), ghf.data(), acc.data(), P.V, true, 2);
  for (size_t k = 0; k < acc.size(); ++k) EXPECT_EQ(acc[k], 0.5f + out.dlogits[k]) << k;
  std::vector<float> zero(ix(P.N * P.V), 9.0f);
  rk::softmax_logprob_backward_cpu<float>(xf.data(), P.N, P.V, P.ld, P.targets.data(),
                                          P.ignore_index, 1.0f, out.lse.data(), nullptr, nullptr,
                                          nullptr, zero.data(), P.V, false, 2);
  for (float g : zero) EXPECT_EQ(g, 0.0f);
  // versions: 0, 1, 2 exist; 2 is float only
  double xd[2] = {0.0, 1.0}, lpd;
  EXPECT_NE(error_of([&] {
              rk::softmax_logprob_forward_cpu<double>(xd, 1, 2, 2, &t1, -100, 1.0, &lpd, nullptr,
                                                      nullptr, 2);
            }).find("version 2 is float only"),
            std::string::npos);
  EXPECT_NE(error_of([&] {
              rk::softmax_logprob_forward_cpu<float>(with_inf, 1, 3, 3, &t1, -100, 1.0f, a, nullptr,
                                                     nullptr, 3);
            }).find("unknown version 3"),
            std::string::npos);
}

// Version 0 picks version 1 for float rows of V < 8 and version 2 from 8 on
// (softmax_logprob.h): its outputs are the picked version's to the bit, and the two versions
// differ at both widths (else the comparison could not tell which ran).
TEST(SoftmaxLogprob, DefaultVersionPicksByRowLength) {
  std::mt19937_64 rng(31);
  for (int64_t V : {2, 7, 8}) {
    SCOPED_TRACE("V=" + std::to_string(V));
    const SoftmaxProblem P = random_softmax(rng, 64, V, 0, 1.0);
    const auto gl = random_vec(rng, P.N, -1, 1), gh = random_vec(rng, P.N, -1, 1);
    const auto run = [&](int version) {
      const SoftmaxOut<float> o = run_softmax<float>(P, gl, gh, P.V, version);
      std::vector<float> all = o.logp;
      all.insert(all.end(), o.entropy.begin(), o.entropy.end());
      all.insert(all.end(), o.dlogits.begin(), o.dlogits.end());
      return all;
    };
    const std::vector<float> v0 = run(0), v1 = run(1), v2 = run(2);
    EXPECT_NE(v1, v2) << "the versions agree to the bit: the test cannot tell them apart";
    EXPECT_EQ(v0, V < 8 ? v1 : v2);
  }
}

// Central finite differences in double of L = Σ_n (a_n·logp_n + b_n·H_n), with temperature,
// one spiked row and one ignored row.
TEST(SoftmaxLogprob, BackwardMatchesFiniteDifferences) {
  std::mt19937_64 rng(8);
  SoftmaxProblem P = random_softmax(rng, 4, 7, 0, 1.5);
  P.tau = 1.3;
  P.logits[ix(1 * P.ld + 2)] += 8.0;
  P.targets[3] = P.ignore_index;
  const auto a = random_vec(rng, P.N, -1, 1), b = random_vec(rng, P.N, -1, 1);
  const SoftmaxOut<double> out = run_softmax<double>(P, a, b, P.V);
  auto objective = [&](const std::vector<double>& x) {
    std::vector<double> lp(ix(P.N)), H(ix(P.N));
    rk::softmax_logprob_forward_cpu<double>(x.data(), P.N, P.V, P.ld, P.targets.data(),
                                            P.ignore_index, P.tau, lp.data(), H.data(), nullptr);
    double L = 0;
    for (int64_t n = 0; n < P.N; ++n) L += a[ix(n)] * lp[ix(n)] + b[ix(n)] * H[ix(n)];
    return L;
  };
  const double h = 1e-5;
  for (size_t k = 0; k < P.logits.size(); ++k) {
    std::vector<double> xp = P.logits, xm = P.logits;
    xp[k] += h;
    xm[k] -= h;
    const double fd = (objective(xp) - objective(xm)) / (2 * h);
    // FD error: h²·f'''/6 ≈ 1e-10 plus roundoff 1e-16/h ≈ 1e-11.
    EXPECT_NEAR(out.dlogits[k], fd, 1e-8) << "logit " << k;
  }
}

TEST(SoftmaxLogprob, AccumulateAddsAndNullGradientsAreZero) {
  std::mt19937_64 rng(9);
  const SoftmaxProblem P = random_softmax(rng, 3, 11, 0, 1.0);
  const auto gl = random_vec(rng, P.N, -1, 1);
  const SoftmaxOut<double> out = run_softmax<double>(P, gl, {}, P.V);
  std::vector<double> acc(ix(P.N * P.V), 0.5);
  rk::softmax_logprob_backward_cpu<double>(P.logits.data(), P.N, P.V, P.ld, P.targets.data(),
                                           P.ignore_index, 1.0, out.lse.data(), nullptr, gl.data(),
                                           nullptr, acc.data(), P.V, true);
  for (size_t k = 0; k < acc.size(); ++k) EXPECT_NEAR(acc[k], 0.5 + out.dlogits[k], 1e-15);
  std::vector<double> zero(ix(P.N * P.V), 9.0);
  rk::softmax_logprob_backward_cpu<double>(P.logits.data(), P.N, P.V, P.ld, P.targets.data(),
                                           P.ignore_index, 1.0, out.lse.data(), nullptr, nullptr,
                                           nullptr, zero.data(), P.V);
  for (double g : zero) EXPECT_EQ(g, 0.0);
}

TEST(SoftmaxLogprob, RejectsBadArguments) {
  const double x[3] = {0.0, 1.0, 2.0};
  double lp, H, lse;
  const int64_t bad = 3, ok = 1;
  EXPECT_THROW(rk::softmax_logprob_forward_cpu<double>(x, 1, 3, 3, &bad, -100, 1.0, &lp, &H, &lse),
               rlft::Error);
  EXPECT_THROW(rk::softmax_logprob_forward_cpu<double>(x, 1, 3, 3, &ok, -100, 0.0, &lp, &H, &lse),
               rlft::Error);
  EXPECT_THROW(rk::softmax_logprob_forward_cpu<double>(x, 1, 3, 2, &ok, -100, 1.0, &lp, &H, &lse),
               rlft::Error);
  const double all_masked[2] = {-kInf, -kInf};
  EXPECT_THROW(
      rk::softmax_logprob_forward_cpu<double>(all_masked, 1, 2, 2, &ok, -100, 1.0, &lp, &H, &lse),
      rlft::Error);
  const double with_nan[3] = {0.0, kNaN, 1.0};  // a NaN logit poisons the row: loud, not silent
  EXPECT_THROW(
      rk::softmax_logprob_forward_cpu<double>(with_nan, 1, 3, 3, &ok, -100, 1.0, &lp, &H, &lse),
      rlft::Error);
  // N = 0 is an empty batch, not an error.
  rk::softmax_logprob_forward_cpu<double>(nullptr, 0, 3, 3, nullptr, -100, 1.0, nullptr, nullptr,
                                          nullptr);
}

// =============================================================================================
// ratio_clip
// =============================================================================================

// Forward-mode dual number: the reference's gradient is derived mechanically from the
// reference's own forward, with the tie rules of ratio_clip.h (min keeps its first argument,
// clamp passes the gradient at the boundary like torch.clamp).
struct Dual {
  double v = 0, d = 0;
  Dual() = default;
  Dual(double value, double deriv = 0.0) : v(value), d(deriv) {}
};
Dual operator+(Dual a, Dual b) { return {a.v + b.v, a.d + b.d}; }
Dual operator-(Dual a, Dual b) { return {a.v - b.v, a.d - b.d}; }
Dual operator-(Dual a) { return {-a.v, -a.d}; }
Dual operator*(Dual a, Dual b) { return {a.v * b.v, a.d * b.v + a.v * b.d}; }
Dual operator/(Dual a, Dual b) { return {a.v / b.v, (a.d * b.v - a.v * b.d) / (b.v * b.v)}; }
Dual dexp(Dual a) {
  const double e = std::exp(a.v);
  return {e, e * a.d};
}
Dual stopgrad(Dual a) { return {a.v, 0.0}; }
Dual dmin(Dual a, Dual b) { return b.v < a.v ? b : a; }
Dual dclamp(Dual x, Dual lo, Dual hi) { return x.v < lo.v ? lo : (x.v > hi.v ? hi : x); }

struct ClipProblem {
  int64_t B = 0, T = 0;
  std::vector<double> logp, old_logp, adv, mask, lower, upper;  // mask/lower/upper empty = none
  bool adv_per_seq = false;
  double eps_low = 0.2, eps_high = 0.2, dual = 0.0, normalizer = 0.0;
  rk::RatioLevel level = rk::RatioLevel::token;
  rk::Aggregation agg = rk::Aggregation::token_mean;

  std::string describe() const {
    return std::string("B=") + std::to_string(B) + " T=" + std::to_string(T) +
           " level=" + rk::ratio_level_name(level) + " agg=" + rk::aggregation_name(agg) +
           " adv_per_seq=" + std::to_string(adv_per_seq) +
           " mask=" + std::to_string(!mask.empty()) + " bounds=" + std::to_string(!lower.empty()) +
           " dual=" + std::to_string(dual) + " normalizer=" + std::to_string(normalizer);
  }
};

// Owns Real copies of a problem's arrays and points RatioClipArgs at them.
template <typename Real>
struct ClipBuffers {
  std::vector<Real> logp, old_logp, adv, mask, lower, upper;
  rk::RatioClipArgs<Real> args;
  explicit ClipBuffers(const ClipProblem& P)
      : logp(cast<Real>(P.logp)),
        old_logp(cast<Real>(P.old_logp)),
        adv(cast<Real>(P.adv)),
        mask(cast<Real>(P.mask)),
        lower(cast<Real>(P.lower)),
        upper(cast<Real>(P.upper)) {
    args.B = P.B;
    args.T = P.T;
    args.logp = logp.data();
    args.old_logp = old_logp.data();
    args.advantages = adv.data();
    args.advantages_per_sequence = P.adv_per_seq;
    args.mask = mask.empty() ? nullptr : mask.data();
    args.lower = lower.empty() ? nullptr : lower.data();
    args.upper = upper.empty() ? nullptr : upper.data();
    args.eps_low = P.eps_low;
    args.eps_high = P.eps_high;
    args.dual_clip = P.dual;
    args.level = P.level;
    args.aggregation = P.agg;
    args.normalizer = P.normalizer;
  }
};

struct ClipRef {
  Dual loss;
  double low = 0, high = 0, dual = 0, k1 = 0, k3 = 0, tokens = 0;
};

// The unfused reference, one step per line as a PyTorch implementation would write it; the
// derivative part of `loss` is dLoss/dlogp[seed] (seed < 0: none). Sums skip masked tokens so
// NaN placed there must not matter.
ClipRef ref_ratio_clip(const ClipProblem& P, int64_t seed) {
  const int64_t B = P.B, T = P.T, BT = B * T;
  auto m = [&](int64_t k) { return P.mask.empty() ? 1.0 : P.mask[ix(k)]; };
  auto A = [&](int64_t k) { return P.adv_per_seq ? P.adv[ix(k / T)] : P.adv[ix(k)]; };
  std::vector<Dual> logp(ix(BT)), log_ratio(ix(BT)), ratio(ix(BT)), token_ratio(ix(BT));
  for (int64_t k = 0; k < BT; ++k) logp[ix(k)] = Dual(P.logp[ix(k)], k == seed ? 1.0 : 0.0);
  for (int64_t k = 0; k < BT; ++k) log_ratio[ix(k)] = logp[ix(k)] - Dual(P.old_logp[ix(k)]);
  for (int64_t k = 0; k < BT; ++k)
    token_ratio[ix(k)] = dexp(dclamp(log_ratio[ix(k)], Dual(-20.0), Dual(20.0)));
  if (P.level == rk::RatioLevel::token) {
    ratio = token_ratio;
  } else {
    for (int64_t i = 0; i < B; ++i) {
      Dual sum(0.0);
      double n = 0;
      for (int64_t t = 0; t < T; ++t) {
        const int64_t k = i * T + t;
        if (m(k) == 0) continue;
        sum = sum + Dual(m(k)) * log_ratio[ix(k)];
        n += m(k);
      }
      const Dual rho = n > 0 ? sum / Dual(n) : Dual(0.0);
      for (int64_t t = 0; t < T; ++t) {
        const int64_t k = i * T + t;
        if (P.level == rk::RatioLevel::sequence) {
          ratio[ix(k)] = dexp(dclamp(rho, Dual(-20.0), Dual(20.0)));
        } else {  // GSPO-token, literally: sg(ρ) + logp − sg(logp)
          const Dual log_s = stopgrad(rho) + logp[ix(k)] - stopgrad(logp[ix(k)]);
          ratio[ix(k)] = dexp(dclamp(log_s, Dual(-20.0), Dual(20.0)));
        }
      }
    }
  }
  std::vector<Dual> pg_loss(ix(BT));
  std::vector<int> low(ix(BT)), high(ix(BT)), dual(ix(BT));
  for (int64_t k = 0; k < BT; ++k) {
    const double lo = P.lower.empty() ? 1.0 - P.eps_low : P.lower[ix(k)];
    const double hi = P.upper.empty() ? 1.0 + P.eps_high : P.upper[ix(k)];
    const Dual r = ratio[ix(k)];
    const Dual surr1 = r * Dual(A(k));
    const Dual surr2 = dclamp(r, Dual(lo), Dual(hi)) * Dual(A(k));
    Dual l = -dmin(surr1, surr2);
    high[ix(k)] = A(k) > 0 && r.v > hi;
    low[ix(k)] = A(k) < 0 && r.v < lo;
    if (P.dual > 0 && A(k) < 0) {
      const Dual cap = Dual(-P.dual * A(k));
      dual[ix(k)] = cap.v < l.v;
      l = dmin(l, cap);
      if (dual[ix(k)]) low[ix(k)] = high[ix(k)] = 0;
    }
    pg_loss[ix(k)] = l;
  }
  ClipRef out;
  std::vector<Dual> row_sum(ix(B), Dual(0.0));
  std::vector<double> row_n(ix(B), 0.0);
  for (int64_t k = 0; k < BT; ++k) {
    if (m(k) == 0) continue;
    row_sum[ix(k / T)] = row_sum[ix(k / T)] + Dual(m(k)) * pg_loss[ix(k)];
    row_n[ix(k / T)] += m(k);
    out.tokens += m(k);
    out.low += m(k) * low[ix(k)];
    out.high += m(k) * high[ix(k)];
    out.dual += m(k) * dual[ix(k)];
    out.k1 += m(k) * (P.old_logp[ix(k)] - P.logp[ix(k)]);
    const double xc = std::clamp(P.logp[ix(k)] - P.old_logp[ix(k)], -20.0, 20.0);
    out.k3 += m(k) * ((std::exp(xc) - 1.0) - xc);
  }
  Dual total(0.0);
  for (int64_t i = 0; i < B; ++i) total = total + row_sum[ix(i)];
  const double S = P.normalizer > 0 ? P.normalizer : double(B);
  switch (P.agg) {
    case rk::Aggregation::token_mean: {
      const double D = P.normalizer > 0 ? P.normalizer : out.tokens;
      out.loss = D > 0 ? total / Dual(D) : Dual(0.0);
      break;
    }
    case rk::Aggregation::seq_mean_token_mean:
      for (int64_t i = 0; i < B; ++i)
        if (row_n[ix(i)] > 0) out.loss = out.loss + row_sum[ix(i)] / Dual(row_n[ix(i)]);
      out.loss = out.loss / Dual(S);
      break;
    case rk::Aggregation::seq_mean_token_sum:
      out.loss = total / Dual(S);
      break;
    case rk::Aggregation::constant_norm: {
      const double L = P.normalizer > 0 ? P.normalizer : double(T);
      out.loss = total / Dual(double(B) * L);
      break;
    }
    case rk::Aggregation::only_token_mean:
      for (int64_t i = 0; i < B; ++i)
        if (row_n[ix(i)] > 0) out.loss = out.loss + row_sum[ix(i)] / Dual(row_n[ix(i)]);
      break;
  }
  if (out.tokens > 0) {
    out.low /= out.tokens;
    out.high /= out.tokens;
    out.dual /= out.tokens;
    out.k1 /= out.tokens;
    out.k3 /= out.tokens;
  }
  return out;
}

using ClipOptions = rlft::test::RatioClipMode;

// Adversarial on purpose: every token's ratio is put in a chosen regime relative to its own
// bounds — inside (0.1..0.9 of the way from lo to hi), below lo, above hi, beyond the ±20
// clamp — with both signs of A, |A| ≥ 0.05 (so no regime collapses to A = 0) and margins of at
// least 10% from the clip bounds and the clamp so finite differences are valid (the dual
// clip's kink at r = c lies inside the "above" range; hitting it within the finite-difference
// step has probability ~1e-6, and the seeds are fixed). Masks include an all-masked row
// and a single-token row, and masked tokens hold NaN (which must be ignored). Per-token
// bounds are DCPO's, from q = exp(old_logp) (ALGORITHMS.md §10). In the sequence levels a
// regime is drawn per row and its tokens scatter ±0.02 around it.
ClipProblem random_clip(std::mt19937_64& rng, int64_t B, int64_t T, const ClipOptions& o) {
  ClipProblem P;
  P.B = B;
  P.T = T;
  P.level = o.level;
  P.agg = o.agg;
  P.adv_per_seq = o.adv_per_seq;
  P.dual = o.dual;
  P.normalizer = o.normalizer;
  std::uniform_real_distribution<double> u01(0.0, 1.0);
  auto U = [&](double a, double b) { return a + (b - a) * u01(rng); };
  const int64_t BT = B * T;
  P.old_logp.resize(ix(BT));
  for (double& x : P.old_logp) x = -U(0.01, 6.0);
  if (o.per_token_bounds) {
    P.lower.resize(ix(BT));
    P.upper.resize(ix(BT));
    for (int64_t k = 0; k < BT; ++k) {
      const double q = std::exp(P.old_logp[ix(k)]);
      P.lower[ix(k)] = std::min(0.5 + 0.5 * std::sqrt(std::max(1.0 - 4.0 * 0.16 / q, 0.0)), 10.0);
      P.upper[ix(k)] = std::min(0.5 + 0.5 * std::sqrt(1.0 + 4.0 * 0.2 / q), 10.0);
    }
  }
  const int64_t n_adv = o.adv_per_seq ? B : BT;
  P.adv.resize(ix(n_adv));
  for (double& a : P.adv) a = (u01(rng) < 0.5 ? -1.0 : 1.0) * U(0.05, 2.0);
  auto A = [&](int64_t k) { return o.adv_per_seq ? P.adv[ix(k / T)] : P.adv[ix(k)]; };
  // log-ratio in a regime relative to [lo, hi]
  auto draw = [&](int regime, double lo, double hi) {
    switch (regime) {
      case 0:
        return std::log(lo + (hi - lo) * U(0.2, 0.8));
      case 1:
        return std::log(lo * U(0.3, 0.9));
      case 2:
        return std::log(hi * U(1.1, 3.0));
      case 3:
        return -U(20.5, 25.0);
      default:
        return U(20.5, 25.0);
    }
  };
  P.logp.resize(ix(BT));
  std::uniform_int_distribution<int> regime(0, 4);
  for (int64_t i = 0; i < B; ++i) {
    const int row_regime = regime(rng);
    double row_x = 0.0;
    for (int64_t t = 0; t < T; ++t) {
      const int64_t k = i * T + t;
      const double lo = P.lower.empty() ? 1.0 - P.eps_low : P.lower[ix(k)];
      const double hi = P.upper.empty() ? 1.0 + P.eps_high : P.upper[ix(k)];
      double x;
      if (o.level == rk::RatioLevel::token) {
        const int r = regime(rng);
        x = draw(r, lo, hi);
        // Beyond +20 with A < 0 the loss is r·|A| ≈ 5e8 and swamps finite differences of
        // every other token; keep that corner to the dual-clip problems, where it is capped.
        if (r == 4 && o.dual == 0.0 && A(k) < 0) x = draw(0, lo, hi);
      } else {
        // One regime per row relative to the scalar bounds, so the row mean ρ_i inherits the
        // margins (the ±0.02 scatter is smaller than every margin).
        const int r = row_regime == 4 && o.dual == 0.0 ? 0 : row_regime;
        if (t == 0) row_x = draw(r, 1.0 - P.eps_low, 1.0 + P.eps_high);
        x = row_x + U(-0.02, 0.02);
      }
      P.logp[ix(k)] = P.old_logp[ix(k)] + x;
    }
  }
  if (o.with_mask) {
    P.mask.resize(ix(BT));
    for (double& w : P.mask) w = u01(rng) < 0.75 ? 1.0 : 0.0;
    if (B > 1)
      for (int64_t t = 0; t < T; ++t) P.mask[ix(T + t)] = 0.0;  // an all-masked row
    if (B > 2)
      for (int64_t t = 0; t < T; ++t) P.mask[ix(2 * T + t)] = t == T / 2 ? 1.0 : 0.0;
    for (int64_t k = 0; k < BT; ++k)
      if (P.mask[ix(k)] == 0.0) P.logp[ix(k)] = kNaN;
  }
  return P;
}

// The CPU version the ratio_clip tests below run (0 = the default). Each test runs both
// versions: 1, the scalar loop with libm's exp, and 2, the vectorised one.
int g_clip_version = 0;
template <typename Real>
rk::RatioClipStats clip_forward(const rk::RatioClipArgs<Real>& a) {
  return rk::ratio_clip_forward_cpu<Real>(a, g_clip_version);
}
template <typename Real>
void clip_backward(const rk::RatioClipArgs<Real>& a, double g_loss, Real* g, bool acc = false) {
  rk::ratio_clip_backward_cpu<Real>(a, g_loss, g, acc, g_clip_version);
}
// Runs body() once per CPU version, with g_clip_version set and the version in failures.
template <typename F>
void for_each_clip_version(F body) {
  for (int v : {1, 2}) {
    SCOPED_TRACE("ratio_clip CPU version " + std::to_string(v));
    g_clip_version = v;
    body();
  }
  g_clip_version = 0;
}

template <typename Real>
void expect_clip_matches(const ClipProblem& P, double tol, bool check_all_gradients = true) {
  SCOPED_TRACE(P.describe());
  ClipProblem Pr = P;  // the reference sees the kernel's rounded inputs
  for (auto* v : {&Pr.logp, &Pr.old_logp, &Pr.adv, &Pr.mask, &Pr.lower, &Pr.upper})
    for (double& x : *v) x = double(Real(x));
  ClipBuffers<Real> buf(P);
  const rk::RatioClipStats s = clip_forward<Real>(buf.args);
  const ClipRef ref = ref_ratio_clip(Pr, -1);
  EXPECT_TRUE(close(s.loss, ref.loss.v, tol)) << "loss";
  EXPECT_TRUE(close(s.clip_frac_low, ref.low, 1e-15)) << "clip_frac_low";
  EXPECT_TRUE(close(s.clip_frac_high, ref.high, 1e-15)) << "clip_frac_high";
  EXPECT_TRUE(close(s.dual_clip_frac, ref.dual, 1e-15)) << "dual_clip_frac";
  EXPECT_TRUE(close(s.approx_kl_k1, ref.k1, tol)) << "k1";
  EXPECT_TRUE(close(s.approx_kl_k3, ref.k3, tol)) << "k3";
  EXPECT_EQ(s.tokens, ref.tokens);
  const double g_loss = 0.75;
  std::vector<Real> g(ix(P.B * P.T), Real(-9));
  clip_backward<Real>(buf.args, g_loss, g.data());
  const int64_t BT = P.B * P.T, stride = check_all_gradients ? 1 : std::max<int64_t>(1, BT / 23);
  for (int64_t k = 0; k < BT; k += stride) {
    const double want = g_loss * ref_ratio_clip(Pr, k).loss.d;
    ASSERT_TRUE(close(double(g[ix(k)]), want, tol)) << "g_logp[" << k << "]";
  }
}

// Hand-computed, eps 0.2, dual clip c = 3, B = 2, T = 5 (log-ratios written as ln r):
//   row 0, mask [1 1 1 1 0]:
//     t0 r = 1.5, A = +1: surr1 = 1.5, surr2 = 1.2·1 → l = −1.2, clipped high (grad 0)
//     t1 r = 0.5, A = −1: surr1 = −0.5, surr2 = 0.8·(−1) = −0.8 → l = 0.8, clipped low (grad 0)
//     t2 r = 1.1, A = +2: surr1 = surr2 = 2.2 → l = −2.2, dl/dlogp = −A·r = −2.2
//     t3 r = 5,   A = −1: surr1 = −5, surr2 = −1.2 → l = 5 → dual: min(5, 3) = 3 (grad 0)
//     t4 masked (logp NaN)                                        Σ m·l = 0.4, |o_0| = 4
//   row 1, mask [1 1 0 0 0]: r = 1, A = +0.5 → l = −0.5 each, dl/dlogp = −0.5
//                                                                 Σ m·l = −1.0, |o_1| = 2
//   token_mean          (0.4 − 1.0)/6             = −0.1   grads ·1/6:   −0.366667, −0.083333
//   seq_mean_token_mean (0.4/4 − 1.0/2)/2         = −0.2   ·1/(2|o_i|):  −0.275,    −0.125
//   seq_mean_token_sum  (0.4 − 1.0)/2             = −0.3   ·1/2:         −1.1,      −0.25
//   constant_norm       (0.4 − 1.0)/(2·T=10)      = −0.06  ·1/10:        −0.22,     −0.05
//   only_token_mean     0.4/4 − 1.0/2             = −0.4   ·1/|o_i|:     −0.55,     −0.25
//   clip fractions over 6 tokens: low 1/6, high 1/6, dual 1/6;
//   k1 = −(ln 1.5 + ln 0.5 + ln 1.1 + ln 5 + 0 + 0)/6 = −0.2361776699644407,
//   k3 = Σ (r − 1 − ln r)/6 = 0.44715566336889245.
TEST(RatioClip, HandComputedEveryAggregation) {
  for_each_clip_version([&] {
    ClipProblem P;
    P.B = 2;
    P.T = 5;
    P.logp = {std::log(1.5), std::log(0.5), std::log(1.1), std::log(5.0), kNaN,
              0.0,           0.0,           kNaN,          kNaN,          kNaN};
    P.old_logp.assign(10, 0.0);
    P.adv = {1, -1, 2, -1, 7, 0.5, 0.5, 7, 7, 7};
    P.mask = {1, 1, 1, 1, 0, 1, 1, 0, 0, 0};
    P.dual = 3.0;
    struct Case {
      rk::Aggregation agg;
      double loss, g02, g10;
    };
    const Case cases[] = {
        {rk::Aggregation::token_mean, -0.1, -2.2 / 6, -0.5 / 6},
        {rk::Aggregation::seq_mean_token_mean, -0.2, -0.275, -0.125},
        {rk::Aggregation::seq_mean_token_sum, -0.3, -1.1, -0.25},
        {rk::Aggregation::constant_norm, -0.06, -0.22, -0.05},
        {rk::Aggregation::only_token_mean, -0.4, -0.55, -0.25},
    };
    for (const Case& c : cases) {
      SCOPED_TRACE(rk::aggregation_name(c.agg));
      P.agg = c.agg;
      ClipBuffers<double> buf(P);
      const rk::RatioClipStats s = clip_forward<double>(buf.args);
      EXPECT_NEAR(s.loss, c.loss, 1e-14);
      EXPECT_NEAR(s.clip_frac_low, 1.0 / 6, 1e-15);
      EXPECT_NEAR(s.clip_frac_high, 1.0 / 6, 1e-15);
      EXPECT_NEAR(s.dual_clip_frac, 1.0 / 6, 1e-15);
      EXPECT_NEAR(s.approx_kl_k1, -0.2361776699644407, 1e-14);
      EXPECT_NEAR(s.approx_kl_k3, 0.44715566336889245, 1e-14);
      EXPECT_EQ(s.tokens, 6.0);
      std::vector<double> g(10, -9.0);
      clip_backward<double>(buf.args, 1.0, g.data());
      const std::vector<double> want = {0, 0, c.g02, 0, 0, c.g10, c.g10, 0, 0, 0};
      for (int k = 0; k < 10; ++k) EXPECT_NEAR(g[ix(k)], want[ix(k)], 1e-14) << "k=" << k;
    }
    // Without the dual clip t3 is unclipped: l = 5, dl/dlogp = −A·r = 5; token_mean: Σ m·l =
    // −1.2 + 0.8 − 2.2 + 5 − 1 = 1.4 → 1.4/6, gradient of t3 = 5/6.
    P.dual = 0.0;
    P.agg = rk::Aggregation::token_mean;
    ClipBuffers<double> buf(P);
    const rk::RatioClipStats s = clip_forward<double>(buf.args);
    EXPECT_NEAR(s.loss, 1.4 / 6, 1e-14);
    EXPECT_EQ(s.dual_clip_frac, 0.0);
    std::vector<double> g(10);
    clip_backward<double>(buf.args, 1.0, g.data());
    EXPECT_NEAR(g[3], 5.0 / 6, 1e-14);
    // A normalizer (the token count of a whole optimizer step, here 12) replaces the 6.
    P.normalizer = 12.0;
    ClipBuffers<double> buf2(P);
    EXPECT_NEAR(clip_forward<double>(buf2.args).loss, 1.4 / 12, 1e-14);
  });
}

// Hand-computed GSPO (eps_low 3e-4, eps_high 4e-4, seq_mean_token_mean, B = 2, T = 2):
//   row 0: log-ratios [ln 1.1, ln 1.1] → s = 1.1, A = +1 → clip(s) = 1.0004 < s:
//          l_0 = −1.0004, clipped high, no gradient (both tokens count as clipped).
//   row 1: log-ratios [1e-4, −1e-4] → ρ = 0, s = 1, A = −1 → l_1 = 1, unclipped.
//   loss = (−1.0004 + 1)/2 = −0.0002; clip_frac_high = 2/4.
//   gradient of row 1's tokens: (1/B)·(dl/ds = −A = 1)·s·(1/|o_1| = 1/2) = 0.25 each.
// GSPO-token with per-token advantages on row 1, A = [−1, +2]: s_{1,t} = 1, l = [1, −2],
//   loss = (−1.0004 + (1 − 2)/2)/2 = −0.7502, gradients (1/(2·2))·(−A_t)·1 = [0.25, −0.5].
TEST(RatioClip, HandComputedGspo) {
  for_each_clip_version([&] {
    ClipProblem P;
    P.B = 2;
    P.T = 2;
    P.logp = {std::log(1.1) - 1.0, std::log(1.1) - 2.0, 1e-4 - 0.5, -1e-4 - 0.25};
    P.old_logp = {-1.0, -2.0, -0.5, -0.25};
    P.adv = {1.0, -1.0};
    P.adv_per_seq = true;
    P.eps_low = 3e-4;
    P.eps_high = 4e-4;
    P.level = rk::RatioLevel::sequence;
    P.agg = rk::Aggregation::seq_mean_token_mean;
    for (auto level : {rk::RatioLevel::sequence, rk::RatioLevel::sequence_token}) {
      SCOPED_TRACE(rk::ratio_level_name(level));
      P.level = level;
      ClipBuffers<double> buf(P);
      const rk::RatioClipStats s = clip_forward<double>(buf.args);
      EXPECT_NEAR(s.loss, -0.0002, 1e-13);
      EXPECT_NEAR(s.clip_frac_high, 0.5, 1e-15);
      EXPECT_EQ(s.clip_frac_low, 0.0);
      std::vector<double> g(4);
      clip_backward<double>(buf.args, 1.0, g.data());
      EXPECT_NEAR(g[0], 0.0, 1e-15);
      EXPECT_NEAR(g[1], 0.0, 1e-15);
      EXPECT_NEAR(g[2], 0.25, 1e-12);
      EXPECT_NEAR(g[3], 0.25, 1e-12);
    }
    P.level = rk::RatioLevel::sequence_token;
    P.adv_per_seq = false;
    P.adv = {1.0, 1.0, -1.0, 2.0};
    ClipBuffers<double> buf(P);
    EXPECT_NEAR(clip_forward<double>(buf.args).loss, -0.7502, 1e-12);
    std::vector<double> g(4);
    clip_backward<double>(buf.args, 1.0, g.data());
    EXPECT_NEAR(g[2], 0.25, 1e-12);
    EXPECT_NEAR(g[3], -0.5, 1e-12);
    // The sequence ratio is the exponential of the MEAN log-ratio: one row, log-ratios
    // [3e-4, 3e-4], A = +1 → s = e^(3e-4) = 1.00030004 < 1 + eps_high = 1.0004, unclipped:
    //   loss = −s, clip_frac_high = 0, gradient (dl/ds = −1)·s·(1/|o| = 1/2) = −s/2 per token
    // (at either level). The sum would give e^(6e-4) = 1.0006, clipped: loss −1.0004, no gradient.
    ClipProblem M;
    M.B = 1;
    M.T = 2;
    M.logp = {3e-4, 3e-4};
    M.old_logp = {0.0, 0.0};
    M.adv = {1.0};
    M.adv_per_seq = true;
    M.eps_low = 3e-4;
    M.eps_high = 4e-4;
    M.agg = rk::Aggregation::seq_mean_token_mean;
    const double s = std::exp(3e-4);
    for (auto level : {rk::RatioLevel::sequence, rk::RatioLevel::sequence_token}) {
      SCOPED_TRACE(rk::ratio_level_name(level));
      M.level = level;
      ClipBuffers<double> mb(M);
      const rk::RatioClipStats ms = clip_forward<double>(mb.args);
      EXPECT_NEAR(ms.loss, -s, 1e-14);
      EXPECT_EQ(ms.clip_frac_high, 0.0);
      std::vector<double> mg(2);
      clip_backward<double>(mb.args, 1.0, mg.data());
      EXPECT_NEAR(mg[0], -s / 2, 1e-14);
      EXPECT_NEAR(mg[1], -s / 2, 1e-14);
    }
  });
}

// Every level × aggregation × advantage shape × bounds × dual clip × mask × normalizer, on
// three odd sizes, in double (exact agreement) and float (inputs rounded, double inside).
TEST(RatioClip, MatchesUnfusedReferenceEveryMode) {
  for_each_clip_version([&] {
    std::mt19937_64 rng(11);
    int cases = 0, with_low = 0, with_high = 0, with_dual = 0;
    for (const ClipOptions& o : rlft::test::every_ratio_clip_mode()) {
      for (auto [B, T] : {std::pair<int64_t, int64_t>{1, 1}, {5, 9}, {3, 17}}) {
        const ClipProblem P = random_clip(rng, B, T, o);
        expect_clip_matches<double>(P, 1e-12);
        expect_clip_matches<float>(P, 1e-6);
        if (HasFailure()) return;
        const ClipRef ref = ref_ratio_clip(P, -1);
        ++cases;
        with_low += ref.low > 0;
        with_high += ref.high > 0;
        with_dual += ref.dual > 0;
      }
    }
    // The generator really reaches every regime (guards against a vacuous test).
    EXPECT_GT(cases, 400);
    EXPECT_GT(with_low, cases / 4);
    EXPECT_GT(with_high, cases / 4);
    EXPECT_GT(with_dual, cases / 8);
  });
}

// The mask is a weight m ≥ 0 (ratio_clip.h), not only a 0/1 flag: with fractional weights the
// forward weights each token's loss, its count and its statistics by m, and the backward must
// weight each token's gradient by the same m (the reference differentiates its own forward).
TEST(RatioClip, FractionalMaskWeightsScaleLossAndGradient) {
  for_each_clip_version([&] {
    std::mt19937_64 rng(21);
    const double weights[] = {0.25, 0.5, 1.5, 3.0};
    int cases = 0;
    for (const ClipOptions& o : rlft::test::every_ratio_clip_mode()) {
      if (!o.with_mask) continue;
      ClipProblem P = random_clip(rng, 3, 7, o);
      for (size_t k = 0; k < P.mask.size(); ++k)
        if (P.mask[k] != 0.0) P.mask[k] = weights[k % 4];
      expect_clip_matches<double>(P, 1e-12);
      if (HasFailure()) return;
      ++cases;
    }
    EXPECT_GT(cases, 50);
  });
}

// Central finite differences in double of the kernel's own loss against its backward. The
// generator keeps every ratio ≥ 10% away from each kink, h = 1e-6 in the log-prob.
TEST(RatioClip, BackwardMatchesFiniteDifferences) {
  for_each_clip_version([&] {
    std::mt19937_64 rng(12);
    for (const ClipOptions& o : rlft::test::every_ratio_clip_mode()) {
      // GSPO-token's gradient is by design not the derivative of its value (the stop-gradients
      // drop the other tokens' contribution through ρ_i); with per-sequence advantages and
      // scalar bounds it equals GSPO's, which is. Its other cases are covered by the dual-number
      // reference, where the stop-gradient is written literally.
      if (o.level == rk::RatioLevel::sequence_token && (!o.adv_per_seq || o.per_token_bounds))
        continue;
      ClipProblem P = random_clip(rng, 4, 7, o);
      SCOPED_TRACE(P.describe());
      ClipBuffers<double> buf(P);
      std::vector<double> g(ix(P.B * P.T));
      clip_backward<double>(buf.args, 1.0, g.data());
      const double h = 1e-6;
      for (size_t k = 0; k < g.size(); ++k) {
        if (std::isnan(P.logp[k])) {
          EXPECT_EQ(g[k], 0.0);
          continue;
        }
        const double x = buf.logp[k];
        buf.logp[k] = x + h;
        const double lp = clip_forward<double>(buf.args).loss;
        buf.logp[k] = x - h;
        const double lm = clip_forward<double>(buf.args).loss;
        buf.logp[k] = x;
        // |loss| stays below ~1e2 here, so roundoff is ≈ 1e-16·1e2/1e-6 = 1e-8.
        ASSERT_NEAR(g[k], (lp - lm) / (2 * h), 1e-6 * std::max(1.0, std::abs(g[k]))) << "k=" << k;
      }
    }
  });
}

// A [64, 1000] batch (the benchmark's shape) runs the OpenMP path; the reference is checked on
// the values and on a sample of gradient entries; the result must not depend on the thread
// count (row partial sums are reduced in row order).
TEST(RatioClip, LargeBatchAndThreadCountIndependence) {
  for_each_clip_version([&] {
    std::mt19937_64 rng(13);
    for (auto agg : {rk::Aggregation::token_mean, rk::Aggregation::seq_mean_token_mean}) {
      ClipOptions o;
      o.agg = agg;
      o.dual = 3.0;
      const ClipProblem P = random_clip(rng, 64, 1000, o);
      expect_clip_matches<double>(P, 1e-11, /*check_all_gradients=*/false);
      ClipBuffers<float> buf(P);
      const int saved = omp_get_max_threads();
      omp_set_num_threads(1);
      const rk::RatioClipStats s1 = clip_forward<float>(buf.args);
      std::vector<float> g1(ix(P.B * P.T)), g2(g1.size());
      clip_backward<float>(buf.args, 1.0, g1.data());
      omp_set_num_threads(std::max(2, saved));
      const rk::RatioClipStats s2 = clip_forward<float>(buf.args);
      clip_backward<float>(buf.args, 1.0, g2.data());
      omp_set_num_threads(saved);
      EXPECT_EQ(s1.loss, s2.loss);
      EXPECT_EQ(s1.approx_kl_k3, s2.approx_kl_k3);
      EXPECT_EQ(g1, g2);
    }
  });
}

// All tokens masked: no tokens, so loss, statistics and gradient are all 0 in every mode.
TEST(RatioClip, AllMaskedBatch) {
  for_each_clip_version([&] {
    std::mt19937_64 rng(14);
    for (const ClipOptions& base : rlft::test::every_ratio_clip_mode()) {
      ClipOptions o = base;
      o.with_mask = true;
      ClipProblem P = random_clip(rng, 3, 4, o);
      std::fill(P.mask.begin(), P.mask.end(), 0.0);
      ClipBuffers<double> buf(P);
      const rk::RatioClipStats s = clip_forward<double>(buf.args);
      EXPECT_EQ(s.loss, 0.0);
      EXPECT_EQ(s.tokens, 0.0);
      EXPECT_EQ(s.clip_frac_low + s.clip_frac_high + s.dual_clip_frac + s.approx_kl_k1, 0.0);
      std::vector<double> g(12, 5.0);
      clip_backward<double>(buf.args, 1.0, g.data());
      for (double x : g) EXPECT_EQ(x, 0.0);
    }
  });
}

// Gradient accumulation: two micro-batches with the whole step's token count as normalizer
// sum to the loss and gradient of the full batch under token_mean (and the sequence count
// for seq_mean_token_mean); plain per-micro-batch means would not.
TEST(RatioClip, NormalizerMakesMicroBatchesAddUp) {
  for_each_clip_version([&] {
    std::mt19937_64 rng(15);
    for (auto agg : {rk::Aggregation::token_mean, rk::Aggregation::seq_mean_token_mean}) {
      ClipOptions o;
      o.agg = agg;
      const ClipProblem full = random_clip(rng, 6, 8, o);
      ClipBuffers<double> fb(full);
      const rk::RatioClipStats fs = clip_forward<double>(fb.args);
      std::vector<double> fg(48);
      clip_backward<double>(fb.args, 1.0, fg.data());
      double sum = 0;
      std::vector<double> g(48, 0.0);
      for (int half = 0; half < 2; ++half) {
        rk::RatioClipArgs<double> a = fb.args;
        a.B = 3;
        a.logp += half * 24;
        a.old_logp += half * 24;
        a.advantages += half * 24;
        a.mask += half * 24;
        a.normalizer = agg == rk::Aggregation::token_mean ? fs.tokens : 6.0;
        sum += clip_forward<double>(a).loss;
        clip_backward<double>(a, 1.0, g.data() + half * 24, /*accumulate=*/true);
      }
      EXPECT_NEAR(sum, fs.loss, 1e-13);
      for (size_t k = 0; k < g.size(); ++k) EXPECT_NEAR(g[k], fg[k], 1e-14);
    }
  });
}

// Ties sit exactly on a kink: r == hi with A > 0 and r == lo with A < 0 keep the unclipped
// gradient −A·r (torch.clamp passes it at the boundary, and both min branches agree there);
// l == −c·A keeps it too, and a tie is not counted as clipped.
TEST(RatioClip, TiesAtTheBoundsKeepTheGradient) {
  for_each_clip_version([&] {
    ClipProblem P;
    P.B = 1;
    P.T = 3;
    P.eps_low = 0.25;
    P.eps_high = 0.5;  // bounds 0.75 and 1.5, exact in binary
    P.dual = 2.0;      // token 2: r = 2, A = −1 → l = 2 = −c·A
    P.old_logp = {0.0, 0.0, 0.0};
    P.logp = {std::log(1.5), std::log(0.75), std::log(2.0)};
    P.adv = {1.0, -1.0, -1.0};
    P.agg = rk::Aggregation::seq_mean_token_sum;
    ClipBuffers<double> buf(P);
    std::vector<double> g(3);
    clip_backward<double>(buf.args, 1.0, g.data());
    // version 2's ratios are exp_fast_f64's: the expected side of each kink follows them
    const auto ex = [](double x) {
      return g_clip_version == 2 ? rk::exp_fast_f64(x) : std::exp(x);
    };
    const double r0 = ex(buf.logp[0]), r1 = ex(buf.logp[1]), r2 = ex(buf.logp[2]);
    // glibc's exp(log(x)) returns x exactly for these three; should another libm round them
    // off the kink, the expected gradient follows the side it landed on.
    EXPECT_EQ(g[0], r0 > 1.5 ? 0.0 : -1.0 * r0);
    EXPECT_EQ(g[1], r1 < 0.75 ? 0.0 : 1.0 * r1);
    EXPECT_EQ(g[2], r2 > 2.0 ? 0.0 : 1.0 * r2);
    const rk::RatioClipStats s = clip_forward<double>(buf.args);
    if (r0 == 1.5 && r1 == 0.75 && r2 == 2.0) {
      EXPECT_EQ(s.clip_frac_high + s.clip_frac_low + s.dual_clip_frac, 0.0);
      EXPECT_EQ(s.loss, -1.5 + 0.75 + 2.0);
    }
  });
}

// Where the ±20 clamp of the log-ratio binds, the gradient is 0 (the clamp's derivative),
// whichever surrogate branch is taken: x = +25 with A = −1 and x = −25 with A = +1 both take the
// unclipped branch (r·A is the smaller surrogate: −e^20 < −1.2, and e^−20 < 0.8), whose
// dl/dr = −A is not 0, and no dual clip caps them. So their gradients must be exactly 0, while
// the control tokens (x = 0, A = −1: r = 1, dl/dr = 1) get coef·(−A)·r = 1/16 under token_mean
// over 16 tokens. Random problems keep x > 20 with A < 0 to the dual-clip modes (the loss would
// swamp finite differences), where the dual clip zeroes the gradient anyway; this pins the
// corner without it. 16 tokens: version 2 is also the default at this length.
TEST(RatioClip, ClampedLogRatioHasNoGradientOnTheUnclippedBranch) {
  for_each_clip_version([&] {
    ClipProblem P;
    P.B = 1;
    P.T = 16;
    for (int64_t t = 0; t < P.T; ++t) {
      const int kind = int(t % 3);  // 0: x = +25, A = −1; 1: x = −25, A = +1; 2: control
      P.old_logp.push_back(-1.0);
      P.logp.push_back(-1.0 + (kind == 0 ? 25.0 : kind == 1 ? -25.0 : 0.0));
      P.adv.push_back(kind == 1 ? 1.0 : -1.0);
    }
    ClipBuffers<double> buf(P);
    std::vector<double> g(16, -7.0);
    clip_backward<double>(buf.args, 1.0, g.data());
    for (int64_t t = 0; t < P.T; ++t) {
      if (t % 3 == 2) {
        EXPECT_NEAR(g[size_t(t)], 1.0 / 16, 1e-15) << t;
      } else {
        EXPECT_EQ(g[size_t(t)], 0.0) << t;
      }
    }
  });
}

// The two CPU versions take the same clip decisions and agree to rounding on every mode (the
// vectorised exp is within an ulp of libm's; the row sums are added in another order); a
// version outside 0..2 is an error naming it.
TEST(RatioClip, CpuVersionsAgree) {
  std::mt19937_64 rng(16);
  // T = 5: version 2's vector loops never fill a vector; 37: one short chunk; 150: two full
  // chunks of 64 and a short one
  for (const ClipOptions& o : rlft::test::every_ratio_clip_mode())
    for (int64_t T : {5, 37, 150}) {
      const ClipProblem P = random_clip(rng, 3, T, o);
      SCOPED_TRACE(P.describe());
      ClipBuffers<double> buf(P);
      const rk::RatioClipStats s1 = rk::ratio_clip_forward_cpu<double>(buf.args, 1);
      const rk::RatioClipStats s2 = rk::ratio_clip_forward_cpu<double>(buf.args, 2);
      // the loss to 2e-15·T: a row's T signed terms are added in another order (8 lanes),
      // whose rounding grows with T and, where the terms cancel, exceeds 1e-14 of the result
      // (seq_mean_token_sum: 1.7e-14 at T = 37, 1.0e-13 at T = 150)
      EXPECT_TRUE(close(s1.loss, s2.loss, 2e-15 * double(T)));
      EXPECT_EQ(s1.clip_frac_low, s2.clip_frac_low);
      EXPECT_EQ(s1.clip_frac_high, s2.clip_frac_high);
      EXPECT_EQ(s1.dual_clip_frac, s2.dual_clip_frac);
      EXPECT_TRUE(close(s1.approx_kl_k1, s2.approx_kl_k1, 1e-14));
      EXPECT_TRUE(close(s1.approx_kl_k3, s2.approx_kl_k3, 1e-13));
      EXPECT_EQ(s1.tokens, s2.tokens);
      std::vector<double> g1(ix(P.B * P.T)), g2(g1.size());
      rk::ratio_clip_backward_cpu<double>(buf.args, 0.5, g1.data(), false, 1);
      rk::ratio_clip_backward_cpu<double>(buf.args, 0.5, g2.data(), false, 2);
      for (size_t k = 0; k < g1.size(); ++k) ASSERT_TRUE(close(g1[k], g2[k], 1e-14)) << "k=" << k;
      if (HasFailure()) return;
    }
  // Float inputs with the scalar bound 1 − eps_low = 0.8 in double: r = e^{float(ln 0.8)} =
  // 0.8000000028 sits between 0.8 and float(0.8) = 0.8000000119, so it is not clipped; a
  // version that rounded the bound to float would clip it (and drop its gradient).
  {
    ClipProblem F;
    F.B = 1;
    F.T = 3;
    F.logp = {double(float(std::log(0.8))), 0.1, -0.5};
    F.old_logp = {0.0, 0.0, 0.0};
    F.adv = {-1.0, 1.0, -1.0};
    ClipBuffers<float> fb(F);
    for (int version : {1, 2}) {
      SCOPED_TRACE("version " + std::to_string(version));
      const rk::RatioClipStats s = rk::ratio_clip_forward_cpu<float>(fb.args, version);
      EXPECT_EQ(s.clip_frac_low, 1.0 / 3);  // only the third token (r = e^−0.5)
      std::vector<float> g(3);
      rk::ratio_clip_backward_cpu<float>(fb.args, 1.0, g.data(), false, version);
      EXPECT_NE(g[0], 0.0f);
    }
  }
  // A masked token adds nothing and gets a zero gradient even when its advantage is not
  // finite (a padded position's garbage): no 0·inf in either version.
  {
    ClipProblem M;
    M.B = 1;
    M.T = 2;
    M.logp = {0.1, 0.05};
    M.old_logp = {0.0, 0.0};
    M.adv = {1.0, kInf};
    M.mask = {1.0, 0.0};
    ClipBuffers<double> mb(M);
    for (int version : {1, 2}) {
      SCOPED_TRACE("version " + std::to_string(version));
      EXPECT_TRUE(std::isfinite(rk::ratio_clip_forward_cpu<double>(mb.args, version).loss));
      std::vector<double> g(2, 7.0);
      rk::ratio_clip_backward_cpu<double>(mb.args, 1.0, g.data(), false, version);
      EXPECT_EQ(g[1], 0.0);
    }
  }
  ClipProblem P;
  P.B = 1;
  P.T = 1;
  P.logp = {0.0};
  P.old_logp = {0.0};
  P.adv = {1.0};
  ClipBuffers<double> buf(P);
  EXPECT_NE(rlft::testing::error_of([&] {
              rk::ratio_clip_forward_cpu<double>(buf.args, 3);
            }).find("ratio_clip_forward_cpu: unknown version 3"),
            std::string::npos);
  double g = 0;
  EXPECT_NE(rlft::testing::error_of([&] {
              rk::ratio_clip_backward_cpu<double>(buf.args, 1, &g, false, -1);
            }).find("unknown version -1"),
            std::string::npos);
}

// Version 0 picks version 1 for rows of T < 16 and version 2 from 16 on (ratio_clip.h): its
// results are those of the picked version to the bit, and the two versions differ at both
// lengths (else the comparison could not tell which ran).
TEST(RatioClip, DefaultVersionPicksByRowLength) {
  std::mt19937_64 rng(29);
  ClipOptions o;
  for (int64_t T : {1, 15, 16}) {
    SCOPED_TRACE("T=" + std::to_string(T));
    const ClipProblem P = random_clip(rng, 640 / T, T, o);
    ClipBuffers<double> buf(P);  // double: float outputs round most differences away
    const auto run = [&](int version) {
      const rk::RatioClipStats s = rk::ratio_clip_forward_cpu<double>(buf.args, version);
      std::vector<double> g(ix(P.B * P.T));
      rk::ratio_clip_backward_cpu<double>(buf.args, 0.5, g.data(), false, version);
      std::vector<double> all = {s.loss, s.approx_kl_k3};
      all.insert(all.end(), g.begin(), g.end());
      return all;
    };
    const std::vector<double> v0 = run(0), v1 = run(1), v2 = run(2);
    EXPECT_NE(v1, v2) << "the versions agree to the bit: the test cannot tell them apart";
    EXPECT_EQ(v0, T < 16 ? v1 : v2);
  }
}

// Version 2 of the CUDA kernel decides the clips on the log-ratio against log(lo), log(hi),
// log(c) (kernels/ratio_clip_math.h): the same clip, loss and dl/dr as surrogate() on
// e^xc at every (xc, A, bounds, c) away from a tie (a ratio within 1e-12 of a bound, where the
// rounded e^xc may fall on either side), including A = 0, NaN, and xc beyond the bounds.
// Version 3's float instantiation takes the same decisions away from float's rounding of a
// bound, with the loss to float's relative error.
TEST(RatioClipMath, LogRatioDecisionsMatchTheRatioOnes) {
  namespace m = rk::ratio_clip_math;
  std::mt19937_64 rng(42);
  std::normal_distribution<double> N01(0.0, 1.0);
  std::uniform_real_distribution<double> U(-1.0, 1.0);
  int64_t checked = 0, ties = 0, checked_f32 = 0;
  std::array<int64_t, 4> seen{};
  for (double eps_low : {0.2, 0.1}) {
    for (double eps_high : {0.2, 0.28}) {
      for (double c : {0.0, 3.0, 1.5}) {
        m::LogBounds b;
        b.lo = 1.0 - eps_low;
        b.hi = 1.0 + eps_high;
        b.c = c;
        b.log_lo = std::log(b.lo);
        b.log_hi = std::log(b.hi);
        b.log_c = c > 0 ? std::log(c) : 0.0;
        const m::LogBoundsT<float> bf{float(b.lo),     float(b.hi),     float(b.c),
                                      float(b.log_lo), float(b.log_hi), float(b.log_c)};
        for (int k = 0; k < 20000; ++k) {
          double xc = k % 7 == 0 ? 3.0 * U(rng) : 0.4 * U(rng);
          if (k % 101 == 0) xc = m::clamp_log_ratio(30.0 * U(rng));
          const double A = k % 13 == 0 ? 0.0 : N01(rng);
          const double r = std::exp(xc);
          auto near = [&](double bound) { return std::abs(r - bound) <= 1e-12 * bound; };
          if (near(b.lo) || near(b.hi) || (c > 0 && near(c))) {
            ++ties;
            continue;
          }
          const m::Term want = m::surrogate(r, A, b.lo, b.hi, c);
          const m::Term got = m::surrogate_from_log_ratio(xc, r, A, b);
          ASSERT_EQ(got.clip, want.clip) << "xc=" << xc << " A=" << A << " c=" << c;
          ASSERT_EQ(got.loss, want.loss) << "xc=" << xc << " A=" << A << " c=" << c;
          ASSERT_EQ(got.d_ratio, want.d_ratio) << "xc=" << xc << " A=" << A << " c=" << c;
          ++seen[size_t(got.clip)];
          ++checked;
          // Version 3's float instantiation: the same decisions unless r lies within float's
          // rounding of a bound, the loss to float's relative error.
          auto near_f = [&](double bound) { return std::abs(r - bound) <= 1e-5 * bound; };
          if (near_f(b.lo) || near_f(b.hi) || (c > 0 && near_f(c))) continue;
          const m::TermT<float> f = m::surrogate_from_log_ratio(float(xc), float(r), float(A), bf);
          ASSERT_EQ(f.clip, want.clip) << "float: xc=" << xc << " A=" << A << " c=" << c;
          ASSERT_NEAR(f.loss, want.loss, 1e-6 * std::max(1.0, std::abs(want.loss)));
          ASSERT_EQ(double(f.d_ratio), double(float(want.d_ratio)));
          ++checked_f32;
        }
      }
    }
  }
  EXPECT_GT(checked, 200000);
  EXPECT_GE(checked_f32, checked - 50);  // few samples fall within float's rounding of a bound
  EXPECT_LT(ties, 10);
  for (int64_t n : seen) EXPECT_GT(n, 1000);  // every branch: none, low, high, dual
  // NaN propagates as in surrogate(): the unclipped branch with a NaN loss.
  m::LogBounds b{0.8, 1.2, 3.0, std::log(0.8), std::log(1.2), std::log(3.0)};
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const m::Term t = m::surrogate_from_log_ratio(nan, nan, -1.0, b);
  EXPECT_EQ(t.clip, m::kNone);
  EXPECT_TRUE(std::isnan(t.loss));
}

// Version 3's token loop without the dual clip (CUDA, c = 0) takes the clip decisions as two
// flags (token_f32_no_dual); they must be surrogate_from_log_ratio<float>'s with c = 0, to the
// bit: random tokens, log-ratios exactly at the bounds' logs and a float step either side, A of
// both signs and ±0, NaN and the clamp's ends.
TEST(RatioClipMath, TokenF32MatchesTheGeneralTerm) {
  namespace m = rk::ratio_clip_math;
  std::mt19937_64 rng(7);
  std::normal_distribution<float> N01(0.f, 1.f);
  std::uniform_real_distribution<float> U(-1.f, 1.f);
  const float nan = std::numeric_limits<float>::quiet_NaN();
  std::array<int64_t, 3> seen{};  // none, low, high
  int64_t checked = 0;
  auto check = [&](float xc, float A, const m::LogBoundsT<float>& b) {
    const float r = std::exp(xc);
    const m::TermT<float> want = m::surrogate_from_log_ratio(xc, r, A, b);
    const m::TokenF32 got = m::token_f32_no_dual(xc, r, A, b);
    ASSERT_EQ(got.low, want.clip == m::kLow) << "xc=" << xc << " A=" << A;
    ASSERT_EQ(got.high, want.clip == m::kHigh) << "xc=" << xc << " A=" << A;
    ASSERT_NE(want.clip, m::kDual);
    if (std::isnan(want.loss)) {
      ASSERT_TRUE(std::isnan(got.loss)) << "xc=" << xc << " A=" << A;
    } else {
      ASSERT_EQ(std::memcmp(&got.loss, &want.loss, sizeof(float)), 0)
          << "xc=" << xc << " A=" << A << " got " << got.loss << " want " << want.loss;
    }
    ++seen[size_t(got.low ? 1 : got.high ? 2 : 0)];
    ++checked;
  };
  for (auto [eps_low, eps_high] :
       {std::pair<float, float>{0.2f, 0.2f}, {0.2f, 0.28f}, {0.1f, 0.3f}}) {
    const float lo = 1.f - eps_low, hi = 1.f + eps_high;
    const m::LogBoundsT<float> b{lo, hi, 0.f, std::log(lo), std::log(hi), 0.f};
    for (int k = 0; k < 50000; ++k) {
      const float xc = k % 5 == 0 ? m::clamp_log_ratio(25.f * U(rng)) : 0.5f * U(rng);
      check(xc, k % 11 == 0 ? 0.f : N01(rng), b);
    }
    for (float edge : {b.log_lo, b.log_hi, 0.f, -20.f, 20.f})
      for (float xc : {std::nextafter(edge, -1e9f), edge, std::nextafter(edge, 1e9f)})
        for (float A : {-2.f, -0.f, 0.f, 1e-30f, 3.f}) check(xc, A, b);
    for (float A : {-1.f, 1.f, nan}) {
      check(nan, A, b);
      check(0.1f, nan, b);
    }
  }
  EXPECT_GT(checked, 150000);
  for (int64_t n : seen) EXPECT_GT(n, 10000);
}

// The chunked layout's grid (kernels/ratio_clip_math.h, as the row kernels walk it:
// block b, thread j, group u of U take group g_begin + j + u·threads when below g_end) covers
// every token group of every row exactly once, for rows shorter than, equal to and longer than
// a chunk, with a partial last chunk.
TEST(RatioClipMath, ChunkedGridCoversEveryGroupOnce) {
  namespace m = rk::ratio_clip_math;
  for (int64_t B : {1, 3}) {
    for (int64_t ng : {1, 5, 32, 33, 64, 100, 257}) {
      for (int64_t threads : {32, 64}) {
        for (int64_t U : {1, 2, 4}) {
          const int64_t per_chunk = threads * U;
          const int64_t chunks = m::chunks_per_row(ng, per_chunk);
          EXPECT_EQ(chunks, (ng + per_chunk - 1) / per_chunk);
          std::vector<int> seen(size_t(B * ng), 0);
          for (int64_t b = 0; b < B * chunks; ++b) {
            const m::ChunkRange cr = m::chunk_range(b, chunks, per_chunk, ng);
            ASSERT_LT(cr.row, B);
            ASSERT_LE(cr.g_end, ng);
            for (int64_t j = 0; j < threads; ++j)
              for (int64_t g0 = cr.g_begin + j; g0 < cr.g_end; g0 += U * threads)
                for (int64_t u = 0; u < U; ++u) {
                  const int64_t g = g0 + u * threads;
                  if (g < cr.g_end) ++seen[size_t(cr.row * ng + g)];
                }
          }
          for (size_t k = 0; k < seen.size(); ++k)
            ASSERT_EQ(seen[k], 1) << "B=" << B << " ng=" << ng << " threads=" << threads
                                  << " U=" << U << " group " << k;
        }
      }
    }
  }
  EXPECT_EQ(m::chunks_per_row(0, 256), 1);  // an empty row still has its (empty) chunk
}

// Which layout the CUDA forward runs for each launch.chunked request: the one asked for where
// it applies, else the documented fallback (bulk → flat → a block per row; chunks → rows).
TEST(RatioClipMath, ForwardLayoutFallsBackWhereALayoutDoesNotApply) {
  namespace m = rk::ratio_clip_math;
  using L = m::Layout;
  alignas(16) static float buf[64];
  rk::RatioClipArgs<float> a{.B = 4,
                             .T = 6,
                             .logp = buf,
                             .old_logp = buf + 4,
                             .advantages = buf + 8,
                             .mask = buf + 12};  // B·T = 24
  const auto layout = [&](const rk::RatioClipArgs<float>& args, int chunked, bool sm90 = true,
                          int vec = 0) {
    return m::forward_layout(args, rk::CudaLaunch{0, 0, vec, 0, chunked}, sm90);
  };
  EXPECT_EQ(layout(a, 0), L::rows);
  EXPECT_EQ(layout(a, 1), L::chunks);
  EXPECT_EQ(layout(a, 2), L::flat);
  EXPECT_EQ(layout(a, 3), L::bulk);
  EXPECT_EQ(layout(a, 3, false), L::flat) << "no bulk copies before sm_90";
  EXPECT_EQ(layout(a, 3, true, 1), L::flat) << "vec = 1: scalar loads";
  auto b = a;
  b.T = 5;  // B·T = 20 is still a multiple of 4
  EXPECT_EQ(layout(b, 3), L::bulk);
  b.B = 3;  // 15
  EXPECT_EQ(layout(b, 3), L::flat);
  b = a;
  b.old_logp = buf + 5;  // not 16-byte aligned
  EXPECT_EQ(layout(b, 3), L::flat);
  b = a;
  b.lower = buf + 16;  // per-token bounds
  EXPECT_EQ(layout(b, 3), L::flat);
  b = a;
  b.mask = nullptr;  // no mask: three arrays to copy
  EXPECT_EQ(layout(b, 3), L::bulk);
  for (int chunked : {2, 3}) {
    b = a;
    b.advantages_per_sequence = true;
    EXPECT_EQ(layout(b, chunked), L::rows);
    b = a;
    b.aggregation = rk::Aggregation::seq_mean_token_mean;
    EXPECT_EQ(layout(b, chunked), L::rows);
    b = a;
    b.level = rk::RatioLevel::sequence_token;
    EXPECT_EQ(layout(b, chunked), L::rows);
  }
  b = a;
  b.level = rk::RatioLevel::sequence_token;
  EXPECT_EQ(layout(b, 1), L::rows) << "the sequence levels keep a block per row";
  alignas(16) static double dbuf[16];
  const rk::RatioClipArgs<double> d{
      .B = 2, .T = 2, .logp = dbuf, .old_logp = dbuf + 4, .advantages = dbuf + 8};
  EXPECT_EQ(m::forward_layout(d, rk::CudaLaunch{0, 0, 0, 0, 3}, true), L::flat) << "float only";
}

// The flat layout's cut of the batch's ng groups for P resident blocks: at most P chunks, all
// of ⌈ng/P⌉ groups but the last (none empty), together every group exactly once; fewer groups
// than blocks give a group a chunk.
TEST(RatioClipMath, FlatCutSharesTheGroupsEvenly) {
  namespace m = rk::ratio_clip_math;
  for (int64_t P : {1, 7, 132, 528, 792})
    for (int64_t ng : {1, 2, 6, 131, 132, 133, 1000, 1539, 524288}) {
      SCOPED_TRACE(testing::Message() << "P=" << P << " ng=" << ng);
      const m::ChunkCut c = m::flat_cut(ng, P);
      ASSERT_GE(c.count, 1);
      ASSERT_LE(c.count, P);
      EXPECT_EQ(c.groups, std::max<int64_t>(1, (ng + P - 1) / P));
      int64_t covered = 0;
      for (int64_t b = 0; b < c.count; ++b) {
        const m::ChunkRange cr = m::chunk_range(b, c.count, c.groups, ng);
        ASSERT_EQ(cr.row, 0);
        ASSERT_EQ(cr.g_begin, covered) << "chunk " << b;
        ASSERT_GT(cr.g_end, cr.g_begin) << "chunk " << b << " is empty";
        if (b + 1 < c.count) {
          ASSERT_EQ(cr.g_end - cr.g_begin, c.groups);
        }
        covered = cr.g_end;
      }
      EXPECT_EQ(covered, ng);
    }
}

// k3 = (e^x − 1) − x in float (version 2): within 1e-6 relative of the double value at the same
// float x over [−20, 20], dense near 0 where the direct formula would cancel.
TEST(RatioClipMath, K3InFloatKeepsFloatAccuracy) {
  namespace m = rk::ratio_clip_math;
  // The reference in double: the series Σ_{k≥2} x^k/k! for |x| < 0.5 (no cancellation),
  // expm1(x) − x beyond. Values below 1e-30 (float's x² underflows there) count absolutely.
  auto reference = [](double x) {
    if (std::abs(x) >= 0.5) return std::expm1(x) - x;
    double term = x * x / 2.0, sum = 0.0;
    for (int k = 3; k < 30; ++k) {
      sum += term;
      term *= x / k;
    }
    return sum;
  };
  double worst = 0.0, worst_x = 0.0;
  auto check = [&](double x0) {
    const float x = float(x0);
    const double want = reference(double(x));
    const double got = double(m::k3_f32(x, std::exp(x)));
    const double err = std::abs(got - want) / std::max(want, 1e-30);
    if (err > worst) {
      worst = err;
      worst_x = double(x);
    }
  };
  for (int i = -20000; i <= 20000; ++i) check(i * 1e-3);  // [−20, 20]
  for (int i = -10000; i <= 10000; ++i) check(i * 1e-7);  // |x| ≤ 1e-3
  for (double x : {0.999999, 1.0, 1.000001, -0.999999, -1.0, -1.000001, 1e-20, -1e-30}) check(x);
  EXPECT_LT(worst, 1e-6) << "at x = " << worst_x;
}

TEST(RatioClip, RejectsInconsistentArguments) {
  ClipProblem P;
  P.B = 1;
  P.T = 2;
  P.logp = {0, 0};
  P.old_logp = {0, 0};
  P.adv = {1, 1};
  auto args = [&] { return ClipBuffers<double>(P); };
  P.dual = 0.5;  // a dual clip must be > 1
  EXPECT_THROW(rk::ratio_clip_forward_cpu<double>(args().args), rlft::Error);
  P.dual = 0.0;
  P.level = rk::RatioLevel::sequence;  // GSPO needs per-sequence advantages
  EXPECT_THROW(rk::ratio_clip_forward_cpu<double>(args().args), rlft::Error);
  P.level = rk::RatioLevel::token;
  P.agg = rk::Aggregation::only_token_mean;
  P.normalizer = 4;
  EXPECT_THROW(rk::ratio_clip_forward_cpu<double>(args().args), rlft::Error);
  P.normalizer = 0;
  P.eps_low = -0.1;
  EXPECT_THROW(rk::ratio_clip_forward_cpu<double>(args().args), rlft::Error);
  // B = 0: an empty batch is not an error.
  rk::RatioClipArgs<double> empty;
  EXPECT_EQ(rk::ratio_clip_forward_cpu<double>(empty).loss, 0.0);
}

// =============================================================================================
// gae
// =============================================================================================

using rlft::test::GaeProblem;

// CleanRL's loop, one environment at a time, from the back, in double.
void ref_gae(const GaeProblem& P, std::vector<double>& adv, std::vector<double>& ret) {
  adv.assign(ix(P.T * P.N), 0.0);
  ret.assign(ix(P.T * P.N), 0.0);
  for (int64_t n = 0; n < P.N; ++n) {
    double lastgaelam = 0.0;
    for (int64_t t = P.T - 1; t >= 0; --t) {
      const size_t k = ix(t * P.N + n);
      const bool terminal = !P.terminated.empty() && P.terminated[k] != 0;
      const bool ended = terminal || (!P.episode_end.empty() && P.episode_end[k] != 0);
      const double bootstrap = terminal ? 0.0 : P.gamma * P.next_values[k];
      const double delta = P.rewards[k] + bootstrap - P.values[k];
      lastgaelam = delta + (ended ? 0.0 : P.gamma * P.lambda * lastgaelam);
      adv[k] = lastgaelam;
      ret[k] = lastgaelam + P.values[k];
    }
  }
}

template <typename Real>
void expect_gae_matches(const GaeProblem& P, double tol) {
  GaeProblem Pr = P;
  for (auto* v : {&Pr.rewards, &Pr.values, &Pr.next_values})
    for (double& x : *v) x = double(Real(x));
  Pr.gamma = double(Real(P.gamma));
  Pr.lambda = double(Real(P.lambda));
  std::vector<double> adv, ret;
  ref_gae(Pr, adv, ret);
  const auto r = cast<Real>(P.rewards), v = cast<Real>(P.values), nv = cast<Real>(P.next_values),
             term = cast<Real>(P.terminated), end = cast<Real>(P.episode_end);
  std::vector<Real> a(adv.size(), Real(-9)), R(adv.size(), Real(-9));
  rk::gae_cpu<Real>(r.data(), v.data(), nv.data(), term.empty() ? nullptr : term.data(),
                    end.empty() ? nullptr : end.data(), P.T, P.N, Real(P.gamma), Real(P.lambda),
                    a.data(), R.data());
  for (size_t k = 0; k < adv.size(); ++k) {
    ASSERT_TRUE(close(a[k], adv[k], tol)) << "advantages[" << k << "]";
    ASSERT_TRUE(close(R[k], ret[k], tol)) << "returns[" << k << "]";
  }
}

// Hand-computed, T = 3, N = 1, γ = 0.9, λ = 0.8 (γλ = 0.72), r = [1, 2, 3],
// V = [0.5, 1.0, 1.5], next V = [1.0, 1.5, 2.0] (2.0 is the bootstrap value):
//   δ2 = 3 + 0.9·2.0 − 1.5 = 3.3                A2 = 3.3
//   δ1 = 2 + 0.9·1.5 − 1.0 = 2.35               A1 = 2.35 + 0.72·3.3   = 4.726
//   δ0 = 1 + 0.9·1.0 − 0.5 = 1.4                A0 = 1.4  + 0.72·4.726 = 4.80272
//   returns = A + V = [5.30272, 5.726, 4.8].
// Terminated at t = 1: δ1 = 2 − 1 = 1, A1 = 1 (A2 not carried), A0 = 1.4 + 0.72·1 = 2.12.
// Truncated at t = 1 with V(final obs) = 4: δ1 = 2 + 0.9·4 − 1 = 4.6, A1 = 4.6,
//   A0 = 1.4 + 0.72·4.6 = 4.712.
TEST(Gae, HandComputedThreeSteps) {
  const double r[3] = {1, 2, 3}, v[3] = {0.5, 1.0, 1.5};
  double nv[3] = {1.0, 1.5, 2.0}, a[3], R[3];
  rk::gae_cpu<double>(r, v, nv, nullptr, nullptr, 3, 1, 0.9, 0.8, a, R);
  EXPECT_NEAR(a[0], 4.80272, 1e-14);
  EXPECT_NEAR(a[1], 4.726, 1e-14);
  EXPECT_NEAR(a[2], 3.3, 1e-14);
  EXPECT_NEAR(R[0], 5.30272, 1e-14);
  EXPECT_NEAR(R[1], 5.726, 1e-14);
  EXPECT_NEAR(R[2], 4.8, 1e-14);
  const double term[3] = {0, 1, 0};
  nv[1] = kNaN;  // a terminated step's next value is never used
  rk::gae_cpu<double>(r, v, nv, term, nullptr, 3, 1, 0.9, 0.8, a, R);
  EXPECT_NEAR(a[0], 2.12, 1e-14);
  EXPECT_NEAR(a[1], 1.0, 1e-14);
  EXPECT_NEAR(a[2], 3.3, 1e-14);
  const double end[3] = {0, 1, 0};
  nv[1] = 4.0;
  rk::gae_cpu<double>(r, v, nv, nullptr, end, 3, 1, 0.9, 0.8, a, R);
  EXPECT_NEAR(a[0], 4.712, 1e-14);
  EXPECT_NEAR(a[1], 4.6, 1e-14);
  EXPECT_NEAR(a[2], 3.3, 1e-14);
}

// Random terminations and truncations on odd sizes: 1×1 (a single step), 7×3, 129×5 (odd
// T, a few environments), 300×130 (above the threading threshold, three blocks of 64
// environments, the last one partial).
TEST(Gae, MatchesExplicitLoopRandomDones) {
  std::mt19937_64 rng(21);
  for (auto [T, N] : {std::pair<int64_t, int64_t>{1, 1}, {7, 3}, {129, 5}, {300, 130}}) {
    SCOPED_TRACE("T=" + std::to_string(T) + " N=" + std::to_string(N));
    GaeProblem P = rlft::test::random_gae(rng, T, N, 1e6);  // 1e6 must be ignored
    expect_gae_matches<double>(P, 1e-13);
    expect_gae_matches<float>(P, 2e-6);
    P.gamma = 1.0;
    P.lambda = 1.0;  // λ = 1: Monte-Carlo returns; the longest carry chains
    expect_gae_matches<double>(P, 1e-12);
    P.episode_end.clear();  // no truncation flags: only terminations end episodes
    expect_gae_matches<double>(P, 1e-12);
  }
}

// λ = 0 (one-step TD): A_t = δ_t exactly, whatever comes later in the episode. The carry is
// dropped where its coefficient γλ is 0, not multiplied by it, so a NaN reward at step 2 stays
// at step 2 (0·NaN would be NaN), as on the GPU (kernels/cuda/gae.cu).
TEST(Gae, LambdaZeroDropsTheCarry) {
  const double r[3] = {1, 2, kNaN}, v[3] = {0.5, 1.0, 1.5}, nv[3] = {1.0, 1.5, 2.0};
  double a[3], R[3];
  rk::gae_cpu<double>(r, v, nv, nullptr, nullptr, 3, 1, 0.9, 0.0, a, R);
  EXPECT_EQ(a[0], 1 + 0.9 * 1.0 - 0.5);
  EXPECT_EQ(a[1], 2 + 0.9 * 1.5 - 1.0);
  EXPECT_TRUE(std::isnan(a[2]));
  const double m[3] = {1, 1, 1};
  rk::gae_masked_rows_cpu<double>(r, v, m, 1, 3, 0.9, 0.0, a, R);
  EXPECT_EQ(a[0], 1 + 0.9 * 1.0 - 0.5);  // the next masked position's value is values[1]
  EXPECT_EQ(a[1], 2 + 0.9 * 1.5 - 1.0);
  EXPECT_TRUE(std::isnan(a[2]));
}

// Episode_end may leave out terminated steps: a termination always ends the episode.
TEST(Gae, TerminationEndsEpisodeWithoutEndFlag) {
  const double r[2] = {1, 1}, v[2] = {0, 0}, nv[2] = {0, 5}, term[2] = {1, 0}, end[2] = {0, 0};
  double a[2], R[2];
  rk::gae_cpu<double>(r, v, nv, term, end, 2, 1, 1.0, 1.0, a, R);
  EXPECT_EQ(a[0], 1.0);  // not 1 + A1
  EXPECT_EQ(a[1], 6.0);
}

TEST(Gae, EmptyAndInvalid) {
  rk::gae_cpu<double>(nullptr, nullptr, nullptr, nullptr, nullptr, 0, 4, 0.99, 0.95, nullptr,
                      nullptr);
  rk::gae_masked_rows_cpu<float>(nullptr, nullptr, nullptr, 3, 0, 1.0f, 0.95f, nullptr, nullptr);
  const double x = 0;
  double a;
  EXPECT_THROW(rk::gae_cpu<double>(&x, &x, &x, nullptr, nullptr, 1, 1, 1.5, 0.95, &a, nullptr),
               rlft::Error);
  EXPECT_THROW(rk::gae_masked_rows_cpu<double>(&x, &x, nullptr, 1, 1, 1.0, -0.1, &a, nullptr),
               rlft::Error);
}

// DeepSpeed-Chat's get_advantages_and_returns, literally: rewards and values are zeroed after
// the response (as its train_rlhf does), the loop runs over [start, T) with next value 0 at
// the end; the result is defined on [start, T).
void deepspeed_chat_gae(const std::vector<double>& values, const std::vector<double>& rewards,
                        int64_t B, int64_t T, int64_t start, const std::vector<int64_t>& ends,
                        double gamma, double lam, std::vector<double>& adv,
                        std::vector<double>& ret) {
  adv.assign(ix(B * T), 0.0);
  ret.assign(ix(B * T), 0.0);
  for (int64_t i = 0; i < B; ++i) {
    std::vector<double> v(values.begin() + i * T, values.begin() + (i + 1) * T);
    std::vector<double> r(rewards.begin() + i * T, rewards.begin() + (i + 1) * T);
    for (int64_t t = ends[ix(i)]; t < T; ++t) v[ix(t)] = r[ix(t)] = 0.0;
    double lastgaelam = 0.0;
    for (int64_t t = T - 1; t >= start; --t) {
      const double nextvalues = t < T - 1 ? v[ix(t + 1)] : 0.0;
      const double delta = r[ix(t)] + gamma * nextvalues - v[ix(t)];
      lastgaelam = delta + gamma * lam * lastgaelam;
      adv[ix(i * T + t)] = lastgaelam;
      ret[ix(i * T + t)] = lastgaelam + v[ix(t)];
    }
  }
}

// Hand-computed LLM row, T = 5, mask [0 1 1 1 0] (prompt, three response tokens, padding),
// γ = 1, λ = 0.95, r = [9, 0, 0, 1, 9], V = [9, 0.2, 0.4, 0.6, 9] (the 9s must be ignored):
//   t3: δ = 1 + 0 − 0.6 = 0.4 (value after the last response token is 0)   A3 = 0.4
//   t2: δ = 0 + 0.6 − 0.4 = 0.2                     A2 = 0.2 + 0.95·0.4  = 0.58
//   t1: δ = 0 + 0.4 − 0.2 = 0.2                     A1 = 0.2 + 0.95·0.58 = 0.751
//   returns = [0, 0.951, 0.98, 1.0, 0].
TEST(GaeMaskedRows, HandComputed) {
  const double r[5] = {9, 0, 0, 1, 9}, v[5] = {9, 0.2, 0.4, 0.6, 9}, m[5] = {0, 1, 1, 1, 0};
  double a[5], R[5];
  rk::gae_masked_rows_cpu<double>(r, v, m, 1, 5, 1.0, 0.95, a, R);
  const double want_a[5] = {0, 0.751, 0.58, 0.4, 0}, want_r[5] = {0, 0.951, 0.98, 1.0, 0};
  for (int t = 0; t < 5; ++t) {
    EXPECT_NEAR(a[t], want_a[t], 1e-15) << t;
    EXPECT_NEAR(R[t], want_r[t], 1e-15) << t;
  }
}

// Hand-computed row with γ ≠ 1 and a hole, T = 6, mask [0 1 1 0 1 0], γ = 0.9, λ = 0.8
// (γλ = 0.72), r = [9, 0, 0, 9, 1, 9], V = [9, 0.1, 0.25, 9, 0.5, 9] (the 9s must be ignored;
// the next value of t2 is t4's, across the hole, discounted by γ):
//   t4: δ = 1 + 0.9·0 − 0.5 = 0.5                         A4 = 0.5
//   t2: δ = 0 + 0.9·0.5 − 0.25 = 0.2                      A2 = 0.2 + 0.72·0.5   = 0.56
//   t1: δ = 0 + 0.9·0.25 − 0.1 = 0.125                    A1 = 0.125 + 0.72·0.56 = 0.5282
//   returns A + V = [0, 0.6282, 0.81, 0, 1.0, 0].
TEST(GaeMaskedRows, HandComputedDiscountedAcrossAHole) {
  const double r[6] = {9, 0, 0, 9, 1, 9}, v[6] = {9, 0.1, 0.25, 9, 0.5, 9},
               m[6] = {0, 1, 1, 0, 1, 0};
  double a[6], R[6];
  rk::gae_masked_rows_cpu<double>(r, v, m, 1, 6, 0.9, 0.8, a, R);
  const double want_a[6] = {0, 0.5282, 0.56, 0, 0.5, 0}, want_r[6] = {0, 0.6282, 0.81, 0, 1.0, 0};
  for (int t = 0; t < 6; ++t) {
    EXPECT_NEAR(a[t], want_a[t], 1e-14) << t;
    EXPECT_NEAR(R[t], want_r[t], 1e-14) << t;
  }
}

// Contiguous responses of random lengths (including length 1 and a response that runs to
// the last position) against DeepSpeed-Chat's loop, both precisions.
TEST(GaeMaskedRows, MatchesDeepSpeedChat) {
  std::mt19937_64 rng(22);
  std::normal_distribution<double> normal(0.0, 1.0);
  const int64_t B = 7, T = 33, start = 5;
  std::vector<double> r(ix(B * T)), v(ix(B * T)), mask(ix(B * T), 0.0);
  for (double& x : r) x = normal(rng);
  for (double& x : v) x = normal(rng);
  std::vector<int64_t> ends = {start + 1, T, start + 7, start + 20, T - 1, start + 2, start + 13};
  for (int64_t i = 0; i < B; ++i)
    for (int64_t t = start; t < ends[ix(i)]; ++t) mask[ix(i * T + t)] = 1.0;
  std::vector<double> ds_adv, ds_ret;
  deepspeed_chat_gae(v, r, B, T, start, ends, 1.0, 0.95, ds_adv, ds_ret);
  std::vector<double> a(ix(B * T)), R(ix(B * T));
  rk::gae_masked_rows_cpu<double>(r.data(), v.data(), mask.data(), B, T, 1.0, 0.95, a.data(),
                                  R.data());
  const auto rf = cast<float>(r), vf = cast<float>(v), mf = cast<float>(mask);
  std::vector<float> af(a.size()), Rf(a.size());
  rk::gae_masked_rows_cpu<float>(rf.data(), vf.data(), mf.data(), B, T, 1.0f, 0.95f, af.data(),
                                 Rf.data());
  for (int64_t i = 0; i < B; ++i)
    for (int64_t t = start; t < ends[ix(i)]; ++t) {
      const size_t k = ix(i * T + t);
      EXPECT_NEAR(a[k], ds_adv[k], 1e-13) << i << "," << t;
      EXPECT_NEAR(R[k], ds_ret[k], 1e-13) << i << "," << t;
      EXPECT_NEAR(af[k], ds_adv[k], 1e-5 * std::max(1.0, std::abs(ds_adv[k])));
    }
}

// Masks with holes (the recursion skips unmasked positions, it does not stop at them): the
// reference gathers the masked positions of a row, runs the plain loop, and scatters back.
TEST(GaeMaskedRows, HolesInTheMaskAndOddSizes) {
  std::mt19937_64 rng(23);
  std::normal_distribution<double> normal(0.0, 1.0);
  std::uniform_real_distribution<double> u01(0.0, 1.0);
  for (auto [B, T] : {std::pair<int64_t, int64_t>{1, 1}, {3, 7}, {5, 129}, {40, 1000}}) {
    SCOPED_TRACE("B=" + std::to_string(B) + " T=" + std::to_string(T));
    const double gamma = 0.99, lam = 0.9;
    std::vector<double> r(ix(B * T)), v(ix(B * T)), m(ix(B * T));
    for (double& x : r) x = normal(rng);
    for (double& x : v) x = normal(rng);
    for (double& x : m) x = u01(rng) < 0.6;
    std::vector<double> want_a(ix(B * T), 0.0), want_r(ix(B * T), 0.0);
    for (int64_t i = 0; i < B; ++i) {
      std::vector<size_t> pos;
      for (int64_t t = 0; t < T; ++t)
        if (m[ix(i * T + t)] != 0) pos.push_back(ix(i * T + t));
      double lastgaelam = 0.0;
      for (size_t j = pos.size(); j-- > 0;) {
        const double next_v = j + 1 < pos.size() ? v[pos[j + 1]] : 0.0;
        const double delta = r[pos[j]] + gamma * next_v - v[pos[j]];
        lastgaelam = delta + gamma * lam * lastgaelam;
        want_a[pos[j]] = lastgaelam;
        want_r[pos[j]] = lastgaelam + v[pos[j]];
      }
    }
    std::vector<double> a(ix(B * T), -9), R(ix(B * T), -9);
    rk::gae_masked_rows_cpu<double>(r.data(), v.data(), m.data(), B, T, gamma, lam, a.data(),
                                    R.data());
    for (size_t k = 0; k < a.size(); ++k) {
      ASSERT_TRUE(close(a[k], want_a[k], 1e-13)) << k;
      ASSERT_TRUE(close(R[k], want_r[k], 1e-13)) << k;
    }
    // No mask: every position is a response token.
    rk::gae_masked_rows_cpu<double>(r.data(), v.data(), nullptr, B, T, gamma, lam, a.data(),
                                    nullptr);
    GaeProblem P;  // the same recursion as classic GAE on one environment per row, no dones
    P.T = T;
    P.N = 1;
    P.gamma = gamma;
    P.lambda = lam;
    for (int64_t i = 0; i < B; ++i) {
      P.rewards.assign(r.begin() + i * T, r.begin() + (i + 1) * T);
      P.values.assign(v.begin() + i * T, v.begin() + (i + 1) * T);
      P.next_values.assign(P.values.begin() + 1, P.values.end());
      P.next_values.push_back(0.0);
      std::vector<double> ca, cr;
      ref_gae(P, ca, cr);
      for (int64_t t = 0; t < T; ++t)
        ASSERT_TRUE(close(a[ix(i * T + t)], ca[ix(t)], 1e-13)) << i << "," << t;
    }
  }
}

}  // namespace
