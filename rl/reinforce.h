// REINFORCE (Monte-Carlo policy gradient) — seed §1, ALGORITHMS.md §1 (Williams 1992).
//
//   ∇J(θ) ≈ (1/N) Σ_n Σ_t (G_t^n − b) ∇ log π_θ(a_t^n | s_t^n)
//   G_t = Σ_{t' ≥ t} γ^{t'−t} r_{t'}             reward-to-go (seed §2.3(2))
//   b   = running mean of the episode returns    baseline (seed §2.3(1)); optional
// Options: the whole-episode return G_0 = Σ_t γ^t r_t for every step (the seed's first form,
// whose R(τ) = Σ_t r_t is G_0 with --gamma 1), return normalisation within the batch, no
// baseline. The loss minimised is
//   L = −(1/N) Σ_n Σ_t (G_t^n − b)·log π_θ(a_t^n | s_t^n)
// The seed's own example: CartPole, Adam lr 2e-4, γ 0.98, one episode per update.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "engine/json.h"

namespace rlft::rl {

struct ReinforceConfig {
  std::string env_id = "CartPole-v1";  // environment (discrete or continuous actions)
  uint64_t seed = 1;                   // seeds the policy init, the sampling and the environment
  std::string device =
      "cpu";  // cpu or cuda[:N]: where the policy runs (the environment stays on the CPU)
  int64_t total_episodes = 1500;    // episodes to train on
  int64_t episodes_per_update = 1;  // episodes per gradient step (N)
  double learning_rate = 1e-3;      // Adam learning rate (the seed uses 2e-4)
  double gamma = 0.99;              // discount γ (the seed uses 0.98)
  bool reward_to_go = true;         // G_t from step t on; false: the whole-episode return G_0
                                    // (discounted; the seed's undiscounted R(τ) is --gamma 1)
  std::string baseline = "mean";    // "mean" (running mean of returns) or "none"
  double baseline_momentum = 0.99;  // b ← m·b + (1 − m)·G_0 after each episode
  bool normalize_returns = true;    // standardise (G − b) over the batch's steps
  std::string hidden = "64,64";     // hidden layer sizes of the policy
  std::string activation = "tanh";  // tanh | relu
  int64_t log_every = 50;           // progress line every this many episodes
  bool quiet = false;               // no progress lines
  int64_t checkpoint_every = 100;   // write checkpoint.safetensors every this many updates (and
                                    // at the end; 0: only at the end)
  bool resume = false;              // continue the run in run_dir from its checkpoint
};

// The seed's settings (lr 2e-4, γ 0.98, no normalisation) as a preset.
void apply_reinforce_preset(const std::string& name, ReinforceConfig& config);

struct ReinforceUpdate {
  int64_t episode = 0, global_step = 0;
  double episode_return = 0, return_last20 = 0, loss = 0, entropy = 0, baseline = 0, sps = 0;
};

struct ReinforceResult {
  std::vector<ReinforceUpdate> updates;
  int64_t episodes_to_threshold =
      -1;  // first episode at which the last-20 mean reached the threshold
};

// Trains and, when run_dir is non-empty, writes config.json, metrics.jsonl (one line per
// update), return.svg, policy.safetensors and checkpoint.safetensors (the policy, Adam's state
// and the loop's state: episode, global step, sampling stream, baseline and the last 20 returns)
// into it. With resume, those come from the checkpoint, the metrics logged after it are dropped,
// and only --total-episodes may differ from the recorded settings; the environment restarts its
// episodes (seeded by seed and the episode), so a resumed run is statistically, not bitwise, the
// same as an uninterrupted one. `on_update` (optional) sees each update; false stops training.
ReinforceResult train_reinforce(
    const ReinforceConfig& config, const std::string& run_dir = "",
    const std::function<bool(const ReinforceUpdate&)>& on_update = nullptr);

json::Value to_json(const ReinforceConfig& config);

// --normalize-returns: the batch's weights (G_t − b) standardised in place, (w − mean)/(std +
// 1e-8) with the unbiased (n − 1) std, as torch's .std(); fewer than 2 weights stay as they are.
void normalize_weights(std::vector<float>& w);

}  // namespace rlft::rl
