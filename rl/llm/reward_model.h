// Reward model (seed §3, step 2 of RLHF; InstructGPT, Ouyang et al. 2022; DeepSpeed-Chat step 2).
//
// Objective (Bradley–Terry), for pairs (x, y_w ≻ y_l):
//   L = mean over pairs of  −log σ(r(x, y_w) − r(x, y_l) − margin)  +  η·(r(x, y_w) + r(x, y_l))²
// r is the GPT backbone (initialised from the SFT run) with a scalar reward head read at the last
// non-pad token (the EOS) of BOS prompt response EOS. margin 0 and η 0.01 by default: the
// centring term keeps the scores near 0 (ALGORITHMS.md §3), which suits PPO's reward clip at ±5.
//
// Gradient accumulation (--grad-accum K): a step's pairs (up to `batch`, which must be divisible
// by K) run as micro-batches of batch/K pairs whose gradients are summed before the one clip +
// AdamW step; micro-batch k's mean loss over its n_k of the step's n pairs (the centring term is
// a mean over pairs too) is weighted n_k/n, so the step is the full-batch step up to float
// rounding and peak activation memory falls by about K. The logged loss and train accuracy are
// the whole steps'. With dropout in the backbone the masks are drawn per micro-batch.
//
// Logged per epoch (metrics.jsonl): loss, train_accuracy, grad_norm (the global gradient norm of
// the epoch's last step, before clipping), held-out pair accuracy
// (heldout_accuracy: fraction of held-out pairs with r_w > r_l), heldout_loss, and, when the
// pairs carry ground-truth scores, the Pearson correlation of r with logit p(positive) over the
// held-out responses (heldout_correlation) and the accuracy against the ground-truth order instead
// of the (possibly noisy) labels, over held-out pairs whose scores differ (heldout_truth_accuracy).
// Defaults: 6 epochs, batch 32 pairs, AdamW lr 1e-3 (wd 0) decayed by a cosine to 0.1·lr over
// the run (DeepSpeed-Chat step 2 also uses a cosine schedule), grad clip 1, η 0.01, 10% of pairs
// held out. Why these: on `rlft lm prefs`' default 6000 pairs, 1e-3 with the decay ended highest
// of the settings tried (0.857 and 0.900 held-out on two draws of the pairs, against 0.845 for
// 3e-4 × 3 epochs and 0.853 / 0.837 for 3e-4 with the decay over 6 epochs); at a constant 1e-3
// the held-out accuracy swings by ±0.05 from epoch to epoch, which the decay removes
// (docs/rlhf.md has the measurements).
//
// Resume (TRL's resume_from_checkpoint): checkpoint.safetensors holds the reward model, the AdamW
// state, the step and, as rm_state in its metadata, the loop's state: the sums of the epoch under
// way (loss, correct train pairs, steps, the last grad norm) and the held-out evaluation before
// training. It is written every checkpoint_every steps, at --stop-after (after that step's
// epoch row, when it ends an epoch) and at the end; the final one still loads as a reward model
// (load_reward_model skips the optimizer state). --resume loads it, drops the metrics rows
// logged after it, redraws the seeded shuffles (the split's and every epoch's: they draw from
// the run's generator only) and skips the batches already done; the learning rate is a function
// of the step. The reward model's dropout masks of step s depend on (seed, s) only. So a run
// stopped and resumed on the CPU ends with a straight run's weights, AdamW state and metrics
// rows (tests/rl/test_rm_resume.cpp). --epochs may change on resume as long as the checkpoint's
// step is within the new total (a decaying schedule is then stretched over the new total from
// the resumed step on), and --grad-accum may change (the same steps up to float rounding). A
// --prefs file or --init checkpoint changed since the run started is refused (config.json's
// prefs_fingerprint, init_fingerprint; lm.h fingerprint_inputs).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "engine/json.h"
#include "engine/tensor.h"
#include "models/gpt.h"
#include "models/tokenizer.h"
#include "rl/llm/rlhf_data.h"

namespace rlft::llm {

// Mean Bradley–Terry loss over a batch: r_chosen, r_rejected [B] → scalar (differentiable).
Tensor bradley_terry_loss(const Tensor& r_chosen, const Tensor& r_rejected, double margin = 0,
                          double center_coef = 0);

// One (micro-)batch of the training loop: the pairs [s, e) scored by `rm` in one batch (every
// chosen response, then every rejected one: make_pair_batch), their Bradley–Terry loss
// (differentiable) and each side's rewards (for the accuracy the epoch counts).
struct PairLoss {
  Tensor loss;
  std::vector<double> chosen, rejected;
};
PairLoss pair_loss(models::GPT& rm, const models::Tokenizer& tok,
                   const std::vector<PreferencePair>& pairs, size_t s, size_t e, double margin = 0,
                   double center_coef = 0);

struct RewardModelConfig {
  std::string prefs;                   // preference JSONL (rlhf_data.h)
  std::string init;                    // SFT run the backbone starts from
  int64_t epochs = 6;                  // passes over the training pairs
  int64_t batch = 32;                  // pairs per optimizer step
  int64_t grad_accum = 1;              // micro-batches per step (batch/K pairs), gradients summed
  double lr = 1e-3;                    // AdamW peak learning rate
  std::string lr_schedule = "cosine";  // constant | linear | cosine (to min_lr_ratio·lr)
  double min_lr_ratio = 0.1;           // final learning rate as a fraction of lr
  double weight_decay = 0.0;           // AdamW decoupled decay of matrices and embeddings
  double grad_clip = 1.0;              // max global gradient norm (0: off)
  double margin = 0.0;                 // BT margin
  double center_coef = 0.01;           // η of the centring term (ALGORITHMS.md §3's 0.01; 0: off)
  double eval_fraction = 0.1;  // fraction of pairs held out (the last ones after a seeded shuffle)
  int64_t checkpoint_every = 100;  // training checkpoint every N steps (0: at --stop-after, end)
  bool resume = false;             // continue the run from its checkpoint
  int64_t stop_after = 0;          // stop after N steps of this invocation (0: run to the end)
  std::string out_dir = "runs";
  std::string name = "reviews-rm";
  uint64_t seed = 0;
  bool quiet = false;
  // cpu, or cuda[:N]: every model of the run and its updates on that GPU.
  std::string device = "cpu";
};
json::Value to_json(const RewardModelConfig& c);

struct RewardModelEval {
  double accuracy = 0, loss = 0, correlation = 0;
  double truth_accuracy =
      0;  // fraction of pairs with a score gap whose r orders them as the ground truth
  bool has_correlation = false;
  int64_t pairs = 0;  // the pairs evaluated (0: none held out, the numbers above mean nothing)
};
// Held-out accuracy, loss and correlation with the ground-truth scores of a reward model.
RewardModelEval evaluate_reward_model(models::GPT& rm, const models::Tokenizer& tok,
                                      const std::vector<PreferencePair>& pairs, int64_t batch = 64);
// r(x, y) for each (prompt, response): [N] (no gradient).
std::vector<double> reward_scores(models::GPT& rm, const models::Tokenizer& tok,
                                  const std::vector<std::string>& prompts,
                                  const std::vector<std::string>& responses, int64_t batch = 64);

// What one invocation did. A resumed run reads its evaluations so far back (the one before
// training from the checkpoint, the epochs' from metrics.jsonl), so `evals` is always the run's.
struct RewardModelResult {
  std::string run_dir;
  std::vector<double> losses;          // per step of this invocation
  std::vector<RewardModelEval> evals;  // per epoch, on the held-out pairs (before training first)
  int64_t start_step = 0;  // the step this invocation started at (0, or the checkpoint's)
  int64_t step = 0;        // where the run stands after this invocation
  bool finished = false;   // the run is at its last step (false: --stop-after)
};
RewardModelResult train_reward_model(const RewardModelConfig& cfg);

}  // namespace rlft::llm
