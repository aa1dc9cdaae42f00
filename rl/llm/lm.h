// What every LM algorithm shares: turning task examples into token batches, the checkpoint
// format of a GPT run (model + tokenizer + config in the metadata), and sampling a model on a
// task's prompts to measure it.
//
// Sequence format: BOS prompt response [EOS]. Training batches are right-padded (positions
// then need no mask); prompt batches for generation are left-padded so that every row's next
// token comes at the same index (models/generate.h).
//
// Checkpoint metadata (all values are strings, as safetensors requires; see docs/checkpoints.md):
//   "format"        "rlft.gpt.v1"
//   "model_config"  GPTConfig as JSON
//   "tokenizer"     Tokenizer as JSON
//   "run_config"    the run's config.json (the settings it was trained with)
//   "step"          optimizer steps taken
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "engine/checkpoint.h"
#include "models/generate.h"
#include "models/gpt.h"
#include "models/tokenizer.h"
#include "rl/llm/tasks/task.h"

namespace rlft::llm {

constexpr const char* kCheckpointFormat = "rlft.gpt.v1";
constexpr int64_t kIgnoreIndex = -100;  // cross_entropy's ignore_index for unlearned targets

// BOS prompt response [EOS] as ids; *prompt_tokens (when given) receives 1 + |prompt|.
std::vector<int64_t> encode_example(const models::Tokenizer& tok, const Example& e,
                                    int64_t* prompt_tokens = nullptr);

struct LMBatch {
  Tensor inputs;  // [B, T] int64: sequence[:-1], right-padded with PAD
  Tensor
      targets;  // [B·T] int64: sequence[1:], kIgnoreIndex at padding (and at prompt tokens for SFT)
  int64_t tokens = 0;  // targets that count
};
// Sequences longer than max_len + 1 tokens are cut to it (the model's context: block_size).
// response_only: learn only the response (and EOS), not the prompt.
LMBatch make_lm_batch(const models::Tokenizer& tok, const std::vector<const Example*>& examples,
                      int64_t max_len, bool response_only);

struct PromptBatch {
  Tensor tokens;  // [B, Tp] int64: BOS prompt, left-padded with PAD
  Tensor mask;    // [B, Tp] float32: 1 on real tokens
};
PromptBatch make_prompt_batch(const models::Tokenizer& tok,
                              const std::vector<std::string>& prompts);

// A model as loaded from a run: the network, its tokenizer and its metadata.
struct LoadedModel {
  std::shared_ptr<models::GPT> model;
  models::Tokenizer tokenizer;
  json::Value run_config;  // null when the checkpoint has none
  int64_t step = 0;
  std::string path;  // the checkpoint file
};

// The checkpoint of a run: `path` is a run directory (its checkpoint.safetensors) or a file.
std::string checkpoint_path(const std::string& path);
// Metadata for save_checkpoint.
Metadata checkpoint_metadata(const models::GPTConfig& cfg, const models::Tokenizer& tok,
                             const json::Value& run_config, int64_t step);
// Builds the model from the metadata and loads its weights onto `device` (checked by the
// caller, e.g. rl::resolve_device); a file without the metadata is an error naming what is
// missing.
LoadedModel load_model(const std::string& path, Device device = Device::cpu());
// load_model for a model that must be a policy (a language model: --init of SFT/DPO/RM/prefs,
// --run of sample/eval): a reward model or a critic (a checkpoint with a reward or value head)
// is an error naming the path.
LoadedModel load_policy(const std::string& path, Device device = Device::cpu());
// load_model for a reward model: a checkpoint without a reward head is an error naming the path.
LoadedModel load_reward_model(const std::string& path, Device device = Device::cpu());
// "n_layer 4, n_head 4, n_embd 128, block_size 128, vocab_size 29, tie_weights true, …": the
// sizes of a model, for errors that say how two models differ.
std::string describe_model(const models::GPTConfig& cfg);

// For --resume: the model_config and tokenizer in a training checkpoint's metadata (`meta`, read
// from `ckpt`) are those of the model the run goes on with (`cfg`, `tok`, read from `source`,
// e.g. "--init runs/sft"). Tensor shapes alone let another model of the same sizes (another
// n_head, dropout, or the same number of other symbols) through. A missing key, or a field that
// differs, is an error naming the file, the field and both values.
void check_checkpoint_model(const Metadata& meta, const std::string& ckpt,
                            const models::GPTConfig& cfg, const models::Tokenizer& tok,
                            const std::string& source);
// For --resume: a trainer's training checkpoint read once and checked before its weights load
// into `model` and its optimizer state into `opt`: its metadata holds `state_key` (the trainer's
// loop state, when given; else the error is "<ckpt>: <not_ours>"), then its model_config and
// tokenizer are `model`'s and `tok`'s (check_checkpoint_model, `source` naming where those come
// from). Returns the metadata, whose loop state the caller reads.
Metadata load_training_checkpoint(const std::string& ckpt, models::GPT& model,
                                  optim::Optimizer& opt, const models::Tokenizer& tok,
                                  const std::string& source, const std::string& state_key = "",
                                  const std::string& not_ours = "");

// A file a run reads from another run or from disk, for its fingerprint: the option that names
// it, the path as given there, and the file read (a run's checkpoint, or the data file itself).
struct RunInput {
  std::string flag;  // "--init", "--reward-model", "--prefs"
  std::string path;  // as given: a run directory, a .safetensors file or a data file
  std::string file;  // the file whose bytes are fingerprinted
};
// A run (or its checkpoint) given as `flag`: its checkpoint_path(path) is read.
RunInput run_input(const std::string& flag, const std::string& path);
// A data file (--prefs) given as `flag`.
RunInput file_input(const std::string& flag, const std::string& path);
// The config.json key of an input's fingerprint: "--reward-model" → "reward_model_fingerprint".
std::string input_fingerprint_key(const std::string& flag);

// A resumed run goes on exactly as the uninterrupted run would only if it reads the inputs that
// run read. So a run records, in its config.json, the fingerprint of each input: data_fingerprint
// (FNV-1a 64, tasks/jsonl.h) of its file's bytes, under input_fingerprint_key(flag)
// ("init_fingerprint", "reward_model_fingerprint", "prefs_fingerprint").
//
// fingerprint_inputs returns them as an object {key: fingerprint} for record_fingerprints. A
// resume (`recorded`: its recorded_config) first compares each with the one the run recorded
// at its start; a difference is an error naming the option, the path and both ("--init
// runs/sft: changed since this run started: fingerprint X, recorded Y"). An input the run did
// not record (a run from before fingerprints) is neither checked nor returned, so it stays
// unrecorded; a fresh run or one without config.json (`recorded` null: rl::open_run names what
// is missing) records every input; a file that cannot be read is left out (the loader that
// reads it names why). Call it before the inputs are loaded (a changed input is named as such
// before it is found unfit) and before the run's first write, so a refused resume leaves the
// run as it was.
json::Value fingerprint_inputs(const std::vector<RunInput>& inputs, const json::Value& recorded);
// What a resumed run recorded at its start, read once for the two functions around it:
// <resumed_run>/config.json parsed; null for a fresh run (`resumed_run` "") or a run without
// config.json.
json::Value recorded_config(const std::string& resumed_run);
// The path a run records for an input option (`key`: its config.json key, "init", "prefs",
// "reward_model"): from the root (fs::absolute_path), so that --resume, which takes the path
// from config.json, reads the same file from any working directory, and a changed file is named
// by fingerprint_inputs with the path that was read. "" (an input not used) stays "". A run that
// recorded the path as given (before 2026-11-27) and is resumed (`recorded`: its
// recorded_config) with that path keeps it, so its settings still compare equal
// (make_run_task does the same for --data).
std::string recorded_input_path(const std::string& path, const std::string& key,
                                const json::Value& recorded);
// Sets each {key: fingerprint} in `config` (the settings config.json will hold). Call it after
// rl::open_run: the keys are no options, and its settings check does not compare them.
void record_fingerprints(json::Value& config, const json::Value& fingerprints);

// Greedy or sampled responses to `prompts`, in batches of `batch_size`; the responses are the
// decoded generated tokens (specials shown, so an emitted EOS appears as "<|eos|>").
std::vector<std::string> sample_responses(models::GPT& model, const models::Tokenizer& tok,
                                          const std::vector<std::string>& prompts,
                                          const models::SamplingConfig& sc, Generator& gen,
                                          int64_t batch_size = 64);

// Mean next-token cross-entropy (nats per counted target) and argmax accuracy over the first
// `max_examples` examples, in batches of `batch` (no gradient; eval mode; on the model's device).
struct LossStats {
  double loss = 0, accuracy = 0;
  int64_t tokens = 0;  // counted targets
};
LossStats evaluate_loss(models::GPT& model, const models::Tokenizer& tok,
                        const std::vector<Example>& examples, size_t max_examples,
                        bool response_only, int64_t batch = 64);

// Room for a response: 1.5 × the longest response (in tokens, EOS included) of `examples` + 2.
int64_t response_budget(const models::Tokenizer& tok, const std::vector<Example>& examples,
                        size_t max_examples);

// A sampling configuration bounded by the model's context and the prompts' lengths.
models::SamplingConfig clamp_to_context(models::SamplingConfig sc, const models::GPT& model,
                                        const models::Tokenizer& tok,
                                        const std::vector<std::string>& prompts);

}  // namespace rlft::llm
