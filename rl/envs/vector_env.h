// VectorEnv: N copies of one environment stepped together, with Gymnasium's "same-step"
// autoreset (gymnasium.vector.SyncVectorEnv with AutoresetMode.SAME_STEP) and the episode
// statistics of gymnasium.wrappers.vector.RecordEpisodeStatistics.
//
// Buffers (row i belongs to sub-env i; B = num_envs, O = obs_dim):
//   obs()            [B, O]  the observation to act on next: after a step that ended episode i,
//                            row i is already the first observation of its next episode
//   final_obs()      [B, O]  row i holds the last observation of the episode that just ended
//                            (valid only where has_final_obs()[i]); bootstrap a truncated
//                            episode from it: V(final_obs) instead of V(obs)
//   has_final_obs()  [B]     1 where sub-env i ended an episode in this step, else 0
//   rewards()        [B]     reward of this step (float32)
//   terminated()     [B]     1 where the episode reached a terminal state
//   truncated()      [B]     1 where the time limit cut it (both may be 1 at once)
// Rewards, terminated and truncated always describe the step that was taken (the final step
// of an ended episode), never the reset.
//
// Seeding: reset(seed) resets sub-env i with seed + i; autoresets continue each sub-env's own
// random stream (Gymnasium resets with seed=None), so one seed fixes the whole run.
// Episode statistics: each finished episode appends {env_index, return, length}; drain them
// with take_episode_stats(). The return is the sum of the float64 rewards of the episode.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "rl/envs/env.h"

namespace rlft::envs {

struct EpisodeStats {
  int64_t env_index = 0;
  double episode_return = 0.0;
  int64_t length = 0;
};

class VectorEnv {
 public:
  VectorEnv(const std::string& id, int64_t num_envs);
  // make() is called num_envs times; every copy must have the same spaces.
  VectorEnv(const std::function<std::unique_ptr<Env>()>& make, int64_t num_envs);

  int64_t num_envs() const { return int64_t(envs_.size()); }
  const Env& env(int64_t i) const { return *envs_[size_t(i)]; }
  Env& env(int64_t i) { return *envs_[size_t(i)]; }
  const EnvSpec& spec() const { return envs_[0]->spec(); }
  const Space& single_observation_space() const { return envs_[0]->observation_space(); }
  const Space& single_action_space() const { return envs_[0]->action_space(); }
  int64_t obs_dim() const { return obs_dim_; }
  int64_t action_dim() const { return action_dim_; }

  void reset(uint64_t seed);
  // Discrete action spaces: B action indices.
  void step(std::span<const int64_t> actions);
  // Any action space: B x action_dim() floats (a discrete action as an exactly integral float).
  void step(std::span<const float> actions);

  std::span<const float> obs() const { return obs_; }
  std::span<const float> final_obs() const { return final_obs_; }
  std::span<const uint8_t> has_final_obs() const { return has_final_obs_; }
  std::span<const float> rewards() const { return rewards_; }
  std::span<const uint8_t> terminated() const { return terminated_; }
  std::span<const uint8_t> truncated() const { return truncated_; }

  // Episodes finished since the last call, in the order they finished.
  std::vector<EpisodeStats> take_episode_stats();
  // Total env steps taken (sum over sub-envs) since construction.
  int64_t total_steps() const { return total_steps_; }

 private:
  void after_step(int64_t i, const StepResult& r);

  std::vector<std::unique_ptr<Env>> envs_;
  int64_t obs_dim_ = 0, action_dim_ = 0;
  bool was_reset_ = false;
  std::vector<float> obs_, final_obs_, rewards_;
  std::vector<uint8_t> has_final_obs_, terminated_, truncated_;
  std::vector<double> episode_return_;
  std::vector<int64_t> episode_length_;
  std::vector<EpisodeStats> finished_;
  int64_t total_steps_ = 0;
};

}  // namespace rlft::envs
