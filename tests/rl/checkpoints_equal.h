// The resume tests' comparison: a run stopped and resumed must end with the straight run's
// checkpoint, bit for bit.
#pragma once

#include <gtest/gtest.h>

#include <string>

#include "engine/checkpoint.h"

namespace rlft::testing {

// Every tensor of two checkpoints (the weights and the "optimizer.*" state, which must be
// there) equal byte for byte, and their metadata equal: the step and the trainer's loop state
// (ppo_rlhf_state, rrhf_state, rm_state, …) included.
inline void expect_same_checkpoint(const std::string& a_path, const std::string& b_path) {
  Metadata ma, mb;
  const NamedTensors a = load_tensors(a_path, &ma), b = load_tensors(b_path, &mb);
  ASSERT_EQ(a.size(), b.size()) << a_path;
  size_t optimizer_tensors = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    ASSERT_EQ(a[i].first, b[i].first) << a_path;
    optimizer_tensors += a[i].first.rfind("optimizer.", 0) == 0;
    EXPECT_EQ(to_record(a[i].first, a[i].second).data, to_record(b[i].first, b[i].second).data)
        << a_path << ": " << a[i].first;
  }
  EXPECT_GT(optimizer_tensors, 0u) << a_path << ": no optimizer state";
  EXPECT_EQ(ma, mb) << a_path;
}

}  // namespace rlft::testing
