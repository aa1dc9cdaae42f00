// GSPO — Group Sequence Policy Optimization (Zheng et al., Qwen team, arXiv 2507.18071).
//
//   s_i = (π_θ(o_i|q) / π_old(o_i|q))^(1/|o_i|) = exp((1/|o_i|) Σ_t (logp_{i,t} − old_logp_{i,t}))
//   A_i = (R_i − mean(R_1..G)) / std(R_1..G)
//   J   = (1/G) Σ_i min(s_i·A_i, clip(s_i, 1 − eps_low, 1 + eps_high)·A_i)
//
// The ratio is per sequence with length normalisation, so clipping removes whole responses
// (every token of a clipped response has zero gradient). No KL. With one update per rollout
// s ≡ 1 and GSPO equals GRPO's gradient up to the per-token weights: it differs only off-policy.
// Defaults (paper §5.1): eps_low 3e-4, eps_high 4e-4, β 0; seq_mean_token_mean aggregation
// gives (1/G) Σ_i l_i exactly (ratio_clip copies l_i to each token of row i).
#pragma once

#include <memory>

#include "rl/llm/group_rl.h"

namespace rlft::llm {

void gspo_defaults(GroupRLConfig& c);
std::unique_ptr<Objective> make_gspo(const GroupRLConfig& c);

}  // namespace rlft::llm
