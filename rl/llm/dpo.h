// Direct Preference Optimization (Rafailov et al. 2023, arXiv 2305.18290), with the cDPO
// (label smoothing) and IPO (Azar et al. 2023, arXiv 2310.12036) losses. ALGORITHMS.md §5.
//
//   h = [log π_θ(y_w|x) − log π_ref(y_w|x)] − [log π_θ(y_l|x) − log π_ref(y_l|x)]
// where each log π is the SUM of the response-token log-probs (prompt masked; EOS counted).
//   sigmoid (DPO):  L = −log σ(β·h)                                  β = 0.1
//   cdpo:           L = −(1 − ε)·log σ(β·h) − ε·log σ(−β·h)           ε = --label-smoothing
//   ipo:            L = (h − 1/(2τ))²   with τ given as --beta; h uses the summed log-ratios
//                   (the IPO paper averages per token; we keep DPO's sums so the three losses
//                   share one h)
// The loss is the mean over the pairs of a batch. π_ref is the frozen SFT model; its
// log-probs of every pair are computed once before training and cached.
// Gradient accumulation (--grad-accum K, TRL's gradient_accumulation_steps): a step's pairs (up
// to `batch`, which must be divisible by K) run as micro-batches of batch/K pairs whose gradients
// are summed before the one clip + Adam step; micro-batch k's mean loss over its n_k of the
// step's n pairs is weighted n_k/n, so the step is the full-batch step up to float rounding (an
// epoch's short last step has fewer, or a smaller last, micro-batch). The logged loss and pair
// metrics are the whole step's. Peak activation memory falls by about K. With dropout in the
// policy the masks are drawn per micro-batch (other draws than K = 1). K may change on --resume.
//
// Logged (metrics.jsonl, every log_every steps and at each evaluation):
//   loss; chosen_reward = β·(log π_θ(y_w) − log π_ref(y_w)), rejected_reward likewise (means);
//   margin = chosen_reward − rejected_reward; accuracy = fraction with margin > 0;
//   chosen_logp, rejected_logp (means of log π_θ; both falling is expected); grad_norm (the
//   global gradient norm of the logged step, before clipping, also when clipping is off);
//   step, epoch, elapsed_seconds (this invocation's wall time);
// and every eval_every steps: the same on held-out pairs (heldout_*), and, on policy samples
// for the task's validation prompts, kl = mean Σ_t (log π_θ − log π_ref) at the sampled tokens,
// ground_truth = mean p(positive | x + y) (the DPO paper's frontier axes) and response_length.
// Defaults: β 0.1, 2 epochs, batch 16 pairs, Adam lr 1e-4 (constant), grad clip 1.
//
// Resume: checkpoint.safetensors holds the policy, the Adam state and the step (written every
// checkpoint_every steps, at --stop-after — after that step's metrics row, when it has one — and
// at the end). --resume loads it, drops metrics rows logged after it, replays the seeded shuffles
// of the epochs before it (they draw from the run's generator only) and skips the batches already
// done, so a stopped-and-resumed run takes the same optimizer steps as a straight one
// (tests/rl/test_rlhf.cpp checks the weights match). It refuses a --prefs file or an --init
// checkpoint changed since the run started (config.json's prefs_fingerprint, init_fingerprint;
// lm.h fingerprint_inputs). config.json records --prefs and --init from the root
// (lm.h recorded_input_path), so a resume from another directory reads the same files. A
// checkpoint whose model_config or tokenizer is not the --init run's is refused before its
// weights are loaded (lm.h check_checkpoint_model).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "engine/json.h"
#include "engine/tensor.h"
#include "rl/llm/rlhf_data.h"

namespace rlft::llm {

enum class DPOLossType { sigmoid, cdpo, ipo };
DPOLossType parse_dpo_loss(const std::string& name);  // sigmoid | cdpo | ipo
const char* dpo_loss_name(DPOLossType t);

struct DPOLoss {
  Tensor loss;              // scalar, mean over the batch (differentiable)
  Tensor chosen_rewards;    // [B] β·(logπ_θ(y_w) − logπ_ref(y_w)) (detached)
  Tensor rejected_rewards;  // [B]
};
// All inputs [B]: summed response log-probs of the policy (differentiable) and the reference.
DPOLoss dpo_loss(const Tensor& policy_chosen, const Tensor& policy_rejected,
                 const Tensor& ref_chosen, const Tensor& ref_rejected, double beta,
                 DPOLossType type = DPOLossType::sigmoid, double label_smoothing = 0);

struct DPOConfig {
  std::string prefs;             // preference JSONL
  std::string init;              // SFT run: the policy's start and the reference
  double beta = 0.1;             // β (τ for IPO)
  std::string loss = "sigmoid";  // sigmoid | cdpo | ipo
  double label_smoothing = 0.0;  // ε of cDPO
  int64_t epochs = 2;
  int64_t batch = 16;      // pairs per optimizer step
  int64_t grad_accum = 1;  // micro-batches per step (batch/K pairs each), gradients summed
  double lr = 1e-4;        // Adam learning rate
  double grad_clip = 1.0;
  double eval_fraction = 0.1;  // pairs held out
  int64_t log_every = 10;
  int64_t eval_every = 50;   // held-out pairs and policy samples (0: only at the start and end)
  int64_t eval_samples = 4;  // samples per validation prompt for kl and ground_truth
  int64_t max_steps = 0;     // stop after this many steps (0: all epochs)
  int64_t checkpoint_every = 50;  // checkpoint (policy + Adam state + step) every N steps
  bool resume = false;            // continue the run from its checkpoint
  int64_t stop_after = 0;         // stop after N steps of this invocation (0: run to the end)
  std::string out_dir = "runs";
  std::string name = "reviews-dpo";
  uint64_t seed = 0;
  bool quiet = false;
  // cpu, or cuda[:N]: every model of the run and its updates on that GPU.
  std::string device = "cpu";
};
json::Value to_json(const DPOConfig& c);

// What one invocation did: a resumed run (--resume) starts at start_step and runs
// step − start_step steps (losses.size()); `before` is the run's step-0 evaluation (read back
// from metrics.jsonl when resumed), `after` and heldout_accuracy the final one.
struct DPOResult {
  std::string run_dir;
  std::vector<double> losses;   // per step of this invocation
  PolicyEval before, after;     // policy samples on validation prompts
  double heldout_accuracy = 0;  // at the end
  int64_t heldout_pairs = 0;    // the pairs held out (0: --eval-fraction 0, no accuracy)
  int64_t start_step = 0;       // the step this invocation started at (0, or the checkpoint's)
  int64_t step = 0;             // where the run stands after this invocation
  bool finished = false;        // the final evaluation ran (false: --stop-after, or nothing left)
};
DPOResult train_dpo(const DPOConfig& cfg);

}  // namespace rlft::llm
