// PPO-RLHF with four models (rl/llm/ppo_rlhf.h): the wall time of one update at the default
// configuration (`rlft lm ppo` defaults: batch 32 prompts, ppo_epochs 1, one minibatch, sampling
// at temperature 1 up to the 128-token context), split into its three phases, and the process's
// peak memory.
//
//   BM_PPORLHFIteration   each benchmark iteration runs train_ppo_rlhf for kUpdates updates and
//                         reports the mean per-update time of the phases (manual time = their
//                         sum: model loading, the before/after evaluations and the checkpoint
//                         are outside the measurement).
// Counters: generation_s (KV-cache sampling of the rollout), experience_s (reference and actor
// log-probs, critic values, reward-model score, rewards and GAE; no gradient), training_s
// (actor and critic forward, backward, Adam), in wall seconds per update; cpu_*_s the same in
// process CPU seconds (on a shared machine wall time includes waiting for a core; run with
// OMP_NUM_THREADS=1 so that CPU time is one core's), response_tokens (mean response length),
// peak_rss_MiB (getrusage ru_maxrss of the whole process: the four models, their optimiser
// state, activations).
//
// Models: the SFT and reward-model runs of docs/rlhf.md (runs/rlhf-reviews-sft and
// runs/rlhf-reviews-rm, or RLFT_BENCH_SFT / RLFT_BENCH_RM), so that the response lengths are
// those of a trained policy. Without them a small stand-in pair is trained first (150 SFT steps,
// a reward model on 256 pairs; about a minute), and the label says so.
#include <benchmark/benchmark.h>
#include <sys/resource.h>

#include <cstdlib>
#include <filesystem>
#include <string>

#include "engine/fs.h"
#include "rl/llm/ppo_rlhf.h"
#include "rl/llm/reward_model.h"
#include "rl/llm/rlhf_data.h"
#include "rl/llm/sft.h"

using namespace rlft;
using namespace rlft::llm;

namespace {

constexpr int64_t kUpdates = 4;

std::string env_or(const char* name, const std::string& fallback) {
  const char* v = std::getenv(name);
  return v != nullptr && *v != 0 ? std::string(v) : fallback;
}

struct Models {
  std::string sft, rm, label;
};

// The documented runs when they exist; otherwise a stand-in pair trained in a temporary directory.
const Models& models() {
  static const Models m = [] {
    Models r{env_or("RLFT_BENCH_SFT", "runs/rlhf-reviews-sft"),
             env_or("RLFT_BENCH_RM", "runs/rlhf-reviews-rm"), "docs/rlhf.md runs"};
    if (fs::exists(r.sft + "/checkpoint.safetensors") &&
        fs::exists(r.rm + "/checkpoint.safetensors"))
      return r;
    const std::string dir = (std::filesystem::temp_directory_path() / "rlft_bench_rlhf").string();
    SFTConfig c;
    c.task.task = "reviews";
    c.task.train_size = 4000;
    c.task.eval_size = 50;
    c.model = "nano";
    c.block_size = 128;
    c.steps = 150;
    c.batch = 32;
    c.lr = 3e-3;
    c.warmup = 20;
    c.eval_every = 150;
    c.eval_examples = 20;
    c.eval_generate = 0;
    c.checkpoint_every = 150;
    c.out_dir = dir;
    c.name = "sft";
    c.quiet = true;
    train_sft(c);
    PrefsConfig p;
    p.run = dir + "/sft";
    p.pairs = 256;
    p.deterministic_labels = true;
    p.out = dir + "/prefs.jsonl";
    p.quiet = true;
    generate_preferences(p);
    RewardModelConfig rc;
    rc.prefs = p.out;
    rc.init = p.run;
    rc.epochs = 1;
    rc.out_dir = dir;
    rc.name = "rm";
    rc.quiet = true;
    train_reward_model(rc);
    return Models{dir + "/sft", dir + "/rm", "stand-in models (150 SFT steps)"};
  }();
  return m;
}

double peak_rss_mib() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return double(u.ru_maxrss) / 1024.0;  // Linux: kilobytes
}

void BM_PPORLHFIteration(benchmark::State& state) {
  const Models& m = models();
  state.SetLabel(m.label);
  const std::string out =
      (std::filesystem::temp_directory_path() / "rlft_bench_rlhf_runs").string();
  double gen = 0, exp = 0, train = 0, length = 0, cpu_gen = 0, cpu_exp = 0, cpu_train = 0;
  int64_t n = 0;
  for (auto _ : state) {
    PPORLHFConfig c;  // the defaults, except the length of the run and its evaluation
    c.init = m.sft;
    c.reward_model = m.rm;
    c.steps = kUpdates;
    c.eval_every = 0;
    c.eval_samples = 1;
    c.out_dir = out;
    c.name = "ppo";
    c.quiet = true;
    const PPORLHFResult r = train_ppo_rlhf(c);
    double total = 0;
    for (int64_t i = 0; i < kUpdates; ++i) {
      cpu_gen += r.cpu_generation[size_t(i)], cpu_exp += r.cpu_experience[size_t(i)],
          cpu_train += r.cpu_training[size_t(i)];
      gen += r.time_generation[size_t(i)], exp += r.time_experience[size_t(i)],
          train += r.time_training[size_t(i)];
      total +=
          r.time_generation[size_t(i)] + r.time_experience[size_t(i)] + r.time_training[size_t(i)];
    }
    n += kUpdates;
    state.SetIterationTime(total / double(kUpdates));
    // Mean response length of the rollouts, from the run's log.
    for (const json::Value& row : json::parse_jsonl(fs::read_file(out + "/ppo/metrics.jsonl")))
      if (row.contains("response_length")) length += row.at("response_length").as_double();
  }
  state.counters["generation_s"] = gen / double(n);
  state.counters["experience_s"] = exp / double(n);
  state.counters["training_s"] = train / double(n);
  state.counters["cpu_generation_s"] = cpu_gen / double(n);
  state.counters["cpu_experience_s"] = cpu_exp / double(n);
  state.counters["cpu_training_s"] = cpu_train / double(n);
  state.counters["response_tokens"] = length / double(n);
  state.counters["peak_rss_MiB"] = peak_rss_mib();
}

}  // namespace

BENCHMARK(BM_PPORLHFIteration)->Unit(benchmark::kMillisecond)->UseManualTime()->Iterations(2);

BENCHMARK_MAIN();
