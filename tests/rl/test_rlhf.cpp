// Tests of the RLHF algorithms (rl/llm/reward_model, dpo, rrhf, ppo_rlhf, rlhf_data): every
// loss and its gradient against values computed by hand (the Python one-liners in the comments
// reproduce them), DeepSpeed-Chat's compute_rewards / critic loss / GAE on fixed inputs,
// malformed preference files, and a seeded end-to-end pipeline on the reviews task
// (SFT → preference pairs → reward model → DPO and PPO-RLHF) from a tiny model trained here.
#include <gtest/gtest.h>

#include "test_util.h"

#include <cmath>
#include <filesystem>

#include "engine/error.h"
#include "engine/fs.h"
#include "engine/ops.h"
#include "rl/llm/dpo.h"
#include "rl/llm/ppo_rlhf.h"
#include "rl/llm/reward_model.h"
#include "rl/llm/rlhf_data.h"
#include "rl/llm/rrhf.h"
#include "rl/llm/sft.h"

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

// The actor loss is the token mean of the clipped surrogate: ratio 1 gives −mean(A).
TEST(RLHFLosses, ActorLossIsTokenMeanOfTheClippedSurrogate) {
  Tensor lp = Tensor::from_vector(std::vector<double>{0, -1.0, -2.0, 0, -1.0, 0}, {2, 3});
  lp.set_requires_grad(true);
  const Tensor old = Tensor::from_vector(std::vector<double>{0, -1.0, -2.0, 0, -1.0, 0}, {2, 3});
  const Tensor adv = Tensor::from_vector(std::vector<double>{0, 1.0, 2.0, 0, -3.0, 0}, {2, 3});
  const Tensor m = Tensor::from_vector(std::vector<double>{0, 1, 1, 0, 1, 0}, {2, 3});
  const Tensor l = actor_loss(lp, old, adv, m, 0.2);
  EXPECT_NEAR(l.item(), -(1.0 + 2.0 - 3.0) / 3.0, 1e-12);
  l.backward();
  expect_near_all(lp.grad().to_vector(), {0, -1.0 / 3, -2.0 / 3, 0, 1.0, 0}, 1e-12);
}

TEST(RLHFLosses, AdaptiveKLController) {
  AdaptiveKLController c{0.1, 6.0, 10000};
  c.update(12.0, 100);  // error clipped to +0.2: ×(1 + 0.2·100/10000)
  EXPECT_NEAR(c.value, 0.1 * 1.002, 1e-15);
  c.update(6.0, 100);  // on target: unchanged
  EXPECT_NEAR(c.value, 0.1 * 1.002, 1e-15);
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
  EXPECT_EQ(back[1].prompt, "p \"quoted\"\n");
  EXPECT_TRUE(std::isnan(back[1].chosen_score));

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
  // Writing into a missing directory is an error and leaves no file behind.
  EXPECT_THROW(write_preferences(dir + "/missing/p.jsonl", pairs), Error);
  EXPECT_FALSE(fs::exists(dir + "/missing/p.jsonl"));
}

// ---- end to end on the reviews task ----------------------------------------------------------
// One tiny SFT policy (1 layer, C 32, context 128) trained once for the suite, pairs labelled by
// the ground truth, then a reward model, DPO and PPO-RLHF, each a few seconds.
class RLHFPipeline : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new std::string(temp_dir("rlhf_pipeline"));
    SFTConfig c;
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
    c.out_dir = *dir_;
    c.name = "sft";
    c.quiet = true;
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
  DPOConfig c;
  c.prefs = *dir_ + "/prefs.jsonl";
  c.init = *dir_ + "/sft";
  c.epochs = 2;
  c.batch = 16;
  c.lr = 3e-4;
  c.eval_every = 0;
  c.eval_samples = 8;
  c.out_dir = *dir_;
  c.name = "dpo";
  c.quiet = true;
  const DPOResult r = train_dpo(c);
  std::printf(
      "DPO: ground truth %.3f -> %.3f, KL %.2f -> %.2f, held-out accuracy %.3f, loss %.3f -> "
      "%.3f\n",
      r.before.ground_truth, r.after.ground_truth, r.before.kl, r.after.kl, r.heldout_accuracy,
      r.losses.front(), r.losses.back());
  // Seeded: 0.493 -> 0.571 (KL 21.5) on this machine; the margin allows other GEMM paths'
  // rounding changing the trajectory.
  EXPECT_GT(r.after.ground_truth, r.before.ground_truth + 0.02);
  EXPECT_GT(r.after.kl, 0.0);
  EXPECT_LT(r.losses.back(), r.losses.front());
  EXPECT_TRUE(fs::exists(*dir_ + "/dpo/checkpoint.safetensors"));
}

TEST_F(RLHFPipeline, RewardModelThenPPORaisesItsReward) {
  RewardModelConfig rc;
  rc.prefs = *dir_ + "/prefs.jsonl";
  rc.init = *dir_ + "/sft";
  rc.epochs = 3;
  rc.batch = 16;
  rc.lr = 1e-3;
  rc.out_dir = *dir_;
  rc.name = "rm";
  rc.quiet = true;
  const RewardModelResult rm = train_reward_model(rc);
  std::printf("RM: held-out accuracy %.3f -> %.3f, correlation %.3f\n", rm.evals.front().accuracy,
              rm.evals.back().accuracy, rm.evals.back().correlation);
  EXPECT_GE(rm.evals.back().accuracy, 0.7);
  EXPECT_GT(rm.evals.back().correlation, 0.25);

  PPORLHFConfig c;
  c.init = *dir_ + "/sft";
  c.reward_model = *dir_ + "/rm";
  c.steps = 15;
  c.batch = 32;
  c.actor_lr = 3e-4;
  c.critic_lr = 1e-3;
  c.eval_every = 0;
  c.eval_samples = 8;
  c.out_dir = *dir_;
  c.name = "ppo";
  c.quiet = true;
  const PPORLHFResult r = train_ppo_rlhf(c);
  std::printf("PPO: ground truth %.3f -> %.3f, KL %.2f -> %.2f, rm score %.3f -> %.3f\n",
              r.before.ground_truth, r.after.ground_truth, r.before.kl, r.after.kl,
              r.rm_scores.front(), r.rm_scores.back());
  // PPO must raise what it optimises, the reward model's score of its rollouts (mean of the last
  // five updates against the first five). The tiny reward model (held-out accuracy ~0.8,
  // correlation ~0.4 with the ground truth) is too weak for the ground truth to follow reliably
  // in 15 updates, so the ground truth is printed, not asserted (docs/rlhf.md has a real run).
  double first = 0, last5 = 0;
  for (size_t i = 0; i < 5; ++i)
    first += r.rm_scores[i], last5 += r.rm_scores[r.rm_scores.size() - 1 - i];
  EXPECT_GT(last5 / 5, first / 5 + 0.1);
  EXPECT_GT(r.kls.back(), 0.0);
  const json::Value last = json::parse_jsonl(fs::read_file(*dir_ + "/ppo/metrics.jsonl")).back();
  for (const char* k : {"rm_score", "ground_truth", "kl", "entropy", "clip_frac_low", "critic_loss",
                        "explained_variance", "response_length", "time_generation",
                        "time_experience", "time_training"})
    EXPECT_TRUE(last.contains(k)) << k;
}

// RRHF smoke run: k = 4 samples per prompt ranked by the ground truth; the run's files exist and
// the loss is finite.
TEST_F(RLHFPipeline, RRHFSmokeRun) {
  RRHFConfig c;
  c.init = *dir_ + "/sft";
  c.scorer = "ground_truth";
  c.steps = 4;
  c.prompts_per_step = 4;
  c.log_every = 2;
  c.eval_every = 0;
  c.eval_samples = 1;
  c.out_dir = *dir_;
  c.name = "rrhf";
  c.quiet = true;
  const RRHFResult r = train_rrhf(c);
  ASSERT_EQ(r.losses.size(), 4u);
  for (double l : r.losses) EXPECT_TRUE(std::isfinite(l));
  EXPECT_TRUE(fs::exists(*dir_ + "/rrhf/checkpoint.safetensors"));
  EXPECT_EQ(json::parse_jsonl(fs::read_file(*dir_ + "/rrhf/metrics.jsonl")).size(), 2u);
  c.scorer = "rm";  // needs --reward-model
  EXPECT_THROW(train_rrhf(c), Error);
}
