// Branch-free float approximations that compilers vectorise (libm's tanhf/expf are scalar
// calls and dominated PPO's MLP step: 70% of a CartPole minibatch in a profile).
//
// tanh_fast: the [13/6] odd rational approximation p(x)/q(x) on x clamped to ±7.90531, with
// the coefficients Eigen uses for its float tanh (Eigen/src/Core/MathFunctionsImpl.h,
// "generic_fast_tanh_float"). Max abs error vs std::tanh in double 3.3e-7 (about 5 float ulps
// near ±1; tests/kernels/test_fast_math.cpp checks < 5e-7 on a dense grid). Reference: std::tanh.
//
// exp_fast: e^x = 2^n · e^r with n = round(x·log2 e) and r = x − n·ln 2 (ln 2 split in a high
// part exact in float and a low correction, so r carries no cancellation error), |r| ≤ ln2/2;
// e^r by its degree-7 Taylor polynomial (truncation error r^8/8! ≤ 5e-9, below half a float
// ulp), 2^n assembled in the exponent bits in two halves so n = ±127 stays representable.
// Max relative error vs std::exp in double 7.7e-8, under one float ulp (test_fast_math.cpp checks <
// 3e-7 on a dense grid). x below −87.3 (where e^x would be subnormal) gives 0, x above 88.72 gives
// +inf, NaN gives NaN. Reference: std::exp.
//
// exp_fast_f64: the same scheme in double: ln 2 split in a high part with 32 significant bits
// (n·kLn2Hi exact for |n| < 2^21) and a low correction, |r| ≤ ln2/2, e^r by its degree-13
// Taylor polynomial (truncation r^14/14! ≤ 4e-18, below a tenth of a double ulp). Max relative
// error vs std::exp 2.2e-16 (one double ulp below 1; test_fast_math.cpp checks < 5e-16 on a
// dense grid of [−708, 709.7]). Below −708.4 the result is subnormal (2^n in two halves keeps it
// finite, its relative error grows as the subnormal's precision falls), below −745.2 it is 0;
// above 709.78 +inf; NaN gives NaN. Reference: std::exp.
#pragma once

#include <algorithm>
#include <bit>
#include <cstdint>

namespace rlft::kernels {

[[gnu::always_inline]] inline float tanh_fast(float x) {
  constexpr float kClamp = 7.90531110763549805f;  // tanh(±7.905) rounds to ±1 in float
  constexpr float a1 = 4.89352455891786e-03f, a3 = 6.37261928875436e-04f,
                  a5 = 1.48572235717979e-05f, a7 = 5.12229709037114e-08f,
                  a9 = -8.60467152213735e-11f, a11 = 2.00018790482477e-13f,
                  a13 = -2.76076847742355e-16f;
  constexpr float b0 = 4.89352518554385e-03f, b2 = 2.26843463243900e-03f,
                  b4 = 1.18534705686654e-04f, b6 = 1.19825839466702e-06f;
  const float c = std::min(std::max(x, -kClamp), kClamp);  // min/max, not branches: vectorises
  const float x2 = c * c;
  float p = a13;
  p = p * x2 + a11;
  p = p * x2 + a9;
  p = p * x2 + a7;
  p = p * x2 + a5;
  p = p * x2 + a3;
  p = p * x2 + a1;
  p = p * c;
  float q = b6;
  q = q * x2 + b4;
  q = q * x2 + b2;
  q = q * x2 + b0;
  // For tiny |x| the ratio is x·(a1/b0) = x·(1 − 1.3e-7): within an ulp of tanh(x) ≈ x.
  return p / q;
}

[[gnu::always_inline]] inline float exp_fast(float x) {
  constexpr float kLog2e = 1.44269504088896341f;
  constexpr float kLn2Hi = 0.693145751953125f;          // 12 significant bits: n·kLn2Hi is exact
  constexpr float kLn2Lo = 1.42860682030941723212e-6f;  // ln 2 − kLn2Hi
  constexpr float kLo = -87.3365478515625f, kHi = 88.72283172607421875f;
  const float c = std::min(std::max(x, kLo), kHi);
  // n = roundeven(c·log2 e) by adding and subtracting 1.5·2^23: the sum lies in [2^23, 2^24),
  // where the float spacing is 1, so the addition rounds to the nearest integer, ties to even
  // (exact for |c·log2 e| < 2^22; here it is below 128). __builtin_roundevenf needs SSE4.1's
  // roundps: in the portable (SSE2) build it was a libm call per element that kept every exp
  // loop scalar (perf: __roundevenf_sse41 + its PLT stub in the GPT step's profile).
  constexpr float kRoundShift = 12582912.0f;  // 1.5·2^23
  const float n = (c * kLog2e + kRoundShift) - kRoundShift;
  const float r = (c - n * kLn2Hi) - n * kLn2Lo;
  float p = 1.0f / 5040;
  p = p * r + 1.0f / 720;
  p = p * r + 1.0f / 120;
  p = p * r + 1.0f / 24;
  p = p * r + 1.0f / 6;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  // 2^n as two factors 2^(n/2) · 2^(n − n/2), each a normal float for |n| ≤ 128.
  const int32_t ni = int32_t(n), n1 = ni / 2, n2 = ni - n1;
  const float s1 = std::bit_cast<float>(uint32_t(n1 + 127) << 23);
  const float s2 = std::bit_cast<float>(uint32_t(n2 + 127) << 23);
  float y = p * s1 * s2;
  y = x < kLo ? 0.0f : y;
  y = x > kHi ? __builtin_inff() : y;
  return x != x ? x : y;
}

[[gnu::always_inline]] inline double exp_fast_f64(double x) {
  constexpr double kLog2e = 1.4426950408889634074;
  constexpr double kLn2Hi = 0.693147180559890330187045037746429443359375;  // 32 bits
  constexpr double kLn2Lo = 5.4979230187083711552420206887e-14;            // ln 2 − kLn2Hi
  constexpr double kLo = -745.2, kHi = 709.79;
  const double c = std::min(std::max(x, kLo), kHi);
  constexpr double kRoundShift = 6755399441055744.0;  // 1.5·2^52: rounds to an integer
  const double n = (c * kLog2e + kRoundShift) - kRoundShift;
  const double r = (c - n * kLn2Hi) - n * kLn2Lo;
  double p = 1.0 / 6227020800.0;  // 1/13!
  p = p * r + 1.0 / 479001600.0;
  p = p * r + 1.0 / 39916800.0;
  p = p * r + 1.0 / 3628800.0;
  p = p * r + 1.0 / 362880.0;
  p = p * r + 1.0 / 40320.0;
  p = p * r + 1.0 / 5040.0;
  p = p * r + 1.0 / 720.0;
  p = p * r + 1.0 / 120.0;
  p = p * r + 1.0 / 24.0;
  p = p * r + 1.0 / 6.0;
  p = p * r + 0.5;
  p = p * r + 1.0;
  p = p * r + 1.0;
  // 2^n as 2^(n/2) · 2^(n − n/2), each a normal double for |n| ≤ 1075.
  const int32_t ni = int32_t(n), n1 = ni / 2, n2 = ni - n1;
  const double s1 = std::bit_cast<double>(uint64_t(int64_t(n1) + 1023) << 52);
  const double s2 = std::bit_cast<double>(uint64_t(int64_t(n2) + 1023) << 52);
  double y = p * s1 * s2;
  y = x < kLo ? 0.0 : y;
  y = x > kHi ? __builtin_inf() : y;
  return x != x ? x : y;
}

}  // namespace rlft::kernels
