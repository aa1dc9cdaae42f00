// The float32 GELU and tanh kernels (kernels/cpu/activation.h, AVX-512/AVX2/portable clones)
// against the scalar formulas of engine/ops_elementwise.cpp, which the ops run for strided
// inputs: forward and backward must agree bitwise (the same operations in the same order, no FMA
// contraction). Inputs span the tanh_fast clamp (|u| > 7.9), zero, and lengths that leave vector
// tails.
#include <gtest/gtest.h>

#include "engine/ops.h"
#include "kernels/cpu/fast_math.h"

namespace rlft {
namespace {

TEST(Gelu, ContiguousKernelEqualsTheStridedFormulaBitwise) {
  for (const int64_t n : {1, 15, 17, 333, 40000}) {  // 40000: above the threads' split threshold
    std::vector<float> v(size_t(2 * n));
    for (int64_t i = 0; i < 2 * n; ++i)
      v[size_t(i)] = -12.0f + 24.0f * float((i * 7919) % 1000) / 999.0f;
    const Tensor base = Tensor::from_vector(v, {n, 2});
    const Tensor contiguous = base.select(1, 0).contiguous().set_requires_grad();
    const Tensor strided = base.select(1, 0).detach().set_requires_grad();  // stride 2
    ASSERT_FALSE(strided.is_contiguous() && n > 1);
    const Tensor y1 = gelu(contiguous), y2 = gelu(strided);
    EXPECT_EQ(y1.to_float_vector(), y2.to_float_vector()) << "n = " << n;
    const Tensor w = Tensor::from_vector(std::vector<float>(v.begin(), v.begin() + n), {n});
    sum(mul(y1, w)).backward();
    sum(mul(y2, w)).backward();
    EXPECT_EQ(contiguous.grad().to_float_vector(), strided.grad().to_float_vector()) << "n = " << n;
  }
}

// tanh: the forward against the strided path (map_unary_float's tanh_fast); the backward, which
// takes the kernel for any contiguous gradient, against its formula g·(1 − y·y) in float, element
// by element.
TEST(Tanh, ContiguousKernelEqualsTheScalarFormulaBitwise) {
  for (const int64_t n : {1, 15, 17, 333, 40000}) {
    std::vector<float> v(size_t(2 * n));
    for (int64_t i = 0; i < 2 * n; ++i)
      v[size_t(i)] = -12.0f + 24.0f * float((i * 7919) % 1000) / 999.0f;
    const Tensor base = Tensor::from_vector(v, {n, 2});
    const Tensor contiguous = base.select(1, 0).contiguous().set_requires_grad();
    const Tensor strided = base.select(1, 0).detach();  // stride 2
    ASSERT_FALSE(strided.is_contiguous() && n > 1);
    const Tensor y = tanh(contiguous);
    const std::vector<float> y1 = y.to_float_vector();
    EXPECT_EQ(y1, tanh(strided).to_float_vector()) << "n = " << n;
    for (int64_t i = 0; i < n; ++i)
      ASSERT_EQ(y1[size_t(i)], kernels::tanh_fast(v[size_t(2 * i)]))
          << "n = " << n << ", i = " << i;
    const std::vector<float> w(v.begin() + n, v.begin() + 2 * n);
    sum(mul(y, Tensor::from_vector(w, {n}))).backward();
    const std::vector<float> dx = contiguous.grad().to_float_vector();
    for (int64_t i = 0; i < n; ++i) {
      const float yi = y1[size_t(i)];
      ASSERT_EQ(dx[size_t(i)], w[size_t(i)] * (1.0f - yi * yi)) << "n = " << n << ", i = " << i;
    }
  }
}

}  // namespace
}  // namespace rlft
