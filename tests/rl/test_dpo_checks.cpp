// DPO's option checks (each error names the flag, its range and the value; the half-open ranges
// keep their exact ends), the logged grad_norm with clipping off, and what a stopped-and-resumed
// run reports. The end-to-end DPO runs (learning, exact resume of the weights) are in
// tests/rl/test_rlhf.cpp; these use a tiny reviews SFT model and hand-made pairs (seconds).
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <map>
#include <string>

#include "engine/checkpoint.h"
#include "engine/fs.h"
#include "engine/json.h"
#include "resume_fixture.h"
#include "rl/llm/dpo.h"
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

// A 1-layer reviews model after 10 SFT steps (the policy and reference of the runs below), and
// 44 preference pairs made from its task's train examples: the response of one example chosen
// over the next one's. What DPO learns from them does not matter here, only that it runs.
class DPORun : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new std::string(temp_dir("dpo_checks"));
    // The tiny run's model, 10 steps of 8 at the default learning rate; two validation prompts,
    // sampled at each DPO evaluation.
    SFTConfig c =
        rlft::testing::tiny_sft_config(*dir_, "sft", 128, rlft::testing::tiny_reviews(1234, 2));
    c.steps = 10;
    c.batch = 8;
    c.lr = SFTConfig().lr;
    c.warmup = 2;
    c.log_every = 10;
    c.eval_every = 10;
    c.checkpoint_every = 10;
    train_sft(c);
    const std::vector<PreferencePair> pairs = rlft::testing::consecutive_example_pairs(c.task, 44);
    ASSERT_EQ(pairs.size(), 44u);
    write_preferences(*dir_ + "/prefs.jsonl", pairs);
  }
  static void TearDownTestSuite() {
    delete dir_;
    dir_ = nullptr;
  }
  // 44 pairs, 4 held out (--eval-fraction 0.1): 40 training pairs in batches of 8, 5 steps per
  // epoch.
  static DPOConfig tiny(const std::string& name) {
    DPOConfig c = rlft::testing::config_at<DPOConfig>(*dir_, name);
    c.prefs = *dir_ + "/prefs.jsonl";
    c.init = *dir_ + "/sft";
    c.batch = 8;
    c.epochs = 2;
    c.log_every = 2;
    c.eval_every = 4;
    c.eval_samples = 1;
    c.checkpoint_every = 3;
    return c;
  }
  static std::vector<json::Value> metrics(const DPOResult& r) {
    return rlft::testing::metrics_of(r.run_dir);
  }
  static std::string* dir_;
};
std::string* DPORun::dir_ = nullptr;

}  // namespace

// Every numeric option is checked before anything is read: the message names the command, the
// flag, its range and the value. The half-open ranges keep their ends: the largest value below
// the excluded end passes the check (the run then fails on its missing --prefs file instead).
TEST(DPOChecks, NumericOptionsNameTheFlagTheRangeAndTheValue) {
  const std::string dir = temp_dir("dpo_option_checks");
  auto error = [&](auto&& edit) {
    DPOConfig c;
    c.prefs = dir + "/prefs.jsonl";
    c.init = dir + "/no_such_run";
    c.out_dir = dir;
    c.name = "dpo";
    c.quiet = true;
    edit(c);
    return error_of([&] { train_dpo(c); });
  };
  EXPECT_EQ(error([](DPOConfig& c) { c.beta = std::nan(""); }),
            "rlft lm dpo: --beta must be a positive number, got nan");
  EXPECT_EQ(error([](DPOConfig& c) { c.beta = 0; }),
            "rlft lm dpo: --beta must be a positive number, got 0");
  EXPECT_EQ(error([](DPOConfig& c) { c.lr = HUGE_VAL; }),
            "rlft lm dpo: --lr must be a positive number, got inf");
  EXPECT_EQ(error([](DPOConfig& c) { c.grad_clip = -1; }),
            "rlft lm dpo: --grad-clip must be a number >= 0 (0: off), got -1");
  EXPECT_EQ(error([](DPOConfig& c) { c.eval_fraction = 1; }),
            "rlft lm dpo: --eval-fraction must be in [0, 1), got 1");
  EXPECT_EQ(error([](DPOConfig& c) {
              c.loss = "cdpo";
              c.label_smoothing = 0.5;
            }),
            "rlft lm dpo: --label-smoothing must be in [0, 0.5), got 0.5");
  EXPECT_EQ(error([](DPOConfig& c) { c.batch = 0; }), "rlft lm dpo: --batch must be > 0, got 0");
  // A count per evaluation, bounded like the other counts (a typo would fill the memory).
  EXPECT_EQ(error([](DPOConfig& c) { c.eval_samples = 0; }),
            "rlft lm dpo: --eval-samples must be in [1, 1048576], got 0");
  EXPECT_EQ(error([](DPOConfig& c) { c.eval_samples = int64_t(1) << 31; }),
            "rlft lm dpo: --eval-samples must be in [1, 1048576], got 2147483648");
  // The ends just inside the ranges are accepted.
  const std::string missing_prefs = "prefs.jsonl': No such file";
  for (const std::string& msg :
       {error([](DPOConfig& c) { c.eval_fraction = std::nextafter(1.0, 0.0); }),
        error([](DPOConfig& c) {
          c.loss = "cdpo";
          c.label_smoothing = std::nextafter(0.5, 0.0);
        }),
        error([](DPOConfig& c) { c.grad_clip = 0; })}) {
    EXPECT_EQ(msg.find("must be"), std::string::npos) << msg;
    EXPECT_NE(msg.find(missing_prefs), std::string::npos) << msg;
  }
  EXPECT_FALSE(std::filesystem::exists(dir + "/dpo"));
}

// With clipping off the logged grad_norm is the true global norm (it was logged as 0): the same
// as a run whose clipping never bites (max norm 1e30 leaves the gradients as they are, so both
// runs take the same steps), positive and finite on every logged step.
TEST_F(DPORun, GradNormIsLoggedWithClippingOff) {
  DPOConfig c = tiny("dpo-noclip");
  c.max_steps = 4;
  c.log_every = 1;
  c.eval_every = 0;
  c.grad_clip = 0;
  const DPOResult off = train_dpo(c);
  c.name = "dpo-noclip-ref";
  c.grad_clip = 1e30;
  const DPOResult on = train_dpo(c);
  const std::vector<json::Value> a = metrics(off), b = metrics(on);
  ASSERT_EQ(a.size(), 5u);  // step 0 (the evaluation before training), then steps 1–4
  rlft::testing::expect_unclipped_grad_norms(a, b, /*first=*/1);
}

// Stopped after 3 steps, then resumed to the end (10 steps, 2 epochs): each invocation reports
// its own start and steps (start_step, step, one loss per step it ran), the resumed one the
// run's step-0 evaluation as `before`; and the metrics rows are those of a straight run, the
// stop step's too when it is a logging step (it was dropped: the stop came before the log).
TEST_F(DPORun, StoppedAndResumedRunReportsEachInvocation) {
  DPOConfig c = tiny("dpo-straight");
  const DPOResult straight = train_dpo(c);
  EXPECT_EQ(straight.start_step, 0);
  EXPECT_EQ(straight.step, 10);
  EXPECT_EQ(straight.losses.size(), 10u);
  EXPECT_TRUE(straight.finished);

  c.name = "dpo-resumed";
  c.stop_after = 4;  // a logging and evaluation step (log_every 2, eval_every 4)
  const DPOResult first = train_dpo(c);
  EXPECT_EQ(first.start_step, 0);
  EXPECT_EQ(first.step, 4);
  EXPECT_EQ(first.losses.size(), 4u);
  EXPECT_FALSE(first.finished);
  c.stop_after = 3;  // not a logging step
  c.resume = true;
  const DPOResult second = train_dpo(c);
  EXPECT_EQ(second.start_step, 4);
  EXPECT_EQ(second.step, 7);
  EXPECT_EQ(second.losses.size(), 3u);
  EXPECT_FALSE(second.finished);
  c.stop_after = 0;
  const DPOResult third = train_dpo(c);
  EXPECT_EQ(third.start_step, 7);
  EXPECT_EQ(third.step, 10);
  ASSERT_EQ(third.losses.size(), 3u);
  EXPECT_TRUE(third.finished);
  for (size_t i = 0; i < 3; ++i) EXPECT_EQ(third.losses[i], straight.losses[7 + i]) << i;
  EXPECT_EQ(third.before.ground_truth, straight.before.ground_truth);
  EXPECT_EQ(third.before.kl, straight.before.kl);
  EXPECT_EQ(third.after.ground_truth, straight.after.ground_truth);

  auto steps = [](const std::vector<json::Value>& lines) {
    std::vector<int64_t> s;
    for (const json::Value& v : lines) s.push_back(v.at("step").as_int());
    return s;
  };
  const std::vector<json::Value> a = metrics(straight), b = metrics(third);
  EXPECT_EQ(steps(a), (std::vector<int64_t>{0, 2, 4, 6, 8, 10}));
  EXPECT_EQ(steps(b), steps(a));
  // Step 4's row, logged by the first invocation just before it stopped, is the straight run's.
  EXPECT_EQ(b[2].at("loss").as_double(), a[2].at("loss").as_double());
  EXPECT_EQ(b[2].at("heldout_accuracy").as_double(), a[2].at("heldout_accuracy").as_double());
  // Every row is the straight run's, but its wall time: step 8's averages steps 7 and 8 though
  // the second invocation stopped between them (the checkpoint keeps the window's sums).
  for (size_t i = 0; i < a.size() && i < b.size(); ++i)
    for (const auto& [k, v] : a[i].as_object()) {
      if (k != "elapsed_seconds") {
        EXPECT_EQ(b[i].at(k), v) << "row " << i << " key " << k;
      }
    }
}

// A resume refuses a checkpoint whose model or tokenizer is not the --init run's, though its
// tensors have the shapes the model expects (another n_head; the same number of other symbols):
// the error names the file, the field and both values, and the run is left as it was. A
// checkpoint without them is refused too. With its own checkpoint back, the run goes on.
TEST_F(DPORun, ResumeRefusesACheckpointOfAnotherModelOrTokenizer) {
  DPOConfig c = tiny("dpo-foreign");
  c.max_steps = 4;
  c.eval_every = 0;
  c.stop_after = 2;
  train_dpo(c);
  c.stop_after = 0;
  c.resume = true;
  const std::string ckpt = *dir_ + "/dpo-foreign/checkpoint.safetensors";
  const std::string original = *dir_ + "/dpo-foreign-step2.safetensors";
  std::filesystem::copy_file(ckpt, original);
  Metadata meta;
  const NamedTensors tensors = load_tensors(original, &meta);
  const json::Value model = json::parse(meta.at("model_config"));
  const std::string symbols = json::parse(meta.at("tokenizer")).at("symbols").as_string();
  ASSERT_LT(symbols.back(), '~');
  const auto refused = [&](const std::string& key, const std::string& value) {
    Metadata edited = meta;
    if (value.empty())
      edited.erase(key);
    else
      edited[key] = value;
    save_tensors(ckpt, tensors, edited);
    const std::map<std::string, std::string> files =
        rlft::testing::files_of(*dir_ + "/dpo-foreign");
    const std::string e = error_of([&] { train_dpo(c); });
    EXPECT_TRUE(rlft::testing::files_of(*dir_ + "/dpo-foreign") == files)
        << key << ": a refused resume changed the run's files";
    return e;
  };
  const std::string source = " but --init " + *dir_ + "/sft has ";
  const std::string not_this = ": the checkpoint is not of the model this run trains";

  json::Value other_model = model;
  const int64_t n_head = model.at("n_head").as_int();
  other_model.set("n_head", n_head * 2);
  EXPECT_EQ(refused("model_config", other_model.dump()),
            ckpt + ": model_config field 'n_head' is " + std::to_string(n_head * 2) + source +
                std::to_string(n_head) + not_this);
  const std::string other_symbols =
      symbols.substr(0, symbols.size() - 1) + char(symbols.back() + 1);
  json::Value other_tok = json::parse(meta.at("tokenizer"));
  other_tok.set("symbols", other_symbols);
  EXPECT_EQ(refused("tokenizer", other_tok.dump()), ckpt + ": tokenizer field 'symbols' is " +
                                                        json::Value(other_symbols).dump() + source +
                                                        json::Value(symbols).dump() + not_this);
  EXPECT_EQ(refused("tokenizer", ""),
            ckpt +
                ": no 'tokenizer' in the checkpoint's metadata (not an rlft GPT training "
                "checkpoint)");

  std::filesystem::copy_file(original, ckpt, std::filesystem::copy_options::overwrite_existing);
  const DPOResult r = train_dpo(c);
  EXPECT_EQ(r.start_step, 2);
  EXPECT_EQ(r.step, 4);
}

// With dropout in the policy (an SFT run with dropout 0.1) a stopped and resumed run takes the
// straight run's steps: the masks of step s depend on (seed, s) only (they came from the loaded
// model's fixed stream, restarted by each resume).
TEST_F(DPORun, ResumeWithDropoutTakesTheStraightRunsSteps) {
  SFTConfig s = rlft::testing::tiny_sft_config(*dir_, "sft-dropout", 128,
                                               rlft::testing::tiny_reviews(1234, 2));
  s.dropout = 0.1;
  train_sft(s);
  DPOConfig c = tiny("dpo-dropout");
  c.init = *dir_ + "/sft-dropout";
  c.max_steps = 6;
  c.eval_every = 0;
  const auto runs = rlft::testing::stop_and_resume(train_dpo, c, "dpo-dropout-straight",
                                                   "dpo-dropout-resumed", 3);
  rlft::testing::expect_losses_continue(runs.resumed.losses, runs.straight.losses, 3, 3);
}

// A held-out fraction that rounds to no pair (0.01 of 44, or 0) holds out none: then no held-out
// numbers are logged or reported (they used to read 0.000, an accuracy over no pair).
TEST_F(DPORun, NoHeldOutPairsLogsNoHeldOutNumbers) {
  DPOConfig c = tiny("dpo-split");
  c.eval_fraction = 0.01;
  c.max_steps = 2;
  c.eval_every = 0;
  const DPOResult r = train_dpo(c);
  EXPECT_EQ(r.heldout_pairs, 0);
  for (const json::Value& m : metrics(r)) EXPECT_FALSE(m.contains("heldout_accuracy")) << m.dump();
  c.eval_fraction = 0.1;
  c.name = "dpo-split-4";
  const DPOResult r4 = train_dpo(c);
  EXPECT_EQ(r4.heldout_pairs, 4);
  EXPECT_TRUE(metrics(r4).back().contains("heldout_accuracy"));
  RewardModelConfig rc;
  rc.prefs = c.prefs;
  rc.init = c.init;
  rc.epochs = 1;
  rc.batch = 16;
  rc.eval_fraction = 0;
  rc.out_dir = *dir_;
  rc.name = "rm-split";
  rc.quiet = true;
  const RewardModelResult rr = train_reward_model(rc);
  EXPECT_EQ(rr.evals.back().pairs, 0);
  const std::string rm_metrics = fs::read_file(rr.run_dir + "/metrics.jsonl");
  EXPECT_EQ(rm_metrics.find("heldout_"), std::string::npos) << rm_metrics;
}

// --checkpoint-every 0: no periodic checkpoint, one at --stop-after (so the run resumes) and one
// at the end.
TEST_F(DPORun, CheckpointEveryZeroWritesAtStopAndEnd) {
  DPOConfig c = tiny("dpo-ckpt0");
  c.checkpoint_every = 0;
  c.stop_after = 4;
  const DPOResult first = train_dpo(c);
  EXPECT_EQ(first.step, 4);
  const std::string ckpt = first.run_dir + "/checkpoint.safetensors";
  ASSERT_TRUE(fs::exists(ckpt));
  const auto step_of = [&] {
    Metadata meta;
    load_tensors(ckpt, &meta);
    return meta.at("step");
  };
  EXPECT_EQ(step_of(), "4");
  c.stop_after = 0;
  c.resume = true;
  const DPOResult second = train_dpo(c);
  EXPECT_EQ(second.start_step, 4);
  EXPECT_EQ(second.step, 10);
  EXPECT_TRUE(second.finished);
  EXPECT_EQ(step_of(), "10");
}

// The evaluation before training (step 0) scores the policy while it is still the reference,
// computed over the same held-out pairs in the same chunks: every implicit reward
// β·(log π − log π_ref) is 0 to the bit, so each pair is a tie. A tie is not a win: held-out
// accuracy 0 (not 1), margin 0, and the sigmoid loss −log σ(0) = ln 2 on every pair.
TEST_F(DPORun, TiesBeforeTrainingAreNotCorrectPairs) {
  DPOConfig c = tiny("dpo-ties");
  c.max_steps = 1;
  c.log_every = 1;
  c.eval_every = 0;
  const DPOResult r = train_dpo(c);
  ASSERT_EQ(r.heldout_pairs, 4);
  const std::vector<json::Value> rows = metrics(r);
  ASSERT_FALSE(rows.empty());
  const json::Value& m = rows[0];
  ASSERT_EQ(m.at("step").as_int(), 0);
  EXPECT_EQ(m.at("heldout_accuracy").as_double(), 0.0);
  EXPECT_EQ(m.at("heldout_margin").as_double(), 0.0);
  EXPECT_NEAR(m.at("heldout_loss").as_double(), std::log(2.0), 1e-6);
}
