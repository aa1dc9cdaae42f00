// text: character-level language modelling of any UTF-8 file (`--task text --data FILE`).
//
// The file's code points are split by position: the first 90% train, the next 5% validation,
// the last 5% test, so no character of one split is in another. Each split is cut into
// examples of `chunk` characters (prompt empty, no EOS: a cut of a longer text): validation
// and test back to back, train with a stride of chunk/2 (overlapping windows). A split shorter
// than one chunk yields one shorter example. Files under 40 characters are an error.
#pragma once

#include "rl/llm/tasks/task.h"

namespace rlft::llm {

class TextTask : public Task {
 public:
  explicit TextTask(const TaskConfig& cfg);
  std::string name() const override { return "text"; }
  std::string alphabet() const override { return text_; }
  const std::vector<Example>& examples(Split split) const override { return splits_[int(split)]; }

  // [begin, end) code-point range of a split in the file.
  std::pair<int64_t, int64_t> range(Split split) const { return ranges_[int(split)]; }

 private:
  std::string text_;
  std::vector<Example> splits_[3];
  std::pair<int64_t, int64_t> ranges_[3];
};

}  // namespace rlft::llm
