// GSPO-token (arXiv 2507.18071 §4.3): GSPO's sequence ratio with per-token gradient paths.
#include "rl/llm/objectives/gspo_token.h"

#include "rl/llm/objectives/grpo.h"

namespace rlft::llm {

void gspo_token_defaults(GroupRLConfig& c) {
  c.epsilon = 3e-4;  // as GSPO
  c.epsilon_high = 4e-4;
  c.ratio_level = "sequence_token";  // the only difference from gspo.cpp
  c.aggregation = "seq_mean_token_mean";
  c.beta = 0.0;
  c.kl = "none";
  c.scale_by_std = true;
  c.dynamic_sampling = false;
  c.overlong_shaping = false;
  c.reward_wrong = 0.0;
}

namespace {
class GSPOToken : public Objective {
 public:
  explicit GSPOToken(bool scale_by_std) : scale_by_std_(scale_by_std) {}
  std::string name() const override { return "gspo-token"; }
  std::vector<double> advantages(const std::vector<double>& rewards, uint64_t) override {
    return group_advantages(rewards, scale_by_std_);  // per response, broadcast to its tokens
  }

 private:
  bool scale_by_std_;
};
}  // namespace

std::unique_ptr<Objective> make_gspo_token(const GroupRLConfig& c) {
  return std::make_unique<GSPOToken>(c.scale_by_std);
}

}  // namespace rlft::llm
