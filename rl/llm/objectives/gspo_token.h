// GSPO-token — the token-level variant of GSPO (Zheng et al., arXiv 2507.18071, §4.3).
//
//   s_{i,t} = sg[s_i] · π_θ(o_{i,t}|·) / sg[π_θ(o_{i,t}|·)]
//   i.e. log s_{i,t} = sg[(1/|o_i|) Σ_t' log-ratio_{i,t'}] + logp_{i,t} − sg[logp_{i,t}]
//   J   = (1/G) Σ_i (1/|o_i|) Σ_t min(s_{i,t}·A_{i,t}, clip(s_{i,t}, 1 − eps_low, 1 +
//   eps_high)·A_{i,t})
//
// The value of s_{i,t} is s_i and its gradient reaches only logp_{i,t}; so when A_{i,t} = A_i
// (one advantage per response, as here) GSPO-token has GSPO's loss and gradient exactly
// (tested). It exists to allow per-token advantages (e.g. multi-turn). Defaults as GSPO.
#pragma once

#include <memory>

#include "rl/llm/group_rl.h"

namespace rlft::llm {

void gspo_token_defaults(GroupRLConfig& c);
std::unique_ptr<Objective> make_gspo_token(const GroupRLConfig& c);

}  // namespace rlft::llm
