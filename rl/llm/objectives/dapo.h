// DAPO — Decoupled Clip and Dynamic sAmpling Policy Optimization (Yu et al., arXiv 2503.14476).
//
//   A_i = (R_i − mean(R_1..G)) / std(R_1..G)                      (group-normalised, as GRPO)
//   J   = (1/Σ_i |o_i|) Σ_i Σ_t min(r_{i,t}·A_i, clip(r_{i,t}, 1 − eps_low, 1 + eps_high)·A_i)
//         (token_mean over the whole step; clip-higher eps_low 0.2, eps_high 0.28; no KL)
//   s.t. 0 < |{o_i : correct}| < G      dynamic sampling: groups whose rewards are all equal
//                                       are dropped and new prompts sampled until the batch is
//                                       full (capped at max_extra_rounds extra rounds)
//   R_i = ±1 (rule reward: +1 correct, −1 wrong) + R_length(|o_i|), the overlong shaping
//     R_length(y) = 0                                    |y| ≤ L_max − L_cache
//                 = ((L_max − L_cache) − |y|) / L_cache   L_max − L_cache < |y| ≤ L_max
//                 = −1                                    L_max < |y|
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "rl/llm/group_rl.h"

namespace rlft::llm {

// R_length above (|y| in tokens).
double overlong_penalty(int64_t length, int64_t max_len, int64_t cache);
// Dynamic-sampling filter: true when the group's rewards are not all equal (it has a gradient).
bool group_has_signal(const std::vector<double>& rewards);

void dapo_defaults(GroupRLConfig& c);
std::unique_ptr<Objective> make_dapo(const GroupRLConfig& c);

}  // namespace rlft::llm
