// LM tasks: deterministic data sets for the toy language models, with train / validation /
// test splits that never overlap, and the metrics their samples are judged by.
//
//   arith    "37+45=" → "82": integer arithmetic with an exact-match verifier (the verifiable
//            reward of GRPO / DAPO / GSPO / DCPO)                        rl/llm/tasks/arith.h
//   reviews  "review: the acting was" → " superb and the plot is dull.": reviews from a small
//            grammar, a hidden ground-truth sentiment scorer p(positive | text) and a parser
//            (the DPO paper's IMDb setting in miniature)                 rl/llm/tasks/reviews.h
//   text     any UTF-8 file for character-level modelling, split by position  rl/llm/tasks/text.h
//   jsonl    the user's own {"prompt", "response"} JSONL file, split by prompt, with an
//            exact-match verifier against the file's responses (SFT, then GRPO …)
//                                                                        rl/llm/tasks/jsonl.h
//
// Everything is a pure function of TaskConfig (its seed included, and for text and jsonl the
// --data file's contents): no downloads, no clock.
// An example is a prompt and a response; pretraining learns prompt + response, SFT learns the
// response given the prompt. The sequence a model sees is  BOS prompt response [EOS].
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "engine/json.h"

namespace rlft::llm {

enum class Split { train, validation, test };
const char* split_name(Split s);
Split parse_split(const std::string& name);  // "train", "validation" (or "val"), "test"

struct Example {
  std::string prompt;    // conditioning text (may be empty)
  std::string response;  // what follows the prompt
  bool eos = true;       // the sequence ends after the response (false: a cut of a longer text)
};

struct TaskConfig {
  std::string task = "arith";  // arith | reviews | text | jsonl
  uint64_t data_seed = 1234;   // fixes the examples and the split (not the training seed)
  std::string ops = "+-";      // arith: operators, any of + - * (written as ASCII in the text)
  int64_t digits = 2;          // arith: operands uniform in [0, 10^digits) (1 to 3)
  int64_t train_size = 20000;  // arith, reviews, jsonl: at most this many train examples
  int64_t eval_size = 500;     // arith, reviews, jsonl: examples in each of validation and test
  std::string data;            // text: path of a UTF-8 file; jsonl: of a prompt/response JSONL
  // jsonl: the --data file's fingerprint (jsonl.h) as a run recorded it; "" (a new run, or a run
  // from before fingerprints) is not checked, anything else must match the file's.
  std::string data_fingerprint;
  int64_t chunk = 127;  // text: characters per example (context − 1 leaves room for BOS)
};

// TaskConfig as keys of a run's config.json (named like the CLI flags, '_' for '-'), so that
// every LM run (SFT, RLHF, group RL) records its task the same way and `rlft lm eval` finds it.
// A jsonl task also gets "data_fingerprint": c.data_fingerprint (a trainer fills it with
// make_run_task, below).
void set_task_keys(json::Value& obj, const TaskConfig& c);
// Reads those keys; absent keys keep their defaults (no "data_fingerprint": "", not checked).
TaskConfig task_config_from_json(const json::Value& v);

// Named metrics of a batch of samples ("exact_match", "grammatical", …), each a mean.
using SampleMetrics = std::map<std::string, double>;

class Task {
 public:
  virtual ~Task() = default;
  virtual std::string name() const = 0;
  // Every character an example or a prompt of this task can contain (char tokenizer corpus).
  virtual std::string alphabet() const = 0;
  virtual const std::vector<Example>& examples(Split split) const = 0;
  // The distinct prompts of a split, for sampling and RL (default: the examples' prompts).
  virtual std::vector<std::string> prompts(Split split) const;
  // Verifiable reward in [0, 1] of `response` (EOS text "<|eos|>" allowed at its end) to
  // `prompt`; tasks without a verifier throw.
  virtual bool has_verifier() const { return false; }
  virtual double score(const std::string& prompt, const std::string& response) const;
  // Metrics of sampled responses (text after the prompt, as decoded with specials shown);
  // empty when the task has none.
  virtual SampleMetrics sample_metrics(const std::vector<std::string>& prompts,
                                       const std::vector<std::string>& responses) const;
  // The fingerprint of the data file the task was read from (jsonl), "" for generated tasks.
  virtual std::string data_fingerprint() const { return {}; }
};

std::unique_ptr<Task> make_task(const TaskConfig& cfg);

// Some task keys are found in the data, not set by an option: today the jsonl file's
// "data_fingerprint". A run records them with the others (set_task_keys, task_config_from_json);
// an LM trainer that records its task (SFT, group RL) gets its task from make_run_task, which
// fills them. A future one is a TaskConfig string and a Task accessor, recorded like the others
// and listed in task.cpp's kFoundKeys: no trainer changes.
//
// make_task(c), with c's empty found keys filled: for a resumed run (`resumed_run_dir` its
// directory; "" for a fresh run), first from the run's own config.json when it records the same
// task on the same data (its "task" and "data" are c's), since no option gives them, so the data
// is checked against them (a changed file: "<data>: changed since the run was trained: …");
// then, those still empty, from the task as read, for the run to record. No config.json, or
// one of another task or file, gives nothing (the resume's own checks name what differs).
// A relative c.data becomes absolute (fs::absolute_path), unless the resumed run recorded it
// as it is (a run from before 2026-11-27).
std::unique_ptr<Task> make_run_task(TaskConfig& c, const std::string& resumed_run_dir);

// `response` without one trailing "<|eos|>" (and with anything after it untouched).
std::string strip_eos(const std::string& response);

// A uniform double in [0, 1) that is a pure function of (seed, key): for split assignment.
double hash_unit(uint64_t seed, const std::string& key);
double hash_unit(uint64_t seed, uint64_t key);

}  // namespace rlft::llm
