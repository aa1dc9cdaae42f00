// Tensor semantics: creation, views without copies, broadcasting, autograd mechanics and
// the error messages of bad input (each names the op and the offending values).
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "engine/autograd.h"
#include "engine/ops.h"
#include "engine/optim.h"
#include "test_util.h"

namespace rlft {
namespace {

std::vector<double> V(const Tensor& t) { return t.to_vector(); }
Tensor F(std::vector<float> v, Shape s) { return Tensor::from_vector(v, s); }

using testing::error_of;

TEST(Tensor, CreationAndMetadata) {
  Tensor z = Tensor::zeros({2, 3});
  EXPECT_EQ(z.shape(), Shape({2, 3}));
  EXPECT_EQ(z.strides(), Shape({3, 1}));
  EXPECT_EQ(z.dtype(), DType::f32);
  EXPECT_EQ(V(Tensor::full({2}, 1.5)), std::vector<double>({1.5, 1.5}));
  EXPECT_EQ(V(Tensor::arange(4)), std::vector<double>({0, 1, 2, 3}));
  EXPECT_EQ(Tensor::arange(4).dtype(), DType::i64);
  EXPECT_EQ(V(Tensor::arange(0.0, 1.0, 0.25)), std::vector<double>({0, 0.25, 0.5, 0.75}));
  EXPECT_DOUBLE_EQ(Tensor::scalar(3.0).item(), 3.0);
  EXPECT_NE(z.to_string().find("shape=[2,3], dtype=float32"), std::string::npos);
}

TEST(Tensor, ViewsShareStorage) {
  Tensor a = F({0, 1, 2, 3, 4, 5}, {2, 3});
  Tensor t = a.t();
  EXPECT_EQ(t.shape(), Shape({3, 2}));
  EXPECT_FALSE(t.is_contiguous());
  EXPECT_EQ(V(t), std::vector<double>({0, 3, 1, 4, 2, 5}));
  Tensor n = a.narrow(1, 1, 2);
  EXPECT_EQ(V(n), std::vector<double>({1, 2, 4, 5}));
  n.fill_(9);  // writes through to a
  EXPECT_EQ(V(a), std::vector<double>({0, 9, 9, 3, 9, 9}));
  EXPECT_EQ(a.reshape({3, 2}).storage(), a.storage());
  EXPECT_EQ(V(a.select(0, 1)), std::vector<double>({3, 9, 9}));
  EXPECT_EQ(a.unsqueeze(1).shape(), Shape({2, 1, 3}));
  EXPECT_EQ(a.unsqueeze(1).squeeze(1).shape(), Shape({2, 3}));
  EXPECT_EQ(a.reshape({-1}).shape(), Shape({6}));
  // A transposed tensor cannot be viewed flat; reshape copies instead.
  EXPECT_NE(error_of([&] { t.view({6}); }).find("view: cannot view"), std::string::npos);
  EXPECT_EQ(V(t.reshape({6})), std::vector<double>({0, 3, 9, 9, 9, 9}));
  EXPECT_NE(t.reshape({6}).storage(), a.storage());
  EXPECT_EQ(a.permute({1, 0}).strides(), Shape({1, 3}));
  EXPECT_EQ(F({1, 2, 3, 4, 5, 6, 7, 8}, {2, 2, 2}).flatten(1).shape(), Shape({2, 4}));
}

// Views and indices at their edges: a leading size-1 dimension is still a view; squeezing a
// dimension whose size is not 1 changes nothing; the stride of a size-1 dimension does not make a
// tensor non-contiguous; a negative narrow start and select index count from the end; arange's
// length rounds up ((1 − 0)/0.3 → 4 values). Refused, naming the values: a negative size other than
// the one -1 to infer, a select index below −size, a narrow of negative length, item() of more than
// one element.
TEST(Tensor, ViewAndIndexEdgesAndTheirErrors) {
  Tensor a = F({0, 1, 2, 3, 4, 5}, {2, 3});
  EXPECT_EQ(a.view({1, 2, 3}).storage(), a.storage());
  EXPECT_EQ(a.squeeze(1).shape(), Shape({2, 3}));
  EXPECT_TRUE(F({1, 2, 3}, {3, 1}).t().is_contiguous());  // [1, 3] with strides [1, 1]
  EXPECT_EQ(error_of([&] { a.reshape({-2, -3}); }), "reshape: invalid dimension -2 in [-2,-3]");
  EXPECT_EQ(error_of([&] { a.select(0, -3); }),
            "select: index -3 out of range for dimension 0 of size 2");
  EXPECT_EQ(error_of([&] { a.narrow(1, 0, -1); }),
            "narrow: range [0, -1) out of bounds for dimension 1 of size 3 (shape [2,3])");
  EXPECT_EQ(error_of([&] { a.select(1, 0).item(); }),
            "item: tensor of shape [2] has 2 elements, expected exactly one");
  EXPECT_EQ(error_of([&] {
              F({1, 2}, {2}).expand({3});
            }),
            "expand: cannot expand [2] to [3] (dimension 0: 2 vs 3)");
  EXPECT_EQ(error_of([&] { a.permute({0, 0}); }), "permute: dimension 0 repeated");
  EXPECT_EQ(error_of([&] {
              Tensor::zeros({2, 2, 2}).flatten(2, 1);
            }),
            "flatten: start_dim 2 comes after end_dim 1");
  EXPECT_EQ(error_of([&] { Tensor::zeros({2, -1}); }), "empty: negative dimension in shape [2,-1]");
  EXPECT_EQ(V(a.select(0, -2)), std::vector<double>({0, 1, 2}));
  const std::vector<double> r = V(Tensor::arange(0.0, 1.0, 0.3, DType::f64));
  EXPECT_EQ(r.size(), 4u);
  for (size_t i = 0; i < r.size(); ++i) EXPECT_NEAR(r[i], 0.3 * double(i), 1e-15) << i;
  EXPECT_EQ(V(a.narrow(1, -2, 2)), std::vector<double>({1, 2, 4, 5}));
}

TEST(Tensor, ExpandAndBroadcasting) {
  Tensor col = F({1, 2}, {2, 1});
  Tensor row = F({10, 20, 30}, {3});
  Tensor e = col.expand({2, 3});
  EXPECT_EQ(e.strides(), Shape({1, 0}));
  EXPECT_EQ(V(e), std::vector<double>({1, 1, 1, 2, 2, 2}));
  EXPECT_EQ(V(add(col, row)), std::vector<double>({11, 21, 31, 12, 22, 32}));
  EXPECT_EQ(V(mul(row, Tensor::scalar(2))), std::vector<double>({20, 40, 60}));
  EXPECT_EQ(broadcast_shapes({5, 1, 4}, {3, 1}, "t"), Shape({5, 3, 4}));
}

TEST(Tensor, ReductionsByHand) {
  Tensor a = F({1, 2, 3, 4, 5, 6}, {2, 3});
  EXPECT_EQ(V(sum(a, {0})), std::vector<double>({5, 7, 9}));
  EXPECT_EQ(V(sum(a, {1}, true)), std::vector<double>({6, 15}));
  EXPECT_EQ(sum(a, {1}, true).shape(), Shape({2, 1}));
  EXPECT_DOUBLE_EQ(mean(a).item(), 3.5);
  EXPECT_NEAR(var(a).item(), 3.5, 1e-6);             // unbiased: Σ(x−3.5)²/5 = 17.5/5
  EXPECT_NEAR(var(a, {}, 0).item(), 17.5 / 6, 1e-6);  // population
  EXPECT_EQ(V(max(a, 1)), std::vector<double>({3, 6}));
  EXPECT_EQ(V(argmax(a, 0)), std::vector<double>({1, 1, 1}));
  EXPECT_NEAR(logsumexp(F({0, 0}, {2}), 0).item(), std::log(2.0), 1e-6);
  // Large logits do not overflow.
  EXPECT_NEAR(logsumexp(F({1000, 1000}, {2}), 0).item(), 1000 + std::log(2.0), 1e-3);
}

// max, min and argmax over a dim propagate NaN as PyTorch's: a row holding a NaN has the value
// NaN and the index of its FIRST NaN, wherever it lies (after a larger number, at the start with
// another NaN later); a row without NaN gives its extreme and the index of that extreme.
TEST(Tensor, MaxMinAndArgmaxOverADimGiveTheFirstNaN) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const Tensor a = F({1, nan, 3, nan, 5, nan, 2, 0, 4}, {3, 3});
  const std::vector<double> mx = V(max(a, 1)), mn = V(min(a, 1));
  for (int r : {0, 1}) {
    EXPECT_TRUE(std::isnan(mx[r])) << r;
    EXPECT_TRUE(std::isnan(mn[r])) << r;
  }
  EXPECT_EQ(mx[2], 4.0);
  EXPECT_EQ(mn[2], 0.0);
  EXPECT_EQ(V(argmax(a, 1)), std::vector<double>({1, 0, 2}));
}

// logsumexp of a row that is all −∞ is −∞ (log 0), not NaN from −∞ − (−∞); one finite entry
// among −∞ gives that entry.
TEST(Tensor, LogsumexpOfAnAllMinusInfinityRowIsMinusInfinity) {
  const float inf = std::numeric_limits<float>::infinity();
  EXPECT_EQ(V(logsumexp(F({-inf, -inf, -inf, 2}, {2, 2}), 1)), std::vector<double>({-inf, 2}));
}

TEST(Tensor, CumsumByHand) {
  const Tensor a = F({1, 2, 3, 4, 5, 6}, {2, 3});
  EXPECT_EQ(V(cumsum(a, 1)), std::vector<double>({1, 3, 6, 4, 9, 15}));
  EXPECT_EQ(V(cumsum(a, -1)), std::vector<double>({1, 3, 6, 4, 9, 15}));
  EXPECT_EQ(V(cumsum(a, 0)), std::vector<double>({1, 2, 3, 5, 7, 9}));
  EXPECT_EQ(cumsum(a, 0).dtype(), DType::f32);
  // [2, 2, 2] along the middle: each (o, i) line on its own.
  const Tensor b = Tensor::from_vector(std::vector<double>{1, 2, 3, 4, 5, 6, 7, 8}, {2, 2, 2});
  EXPECT_EQ(V(cumsum(b, 1)), std::vector<double>({1, 2, 4, 6, 5, 6, 12, 14}));
  EXPECT_EQ(cumsum(b, 1).dtype(), DType::f64);
  // bool counts as int64 (torch.cumsum of a mask: position ids).
  const Tensor m = cumsum(Tensor::from_bools({false, true, true, false, true}, {5}), 0);
  EXPECT_EQ(m.dtype(), DType::i64);
  EXPECT_EQ(V(m), std::vector<double>({0, 1, 2, 2, 3}));
  // int64 sums exactly past 2^53 (no detour through double).
  const int64_t big = int64_t(1) << 53;
  const Tensor i = cumsum(Tensor::from_vector(std::vector<int64_t>{big, 1, 1}, {3}), 0);
  EXPECT_EQ(i.data<int64_t>()[2], big + 2);
  // float: the running sum is double, each output rounded once. A float running sum would stay
  // at 1e8 (its spacing there is 8) after eight ones; the double one reaches 1e8 + 8.
  std::vector<float> ones(9, 1.0f);
  ones[0] = 1e8f;
  EXPECT_EQ(V(cumsum(F(ones, {9}), 0))[8], 100000008.0);
  // A scalar, an empty dimension, a bad dimension.
  EXPECT_EQ(cumsum(Tensor::scalar(3), 0).item(), 3);
  EXPECT_EQ(cumsum(Tensor::zeros({2, 0}), 1).shape(), Shape({2, 0}));
  EXPECT_EQ(error_of([&] { cumsum(a, 2); }),
            "cumsum: dimension 2 out of range for a 2-d tensor (expected in [-2, 1])");
  // The gradient is the suffix sums of the incoming one: d/dx_j Σ_r w_r y_r = Σ_{r ≥ j} w_r.
  Tensor x = F({0.5f, -1, 2}, {3}).set_requires_grad();
  sum(mul(cumsum(x, 0), F({1, 10, 100}, {3}))).backward();
  EXPECT_EQ(V(x.grad()), std::vector<double>({111, 110, 100}));
}

TEST(Tensor, NnOpsByHand) {
  // softmax([0, ln 3]) = [1/4, 3/4]
  EXPECT_NEAR(V(softmax(F({0, float(std::log(3.0))}, {1, 2})))[1], 0.75, 1e-6);
  // cross-entropy of uniform logits over 4 classes is ln 4; an ignored row does not count.
  Tensor ce = cross_entropy(Tensor::zeros({2, 4}), Tensor::from_vector(std::vector<int64_t>{2, -100}, {2}));
  EXPECT_NEAR(ce.item(), std::log(4.0), 1e-6);
  // layer norm of [1, 3] is [-1, 1] (up to eps).
  EXPECT_NEAR(V(layer_norm(F({1, 3}, {1, 2}), Tensor(), Tensor(), 0.0))[0], -1.0, 1e-6);
  EXPECT_NEAR(V(gelu(F({1}, {1})))[0], 0.8411920, 1e-6);  // tanh-approximate GELU(1)
  EXPECT_EQ(V(one_hot(Tensor::from_vector(std::vector<int64_t>{2, 0}, {2}), 3)),
            std::vector<double>({0, 0, 1, 1, 0, 0}));
  EXPECT_EQ(V(gather(F({1, 2, 3, 4}, {2, 2}), 1, Tensor::from_vector(std::vector<int64_t>{1, 0}, {2, 1}))),
            std::vector<double>({2, 3}));
  EXPECT_EQ(V(masked_fill(F({1, 2}, {2}), Tensor::from_bools({true, false}, {2}), -1)),
            std::vector<double>({-1, 2}));
  EXPECT_EQ(V(concat({F({1}, {1}), F({2, 3}, {2})})), std::vector<double>({1, 2, 3}));
  EXPECT_EQ(stack({F({1, 2}, {2}), F({3, 4}, {2})}, 1).shape(), Shape({2, 2}));
  EXPECT_EQ(V(matmul(F({1, 2, 3, 4}, {2, 2}), F({5, 6}, {2}))), std::vector<double>({17, 39}));
}

TEST(Tensor, FloatTanhApproximation) {
  // float tanh uses a rational approximation; it must agree with libm in double to a few ulps
  // everywhere, saturate to ±1 and be exact at 0.
  std::vector<float> xs;
  for (double x = -12; x <= 12; x += 0.00123) xs.push_back(float(x));
  xs.push_back(0.0f);
  xs.push_back(1e-30f);
  const auto y = tanh(Tensor::from_vector(xs, {int64_t(xs.size())})).to_vector();
  double worst = 0;
  for (size_t i = 0; i < xs.size(); ++i) worst = std::max(worst, std::abs(y[i] - std::tanh(double(xs[i]))));
  EXPECT_LT(worst, 5e-7);  // measured 3.3e-7: about 5 float ulps near ±1
  EXPECT_EQ(y[y.size() - 2], 0.0);
  EXPECT_EQ(V(tanh(F({100, -100}, {2}))), std::vector<double>({1, -1}));
}

TEST(Tensor, RandomIsSeededAndCounterBased) {
  Generator g1(5), g2(5);
  EXPECT_EQ(V(randn({7}, &g1)), V(randn({7}, &g2)));
  // The stream advances: a second draw differs from the first.
  Generator g3(5);
  const auto first = V(rand({8}, &g3));
  EXPECT_NE(first, V(rand({8}, &g3)));
  // Element i of a fill at offset o is Philox block o + i/4, lane i%4.
  const auto blk = Philox4x32::generate(5, 1);
  EXPECT_FLOAT_EQ(float(first[5]), Philox4x32::to_unit_float(blk.v[1]));
  // Moments of a large sample.
  Generator g4(1);
  Tensor big = randn({100000}, &g4);
  EXPECT_NEAR(mean(big).item(), 0.0, 0.02);
  EXPECT_NEAR(var(big).item(), 1.0, 0.02);
  // set_state restarts the stream exactly, even mid-block.
  Generator g5(1), g6(7);
  g5.next_u32();
  g5.set_state(7, 0);
  EXPECT_EQ(g5.next_u32(), g6.next_u32());
  Tensor probs = F({0.0f, 1.0f, 0.0f}, {1, 3});
  EXPECT_EQ(multinomial(probs, &g4).item(), 1);
}

TEST(Tensor, DropoutRateAndScale) {
  // Training mode zeroes a fraction p and scales the rest by 1/(1 − p); eval is the identity.
  Generator gen(11);
  const Tensor x = Tensor::ones({20000});
  const auto y = dropout(x, 0.3, true, &gen).to_vector();
  int64_t zeros = 0;
  for (double v : y) {
    if (v == 0) ++zeros;
    else EXPECT_NEAR(v, 1.0 / 0.7, 1e-6);
  }
  EXPECT_NEAR(double(zeros) / 20000.0, 0.3, 0.015);  // ±4.6 standard deviations
  EXPECT_TRUE(dropout(x, 0.3, false, &gen).same(x));
  EXPECT_THROW(dropout(x, 1.0, true, &gen), Error);
}

TEST(Autograd, AccumulatesIntoLeaves) {
  Tensor x = F({2}, {1}).set_requires_grad();
  Tensor y = mul(x, x) + x;  // dy/dx = 2x + 1 = 5, x used twice
  y.backward();
  EXPECT_EQ(V(x.grad()), std::vector<double>({5}));
  mul(x, 3.0).backward();  // gradients accumulate until zero_grad
  EXPECT_EQ(V(x.grad()), std::vector<double>({8}));
  x.zero_grad();
  EXPECT_FALSE(x.grad().defined());
}

// softplus(x) = max(x, 0) + log1p(e^−|x|): finite where log(1 + e^x) overflows. float:
// softplus(100) = 100, softplus(−100) = e^−100 ≈ 3.7e-44 (a float subnormal), softplus(0) =
// ln 2; double: softplus(1000) = 1000.
TEST(Autograd, SoftplusIsStableAtLargeMagnitudes) {
  const std::vector<double> f =
      V(softplus(Tensor::from_vector(std::vector<float>{100, -100, 0}, {3})));
  EXPECT_EQ(f[0], 100.0);
  EXPECT_GT(f[1], 0.0);
  EXPECT_LT(f[1], 1e-43);
  EXPECT_NEAR(f[2], std::log(2.0), 1e-7);
  EXPECT_EQ(V(softplus(Tensor::from_vector(std::vector<double>{1000}, {1})))[0], 1000.0);
}

// Each leaf owns its gradient: for loss = Σ 4(a + b) the backward of add hands the same
// tensor to both inputs, and a leaf that kept it as is would share it with the other, so
// clipping both scales that one tensor twice. Here ∂/∂a = ∂/∂b = 4, the global norm √32 and,
// clipped to norm 1, each gradient 4/√32 = 0.70711 (shared, it would be 4/32 = 0.125).
TEST(Autograd, LeavesOwnTheirGradients) {
  Tensor a = F({0}, {1}).set_requires_grad(), b = F({0}, {1}).set_requires_grad();
  sum(mul(add(a, b), 4.0)).backward();
  EXPECT_FALSE(a.grad().same(b.grad()));
  EXPECT_NEAR(optim::clip_grad_norm({a, b}, 1.0), std::sqrt(32.0), 1e-12);
  // ×1/(√32 + 1e-6): clip_grad_norm's denominator, as PyTorch's.
  EXPECT_NEAR(V(a.grad())[0], 4 / (std::sqrt(32.0) + 1e-6), 1e-7);
  EXPECT_NEAR(V(b.grad())[0], 4 / (std::sqrt(32.0) + 1e-6), 1e-7);
}

TEST(Autograd, ThroughViewsAndBroadcasts) {
  Tensor w = F({1, 2, 3}, {3}).set_requires_grad();
  Tensor x = Tensor::ones({4, 3});
  sum(mul(x, w.unsqueeze(0).expand({4, 3}))).backward();
  EXPECT_EQ(V(w.grad()), std::vector<double>({4, 4, 4}));  // reduced back to w's shape
  Tensor a = F({1, 2, 3, 4}, {2, 2}).set_requires_grad();
  sum(mul(a.t().narrow(0, 1, 1), 2.0)).backward();  // picks a[:, 1]
  EXPECT_EQ(V(a.grad()), std::vector<double>({0, 2, 0, 2}));
}

// The kink conventions of ops.h: clamp's gradient is 0 only OUTSIDE [lo, hi] (at a bound it
// passes, as torch.clamp's does); maximum and minimum send the gradient of a tie to a.
TEST(Autograd, ClampBoundsAndMinMaxTiesFollowOpsH) {
  Tensor x = F({-1, -0.5, 0, 0.5, 1}, {5}).set_requires_grad();
  sum(clamp(x, -0.5, 0.5)).backward();
  EXPECT_EQ(V(x.grad()), std::vector<double>({0, 1, 1, 1, 0}));
  Tensor a = F({1, 2, 3}, {3}).set_requires_grad(), b = F({1, 1, 4}, {3}).set_requires_grad();
  sum(maximum(a, b)).backward();
  EXPECT_EQ(V(a.grad()), std::vector<double>({1, 1, 0}));  // tie at 0 → a
  EXPECT_EQ(V(b.grad()), std::vector<double>({0, 0, 1}));
  Tensor c = F({1, 2, 3}, {3}).set_requires_grad(), d = F({1, 1, 4}, {3}).set_requires_grad();
  sum(minimum(c, d)).backward();
  EXPECT_EQ(V(c.grad()), std::vector<double>({1, 0, 1}));  // tie at 0 → a
  EXPECT_EQ(V(d.grad()), std::vector<double>({0, 1, 0}));
  // The extreme of all elements shares its gradient among the tied ones (torch's max()); over a
  // dim it goes to the first (torch's max(dim)).
  Tensor e = F({3, 1, 3, 2, 3, 0}, {2, 3}).set_requires_grad();
  mul(max(e), -0.7).backward();
  const std::vector<double> ge = V(e.grad()), want_e = {-0.7 / 3, 0, -0.7 / 3, 0, -0.7 / 3, 0};
  for (size_t i = 0; i < ge.size(); ++i) EXPECT_NEAR(ge[i], want_e[i], 1e-7) << i;
  Tensor f = F({0, 5, 0, 0}, {4}).set_requires_grad();
  min(f).backward();
  const std::vector<double> gf = V(f.grad()), want_f = {1.0 / 3, 0, 1.0 / 3, 1.0 / 3};
  for (size_t i = 0; i < gf.size(); ++i) EXPECT_NEAR(gf[i], want_f[i], 1e-7) << i;
  Tensor h = F({3, 1, 3}, {3}).set_requires_grad();
  max(h, 0).backward();
  EXPECT_EQ(V(h.grad()), std::vector<double>({1, 0, 0}));
  // x⁰'s gradient is 0, at x = 0 too (not 0·0⁻¹ = NaN).
  Tensor z = F({0, 2, -3}, {3}).set_requires_grad();
  sum(pow(z, 0.0)).backward();
  EXPECT_EQ(V(z.grad()), std::vector<double>({0, 0, 0}));
}

// abs's gradient is the sign of x: −1 below 0, 1 above, and 0 at 0 (as torch.abs's), not a
// one-sided slope.
TEST(Autograd, AbsGradientIsTheSignAndZeroAtZero) {
  Tensor x = F({-2, 0, 3}, {3}).set_requires_grad();
  sum(mul(abs(x), 5.0)).backward();
  EXPECT_EQ(V(x.grad()), std::vector<double>({-5, 0, 5}));
}

// The comparisons give bool tensors; at a tie lt and gt are false, le, ge and eq true. The
// scalar forms compare with the scalar; logical_not flips a bool tensor and takes nothing else.
TEST(Tensor, ComparisonsByHandIncludingTies) {
  const Tensor a = F({1, 2, 3}, {3}), b = F({2, 2, 2}, {3});
  EXPECT_EQ(lt(a, b).dtype(), DType::b8);
  EXPECT_EQ(V(lt(a, b)), std::vector<double>({1, 0, 0}));
  EXPECT_EQ(V(le(a, b)), std::vector<double>({1, 1, 0}));
  EXPECT_EQ(V(gt(a, b)), std::vector<double>({0, 0, 1}));
  EXPECT_EQ(V(ge(a, b)), std::vector<double>({0, 1, 1}));
  EXPECT_EQ(V(eq(a, b)), std::vector<double>({0, 1, 0}));
  EXPECT_EQ(V(ne(a, b)), std::vector<double>({1, 0, 1}));
  EXPECT_EQ(V(lt(a, 2.0)), std::vector<double>({1, 0, 0}));
  EXPECT_EQ(V(gt(a, 2.0)), std::vector<double>({0, 0, 1}));
  EXPECT_EQ(V(logical_not(lt(a, b))), std::vector<double>({0, 1, 1}));
  EXPECT_EQ(error_of([&] { logical_not(a); }), "logical_not: expected a bool tensor, got float32");
}

// Index ops send the gradient of every use of an element back to it: gather along dim 1 with
// row 0 reading column 2 three times and row 1 reading columns 0, 0, 1 gives, for the loss
// Σ w ⊙ gather(x) with w = [[1, 2, 4], [8, 16, 32]], the gradient x.grad[0, 2] = 1 + 2 + 4 = 7,
// x.grad[1, 0] = 8 + 16 = 24, x.grad[1, 1] = 32, 0 elsewhere (each repeated read adds, none
// overwrites). Concat sends each input its own slice even when an earlier input needs no
// gradient: for concat({c, y}, 1) with c [2, 2] constant, y [2, 3], the loss Σ w' ⊙ out with
// w' = [[1..5], [6..10]] gives y.grad = w'[:, 2:5] = [[3, 4, 5], [8, 9, 10]] (not w'[:, 0:3]).
TEST(Autograd, RepeatedGatherIndicesAddAndConcatSkipsConstantInputs) {
  Tensor x = F({0, 1, 2, 3, 4, 5}, {2, 3}).set_requires_grad();
  const Tensor index = Tensor::from_vector(std::vector<int64_t>{2, 2, 2, 0, 0, 1}, {2, 3});
  const Tensor w = F({1, 2, 4, 8, 16, 32}, {2, 3});
  sum(mul(gather(x, 1, index), w)).backward();
  EXPECT_EQ(V(x.grad()), std::vector<double>({0, 0, 7, 24, 32, 0}));

  const Tensor c = F({9, 9, 9, 9}, {2, 2});
  Tensor y = F({0, 0, 0, 0, 0, 0}, {2, 3}).set_requires_grad();
  const Tensor w2 = F({1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, {2, 5});
  sum(mul(concat({c, y}, 1), w2)).backward();
  EXPECT_EQ(V(y.grad()), std::vector<double>({3, 4, 5, 8, 9, 10}));
  // The same through stack (concat of unsqueezed inputs) along dim 0.
  Tensor z = F({0, 0}, {2}).set_requires_grad();
  sum(mul(stack({F({1, 1}, {2}), z, F({2, 2}, {2})}, 0), F({1, 2, 3, 4, 5, 6}, {3, 2}))).backward();
  EXPECT_EQ(V(z.grad()), std::vector<double>({3, 4}));
}

// index_select along dim 1 of x = [[0, 1, 2, 3], [4, 5, 6, 7]] with index [3, 0, 3]: row r of
// the result is x[r, [3, 0, 3]], i.e. [[3, 0, 3], [7, 4, 7]] (row 1 starts 4 elements in, the
// dim's size, not 3, the number of picks).
TEST(Tensor, IndexSelectAlongAnInnerDim) {
  const Tensor x = F({0, 1, 2, 3, 4, 5, 6, 7}, {2, 4});
  const Tensor out = index_select(x, 1, Tensor::from_vector(std::vector<int64_t>{3, 0, 3}, {3}));
  EXPECT_EQ(out.shape(), Shape({2, 3}));
  EXPECT_EQ(V(out), std::vector<double>({3, 0, 3, 7, 4, 7}));
}

// softmax / log_softmax along a middle dim normalise each [b, :, k] fibre, nothing else:
// x[b, j, k] = log(j + 1) + 0.5·b + 0.25·k on [2, 3, 2] has, along dim 1, softmax (j + 1)/6
// (the offset is constant on every fibre, and 1 + 2 + 3 = 6), so softmax = 1/6, 2/6, 3/6 and
// log_softmax = log((j + 1)/6) at every b, k; along any other dim the offsets would not cancel.
TEST(Tensor, SoftmaxAlongAMiddleDim) {
  std::vector<double> x;
  for (int b = 0; b < 2; ++b)
    for (int j = 0; j < 3; ++j)
      for (int k = 0; k < 2; ++k) x.push_back(std::log(j + 1.0) + 0.5 * b + 0.25 * k);
  const Tensor t = Tensor::from_vector(x, {2, 3, 2});
  const std::vector<double> p = V(softmax(t, 1)), lp = V(log_softmax(t, -2));
  for (int b = 0; b < 2; ++b)
    for (int j = 0; j < 3; ++j)
      for (int k = 0; k < 2; ++k) {
        const size_t i = size_t(b * 6 + j * 2 + k);
        EXPECT_NEAR(p[i], (j + 1) / 6.0, 1e-12) << b << j << k;
        EXPECT_NEAR(lp[i], std::log((j + 1) / 6.0), 1e-12) << b << j << k;
      }
}

TEST(Autograd, DetachNoGradAndRetainGraph) {
  Tensor x = F({3}, {1}).set_requires_grad();
  EXPECT_FALSE(mul(x.detach(), 2.0).requires_grad());
  {
    NoGradGuard ng;
    EXPECT_FALSE(mul(x, 2.0).requires_grad());
  }
  EXPECT_TRUE(mul(x, 2.0).requires_grad());
  Tensor y = mul(x, x);
  y.backward(Tensor(), /*retain_graph=*/true);
  y.backward();  // allowed once more: the graph was retained
  EXPECT_EQ(V(x.grad()), std::vector<double>({12}));
}

TEST(Autograd, Errors) {
  Tensor x = F({1, 2}, {2}).set_requires_grad();
  Tensor y = mul(x, x);
  EXPECT_NE(error_of([&] { y.backward(); }).find("only for a scalar output, got shape [2]"), std::string::npos);
  Tensor s = sum(y);
  s.backward();
  EXPECT_NE(error_of([&] { s.backward(); }).find("backward through the graph a second time"), std::string::npos);
  Tensor c = F({1}, {1});
  EXPECT_NE(error_of([&] { c.backward(); }).find("does not require grad"), std::string::npos);
  EXPECT_NE(error_of([&] { Tensor::arange(3).set_requires_grad(); }).find("only floating tensors"),
            std::string::npos);
}

TEST(Errors, NameTheOpAndTheValues) {
  Tensor a = Tensor::zeros({2, 3}), b = Tensor::zeros({4, 5});
  EXPECT_EQ(error_of([&] { matmul(a, b); }), "matmul: [2,3] @ [4,5]: inner dimensions differ (3 vs 4)");
  EXPECT_EQ(error_of([&] { add(a, b); }),
            "add: shapes [2,3] and [4,5] cannot be broadcast (dimension 0: 2 vs 4)");
  EXPECT_EQ(error_of([&] { add(a, Tensor::zeros({2, 3}, DType::f64)); }),
            "add: dtype mismatch: float32 [2,3] vs float64 [2,3]");
  EXPECT_EQ(error_of([&] { embedding(a, Tensor::from_vector(std::vector<int64_t>{0, 2}, {2})); }),
            "embedding: index 2 out of range [0, 2) at position 1");
  EXPECT_EQ(error_of([&] { a.narrow(1, 2, 2); }),
            "narrow: range [2, 4) out of bounds for dimension 1 of size 3 (shape [2,3])");
  EXPECT_EQ(error_of([&] { sum(a, {2}); }), "sum: dimension 2 out of range for a 2-d tensor (expected in [-2, 1])");
  EXPECT_EQ(error_of([&] { exp(Tensor::arange(3)); }), "exp: expected a floating tensor (float32 or float64), got int64");
  EXPECT_EQ(error_of([&] { a.reshape({4, 2}); }), "reshape: cannot view [2,3] (6 elements) as [4,2] (8 elements)");
  EXPECT_EQ(error_of([&] { Tensor::zeros({2}, DType::f32, Device::cuda(7)); }).rfind("tensor allocation on cuda:7: no ", 0),
            0u);
  EXPECT_EQ(error_of([&] { Device::parse("gpu"); }), "unknown device 'gpu' (expected cpu, cuda or cuda:N)");
  EXPECT_EQ(error_of([&] { cross_entropy(a, Tensor::from_vector(std::vector<int64_t>{0}, {1})); }),
            "cross_entropy: targets [1] do not match logits [2,3] (expected [2])");
  EXPECT_EQ(error_of([&] { clamp(a, 0.5, -0.5); }),
            "clamp: lower bound 0.5 exceeds upper bound -0.5");
}

// Reductions, index ops, cross-entropy, layer norm and linear refuse what they cannot compute,
// naming the op and the values: a dimension listed twice, a mean over no elements, a variance
// with no degrees of freedom, the max of an empty tensor, an index equal to the size or negative,
// an index larger than the input off the gathered dimension, a mask that would enlarge the input,
// tensors of different ranks or of different sizes off the joined dimension (not broadcast), no
// classes, logits that are not [N, C], an unknown reduction, affine parameters, a weight that is
// not a matrix, a bias or input features that do not match. A 0-d tensor summed over its dimension
// 0 is itself.
TEST(Errors, OpsRefuseWhatTheyCannotCompute) {
  const Tensor a = F({1, 2, 3, 4}, {2, 2});
  const auto ix = [](std::vector<int64_t> v, Shape s) { return Tensor::from_vector(v, s); };
  EXPECT_EQ(sum(Tensor::scalar(3), {0}).item(), 3.0);
  EXPECT_EQ(error_of([&] { sum(a, {1, -1}); }), "sum: repeated dimension in the list");
  EXPECT_EQ(error_of([&] {
              mean(Tensor::zeros({2, 0}), {1});
            }),
            "mean: reducing over an empty dimension of shape [2,0]");
  EXPECT_EQ(error_of([&] { var(F({1}, {1})); }),
            "var: 1 elements with correction 1 leaves no degrees of freedom");
  EXPECT_EQ(error_of([&] { max(Tensor::zeros({0}), 0); }), "max: empty tensor of shape [0]");
  EXPECT_EQ(error_of([&] {
              gather(a, 1, ix({2, 0}, {2, 1}));
            }),
            "gather: index 2 out of range [0, 2) in dimension 1");
  EXPECT_EQ(error_of([&] {
              gather(a, 1, ix({0, 0, 0}, {3, 1}));
            }),
            "gather: index [3,1] is larger than input [2,2] in dimension 0");
  EXPECT_EQ(error_of([&] { index_select(a, 0, ix({-1}, {1})); }),
            "index_select: index -1 out of range [0, 2) at position 0");
  EXPECT_EQ(
      error_of([&] {
        masked_fill(F({1, 2}, {2}), Tensor::from_bools({true, false, false, true}, {2, 2}), 0);
      }),
      "masked_fill: mask [2,2] does not broadcast to input [2]");
  EXPECT_EQ(error_of([&] {
              concat({F({1, 2}, {2}), F({3}, {1, 1})});
            }),
            "concat: tensor 1 has shape [1,1], tensor 0 has [2] (different ranks)");
  EXPECT_EQ(
      error_of([&] {
        concat({Tensor::zeros({2, 3}), Tensor::zeros({1, 2})}, 1);
      }),
      "concat: tensor 1 has shape [1,2], tensor 0 has [2,3]; they may differ only in dimension 1");
  EXPECT_EQ(error_of([&] { one_hot(ix({0}, {1}), 0); }),
            "one_hot: num_classes must be positive, got 0");
  EXPECT_EQ(error_of([&] {
              cross_entropy(Tensor::zeros({2, 2, 2}), ix({0, 1}, {2}));
            }),
            "cross_entropy: logits must be [N, C], got [2,2,2]");
  EXPECT_EQ(error_of([&] {
              cross_entropy(a, ix({0, 1}, {2}), -100, "avg");
            }),
            "cross_entropy: unknown reduction 'avg' (expected mean, sum or none)");
  EXPECT_EQ(
      error_of([&] { layer_norm(a, Tensor::ones({3}), Tensor()); }),
      "layer_norm: affine parameter [3] does not match the normalised dimension 2 of input [2,2]");
  EXPECT_EQ(error_of([&] { linear(a, Tensor::zeros({2})); }),
            "linear: weight must be [out, in], got [2]");
  EXPECT_EQ(error_of([&] {
              linear(a, Tensor::zeros({3, 2}), Tensor::zeros({2}));
            }),
            "linear: bias [2] does not match weight [3,2] (expected [3])");
  EXPECT_EQ(error_of([&] {
              linear(a, Tensor::zeros({3, 4}));
            }),
            "linear: input [2,2] has 2 features but weight [3,4] expects 4");
}

}  // namespace
}  // namespace rlft
