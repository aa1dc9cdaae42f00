// Tests of the RLHF algorithms (rl/llm/reward_model, dpo, rrhf, ppo_rlhf, rlhf_data): every
// loss and its gradient against values computed by hand (the Python one-liners in the comments
// reproduce them), DeepSpeed-Chat's compute_rewards / critic loss / GAE on fixed inputs,
// malformed preference files, a seeded end-to-end pipeline on the reviews task
// (SFT → preference pairs → reward model → DPO and PPO-RLHF) from a tiny model trained here,
// DPO's resume, and the pieces of `rlft experiment frontier` (jobs, points, outputs).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>

#include "checkpoints_equal.h"
#include "engine/checkpoint.h"
#include "engine/error.h"
#include "engine/fs.h"
#include "engine/ops.h"
#include "models/generate.h"
#include "resume_fixture.h"
#include "rl/llm/dpo.h"
#include "rl/llm/experiments/frontier.h"
#include "rl/llm/ppo_rlhf.h"
#include "rl/llm/reward_model.h"
#include "rl/llm/rlhf_data.h"
#include "rl/llm/rrhf.h"
#include "rl/llm/sft.h"
#include "run_metrics.h"
#include "test_util.h"
#include "tiny_lm_runs.h"

using namespace rlft;
using namespace rlft::llm;

namespace {

using rlft::testing::temp_dir;

Tensor leaf(const std::vector<double>& v) {
  Tensor t = Tensor::from_vector(v, {int64_t(v.size())});
  t.set_requires_grad(true);
  return t;
}

void expect_near_all(const std::vector<double>& got, const std::vector<double>& want, double tol) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) EXPECT_NEAR(got[i], want[i], tol) << "index " << i;
}

// Two pairs: h = (−10 + 11) − (−12 + 11) = 2 and h = (−5 + 5) − (−4 + 5) = −1.
struct DPOInputs {
  Tensor pc = leaf({-10, -5}), pr = leaf({-12, -4});
  Tensor rc = Tensor::from_vector(std::vector<double>{-11, -5}, {2}),
         rr = Tensor::from_vector(std::vector<double>{-11, -5}, {2});
};

}  // namespace

// L = mean(softplus(−β h)); dL/dpc_i = −(β/B)·σ(−β h_i), dL/dpr_i = −dL/dpc_i.
// python: sp=lambda x: math.log1p(math.exp(x)); (sp(-0.2)+sp(0.1))/2
TEST(RLHFLosses, DPOSigmoidLossAndGradient) {
  DPOInputs in;
  const DPOLoss l = dpo_loss(in.pc, in.pr, in.rc, in.rr, 0.1);
  EXPECT_NEAR(l.loss.item(), 0.6712677647275813, 1e-12);
  l.loss.backward();
  expect_near_all(in.pc.grad().to_vector(), {-0.02250830013437611, -0.026248959373947}, 1e-12);
  expect_near_all(in.pr.grad().to_vector(), {0.02250830013437611, 0.026248959373947}, 1e-12);
  // Implicit rewards β·(logπ − logπ_ref).
  expect_near_all(l.chosen_rewards.to_vector(), {0.1, 0.0}, 1e-12);
  expect_near_all(l.rejected_rewards.to_vector(), {-0.1, 0.1}, 1e-12);
}

// cDPO, ε 0.1: −(1−ε) log σ(βh) − ε log σ(−βh).
TEST(RLHFLosses, ConservativeDPOLabelSmoothing) {
  DPOInputs in;
  const DPOLoss l = dpo_loss(in.pc, in.pr, in.rc, in.rr, 0.1, DPOLossType::cdpo, 0.1);
  EXPECT_NEAR(l.loss.item(), 0.6762677647275814, 1e-12);
  l.loss.backward();
  expect_near_all(in.pc.grad().to_vector(), {-0.01750830013437611, -0.021248959373947003}, 1e-12);
  // ε = 0 is plain DPO.
  DPOInputs in2;
  EXPECT_NEAR(dpo_loss(in2.pc, in2.pr, in2.rc, in2.rr, 0.1, DPOLossType::cdpo, 0.0).loss.item(),
              0.6712677647275813, 1e-12);
}

// IPO with τ = β = 0.1: (h − 1/(2τ))² = (h − 5)²: (2 − 5)² = 9, (−1 − 5)² = 36, mean 22.5;
// dL/dpc_i = (1/2)·2·(h_i − 5) = −3, −6.
TEST(RLHFLosses, IPOLossAndGradient) {
  DPOInputs in;
  const DPOLoss l = dpo_loss(in.pc, in.pr, in.rc, in.rr, 0.1, DPOLossType::ipo);
  EXPECT_NEAR(l.loss.item(), 22.5, 1e-12);
  l.loss.backward();
  expect_near_all(in.pc.grad().to_vector(), {-3, -6}, 1e-12);
  expect_near_all(in.pr.grad().to_vector(), {3, 6}, 1e-12);
  EXPECT_THROW(parse_dpo_loss("hinge"), Error);
}

// r_w = (2, 0.5), r_l = (1, 1): mean softplus(−(r_w − r_l)) = (sp(−1) + sp(0.5))/2.
TEST(RLHFLosses, BradleyTerryLossMarginAndCentring) {
  Tensor rw = leaf({2, 0.5}), rl = leaf({1, 1});
  Tensor l = bradley_terry_loss(rw, rl);
  EXPECT_NEAR(l.item(), 0.6436693358491647, 1e-12);
  l.backward();
  expect_near_all(rw.grad().to_vector(), {-0.13447071068499755, -0.3112296656009273}, 1e-12);
  expect_near_all(rl.grad().to_vector(), {0.13447071068499755, 0.3112296656009273}, 1e-12);
  // margin 0.5, η 0.01: mean(sp(−(r_w − r_l − 0.5)) + 0.01·(r_w + r_l)²).
  Tensor rw2 = leaf({2, 0.5}), rl2 = leaf({1, 1});
  Tensor l2 = bradley_terry_loss(rw2, rl2, 0.5, 0.01);
  EXPECT_NEAR(l2.item(), 0.9499193358491647, 1e-12);
  l2.backward();
  expect_near_all(rw2.grad().to_vector(), {-0.1587703343990727, -0.35052928931500243}, 1e-12);
  expect_near_all(rl2.grad().to_vector(), {0.2187703343990727, 0.38052928931500246}, 1e-12);
}

// The reward model's training batch scores each pair's chosen response as chosen: pairs [1, 4)
// of four on a random float64 model with a reward head, their rewards checked against
// reward_scores of each response on its own, and the loss against the Bradley–Terry formula on
// those (margin 0.3, centring 0.01): mean(softplus(−(r_w − r_l − 0.3)) + 0.01·(r_w + r_l)²).
// Swapping the sides changes every term (the margin and the random rewards make it asymmetric).
TEST(RLHFLosses, RewardModelPairLossScoresChosenAgainstRejected) {
  const models::Tokenizer tok = models::Tokenizer::make("char", "abc ");
  models::GPTConfig mc = rlft::testing::tiny_f64_gpt(tok.vocab_size(), 16);
  mc.reward_head = true;
  Generator gen(11);
  models::GPT rm(mc, gen);
  std::vector<PreferencePair> pairs(4);
  const char* text[4][3] = {
      {"a", "b", "cc"}, {"ab", "ca b", "a"}, {"c", "bb", "abc a"}, {"ba", "a", "cab"}};
  for (size_t i = 0; i < 4; ++i)
    pairs[i].prompt = text[i][0], pairs[i].chosen = text[i][1], pairs[i].rejected = text[i][2];
  const PairLoss got = pair_loss(rm, tok, pairs, 1, 4, 0.3, 0.01);
  ASSERT_EQ(got.chosen.size(), 3u);
  ASSERT_EQ(got.rejected.size(), 3u);
  double want = 0;
  for (size_t i = 1; i < 4; ++i) {
    const double w = reward_scores(rm, tok, {pairs[i].prompt}, {pairs[i].chosen}).at(0),
                 l = reward_scores(rm, tok, {pairs[i].prompt}, {pairs[i].rejected}).at(0);
    EXPECT_NEAR(got.chosen[i - 1], w, 1e-12) << "pair " << i;
    EXPECT_NEAR(got.rejected[i - 1], l, 1e-12) << "pair " << i;
    want += std::log1p(std::exp(-(w - l - 0.3))) / 3 + 0.01 * (w + l) * (w + l) / 3;
  }
  EXPECT_NEAR(got.loss.item(), want, 1e-12);
  EXPECT_NE(rlft::testing::error_of([&] {
              pair_loss(rm, tok, pairs, 2, 5);
            }).find("pair_loss: pairs [2, 5) of 4"),
            std::string::npos);
}

// Σ logπ = (−3, −8, −1.5), lengths (3, 4, 1), R = (0.5, 0.9, 0.1): p = (−1, −2, −1.5).
// Ranked pairs R_i < R_j: (0,1): max(0, −1 + 2) = 1; (2,0): max(0, −0.5) = 0; (2,1):
// max(0, 0.5) = 0.5 → L_rank = 1.5. Best is y_1: L_ft = 8. L = 9.5.
// dL/ds_0 = 1/3; dL/ds_1 = (−1 − 1)/4 − 1 = −1.5; dL/ds_2 = 1/1.
TEST(RLHFLosses, RRHFRankAndFineTuneTerms) {
  Tensor s = leaf({-3, -8, -1.5});
  const RRHFLoss l = rrhf_loss(s, {3, 4, 1}, {0.5, 0.9, 0.1});
  EXPECT_NEAR(l.rank_loss, 1.5, 1e-12);
  EXPECT_NEAR(l.ft_loss, 8.0, 1e-12);
  EXPECT_NEAR(l.loss.item(), 9.5, 1e-12);
  l.loss.backward();
  expect_near_all(s.grad().to_vector(), {1.0 / 3, -1.5, 1.0}, 1e-12);
  EXPECT_THROW(rrhf_loss(leaf({1, 2}), {1}, {0, 1}), Error);
}

// Equal scores rank nothing (the sum is over R_i < R_j only, strictly), and the fine-tune term
// takes the first best candidate. Σ logπ = (−3, −8, −1.5), lengths (3, 4, 1) → p = (−1, −2,
// −1.5); R = (0.5, 0.5, 0.1): pairs (2,0): max(0, −1.5 + 1) = 0; (2,1): max(0, −1.5 + 2) = 0.5;
// the tie (0,1) contributes nothing (counted either way it would add |p_0 − p_1| = 1).
// L_rank = 0.5, best = y_0: L_ft = 3. dL/ds = (−1, −1/4, +1).
TEST(RLHFLosses, RRHFTiedScoresAreNotRanked) {
  Tensor s = leaf({-3, -8, -1.5});
  const RRHFLoss l = rrhf_loss(s, {3, 4, 1}, {0.5, 0.5, 0.1});
  EXPECT_NEAR(l.rank_loss, 0.5, 1e-12);
  EXPECT_NEAR(l.ft_loss, 3.0, 1e-12);
  EXPECT_NEAR(l.loss.item(), 3.5, 1e-12);
  l.loss.backward();
  expect_near_all(s.grad().to_vector(), {-1.0, -0.25, 1.0}, 1e-12);
}

// One RRHF step divides each candidate's log-prob sum by its |y|, its response's tokens and the
// EOS. Two prompts of three candidates of different lengths on a random float64 model: the
// expected terms are computed here from each candidate's own log-prob sum (a batch of that row
// alone) and its length counted from the text (one token per character, + 1 for the EOS); the
// loss is the mean over the prompts of Σ_{R_i<R_j} max(0, p_i − p_j) − Σ log π(y_best). The
// scores rank each prompt's shortest candidate worst: its raw sum is the least negative, so
// sums not divided by their lengths would rank it far above the others (rank terms summing to
// 39.4 here instead of 0.2).
TEST(RLHFLosses, RRHFStepDividesEachCandidateByItsTokenCount) {
  const models::Tokenizer tok = models::Tokenizer::make("char", "abc ");
  Generator gen(5);
  models::GPT policy(rlft::testing::tiny_f64_gpt(tok.vocab_size(), 16), gen);
  const std::vector<std::string> prompts = {"ab", "ab", "ab", "c", "c", "c"},
                                 responses = {"a", "abca", "bbcaabc", "c", "ab ba", "cab"};
  const std::vector<double> scores = {0.1, 0.5, 0.9, 0.2, 0.8, 0.3};
  const RRHFStepLoss got = rrhf_step_loss(policy, tok, prompts, responses, scores, 3);
  double rank_sum = 0, ft_sum = 0;
  for (size_t g = 0; g < 2; ++g) {
    double p[3], sum[3];
    size_t best = 3 * g;
    for (size_t i = 0; i < 3; ++i) {
      const size_t r = 3 * g + i;
      sum[i] =
          response_log_prob_sums(policy, make_sequence_batch(tok, {prompts[r]}, {responses[r]}, 16))
              .item();
      p[i] = sum[i] / double(responses[r].size() + 1);
      if (scores[r] > scores[best]) best = r;
    }
    for (size_t i = 0; i < 3; ++i)
      for (size_t j = 0; j < 3; ++j)
        if (scores[3 * g + i] < scores[3 * g + j]) rank_sum += std::max(0.0, p[i] - p[j]);
    ft_sum -= sum[best - 3 * g];
  }
  EXPECT_GT(rank_sum, 0.0);
  EXPECT_NEAR(got.rank_sum, rank_sum, 1e-9);
  EXPECT_NEAR(got.ft_sum, ft_sum, 1e-9);
  EXPECT_NEAR(got.loss.item(), (rank_sum + ft_sum) / 2, 1e-9);
  EXPECT_NE(rlft::testing::error_of([&] {
              rrhf_step_loss(policy, tok, prompts, responses, scores, 4);
            }).find("rrhf_step_loss: 6 prompts, 6 responses, 6 scores in groups of 4"),
            std::string::npos);
}

// Two rows with different prompt lengths and response ends; the RM score lands on each row's
// own last response token, clipped to ±5; −0.1·(logp − ref) on every response token.
TEST(RLHFLosses, ComputeRewardsPutsTheClippedScoreAtEachRowsOwnEnd) {
  const Tensor lp = Tensor::from_vector(std::vector<double>{0, 0, -1.0, -2.0, 0, 0,  //
                                                            0, -0.5, -1.5, -1.0, -3.0, 0},
                                        {2, 6});
  const Tensor ref = Tensor::from_vector(std::vector<double>{0, 0, -1.5, -1.0, 0, 0,  //
                                                             0, -0.5, -1.0, -2.0, -2.0, 0},
                                         {2, 6});
  const Tensor mask = Tensor::from_vector(std::vector<double>{0, 0, 1, 1, 0, 0,  //
                                                              0, 1, 1, 1, 1, 0},
                                          {2, 6});
  const Tensor score = Tensor::from_vector(std::vector<double>{7.0, -2.0}, {2});
  const Tensor r = compute_rewards(lp, ref, score, mask, 0.1, 5.0);
  expect_near_all(r.to_vector(),
                  {0, 0, -0.1 * 0.5, -0.1 * -1.0 + 5.0, 0, 0,  //
                   0, 0, -0.1 * -0.5, -0.1 * 1.0, -0.1 * -1.0 - 2.0, 0},
                  1e-12);
}

// clip(score, −5, 5) binds on both sides: a score of −7 adds −5 at the last response token.
TEST(RLHFLosses, ComputeRewardsClipsANegativeScoreToo) {
  const Tensor lp = Tensor::from_vector(std::vector<double>{0, -1.0, -2.0, 0}, {1, 4});
  const Tensor ref = Tensor::from_vector(std::vector<double>{0, -1.5, -1.0, 0}, {1, 4});
  const Tensor mask = Tensor::from_vector(std::vector<double>{0, 1, 1, 0}, {1, 4});
  const Tensor r =
      compute_rewards(lp, ref, Tensor::from_vector(std::vector<double>{-7.0}, {1}), mask, 0.1, 5.0);
  expect_near_all(r.to_vector(), {0, -0.1 * 0.5, -0.1 * -1.0 - 5.0, 0}, 1e-12);
}

// V = (1, 0.5, 2), V_old = (0.5, 0.6, 1), R = (1.2, 0, 3), mask (1, 1, 0).
// clip(V, V_old ± 0.2) = (0.7, 0.5, 1.2); (V − R)² = (0.04, 0.25, ·); clipped (0.25, 0.25, ·);
// max = (0.25, 0.25); 0.5·mean = 0.125. Gradient: element 0 takes the clipped branch (0);
// element 1 is unclipped: 0.5·(1/2)·2·(0.5 − 0) = 0.25; element 2 is masked.
TEST(RLHFLosses, ClippedCriticLoss) {
  Tensor v = Tensor::from_vector(std::vector<double>{1.0, 0.5, 2.0}, {1, 3});
  v.set_requires_grad(true);
  const Tensor v_old = Tensor::from_vector(std::vector<double>{0.5, 0.6, 1.0}, {1, 3});
  const Tensor ret = Tensor::from_vector(std::vector<double>{1.2, 0.0, 3.0}, {1, 3});
  const Tensor m = Tensor::from_vector(std::vector<double>{1, 1, 0}, {1, 3});
  const Tensor l = critic_loss(v, v_old, ret, m, 0.2);
  EXPECT_NEAR(l.item(), 0.125, 1e-12);
  l.backward();
  expect_near_all(v.grad().to_vector(), {0.0, 0.25, 0.0}, 1e-12);
}

// γ 1, λ 0.95 over the response tokens 1..2 of one row: δ_2 = 1 + 0 − 2 = −1, A_2 = −1;
// δ_1 = 0.5 + 2 − 1 = 1.5, A_1 = 1.5 + 0.95·(−1) = 0.55; returns = A + V at the response.
TEST(RLHFLosses, GAEOverMaskedResponse) {
  const Tensor r = Tensor::from_vector(std::vector<double>{0, 0.5, 1.0, 9}, {1, 4});
  const Tensor v = Tensor::from_vector(std::vector<double>{9, 1.0, 2.0, 9}, {1, 4});
  const Tensor m = Tensor::from_vector(std::vector<double>{0, 1, 1, 0}, {1, 4});
  const auto [adv, ret] = gae_masked(r, v, m, 1.0, 0.95);
  expect_near_all(adv.to_vector(), {0, 0.55, -1.0, 0}, 1e-12);
  expect_near_all(ret.to_vector(), {0, 1.55, 1.0, 0}, 1e-12);
  // Whitening over the mask: mean 0, unbiased std 1 there, 0 elsewhere.
  const std::vector<double> w = whiten_masked(adv, m).to_vector();
  EXPECT_NEAR(w[1] + w[2], 0.0, 1e-9);
  EXPECT_NEAR(w[1], 0.7071067811865476, 1e-6);
  EXPECT_EQ(w[0], 0.0);
}

// A tiny float64 GPT (vocabulary 12, 1 layer, d 8, 2 heads) three times from one seeded
// stream: the reference (also the actor), the critic with its value head, the reward model
// with its reward head.
struct TinyRLHFModels {
  static models::GPTConfig base() { return rlft::testing::tiny_f64_gpt(12, 8); }
  explicit TinyRLHFModels(uint64_t seed)
      : gen(seed),
        ref(base(), gen),
        critic(with_heads(base(), true, false), gen),
        rm(with_heads(base(), false, true), gen) {}
  Generator gen;
  models::GPT ref, critic, rm;
};

// One rollout's experience on tiny float64 models: the critic's values are aligned to the prefix
// each token continues (column t is the value head at t − 1, column 0 is 0), and the advantages
// and returns are GAE over the response with the config's γ and λ (0.9 and 0.5 here, so a
// swap shows), written out: δ_t = r_t + γ·V_{t+1}·m_{t+1} − V_t, A_t = δ_t + γλ·m_{t+1}·A_{t+1}.
TEST(RLHFLosses, ExperienceAlignsTheValuesAndRunsGAEWithTheConfigsGammaAndLambda) {
  TinyRLHFModels tiny(3);
  models::GPT &ref = tiny.ref, &critic = tiny.critic, &rm = tiny.rm;
  const int64_t B = 2, T = 6;
  const Tensor tokens = Tensor::from_vector(std::vector<int64_t>{11, 3, 4, 5, 6, 7,  //
                                                                 1, 2, 8, 9, 10, 0},
                                            {B, T});
  const Tensor attention = Tensor::from_vector(std::vector<double>{0, 1, 1, 1, 1, 1,  //
                                                                   1, 1, 1, 1, 1, 1},
                                               {B, T});
  const std::vector<double> m = {0, 0, 0, 1, 1, 1,  //
                                 0, 0, 1, 1, 1, 0};
  const Tensor action = Tensor::from_vector(m, {B, T});
  const Tensor log_probs =
      mul(Tensor::from_vector(std::vector<double>{0, 0, 0, -1.2, -0.3, -2.0,  //
                                                  0, 0, -0.7, -0.1, -1.5, 0},
                              {B, T}),
          action);
  PPORLHFConfig cfg;
  cfg.gamma = 0.9;
  cfg.lam = 0.5;
  cfg.whiten_advantages = false;
  const Experience e =
      make_experience(ref, critic, rm, tokens, attention, log_probs, action, 0.1, cfg);
  std::vector<double> head;
  {
    NoGradGuard ng;
    head = critic.values(critic.forward(tokens, attention)).to_vector();
  }
  const std::vector<double> v = e.old_values.to_vector(), r = e.rewards.to_vector(),
                            a = e.advantages.to_vector(), ret = e.returns.to_vector();
  for (int64_t b = 0; b < B; ++b) {
    double next_v = 0, next_a = 0, next_m = 0;
    for (int64_t t = T - 1; t >= 0; --t) {
      const size_t k = size_t(b * T + t);
      EXPECT_EQ(v[k], t == 0 ? 0.0 : head[k - 1] * m[k]) << b << "," << t;
      const double delta = r[k] + cfg.gamma * next_v * next_m - v[k];
      const double adv = m[k] * (delta + cfg.gamma * cfg.lam * next_m * next_a);
      EXPECT_NEAR(a[k], adv, 1e-12) << b << "," << t;
      EXPECT_NEAR(ret[k], m[k] * (adv + v[k]), 1e-12) << b << "," << t;
      next_v = v[k], next_a = adv, next_m = m[k];
    }
  }
  // The rewards are compute_rewards' of the same inputs, the score the reward head's.
  EXPECT_EQ(e.rewards.to_vector(), compute_rewards(log_probs, e.ref_log_probs, e.reward_score,
                                                   action, 0.1, cfg.clip_reward_value)
                                       .to_vector());
  EXPECT_EQ(e.reward_score.to_vector(),
            rm.rewards(rm.forward(tokens, attention), attention).detach().to_vector());
  EXPECT_NE(a[3], 0.0);
}

// The reference is scored at the rollout's temperature (--temperature), as the actor's log-probs
// are: while the actor is the reference, the per-token KL penalty is 0 at τ = 0.5 too, so the
// rewards are the clipped score alone at each row's last response token. (It was scored at τ =
// 1, which made the penalty non-zero at every response token with identical models.)
TEST(RLHFLosses, ExperienceScoresTheReferenceAtTheRolloutsTemperature) {
  TinyRLHFModels tiny(5);
  models::GPT &ref = tiny.ref, &critic = tiny.critic, &rm = tiny.rm;
  const int64_t B = 2, T = 5;
  const Tensor tokens = Tensor::from_vector(std::vector<int64_t>{11, 3, 4, 5, 6,  //
                                                                 1, 2, 8, 9, 10},
                                            {B, T});
  const Tensor attention = Tensor::ones({B, T}, DType::f64);
  const Tensor action = Tensor::from_vector(std::vector<double>{0, 0, 1, 1, 1,  //
                                                                0, 0, 0, 1, 1},
                                            {B, T});
  PPORLHFConfig cfg;
  cfg.temperature = 0.5;
  cfg.clip_reward_value = 100;  // the score unclipped, so it can be read back
  Tensor log_probs, at_one;
  {
    NoGradGuard ng;
    log_probs = mul(models::sequence_log_probs(ref, tokens, attention, 0.5), action);
    at_one = mul(models::sequence_log_probs(ref, tokens, attention, 1.0), action);
  }
  ASSERT_NE(log_probs.to_vector(), at_one.to_vector());  // τ changes the log-probs
  const Experience e =
      make_experience(ref, critic, rm, tokens, attention, log_probs, action, 0.1, cfg);
  EXPECT_EQ(mul(e.ref_log_probs, action).to_vector(), log_probs.to_vector());
  const std::vector<double> r = e.rewards.to_vector(), score = e.reward_score.to_vector();
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t < T; ++t)
      EXPECT_EQ(r[size_t(b * T + t)], t == T - 1 ? score[size_t(b)] : 0.0) << b << "," << t;
}

// The critic's old values are taken in eval mode, whatever mode the update left it in (DeepSpeed-
// Chat's generate_experience calls eval() on its models): with dropout 0.5 in the critic and the
// critic in train mode, make_experience's old_values are the eval-mode values head of the prefix
// each token continues (column t is the head at t − 1, masked), exactly. A dropout-noised V_old
// would shift every advantage, return and value-clip centre.
TEST(RLHFLosses, ExperienceTakesTheCriticsValuesInEvalMode) {
  TinyRLHFModels tiny(7);
  models::GPTConfig cc = with_heads(TinyRLHFModels::base(), true, false);
  cc.dropout = 0.5;
  Generator gen(8);
  models::GPT critic(cc, gen);
  const int64_t B = 2, T = 5;
  const Tensor tokens = Tensor::from_vector(std::vector<int64_t>{11, 3, 4, 5, 6,  //
                                                                 1, 2, 8, 9, 10},
                                            {B, T});
  const Tensor attention = Tensor::ones({B, T}, DType::f64);
  const std::vector<double> m = {0, 0, 1, 1, 1,  //
                                 0, 0, 0, 1, 1};
  const Tensor action = Tensor::from_vector(m, {B, T});
  Tensor log_probs;
  {
    NoGradGuard ng;
    log_probs = mul(models::sequence_log_probs(tiny.ref, tokens, attention, 1.0), action);
  }
  critic.train();
  const Experience e = make_experience(tiny.ref, critic, tiny.rm, tokens, attention, log_probs,
                                       action, 0.1, PPORLHFConfig{});
  std::vector<double> head;
  {
    NoGradGuard ng;
    critic.eval();
    head = critic.values(critic.forward(tokens, attention)).to_vector();
  }
  const std::vector<double> v = e.old_values.to_vector();
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t < T; ++t) {
      const size_t k = size_t(b * T + t);
      EXPECT_EQ(v[k], t == 0 ? 0.0 : head[k - 1] * m[k]) << b << "," << t;
    }
}

// The actor loss is the token mean of the clipped surrogate: ratio 1 gives −mean(A).
TEST(RLHFLosses, ActorLossIsTokenMeanOfTheClippedSurrogate) {
  Tensor lp = Tensor::from_vector(std::vector<double>{0, -1.0, -2.0, 0, -1.0, 0}, {2, 3});
  lp.set_requires_grad(true);
  const Tensor old = Tensor::from_vector(std::vector<double>{0, -1.0, -2.0, 0, -1.0, 0}, {2, 3});
  const Tensor adv = Tensor::from_vector(std::vector<double>{0, 1.0, 2.0, 0, -3.0, 0}, {2, 3});
  const Tensor m = Tensor::from_vector(std::vector<double>{0, 1, 1, 0, 1, 0}, {2, 3});
  const Tensor l = actor_loss(lp, old, adv, m, 0.2).loss;
  EXPECT_NEAR(l.item(), -(1.0 + 2.0 - 3.0) / 3.0, 1e-12);
  l.backward();
  expect_near_all(lp.grad().to_vector(), {0, -1.0 / 3, -2.0 / 3, 0, 1.0, 0}, 1e-12);
}

// Where the clip binds, and the cliprange the training loop passes is the one used: log-ratios
// (0.5, 0.5, −0.5) on three response tokens with A = (1, −1, 1), ρ = (e^0.5, e^0.5, e^−0.5).
// Token 1 (A > 0, ρ > 1 + ε) takes the clipped (1 + ε)·A and no gradient; token 2 (A < 0) takes
// the larger ρ·|A| (min of −1.6487 and −(1 + ε)); token 3 (A > 0, ρ < 1 − ε) takes ρ·A, the
// smaller. L = (−(1 + ε) + e^0.5 − e^−0.5)/3; dL/dlogp = (0, e^0.5, −e^−0.5)/3 for ε 0.2 and 0.1.
TEST(RLHFLosses, ActorLossClipsAtItsCliprange) {
  for (double eps : {0.2, 0.1}) {
    Tensor lp = Tensor::from_vector(std::vector<double>{0.5, 0.5, -0.5}, {1, 3});
    lp.set_requires_grad(true);
    const Tensor old = Tensor::zeros({1, 3}, DType::f64);
    const Tensor adv = Tensor::from_vector(std::vector<double>{1, -1, 1}, {1, 3});
    const Tensor m = Tensor::ones({1, 3}, DType::f64);
    const Tensor l = actor_loss(lp, old, adv, m, eps).loss;
    const double up = std::exp(0.5), down = std::exp(-0.5);
    EXPECT_NEAR(l.item(), (-(1 + eps) + up - down) / 3, 1e-12) << "eps " << eps;
    l.backward();
    expect_near_all(lp.grad().to_vector(), {0, up / 3, -down / 3}, 1e-12);
  }
}

TEST(RLHFLosses, AdaptiveKLController) {
  AdaptiveKLController c{0.1, 6.0, 10000};
  c.update(12.0, 100);  // error clipped to +0.2: ×(1 + 0.2·100/10000)
  EXPECT_NEAR(c.value, 0.1 * 1.002, 1e-15);
  c.update(6.0, 100);  // on target: unchanged
  EXPECT_NEAR(c.value, 0.1 * 1.002, 1e-15);
}

// Ziegler et al.'s controller: e = clip(KL/target − 1, ±0.2), β ×= 1 + e·n/horizon. Inside the
// clip range the proportional error is used as is, and a KL far below target clips at −0.2.
TEST(RLHFLosses, AdaptiveKLControllerProportionalErrorAndLowerClip) {
  AdaptiveKLController c{0.1, 6.0, 10000};
  c.update(6.6, 100);  // e = 6.6/6 − 1 = 0.1: ×(1 + 0.1·100/10000) = ×1.001
  EXPECT_NEAR(c.value, 0.1 * 1.001, 1e-15);
  AdaptiveKLController d{0.1, 6.0, 10000};
  d.update(0.0, 100);  // e = −1 → clipped to −0.2: ×(1 − 0.2·100/10000) = ×0.998
  EXPECT_NEAR(d.value, 0.1 * 0.998, 1e-15);
  AdaptiveKLController f{0.1, 6.0, 10000};
  f.update(5.4, 100);  // e = −0.1: ×0.999
  EXPECT_NEAR(f.value, 0.1 * 0.999, 1e-15);
}

// Defaults of the reference implementations (ALGORITHMS.md §3 reward model, §4 DeepSpeed-Chat
// PPO-RLHF, §5 DPO).
TEST(RLHFDefaults, RewardModelPPOAndDPOFollowTheirReferences) {
  const RewardModelConfig rm;
  EXPECT_EQ(rm.margin, 0.0);
  EXPECT_EQ(rm.center_coef, 0.01);
  const PPORLHFConfig p;
  EXPECT_EQ(p.kl_ctl, 0.1);
  EXPECT_FALSE(p.adaptive_kl);
  EXPECT_EQ(p.clip_reward_value, 5.0);
  EXPECT_EQ(p.gamma, 1.0);
  EXPECT_EQ(p.lam, 0.95);
  EXPECT_FALSE(p.whiten_advantages);
  EXPECT_EQ(p.cliprange, 0.2);
  EXPECT_EQ(p.cliprange_value, 0.2);
  EXPECT_EQ(p.ppo_epochs, 1);
  EXPECT_EQ(p.temperature, 1.0);
  const DPOConfig d;
  EXPECT_EQ(d.beta, 0.1);
  EXPECT_EQ(d.loss, "sigmoid");
  EXPECT_EQ(d.label_smoothing, 0.0);
}

// Pearson's r centres both series: a = [10, 11, 12] (mean 11), b = [1, 2, 4] (mean 7/3):
//   Σ(a − ā)(b − b̄) = (−1)(−4/3) + 0 + (1)(5/3) = 3,  Σ(a − ā)² = 2,
//   Σ(b − b̄)² = 16/9 + 1/9 + 25/9 = 14/3,  r = 3/√(2·14/3) = 0.9819805060619656.
// (With a left uncentred, Σa² = 365, r would be 3/√(365·14/3) = 0.0725.) A constant series
// has no correlation: 0.
TEST(RLHFData, PearsonCentresBothSeries) {
  EXPECT_NEAR(pearson({10, 11, 12}, {1, 2, 4}), 0.9819805060619656, 1e-12);
  EXPECT_NEAR(pearson({1, 2, 4}, {10, 11, 12}), 0.9819805060619656, 1e-12);
  EXPECT_EQ(pearson({3, 3, 3}, {1, 2, 4}), 0.0);
}

// lm prefs flips at most half of the labels: --label-noise is in [0, 0.5], 0.5 included (the
// check comes before the --run is read, so a missing run is the error once it passes).
TEST(RLHFData, PrefsLabelNoiseIsAtMostOneHalf) {
  PrefsConfig p;
  p.run = temp_dir("rlhf_noise") + "/no-such-run";
  p.out = temp_dir("rlhf_noise") + "/p.jsonl";
  p.label_noise = 0.51;
  EXPECT_EQ(rlft::testing::error_of([&] { generate_preferences(p); }),
            "rlft lm prefs: --label-noise must be in [0, 0.5], got 0.51");
  p.label_noise = -0.01;
  EXPECT_EQ(rlft::testing::error_of([&] { generate_preferences(p); }),
            "rlft lm prefs: --label-noise must be in [0, 0.5], got -0.01");
  p.label_noise = 0.5;
  const std::string e = rlft::testing::error_of([&] { generate_preferences(p); });
  EXPECT_EQ(e.find("--label-noise"), std::string::npos) << e;
  EXPECT_NE(e.find("no-such-run"), std::string::npos) << e;
}

TEST(RLHFData, PreferenceFilesRoundTripAndMalformedLinesNameTheLine) {
  const std::string dir = temp_dir("rlhf_prefs");
  std::vector<PreferencePair> pairs(2);
  pairs[0] = {"review: the plot was", " great.", " dull.", 0.9, 0.1};
  pairs[1].prompt = "p \"quoted\"\n";
  pairs[1].chosen = "a";
  pairs[1].rejected = "b";
  write_preferences(dir + "/p.jsonl", pairs);
  const std::vector<PreferencePair> back = read_preferences(dir + "/p.jsonl");
  ASSERT_EQ(back.size(), 2u);
  EXPECT_EQ(back[0].chosen, " great.");
  EXPECT_EQ(back[0].chosen_score, 0.9);
  EXPECT_EQ(back[0].rejected_score, 0.1);  // both scores are written, not only the chosen one
  EXPECT_EQ(back[1].prompt, "p \"quoted\"\n");
  EXPECT_TRUE(std::isnan(back[1].chosen_score));
  EXPECT_TRUE(std::isnan(back[1].rejected_score));

  auto error_of = [](const std::string& text) {
    try {
      parse_preferences(text, "user.jsonl");
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  const std::string good = R"({"prompt": "a", "chosen": "b", "rejected": "c"})";
  EXPECT_NE(error_of(good + "\n\n" + R"({"prompt": "a", "chosen": "b"})")
                .find("user.jsonl:3: missing \"rejected\""),
            std::string::npos)
      << error_of(good + "\n\n" + R"({"prompt": "a", "chosen": "b"})");
  EXPECT_NE(error_of(good + "\n{\"prompt\": \"a\",").find("user.jsonl:2"), std::string::npos);
  EXPECT_NE(error_of(R"({"prompt": 3, "chosen": "b", "rejected": "c"})")
                .find("user.jsonl:1: \"prompt\" must be a string"),
            std::string::npos);
  EXPECT_NE(error_of(R"(["a", "b"])").find("user.jsonl:1: expected an object"), std::string::npos);
  EXPECT_NE(error_of(R"({"prompt": "a", "chosen": "b", "rejected": "c", "chosen_score": "high"})")
                .find("\"chosen_score\" must be a number"),
            std::string::npos);
  EXPECT_NE(error_of("\n\n").find("no preference pairs"), std::string::npos);
  // A pair needs two different, non-empty responses; a score is a probability.
  EXPECT_EQ(error_of(good + "\n" + R"({"prompt": "a", "chosen": "", "rejected": "c"})"),
            "user.jsonl:2: \"chosen\" is empty");
  EXPECT_EQ(error_of(R"({"prompt": "a", "chosen": "b", "rejected": "<|eos|>"})"),
            "user.jsonl:1: \"rejected\" is empty");
  EXPECT_EQ(error_of(R"({"prompt": "a", "chosen": "b", "rejected": "b"})"),
            "user.jsonl:1: \"chosen\" and \"rejected\" are the same text (a pair needs two "
            "responses)");
  EXPECT_EQ(error_of(R"({"prompt": "a", "chosen": "b", "rejected": "c", "rejected_score": -0.5})"),
            "user.jsonl:1: \"rejected_score\" must be a probability in [0, 1], got -0.5");
  EXPECT_EQ(parse_preferences(good + "\n\n" + good, "x")[1].line, 3);
  EXPECT_EQ(parse_preferences(good + "\r\n" + good + "\n", "x").size(), 2u);

  // A training run on a malformed file fails before it writes anything.
  fs::atomic_write_file(dir + "/bad.jsonl", good + "\nnot json\n");
  DPOConfig c;
  c.prefs = dir + "/bad.jsonl";
  c.init = dir + "/no_such_run";
  c.out_dir = dir;
  c.name = "dpo";
  try {
    train_dpo(c);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("bad.jsonl:2"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(fs::exists(dir + "/dpo"));
  // Every pair is tokenized and fitted to the context before a run starts; errors name the line.
  const models::Tokenizer tok = models::Tokenizer::make("char", "abc ");
  const std::vector<PreferencePair> fit =
      parse_preferences(good + "\n" + R"({"prompt": "a", "chosen": "bb", "rejected": "X"})", "u");
  EXPECT_EQ(rlft::testing::error_of([&] {
              check_preferences(fit, tok, 16, "u");
            }).rfind("u:2: \"rejected\": tokenizer: unknown character 'X'", 0),
            0u);
  const std::vector<PreferencePair> fit2 =
      parse_preferences(good + "\n" + R"({"prompt": "aa", "chosen": "bbb", "rejected": "c"})", "u");
  EXPECT_EQ(rlft::testing::error_of([&] { check_preferences(fit2, tok, 6, "u"); }),
            "u:2: prompt + \"chosen\" is 7 tokens (BOS and EOS included), more than the model's "
            "context of 6");
  EXPECT_NO_THROW(check_preferences(fit2, tok, 7, "u"));
  // Writing into a missing directory is an error and leaves no file behind.
  EXPECT_THROW(write_preferences(dir + "/missing/p.jsonl", pairs), Error);
  EXPECT_FALSE(fs::exists(dir + "/missing/p.jsonl"));
}

// A score is a probability: 0 and 1 are taken, anything above 1 (or below 0) is refused.
TEST(RLHFData, ScoresAboveOneAreRefused) {
  const std::string head = R"({"prompt": "a", "chosen": "b", "rejected": "c", )";
  const PreferencePair p =
      parse_preferences(head + R"("chosen_score": 1, "rejected_score": 0})", "u")[0];
  EXPECT_EQ(p.chosen_score, 1.0);
  EXPECT_EQ(p.rejected_score, 0.0);
  EXPECT_EQ(
      rlft::testing::error_of([&] { parse_preferences(head + R"("chosen_score": 1.5})", "u"); }),
      "u:1: \"chosen_score\" must be a probability in [0, 1], got 1.5");
  EXPECT_THROW(parse_preferences(head + R"("rejected_score": 1.0000001})", "u"), Error);
}

// Sequences by hand, tokenizer "ab" (a 0, b 1, BOS 2, EOS 3, PAD 4): rows BOS prompt response
// EOS, right-padded to the longest; the response mask covers the response and its EOS.
TEST(RLHFData, SequenceBatchRowsAndMasksByHand) {
  const models::Tokenizer tok = models::Tokenizer::from_corpus("ab");
  const SequenceBatch b = make_sequence_batch(tok, {"a", "aa"}, {"bb<|eos|>", "b"}, 5);
  EXPECT_EQ(b.tokens.shape(), Shape({2, 5}));
  EXPECT_EQ(b.tokens.to_int_vector(), (std::vector<int64_t>{2, 0, 1, 1, 3, 2, 0, 0, 1, 3}));
  EXPECT_EQ(b.attention_mask.to_vector(), (std::vector<double>{1, 1, 1, 1, 1, 1, 1, 1, 1, 1}));
  EXPECT_EQ(b.response_mask.to_vector(), (std::vector<double>{0, 0, 1, 1, 1, 0, 0, 0, 1, 1}));
  EXPECT_EQ(b.response_lengths, (std::vector<int64_t>{3, 2}));
  const SequenceBatch p = make_sequence_batch(tok, {"a", "a"}, {"b", "bab"}, 6);
  EXPECT_EQ(p.tokens.to_int_vector(), (std::vector<int64_t>{2, 0, 1, 3, 4, 4, 2, 0, 1, 0, 1, 3}));
  EXPECT_EQ(p.attention_mask.to_vector(),
            (std::vector<double>{1, 1, 1, 1, 0, 0, 1, 1, 1, 1, 1, 1}));
  EXPECT_EQ(p.response_mask.to_vector(), (std::vector<double>{0, 0, 1, 1, 0, 0, 0, 0, 1, 1, 1, 1}));
  EXPECT_THROW(make_sequence_batch(tok, {"a"}, {"bab"}, 5), Error);  // 6 tokens
}

// clean_response deletes every special token's text, not only the first.
TEST(RLHFData, CleanResponseDeletesEverySpecialToken) {
  EXPECT_EQ(clean_response("a<|pad|>b<|pad|>c<|bos|>d<|eos|>"), "abcd");
  EXPECT_EQ(clean_response("<|eos|><|eos|>x<|eos|>"), "x");
}

// A clean response has no special token but its one trailing EOS.
TEST(RLHFData, ACleanResponseHasNoSpecialTokenButItsEos) {
  EXPECT_TRUE(is_clean_response("ab"));
  EXPECT_TRUE(is_clean_response("ab<|eos|>"));
  EXPECT_FALSE(is_clean_response("a<|pad|>b"));
  EXPECT_FALSE(is_clean_response("<|bos|>ab<|eos|>"));
  EXPECT_FALSE(is_clean_response("ab<|eos|><|eos|>"));
}

// The ground-truth reward is the logit of the sentiment probability: for "superb" (weight 1.4)
// the score is 2·1.4 = 2.8, for "not superb" 2·(−0.6·1.4) = −1.68.
TEST(RLHFData, GroundTruthRewardIsTheSentimentsLogit) {
  EXPECT_NEAR(ground_truth_reward("review: the acting was", " superb.<|eos|>"), 2.8, 1e-9);
  EXPECT_NEAR(ground_truth_reward("review: the acting was", " not superb."), -1.68, 1e-9);
  EXPECT_NEAR(ground_truth_reward("nothing", " here"), 0.0, 1e-12);
}

// ---- end to end on the reviews task ----------------------------------------------------------
// One tiny SFT policy (1 layer, C 32, context 128) trained once for the suite, pairs labelled by
// the ground truth, then a reward model, DPO and PPO-RLHF, each a few seconds.
class RLHFPipeline : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new std::string(temp_dir("rlhf_pipeline"));
    SFTConfig c = config<SFTConfig>("sft");
    c.task.task = "reviews";
    c.task.train_size = 4000;
    c.task.eval_size = 50;
    c.model = "nano";
    c.block_size = 128;
    c.steps = 300;
    c.batch = 32;
    c.lr = 3e-3;
    c.warmup = 30;
    c.log_every = 100;
    c.eval_every = 300;
    c.eval_examples = 20;
    c.eval_generate = 0;
    c.checkpoint_every = 300;
    train_sft(c);
    PrefsConfig p;
    p.run = *dir_ + "/sft";
    p.pairs = 320;
    p.samples_per_prompt = 2;
    p.deterministic_labels = true;
    p.min_gap =
        0.2;  // the tiny policy's samples often hold no sentiment word: keep informative pairs
    p.out = *dir_ + "/prefs.jsonl";
    p.quiet = true;
    prefs_ = new PrefsResult(generate_preferences(p));
  }
  static void TearDownTestSuite() {
    delete dir_;
    delete prefs_;
  }
  // A quiet run at <dir>/<name>.
  template <typename Config>
  static Config config(const std::string& name) {
    return rlft::testing::config_at<Config>(*dir_, name);
  }
  // DPO from the SFT policy on the fixture's 320 pairs: two epochs of batch 16 at lr 3e-4, no
  // evaluation but the one before and after training.
  static DPOConfig dpo_config(const std::string& name) {
    DPOConfig c = config<DPOConfig>(name);
    c.prefs = *dir_ + "/prefs.jsonl";
    c.init = *dir_ + "/sft";
    c.epochs = 2;
    c.batch = 16;
    c.lr = 3e-4;
    c.eval_every = 0;
    return c;
  }
  static std::string* dir_;
  static PrefsResult* prefs_;
};
std::string* RLHFPipeline::dir_ = nullptr;
PrefsResult* RLHFPipeline::prefs_ = nullptr;

TEST_F(RLHFPipeline, PreferencePairsAreLabelledByTheGroundTruth) {
  ASSERT_EQ(prefs_->pairs.size(), 320u);
  EXPECT_EQ(prefs_->agreement, 1.0);  // deterministic labels
  const std::vector<PreferencePair> back = read_preferences(*dir_ + "/prefs.jsonl");
  ASSERT_EQ(back.size(), 320u);
  EXPECT_EQ(back[7].chosen, prefs_->pairs[7].chosen);
  EXPECT_GE(back[7].chosen_score, back[7].rejected_score + 0.2);
}

TEST_F(RLHFPipeline, DPORaisesTheGroundTruthScore) {
  DPOConfig c = dpo_config("dpo");
  c.eval_samples = 8;
  const DPOResult r = train_dpo(c);
  std::printf(
      "DPO: ground truth %.3f -> %.3f, KL %.2f -> %.2f, held-out accuracy %.3f, loss %.3f -> "
      "%.3f\n",
      r.before.ground_truth, r.after.ground_truth, r.before.kl, r.after.kl, r.heldout_accuracy,
      r.losses.front(), r.losses.back());
  // Seeded: 0.493 -> 0.571 (KL 21.5), and 0.586 (KL 19.8) after kernel changes elsewhere, on
  // this machine; the margin allows other GEMM paths' rounding changing the trajectory.
  EXPECT_GT(r.after.ground_truth, r.before.ground_truth + 0.02);
  EXPECT_GT(r.after.kl, 0.0);
  EXPECT_LT(r.losses.back(), r.losses.front());
  EXPECT_TRUE(fs::exists(*dir_ + "/dpo/checkpoint.safetensors"));
}

// PPO-RLHF must raise what it optimises, the reward model's score of its rollouts, and through
// it the hidden ground truth of samples on the validation prompts, above the SFT model's. The
// tiny policy's samples often hold no sentiment word, so its reward model gets its own 1280 pairs
// (min gap 0.2) rather than the fixture's 320: with 320 its correlation with the ground truth is
// ~0.3 and the ground truth does not follow the reward-model score. Even so the effect is small
// (the reward model here correlates ~0.37 with the ground truth), so the evaluation takes 16
// samples per validation prompt (256 in all) to keep its noise well under the margin.
TEST_F(RLHFPipeline, RewardModelThenPPORaisesTheRewardModelScoreAndTheGroundTruth) {
  PrefsConfig p;
  p.run = *dir_ + "/sft";
  // Four samples per prompt and a ground-truth gap of at least 0.3: measured over PPO seeds
  // 0–6, the ground-truth gain below was +0.024 to +0.041 with these pairs, against +0.014 to
  // +0.046 with two samples per prompt and a gap of 0.2 (two seeds under the 0.02 margin).
  p.pairs = 1280;
  p.samples_per_prompt = 4;
  p.min_gap = 0.3;
  p.out = *dir_ + "/prefs-rm.jsonl";
  p.quiet = true;
  generate_preferences(p);
  RewardModelConfig rc = config<RewardModelConfig>("rm");
  rc.prefs = p.out;
  rc.init = *dir_ + "/sft";
  rc.epochs = 2;
  rc.batch = 16;
  rc.lr = 3e-4;
  rc.lr_schedule = "constant";
  const RewardModelResult rm = train_reward_model(rc);
  std::printf("RM: held-out accuracy %.3f -> %.3f, correlation %.3f\n", rm.evals.front().accuracy,
              rm.evals.back().accuracy, rm.evals.back().correlation);
  // Seeded: 0.664 and 0.33 on 128 held-out pairs on this machine (a sanity check of the setup).
  EXPECT_GE(rm.evals.back().accuracy, 0.58);
  EXPECT_GT(rm.evals.back().correlation, 0.2);

  PPORLHFConfig c = config<PPORLHFConfig>("ppo");
  c.init = *dir_ + "/sft";
  c.reward_model = *dir_ + "/rm";
  // 40 updates at actor lr 2e-4: over PPO seeds 0–7 the ground-truth gain was +0.030 to +0.176
  // (median +0.07, KL 3.1–5.4); 30 updates at 1e-4 gave +0.020 to +0.032 (seeds 0–4), too close
  // to the margin for a test that any change of the pipeline's arithmetic may move.
  c.steps = 40;
  c.batch = 32;
  c.actor_lr = 2e-4;
  c.critic_lr = 1e-3;
  c.eval_every = 0;
  c.eval_samples = 16;
  const PPORLHFResult r = train_ppo_rlhf(c);
  std::printf("PPO: ground truth %.3f -> %.3f, KL %.2f -> %.2f, rm score %.3f -> %.3f\n",
              r.before.ground_truth, r.after.ground_truth, r.before.kl, r.after.kl,
              r.rm_scores.front(), r.rm_scores.back());
  // The reward-model score of the rollouts: mean of the last five updates against the first five.
  double first = 0, last5 = 0;
  for (size_t i = 0; i < 5; ++i)
    first += r.rm_scores[i], last5 += r.rm_scores[r.rm_scores.size() - 1 - i];
  EXPECT_GT(last5 / 5, first / 5 + 0.1);
  // The ground truth on 16 validation prompts x 16 samples (the same sampling seed before and
  // after). Seeded (seed 0): 0.498 -> 0.592 on this machine; the stated margin is 0.02.
  EXPECT_GT(r.after.ground_truth, r.before.ground_truth + 0.02);
  EXPECT_GT(r.kls.back(), 0.0);
  const json::Value last = rlft::testing::metrics_of(*dir_ + "/ppo").back();
  for (const char* k :
       {"rm_score", "ground_truth", "kl", "entropy", "clip_frac_low", "critic_loss",
        "actor_grad_norm", "critic_grad_norm", "explained_variance", "response_length",
        "time_generation", "time_experience", "time_training", "val_ground_truth", "val_kl",
        "approx_kl", "approx_kl_k1", "samples_per_second"})
    EXPECT_TRUE(last.contains(k)) << k;
  EXPECT_GT(last.at("samples_per_second").as_double(), 0.0);
  ASSERT_EQ(r.time_generation.size(), 40u);
}

// DPO resume: a run stopped after 20 steps (checkpoint: weights, Adam state, step) and resumed
// takes the same 24 steps as a straight run, across the epoch boundary at step 18: the weights
// and Adam's moments agree exactly.
TEST_F(RLHFPipeline, DPOStoppedAndResumedEqualsAStraightRun) {
  DPOConfig c = dpo_config("dpo-resume");
  c.max_steps = 24;
  c.eval_samples = 1;
  c.checkpoint_every = 7;
  const auto runs = rlft::testing::stop_and_resume(train_dpo, c, "dpo-straight", "dpo-resumed", 20);
  ASSERT_EQ(runs.straight.losses.size(), 24u);
  ASSERT_EQ(runs.stopped.losses.size(), 20u);
  rlft::testing::expect_losses_continue(runs.resumed.losses, runs.straight.losses, 20, 4);
  rlft::testing::expect_same_checkpoint(*dir_ + "/dpo-straight/checkpoint.safetensors",
                                        *dir_ + "/dpo-resumed/checkpoint.safetensors");
  // Nothing to resume is an error naming the checkpoint.
  c = runs.config;
  c.name = "dpo-none";
  EXPECT_THROW(train_dpo(c), Error);
}

// RRHF smoke run: k = 4 samples per prompt ranked by the ground truth; the run's files exist and
// the loss is finite.
TEST_F(RLHFPipeline, RRHFSmokeRun) {
  RRHFConfig c = config<RRHFConfig>("rrhf");
  c.init = *dir_ + "/sft";
  c.scorer = "ground_truth";
  c.steps = 4;
  c.prompts_per_step = 4;
  c.log_every = 2;
  c.eval_every = 0;
  c.eval_samples = 1;
  const RRHFResult r = train_rrhf(c);
  ASSERT_EQ(r.losses.size(), 4u);
  for (double l : r.losses) EXPECT_TRUE(std::isfinite(l));
  EXPECT_TRUE(fs::exists(*dir_ + "/rrhf/checkpoint.safetensors"));
  const std::vector<json::Value> rows = rlft::testing::metrics_of(*dir_ + "/rrhf");
  ASSERT_EQ(rows.size(), 2u);
  for (const json::Value& row : rows) EXPECT_GT(row.at("grad_norm").as_double(), 0.0);  // clip 1
  c.scorer = "rm";  // needs --reward-model
  EXPECT_THROW(train_rrhf(c), Error);
}

// DPO on cuda:0 against the CPU, from a small reviews SFT start and pairs made from the task's
// own examples (the losses' agreement is the point, not the pairs' quality). The policy and the
// reference are both on the device; the evaluations at the start and the end sample on it from
// the host stream, so they draw the same responses. Float32 rounding (≈1e-6 relative) grown
// over 6 Adam steps: 1e-4 relative. Skipped without a GPU.
TEST(DPOCuda, StepsMatchTheCpu) {
  RLFT_SKIP_WITHOUT_GPU();
  const std::string dir = temp_dir("dpo_cuda");
  SFTConfig s = rlft::testing::tiny_sft_config(dir, "sft");
  s.steps = 30;
  s.warmup = 5;
  s.log_every = 30;
  s.eval_every = 30;
  s.checkpoint_every = 30;
  train_sft(s);
  write_preferences(dir + "/prefs.jsonl", rlft::testing::example_pairs(s.task, 60));
  DPOConfig c;
  c.prefs = dir + "/prefs.jsonl";
  c.init = dir + "/sft";
  c.epochs = 1;
  c.batch = 8;
  c.lr = 3e-4;
  c.max_steps = 6;
  c.eval_every = 0;
  c.eval_samples = 1;
  c.out_dir = dir;
  c.quiet = true;
  c.name = "cpu";
  const DPOResult cpu = train_dpo(c);
  c.name = "gpu";
  c.device = "cuda";
  const DPOResult gpu = train_dpo(c);
  ASSERT_EQ(gpu.losses.size(), cpu.losses.size());
  for (size_t i = 0; i < cpu.losses.size(); ++i)
    EXPECT_NEAR(gpu.losses[i], cpu.losses[i], 1e-6 + 1e-4 * std::abs(cpu.losses[i]))
        << "step " << i;
  EXPECT_EQ(gpu.before.response_length, cpu.before.response_length);
  EXPECT_NEAR(gpu.before.ground_truth, cpu.before.ground_truth, 1e-9);
  EXPECT_NEAR(gpu.before.kl, cpu.before.kl, 1e-6 + 1e-4 * std::abs(cpu.before.kl));
  EXPECT_NEAR(gpu.after.kl, cpu.after.kl, 1e-5 + 1e-3 * std::abs(cpu.after.kl));
}

// ---- rlft experiment frontier: the job list, the points read back, the outputs ----------------

namespace {
bool has_pair(const std::vector<std::string>& args, const std::string& flag, const std::string& v) {
  for (size_t i = 0; i + 1 < args.size(); ++i)
    if (args[i] == flag && args[i + 1] == v) return true;
  return false;
}
}  // namespace

TEST(Frontier, JobsFormStagesFromOneSFTModelAndOnePreferenceFile) {
  exp::FrontierConfig c;
  c.out_dir = "x";
  const auto stages = exp::frontier_jobs(c);
  ASSERT_EQ(stages.size(), 4u);  // sft; prefs; rm + DPO; PPO
  ASSERT_EQ(stages[0].size(), 1u);
  EXPECT_EQ(stages[0][0].name, "sft");
  EXPECT_TRUE(has_pair(stages[0][0].args, "--steps", "1000"));
  EXPECT_EQ(stages[0][0].done_path, "x/logs/sft.done");
  EXPECT_TRUE(has_pair(stages[1][0].args, "--out", "x/prefs.jsonl"));
  ASSERT_EQ(stages[2].size(), 5u);
  EXPECT_EQ(stages[2][0].name, "rm");
  EXPECT_EQ(stages[2][1].name, "dpo-beta0.05");
  EXPECT_EQ(stages[2][4].name, "dpo-beta5");
  for (size_t i = 1; i < 5; ++i) {
    EXPECT_TRUE(has_pair(stages[2][i].args, "--prefs", "x/prefs.jsonl"));
    EXPECT_TRUE(has_pair(stages[2][i].args, "--init", "x/sft"));
  }
  ASSERT_EQ(stages[3].size(), 3u);
  EXPECT_EQ(stages[3][1].name, "ppo-klctl0.1");
  EXPECT_TRUE(has_pair(stages[3][1].args, "--reward-model", "x/rm"));
  EXPECT_TRUE(has_pair(stages[3][1].args, "--kl-ctl", "0.1"));
  EXPECT_TRUE(has_pair(stages[3][1].args, "--init", "x/sft"));

  // Reused models: only the DPO and PPO stages remain, pointing at them.
  c.sft = "runs/s";
  c.prefs = "p.jsonl";
  c.reward_model = "runs/r";
  const auto reuse = exp::frontier_jobs(c);
  ASSERT_EQ(reuse.size(), 2u);
  EXPECT_EQ(reuse[0].size(), 4u);
  EXPECT_TRUE(has_pair(reuse[0][0].args, "--prefs", "p.jsonl"));
  EXPECT_TRUE(has_pair(reuse[1][0].args, "--reward-model", "runs/r"));
  EXPECT_TRUE(has_pair(reuse[1][0].args, "--init", "runs/s"));

  c.betas = {0.1, -1};
  EXPECT_THROW(exp::frontier_jobs(c), Error);
  c.betas.clear();
  c.kl_ctls.clear();
  EXPECT_THROW(exp::frontier_jobs(c), Error);
}

// Two values of one list that give the same run name (0.1 and 0.10) would be one run: refused
// when the jobs are planned, naming the list and the value.
TEST(Frontier, AValueListedTwiceIsRefused) {
  exp::FrontierConfig c;
  c.out_dir = "x";
  c.betas = {0.1, 0.3, 0.10};
  EXPECT_EQ(rlft::testing::error_of([&] { exp::frontier_jobs(c); }),
            "rlft experiment frontier: --betas: 0.1 is listed twice");
  c.betas = {0.1};
  c.kl_ctls = {0.05, 0.050};
  EXPECT_EQ(rlft::testing::error_of([&] { exp::frontier_jobs(c); }),
            "rlft experiment frontier: --kl-ctls: 0.05 is listed twice");
}

// --device reaches every job of every stage; "cpu" (the default) adds nothing, so CPU command
// lines stay as they were; a bad device is refused before any job exists.
TEST(Frontier, DeviceReachesEveryJob) {
  exp::FrontierConfig c;
  c.out_dir = "x";
  for (const auto& stage : exp::frontier_jobs(c))
    for (const exp::Job& j : stage)
      EXPECT_EQ(std::find(j.args.begin(), j.args.end(), "--device"), j.args.end()) << j.name;
  std::vector<exp::Job> jobs = {exp::logged_job("l", "a", {"lm", "sft"}),
                                exp::logged_job("l", "b", {"lm", "eval", "--run", "r"})};
  exp::put_on_device(jobs, "cuda:1");
  for (const exp::Job& j : jobs) {
    EXPECT_TRUE(has_pair(j.args, "--device", "cuda:1")) << j.name;
    EXPECT_EQ(j.args.back(), "cuda:1");
  }
  c.device = "tpu";
  EXPECT_NE(rlft::testing::error_of([&] { exp::frontier_jobs(c); }).find("unknown device 'tpu'"),
            std::string::npos);
  const std::string no_gpu = rlft::testing::no_gpu_reason();
  c.device = "cuda";
  if (no_gpu.empty()) {  // a GPU answers: every job carries the flag
    for (const auto& stage : exp::frontier_jobs(c))
      for (const exp::Job& j : stage) EXPECT_TRUE(has_pair(j.args, "--device", "cuda")) << j.name;
  } else {
    EXPECT_NE(rlft::testing::error_of([&] { exp::frontier_jobs(c); }).find("cuda"),
              std::string::npos);
  }
}

TEST(Frontier, PointsAreTheEvaluationRowsOfEachMethod) {
  const std::vector<json::Value> dpo = json::parse_jsonl(
      "{\"step\":0,\"kl\":0.0,\"ground_truth\":0.5}\n"
      "{\"step\":10,\"loss\":0.6}\n"
      "{\"step\":20,\"loss\":0.5,\"kl\":3.5,\"ground_truth\":0.7}\n");
  const auto d = exp::frontier_points("DPO", 0.1, "dpo-beta0.1", dpo);
  ASSERT_EQ(d.size(), 2u);
  EXPECT_EQ(d[1].step, 20);
  EXPECT_DOUBLE_EQ(d[1].kl, 3.5);
  EXPECT_DOUBLE_EQ(d[1].ground_truth, 0.7);
  // PPO's rollout kl / ground_truth are training-prompt statistics: only val_* count.
  const std::vector<json::Value> ppo = json::parse_jsonl(
      "{\"step\":0,\"val_kl\":0.0,\"val_ground_truth\":0.5}\n"
      "{\"step\":1,\"kl\":0.1,\"ground_truth\":0.6}\n"
      "{\"step\":2,\"kl\":0.2,\"ground_truth\":0.6,\"val_kl\":0.3,\"val_ground_truth\":0.55}\n");
  const auto p = exp::frontier_points("PPO", 0.5, "ppo-klctl0.5", ppo);
  ASSERT_EQ(p.size(), 2u);
  EXPECT_DOUBLE_EQ(p[1].kl, 0.3);
  EXPECT_DOUBLE_EQ(p[1].ground_truth, 0.55);
  EXPECT_EQ(p[1].method, "PPO");
  EXPECT_THROW(exp::frontier_points("SFT", 0, "x", ppo), Error);
}

TEST(Frontier, ParetoFrontKeepsTheBestGroundTruthAtEachKL) {
  std::vector<exp::FrontierPoint> pts;
  for (auto [kl, gt] : std::vector<std::pair<double, double>>{
           {5, 0.7}, {0, 0.5}, {2, 0.6}, {3, 0.55}, {8, 0.65}, {9, 0.9}, {2, 0.62}})
    pts.push_back({"DPO", 0.1, "r", 0, kl, gt});
  const auto f = exp::pareto_front(pts);
  ASSERT_EQ(f.size(), 4u);
  EXPECT_DOUBLE_EQ(f[0].kl, 0);
  EXPECT_DOUBLE_EQ(f[1].ground_truth, 0.62);
  EXPECT_DOUBLE_EQ(f[2].kl, 5);
  EXPECT_DOUBLE_EQ(f[3].kl, 9);
}

// A point no better than one at a smaller KL is not on the frontier, equal ground truth included.
TEST(Frontier, AnEqualGroundTruthAtMoreKLIsNotOnTheFront) {
  std::vector<exp::FrontierPoint> pts;
  for (auto [kl, gt] : std::vector<std::pair<double, double>>{{3, 0.5}, {1, 0.5}, {4, 0.6}})
    pts.push_back({"DPO", 0.1, "r", 0, kl, gt});
  const auto f = exp::pareto_front(pts);
  ASSERT_EQ(f.size(), 2u);
  EXPECT_DOUBLE_EQ(f[0].kl, 1);
  EXPECT_DOUBLE_EQ(f[1].kl, 4);
}

// The KL bins are [lo, hi): a point at an edge is in the bin that starts there. The first bin
// is open below (a sampled KL can be slightly negative).
TEST(Frontier, KLBinsIncludeTheirLowerEdgeOnly) {
  std::vector<exp::FrontierPoint> pts = {{"DPO", 0.1, "r", 0, 1.0, 0.4},
                                         {"DPO", 0.1, "r", 1, -0.5, 0.3}};
  const std::string md = exp::frontier_markdown(pts, {0, 1, 2}, "");
  EXPECT_NE(md.find("| < 1 | 0.300 |\n| [1, 2) | 0.400 |\n| ≥ 2 | — |\n"), std::string::npos) << md;
}

// A row with only one of KL and ground truth is no point (a log row that happens to have one).
TEST(Frontier, ARowNeedsBothKLAndGroundTruth) {
  const std::vector<json::Value> rows = json::parse_jsonl(
      "{\"step\":1,\"kl\":1.0}\n{\"step\":2,\"ground_truth\":0.6}\n"
      "{\"step\":3,\"kl\":2.0,\"ground_truth\":0.7}\n");
  const auto d = exp::frontier_points("DPO", 0.1, "dpo-beta0.1", rows);
  ASSERT_EQ(d.size(), 1u);
  EXPECT_EQ(d[0].step, 3);
}

// kl_ctl 0 (no KL penalty) is a run of the sweep like any other; a negative one is refused.
TEST(Frontier, AZeroKLCoefficientIsARun) {
  exp::FrontierConfig c;
  c.out_dir = "x";
  c.kl_ctls = {0};
  c.betas.clear();
  const auto stages = exp::frontier_jobs(c);
  ASSERT_FALSE(stages.empty());
  EXPECT_EQ(stages.back()[0].name, "ppo-klctl0");
  EXPECT_TRUE(has_pair(stages.back()[0].args, "--kl-ctl", "0"));
  c.kl_ctls = {-0.1};
  EXPECT_THROW(exp::frontier_jobs(c), Error);
}

TEST(Frontier, WritesCsvSvgAndMarkdown) {
  const std::string dir = temp_dir("frontier_outputs");
  std::vector<exp::FrontierPoint> pts = {{"PPO", 0.1, "ppo-klctl0.1", 0, 0.0, 0.5},
                                         {"PPO", 0.1, "ppo-klctl0.1", 15, 1.5, 0.6},
                                         {"DPO", 0.1, "dpo-beta0.1", 0, 0.0, 0.5},
                                         {"DPO", 0.1, "dpo-beta0.1", 50, 12.0, 0.8}};
  exp::write_frontier_outputs(dir, pts, "# test\n");
  const std::string csv = fs::read_file(dir + "/frontier.csv");
  EXPECT_EQ(csv.substr(0, csv.find('\n')), "method,param,run,step,kl,ground_truth");
  EXPECT_NE(csv.find("DPO,0.1,dpo-beta0.1,50,12,0.8\n"), std::string::npos);
  const std::string md = fs::read_file(dir + "/results.md");
  EXPECT_NE(md.find("| PPO | kl_ctl 0.1 | ppo-klctl0.1 | 2 | 15 | 1.50 | 0.600 | 0.600 (1.50) |"),
            std::string::npos)
      << md;
  EXPECT_NE(md.find("| [10, 20) | — | 0.800 |"), std::string::npos) << md;
  const std::string svg = fs::read_file(dir + "/frontier.svg");
  EXPECT_NE(svg.find("DPO frontier"), std::string::npos);
  EXPECT_NE(svg.find("<circle"), std::string::npos);  // the points are dots
}
