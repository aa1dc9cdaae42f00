// Tests of the group-relative RL objectives (rl/llm/objectives/*) against hand-computed values
// on tiny fixed inputs, the dynamic-sampling filter, and short seeded runs of every algorithm
// from a tiny arith SFT model trained here.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <set>

#include "engine/checkpoint.h"
#include "engine/fs.h"
#include "engine/ops.h"
#include "models/generate.h"
#include "resume_fixture.h"
#include "rl/llm/experiments/runner.h"
#include "rl/llm/experiments/verifiable.h"
#include "rl/llm/group_rl.h"
#include "rl/llm/lm.h"
#include "rl/llm/objectives/dapo.h"
#include "rl/llm/objectives/dcpo.h"
#include "rl/llm/objectives/grpo.h"
#include "rl/llm/objectives/rloo.h"
#include "rl/llm/sft.h"
#include "rl/llm/tasks/arith.h"
#include "run_metrics.h"
#include "test_util.h"
#include "tiny_lm_runs.h"
#include "weight_decay_check.h"

using namespace rlft;
using namespace rlft::llm;
using kernels::Aggregation;
using kernels::RatioLevel;

namespace {

Tensor T2(const std::vector<double>& v, int64_t B, int64_t T) {
  return Tensor::from_vector(v, {B, T});
}

using rlft::testing::temp_dir;

}  // namespace

// ---- advantages ------------------------------------------------------------------------------

TEST(GroupAdvantages, WithStdUnbiasedPlusEpsilon) {
  // R = {1, 0, 0, 1}: mean 0.5, unbiased var = 4·0.25/3 = 1/3, std = 0.577350…
  const std::vector<double> a = group_advantages({1, 0, 0, 1}, true);
  const double expected = 0.5 / (std::sqrt(1.0 / 3.0) + 1e-6);  // 0.866024…
  EXPECT_NEAR(expected, 0.8660239, 1e-6);
  EXPECT_NEAR(a[0], expected, 1e-12);
  EXPECT_NEAR(a[1], -expected, 1e-12);
  EXPECT_NEAR(a[2], -expected, 1e-12);
  EXPECT_NEAR(a[3], expected, 1e-12);
  // R = {3, 1}: mean 2, unbiased std √2 → ±1/(√2 + 1e-6)
  const std::vector<double> b = group_advantages({3, 1}, true);
  EXPECT_NEAR(b[0], 1.0 / (std::sqrt(2.0) + 1e-6), 1e-12);
}

TEST(GroupAdvantages, AllEqualGroupGivesZero) {
  for (bool scale : {true, false})
    for (double a : group_advantages({1, 1, 1, 1}, scale)) EXPECT_EQ(a, 0.0);
  for (double a : group_advantages({-1, -1}, true)) EXPECT_EQ(a, 0.0);
  for (double a : rloo_advantages({0.5, 0.5, 0.5})) EXPECT_EQ(a, 0.0);
  // Equal rewards whose mean rounds (0.1 has no exact binary form): still exactly 0, not
  // (r − mean)/(0 + 1e-6) noise of ~1e-11 (zero_adv_groups counts exact zeros).
  for (bool scale : {true, false})
    for (double a : group_advantages({0.1, 0.1, 0.1}, scale)) EXPECT_EQ(a, 0.0);
}

TEST(GroupAdvantages, DrGRPOIsRewardMinusMean) {
  const std::vector<double> a = group_advantages({1, 0, 0, 0}, false);  // mean 0.25
  EXPECT_DOUBLE_EQ(a[0], 0.75);
  EXPECT_DOUBLE_EQ(a[1], -0.25);
  GroupRLConfig c = group_rl_defaults("dr-grpo");
  c.max_new_tokens = 8;
  auto o = make_objective(c);
  EXPECT_EQ(o->loss.aggregation, Aggregation::constant_norm);
  EXPECT_EQ(o->loss.normalizer, 8.0);  // L_max = the generation budget
  EXPECT_EQ(o->loss.kl, KLPlacement::none);
  EXPECT_EQ(o->loss.beta, 0.0);
  const std::vector<double> b = o->advantages({1, 0, 0, 0}, 0);
  EXPECT_DOUBLE_EQ(b[0], 0.75);
}

TEST(GroupAdvantages, RLOOLeavesOneOut) {
  // A_i = R_i − mean_{j≠i} R_j: {1,0,0,0} → 1 − 0 = 1, 0 − 1/3 = −1/3.
  const std::vector<double> a = rloo_advantages({1, 0, 0, 0});
  EXPECT_DOUBLE_EQ(a[0], 1.0);
  EXPECT_DOUBLE_EQ(a[1], -1.0 / 3.0);
  const std::vector<double> b = rloo_advantages({2, 4, 9});  // 2 − 6.5, 4 − 5.5, 9 − 3
  EXPECT_DOUBLE_EQ(b[0], -4.5);
  EXPECT_DOUBLE_EQ(b[1], -1.5);
  EXPECT_DOUBLE_EQ(b[2], 6.0);
  auto o = make_objective(group_rl_defaults("rloo"));
  EXPECT_EQ(o->loss.kl, KLPlacement::reward_k1);
}

// RLOO's KL coefficient in the reward is TRL RLOOTrainer's kl_coef 0.05 (rloo.cpp).
TEST(GroupAdvantages, RLOODefaultsPutK1InTheRewardWithTRLsCoefficient) {
  const GroupRLConfig c = group_rl_defaults("rloo");
  EXPECT_EQ(c.beta, 0.05);
  EXPECT_EQ(c.kl, "reward_k1");
  EXPECT_FALSE(c.scale_by_std);
}

// DCPO's smooth advantage standardisation over three visits of one prompt (ALGORITHMS.md §10).
TEST(DCPO, SmoothAdvantageAcrossVisits) {
  SmoothAdvantage sas;
  // Visit 1, R = {1, 0}: A_new = A_total = ±0.5/(√0.5 + 1e-6); both SA equal them.
  std::vector<double> a = sas({1, 0}, 7);
  EXPECT_NEAR(a[0], 0.5 / (std::sqrt(0.5) + 1e-6), 1e-12);
  EXPECT_NEAR(a[1], -0.5 / (std::sqrt(0.5) + 1e-6), 1e-12);
  // Visit 2, R = {1, 1}: A_new = 0; all = {1,0,1,1}: mean 0.75, std 0.5 → A_total(1) =
  // 0.25/0.500001. SA_new = ½·0 + ½·A_total = SA_total → 0.25 (a gradient although the group is
  // all-equal).
  a = sas({1, 1}, 7);
  EXPECT_NEAR(a[0], 0.5 * 0.25 / (0.5 + 1e-6), 1e-12);
  // Visit 3, R = {0, 0}: all = {1,0,1,1,0,0}: mean 0.5, var 1.5/5 = 0.3 → A_total(0) =
  // −0.5/(√0.3+1e-6) SA_new = (2/3)·0 + (1/3)·A_total, SA_total = (1/3)·0 + (2/3)·A_total → the
  // smaller |·|: SA_new.
  a = sas({0, 0}, 7);
  const double a_total = -0.5 / (std::sqrt(0.3) + 1e-6);
  EXPECT_NEAR(a[0], a_total / 3.0, 1e-12);
  EXPECT_NEAR(a[0], -0.304290, 1e-6);
  EXPECT_EQ(sas.visits(7), 3);
  EXPECT_EQ(sas.visits(8), 0);
  // Another prompt id has its own history: first visit of an all-equal group gives 0.
  for (double x : sas({1, 1}, 8)) EXPECT_EQ(x, 0.0);
  // Visit 2 of prompt 8 with R = {1, 0}: A_new = ±0.7071; all = {1,1,1,0}: A_total(1) = 0.25/0.5,
  // A_total(0) = −0.75/0.5. SA_new(1) = ½(0.7071 + 0.5) = SA_total(1) (i = 2: equal weights).
  a = sas({1, 0}, 8);
  EXPECT_NEAR(a[0], 0.5 * (0.5 / (std::sqrt(0.5) + 1e-6) + 0.25 / (0.5 + 1e-6)), 1e-12);
  EXPECT_NEAR(a[1], 0.5 * (-0.5 / (std::sqrt(0.5) + 1e-6) - 0.75 / (0.5 + 1e-6)), 1e-12);
}

// SAS's two candidates weigh A_new and A_total the other way round, and the one of smaller |·|
// wins: on visit i = 3, SA_new = (2/3)·A_new + (1/3)·A_total and SA_total = (1/3)·A_new +
// (2/3)·A_total (ALGORITHMS.md §10). Visits {1,1}, {1,1}, {1,0} of one prompt: visits 1–2 are
// all-equal (0). Visit 3: A_new = ±0.5/(√0.5 + 1e-6); every reward {1,1,1,1,1,0} has mean 5/6,
// unbiased var (5·(1/6)² + (5/6)²)/5 = 1/6, so A_total(1) = (1/6)/(√(1/6) + 1e-6) and
// A_total(0) = −(5/6)/(√(1/6) + 1e-6). Reward 1: SA_new = 0.6075, SA_total = 0.5079 → SA_total;
// reward 0: SA_new = −1.1518, SA_total = −1.5965 → SA_new. One visit picks each candidate.
TEST(DCPO, SmoothAdvantagePicksSATotalWhenItIsSmaller) {
  SmoothAdvantage sas;
  for (double x : sas({1, 1}, 3)) EXPECT_EQ(x, 0.0);
  for (double x : sas({1, 1}, 3)) EXPECT_EQ(x, 0.0);
  const std::vector<double> a = sas({1, 0}, 3);
  const double a_new = 0.5 / (std::sqrt(0.5) + 1e-6), sd = std::sqrt(1.0 / 6.0) + 1e-6;
  const double total1 = (1.0 / 6.0) / sd, total0 = -(5.0 / 6.0) / sd;
  EXPECT_NEAR(a[0], a_new / 3 + 2 * total1 / 3, 1e-12);  // SA_total
  EXPECT_NEAR(a[0], 0.507867, 1e-6);
  EXPECT_NEAR(a[1], 2 * -a_new / 3 + total0 / 3, 1e-12);  // SA_new
  EXPECT_NEAR(a[1], -1.151816, 1e-6);
}

TEST(DCPO, DynamicBoundsFromOldProbability) {
  // q = 1: lower = 0.5 + 0.5·√(1 − 0.64) = 0.8, upper = 0.5 + 0.5·√1.8 = 1.170820…
  auto [lo, hi] = dcpo_bounds(1.0, 0.16, 0.2, 10.0);
  EXPECT_NEAR(lo, 0.8, 1e-12);
  EXPECT_NEAR(hi, 0.5 + 0.5 * std::sqrt(1.8), 1e-12);
  EXPECT_NEAR(hi, 1.1708204, 1e-6);
  // q = 0.5: 1 − 4·0.16/0.5 < 0 → lower = 0.5; upper = 0.5 + 0.5·√2.6
  std::tie(lo, hi) = dcpo_bounds(0.5, 0.16, 0.2, 10.0);
  EXPECT_NEAR(lo, 0.5, 1e-12);
  EXPECT_NEAR(hi, 0.5 + 0.5 * std::sqrt(2.6), 1e-12);
  // q = 0.001: upper = 0.5 + 0.5·√801 = 14.65 → capped at r_max 10
  std::tie(lo, hi) = dcpo_bounds(0.001, 0.16, 0.2, 10.0);
  EXPECT_EQ(hi, 10.0);
  EXPECT_NEAR(lo, 0.5, 1e-12);
}

// ---- DAPO's shaping and filter
// -------------------------------------------------------------------

TEST(DAPO, OverlongShapingAtItsEdges) {
  // L_max 10, L_cache 4: free up to 6 tokens, linear to −1 at 10, −1 beyond.
  EXPECT_EQ(overlong_penalty(1, 10, 4), 0.0);
  EXPECT_EQ(overlong_penalty(6, 10, 4), 0.0);    // |y| = L_max − L_cache: still 0
  EXPECT_EQ(overlong_penalty(7, 10, 4), -0.25);  // first token inside the cache
  EXPECT_EQ(overlong_penalty(8, 10, 4), -0.5);
  EXPECT_EQ(overlong_penalty(10, 10, 4), -1.0);  // |y| = L_max: the linear part reaches −1
  EXPECT_EQ(overlong_penalty(11, 10, 4), -1.0);  // beyond L_max
  EXPECT_EQ(overlong_penalty(500, 10, 4), -1.0);
  EXPECT_THROW(overlong_penalty(5, 10, 0), Error);
  EXPECT_THROW(overlong_penalty(5, 3, 4), Error);
}

TEST(DAPO, DynamicSamplingFilterAndDefaults) {
  EXPECT_FALSE(group_has_signal({1, 1, 1, 1}));
  EXPECT_FALSE(group_has_signal({-1, -1}));
  EXPECT_TRUE(group_has_signal({1, -1, -1, -1}));
  EXPECT_TRUE(group_has_signal({-1, -1, -1, 1}));
  EXPECT_TRUE(group_has_signal({0.5, 0.25}));
  const GroupRLConfig c = group_rl_defaults("dapo");
  EXPECT_EQ(c.epsilon, 0.2);
  EXPECT_EQ(c.epsilon_high, 0.28);
  EXPECT_TRUE(c.dynamic_sampling);
  EXPECT_TRUE(c.overlong_shaping);
  EXPECT_EQ(c.reward_wrong, -1.0);
  auto o = make_objective(c);
  EXPECT_EQ(o->loss.aggregation, Aggregation::token_mean);
  EXPECT_EQ(o->loss.kl, KLPlacement::none);
}

// ---- KL and aggregation
// ---------------------------------------------------------------------------

TEST(KL, K3ByHandAndItsGradient) {
  // d = ln 0.5 − ln 0.25 = ln 2: k3 = 1/2 − 1 + ln 2 = 0.193147…; d = −ln 2: 2 − 1 − ln 2 =
  // 0.306853…
  Tensor logp = T2({std::log(0.5), std::log(0.25)}, 1, 2).set_requires_grad();
  const Tensor ref = T2({std::log(0.25), std::log(0.5)}, 1, 2);
  const Tensor k = k3_kl(logp, ref);
  const std::vector<double> v = k.to_vector();
  EXPECT_NEAR(v[0], 0.5 - 1 + std::log(2.0), 1e-12);
  EXPECT_NEAR(v[0], 0.1931472, 1e-6);
  EXPECT_NEAR(v[1], 2 - 1 - std::log(2.0), 1e-12);
  sum(k).backward();
  // d k3 / d logp = 1 − exp(−d): 1 − 1/2 and 1 − 2
  EXPECT_NEAR(logp.grad().to_vector()[0], 0.5, 1e-12);
  EXPECT_NEAR(logp.grad().to_vector()[1], -1.0, 1e-12);
}

// l = [[1,2,3],[4,5,6]], m = [[1,1,0],[1,0,0]]: masked row sums 3 (|o_1| = 2) and 4 (|o_2| = 1).
// k1 and k3 of the rollout's log-probs to the reference's, by hand: row 0 has d = old − ref =
// +0.5 and −1 (and a masked token that counts nothing), row 1 d = 0.25 and no other token.
TEST(KL, ReferenceKLPerResponseByHand) {
  const Tensor old_lp =
      Tensor::from_vector(std::vector<double>{0, -1.0, -2.0, -9, 0, -0.5, 0, 0}, {2, 4});
  const Tensor ref_lp =
      Tensor::from_vector(std::vector<double>{0, -1.5, -1.0, 7, 0, -0.75, 0, 0}, {2, 4});
  const Tensor mask = Tensor::from_vector(std::vector<double>{0, 1, 1, 0, 0, 1, 0, 0}, {2, 4});
  const ReferenceKL r = reference_kl(old_lp, ref_lp, mask);
  ASSERT_EQ(r.k1.size(), 2u);
  EXPECT_DOUBLE_EQ(r.k1[0], 0.5 - 1.0);
  EXPECT_DOUBLE_EQ(r.k1[1], 0.25);
  auto k3 = [](double d) { return std::exp(-d) - 1 + d; };
  EXPECT_NEAR(r.k3_token_mean, (k3(0.5) + k3(-1.0) + k3(0.25)) / 3, 1e-15);
  const ReferenceKL none = reference_kl(old_lp, ref_lp, mul(mask, 0.0));
  EXPECT_EQ(none.k1, std::vector<double>({0, 0}));
  EXPECT_EQ(none.k3_token_mean, 0.0);
  EXPECT_THROW(reference_kl(old_lp, ref_lp.narrow(1, 0, 3), mask), Error);
}

TEST(Aggregation, EveryModeByHand) {
  const Tensor l = T2({1, 2, 3, 4, 5, 6}, 2, 3), m = T2({1, 1, 0, 1, 0, 0}, 2, 3);
  struct Case {
    Aggregation mode;
    double normalizer, expected;
  };
  const std::vector<Case> cases = {
      {Aggregation::token_mean, 0, 7.0 / 3.0},       // Σ m·l / Σ m
      {Aggregation::token_mean, 14, 0.5},            // / the step's token count
      {Aggregation::seq_mean_token_mean, 0, 2.75},   // (3/2 + 4/1) / 2
      {Aggregation::seq_mean_token_mean, 4, 1.375},  // … / 4 sequences in the step
      {Aggregation::seq_mean_token_sum, 0, 3.5},     // (3 + 4) / 2
      {Aggregation::constant_norm, 4, 0.875},        // 7 / (B·L_max) = 7 / 8
      {Aggregation::constant_norm, 0, 7.0 / 6.0},    // L_max = T = 3
      {Aggregation::only_token_mean, 0, 5.5},        // 3/2 + 4/1, no 1/B
  };
  for (const Case& c : cases) {
    EXPECT_NEAR(aggregate(l, m, c.mode, c.normalizer).item(), c.expected, 1e-12)
        << kernels::aggregation_name(c.mode) << " normalizer " << c.normalizer;
    // ratio_clip with r = 1 has l = −A: the fused op aggregates the same way.
    RatioClipOptions o;
    o.aggregation = c.mode;
    o.normalizer = c.normalizer;
    const Tensor lp = T2({-1, -2, -1, -3, -1, -1}, 2, 3);
    const RatioClipResult r = ratio_clip(lp, lp, neg(l), m, o);
    EXPECT_NEAR(r.loss.item(), c.expected, 1e-12) << kernels::aggregation_name(c.mode);
  }
}

// ---- the per-token loss of each objective ------------------------------------------------------

// GRPO: r = 1, A = 1 on two tokens → surrogate −1; d = ln 2 per token → k3 = 0.193147;
// loss = −1 + 0.04 · 0.193147 (seq_mean_token_mean of both terms).
TEST(PolicyLoss, GRPOAddsBetaK3) {
  auto o = make_objective(group_rl_defaults("grpo"));
  EXPECT_EQ(o->loss.beta, 0.04);
  EXPECT_EQ(o->loss.kl, KLPlacement::loss_k3);
  const Tensor lp = T2({0, std::log(0.5), std::log(0.5)}, 1, 3);
  const Tensor ref = T2({0, std::log(0.25), std::log(0.25)}, 1, 3);
  const Tensor m = T2({0, 1, 1}, 1, 3);
  const RatioClipResult r =
      policy_loss(o->loss, lp, lp, ref, Tensor::from_vector(std::vector<double>{1.0}, {1}), m);
  EXPECT_NEAR(r.loss.item(), -1.0 + 0.04 * (0.5 - 1 + std::log(2.0)), 1e-12);
  // β = 0 (Dr. GRPO, DAPO, …): the reference is ignored, it may even be undefined.
  auto d = make_objective(group_rl_defaults("dapo"));
  EXPECT_NEAR(
      policy_loss(d->loss, lp, lp, Tensor(), Tensor::from_vector(std::vector<double>{1.0}, {1}), m)
          .loss.item(),
      -1.0, 1e-12);
}

// GRPO's k3 is between the CURRENT policy and the reference (arXiv 2402.03300 eq. 4), so it
// has a gradient; the old policy only enters the ratio. Off-policy (logp − old = 0.1, r =
// e^0.1 inside the clip), A = 1, one row of two response tokens, d = logp − ref = ln 2:
//   loss = −e^0.1 + 0.04·(1/2 − 1 + ln 2)
//   dloss/dlogp_t = (1/2)·(−A·r) + 0.04·(1/2)·(1 − e^−d) = −e^0.1/2 + 0.01.
TEST(PolicyLoss, GRPOk3IsToTheCurrentPolicyAndHasItsGradient) {
  auto o = make_objective(group_rl_defaults("grpo"));
  Tensor lp = T2({0, std::log(0.5), std::log(0.5)}, 1, 3).set_requires_grad();
  const Tensor old = T2({0, std::log(0.5) - 0.1, std::log(0.5) - 0.1}, 1, 3);
  const Tensor ref = T2({0, std::log(0.25), std::log(0.25)}, 1, 3);
  const Tensor m = T2({0, 1, 1}, 1, 3);
  const RatioClipResult r =
      policy_loss(o->loss, lp, old, ref, Tensor::from_vector(std::vector<double>{1.0}, {1}), m);
  EXPECT_NEAR(r.loss.item(), -std::exp(0.1) + 0.04 * (0.5 - 1 + std::log(2.0)), 1e-12);
  r.loss.backward();
  const std::vector<double> g = lp.grad().to_vector();
  EXPECT_EQ(g[0], 0.0);
  EXPECT_NEAR(g[1], -std::exp(0.1) / 2 + 0.01, 1e-12);
  EXPECT_NEAR(g[2], -std::exp(0.1) / 2 + 0.01, 1e-12);
}

// GRPO's β·k3 term is aggregated as the surrogate is (seq_mean_token_mean), which differs from
// a token mean once the rows' lengths differ. Two rows, r = 1 and A = 1 (surrogate −1 under
// either aggregation): row 0 has one response token with d = logp − ref = ln 2, k3 = 1/2 − 1 +
// ln 2 = 0.193147; row 1 has two tokens with d = 0, k3 = 0. Per-row means [0.193147, 0], so
//   loss = −1 + 0.04·(0.193147 + 0)/2 = −0.996137
// (a token mean would give −1 + 0.04·0.193147/3 = −0.997425).
TEST(PolicyLoss, GRPOk3FollowsTheSequenceMeanOfTokenMeans) {
  auto o = make_objective(group_rl_defaults("grpo"));
  ASSERT_EQ(o->loss.aggregation, Aggregation::seq_mean_token_mean);
  const double h = std::log(0.5), q = std::log(0.25);
  const Tensor lp = T2({0, h, 0, 0, h, h}, 2, 3);
  const Tensor ref = T2({0, q, 0, 0, h, h}, 2, 3);
  const Tensor m = T2({0, 1, 0, 0, 1, 1}, 2, 3);
  const Tensor adv = Tensor::from_vector(std::vector<double>{1.0, 1.0}, {2});
  const RatioClipResult r = policy_loss(o->loss, lp, lp, ref, adv, m);
  EXPECT_NEAR(r.loss.item(), -1.0 + 0.04 * (0.5 - 1 + std::log(2.0)) / 2, 1e-12);
}

// Clip-higher: r = 1.25 with A > 0 is clipped at 1.2 by eps 0.2 but not by DAPO's 0.28.
TEST(PolicyLoss, DAPOClipHigher) {
  const Tensor old = T2({0, std::log(0.4)}, 1, 2), lp = T2({0, std::log(0.5)}, 1, 2);  // r = 1.25
  const Tensor m = T2({0, 1}, 1, 2), adv = Tensor::from_vector(std::vector<double>{1.0}, {1});
  auto dapo = make_objective(group_rl_defaults("dapo"));
  RatioClipResult r = policy_loss(dapo->loss, lp, old, Tensor(), adv, m);
  EXPECT_NEAR(r.loss.item(), -1.25, 1e-12);
  EXPECT_EQ(r.stats.clip_frac_high, 0.0);
  GroupRLConfig c = group_rl_defaults("dr-grpo");
  c.max_new_tokens = 1;  // constant_norm over B·L_max = 1
  auto dr = make_objective(c);
  r = policy_loss(dr->loss, lp, old, Tensor(), adv, m);
  EXPECT_NEAR(r.loss.item(), -1.2, 1e-12);
  EXPECT_EQ(r.stats.clip_frac_high, 1.0);
}

// The decoupled clip's lower side: r = 0.75 with A < 0 is clipped at 1 − eps_low = 0.8 (DAPO's
// eps_low 0.2), not at 1 − eps_high = 0.72, which would leave it inside. ALGORITHMS.md §0: l =
// −min(r·A, clip(r, 1 − eps_low, 1 + eps_high)·A) = −min(−0.75, −0.8) = 0.8, its gradient 0
// (the clipped branch), and the token counts as clipped low; token_mean over one token.
TEST(PolicyLoss, DAPOClipLowerSideUsesEpsLow) {
  const Tensor old = T2({0, std::log(0.4)}, 1, 2);
  Tensor lp = T2({0, std::log(0.3)}, 1, 2).set_requires_grad();  // r = 0.75
  const Tensor m = T2({0, 1}, 1, 2), adv = Tensor::from_vector(std::vector<double>{-1.0}, {1});
  auto dapo = make_objective(group_rl_defaults("dapo"));
  EXPECT_EQ(dapo->loss.eps_low, 0.2);
  EXPECT_EQ(dapo->loss.eps_high, 0.28);
  const RatioClipResult r = policy_loss(dapo->loss, lp, old, Tensor(), adv, m);
  EXPECT_NEAR(r.loss.item(), 0.8, 1e-12);
  EXPECT_EQ(r.stats.clip_frac_low, 1.0);
  EXPECT_EQ(r.stats.clip_frac_high, 0.0);
  r.loss.backward();
  EXPECT_EQ(lp.grad().to_vector()[1], 0.0);
}

// DCPO: r = 1.25 on a token with q = 0.4 stays inside upper(0.4) = 0.5 + 0.5·√3 = 1.366; on a
// token with q = 0.8 it is clipped at upper(0.8) = 0.5 + 0.5·√2 = 1.2071. only_token_mean: Σ_i
// (1/|o_i|) Σ_t.
TEST(PolicyLoss, DCPOPerTokenBounds) {
  auto o = make_objective(group_rl_defaults("dcpo"));
  EXPECT_EQ(o->loss.aggregation, Aggregation::only_token_mean);
  EXPECT_TRUE(o->loss.dcpo_bounds);
  // row 0: q = 0.4, r = 1.25 (logp = ln 0.5); row 1: q = 0.8, r = 1.25 (logp = ln 1).
  const Tensor old = T2({0, std::log(0.4), 0, std::log(0.8)}, 2, 2);
  const Tensor lp = T2({0, std::log(0.5), 0, std::log(1.0)}, 2, 2);
  const Tensor m = T2({0, 1, 0, 1}, 2, 2);
  const Tensor adv = Tensor::from_vector(std::vector<double>{1.0, 1.0}, {2});
  const double up08 = 0.5 + 0.5 * std::sqrt(1 + 0.8 / 0.8);  // 1.2071 < 1.25: clipped
  EXPECT_NEAR(dcpo_bounds(0.4, 0.16, 0.2, 10).second, 0.5 + 0.5 * std::sqrt(3.0), 1e-12);
  const RatioClipResult r = policy_loss(o->loss, lp, old, Tensor(), adv, m);
  EXPECT_NEAR(r.loss.item(), -1.25 - up08, 1e-12);
  EXPECT_NEAR(r.stats.clip_frac_high, 0.5, 1e-12);
}

// GSPO: s_i = exp(mean_t log-ratio). Row 0: log-ratios 0.1, 0.3 → s = e^0.2 = 1.2214 > 1 + 4e-4
// with A > 0: the whole response is clipped (loss −(1 + 4e-4)·A, zero gradient on every token).
// Row 1: log-ratios ±1e-4 → s = 1 inside the range: gradient (1/B)·A·s/|o| per token.
TEST(PolicyLoss, GSPOClipsWholeResponses) {
  auto o = make_objective(group_rl_defaults("gspo"));
  EXPECT_EQ(o->loss.level, RatioLevel::sequence);
  EXPECT_EQ(o->loss.eps_low, 3e-4);
  EXPECT_EQ(o->loss.eps_high, 4e-4);
  const Tensor old = T2({0, -1.0, -1.0, 0, -2.0, -2.0}, 2, 3);
  Tensor lp = T2({0, -0.9, -0.7, 0, -2.0 + 1e-4, -2.0 - 1e-4}, 2, 3).set_requires_grad();
  const Tensor m = T2({0, 1, 1, 0, 1, 1}, 2, 3);
  const Tensor adv = Tensor::from_vector(std::vector<double>{2.0, -1.0}, {2});
  const RatioClipResult r = policy_loss(o->loss, lp, old, Tensor(), adv, m);
  // (1/2)·[−(1 + 4e-4)·2 + (−1·1·(−1))]  (row 1: s = exp(0) = 1, l = −s·A = 1)
  EXPECT_NEAR(r.loss.item(), 0.5 * (-(1 + 4e-4) * 2.0 + 1.0), 1e-9);
  EXPECT_NEAR(r.stats.clip_frac_high, 0.5, 1e-12);  // 2 of 4 tokens (a whole response)
  r.loss.backward();
  const std::vector<double> g = lp.grad().to_vector();
  EXPECT_EQ(g[1], 0.0);
  EXPECT_EQ(g[2], 0.0);
  // row 1: dl/dlogp_t = −A·s/|o| · (1/B) = 1·1/2·1/2 = 0.25
  EXPECT_NEAR(g[4], 0.25, 1e-9);
  EXPECT_NEAR(g[5], 0.25, 1e-9);
}

// GSPO-token equals GSPO in value and gradient when the advantage is per response (§9).
TEST(PolicyLoss, GSPOTokenEqualsGSPOWithPerResponseAdvantages) {
  auto gspo = make_objective(group_rl_defaults("gspo"));
  auto tok = make_objective(group_rl_defaults("gspo-token"));
  EXPECT_EQ(tok->loss.level, RatioLevel::sequence_token);
  // Four responses of different lengths: inside the range, above it (A > 0), below it (A < 0),
  // and above it with A < 0 (not clipped: the unclipped branch is smaller).
  const std::vector<double> old = {0, -1, -2, -1.5, 0, -0.5, -0.5, 0, 0, -3, -1, -1, 0, -1, -1, -1};
  const std::vector<double> delta = {0, 1e-4,  -1e-4, 0,     0, 0.01, 0.02, 0,
                                     0, -0.02, -0.01, -0.03, 0, 0.05, 0.01, 0};
  const std::vector<double> mask = {0, 1, 1, 1, 0, 1, 1, 0, 0, 1, 1, 1, 0, 1, 1, 0};
  std::vector<double> lpv(old.size());
  for (size_t k = 0; k < old.size(); ++k) lpv[k] = old[k] + delta[k];
  const Tensor adv = Tensor::from_vector(std::vector<double>{0.7, 1.2, -0.4, -2.0}, {4});
  std::vector<double> grads[2], losses(2);
  int k = 0;
  for (Objective* o : {gspo.get(), tok.get()}) {
    Tensor lp = T2(lpv, 4, 4).set_requires_grad();
    const RatioClipResult r =
        policy_loss(o->loss, lp, T2(old, 4, 4), Tensor(), adv, T2(mask, 4, 4));
    r.loss.backward();
    losses[size_t(k)] = r.loss.item();
    grads[k++] = lp.grad().to_vector();
  }
  EXPECT_NEAR(losses[0], losses[1], 1e-12);
  for (size_t i = 0; i < grads[0].size(); ++i) EXPECT_NEAR(grads[0][i], grads[1][i], 1e-12) << i;
  double nonzero = 0;
  for (double x : grads[0]) nonzero += x != 0;
  EXPECT_EQ(nonzero, 5);  // rows 0 and 3 have gradients (3 + 2 tokens), rows 1 and 2 are clipped
}

// π_old's log-probs and entropy come from one pass at the sampling temperature τ: the log-probs
// are sequence_log_probs' at τ, and the entropy is that of softmax(logits/τ), computed here
// from the logits in double (the logged entropy used to be τ = 1's whatever --temperature).
TEST(GroupRLLogProbs, LogProbsAndEntropyAreTheTemperaturesDistributions) {
  const models::GPTConfig c = rlft::testing::tiny_f64_gpt(9, 6);
  Generator gen(11);
  models::GPT model(c, gen);
  model.eval();
  const int64_t B = 2, T = 5;
  const Tensor tokens =
      Tensor::from_vector(std::vector<int64_t>{1, 4, 2, 8, 3, 0, 5, 5, 7, 6}, {B, T});
  const Tensor mask = Tensor::ones({B, T}, DType::f64);
  NoGradGuard ng;
  const std::vector<double> logits =
      model.lm_logits(model.forward(tokens, mask)).to_vector();  // [B, T, V]
  for (double tau : {1.0, 0.5, 1.7}) {
    const auto [lp, ent] = log_probs_and_entropy(model, tokens, mask, tau);
    EXPECT_EQ(lp.to_vector(), models::sequence_log_probs(model, tokens, mask, tau).to_vector());
    const std::vector<double> e = ent.to_vector();
    for (int64_t b = 0; b < B; ++b)
      for (int64_t t = 1; t < T; ++t) {  // column t: the distribution after token t − 1
        const double* row = &logits[size_t((b * T + t - 1) * c.vocab_size)];
        double m = -INFINITY, z = 0, h = 0;
        for (int64_t v = 0; v < c.vocab_size; ++v) m = std::max(m, row[v] / tau);
        for (int64_t v = 0; v < c.vocab_size; ++v) z += std::exp(row[v] / tau - m);
        for (int64_t v = 0; v < c.vocab_size; ++v) {
          const double logp = row[v] / tau - m - std::log(z);
          h -= std::exp(logp) * logp;
        }
        EXPECT_NEAR(e[size_t(b * T + t)], h, 1e-12) << "tau " << tau << " row " << b << " t " << t;
      }
  }
}

TEST(GroupRLConfig, DefaultsPerAlgorithmAndErrors) {
  for (const std::string& a : group_rl_algorithms()) {
    GroupRLConfig c = group_rl_defaults(a);
    c.max_new_tokens = 8;
    auto o = make_objective(c);
    EXPECT_EQ(o->name(), a);
  }
  EXPECT_EQ(group_rl_defaults("grpo").aggregation, "seq_mean_token_mean");
  EXPECT_EQ(group_rl_defaults("dcpo").epsilon, 0.16);
  EXPECT_THROW(group_rl_defaults("ppo"), Error);
  GroupRLConfig c = group_rl_defaults("grpo");
  c.aggregation = "mean";
  EXPECT_THROW(make_objective(c), Error);
  c = group_rl_defaults("dcpo");
  c.ratio_level = "sequence";
  EXPECT_THROW(make_objective(c), Error);
  c = group_rl_defaults("grpo");  // no --init
  EXPECT_THROW(train_group_rl(c), Error);
  c.init = "runs/x";
  c.lr_schedule = "step";
  try {
    train_group_rl(c);  // the settings are checked before --init is read
    ADD_FAILURE() << "an unknown --lr-schedule was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("'step'"), std::string::npos) << e.what();
  }
  c.lr_schedule = "linear";
  c.min_lr_ratio = 1.5;
  try {
    train_group_rl(c);
    ADD_FAILURE() << "--min-lr-ratio 1.5 was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("--min-lr-ratio"), std::string::npos) << e.what();
  }
}

// The numeric options' errors name the command, the flag, the range and the value
// (rl::check_number), and the ranges keep their exact ends: the largest double below 1 passes
// --beta1's [0, 1), and the checks reject nothing else here.
TEST(GroupRLConfig, NumericOptionErrorsNameTheFlagTheRangeAndTheValue) {
  auto error = [](const std::string& algo, auto&& edit) {
    GroupRLConfig c = group_rl_defaults(algo);
    c.init = "runs/x";
    edit(c);
    return rlft::testing::error_of([&] { check_group_rl_config(c); });
  };
  EXPECT_EQ(error("grpo", [](GroupRLConfig& c) { c.temperature = 0; }),
            "rlft lm grpo: --temperature must be a finite number > 0, got 0");
  EXPECT_EQ(error("grpo", [](GroupRLConfig& c) { c.reward_wrong = HUGE_VAL; }),
            "rlft lm grpo: --reward-wrong must be a finite number, got inf");
  EXPECT_EQ(error("grpo", [](GroupRLConfig& c) { c.epsilon = 1.5; }),
            "rlft lm grpo: --epsilon must be in [0, 1] (the ratio's lower clip 1 - eps), got 1.5");
  EXPECT_EQ(error("dapo", [](GroupRLConfig& c) { c.epsilon_high = std::nan(""); }),
            "rlft lm dapo: --epsilon-high must be a finite number >= 0, got nan");
  EXPECT_EQ(error("grpo", [](GroupRLConfig& c) { c.dual_clip = std::nan(""); }),
            "rlft lm grpo: --dual-clip must be 0 (off) or a constant c > 1, got nan");
  EXPECT_EQ(error("grpo", [](GroupRLConfig& c) { c.dual_clip = 1; }),
            "rlft lm grpo: --dual-clip must be 0 (off) or a constant c > 1, got 1");
  EXPECT_EQ(error("dcpo", [](GroupRLConfig& c) { c.dcpo_r_max = 1; }),
            "rlft lm dcpo: --dcpo-r-max must be a finite number > 1 (it caps the ratio bounds "
            "around 1), got 1");
  EXPECT_EQ(error("grpo", [](GroupRLConfig& c) { c.lr = 0; }),
            "rlft lm grpo: --lr must be a finite number > 0, got 0");
  EXPECT_EQ(error("grpo", [](GroupRLConfig& c) { c.beta1 = 1; }),
            "rlft lm grpo: --beta1 must be in [0, 1), got 1");
  EXPECT_EQ(error("grpo", [](GroupRLConfig& c) { c.weight_decay = -1; }),
            "rlft lm grpo: --weight-decay must be a finite number >= 0, got -1");
  EXPECT_EQ(error("grpo", [](GroupRLConfig& c) { c.grad_clip = HUGE_VAL; }),
            "rlft lm grpo: --grad-clip must be a finite number >= 0 (0: off), got inf");
  EXPECT_EQ(error("grpo", [](GroupRLConfig& c) { c.min_lr_ratio = std::nan(""); }),
            "rlft lm grpo: --min-lr-ratio must be in [0, 1], got nan");
  EXPECT_EQ(error("grpo", [](GroupRLConfig& c) { c.kl = "none"; }),
            "rlft lm grpo: --beta 0.04 has no effect with --kl none: give --kl loss_k3 or "
            "reward_k1, or --beta 0");
  // The ends inside the ranges pass.
  EXPECT_EQ(error("grpo",
                  [](GroupRLConfig& c) {
                    c.beta1 = c.beta2 = std::nextafter(1.0, 0.0);
                    c.epsilon = 1;
                    c.grad_clip = c.beta = c.weight_decay = c.epsilon_high = 0;
                    c.dual_clip = std::nextafter(1.0, 2.0);
                    c.reward_wrong = -1e300;
                  }),
            "<no error>");
}

// ---- seeded runs from a tiny SFT model
// -------------------------------------------------------------

namespace {

// The 600-step arith SFT run of tiny_lm_runs.h (as tests/rl/test_sft.cpp's smoke run).
class GroupRLRun : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (dir_) return;  // trained once for both suites that derive from this fixture
    dir_ = new std::string(temp_dir("group_rl"));
    train_sft(rlft::testing::arith_sft_config(*dir_, "sft"));
  }

  // Mean verifier reward of `samples` responses (temperature 1, fixed seed) to each of the first
  // `n` train prompts: what RL on those prompts should raise.
  static double sampled_accuracy(const std::string& run, int64_t n, int64_t samples) {
    const LoadedModel lm = load_model(run);
    const ArithTask task(sft_config_from_json(lm.run_config).task);
    std::vector<std::string> prompts;
    const std::vector<std::string> train = task.prompts(Split::train);
    for (int64_t i = 0; i < n; ++i)
      for (int64_t k = 0; k < samples; ++k) prompts.push_back(train[size_t(i)]);
    models::SamplingConfig sc;
    sc.max_new_tokens = 6;
    Generator gen(12345);
    return task.sample_metrics(prompts, sample_responses(*lm.model, lm.tokenizer, prompts, sc, gen))
        .at("exact_match");
  }

  static GroupRLConfig small(const std::string& algo) {
    GroupRLConfig c = group_rl_defaults(algo);
    c.init = *dir_ + "/sft";
    c.train_prompts = 16;
    c.prompts = 8;
    c.group_size = 8;
    c.steps = 64;
    c.minibatches = 2;  // the second update of each rollout is off-policy
    c.lr = 1e-4;        // 2e-3 collapses most runs to 0 reward: Adam's first steps move every
                        // weight by ~lr, which a 2-layer model's sharp distributions cannot take
    c.eval_prompts = 0;
    c.out_dir = *dir_;
    c.name = algo;
    c.quiet = true;
    return c;
  }
  // The same, as the run <dir>/<name> of `steps` steps.
  static GroupRLConfig small(const std::string& algo, const std::string& name, int64_t steps) {
    GroupRLConfig c = small(algo);
    c.name = name;
    c.steps = steps;
    return c;
  }
  static std::string* dir_;
};
std::string* GroupRLRun::dir_ = nullptr;

}  // namespace

TEST_F(GroupRLRun, GRPORunWritesItsFilesAndAnEvaluableCheckpoint) {
  GroupRLConfig c = small("grpo");
  c.steps = 2;
  c.eval_prompts = 20;
  c.eval_every = 1;
  const GroupRLResult r = train_group_rl(c);
  EXPECT_EQ(r.steps, 2);
  for (const char* f : {"config.json", "metrics.jsonl", "reward.svg", "checkpoint.safetensors"})
    EXPECT_TRUE(fs::exists(r.run_dir + "/" + f)) << f;
  const std::vector<json::Value> lines = rlft::testing::metrics_of(r.run_dir);
  ASSERT_EQ(lines.size(), 2u);
  for (const char* k :
       {"reward_mean", "accuracy", "zero_adv_groups", "response_length_mean", "response_length_max",
        "entropy", "clip_frac_low", "clip_frac_high", "kl_ref", "approx_kl_k3", "approx_kl_k1",
        "seq_ratio_mean", "seq_ratio_min", "seq_ratio_max", "eval_accuracy", "loss", "grad_norm"})
    EXPECT_TRUE(lines.back().contains(k)) << k;
  // Several minibatches per rollout: the later ones are off-policy (ratio ≠ 1), and the policy
  // has moved away from the reference.
  EXPECT_EQ(lines.back().at("updates").as_int(), 2);
  EXPECT_GT(
      lines.back().at("seq_ratio_max").as_double() - lines.back().at("seq_ratio_min").as_double(),
      0.0);
  EXPECT_GT(lines.back().at("kl_ref_k3").as_double(), 0.0);
  // The three phase times partition the step: each positive, their sum the step's wall time
  // that samples_per_second divides by (generated samples / that time), and within the
  // step's share of elapsed_seconds (which also holds the eval and the checkpoint).
  double previous_elapsed = 0, previous_generated = 0;
  for (const json::Value& line : lines) {
    const double rollout = line.at("time_rollout").as_double(),
                 scoring = line.at("time_scoring").as_double(),
                 update = line.at("time_update").as_double(), step = rollout + scoring + update;
    EXPECT_GT(rollout, 0.0);
    EXPECT_GT(scoring, 0.0);
    EXPECT_GT(update, 0.0);
    const double generated = line.at("generated_samples").as_double() - previous_generated;
    EXPECT_NEAR(generated / line.at("samples_per_second").as_double(), step, 1e-9 * step + 1e-12);
    EXPECT_LE(step, line.at("elapsed_seconds").as_double() - previous_elapsed);
    previous_elapsed = line.at("elapsed_seconds").as_double();
    previous_generated = line.at("generated_samples").as_double();
  }
  // The checkpoint is an SFT-format GPT run with the task keys `rlft lm eval` reads.
  const LoadedModel lm = load_model(r.run_dir);
  EXPECT_EQ(lm.step, 2);
  EXPECT_EQ(sft_config_from_json(lm.run_config).task.task, "arith");
  EXPECT_EQ(lm.run_config.at("algo").as_string(), "grpo");
}

// RLOO subtracts β·Σ_t (old_logp − ref_logp) from each response's reward (rloo.cpp, group_rl.h):
// responses that drifted from the reference are penalised, so the policy is held near it. Step
// 1 samples from the reference itself (KL 0); over the later steps of a seeded run the mean
// KL to the reference with β = 10 stays below the same run's without the term (measured: 0.046
// against 0.107 over steps 5–8; with the sign flipped, the KL is rewarded and reaches ~0.8).
TEST_F(GroupRLRun, RLOOKLInTheRewardHoldsThePolicyNearTheReference) {
  auto late_kl = [](double beta) {
    GroupRLConfig c = small("rloo", beta > 0 ? "rloo_kl_beta10" : "rloo_kl_beta0", 8);
    c.beta = beta;
    const GroupRLResult r = train_group_rl(c);
    const std::vector<json::Value> lines = rlft::testing::metrics_of(r.run_dir);
    EXPECT_EQ(lines.size(), 8u);
    EXPECT_EQ(lines.at(0).at("kl_ref").as_double(), 0.0);  // step 1: π_old = π_ref
    double kl = 0;
    for (size_t i = 4; i < lines.size(); ++i) kl += lines[i].at("kl_ref").as_double() / 4;
    return kl;
  };
  const double with_kl = late_kl(10.0), without = late_kl(0.0);
  EXPECT_LT(with_kl, without);
  EXPECT_LT(with_kl, 0.2);
}

TEST_F(GroupRLRun, DAPODynamicSamplingKeepsOnlyGroupsWithSignal) {
  GroupRLConfig c = small("dapo");
  c.steps = 2;
  const GroupRLResult r = train_group_rl(c);
  for (const json::Value& v : rlft::testing::metrics_of(r.run_dir)) {
    EXPECT_TRUE(v.contains("extra_rounds"));
    EXPECT_LE(v.at("extra_rounds").as_int(), c.max_extra_rounds);
    EXPECT_LE(v.at("groups").as_int(), c.prompts);
    EXPECT_EQ(v.at("zero_adv_groups").as_double(), 0.0);  // every kept group has a signal
  }
}

// --max-extra-rounds caps the extra generation rounds of dynamic sampling (ALGORITHMS.md §8):
// with a cap of 0 a step samples its prompts × G responses once, even when dropped groups leave
// the batch short, so every row logs extra_rounds 0 and the cumulative generated_samples grows
// by exactly prompts·G = 64 per step. Needs a step that dropped a group and kept fewer than
// --prompts groups, where an off-by-one cap (extra_rounds > cap) would sample a second round.
TEST_F(GroupRLRun, DAPODynamicSamplingStopsAtTheExtraRoundCap) {
  GroupRLConfig c = small("dapo", "dapo_cap", 3);
  c.max_extra_rounds = 0;
  const GroupRLResult r = train_group_rl(c);
  bool short_batch = false;
  int64_t generated = 0;
  for (const json::Value& v : rlft::testing::metrics_of(r.run_dir)) {
    short_batch = short_batch || v.at("groups").as_int() < c.prompts;
    EXPECT_EQ(v.at("extra_rounds").as_int(), 0);
    generated += c.prompts * c.group_size;
    EXPECT_EQ(v.at("generated_samples").as_int(), generated);
  }
  EXPECT_TRUE(short_batch) << "no step dropped a group: the cap was never tested";
}

// --weight-decay reaches matrices and embeddings only (as lm sft's groups): one GRPO update of one
// minibatch at a constant lr 1e-4 with weight decay 5000 (lr·wd = 0.5), from the SFT run's
// weights (weight_decay_check.h has the bound).
TEST_F(GroupRLRun, WeightDecayAppliesToMatricesOnly) {
  GroupRLConfig c = small("grpo", "grpo_weight_decay", 1);
  c.minibatches = 1;
  c.lr_schedule = "constant";
  c.weight_decay = 5000;
  const GroupRLResult r = train_group_rl(c);
  const LoadedModel before = load_policy(c.init), after = load_policy(r.run_dir);
  rlft::testing::expect_first_adamw_step_decays_matrices_only(*before.model, *after.model, c.lr,
                                                              c.weight_decay);
}

// Dynamic sampling can keep fewer responses than --minibatches (at most prompts × G) asks for
// parts: each kept response is then its own part. Before this was handled the parts past the
// kept batch read beyond the shuffled index (a segfault in Release, a heap overflow under ASan).
TEST_F(GroupRLRun, DAPOKeepingFewerResponsesThanMinibatchesUpdatesOncePerResponse) {
  GroupRLConfig c = small("dapo", "dapo_few_kept", 3);
  c.minibatches = c.prompts * c.group_size;  // 64: any dropped group leaves fewer responses
  c.max_extra_rounds = 0;
  const GroupRLResult r = train_group_rl(c);
  bool partly_kept = false;
  for (const json::Value& v : rlft::testing::metrics_of(r.run_dir)) {
    const int64_t kept = v.at("groups").as_int() * c.group_size;
    partly_kept = partly_kept || (kept > 0 && kept < c.minibatches);
    EXPECT_EQ(v.at("updates").as_int(), std::min<int64_t>(kept, c.minibatches) * c.epochs);
  }
  EXPECT_TRUE(partly_kept) << "no step kept between 1 and 63 responses: the case is not exercised";
}

// Every algorithm, 128 update steps (8 prompts × G 8, 2 minibatches, lr 1e-4) on 16 fixed train
// prompts: the sampled accuracy on those prompts (16 samples per prompt at temperature 1, fixed
// seed, 256 samples) must rise by 0.05 absolute. Each GEMM path rounds differently and so trains
// another trajectory. With 64 steps the AVX-512 path gained +0.10 to +0.14 for every method, but
// the AVX2 path (a CPU without AVX-512) gained only +0.047 with dr-grpo and the portable one
// +0.023 with gspo. With 128 steps (2026-11-27): AVX2 0.043 → 0.129–0.188 (+0.086 to +0.145),
// portable (RLFT_GEMM_ISA=portable) 0.047 → 0.148–0.176 (+0.10 to +0.13), 2–5 s per method.
class GroupRLLearning : public GroupRLRun, public ::testing::WithParamInterface<std::string> {};

TEST_P(GroupRLLearning, RaisesSampledAccuracyOnTrainingPrompts) {
  const std::string algo = GetParam();
  GroupRLConfig c = small(algo);
  c.steps = 128;
  const double before = sampled_accuracy(c.init, 16, 16);
  const GroupRLResult r = train_group_rl(c);
  const double after = sampled_accuracy(r.run_dir, 16, 16);
  std::printf("%-10s sampled accuracy on 16 train prompts %.3f -> %.3f (%.1f s)\n", algo.c_str(),
              before, after, r.seconds);
  EXPECT_GE(after, before + 0.05) << algo;
}

INSTANTIATE_TEST_SUITE_P(AllObjectives, GroupRLLearning,
                         ::testing::Values("grpo", "dr-grpo", "dapo", "gspo", "gspo-token", "dcpo",
                                           "rloo"),
                         [](const auto& info) {
                           std::string n = info.param;
                           for (char& ch : n)
                             if (ch == '-') ch = '_';
                           return n;
                         });

// ---- gradient accumulation ---------------------------------------------------------------------

// Every objective's loss (its level, bounds, aggregation and KL term), on 6 responses cut into
// uneven micro-batches {0}, {1, 2}, {3, 4, 5}: the micro-batch losses weighted by
// micro_batch_weight sum to the whole batch's loss, and their gradients to its gradient.
TEST(GroupRLGradAccum, MicroBatchesSumToTheMinibatchLossAndGradient) {
  const int64_t B = 6, T = 5;
  Generator gen(7);
  std::vector<double> lp(size_t(B * T)), old(size_t(B * T)), ref(size_t(B * T)),
      mask(size_t(B * T));
  const int64_t lengths[B] = {4, 1, 3, 2, 4, 3};  // response tokens after column 0
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t < T; ++t) {
      const size_t k = size_t(b * T + t);
      lp[k] = -0.05 - 1.5 * gen.uniform();
      old[k] = lp[k] + 0.4 * (gen.uniform() - 0.5);  // ratios off 1, some clipped
      ref[k] = lp[k] + 0.3 * (gen.uniform() - 0.5);
      mask[k] = t >= 1 && t <= lengths[b] ? 1.0 : 0.0;
    }
  const std::vector<double> adv = {1.2, -0.7, 0.4, -1.1, 0.9, -0.3};
  const std::vector<std::vector<int64_t>> parts = {{0}, {1, 2}, {3, 4, 5}};
  for (const std::string& algo : group_rl_algorithms()) {
    GroupRLConfig c = group_rl_defaults(algo);
    c.max_new_tokens = 6;  // Dr. GRPO's constant normalizer
    c.beta = 0.05;         // exercise the k3 term (GRPO) too
    const LossSettings ls = make_objective(c)->loss;
    const Tensor old_t = T2(old, B, T), ref_t = T2(ref, B, T), mask_t = T2(mask, B, T),
                 adv_t = Tensor::from_vector(adv, {B});
    Tensor full = T2(lp, B, T);
    full.set_requires_grad(true);
    const Tensor full_loss = policy_loss(ls, full, old_t, ref_t, adv_t, mask_t).loss;
    full_loss.backward();
    const std::vector<double> full_grad = full.grad().to_vector();

    Tensor acc = T2(lp, B, T);
    acc.set_requires_grad(true);
    double acc_loss = 0, tokens = 0;
    for (double x : mask) tokens += x;
    for (const std::vector<int64_t>& rows : parts) {
      const Tensor idx = Tensor::from_vector(rows, {int64_t(rows.size())});
      double micro_tokens = 0;
      for (int64_t r : rows) micro_tokens += double(lengths[r]);
      const Tensor loss = policy_loss(ls, index_select(acc, 0, idx), index_select(old_t, 0, idx),
                                      index_select(ref_t, 0, idx), index_select(adv_t, 0, idx),
                                      index_select(mask_t, 0, idx))
                              .loss;
      const double w = micro_batch_weight(ls, int64_t(rows.size()), B, micro_tokens, tokens);
      (loss * w).backward();
      acc_loss += loss.item() * w;
    }
    EXPECT_NEAR(acc_loss, full_loss.item(), 1e-12) << algo;
    const std::vector<double> acc_grad = acc.grad().to_vector();
    for (size_t k = 0; k < full_grad.size(); ++k)
      ASSERT_NEAR(acc_grad[k], full_grad[k], 1e-12) << algo << " element " << k;
  }
}

namespace {
std::vector<double> all_parameters(const std::string& run) {
  const LoadedModel lm = load_model(run);
  std::vector<double> out;
  for (const Tensor& p : lm.model->parameters()) {
    const std::vector<double> v = p.to_vector();
    out.insert(out.end(), v.begin(), v.end());
  }
  return out;
}
}  // namespace

// One update step of a whole run (64 responses, one minibatch) with --grad-accum 4 against 1:
// the same AdamW update up to float32 rounding of the summed gradients. DAPO (token_mean over
// the minibatch's tokens) and Dr. GRPO (constant_norm over its rows) have batch-dependent weights.
TEST_F(GroupRLRun, GradAccumGivesTheSameUpdateAsOneMinibatch) {
  for (const std::string algo : {"dapo", "dr-grpo"}) {
    std::vector<std::vector<double>> params;
    for (const int64_t k : {1, 4}) {
      GroupRLConfig c = small(algo, algo + "-accum" + std::to_string(k), 1);
      c.minibatches = 1;
      c.grad_accum = k;
      c.dynamic_sampling = false;  // the same 64 responses in both runs
      train_group_rl(c);
      params.push_back(all_parameters(*dir_ + "/" + c.name));
    }
    double moved = 0;
    const std::vector<double> init = all_parameters(*dir_ + "/sft");
    for (size_t i = 0; i < init.size(); ++i)
      moved = std::max(moved, std::abs(params[0][i] - init[i]));
    EXPECT_GT(moved, 1e-5) << algo << ": the step must move the weights";
    // AdamW's first step is lr·g/(|g| + 1e-8): where float32 rounding of the summed gradient
    // meets a g near 1e-8 (cancellation), the step itself may differ by up to 2·lr. Elsewhere
    // the updates agree to 1% of lr.
    size_t off = 0;
    double worst = 0;
    for (size_t i = 0; i < init.size(); ++i) {
      const double d = std::abs(params[1][i] - params[0][i]);
      worst = std::max(worst, d);
      off += d > 1e-6;
    }
    std::printf("%s: max |Δparam| %.3g, %zu of %zu elements differ by > 1e-6\n", algo.c_str(),
                worst, off, init.size());
    EXPECT_LE(double(off), 1e-3 * double(init.size())) << algo;
    EXPECT_LE(worst, 2.0001e-4) << algo;
  }
}

// Stopping after 2 of 4 steps and resuming gives, on the CPU, exactly the parameters and the
// logged rewards of the run that went straight through: the checkpoint carries AdamW's state,
// the step, the random streams' counters, the prompt order and DCPO's reward history; DAPO's
// dynamic sampling draws a varying number of prompts per step. DCPO runs with a linear lr
// decay, which the resumed half must continue (lr·(1 − step/4) at steps 0..3).
TEST_F(GroupRLRun, ResumeReproducesAnUninterruptedRun) {
  for (const std::string algo : {"dcpo", "dapo"}) {
    GroupRLConfig c = small(algo);
    c.steps = 4;
    c.lr_schedule = algo == "dcpo" ? "linear" : "constant";
    c.checkpoint_every = 0;
    const auto runs = rlft::testing::stop_and_resume(
        train_group_rl, c, algo + "-straight", algo + "-resumed", 2,
        [&](GroupRLConfig& r) { EXPECT_EQ(load_model(*dir_ + "/" + r.name).step, 2); });
    EXPECT_EQ(runs.stopped.steps, 2);
    EXPECT_EQ(runs.resumed.steps, 4);
    EXPECT_EQ(all_parameters(*dir_ + "/" + algo + "-straight"),
              all_parameters(*dir_ + "/" + algo + "-resumed"))
        << algo;
    const auto a = rlft::testing::metrics_of(*dir_ + "/" + algo + "-straight");
    const auto b = rlft::testing::metrics_of(*dir_ + "/" + algo + "-resumed");
    ASSERT_EQ(a.size(), 4u);
    ASSERT_EQ(b.size(), 4u);
    for (size_t i = 0; i < 4; ++i) {
      EXPECT_EQ(a[i].at("reward_mean").as_double(), b[i].at("reward_mean").as_double()) << algo;
      EXPECT_EQ(a[i].at("generated_tokens").as_int(), b[i].at("generated_tokens").as_int());
      const double lr = algo == "dcpo" ? c.lr * (1 - double(i) / 4) : c.lr;
      EXPECT_DOUBLE_EQ(a[i].at("lr").as_double(), lr) << algo << " step " << i;
      EXPECT_DOUBLE_EQ(b[i].at("lr").as_double(), lr) << algo << " step " << i;
    }
    // A changed setting is refused rather than silently mixed into the run.
    c = runs.config;
    c.lr = 2 * c.lr;
    EXPECT_THROW(train_group_rl(c), Error);
  }
}

// With dropout in the policy (an SFT run with dropout 0.1) a stopped and resumed run still ends
// with the straight run's weights: the dropout masks of a step depend on (seed, step) only.
TEST_F(GroupRLRun, ResumeWithDropoutReproducesAnUninterruptedRun) {
  SFTConfig s;
  s.model = "nano";
  s.dropout = 0.1;
  s.steps = 20;
  s.batch = 16;
  s.lr = 3e-3;
  s.warmup = 5;
  s.log_every = 20;
  s.eval_every = 20;
  s.eval_examples = 8;
  s.eval_generate = 0;
  s.out_dir = *dir_;
  s.name = "sft-dropout";
  s.quiet = true;
  train_sft(s);
  GroupRLConfig c = small("grpo");
  c.init = *dir_ + "/sft-dropout";
  c.steps = 3;
  c.checkpoint_every = 0;
  const auto runs = rlft::testing::stop_and_resume(train_group_rl, c, "grpo-dropout-straight",
                                                   "grpo-dropout-resumed", 1);
  EXPECT_EQ(runs.resumed.steps, 3);
  EXPECT_EQ(all_parameters(*dir_ + "/grpo-dropout-straight"),
            all_parameters(*dir_ + "/grpo-dropout-resumed"));
}

// A corrupted or foreign group_rl_state is one error naming the checkpoint and the field, found
// before the run is touched (order_pos 99999 was a SIGBUS, 99999999999 a SIGSEGV, -1 an
// internal error, {} a bare json message). DCPO: its state has the objective's reward history.
TEST_F(GroupRLRun, ResumeChecksEveryFieldOfTheLoopState) {
  GroupRLConfig c = small("dcpo", "dcpo-corrupt", 2);
  train_group_rl(c);
  const std::string run = *dir_ + "/" + c.name, ckpt = run + "/checkpoint.safetensors";
  Metadata meta;
  const NamedTensors tensors = load_tensors(ckpt, &meta);
  const std::string good = meta.at("group_rl_state");
  const json::Value st = json::parse(good);
  ASSERT_EQ(st.at("order_pos").as_int(), 16);  // 2 steps × 8 prompts: the first pass of 16 done
  const std::string metrics = fs::read_file(run + "/metrics.jsonl"),
                    config = fs::read_file(run + "/config.json");
  auto with = [&](const char* key, const std::string& value) {
    json::Value v = st;
    v.set(key, json::parse(value));
    return v.dump();
  };
  struct Case {
    std::string state, expect;
  };
  const Case cases[] = {
      {with("order_pos", "99999"), "field 'order_pos' = 99999 is out of range [0, 16]"},
      {with("order_pos", "99999999999"), "field 'order_pos' = 99999999999 is out of range"},
      {with("order_pos", "-1"), "field 'order_pos' = -1 is out of range"},
      {with("order_pos", "\"3\""), "field 'order_pos' must be an integer, got \"3\""},
      {with("order_pos", "2.5"), "field 'order_pos' must be an integer"},
      {"{}", "field 'sample_offset' is missing"},
      {"[1, 2]", "group_rl_state: expected a JSON object"},
      {"{not json", "group_rl_state"},
      {with("sample_offset", "-5"), "field 'sample_offset' = -5 is out of range"},
      {with("shuffle_offset", "null"), "field 'shuffle_offset' must be an integer"},
      {with("order_offset", "-2"), "field 'order_offset' = -2 is out of range"},
      {with("generated_tokens", "\"many\""), "field 'generated_tokens' must be a finite number"},
      {with("generated_samples", "-1"), "field 'generated_samples' must be a finite number >= 0"},
      {with("objective", "5"), "field 'objective' must be null or an object"},
      {with("objective", R"({"3": [0, 1.0]})"), "visits must be an integer >= 1"},
      {with("objective", R"({"3": [1, "x"]})"), "reward 1 is not a finite number"},
      {with("objective", R"({"3": "x"})"), "expected [visits, rewards"},
      {with("objective", R"({"x": [1, 1.0]})"), "prompt id 'x'"},
  };
  c.resume = true;
  c.steps = 4;
  for (const Case& k : cases) {
    meta["group_rl_state"] = k.state;
    save_tensors(ckpt, tensors, meta);
    const std::string corrupt = fs::read_file(ckpt);
    const std::string msg = rlft::testing::error_of([&] { train_group_rl(c); });
    EXPECT_NE(msg.find(ckpt + ": group_rl_state"), std::string::npos) << k.state << ": " << msg;
    EXPECT_NE(msg.find(k.expect), std::string::npos) << k.state << ": " << msg;
    EXPECT_EQ(fs::read_file(run + "/metrics.jsonl"), metrics) << k.state;
    EXPECT_EQ(fs::read_file(run + "/config.json"), config) << k.state;
    EXPECT_EQ(fs::read_file(ckpt), corrupt) << k.state;
  }
  // A metrics line the curves cannot be rebuilt from is named too, before anything changes.
  meta["group_rl_state"] = good;
  save_tensors(ckpt, tensors, meta);
  fs::atomic_write_file(run + "/metrics.jsonl", metrics + "{\"step\": 1, \"accuracy\": 0}\n");
  const std::string msg = rlft::testing::error_of([&] { train_group_rl(c); });
  EXPECT_NE(msg.find("metrics.jsonl: entry 3: 'reward_mean' must be a finite number"),
            std::string::npos)
      << msg;
  fs::atomic_write_file(run + "/metrics.jsonl", metrics);
  // config.json edited by hand (lr 1e-4 -> 0.5) and resumed with it: the settings the checkpoint
  // records name the difference, and nothing changes.
  {
    const std::string intact = fs::read_file(ckpt);
    json::Value edited = json::parse(config);
    edited.set("lr", 0.5);
    fs::atomic_write_file(run + "/config.json", edited.dump(2) + "\n");
    GroupRLConfig e = c;
    e.lr = 0.5;
    const std::string err = rlft::testing::error_of([&] { train_group_rl(e); });
    EXPECT_NE(err.find("--resume: setting 'lr' is 0.5 but the checkpoint " + ckpt +
                       " was trained with 0.0001"),
              std::string::npos)
        << err;
    EXPECT_EQ(fs::read_file(run + "/metrics.jsonl"), metrics);
    EXPECT_EQ(fs::read_file(ckpt), intact);
    fs::atomic_write_file(run + "/config.json", config);
  }
  // The intact state resumes.
  EXPECT_EQ(train_group_rl(c).steps, 4);
}

// With clipping off the logged grad_norm is the true global norm (it was logged as 0): the same
// as a run whose clipping never bites (max norm 1e30 leaves the gradients as they are, so both
// runs take the same steps), positive and finite on every step.
TEST_F(GroupRLRun, GradNormIsLoggedWithClippingOff) {
  GroupRLConfig c = small("grpo", "grpo-noclip", 2);
  c.grad_clip = 0;
  const GroupRLResult off = train_group_rl(c);
  c.grad_clip = 1e30;
  c.name = "grpo-noclip-ref";
  const GroupRLResult ref = train_group_rl(c);
  const std::vector<json::Value> a = rlft::testing::metrics_of(off.run_dir),
                                 b = rlft::testing::metrics_of(ref.run_dir);
  ASSERT_EQ(a.size(), 2u);
  ASSERT_EQ(b.size(), 2u);
  for (const json::Value& row : a) ASSERT_EQ(row.at("updates").as_int(), 2);
  rlft::testing::expect_unclipped_grad_norms(a, b);
}

// --min-lr-ratio sets the linear schedule's end: LRSchedule::at(s) = L + (0.5L − L)·s/steps for
// step index s = 0..3 of 4, i.e. L, 0.875L, 0.75L, 0.625L logged at steps 1..4 (a floor of 0
// would give L, 0.75L, 0.5L, 0.25L).
TEST_F(GroupRLRun, MinLrRatioIsTheLinearScheduleEnd) {
  GroupRLConfig c = small("grpo", "grpo-min-lr", 4);
  c.lr_schedule = "linear";
  c.min_lr_ratio = 0.5;
  const GroupRLResult r = train_group_rl(c);
  const std::vector<json::Value> rows = rlft::testing::metrics_of(r.run_dir);
  ASSERT_EQ(rows.size(), 4u);
  const double L = c.lr;
  const double expect[] = {L, 0.875 * L, 0.75 * L, 0.625 * L};
  for (size_t i = 0; i < rows.size(); ++i) {
    EXPECT_EQ(rows[i].at("step").as_int(), int64_t(i + 1));
    EXPECT_NEAR(rows[i].at("lr").as_double(), expect[i], 1e-15) << "step " << i + 1;
  }
}

// The loop adds DAPO's overlong penalty (≤ 0) to each verifier reward: with L_max = L_cache = 2
// every response pays it (−0.5 at one token, −1 from two on), so the logged mean reward is the
// accuracy minus 0.5 to 1.
TEST_F(GroupRLRun, OverlongShapingLowersEachResponsesReward) {
  GroupRLConfig c = small("grpo", "grpo-overlong", 2);
  c.overlong_shaping = true;
  c.overlong_max = 2;
  c.overlong_cache = 2;
  const GroupRLResult r = train_group_rl(c);
  const std::vector<json::Value> lines = rlft::testing::metrics_of(r.run_dir);
  ASSERT_EQ(lines.size(), 2u);
  for (const json::Value& v : lines) {
    const double shaping = v.at("reward_mean").as_double() - v.at("accuracy").as_double();
    EXPECT_LE(shaping, -0.5) << v.dump();
    EXPECT_GE(shaping, -1.0) << v.dump();
  }
  // With L_max = L_cache = the budget (4), every response of |y| ≤ 4 tokens (its EOS counted,
  // as response_length counts it) gets R_length = (0 − |y|)/4, so the step's mean reward is
  // exactly accuracy − mean |y|/4 (GRPO's rewards: 1 correct, 0 wrong).
  GroupRLConfig exact = small("grpo", "grpo-overlong-exact", 2);
  exact.overlong_shaping = true;
  exact.max_new_tokens = exact.overlong_max = exact.overlong_cache = 4;
  for (const json::Value& v : rlft::testing::metrics_of(train_group_rl(exact).run_dir))
    EXPECT_NEAR(v.at("reward_mean").as_double(),
                v.at("accuracy").as_double() - v.at("response_length_mean").as_double() / 4, 1e-12)
        << v.dump();
  // A shaping that starts at or past the generation budget would never apply: an error, before
  // anything is written.
  GroupRLConfig inert = small("grpo");
  inert.overlong_shaping = true;
  inert.max_new_tokens = 4;
  inert.overlong_max = 100;
  inert.overlong_cache = 2;
  inert.name = "grpo-overlong-inert";
  EXPECT_NE(rlft::testing::error_of([&] { train_group_rl(inert); })
                .find("--overlong-shaping: L_max 100 − --overlong-cache 2 = 98 is not below the "
                      "generation budget 4"),
            std::string::npos);
  EXPECT_FALSE(fs::exists(*dir_ + "/grpo-overlong-inert"));
}

// DCPO's reward history (its smooth advantage standardisation) is keyed by the train prompt's
// index, stable across steps: after 2 steps of 8 of the 16 train prompts, each prompt once.
TEST_F(GroupRLRun, DCPOKeysItsRewardHistoryByTrainPrompt) {
  GroupRLConfig c = small("dcpo", "dcpo-keys", 2);
  train_group_rl(c);
  Metadata meta;
  load_tensors(*dir_ + "/dcpo-keys/checkpoint.safetensors", &meta);
  const json::Value history = json::parse(meta.at("group_rl_state")).at("objective");
  ASSERT_TRUE(history.is_object());
  std::set<std::string> keys;
  for (const auto& [id, row] : history.as_object()) {
    keys.insert(id);
    EXPECT_EQ(row.at(0).as_int(), 1) << id;  // visits
    EXPECT_EQ(row.size(), size_t(1 + c.group_size)) << id;
  }
  std::set<std::string> every;
  for (int i = 0; i < 16; ++i) every.insert(std::to_string(i));
  EXPECT_EQ(keys, every);
}

// With a sampling temperature the old log-probs are the policy's at that temperature, as the
// updated ones are: the first update of a rollout (one minibatch, one epoch) is on-policy, ratio
// 1 everywhere (at temperature 1 instead they would differ by the temperature's effect).
TEST_F(GroupRLRun, OldLogProbsAreTakenAtTheSamplingTemperature) {
  GroupRLConfig c = small("grpo", "grpo-temperature", 1);
  c.minibatches = 1;
  c.epochs = 1;
  c.temperature = 0.7;
  const GroupRLResult r = train_group_rl(c);
  const std::vector<json::Value> lines = rlft::testing::metrics_of(r.run_dir);
  ASSERT_EQ(lines.size(), 1u);
  const json::Value& v = lines[0];
  EXPECT_EQ(v.at("clip_frac_low").as_double(), 0.0);
  EXPECT_EQ(v.at("clip_frac_high").as_double(), 0.0);
  EXPECT_LT(std::abs(v.at("approx_kl_k3").as_double()), 1e-9);
  EXPECT_NEAR(v.at("seq_ratio_min").as_double(), 1.0, 1e-5);
  EXPECT_NEAR(v.at("seq_ratio_max").as_double(), 1.0, 1e-5);
}

// Stopped after 3 of 5 steps and resumed: each invocation reports where it started and ended
// (start_step, steps; `seconds` is its own wall time), the curves cover the whole run, and the
// latest evaluation says at which step it was made (step 2 when the first invocation stopped
// at 3; evaluations every 2 steps and at the end).
TEST_F(GroupRLRun, StoppedAndResumedRunReportsEachInvocation) {
  GroupRLConfig c = small("grpo", "grpo-report", 5);
  c.eval_prompts = 10;
  c.eval_every = 2;
  c.checkpoint_every = 0;
  c.stop_after = 3;
  const GroupRLResult first = train_group_rl(c);
  EXPECT_EQ(first.start_step, 0);
  EXPECT_EQ(first.steps, 3);
  EXPECT_EQ(first.reward_mean.size(), 3u);
  EXPECT_GE(first.eval_accuracy_start, 0.0);
  EXPECT_GE(first.eval_accuracy_end, 0.0);
  EXPECT_EQ(first.eval_step, 2);
  c.stop_after = 0;
  c.resume = true;
  const GroupRLResult second = train_group_rl(c);
  EXPECT_EQ(second.start_step, 3);
  EXPECT_EQ(second.steps, 5);
  ASSERT_EQ(second.reward_mean.size(), 5u);  // the whole run: 3 read back, 2 run now
  for (size_t i = 0; i < 3; ++i) EXPECT_EQ(second.reward_mean[i], first.reward_mean[i]) << i;
  EXPECT_EQ(second.accuracy.size(), 5u);
  EXPECT_EQ(second.eval_accuracy_start, first.eval_accuracy_start);
  EXPECT_EQ(second.eval_step, 5);
  const std::vector<json::Value> lines = rlft::testing::metrics_of(second.run_dir);
  ASSERT_EQ(lines.size(), 5u);
  EXPECT_EQ(second.eval_accuracy_end, lines[4].at("eval_accuracy").as_double());
  // Resuming the finished run runs nothing, and reports nothing run.
  const GroupRLResult third = train_group_rl(c);
  EXPECT_EQ(third.start_step, 5);
  EXPECT_EQ(third.steps, 5);
  EXPECT_EQ(third.eval_step, 5);
  EXPECT_EQ(third.eval_accuracy_end, second.eval_accuracy_end);
}

// ---- rlft experiment verifiable: the plumbing, at toy size -----------------------------------

namespace {

// GRPO alone at toy size from `dir`/sft into `dir`/verifiable, each job run by `program`.
exp::VerifiableConfig tiny_verifiable(const std::string& dir, const std::string& program,
                                      int64_t seeds, int64_t steps) {
  exp::VerifiableConfig c;
  c.out_dir = dir + "/verifiable";
  c.init = dir + "/sft";
  c.methods = {"grpo"};
  c.seeds = seeds;
  c.parallel = 1;
  c.steps = steps;
  c.prompts = 4;
  c.group = 4;
  c.train_prompts = 16;
  c.minibatches = 1;
  c.eval_every = 1;
  c.eval_prompts = 10;
  c.eval_samples = 1;
  c.test_prompts = 20;
  c.program = program;
  c.quiet = true;
  return c;
}

}  // namespace

// One method, one seed, 3 steps from this suite's SFT model, through the real rlft binary (the
// runner spawns it): the curves, the CSV and results.md appear, and a rerun skips the finished
// runs and redraws the same table.
TEST_F(GroupRLRun, VerifiableExperimentWritesCurvesAndTable) {
  const std::string rlft_bin = std::string(RLFT_BINARY_DIR) + "/rlft";
  if (!fs::exists(rlft_bin)) GTEST_SKIP() << rlft_bin << " is not built (build the rlft target)";
  const exp::VerifiableConfig c = tiny_verifiable(*dir_, rlft_bin, /*seeds=*/1, /*steps=*/3);
  const exp::VerifiableResult r = exp::run_verifiable(c);
  for (const char* f : {"accuracy_vs_steps.svg", "accuracy_vs_tokens.svg", "response_length.svg",
                        "entropy.svg", "curves.csv", "results.md", "runs/grpo-s1/metrics.jsonl",
                        "runs/grpo-s1/eval_test.json", "logs/grpo-s1.done"})
    EXPECT_TRUE(fs::exists(c.out_dir + "/" + f)) << f;
  ASSERT_EQ(r.methods.size(), 1u);
  EXPECT_EQ(r.methods[0].greedy.size(), 1u);
  const std::string md = fs::read_file(r.results_md);
  EXPECT_NE(md.find("| grpo | "), std::string::npos) << md;
  EXPECT_NE(md.find("| SFT start | "), std::string::npos) << md;
  const std::string csv = fs::read_file(c.out_dir + "/curves.csv");
  EXPECT_NE(csv.find("grpo,1,3,"), std::string::npos) << csv;  // the last step's row
  // Resume: everything is skipped, the results are the same.
  const std::string before = fs::read_file(c.out_dir + "/runs/grpo-s1/metrics.jsonl");
  const exp::VerifiableResult again = exp::run_verifiable(c);
  EXPECT_EQ(fs::read_file(c.out_dir + "/runs/grpo-s1/metrics.jsonl"), before);
  EXPECT_EQ(again.methods[0].greedy, r.methods[0].greedy);
}

// The same experiment run by a stand-in for the rlft binary (a shell script): each RL run's
// metrics.jsonl is written by hand, and every command the experiment runs is logged.
//  - The accuracy curve is the mean over seeds: eval accuracy 0.1 at the start of both seeds,
//    then 0.2, 0.4 (seed 1) and 0.4, 0.6 (seed 2), so the curve is (0, 0.1), (1, 0.3), (2, 0.5).
//    Drawn over y [0.1, 0.5] padded by 4% to [0.084, 0.516] on the 720×420 frame (x 78…700,
//    y 40…364): (78, 352), (389, 202), (700, 52).
//  - A run trained again (its marker gone) has its test evaluation run again too, though that
//    evaluation's own command did not change; the other run's evaluation is kept.
TEST(GroupRLConfig, VerifiableAveragesSeedsAndReevaluatesARetrainedRun) {
  namespace sfs = std::filesystem;
  const std::string d = temp_dir("verifiable_stand_in");
  SFTConfig start = rlft::testing::arith_sft_config(d, "sft");  // one step: a start to check
  start.steps = start.log_every = start.eval_every = start.checkpoint_every = 1;
  start.batch = 4;
  start.warmup = 0;
  start.eval_examples = 4;
  train_sft(start);
  const std::string program = d + "/rlft.sh";
  fs::atomic_write_file(program, R"(#!/bin/sh
echo "$*" >> "$(dirname "$0")/calls.log"
run= out= name=
while [ $# -gt 0 ]; do
  case "$1" in
    --run) run=$2; shift ;;
    --out-dir) out=$2; shift ;;
    --name) name=$2; shift ;;
  esac
  shift
done
if [ -n "$run" ]; then
  echo '{"greedy_exact_match": 0.5, "sampled_exact_match": 0.25}' > "$run/eval_test.json"
  exit 0
fi
case "$name" in *-s1) a=0.2 b=0.4 ;; *) a=0.4 b=0.6 ;; esac
mkdir -p "$out/$name"
{
  echo "{\"step\": 1, \"generated_tokens\": 100, \"accuracy\": 0.5, \"eval_accuracy\": $a, \"eval_accuracy_start\": 0.1, \"response_length_mean\": 3, \"entropy\": 1, \"elapsed_seconds\": 1}"
  echo "{\"step\": 2, \"generated_tokens\": 200, \"accuracy\": 0.5, \"eval_accuracy\": $b, \"response_length_mean\": 3, \"entropy\": 1, \"elapsed_seconds\": 2}"
} > "$out/$name/metrics.jsonl"
)");
  sfs::permissions(program, sfs::perms::owner_all);
  const exp::VerifiableConfig c = tiny_verifiable(d, program, /*seeds=*/2, /*steps=*/2);
  exp::run_verifiable(c);
  const std::string svg = fs::read_file(c.out_dir + "/accuracy_vs_steps.svg");
  EXPECT_NE(svg.find("points=\"78.00,352.00 389.00,202.00 700.00,52.00 \""), std::string::npos)
      << svg;
  auto calls = [&](const std::string& what) {
    const std::string log = fs::read_file(d + "/calls.log");
    int n = 0;
    for (size_t at = log.find(what); at != std::string::npos; at = log.find(what, at + 1)) ++n;
    return n;
  };
  const std::string eval1 = "lm eval --run " + c.out_dir + "/runs/grpo-s1 ";
  const std::string eval2 = "lm eval --run " + c.out_dir + "/runs/grpo-s2 ";
  EXPECT_EQ(calls("lm grpo "), 2);
  EXPECT_EQ(calls(eval1), 1);
  EXPECT_EQ(calls(eval2), 1);
  fs::remove_file(c.out_dir + "/logs/grpo-s1.done");
  exp::run_verifiable(c);
  EXPECT_EQ(calls("lm grpo "), 3);
  EXPECT_EQ(calls(eval1), 2);
  EXPECT_EQ(calls(eval2), 1);
}

// The methods of an experiment are distinct: one listed twice is an error before any job runs.
TEST(GroupRLConfig, VerifiableRefusesAMethodListedTwice) {
  exp::VerifiableConfig c;
  c.methods = {"grpo", "rloo", "grpo"};
  c.out_dir = temp_dir("verifiable_twice") + "/v";
  c.init = "no-such-run";
  EXPECT_EQ(rlft::testing::error_of([&] { exp::run_verifiable(c); }),
            "rlft experiment verifiable: --methods: 'grpo' is listed twice");
  EXPECT_FALSE(fs::exists(c.out_dir));
}

// The curves' trailing mean by hand: over 2 points, 1 2 3 4 5 → 1, 1.5, 2.5, 3.5, 4.5; over 3,
// → 1, 1.5, 2, 3, 4; a window longer than the series is the running mean.
TEST(GroupRLConfig, CurvesAreSmoothedByATrailingMean) {
  const std::vector<double> y = {1, 2, 3, 4, 5};
  EXPECT_EQ(exp::trailing_mean(y, 1), y);
  EXPECT_EQ(exp::trailing_mean(y, 2), (std::vector<double>{1, 1.5, 2.5, 3.5, 4.5}));
  EXPECT_EQ(exp::trailing_mean(y, 3), (std::vector<double>{1, 1.5, 2, 3, 4}));
  EXPECT_EQ(exp::trailing_mean(y, 10), (std::vector<double>{1, 1.5, 2, 2.5, 3}));
}

// The shared RL start is a named SFT preset that stops on a validation target
// (docs/group_rl.md measures it; SFT.StopsAtTheFirstValidationThatReachesTheTarget tests the rule).
TEST(GroupRLConfig, ArithRLInitPreset) {
  const SFTConfig c = sft_preset("arith-rl-init");
  EXPECT_EQ(c.task.task, "arith");
  EXPECT_EQ(c.model, "nano");
  EXPECT_EQ(c.steps, 3000);
  EXPECT_EQ(c.stop_at_exact_match, 0.35);
  EXPECT_GT(c.eval_generate, 0);
  EXPECT_EQ(c.lr, 3e-3);
  EXPECT_EQ(c.name, "arith-rl-init");
  EXPECT_NE(rlft::testing::error_of([] { sft_preset("arith-rl"); }).find("arith-rl-init"),
            std::string::npos);
}

// ---- on a GPU -------------------------------------------------------------------------------

// Three GRPO steps from the same SFT start on cuda:0 and on the CPU. Rollouts sample from the
// same host stream, so the same responses come back unless float32 rounding (≈1e-6 relative in
// the probabilities) moves a uniform draw across a token boundary, which these seeds do not;
// rewards and accuracies are then equal, and the losses, KL and entropy differ only by that
// rounding grown over a few AdamW steps (1e-4 relative, plus 1e-6 absolute for terms near 0).
// Skipped without a GPU (before the SFT start is trained).
TEST(GroupRLCuda, GRPOStepsMatchTheCpu) {
  RLFT_SKIP_WITHOUT_GPU();
  const std::string dir = temp_dir("group_rl_cuda");
  train_sft(rlft::testing::arith_sft_config(dir, "sft"));
  GroupRLConfig c = group_rl_defaults("grpo");
  c.init = dir + "/sft";
  c.train_prompts = 16;
  c.prompts = 8;
  c.group_size = 8;
  c.steps = 3;
  c.minibatches = 2;
  c.lr = 1e-4;
  c.eval_prompts = 20;
  c.eval_every = 3;
  c.out_dir = dir;
  c.quiet = true;
  c.name = "cpu";
  const GroupRLResult cpu = train_group_rl(c);
  c.name = "gpu";
  c.device = "cuda";
  const GroupRLResult gpu = train_group_rl(c);
  EXPECT_EQ(gpu.reward_mean, cpu.reward_mean);
  EXPECT_EQ(gpu.accuracy, cpu.accuracy);
  EXPECT_EQ(gpu.eval_accuracy_start, cpu.eval_accuracy_start);
  EXPECT_EQ(gpu.eval_accuracy_end, cpu.eval_accuracy_end);
  const std::vector<json::Value> a = rlft::testing::metrics_of(cpu.run_dir),
                                 b = rlft::testing::metrics_of(gpu.run_dir);
  ASSERT_EQ(b.size(), a.size());
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(b[i].at("response_length_mean").as_double(),
              a[i].at("response_length_mean").as_double());
    for (const char* k : {"loss", "kl_ref", "kl_ref_k3", "entropy", "approx_kl_k3", "grad_norm",
                          "clip_frac_low", "clip_frac_high"}) {
      const double x = a[i].at(k).as_double(), y = b[i].at(k).as_double();
      EXPECT_NEAR(y, x, 1e-6 + 1e-4 * std::abs(x)) << k << " at step " << i + 1;
    }
  }
  // The device run's checkpoint is an ordinary GPT run (read back on the host).
  EXPECT_EQ(load_model(gpu.run_dir).step, 3);
}
