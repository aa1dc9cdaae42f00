// RLOO (arXiv 2402.14740): leave-one-out baseline, k1 KL folded into the sequence reward.
#include "rl/llm/objectives/rloo.h"

namespace rlft::llm {

std::vector<double> rloo_advantages(const std::vector<double>& rewards) {
  const size_t G = rewards.size();
  std::vector<double> a(G, 0.0);
  if (G < 2) return a;
  double sum = 0;
  for (double r : rewards) sum += r;
  for (size_t i = 0; i < G; ++i) a[i] = rewards[i] - (sum - rewards[i]) / double(G - 1);
  return a;
}

void rloo_defaults(GroupRLConfig& c) {
  c.epsilon = 0.2;
  c.epsilon_high = 0.2;
  c.ratio_level = "token";
  c.aggregation = "seq_mean_token_mean";
  c.beta = 0.05;       // TRL RLOOTrainer's kl_coef
  c.kl = "reward_k1";  // KL in the reward, never in the loss
  c.scale_by_std = false;
  c.dynamic_sampling = false;
  c.overlong_shaping = false;
  c.reward_wrong = 0.0;
}

namespace {
class RLOO : public Objective {
 public:
  std::string name() const override { return "rloo"; }
  std::vector<double> advantages(const std::vector<double>& rewards, uint64_t) override {
    return rloo_advantages(rewards);
  }
};
}  // namespace

std::unique_ptr<Objective> make_rloo(const GroupRLConfig&) { return std::make_unique<RLOO>(); }

}  // namespace rlft::llm
