// The vectorisable float approximations of kernels/cpu/fast_math.h against libm in double, on
// dense grids, and their edge cases (the softmax and cross-entropy kernels rely on exp_fast(-inf)
// being exactly 0: masked attention logits are -inf).
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
