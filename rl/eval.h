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
EvalResult evaluate_run(const std::string& run_dir, int64_t episodes, uint64_t seed, bool deterministic);

// Reads runs/<name>/metrics.jsonl and writes runs/<name>/return.svg: the episodic return (mean
// per update and the mean of the last 20 episodes) against environment steps. Returns the
// SVG's path. A malformed metrics line is an error naming the file and line.
std::string write_learning_curve(const std::string& run_dir);

}  // namespace rlft::rl
