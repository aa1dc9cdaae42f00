// DCPO (arXiv 2509.02333): dynamic per-token clip bounds, smooth advantage standardisation,
// only_token_mean aggregation, no KL.
#include "rl/llm/objectives/dcpo.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <tuple>

#include "rl/llm/objectives/grpo.h"

namespace rlft::llm {

std::pair<double, double> dcpo_bounds(double q, double eps_low, double eps_high, double r_max) {
  const double lower = 0.5 + 0.5 * std::sqrt(std::max(1.0 - 4.0 * eps_low / q, 0.0));
  const double upper = 0.5 + 0.5 * std::sqrt(1.0 + 4.0 * eps_high / q);
  return {std::min(lower, r_max), std::min(upper, r_max)};
}

std::pair<Tensor, Tensor> dcpo_bound_tensors(const Tensor& old_log_probs, double eps_low,
                                             double eps_high, double r_max) {
  const std::vector<double> lp = old_log_probs.to_vector();
  std::vector<double> lo(lp.size()), hi(lp.size());
  for (size_t k = 0; k < lp.size(); ++k)
    std::tie(lo[k], hi[k]) = dcpo_bounds(std::exp(lp[k]), eps_low, eps_high, r_max);
  const Device dev = old_log_probs.device();
  return {Tensor::from_vector(lo, old_log_probs.shape()).to(old_log_probs.dtype()).to(dev),
          Tensor::from_vector(hi, old_log_probs.shape()).to(old_log_probs.dtype()).to(dev)};
}

std::vector<double> SmoothAdvantage::operator()(const std::vector<double>& rewards,
                                                uint64_t prompt_id) {
  Stats& s = stats_[prompt_id];
  ++s.visits;
  s.all.insert(s.all.end(), rewards.begin(), rewards.end());
  const std::vector<double> a_new = group_advantages(rewards, true);
  // A_total: standardised by the mean and unbiased std of every reward seen for this prompt
  // (this group included); exactly 0 while they are all equal.
  const std::vector<double> a_all = group_advantages(s.all, true);
  const size_t offset = s.all.size() - rewards.size();
  const double i = double(s.visits);
  std::vector<double> out(rewards.size());
  for (size_t k = 0; k < rewards.size(); ++k) {
    const double a_total = a_all[offset + k];
    const double sa_new = ((i - 1) / i) * a_new[k] + (1 / i) * a_total;
    const double sa_total = (1 / i) * a_new[k] + ((i - 1) / i) * a_total;
    out[k] = std::abs(sa_new) <= std::abs(sa_total) ? sa_new : sa_total;
  }
  return out;
}

int64_t SmoothAdvantage::visits(uint64_t prompt_id) const {
  auto it = stats_.find(prompt_id);
  return it == stats_.end() ? 0 : it->second.visits;
}

json::Value SmoothAdvantage::to_json() const {
  json::Value v = json::Value::object();
  for (const auto& [id, st] : stats_) {
    json::Value row = json::Value::array();
    row.push_back(st.visits);
    for (double r : st.all) row.push_back(r);
    v.set(std::to_string(id), row);
  }
  return v;
}

void SmoothAdvantage::from_json(const json::Value& v) {
  stats_.clear();
  if (v.is_null()) return;
  for (const auto& [id, row] : v.as_object()) {
    RLFT_CHECK(row.is_array() && row.size() >= 1, "dcpo state: prompt ", id,
               ": expected [visits, rewards…], got ", row.dump());
    char* end = nullptr;
    const unsigned long long key = std::strtoull(id.c_str(), &end, 10);
    RLFT_CHECK(!id.empty() && id[0] >= '0' && id[0] <= '9' && *end == '\0',
               "dcpo state: prompt id '", id, "' is not an unsigned integer");
    RLFT_CHECK(row.at(0).is_int() && row.at(0).as_int() >= 1, "dcpo state: prompt ", id,
               ": visits must be an integer >= 1, got ", row.at(0).dump());
    Stats& st = stats_[key];
    st.visits = row.at(0).as_int();
    for (size_t k = 1; k < row.size(); ++k) {
      RLFT_CHECK(row.at(k).is_number() && std::isfinite(row.at(k).as_double()),
                 "dcpo state: prompt ", id, ": reward ", k,
                 " is not a finite number: ", row.at(k).dump());
      st.all.push_back(row.at(k).as_double());
    }
  }
}

void dcpo_defaults(GroupRLConfig& c) {
  c.epsilon = 0.16;      // paper: ε_low = 0.16
  c.epsilon_high = 0.2;  // paper: ε_high = 0.2
  c.ratio_level = "token";
  c.aggregation = "only_token_mean";  // paper: Σ_i (1/|o_i|) Σ_t, no 1/B
  c.beta = 0.0;
  c.kl = "none";
  c.scale_by_std = true;
  c.dynamic_sampling = false;  // SAS keeps all-equal groups useful instead
  c.overlong_shaping = false;
  c.dcpo_r_max = 10.0;
  c.reward_wrong = 0.0;
}

namespace {
class DCPO : public Objective {
 public:
  std::string name() const override { return "dcpo"; }
  std::vector<double> advantages(const std::vector<double>& rewards, uint64_t prompt_id) override {
    return sas_(rewards, prompt_id);
  }
  json::Value state() const override { return sas_.to_json(); }
  void load_state(const json::Value& v) override { sas_.from_json(v); }

 private:
  SmoothAdvantage sas_;
};
}  // namespace

std::unique_ptr<Objective> make_dcpo(const GroupRLConfig&) { return std::make_unique<DCPO>(); }

}  // namespace rlft::llm
