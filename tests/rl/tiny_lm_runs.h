// Settings of the tiny LM runs the RLHF tests start from: a reviews task of 400 train examples
// and a 1-layer nano GPT (C 32) trained 4 SFT steps. Tests change what they need and train.
#pragma once

#include <cstdint>
#include <string>

#include "rl/llm/sft.h"

namespace rlft::testing {

inline llm::TaskConfig tiny_reviews(uint64_t data_seed = 1234, int64_t eval_size = 8) {
  llm::TaskConfig t;
  t.task = "reviews";
  t.data_seed = data_seed;
  t.train_size = 400;
  t.eval_size = eval_size;
  return t;
}

// Context `block_size` (examples longer than it are cut by the SFT batches); run dir/name.
inline llm::SFTConfig tiny_sft_config(const std::string& dir, const std::string& name,
                                      int64_t block_size = 128,
                                      const llm::TaskConfig& task = tiny_reviews()) {
  llm::SFTConfig s;
  s.task = task;
  s.model = "nano";
  s.n_layer = 1;
  s.n_embd = 32;
  s.block_size = block_size;
  s.steps = 4;
  s.batch = 16;
  s.lr = 3e-3;
  s.warmup = 1;
  s.log_every = 4;
  s.eval_every = 4;
  s.eval_examples = 8;
  s.eval_generate = 0;
  s.checkpoint_every = 4;
  s.out_dir = dir;
  s.name = name;
  s.quiet = true;
  return s;
}

}  // namespace rlft::testing
