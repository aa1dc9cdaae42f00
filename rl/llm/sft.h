// Pretraining and supervised fine-tuning (SFT) of a GPT on an LM task — step 1 of the RLHF
// pipeline (seed document: SFT → reward model → PPO; InstructGPT, Ouyang et al. 2022).
//
// Objective: next-token cross-entropy over the sequences  BOS prompt response [EOS]
//   pretrain:  L = −(1/N) Σ_{all tokens t ≥ 1} log p_θ(x_t | x_<t)
//   sft:       L = −(1/N) Σ_{response tokens t} log p_θ(x_t | x_<t)   (prompt targets are
//              ignore_index, so N counts response tokens and EOS only)
// Optimiser: AdamW (β = 0.9, 0.99; decoupled weight decay 0.1), learning rate with linear warmup
// then cosine decay to min_lr_ratio·lr, global gradient-norm clipping at 1.0.
//
// Gradient accumulation (--grad-accum K, Hugging Face's gradient_accumulation_steps): the step's
// `batch` sequences (its meaning unchanged) run as K micro-batches of batch/K sequences (batch
// must be divisible by K), whose gradients are summed before the one clip + AdamW step. N is
// the whole batch's count of counted targets, so micro-batch k's mean loss L_k over its N_k
// targets is weighted N_k/N (not 1/K: the N_k differ), Σ_k (N_k/N)·L_k = L, and the step is the
// full-batch step up to float rounding; peak activation memory falls by about K. The logged loss
// is the batch's L. With dropout > 0 the masks are drawn per micro-batch, so they differ from
// K = 1's (the same distribution, other draws); K may change on --resume.
//
// Every `eval_every` steps: validation loss and next-token accuracy over up to eval_examples
// validation examples, and, for tasks with sample metrics (arith exact match, reviews
// grammaticality and sentiment), greedy samples on eval_generate validation prompts.
//
// metrics.jsonl, one object per log step (every log_every steps, at each validation, at the end):
//   step               optimizer steps done
//   loss               mean training loss over the steps since the previous line
//   lr                 learning rate of the last step
//   grad_norm          global gradient norm of the last step, before clipping (also when
//                      clipping is off)
//   tokens_per_second  input positions (B·T, padding included; with --grad-accum the micro-
//                      batches' Σ B_k·T_k, each padded alone) per second of training since
//                      the previous line (validation time excluded)
//   elapsed_seconds    wall time since this invocation started
//   val_loss, val_accuracy           at validation steps: cross-entropy per counted target and
//                                    argmax next-token accuracy on validation examples
//   val_exact_match, val_grammatical, val_sentiment   the task's sample metrics (task.h)
//
// A run writes runs/<name>/: config.json, metrics.jsonl (one object per log step), loss.svg,
// and checkpoint.safetensors (model + AdamW state + model config, tokenizer and run config
// in the metadata; lm.h). --resume continues from the checkpoint: the batch at step s and the
// dropout stream are pure functions of (seed, s), so a resumed run reproduces the losses of an
// uninterrupted one exactly on the CPU (tests/rl/test_sft.cpp).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "engine/json.h"
#include "rl/llm/tasks/task.h"

namespace rlft::models {
class GPT;
class Tokenizer;
}  // namespace rlft::models

namespace rlft::llm {

struct SFTConfig {
  // ---- what to learn
  std::string mode = "sft";        // pretrain: loss on prompt and response; sft: response only
  TaskConfig task;                 // task and its data options (task.h)
  std::string tokenizer = "char";  // char (from the task's alphabet) or byte
  // ---- model (models/gpt.h)
  std::string model = "micro";  // nano | micro | mini
  int64_t n_layer = 0;          // 0: the named model's
  int64_t n_head = 0;           // 0: the named model's
  int64_t n_embd = 0;           // 0: the named model's
  int64_t block_size = 0;       // context; 0: the named model's
  double dropout = 0.0;         // dropout probability
  bool tie_weights = true;      // LM head tied to the token embedding
  std::string init_from;        // start from this run's (or checkpoint's) weights
  // ---- optimisation
  int64_t steps = 3000;       // optimizer steps
  int64_t batch = 64;         // sequences per optimizer step (B)
  int64_t grad_accum = 1;     // micro-batches per step (B/K sequences each), gradients summed
  double lr = 1e-3;           // peak learning rate
  double min_lr_ratio = 0.1;  // cosine floor as a fraction of lr
  int64_t warmup = 100;       // linear warmup steps
  double weight_decay = 0.1;  // AdamW decoupled weight decay
  double beta1 = 0.9;         // AdamW β1
  double beta2 = 0.99;        // AdamW β2
  double grad_clip = 1.0;     // max global gradient norm (0: off)
  // ---- evaluation, logging, checkpoints
  int64_t log_every = 50;       // a progress line and a metrics.jsonl object every this many steps
  int64_t eval_every = 500;     // validation every this many steps (and at the end)
  int64_t eval_examples = 500;  // validation examples for loss and accuracy
  int64_t eval_generate = 200;  // validation prompts decoded greedily for task metrics (0: off)
  int64_t checkpoint_every = 1000;  // checkpoint every this many steps (and at the end)
  // ---- run
  std::string out_dir = "runs";  // parent of the run directory
  std::string name;              // run name; empty: <task>-<mode>-<model>
  uint64_t seed = 0;             // initialisation, batches and dropout
  std::string device = "cpu";    // cpu, or cuda[:N]: model, batches and update on that GPU
  bool resume = false;           // continue runs/<name> from its checkpoint
  int64_t stop_after = 0;  // stop after this many steps of this invocation (0: run to --steps)
  // Stop at the first validation whose greedy exact match (tasks with a verifier) reaches this
  // (0: off). The checkpoint is written at that step. A target rather than a step count makes
  // "a model at about X% accuracy" independent of the arithmetic's last bits: the nano arith
  // curve is steep, and the same step count lands tens of points apart across builds.
  double stop_at_exact_match = 0;
  bool quiet = false;  // no progress lines on stdout
};

json::Value to_json(const SFTConfig& cfg);
SFTConfig sft_config_from_json(const json::Value& v);  // missing keys keep their defaults
// The same, an error prefixed with `source` (a checkpoint's "<file>: metadata run_config").
SFTConfig sft_config_from_json(const json::Value& v, const std::string& source);

// What one invocation did. A resumed run (--resume) starts at start_step, so this invocation
// ran step − start_step steps (losses.size()) in `seconds`; `step` is the whole run's count.
struct SFTResult {
  std::string run_dir;
  int64_t start_step = 0;      // the step this invocation started at (0, or the checkpoint's)
  int64_t step = 0;            // optimizer steps done in total (the run's step at the end)
  std::vector<double> losses;  // training loss of each step run by this invocation
  double val_loss = 0;         // last validation
  double val_accuracy = 0;     // next-token accuracy on counted targets
  SampleMetrics val_metrics;   // task sample metrics of the last validation
  bool validated = false;      // a validation ran in this invocation (false: the fields above
                               // are unset: --stop-after before one, or nothing left to run)
  double seconds = 0;          // wall time of this invocation (its step − start_step steps)
};

SFTResult train_sft(const SFTConfig& cfg);

// One optimizer step's gradient (train_sft's step, before clipping and AdamW).
struct SFTGradient {
  double loss = 0;        // the batch's loss L: mean cross-entropy over its counted targets
  int64_t tokens = 0;     // N, the counted targets of the whole batch
  int64_t positions = 0;  // input positions run, Σ_k B_k·T_k (each micro-batch padded alone)
};
// Adds to the parameters' gradients (not zeroed first) the gradient of the loss of `examples`
// (every token, or the response tokens only), computed as `grad_accum` micro-batches of
// examples.size()/grad_accum consecutive examples, each loss weighted N_k/N (header comment);
// a micro-batch with no counted target is skipped. grad_accum 1 is one full-batch pass.
SFTGradient sft_gradient(models::GPT& model, const models::Tokenizer& tok,
                         const std::vector<const Example*>& examples, bool response_only,
                         int64_t grad_accum = 1);

// Named SFT settings for `rlft lm sft --preset NAME` (flags given after it still override).
//   arith-rl-init: the shared starting checkpoint of the RL-from-verifiable-reward issues
//     (docs/group_rl.md): nano GPT on arith (2-digit + and −), stopped deliberately early, at
//     the first validation (every 100 steps, 200 prompts) with greedy exact match ≥ 0.35, so
//     RL has room to show a gain. Run name "arith-rl-init".
// An unknown name is an rlft::Error listing the known ones.
SFTConfig sft_preset(const std::string& name);

// The run name when --name is not given: "<task>-<mode>-<model>" (e.g. "arith-sft-micro").
std::string default_sft_run_name(const SFTConfig& config);
const std::vector<std::string>& sft_preset_names();

}  // namespace rlft::llm
