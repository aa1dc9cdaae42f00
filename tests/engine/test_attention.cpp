// causal_self_attention (the fused op) against the unfused composition of engine ops that the
// GPT uses off the CPU (matmul, add of a −∞ mask, softmax, matmul, permutes): the output and
// every gradient, in float32 and float64, and against central finite differences in float64.
//
// Inputs are adversarial on purpose: odd sizes (T = 5, Tk = 7, HS = 3) so no dimension is a
// vector width; T = 70 so the kernel's 64-row query blocks leave a partial second block, whose
// rows see the first block's keys too and whose gradients add onto the first block's; left-padded
// rows of different lengths, one with a single real token; with self_visible off, padding
// queries whose rows are entirely masked; the KV-cache form (queries at positions P … P+T−1
// over Tk cached keys, padding among the cached keys); and q, k, v scaled up so softmax rows
// are peaked rather than flat.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <string>

#include "engine/error.h"
#include "engine/ops.h"
#include "gradcheck.h"

namespace rlft {
namespace {

// real[b][j] for a batch whose row b has `lengths[b]` real keys at the end (left padding).
std::vector<bool> left_padded(int64_t B, int64_t Tk, const std::vector<int64_t>& lengths) {
  std::vector<bool> m(size_t(B * Tk));
  for (int64_t b = 0; b < B; ++b)
    for (int64_t j = 0; j < Tk; ++j) m[size_t(b * Tk + j)] = j >= Tk - lengths[size_t(b)];
  return m;
}

// The unfused reference: q, k, v permuted to [B, NH, ·, HS], scores + additive mask, softmax,
// ·v, permuted back. Rows with no visible key are given bias 0 and their probabilities are
// multiplied by 0, so they yield 0 and no gradient (softmax of all −∞ would be NaN).
Tensor reference_attention(const Tensor& qkv, const AttentionOptions& o) {
  const int64_t B = qkv.size(0), T = qkv.size(1), NH = qkv.size(3), HS = qkv.size(4);
  const Tensor q = qkv.select(2, 0).permute({0, 2, 1, 3});
  Tensor k = qkv.select(2, 1).permute({0, 2, 1, 3}), v = qkv.select(2, 2).permute({0, 2, 1, 3});
  if (o.keys.defined()) k = o.keys, v = o.values;
  const int64_t Tk = k.size(2), P = Tk - T;
  std::vector<double> real(size_t(B * Tk), 1.0);
  if (o.key_mask.defined()) real = o.key_mask.to_vector();
  std::vector<double> bias(size_t(B * T * Tk)), keep(size_t(B * T));
  for (int64_t b = 0; b < B; ++b)
    for (int64_t i = 0; i < T; ++i) {
      bool any = false;
      for (int64_t j = 0; j < Tk; ++j) {
        const bool visible =
            j <= P + i && (real[size_t(b * Tk + j)] != 0 || (o.self_visible && j == P + i));
        bias[size_t((b * T + i) * Tk + j)] =
            visible ? 0.0 : -std::numeric_limits<double>::infinity();
        any = any || visible;
      }
      keep[size_t(b * T + i)] = any;
      if (!any)
        for (int64_t j = 0; j < Tk; ++j) bias[size_t((b * T + i) * Tk + j)] = 0.0;
    }
  const Tensor M = Tensor::from_vector(bias, {B, 1, T, Tk}).to(qkv.dtype());
  const Tensor K = Tensor::from_vector(keep, {B, 1, T, 1}).to(qkv.dtype());
  const Tensor att =
      mul(softmax(add(matmul(mul(q, 1.0 / std::sqrt(double(HS))), k.transpose(-2, -1)), M), -1), K);
  return matmul(att, v).permute({0, 2, 1, 3}).reshape({B, T, NH * HS});
}

Tensor random_input(const Shape& s, uint64_t seed, DType dt, double scale) {
  Generator g(seed);
  return mul(randn(s, &g, DType::f64), scale).to(dt);
}

struct Case {
  std::string name;
  int64_t B, T, P, NH, HS;       // P: cached positions before the T queries
  std::vector<int64_t> lengths;  // real keys per row (left padding), empty = all real
  bool self_visible = true;
};

// Forward and the gradients of qkv (and of the cached keys and values) of the fused op and the
// reference, for L = Σ w ⊙ y with fixed random w.
struct Result {
  Tensor y, dqkv, dkeys, dvalues;
};

Result run(const Case& c, DType dt, bool fused) {
  const int64_t Tk = c.P + c.T;
  // Scale 2: scores of order HS·4/√HS, so rows are peaked (some probabilities near 1).
  Tensor qkv = random_input({c.B, c.T, 3, c.NH, c.HS}, 11, dt, 2.0).set_requires_grad();
  AttentionOptions o;
  o.self_visible = c.self_visible;
  if (!c.lengths.empty())
    o.key_mask = Tensor::from_bools(left_padded(c.B, Tk, c.lengths), {c.B, Tk});
  if (c.P > 0) {
    o.keys = random_input({c.B, c.NH, Tk, c.HS}, 12, dt, 2.0).set_requires_grad();
    o.values = random_input({c.B, c.NH, Tk, c.HS}, 13, dt, 1.0).set_requires_grad();
  }
  const Tensor y = fused ? causal_self_attention(qkv, o) : reference_attention(qkv, o);
  const Tensor w = random_input(y.shape(), 14, dt, 1.0);
  sum(mul(y, w)).backward();
  return {y.detach(), qkv.grad(), o.keys.defined() ? o.keys.grad() : Tensor(),
          o.values.defined() ? o.values.grad() : Tensor()};
}

// max |a − b| relative to the largest |b| (at least 1): gradients reach tens here.
double max_abs_diff(const Tensor& a, const Tensor& b) {
  const std::vector<double> x = a.to_vector(), y = b.to_vector();
  EXPECT_EQ(x.size(), y.size());
  double m = 0, scale = 1;
  for (size_t i = 0; i < x.size(); ++i) {
    if (!std::isfinite(x[i])) return std::numeric_limits<double>::infinity();
    m = std::max(m, std::abs(x[i] - y[i]));
    scale = std::max(scale, std::abs(y[i]));
  }
  return m / scale;
}

const std::vector<Case>& cases() {
  static const std::vector<Case> k = {
      {"plain", 2, 37, 0, 2, 16, {}},
      {"left_padded", 3, 37, 0, 2, 16, {37, 30, 1}},
      {"empty_pad_rows", 3, 37, 0, 2, 16, {37, 30, 1}, false},
      {"odd_sizes", 2, 5, 0, 3, 3, {5, 2}},
      {"kv_cache", 3, 5, 35, 2, 16, {40, 33, 4}},
      {"kv_cache_one_query", 2, 1, 20, 4, 8, {21, 6}},
      {"two_query_blocks", 2, 70, 0, 2, 8, {70, 3}},
      {"kv_cache_two_query_blocks", 1, 67, 3, 2, 8, {}},
  };
  return k;
}

// Every case, fused against the composed path: y, dqkv and, with a cache, dkeys/dvalues within
// y_tol and g_tol.
void expect_fused_matches_composed(DType dtype, double y_tol, double g_tol) {
  for (const Case& c : cases()) {
    const Result f = run(c, dtype, true), r = run(c, dtype, false);
    EXPECT_LT(max_abs_diff(f.y, r.y), y_tol) << c.name << " y";
    EXPECT_LT(max_abs_diff(f.dqkv, r.dqkv), g_tol) << c.name << " dqkv";
    if (c.P > 0) {
      EXPECT_LT(max_abs_diff(f.dkeys, r.dkeys), g_tol) << c.name << " dkeys";
      EXPECT_LT(max_abs_diff(f.dvalues, r.dvalues), g_tol) << c.name << " dvalues";
    }
  }
}

// float32 parity: the same products in float in another order, exp_fast (< 1 ulp) against the
// same; 2e-5 and 5e-5 of the largest magnitude are a few hundred float ulps, the rounding of
// sums of up to 40 terms of both signs.
TEST(CausalSelfAttention, MatchesTheUnfusedCompositionFloat32) {
  expect_fused_matches_composed(DType::f32, 2e-5, 5e-5);
}

TEST(CausalSelfAttention, MatchesTheUnfusedCompositionFloat64) {
  expect_fused_matches_composed(DType::f64, 1e-12, 1e-12);
}

// Padding queries with self_visible off see no key at all: output exactly 0, and nothing flows
// back through them (their q gets 0; keys and values get only what real queries send).
TEST(CausalSelfAttention, FullyMaskedRowsGiveZeroOutputAndNoGradient) {
  const Case c{"empty", 2, 6, 0, 2, 4, {6, 2}, false};
  const Result f = run(c, DType::f32, true);
  const std::vector<double> y = f.y.to_vector(), dq = f.dqkv.select(2, 0).contiguous().to_vector();
  for (int64_t i = 0; i < 4; ++i)  // row 1: queries 0..3 are padding
    for (int64_t e = 0; e < 2 * 4; ++e) {
      EXPECT_EQ(y[size_t((1 * 6 + i) * 8 + e)], 0.0) << "query " << i;
      EXPECT_EQ(dq[size_t((1 * 6 + i) * 8 + e)], 0.0) << "query " << i;
    }
  for (double x : f.dqkv.to_vector()) EXPECT_TRUE(std::isfinite(x));
  // Padding keys of row 1 (0..3) are seen by no query: zero gradient for their k and v.
  const std::vector<double> dk = f.dqkv.select(2, 1).contiguous().to_vector();
  for (int64_t j = 0; j < 4; ++j)
    for (int64_t e = 0; e < 8; ++e) EXPECT_EQ(dk[size_t((1 * 6 + j) * 8 + e)], 0.0);
}

// Central finite differences in float64 through qkv (stored transposed, so the op reads a
// non-contiguous view), the cached keys and values, with left padding and causality, odd sizes.
TEST(CausalSelfAttention, GradientsMatchFiniteDifferences) {
  for (const bool self_visible : {true, false}) {
    const int64_t B = 2, T = 5, Tk = 7, NH = 2, HS = 3;  // 2 cached positions
    std::vector<Tensor> leaves = {
        random_input({B, T, 3, HS, NH}, 21, DType::f64, 1.0).set_requires_grad(),
        random_input({B, NH, Tk, HS}, 22, DType::f64, 1.0).set_requires_grad(),
        random_input({B, NH, Tk, HS}, 23, DType::f64, 1.0).set_requires_grad()};
    const Tensor mask = Tensor::from_bools(left_padded(B, Tk, {7, 4}), {B, Tk});
    auto prepare = [](const std::vector<Tensor>& ls) {
      return std::vector<Tensor>{ls[0].transpose(3, 4), ls[1], ls[2]};
    };
    auto fn = [&](const std::vector<Tensor>& x) {
      AttentionOptions o;
      o.key_mask = mask;
      o.self_visible = self_visible;
      o.keys = x[1];
      o.values = x[2];
      return causal_self_attention(x[0], o);
    };
    EXPECT_EQ(testing::check_gradients(fn, leaves, prepare), "") << "self_visible " << self_visible;
    // Without a cache: k and v come from qkv itself (T = Tk = 5).
    const Tensor mask5 = Tensor::from_bools(left_padded(B, T, {5, 3}), {B, T});
    auto fn_self = [&](const std::vector<Tensor>& x) {
      AttentionOptions o;
      o.key_mask = mask5;
      o.self_visible = self_visible;
      return causal_self_attention(x[0], o);
    };
    EXPECT_EQ(testing::check_gradients(fn_self, {leaves[0]},
                                       [](const std::vector<Tensor>& ls) {
                                         return std::vector<Tensor>{ls[0].transpose(3, 4)};
                                       }),
              "")
        << "no cache, self_visible " << self_visible;
  }
}

TEST(CausalSelfAttention, ErrorsNameTheOpAndTheValues) {
  const Tensor qkv = Tensor::zeros({2, 4, 3, 2, 8});
  auto message = [](auto f) {
    try {
      f();
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(message([&] {
              causal_self_attention(Tensor::zeros({2, 4, 48}));
            }).find("causal_self_attention: qkv must be [B, T, 3, NH, HS], got [2,4,48]"),
            std::string::npos);
  AttentionOptions o;
  o.key_mask = Tensor::ones({2, 5});
  EXPECT_NE(message([&] {
              causal_self_attention(qkv, o);
            }).find("key_mask [2,5] must be [B, Tk] = [2, 4]"),
            std::string::npos);
  AttentionOptions c;
  c.keys = Tensor::zeros({2, 2, 3, 8});
  c.values = Tensor::zeros({2, 2, 3, 8});
  EXPECT_NE(message([&] { causal_self_attention(qkv, c); }).find("Tk ≥ 4"), std::string::npos);
  c.values = Tensor::zeros({2, 2, 6, 8}, DType::f64);
  EXPECT_NE(message([&] { causal_self_attention(qkv, c); }).find("dtype mismatch"),
            std::string::npos);
  EXPECT_NE(message([&] {
              causal_self_attention(Tensor::zeros({2, 4, 3, 2, 8}, DType::i64));
            }).find("float32 or float64"),
            std::string::npos);
}

}  // namespace
}  // namespace rlft
