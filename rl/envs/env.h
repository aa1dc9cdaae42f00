// rlft::envs — reinforcement-learning environments with Gymnasium semantics.
//
// An Env is one episode-based simulator, the C++ twin of `gymnasium.make(id)`: the raw
// environment wrapped in Gymnasium's TimeLimit (truncated once `max_episode_steps` steps have
// been taken) and OrderEnforcing (step before reset is an error). Known ids:
//
//   CartPole-v1               Discrete(2)          obs Box(4)  limit  500  threshold 475
//   Pendulum-v1               Box(-2, 2, (1,))     obs Box(3)  limit  200  no threshold
//   LunarLander-v3            Discrete(4)          obs Box(8)  limit 1000  threshold 200
//   LunarLanderContinuous-v3  Box(-1, 1, (2,))     obs Box(8)  limit 1000  threshold 200
//
// (LunarLander needs Box2D: it exists when the build defines RLFT_HAVE_BOX2D.)
//
// Calling convention, designed so a rollout loop allocates nothing and copies nothing:
//   - observations are float32 and written into a caller buffer of obs_dim() floats;
//     internal state stays double where Gymnasium keeps it in float64;
//   - reset(seed, obs) re-seeds the env's random stream (Gymnasium reset(seed=s));
//     reset(obs) continues the current stream (Gymnasium reset() with seed=None; an env
//     never seeded uses seed 0, so one seed still fixes everything);
//   - a discrete action is passed as an integer index, step(int64_t a, obs), or as one float
//     that holds an exact integer, step(const float* a, obs); anything else (out of range,
//     fractional, NaN) throws rlft::Error naming the env and the value;
//   - a continuous action is action_dim() floats; NaN throws, out-of-bounds values are
//     clipped to the action space by the env exactly where Gymnasium's env clips them;
//   - step(std::span<const float>, obs) additionally checks the number of values;
//   - stepping after terminated/truncated without reset throws (Gymnasium leaves it undefined).
// Rewards are returned as double (Gymnasium returns Python floats).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "engine/rng.h"

namespace rlft::envs {

// Discrete(n): integers 0..n-1.  Box(low, high, shape): float32 arrays within [low, high].
struct Space {
  enum class Kind { Discrete, Box };
  Kind kind = Kind::Discrete;
  int64_t n = 0;               // Discrete only
  std::vector<int64_t> shape;  // Box only
  std::vector<float> low;      // Box only, one bound per element (may be +-inf)
  std::vector<float> high;

  static Space discrete(int64_t n);
  static Space box(std::vector<float> low, std::vector<float> high);  // 1-D, shape {low.size()}
  static Space box(float low, float high, int64_t size);

  bool is_discrete() const { return kind == Kind::Discrete; }
  // Number of float32 values one element of the space takes in a buffer (1 for Discrete).
  int64_t flat_size() const;
  // "Discrete(2)" or "Box(-2, 2, (1,))" (Gymnasium's repr, bounds shown when uniform).
  std::string to_string() const;
};

// Registration metadata (gymnasium.envs.registration.EnvSpec).
struct EnvSpec {
  std::string id;
  int64_t max_episode_steps = 0;  // TimeLimit; 0 = none
  std::optional<double> reward_threshold;
};

struct StepResult {
  double reward = 0.0;
  bool terminated = false;  // the MDP reached a terminal state: do not bootstrap
  bool truncated = false;   // cut by the time limit: bootstrap from the final observation
  bool done() const { return terminated || truncated; }
};

class Env {
 public:
  explicit Env(EnvSpec spec, Space observation_space, Space action_space);
  virtual ~Env() = default;
  Env(const Env&) = delete;
  Env& operator=(const Env&) = delete;

  const EnvSpec& spec() const { return spec_; }
  const std::string& id() const { return spec_.id; }
  const Space& observation_space() const { return observation_space_; }
  const Space& action_space() const { return action_space_; }
  int64_t obs_dim() const { return observation_space_.flat_size(); }
  int64_t action_dim() const { return action_space_.flat_size(); }
  int64_t max_episode_steps() const { return spec_.max_episode_steps; }
  int64_t elapsed_steps() const { return elapsed_steps_; }

  void reset(uint64_t seed, float* obs);
  void reset(float* obs);
  // Starts an episode from an explicit initial state instead of a random draw (for tests and
  // fixtures; the meaning of `state` is documented by each env). The random stream is left as
  // it is.
  void reset_to_state(std::span<const double> state, float* obs);

  StepResult step(int64_t action, float* obs);
  StepResult step(int action, float* obs) { return step(int64_t(action), obs); }
  StepResult step(const float* action, float* obs);
  StepResult step(std::span<const float> action, float* obs);

  // Throw rlft::Error as step would for an invalid action; nothing changes.
  void check_action(int64_t action) const;
  void check_action(const float* action) const;

  // The env's random stream (for envs that draw during steps, e.g. LunarLander's dispersion).
  Generator& generator() { return rng_; }

 protected:
  // Draws the initial state from rng_ and writes the first observation.
  virtual void reset_impl(float* obs) = 0;
  virtual void reset_to_state_impl(std::span<const double> state, float* obs) = 0;
  // action: the validated discrete index (continuous == nullptr) or action_dim() floats
  // without NaN, not yet clipped.
  virtual StepResult step_impl(int64_t discrete_action, const float* continuous_action,
                               float* obs) = 0;

  Generator rng_{0};

 private:
  void begin_episode();
  StepResult finish_step(StepResult r);
  void check_can_step() const;

  EnvSpec spec_;
  Space observation_space_;
  Space action_space_;
  int64_t elapsed_steps_ = 0;
  bool needs_reset_ = true;
};

// gymnasium.make(id) for the ids above; an unknown id throws rlft::Error listing the known ones.
std::unique_ptr<Env> make_env(const std::string& id);
// The ids make_env accepts in this build.
std::vector<std::string> env_ids();

}  // namespace rlft::envs
