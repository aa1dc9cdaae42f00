// End-to-end training speed on CartPole-v1: environment steps per second of PPO (CleanRL's
// defaults: 4 envs × 128 steps, 4 epochs × 4 minibatches) and of REINFORCE, on 1 and 2
// OpenMP threads. The counter "env_steps/s" is the figure compared with CleanRL-style PyTorch.
//
//   ./build/bench_rl_train --benchmark_min_time=1
#include <benchmark/benchmark.h>

#include <omp.h>

#include "rl/ppo.h"
#include "rl/reinforce.h"

namespace {

void BM_PPOCartPole(benchmark::State& st) {
  omp_set_num_threads(int(st.range(0)));
  rlft::rl::PPOConfig c;
  c.total_steps = 4 * 128 * 20;  // 20 updates per iteration
  c.quiet = true;
  int64_t steps = 0;
  for (auto _ : st) {
    rlft::rl::train_ppo(c);
    steps += c.total_steps;
  }
  st.counters["env_steps/s"] = benchmark::Counter(double(steps), benchmark::Counter::kIsRate);
}
BENCHMARK(BM_PPOCartPole)->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_ReinforceCartPole(benchmark::State& st) {
  omp_set_num_threads(int(st.range(0)));
  rlft::rl::ReinforceConfig c;
  c.total_episodes = 300;
  c.quiet = true;
  int64_t steps = 0;
  for (auto _ : st) {
    const auto r = rlft::rl::train_reinforce(c);
    steps += r.updates.back().global_step;
  }
  st.counters["env_steps/s"] = benchmark::Counter(double(steps), benchmark::Counter::kIsRate);
}
BENCHMARK(BM_ReinforceCartPole)->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
