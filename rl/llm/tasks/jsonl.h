// jsonl: the user's own prompt/response data (`--task jsonl --data FILE.jsonl`), with an
// exact-match verifier, for SFT, evaluation and group RL (GRPO, DAPO, …) on it.
//
//   {"prompt": "reverse the word: abc\n", "response": "cba"}
//   {"prompt": "capital of France? ", "completion": "Paris", "source": "quiz 3"}
//
// File: one JSON object per non-blank line with a string "prompt" and a string "response"
// (or "completion", TRL's name for it: exactly one of the two); other keys are ignored. A UTF-8
// byte-order mark at the start and CRLF line ends are accepted. A line that is not UTF-8, not
// JSON or not such an object, or whose response is empty or only whitespace, is an error
// naming the file and line ("data.jsonl:7: missing \"prompt\""); so is a file without examples.
// A prompt may appear on several lines, each giving one more reference response.
//
// Splits, by prompt (all examples of a prompt are in one split, so no prompt is in two): the
// distinct prompts are ordered by hash_unit(data_seed, prompt) (ties by their text); with P
// of them, the first k go to test, the next k to validation and the rest to train, where
//     k = min(eval_size, max(1, floor(P / 10)))
// (eval_size distinct prompts each, but never more than a tenth of the prompts, so the default
// --eval-size 500 suits a file of a few hundred lines). Within a split, examples follow that
// prompt order, then file order; train keeps the first train_size of them. Fewer than 3
// distinct prompts is an error naming the counts.
//
// Verifier: score(prompt, response) = 1 when the response, without one trailing "<|eos|>" and
// with surrounding whitespace trimmed, equals one of the prompt's reference responses in the
// file (trimmed), whatever its split; else 0. A prompt not in the file is an error.
// sample_metrics: {"exact_match": mean score}.
//
// Reproducibility: the run records --data and the file's fingerprint (FNV-1a 64 of its bytes,
// 16 hex digits) as the task key "data_fingerprint"; a TaskConfig carrying a fingerprint (a
// task rebuilt from a run's config.json: eval, group RL --init, resume) must match the file's
// ("data.jsonl: changed since the run was trained: fingerprint X, recorded Y").
#pragma once

#include <map>
#include <string_view>

#include "rl/llm/tasks/task.h"

namespace rlft::llm {

// One line of a prompt/response file: its texts as written, and its line number (from 1).
struct PromptResponse {
  std::string prompt, response;
  int64_t line = 0;
};

// Parses the whole text of a prompt/response JSONL file; `source` (its path) starts every error.
std::vector<PromptResponse> parse_prompt_responses(std::string_view text,
                                                   const std::string& source);

// FNV-1a 64 of `bytes` as 16 lower-case hex digits: the data_fingerprint a run records.
std::string data_fingerprint(std::string_view bytes);

class JsonlTask : public Task {
 public:
  explicit JsonlTask(const TaskConfig& cfg);
  std::string name() const override { return "jsonl"; }
  std::string alphabet() const override { return alphabet_; }
  const std::vector<Example>& examples(Split split) const override { return splits_[int(split)]; }
  bool has_verifier() const override { return true; }
  double score(const std::string& prompt, const std::string& response) const override;
  SampleMetrics sample_metrics(const std::vector<std::string>& prompts,
                               const std::vector<std::string>& responses) const override;

  // data_fingerprint(bytes) of the file as read.
  std::string data_fingerprint() const override { return fingerprint_; }
  // Whether `prompt` is one of the file's (score() judges only those).
  bool has_prompt(const std::string& prompt) const { return references_.count(prompt) > 0; }

 private:
  std::string source_, fingerprint_, alphabet_;
  std::vector<Example> splits_[3];
  std::map<std::string, std::vector<std::string>> references_;  // prompt → trimmed responses
};

}  // namespace rlft::llm
