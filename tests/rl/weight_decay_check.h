// A check of which tensors AdamW's decoupled weight decay reached, from the weights before and
// after a run's first (and only) optimizer step. The LM trainers decay matrices and embeddings
// and not biases or LayerNorm parameters (GPT-2 / nanoGPT's two groups).
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <string>
#include <vector>

#include "models/gpt.h"

namespace rlft::testing {

// AdamW's first step is w ← (1 − lr·wd)·w − lr·g/(|g| + eps) (m̂ = g, √v̂ = |g|), so every
// weight of `after` is within lr of f·w, w its value in `before`, f = 1 − lr·wd for a tensor
// that decays (a name without "ln_" and not ending in ".bias") and 1 for one that does not.
// With lr·wd ≥ 0.3 a LayerNorm gain (≈ 1) decayed by mistake is ≥ 0.3 away, and an embedding
// left undecayed ≥ 0.3·|w| (w ~ N(0, 0.02²)) away, both far over the lr of these tests. Tensors
// `before` lacks (a head the run added) are skipped; both groups must be met.
inline void expect_first_adamw_step_decays_matrices_only(const models::GPT& before,
                                                         const models::GPT& after, double lr,
                                                         double weight_decay) {
  std::map<std::string, std::vector<double>> w0;
  for (const auto& [name, t] : before.named_parameters()) w0[name] = t.to_vector();
  int decayed = 0, kept = 0;
  for (const auto& [name, t] : after.named_parameters()) {
    if (!w0.count(name)) continue;
    const bool decays = name.find("ln_") == std::string::npos &&
                        !(name.size() >= 5 && name.compare(name.size() - 5, 5, ".bias") == 0);
    const double f = decays ? 1 - lr * weight_decay : 1.0;
    (decays ? decayed : kept) += 1;
    const std::vector<double> w1 = t.to_vector(), &w = w0[name];
    ASSERT_EQ(w1.size(), w.size()) << name;
    double worst = 0;
    for (size_t k = 0; k < w1.size(); ++k) worst = std::max(worst, std::abs(w1[k] - f * w[k]));
    EXPECT_LE(worst, lr * (1 + 1e-4) + 1e-6) << name << (decays ? " (decays)" : " (no decay)");
  }
  EXPECT_GT(decayed, 0);
  EXPECT_GT(kept, 0);
}

}  // namespace rlft::testing
