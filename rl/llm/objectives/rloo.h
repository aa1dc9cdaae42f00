// RLOO — REINFORCE Leave-One-Out (Ahmadian et al., "Back to Basics", arXiv 2402.14740; Kool et
// al. 2019 "Buy 4 REINFORCE samples, get a baseline for free").
//
//   R_i = verifier(o_i) − β · Σ_t (old_logp_{i,t} − ref_logp_{i,t})    (sequence-level k1 KL
//                                                                      in the reward)
//   A_i = R_i − (1/(G−1)) Σ_{j≠i} R_j = (G/(G−1)) · (R_i − mean(R_1..G))
//   J   = seq_mean_token_mean of min(r·A_i, clip(r, 1 − eps, 1 + eps)·A_i)
//
// The paper's loss is plain REINFORCE on whole sequences (one update per rollout, where r ≡ 1
// and the clip never binds); with several minibatches per rollout we keep PPO's clip as TRL's
// RLOOTrainer does. Defaults: β 0.05 (TRL), eps 0.2, no std scaling.
#pragma once

#include <memory>
#include <vector>

#include "rl/llm/group_rl.h"

namespace rlft::llm {

// A_i = R_i − mean_{j≠i} R_j; a group of one gets 0.
std::vector<double> rloo_advantages(const std::vector<double>& rewards);

void rloo_defaults(GroupRLConfig& c);
std::unique_ptr<Objective> make_rloo(const GroupRLConfig& c);

}  // namespace rlft::llm
