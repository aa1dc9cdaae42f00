// PPO and REINFORCE on classic control: seeded learning tests that must reach CartPole's
// threshold, determinism, resume, continuous-action smoke runs and the KL-penalty variant.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <tuple>

#include "engine/cuda.h"
#include "engine/fs.h"
#include "engine/json.h"
#include "rl/eval.h"
#include "rl/ppo.h"
#include "rl/reinforce.h"

namespace rlft::rl {
namespace {

std::string tmp_run(const std::string& name) {
  auto dir = std::filesystem::temp_directory_path() / "rlft_test_runs" / name;
  std::filesystem::remove_all(dir);
  return dir.string();
}

TEST(PPO, CartPoleFastPresetSolves) {
  // The tuned preset reaches a last-20 mean return of 475 at 58k / 37k / 43k steps for seeds 1-3
  // (measured); allow the preset's whole 100k budget.
  PPOConfig c;
  apply_preset("cartpole-fast", c);
  c.seed = 1;
  c.quiet = true;
  const PPOResult r = train_ppo(c, "", [](const PPOUpdate& u) { return u.return_last20 < 475; });
  ASSERT_GE(r.steps_to_threshold, 0) << "did not reach 475 within " << c.total_steps << " steps";
  EXPECT_LE(r.steps_to_threshold, 100000);
}

TEST(PPO, SameSeedSameMetrics) {
  PPOConfig c;
  c.total_steps = 4 * 128 * 3;
  c.quiet = true;
  const std::string a = tmp_run("det_a"), b = tmp_run("det_b");
  train_ppo(c, a);
  train_ppo(c, b);
  auto la = json::parse_jsonl(fs::read_file(a + "/metrics.jsonl"));
  auto lb = json::parse_jsonl(fs::read_file(b + "/metrics.jsonl"));
  ASSERT_EQ(la.size(), 3u);
  ASSERT_EQ(la.size(), lb.size());
  for (size_t i = 0; i < la.size(); ++i) {
    // Wall-clock speed is the one field that may differ.
    la[i].set("sps", json::Value());
    lb[i].set("sps", json::Value());
    EXPECT_EQ(la[i].dump(), lb[i].dump()) << "update " << i + 1;
  }
  EXPECT_TRUE(fs::exists(a + "/policy.safetensors"));
  EXPECT_TRUE(fs::exists(a + "/config.json"));
  // A different seed gives different numbers.
  c.seed = 2;
  const std::string d = tmp_run("det_c");
  train_ppo(c, d);
  EXPECT_NE(json::parse_jsonl(fs::read_file(d + "/metrics.jsonl"))[0].at("pg_loss").as_double(),
            la[0].at("pg_loss").as_double());
}

TEST(PPO, ResumeContinuesTheRun) {
  PPOConfig c;
  c.total_steps = 4 * 128 * 4;
  c.checkpoint_every = 2;
  c.quiet = true;
  const std::string dir = tmp_run("resume");
  train_ppo(c, dir, [](const PPOUpdate& u) { return u.update < 2; });  // "interrupted" after 2
  c.resume = true;
  const PPOResult r = train_ppo(c, dir);
  ASSERT_EQ(r.updates.size(), 2u);
  EXPECT_EQ(r.updates[0].update, 3);
  EXPECT_EQ(r.updates[0].global_step, 3 * 512);
  EXPECT_EQ(json::parse_jsonl(fs::read_file(dir + "/metrics.jsonl")).size(), 4u);
  // The saved policy plays.
  const EvalResult e = evaluate_run(dir, 3, 7, true);
  EXPECT_EQ(e.returns.size(), 3u);
  EXPECT_TRUE(fs::exists(dir + "/return.svg"));
}

TEST(PPO, ContinuousAndPenaltySmoke) {
  PPOConfig c;
  apply_preset("pendulum", c);
  c.num_steps = 200;
  c.num_minibatches = 4;
  c.total_steps = c.num_envs * c.num_steps * 2;
  c.quiet = true;
  const PPOResult r = train_ppo(c);
  ASSERT_EQ(r.updates.size(), 2u);
  for (const auto& u : r.updates) {
    EXPECT_TRUE(std::isfinite(u.pg_loss) && std::isfinite(u.v_loss));
    EXPECT_GT(u.entropy, 0);  // Gaussian entropy with log σ = −0.5 per dim: 1.42 − 0.5
  }
  EXPECT_NEAR(r.updates[0].entropy, 0.5 + 0.9189385 - 0.5, 0.05);
  // KL-penalty variant: β adapts (halves when KL < target/1.5).
  PPOConfig p;
  p.loss = "penalty";
  p.kl_target = 1.0;  // far above any KL here, so β must halve every update
  p.total_steps = 4 * 128 * 2;
  p.quiet = true;
  const PPOResult rp = train_ppo(p);
  ASSERT_EQ(rp.updates.size(), 2u);
  EXPECT_DOUBLE_EQ(rp.updates[0].kl_beta, 0.5);
  EXPECT_DOUBLE_EQ(rp.updates[1].kl_beta, 0.25);
}

TEST(PPO, BadConfigIsAClearError) {
  PPOConfig c;
  c.num_minibatches = 3;  // 512 is not divisible by 3
  try {
    train_ppo(c);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("num_minibatches 3 must divide the batch size 512"), std::string::npos);
  }
  c = PPOConfig{};
  c.env_id = "CartPole-v9";
  EXPECT_THROW(train_ppo(c), Error);
}

TEST(PPO, CudaWithoutAGpuIsOneClearError) {
  std::string reason;
  if (cuda::device_count(&reason) > 0) GTEST_SKIP() << "a GPU is present";
  PPOConfig c;
  c.device = "cuda";
  try {
    train_ppo(c);
    FAIL() << "--device cuda without a GPU must throw";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("--device cuda: no CUDA device answers ("), std::string::npos) << e.what();
  }
}

TEST(PPO, CudaRunMatchesTheCpu) {
  // The same seeded CartPole run on both devices: the rollouts sample from the same host
  // stream, so the metrics differ only by float rounding in the networks (≈1e-6 relative),
  // which does not flip a sampled action in practice. Three updates of 4×128 steps.
  std::string reason;
  if (cuda::device_count(&reason) == 0) GTEST_SKIP() << "no GPU: " << reason;
  PPOConfig c;
  c.total_steps = 4 * 128 * 3;
  c.quiet = true;
  const PPOResult cpu = train_ppo(c);
  c.device = "cuda";
  const PPOResult gpu = train_ppo(c);
  ASSERT_EQ(gpu.updates.size(), cpu.updates.size());
  for (size_t i = 0; i < cpu.updates.size(); ++i) {
    const PPOUpdate &a = cpu.updates[i], &b = gpu.updates[i];
    EXPECT_EQ(b.episodes, a.episodes) << "update " << i;
    EXPECT_DOUBLE_EQ(b.episodic_return_mean, a.episodic_return_mean) << "update " << i;
    for (auto [name, x, y] : {std::tuple{"pg_loss", a.pg_loss, b.pg_loss}, std::tuple{"v_loss", a.v_loss, b.v_loss},
                              std::tuple{"entropy", a.entropy, b.entropy},
                              std::tuple{"approx_kl", a.approx_kl, b.approx_kl}})
      EXPECT_NEAR(y, x, 1e-6 + 1e-4 * std::abs(x)) << name << " at update " << i;
  }
}

TEST(Reinforce, CartPoleSolves) {
  // Seed 1 reaches a last-20 mean of 475 at episode 417 (measured); the bar is 1,500.
  ReinforceConfig c;
  c.quiet = true;
  const ReinforceResult r = train_reinforce(c, "", [](const ReinforceUpdate& u) { return u.return_last20 < 475; });
  ASSERT_GE(r.episodes_to_threshold, 0);
  EXPECT_LE(r.episodes_to_threshold, 1500);
}

TEST(Reinforce, CudaWithoutAGpuIsOneClearError) {
  std::string reason;
  if (cuda::device_count(&reason) > 0) GTEST_SKIP() << "a GPU is present";
  ReinforceConfig c;
  c.device = "cuda";
  try {
    train_reinforce(c);
    FAIL() << "--device cuda without a GPU must throw";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("--device cuda: no CUDA device answers ("), std::string::npos) << e.what();
  }
}

TEST(Reinforce, CudaRunMatchesTheCpu) {
  // The same seeded CartPole run on both devices: actions are sampled on the host stream from
  // the device's probabilities, so the episodes are the same (integer actions, the same
  // environment steps) unless float rounding in the network flips a sample, which does not
  // happen in practice; the losses differ by rounding (≈1e-6 relative).
  std::string reason;
  if (cuda::device_count(&reason) == 0) GTEST_SKIP() << "no GPU: " << reason;
  ReinforceConfig c;
  c.total_episodes = 6;
  c.episodes_per_update = 2;
  c.quiet = true;
  const ReinforceResult cpu = train_reinforce(c);
  c.device = "cuda";
  const ReinforceResult gpu = train_reinforce(c);
  ASSERT_EQ(gpu.updates.size(), cpu.updates.size());
  for (size_t i = 0; i < cpu.updates.size(); ++i) {
    const ReinforceUpdate &a = cpu.updates[i], &b = gpu.updates[i];
    EXPECT_EQ(b.global_step, a.global_step) << "update " << i;
    EXPECT_DOUBLE_EQ(b.episode_return, a.episode_return) << "update " << i;
    EXPECT_NEAR(b.loss, a.loss, 1e-6 + 1e-4 * std::abs(a.loss)) << "loss at update " << i;
    EXPECT_NEAR(b.entropy, a.entropy, 1e-6 + 1e-4 * std::abs(a.entropy)) << "entropy at update " << i;
  }
}

TEST(Reinforce, CudaContinuousSmoke) {
  // Pendulum's Gaussian policy on the device (noise from the host stream): the run completes
  // with finite losses. Not compared with the CPU: near the upright position the pendulum
  // amplifies float-rounding differences in the torque, so returns may drift apart.
  std::string reason;
  if (cuda::device_count(&reason) == 0) GTEST_SKIP() << "no GPU: " << reason;
  ReinforceConfig c;
  c.env_id = "Pendulum-v1";
  c.device = "cuda";
  c.total_episodes = 3;
  c.quiet = true;
  const ReinforceResult r = train_reinforce(c);
  ASSERT_EQ(r.updates.size(), 3u);
  EXPECT_EQ(r.updates.back().global_step, 600);
  for (const ReinforceUpdate& u : r.updates) EXPECT_TRUE(std::isfinite(u.loss) && std::isfinite(u.entropy));
}

TEST(Reinforce, ContinuousSmokeAndRunFiles) {
  ReinforceConfig c;
  c.env_id = "Pendulum-v1";
  c.total_episodes = 3;
  c.quiet = true;
  const std::string dir = tmp_run("reinforce_pendulum");
  const ReinforceResult r = train_reinforce(c, dir);
  ASSERT_EQ(r.updates.size(), 3u);
  EXPECT_EQ(r.updates.back().global_step, 600);  // 3 episodes × the 200-step time limit
  EXPECT_TRUE(fs::exists(dir + "/return.svg"));
}

}  // namespace
}  // namespace rlft::rl
