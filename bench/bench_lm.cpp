// Toy language models on the engine: training and generation throughput (BENCHMARKS.md,
// "Toy language models").
//
//   BM_TrainStep/<model>   one optimizer step of next-token training on random tokens:
//                          forward, cross-entropy, backward, grad-norm clip, AdamW (2 groups as
//                          in rl/llm/sft.cpp folded into one here: the cost is the same).
//                          micro: context 64, batch 32, vocab 256;  mini: context 128, batch 16.
//   BM_Generate/<cache>    128 new tokens for 8 prompts of 16 tokens with the micro model
//                          (context 256), sampling at temperature 1, no EOS; with the KV cache
//                          (prefill + 127 one-token steps) and without (the whole prefix again
//                          at every step).
// Counters: tokens/s over wall time (training: B·T input tokens per step; generation: new
// tokens), and model FLOPs for training as 6·params·tokens (the usual estimate, attention
// excluded) to relate to the GEMM roofline in BENCHMARKS.md.
#include <benchmark/benchmark.h>

#include "engine/optim.h"
#include "models/generate.h"
#include "models/gpt.h"

using namespace rlft;
using namespace rlft::models;

namespace {

GPTConfig bench_config(const std::string& name, int64_t block_size) {
  GPTConfig c = GPTConfig::named(name);
  c.vocab_size = 256;
  c.block_size = block_size;
  return c;
}

Tensor random_tokens(int64_t B, int64_t T, int64_t V, Generator& g) {
  std::vector<int64_t> v(static_cast<size_t>(B * T));
  for (auto& x : v) x = int64_t(g.below(uint64_t(V)));
  return Tensor::from_vector(v, {B, T});
}

void train_step(benchmark::State& state, const std::string& name, int64_t T, int64_t B) {
  Generator gen(0);
  GPT model(bench_config(name, T), gen);
  optim::AdamW opt(model.parameters(), 3e-4, 0.9, 0.99, 1e-8, 0.1);
  const Tensor data = random_tokens(B, T + 1, 256, gen);
  const Tensor x = data.narrow(1, 0, T).contiguous(),
               y = data.narrow(1, 1, T).contiguous().reshape({B * T});
  for (auto _ : state) {
    const Tensor loss = cross_entropy(model.lm_logits(model.forward(x)).reshape({B * T, -1}), y);
    opt.zero_grad();
    loss.backward();
    optim::clip_grad_norm(opt.params(), 1.0);
    opt.step();
    benchmark::DoNotOptimize(loss.item());
  }
  const double tokens = double(B * T) * double(state.iterations());
  state.counters["tokens/s"] = benchmark::Counter(tokens, benchmark::Counter::kIsRate);
  state.counters["GFLOP/s"] = benchmark::Counter(
      6.0 * double(model.num_parameters()) * tokens / 1e9, benchmark::Counter::kIsRate);
  state.counters["params"] = double(model.num_parameters());
}

void BM_TrainStep_micro(benchmark::State& s) { train_step(s, "micro", 64, 32); }
void BM_TrainStep_mini(benchmark::State& s) { train_step(s, "mini", 128, 16); }
BENCHMARK(BM_TrainStep_micro)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_TrainStep_mini)->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_Generate(benchmark::State& state) {
  const bool cache = state.range(0) != 0;
  Generator gen(0);
  GPT model(bench_config("micro", 256), gen);
  const int64_t B = 8, Tp = 16, new_tokens = 128;
  const Tensor prompts = random_tokens(B, Tp, 256, gen);
  SamplingConfig sc;
  sc.max_new_tokens = new_tokens;
  sc.use_cache = cache;
  for (auto _ : state) {
    Generator g(1);
    const Generation out = generate(model, prompts, Tensor(), sc, g);
    benchmark::DoNotOptimize(out.tokens.numel());
  }
  state.counters["tokens/s"] = benchmark::Counter(
      double(B * new_tokens) * double(state.iterations()), benchmark::Counter::kIsRate);
  state.SetLabel(cache ? "kv-cache" : "no-cache");
}
BENCHMARK(BM_Generate)->Arg(1)->Arg(0)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
