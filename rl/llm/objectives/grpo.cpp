// GRPO (arXiv 2402.03300): group-normalised advantages, clipped token ratio, k3 KL in the loss.
#include "rl/llm/objectives/grpo.h"

#include <cmath>

namespace rlft::llm {

std::vector<double> group_advantages(const std::vector<double>& rewards, bool scale_by_std) {
  const size_t G = rewards.size();
  std::vector<double> a(G, 0.0);
  if (G < 2) return a;
  double mean = 0;
  for (double r : rewards) mean += r;
  mean /= double(G);
  double ss = 0;
  bool all_equal = true;
  for (double r : rewards) {
    ss += (r - mean) * (r - mean);
    all_equal = all_equal && r == rewards[0];
  }
  if (all_equal) return a;  // exactly 0, not (r − mean)/(0 + 1e-6) rounding noise
  const double std_unbiased = std::sqrt(ss / double(G - 1));
  for (size_t i = 0; i < G; ++i)
    a[i] = scale_by_std ? (rewards[i] - mean) / (std_unbiased + 1e-6) : rewards[i] - mean;
  return a;
}

void grpo_defaults(GroupRLConfig& c) {
  c.epsilon = 0.2;       // paper §4.1: ε
  c.epsilon_high = 0.2;  // symmetric clip
  c.ratio_level = "token";
  c.aggregation = "seq_mean_token_mean";  // (1/G) Σ_i (1/|o_i|) Σ_t  (paper eq. 21)
  c.beta = 0.04;                          // paper: β = 0.04
  c.kl = "loss_k3";                       // KL in the loss, unbiased k3 estimator (eq. 4)
  c.scale_by_std = true;                  // A = (R − mean)/std (outcome supervision)
  c.dynamic_sampling = false;
  c.overlong_shaping = false;
  c.reward_wrong = 0.0;
}

namespace {
class GRPO : public Objective {
 public:
  explicit GRPO(bool scale_by_std) : scale_by_std_(scale_by_std) {}
  std::string name() const override { return "grpo"; }
  std::vector<double> advantages(const std::vector<double>& rewards, uint64_t) override {
    return group_advantages(rewards, scale_by_std_);
  }

 private:
  bool scale_by_std_;
};
}  // namespace

std::unique_ptr<Objective> make_grpo(const GroupRLConfig& c) {
  return std::make_unique<GRPO>(c.scale_by_std);
}

}  // namespace rlft::llm
