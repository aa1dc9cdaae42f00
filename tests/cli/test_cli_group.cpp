// Bad input to the group-relative RL commands (lm grpo …), PPO-RLHF (lm ppo), RRHF (lm rrhf)
// and the experiments (experiment frontier|verifiable): one line on stderr naming the option,
// exit status 2, and an earlier run of the same name left exactly as it was.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "cli/cli_util.h"

namespace {

using namespace rlft::testing::cli;  // run, expect_error, slurp, …

// Tiny runs made once for the whole suite: an arith SFT run, a group RL run on it, a reviews
// SFT run, a few preference pairs, a reward model, and a PPO and an RRHF run from those.
class GroupCli : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (dir_) return;
    dir_ = new std::string(scratch_dir("group").string());
    const std::string d = *dir_;
    make(
        "lm sft --model nano --steps 2 --train-size 200 --eval-size 20 --eval-every 2 "
        "--eval-examples 8 --eval-generate 0 --quiet --out-dir " +
        d + " --name sft");
    make(grpo("grpo") + " --steps 2");
    make(
        "lm sft --task reviews --model nano --steps 2 --train-size 200 --eval-size 4 "
        "--eval-every 2 --eval-examples 4 --eval-generate 0 --quiet --out-dir " +
        d + " --name rsft");
    // Preference pairs written here: a 2-step SFT model samples too few clean ones for lm prefs.
    std::string prefs;
    for (const char* topic : {"plot", "acting", "music", "ending"})
      prefs += std::string("{\"prompt\":\"review: the ") + topic +
               " was\",\"chosen\":\" great and fun.\",\"rejected\":\" dull and bad.\"}\n";
    std::ofstream(d + "/prefs.jsonl") << prefs << prefs;
    make("lm rm --prefs " + d + "/prefs.jsonl --init " + d + "/rsft --epochs 1 --batch 4 " +
         "--quiet --out-dir " + d + " --name rm");
    make(ppo("lppo"));
    make(rrhf("rrhf"));
  }
  static void make(const std::string& args) {
    const Outcome o = run(args);
    ASSERT_EQ(o.status, 0) << args << "\nstderr: " << o.err;
  }
  static std::string grpo(const std::string& name, const std::string& algo = "grpo") {
    return "lm " + algo + " --init " + *dir_ + "/sft --prompts 4 --group 4 --minibatches 2 " +
           "--max-new-tokens 6 --eval-every 0 --eval-prompts 4 --quiet --out-dir " + *dir_ +
           " --name " + name;
  }
  static std::string ppo(const std::string& name) {
    return "lm ppo --init " + *dir_ + "/rsft --reward-model " + *dir_ + "/rm --steps 1 " +
           "--batch 2 --max-new-tokens 8 --eval-samples 1 --quiet --out-dir " + *dir_ + " --name " +
           name;
  }
  static std::string rrhf(const std::string& name) {
    return "lm rrhf --init " + *dir_ + "/rsft --reward-model " + *dir_ + "/rm --steps 1 " +
           "--prompts-per-step 1 --k 2 --eval-samples 1 --quiet --out-dir " + *dir_ + " --name " +
           name;
  }
  // The files of run `name`, to compare before and after a failed command.
  static std::vector<std::string> files(const std::string& name) {
    std::vector<std::string> out;
    for (const char* f : {"config.json", "metrics.jsonl", "checkpoint.safetensors"})
      out.push_back(slurp(*dir_ + "/" + name + "/" + f));
    return out;
  }
  // `args` fails with one line naming `expect`, and run `keep` is untouched.
  static void fails(const std::string& args, const std::string& expect,
                    const std::string& keep = "") {
    const std::vector<std::string> before = keep.empty() ? std::vector<std::string>() : files(keep);
    expect_error(args, expect);
    if (!keep.empty()) {
      const std::vector<std::string> after = files(keep);
      for (size_t i = 0; i < after.size(); ++i) {
        EXPECT_FALSE(before[i].empty()) << keep << " file " << i;
        EXPECT_EQ(after[i], before[i]) << args << ": run " << keep << " changed (file " << i << ")";
      }
    }
  }
  static std::string* dir_;
};
std::string* GroupCli::dir_ = nullptr;

// Every numeric option of the group RL commands is checked before the run directory is
// touched: a bad value names its option, and the earlier run of that name keeps its files.
TEST_F(GroupCli, GroupRLSettingsAreCheckedBeforeTheRunIsTouched) {
  struct Case {
    std::string flags, expect, algo = "grpo";
  };
  const Case cases[] = {
      {"--dual-clip 0.5", "--dual-clip must be 0 (off) or a constant c > 1, got 0.5"},
      {"--format-reward nan", "--format-reward must be a finite number"},
      {"--temperature inf", "--temperature must be a finite number"},
      {"--temperature 0", "--temperature must be a finite number > 0, got 0"},
      {"--reward-correct nan", "--reward-correct must be a finite number"},
      {"--reward-wrong inf", "--reward-wrong must be a finite number"},
      {"--max-new-tokens -1", "--max-new-tokens must be >= 0"},
      {"--train-prompts -1", "--train-prompts must be >= 0"},
      {"--eval-every -1", "--eval-every must be >= 0"},
      {"--eval-prompts -1", "--eval-prompts must be >= 0"},
      {"--overlong-max -1", "--overlong-max must be >= 0"},
      {"--overlong-max 4 --overlong-cache 5", "--overlong-cache 5 exceeds --overlong-max 4"},
      {"--group 1", "--group must be at least 2"},
      {"--epsilon 1.5", "--epsilon must be in [0, 1]"},
      {"--epsilon-high nan", "--epsilon-high must be a finite number"},
      {"--beta inf", "--beta must be a finite number"},
      {"--lr nan", "--lr must be a finite number"},
      {"--weight-decay -1", "--weight-decay must be a finite number >= 0, got -1"},
      {"--beta1 1", "--beta1 must be in [0, 1)"},
      {"--beta2 nan", "--beta2 must be in [0, 1)"},
      {"--grad-clip -1", "--grad-clip must be a finite number >= 0 (0: off), got -1"},
      {"--min-lr-ratio nan", "--min-lr-ratio must be in [0, 1]"},
      {"--minibatches 17", "--minibatches must be in [1, prompts x group = 16]"},
      {"--prompts 4611686018427387904 --group 4", "responses per step is more than"},
      {"--train-prompts 3", "--prompts 4 exceeds the 3 train prompts"},
      {"--checkpoint-every -1", "--checkpoint-every must be >= 0"},
      {"--dcpo-r-max nan", "--dcpo-r-max must be a finite number", "dcpo"},
      {"--dcpo-r-max -1", "--dcpo-r-max must be a finite number > 1", "dcpo"},
      {"--dcpo-r-max 0.5", "--dcpo-r-max must be a finite number > 1", "dcpo"},
      {"--ratio-level sequence", "dcpo: per-token bounds need --ratio-level token", "dcpo"},
      {"--kl k2", "--kl: unknown placement 'k2'"},
      {"--kl none --beta 0.04", "--beta 0.04 has no effect with --kl none"},
      {"--beta 0.1", "--beta 0.1 has no effect with --kl none", "dapo"},  // DAPO: no KL
  };
  for (const Case& c : cases)
    fails(grpo("grpo", c.algo) + " --steps 2 " + c.flags, c.expect, "grpo");
  fails(grpo("grpo") + " --steps 2 --init " + *dir_ + "/rsft",
        "/rsft: a run of task reviews, which has no verifier", "grpo");
}

// `--kl none` turns GRPO's default β = 0.04 off with it: config.json records β = 0, the
// coefficient the run trained with (a written --beta beside it is an error, above).
TEST_F(GroupCli, KLNoneTurnsTheDefaultBetaOff) {
  make(grpo("grpo-nokl") + " --steps 1 --kl none");
  const rlft::json::Value config = rlft::json::parse(slurp(*dir_ + "/grpo-nokl/config.json"));
  EXPECT_EQ(config.at("kl").as_string(), "none");
  EXPECT_EQ(config.at("beta").as_double(), 0.0);
  EXPECT_EQ(rlft::json::parse(slurp(*dir_ + "/grpo/config.json")).at("beta").as_double(), 0.04);
}

// A resumed run with a changed setting, or a corrupted prompt position, fails before anything
// is rewritten (the checkpoint corruption cases are in tests/rl/test_group_rl.cpp).
TEST_F(GroupCli, GroupRLResumeWithBadSettingsLeavesTheRun) {
  fails(grpo("grpo") + " --steps 4 --resume --dual-clip 0.5", "--dual-clip", "grpo");
  fails(grpo("grpo") + " --steps 4 --resume --lr 1e-3", "setting 'lr'", "grpo");
}

// --name and --resume are enough: the options left out (--init, --group, …) take the run's
// recorded values, and a run named by its --init alone is found under its default name.
TEST_F(GroupCli, GroupRLResumeTakesTheRecordedSettings) {
  make(grpo("grpo-bare", "dr-grpo") + " --steps 1 --epsilon 0.3");
  const auto settings = recorded_settings(*dir_ + "/grpo-bare", {"resume", "steps"});
  const int logged = lines(slurp(*dir_ + "/grpo-bare/metrics.jsonl"));
  const Outcome o =
      run("lm dr-grpo --quiet --out-dir " + *dir_ + " --name grpo-bare --resume --steps 2");
  EXPECT_EQ(o.status, 0) << o.err;
  EXPECT_EQ(o.out.rfind("done: 1 step in ", 0), 0u) << o.out;
  EXPECT_NE(o.out.find("(resumed: the run is at step 2); reward "), std::string::npos) << o.out;
  EXPECT_EQ(recorded_settings(*dir_ + "/grpo-bare", {"resume", "steps"}), settings);
  EXPECT_GT(lines(slurp(*dir_ + "/grpo-bare/metrics.jsonl")), logged);
  // Written, an option must still match the record.
  fails("lm dr-grpo --quiet --out-dir " + *dir_ +
            " --name grpo-bare --resume --steps 3 --epsilon 0.2",
        "--resume: setting 'epsilon' is 0.2 but the run at " + *dir_ +
            "/grpo-bare was started with 0.3",
        "grpo-bare");
  // Without --name: the default name "<algo>-<init run>".
  make("lm dr-grpo --init " + *dir_ +
       "/sft --prompts 4 --group 4 --minibatches 2 --max-new-tokens 6 "
       "--eval-every 0 --eval-prompts 4 --quiet --out-dir " +
       *dir_ + " --steps 1");
  const int logged_by_init = lines(slurp(*dir_ + "/dr-grpo-sft/metrics.jsonl"));
  const Outcome by_init =
      run("lm dr-grpo --quiet --init " + *dir_ + "/sft --out-dir " + *dir_ + " --resume --steps 2");
  EXPECT_EQ(by_init.status, 0) << by_init.err;
  EXPECT_GT(lines(slurp(*dir_ + "/dr-grpo-sft/metrics.jsonl")), logged_by_init);
}

// lm rrhf and lm ppo stop with --stop-after (no made-up final numbers) and go on with
// --name and --resume alone: the options left out take the run's recorded values.
TEST_F(GroupCli, RRHFAndPPOStopAndResumeByName) {
  const std::pair<std::string, std::string> runs[] = {{"rrhf", rrhf("rrhf-stop")},
                                                      {"ppo", ppo("ppo-stop")}};
  for (const auto& [algo, command] : runs) {
    const std::string name = algo + "-stop";
    const Outcome stopped = run(command + " --steps 2 --stop-after 1");
    ASSERT_EQ(stopped.status, 0) << stopped.err;
    EXPECT_NE(stopped.out.find("done: at step 1, no final evaluation in this invocation"),
              std::string::npos)
        << stopped.out;
    const auto settings = recorded_settings(*dir_ + "/" + name, {"resume", "stop_after"});
    const Outcome resumed =
        run("lm " + algo + " --quiet --out-dir " + *dir_ + " --name " + name + " --resume");
    EXPECT_EQ(resumed.status, 0) << resumed.err;
    EXPECT_EQ(resumed.out.rfind("done: ground truth ", 0), 0u) << resumed.out;
    EXPECT_EQ(recorded_settings(*dir_ + "/" + name, {"resume", "stop_after"}), settings);
    // Written, an option must match the record; the run is left as it was.
    fails("lm " + algo + " --quiet --out-dir " + *dir_ + " --name " + name +
              " --resume --temperature 0.5",
          "--resume: setting 'temperature' is 0.5", name);
  }
}

// --stop-after is not taken from the record: a run stopped after 1 of its 3 steps and resumed
// with --resume alone runs to its end (with the recorded 1 it would stop again at step 2).
TEST_F(GroupCli, AResumeRunsToTheEndUnlessStopAfterIsWrittenAgain) {
  const std::string name = "ppo-stop3";
  const Outcome stopped = run(ppo(name) + " --steps 3 --stop-after 1");
  ASSERT_EQ(stopped.status, 0) << stopped.err;
  const Outcome resumed =
      run("lm ppo --quiet --out-dir " + *dir_ + " --name " + name + " --resume");
  EXPECT_EQ(resumed.status, 0) << resumed.err;
  EXPECT_EQ(resumed.out.rfind("done: ground truth ", 0), 0u) << resumed.out;
}

// lm ppo: every numeric option, each named (not a deep error from the op it would break), and
// the earlier run of the name keeps its metrics and checkpoint.
TEST_F(GroupCli, PPOSettingsAreNamedAndTheEarlierRunIsKept) {
  const std::pair<std::string, std::string> cases[] = {
      {"--kl-ctl nan", "--kl-ctl must be a finite number >= 0"},
      {"--kl-ctl -1", "--kl-ctl must be a finite number >= 0"},
      {"--adaptive-kl --kl-horizon 0", "--kl-horizon must be a finite number > 0"},
      {"--adaptive-kl --kl-horizon 0.4",
       "--kl-horizon must be more than 0.2 x --batch = 0.4 with --adaptive-kl"},
      {"--kl-target -1", "--kl-target must be a finite number > 0"},
      {"--clip-reward-value -1", "--clip-reward-value must be a finite number > 0"},
      {"--clip-reward-value nan", "--clip-reward-value must be a finite number > 0"},
      {"--cliprange-value nan", "--cliprange-value must be a finite number > 0"},
      {"--cliprange 0", "--cliprange must be a finite number in (0, 1]"},
      {"--gamma 2", "--gamma must be a finite number in [0, 1]"},
      {"--lam nan", "--lam must be a finite number in [0, 1]"},
      {"--grad-clip -1", "--grad-clip must be a finite number >= 0"},
      {"--actor-lr inf", "--actor-lr must be a finite number > 0"},
      {"--critic-lr 0", "--critic-lr must be a finite number > 0"},
      {"--temperature nan", "--temperature must be a finite number > 0"},
      {"--max-new-tokens -1", "--max-new-tokens must be >= 0"},
      {"--eval-samples 0", "--eval-samples must be in [1, 1048576], got 0"},
      {"--eval-samples 2147483648", "--eval-samples must be in [1, 1048576], got 2147483648"},
      {"--batch 2147483648", "--batch must be in [1, 1048576], got 2147483648"},
      {"--eval-every -1", "--eval-every must be >= 0"},
      {"--minibatches 3", "--minibatches 3 must divide --batch 2"},
      {"--ppo-epochs 0", "--ppo-epochs must be positive"},
      {"--steps 0", "--steps must be positive"},
  };
  for (const auto& [flags, expect] : cases) fails(ppo("lppo") + " " + flags, expect, "lppo");
  // Inputs of the wrong kind are named before the run is touched too.
  fails(ppo("lppo") + " --init " + *dir_ + "/sft", "rm: its tokenizer differs", "lppo");
  fails(ppo("lppo") + " --reward-model " + *dir_ + "/rsft", "not a reward model", "lppo");
}

// lm rrhf: --log-every 0 was a division by zero (SIGFPE); each count names its own option.
TEST_F(GroupCli, RRHFSettingsAreNamedAndTheEarlierRunIsKept) {
  const std::pair<std::string, std::string> cases[] = {
      {"--log-every 0", "--log-every must be positive"},
      {"--steps 0", "--steps must be positive"},
      {"--prompts-per-step 0", "--prompts-per-step must be in [1, 1048576], got 0"},
      {"--prompts-per-step 2147483648", "--prompts-per-step must be in [1, 1048576]"},
      {"--k 1", "--k must be at least 2"},
      {"--k 2147483648", "--k must be in [1, 1048576], got 2147483648"},
      {"--k 4096 --prompts-per-step 4096",
       "--prompts-per-step x --k = 4096 x 4096 candidates per step is more than 1048576"},
      {"--lr nan", "--lr must be a finite number > 0"},
      {"--temperature -1", "--temperature must be a finite number > 0"},
      {"--grad-clip nan", "--grad-clip must be a finite number >= 0"},
      {"--eval-every -1", "--eval-every must be >= 0"},
      {"--eval-samples 0", "--eval-samples must be in [1, 1048576], got 0"},
  };
  for (const auto& [flags, expect] : cases) fails(rrhf("rrhf") + " " + flags, expect, "rrhf");
  // An arith run has no reviews ground truth to score or evaluate with (it ran, at 0.5, before).
  const std::string truth = "lm rrhf --init " + *dir_ + "/sft --scorer ground_truth --steps 1 " +
                            "--prompts-per-step 1 --k 2 --eval-samples 1 --quiet --out-dir " +
                            *dir_ + " --name rrhf";
  fails(truth, "/sft: a run of task 'arith'; rlft lm rrhf needs a reviews SFT run", "rrhf");
  // A reward model beside the ground truth would be ignored: named, not silently dropped.
  fails(rrhf("rrhf") + " --scorer ground_truth",
        "rlft lm rrhf: --reward-model " + *dir_ + "/rm is not used with --scorer ground_truth",
        "rrhf");
  fails(rrhf("rrhf") + " --init " + *dir_ + "/sft", "rm: its tokenizer differs", "rrhf");
}

// experiment frontier: the values and the reused runs are checked before any job starts (no
// logs directory appears).
TEST_F(GroupCli, FrontierChecksItsInputsBeforeAnyJob) {
  const std::string d = *dir_, out = d + "/frontier";
  const std::string base = "experiment frontier --quiet --out-dir " + out;
  const std::string reuse = base + " --sft " + d + "/rsft --prefs " + d + "/prefs.jsonl";
  const std::pair<std::string, std::string> cases[] = {
      {base + " --kl-ctls nan", "--kl-ctls: nan is not a finite number >= 0"},
      {base + " --kl-ctls 0.1,0.10", "--kl-ctls: 0.1 is listed twice"},
      {base + " --betas inf", "--betas: inf is not a finite number > 0"},
      {base + " --ppo-actor-lr nan", "--ppo-actor-lr must be a finite number > 0"},
      {base + " --ppo-eval-every -1", "--ppo-eval-every must be >= 0"},
      {base + " --pairs -1", "--pairs must be >= 0"},
      {base + " --sft " + d + "/nope", "--sft " + d + "/nope: no such run"},
      {base + " --sft " + d + "/sft", "task 'arith'; the frontier is measured on reviews"},
      {base + " --sft " + d + "/rm", "not an SFT run"},
      {base + " --sft " + d + "/rsft --prefs " + d + "/nope.jsonl",
       "--prefs " + d + "/nope.jsonl: no such file"},
      {reuse + " --reward-model " + d + "/rsft",
       "--reward-model " + d + "/rsft: not a reward model"},
      {reuse + " --reward-model " + d + "/nope", "--reward-model " + d + "/nope: no such run"},
  };
  for (const auto& [args, expect] : cases) fails(args, expect);
  EXPECT_FALSE(std::filesystem::exists(out + "/logs")) << "a job started";
}

// A run named after its own --init would delete that run's checkpoint at its first write.
TEST_F(GroupCli, ARunIsNeverWrittenOverItsOwnInit) {
  fails(grpo("sft") + " --steps 1", "--init " + *dir_ + "/sft is the run this command would write",
        "sft");
}

// experiment verifiable: --init, --preset and --rl-args are checked before any job starts; a
// job that fails anyway is one line naming the job, its error and its log.
TEST_F(GroupCli, VerifiableChecksItsInputsAndAFailedJobIsOneLine) {
  const std::string d = *dir_, out = d + "/verifiable";
  const std::string base = "experiment verifiable --quiet --out-dir " + out +
                           " --methods grpo --seeds 1 --steps 1 --prompts 2 --group 2 "
                           "--minibatches 1 --eval-prompts 2 --eval-samples 1 --test-prompts 2";
  const std::string init = base + " --init " + d + "/sft";
  const std::pair<std::string, std::string> cases[] = {
      {base + " --init " + d + "/nope", "--init " + d + "/nope: no such run"},
      {base + " --init " + d + "/rsft", "a run of task 'reviews', which has no verifier"},
      {base + " --preset nope", "unknown preset 'nope'"},
      {init + " --rl-args='--frobnicate 1'",
       "the grpo runs (--rl-args '--frobnicate 1'): rlft lm grpo: unknown option '--frobnicate'"},
      // The help's own form, a separate word starting with "--", is the value (not a flag).
      {init + " --rl-args '--frobnicate 1'", "rlft lm grpo: unknown option '--frobnicate'"},
      {init + " --rl-args='--dual-clip 0.5'", "--dual-clip must be 0 (off) or a constant c > 1"},
      {init + " --rl-args='--temperature'", "--temperature: missing value"},
      {init + " --eval-every -1", "--eval-every must be >= 0"},
      {init + " --lr nan", "--lr must be a finite number"},
      {init + " --group 1", "--group must be at least 2"},
      {init + " --parallel 0", "--parallel must be in [1, 64]"},
      // --rl-args adds flags; it cannot change what the experiment sets (and reports) itself.
      {init + " --rl-args='--seed 5'",
       "--rl-args: --seed is set by the experiment itself (per run)"},
      {init + " --rl-args='--steps 1'",
       "--rl-args: --steps is set by the experiment itself (use the experiment's own --steps)"},
      {init + " --rl-args='--init " + d + "/nope'",
       "--rl-args: --init is set by the experiment itself"},
      {init + " --rl-args false", "--rl-args: 'false' is not an option"},
  };
  for (const auto& [args, expect] : cases) fails(args, expect);
  EXPECT_FALSE(std::filesystem::exists(out + "/logs")) << "a job started";
  // (A job that fails once started is one line too:
  // ExperimentRunner.FailureIsOneLineWithTheJobsError.)

  // A second call with another --steps trains the run again and evaluates it again (its
  // evaluation job's command is the same, but what it evaluates is not).
  const Outcome first = run(init);
  ASSERT_EQ(first.status, 0) << first.err;
  std::string again = init;
  again.replace(again.find("--steps 1"), 9, "--steps 2");
  const Outcome second = run(again);
  ASSERT_EQ(second.status, 0) << second.err;
  EXPECT_NE(slurp(out + "/runs/grpo-s1/config.json").find("\"steps\": 2"), std::string::npos);
  EXPECT_TRUE(std::filesystem::exists(out + "/runs/grpo-s1/eval_test.json"));
}

}  // namespace
