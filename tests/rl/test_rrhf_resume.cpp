// RRHF's training checkpoint and --resume (rl/llm/rrhf): a run stopped with --stop-after and
// resumed ends exactly where a straight run ends (weights, Adam state, the loop's state and the
// metrics rows); a resume with another setting, or with nothing to resume, fails before it
// writes anything; a finished run resumed runs nothing. The SFT model is a 1-layer run of a few
// steps WITH dropout, so the policy's dropout stream is part of what a resume must restore.
// These tests are about the run's bookkeeping, not about learning (test_rlhf.cpp has those).
#include <gtest/gtest.h>

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
#include "rl/llm/lm.h"
#include "rl/llm/rlhf_data.h"
#include "rl/llm/rrhf.h"
#include "rl/llm/sft.h"
#include "run_metrics.h"
#include "test_util.h"
#include "tiny_lm_runs.h"

using namespace rlft;
using namespace rlft::llm;

namespace {

using rlft::testing::error_of;
using rlft::testing::expect_losses_continue;
using rlft::testing::files_of;

}  // namespace

// One tiny reviews SFT run with dropout 0.1, shared by the tests.
class RRHFResume : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new std::string(rlft::testing::temp_dir("rrhf_resume"));
    SFTConfig s = rlft::testing::tiny_sft_config(*dir_, "sft");
    s.dropout = 0.1;
    train_sft(s);
  }
  static void TearDownTestSuite() { delete dir_; }

  // Rows at steps 2, 3 (an evaluation), 4, 6 (both) and 7 (the last, evaluated); a periodic
  // checkpoint at step 4.
  static RRHFConfig config(const std::string& name) {
    RRHFConfig c = rlft::testing::config_at<RRHFConfig>(*dir_, name);
    c.init = *dir_ + "/sft";
    c.scorer = "ground_truth";
    c.steps = 7;
    c.prompts_per_step = 2;
    c.k = 2;
    c.lr = 1e-3;
    c.log_every = 2;
    c.eval_every = 3;
    c.eval_samples = 1;
    c.checkpoint_every = 4;
    c.seed = 7;
    return c;
  }
  static std::string* dir_;
};
std::string* RRHFResume::dir_ = nullptr;

// 7 straight steps against 5 (--stop-after 5: between two rows, so the checkpoint carries a
// metrics window of one step) and a resume for the last 2. Before the resume a row for step 6
// is appended, as a crash after a row and before the next checkpoint leaves one: the resume
// drops it and logs step 6 again. The weights, Adam's state, the streams' positions, the
// metrics rows (but their wall time) and the per-step losses all agree exactly, and the final
// checkpoint is the policy `rlft lm eval|sample` load.
TEST_F(RRHFResume, StoppedAndResumedEqualsAStraightRun) {
  const auto runs = rlft::testing::stop_and_resume(
      train_rrhf, config("straight"), "straight", "resumed", 5, [&](RRHFConfig&) {
        Metadata meta;
        load_tensors(*dir_ + "/resumed/checkpoint.safetensors", &meta);
        EXPECT_EQ(meta.at("step"), "5");
        fs::append_line(*dir_ + "/resumed/metrics.jsonl",
                        R"({"step": 6, "loss": 123.0, "stale": true})");
      });
  const RRHFResult &straight = runs.straight, &first = runs.stopped, &second = runs.resumed;
  ASSERT_EQ(straight.losses.size(), 7u);
  EXPECT_EQ(straight.start_step, 0);
  EXPECT_EQ(straight.steps, 7);
  EXPECT_TRUE(straight.finished);

  EXPECT_EQ(first.start_step, 0);
  EXPECT_EQ(first.steps, 5);
  EXPECT_FALSE(first.finished);
  expect_losses_continue(first.losses, straight.losses, 0, 5);
  EXPECT_EQ(first.before.ground_truth, straight.before.ground_truth);

  EXPECT_EQ(second.start_step, 5);
  EXPECT_EQ(second.steps, 7);
  EXPECT_TRUE(second.finished);
  expect_losses_continue(second.losses, straight.losses, 5, 2);  // this invocation's steps
  // `before` comes back from the checkpoint, `after` is the same final evaluation.
  EXPECT_EQ(second.before.ground_truth, straight.before.ground_truth);
  EXPECT_EQ(second.before.kl, straight.before.kl);
  EXPECT_EQ(second.before.response_length, straight.before.response_length);
  EXPECT_EQ(second.after.ground_truth, straight.after.ground_truth);
  EXPECT_EQ(second.after.kl, straight.after.kl);
  EXPECT_EQ(second.after.response_length, straight.after.response_length);

  rlft::testing::expect_same_checkpoint(*dir_ + "/straight/checkpoint.safetensors",
                                        *dir_ + "/resumed/checkpoint.safetensors");
  ASSERT_EQ(rlft::testing::metrics_of(*dir_ + "/straight").size(), 5u);
  rlft::testing::expect_same_rows(*dir_ + "/straight", *dir_ + "/resumed");

  // The final checkpoint loads as a policy of the SFT run's task.
  const LoadedModel lm = load_policy(*dir_ + "/resumed");
  EXPECT_EQ(lm.step, 7);
  EXPECT_EQ(task_config_of(lm).task, "reviews");
}

// A resume with another setting is refused before it reads or writes anything, naming the
// setting; the run's files are left as they were, and the run then resumes with its own
// settings. Nothing to resume (no run, or a run without its checkpoint) is an error naming
// what is missing; the new options' bad values name their flags.
TEST_F(RRHFResume, AChangedSettingOrNothingToResumeIsRefused) {
  RRHFConfig c = config("stopped");
  c.steps = 4;
  c.stop_after = 2;
  train_rrhf(c);
  const std::string run = *dir_ + "/stopped";
  const std::map<std::string, std::string> files = files_of(run);
  ASSERT_TRUE(files.count("checkpoint.safetensors"));
  c.stop_after = 0;
  c.resume = true;

  RRHFConfig k3 = c;
  k3.k = 3;
  EXPECT_EQ(error_of([&] {
              train_rrhf(k3);
            }).rfind("--resume: setting 'k' is 3 but the run at " + run + " was started with 2", 0),
            0u)
      << error_of([&] { train_rrhf(k3); });
  RRHFConfig lr = c;
  lr.lr = 2e-3;
  EXPECT_NE(error_of([&] { train_rrhf(lr); }).find("setting 'lr' is 0.002"), std::string::npos);
  EXPECT_EQ(files_of(run), files) << "a refused resume left the run as it was";

  // --steps may change (a longer run); --stop-after and --checkpoint-every too.
  c.steps = 5;
  c.checkpoint_every = 0;
  const RRHFResult r = train_rrhf(c);
  EXPECT_EQ(r.start_step, 2);
  EXPECT_EQ(r.steps, 5);
  EXPECT_TRUE(r.finished);

  RRHFConfig none = config("no-such-run");
  none.resume = true;
  EXPECT_EQ(error_of([&] { train_rrhf(none); }),
            *dir_ + "/no-such-run: nothing to resume (no such run directory)");
  EXPECT_FALSE(fs::exists(*dir_ + "/no-such-run"));
  // A run whose checkpoint is gone: its config.json alone is nothing to resume from.
  std::filesystem::create_directories(*dir_ + "/no-checkpoint");
  std::filesystem::copy_file(run + "/config.json", *dir_ + "/no-checkpoint/config.json");
  none = c;
  none.name = "no-checkpoint";
  EXPECT_EQ(error_of([&] { train_rrhf(none); }),
            *dir_ + "/no-checkpoint/checkpoint.safetensors: nothing to resume (no checkpoint)");

  RRHFConfig bad = config("bad");
  bad.stop_after = -1;
  EXPECT_EQ(error_of([&] { train_rrhf(bad); }),
            "rlft lm rrhf: --stop-after must be >= 0 (0: run to the end), got -1");
  bad = config("bad");
  bad.checkpoint_every = -2;
  EXPECT_EQ(error_of([&] { train_rrhf(bad); }),
            "rlft lm rrhf: --checkpoint-every must be >= 0 (0: only at --stop-after and the end), "
            "got -2");
  EXPECT_FALSE(fs::exists(*dir_ + "/bad"));
}

// A finished run resumed has nothing left to run: no step, no new row, the checkpoint as it
// was; the result says where the run stands and gives its evaluations back.
TEST_F(RRHFResume, AFinishedRunResumedRunsNothing) {
  RRHFConfig c = config("finished");
  c.steps = 3;
  const RRHFResult done = train_rrhf(c);
  ASSERT_TRUE(done.finished);
  const std::string run = *dir_ + "/finished";
  const std::string ckpt = fs::read_file(run + "/checkpoint.safetensors"),
                    metrics = fs::read_file(run + "/metrics.jsonl");
  c.resume = true;
  c.stop_after = 2;  // nothing to stop: the run is at --steps
  const RRHFResult again = train_rrhf(c);
  EXPECT_TRUE(again.losses.empty());
  EXPECT_EQ(again.start_step, 3);
  EXPECT_EQ(again.steps, 3);
  EXPECT_TRUE(again.finished);
  EXPECT_EQ(again.before.ground_truth, done.before.ground_truth);
  EXPECT_EQ(again.after.ground_truth, done.after.ground_truth);
  EXPECT_EQ(again.after.kl, done.after.kl);
  EXPECT_EQ(fs::read_file(run + "/checkpoint.safetensors"), ckpt);
  EXPECT_EQ(fs::read_file(run + "/metrics.jsonl"), metrics);
}
