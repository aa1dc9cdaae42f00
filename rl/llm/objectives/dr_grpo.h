// Dr. GRPO — "Understanding R1-Zero-Like Training: A Critical Perspective" (Liu et al.,
// arXiv 2503.20783, §3.1): GRPO without its two biases.
//
//   A_i = R_i − mean(R_1..G)                    (no division by std: no question-level bias)
//   J   = (1/(G·L_max)) Σ_i Σ_t min(r_{i,t}·A_i, clip(r_{i,t}, 1 − eps, 1 + eps)·A_i)
//                                               (constant_norm: no 1/|o_i| length bias)
//   β = 0 (no KL term).
//
// Defaults: eps 0.2, β 0, constant_norm with L_max = the generation budget max_new_tokens.
#pragma once

#include <memory>

#include "rl/llm/group_rl.h"

namespace rlft::llm {

void dr_grpo_defaults(GroupRLConfig& c);
std::unique_ptr<Objective> make_dr_grpo(const GroupRLConfig& c);

}  // namespace rlft::llm
