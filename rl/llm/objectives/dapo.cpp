// DAPO (arXiv 2503.14476): clip-higher, token_mean, dynamic sampling, overlong shaping, no KL.
#include "rl/llm/objectives/dapo.h"

#include "engine/error.h"
#include "rl/llm/objectives/grpo.h"

namespace rlft::llm {

double overlong_penalty(int64_t length, int64_t max_len, int64_t cache) {
  RLFT_CHECK(cache > 0 && cache <= max_len,
             "overlong_penalty: need 0 < L_cache ≤ L_max, got L_cache ", cache, ", L_max ",
             max_len);
  const int64_t expected = max_len - cache;  // L_max − L_cache
  if (length <= expected) return 0.0;
  if (length <= max_len) return double(expected - length) / double(cache);  // paper eq. 13
  return -1.0;
}

bool group_has_signal(const std::vector<double>& rewards) {
  for (double r : rewards)
    if (r != rewards.front()) return true;
  return false;
}

void dapo_defaults(GroupRLConfig& c) {
  c.epsilon = 0.2;        // paper: ε_low = 0.2
  c.epsilon_high = 0.28;  // paper: ε_high = 0.28 (clip-higher)
  c.ratio_level = "token";
  c.aggregation = "token_mean";  // token-level policy gradient loss (paper §3.3)
  c.beta = 0.0;                  // paper: KL removed (§2.3)
  c.kl = "none";
  c.scale_by_std = true;
  c.dynamic_sampling = true;  // paper §3.2
  c.overlong_shaping = true;  // paper §3.4
  c.reward_correct = 1.0;     // rule-based reward ±1 (paper eq. 7)
  c.reward_wrong = -1.0;
}

namespace {
class DAPO : public Objective {
 public:
  explicit DAPO(bool scale_by_std) : scale_by_std_(scale_by_std) {}
  std::string name() const override { return "dapo"; }
  std::vector<double> advantages(const std::vector<double>& rewards, uint64_t) override {
    return group_advantages(rewards, scale_by_std_);
  }

 private:
  bool scale_by_std_;
};
}  // namespace

std::unique_ptr<Objective> make_dapo(const GroupRLConfig& c) {
  return std::make_unique<DAPO>(c.scale_by_std);
}

}  // namespace rlft::llm
