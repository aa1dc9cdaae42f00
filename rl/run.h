// Run directories and the metrics log shared by every algorithm.
//
// runs/<name>/config.json    every setting, the seed and the git revision (atomic write)
// runs/<name>/metrics.jsonl  one JSON object per update, appended and flushed
// plus the algorithm's checkpoints and SVG curves.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "engine/dtype.h"
#include "engine/json.h"

namespace rlft::rl {

class RunDir {
 public:
  // Creates `dir` (e.g. "runs/ppo-cartpole"); an unwritable location is an rlft::Error.
  // With `fresh`, an existing metrics.jsonl is removed (a new run, not a resume).
  RunDir(const std::string& dir, bool fresh);
  const std::string& dir() const { return dir_; }
  std::string path(const std::string& file) const { return dir_ + "/" + file; }
  void write_config(const json::Value& config) const;
  void log(const json::Value& metrics) const;
  // For --resume: drops the metrics.jsonl lines logged after `step` (a crash between two
  // checkpoints leaves them behind; the resumed run logs those steps again) and returns the
  // lines kept, in order, for the caller to rebuild its curves from. No file: no lines.
  std::vector<json::Value> keep_metrics_through(int64_t step) const;

 private:
  std::string dir_;
};

// The git revision of the source tree rlft was built from, or "unknown".
std::string git_revision();

// Seconds since construction, and a human "1m05s" ETA.
class Stopwatch {
 public:
  Stopwatch() : start_(std::chrono::steady_clock::now()) {}
  double seconds() const {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  }

 private:
  std::chrono::steady_clock::time_point start_;
};
std::string format_duration(double seconds);

// The device a --device value names, checked: "cpu", or "cuda[:N]" when that GPU answers
// (otherwise one error with the runtime's reason, e.g. "CUDA driver version is insufficient").
Device resolve_device(const std::string& device);

// "64,64" → {64, 64}; anything but positive integers is an error naming `flag`.
std::vector<int64_t> parse_sizes(const std::string& flag, const std::string& text);

}  // namespace rlft::rl
