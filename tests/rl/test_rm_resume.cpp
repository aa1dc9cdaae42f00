// The reward model's training checkpoint and --resume (rl/llm/reward_model): a run stopped with
// --stop-after (mid-epoch, at an epoch's end) and resumed ends exactly where a straight run ends
// (weights, AdamW state, the loop's state, the metrics rows, accuracy.svg), also with dropout in
// the backbone and after a kill between a row and the next checkpoint; a resume with another
// setting, with nothing to resume, with another trainer's checkpoint or a corrupt loop state is
// refused and leaves the run as it was; the final checkpoint is still a reward model. The SFT
// runs are 1-layer reviews models of a few steps; the tests are about the run's bookkeeping.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "checkpoints_equal.h"
#include "engine/checkpoint.h"
#include "engine/fs.h"
#include "engine/json.h"
#include "resume_fixture.h"
#include "rl/llm/dpo.h"
#include "rl/llm/lm.h"
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
using rlft::testing::expect_losses_continue;
using rlft::testing::expect_same_checkpoint;
using rlft::testing::files_of;
using rlft::testing::metrics_of;
using rlft::testing::temp_dir;

// Two runs' metrics rows, `rows` of them, equal but their wall time, and their accuracy.svg
// equal.
void expect_same_rows_and_curve(const std::string& a_run, const std::string& b_run, size_t rows) {
  ASSERT_EQ(metrics_of(a_run).size(), rows);
  rlft::testing::expect_same_rows(a_run, b_run);
  EXPECT_EQ(fs::read_file(a_run + "/accuracy.svg"), fs::read_file(b_run + "/accuracy.svg"));
}

json::Value rm_state_of(const std::string& ckpt) {
  Metadata meta;
  load_tensors(ckpt, &meta);
  return json::parse(meta.at("rm_state"));
}

}  // namespace

// Two tiny reviews SFT runs (without and with dropout 0.1) and 44 preference pairs made from the
// task's train examples (one example's response chosen over the next one's, with made-up scores
// so the held-out correlation is logged too).
class RMResume : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new std::string(temp_dir("rm_resume"));
    const SFTConfig s = rlft::testing::tiny_sft_config(*dir_, "sft");
    train_sft(s);
    SFTConfig d = rlft::testing::tiny_sft_config(*dir_, "sft-dropout");
    d.dropout = 0.1;
    train_sft(d);
    const std::vector<PreferencePair> pairs =
        rlft::testing::consecutive_example_pairs(s.task, 44, /*scored=*/true);
    ASSERT_EQ(pairs.size(), 44u);
    write_preferences(*dir_ + "/prefs.jsonl", pairs);
  }
  static void TearDownTestSuite() { delete dir_; }

  // 44 pairs, 4 held out: 40 training pairs in batches of 8, 5 steps per epoch, 15 in all; a
  // periodic checkpoint every 4 steps. A cosine decay, so the step sets the learning rate.
  static RewardModelConfig config(const std::string& name) {
    RewardModelConfig c = rlft::testing::config_at<RewardModelConfig>(*dir_, name);
    c.prefs = *dir_ + "/prefs.jsonl";
    c.init = *dir_ + "/sft";
    c.epochs = 3;
    c.batch = 8;
    c.lr = 3e-3;
    c.checkpoint_every = 4;
    c.seed = 5;
    return c;
  }
  static std::string run(const std::string& name) { return *dir_ + "/" + name; }
  static std::string ckpt(const std::string& name) { return run(name) + "/checkpoint.safetensors"; }
  static std::string* dir_;
};
std::string* RMResume::dir_ = nullptr;

// A straight run of 15 steps against one stopped after 3 (mid-epoch: the checkpoint carries the
// epoch's sums of 3 steps), resumed and stopped after 2 more (step 5, the end of epoch 1: the
// checkpoint comes after its row) and resumed to the end. Each invocation reports its own start
// and steps; together their losses are the straight run's, and the final checkpoint (weights,
// AdamW's moments, rm_state), the metrics rows and the curve are the straight run's exactly.
TEST_F(RMResume, StoppedMidEpochAndAtAnEpochEndEqualsAStraightRun) {
  RewardModelConfig c = config("straight");
  const RewardModelResult straight = train_reward_model(c);
  EXPECT_EQ(straight.start_step, 0);
  EXPECT_EQ(straight.step, 15);
  EXPECT_TRUE(straight.finished);
  ASSERT_EQ(straight.losses.size(), 15u);
  ASSERT_EQ(straight.evals.size(), 4u);  // before training, then one per epoch

  c.name = "resumed";
  c.stop_after = 3;
  const RewardModelResult first = train_reward_model(c);
  EXPECT_EQ(first.step, 3);
  EXPECT_FALSE(first.finished);
  EXPECT_FALSE(fs::exists(run("resumed") + "/metrics.jsonl")) << "no epoch ended yet";
  EXPECT_EQ(rm_state_of(ckpt("resumed")).at("epoch_steps").as_int(), 3);
  c.resume = true;
  c.stop_after = 2;
  const RewardModelResult second = train_reward_model(c);
  EXPECT_EQ(second.start_step, 3);
  EXPECT_EQ(second.step, 5);
  EXPECT_FALSE(second.finished);
  EXPECT_EQ(rm_state_of(ckpt("resumed")).at("epoch_steps").as_int(), 0);
  ASSERT_EQ(metrics_of(run("resumed")).size(), 1u) << "epoch 1's row, before the checkpoint";
  c.stop_after = 0;
  const RewardModelResult third = train_reward_model(c);
  EXPECT_EQ(third.start_step, 5);
  EXPECT_EQ(third.step, 15);
  EXPECT_TRUE(third.finished);

  std::vector<double> losses = first.losses;
  losses.insert(losses.end(), second.losses.begin(), second.losses.end());
  losses.insert(losses.end(), third.losses.begin(), third.losses.end());
  EXPECT_EQ(losses, straight.losses);
  // The resumed invocation gives back the run's evaluations: the one before training from the
  // checkpoint, the epochs' from metrics.jsonl.
  ASSERT_EQ(third.evals.size(), straight.evals.size());
  for (size_t i = 0; i < straight.evals.size(); ++i) {
    EXPECT_EQ(third.evals[i].accuracy, straight.evals[i].accuracy) << i;
    EXPECT_EQ(third.evals[i].loss, straight.evals[i].loss) << i;
    EXPECT_EQ(third.evals[i].correlation, straight.evals[i].correlation) << i;
    EXPECT_EQ(third.evals[i].has_correlation, straight.evals[i].has_correlation) << i;
    EXPECT_EQ(third.evals[i].pairs, 4) << i;
  }
  EXPECT_TRUE(straight.evals.back().has_correlation);
  expect_same_checkpoint(ckpt("straight"), ckpt("resumed"));
  expect_same_rows_and_curve(run("straight"), run("resumed"), 3);
}

// With dropout in the backbone (an SFT run with dropout 0.1, which the reward model keeps), the
// masks of step s depend on (seed, s) only: a run stopped mid-epoch and resumed draws the
// straight run's masks (from the model's own stream, restarted by the resume, they differ).
TEST_F(RMResume, WithDropoutAResumedRunTakesTheStraightRunsSteps) {
  RewardModelConfig c = config("dropout");
  c.init = *dir_ + "/sft-dropout";
  const auto runs = rlft::testing::stop_and_resume(train_reward_model, c, "dropout-straight",
                                                   "dropout-resumed", 7);
  EXPECT_EQ(load_reward_model(run("dropout-straight")).model->config().dropout, 0.1);
  expect_losses_continue(runs.resumed.losses, runs.straight.losses, 7, 8);
  expect_same_checkpoint(ckpt("dropout-straight"), ckpt("dropout-resumed"));
  expect_same_rows_and_curve(run("dropout-straight"), run("dropout-resumed"), 3);
}

// A kill after a row and before the next checkpoint: the run stopped at step 7 (checkpoints at
// 4 and 7, epoch 1's row at step 5) gets its step-4 checkpoint back, as if it had died just
// after logging step 5. The resume drops the row of step 5, redoes steps 5–15 and ends as a
// straight run does, with no row twice.
TEST_F(RMResume, AKillAfterARowRedoesTheStepsAfterTheCheckpoint) {
  RewardModelConfig c = config("kill-straight");
  const RewardModelResult straight = train_reward_model(c);
  c.name = "killed";
  c.stop_after = 4;
  train_reward_model(c);
  const std::string at4 = fs::read_file(ckpt("killed"));
  c.resume = true;
  c.stop_after = 3;
  train_reward_model(c);
  ASSERT_EQ(metrics_of(run("killed")).size(), 1u);
  fs::atomic_write_file(ckpt("killed"), at4);  // the step-4 checkpoint back
  c.stop_after = 0;
  const RewardModelResult r = train_reward_model(c);
  EXPECT_EQ(r.start_step, 4);
  EXPECT_EQ(r.step, 15);
  expect_losses_continue(r.losses, straight.losses, 4, 11);
  expect_same_checkpoint(ckpt("kill-straight"), ckpt("killed"));
  expect_same_rows_and_curve(run("kill-straight"), run("killed"), 3);
}

// Refused resumes name their cause and leave every file of the run as it was: another setting,
// an --epochs whose steps end before the checkpoint, no run, no checkpoint, another trainer's
// checkpoint (an SFT run's, a DPO run's, a final reward model without rm_state), a corrupt loop
// state; the new options' bad values name their flags. Then the run resumes with a longer
// --epochs and another --grad-accum (both free) to the end.
TEST_F(RMResume, RefusedResumesNameTheCauseAndLeaveTheRunAsItWas) {
  RewardModelConfig c = config("stopped");
  c.stop_after = 6;
  train_reward_model(c);
  const std::string stopped = run("stopped");
  const std::map<std::string, std::string> files = files_of(stopped);
  ASSERT_TRUE(files.count("checkpoint.safetensors"));
  ASSERT_TRUE(files.count("metrics.jsonl"));
  c.stop_after = 0;
  c.resume = true;
  auto refused = [&](const RewardModelConfig& r) {
    return error_of([&] { train_reward_model(r); });
  };

  RewardModelConfig lr = c;
  lr.lr = 1e-3;
  const std::string lr_error = refused(lr);
  EXPECT_EQ(lr_error.rfind("--resume: setting 'lr' is 0.001 but the run at " + stopped +
                               " was started with 0.003",
                           0),
            0u)
      << lr_error;
  RewardModelConfig batch = c;
  batch.batch = 4;
  EXPECT_NE(refused(batch).find("setting 'batch' is 4"), std::string::npos);
  RewardModelConfig seed = c;
  seed.seed = 6;
  EXPECT_NE(refused(seed).find("setting 'seed' is 6"), std::string::npos);
  RewardModelConfig epochs = c;
  epochs.epochs = 1;  // 5 steps, the checkpoint is at 6
  EXPECT_EQ(refused(epochs),
            ckpt("stopped") +
                ": the checkpoint is at step 6, beyond the 5 steps of --epochs 1 (5 per epoch)");
  EXPECT_EQ(files_of(stopped), files) << "the refused resumes left the run as it was";

  RewardModelConfig none = config("no-such-run");
  none.resume = true;
  EXPECT_EQ(refused(none), run("no-such-run") + ": nothing to resume (no such run directory)");
  EXPECT_FALSE(fs::exists(run("no-such-run")));

  // Runs made of the stopped run's config.json and another checkpoint (or none).
  auto foreign = [&](const std::string& name, const std::string& checkpoint_bytes) {
    std::filesystem::create_directories(run(name));
    std::filesystem::copy_file(stopped + "/config.json", run(name) + "/config.json");
    if (!checkpoint_bytes.empty()) fs::atomic_write_file(ckpt(name), checkpoint_bytes);
    RewardModelConfig r = c;
    r.name = name;
    const std::map<std::string, std::string> before = files_of(run(name));
    const std::string e = error_of([&] { train_reward_model(r); });
    EXPECT_EQ(files_of(run(name)), before) << name << ": " << e;
    return e;
  };
  EXPECT_EQ(foreign("no-checkpoint", ""),
            ckpt("no-checkpoint") + ": nothing to resume (no checkpoint)");
  const std::string not_rm =
      ": not a reward-model training checkpoint (no rm_state in its metadata: another trainer's, "
      "or a final reward model written before `rlft lm rm` could resume)";
  EXPECT_EQ(foreign("sft-checkpoint", fs::read_file(*dir_ + "/sft/checkpoint.safetensors")),
            ckpt("sft-checkpoint") + not_rm);
  {
    DPOConfig d;
    d.prefs = c.prefs;
    d.init = c.init;
    d.batch = 8;
    d.max_steps = 1;
    d.eval_every = 0;
    d.eval_samples = 1;
    d.out_dir = *dir_;
    d.name = "dpo";
    d.quiet = true;
    train_dpo(d);
  }
  EXPECT_EQ(foreign("dpo-checkpoint", fs::read_file(*dir_ + "/dpo/checkpoint.safetensors")),
            ckpt("dpo-checkpoint") + not_rm);
  // A final reward model as `rlft lm rm` wrote it before it could resume: weights only.
  {
    Metadata meta;
    const NamedTensors all = load_tensors(ckpt("stopped"), &meta);
    NamedTensors weights;
    for (const auto& [name, t] : all)
      if (name.rfind("optimizer.", 0) != 0) weights.emplace_back(name, t);
    meta.erase("rm_state");
    save_tensors(*dir_ + "/old-rm.safetensors", weights, meta);
  }
  EXPECT_EQ(foreign("old-rm", fs::read_file(*dir_ + "/old-rm.safetensors")),
            ckpt("old-rm") + not_rm);
  // The stopped run's checkpoint with its loop state edited.
  auto with_state = [&](const std::string& state) {
    Metadata meta;
    const NamedTensors all = load_tensors(ckpt("stopped"), &meta);
    meta["rm_state"] = state;
    save_tensors(*dir_ + "/edited.safetensors", all, meta);
    return fs::read_file(*dir_ + "/edited.safetensors");
  };
  json::Value state = rm_state_of(ckpt("stopped"));
  ASSERT_EQ(state.at("epoch_steps").as_int(), 1);  // step 6: one step into epoch 2
  state.set("epoch_steps", int64_t(2));
  EXPECT_EQ(foreign("state-steps", with_state(state.dump())),
            ckpt("state-steps") +
                ": rm_state: field 'epoch_steps' = 2 but the checkpoint's step 6 is 1 steps into "
                "an epoch of 5 (the state is not this run's, or the preference file changed)");
  state = rm_state_of(ckpt("stopped"));
  state.set("epoch_correct", "many");
  EXPECT_EQ(foreign("state-correct", with_state(state.dump())),
            ckpt("state-correct") +
                ": rm_state: field 'epoch_correct' must be a finite number >= 0, got \"many\"");
  EXPECT_NE(foreign("state-text", with_state("{\"epoch_loss\": ")).find(": rm_state"),
            std::string::npos);

  RewardModelConfig bad = config("bad");
  bad.stop_after = -1;
  EXPECT_EQ(error_of([&] { train_reward_model(bad); }),
            "rlft lm rm: --stop-after must be >= 0 (0: run to the end), got -1");
  bad = config("bad");
  bad.checkpoint_every = -2;
  EXPECT_EQ(error_of([&] { train_reward_model(bad); }),
            "rlft lm rm: --checkpoint-every must be >= 0 (0: only at --stop-after and the end), "
            "got -2");
  EXPECT_FALSE(fs::exists(run("bad")));

  // --epochs may grow and --grad-accum change: the run goes on from step 6 to 4 × 5 steps.
  c.epochs = 4;
  c.grad_accum = 2;
  const RewardModelResult r = train_reward_model(c);
  EXPECT_EQ(r.start_step, 6);
  EXPECT_EQ(r.step, 20);
  EXPECT_TRUE(r.finished);
  EXPECT_EQ(metrics_of(stopped).size(), 4u);
}

// The final checkpoint (with AdamW's state and rm_state beside the weights) is a reward model for
// lm ppo, rrhf and rm --evaluate (load_reward_model), at the run's last step; it scores as the
// run's last evaluation did. A finished run resumed runs nothing and leaves its checkpoint,
// metrics and curve as they were.
TEST_F(RMResume, TheFinalCheckpointIsARewardModelAndAFinishedRunResumedRunsNothing) {
  RewardModelConfig c = config("final");
  c.eval_fraction = 0;  // every pair is a training pair: evaluate the loaded model on all
  c.epochs = 1;
  c.batch = 11;
  const RewardModelResult r = train_reward_model(c);
  ASSERT_TRUE(r.finished);
  EXPECT_EQ(r.step, 4);
  const LoadedModel lm = load_reward_model(run("final"));
  EXPECT_EQ(lm.step, 4);
  EXPECT_TRUE(lm.model->config().reward_head);
  const std::vector<PreferencePair> pairs = read_preferences(c.prefs);
  const RewardModelEval ev = evaluate_reward_model(*lm.model, lm.tokenizer, pairs);
  EXPECT_EQ(ev.pairs, 44);
  EXPECT_GT(ev.accuracy, 0.0);
  EXPECT_TRUE(std::isfinite(ev.correlation));
  // Every pair's chosen score is above its rejected one (0.5 + 0.01·(i mod 40) against
  // 0.45 − 0.01·(i mod 30)), so all 44 pairs have a score gap and the ground-truth order is the
  // labels': the truth accuracy (r_w > r_l where the truth says chosen > rejected) is the accuracy.
  ASSERT_TRUE(ev.has_correlation);
  EXPECT_EQ(ev.truth_accuracy, ev.accuracy);
  // A pair the model cannot tell apart (the same response twice, each scored alone so r_w = r_l
  // to the bit) is not a correct one, and its loss is log 2.
  std::vector<PreferencePair> ties = pairs;
  for (PreferencePair& p : ties) p.rejected = p.chosen;
  const RewardModelEval tied = evaluate_reward_model(*lm.model, lm.tokenizer, ties, 1);
  EXPECT_EQ(tied.accuracy, 0.0);
  EXPECT_NEAR(tied.loss, std::log(2.0), 1e-6);
  // Nor does a tie order the pair as the ground truth does (the scores still differ): 0.
  EXPECT_EQ(tied.truth_accuracy, 0.0);

  const std::map<std::string, std::string> before = files_of(run("final"));
  c.resume = true;
  c.stop_after = 2;  // nothing to stop: the run is at its end
  const RewardModelResult again = train_reward_model(c);
  EXPECT_TRUE(again.losses.empty());
  EXPECT_EQ(again.start_step, 4);
  EXPECT_EQ(again.step, 4);
  EXPECT_TRUE(again.finished);
  ASSERT_EQ(again.evals.size(), r.evals.size());
  EXPECT_EQ(again.evals.back().pairs, 0);
  const std::map<std::string, std::string> after = files_of(run("final"));
  for (const char* f : {"checkpoint.safetensors", "metrics.jsonl", "accuracy.svg"})
    EXPECT_EQ(after.at(f), before.at(f)) << f;
}
