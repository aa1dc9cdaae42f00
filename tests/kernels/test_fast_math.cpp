// The vectorisable float (and double) approximations of kernels/cpu/fast_math.h against libm in
// double, on dense grids, and their edge cases (the softmax and cross-entropy kernels rely on
// exp_fast(-inf) being exactly 0: masked attention logits are -inf).
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "kernels/cpu/fast_math.h"

namespace rlft::kernels {
namespace {

TEST(FastMath, ExpRelativeErrorOnDenseGrid) {
  double worst = 0, at = 0;
  for (double x = -87.3; x <= 88.7; x += 3e-4) {
    const float f = float(x);
    const double ref = std::exp(double(f));
    const double err = std::abs(double(exp_fast(f)) - ref) / ref;
    if (err > worst) worst = err, at = f;
  }
  // Measured 7.7e-8 (under one float ulp at 1, 1.19e-7).
  EXPECT_LT(worst, 3e-7) << "worst at x = " << at;
}

TEST(FastMath, ExpEdges) {
  const float inf = std::numeric_limits<float>::infinity();
  EXPECT_EQ(exp_fast(0.0f), 1.0f);
  EXPECT_EQ(exp_fast(-inf), 0.0f);
  EXPECT_EQ(exp_fast(-1000.0f), 0.0f);
  EXPECT_EQ(exp_fast(inf), inf);
  EXPECT_EQ(exp_fast(100.0f), inf);
  EXPECT_TRUE(std::isnan(exp_fast(std::numeric_limits<float>::quiet_NaN())));
  // Both ends of the normal range: 2^n assembled in two halves stays finite and accurate.
  EXPECT_NEAR(exp_fast(88.7f) / std::exp(double(88.7f)), 1.0, 3e-7);
  EXPECT_NEAR(exp_fast(-87.3f) / std::exp(double(-87.3f)), 1.0, 3e-7);
  EXPECT_NEAR(exp_fast(1.0f), float(M_E), 3e-7);
}

TEST(FastMath, ExpF64RelativeErrorOnDenseGrid) {
  double worst = 0, at = 0;
  for (double x = -708.0; x <= 709.7; x += 1.7e-3) {
    const double ref = std::exp(x);
    const double err = std::abs(exp_fast_f64(x) - ref) / ref;
    if (err > worst) worst = err, at = x;
  }
  for (double x = -1.0; x <= 1.0; x += 1e-6) {  // the range of PPO's log-ratios, densely
    const double ref = std::exp(x);
    const double err = std::abs(exp_fast_f64(x) - ref) / ref;
    if (err > worst) worst = err, at = x;
  }
  // Measured 2.2e-16 (one double ulp below 1).
  EXPECT_LT(worst, 5e-16) << "worst at x = " << at;
}

TEST(FastMath, ExpF64Edges) {
  const double inf = std::numeric_limits<double>::infinity();
  EXPECT_EQ(exp_fast_f64(0.0), 1.0);
  EXPECT_EQ(exp_fast_f64(-inf), 0.0);
  EXPECT_EQ(exp_fast_f64(-1000.0), 0.0);
  EXPECT_EQ(exp_fast_f64(inf), inf);
  EXPECT_EQ(exp_fast_f64(710.0), inf);
  EXPECT_TRUE(std::isnan(exp_fast_f64(std::numeric_limits<double>::quiet_NaN())));
  EXPECT_NEAR(exp_fast_f64(709.7) / std::exp(709.7), 1.0, 5e-16);
  EXPECT_NEAR(exp_fast_f64(-708.3) / std::exp(-708.3), 1.0, 5e-16);
  // subnormal results: finite and close in absolute terms
  EXPECT_GT(exp_fast_f64(-740.0), 0.0);
  EXPECT_NEAR(exp_fast_f64(-740.0), std::exp(-740.0), 1e-320);
  EXPECT_NEAR(exp_fast_f64(1.0), M_E, 5e-16 * M_E);
}

TEST(FastMath, TanhAbsoluteErrorOnDenseGrid) {
  double worst = 0, at = 0;
  for (double x = -12; x <= 12; x += 1e-4) {
    const float f = float(x);
    const double err = std::abs(double(tanh_fast(f)) - std::tanh(double(f)));
    if (err > worst) worst = err, at = f;
  }
  EXPECT_LT(worst, 5e-7) << "worst at x = " << at;  // measured 2.7e-7
  // Saturation: exactly ±1 where the polynomials are evaluated as written, as CMakeLists.txt's
  // -ffp-contract=off makes every build do; a compiler that contracts p·x² + a into fused
  // multiply-adds (Clang's default when it folds constants, GCC's on an FMA target) gives
  // 1 − 2.4e-7 at the clamp point. Either way within 3e-7 of ±1 and never beyond it.
  const float inf = std::numeric_limits<float>::infinity();
  EXPECT_NEAR(tanh_fast(inf), 1.0f, 3e-7);
  EXPECT_NEAR(tanh_fast(-inf), -1.0f, 3e-7);
  for (float x : {7.0f, 7.9f, 8.0f, 20.0f, 1e30f, inf}) {
    EXPECT_LE(tanh_fast(x), 1.0f) << x;
    EXPECT_GE(tanh_fast(-x), -1.0f) << x;
  }
  EXPECT_EQ(tanh_fast(0.0f), 0.0f);
}

}  // namespace
}  // namespace rlft::kernels
