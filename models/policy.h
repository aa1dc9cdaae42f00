// Policies and value functions for classic control (seed §1–2, CleanRL's agents).
//
//   MLP            Linear → act → … → Linear, named like torch.nn.Sequential ("0.weight").
//   ActorCritic    actor MLP (logits or Gaussian mean) and critic MLP (state value), either
//                  separate (CleanRL: two 64-64 tanh nets) or on a shared trunk, plus for Box
//                  actions a state-independent learnable log-std (or the seed's fixed σ).
//
// Categorical:  π(a|s) = softmax(logits(s))_a;  log π via the fused softmax_logprob op.
// Gaussian:     π(a|s) = Π_j N(a_j; μ_j(s), σ_j²), σ = exp(log_std);
//               log π = Σ_j −(a_j − μ_j)²/(2σ_j²) − log σ_j − ½·log 2π,
//               H = Σ_j ½ + ½·log 2π + log σ_j.
// Actions are clipped to the action space only when sent to the environment; the policy's
// log-probs are always of the unclipped sample (as in CleanRL).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "engine/nn.h"

namespace rlft::models {

class MLP : public nn::Sequential {
 public:
  // sizes = {in, hidden..., out}; the activation follows every layer but the last.
  MLP(const std::vector<int64_t>& sizes, const std::string& activation, Generator& gen);
  // CleanRL's layer_init: orthogonal weights with `hidden_gain` on hidden layers and
  // `out_gain` on the last one, zero biases.
  void init_orthogonal(double hidden_gain, double out_gain, Generator& gen);
  std::vector<std::shared_ptr<nn::Linear>> linears;
};

struct PolicyConfig {
  int64_t obs_dim = 0;
  bool discrete = true;
  int64_t num_actions = 0;  // discrete: number of actions; continuous: action dimensions
  std::vector<int64_t> hidden = {64, 64};
  std::string activation = "tanh";
  bool shared_trunk = false;    // one trunk with two linear heads instead of two MLPs
  bool orthogonal_init = true;  // CleanRL's init (gain √2, actor head 0.01, critic head 1)
  double log_std_init = 0.0;    // Gaussian: initial log σ
  bool fixed_std = false;  // Gaussian: σ = exp(log_std_init) is not learned (seed §2 uses σ² = 0.5)
  bool critic = true;      // false: a policy only (REINFORCE)
};

struct ActionSample {
  Tensor actions;    // int64 [B] (discrete) or float32 [B, A]
  Tensor log_probs;  // [B]
};
struct ActionEval {
  Tensor log_probs;  // [B], differentiable
  Tensor entropy;    // [B], differentiable
};

class ActorCritic : public nn::Module {
 public:
  ActorCritic(const PolicyConfig& config, Generator& gen);
  const PolicyConfig& config() const { return config_; }

  // Logits [B, n] or Gaussian mean [B, A].
  Tensor actor_out(const Tensor& obs);
  Tensor value(const Tensor& obs);  // [B]
  ActionSample sample(const Tensor& obs, Generator& gen);
  ActionEval evaluate(const Tensor& obs, const Tensor& actions);
  Tensor act_greedy(const Tensor& obs);  // argmax / mean, for evaluation
  Tensor log_std() const { return log_std_; }

 private:
  PolicyConfig config_;
  std::shared_ptr<MLP> trunk_, actor_, critic_;
  Tensor log_std_;
};

// A description of the architecture for checkpoint metadata (JSON text).
std::string describe(const PolicyConfig& config);
// The learned weights of ActorCritic(config), counted without building it (a loader compares a
// file's tensors with it before building a model from the file's metadata).
double parameter_count(const PolicyConfig& config);
// Hidden sizes a policy may have: each layer at most kMaxHidden units and at most
// kMaxLayerWeights weights between two hidden layers, so a typo such as --hidden 1000000 is an
// error naming `what` (e.g. "ppo: --hidden"), not an allocation failure.
inline constexpr int64_t kMaxHidden = 1 << 16, kMaxLayerWeights = int64_t(1) << 26;
void check_hidden_sizes(const std::vector<int64_t>& hidden, const std::string& what);

// The inverse of describe(), checked: every field present with its type, sizes positive and
// bounded, a known activation, a finite log_std_init. An error names `source` (the file) and the
// field ("runs/m/policy.safetensors: metadata policy.obs_dim: ...").
PolicyConfig parse_policy_config(const std::string& json_text, const std::string& source);

}  // namespace rlft::models
