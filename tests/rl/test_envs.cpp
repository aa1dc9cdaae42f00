// Tests of rl/envs: Gymnasium parity (fixtures written by scripts/make_env_fixtures.py with
// Gymnasium from PyPI), determinism, time limits, spaces, invalid actions, the registry,
// VectorEnv's same-step autoreset and episode statistics, and LunarLander's heuristic oracle.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <numbers>
#include <sstream>
#include <string>
#include <vector>

#include "engine/error.h"
#include "rl/envs/cartpole.h"
#include "rl/envs/env.h"
#include "rl/envs/lunar_lander.h"
#include "rl/envs/pendulum.h"
#include "rl/envs/vector_env.h"

namespace rlft::envs {
namespace {

// ---- fixture reader (format: scripts/make_env_fixtures.py) ----------------------------------

struct FixtureStep {
  std::vector<float> action;
  std::vector<float> obs;
  double reward = 0;
  bool terminated = false, truncated = false;
};

struct FixtureEpisode {
  std::string label;
  std::vector<double> state;  // CartPole / Pendulum
  std::vector<double> draws;  // LunarLander
  std::vector<float> reset_obs;
  std::vector<FixtureStep> steps;
};

std::vector<double> read_doubles(std::istringstream& in) {
  std::vector<double> v;
  std::string tok;
  while (in >> tok) v.push_back(std::strtod(tok.c_str(), nullptr));
  return v;
}

// Episodes of one fixture file; a step line holds action_dim + obs_dim + 3 values (the
// action's length is what is left after the obs_dim + 3 trailing values).
std::vector<FixtureEpisode> read_fixture(const std::string& name, int64_t obs_dim) {
  const std::string path = std::string(RLFT_SOURCE_DIR) + "/tests/data/envs/" + name;
  std::ifstream file(path);
  EXPECT_TRUE(file.good()) << "cannot open " << path
                           << " (regenerate with scripts/make_env_fixtures.py)";
  std::vector<FixtureEpisode> episodes;
  std::string line;
  while (std::getline(file, line)) {
    if (line.empty() || line[0] == '#') continue;
    std::istringstream in(line);
    std::string tag;
    in >> tag;
    if (tag == "episode") {
      episodes.emplace_back();
      in >> episodes.back().label;
      continue;
    }
    EXPECT_FALSE(episodes.empty()) << path << ": '" << tag << "' before any episode";
    FixtureEpisode& ep = episodes.back();
    std::vector<double> v = read_doubles(in);
    if (tag == "state") {
      ep.state = v;
    } else if (tag == "draws") {
      EXPECT_EQ(size_t(v.at(0)), v.size() - 1) << path;
      ep.draws.assign(v.begin() + 1, v.end());
    } else if (tag == "reset") {
      ep.reset_obs.assign(v.begin(), v.end());
    } else if (tag == "step") {
      const int64_t action_dim = int64_t(v.size()) - obs_dim - 3;
      EXPECT_GE(action_dim, 1) << path << ": " << line;
      FixtureStep s;
      s.action.assign(v.begin(), v.begin() + action_dim);
      s.obs.assign(v.begin() + action_dim, v.begin() + action_dim + obs_dim);
      s.reward = v[size_t(action_dim + obs_dim)];
      s.terminated = v[size_t(action_dim + obs_dim + 1)] != 0;
      s.truncated = v[size_t(action_dim + obs_dim + 2)] != 0;
      ep.steps.push_back(std::move(s));
    } else {
      ADD_FAILURE() << path << ": unknown record '" << tag << "'";
    }
  }
  return episodes;
}

// |ours - ref| relative to max(|ref|, floor): float32 observations carry ~6e-8 relative error
// each, so 1e-5 leaves room for a few ulps of libm differences amplified over 500 steps.
double rel_err(double ours, double ref, double floor = 1e-3) {
  return std::fabs(ours - ref) / std::max(std::fabs(ref), floor);
}

// Replays every episode of a CartPole/Pendulum fixture from its initial state and checks each
// observation to `tol` relative, rewards to 1e-9 relative and the flags exactly.
void check_classic_fixture(const std::string& env_id, const std::string& file, double tol) {
  auto env = make_env(env_id);
  const auto episodes = read_fixture(file, env->obs_dim());
  ASSERT_FALSE(episodes.empty());
  std::vector<float> obs(size_t(env->obs_dim()));
  double worst = 0;
  int64_t steps = 0;
  for (const FixtureEpisode& ep : episodes) {
    SCOPED_TRACE(env_id + " episode " + ep.label);
    env->reset_to_state(ep.state, obs.data());
    for (int64_t j = 0; j < env->obs_dim(); ++j) EXPECT_EQ(obs[size_t(j)], ep.reset_obs[size_t(j)]);
    for (size_t t = 0; t < ep.steps.size(); ++t) {
      const FixtureStep& s = ep.steps[t];
      const StepResult r = env->step(std::span<const float>(s.action), obs.data());
      for (int64_t j = 0; j < env->obs_dim(); ++j) {
        const double e = rel_err(obs[size_t(j)], s.obs[size_t(j)]);
        worst = std::max(worst, e);
        ASSERT_LE(e, tol) << "step " << t + 1 << " obs[" << j << "] " << obs[size_t(j)]
                          << " vs Gymnasium " << s.obs[size_t(j)];
      }
      ASSERT_LE(rel_err(r.reward, s.reward), 1e-9) << "step " << t + 1;
      ASSERT_EQ(r.terminated, s.terminated) << "step " << t + 1;
      ASSERT_EQ(r.truncated, s.truncated) << "step " << t + 1;
      ++steps;
    }
  }
  std::printf("  %s: %lld fixture steps, worst relative obs error %.3g\n", env_id.c_str(),
              (long long)steps, worst);
}

// ---- registry, spaces, metadata ---------------------------------------------------------

TEST(Envs, RegistryAndSpaces) {
  auto cp = make_env("CartPole-v1");
  EXPECT_EQ(cp->id(), "CartPole-v1");
  EXPECT_EQ(cp->action_space().to_string(), "Discrete(2)");
  EXPECT_EQ(cp->obs_dim(), 4);
  EXPECT_EQ(cp->action_dim(), 1);
  EXPECT_EQ(cp->max_episode_steps(), 500);
  ASSERT_TRUE(cp->spec().reward_threshold.has_value());
  EXPECT_EQ(*cp->spec().reward_threshold, 475.0);
  EXPECT_FLOAT_EQ(cp->observation_space().high[0], 4.8f);
  EXPECT_FLOAT_EQ(cp->observation_space().low[2], -0.41887903f);  // -24 degrees
  EXPECT_TRUE(std::isinf(cp->observation_space().high[1]));

  auto pd = make_env("Pendulum-v1");
  EXPECT_EQ(pd->action_space().to_string(), "Box(-2, 2, (1,), float32)");
  EXPECT_EQ(pd->obs_dim(), 3);
  EXPECT_EQ(pd->max_episode_steps(), 200);
  EXPECT_FALSE(pd->spec().reward_threshold.has_value());
  EXPECT_EQ(pd->observation_space().high[2], 8.0f);

#ifdef RLFT_HAVE_BOX2D
  auto ll = make_env("LunarLander-v3");
  EXPECT_EQ(ll->action_space().to_string(), "Discrete(4)");
  EXPECT_EQ(ll->obs_dim(), 8);
  EXPECT_EQ(ll->max_episode_steps(), 1000);
  EXPECT_EQ(*ll->spec().reward_threshold, 200.0);
  auto llc = make_env("LunarLanderContinuous-v3");
  EXPECT_EQ(llc->action_space().to_string(), "Box(-1, 1, (2,), float32)");
  EXPECT_EQ(llc->max_episode_steps(), 1000);
  EXPECT_EQ(env_ids().size(), 4u);
#else
  EXPECT_EQ(env_ids().size(), 2u);
#endif
}

TEST(Envs, UnknownNameListsKnownOnes) {
  try {
    make_env("CartPole-v0");
    FAIL() << "expected rlft::Error";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("'CartPole-v0'"), std::string::npos) << msg;
    for (const std::string& id : env_ids()) EXPECT_NE(msg.find(id), std::string::npos) << msg;
  }
}

// ---- Gymnasium parity -------------------------------------------------------------------

TEST(CartPole, MatchesGymnasiumFixture) {
  // Contains a 500-step episode that the TimeLimit truncates and an x > 2.4 termination.
  check_classic_fixture("CartPole-v1", "cartpole_v1.txt", 1e-5);
}

TEST(Pendulum, MatchesGymnasiumFixture) {
  // Contains torques beyond the +-2 clip, the +-8 speed clip and theta past +-pi.
  check_classic_fixture("Pendulum-v1", "pendulum_v1.txt", 1e-5);
}

// ---- determinism, reset distributions ---------------------------------------------------

// Runs `steps` steps with actions drawn from a fixed stream; returns all observations.
std::vector<float> rollout(Env& env, uint64_t seed, int steps) {
  Generator actions(99);
  std::vector<float> obs(size_t(env.obs_dim())), all(obs);
  env.reset(seed, obs.data());
  all = obs;
  std::vector<float> a(size_t(env.action_dim()));
  for (int t = 0; t < steps; ++t) {
    StepResult r;
    if (env.action_space().is_discrete()) {
      r = env.step(int64_t(actions.below(uint64_t(env.action_space().n))), obs.data());
    } else {
      for (float& x : a) x = float(actions.uniform(-1.0, 1.0)) * env.action_space().high[0];
      r = env.step(a.data(), obs.data());
    }
    all.insert(all.end(), obs.begin(), obs.end());
    all.push_back(float(r.reward));
    if (r.done()) env.reset(obs.data());
  }
  return all;
}

TEST(Envs, SameSeedSameTrajectory) {
  for (const std::string& id : env_ids()) {
    SCOPED_TRACE(id);
    auto a = make_env(id), b = make_env(id);
    const int steps = id.rfind("Lunar", 0) == 0 ? 300 : 1000;
    const auto ta = rollout(*a, 42, steps);
    EXPECT_EQ(ta, rollout(*b, 42, steps));
    EXPECT_EQ(ta, rollout(*a, 42, steps));  // re-seeding restarts the stream
    EXPECT_NE(ta, rollout(*b, 43, steps));
  }
}

TEST(Envs, ResetWithoutSeedContinuesTheStream) {
  auto env = make_env("CartPole-v1");
  std::vector<float> o1(4), o2(4), o3(4);
  env->reset(5, o1.data());
  env->reset(o2.data());
  EXPECT_NE(o1, o2);
  env->reset(5, o3.data());
  EXPECT_EQ(o1, o3);
}

TEST(CartPole, ResetDistributionIsUniformPlusMinus005) {
  CartPole env;
  std::vector<float> obs(4);
  double sum = 0, lo = 1, hi = -1;
  const int n = 2000;
  for (int k = 0; k < n; ++k) {
    env.reset(uint64_t(k), obs.data());
    for (float x : obs) {
      sum += x;
      lo = std::min(lo, double(x));
      hi = std::max(hi, double(x));
    }
  }
  EXPECT_GE(lo, -0.05);
  EXPECT_LE(hi, 0.05);
  EXPECT_LT(lo, -0.049);  // the whole range is used
  EXPECT_GT(hi, 0.049);
  // Mean of 4n uniforms on [-0.05, 0.05]: sd 0.0289 / sqrt(8000) = 3.2e-4; allow 5 sd.
  EXPECT_NEAR(sum / (4 * n), 0.0, 1.6e-3);
}

TEST(Pendulum, ResetDistribution) {
  Pendulum env;
  std::vector<float> obs(3);
  double th_lo = 10, th_hi = -10, v_lo = 10, v_hi = -10;
  for (int k = 0; k < 2000; ++k) {
    env.reset(uint64_t(k), obs.data());
    const double th = env.state()[0], v = env.state()[1];
    EXPECT_FLOAT_EQ(obs[0], float(std::cos(th)));
    EXPECT_FLOAT_EQ(obs[1], float(std::sin(th)));
    th_lo = std::min(th_lo, th), th_hi = std::max(th_hi, th);
    v_lo = std::min(v_lo, v), v_hi = std::max(v_hi, v);
  }
  EXPECT_GE(th_lo, -std::numbers::pi);
  EXPECT_LE(th_hi, std::numbers::pi);
  EXPECT_LT(th_lo, -3.1);
  EXPECT_GT(th_hi, 3.1);
  EXPECT_GE(v_lo, -1.0);
  EXPECT_LE(v_hi, 1.0);
  EXPECT_LT(v_lo, -0.99);
  EXPECT_GT(v_hi, 0.99);
}

// ---- termination, truncation, order -----------------------------------------------------

TEST(CartPole, TerminatesWhenThePoleFallsWithRewardOne) {
  CartPole env;
  std::vector<float> obs(4);
  env.reset(0, obs.data());
  int t = 0;
  StepResult r;
  do {
    r = env.step(1, obs.data());
    ++t;
    EXPECT_EQ(r.reward, 1.0);
  } while (!r.done());
  EXPECT_TRUE(r.terminated);
  EXPECT_FALSE(r.truncated);
  EXPECT_LT(t, 100);
  EXPECT_GT(std::fabs(env.state()[2]), 12 * 2 * std::numbers::pi / 360);
  EXPECT_EQ(env.elapsed_steps(), t);
}

TEST(Pendulum, TruncatedExactlyAtStep200) {
  Pendulum env;
  std::vector<float> obs(3);
  env.reset(1, obs.data());
  const float u = 0.5f;
  for (int t = 1; t <= 200; ++t) {
    const StepResult r = env.step(&u, obs.data());
    EXPECT_FALSE(r.terminated);
    EXPECT_EQ(r.truncated, t == 200) << "step " << t;
    EXPECT_LE(r.reward, 0.0);
  }
}

TEST(CartPole, TruncatedExactlyAtStep500WhenBalanced) {
  // Start upright and at rest, and alternate pushes: the pole never falls in 500 steps.
  CartPole env;
  std::vector<float> obs(4);
  const double upright[4] = {0, 0, 0, 0};
  env.reset_to_state(upright, obs.data());
  StepResult r;
  for (int t = 1; t <= 500; ++t) {
    r = env.step(int64_t(obs[2] + 0.5f * obs[3] > 0), obs.data());
    ASSERT_FALSE(r.terminated) << "step " << t;
    ASSERT_EQ(r.truncated, t == 500) << "step " << t;
  }
}

TEST(Envs, StepBeforeResetOrAfterEndThrows) {
  CartPole env;
  std::vector<float> obs(4);
  EXPECT_THROW(env.step(0, obs.data()), Error);
  env.reset(0, obs.data());
  StepResult r;
  do r = env.step(0, obs.data());
  while (!r.done());
  try {
    env.step(0, obs.data());
    FAIL() << "expected rlft::Error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("CartPole-v1"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("reset"), std::string::npos) << e.what();
  }
  env.reset(obs.data());
  EXPECT_NO_THROW(env.step(0, obs.data()));
}

// ---- invalid actions and clipping -------------------------------------------------------

// Expects rlft::Error whose message contains every one of `parts`.
template <typename F>
void expect_error(F&& f, std::vector<std::string> parts) {
  try {
    f();
    ADD_FAILURE() << "expected rlft::Error containing '" << parts[0] << "'";
  } catch (const Error& e) {
    for (const auto& p : parts)
      EXPECT_NE(std::string(e.what()).find(p), std::string::npos) << "'" << e.what() << "'";
  }
}

TEST(Envs, InvalidActionsNameTheEnvAndTheValue) {
  CartPole cp;
  std::vector<float> obs(8);
  cp.reset(0, obs.data());
  expect_error([&] { cp.step(2, obs.data()); }, {"CartPole-v1", "2", "Discrete(2)"});
  expect_error([&] { cp.step(-1, obs.data()); }, {"CartPole-v1", "-1"});
  const float half = 0.5f, nan = NAN, one = 1.0f;
  expect_error([&] { cp.step(&half, obs.data()); }, {"CartPole-v1", "0.5"});
  expect_error([&] { cp.step(&nan, obs.data()); }, {"CartPole-v1", "nan"});
  const std::vector<float> two = {0.0f, 1.0f};
  expect_error([&] { cp.step(std::span<const float>(two), obs.data()); },
               {"CartPole-v1", "2 values", "expected 1"});
  // A float holding an exact integer is a valid discrete action; failed checks changed nothing.
  EXPECT_EQ(cp.elapsed_steps(), 0);
  EXPECT_NO_THROW(cp.step(&one, obs.data()));

  Pendulum pd;
  pd.reset(0, obs.data());
  expect_error([&] { pd.step(&nan, obs.data()); }, {"Pendulum-v1", "NaN"});
  expect_error([&] { pd.step(1, obs.data()); }, {"Pendulum-v1", "integer action 1", "Box(-2, 2"});
  expect_error([&] { pd.step(std::span<const float>(two), obs.data()); },
               {"Pendulum-v1", "2 values", "expected 1"});
#ifdef RLFT_HAVE_BOX2D
  LunarLander ll(false);
  ll.reset(0, obs.data());
  expect_error([&] { ll.step(4, obs.data()); }, {"LunarLander-v3", "4", "Discrete(4)"});
  LunarLander llc(true);
  llc.reset(0, obs.data());
  const float bad[2] = {0.0f, NAN};
  expect_error([&] { llc.step(bad, obs.data()); },
               {"LunarLanderContinuous-v3", "action[1]", "NaN"});
#endif
}

TEST(Pendulum, ActionsAreClippedToTheBox) {
  Pendulum a, b;
  std::vector<float> oa(3), ob(3);
  a.reset(3, oa.data());
  b.reset(3, ob.data());
  const float big = 5.0f, max = 2.0f, small = -7.0f, min = -2.0f;
  for (int t = 0; t < 20; ++t) {
    const StepResult ra = a.step(t % 2 ? &big : &small, oa.data());
    const StepResult rb = b.step(t % 2 ? &max : &min, ob.data());
    ASSERT_EQ(oa, ob);
    ASSERT_EQ(ra.reward, rb.reward);  // the cost uses the clipped torque too
  }
}

// ---- VectorEnv --------------------------------------------------------------------------

TEST(VectorEnv, ResetSeedsEachCopyWithSeedPlusIndex) {
  VectorEnv venv("CartPole-v1", 4);
  venv.reset(10);
  CartPole single;
  std::vector<float> obs(4);
  for (int64_t i = 0; i < 4; ++i) {
    single.reset(10 + uint64_t(i), obs.data());
    for (int j = 0; j < 4; ++j) EXPECT_EQ(venv.obs()[size_t(i * 4 + j)], obs[size_t(j)]);
  }
}

TEST(VectorEnv, SameStepAutoresetKeepsFinalObservation) {
  // Sub-env i is compared against a standalone CartPole that takes the same actions and is
  // reset (without a seed) when its episode ends, which is what the autoreset must do.
  const int64_t n = 3;
  VectorEnv venv("CartPole-v1", n);
  venv.reset(7);
  std::vector<std::unique_ptr<CartPole>> ref;
  std::vector<float> ref_obs(size_t(n * 4));
  for (int64_t i = 0; i < n; ++i) {
    ref.push_back(std::make_unique<CartPole>());
    ref.back()->reset(7 + uint64_t(i), ref_obs.data() + i * 4);
  }
  Generator actions(3);
  std::vector<int64_t> a(static_cast<size_t>(n));
  std::vector<double> ref_return(size_t(n), 0.0);
  std::vector<int64_t> ref_length(size_t(n), 0);
  int episodes = 0;
  for (int t = 0; t < 300; ++t) {
    for (auto& x : a) x = int64_t(actions.below(2));
    venv.step(a);
    const auto stats = venv.take_episode_stats();
    size_t next_stat = 0;
    for (int64_t i = 0; i < n; ++i) {
      float* row = ref_obs.data() + i * 4;
      const StepResult r = ref[size_t(i)]->step(a[size_t(i)], row);
      ref_return[size_t(i)] += r.reward;
      ref_length[size_t(i)] += 1;
      EXPECT_EQ(venv.rewards()[size_t(i)], float(r.reward));
      EXPECT_EQ(bool(venv.terminated()[size_t(i)]), r.terminated);
      EXPECT_EQ(bool(venv.truncated()[size_t(i)]), r.truncated);
      ASSERT_EQ(bool(venv.has_final_obs()[size_t(i)]), r.done());
      if (r.done()) {
        for (int j = 0; j < 4; ++j) EXPECT_EQ(venv.final_obs()[size_t(i * 4 + j)], row[j]);
        ASSERT_LT(next_stat, stats.size());
        EXPECT_EQ(stats[next_stat].env_index, i);
        EXPECT_EQ(stats[next_stat].episode_return, ref_return[size_t(i)]);
        EXPECT_EQ(stats[next_stat].length, ref_length[size_t(i)]);
        EXPECT_EQ(stats[next_stat].episode_return, double(stats[next_stat].length));
        ++next_stat;
        ++episodes;
        ref_return[size_t(i)] = 0;
        ref_length[size_t(i)] = 0;
        ref[size_t(i)]->reset(row);
      }
      for (int j = 0; j < 4; ++j) ASSERT_EQ(venv.obs()[size_t(i * 4 + j)], row[j]);
    }
    EXPECT_EQ(next_stat, stats.size());
  }
  EXPECT_GT(episodes, 10);  // random CartPole episodes last ~20 steps
  EXPECT_EQ(venv.total_steps(), 300 * n);
}

TEST(VectorEnv, TruncationGivesFinalObsAndStats) {
  VectorEnv venv("Pendulum-v1", 2);
  venv.reset(0);
  const std::vector<float> actions = {0.3f, -1.0f};
  for (int t = 1; t <= 200; ++t) {
    venv.step(actions);
    for (int i = 0; i < 2; ++i) {
      ASSERT_EQ(bool(venv.truncated()[size_t(i)]), t == 200);
      ASSERT_EQ(bool(venv.has_final_obs()[size_t(i)]), t == 200);
      ASSERT_FALSE(venv.terminated()[size_t(i)]);
    }
  }
  const auto stats = venv.take_episode_stats();
  ASSERT_EQ(stats.size(), 2u);
  for (const auto& s : stats) {
    EXPECT_EQ(s.length, 200);
    EXPECT_LT(s.episode_return, 0.0);
  }
  EXPECT_TRUE(venv.take_episode_stats().empty());
  // The new episode's first observation differs from the final one.
  EXPECT_NE(venv.obs()[2], venv.final_obs()[2]);
}

// reset() in the middle of episodes starts the bookkeeping afresh: the episodes that end after
// it report only the steps taken since. Three steps are taken, then reset(5); each sub-env i
// then runs action 1 until its episode ends, and its length and return (CartPole: +1 a step)
// must equal a standalone CartPole reset with seed 5 + i doing the same, not 3 more.
TEST(VectorEnv, ResetMidEpisodeStartsTheStatisticsAfresh) {
  const int64_t n = 2;
  VectorEnv venv("CartPole-v1", n);
  venv.reset(0);
  for (int t = 0; t < 3; ++t) venv.step(std::vector<int64_t>(size_t(n), 0));
  ASSERT_TRUE(venv.take_episode_stats().empty());
  venv.reset(5);
  std::vector<int64_t> want(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    CartPole single;
    std::vector<float> obs(4);
    single.reset(5 + uint64_t(i), obs.data());
    int64_t len = 0;
    StepResult r;
    do {
      r = single.step(1, obs.data());
      ++len;
    } while (!r.done());
    want[size_t(i)] = len;
  }
  std::vector<int64_t> got(size_t(n), -1);
  std::vector<double> got_return(size_t(n), -1);
  for (int t = 0; t < 500; ++t) {
    venv.step(std::vector<int64_t>(size_t(n), 1));
    for (const EpisodeStats& s : venv.take_episode_stats())
      if (got[size_t(s.env_index)] < 0) {
        got[size_t(s.env_index)] = s.length;
        got_return[size_t(s.env_index)] = s.episode_return;
      }
  }
  for (int64_t i = 0; i < n; ++i) {
    EXPECT_EQ(got[size_t(i)], want[size_t(i)]) << "env " << i;
    EXPECT_EQ(got_return[size_t(i)], double(want[size_t(i)])) << "env " << i;
  }
}

TEST(VectorEnv, BadActionsThrowAndChangeNothing) {
  VectorEnv venv("CartPole-v1", 3);
  expect_error([&] { venv.step(std::vector<int64_t>{0, 1, 0}); }, {"before reset"});
  venv.reset(0);
  const std::vector<float> before(venv.obs().begin(), venv.obs().end());
  expect_error(
      [&] {
        venv.step(std::vector<int64_t>{0, 1});
      },
      {"CartPole-v1", "2 actions", "3 envs"});
  expect_error([&] { venv.step(std::vector<int64_t>{0, 1, 5}); }, {"CartPole-v1", "5"});
  EXPECT_EQ(before, std::vector<float>(venv.obs().begin(), venv.obs().end()));
  EXPECT_EQ(venv.total_steps(), 0);
  venv.step(std::vector<float>{0.0f, 1.0f, 1.0f});  // discrete actions as exact floats
  EXPECT_EQ(venv.total_steps(), 3);
}

// ---- LunarLander --------------------------------------------------------------------------

#ifdef RLFT_HAVE_BOX2D

TEST(LunarLander, MatchesGymnasiumTrajectoryLoosely) {
  // The fixture holds every random draw Gymnasium made, so terrain, initial push and engine
  // dispersion are identical here; what differs is Box2D 2.3 (pybox2d) vs 2.4. Measured when
  // this test was written: free flight agrees to ~1e-6, the legs reaching their joint limits
  // (a solver rewritten in 2.4) kick the angular velocity by up to ~8e-3 for a step or two,
  // positions stay within ~1e-2 until touchdown, and the episode ends with the same outcome
  // within a step or so. The bounds below leave 2-3x headroom over those figures.
  const auto episodes = read_fixture("lunar_lander_v3.txt", 8);
  ASSERT_EQ(episodes.size(), 3u);
  for (const FixtureEpisode& ep : episodes) {
    SCOPED_TRACE(ep.label);
    const bool continuous = ep.label.find("Continuous") != std::string::npos;
    LunarLander env(continuous);
    env.script_uniform_draws(ep.draws);
    std::vector<float> obs(8);
    env.reset(obs.data());
    for (int j = 0; j < 8; ++j) EXPECT_NEAR(obs[size_t(j)], ep.reset_obs[size_t(j)], 1e-3) << j;
    double worst_early = 0, worst_early_pose = 0, worst_pos = 0;
    StepResult r;
    size_t t = 0;
    for (; t < ep.steps.size() && !r.done(); ++t) {
      const FixtureStep& s = ep.steps[t];
      r = env.step(std::span<const float>(s.action), obs.data());
      auto err = [&](int j) { return double(std::fabs(obs[size_t(j)] - s.obs[size_t(j)])); };
      if (t < 50) {
        for (int j = 0; j < 6; ++j) worst_early = std::max(worst_early, err(j));
        worst_early_pose = std::max({worst_early_pose, err(0), err(1), err(4)});
      }
      worst_pos = std::max({worst_pos, err(0), err(1)});
    }
    // Past the fixture's last action, our lander may still be settling: finish the episode
    // with the heuristic (which is what chose Gymnasium's actions).
    size_t length = t;
    while (!r.done()) {
      float a[2];
      if (continuous) {
        lunar_lander_heuristic_continuous(obs.data(), a);
      } else {
        a[0] = float(lunar_lander_heuristic(obs.data()));
      }
      r = env.step(a, obs.data());
      ++length;
    }
    std::printf(
        "  %s: length %zu (Gymnasium %zu), first 50 steps max obs error %.3g (pose %.3g), "
        "max position error %.3g\n",
        ep.label.c_str(), length, ep.steps.size(), worst_early, worst_early_pose, worst_pos);
    EXPECT_LT(worst_early, 2e-2);
    EXPECT_LT(worst_early_pose, 1e-3);
    EXPECT_LT(worst_pos, 0.03);
    EXPECT_NEAR(double(length), double(ep.steps.size()), 0.05 * double(ep.steps.size()));
    EXPECT_EQ(r.reward, ep.steps.back().reward);  // +100 landed and asleep, or -100 crashed
  }
}

TEST(LunarLander, ResetStateAndCrash) {
  LunarLander env(false);
  std::vector<float> obs(8);
  env.reset(0, obs.data());
  EXPECT_NEAR(obs[1], 1.4f, 0.05f);  // starts at the top of the viewport
  EXPECT_EQ(obs[6], 0.0f);
  EXPECT_EQ(obs[7], 0.0f);
  // Doing nothing: the lander falls and crashes (body contact), -100 and terminated.
  StepResult r;
  int t = 0;
  do {
    r = env.step(0, obs.data());
    ++t;
  } while (!r.done());
  EXPECT_TRUE(r.terminated);
  EXPECT_EQ(r.reward, -100.0);
  EXPECT_TRUE(env.game_over() || std::fabs(obs[0]) >= 1.0f);
  EXPECT_LT(t, 200);

  // reset_to_state: flat terrain at the helipad height and no push -> falls straight down.
  std::vector<double> state(14, 400.0 / 30 / 4);
  state[12] = state[13] = 0.0;
  env.reset_to_state(state, obs.data());
  EXPECT_NEAR(obs[0], 0.0f, 1e-3f);
}

TEST(LunarLander, ContinuousActionsAreClipped) {
  LunarLander a(true), b(true);
  std::vector<float> oa(8), ob(8);
  a.reset(4, oa.data());
  b.reset(4, ob.data());
  const float big[2] = {3.0f, -7.0f}, clipped[2] = {1.0f, -1.0f};
  for (int t = 0; t < 30; ++t) {
    const StepResult ra = a.step(big, oa.data());
    const StepResult rb = b.step(clipped, ob.data());
    ASSERT_EQ(oa, ob);
    ASSERT_EQ(ra.reward, rb.reward);
    if (ra.done()) break;
  }
}

// LunarLander's shaping (Gymnasium's) of an observation, shaping(o) = −100·√(x² + y²) −
// 100·√(vx² + vy²) − 100·|angle| + 10·leg1 + 10·leg2, the legs' contact flags being o[6], o[7].
double shaping(const std::vector<float>& o) {
  return -100 * std::sqrt(double(o[0]) * o[0] + double(o[1]) * o[1]) -
         100 * std::sqrt(double(o[2]) * o[2] + double(o[3]) * o[3]) - 100 * std::fabs(o[4]) +
         10 * o[6] + 10 * o[7];
}
// The fuel cost of one step of each discrete action: noop 0, side engines (1, 3) −0.03, main (2)
// −0.30.
constexpr double kDiscreteFuelCost[4] = {0.0, -0.03, -0.30, -0.03};

// The fuel cost of one step: the reward less the shaping's change is −0.30·m_power −
// 0.03·s_power (kDiscreteFuelCost for the discrete actions).
// Continuous [0.5, −0.75]: m_power = (clip(0.5, 0, 1) + 1)/2 = 0.75, s_power =
// clip(|−0.75|, 0.5, 1) = 0.75: −(0.75·0.30 + 0.75·0.03) = −(0.225 + 0.0225) = −0.2475. The first
// step after reset (seed 3): high above the ground, no leg contact, not terminated. Shaping from
// the float observation: within 1e-4 of the environment's own (doubles).
TEST(LunarLander, FuelCostPerStepIsTheRewardLessTheShaping) {
  for (int64_t a = 0; a < 4; ++a) {
    LunarLander env(false);
    std::vector<float> o0(8), o1(8);
    env.reset(3, o0.data());
    o1 = o0;
    const StepResult r = env.step(a, o1.data());
    ASSERT_FALSE(r.done()) << "action " << a;
    ASSERT_EQ(o1[6] + o1[7], 0.0f) << "action " << a;
    EXPECT_NEAR(r.reward - (shaping(o1) - shaping(o0)), kDiscreteFuelCost[a], 1e-4)
        << "action " << a;
  }
  LunarLander env(true);
  std::vector<float> o0(8), o1(8);
  env.reset(3, o0.data());
  const float action[2] = {0.5f, -0.75f};
  const StepResult r = env.step(action, o1.data());
  ASSERT_FALSE(r.done());
  ASSERT_EQ(o1[6] + o1[7], 0.0f);
  EXPECT_NEAR(r.reward - (shaping(o1) - shaping(o0)), -0.2475, 1e-4);
}

// The same relation over whole heuristic landings, leg contacts included: at every step that
// does not end the episode, reward − (shaping(o_t) − shaping(o_{t−1})) is the fuel cost alone,
// −0.30 for the main engine (action 2), −0.03 for a side engine (1, 3), 0 for a no-op, where
// shaping reads the legs' contact flags o[6], o[7] from the observation (+10 each). The
// heuristic touches down on both legs and often bounces, so the flags switch on and off during
// an episode; the test checks that it saw steps with each leg in contact, with one leg only,
// and a leg leaving the ground again (a contact flag going from 1 to 0). Tolerance: the observation
// is float, the environment's shaping double.
TEST(LunarLander, ShapingCountsEachLegContactAtEveryStep) {
  LunarLander env(false);
  int left_steps = 0, right_steps = 0, one_leg_steps = 0, contacts_lost = 0;
  for (uint64_t seed = 0; seed < 3; ++seed) {
    std::vector<float> o0(8), o1(8);
    env.reset(seed, o0.data());
    for (int t = 0; t < 1000; ++t) {
      const int64_t a = lunar_lander_heuristic(o0.data());
      const StepResult r = env.step(a, o1.data());
      if (r.done()) break;
      EXPECT_NEAR(r.reward - (shaping(o1) - shaping(o0)), kDiscreteFuelCost[a], 1e-4)
          << "seed " << seed << " step " << t << " legs " << o1[6] << " " << o1[7];
      left_steps += o1[6] != 0;
      right_steps += o1[7] != 0;
      one_leg_steps += (o1[6] != 0) != (o1[7] != 0);
      contacts_lost += (o0[6] != 0 && o1[6] == 0) + (o0[7] != 0 && o1[7] == 0);
      o0 = o1;
    }
  }
  EXPECT_GT(left_steps, 0);
  EXPECT_GT(right_steps, 0);
  EXPECT_GT(one_leg_steps, 0);
  EXPECT_GT(contacts_lost, 0);
}

// Which flag is which leg: o[6] is Gymnasium's legs[0], created at x + LEG_AWAY (the right
// leg), o[7] the left one. A lander tilted counter-clockwise (angle o[4] > 0; Box2D's angles
// are counter-clockwise) has its left foot lower: rotating (±a, −d) by θ gives the feet the
// heights ±a·sinθ − d·cosθ, the left one (−a) lower for θ > 0. So when a tilted lander first
// touches down on one leg only, the flag set is o[7] for θ > 0 and o[6] for θ < 0. The lander
// is tilted by firing one orientation engine for 8 steps (action 1 or 3), then falls freely;
// both directions must be seen.
TEST(LunarLander, TheLowerLegTouchesDownFirst) {
  int seen[2] = {0, 0};
  for (uint64_t seed = 0; seed < 4; ++seed)
    for (const int64_t engine : {int64_t(1), int64_t(3)}) {
      LunarLander env(false);
      std::vector<float> o(8);
      env.reset(seed, o.data());
      StepResult r;
      for (int t = 0; t < 1000 && !r.done() && o[6] == 0 && o[7] == 0; ++t)
        r = env.step(t < 8 ? engine : 0, o.data());
      if ((o[6] != 0) == (o[7] != 0) || std::fabs(o[4]) < 0.05f) continue;
      SCOPED_TRACE(testing::Message() << "seed " << seed << " engine " << engine << " angle "
                                      << o[4] << " legs " << o[6] << " " << o[7]);
      EXPECT_EQ(o[7] != 0, o[4] > 0);
      ++seen[o[4] > 0 ? 1 : 0];
    }
  EXPECT_GT(seen[0], 0);
  EXPECT_GT(seen[1], 0);
}

// Flying out of the viewport on either side ends the episode with −100 (|o[0]| ≥ 1): flat
// terrain at the helipad height and a strong sideways push at reset (force ±4000, no
// vertical force) carry the lander past x = ±1 long before it reaches the ground.
TEST(LunarLander, LeavingTheViewportOnEitherSideTerminates) {
  for (const double fx : {-4000.0, 4000.0}) {
    SCOPED_TRACE(fx);
    LunarLander env(false);
    std::vector<double> state(14, 400.0 / 30 / 4);
    state[12] = fx;
    state[13] = 0.0;
    std::vector<float> o(8);
    env.reset_to_state(state, o.data());
    StepResult r;
    int t = 0;
    do {
      r = env.step(0, o.data());
      ++t;
    } while (!r.done() && t < 1000);
    EXPECT_TRUE(r.terminated);
    EXPECT_EQ(r.reward, -100.0);
    EXPECT_FALSE(env.game_over());
    EXPECT_GE(std::fabs(o[0]), 1.0f);
    EXPECT_EQ(o[0] > 0, fx > 0);
  }
}

// A VectorEnv of a 2-d continuous action space hands sub-env i the pair actions[2i], actions[2i+1]:
// each LunarLanderContinuous copy must follow a standalone lander reset with seed 7 + i and given
// its own pair (env 0 fires the main engine, [1, 0]; env 1 a side engine, [0, −1]; env 2
// both, [0.6, 0.8]), observation and reward bit for bit, for 20 steps.
TEST(VectorEnv, ContinuousActionsOfSeveralDimsGoToTheirOwnEnv) {
  const int64_t n = 3;
  VectorEnv venv("LunarLanderContinuous-v3", n);
  venv.reset(7);
  const std::vector<float> actions = {1.0f, 0.0f, 0.0f, -1.0f, 0.6f, 0.8f};
  std::vector<std::unique_ptr<LunarLander>> ref;
  std::vector<float> ref_obs(size_t(n * 8));
  for (int64_t i = 0; i < n; ++i) {
    ref.push_back(std::make_unique<LunarLander>(true));
    ref.back()->reset(7 + uint64_t(i), ref_obs.data() + i * 8);
  }
  for (int t = 0; t < 20; ++t) {
    venv.step(actions);
    for (int64_t i = 0; i < n; ++i) {
      const StepResult r = ref[size_t(i)]->step(actions.data() + i * 2, ref_obs.data() + i * 8);
      ASSERT_FALSE(r.done());
      EXPECT_EQ(venv.rewards()[size_t(i)], float(r.reward)) << "env " << i << " step " << t;
      for (int j = 0; j < 8; ++j)
        ASSERT_EQ(venv.obs()[size_t(i * 8 + j)], ref_obs[size_t(i * 8 + j)])
            << "env " << i << " step " << t << " obs " << j;
    }
  }
}

// Mean return of the heuristic over seeds 0..99.
double heuristic_mean_return(bool continuous, int episodes, double* sem) {
  LunarLander env(continuous);
  std::vector<float> obs(8);
  float action[2];
  double sum = 0, sum_sq = 0;
  for (int k = 0; k < episodes; ++k) {
    env.reset(uint64_t(k), obs.data());
    double total = 0;
    StepResult r;
    do {
      if (continuous) {
        lunar_lander_heuristic_continuous(obs.data(), action);
        r = env.step(action, obs.data());
      } else {
        r = env.step(lunar_lander_heuristic(obs.data()), obs.data());
      }
      total += r.reward;
    } while (!r.done());
    sum += total;
    sum_sq += total * total;
  }
  const double mean = sum / episodes;
  *sem = std::sqrt((sum_sq / episodes - mean * mean) / (episodes - 1));
  return mean;
}

// Oracle figures, measured once with
//   /tmp/gymvenv/bin/python scripts/lunar_lander_heuristic_reference.py --episodes 1000
// (gymnasium 1.4.0, Box2D 2.3.10 from PyPI, numpy 2.4.6, 2026-11-25): mean return of
// gymnasium's heuristic(env, s) over seeds 0..999, with its standard error.
//   LunarLander-v3            243.372  (std 91.071, sem 2.880; seeds 0..99: 252.834)
//   LunarLanderContinuous-v3  282.820  (std 25.048, sem 0.792; seeds 0..99: 280.345)
// Our 100 episodes use other random draws (Philox, not NumPy's PCG64), so the two means are
// independent estimates: the tolerance is 4 standard errors of their difference,
// sqrt(sem_ours^2 + sem_python^2), about 40 (discrete) and 20 (continuous) with our sems.
TEST(LunarLander, HeuristicOracleDiscrete) {
  double sem = 0;
  const double mean = heuristic_mean_return(false, 100, &sem);
  const double python_mean = 243.372, python_sem = 2.880;
  std::printf("  LunarLander-v3 heuristic: ours %.3f (sem %.3f), Gymnasium %.3f (sem %.3f)\n", mean,
              sem, python_mean, python_sem);
  EXPECT_NEAR(mean, python_mean, 4 * std::hypot(sem, python_sem));
  EXPECT_GT(mean, 200.0);  // the heuristic solves the task
}

TEST(LunarLander, HeuristicOracleContinuous) {
  double sem = 0;
  const double mean = heuristic_mean_return(true, 100, &sem);
  const double python_mean = 282.820, python_sem = 0.792;
  std::printf(
      "  LunarLanderContinuous-v3 heuristic: ours %.3f (sem %.3f), Gymnasium %.3f (sem %.3f)\n",
      mean, sem, python_mean, python_sem);
  EXPECT_NEAR(mean, python_mean, 4 * std::hypot(sem, python_sem));
  EXPECT_GT(mean, 200.0);
}

#endif  // RLFT_HAVE_BOX2D

}  // namespace
}  // namespace rlft::envs
