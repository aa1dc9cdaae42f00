// A run's metrics.jsonl read back, and the comparisons the LM tests make of two runs' rows.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "engine/fs.h"
#include "engine/json.h"

namespace rlft::testing {

// The rows of <run_dir>/metrics.jsonl (a parse error names the file).
inline std::vector<json::Value> metrics_of(const std::string& run_dir) {
  const std::string path = run_dir + "/metrics.jsonl";
  return json::parse_jsonl(fs::read_file(path), path);
}

// A metrics row without its wall-time fields, the only ones two equal runs may differ in:
// elapsed_seconds, and with `phase_times` also PPO-RLHF's time_* (generation, experience,
// training) and the samples_per_second computed from them.
inline json::Value without_wall_time(const json::Value& row, bool phase_times = false) {
  json::Value out = json::Value::object();
  for (const auto& [k, v] : row.as_object()) {
    const bool phase = k.rfind("time_", 0) == 0 || k == "samples_per_second";
    if (k != "elapsed_seconds" && !(phase_times && phase)) out.set(k, v);
  }
  return out;
}

// Two runs log the same rows, each equal but its wall time (see without_wall_time): a resumed
// run against the straight one.
inline void expect_same_rows(const std::string& a_run, const std::string& b_run,
                             bool phase_times = false) {
  const std::vector<json::Value> a = metrics_of(a_run), b = metrics_of(b_run);
  ASSERT_EQ(b.size(), a.size()) << b_run;
  for (size_t i = 0; i < a.size(); ++i)
    EXPECT_EQ(without_wall_time(a[i], phase_times).dump(),
              without_wall_time(b[i], phase_times).dump())
        << b_run << " row " << i;
}

// The grad_norm logged with clipping off is the true global norm (it was once logged as 0): on
// every row from `first` on it is positive and finite, and the same as that of a run whose
// clipping never bites (max norm 1e30 leaves the gradients as they are, so both runs take the
// same steps, and the two norms are the same sums of the same gradients in the same order).
inline void expect_unclipped_grad_norms(const std::vector<json::Value>& off,
                                        const std::vector<json::Value>& never_bites,
                                        size_t first = 0) {
  ASSERT_EQ(never_bites.size(), off.size());
  for (size_t i = first; i < off.size(); ++i) {
    const double g = off[i].at("grad_norm").as_double();
    EXPECT_TRUE(std::isfinite(g) && g > 0) << "row " << i << ": " << g;
    EXPECT_NEAR(g, never_bites[i].at("grad_norm").as_double(), 1e-9 * g) << "row " << i;
  }
}

}  // namespace rlft::testing
