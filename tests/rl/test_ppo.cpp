// PPO and REINFORCE on classic control: seeded learning tests that must reach CartPole's
// threshold, determinism, resume, continuous-action smoke runs and the KL-penalty variant.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <functional>
#include <tuple>

#include "engine/checkpoint.h"
#include "engine/cuda.h"
#include "engine/fs.h"
#include "engine/json.h"
#include "models/policy.h"
#include "resume_fixture.h"
#include "rl/envs/env.h"
#include "rl/envs/vector_env.h"
#include "rl/eval.h"
#include "rl/plot.h"
#include "rl/ppo.h"
#include "rl/reinforce.h"
#include "test_util.h"

namespace rlft::rl {
namespace {

std::string tmp_run(const std::string& name) {
  auto dir = std::filesystem::temp_directory_path() / "rlft_test_runs" / name;
  std::filesystem::remove_all(dir);
  return dir.string();
}

// A run with --device cuda where no GPU answers (`train` runs it): one rlft::Error that says so.
template <typename Train>
void expect_no_cuda_device_error(Train&& train) {
  try {
    train();
    FAIL() << "--device cuda without a GPU must throw";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("--device cuda: no CUDA device answers ("),
              std::string::npos)
        << e.what();
  }
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

#ifdef RLFT_HAVE_BOX2D
// The lunarlander preset scales rewards by the running std of the return. Without that, the
// first returns (around −200 with γ 0.999) drive the tanh critic's second layer into
// saturation: its output is nearly one constant, explained variance below 0.1 for the first
// 13 to 39 updates in each of seeds 1-6, and the policy learns with no baseline meanwhile
// (BENCHMARKS.md). With it the critic explains most of the return by update 9-12 (0.84-0.94
// on average over those four updates, seeds 1-12).
TEST(PPO, LunarLanderPresetKeepsItsCriticAlive) {
  PPOConfig c;
  apply_preset("lunarlander", c);
  c.seed = 2;
  c.quiet = true;
  std::vector<double> ev;
  train_ppo(c, "", [&](const PPOUpdate& u) {
    ev.push_back(u.explained_variance);
    return ev.size() < 12;  // 12 updates of 16,384 steps, about 5 s
  });
  ASSERT_EQ(ev.size(), 12u);
  const double mean_9_12 = (ev[8] + ev[9] + ev[10] + ev[11]) / 4;
  EXPECT_GT(mean_9_12, 0.5) << "the critic's output hardly varies: saturated?";
}

// The issue's bar, 200, on the 100 episodes `rlft eval` plays (seeds 1000…1099, greedy), and
// the stochastic training policy's last-20 mean reaching it within the preset's 1M steps (seed
// 2 at 524k; seeds 1-12 at 410k-901k and eval 264-279; without the reward scaling only 1 of
// seeds 1-6 reached it in training, seed 2 not).
TEST(PPO, LunarLanderPresetLands) {
  PPOConfig c;
  apply_preset("lunarlander", c);
  c.seed = 2;
  c.quiet = true;
  const std::string dir = tmp_run("ppo_lunarlander_2");
  const PPOResult r = train_ppo(c, dir);
  EXPECT_GE(r.steps_to_threshold, 0) << "the last-20 mean never reached 200 in training";
  const EvalResult e = evaluate_run(dir, 100, 1000, true);
  EXPECT_GE(e.mean, 200.0) << "100-episode greedy eval " << e.mean << " ± " << e.std;
  std::printf("  LunarLander seed 2: last-20 >= 200 at step %lld, eval %.1f ± %.1f\n",
              (long long)r.steps_to_threshold, e.mean, e.std);
}
#endif

// The defaults are CleanRL ppo.py's (ALGORITHMS.md §2, "Reference defaults").
TEST(PPO, DefaultsAreCleanRLs) {
  const PPOConfig c;
  EXPECT_EQ(c.num_envs, 4);
  EXPECT_EQ(c.num_steps, 128);
  EXPECT_EQ(c.learning_rate, 2.5e-4);
  EXPECT_TRUE(c.anneal_lr);
  EXPECT_EQ(c.gamma, 0.99);
  EXPECT_EQ(c.gae_lambda, 0.95);
  EXPECT_EQ(c.num_minibatches, 4);
  EXPECT_EQ(c.update_epochs, 4);
  EXPECT_TRUE(c.norm_adv);
  EXPECT_EQ(c.loss, "clip");
  EXPECT_EQ(c.clip_coef, 0.2);
  EXPECT_TRUE(c.clip_vloss);
  EXPECT_EQ(c.ent_coef, 0.01);
  EXPECT_EQ(c.vf_coef, 0.5);
  EXPECT_EQ(c.max_grad_norm, 0.5);
  EXPECT_EQ(c.adam_eps, 1e-5);
  EXPECT_EQ(c.hidden, "64,64");
  EXPECT_EQ(c.activation, "tanh");
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
  fs::forget_flushes();
  int durability_checks = 0;
  train_ppo(c, dir, [&](const PPOUpdate& u) {
    // The checkpoint of update 2 is written: a crash now keeps the lines through it.
    if (u.update == 2) {
      testing::expect_log_durable_through(dir + "/metrics.jsonl", 2, "update");
      ++durability_checks;
    }
    return u.update < 2;  // "interrupted" after 2
  });
  EXPECT_EQ(durability_checks, 1) << "the callback never saw update 2: the log was not checked";
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

// --target-kl ends an update's epochs once the epoch's last minibatch's k3 exceeds it (CleanRL's
// rule); `epochs` counts those run. A target of 1e-9 stops after the first epoch (its last
// minibatch follows three Adam steps: k3 ~ 1e-7 or more); one of 1e9 never stops, and its run
// is the run without a target, bit for bit.
TEST(PPO, TargetKLStopsTheEpochsAfterTheEpochWhoseLastMinibatchExceedsIt) {
  auto run = [](double target) {
    PPOConfig p;
    p.update_epochs = 4;
    p.target_kl = target;
    p.total_steps = 4 * 128 * 3;
    p.quiet = true;
    return train_ppo(p);
  };
  const PPOResult off = run(0), tiny = run(1e-9), huge = run(1e9);
  ASSERT_EQ(off.updates.size(), 3u);
  ASSERT_EQ(tiny.updates.size(), 3u);
  ASSERT_EQ(huge.updates.size(), 3u);
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(off.updates[i].epochs, 4);
    EXPECT_EQ(huge.updates[i].epochs, 4);
    EXPECT_EQ(huge.updates[i].approx_kl, off.updates[i].approx_kl);
    EXPECT_EQ(huge.updates[i].pg_loss, off.updates[i].pg_loss);
    EXPECT_EQ(tiny.updates[i].epochs, 1) << "update " << i + 1;
  }
  EXPECT_GT(tiny.updates[0].approx_kl, 0.0);
}

// The rule reads the epoch's LAST minibatch's k3, not the epoch's mean. Within the first epoch
// the policy moves away from the rollout's with each Adam step, so the k3 grows from ~0 at the
// first minibatch (the policy that sampled) to its largest at the last: the mean m of the four
// is well under the last (k3 ∝ step², ~0, 1, 4, 9 → mean 3.5, last 9). The first epoch is the
// same computation whatever update_epochs is, so m is the approx_kl of a one-epoch run; a
// target of 1.5·m lies between the two: the last-minibatch rule stops after epoch 1, a mean
// rule would go on to a second epoch.
TEST(PPO, TargetKLReadsTheEpochsLastMinibatchNotItsMean) {
  auto first_update = [](int64_t epochs, double target) {
    PPOConfig p;
    p.update_epochs = epochs;
    p.target_kl = target;
    p.total_steps = 4 * 128;
    p.quiet = true;
    return train_ppo(p).updates.at(0);
  };
  const PPOUpdate one = first_update(1, 0);
  const double m = one.approx_kl;
  ASSERT_GT(m, 0);
  const PPOUpdate stopped = first_update(4, 1.5 * m);
  EXPECT_EQ(stopped.epochs, 1) << "epoch 1's mean k3 " << m;
  EXPECT_EQ(stopped.approx_kl, m) << "the logged KL is epoch 1's mean: the same first epoch";
}

// PPO-penalty's d is the KL after the update's epochs: the mean k3 of its LAST epoch, not of all
// of them. The first epoch is the same computation in a one- and a two-epoch run (β is 1 in
// both until the update ends), so the second epoch's mean is d2 = 2·kl(2 epochs) − kl(1 epoch)
// (both logged approx_kl are means over their minibatches, four per epoch). The policy moves
// further from the rollout's in epoch 2, so d2 exceeds the two-epoch mean a; a kl_target of
// (a + d2)/3 puts 1.5·target = (a + d2)/2 between them: β doubles when the rule reads d2, and
// would stay 1 if it read a (a > target/1.5 = (a + d2)/4.5 as long as d2 < 3.5·a, checked).
TEST(PPO, PenaltyBetaReadsTheLastEpochsKL) {
  auto first_update = [](int64_t epochs, double target) {
    PPOConfig p;
    p.loss = "penalty";
    p.update_epochs = epochs;
    p.target_kl = 0;
    p.kl_target = target;
    p.total_steps = 4 * 128;
    p.quiet = true;
    return train_ppo(p).updates.at(0);
  };
  const double e1 = first_update(1, 1.0).approx_kl, a = first_update(2, 1.0).approx_kl;
  const double d2 = 2 * a - e1;
  ASSERT_GT(d2, 1.01 * a) << "e1 " << e1 << " a " << a;
  ASSERT_LT(d2, 3.5 * a) << "e1 " << e1 << " a " << a;
  const PPOUpdate u = first_update(2, (a + d2) / 3);
  EXPECT_EQ(u.approx_kl, a);
  EXPECT_DOUBLE_EQ(u.kl_beta, 2.0) << "d2 " << d2 << " a " << a;
}

// PPO-penalty's adaptive β (ALGORITHMS.md §2): after each update, KL > 1.5·target → β ×= 2,
// KL < target/1.5 → β /= 2, otherwise unchanged. With one epoch and no early stop the KL the
// rule reads is the update's logged approx_kl (k3, mean over its minibatches), so every
// update's β follows from the previous one and that KL. The first update does not depend on
// the target (same seed, same initial β), so targets are placed around its KL k: k/1.2 and
// k·1.2 put k inside the dead band on either side (β stays 1), near both thresholds.
TEST(PPO, PenaltyBetaFollowsTheAdaptiveRule) {
  auto run = [](double target) {
    PPOConfig p;
    p.loss = "penalty";
    p.update_epochs = 1;
    p.target_kl = 0;
    p.kl_target = target;
    p.total_steps = 4 * 128 * 4;
    p.quiet = true;
    return train_ppo(p);
  };
  const double k = run(1.0).updates.at(0).approx_kl;
  ASSERT_GT(k, 0);
  for (double target : {1e-3 * k, k / 1.2, k * 1.2, 1.0}) {
    const PPOResult r = run(target);
    ASSERT_EQ(r.updates.size(), 4u);
    EXPECT_EQ(r.updates[0].approx_kl, k);
    double beta = 1.0;  // PPOConfig::kl_beta
    for (const PPOUpdate& u : r.updates) {
      if (u.approx_kl > 1.5 * target)
        beta *= 2;
      else if (u.approx_kl < target / 1.5)
        beta /= 2;
      EXPECT_DOUBLE_EQ(u.kl_beta, beta)
          << "target " << target << " update " << u.update << " approx_kl " << u.approx_kl;
    }
    if (target == 1e-3 * k) {
      EXPECT_DOUBLE_EQ(r.updates[0].kl_beta, 2.0);  // doubled
    }
    if (target == k / 1.2 || target == k * 1.2) {
      EXPECT_DOUBLE_EQ(r.updates[0].kl_beta, 1.0);
    }
  }
}

// PPO-penalty's policy loss is −mean(r·A) + β·mean(k3), k3 = (r − 1) − log r, on the same
// ratios whose k3 the fused op reports as approx_kl. With normalised advantages (mean 0 per
// minibatch, mean A² < 1) Cauchy–Schwarz bounds the first term: |mean(r·A)| = |mean((r − 1)·A)|
// ≤ √mean((r − 1)²) ≈ √(2·k3) for small log-ratios, and averaging over minibatches keeps the
// bound (√ is concave). So the logged pg_loss is β·approx_kl within 2·√approx_kl (β = 1e4
// makes the β·k3 term dominate while the float rounding of the penalty's k3, ~β·6e-8 per token,
// stays well inside the bound).
TEST(PPO, PenaltyLossIsBetaTimesK3PlusTheSurrogate) {
  PPOConfig p;
  p.loss = "penalty";
  p.kl_beta = 1e4;
  p.update_epochs = 2;
  p.total_steps = 4 * 128;
  p.quiet = true;
  const PPOResult r = train_ppo(p);
  ASSERT_EQ(r.updates.size(), 1u);
  const PPOUpdate& u = r.updates[0];
  ASSERT_GT(u.approx_kl, 0);
  EXPECT_LT(u.approx_kl, 1e-4);  // small ratios: the bound's regime
  EXPECT_NEAR(u.pg_loss, 1e4 * u.approx_kl, 2 * std::sqrt(u.approx_kl))
      << "approx_kl " << u.approx_kl << " approx_kl_k1 " << u.approx_kl_k1;
}

// The clipped value loss is 0.5·mean(max((V − R)², (V_old + clip(V − V_old, ±ε) − R)²)) (CleanRL,
// ALGORITHMS.md §2): never below the unclipped one. One rollout, one minibatch, two epochs: the
// first epoch sees V = V_old (both losses and their gradients agree), so the clipped and the
// unclipped runs take the same first step and evaluate the same V in the second epoch, where a
// small ε (0.01) and a large learning rate make the clip bind: the clipped run's logged value
// loss (the mean of both epochs) is strictly the larger, its policy loss the same.
TEST(PPO, ClippedValueLossIsTheMaximumOfBothTerms) {
  auto run = [](bool clip_vloss) {
    PPOConfig c;
    c.total_steps = 4 * 128;
    c.update_epochs = 2;
    c.num_minibatches = 1;
    c.clip_coef = 0.01;
    c.learning_rate = 1e-2;
    c.clip_vloss = clip_vloss;
    c.quiet = true;
    return train_ppo(c).updates.at(0);
  };
  const PPOUpdate clipped = run(true), plain = run(false);
  EXPECT_NEAR(clipped.pg_loss, plain.pg_loss, 1e-5 * (1 + std::abs(plain.pg_loss)));
  EXPECT_GT(clipped.v_loss, plain.v_loss * (1 + 1e-3))
      << "clipped " << clipped.v_loss << " plain " << plain.v_loss;
}

// The entropy bonus is SUBTRACTED from the loss (loss = pg − c_ent·H + c_v·V), so it raises the
// entropy. A Gaussian policy's entropy is 0.5 + 0.5·ln 2π + log σ per action dimension, and
// log σ starts at 0 (log_std_init). With a dominant bonus (c_ent 100) Adam's first step moves
// log σ by +lr; one minibatch, two epochs: H = 1.4189385 in the first, + lr in the second, and
// the logged entropy is their mean.
TEST(PPO, EntropyBonusRaisesTheEntropy) {
  PPOConfig c;
  c.env_id = "Pendulum-v1";
  c.total_steps = 4 * 128;
  c.update_epochs = 2;
  c.num_minibatches = 1;
  c.ent_coef = 100;
  c.quiet = true;
  const PPOUpdate u = train_ppo(c).updates.at(0);
  const double h0 = 0.5 + 0.5 * std::log(2 * M_PI);
  EXPECT_NEAR(u.entropy, h0 + c.learning_rate / 2, 1e-6) << "h0 " << h0;
}

// --anneal-lr decays the optimizer's learning rate, not only the logged one: lr_u = lr·(1 −
// (u − 1)/U) for update u of U (CleanRL). A dominant entropy bonus (c_ent 1e4) makes Adam move
// the Gaussian's log σ by the step's learning rate each step (its gradient has one sign and
// nearly one size, clipped to the same norm), and with one epoch of one minibatch the entropy an
// update logs is the one before its step: h0 + Σ of the earlier updates' rates. Over three
// updates: h0, h0 + lr, h0 + lr + (2/3)·lr; without annealing h0 + 2·lr at the third (a gap of
// lr/3 = 8.3e-5, the float entropy's rounding is ~1e-7).
TEST(PPO, AnnealedLearningRateReachesTheOptimizer) {
  auto run = [](bool anneal) {
    PPOConfig c;
    c.env_id = "Pendulum-v1";
    c.total_steps = 4 * 128 * 3;
    c.update_epochs = 1;
    c.num_minibatches = 1;
    c.ent_coef = 1e4;
    c.anneal_lr = anneal;
    c.quiet = true;
    return train_ppo(c).updates;
  };
  const double h0 = 0.5 + 0.5 * std::log(2 * M_PI), lr = PPOConfig{}.learning_rate;
  const std::vector<PPOUpdate> on = run(true), off = run(false);
  ASSERT_EQ(on.size(), 3u);
  ASSERT_EQ(off.size(), 3u);
  const double want_on[] = {h0, h0 + lr, h0 + lr + lr * 2 / 3};
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_DOUBLE_EQ(on[i].learning_rate, lr * (1 - double(i) / 3)) << "update " << i + 1;
    EXPECT_NEAR(on[i].entropy, want_on[i], 1e-6) << "update " << i + 1;
    EXPECT_DOUBLE_EQ(off[i].learning_rate, lr);
    EXPECT_NEAR(off[i].entropy, h0 + lr * double(i), 1e-6) << "update " << i + 1;
  }
}

// Â = [1, 2, 3, 6]: mean 3, deviations −2, −1, 0, 3, unbiased variance 14/3, std √(14/3)
// = 2.1602469: Â' = deviations / (std + 1e-8).
TEST(PPO, AdvantagesAreNormalisedByTheUnbiasedStd) {
  const Tensor a = Tensor::from_vector(std::vector<double>{1, 2, 3, 6}, {4});
  const std::vector<double> got = normalize_advantages(a).to_vector();
  const double sd = std::sqrt(14.0 / 3.0);
  const std::vector<double> want = {-2 / (sd + 1e-8), -1 / (sd + 1e-8), 0, 3 / (sd + 1e-8)};
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < want.size(); ++i) EXPECT_NEAR(got[i], want[i], 1e-12) << i;
}

// V = [1, 2], V_old = [0.5, 1.95], R = [2, 1], ε = 0.2.
//   n = 0: unclipped (1 − 2)² = 1; V_old + clip(0.5, ±0.2) = 0.7, (0.7 − 2)² = 1.69: the max is
//          the clipped term, saturated, so its gradient in V is 0.
//   n = 1: V − V_old = 0.05 inside the clip: both terms (2 − 1)² = 1, gradient 2·(V − R) = 2.
// loss = ½·(1.69 + 1)/2 = 0.6725, dloss/dV = ½·[0, 2]/2 = [0, 0.5]; unclipped: ½·(1 + 1)/2 = 0.5.
TEST(PPO, ValueLossByHand) {
  const Tensor v = Tensor::from_vector(std::vector<double>{1, 2}, {2}).set_requires_grad();
  const Tensor v_old = Tensor::from_vector(std::vector<double>{0.5, 1.95}, {2});
  const Tensor r = Tensor::from_vector(std::vector<double>{2, 1}, {2});
  const Tensor loss = ppo_value_loss(v, v_old, r, 0.2, true);
  EXPECT_NEAR(loss.item(), 0.6725, 1e-12);
  loss.backward();
  const std::vector<double> g = v.grad().to_vector();
  EXPECT_NEAR(g[0], 0.0, 1e-12);
  EXPECT_NEAR(g[1], 0.5, 1e-12);
  EXPECT_NEAR(ppo_value_loss(v, v_old, r, 0.2, false).item(), 0.5, 1e-12);
}

// The loop normalises each minibatch's advantages (--norm-adv): one update of one epoch and
// one minibatch is on-policy (ratio 1 up to the batch's float rounding), so its policy loss
// −mean(Â·ratio) is 0 with the normalisation and −mean(A) without it (CartPole's first
// advantages are discounted returns of order 10).
TEST(PPO, AdvantagesAreNormalisedPerMinibatch) {
  auto first_pg_loss = [](bool norm_adv) {
    PPOConfig c;
    c.num_envs = 4;
    c.num_steps = 32;
    c.total_steps = 128;
    c.update_epochs = 1;
    c.num_minibatches = 1;
    c.norm_adv = norm_adv;
    c.quiet = true;
    const PPOResult r = train_ppo(c);
    EXPECT_EQ(r.updates.size(), 1u);
    return r.updates.empty() ? 0.0 : r.updates[0].pg_loss;
  };
  EXPECT_LT(std::abs(first_pg_loss(true)), 1e-4);
  EXPECT_LT(first_pg_loss(false), -1.0);
}

// Element idx of a tensor (row-major), as a double.
double el(const Tensor& t, std::initializer_list<int64_t> idx) {
  int64_t flat = 0, d = 0;
  for (int64_t i : idx) flat = flat * t.shape()[int(d++)] + i;
  return t.contiguous().to_vector()[size_t(flat)];
}

// A probe for the rollout's bookkeeping: observations [steps taken in this episode, episodes
// started, 0.5], reward 1 a step, any of two actions. Every episode either terminates after
// `terminate_at` steps (0: never) or is cut by its time limit `limit`.
class ProbeEnv final : public envs::Env {
 public:
  ProbeEnv(int64_t limit, int64_t terminate_at)
      : Env(envs::EnvSpec{"Probe-v0", limit, std::nullopt}, envs::Space::box(-100, 100, 3),
            envs::Space::discrete(2)),
        terminate_at_(terminate_at) {}

 protected:
  void reset_impl(float* obs) override {
    steps_ = 0;
    ++episodes_;
    write(obs);
  }
  void reset_to_state_impl(std::span<const double>, float* obs) override { reset_impl(obs); }
  envs::StepResult step_impl(int64_t, const float*, float* obs) override {
    ++steps_;
    write(obs);
    return {1.0, terminate_at_ > 0 && steps_ == terminate_at_, false};
  }

 private:
  void write(float* obs) const {
    obs[0] = float(steps_);
    obs[1] = float(episodes_);
    obs[2] = 0.5f;
  }
  int64_t terminate_at_, steps_ = 0, episodes_ = 0;
};

// collect_rollout (train_ppo's rollout): env 0's episodes are cut by a time limit of 3 steps,
// env 1's terminate after 2. next_values is V(s_{t+1}) inside an episode and after the last
// step, V of the *final* observation where the time limit cut (its own value, not that of the
// next episode's first observation, which is what the env shows next), and the flags, rewards,
// log-probs and finished returns are the ones the env and the policy gave.
TEST(PPO, RolloutBootstrapsATimeLimitCutFromTheFinalObservation) {
  const int64_t T = 7, N = 2;
  int made = 0;
  envs::VectorEnv env(
      [&]() -> std::unique_ptr<envs::Env> {
        return made++ == 0 ? std::make_unique<ProbeEnv>(3, 0) : std::make_unique<ProbeEnv>(5, 2);
      },
      N);
  Generator gen(3);
  models::PolicyConfig pc;
  pc.obs_dim = 3;
  pc.num_actions = 2;
  pc.hidden = {8};
  models::ActorCritic agent(pc, gen);
  // observe's calls, (rows, update): normalisation statistics are updated from the envs'
  // observations, never from a cut episode's final one (that one is only valued).
  std::vector<std::pair<int64_t, bool>> calls;
  const ObserveFn observe = [&](std::span<const float> raw, int64_t rows, bool update) {
    calls.emplace_back(rows, update);
    return Tensor::from_vector(std::vector<float>(raw.begin(), raw.end()), {rows, 3});
  };
  env.reset(11);
  Tensor next_obs = observe(env.obs(), N, true);
  calls.clear();
  PPORollout ro;
  collect_rollout(env, agent, gen, Device::cpu(), T, observe, RewardScaleFn(), next_obs, ro);

  auto value_of = [&](float steps, float episodes) {
    NoGradGuard no_grad;
    return agent.value(Tensor::from_vector(std::vector<float>{steps, episodes, 0.5f}, {1, 3}))
        .item();
  };
  // The observations the policy saw, step by step (env 0: 0 1 2 | 0 1 2 | 0; env 1: 0 1 | …).
  for (int64_t t = 0; t < T; ++t) {
    EXPECT_EQ(el(ro.obs, {t, 0, 0}), double(t % 3)) << t;
    EXPECT_EQ(el(ro.obs, {t, 0, 1}), double(1 + t / 3)) << t;
    EXPECT_EQ(el(ro.obs, {t, 1, 0}), double(t % 2)) << t;
    EXPECT_EQ(el(ro.obs, {t, 1, 1}), double(1 + t / 2)) << t;
    EXPECT_FLOAT_EQ(float(el(ro.values, {t, 0})), float(value_of(float(t % 3), float(1 + t / 3))));
  }
  for (int64_t t = 0; t < T; ++t) {
    const bool cut0 = t % 3 == 2, end1 = t % 2 == 1;
    EXPECT_EQ(el(ro.ended, {t, 0}), cut0 ? 1.0 : 0.0) << t;
    EXPECT_EQ(el(ro.terminated, {t, 0}), 0.0) << t;
    EXPECT_EQ(el(ro.ended, {t, 1}), end1 ? 1.0 : 0.0) << t;
    EXPECT_EQ(el(ro.terminated, {t, 1}), end1 ? 1.0 : 0.0) << t;
    EXPECT_EQ(el(ro.rewards, {t, 0}), 1.0);
    for (int64_t i = 0; i < N; ++i) {
      if (t == T - 1) continue;
      // A time limit: V(final observation [3, episode]), not V(the next episode's [0, e + 1]).
      const double expected =
          i == 0 && cut0 ? value_of(3, float(1 + t / 3)) : el(ro.values, {t + 1, i});
      EXPECT_FLOAT_EQ(float(el(ro.next_values, {t, i})), float(expected)) << t << "," << i;
    }
  }
  EXPECT_NE(value_of(3, 1), value_of(0, 2)) << "the probe must tell the two apart";
  // After the last step (t = 6: env 0 at [1, 3], env 1 at [1, 4]).
  EXPECT_FLOAT_EQ(float(el(ro.next_values, {T - 1, 0})), float(value_of(1, 3)));
  EXPECT_FLOAT_EQ(float(el(ro.next_values, {T - 1, 1})), float(value_of(1, 4)));
  EXPECT_EQ(el(next_obs, {0, 0}), 1.0);
  EXPECT_EQ(el(next_obs, {1, 1}), 4.0);
  // The log-probs are the policy's for the actions taken.
  {
    NoGradGuard no_grad;
    const models::ActionEval ev =
        agent.evaluate(ro.obs.reshape({T * N, 3}), ro.actions.reshape({T * N}));
    for (int64_t k = 0; k < T * N; ++k)
      EXPECT_FLOAT_EQ(float(el(ev.log_probs, {k})), float(el(ro.log_probs.reshape({T * N}), {k})));
  }
  // Episodes finished: env 1 at t = 1, 3, 5 (return 2), env 0 at t = 2, 5 (return 3).
  EXPECT_EQ(ro.finished, (std::vector<double>{2, 3, 2, 3, 2}));
  // Per step, the final observations of that step's cuts (env 0 at t = 2 and 5), then the
  // envs' next observations.
  std::vector<std::pair<int64_t, bool>> expected_calls;
  for (int64_t t = 0; t < T; ++t) {
    if (t % 3 == 2) expected_calls.emplace_back(1, false);
    expected_calls.emplace_back(N, true);
  }
  EXPECT_EQ(calls, expected_calls);
  // A next_obs of the wrong shape is named.
  Tensor bad = Tensor::zeros({N, 4});
  EXPECT_NE(testing::error_of([&] {
              collect_rollout(env, agent, gen, Device::cpu(), T, observe, RewardScaleFn(), bad, ro);
            }).find("collect_rollout: next_obs has shape [2,4], expected [2,3]"),
            std::string::npos);
}

TEST(PPO, BadConfigIsAClearError) {
  PPOConfig c;
  c.num_minibatches = 3;  // 512 is not divisible by 3
  try {
    train_ppo(c);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("num_minibatches 3 must divide the batch size 512"),
              std::string::npos);
  }
  c = PPOConfig{};
  c.env_id = "CartPole-v9";
  EXPECT_THROW(train_ppo(c), Error);
}

// The message of the rlft::Error that f throws, or "" when it throws none.
std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

// A small CartPole config: one or a few updates of 2 × 128 steps.
PPOConfig tiny_ppo(int64_t updates = 1) {
  PPOConfig c;
  c.num_envs = 2;
  c.num_steps = 128;
  c.total_steps = 256 * updates;
  c.quiet = true;
  return c;
}

TEST(PPO, EverySettingIsCheckedBeforeTheRunIsWritten) {
  const struct {
    std::function<void(PPOConfig&)> set;
    std::string expect;
  } cases[] = {
      {[](PPOConfig& c) { c.log_every = 0; }, "ppo: --log-every must be positive, got 0"},
      {[](PPOConfig& c) { c.log_every = -1; }, "--log-every must be positive, got -1"},
      {[](PPOConfig& c) { c.checkpoint_every = -1; },
       "--checkpoint-every must be >= 0 (0 = only at the end), got -1"},
      {[](PPOConfig& c) { c.target_kl = -1; },
       "--target-kl must be a finite number >= 0 (0 = off), got -1"},
      {[](PPOConfig& c) { c.loss = "penalty", c.kl_beta = -1; },
       "--kl-beta must be a finite number > 0, got -1"},
      {[](PPOConfig& c) { c.loss = "penalty", c.kl_target = 0; },
       "--kl-target must be a finite number > 0, got 0"},
      {[](PPOConfig& c) { c.ent_coef = NAN; }, "--ent-coef must be a finite number >= 0, got nan"},
      {[](PPOConfig& c) { c.vf_coef = INFINITY; },
       "--vf-coef must be a finite number >= 0, got inf"},
      {[](PPOConfig& c) { c.log_std_init = NAN; }, "--log-std-init must be in [-20, 20], got nan"},
      {[](PPOConfig& c) { c.learning_rate = 0; }, "--lr must be a finite number > 0, got 0"},
      {[](PPOConfig& c) { c.learning_rate = INFINITY; },
       "--lr must be a finite number > 0, got inf"},
      {[](PPOConfig& c) { c.adam_eps = -1e-5; }, "--adam-eps must be a finite number >= 0"},
      {[](PPOConfig& c) { c.gamma = 1.5; }, "--gamma must be in [0, 1], got 1.5"},
      {[](PPOConfig& c) { c.gae_lambda = NAN; }, "--gae-lambda must be in [0, 1], got nan"},
      {[](PPOConfig& c) { c.clip_coef = 0; }, "--clip-coef must be a finite number > 0, got 0"},
      {[](PPOConfig& c) { c.dual_clip = 0.5; },
       "--dual-clip must be 0 (off) or a finite number > 1, got 0.5"},
      {[](PPOConfig& c) { c.max_grad_norm = NAN; },
       "--max-grad-norm must be a finite number >= 0 (0 = off), got nan"},
      {[](PPOConfig& c) { c.num_envs = 0; }, "--num-envs must be in [1, 65536], got 0"},
      {[](PPOConfig& c) { c.num_steps = 0; }, "--num-steps must be in [1, 16777216], got 0"},
      {[](PPOConfig& c) { c.num_envs = 1000000000; },
       "--num-envs must be in [1, 65536], got 1000000000"},
      {[](PPOConfig& c) { c.num_envs = 65536, c.num_steps = 65536; }, "over the limit 16777216"},
      {[](PPOConfig& c) { c.update_epochs = 0; }, "--update-epochs must be positive, got 0"},
      {[](PPOConfig& c) { c.hidden = "64,0"; },
       "--hidden: '64,0' is not a comma-separated list of positive sizes"},
      {[](PPOConfig& c) { c.hidden = " 64"; },
       "--hidden: ' 64' is not a comma-separated list of positive sizes"},
      {[](PPOConfig& c) { c.hidden = "64,+64"; },
       "--hidden: '64,+64' is not a comma-separated list of positive sizes"},
      {[](PPOConfig& c) { c.hidden = "1000000"; },
       "ppo: --hidden: layer size 1000000 is not in [1, 65536]"},
      {[](PPOConfig& c) { c.activation = "swish"; },
       "--activation must be tanh, relu, gelu or sigmoid, got 'swish'"},
      {[](PPOConfig& c) { c.env_id = "Nope-v0"; },
       "ppo: --env: make_env: unknown environment 'Nope-v0'"},
  };
  const std::string dir = tmp_run("ppo_bad_settings");
  for (const auto& k : cases) {
    PPOConfig c = tiny_ppo();
    k.set(c);
    const std::string err = error_of([&] { train_ppo(c, dir); });
    EXPECT_NE(err.find(k.expect), std::string::npos)
        << "expected: " << k.expect << "\ngot: " << err;
    EXPECT_FALSE(std::filesystem::exists(dir)) << k.expect << ": the run directory was created";
  }
  // The documented "off" values stay valid.
  PPOConfig off = tiny_ppo();
  off.target_kl = 0;
  off.max_grad_norm = 0;
  off.dual_clip = 0;
  off.checkpoint_every = 0;
  off.ent_coef = 0;
  EXPECT_EQ(train_ppo(off).updates.size(), 1u);
}

TEST(Reinforce, EverySettingIsCheckedBeforeTheRunIsWritten) {
  const struct {
    std::function<void(ReinforceConfig&)> set;
    std::string expect;
  } cases[] = {
      {[](ReinforceConfig& c) { c.log_every = 0; },
       "reinforce: --log-every must be positive, got 0"},
      {[](ReinforceConfig& c) { c.baseline_momentum = 2; },
       "--baseline-momentum must be in [0, 1], got 2"},
      {[](ReinforceConfig& c) { c.baseline_momentum = -1; },
       "--baseline-momentum must be in [0, 1], got -1"},
      {[](ReinforceConfig& c) { c.baseline_momentum = NAN; },
       "--baseline-momentum must be in [0, 1], got nan"},
      {[](ReinforceConfig& c) { c.learning_rate = INFINITY; },
       "--lr must be a finite number > 0, got inf"},
      {[](ReinforceConfig& c) { c.gamma = NAN; }, "--gamma must be in [0, 1], got nan"},
      {[](ReinforceConfig& c) { c.total_episodes = 0; },
       "--total-episodes must be positive, got 0"},
      {[](ReinforceConfig& c) { c.episodes_per_update = -2; },
       "--episodes-per-update must be positive, got -2"},
      // std::string(1, 'x'), not "x": assigning that literal warns a false -Wrestrict in GCC 12
      {[](ReinforceConfig& c) { c.hidden = std::string(1, 'x'); }, "--hidden: 'x' is not"},
      {[](ReinforceConfig& c) { c.activation = "swish"; },
       "--activation must be tanh, relu, gelu or sigmoid"},
      {[](ReinforceConfig& c) { c.env_id = "Nope-v0"; },
       "reinforce: --env: make_env: unknown environment 'Nope-v0'"},
  };
  const std::string dir = tmp_run("reinforce_bad_settings");
  for (const auto& k : cases) {
    ReinforceConfig c;
    c.total_episodes = 2;
    c.quiet = true;
    k.set(c);
    const std::string err = error_of([&] { train_reinforce(c, dir); });
    EXPECT_NE(err.find(k.expect), std::string::npos)
        << "expected: " << k.expect << "\ngot: " << err;
    EXPECT_FALSE(std::filesystem::exists(dir)) << k.expect << ": the run directory was created";
  }
  // Momentum 0 and 1 are the ends of the range, not errors.
  ReinforceConfig c;
  c.total_episodes = 2;
  c.quiet = true;
  c.baseline_momentum = 1;
  EXPECT_EQ(train_reinforce(c).updates.size(), 2u);
}

TEST(PPO, ResumeRefusesOtherSettings) {
  const std::string dir = tmp_run("resume_settings");
  PPOConfig c = tiny_ppo(1);
  train_ppo(c, dir);
  const std::string metrics = fs::read_file(dir + "/metrics.jsonl");
  const std::string ckpt = fs::read_file(dir + "/checkpoint.safetensors");
  PPOConfig r = tiny_ppo(2);
  r.resume = true;
  const struct {
    std::function<void(PPOConfig&)> set;
    std::string expect;
  } cases[] = {
      {[](PPOConfig& x) { x.activation = "relu"; },
       "--resume: setting 'activation' is \"relu\" but the run at "},
      {[](PPOConfig& x) { x.norm_obs = true; }, "--resume: setting 'norm_obs' is true"},
      {[](PPOConfig& x) { x.env_id = "Pendulum-v1"; },
       "--resume: setting 'env_id' is \"Pendulum-v1\""},
      {[](PPOConfig& x) { x.seed = 9; }, "--resume: setting 'seed' is 9"},
  };
  for (const auto& k : cases) {
    PPOConfig x = r;
    k.set(x);
    const std::string err = error_of([&] { train_ppo(x, dir); });
    EXPECT_NE(err.find(k.expect), std::string::npos)
        << "expected: " << k.expect << "\ngot: " << err;
    EXPECT_EQ(fs::read_file(dir + "/metrics.jsonl"), metrics) << k.expect;
    EXPECT_EQ(fs::read_file(dir + "/checkpoint.safetensors"), ckpt) << k.expect;
  }
  // Only the step budget (and where / how loudly to run) may change.
  r.log_every = 7;
  r.checkpoint_every = 3;
  const PPOResult more = train_ppo(r, dir);
  ASSERT_EQ(more.updates.size(), 1u);
  EXPECT_EQ(more.updates[0].update, 2);
}

TEST(PPO, ResumeDropsMetricsLoggedAfterTheCheckpoint) {
  // A crash after update 3 with the last checkpoint at update 2 leaves update 3's line; the
  // resumed run logs update 3 again, so the file must not hold it twice.
  const std::string dir = tmp_run("resume_metrics");
  PPOConfig c = tiny_ppo(4);
  c.checkpoint_every = 2;
  train_ppo(c, dir, [](const PPOUpdate& u) { return u.update < 2; });
  fs::append_line(dir + "/metrics.jsonl", R"({"update":3,"global_step":768,"episodes":0})");
  c.resume = true;
  train_ppo(c, dir);
  std::vector<int64_t> updates;
  for (const json::Value& m : json::parse_jsonl(fs::read_file(dir + "/metrics.jsonl")))
    updates.push_back(m.at("update").as_int());
  EXPECT_EQ(updates, (std::vector<int64_t>{1, 2, 3, 4}));
}

// A resumed run goes on from the checkpoint's observation statistics and penalty β, not fresh
// ones. Rows into obs_rms: each (re)start's reset observes N rows, each rollout step N more, from
// Gymnasium's count of 1e-4. The interrupted run's checkpoint after update 1 holds
// 1e-4 + N + N·T = 1e-4 + 4 + 128; the resume resets again (N rows) and rolls out update 2
// (N·T), ending at 1e-4 + N·(2 + 2T) = 264.0001 (one reset fewer, 260.0001, uninterrupted; a
// resume that drops the saved stats ends at 132.0001). kl_target 1 is far above any KL here, so
// β halves every update from 1: 0.5, 0.25; a resume that drops the saved β logs 0.5 at update 2.
TEST(PPO, ResumeRestoresObsStatsAndPenaltyBeta) {
  PPOConfig c;
  c.env_id = "Pendulum-v1";
  c.num_envs = 4;
  c.num_steps = 32;
  c.total_steps = 4 * 32 * 2;
  c.norm_obs = true;
  c.loss = "penalty";
  c.kl_target = 1.0;
  c.quiet = true;
  auto count_in = [](const std::string& path) {
    Metadata md;
    (void)load_tensors(path, &md);
    return json::parse(md.at("obs_rms")).at("count").as_double();
  };
  const std::string full = tmp_run("resume_rms_full"), dir = tmp_run("resume_rms");
  const PPOResult whole = train_ppo(c, full);
  ASSERT_EQ(whole.updates.size(), 2u);
  EXPECT_DOUBLE_EQ(whole.updates[1].kl_beta, 0.25);
  EXPECT_DOUBLE_EQ(count_in(full + "/policy.safetensors"), 1e-4 + 4 * (1 + 2 * 32));
  train_ppo(c, dir, [](const PPOUpdate& u) { return u.update < 1; });  // stops after update 1
  EXPECT_DOUBLE_EQ(count_in(dir + "/checkpoint.safetensors"), 1e-4 + 4 + 4 * 32);
  c.resume = true;
  const PPOResult r = train_ppo(c, dir);
  ASSERT_EQ(r.updates.size(), 1u);
  EXPECT_EQ(r.updates[0].update, 2);
  EXPECT_DOUBLE_EQ(r.updates[0].kl_beta, 0.25);
  EXPECT_DOUBLE_EQ(r.updates[0].kl_beta, whole.updates[1].kl_beta);
  EXPECT_DOUBLE_EQ(count_in(dir + "/policy.safetensors"), 1e-4 + 4 * (2 + 2 * 32));
  EXPECT_DOUBLE_EQ(count_in(dir + "/checkpoint.safetensors"), 264.0001);
}

TEST(PPO, ResumeRefusesANonFiniteCheckpoint) {
  const std::string dir = tmp_run("resume_nan");
  PPOConfig c = tiny_ppo(1);
  train_ppo(c, dir);
  const std::string path = dir + "/checkpoint.safetensors";
  Metadata md;
  NamedTensors tensors = load_tensors(path, &md);
  bool poisoned = false;
  for (auto& [name, t] : tensors)
    if (name == "actor.0.weight") t.data<float>()[1] = NAN, poisoned = true;
  ASSERT_TRUE(poisoned);
  save_tensors(path, tensors, md);
  PPOConfig r = tiny_ppo(2);
  r.resume = true;
  const std::string err = error_of([&] { train_ppo(r, dir); });
  EXPECT_NE(
      err.find(path + ": 'actor.0.weight' holds NaN at flat index 1 (weights must be finite)"),
      std::string::npos)
      << err;
}

// A resume that cannot go on leaves the run as it was, config.json included (it used to record
// the new budget before the checkpoint was read): a budget below the checkpoint's update, a
// damaged checkpoint, and a config.json edited by hand to build another network than the
// checkpoint records (same shapes: tanh weights would have loaded into a relu network).
TEST(PPO, AResumeThatCannotGoOnLeavesTheRunAsItWas) {
  const std::string dir = tmp_run("resume_refused");
  train_ppo(tiny_ppo(2), dir);
  const std::string config = fs::read_file(dir + "/config.json"),
                    metrics = fs::read_file(dir + "/metrics.jsonl"),
                    ckpt = fs::read_file(dir + "/checkpoint.safetensors");
  auto expect_untouched = [&](const std::string& what) {
    EXPECT_EQ(fs::read_file(dir + "/config.json"), config) << what;
    EXPECT_EQ(fs::read_file(dir + "/metrics.jsonl"), metrics) << what;
    EXPECT_EQ(fs::read_file(dir + "/checkpoint.safetensors"), ckpt) << what;
  };
  PPOConfig smaller = tiny_ppo(1);
  smaller.resume = true;
  std::string err = error_of([&] { train_ppo(smaller, dir); });
  EXPECT_NE(err.find(": the checkpoint is at update 2 (global step 512), beyond --total-steps 256 "
                     "(1 updates of 256 steps)"),
            std::string::npos)
      << err;
  expect_untouched("smaller budget");

  PPOConfig more = tiny_ppo(3);
  more.resume = true;
  fs::atomic_write_file(dir + "/checkpoint.safetensors", ckpt.substr(0, ckpt.size() / 2));
  EXPECT_NE(error_of([&] { train_ppo(more, dir); }).find(dir + "/checkpoint.safetensors"),
            std::string::npos);
  fs::atomic_write_file(dir + "/checkpoint.safetensors", ckpt);
  expect_untouched("damaged checkpoint");

  // config.json says relu where the checkpoint recorded tanh: resume takes config.json's
  // settings, so the check against the checkpoint's own record is what names it.
  std::string edited = config;
  for (size_t at; (at = edited.find("\"tanh\"")) != std::string::npos;)
    edited.replace(at, 6, "\"relu\"");
  fs::atomic_write_file(dir + "/config.json", edited);
  PPOConfig relu = tiny_ppo(3);
  relu.activation = "relu";
  relu.resume = true;
  err = error_of([&] { train_ppo(relu, dir); });
  EXPECT_NE(err.find("--resume: setting 'activation' is \"relu\" but the checkpoint " + dir +
                     "/checkpoint.safetensors was trained with \"tanh\""),
            std::string::npos)
      << err;
  EXPECT_EQ(fs::read_file(dir + "/config.json"), edited);
  EXPECT_EQ(fs::read_file(dir + "/checkpoint.safetensors"), ckpt);
}

// A trained CartPole policy file whose metadata or weights `edit` damages; evaluate_run's error.
std::string eval_error(const std::string& name,
                       const std::function<void(Metadata&, NamedTensors&)>& edit) {
  const std::string dir = tmp_run(name);
  train_ppo(tiny_ppo(1), dir);
  const std::string path = dir + "/policy.safetensors";
  Metadata md;
  NamedTensors tensors = load_tensors(path, &md);
  edit(md, tensors);
  save_tensors(path, tensors, md);
  return error_of([&] { evaluate_run(dir, 2, 0, true); });
}

// Episode e of an evaluation with seed s resets the environment with seed s + e (greedy, so
// episode 1 of seed 0 is episode 0 of seed 1), and the summary is the population statistics of
// the returns: std = √(Σ(x − mean)²/n), not the n − 1 sample form.
TEST(Eval, EpisodeSeedsAndTheReturnsPopulationStatistics) {
  const std::string dir = tmp_run("eval_stats");
  train_ppo(tiny_ppo(1), dir);
  const EvalResult r = evaluate_run(dir, 6, 0, true);
  ASSERT_EQ(r.returns.size(), 6u);
  EXPECT_EQ(evaluate_run(dir, 1, 1, true).returns[0], r.returns[1]);
  EXPECT_EQ(evaluate_run(dir, 1, 5, true).returns[0], r.returns[5]);
  double mean = 0, ss = 0;
  for (double x : r.returns) mean += x / 6;
  for (double x : r.returns) ss += (x - mean) * (x - mean);
  ASSERT_GT(ss, 0) << "the six episodes should not all return the same";
  EXPECT_NEAR(r.mean, mean, 1e-9);
  EXPECT_NEAR(r.std, std::sqrt(ss / 6), 1e-9);
  EXPECT_EQ(r.min, *std::min_element(r.returns.begin(), r.returns.end()));
  EXPECT_EQ(r.max, *std::max_element(r.returns.begin(), r.returns.end()));
}

// parameter_count(config), which the loader compares with a file's tensors, counts what the
// constructor builds, for every kind of policy.
TEST(Eval, ParameterCountIsWhatThePolicyHas) {
  std::vector<models::PolicyConfig> configs;
  for (bool discrete : {true, false})
    for (bool shared : {false, true})
      for (bool critic : {true, false})
        for (bool fixed_std : {false, true})
          for (const std::vector<int64_t>& hidden :
               {std::vector<int64_t>{7}, std::vector<int64_t>{5, 3},
                std::vector<int64_t>{4, 6, 2}}) {
            models::PolicyConfig c;
            c.obs_dim = 3;
            c.num_actions = 2;
            c.discrete = discrete;
            c.shared_trunk = shared;
            c.critic = critic;
            c.fixed_std = fixed_std;
            c.hidden = hidden;
            configs.push_back(c);
          }
  for (const models::PolicyConfig& c : configs) {
    Generator gen(0);
    const models::ActorCritic policy(c, gen);
    EXPECT_EQ(models::parameter_count(c), double(policy.num_parameters())) << models::describe(c);
  }
}

TEST(Eval, DamagedPolicyFilesAreClearErrors) {
  const std::string dir =
      (std::filesystem::temp_directory_path() / "rlft_test_runs" / "eval_damaged_").string();
  struct Case {
    std::string name;
    std::function<void(Metadata&, NamedTensors&)> edit;
    std::string expect;
  };
  const Case cases[] = {
      {"nan",
       [](Metadata&, NamedTensors& t) {
         for (auto& [n, x] : t) {
           float* p = x.data<float>();
           for (int64_t i = 0; i < x.numel(); ++i) p[i] = NAN;
         }
       },
       "'actor.0.weight' holds NaN at flat index 0 (weights must be finite)"},
      {"string_obs_dim", [](Metadata& m, NamedTensors&) { m["policy"] = R"({"obs_dim":"4"})"; },
       "/policy.safetensors: metadata policy.obs_dim: json: expected an integer, found string "
       "\"4\""},
      {"empty_policy", [](Metadata& m, NamedTensors&) { m["policy"] = "{}"; },
       "/policy.safetensors: metadata policy.obs_dim: missing"},
      {"bad_json", [](Metadata& m, NamedTensors&) { m["policy"] = "{"; },
       "/policy.safetensors: metadata policy: "},
      {"zero_hidden",
       [](Metadata& m, NamedTensors&) {
         m["policy"] =
             R"({"obs_dim":4,"discrete":true,"num_actions":2,"hidden":[0],"activation":"tanh"})";
       },
       "metadata policy.hidden: layer size 0 is not in [1, 65536]"},
      // One hidden layer more than the file holds: refused by the weight count before a policy
      // is built (stored: actor 4·64+64 + 64·64+64 + 64·2+2 = 4610, critic 4545; described:
      // actor 8770, critic 8705), so a description of many wide layers cannot fill memory first.
      {"more_layers",
       [](Metadata& m, NamedTensors&) {
         m["policy"] =
             R"({"obs_dim":4,"discrete":true,"num_actions":2,"hidden":[64,64,64],"activation":"tanh"})";
       },
       "/policy.safetensors: its tensors hold 9155 weights but its metadata policy describes "
       "17475"},
      {"unknown_env", [](Metadata& m, NamedTensors&) { m["env_id"] = "Nope-v0"; },
       "/policy.safetensors: metadata env_id: make_env: unknown environment 'Nope-v0'"},
      {"action_space",
       [](Metadata& m, NamedTensors&) {
         m["env_id"] = "Pendulum-v1";
         m["policy"] =
             R"({"obs_dim":3,"discrete":true,"num_actions":2,"hidden":[64,64],"activation":"tanh"})";
       },
       "the policy's actions (discrete, 2) do not fit Pendulum-v1's action space Box(-2, 2, (1,)"},
      {"obs_rms_dim",
       [](Metadata& m, NamedTensors&) { m["obs_rms"] = R"({"mean":[0],"var":[1],"count":1})"; },
       "/policy.safetensors: metadata obs_rms: has 1 values but the policy observes 4"},
      {"obs_rms_null",
       [](Metadata& m, NamedTensors&) {
         m["obs_rms"] = R"({"mean":[0,0,0,null],"var":[1,1,1,1],"count":1})";
       },
       "/policy.safetensors: metadata obs_rms: "},
      {"obs_rms_var",
       [](Metadata& m, NamedTensors&) {
         m["obs_rms"] = R"({"mean":[0,0,0,0],"var":[1,-1,1,1],"count":1})";
       },
       "metadata obs_rms: var[1] is -1"},
  };
  for (const Case& k : cases) {
    const std::string err = eval_error("eval_damaged_" + k.name, k.edit);
    EXPECT_NE(err.find(k.expect), std::string::npos)
        << k.name << ": expected: " << k.expect << "\ngot: " << err;
    EXPECT_NE(err.find(dir + k.name + "/policy.safetensors"), std::string::npos)
        << k.name << ": " << err;
  }
  EXPECT_NE(error_of([] {
              evaluate_run("/nonexistent", 0, 0, true);
            }).find("--episodes must be in [1, 1000000], got 0"),
            std::string::npos);
}

// `rlft eval` feeds the policy the observations normalised by the statistics the file records
// (metadata obs_rms), as training did. A policy with no statistics, and the same policy with its
// first layer's weights doubled and statistics of mean 0 and variance 4 (each observation
// halved: (x − 0)/√(4 + 1e-8) rounds to the float x/2 exactly, and 2W·(x/2) = W·x bit for bit,
// powers of two being exact), act alike: their deterministic returns are equal. Read without
// its statistics, the doubled policy acts otherwise (Pendulum's Gaussian mean is continuous in
// the weights, unclamped at initialisation): the returns differ.
TEST(Eval, ObservationsAreNormalisedByTheRecordedStatistics) {
  const std::string plain = tmp_run("eval_obs_plain"), scaled = tmp_run("eval_obs_scaled"),
                    doubled = tmp_run("eval_obs_doubled");
  PPOConfig c = tiny_ppo(1);
  c.env_id = "Pendulum-v1";
  train_ppo(c, plain);
  Metadata md;
  NamedTensors tensors = load_tensors(plain + "/policy.safetensors", &md);
  ASSERT_EQ(md.count("obs_rms"), 0u) << "norm_obs is off";
  int64_t doubled_layers = 0;
  for (auto& [name, w] : tensors) {
    if (name != "actor.0.weight") continue;
    for (int64_t i = 0; i < w.numel(); ++i) w.data<float>()[i] *= 2;
    ++doubled_layers;
  }
  ASSERT_EQ(doubled_layers, 1);
  for (const std::string& dir : {scaled, doubled}) {
    std::filesystem::create_directories(dir);
    Metadata m = md;
    if (dir == scaled) m["obs_rms"] = R"({"mean":[0,0,0],"var":[4,4,4],"count":10})";
    save_tensors(dir + "/policy.safetensors", tensors, m);
  }
  const EvalResult a = evaluate_run(plain, 3, 7, true), b = evaluate_run(scaled, 3, 7, true),
                   d = evaluate_run(doubled, 3, 7, true);
  ASSERT_EQ(a.returns.size(), 3u);
  EXPECT_EQ(b.returns, a.returns);
  EXPECT_NE(d.returns, a.returns);
}

TEST(Plot, LearningCurveOfAnotherKindOfRunIsAClearError) {
  const std::string dir = tmp_run("plot_lm");
  std::filesystem::create_directories(dir);
  fs::atomic_write_file(dir + "/metrics.jsonl", "{\"step\":1,\"loss\":2.5}\n");
  const std::string err = error_of([&] { write_learning_curve(dir); });
  EXPECT_NE(
      err.find(dir +
               "/metrics.jsonl: record 1 has no numeric \"global_step\": not the metrics of a "
               "classic-control run"),
      std::string::npos)
      << err;
}

TEST(Plot, ARunStillWritingItsLastLineIsPlotted) {
  const std::string dir = tmp_run("plot_cut");
  std::filesystem::create_directories(dir);
  const std::string two =
      "{\"global_step\":128,\"episodic_return_mean\":11,\"return_last20\":11}\n"
      "{\"global_step\":256,\"episodic_return_mean\":23,\"return_last20\":17}\n";
  fs::atomic_write_file(dir + "/metrics.jsonl", two + "{\"global_step\":384,\"episo");
  bool cut = false;
  int64_t skipped = -1;
  const std::string svg = fs::read_file(write_learning_curve(dir, &skipped, &cut));
  EXPECT_TRUE(cut);
  EXPECT_EQ(skipped, 0);
  EXPECT_NE(svg.find("<polyline"), std::string::npos);
  fs::atomic_write_file(dir + "/metrics.jsonl", two);
  write_learning_curve(dir, nullptr, &cut);
  EXPECT_FALSE(cut);
  // Not the last line: an error naming the file and the line, as before.
  fs::atomic_write_file(dir + "/metrics.jsonl", "{\"global_step\":1,\"epi\n" + two);
  const std::string err = error_of([&] { write_learning_curve(dir); });
  EXPECT_EQ(err.rfind(dir + "/metrics.jsonl:1:", 0), 0u) << err;
}

TEST(Plot, HugeAndNonFiniteReturnsDrawNoNaN) {
  const std::string dir = tmp_run("plot_huge");
  std::filesystem::create_directories(dir);
  fs::atomic_write_file(
      dir + "/metrics.jsonl",
      "{\"global_step\":1,\"episodic_return_mean\":1e308,\"return_last20\":1e308}\n"
      "{\"global_step\":2,\"episodic_return_mean\":-1e308,\"return_last20\":0}\n"
      "{\"global_step\":3,\"episodic_return_mean\":5,\"return_last20\":null}\n"
      "{\"global_step\":4,\"episodic_return_mean\":7,\"return_last20\":6}\n");
  int64_t skipped = -1;
  const std::string svg_path = write_learning_curve(dir, &skipped);
  EXPECT_EQ(skipped, 3);  // two ±1e308 means and one 1e308 last-20 (null is not logged as a point)
  const std::string svg = fs::read_file(svg_path);
  EXPECT_EQ(svg.find("nan"), std::string::npos) << svg;
  EXPECT_EQ(svg.find("inf"), std::string::npos) << svg;
  EXPECT_NE(svg.find("3 points not drawn"), std::string::npos);
  EXPECT_NE(svg.find("<polyline"), std::string::npos);  // steps 3 and 4 still draw a line
  // Values that differ below a double's precision, and spans that would overflow, stay finite
  // and terminate (the tick loop once stalled at v += step).
  const std::string flat = plot::line_plot_svg("t", "x", "y", {{"s", {0, 1}, {1e17, 1e17}}});
  EXPECT_EQ(flat.find("nan"), std::string::npos);
  EXPECT_EQ(flat.find("inf"), std::string::npos);
  EXPECT_LE(plot::nice_ticks(1e17, 1e17 + 16, 6).size(), 32u);
  const std::string wide =
      plot::line_plot_svg("t", "x", "y", {{"s", {0, 1, 2}, {-1e300, 1e300, 0}}});
  EXPECT_EQ(wide.find("nan"), std::string::npos);
  EXPECT_EQ(wide.find("inf"), std::string::npos);
  EXPECT_EQ(plot::count_unplottable({{"s", {0, 1, 2, 3}, {1, NAN, INFINITY, 2e300}}}), 3);
  // Small-valued series (a KL of 1e-3) keep their own scale.
  const std::string small = plot::line_plot_svg("t", "x", "y", {{"kl", {0, 1}, {0.001, 0.002}}});
  EXPECT_NE(small.find(">0.0015<"), std::string::npos) << small;
}

TEST(PPO, CudaWithoutAGpuIsOneClearError) {
  std::string reason;
  if (cuda::device_count(&reason) > 0) GTEST_SKIP() << "a GPU is present";
  PPOConfig c;
  c.device = "cuda";
  expect_no_cuda_device_error([&] { train_ppo(c); });
}

TEST(PPO, CudaRunMatchesTheCpu) {
  // The same seeded CartPole run on both devices: the rollouts sample from the same host
  // stream, so the metrics differ only by float rounding in the networks (≈1e-6 relative),
  // which does not flip a sampled action in practice. Three updates of 4×128 steps.
  RLFT_SKIP_WITHOUT_GPU();
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
    for (auto [name, x, y] :
         {std::tuple{"pg_loss", a.pg_loss, b.pg_loss}, std::tuple{"v_loss", a.v_loss, b.v_loss},
          std::tuple{"entropy", a.entropy, b.entropy},
          std::tuple{"approx_kl", a.approx_kl, b.approx_kl}})
      EXPECT_NEAR(y, x, 1e-6 + 1e-4 * std::abs(x)) << name << " at update " << i;
  }
}

TEST(Reinforce, CartPoleSolves) {
  // Seed 1 reaches a last-20 mean of 475 at episode 417 (measured); the issue's bar is 1,500.
  ReinforceConfig c;
  c.quiet = true;
  const ReinforceResult r =
      train_reinforce(c, "", [](const ReinforceUpdate& u) { return u.return_last20 < 475; });
  ASSERT_GE(r.episodes_to_threshold, 0);
  EXPECT_LE(r.episodes_to_threshold, 1500);
}

// The running-mean baseline tracks the DISCOUNTED return G_0 = Σ_t γ^t r_t: on CartPole every
// step pays 1, so an episode of L steps (its logged return) has G_0 = (1 − γ^L)/(1 − γ).
// b = G_0 of the first episode, then b ← m·b + (1 − m)·G_0 after each one (reinforce.h).
TEST(Reinforce, BaselineIsTheRunningMeanOfDiscountedReturns) {
  ReinforceConfig c;
  c.total_episodes = 6;
  c.episodes_per_update = 1;
  c.gamma = 0.98;
  c.baseline_momentum = 0.9;
  c.quiet = true;
  const ReinforceResult r = train_reinforce(c);
  ASSERT_EQ(r.updates.size(), 6u);
  double b = 0;
  for (size_t k = 0; k < r.updates.size(); ++k) {
    const double L = r.updates[k].episode_return;  // 1 per step
    ASSERT_EQ(L, std::floor(L));
    const double g0 = (1 - std::pow(0.98, L)) / (1 - 0.98);
    b = k == 0 ? g0 : 0.9 * b + 0.1 * g0;
    EXPECT_NEAR(r.updates[k].baseline, b, 1e-9) << "episode " << k + 1;
  }
}

// The loss L = −(1/N) Σ_t (G − b)·log π(a_t|s_t) (reinforce.h), with the whole-episode return
// G_0 and no normalisation: L = −(G_0 − b)·S, S = Σ_t log π. Two runs that differ only in the
// baseline play the same first episode (b is 0 until a return is seen) and take the same first
// step, so they play the same second episode: there S = −L_none/G_0 and
// L_mean = L_none·(G_0 − b)/G_0 with b = the first episode's G_0 (the baseline's first value).
TEST(Reinforce, LossSubtractsTheBaselineFromTheReturn) {
  auto run = [](const std::string& baseline) {
    ReinforceConfig c;
    c.total_episodes = 2;
    c.episodes_per_update = 1;
    c.gamma = 0.98;
    c.reward_to_go = false;
    c.normalize_returns = false;
    c.baseline = baseline;
    c.quiet = true;
    return train_reinforce(c);
  };
  const ReinforceResult none = run("none"), mean = run("mean");
  ASSERT_EQ(none.updates.size(), 2u);
  ASSERT_EQ(mean.updates.size(), 2u);
  EXPECT_EQ(none.updates[0].loss, mean.updates[0].loss);
  ASSERT_EQ(none.updates[1].episode_return, mean.updates[1].episode_return);
  auto g0 = [](double L) { return (1 - std::pow(0.98, L)) / (1 - 0.98); };  // CartPole: 1 a step
  const double b = g0(mean.updates[0].episode_return), G = g0(mean.updates[1].episode_return);
  EXPECT_NEAR(mean.updates[0].baseline, b, 1e-9);
  // N = 1 episode per update: L = −G_0·Σ_t log π. The initial policy is nearly uniform over
  // CartPole's two actions (actor head gain 0.01), so −log π ≈ ln 2 at every step and the first
  // loss is ≈ ln 2·G_0·(steps) (not divided by the step count).
  const double steps1 = none.updates[0].episode_return;
  EXPECT_NEAR(none.updates[0].loss / (g0(steps1) * steps1), std::log(2.0), 0.05);
  EXPECT_GT(none.updates[1].loss, 0.0);  // −G_0·S with S = Σ log π < 0
  EXPECT_NEAR(mean.updates[1].loss, none.updates[1].loss * (G - b) / G,
              1e-5 * std::abs(none.updates[1].loss));
}

// --normalize-returns standardises the weights G_t − b over the batch's steps (mean 0, sample
// std 1), so they also act as a baseline. The first policy is nearly uniform (log π ≈ −ln 2 + ε,
// |ε| of order 0.01), so the loss −Σ_t w_t·log π_t = −Σ_t w_t·ε_t is near 0 (|loss| ≤ Σ|w_t|·|ε|,
// about 0.01 per step); scaled but not centred, the weights would give, by the same estimate,
// ≈ ln 2·mean/std ≈ ln 2·√3 ≈ 1.2 per step (G_t nearly linear in t). The bound is 0.05 a step.
TEST(Reinforce, NormalizedReturnsAreCentredAndScaled) {
  ReinforceConfig c;
  c.total_episodes = 1;
  c.episodes_per_update = 1;
  c.gamma = 0.99;
  c.reward_to_go = true;
  c.normalize_returns = true;
  c.baseline = "none";
  c.quiet = true;
  const ReinforceResult r = train_reinforce(c);
  ASSERT_EQ(r.updates.size(), 1u);
  const double steps = r.updates[0].episode_return;  // CartPole: 1 a step
  ASSERT_GE(steps, 8.0);
  EXPECT_LT(std::abs(r.updates[0].loss), 0.05 * steps) << r.updates[0].loss;
}

TEST(Reinforce, CudaWithoutAGpuIsOneClearError) {
  std::string reason;
  if (cuda::device_count(&reason) > 0) GTEST_SKIP() << "a GPU is present";
  ReinforceConfig c;
  c.device = "cuda";
  expect_no_cuda_device_error([&] { train_reinforce(c); });
}

TEST(Reinforce, CudaRunMatchesTheCpu) {
  // The same seeded CartPole run on both devices: actions are sampled on the host stream from
  // the device's probabilities, so the episodes are the same (integer actions, the same
  // environment steps) unless float rounding in the network flips a sample, which does not
  // happen in practice; the losses differ by rounding (≈1e-6 relative).
  RLFT_SKIP_WITHOUT_GPU();
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
    EXPECT_NEAR(b.entropy, a.entropy, 1e-6 + 1e-4 * std::abs(a.entropy))
        << "entropy at update " << i;
  }
}

TEST(Reinforce, CudaContinuousSmoke) {
  // Pendulum's Gaussian policy on the device (noise from the host stream): the run completes
  // with finite losses. Not compared with the CPU: near the upright position the pendulum
  // amplifies float-rounding differences in the torque, so returns may drift apart.
  RLFT_SKIP_WITHOUT_GPU();
  ReinforceConfig c;
  c.env_id = "Pendulum-v1";
  c.device = "cuda";
  c.total_episodes = 3;
  c.quiet = true;
  const ReinforceResult r = train_reinforce(c);
  ASSERT_EQ(r.updates.size(), 3u);
  EXPECT_EQ(r.updates.back().global_step, 600);
  for (const ReinforceUpdate& u : r.updates)
    EXPECT_TRUE(std::isfinite(u.loss) && std::isfinite(u.entropy));
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

// --resume continues a REINFORCE run from its checkpoint: the episode count and global step go
// on, and the loop's state comes back exactly. On CartPole (+1 a step) an episode of L steps has
// return L and G_0 = Σ_{t<L} γ^t, so the first resumed update's running-mean baseline is
// m·b + (1 − m)·G_0 from the stopped run's last b, and its last-20 mean is that of the stopped
// run's episodes 2..20 and L. A metrics line after the checkpoint (a crash between two
// checkpoints) is dropped and logged again.
TEST(Reinforce, ResumeContinuesTheRunFromItsState) {
  ReinforceConfig c;
  c.total_episodes = 30;
  c.checkpoint_every = 10;
  c.quiet = true;
  const std::string dir = tmp_run("reinforce_resume");
  fs::forget_flushes();
  int durability_checks = 0;
  const ReinforceResult first = train_reinforce(c, dir, [&](const ReinforceUpdate& u) {
    // The checkpoint of episode 10 is written: a crash now keeps the lines through it.
    if (u.episode == 10) {
      testing::expect_log_durable_through(dir + "/metrics.jsonl", 10, "episode");
      ++durability_checks;
    }
    return u.episode < 20;
  });
  EXPECT_EQ(durability_checks, 1) << "the callback never saw episode 10: the log was not checked";
  ASSERT_EQ(first.updates.size(), 20u);
  fs::append_line(dir + "/metrics.jsonl", R"({"episode":21,"global_step":1,"episodic_return":0})");
  c.resume = true;
  const ReinforceResult r = train_reinforce(c, dir);
  ASSERT_EQ(r.updates.size(), 10u);
  const ReinforceUpdate &was = first.updates.back(), &now = r.updates.front();
  EXPECT_EQ(now.episode, 21);
  const int64_t L = now.global_step - was.global_step;
  ASSERT_GT(L, 0);
  EXPECT_EQ(now.episode_return, double(L));
  double g0 = 0;
  for (int64_t t = 0; t < L; ++t) g0 = 1 + c.gamma * g0;
  EXPECT_NEAR(now.baseline, c.baseline_momentum * was.baseline + (1 - c.baseline_momentum) * g0,
              1e-9);
  double last20 = double(L);
  for (size_t i = 1; i < 20; ++i) last20 += first.updates[i].episode_return;
  EXPECT_NEAR(now.return_last20, last20 / 20, 1e-9);
  const std::vector<json::Value> lines = json::parse_jsonl(fs::read_file(dir + "/metrics.jsonl"));
  ASSERT_EQ(lines.size(), 30u);
  for (size_t i = 0; i < lines.size(); ++i)
    EXPECT_EQ(lines[i].at("episode").as_int(), int64_t(i + 1));
  EXPECT_EQ(lines[20].at("global_step").as_int(), now.global_step);
  EXPECT_EQ(evaluate_run(dir, 2, 7, true).returns.size(), 2u);
  EXPECT_TRUE(fs::exists(dir + "/return.svg"));
}

// A REINFORCE resume that cannot go on says why and leaves the run as it was: another setting,
// a budget below the checkpoint, a checkpoint without its loop state or with a damaged field,
// no checkpoint at all.
TEST(Reinforce, AResumeThatCannotGoOnIsNamedAndChangesNothing) {
  ReinforceConfig c;
  c.total_episodes = 6;
  c.quiet = true;
  const std::string dir = tmp_run("reinforce_refused");
  train_reinforce(c, dir);
  const std::string ckpt = dir + "/checkpoint.safetensors";
  Metadata md;
  const NamedTensors tensors = load_tensors(ckpt, &md);
  const std::string state = md.at("reinforce_state");
  auto refused = [&](ReinforceConfig k, const std::string& expect) {
    const auto before = rlft::testing::files_of(dir);
    k.resume = true;
    const std::string err = error_of([&] { train_reinforce(k, dir); });
    EXPECT_NE(err.find(expect), std::string::npos) << "expected: " << expect << "\ngot: " << err;
    EXPECT_EQ(rlft::testing::files_of(dir), before) << expect;
  };
  ReinforceConfig other = c;
  other.gamma = 0.9;
  refused(other, "setting 'gamma' is 0.9 but the run at " + dir + " was started with 0.99");
  ReinforceConfig shorter = c;
  shorter.total_episodes = 5;
  refused(shorter, ckpt + ": the checkpoint is at episode 6, beyond --total-episodes 5");
  auto with_state = [&](const std::string& text) {
    Metadata m = md;
    if (text.empty())
      m.erase("reinforce_state");
    else
      m["reinforce_state"] = text;
    save_tensors(ckpt, tensors, m);
  };
  with_state("");
  refused(c, ckpt + ": not a REINFORCE training checkpoint (no reinforce_state in its metadata)");
  json::Value damaged = json::parse(state);
  damaged.set("baseline", "x");
  with_state(damaged.dump());
  refused(c, ckpt + ": reinforce_state: field 'baseline' must be a finite number, got \"x\"");
  damaged = json::parse(state);
  damaged.set("last_returns", json::parse("[1, null]"));
  with_state(damaged.dump());
  refused(c, "field 'last_returns' holds null (returns must be finite numbers)");
  with_state(state);
  std::filesystem::remove(ckpt);
  refused(c, "reinforce: cannot resume: no checkpoint at " + ckpt);
}

}  // namespace
}  // namespace rlft::rl