// The running statistics behind PPO's observation and reward normalisation (rl/normalize.h):
// RunningMeanStd's merge of a batch into its running mean and variance (Chan et al.), and
// RewardScaler's running discounted return, reset at each episode end. Hand-computed cases.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <vector>

#include "engine/tensor.h"
#include "rl/normalize.h"
#include "rl/ppo.h"
#include "rl/reinforce.h"
#include "test_util.h"

using namespace rlft;
using namespace rlft::rl;

// Two batches, {1, 2, 3} then {4, 5}, merged into the initial state (mean 0, var 1, count 1e-4,
// Gymnasium's epsilon count). Chan's merge is exact, so the result is the weighted population
// statistics of a pseudo-sample of weight c = 1e-4 (mean 0, E[x²] = var + mean² = 1) and the five
// values: n = 5 + c,
//   mean = (1 + 2 + 3 + 4 + 5)/n = 15/5.0001 = 2.9999400011999757
//   var  = (c·1 + 1 + 4 + 9 + 16 + 25)/n − mean² = 55.0001/5.0001 − (15/5.0001)²
//        = 2.000159993200208.
// The second merge needs the δ²·count·rows/total term (δ = 4.5 − mean after the first batch):
// without it the variance is only the within-batch parts, (c + 2 + 0.5)/5.0001 = 0.50001.
TEST(RunningMeanStd, MergesBatchesAsOnePopulation) {
  RunningMeanStd r(1);
  const std::vector<float> a = {1, 2, 3}, b = {4, 5};
  r.update(a.data(), 3);
  r.update(b.data(), 2);
  EXPECT_NEAR(r.var(0), 2.000159993200208, 1e-12);
  const json::Value s = r.to_json();
  EXPECT_NEAR(s.at("mean").at(0).as_double(), 2.9999400011999757, 1e-12);
  EXPECT_NEAR(s.at("count").as_double(), 5.0001, 1e-12);
}

// An observation is normalised by the standard deviation, not the variance, then clipped to
// ±10. After {0, 4} (and the initial c = 1e-4 at mean 0, var 1): mean = 4/2.0001 = 1.99990000,
// var = (c + 0 + 16)/2.0001 − mean² = 4.00004999; 6 normalises to (6 − mean)/√(var + 1e-8) =
// 2.0000375 (by the variance it would be 1.0000125), and 1000 to the clip, 10.
TEST(RunningMeanStd, NormalizesByTheStandardDeviationAndClips) {
  RunningMeanStd r(1);
  const std::vector<float> batch = {0, 4};
  r.update(batch.data(), 2);
  EXPECT_NEAR(r.var(0), 4.000049987501125, 1e-12);
  const std::vector<float> x = {6, 1000, -1000};
  std::vector<float> out(3);
  r.normalize(x.data(), 3, out.data());
  EXPECT_NEAR(out[0], 2.0000374979295525, 1e-6);
  EXPECT_EQ(out[1], 10.0f);
  EXPECT_EQ(out[2], -10.0f);
}

// A dimension whose variance is 0 (a constant observation) divides by √(0 + 1e-8) = 1e-4, never
// by 0: a value at the mean normalises to 0 (0/0 would be NaN, which no clip removes), one 1e-6
// above it to 0.01.
TEST(RunningMeanStd, AZeroVarianceDividesByTheSquareRootOfEpsilon) {
  const RunningMeanStd r =
      RunningMeanStd::from_json(json::parse(R"({"mean": [0], "var": [0], "count": 3})"));
  const std::vector<float> x = {0.0f, 1e-6f};
  std::vector<float> out(2);
  r.normalize(x.data(), 2, out.data());
  EXPECT_EQ(out[0], 0.0f);
  EXPECT_NEAR(out[1], 0.01, 1e-6);
}

// A policy file's obs_rms has as many variances as means: one more is refused, not ignored.
TEST(RunningMeanStd, MetadataWithMoreVariancesThanMeansIsRefused) {
  EXPECT_EQ(rlft::testing::error_of([] {
              (void)RunningMeanStd::from_metadata(R"({"mean": [1], "var": [2, 3], "count": 1})",
                                                  "p.st", 1);
            }),
            "p.st: metadata obs_rms: RunningMeanStd: mean and var sizes differ");
}

// A policy file's obs_rms count must be a finite number above 0 (the statistics' weight).
TEST(RunningMeanStd, MetadataWithACountOfZeroIsRefused) {
  EXPECT_EQ(
      RunningMeanStd::from_metadata(R"({"mean": [1], "var": [2], "count": 0.5})", "p", 1).var(0),
      2.0);
  for (const char* count : {"0", "-1"})
    EXPECT_EQ(
        rlft::testing::error_of([&] {
          (void)RunningMeanStd::from_metadata(
              std::string(R"({"mean": [1], "var": [2], "count": )") + count + "}", "p.st", 1);
        }),
        std::string("p.st: metadata obs_rms: count is ") + count + " (must be finite and > 0)");
}

// Without an episode end the running return is discounted: γ = 0.9, rewards 1 then 2 give
// G = 1, then 0.9·1 + 2 = 2.9 (undiscounted it would be 3). The statistics then hold c = 1e-4
// (mean 0, var 1), 1 and 2.9: var = (c + 1 + 2.9²)/2.0001 − (3.9/2.0001)² = 0.90269498, and
// the second reward scales to 2/√(var + 1e-8) = 2.1050358.
TEST(RewardScaler, DiscountsTheReturnByGamma) {
  RewardScaler s(1, 0.9);
  const uint8_t not_done = 0;
  float r = 1;
  s.scale(&r, &not_done, 1);
  EXPECT_EQ(s.ret[0], 1.0);
  r = 2;
  s.scale(&r, &not_done, 1);
  EXPECT_NEAR(s.ret[0], 2.9, 1e-12);
  EXPECT_NEAR(r, 2.1050357671332236, 1e-5);  // the statistics hold 2.9 as a float
}

// One env, γ = 0.9. Step 1: reward 1 ends the episode: G = 1; the statistics hold c = 1e-4
// (mean 0, var 1) and 1, so var = (c + 1)/(1 + c) − (1/(1 + c))² = 1 − 1/1.0001² ≈ 2.0e-4 and
// 1/√(var + 1e-8) = 70.7 is clipped to 10. G is then reset to 0, so step 2's reward 2 gives
// G = 0.9·0 + 2 = 2 (not 0.9·1 + 2 = 2.9). The statistics now hold c, 1 and 2:
//   var = (c + 1 + 4)/2.0001 − (3/2.0001)² = 0.2501499868759374,
//   scaled reward = 2/√(var + 1e-8) = 3.9988005647001663
// (without the reset: G = 2.9, var = (c + 1 + 8.41)/2.0001 − (3.9/2.0001)², reward 2.10504).
TEST(RewardScaler, ResetsTheReturnAtAnEpisodeEnd) {
  RewardScaler s(1, 0.9);
  float r = 1;
  const uint8_t done = 1, not_done = 0;
  s.scale(&r, &done, 1);
  EXPECT_EQ(r, 10.0f);
  EXPECT_EQ(s.ret[0], 0.0);
  r = 2;
  s.scale(&r, &not_done, 1);
  EXPECT_EQ(s.ret[0], 2.0);
  EXPECT_NEAR(r, 3.9988005647001663, 1e-5);  // float output: 2^-22 relative of ~4
}

// REINFORCE's --normalize-returns: (w − mean)/(std + 1e-8) with the unbiased std. For
// {1, 2, 3, 6}: mean 3, Σ(w − 3)² = 14, std √(14/3) = 2.1602469; the population std √(14/4)
// would give −1.0690450 for the first.
TEST(ReinforceWeights, NormalizedWithTheUnbiasedStd) {
  std::vector<float> w = {1, 2, 3, 6};
  normalize_weights(w);
  const double sd = std::sqrt(14.0 / 3.0) + 1e-8;
  EXPECT_NEAR(w[0], -2 / sd, 1e-6);  // −0.9258201
  EXPECT_NEAR(w[1], -1 / sd, 1e-6);
  EXPECT_EQ(w[2], 0.0f);
  EXPECT_NEAR(w[3], 3 / sd, 1e-6);  // 1.3887301
  std::vector<float> one = {5};
  normalize_weights(one);
  EXPECT_EQ(one[0], 5.0f);  // a single weight stays
}

// PPO's logged explained variance, 1 − Var[R − V]/Var[R] with population variances: V = [1, 2,
// 3], R = [1, 2, 4]: Var[R] = 14/9, R − V = [0, 0, 1] with Var 2/9, so 1 − 2/14 = 6/7 (a
// difference of variances instead, 1 − |Var R − Var V|/Var R, would give 3/7). Constant returns:
// NaN.
TEST(PPOLogs, ExplainedVarianceIsOneMinusTheResidualsShare) {
  const Tensor v = Tensor::from_vector(std::vector<double>{1, 2, 3}, {3}),
               r = Tensor::from_vector(std::vector<double>{1, 2, 4}, {3});
  EXPECT_NEAR(explained_variance(v, r), 6.0 / 7.0, 1e-12);
  EXPECT_TRUE(
      std::isnan(explained_variance(v, Tensor::from_vector(std::vector<double>{2, 2, 2}, {3}))));
}
