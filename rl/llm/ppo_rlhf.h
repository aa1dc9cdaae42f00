// PPO-RLHF with four models (seed §3, DeepSpeed-Chat step 3; Ouyang et al. 2022).
// ALGORITHMS.md §4.
//
// Models: actor π_θ (trained, from the SFT run), reference π_ref (frozen SFT copy), critic V_φ
// (trained, initialised from the reward model's backbone with its reward head as value head),
// reward model r (frozen).
//
// Layout: every [B, T] tensor is token-aligned with the generated sequences (left-padded
// prompt, then the response); entry t is about token t. action_mask m is 1 on response tokens
// (EOS included). log_probs[t] = log π(token_t | tokens_<t); values[t] = V(tokens_<t), the
// critic's value head at position t − 1 (the state the action token t is taken from).
//
// Experience (no gradient; make_experience below, after generation), per rollout of B prompts:
//   generate (KV cache, temperature τ, 1 by default) → tokens, m, old_log_probs
//   ref_log_probs (the reference at the same τ), old_values, reward_score = r(x, y) at the
//   last real token
//   rewards (DeepSpeed-Chat compute_rewards):
//     r_t = −kl_ctl·(old_log_probs_t − ref_log_probs_t)   at response tokens
//     r_t += clip(reward_score, ±clip_reward_value)        at each row's OWN last response token
//   advantages, returns = GAE over the response tokens (gae_masked: γ 1, λ 0.95; returns = A +
//   V_old) optional whitening of the advantages over the response tokens (off by default)
// Training, ppo_epochs × minibatches (rows split into minibatches):
//   actor_loss  = token_mean over m of −min(ρ·A, clip(ρ, 1 ± 0.2)·A),  ρ = exp(logp − old_logp)
//                 (the fused ratio_clip op; DeepSpeed-Chat actor_loss_fn)
//   critic_loss = 0.5·token_mean over m of max((V − R)², (clip(V, V_old ± 0.2) − R)²)
//                 (DeepSpeed-Chat critic_loss_fn)
//   separate Adam optimisers for actor and critic, gradient clipping at 1.
// KL controller: fixed kl_ctl 0.1 (default), or adaptive (Ziegler et al. 2019):
//   e = clip(KL/target − 1, −0.2, 0.2), kl_ctl ← kl_ctl·(1 + e·B/horizon).
//
// Logged per update (metrics.jsonl): rm_score, ground_truth (mean p(positive) of the rollout),
// kl (mean over sequences of Σ_t m·(old_logp − ref_logp)), kl_ctl, entropy (token mean),
// clip_frac_low/high, approx_kl (k3) and approx_kl_k1, actor_loss, critic_loss, actor_grad_norm and
// critic_grad_norm (the global gradient norms of the update's last minibatch step, before
// clipping), explained_variance (1 − Var(R − V_old)/Var(R) over response tokens), response_length,
// time_generation, time_experience, time_training in seconds, and samples_per_second (B over
// their sum).
//
// Checkpoint (every checkpoint_every updates, at --stop-after and at the end), two files at one
// step s: checkpoint.safetensors = θ (the policy `rlft lm eval|sample` load), the actor's Adam
// state, and in its metadata the step and ppo_rlhf_state {kl_ctl, the sampling and the two
// dropout streams' Philox counters}; critic.safetensors = φ, the critic's Adam state and the
// step. While a checkpoint is written the critic's earlier file is kept as
// critic.previous.safetensors (removed once both new files are written), so a process killed
// between the two writes still leaves a pair at one step: the earlier one. --resume takes the
// critic at the actor's step from either file, continues at update s + 1 and takes exactly the
// updates of a straight run (same weights, optimiser states, metrics rows but wall times). It
// refuses an --init or --reward-model checkpoint changed since the run started (config.json's
// init_fingerprint, reward_model_fingerprint; lm.h fingerprint_inputs).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "engine/json.h"
#include "engine/tensor.h"
#include "rl/llm/rlhf_data.h"

namespace rlft::llm {

// DeepSpeed-Chat compute_rewards in the token-aligned layout: log_probs, ref_log_probs,
// action_mask [B, T]; reward_score [B] → rewards [B, T] (0 outside the mask). A row without a
// response token gets no score.
Tensor compute_rewards(const Tensor& log_probs, const Tensor& ref_log_probs,
                       const Tensor& reward_score, const Tensor& action_mask, double kl_ctl,
                       double clip_reward_value);
// DeepSpeed-Chat critic_loss_fn: 0.5·Σ m·max((V − R)², (clip(V, V_old ± cliprange_value) − R)²) / Σ
// m.
Tensor critic_loss(const Tensor& values, const Tensor& old_values, const Tensor& returns,
                   const Tensor& action_mask, double cliprange_value = 0.2);
// DeepSpeed-Chat actor_loss_fn: the ratio_clip op with token_mean aggregation (its loss, and the
// clip fractions and KL estimates the update logs). The training loop's actor loss.
RatioClipResult actor_loss(const Tensor& log_probs, const Tensor& old_log_probs,
                           const Tensor& advantages, const Tensor& action_mask,
                           double cliprange = 0.2);
// Advantages whitened over the masked positions: (A − mean)/(std + 1e-8), 0 outside the mask.
Tensor whiten_masked(const Tensor& advantages, const Tensor& action_mask);

struct AdaptiveKLController {
  double value, target, horizon;
  void update(double kl, int64_t n_steps);
};

struct PPORLHFConfig {
  std::string init;                // SFT run: actor and reference
  std::string reward_model;        // reward-model run: reward model and critic
  int64_t steps = 100;             // PPO updates (one rollout each)
  int64_t batch = 32;              // prompts per rollout (generation batch = training batch)
  int64_t ppo_epochs = 1;          // passes over each rollout
  int64_t minibatches = 1;         // minibatches per pass
  double actor_lr = 5e-5;          // Adam
  double critic_lr = 1e-4;         // Adam
  double kl_ctl = 0.1;             // β of the KL penalty in the reward
  bool adaptive_kl = false;        // adaptive controller (Ziegler et al.)
  double kl_target = 6.0;          // adaptive: target KL per sequence
  double kl_horizon = 10000;       // adaptive: horizon in sequences (> 0.2·batch)
  double clip_reward_value = 5.0;  // RM score clipped to ±this
  double cliprange = 0.2;          // actor ratio clip
  double cliprange_value = 0.2;    // critic value clip
  double gamma = 1.0;
  double lam = 0.95;
  bool whiten_advantages = false;
  double temperature = 1.0;    // rollout sampling temperature
  int64_t max_new_tokens = 0;  // 0: as much as the context allows
  double grad_clip = 1.0;
  int64_t eval_every = 25;  // samples on validation prompts (ground truth, KL); 0: start and end
  int64_t eval_samples = 4;
  std::string out_dir = "runs";
  std::string name = "reviews-ppo";
  uint64_t seed = 0;
  bool quiet = false;
  // cpu, or cuda[:N]: every model of the run and its updates on that GPU.
  std::string device = "cpu";
  int64_t checkpoint_every = 10;  // updates; 0: only at --stop-after and the end
  bool resume = false;            // continue the run's checkpoint (same settings; --steps may grow)
  int64_t stop_after = 0;  // updates of this invocation, then checkpoint and stop; 0: to --steps
};
json::Value to_json(const PPORLHFConfig& c);

struct PPORLHFResult {
  std::string run_dir;
  // Per update of the whole run, 1 … steps (rollout means; a resumed run reads the updates
  // before start_step back from metrics.jsonl).
  std::vector<double> rm_scores, ground_truths, kls;
  // Seconds per update of this invocation only, in each phase, wall and process CPU
  // (bench/bench_rlhf.cpp reports them).
  std::vector<double> time_generation, time_experience, time_training;
  std::vector<double> cpu_generation, cpu_experience, cpu_training;
  // Validation prompts: before = the SFT policy (step 0); after = at step --steps, set only when
  // finished.
  PolicyEval before, after;
  int64_t start_step = 0;  // the checkpoint's step a resumed run started from (0: a fresh run)
  int64_t steps = 0;       // the run's step at the end of this invocation
  // Reached --steps with its final evaluation: false when --stop-after stopped it before (and
  // when a resumed checkpoint is at --steps but a longer run had stopped there, unevaluated).
  bool finished = false;
};
PPORLHFResult train_ppo_rlhf(const PPORLHFConfig& cfg);

// V(tokens_<t) at every position t [B, T]: the critic's value head at t − 1 (the prefix that
// token t continues), 0 at t = 0; differentiable in the critic (its training step uses it too).
Tensor aligned_values(models::GPT& critic, const Tensor& tokens, const Tensor& attention_mask);

// One rollout's experience, under no gradient (the critic is put in eval mode): the
// reference's log-probs, the critic's aligned values (0 outside action_mask), the reward
// model's score, the per-token rewards (compute_rewards with KL coefficient kl_coef and
// cfg.clip_reward_value), and GAE's advantages and returns (gae_masked with cfg.gamma and
// cfg.lam; advantages whitened when cfg.whiten_advantages). log_probs: the actor's at sampling.
struct Experience {
  Tensor ref_log_probs, old_values, reward_score, rewards, advantages, returns;
};
Experience make_experience(models::GPT& ref, models::GPT& critic, models::GPT& rm,
                           const Tensor& tokens, const Tensor& attention_mask,
                           const Tensor& log_probs, const Tensor& action_mask, double kl_coef,
                           const PPORLHFConfig& cfg);

}  // namespace rlft::llm
