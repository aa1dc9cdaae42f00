// GSPO (arXiv 2507.18071): sequence-level, length-normalised ratio; tiny clip range; no KL.
#include "rl/llm/objectives/gspo.h"

#include "rl/llm/objectives/grpo.h"

namespace rlft::llm {

void gspo_defaults(GroupRLConfig& c) {
  c.epsilon = 3e-4;       // paper §5.1: left clip 3e-4
  c.epsilon_high = 4e-4;  // paper §5.1: right clip 4e-4
  c.ratio_level = "sequence";
  c.aggregation = "seq_mean_token_mean";  // = (1/G) Σ_i l_i at the sequence level
  c.beta = 0.0;
  c.kl = "none";
  c.scale_by_std = true;
  c.dynamic_sampling = false;
  c.overlong_shaping = false;
  c.reward_wrong = 0.0;
}

namespace {
class GSPO : public Objective {
 public:
  explicit GSPO(bool scale_by_std) : scale_by_std_(scale_by_std) {}
  std::string name() const override { return "gspo"; }
  std::vector<double> advantages(const std::vector<double>& rewards, uint64_t) override {
    return group_advantages(rewards, scale_by_std_);
  }

 private:
  bool scale_by_std_;
};
}  // namespace

std::unique_ptr<Objective> make_gspo(const GroupRLConfig& c) {
  return std::make_unique<GSPO>(c.scale_by_std);
}

}  // namespace rlft::llm
