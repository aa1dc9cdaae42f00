// Dr. GRPO (arXiv 2503.20783): A = R − mean, constant_norm aggregation, no KL.
#include "rl/llm/objectives/dr_grpo.h"

#include "rl/llm/objectives/grpo.h"

namespace rlft::llm {

void dr_grpo_defaults(GroupRLConfig& c) {
  c.epsilon = 0.2;
  c.epsilon_high = 0.2;
  c.ratio_level = "token";
  c.aggregation = "constant_norm";  // Σ_{i,t} m·l / (G·L_max): the paper's unbiased sum
  c.beta = 0.0;                     // paper: no KL
  c.kl = "none";
  c.scale_by_std = false;  // paper: A = R − mean(R)
  c.dynamic_sampling = false;
  c.overlong_shaping = false;
  c.reward_wrong = 0.0;
}

namespace {
class DrGRPO : public Objective {
 public:
  explicit DrGRPO(bool scale_by_std) : scale_by_std_(scale_by_std) {}
  std::string name() const override { return "dr-grpo"; }
  std::vector<double> advantages(const std::vector<double>& rewards, uint64_t) override {
    return group_advantages(rewards, scale_by_std_);  // scale_by_std false by default
  }

 private:
  bool scale_by_std_;
};
}  // namespace

std::unique_ptr<Objective> make_dr_grpo(const GroupRLConfig& c) {
  return std::make_unique<DrGRPO>(c.scale_by_std);
}

}  // namespace rlft::llm
