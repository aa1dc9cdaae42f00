// The resume tests' scenario: one LM run trained straight through, and the same run stopped
// (--stop-after) and resumed (--resume) to its end, whose results and files the tests then
// compare (checkpoints_equal.h, run_metrics.h).
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "engine/fs.h"
#include "engine/json.h"

namespace rlft::testing {

template <typename Config, typename Result>
struct StoppedAndResumed {
  Config config;    // the resumed run's config as its last invocation had it (resume on)
  Result straight;  // the uninterrupted run
  Result stopped;   // the other run's first invocation, stopped after `stop_after` steps
  Result resumed;   // its resume, to the end
};

// A crash after a checkpoint of step `step` loses none of the lines through that step: the
// trainer flushed metrics.jsonl (fs::sync_file) through the last line whose `key` ("step",
// PPO's "update", REINFORCE's "episode") is at most `step`, as it must before writing the
// checkpoint (RunDir::sync_log), and before it wrote checkpoint.safetensors beside it (its last
// flush came first). Call fs::forget_flushes() before the invocation; call this when the
// checkpoint of `step` is the last one written.
inline void expect_log_durable_through(const std::string& metrics, int64_t step,
                                       const std::string& key = "step") {
  const std::string text = fs::read_file(metrics);
  size_t through = 0;  // bytes of the lines of steps up to `step`
  for (size_t begin = 0, end; (end = text.find('\n', begin)) != std::string::npos;
       begin = end + 1) {
    if (json::parse(std::string_view(text).substr(begin, end - begin)).at(key).as_int() > step)
      break;
    through = end + 1;
  }
  ASSERT_GT(through, 0u) << metrics << ": no line through " << key << " " << step;
  EXPECT_GE(fs::synced_size(metrics), int64_t(through))
      << metrics << ": lines through " << key << " " << step
      << " were not flushed before the checkpoint";
  const std::string checkpoint =
      std::filesystem::path(metrics).parent_path().string() + "/checkpoint.safetensors";
  EXPECT_LT(fs::flush_order(metrics), fs::flush_order(checkpoint))
      << metrics << " was flushed after " << checkpoint
      << " was written (or never): a crash between them leaves a checkpoint ahead of its log";
}

// Trains `config` straight through as `straight_name`, then as `resumed_name` stopped after
// `stop_after` steps and resumed to the end. `between(config)` runs after the stop and before
// the resume, to look at the stopped run's files or to change a setting a resume may change
// (--grad-accum, …). `train` is the trainer (train_sft, train_dpo, train_reward_model,
// train_rrhf, train_ppo_rlhf, train_group_rl): every config has name, stop_after and resume.
// The stopped invocation's log must be durable through its checkpoint.
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
  fs::forget_flushes();
  out.stopped = train(config);
  expect_log_durable_through(config.out_dir + "/" + resumed_name + "/metrics.jsonl", stop_after);
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
