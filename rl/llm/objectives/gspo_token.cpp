// GSPO-token (arXiv 2507.18071 §4.3): GSPO's sequence ratio with per-token gradient paths.
#include "rl/llm/objectives/gspo_token.h"

#include "rl/llm/objectives/grpo.h"
#include "rl/llm/objectives/gspo.h"

namespace rlft::llm {

void gspo_token_defaults(GroupRLConfig& c) {
  gspo_defaults(c);
  c.ratio_level = "sequence_token";  // the only difference from GSPO's defaults
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
