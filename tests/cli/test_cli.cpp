// The rlft command on bad input: one clear line on stderr and exit status 2; --help exits 0.
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include <sys/wait.h>
#include <unistd.h>

#include "test_util.h"

namespace {

struct Outcome {
  int status = -1;
  std::string out, err;
};

Outcome run(const std::string& args) {
  // One directory per test process: ctest runs several at once (a shared one raced).
  const auto dir =
      std::filesystem::temp_directory_path() / ("rlft_test_cli-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const std::string out = (dir / "out.txt").string(), err = (dir / "err.txt").string();
  const std::string cmd = std::string(RLFT_CLI) + " " + args + " >" + out + " 2>" + err;
  const int raw = std::system(cmd.c_str());
  Outcome o;
  o.status = WIFEXITED(raw) ? WEXITSTATUS(raw) : -1;
  auto slurp = [](const std::string& p) {
    std::ifstream f(p);
    std::stringstream ss;
    ss << f.rdbuf();
    return ss.str();
  };
  o.out = slurp(out);
  o.err = slurp(err);
  return o;
}

int lines(const std::string& s) {
  int n = 0;
  for (char c : s) n += c == '\n';
  return n;
}

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

TEST(Cli, HelpListsOptionsWithDefaults) {
  const Outcome o = run("train ppo --help");
  EXPECT_EQ(o.status, 0);
  EXPECT_NE(o.out.find("--clip-coef"), std::string::npos);
  EXPECT_NE(o.out.find("(default: 0.2)"), std::string::npos);
  EXPECT_EQ(run("--help").status, 0);
}

}  // namespace
