// arith: integer arithmetic as text (see arith.h).
#include "rl/llm/tasks/arith.h"

#include <string>

#include "engine/error.h"
#include "engine/rng.h"

namespace rlft::llm {

namespace {

// Operator index fixed by the character, so enabling another operator never moves the
// problems of the others to a different split.
int op_index(char op) { return op == '+' ? 0 : op == '-' ? 1 : 2; }

int64_t apply(int64_t a, char op, int64_t b) {
  return op == '+' ? a + b : op == '-' ? a - b : a * b;
}

// A problem's id, the key of its split's hash, the same whatever --digits: (a·100 + b)·3 + op
// below 100 (the ids the 2-digit task has always used, so its splits are as they were) and
// 30000 + (a·1000 + b)·3 + op for a 3-digit operand. So a problem is in one split under every
// --digits (a 2-digit run's training problems are not a 3-digit run's test problems).
uint32_t problem_id(int64_t a, int64_t b, char op) {
  if (a < 100 && b < 100) return uint32_t((a * 100 + b) * 3 + op_index(op));
  return uint32_t(30000 + (a * 1000 + b) * 3 + op_index(op));
}
struct Problem {
  int64_t a, b;
  char op;
};
Problem from_id(uint32_t id) {
  static const char kOps[3] = {'+', '-', '*'};
  const uint32_t base = id < 30000 ? 100 : 1000, ab = (id < 30000 ? id : id - 30000) / 3;
  return {int64_t(ab / base), int64_t(ab % base), kOps[id % 3]};
}

// Shuffles v in place (Fisher–Yates) with the generator's stream.
template <typename T>
void shuffle(std::vector<T>& v, Generator& gen) {
  for (size_t i = v.size(); i > 1; --i) std::swap(v[i - 1], v[size_t(gen.below(i))]);
}

}  // namespace

ArithTask::ArithTask(const TaskConfig& cfg) {
  RLFT_CHECK(cfg.digits >= 1 && cfg.digits <= 3, "arith: --digits must be 1, 2 or 3, got ",
             cfg.digits);
  RLFT_CHECK(!cfg.ops.empty(), "arith: --ops is empty (use some of + - *)");
  for (size_t i = 0; i < cfg.ops.size(); ++i) {
    const char c = cfg.ops[i];
    RLFT_CHECK(c == '+' || c == '-' || c == '*', "arith: unknown operator '", std::string(1, c),
               "' in --ops \"", cfg.ops, "\" (use + - *)");
    RLFT_CHECK(cfg.ops.find(c) == i, "arith: operator '", std::string(1, c), "' repeated in --ops");
  }
  RLFT_CHECK(cfg.train_size > 0 && cfg.eval_size > 0,
             "arith: --train-size and --eval-size must be positive");
  int64_t n = 1;
  for (int64_t d = 0; d < cfg.digits; ++d) n *= 10;
  // Enumerate every problem, assign each to a split by the hash of its id (problem_id).
  std::vector<uint32_t> parts[3];
  for (int64_t a = 0; a < n; ++a)
    for (int64_t b = 0; b < n; ++b)
      for (char op : cfg.ops) {
        const uint32_t id = problem_id(a, b, op);
        const double u = hash_unit(cfg.data_seed, id);
        const int part = u < 0.10   ? int(Split::test)
                         : u < 0.15 ? int(Split::validation)
                                    : int(Split::train);
        parts[part].push_back(id);
      }
  // With few problems (1 digit, one operator: 100) a seed can hash none into a split: an empty
  // validation split would report a loss of 0 as if the model were perfect.
  for (int s = 0; s < 3; ++s)
    RLFT_CHECK(!parts[s].empty(), "arith: the ", split_name(Split(s)),
               " split is empty: none of the ", n * n * int64_t(cfg.ops.size()),
               " problems of --digits ", cfg.digits, " --ops \"", cfg.ops,
               "\" falls in it under --data-seed ", cfg.data_seed,
               " (another --data-seed, or more digits or operators)");
  Generator gen(cfg.data_seed);
  for (int s = 0; s < 3; ++s) {
    shuffle(parts[s], gen);
    const size_t keep = size_t(s == int(Split::train) ? cfg.train_size : cfg.eval_size);
    if (parts[s].size() > keep) parts[s].resize(keep);
    for (uint32_t id : parts[s]) {
      const Problem q = from_id(id);
      splits_[s].push_back({std::to_string(q.a) + q.op + std::to_string(q.b) + "=",
                            std::to_string(apply(q.a, q.op, q.b)), true});
    }
  }
}

std::string ArithTask::answer(const std::string& prompt) {
  size_t i = 0;
  auto number = [&]() {
    const size_t start = i;
    while (i < prompt.size() && prompt[i] >= '0' && prompt[i] <= '9') ++i;
    RLFT_CHECK(i > start && i - start <= 9, "arith: malformed prompt \"", prompt,
               "\" (expected a+b=, a-b= or a*b=)");
    return std::stoll(prompt.substr(start, i - start));
  };
  const int64_t a = number();
  RLFT_CHECK(i < prompt.size() && (prompt[i] == '+' || prompt[i] == '-' || prompt[i] == '*'),
             "arith: malformed prompt \"", prompt, "\" (expected a+b=, a-b= or a*b=)");
  const char op = prompt[i++];
  const int64_t b = number();
  RLFT_CHECK(i + 1 == prompt.size() && prompt[i] == '=', "arith: malformed prompt \"", prompt,
             "\" (expected a+b=, a-b= or a*b=)");
  return std::to_string(apply(a, op, b));
}

double ArithTask::score(const std::string& prompt, const std::string& response) const {
  return strip_eos(response) == answer(prompt) ? 1.0 : 0.0;
}

SampleMetrics ArithTask::sample_metrics(const std::vector<std::string>& prompts,
                                        const std::vector<std::string>& responses) const {
  RLFT_CHECK(prompts.size() == responses.size(), "arith: ", prompts.size(), " prompts but ",
             responses.size(), " responses");
  double hits = 0;
  for (size_t i = 0; i < prompts.size(); ++i) hits += score(prompts[i], responses[i]);
  return {{"exact_match", prompts.empty() ? 0.0 : hits / double(prompts.size())}};
}

}  // namespace rlft::llm
