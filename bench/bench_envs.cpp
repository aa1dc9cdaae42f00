// Environment throughput: env steps per second of each env alone and of VectorEnv with 4 and
// 8 copies, under uniformly random actions, resetting whenever an episode ends (the reset's
// cost is included, as it is in a rollout).
//
// Actions are drawn up front (a ring of 4096 per env copy) so the figure is the env's cost,
// not the random generator's. The counter `steps/s` is env steps per second (B per VectorEnv
// step), over CPU time as Google Benchmark measures rates by default.
//
//   cmake --build build-envs --target bench_envs && ./build-envs/bench_envs
//
// Napkin math: CartPole is ~30 flops plus a sin and a cos per step (~20-40 ns with the
// virtual call); Pendulum adds an fmod; LunarLander runs a Box2D world step (3 bodies, 2
// joints, 11 edges, 180 velocity / 60 position iterations when in contact), a few us.
#include <benchmark/benchmark.h>

#include <string>
#include <vector>

#include "engine/rng.h"
#include "rl/envs/env.h"
#include "rl/envs/vector_env.h"

namespace {

using rlft::Generator;
using rlft::envs::Env;
using rlft::envs::make_env;
using rlft::envs::StepResult;
using rlft::envs::VectorEnv;

constexpr int kRing = 4096;

// kRing x copies actions of env's action space, as floats (discrete: exact integers).
std::vector<float> random_actions(const Env& env, int copies, uint64_t seed) {
  Generator g(seed);
  const auto& space = env.action_space();
  std::vector<float> a;
  a.reserve(size_t(kRing) * size_t(copies) * size_t(env.action_dim()));
  for (int i = 0; i < kRing * copies; ++i) {
    if (space.is_discrete()) {
      a.push_back(float(g.below(uint64_t(space.n))));
    } else {
      for (int64_t j = 0; j < env.action_dim(); ++j)
        a.push_back(float(g.uniform(space.low[size_t(j)], space.high[size_t(j)])));
    }
  }
  return a;
}

void set_counters(benchmark::State& state, int64_t steps) {
  state.counters["steps/s"] = benchmark::Counter(double(steps), benchmark::Counter::kIsRate);
}

void BM_EnvStep(benchmark::State& state, const std::string& id) {
  auto env = make_env(id);
  const bool discrete = env->action_space().is_discrete();
  const auto actions = random_actions(*env, 1, 1);
  std::vector<int64_t> indices(actions.begin(), actions.end());
  std::vector<float> obs(size_t(env->obs_dim()));
  env->reset(0, obs.data());
  const int64_t adim = env->action_dim();
  int64_t steps = 0;
  int k = 0;
  for (auto _ : state) {
    StepResult r = discrete ? env->step(indices[size_t(k)], obs.data())
                            : env->step(actions.data() + k * adim, obs.data());
    if (r.done()) env->reset(obs.data());
    k = (k + 1) & (kRing - 1);
    ++steps;
  }
  benchmark::DoNotOptimize(obs.data());
  set_counters(state, steps);
}

void BM_VectorEnvStep(benchmark::State& state, const std::string& id) {
  const int64_t n = state.range(0);
  VectorEnv venv(id, n);
  const bool discrete = venv.single_action_space().is_discrete();
  const auto actions = random_actions(venv.env(0), int(n), 1);
  std::vector<int64_t> indices(actions.begin(), actions.end());
  venv.reset(0);
  const size_t row = size_t(n * venv.action_dim());
  int k = 0;
  for (auto _ : state) {
    if (discrete) {
      venv.step(std::span<const int64_t>(indices.data() + size_t(k) * row, row));
    } else {
      venv.step(std::span<const float>(actions.data() + size_t(k) * row, row));
    }
    k = (k + 1) & (kRing - 1);
    if ((k & 127) == 0)
      benchmark::DoNotOptimize(venv.take_episode_stats());  // as a trainer drains them
  }
  set_counters(state, venv.total_steps());
}

void register_all() {
  for (const std::string& id : rlft::envs::env_ids()) {
    benchmark::RegisterBenchmark(("env_step/" + id).c_str(),
                                 [id](benchmark::State& s) { BM_EnvStep(s, id); });
    benchmark::RegisterBenchmark(("vector_env_step/" + id).c_str(),
                                 [id](benchmark::State& s) { BM_VectorEnvStep(s, id); })
        ->Arg(4)
        ->Arg(8);
  }
}

}  // namespace

int main(int argc, char** argv) {
  register_all();
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
