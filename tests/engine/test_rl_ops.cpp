// The fused RL ops against the same math composed from primitive engine ops: values and
// gradients agree, on inputs chosen to hit every branch (ratios inside and outside the clip
// range with both advantage signs, spiked logits, ignored rows, random episode ends).
#include <gtest/gtest.h>

#include "engine/ops.h"

namespace rlft {
namespace {

std::vector<double> V(const Tensor& t) { return t.to_vector(); }

void expect_close(const std::vector<double>& a, const std::vector<double>& b, double tol, const char* what) {
  ASSERT_EQ(a.size(), b.size()) << what;
  for (size_t i = 0; i < a.size(); ++i) EXPECT_NEAR(a[i], b[i], tol) << what << " at " << i;
}

TEST(RlOps, SoftmaxLogprobEqualsLogSoftmaxGather) {
  Generator gen(3);
  Tensor logits = mul(randn({6, 11}, &gen, DType::f64), 3.0);
  {
    // Spike one row so its softmax is far from flat.
    NoGradGuard ng;
    logits.select(0, 2).narrow(0, 4, 1).fill_(40.0);
  }
  const Tensor targets = Tensor::from_vector(std::vector<int64_t>{0, 10, 4, 3, 7, 1}, {6});
  Tensor a = logits.detach().set_requires_grad(), b = logits.detach().set_requires_grad();
  auto [lp, ent] = softmax_logprob(a, targets, 0.8);
  const Tensor ls = log_softmax(mul(b, 1.0 / 0.8));
  const Tensor lp_ref = gather(ls, 1, targets.unsqueeze(1)).squeeze(1);
  const Tensor ent_ref = neg(sum(mul(exp(ls), ls), {1}));
  expect_close(V(lp), V(lp_ref), 1e-12, "log-prob");
  expect_close(V(ent), V(ent_ref), 1e-12, "entropy");
  sum(add(mul(lp, 1.3), mul(ent, -0.4))).backward();
  sum(add(mul(lp_ref, 1.3), mul(ent_ref, -0.4))).backward();
  expect_close(V(a.grad()), V(b.grad()), 1e-12, "dlogits");
}

TEST(RlOps, RatioClipEqualsComposedSurrogate) {
  // B=4 sequences × T=5 tokens, mask with a fully masked row, per-token advantages.
  Generator gen(5);
  const Tensor old = mul(randn({4, 5}, &gen, DType::f64), 0.5);
  const Tensor delta = mul(randn({4, 5}, &gen, DType::f64), 0.4);  // log-ratios up to ~±1
  const Tensor adv = randn({4, 5}, &gen, DType::f64);
  const Tensor mask = Tensor::from_vector(std::vector<double>{1, 1, 1, 0, 0, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 1, 0, 1, 1, 1},
                                          {4, 5});
  const double eps_low = 0.2, eps_high = 0.28;
  for (auto agg : {kernels::Aggregation::token_mean, kernels::Aggregation::seq_mean_token_mean,
                   kernels::Aggregation::seq_mean_token_sum}) {
    Tensor a = add(old, delta).detach().set_requires_grad(), b = add(old, delta).detach().set_requires_grad();
    RatioClipOptions o;
    o.eps_low = eps_low;
    o.eps_high = eps_high;
    o.aggregation = agg;
    const RatioClipResult rc = ratio_clip(a, old, adv, mask, o);
    // Composition: r = exp(logp − old); l = −min(r·A, clamp(r)·A); aggregate with the mask.
    const Tensor ratio = exp(sub(b, old));
    const Tensor l = neg(minimum(mul(ratio, adv), mul(clamp(ratio, 1 - eps_low, 1 + eps_high), adv)));
    const Tensor ml = mul(l, mask);
    Tensor ref;
    if (agg == kernels::Aggregation::token_mean) {
      ref = div(sum(ml), sum(mask));
    } else {
      const Tensor per_row = sum(ml, {1});
      const Tensor len = sum(mask, {1});
      const Tensor safe_len = maximum(len, Tensor::ones({}, DType::f64));  // the all-masked row contributes 0
      ref = agg == kernels::Aggregation::seq_mean_token_mean ? mul(sum(div(per_row, safe_len)), 0.25)
                                                              : mul(sum(per_row), 0.25);
    }
    EXPECT_NEAR(rc.loss.item(), ref.item(), 1e-12) << kernels::aggregation_name(agg);
    rc.loss.backward();
    ref.backward();
    expect_close(V(a.grad()), V(b.grad()), 1e-12, kernels::aggregation_name(agg));
    // approx KL k1 = mean over masked tokens of (old − new).
    EXPECT_NEAR(rc.stats.approx_kl_k1, (sum(mul(neg(delta), mask)) / sum(mask)).item(), 1e-12);
  }
}

TEST(RlOps, GaeEqualsBackwardLoop) {
  // T=6 steps × N=3 envs with a termination, a truncation (bootstrapped) and a plain step.
  const int64_t T = 6, N = 3;
  Generator gen(9);
  const Tensor r = randn({T, N}, &gen, DType::f64), v = randn({T, N}, &gen, DType::f64),
               nv = randn({T, N}, &gen, DType::f64);
  std::vector<double> term(T * N, 0), end(T * N, 0);
  term[2 * N + 0] = end[2 * N + 0] = 1;  // env 0 terminates at t=2
  end[3 * N + 1] = 1;                    // env 1 is truncated at t=3
  const Tensor tt = Tensor::from_vector(term, {T, N}), et = Tensor::from_vector(end, {T, N});
  auto [adv, ret] = gae(r, v, nv, tt, et, 0.99, 0.95);
  const auto R = V(r), Vv = V(v), NV = V(nv);
  std::vector<double> expect(T * N);
  for (int64_t n = 0; n < N; ++n) {
    double next = 0;
    for (int64_t t = T - 1; t >= 0; --t) {
      const int64_t k = t * N + n;
      const double delta = R[k] + 0.99 * NV[k] * (1 - term[k]) - Vv[k];
      next = delta + 0.99 * 0.95 * (1 - end[k]) * next;
      expect[k] = next;
    }
  }
  expect_close(V(adv), expect, 1e-12, "advantages");
  expect_close(V(ret), V(add(adv, v)), 1e-12, "returns");
}

}  // namespace
}  // namespace rlft
