// Tiny runs of the reward model, RRHF and PPO-RLHF for what their metrics and edges promise
// (rl/llm/reward_model, rrhf, ppo_rlhf): the logged gradient norms are the true global norms
// before clipping, with clipping off and on; RRHF at a context that leaves its candidates
// exactly the room for a response and its EOS; the reward model's option messages. The models
// are 1-layer SFT runs of a few steps: these tests are about the runs' bookkeeping, not about
// learning (test_rlhf.cpp has the seeded learning tests).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <memory>

#include "engine/error.h"
#include "engine/fs.h"
#include "engine/json.h"
#include "models/tokenizer.h"
#include "rl/llm/lm.h"
#include "rl/llm/ppo_rlhf.h"
#include "rl/llm/reward_model.h"
#include "rl/llm/rlhf_data.h"
#include "rl/llm/rrhf.h"
#include "rl/llm/sft.h"
#include "rl/llm/tasks/task.h"
#include "run_metrics.h"
#include "test_util.h"
#include "tiny_lm_runs.h"
#include "weight_decay_check.h"

using namespace rlft;
using namespace rlft::llm;

namespace {

using rlft::testing::error_of;
using rlft::testing::metrics_of;
using rlft::testing::temp_dir;

using rlft::testing::tiny_reviews;

// A few SFT steps of a 1-layer model with context `block_size` (examples longer than it are
// cut by the SFT batches).
void tiny_sft(const std::string& dir, const std::string& name, int64_t block_size,
              const TaskConfig& task = tiny_reviews()) {
  train_sft(rlft::testing::tiny_sft_config(dir, name, block_size, task));
}

// Tokens of the longest prompt of `split` (BOS not counted).
int64_t longest_prompt(const TaskConfig& config, Split split) {
  const std::unique_ptr<Task> task = make_task(config);
  const models::Tokenizer tok = models::Tokenizer::make("char", task->alphabet());
  int64_t n = 0;
  for (const std::string& p : task->prompts(split))
    n = std::max<int64_t>(n, int64_t(tok.encode(p).size()));
  return n;
}

// A logged gradient norm: present, finite and positive (a real norm, never a 0 stand-in).
double logged_norm(const json::Value& row, const char* key) {
  EXPECT_TRUE(row.contains(key)) << key << " missing from " << row.dump();
  if (!row.contains(key)) return NAN;
  const double g = row.at(key).as_double();
  EXPECT_TRUE(std::isfinite(g)) << key << " " << g;
  EXPECT_GT(g, 0.0) << key;
  return g;
}

// The clip used where clipping is on: far under any norm these runs reach, so every step is
// clipped and a logged norm above it is the norm before clipping.
constexpr double kTinyClip = 1e-4;

}  // namespace

// One SFT run with a 128-token context, the reward model's pairs (two of the task's own
// reviews of one opening per pair: the pairs' quality is not the point) and a reward model
// trained without clipping, shared by the tests.
class RLHFTinyRuns : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new std::string(temp_dir("rlhf_tiny_runs"));
    tiny_sft(*dir_, "sft", 128);
    write_preferences(*dir_ + "/prefs.jsonl", rlft::testing::example_pairs(tiny_reviews(), 40));
    train_reward_model(rm_config("rm", 0.0));
  }
  static void TearDownTestSuite() { delete dir_; }

  // Two epochs of one step each (batch 64 > the 36 training pairs): the first step of a run
  // with clipping sees exactly the gradient of the run without.
  static RewardModelConfig rm_config(const std::string& name, double grad_clip) {
    RewardModelConfig c = rlft::testing::tiny_reward_model_config(*dir_, name, *dir_ + "/sft",
                                                                  *dir_ + "/prefs.jsonl");
    c.grad_clip = grad_clip;
    return c;
  }
  static RRHFConfig rrhf_config(const std::string& name, double grad_clip) {
    RRHFConfig c = rlft::testing::config_at<RRHFConfig>(*dir_, name);
    c.init = *dir_ + "/sft";
    c.scorer = "ground_truth";
    c.steps = 3;
    c.prompts_per_step = 2;
    c.k = 2;
    c.lr = 1e-3;
    c.grad_clip = grad_clip;
    c.log_every = 2;  // rows at steps 2 and 3 (the last): step 1 is not logged
    c.eval_every = 0;
    c.eval_samples = 1;
    return c;
  }
  static PPORLHFConfig ppo_config(const std::string& name, double grad_clip) {
    PPORLHFConfig c = rlft::testing::config_at<PPORLHFConfig>(*dir_, name);
    c.init = *dir_ + "/sft";
    c.reward_model = *dir_ + "/rm";
    c.steps = 2;
    c.batch = 4;
    c.grad_clip = grad_clip;
    c.eval_every = 0;
    c.eval_samples = 1;
    return c;
  }
  static std::string* dir_;
};
std::string* RLHFTinyRuns::dir_ = nullptr;

// grad_norm of every epoch row: without clipping measured on the epoch's last step; with a
// clip far under it, the norm before clipping, the same as the unclipped run's at epoch 1
// (one step per epoch, so both runs' first steps are the same computation).
TEST_F(RLHFTinyRuns, RewardModelLogsTheGradientNormBeforeClipping) {
  const std::vector<json::Value> off = metrics_of(*dir_ + "/rm");
  train_reward_model(rm_config("rm-clipped", kTinyClip));
  const std::vector<json::Value> on = metrics_of(*dir_ + "/rm-clipped");
  ASSERT_EQ(off.size(), 2u);
  ASSERT_EQ(on.size(), 2u);
  for (size_t i = 0; i < 2; ++i) {
    EXPECT_EQ(on[i].at("step").as_int(), int64_t(i + 1)) << "one step per epoch";
    logged_norm(off[i], "grad_norm");
    EXPECT_GT(logged_norm(on[i], "grad_norm"), 100 * kTinyClip) << "epoch " << i + 1;
  }
  EXPECT_DOUBLE_EQ(on[0].at("grad_norm").as_double(), off[0].at("grad_norm").as_double());
}

// The reward model's --weight-decay reaches matrices and embeddings only (as lm sft's groups):
// one step (one epoch, the 36 training pairs in one batch) at a constant lr 1e-3 with weight
// decay 500 (lr·wd = 0.5) and no clipping, from the SFT run's weights; the new reward head is
// not in them and is skipped (weight_decay_check.h has the bound).
TEST_F(RLHFTinyRuns, RewardModelWeightDecayAppliesToMatricesOnly) {
  RewardModelConfig c = rm_config("rm-weight-decay", 0.0);
  c.epochs = 1;
  c.lr_schedule = "constant";
  c.weight_decay = 500;
  train_reward_model(c);
  const LoadedModel before = load_policy(*dir_ + "/sft");
  const LoadedModel after = load_reward_model(*dir_ + "/rm-weight-decay");
  rlft::testing::expect_first_adamw_step_decays_matrices_only(*before.model, *after.model, c.lr,
                                                              c.weight_decay);
}

// RRHF logs grad_norm on its logged steps; with clipping on it is the norm before clipping.
// Step 1 is not logged, so the runs' first rows (step 2) differ by the clipped step 1; step 1
// itself is compared through a run that logs it.
TEST_F(RLHFTinyRuns, RRHFLogsTheGradientNormBeforeClipping) {
  train_rrhf(rrhf_config("rrhf-noclip", 0.0));
  const std::vector<json::Value> off = metrics_of(*dir_ + "/rrhf-noclip");
  ASSERT_EQ(off.size(), 2u);
  EXPECT_EQ(off[0].at("step").as_int(), 2);
  EXPECT_EQ(off[1].at("step").as_int(), 3);
  for (const json::Value& row : off) logged_norm(row, "grad_norm");

  RRHFConfig c = rrhf_config("rrhf-noclip-1", 0.0);
  c.steps = 1;
  train_rrhf(c);
  c.name = "rrhf-clip-1";
  c.grad_clip = kTinyClip;
  train_rrhf(c);
  const json::Value a = metrics_of(*dir_ + "/rrhf-noclip-1").at(0),
                    b = metrics_of(*dir_ + "/rrhf-clip-1").at(0);
  EXPECT_GT(logged_norm(b, "grad_norm"), 100 * kTinyClip);
  EXPECT_DOUBLE_EQ(b.at("grad_norm").as_double(), logged_norm(a, "grad_norm"));
  EXPECT_DOUBLE_EQ(b.at("loss").as_double(), a.at("loss").as_double()) << "the same step 1";
}

// PPO-RLHF logs actor_grad_norm and critic_grad_norm on every update (the step-0 row holds only
// the SFT policy's evaluation); with clipping on they are the norms before clipping. The
// critic's step-1 gradient does not depend on the actor's update (its loss reads only the
// critic and the rollout), so both of the clipped run's step-1 norms equal the unclipped run's.
TEST_F(RLHFTinyRuns, PPORLHFLogsActorAndCriticGradientNormsBeforeClipping) {
  train_ppo_rlhf(ppo_config("ppo-noclip", 0.0));
  train_ppo_rlhf(ppo_config("ppo-clip", kTinyClip));
  const std::vector<json::Value> off = metrics_of(*dir_ + "/ppo-noclip"),
                                 on = metrics_of(*dir_ + "/ppo-clip");
  ASSERT_EQ(off.size(), 3u);
  ASSERT_EQ(on.size(), 3u);
  EXPECT_FALSE(off[0].contains("actor_grad_norm")) << "step 0 has no update";
  for (const char* key : {"actor_grad_norm", "critic_grad_norm"}) {
    for (size_t i = 1; i < 3; ++i) {
      logged_norm(off[i], key);
      EXPECT_GT(logged_norm(on[i], key), 100 * kTinyClip) << key << " step " << i;
    }
    EXPECT_DOUBLE_EQ(on[1].at(key).as_double(), off[1].at(key).as_double()) << key;
  }
  // Several minibatches and epochs: the norm of the update's last minibatch step.
  PPORLHFConfig c = ppo_config("ppo-minibatches", 0.0);
  c.steps = 1;
  c.minibatches = 2;
  c.ppo_epochs = 2;
  train_ppo_rlhf(c);
  const json::Value row = metrics_of(*dir_ + "/ppo-minibatches").back();
  logged_norm(row, "actor_grad_norm");
  logged_norm(row, "critic_grad_norm");
}

// --whiten-advantages (off by default, ALGORITHMS.md §4) standardises the advantages over the
// response tokens: mean 0 there. With one epoch of one minibatch the actor's only step evaluates
// the sampling policy itself (ratio 1), so its logged loss is the token mean of −A: 0 with
// whitening, and the raw advantages' (not 0) without.
TEST_F(RLHFTinyRuns, WhiteningIsAppliedOnlyWhenAskedFor) {
  auto actor_loss = [](const std::string& name, bool whiten) {
    PPORLHFConfig c = ppo_config(name, 0.0);
    c.steps = 1;
    c.whiten_advantages = whiten;
    train_ppo_rlhf(c);
    return metrics_of(*dir_ + "/" + name).back().at("actor_loss").as_double();
  };
  const double raw = actor_loss("ppo-raw-adv", false), white = actor_loss("ppo-white-adv", true);
  EXPECT_NEAR(white, 0.0, 1e-4);
  EXPECT_GT(std::abs(raw), 1e-2) << raw;
}

// RRHF re-tokenizes each candidate as BOS prompt response EOS to score and train on it, so a
// candidate cut at the context needs one token for its EOS: generation stops one token short
// of the room. The SFT model's context here leaves the longest training prompt a room of
// exactly 2 (a 1-token response and its EOS), and every training prompt is drawn in the one
// step; the model is barely trained, so nearly every candidate runs to the limit. Before the
// fix, candidates took the whole room and make_sequence_batch refused the longest prompts' rows
// ("… tokens, more than the context"). A context with a room of 1 has no place for a response
// and its EOS: an error before the run's first write.
TEST(RRHFContext, CandidatesLeaveRoomForTheirEOS) {
  const std::string dir = temp_dir("rrhf_context");
  // The evaluations sample on the validation prompts, which need room of their own: data seed 1
  // puts the longest openings (30 characters) in the training split, the longest validation
  // one has 26.
  const TaskConfig task = tiny_reviews(1);
  const int64_t lt = longest_prompt(task, Split::train),
                lv = longest_prompt(task, Split::validation);
  ASSERT_LE(lv, lt) << "the tight contexts would not fit a validation prompt";
  tiny_sft(dir, "sft-room2", lt + 1 + 2, task);  // BOS + longest prompt + 2
  const size_t n_prompts = make_task(task)->prompts(Split::train).size();
  RRHFConfig c;
  c.init = dir + "/sft-room2";
  c.scorer = "ground_truth";
  c.steps = 1;
  c.prompts_per_step = int64_t(n_prompts);
  c.k = 2;
  c.log_every = 1;
  c.eval_every = 0;
  c.eval_samples = 1;
  c.out_dir = dir;
  c.name = "rrhf";
  c.quiet = true;
  RRHFResult r;
  EXPECT_EQ(error_of([&] { r = train_rrhf(c); }), "<no error>");
  ASSERT_EQ(r.losses.size(), 1u);
  EXPECT_TRUE(std::isfinite(r.losses[0]));
  EXPECT_TRUE(fs::exists(dir + "/rrhf/checkpoint.safetensors"));

  tiny_sft(dir, "sft-room1", lt + 1 + 1, task);
  c.init = dir + "/sft-room1";
  c.name = "rrhf-room1";
  EXPECT_EQ(error_of([&] { train_rrhf(c); }),
            "rlft lm rrhf: the prompts leave no room for a response and its EOS in the model's "
            "context of " +
                std::to_string(lt + 2));
  EXPECT_FALSE(fs::exists(dir + "/rrhf-room1"));
}

// The reward model's numeric options: each message names the flag, the allowed range and the
// value, and a value inside the range passes the checks (the run then fails on its missing
// inputs instead).
TEST(RewardModelOptions, NumbersOutOfRangeNameTheFlagTheRangeAndTheValue) {
  const std::string dir = temp_dir("rm_options");
  auto message = [&](auto set) {
    RewardModelConfig c;
    c.prefs = dir + "/missing.jsonl";
    c.init = dir + "/no_run";
    c.out_dir = dir;
    c.name = "rm";
    c.quiet = true;
    set(c);
    return error_of([&] { train_reward_model(c); });
  };
  const std::string cmd = "rlft lm rm: ";
  EXPECT_EQ(message([](RewardModelConfig& c) { c.lr = 0; }),
            cmd + "--lr must be a positive number, got 0");
  EXPECT_EQ(message([](RewardModelConfig& c) { c.lr = INFINITY; }),
            cmd + "--lr must be a positive number, got inf");
  EXPECT_EQ(message([](RewardModelConfig& c) { c.min_lr_ratio = 1.5; }),
            cmd + "--min-lr-ratio must be in [0, 1], got 1.5");
  EXPECT_EQ(message([](RewardModelConfig& c) { c.min_lr_ratio = NAN; }),
            cmd + "--min-lr-ratio must be in [0, 1], got nan");
  EXPECT_EQ(message([](RewardModelConfig& c) { c.weight_decay = NAN; }),
            cmd + "--weight-decay must be a number >= 0, got nan");
  EXPECT_EQ(message([](RewardModelConfig& c) { c.grad_clip = -1; }),
            cmd + "--grad-clip must be a number >= 0 (0: off), got -1");
  EXPECT_EQ(message([](RewardModelConfig& c) { c.grad_clip = INFINITY; }),
            cmd + "--grad-clip must be a number >= 0 (0: off), got inf");
  EXPECT_EQ(message([](RewardModelConfig& c) { c.margin = -INFINITY; }),
            cmd + "--margin must be a finite number, got -inf");
  EXPECT_EQ(message([](RewardModelConfig& c) { c.center_coef = -1; }),
            cmd + "--center-coef must be a number >= 0 (0: off), got -1");
  EXPECT_EQ(message([](RewardModelConfig& c) { c.eval_fraction = 1; }),
            cmd + "--eval-fraction must be in [0, 1), got 1");
  EXPECT_EQ(message([](RewardModelConfig& c) { c.eval_fraction = -0.5; }),
            cmd + "--eval-fraction must be in [0, 1), got -0.5");
  // Inside the ranges, at their edges: past the checks, to the missing preference file.
  for (const std::string& m : {message([](RewardModelConfig& c) {
                                 c.eval_fraction = 0.999;
                                 c.min_lr_ratio = 1;
                                 c.margin = -2;
                                 c.grad_clip = 0;
                                 c.center_coef = 0;
                                 c.weight_decay = 0;
                               }),
                               message([](RewardModelConfig&) {})})
    EXPECT_NE(m.find("missing.jsonl"), std::string::npos) << m;
}
