// RRHF: Rank Responses to align language models with Human Feedback (Yuan et al. 2023,
// arXiv 2304.05302). ALGORITHMS.md §6. No reference model, no critic.
//
// For one prompt x with k candidate responses y_1..y_k and scores R_1..R_k:
//   p_i    = Σ_t log π_θ(y_{i,t} | x, y_{i,<t}) / |y_i|          (length-normalised, penalty 1)
//   L_rank = Σ_{i,j: R_i < R_j} max(0, p_i − p_j)
//   L_ft   = −Σ_t log π_θ(y_{i',t} | x, y_{i',<t}),   i' = argmax_i R_i
//   L      = L_rank + L_ft
// (the paper's eq. 2–4; the loss of a batch is the mean over its prompts).
// Candidates here: k responses sampled from the current policy (temperature 1), scored by a
// reward model run (--reward-model) or by the task's hidden ground truth (--scorer ground_truth).
// |y| counts the response tokens and the EOS. Defaults: k 4, 8 prompts per step, Adam lr 5e-5.
//
// Logged every --log-every steps (metrics.jsonl): loss, rank_loss, ft_loss (means over the steps
// since the last row), score and sample_ground_truth of the candidates, grad_norm (the global
// gradient norm of the logged step, before clipping); at evaluations ground_truth, kl and
// response_length of samples on the validation prompts; elapsed_seconds is this invocation's.
//
// Resume: checkpoint.safetensors holds the policy, Adam's state, the step and the loop's state
// (rrhf_state: the positions of the candidate-sampling and dropout streams, each realigned to a
// Philox block at the start of every step, the position in the shuffled prompts, the metrics
// window since the last row and the step-0 evaluation). It is written every --checkpoint-every
// steps, at --stop-after (after that step's metrics row, when it has one) and at the end, and
// is the policy file `rlft lm eval|sample` read. --resume loads it, drops the metrics rows
// logged after it and continues with the draws a straight run makes there, so a stopped and
// resumed run ends with the same weights, Adam state and metrics (tests/rl/test_rrhf_resume.cpp).
// It refuses an --init or --reward-model checkpoint changed since the run started (config.json's
// init_fingerprint, reward_model_fingerprint; lm.h fingerprint_inputs).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "engine/json.h"
#include "engine/tensor.h"
#include "rl/llm/rlhf_data.h"

namespace rlft::llm {

struct RRHFLoss {
  Tensor loss;  // L_rank + L_ft (differentiable)
  double rank_loss = 0, ft_loss = 0;
};
// log_prob_sums [k] Σ_t log π of each candidate (differentiable), lengths [k] token counts,
// scores [k]. Ties in R are not ranked against each other; the first of equal best is y_{i'}.
RRHFLoss rrhf_loss(const Tensor& log_prob_sums, const std::vector<int64_t>& lengths,
                   const std::vector<double>& scores);

// One step's loss over the candidates of prompts_per_step prompts, k consecutive candidates
// (prompt, response, score) per prompt: the policy's response log-prob sums, each divided by its
// candidate's |y| (response tokens and EOS, as make_sequence_batch counts them), ranked per
// prompt by rrhf_loss; loss is the mean over the prompts, rank_sum and ft_sum the sums of their
// terms (the metrics window adds them up).
struct RRHFStepLoss {
  Tensor loss;
  double rank_sum = 0, ft_sum = 0;
};
RRHFStepLoss rrhf_step_loss(models::GPT& policy, const models::Tokenizer& tok,
                            const std::vector<std::string>& prompts,
                            const std::vector<std::string>& responses,
                            const std::vector<double>& scores, int64_t k);

struct RRHFConfig {
  std::string init;           // SFT run (the policy's start)
  std::string reward_model;   // reward-model run that scores candidates (scorer rm)
  std::string scorer = "rm";  // rm | ground_truth
  int64_t steps = 100;        // optimizer steps
  int64_t prompts_per_step = 8;
  int64_t k = 4;             // candidates per prompt
  double temperature = 1.0;  // sampling temperature of the candidates
  double lr = 5e-5;          // Adam learning rate
  double grad_clip = 1.0;
  int64_t log_every = 10;
  int64_t eval_every = 50;  // samples on validation prompts: ground truth, KL to the init
  int64_t eval_samples = 4;
  // Checkpoint (policy, Adam state, step, random streams) every N steps (0: only at --stop-after
  // and at the end).
  int64_t checkpoint_every = 50;
  bool resume = false;  // continue the run from its checkpoint (its settings; --steps may change)
  int64_t stop_after = 0;  // stop after N steps of this invocation (0: run to --steps)
  std::string out_dir = "runs";
  std::string name = "reviews-rrhf";
  uint64_t seed = 0;
  bool quiet = false;
  // cpu, or cuda[:N]: every model of the run and its updates on that GPU.
  std::string device = "cpu";
};
json::Value to_json(const RRHFConfig& c);

// What one invocation did: a resumed run (--resume) starts at start_step and runs
// steps − start_step steps (losses.size()). `before` is the run's step-0 evaluation (from the
// checkpoint when resumed); `after` is the final one at --steps, set when `finished` (a resumed
// run that had already finished reads it back from metrics.jsonl).
struct RRHFResult {
  std::string run_dir;
  std::vector<double> losses;  // the batch loss of each step of this invocation
  PolicyEval before, after;
  int64_t start_step = 0;  // the step this invocation started at (0, or the checkpoint's)
  int64_t steps = 0;       // where the run stands after this invocation
  bool finished = false;   // the run is at --steps with its final evaluation (false: --stop-after)
};
RRHFResult train_rrhf(const RRHFConfig& cfg);

}  // namespace rlft::llm
