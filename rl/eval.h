// Evaluating a saved classic-control policy, and drawing a run's learning curve.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace rlft::rl {

struct EvalResult {
  std::string env_id;
  std::vector<double> returns;  // one per episode
  double mean = 0, std = 0, min = 0, max = 0;
};

// Loads runs/<name>/policy.safetensors (architecture, env and observation statistics from its
// metadata) and plays `episodes` episodes with seeds seed, seed+1, …; deterministic picks the
// argmax / the Gaussian mean, otherwise actions are sampled.
// The file's weights must be finite and its metadata complete (each error names the file and the
// tensor or field); `episodes` is in [1, kMaxEvalEpisodes].
EvalResult evaluate_run(const std::string& run_dir, int64_t episodes, uint64_t seed,
                        bool deterministic);
inline constexpr int64_t kMaxEvalEpisodes = 1000000;

// Reads runs/<name>/metrics.jsonl and writes runs/<name>/return.svg: the episodic return (mean
// per update and the mean of the last 20 episodes) against environment steps. Returns the
// SVG's path. A malformed metrics line, or one without "global_step" (e.g. a language-model
// run's), is an error naming the file and line. Points that cannot be drawn (not finite, or
// beyond ±plot::kMaxPlotAbs) are left out and, when `skipped` is given, counted there. A last
// line cut short (a run still writing it, or a crash) is left out and sets `cut` (read_metrics,
// run.h), so a running run can be plotted.
std::string write_learning_curve(const std::string& run_dir, int64_t* skipped = nullptr,
                                 bool* cut = nullptr);

}  // namespace rlft::rl
