// Running mean and variance (Chan et al.'s parallel update, as Gymnasium's RunningMeanStd),
// used for observation and reward normalisation in PPO on continuous control.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "engine/error.h"
#include "engine/json.h"

namespace rlft::rl {

class RunningMeanStd {
 public:
  explicit RunningMeanStd(int64_t dim = 1) : mean_(size_t(dim), 0.0), var_(size_t(dim), 1.0) {}
  int64_t dim() const { return int64_t(mean_.size()); }

  // Folds in a batch of `rows` vectors of dim() values.
  void update(const float* x, int64_t rows) {
    const size_t d = mean_.size();
    std::vector<double> bm(d, 0.0), bv(d, 0.0);
    for (int64_t r = 0; r < rows; ++r)
      for (size_t j = 0; j < d; ++j) bm[j] += x[r * d + j];
    for (size_t j = 0; j < d; ++j) bm[j] /= double(rows);
    for (int64_t r = 0; r < rows; ++r)
      for (size_t j = 0; j < d; ++j) {
        const double e = x[r * d + j] - bm[j];
        bv[j] += e * e;
      }
    for (size_t j = 0; j < d; ++j) bv[j] /= double(rows);
    const double total = count_ + double(rows);
    for (size_t j = 0; j < d; ++j) {
      const double delta = bm[j] - mean_[j];
      const double m2 =
          var_[j] * count_ + bv[j] * double(rows) + delta * delta * count_ * double(rows) / total;
      mean_[j] += delta * double(rows) / total;
      var_[j] = m2 / total;
    }
    count_ = total;
  }

  // out = clip((x − mean)/√(var + eps), ±clip) for `rows` vectors.
  void normalize(const float* x, int64_t rows, float* out, double clip = 10.0,
                 double eps = 1e-8) const {
    const size_t d = mean_.size();
    for (int64_t r = 0; r < rows; ++r)
      for (size_t j = 0; j < d; ++j) {
        double v = (x[r * d + j] - mean_[j]) / std::sqrt(var_[j] + eps);
        v = v > clip ? clip : (v < -clip ? -clip : v);
        out[r * d + j] = float(v);
      }
  }
  double var(int64_t j) const { return var_[size_t(j)]; }

  json::Value to_json() const {
    json::Value v = json::Value::object();
    json::Value m = json::Value::array(), s = json::Value::array();
    for (size_t j = 0; j < mean_.size(); ++j) {
      m.push_back(mean_[j]);
      s.push_back(var_[j]);
    }
    v.set("mean", m);
    v.set("var", s);
    v.set("count", count_);
    return v;
  }
  static RunningMeanStd from_json(const json::Value& v) {
    RunningMeanStd r(int64_t(v.at("mean").size()));
    RLFT_CHECK(v.at("var").size() == v.at("mean").size(),
               "RunningMeanStd: mean and var sizes differ");
    for (size_t j = 0; j < r.mean_.size(); ++j) {
      r.mean_[j] = v.at("mean").at(j).as_double();
      r.var_[j] = v.at("var").at(j).as_double();
    }
    r.count_ = v.at("count").as_double();
    return r;
  }
  // The statistics stored in a policy or checkpoint file's "obs_rms" metadata, checked: JSON of
  // `dim` finite means, `dim` finite variances >= 0 and a finite count > 0. An error names
  // `source` (the file) and what is wrong, so a damaged file never normalises with NaN.
  static RunningMeanStd from_metadata(const std::string& text, const std::string& source,
                                      int64_t dim) {
    const std::string what = source + ": metadata obs_rms: ";
    RunningMeanStd r;
    try {
      r = from_json(json::parse(text, source));
    } catch (const Error& e) {
      throw Error(what + e.what());
    }
    RLFT_CHECK(r.dim() == dim, what, "has ", r.dim(), " values but the policy observes ", dim);
    for (int64_t j = 0; j < dim; ++j) {
      RLFT_CHECK(std::isfinite(r.mean_[size_t(j)]), what, "mean[", j, "] is ", r.mean_[size_t(j)]);
      RLFT_CHECK(std::isfinite(r.var_[size_t(j)]) && r.var_[size_t(j)] >= 0, what, "var[", j,
                 "] is ", r.var_[size_t(j)], " (must be finite and >= 0)");
    }
    RLFT_CHECK(std::isfinite(r.count_) && r.count_ > 0, what, "count is ", r.count_,
               " (must be finite and > 0)");
    return r;
  }

 private:
  std::vector<double> mean_, var_;
  double count_ = 1e-4;  // Gymnasium's epsilon count
};

// Reward scaling r / √(Var[G] + eps), G the running discounted return, reset at every episode
// end (terminated or truncated), as CleanRL's gym-0.23 wrapper and SB3's VecNormalize do;
// Gymnasium 1.x's NormalizeReward resets it on termination only.
struct RewardScaler {
  RunningMeanStd rms{1};
  std::vector<double> ret;
  double gamma;
  RewardScaler(int64_t n, double g) : ret(size_t(n), 0.0), gamma(g) {}
  void scale(float* rewards, const uint8_t* done, int64_t n) {
    g_.resize(static_cast<size_t>(n));  // once: every step has the same n envs
    for (int64_t i = 0; i < n; ++i) {
      ret[i] = ret[i] * gamma + rewards[i];
      g_[i] = float(ret[i]);
    }
    rms.update(g_.data(), n);
    const double s = std::sqrt(rms.var(0) + 1e-8);
    for (int64_t i = 0; i < n; ++i) {
      rewards[i] = float(std::clamp(double(rewards[i]) / s, -10.0, 10.0));
      if (done[i]) ret[i] = 0;
    }
  }

 private:
  std::vector<float> g_;  // the returns as floats, for rms
};

}  // namespace rlft::rl
