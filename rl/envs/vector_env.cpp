// VectorEnv: same-step autoreset and episode statistics; documented in vector_env.h.
#include "rl/envs/vector_env.h"

#include <algorithm>

#include "engine/error.h"

namespace rlft::envs {

VectorEnv::VectorEnv(const std::string& id, int64_t num_envs)
    : VectorEnv([&id] { return make_env(id); }, num_envs) {}

VectorEnv::VectorEnv(const std::function<std::unique_ptr<Env>()>& make, int64_t num_envs) {
  RLFT_CHECK(num_envs > 0, "VectorEnv: num_envs must be positive, got ", num_envs);
  envs_.reserve(size_t(num_envs));
  for (int64_t i = 0; i < num_envs; ++i) {
    envs_.push_back(make());
    const Env& e = *envs_.back();
    RLFT_CHECK(e.obs_dim() == envs_[0]->obs_dim() && e.action_dim() == envs_[0]->action_dim() &&
                   e.action_space().is_discrete() == envs_[0]->action_space().is_discrete(),
               "VectorEnv: sub-env ", i, " (", e.id(), ") has spaces ",
               e.observation_space().to_string(), " / ", e.action_space().to_string(),
               ", sub-env 0 (", envs_[0]->id(), ") has ", envs_[0]->observation_space().to_string(),
               " / ", envs_[0]->action_space().to_string());
  }
  obs_dim_ = envs_[0]->obs_dim();
  action_dim_ = envs_[0]->action_dim();
  const size_t b = size_t(num_envs);
  obs_.assign(b * size_t(obs_dim_), 0.0f);
  final_obs_.assign(b * size_t(obs_dim_), 0.0f);
  rewards_.assign(b, 0.0f);
  has_final_obs_.assign(b, 0);
  terminated_.assign(b, 0);
  truncated_.assign(b, 0);
  episode_return_.assign(b, 0.0);
  episode_length_.assign(b, 0);
}

void VectorEnv::reset(uint64_t seed) {
  for (int64_t i = 0; i < num_envs(); ++i) {
    envs_[size_t(i)]->reset(seed + uint64_t(i), obs_.data() + i * obs_dim_);
    episode_return_[size_t(i)] = 0.0;
    episode_length_[size_t(i)] = 0;
  }
  std::fill(has_final_obs_.begin(), has_final_obs_.end(), 0);
  std::fill(terminated_.begin(), terminated_.end(), 0);
  std::fill(truncated_.begin(), truncated_.end(), 0);
  std::fill(rewards_.begin(), rewards_.end(), 0.0f);
  finished_.clear();
  was_reset_ = true;
}

// Records the step's outcome; when the episode ended, moves its last observation to final_obs
// and resets the sub-env in place (continuing its random stream).
void VectorEnv::after_step(int64_t i, const StepResult& r) {
  const size_t k = size_t(i);
  rewards_[k] = float(r.reward);
  terminated_[k] = r.terminated;
  truncated_[k] = r.truncated;
  episode_return_[k] += r.reward;
  episode_length_[k] += 1;
  has_final_obs_[k] = r.done();
  if (r.done()) {
    float* row = obs_.data() + i * obs_dim_;
    std::copy(row, row + obs_dim_, final_obs_.data() + i * obs_dim_);
    finished_.push_back({i, episode_return_[k], episode_length_[k]});
    episode_return_[k] = 0.0;
    episode_length_[k] = 0;
    envs_[k]->reset(row);
  }
}

void VectorEnv::step(std::span<const int64_t> actions) {
  RLFT_CHECK(was_reset_, spec().id, ": VectorEnv::step called before reset");
  RLFT_CHECK(int64_t(actions.size()) == num_envs(), spec().id, ": VectorEnv::step: got ",
             actions.size(), " actions for ", num_envs(), " envs");
  // Check every action first so an invalid one leaves all sub-envs untouched.
  for (int64_t i = 0; i < num_envs(); ++i) envs_[size_t(i)]->check_action(actions[size_t(i)]);
  for (int64_t i = 0; i < num_envs(); ++i) {
    StepResult r = envs_[size_t(i)]->step(actions[size_t(i)], obs_.data() + i * obs_dim_);
    after_step(i, r);
  }
  total_steps_ += num_envs();
}

void VectorEnv::step(std::span<const float> actions) {
  RLFT_CHECK(was_reset_, spec().id, ": VectorEnv::step called before reset");
  RLFT_CHECK(int64_t(actions.size()) == num_envs() * action_dim_, spec().id,
             ": VectorEnv::step: got ", actions.size(), " action values for ", num_envs(),
             " envs x ", action_dim_, " (", single_action_space().to_string(), ")");
  for (int64_t i = 0; i < num_envs(); ++i)
    envs_[size_t(i)]->check_action(actions.data() + i * action_dim_);
  for (int64_t i = 0; i < num_envs(); ++i) {
    StepResult r =
        envs_[size_t(i)]->step(actions.data() + i * action_dim_, obs_.data() + i * obs_dim_);
    after_step(i, r);
  }
  total_steps_ += num_envs();
}

std::vector<EpisodeStats> VectorEnv::take_episode_stats() {
  std::vector<EpisodeStats> out;
  out.swap(finished_);
  return out;
}

}  // namespace rlft::envs
