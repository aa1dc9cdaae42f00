// Shared parts of the LM tasks (see task.h) and the task factory.
#include "rl/llm/tasks/task.h"

#include <optional>
#include <set>

#include "engine/error.h"
#include "engine/fs.h"
#include "engine/rng.h"
#include "rl/llm/tasks/arith.h"
#include "rl/llm/tasks/jsonl.h"
#include "rl/llm/tasks/reviews.h"
#include "rl/llm/tasks/text.h"

namespace rlft::llm {

const char* split_name(Split s) {
  switch (s) {
    case Split::train:
      return "train";
    case Split::validation:
      return "validation";
    case Split::test:
      return "test";
  }
  return "?";
}

Split parse_split(const std::string& name) {
  if (name == "train") return Split::train;
  if (name == "validation" || name == "val") return Split::validation;
  if (name == "test") return Split::test;
  throw Error(str("unknown split '", name, "' (expected train, validation or test)"));
}

std::vector<std::string> Task::prompts(Split split) const {
  std::vector<std::string> out;
  std::set<std::string> seen;
  for (const Example& e : examples(split))
    if (seen.insert(e.prompt).second) out.push_back(e.prompt);
  return out;
}

double Task::score(const std::string&, const std::string&) const {
  throw Error(str("task ", name(), " has no verifier (arith and jsonl have one)"));
}

SampleMetrics Task::sample_metrics(const std::vector<std::string>&,
                                   const std::vector<std::string>&) const {
  return {};
}

std::unique_ptr<Task> make_task(const TaskConfig& cfg) {
  if (cfg.task == "arith") return std::make_unique<ArithTask>(cfg);
  if (cfg.task == "reviews") return std::make_unique<ReviewsTask>(cfg);
  if (cfg.task == "text") return std::make_unique<TextTask>(cfg);
  if (cfg.task == "jsonl") return std::make_unique<JsonlTask>(cfg);
  throw Error(str("unknown task '", cfg.task, "' (expected arith, reviews, text or jsonl)"));
}

namespace {

// The task keys found in the data (task.h): each key's TaskConfig member, and the Task's
// value of it as read.
struct FoundKey {
  std::string TaskConfig::*member;
  std::string (Task::*found)() const;
};
const FoundKey kFoundKeys[] = {{&TaskConfig::data_fingerprint, &Task::data_fingerprint}};

}  // namespace

std::unique_ptr<Task> make_run_task(TaskConfig& c, const std::string& resumed_run_dir) {
  std::optional<TaskConfig> was;  // a resumed run's record
  const std::string recorded = resumed_run_dir + "/config.json";
  if (!resumed_run_dir.empty() && fs::exists(recorded)) {
    const json::Value v = json::parse(fs::read_file(recorded), recorded);
    if (v.is_object()) was = task_config_from_json(v);
  }
  // The data file is recorded from the root, so `lm eval`, `lm sample`, `lm grpo --init` and
  // `--resume` find it from any working directory. A run recorded with the path as given (before
  // 2026-11-27) and resumed with that path keeps it, so its settings still compare equal.
  if (!c.data.empty() && !(was && was->data == c.data)) c.data = fs::absolute_path(c.data);
  if (was && was->task == c.task && was->data == c.data)
    for (const FoundKey& k : kFoundKeys)
      if ((c.*k.member).empty()) c.*k.member = (*was).*k.member;
  std::unique_ptr<Task> task = make_task(c);
  for (const FoundKey& k : kFoundKeys)
    if ((c.*k.member).empty()) c.*k.member = ((*task).*k.found)();
  return task;
}

std::string strip_eos(const std::string& response) {
  static const std::string kEos = "<|eos|>";
  if (response.size() >= kEos.size() &&
      response.compare(response.size() - kEos.size(), kEos.size(), kEos) == 0)
    return response.substr(0, response.size() - kEos.size());
  return response;
}

double hash_unit(uint64_t seed, const std::string& key) {
  // FNV-1a's loop, then one Philox block keyed by the seed. The offset basis is FNV's
  // 14695981039346656037 short of its last digit, as it has always been: it fixes every split
  // (reviews openings, jsonl prompts) a recorded run was trained on, so it stays.
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : key) h = (h ^ c) * 1099511628211ull;
  return hash_unit(seed, h);
}

double hash_unit(uint64_t seed, uint64_t key) {
  const auto blk = Philox4x32::generate(seed, key, 0x5eed);
  return Philox4x32::to_unit_double(blk.v[0], blk.v[1]);
}

void set_task_keys(json::Value& v, const TaskConfig& c) {
  v.set("task", c.task);
  v.set("data_seed", int64_t(c.data_seed));
  v.set("ops", c.ops);
  v.set("digits", c.digits);
  v.set("train_size", c.train_size);
  v.set("eval_size", c.eval_size);
  v.set("data", c.data);
  v.set("chunk", c.chunk);
  // Only jsonl runs have the key, so the config.json of every other run reads as before (and a
  // resume compares the same keys).
  if (c.task == "jsonl") v.set("data_fingerprint", c.data_fingerprint);
}

TaskConfig task_config_from_json(const json::Value& v) {
  TaskConfig c;
  c.task = v.get_or("task", c.task);
  c.data_seed = v.get_or("data_seed", c.data_seed);
  c.ops = v.get_or("ops", c.ops);
  c.digits = v.get_or("digits", c.digits);
  c.train_size = v.get_or("train_size", c.train_size);
  c.eval_size = v.get_or("eval_size", c.eval_size);
  c.data = v.get_or("data", c.data);
  c.chunk = v.get_or("chunk", c.chunk);
  c.data_fingerprint = v.get_or("data_fingerprint", c.data_fingerprint);
  return c;
}

}  // namespace rlft::llm
