// The resume tests' scenario: one LM run trained straight through, and the same run stopped
// (--stop-after) and resumed (--resume) to its end, whose results and files the tests then
// compare (checkpoints_equal.h, run_metrics.h).
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <functional>
#include <string>
#include <type_traits>
#include <vector>

namespace rlft::testing {

template <typename Config, typename Result>
struct StoppedAndResumed {
  Config config;    // the resumed run's config as its last invocation had it (resume on)
  Result straight;  // the uninterrupted run
  Result stopped;   // the other run's first invocation, stopped after `stop_after` steps
  Result resumed;   // its resume, to the end
};

// Trains `config` straight through as `straight_name`, then as `resumed_name` stopped after
// `stop_after` steps and resumed to the end. `between(config)` runs after the stop and before
// the resume, to look at the stopped run's files or to change a setting a resume may change
// (--grad-accum, …). `train` is the trainer (train_sft, train_dpo, train_reward_model,
// train_rrhf, train_ppo_rlhf, train_group_rl): every config has name, stop_after and resume.
template <typename Config, typename Result>
StoppedAndResumed<Config, Result> stop_and_resume(
    Result (*train)(const Config&), Config config, const std::string& straight_name,
    const std::string& resumed_name, int64_t stop_after,
    const std::type_identity_t<std::function<void(Config&)>>& between = nullptr) {
  StoppedAndResumed<Config, Result> out;
  config.name = straight_name;
  config.stop_after = 0;
  config.resume = false;
  out.straight = train(config);
  config.name = resumed_name;
  config.stop_after = stop_after;
  out.stopped = train(config);
  if (between) between(config);
  config.stop_after = 0;
  config.resume = true;
  out.resumed = train(config);
  out.config = config;
  return out;
}

// A resumed invocation's per-step losses are the straight run's from step `from` on, bit for
// bit: `count` of them (the steps it ran), each equal.
inline void expect_losses_continue(const std::vector<double>& resumed,
                                   const std::vector<double>& straight, size_t from, size_t count) {
  ASSERT_EQ(resumed.size(), count);
  ASSERT_GE(straight.size(), from + count);
  for (size_t i = 0; i < count; ++i)
    EXPECT_EQ(resumed[i], straight[from + i]) << "step " << from + i;
}

}  // namespace rlft::testing
