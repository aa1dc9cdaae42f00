// DCPO — Dynamic Clipping Policy Optimization (Yang et al., arXiv 2509.02333).
//
// Dynamic clip bounds per token, from the probability the old policy gave the token,
// q = exp(old_logp):
//   lower(q) = 0.5 + 0.5·sqrt(max(1 − 4·eps_low/q, 0))
//   upper(q) = 0.5 + 0.5·sqrt(1 + 4·eps_high/q)             both capped at r_max = 10
// so rare tokens (small q) may move much further than 1 ± eps before their gradient is cut.
//
// Smooth advantage standardisation (SAS): per prompt (stable id) keep every reward ever seen;
// on the prompt's i-th visit, with A_new from this group's mean/std and A_total from the mean/std
// of all its rewards so far (this group included),
//   SA_new   = ((i−1)/i)·A_new + (1/i)·A_total
//   SA_total = (1/i)·A_new + ((i−1)/i)·A_total
//   A_i      = whichever of SA_new, SA_total has the smaller absolute value
// (a standardisation whose std is 0 contributes 0). A group whose own rewards are all equal
// still gets a gradient from the history — DCPO's answer to DAPO's dropped groups.
//
//   J = Σ_i (1/|o_i|) Σ_t min(r_{i,t}·A_i, clip(r_{i,t}, lower_{i,t}, upper_{i,t})·A_i)
//       (only_token_mean: no 1/B), no KL.  Defaults (paper): eps_low 0.16, eps_high 0.2.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <utility>
#include <vector>

#include "rl/llm/group_rl.h"

namespace rlft::llm {

// (lower(q), upper(q)) above.
std::pair<double, double> dcpo_bounds(double q, double eps_low, double eps_high, double r_max);
// Per-token bounds [B, T] from old_log_probs [B, T] (values at masked tokens are unused).
std::pair<Tensor, Tensor> dcpo_bound_tensors(const Tensor& old_log_probs, double eps_low,
                                             double eps_high, double r_max);

// SAS state: every reward seen per prompt id.
class SmoothAdvantage {
 public:
  std::vector<double> operator()(const std::vector<double>& rewards, uint64_t prompt_id);
  int64_t visits(uint64_t prompt_id) const;
  // The history as {"<prompt id>": [visits, r, r, …]} and back (checkpoints of a DCPO run).
  json::Value to_json() const;
  void from_json(const json::Value& v);

 private:
  struct Stats {
    int64_t visits = 0;
    std::vector<double> all;  // every reward seen (toy scale: kept, not summarised)
  };
  std::map<uint64_t, Stats> stats_;
};

void dcpo_defaults(GroupRLConfig& c);
std::unique_ptr<Objective> make_dcpo(const GroupRLConfig& c);

}  // namespace rlft::llm
