// PPO-RLHF's training checkpoint and --resume (rl/llm/ppo_rlhf). The loop is, per update s,
//   θ_s, φ_s, Adam_θ, Adam_φ, β_s (kl_ctl), streams_s  →  θ_{s+1}, φ_{s+1}, …
// and a resume from the checkpoint at s must give exactly the straight run's state at every
// later step: a run stopped with --stop-after (and one "killed" after an update it logged but
// did not checkpoint) and resumed ends with the straight run's actor and critic weights and both
// Adam states bit for bit, and the same metrics rows but wall times; with the adaptive KL
// controller (its β is in the checkpoint) and, separately, with dropout in every model (the
// actor's and the critic's dropout streams are). A resume with another setting, with nothing to
// resume, or with the critic's file at another step than the actor's fails naming the cause and
// leaves the run's files as they were; a finished run resumed runs nothing. The models are
// 1-layer SFT runs of a few steps: these tests are about bookkeeping, not about learning
// (test_rlhf.cpp has those).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "checkpoints_equal.h"
#include "engine/checkpoint.h"
#include "engine/error.h"
#include "engine/fs.h"
#include "engine/json.h"
#include "resume_fixture.h"
#include "rl/llm/ppo_rlhf.h"
#include "rl/llm/reward_model.h"
#include "rl/llm/rlhf_data.h"
#include "rl/llm/sft.h"
#include "rl/llm/tasks/task.h"
#include "run_metrics.h"
#include "test_util.h"
#include "tiny_lm_runs.h"

using namespace rlft;
using namespace rlft::llm;

namespace {

using rlft::testing::error_of;
using rlft::testing::temp_dir;

TaskConfig tiny_reviews() { return rlft::testing::tiny_reviews(1234, 4); }

// A few SFT steps of a 1-layer model (context 128), then a reward model on pairs of the task's
// own reviews of one opening (their quality is not the point), two epochs of one step.
void tiny_sft_and_rm(const std::string& dir, const std::string& suffix, double dropout) {
  SFTConfig s = rlft::testing::tiny_sft_config(dir, "sft" + suffix, 128, tiny_reviews());
  s.dropout = dropout;
  s.eval_examples = 4;
  train_sft(s);
  const std::string prefs = dir + "/prefs" + suffix + ".jsonl";
  write_preferences(prefs, rlft::testing::example_pairs(tiny_reviews(), 24));
  train_reward_model(
      rlft::testing::tiny_reward_model_config(dir, "rm" + suffix, dir + "/sft" + suffix, prefs));
}

using rlft::testing::expect_same_checkpoint;
using rlft::testing::files_of;
using rlft::testing::metrics_of;

// The rows of two runs equal but their wall times (elapsed_seconds and the time_* of each phase).
void expect_same_metrics(const std::string& a_dir, const std::string& b_dir) {
  rlft::testing::expect_same_rows(a_dir, b_dir, /*phase_times=*/true);
}

void copy_file(const std::string& from, const std::string& to) {
  std::filesystem::copy_file(from, to, std::filesystem::copy_options::overwrite_existing);
}

}  // namespace

// One tiny SFT run and reward model without dropout, and one pair with dropout 0.1 in every
// model (actor, reference, reward model and the critic built from it), shared by the tests.
class PPORLHFResume : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new std::string(temp_dir("ppo_rlhf_resume"));
    tiny_sft_and_rm(*dir_, "", 0.0);
    tiny_sft_and_rm(*dir_, "-dropout", 0.1);
  }
  static void TearDownTestSuite() { delete dir_; }

  // Five updates of 4 prompts, two epochs of two minibatches each (so each Adam has several
  // steps per update), short responses, an evaluation every 2 updates, a checkpoint every 2;
  // the adaptive controller with a target far under the KL reached, so β moves every update.
  static PPORLHFConfig config(const std::string& name) {
    PPORLHFConfig c = rlft::testing::config_at<PPORLHFConfig>(*dir_, name);
    c.init = *dir_ + "/sft";
    c.reward_model = *dir_ + "/rm";
    c.steps = 5;
    c.batch = 4;
    c.ppo_epochs = 2;
    c.minibatches = 2;
    c.actor_lr = 1e-3;
    c.critic_lr = 1e-3;
    c.adaptive_kl = true;
    c.kl_target = 1e-3;
    c.kl_horizon = 100;
    c.max_new_tokens = 12;
    c.eval_every = 2;
    c.eval_samples = 1;
    c.checkpoint_every = 2;
    return c;
  }
  std::string run(const std::string& name) const { return *dir_ + "/" + name; }
  static std::string* dir_;
};
std::string* PPORLHFResume::dir_ = nullptr;

// Straight: updates 1–5. Resumed: --stop-after 2 (checkpoint at 2), then --stop-after 1
// (update 3, logged and checkpointed), then the step-2 checkpoint put back, as if the process had
// been killed after logging update 3 and before its checkpoint; the last resume drops row 3 and
// takes updates 3–5 again. Both end in the same state, bit for bit.
TEST_F(PPORLHFResume, StoppedAndResumedEqualsAStraightRunWithAdaptiveKL) {
  const PPORLHFResult straight = train_ppo_rlhf(config("straight"));
  EXPECT_TRUE(straight.finished);
  EXPECT_EQ(straight.start_step, 0);
  EXPECT_EQ(straight.steps, 5);
  ASSERT_EQ(straight.rm_scores.size(), 5u);
  const std::vector<json::Value> rows = metrics_of(run("straight"));
  ASSERT_EQ(rows.size(), 6u);  // step 0 (the SFT policy's evaluation), then 1–5
  EXPECT_NE(rows.back().at("kl_ctl").as_double(), 0.1) << "the controller must move β";

  PPORLHFConfig c = config("resumed");
  c.stop_after = 2;
  const PPORLHFResult first = train_ppo_rlhf(c);
  EXPECT_FALSE(first.finished);
  EXPECT_EQ(first.start_step, 0);
  EXPECT_EQ(first.steps, 2);
  EXPECT_EQ(first.after.ground_truth, 0.0) << "no final evaluation: `after` is unset";
  EXPECT_EQ(metrics_of(run("resumed")).size(), 3u);
  const std::string ckpt = run("resumed") + "/checkpoint.safetensors",
                    critic = run("resumed") + "/critic.safetensors";
  copy_file(ckpt, *dir_ + "/step2-checkpoint.safetensors");
  copy_file(critic, *dir_ + "/step2-critic.safetensors");
  c.resume = true;
  c.stop_after = 1;
  const PPORLHFResult second = train_ppo_rlhf(c);
  EXPECT_FALSE(second.finished);
  EXPECT_EQ(second.start_step, 2);
  EXPECT_EQ(second.steps, 3);
  EXPECT_EQ(second.rm_scores.size(), 3u) << "the whole run's curve";
  EXPECT_EQ(metrics_of(run("resumed")).size(), 4u);
  copy_file(*dir_ + "/step2-checkpoint.safetensors", ckpt);  // "killed" before checkpoint 3
  copy_file(*dir_ + "/step2-critic.safetensors", critic);
  c.stop_after = 0;
  const PPORLHFResult third = train_ppo_rlhf(c);
  EXPECT_TRUE(third.finished);
  EXPECT_EQ(third.start_step, 2);
  EXPECT_EQ(third.steps, 5);
  EXPECT_EQ(third.time_generation.size(), 3u) << "this invocation's updates";

  expect_same_checkpoint(run("straight") + "/checkpoint.safetensors", ckpt);
  expect_same_checkpoint(run("straight") + "/critic.safetensors", critic);
  expect_same_metrics(run("straight"), run("resumed"));
  EXPECT_EQ(third.rm_scores, straight.rm_scores);
  EXPECT_EQ(third.ground_truths, straight.ground_truths);
  EXPECT_EQ(third.kls, straight.kls);
  EXPECT_EQ(third.before.ground_truth, straight.before.ground_truth);
  EXPECT_EQ(third.after.ground_truth, straight.after.ground_truth);
  EXPECT_EQ(third.after.kl, straight.after.kl);
  EXPECT_TRUE(fs::exists(run("resumed") + "/reward.svg"));
  EXPECT_TRUE(fs::exists(run("resumed") + "/kl.svg"));
  // The policy file still loads as a policy (`rlft lm eval|sample`), at the run's last step.
  const LoadedModel policy = load_policy(run("resumed"));
  EXPECT_EQ(policy.step, 5);
  EXPECT_EQ(policy.run_config.at("task").as_string(), "reviews");

  // A finished run resumed runs nothing, changes nothing and says where it is.
  std::map<std::string, std::string> before = files_of(run("straight"));
  PPORLHFConfig again = config("straight");
  again.resume = true;
  const PPORLHFResult done = train_ppo_rlhf(again);
  EXPECT_TRUE(done.finished);
  EXPECT_EQ(done.start_step, 5);
  EXPECT_EQ(done.steps, 5);
  EXPECT_TRUE(done.time_generation.empty());
  EXPECT_EQ(done.rm_scores, straight.rm_scores);
  EXPECT_EQ(done.after.ground_truth, straight.after.ground_truth);
  EXPECT_EQ(done.before.ground_truth, straight.before.ground_truth);
  std::map<std::string, std::string> after = files_of(run("straight"));
  EXPECT_NE(after["config.json"].find("\"resume\": true"), std::string::npos);
  before.erase("config.json"), after.erase("config.json");  // records the resumed command
  EXPECT_EQ(after, before);
}

// The adaptive controller's update as the loop applies it (ALGORITHMS.md §4; Ziegler et al.):
// after update s, β_s = β_{s−1}·(1 + clip(KL_s/target − 1, ±0.2)·B/horizon), where KL_s is the
// rollout's logged "kl" (Σ_t k1 over each response, mean over the B = 4 prompts) and β_0 =
// --kl-ctl. With the target 0.3 update 3's KL (0.267 in this build; the others, 0, −0.26 and
// 0.11, clip at −0.2) is inside the clip range, so both the proportional error and the
// B/horizon step size show. The unit tests of AdaptiveKLController cannot see what the loop
// passes it: a per-token KL, or n = 1 instead of B, passed them.
TEST_F(PPORLHFResume, AdaptiveKLFollowsTheLoggedKLAndTheBatchSize) {
  PPORLHFConfig c = config("adaptive-rule");
  c.kl_target = 0.3;
  c.steps = 4;
  train_ppo_rlhf(c);
  const std::vector<json::Value> rows = metrics_of(run("adaptive-rule"));
  ASSERT_EQ(rows.size(), 5u);  // step 0, then updates 1–4
  double beta = c.kl_ctl;
  int proportional = 0;
  for (size_t s = 1; s < rows.size(); ++s) {
    const double kl = rows[s].at("kl").as_double();
    const double e = std::clamp(kl / c.kl_target - 1.0, -0.2, 0.2);
    proportional += std::abs(e) < 0.2;
    beta *= 1.0 + e * double(c.batch) / c.kl_horizon;
    EXPECT_NEAR(rows[s].at("kl_ctl").as_double(), beta, 1e-12 * beta) << "update " << s;
  }
  EXPECT_GE(proportional, 1)
      << "no update's KL fell inside the clip range: the test lost its point";
}

// The controller's β is the one the rewards use: r_t = −β_s·k1_t (+ the score at the end), with
// β_s the value after the previous update. Three runs share update 1 (β_0 = 1) and therefore the
// actor, the critic and the rollout of update 2; they differ only in β_1: fixed (1), and
// adaptive with horizon 8 and 4, where update 1's KL (≈ 0, under target 1) gives e = −0.2 and
// β_1 = 1 − 0.2·4/8 = 0.9 and 1 − 0.2·4/4 = 0.8. GAE is linear in the rewards and update 2's
// single minibatch has ratio 1 up to rounding (no clipping), so its actor loss is affine in β_1:
// L(0.8) − L(1) = 2·(L(0.9) − L(1)), and not 0 (rewards built with --kl-ctl instead of the
// controller's β would give three equal losses).
TEST_F(PPORLHFResume, RewardsUseTheControllersBeta) {
  const auto run_with = [&](const std::string& name, bool adaptive, double horizon) {
    PPORLHFConfig c = config(name);
    c.steps = 2;
    c.ppo_epochs = 1;
    c.minibatches = 1;
    c.kl_ctl = 1.0;
    c.adaptive_kl = adaptive;
    c.kl_target = 1.0;
    c.kl_horizon = horizon;
    c.eval_every = 0;
    train_ppo_rlhf(c);
    const std::vector<json::Value> rows = metrics_of(run(name));
    EXPECT_EQ(rows.size(), 3u);  // step 0, updates 1 and 2
    return rows;
  };
  const auto fixed = run_with("beta-fixed", false, 8), a9 = run_with("beta-09", true, 8),
             a8 = run_with("beta-08", true, 4);
  ASSERT_EQ(fixed.size(), 3u);
  ASSERT_EQ(a9.size(), 3u);
  ASSERT_EQ(a8.size(), 3u);
  EXPECT_NEAR(a9[1].at("kl_ctl").as_double(), 0.9, 1e-12);
  EXPECT_NEAR(a8[1].at("kl_ctl").as_double(), 0.8, 1e-12);
  for (const char* key : {"actor_loss", "kl"}) {  // update 1 alike, and update 2's rollout
    EXPECT_EQ(a9[1].at(key).as_double(), fixed[1].at(key).as_double()) << key;
    EXPECT_EQ(a8[1].at(key).as_double(), fixed[1].at(key).as_double()) << key;
  }
  EXPECT_EQ(a9[2].at("kl").as_double(), fixed[2].at("kl").as_double());
  EXPECT_EQ(a8[2].at("kl").as_double(), fixed[2].at("kl").as_double());
  const double l1 = fixed[2].at("actor_loss").as_double();
  const double d9 = a9[2].at("actor_loss").as_double() - l1;
  const double d8 = a8[2].at("actor_loss").as_double() - l1;
  EXPECT_GT(std::abs(d9), 1e-4);
  EXPECT_NEAR(d8, 2 * d9, 1e-4 * std::abs(d9));  // 2.000002 here (float32 rounding)
}

// Fixed β, dropout 0.1 in the actor and the critic: their dropout streams are in the checkpoint.
// No checkpoint but at --stop-after and the end (--checkpoint-every 0).
TEST_F(PPORLHFResume, StoppedAndResumedEqualsAStraightRunWithDropout) {
  PPORLHFConfig c = config("dropout");
  c.init = *dir_ + "/sft-dropout";
  c.reward_model = *dir_ + "/rm-dropout";
  c.adaptive_kl = false;
  c.steps = 3;
  // An odd batch and an odd response budget: each sampled token draws 3 uniforms (6 of a
  // Philox block's 4 words), so the sampling stream ends an update inside a block (when the
  // update's last token is an odd one), which the resume must realign as the straight run does.
  c.batch = 3;
  c.minibatches = 3;
  c.max_new_tokens = 11;
  c.eval_every = 0;
  c.checkpoint_every = 0;
  const PPORLHFResult r =
      rlft::testing::stop_and_resume(train_ppo_rlhf, c, "dropout-straight", "dropout-resumed", 1)
          .resumed;
  EXPECT_TRUE(r.finished);
  EXPECT_EQ(r.start_step, 1);
  EXPECT_EQ(r.steps, 3);
  for (const char* file : {"/checkpoint.safetensors", "/critic.safetensors"})
    expect_same_checkpoint(run("dropout-straight") + file, run("dropout-resumed") + file);
  expect_same_metrics(run("dropout-straight"), run("dropout-resumed"));
  for (const json::Value& row : metrics_of(run("dropout-resumed"))) {
    if (row.at("step").as_int() > 0) {
      EXPECT_EQ(row.at("kl_ctl").as_double(), 0.1);
    }
  }
}

// A process killed inside a checkpoint's writes (critic.safetensors renamed to
// critic.previous.safetensors, the new critic written, the new actor written, the previous
// critic removed) leaves a pair at one step, which --resume takes: killed after the rename
// (no critic.safetensors), after the new critic (the critic one step ahead of the actor), and
// after the actor (a stale previous file). Each resume continues as the straight run does.
TEST_F(PPORLHFResume, KilledInsideACheckpointsWritesResumesFromThePairOnDisk) {
  PPORLHFConfig c = config("kill-straight");
  c.steps = 4;
  c.eval_every = 0;
  c.checkpoint_every = 1;
  train_ppo_rlhf(c);
  c.name = "kill-resumed";
  const std::string ckpt = run("kill-resumed") + "/checkpoint.safetensors",
                    critic = run("kill-resumed") + "/critic.safetensors",
                    prev = run("kill-resumed") + "/critic.previous.safetensors";
  auto keep = [&](const std::string& path, int step) {
    copy_file(path, *dir_ + "/kill-" + std::to_string(step) + "-" +
                        std::filesystem::path(path).filename().string());
  };
  auto kept = [&](const std::string& path, int step) {
    return *dir_ + "/kill-" + std::to_string(step) + "-" +
           std::filesystem::path(path).filename().string();
  };
  c.stop_after = 1;
  train_ppo_rlhf(c);  // the pair at 1
  keep(ckpt, 1), keep(critic, 1);
  c.resume = true;
  train_ppo_rlhf(c);  // the pair at 2
  EXPECT_FALSE(fs::exists(prev)) << "removed once both files are written";

  // Killed after the new critic (step 2) was written, before the actor's: actor 1, critic 2,
  // previous critic 1.
  copy_file(kept(ckpt, 1), ckpt);
  copy_file(kept(critic, 1), prev);
  PPORLHFResult r = train_ppo_rlhf(c);
  EXPECT_EQ(r.start_step, 1);
  EXPECT_EQ(r.steps, 2);
  EXPECT_FALSE(fs::exists(prev));
  keep(ckpt, 2), keep(critic, 2);
  train_ppo_rlhf(c);  // the pair at 3

  // Killed right after the critic's file was renamed, in checkpoint 3's writes: actor 2, no
  // critic.safetensors, previous critic 2.
  copy_file(kept(ckpt, 2), ckpt);
  std::filesystem::remove(critic);
  copy_file(kept(critic, 2), prev);
  c.stop_after = 0;
  r = train_ppo_rlhf(c);
  EXPECT_EQ(r.start_step, 2);
  EXPECT_TRUE(r.finished);
  EXPECT_FALSE(fs::exists(prev));
  for (const char* file : {"/checkpoint.safetensors", "/critic.safetensors"})
    expect_same_checkpoint(run("kill-straight") + file, run("kill-resumed") + file);
  expect_same_metrics(run("kill-straight"), run("kill-resumed"));

  // Killed after the actor's write, before the previous critic's removal: the current pair is
  // taken and the stale file removed.
  copy_file(kept(critic, 2), prev);
  r = train_ppo_rlhf(c);
  EXPECT_EQ(r.start_step, 4);
  EXPECT_FALSE(fs::exists(prev));
  expect_same_checkpoint(run("kill-straight") + "/critic.safetensors", critic);

  // Neither file at the actor's step: refused, naming both, and nothing changes.
  copy_file(kept(critic, 1), prev);
  copy_file(kept(ckpt, 2), ckpt);
  const std::map<std::string, std::string> files = files_of(run("kill-resumed"));
  const std::string e = error_of([&] { train_ppo_rlhf(c); });
  EXPECT_NE(e.find("critic.previous.safetensors: the critic's previous checkpoint is at step 1 "
                   "and "),
            std::string::npos)
      << e;
  EXPECT_NE(e.find("critic.safetensors at step 4, but the actor's"), std::string::npos) << e;
  EXPECT_EQ(files_of(run("kill-resumed")), files);
}

// What --resume refuses, each before it writes anything.
TEST_F(PPORLHFResume, RefusedResumesNameTheCauseAndLeaveTheRunAsItWas) {
  PPORLHFConfig c = config("refused");
  c.steps = 3;
  c.eval_every = 0;
  c.stop_after = 1;
  train_ppo_rlhf(c);  // checkpoint at 1
  const std::string critic = run("refused") + "/critic.safetensors";
  copy_file(critic, *dir_ + "/step1-critic.safetensors");
  c.resume = true;
  train_ppo_rlhf(c);  // checkpoint at 2
  const std::map<std::string, std::string> files = files_of(run("refused"));

  // Another setting: the error names it and both values.
  PPORLHFConfig other = c;
  other.kl_ctl = 0.2;
  std::string e = error_of([&] { train_ppo_rlhf(other); });
  EXPECT_NE(e.find("kl_ctl"), std::string::npos) << e;
  EXPECT_EQ(files_of(run("refused")), files);
  other = c;
  other.adaptive_kl = false;
  e = error_of([&] { train_ppo_rlhf(other); });
  EXPECT_NE(e.find("adaptive_kl"), std::string::npos) << e;
  EXPECT_EQ(files_of(run("refused")), files);
  // --steps below the checkpoint's step.
  other = c;
  other.steps = 1;
  e = error_of([&] { train_ppo_rlhf(other); });
  EXPECT_NE(e.find("beyond --steps 1"), std::string::npos) << e;
  EXPECT_EQ(files_of(run("refused")), files);

  // The critic's file at another step than the actor's (killed between the two writes).
  copy_file(*dir_ + "/step1-critic.safetensors", critic);
  e = error_of([&] { train_ppo_rlhf(c); });
  EXPECT_NE(e.find("critic.safetensors: the critic's checkpoint is at step 1 but the actor's"),
            std::string::npos)
      << e;
  EXPECT_NE(e.find("at step 2"), std::string::npos) << e;
  std::map<std::string, std::string> now = files_of(run("refused"));
  EXPECT_EQ(now.size(), files.size());
  now["critic.safetensors"] = files.at("critic.safetensors");
  EXPECT_EQ(now, files);
  // No critic file at all.
  std::filesystem::remove(critic);
  e = error_of([&] { train_ppo_rlhf(c); });
  EXPECT_NE(e.find("critic.safetensors: missing"), std::string::npos) << e;

  // Nothing to resume: a run directory without a checkpoint, and no run directory at all.
  std::filesystem::create_directories(run("empty"));
  c.name = "empty";
  e = error_of([&] { train_ppo_rlhf(c); });
  EXPECT_NE(e.find("checkpoint.safetensors: nothing to resume"), std::string::npos) << e;
  EXPECT_TRUE(files_of(run("empty")).empty());
  c.name = "never-ran";
  e = error_of([&] { train_ppo_rlhf(c); });
  EXPECT_NE(e.find("never-ran"), std::string::npos) << e;
  EXPECT_FALSE(fs::exists(run("never-ran")));
}

TEST_F(PPORLHFResume, NegativeCheckpointEveryAndStopAfterNameTheirFlags) {
  PPORLHFConfig c = config("flags");
  c.checkpoint_every = -1;
  std::string e = error_of([&] { train_ppo_rlhf(c); });
  EXPECT_NE(e.find("--checkpoint-every must be >= 0"), std::string::npos) << e;
  c = config("flags");
  c.stop_after = -2;
  e = error_of([&] { train_ppo_rlhf(c); });
  EXPECT_NE(e.find("--stop-after must be >= 0"), std::string::npos) << e;
  EXPECT_FALSE(fs::exists(run("flags")));
  const json::Value j = to_json(config("flags"));
  EXPECT_EQ(j.at("checkpoint_every").as_int(), 2);
  EXPECT_EQ(j.at("resume").as_bool(), false);
  EXPECT_EQ(j.at("stop_after").as_int(), 0);
}
