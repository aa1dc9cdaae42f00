// The ratio-clip option space the kernel tests sweep (tests/kernels/test_rl_kernels.cpp against
// the double-precision reference, tests/kernels/test_cuda_kernels.cpp CUDA against the CPU):
// every level × aggregation × advantage layout × bounds × dual clip × mask × normalizer that
// the kernels accept (RatioLevel::sequence needs per-sequence advantages and scalar bounds;
// only_token_mean takes no normalizer).
#pragma once

#include <vector>

#include "kernels/ratio_clip.h"

namespace rlft::test {

struct RatioClipMode {
  kernels::RatioLevel level = kernels::RatioLevel::token;
  kernels::Aggregation agg = kernels::Aggregation::token_mean;
  bool adv_per_seq = false, with_mask = true, per_token_bounds = false;
  double dual = 0.0, normalizer = 0.0;
};

inline std::vector<RatioClipMode> every_ratio_clip_mode() {
  using kernels::Aggregation;
  using kernels::RatioLevel;
  std::vector<RatioClipMode> out;
  for (auto level : {RatioLevel::token, RatioLevel::sequence, RatioLevel::sequence_token})
    for (auto agg : {Aggregation::token_mean, Aggregation::seq_mean_token_mean,
                     Aggregation::seq_mean_token_sum, Aggregation::constant_norm,
                     Aggregation::only_token_mean})
      for (bool adv_per_seq : {false, true})
        for (bool bounds : {false, true})
          for (double dual : {0.0, 3.0})
            for (bool with_mask : {false, true})
              for (double normalizer : {0.0, 37.0}) {
                if (level == RatioLevel::sequence && (!adv_per_seq || bounds)) continue;
                if (agg == Aggregation::only_token_mean && normalizer > 0) continue;
                RatioClipMode m;
                m.level = level;
                m.agg = agg;
                m.adv_per_seq = adv_per_seq;
                m.per_token_bounds = bounds;
                m.dual = dual;
                m.with_mask = with_mask;
                m.normalizer = normalizer;
                out.push_back(m);
              }
  return out;
}

}  // namespace rlft::test
