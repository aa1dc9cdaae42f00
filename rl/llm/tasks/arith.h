// arith: integer arithmetic as text, the verifiable-reward task.
//
//   prompt "37+45=", response "82";  "12-45=" → "-33";  "7*13=" → "91"
//
// Operands are uniform in [0, 10^digits), operators from TaskConfig::ops (+ − × written as
// ASCII + - *). Every problem (a, op, b) is assigned to a split by a hash of the problem and
// the data seed: 10% test, 5% validation, 85% train — so a problem never appears in two splits,
// and is in the same split under every --digits and --ops (a 2-digit run's training problems
// are not a 3-digit run's test problems). A seed that leaves a split empty is an error.
// Validation and test hold up to eval_size distinct problems; train holds every problem of its
// part when there are at most train_size of them (2-digit + and −: ~17 000), else train_size
// distinct ones drawn from it.
//
// Verifier: score(prompt, response) = 1 when response is exactly the answer's decimal text,
// optionally followed by one "<|eos|>", and 0 otherwise (spaces, leading zeros, "+82" or a
// second EOS all score 0). Chance level for 2-digit + and − is about 1/200 (the answers span
// −99 … 198).
#pragma once

#include "rl/llm/tasks/task.h"

namespace rlft::llm {

class ArithTask : public Task {
 public:
  explicit ArithTask(const TaskConfig& cfg);
  std::string name() const override { return "arith"; }
  std::string alphabet() const override { return "0123456789+-*="; }
  const std::vector<Example>& examples(Split split) const override { return splits_[int(split)]; }
  bool has_verifier() const override { return true; }
  double score(const std::string& prompt, const std::string& response) const override;
  SampleMetrics sample_metrics(const std::vector<std::string>& prompts,
                               const std::vector<std::string>& responses) const override;

  // The answer to a prompt "a op b=" as text; a malformed prompt is an rlft::Error.
  static std::string answer(const std::string& prompt);

 private:
  std::vector<Example> splits_[3];
};

}  // namespace rlft::llm
