// The rlft command on bad input: one clear line on stderr and exit status 2; --help exits 0.
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "engine/cuda.h"

namespace {

struct Outcome {
  int status = -1;
  std::string out, err;
};

Outcome run(const std::string& args) {
  const auto dir = std::filesystem::temp_directory_path() / "rlft_test_cli";
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
  std::string reason;
  const bool gpu = rlft::cuda::device_count(&reason) > 0;
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

TEST(Cli, HelpListsOptionsWithDefaults) {
  const Outcome o = run("train ppo --help");
  EXPECT_EQ(o.status, 0);
  EXPECT_NE(o.out.find("--clip-coef"), std::string::npos);
  EXPECT_NE(o.out.find("(default: 0.2)"), std::string::npos);
  EXPECT_EQ(run("--help").status, 0);
}

}  // namespace
