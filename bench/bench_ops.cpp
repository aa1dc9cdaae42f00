// Per-op overhead of the engine: tiny tensors where the bookkeeping (allocation, dispatch,
// graph recording) dominates the arithmetic, plus the MLP shapes of PPO on CartPole.
//
//   ./build/bench_ops --benchmark_min_time=0.5
//
// Reported time is per iteration; "ops" counts engine ops per iteration, so time/op is the
// per-op overhead (forward alone, or forward + backward).
#include <benchmark/benchmark.h>

#include <omp.h>

#include "engine/nn.h"
#include "engine/ops.h"
#include "engine/optim.h"

namespace {

using namespace rlft;

void BM_TinyAddForward(benchmark::State& st) {
  Tensor a = Tensor::ones({4}), b = Tensor::ones({4});
  for (auto _ : st) benchmark::DoNotOptimize(add(a, b));
  st.counters["ns/op"] = benchmark::Counter(double(st.iterations()), benchmark::Counter::kIsRate |
                                                                        benchmark::Counter::kInvert);
}
BENCHMARK(BM_TinyAddForward);

void BM_TinyMulForwardBackward(benchmark::State& st) {
  // mul + sum recorded, then backward through both: 2 ops forward, 2 backward.
  Tensor a = Tensor::ones({4}).set_requires_grad(), b = Tensor::ones({4});
  for (auto _ : st) {
    Tensor y = sum(mul(a, b));
    y.backward();
    a.zero_grad();
  }
  st.counters["ns/op"] = benchmark::Counter(2.0 * double(st.iterations()),
                                            benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}
BENCHMARK(BM_TinyMulForwardBackward);

void BM_TinyLinearTanhForwardBackward(benchmark::State& st) {
  Generator gen(0);
  nn::Linear lin(4, 8, true, gen);
  Tensor x = Tensor::ones({1, 4});
  for (auto _ : st) {
    Tensor y = sum(tanh(lin.forward(x)));
    y.backward();
    lin.zero_grad();
  }
  st.counters["ns/op"] = benchmark::Counter(3.0 * double(st.iterations()),
                                            benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}
BENCHMARK(BM_TinyLinearTanhForwardBackward);

// The rollout's policy forward: 4 observations through a 4-64-64-2 tanh MLP, no grad.
void BM_PolicyForwardBatch4(benchmark::State& st) {
  omp_set_num_threads(int(st.range(0)));
  Generator gen(0);
  nn::Sequential mlp;
  mlp.push_back(std::make_shared<nn::Linear>(4, 64, true, gen));
  mlp.push_back(std::make_shared<nn::Tanh>());
  mlp.push_back(std::make_shared<nn::Linear>(64, 64, true, gen));
  mlp.push_back(std::make_shared<nn::Tanh>());
  mlp.push_back(std::make_shared<nn::Linear>(64, 2, true, gen));
  Tensor x = Tensor::ones({4, 4});
  NoGradGuard ng;
  for (auto _ : st) benchmark::DoNotOptimize(mlp.forward(x));
}
BENCHMARK(BM_PolicyForwardBatch4)->Arg(1)->Arg(2);

// One PPO minibatch step on CartPole's shapes: 128 samples, actor and critic 4-64-64-{2,1},
// forward + backward + Adam.
void BM_MinibatchStep128(benchmark::State& st) {
  omp_set_num_threads(int(st.range(0)));
  Generator gen(0);
  auto make = [&](int64_t out) {
    auto m = std::make_shared<nn::Sequential>();
    m->push_back(std::make_shared<nn::Linear>(4, 64, true, gen));
    m->push_back(std::make_shared<nn::Tanh>());
    m->push_back(std::make_shared<nn::Linear>(64, 64, true, gen));
    m->push_back(std::make_shared<nn::Tanh>());
    m->push_back(std::make_shared<nn::Linear>(64, out, true, gen));
    return m;
  };
  auto actor = make(2), critic = make(1);
  std::vector<Tensor> params = actor->parameters();
  for (auto& p : critic->parameters()) params.push_back(p);
  optim::Adam opt(params, 2.5e-4);
  Tensor x = randn({128, 4}, &gen), ret = randn({128}, &gen);
  Tensor act = Tensor::zeros({128}, DType::i64);
  for (auto _ : st) {
    auto [lp, ent] = softmax_logprob(actor->forward(x), act);
    Tensor v = critic->forward(x).squeeze(-1);
    Tensor loss = add(add(mean(lp), mean(ent)), mean(pow(sub(v, ret), 2.0)));
    opt.zero_grad();
    loss.backward();
    opt.step();
  }
}
BENCHMARK(BM_MinibatchStep128)->Arg(1)->Arg(2);

}  // namespace

BENCHMARK_MAIN();
