// GRPO — Group Relative Policy Optimization (Shao et al., DeepSeekMath, arXiv 2402.03300, §4.1).
//
//   A_i = (R_i − mean(R_1..G)) / (std(R_1..G) + 1e-6)       unbiased std; all-equal group → 0
//   J   = seq_mean_token_mean over i, t of
//           min(r_{i,t}·A_i, clip(r_{i,t}, 1 − eps, 1 + eps)·A_i) − β·k3_{i,t}
//   r_{i,t} = π_θ(o_{i,t}|q, o_{i,<t}) / π_old(·),  k3 = exp(−d) − 1 + d,  d = logp_θ − logp_ref
//
// Defaults (paper): eps 0.2, β 0.04, KL in the loss (k3), token-level ratio,
// seq_mean_token_mean aggregation ((1/G) Σ_i (1/|o_i|) Σ_t).
#pragma once

#include <memory>
#include <vector>

#include "rl/llm/group_rl.h"

namespace rlft::llm {

// A_i = (R_i − mean) / (std + 1e-6) with the unbiased std (G − 1 in the denominator), or
// R_i − mean when !scale_by_std; a group of one, or whose rewards are all equal, gets 0.
std::vector<double> group_advantages(const std::vector<double>& rewards, bool scale_by_std);

void grpo_defaults(GroupRLConfig& c);
std::unique_ptr<Objective> make_grpo(const GroupRLConfig& c);

}  // namespace rlft::llm
