// rlft train ppo|reinforce, eval and plot on bad input: every setting is checked up front with
// one line naming the option and value (exit 2), before the run directory is made; a resumed
// run keeps its settings; damaged policy files and other runs' metrics are named as such.
#include <gtest/gtest.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>

#include "cli/cli_util.h"
#include "engine/checkpoint.h"

namespace {

using namespace rlft::testing::cli;  // run, expect_error, slurp, …

TEST(CliTrain, EveryBadSettingIsNamedBeforeTheRunIsMade) {
  const std::string dir = scratch_dir("bad-settings").string();
  const std::string ppo =
      "train ppo --total-steps 512 --num-envs 2 --num-steps 128 --runs-dir " + dir + " --name x";
  const std::string rf = "train reinforce --total-episodes 3 --runs-dir " + dir + " --name x";
  const struct {
    std::string args, expect;
  } cases[] = {
      // Not --quiet: --log-every 0 used to divide by zero at the first progress line (SIGFPE).
      {ppo + " --log-every 0", "ppo: --log-every must be positive, got 0"},
      {rf + " --log-every 0", "reinforce: --log-every must be positive, got 0"},
      {ppo + " --log-every -1", "--log-every must be positive, got -1"},
      {ppo + " --quiet --checkpoint-every -1",
       "--checkpoint-every must be >= 0 (0 = only at the end), got -1"},
      {ppo + " --quiet --target-kl -1",
       "--target-kl must be a finite number >= 0 (0 = off), got -1"},
      {ppo + " --quiet --kl-beta -1 --loss penalty",
       "--kl-beta must be a finite number > 0, got -1"},
      {ppo + " --quiet --kl-target 0 --loss penalty",
       "--kl-target must be a finite number > 0, got 0"},
      {ppo + " --quiet --ent-coef nan", "--ent-coef must be a finite number >= 0, got nan"},
      {ppo + " --quiet --vf-coef inf", "--vf-coef must be a finite number >= 0, got inf"},
      {ppo + " --quiet --log-std-init nan --env Pendulum-v1",
       "--log-std-init must be in [-20, 20], got nan"},
      {ppo + " --quiet --lr -3e-4", "--lr must be a finite number > 0, got -0.0003"},
      {ppo + " --quiet --gamma 1.01", "--gamma must be in [0, 1], got 1.01"},
      {ppo + " --quiet --gae-lambda -0.5", "--gae-lambda must be in [0, 1], got -0.5"},
      {ppo + " --quiet --clip-coef 0", "--clip-coef must be a finite number > 0, got 0"},
      {ppo + " --quiet --max-grad-norm -1",
       "--max-grad-norm must be a finite number >= 0 (0 = off), got -1"},
      {ppo + " --quiet --num-envs 0", "--num-envs must be in [1, 65536], got 0"},
      {ppo + " --quiet --num-steps 0", "--num-steps must be in [1, 16777216], got 0"},
      {ppo + " --quiet --num-envs 1e9", "--num-envs must be in [1, 65536], got 1000000000"},
      {ppo + " --quiet --hidden 1000000", "--hidden: layer size 1000000 is not in [1, 65536]"},
      {ppo + " --quiet --hidden 65536,65536",
       "ppo: --hidden: 65536 × 65536 weights between two layers is over the limit 67108864"},
      {ppo + " --quiet --preset ''", "unknown preset '' (known: "},
      {ppo + " --quiet --preset=", "unknown preset '' (known: "},
      {ppo + " --quiet --activation swish",
       "--activation must be tanh, relu, gelu or sigmoid, got 'swish'"},
      {rf + " --quiet --baseline-momentum 2", "--baseline-momentum must be in [0, 1], got 2"},
      {rf + " --quiet --baseline-momentum -1", "--baseline-momentum must be in [0, 1], got -1"},
      {rf + " --quiet --baseline-momentum nan", "--baseline-momentum must be in [0, 1], got nan"},
      {rf + " --quiet --lr inf", "reinforce: --lr must be a finite number > 0, got inf"},
      {rf + " --quiet --episodes-per-update 0", "--episodes-per-update must be positive, got 0"},
      {ppo + " --quiet --preset cartpole --preset pendulum",
       "--preset: given twice ('cartpole' and 'pendulum'); give one preset"},
      {ppo + " --quiet --preset=cartpole-fast --preset cartpole",
       "--preset: given twice ('cartpole-fast' and"},
      {"eval --run " + dir + "/x --episodes 0", "eval: --episodes must be in [1, 1000000], got 0"},
      {"eval --run " + dir + "/x --episodes 1e12",
       "eval: --episodes must be in [1, 1000000], got 1000000000000"},
  };
  for (const auto& c : cases) {
    expect_error(c.args, c.expect);
    EXPECT_FALSE(std::filesystem::exists(dir + "/x")) << c.args << ": the run directory was made";
  }
}

TEST(CliTrain, TrainHelpPrintsTheAlgorithmsAndExits0) {
  for (const char* args : {"train --help", "train -h"}) {
    const Outcome o = run(args);
    EXPECT_EQ(o.status, 0) << args << "\nstderr: " << o.err;
    EXPECT_NE(o.out.find("usage: rlft train ppo|reinforce [options]"), std::string::npos) << o.out;
    EXPECT_NE(o.out.find("rlft train reinforce"), std::string::npos) << o.out;
    EXPECT_EQ(o.err, "");
  }
  const Outcome ppo = run("train ppo --help");
  EXPECT_EQ(ppo.status, 0);
  EXPECT_NE(ppo.out.find("given once"), std::string::npos) << ppo.out;
}

TEST(CliTrain, ResumeKeepsTheRunsSettings) {
  const std::string dir = scratch_dir("resume").string();
  const std::string base = "train ppo --quiet --num-envs 2 --num-steps 128 --runs-dir " + dir;
  ASSERT_EQ(run(base + " --name cp --total-steps 256").status, 0);
  const std::string metrics = slurp(dir + "/cp/metrics.jsonl");
  const std::string ckpt = slurp(dir + "/cp/checkpoint.safetensors");
  ASSERT_EQ(lines(metrics), 1);
  expect_error(base + " --name cp --total-steps 512 --resume --activation relu",
               "--resume: setting 'activation' is \"relu\" but the run at " + dir +
                   "/cp was started with \"tanh\"");
  expect_error(base + " --name cp --total-steps 512 --resume --norm-obs",
               "--resume: setting 'norm_obs' is true");
  expect_error(base +
                   " --name cp --total-steps 512 --resume --preset cartpole-fast --num-envs 2 "
                   "--num-steps 128",
               "--resume: setting '");
  EXPECT_EQ(slurp(dir + "/cp/metrics.jsonl"), metrics);
  EXPECT_EQ(slurp(dir + "/cp/checkpoint.safetensors"), ckpt);

  // A Pendulum run resumed as CartPole: the environment differs, not a tensor shape.
  ASSERT_EQ(
      run("train ppo --quiet --preset pendulum --num-envs 2 --num-steps 128 --num-minibatches 4 "
          "--total-steps 256 --runs-dir " +
          dir + " --name pd")
          .status,
      0);
  expect_error(base + " --name pd --total-steps 512 --resume --env CartPole-v1",
               "--resume: setting 'env_id' is \"CartPole-v1\" but the run at " + dir +
                   "/pd was started with \"Pendulum-v1\"");
  // Left out, the settings are the run's own: --name and --resume are enough (the preset's
  // settings, and those written beside it, come from its config.json).
  const std::string pd_config = slurp(dir + "/pd/config.json");
  const Outcome bare = run("train ppo --quiet --runs-dir " + dir + " --name pd --resume");
  EXPECT_EQ(bare.status, 0) << bare.err;
  EXPECT_EQ(slurp(dir + "/pd/config.json"), pd_config);  // nothing new ran: the budget was spent
  const Outcome bare_longer =
      run("train ppo --quiet --runs-dir " + dir + " --name pd --resume --total-steps 512");
  EXPECT_EQ(bare_longer.status, 0) << bare_longer.err;
  EXPECT_EQ(lines(slurp(dir + "/pd/metrics.jsonl")), 2);
  std::string expected = pd_config;
  const size_t at = expected.find("\"total_steps\": 256");
  ASSERT_NE(at, std::string::npos) << expected;
  expected.replace(at, 18, "\"total_steps\": 512");
  EXPECT_EQ(slurp(dir + "/pd/config.json"), expected);

  // Another algorithm's run is named as such.
  ASSERT_EQ(
      run("train reinforce --quiet --total-episodes 2 --runs-dir " + dir + " --name rf").status, 0);
  expect_error(base + " --name rf --total-steps 512 --resume",
               "--resume: the run at " + dir + "/rf is a \"reinforce\" run, not a \"ppo\" one");

  // The same settings with a larger budget (and other logging) continue the run.
  const Outcome more =
      run(base + " --name cp --total-steps 512 --resume --log-every 5 --checkpoint-every 1");
  EXPECT_EQ(more.status, 0) << more.err;
  EXPECT_EQ(lines(slurp(dir + "/cp/metrics.jsonl")), 2);
}

// `train reinforce --resume` goes on with the run's recorded settings (--env and --lr under their
// config.json names), only --total-episodes growing; another setting is named, and a PPO run is
// not resumed as REINFORCE.
TEST(CliTrain, ReinforceResumeKeepsTheRunsSettings) {
  const std::string dir = scratch_dir("reinforce-resume").string();
  const std::string base = "train reinforce --quiet --runs-dir " + dir;
  ASSERT_EQ(
      run(base + " --name rp --env Pendulum-v1 --lr 0.002 --hidden 8 --total-episodes 2").status,
      0);
  const std::string config = slurp(dir + "/rp/config.json");
  expect_error(base + " --name rp --resume --lr 0.001",
               "--resume: setting 'learning_rate' is 0.001 but the run at " + dir +
                   "/rp was started with 0.002");
  const Outcome bare = run(base + " --name rp --resume --total-episodes 3");
  EXPECT_EQ(bare.status, 0) << bare.err;
  const std::string metrics = slurp(dir + "/rp/metrics.jsonl");
  EXPECT_EQ(lines(metrics), 3);
  EXPECT_NE(metrics.find("\"episode\":3,\"global_step\":600,"), std::string::npos) << metrics;
  std::string expected = config;
  const size_t at = expected.find("\"total_episodes\": 2");
  ASSERT_NE(at, std::string::npos) << expected;
  expected.replace(at, 19, "\"total_episodes\": 3");
  EXPECT_EQ(slurp(dir + "/rp/config.json"), expected);
  ASSERT_EQ(run("train ppo --quiet --num-envs 2 --num-steps 128 --total-steps 256 --runs-dir " +
                dir + " --name pp")
                .status,
            0);
  expect_error(base + " --name pp --resume",
               "--resume: the run at " + dir + "/pp is a \"ppo\" run, not a \"reinforce\" one");
}

// A resume that fails on a damaged run leaves every file of it as it was: a checkpoint whose
// optimiser state lost one of a parameter's two moments (the resume read the missing one's
// null data: a segfault), and a metrics line it cannot read (config.json took the new budget
// before the metrics were read).
TEST(CliTrain, AResumeOfADamagedRunIsNamedAndChangesNothing) {
  const std::string dir = scratch_dir("resume-damaged").string();
  const std::string base = "train ppo --quiet --num-envs 2 --num-steps 128 --runs-dir " + dir;
  ASSERT_EQ(run(base + " --name d --total-steps 256").status, 0);
  const std::string ckpt = dir + "/d/checkpoint.safetensors";
  const std::string good = slurp(ckpt);
  rlft::Metadata meta;
  rlft::NamedTensors tensors = rlft::load_tensors(ckpt, &meta), damaged;
  for (const auto& e : tensors)
    if (e.first != "optimizer.exp_avg_sq.0") damaged.push_back(e);
  ASSERT_EQ(damaged.size() + 1, tensors.size());
  rlft::save_tensors(ckpt, damaged, meta);
  auto before = snapshot(dir + "/d");
  expect_error(base + " --name d --total-steps 512 --resume",
               ckpt + ": optimizer state: 'exp_avg.0' without 'exp_avg_sq.0'");
  EXPECT_EQ(snapshot(dir + "/d"), before);

  std::ofstream(ckpt, std::ios::binary) << good;
  std::ofstream(dir + "/d/metrics.jsonl", std::ios::app) << "{\"update\": 1.5}\n";
  before = snapshot(dir + "/d");
  expect_error(base + " --name d --total-steps 512 --resume",
               dir + "/d/metrics.jsonl: entry 2 has no integer \"update\" (it is 1.5)");
  EXPECT_EQ(snapshot(dir + "/d"), before);
}

// A recorded setting of the wrong type is named with its file when a resume takes it.
TEST(CliTrain, ResumeNamesABadRecordedSetting) {
  const std::string dir = scratch_dir("resume-bad").string();
  ASSERT_EQ(run("train ppo --quiet --num-envs 2 --num-steps 128 --total-steps 256 --runs-dir " +
                dir + " --name m")
                .status,
            0);
  const std::string config = dir + "/m/config.json";
  std::string text = slurp(config);
  const size_t at = text.find("\"hidden\": \"64,64\"");
  ASSERT_NE(at, std::string::npos) << text;
  text.replace(at, 17, "\"hidden\": 64");
  std::ofstream(config) << text;
  expect_error("train ppo --quiet --runs-dir " + dir + " --name m --resume --total-steps 512",
               config + ": setting 'hidden' is 64, not a value of --hidden (like 64,64)");
  // Written on the command line, the option is not taken from the file (and then differs).
  expect_error(
      "train ppo --quiet --runs-dir " + dir + " --name m --resume --total-steps 512 --hidden 64",
      "--resume: setting 'hidden' is \"64\" but the run at " + dir + "/m was started with 64");
  // A recorded value out of its option's range: the error names the option, and that the
  // value came from the file (the command line did not write --num-envs).
  const auto edit = [&](const std::string& from, const std::string& to) {
    const size_t where = text.find(from);
    ASSERT_NE(where, std::string::npos) << from << " in " << text;
    text.replace(where, from.size(), to);
  };
  edit("\"hidden\": 64", "\"hidden\": \"64,64\"");
  edit("\"num_envs\": 2", "\"num_envs\": 0");
  std::ofstream(config) << text;
  expect_error("train ppo --quiet --runs-dir " + dir + " --name m --resume --total-steps 512",
               "--num-envs must be in [1, 65536], got 0 (--num-envs was not written: --resume "
               "took the value recorded in " +
                   config + ")");
}

TEST(CliTrain, EvalRefusesAPolicyOfNaNWeights) {
  const std::string dir = scratch_dir("eval-nan").string();
  ASSERT_EQ(run("train ppo --quiet --num-envs 2 --num-steps 128 --total-steps 256 --runs-dir " +
                dir + " --name m")
                .status,
            0);
  ASSERT_EQ(run("eval --run " + dir + "/m --episodes 2").status, 0);
  // Every byte after the safetensors header set to 0xff: every float32 weight a NaN.
  const std::string path = dir + "/m/policy.safetensors";
  std::string bytes = slurp(path);
  ASSERT_GT(bytes.size(), 8u);
  uint64_t header = 0;
  for (int i = 7; i >= 0; --i) header = header << 8 | uint8_t(bytes[size_t(i)]);
  ASSERT_LT(8 + header, bytes.size());
  for (size_t i = 8 + header; i < bytes.size(); ++i) bytes[i] = char(0xff);
  std::ofstream(path, std::ios::binary) << bytes;
  expect_error("eval --run " + dir + "/m --episodes 2",
               path + ": 'actor.0.weight' holds NaN at flat index 0");
  expect_error("eval --run " + dir + "/m --episodes 2", "(weights must be finite)");
}

TEST(CliTrain, PlotNamesOtherRunsMetricsAndDrawsNoNaN) {
  const std::string dir = scratch_dir("plot").string();
  std::filesystem::create_directories(dir + "/sft");
  std::ofstream(dir + "/sft/metrics.jsonl") << "{\"step\":10,\"loss\":2.5}\n";
  expect_error("plot " + dir + "/sft",
               dir +
                   "/sft/metrics.jsonl: record 1 has no numeric \"global_step\": not the "
                   "metrics of a classic-control run");
  EXPECT_FALSE(std::filesystem::exists(dir + "/sft/return.svg"));

  std::filesystem::create_directories(dir + "/huge");
  std::ofstream(dir + "/huge/metrics.jsonl")
      << "{\"global_step\":1,\"episodic_return_mean\":1e308}\n"
         "{\"global_step\":2,\"episodic_return_mean\":-1e308}\n"
         "{\"global_step\":3,\"episodic_return_mean\":10}\n"
         "{\"global_step\":4,\"episodic_return_mean\":12}\n";
  const Outcome o = run("plot " + dir + "/huge");
  EXPECT_EQ(o.status, 0) << o.err;
  EXPECT_NE(o.out.find("(2 points not drawn: not finite or beyond ±1e300)"), std::string::npos)
      << o.out;
  const std::string svg = slurp(dir + "/huge/return.svg");
  ASSERT_FALSE(svg.empty());
  EXPECT_EQ(svg.find("nan"), std::string::npos) << svg;
  EXPECT_NE(svg.find("2 points not drawn"), std::string::npos);
}

}  // namespace
