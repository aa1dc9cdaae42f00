// Settings of the tiny LM runs the RLHF tests start from: a reviews task of 400 train examples
// and a 1-layer nano GPT (C 32) trained 4 SFT steps, and a reward model of two steps; the 600-step
// arith SFT run the group-RL tests start from; and preference pairs made from a task's own
// examples. Tests change what they need and train.
#pragma once

#include <algorithm>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "models/gpt.h"
#include "rl/llm/reward_model.h"
#include "rl/llm/rlhf_data.h"
#include "rl/llm/sft.h"
#include "rl/llm/tasks/task.h"

namespace rlft::testing {

// A default config of any LM trainer (SFT, DPO, the reward model, RRHF, PPO-RLHF) whose run is
// <dir>/<name>, quiet: where every test run goes.
template <typename Config>
Config config_at(const std::string& dir, const std::string& name) {
  Config c;
  c.out_dir = dir;
  c.name = name;
  c.quiet = true;
  return c;
}

// A 1-layer float64 GPT of 2 heads and C 8 over `vocab` tokens and a context of `block`: the
// model of the tests that check a formula on a few fixed tokens.
inline models::GPTConfig tiny_f64_gpt(int64_t vocab, int64_t block) {
  models::GPTConfig c;
  c.vocab_size = vocab;
  c.block_size = block;
  c.n_layer = 1;
  c.n_head = 2;
  c.n_embd = 8;
  c.dtype = DType::f64;
  return c;
}

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
  llm::SFTConfig s = config_at<llm::SFTConfig>(dir, name);
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
  return s;
}

// A reward model at <dir>/<name> from the SFT run `init` on the pairs of `prefs`: two epochs of
// one step each (batch 64, more than the few dozen pairs the tests make), lr 1e-3.
inline llm::RewardModelConfig tiny_reward_model_config(const std::string& dir,
                                                       const std::string& name,
                                                       const std::string& init,
                                                       const std::string& prefs) {
  llm::RewardModelConfig c = config_at<llm::RewardModelConfig>(dir, name);
  c.prefs = prefs;
  c.init = init;
  c.epochs = 2;
  c.batch = 64;
  c.lr = 1e-3;
  return c;
}

// A nano GPT (2 layers) fine-tuned on 2-digit + and − (the default task) for 600 steps, ~8 s:
// about 10% greedy exact match, a few percent when sampled at temperature 1.
inline llm::SFTConfig arith_sft_config(const std::string& dir, const std::string& name) {
  llm::SFTConfig s = config_at<llm::SFTConfig>(dir, name);
  s.model = "nano";
  s.steps = 600;
  s.batch = 64;
  s.lr = 3e-3;
  s.warmup = 50;
  s.log_every = 600;
  s.eval_every = 600;
  s.eval_examples = 50;
  s.eval_generate = 0;
  s.checkpoint_every = 600;
  return s;
}

// Up to `n` preference pairs of two train examples of `task` (examples 0 and 1, 2 and 3, …)
// whose responses differ, the first one's chosen: pairs in the task's alphabet for runs that
// need some, whatever their quality.
inline std::vector<llm::PreferencePair> example_pairs(const llm::TaskConfig& task, size_t n) {
  const std::unique_ptr<llm::Task> t = llm::make_task(task);
  const std::vector<llm::Example>& ex = t->examples(llm::Split::train);
  std::vector<llm::PreferencePair> pairs;
  for (size_t i = 0; i + 1 < ex.size() && pairs.size() < n; i += 2)
    if (ex[i].response != ex[i + 1].response)
      pairs.push_back({ex[i].prompt, ex[i].response, ex[i + 1].response});
  return pairs;
}

// Up to `n` preference pairs of consecutive train examples of `task` (i and i + 1, for i = 0,
// 1, …), example i's response chosen, that leave room in a 128-token context for BOS, the
// prompt, the longer response and EOS. With `scored`, made-up scores (chosen above rejected) so
// that a reward model's held-out correlation is logged too.
inline std::vector<llm::PreferencePair> consecutive_example_pairs(const llm::TaskConfig& task,
                                                                  size_t n, bool scored = false) {
  const std::unique_ptr<llm::Task> t = llm::make_task(task);
  const std::vector<llm::Example>& ex = t->examples(llm::Split::train);
  std::vector<llm::PreferencePair> pairs;
  for (size_t i = 0; i + 1 < ex.size() && pairs.size() < n; ++i) {
    llm::PreferencePair p;
    p.prompt = ex[i].prompt;
    p.chosen = ex[i].response;
    p.rejected = ex[i + 1].response;
    if (scored) {
      p.chosen_score = 0.5 + 0.01 * double(i % 40);
      p.rejected_score = 0.45 - 0.01 * double(i % 30);
    }
    if (p.prompt.size() + std::max(p.chosen.size(), p.rejected.size()) < 100) pairs.push_back(p);
  }
  return pairs;
}

}  // namespace rlft::testing
