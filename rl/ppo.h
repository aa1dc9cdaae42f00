// PPO on classic control — seed §2 (PPO with the Pendulum code), ALGORITHMS.md §2.
//
// Objective (PPO-clip, Schulman et al. 2017, arXiv 1707.06347), per minibatch of samples n:
//   r_n      = exp(log π_θ(a_n|s_n) − log π_old(a_n|s_n))
//   pg_loss  = mean_n −min(r_n·Â_n, clip(r_n, 1 − ε, 1 + ε)·Â_n)          (fused ratio_clip op)
//   v_loss   = ½·mean_n max((V_θ(s_n) − R_n)², (V_old + clip(V_θ − V_old, ±ε) − R_n)²)
//   loss     = pg_loss − c_ent·mean_n H[π_θ(·|s_n)] + c_v·v_loss
// PPO-penalty (seed §4.2(1)): pg_loss = −mean_n r_n·Â_n + β·mean_n k3(old‖new), with
//   k3 = (r − 1) − log r, and β ×= 2 when KL > 1.5·target, β /= 2 when KL < target/1.5.
// Advantages by GAE (γ, λ) over the [T, N] rollout with truncation bootstrapped from V of the
// final observation and termination not bootstrapped; returns R = Â + V_old.
//
// Defaults are CleanRL's ppo.py for CartPole (4 envs × 128 steps, lr 2.5e-4 annealed, 4
// minibatches × 4 epochs, ε 0.2, c_ent 0.01, c_v 0.5, max grad norm 0.5, Adam eps 1e-5,
// separate 64-64 tanh nets with orthogonal init). Presets for Pendulum and LunarLander are
// apply_preset()'s (preset_names() lists them).
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "engine/json.h"
#include "engine/rng.h"
#include "engine/tensor.h"

namespace rlft::envs {
class VectorEnv;
}
namespace rlft::models {
class ActorCritic;
}

namespace rlft::rl {

struct PPOConfig {
  std::string env_id = "CartPole-v1";  // environment (CartPole-v1, Pendulum-v1, LunarLander-v3, …)
  uint64_t seed = 1;                   // seeds the policy init, the sampling and the environments
  std::string device = "cpu";     // cpu, or cuda[:N]: networks and update there, envs on the CPU
  int64_t total_steps = 500000;   // environment steps over all envs
  int64_t num_envs = 4;           // parallel environment copies
  int64_t num_steps = 128;        // steps per env per rollout (T)
  double learning_rate = 2.5e-4;  // Adam learning rate
  bool anneal_lr = true;          // linear decay of the learning rate to 0
  double adam_eps = 1e-5;         // Adam epsilon
  double gamma = 0.99;            // discount γ
  double gae_lambda = 0.95;       // GAE λ
  int64_t num_minibatches = 4;    // minibatches per epoch
  int64_t update_epochs = 4;      // epochs over each rollout
  bool norm_adv = true;           // normalise advantages per minibatch
  std::string loss = "clip";      // "clip" (PPO-clip) or "penalty" (adaptive KL penalty)
  double clip_coef = 0.2;         // ε of the ratio clip (and of the value clip)
  double dual_clip = 0.0;         // c > 1 enables the dual clip for negative advantages
  bool clip_vloss = true;         // clipped value loss
  double ent_coef = 0.01;         // entropy bonus c_ent
  double vf_coef = 0.5;           // value loss coefficient c_v
  double max_grad_norm = 0.5;     // global gradient-norm clip (0 = off)
  double target_kl = 0.0;  // stop the epochs early when the epoch's last minibatch's approx KL
                           // (k3) exceeds this, as CleanRL (0 = off)
  double kl_target = 0.01;       // penalty mode: KL target for the adaptive β
  double kl_beta = 1.0;          // penalty mode: initial β
  std::string hidden = "64,64";  // hidden layer sizes
  std::string activation = "tanh";  // tanh | relu
  bool shared_trunk = false;        // one trunk for actor and critic
  double log_std_init = 0.0;        // Gaussian policies: initial log σ
  bool fixed_std = false;  // Gaussian policies: keep σ fixed at exp(log_std_init) (the seed's
                           // Pendulum code, σ² = 0.5: with --log-std-init -0.3466)
  bool norm_obs = false;   // running mean/std observation normalisation (clipped to ±10)
  bool norm_reward = false;  // scale rewards by the running std of the discounted return
  int64_t checkpoint_every =
      50;                 // write checkpoint.safetensors every this many updates (and at the end)
  bool resume = false;    // continue the run in run_dir from its checkpoint
  int64_t log_every = 1;  // print a progress line every this many updates
  bool quiet = false;     // no progress lines
};

// Named presets: "cartpole" (CleanRL defaults), "cartpole-fast", "pendulum", "lunarlander".
// Each sets the fields it names; unknown names are an error listing the known ones.
void apply_preset(const std::string& name, PPOConfig& config);
std::vector<std::string> preset_names();

// One update's metrics (also written to metrics.jsonl).
struct PPOUpdate {
  int64_t update = 0, global_step = 0;
  double episodic_return_mean = 0, episodic_return_min = 0, episodic_return_max = 0;
  int64_t episodes = 0;      // finished in this update
  double return_last20 = 0;  // mean return of the last 20 finished episodes
  double pg_loss = 0, v_loss = 0, entropy = 0, approx_kl = 0, approx_kl_k1 = 0, clipfrac = 0;
  double clipfrac_low = 0, clipfrac_high = 0, explained_variance = 0, learning_rate = 0,
         kl_beta = 0;
  double sps = 0;
  int64_t epochs = 0;  // epochs run: update_epochs, or fewer when target_kl stopped them
};

struct PPOResult {
  std::vector<PPOUpdate> updates;
  int64_t steps_to_threshold =
      -1;  // first global step at which return_last20 ≥ the env's threshold
};

// Trains and, when run_dir is non-empty, writes config.json, metrics.jsonl, the learning curve
// (return.svg) and policy.safetensors / checkpoint.safetensors into it. With resume, the
// model, optimiser, counters, β and observation statistics come from the checkpoint and
// metrics are appended; the environments restart their episodes (seeded by seed + update),
// so a resumed run is statistically, not bitwise, the same as an uninterrupted one. `on_update`
// (optional) sees each update; returning false stops training.
PPOResult train_ppo(const PPOConfig& config, const std::string& run_dir = "",
                    const std::function<bool(const PPOUpdate&)>& on_update = nullptr);

json::Value to_json(const PPOConfig& config);

// One rollout, train_ppo's collection phase (public so its bootstrapping is tested on its own):
// T steps of every env of `env` under `agent`'s policy, sampling from `gen`, without
// gradients. Buffers are time-major, on the CPU, allocated on the first call (and again when
// T, N or the spaces change):
struct PPORollout {
  Tensor obs;         // [T, N, O]: the policy's inputs (observe's output)
  Tensor actions;     // [T, N] int64 or [T, N, A] float: as sampled (a Box action is clipped
                      // to its space only when sent to the env, as CleanRL's ClipAction)
  Tensor log_probs;   // [T, N]: log π(a|s) at sampling
  Tensor values;      // [T, N]: V(s_t)
  Tensor rewards;     // [T, N]: the env's, after scale_rewards when given
  Tensor terminated;  // [T, N]: 1 where the MDP ended (not bootstrapped)
  Tensor ended;       // [T, N]: 1 where the episode ended (terminated or truncated)
  // [T, N]: V(s_{t+1}): the next step's value; at t = T − 1 the value of the observation
  // after the last step; where a time limit cut the episode (truncated, not terminated), the
  // value of its final observation, not of the next episode's first.
  Tensor next_values;
  std::vector<double> finished;  // returns of the episodes that ended, in the order they did
};
// observe(raw, rows, update): the policy's input [rows, O] from rows raw observations
// (normalised, and the running statistics updated when `update`, if the run normalises).
using ObserveFn = std::function<Tensor(std::span<const float> raw, int64_t rows, bool update)>;
// Scales n rewards in place (done: the episodes that just ended); empty: rewards as given.
using RewardScaleFn = std::function<void(float* rewards, const uint8_t* done, int64_t n)>;
// next_obs: the policy's input for the envs' current observations [N, O] (observe of
// env.obs()); replaced by the one after the last step. The policy runs on `dev`.
void collect_rollout(envs::VectorEnv& env, models::ActorCritic& agent, Generator& gen,
                     const Device& dev, int64_t T, const ObserveFn& observe,
                     const RewardScaleFn& scale_rewards, Tensor& next_obs, PPORollout& out);

// The two per-minibatch pieces of the loss above, as train_ppo computes them (tested by hand):
// Â normalised over the minibatch, (Â − mean)/(std + 1e-8) with the unbiased std (CleanRL's
// torch .std());
Tensor normalize_advantages(const Tensor& advantages);
// and the value loss ½·mean_n max((V − R)², (V_old + clip(V − V_old, ±ε) − R)²), or ½·mean_n
// (V − R)² when `clip` is false. values, old_values, returns: [N].
Tensor ppo_value_loss(const Tensor& values, const Tensor& old_values, const Tensor& returns,
                      double clip_coef, bool clip);
// The logged explained variance 1 − Var[R − V] / Var[R] (population variances, as CleanRL's
// np.var); NaN when the returns do not vary.
double explained_variance(const Tensor& values, const Tensor& returns);

}  // namespace rlft::rl
