// The rlft command on bad input: one clear line on stderr and exit status 2; --help exits 0.
#include <gtest/gtest.h>

#include <cctype>
#include <filesystem>
#include <string>

#include "cli/cli_util.h"
#include "test_util.h"

namespace {

using namespace rlft::testing::cli;  // run, expect_error, slurp, …

TEST(Cli, BadInputIsOneLineAndExit2) {
  struct Case {
    std::string args, expect;
  };
  const auto unwritable = std::string("/proc/rlft-cannot-write");
  const bool gpu = rlft::testing::no_gpu_reason().empty();
  const Case cases[] = {
      {"train ppo --env Nope-v0 --quiet", "Nope-v0"},
      {"train ppo --lr abc", "--lr: 'abc' is not a number"},
      {"train ppo --total-steps 10", "less than one rollout"},
      {"train ppo --frobnicate 1", "unknown option '--frobnicate'"},
      {"train ppo --total-steps", "--total-steps: missing value"},
      {"train ppo --runs-dir " + unwritable + " --total-steps 512 --quiet", unwritable},
      {"train sarsa", "unknown algorithm 'sarsa'"},
      {"train reinforce --baseline median --quiet", "baseline must be mean or none"},
      {"eval --run /nonexistent/run", "no policy at /nonexistent/run/policy.safetensors"},
      {"frobnicate", "unknown command 'frobnicate'"},
      {"train ppo --preset moon", "unknown preset 'moon'"},
      {"lm sft --preset arith-rl-init --preset=x",
       "--preset: given twice ('arith-rl-init' and 'x')"},
      // REINFORCE runs on a GPU when one answers; cuda:64 is refused on any machine.
      {"train reinforce --device cuda:64 --quiet",
       gpu ? "--device cuda:64: no such device" : "--device cuda:64: no CUDA device answers ("},
      {"train reinforce --device tpu", "unknown device 'tpu'"},
  };
  for (const Case& c : cases) {
    const Outcome o = run(c.args);
    EXPECT_EQ(o.status, 2) << c.args << "\nstderr: " << o.err;
    EXPECT_EQ(lines(o.err), 1) << c.args << "\nstderr: " << o.err;
    EXPECT_EQ(o.err.rfind("rlft: error: ", 0), 0u) << o.err;
    EXPECT_NE(o.err.find(c.expect), std::string::npos) << c.args << "\nstderr: " << o.err;
  }
}

// Every language-model command takes --device cuda[:N]; without a GPU each says so in one line
// with the runtime's reason, before it reads its inputs or writes a run (so none are needed
// here). Skipped where a GPU answers: the commands would then start their runs.
TEST(Cli, LmCommandsOnCudaWithoutAGpuAreOneClearError) {
  if (rlft::testing::no_gpu_reason().empty()) GTEST_SKIP() << "a GPU is present";
  const std::string missing = "/nonexistent/rlft-run";
  const std::string cases[] = {
      "lm pretrain --device cuda --quiet --out-dir " + missing,
      "lm sft --device cuda:1 --quiet --out-dir " + missing,
      "lm sample --device cuda --run " + missing,
      "lm eval --device cuda --run " + missing,
      "lm grpo --device cuda --init " + missing,
      "lm rloo --device cuda --init " + missing,
      "lm prefs --device cuda --run " + missing,
      "lm rm --device cuda --prefs " + missing + " --init " + missing,
      "lm dpo --device cuda --prefs " + missing + " --init " + missing,
      "lm rrhf --device cuda --scorer ground_truth --init " + missing,
      "lm ppo --device cuda --init " + missing + " --reward-model " + missing,
  };
  for (const std::string& args : cases) {
    const Outcome o = run(args);
    EXPECT_EQ(o.status, 2) << args << "\nstderr: " << o.err;
    EXPECT_EQ(lines(o.err), 1) << args << "\nstderr: " << o.err;
    EXPECT_NE(o.err.find(": no CUDA device answers ("), std::string::npos)
        << args << "\nstderr: " << o.err;
  }
  const Outcome tpu = run("lm sample --device tpu --run " + missing);
  EXPECT_EQ(tpu.status, 2);
  EXPECT_NE(tpu.err.find("unknown device 'tpu'"), std::string::npos) << tpu.err;
}

// Where a run goes: never outside --runs-dir, never a forgotten value taken as a name, and a
// resume of a run that does not exist creates nothing.
TEST(Cli, RunNamesAndDirectoriesAreChecked) {
  const auto dir = scratch_dir("names").string();
  const struct {
    std::string args, expect;
  } cases[] = {
      {"train ppo --quiet --total-steps 512 --runs-dir ''",
       "the runs directory (--runs-dir, --out-dir) is an empty path"},
      // A run name made from --env never hides the environment's own error.
      {"train ppo --quiet --env Foo/Bar", "unknown environment 'Foo/Bar'"},
      {"train ppo --quiet --total-steps 512 --runs-dir " + dir + " --name ..",
       "run name '..': a run name is one path"},
      {"train ppo --quiet --total-steps 512 --runs-dir " + dir + " --name a/b", "run name 'a/b'"},
      {"train ppo --total-steps 512 --runs-dir " + dir + " --name --quiet",
       "--name: missing value (write --name=VALUE for a value that is itself an option)"},
      {"train ppo --quiet --total-steps 512 --runs-dir " + dir + " --name nope --resume",
       dir + "/nope: nothing to resume (no such run directory)"},
      // A newline in what the error quotes is written as \n: still one line.
      {"train 'sar\nsa'", "unknown algorithm 'sar\\nsa'"},
  };
  for (const auto& c : cases) {
    const Outcome o = run(c.args);
    EXPECT_EQ(o.status, 2) << c.args << "\nstderr: " << o.err;
    EXPECT_EQ(lines(o.err), 1) << c.args << "\nstderr: " << o.err;
    EXPECT_NE(o.err.find(c.expect), std::string::npos) << c.args << "\nstderr: " << o.err;
  }
  EXPECT_FALSE(std::filesystem::exists(dir + "/nope"))
      << "a failed resume created the run directory";
  EXPECT_FALSE(std::filesystem::exists(dir + "/a")) << "a run name with '/' created a directory";
}

// End to end: a command that fails on its settings leaves the earlier run of its name byte for
// byte (PPO checks every setting before it opens the run directory; the deferral of the
// first write itself is RunDir.AnEarlierRunsFilesGoOnlyAtTheNewRunsFirstWrite). A directory
// where a run file goes is named, not an internal error.
TEST(Cli, AFailedRunLeavesTheEarlierRunOfItsNameAsItWas) {
  const auto dir = scratch_dir("keep").string();
  const std::string base =
      "train ppo --quiet --total-steps 512 --num-envs 2 --num-steps 128 --runs-dir " + dir;
  ASSERT_EQ(run(base + " --name r").status, 0);
  const std::string metrics = slurp(dir + "/r/metrics.jsonl");
  const std::string ckpt = slurp(dir + "/r/checkpoint.safetensors");
  const std::string config = slurp(dir + "/r/config.json");
  ASSERT_FALSE(metrics.empty());
  ASSERT_FALSE(ckpt.empty());
  const Outcome bad = run(base + " --name r --total-steps 10");
  EXPECT_EQ(bad.status, 2) << bad.err;
  EXPECT_EQ(slurp(dir + "/r/metrics.jsonl"), metrics);
  EXPECT_EQ(slurp(dir + "/r/checkpoint.safetensors"), ckpt);
  EXPECT_EQ(slurp(dir + "/r/config.json"), config);

  std::filesystem::create_directories(dir + "/d/metrics.jsonl/sub");
  const Outcome in_the_way = run(base + " --name d");
  EXPECT_EQ(in_the_way.status, 2) << in_the_way.err;
  EXPECT_NE(in_the_way.err.find("cannot remove '" + dir + "/d/metrics.jsonl': it is a directory"),
            std::string::npos)
      << in_the_way.err;
}

TEST(Cli, HelpListsOptionsWithDefaults) {
  const Outcome o = run("train ppo --help");
  EXPECT_EQ(o.status, 0);
  EXPECT_NE(o.out.find("--clip-coef"), std::string::npos);
  EXPECT_NE(o.out.find("(default: 0.2)"), std::string::npos);
  EXPECT_EQ(run("--help").status, 0);
  expect_error("--help train", "rlft --help: unexpected argument 'train'");
  const Outcome experiment = run("experiment --help");
  EXPECT_EQ(experiment.status, 0) << experiment.err;
  EXPECT_NE(experiment.out.find("frontier|verifiable"), std::string::npos);
}

// Every option a trainer's --resume help names as free to differ is an option of that command
// (the list is written by hand per command: a renamed or missing flag must not be advertised).
TEST(Cli, ResumeHelpNamesOnlyTheCommandsOwnOptions) {
  for (const char* cmd : {"train ppo", "train reinforce", "lm pretrain", "lm sft", "lm rm",
                          "lm dpo", "lm rrhf", "lm ppo", "lm grpo", "lm dapo", "lm rloo"}) {
    const Outcome o = run(std::string(cmd) + " --help");
    ASSERT_EQ(o.status, 0) << cmd << ": " << o.err;
    const size_t at = o.out.find("\n  --resume ");
    ASSERT_NE(at, std::string::npos) << cmd;
    const std::string line = o.out.substr(at + 1, o.out.find('\n', at + 1) - at - 1);
    const size_t except = line.find("except ");
    ASSERT_NE(except, std::string::npos) << cmd << ": " << line;
    int named = 0;
    for (size_t f = line.find("--", except); f != std::string::npos; f = line.find("--", f + 2)) {
      size_t e = f + 2;
      while (e < line.size() &&
             (std::isalnum(static_cast<unsigned char>(line[e])) || line[e] == '-'))
        ++e;
      const std::string flag = line.substr(f, e - f);
      EXPECT_NE(o.out.find("\n  " + flag + " "), std::string::npos)
          << cmd << ": --resume's help names " << flag << ", which is not one of its options";
      ++named;
      f = e - 2;
    }
    EXPECT_GE(named, 4) << cmd << ": " << line;
  }
}

}  // namespace
