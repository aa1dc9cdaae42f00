// Group-relative RL with verifiable rewards (ALGORITHMS.md §7–11): one rollout / update loop,
// pluggable objectives (rl/llm/objectives/*.h: grpo, dr_grpo, dapo, gspo, gspo_token, dcpo,
// rloo). The loop is the same for all of them; an objective says only
//   (1) how the rewards R_1..G of one prompt's group become advantages A_1..G, and
//   (2) how the per-token loss is built: ratio level (token / sequence / sequence_token), clip
//       bounds (scalar eps_low/eps_high or DCPO's per-token bounds), aggregation, and where the
//       KL to the reference goes (k3 in the loss with β, k1 summed into the reward, or nowhere).
//
// One update step (rollout → rewards → advantages → minibatch updates → log):
//   1. rollout: `prompts` distinct train prompts, G responses each, sampled from the current
//      policy at temperature 1 (models/generate.h). Rewards R = task verifier (arith exact match:
//      reward_correct / reward_wrong), + format_reward when the response is an integer ended by
//      EOS, + DAPO's overlong shaping when on, − kl_reward_coef·Σ_t(old_logp − ref_logp) (RLOO).
//      DAPO's dynamic sampling drops groups whose rewards are all equal and samples new prompts
//      until `prompts` groups are kept or max_extra_rounds extra rounds have been drawn.
//   2. old_logp (π_old = the policy that sampled) and ref_logp (frozen copy of the initial model)
//      by full forward passes without gradient.
//   3. the B = prompts·G sequences are shuffled and cut into `minibatches` parts, for `epochs`
//      passes; each part is one AdamW step on
//         loss = ratio_clip(logp, old_logp, A, response_mask, level, bounds, aggregation)
//              + β · aggregate(k3(logp − ref_logp))          (same aggregation as the surrogate)
//      so every step after the first is off-policy (ratios ≠ 1). With grad_accum K a minibatch
//      is run as K micro-batches whose weighted losses (micro_batch_weight) sum to its loss, so
//      their accumulated gradients equal its gradient and the AdamW step is the same.
//
// Checkpoints (checkpoint.safetensors, every checkpoint_every steps and at the end) hold the
// weights, AdamW's state, the step, and the loop's state: the counters of its random streams
// (each realigned to a Philox block at the start of every step), the current pass over the
// prompts, the generation totals and the objective's state (DCPO's reward history). --resume
// continues from there with the settings of config.json and reproduces, on the CPU, exactly the
// run that went straight through (tests/rl/test_group_rl.cpp). It refuses an --init checkpoint
// changed since the run started (config.json's init_fingerprint; lm.h fingerprint_inputs).
//
// metrics.jsonl, one object per update step (names fixed):
//   step, reward_mean (verifier + format + overlong reward, before any KL term; every sample
//   generated this step), accuracy (verifier exact match),
//   zero_adv_groups (fraction of groups whose advantages are all 0), response_length_mean/max
//   (tokens, EOS included), entropy (mean over response tokens, under π_old at τ), loss (mean over
//   the minibatch steps), clip_frac_low / clip_frac_high (token-weighted means of ratio_clip's
//   statistics over the steps), dcpo_clipped (fraction of tokens outside DCPO's bounds, DCPO
//   only), kl_ref (Σ_t k1(old_logp − ref_logp) per sequence, mean), kl_ref_k3 (token mean of k3),
//   approx_kl_k3 and approx_kl_k1 (old vs new, token-weighted over the steps),
//   seq_ratio_mean/min/max (s_i = exp(mean_t log-ratio) over every sequence of every minibatch
//   step: GSPO's ratio), grad_norm (global gradient norm of the step's last optimizer step, before
//   clipping, also when clipping is off; absent when the step made no update: dynamic sampling kept
//   no group), extra_rounds and groups_dropped (dynamic sampling), groups (groups trained on),
//   generated_samples and generated_tokens (cumulative over the run: every response sampled,
//   dynamic sampling's extra rounds included; tokens with EOS — the generation budget),
//   updates (optimizer steps this step), lr, time_rollout / time_scoring / time_update (seconds
//   of the step's three phases), samples_per_second, elapsed_seconds; at eval steps
//   eval_accuracy (greedy, eval_prompts validation prompts), and on step 1 eval_accuracy_start
//   (the same before any update).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "engine/json.h"
#include "engine/ops.h"
#include "rl/llm/tasks/task.h"

namespace rlft::models {
class GPT;
}

namespace rlft::llm {

// Where the KL to the reference policy enters (ALGORITHMS.md §0: never both).
enum class KLPlacement {
  none,       // DAPO, Dr. GRPO, GSPO, DCPO
  loss_k3,    // GRPO: + β · aggregate(k3) in the loss
  reward_k1,  // RLOO: R_i −= β · Σ_t (old_logp − ref_logp)
};

// Every setting of a run. The defaults here are GRPO's; group_rl_defaults(algo) gives each
// algorithm's own (its objective file sets them). Every field is a CLI flag (--group-size …) and
// a key of config.json.
struct GroupRLConfig {
  std::string algo = "grpo";  // grpo | dr-grpo | dapo | gspo | gspo-token | dcpo | rloo
  std::string init;           // SFT run (or checkpoint) to start from (required)
  // ---- task (defaults: the init run's task options)
  TaskConfig task;            // filled from the init run's config.json
  int64_t train_prompts = 0;  // use only the first N train prompts (0: all)
  // ---- rollout
  int64_t prompts = 16;         // distinct prompts per update step
  int64_t group_size = 8;       // G responses per prompt
  int64_t max_new_tokens = 0;   // response budget L_max (0: from the task's responses)
  double temperature = 1.0;     // sampling temperature (the papers: 1)
  double reward_correct = 1.0;  // verifier reward of a correct answer (DAPO: +1)
  double reward_wrong = 0.0;    // … of a wrong one (DAPO: −1)
  double format_reward = 0.0;   // added when the response is an integer followed by EOS
  // ---- objective (set per algorithm by group_rl_defaults)
  double epsilon = 0.2;               // lower clip range eps_low (ratio ≥ 1 − eps)
  double epsilon_high = 0.2;          // upper clip range eps_high (ratio ≤ 1 + eps_high)
  double dual_clip = 0.0;             // dual-clip c (> 1; 0: off)
  std::string ratio_level = "token";  // token | sequence | sequence_token
  std::string aggregation = "seq_mean_token_mean";  // see kernels/ratio_clip.h
  double beta = 0.04;             // KL coefficient (loss k3 for GRPO, reward k1 for RLOO)
  std::string kl = "loss_k3";     // none | loss_k3 | reward_k1
  bool scale_by_std = true;       // divide group advantages by std + 1e-6 (Dr. GRPO: false)
  bool dynamic_sampling = false;  // DAPO: drop all-equal groups, resample
  int64_t max_extra_rounds = 3;   // DAPO: cap on extra generation rounds per step
  bool overlong_shaping = false;  // DAPO: soft overlong punishment
  int64_t overlong_max = 0;       // L_max of the shaping (0: max_new_tokens, the paper's L_max =
                                  // the generation budget: a response that hits it gets −1)
  int64_t overlong_cache = 2;  // L_cache (tokens; the paper: 4096 of 20480)
  double dcpo_r_max = 10.0;    // DCPO: cap on the dynamic bounds
  // ---- optimisation
  int64_t steps = 50;       // update steps (rollouts)
  int64_t minibatches = 4;  // optimizer steps per rollout per epoch
  int64_t epochs = 1;       // passes over each rollout
  int64_t grad_accum = 1;   // micro-batches per minibatch: gradients summed, then one step
  // AdamW peak learning rate. 5e-5 decayed linearly: from the arith-rl-init start a constant
  // 1e-5 plateaus after ~50 steps, 1e-4 and above lose greedy accuracy, and a constant 3e-5
  // leaves the final checkpoint's greedy accuracy swinging by ±5 points from step to step
  // (docs/group_rl.md); the papers' 1e-6 is for billion-parameter models.
  double lr = 5e-5;
  // constant (the GRPO and DAPO papers), linear or cosine decay over `steps` to
  // min_lr_ratio·lr (linear is TRL's GRPOTrainer default, from transformers' Trainer).
  std::string lr_schedule = "linear";
  double min_lr_ratio = 0.0;
  double weight_decay = 0.0;  // AdamW decoupled weight decay of matrices and embeddings
  double beta1 = 0.9;         // AdamW β1
  double beta2 = 0.99;        // AdamW β2
  double grad_clip = 1.0;     // max global gradient norm (0: off)
  // ---- evaluation, logging, run
  int64_t eval_every =
      10;  // greedy accuracy on validation prompts every N steps (0: only at the end)
  int64_t eval_prompts = 200;  // validation prompts for eval_accuracy (0: no evaluation)
  std::string out_dir = "runs";
  std::string name;                // run name (default <algo>-<init run name>)
  uint64_t seed = 0;               // prompt order, sampling, minibatch shuffles
  int64_t checkpoint_every = 100;  // training checkpoint (with AdamW state) every N steps
  bool resume = false;             // continue runs/<name> from its checkpoint
  int64_t stop_after = 0;          // stop after N steps of this invocation (0: run to --steps)
  bool quiet = false;              // no progress lines
  // cpu, or cuda[:N]: policy, reference and updates on that GPU (prompts, rewards and
  // advantages are computed on the host). May differ on --resume.
  std::string device = "cpu";
};

json::Value to_json(const GroupRLConfig& c);
// Every setting checked (finite numbers, meaningful ranges, known names), each error naming its
// CLI option; train_group_rl calls it before it reads or writes anything, and
// `rlft experiment verifiable` before it starts any job.
void check_group_rl_config(const GroupRLConfig& c);
// A config with `algo`'s defaults (the objective file's `<algo>_defaults`); unknown algo: error.
GroupRLConfig group_rl_defaults(const std::string& algo);
// The run name when --name is not given: "<algo>-<the --init run's name>" (e.g. "grpo-arith-sft").
std::string default_group_rl_run_name(const GroupRLConfig& config);
const std::vector<std::string>& group_rl_algorithms();

// ---- the objective interface -----------------------------------------------------------------
// How the per-token loss is built (everything ratio_clip needs, plus the KL).
struct LossSettings {
  kernels::RatioLevel level = kernels::RatioLevel::token;
  kernels::Aggregation aggregation = kernels::Aggregation::seq_mean_token_mean;
  double eps_low = 0.2, eps_high = 0.2, dual_clip = 0.0;
  bool dcpo_bounds = false;  // per-token bounds from q = exp(old_logp) (dcpo.h)
  double dcpo_r_max = 10.0;
  double normalizer = 0.0;  // constant_norm: L_max; 0 otherwise (from the batch)
  KLPlacement kl = KLPlacement::none;
  double beta = 0.0;
};

class Objective {
 public:
  virtual ~Objective() = default;
  virtual std::string name() const = 0;
  // A_1..G of one group from its rewards R_1..G; prompt_id is stable across steps (DCPO).
  virtual std::vector<double> advantages(const std::vector<double>& rewards,
                                         uint64_t prompt_id) = 0;
  // State carried across steps (DCPO's reward history), for checkpoints; null when stateless.
  virtual json::Value state() const { return json::Value(); }
  virtual void load_state(const json::Value&) {}
  LossSettings loss;
};
std::unique_ptr<Objective> make_objective(const GroupRLConfig& cfg);

// The loss of one minibatch: ratio_clip with the objective's level, bounds (DCPO's from old_lp)
// and aggregation, plus β·aggregate(k3(logp − ref_logp)) when loss.kl is loss_k3 (ref_log_probs
// may be undefined otherwise). log_probs, old_log_probs, ref_log_probs, mask [B, T];
// advantages [B] (one per response).
RatioClipResult policy_loss(const LossSettings& loss, const Tensor& log_probs,
                            const Tensor& old_log_probs, const Tensor& ref_log_probs,
                            const Tensor& advantages, const Tensor& mask);

// Factor that makes the loss of a micro-batch (rows of a minibatch, `micro_tokens` of its
// `tokens` response tokens) a summand of the minibatch's loss, so that K micro-batch backward
// passes accumulate exactly the minibatch's gradient: the aggregations that divide by the
// batch's sequence count (seq_mean_*, constant_norm) get micro_rows / rows, token_mean gets
// micro_tokens / tokens, only_token_mean (no batch normalizer) and a fixed normalizer get 1.
double micro_batch_weight(const LossSettings& loss, int64_t micro_rows, int64_t rows,
                          double micro_tokens, double tokens);

// ---- pieces shared by the objectives (hand-tested in tests/rl/test_group_rl.cpp) ----------------
kernels::Aggregation parse_aggregation(const std::string& s);
kernels::RatioLevel parse_ratio_level(const std::string& s);
KLPlacement parse_kl(const std::string& s);

// k3 = exp(−d) − 1 + d with d = logp − ref_logp, elementwise [B, T] (differentiable in logp).
Tensor k3_kl(const Tensor& log_probs, const Tensor& ref_log_probs);
// The sampled KL of each response to the reference, from the rollout's log-probs (no gradient):
// k1[b] = Σ_t m·(old_logp − ref_logp) (RLOO's reward term, and the logged kl_ref as its mean
// over responses), and k3_token_mean = Σ m·(exp(−d) − 1 + d) / Σ m with d = old − ref (kl_ref_k3;
// 0 without a response token). old_log_probs, ref_log_probs, mask [B, T].
struct ReferenceKL {
  std::vector<double> k1;
  double k3_token_mean = 0;
};
ReferenceKL reference_kl(const Tensor& old_log_probs, const Tensor& ref_log_probs,
                         const Tensor& mask);
// Aggregates a per-token loss [B, T] under `mask` exactly as ratio_clip does (table in
// kernels/ratio_clip.h); normalizer 0 = from the batch.
Tensor aggregate(const Tensor& per_token, const Tensor& mask, kernels::Aggregation mode,
                 double normalizer = 0.0);

// The policy's log-probs [B, T] at temperature τ (as models::sequence_log_probs: column 0 is 0)
// and the entropy [B, T] of its next-token distributions softmax(logits/τ) (0 at column 0), from
// one forward pass.
std::pair<Tensor, Tensor> log_probs_and_entropy(models::GPT& model, const Tensor& tokens,
                                                const Tensor& attention_mask,
                                                double temperature = 1.0);

// ---- the loop ----------------------------------------------------------------------------------
// A resumed run (--resume) starts at start_step: this invocation ran steps − start_step update
// steps in `seconds`. The curves and evaluations cover the whole run (a resumed run's earlier
// ones are read back from metrics.jsonl).
struct GroupRLResult {
  std::string run_dir;
  int64_t start_step = 0;           // the step this invocation started at (0, or the checkpoint's)
  int64_t steps = 0;                // update steps done in total (the run's step at the end)
  std::vector<double> reward_mean;  // per step of the whole run, steps 1..steps
  std::vector<double> accuracy;     // per step (sampled responses on the training prompts)
  // Greedy accuracy on the validation prompts (-1: not evaluated): before any update, and at the
  // run's latest evaluation, made after step eval_step (< steps when --stop-after stopped the
  // run between two evaluations).
  double eval_accuracy_start = -1, eval_accuracy_end = -1;
  int64_t eval_step = 0;
  double seconds = 0;  // wall time of this invocation
};
GroupRLResult train_group_rl(const GroupRLConfig& cfg);

}  // namespace rlft::llm
