// Env base class (TimeLimit + OrderEnforcing + action checks), Space, and the make_env registry.
#include "rl/envs/env.h"

#include <cmath>
#include <functional>
#include <sstream>
#include <utility>

#include "engine/error.h"
#include "rl/envs/cartpole.h"
#include "rl/envs/lunar_lander.h"
#include "rl/envs/pendulum.h"

namespace rlft::envs {

// ---- Space ------------------------------------------------------------------------------

Space Space::discrete(int64_t n) {
  RLFT_CHECK(n > 0, "Space::discrete: n must be positive, got ", n);
  Space s;
  s.kind = Kind::Discrete;
  s.n = n;
  return s;
}

Space Space::box(std::vector<float> low, std::vector<float> high) {
  RLFT_CHECK(low.size() == high.size() && !low.empty(), "Space::box: low has ", low.size(),
             " values and high ", high.size());
  Space s;
  s.kind = Kind::Box;
  s.shape = {int64_t(low.size())};
  s.low = std::move(low);
  s.high = std::move(high);
  return s;
}

Space Space::box(float low, float high, int64_t size) {
  return box(std::vector<float>(size_t(size), low), std::vector<float>(size_t(size), high));
}

int64_t Space::flat_size() const {
  if (kind == Kind::Discrete) return 1;
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

namespace {
bool all_equal(const std::vector<float>& v) {
  for (float x : v)
    if (x != v[0]) return false;
  return true;
}
void print_values(std::ostream& os, const std::vector<float>& v) {
  os << '[';
  for (size_t i = 0; i < v.size(); ++i) os << (i ? " " : "") << v[i];
  os << ']';
}
}  // namespace

std::string Space::to_string() const {
  std::ostringstream os;
  if (kind == Kind::Discrete) {
    os << "Discrete(" << n << ")";
    return os.str();
  }
  os << "Box(";
  if (all_equal(low) && all_equal(high)) {
    os << low[0] << ", " << high[0];
  } else {
    print_values(os, low);
    os << ", ";
    print_values(os, high);
  }
  os << ", (";
  for (size_t i = 0; i < shape.size(); ++i)
    os << shape[i] << (shape.size() == 1 ? "," : i + 1 < shape.size() ? ", " : "");
  os << "), float32)";
  return os.str();
}

// ---- Env --------------------------------------------------------------------------------

Env::Env(EnvSpec spec, Space observation_space, Space action_space)
    : spec_(std::move(spec)),
      observation_space_(std::move(observation_space)),
      action_space_(std::move(action_space)) {}

void Env::begin_episode() {
  elapsed_steps_ = 0;
  needs_reset_ = false;
}

void Env::reset(uint64_t seed, float* obs) {
  rng_ = Generator(seed);
  reset(obs);
}

void Env::reset(float* obs) {
  begin_episode();
  reset_impl(obs);
}

void Env::reset_to_state(std::span<const double> state, float* obs) {
  for (size_t i = 0; i < state.size(); ++i)
    RLFT_CHECK(std::isfinite(state[i]), id(), ": reset_to_state: state[", i, "] is ", state[i]);
  begin_episode();
  reset_to_state_impl(state, obs);
}

void Env::check_can_step() const {
  RLFT_CHECK(
      !needs_reset_, id(), ": step called ",
      elapsed_steps_ == 0 ? "before reset" : "after the episode ended (terminated or truncated)",
      "; call reset first");
}

// TimeLimit: truncated once elapsed_steps reaches max_episode_steps (possibly together with
// terminated, as in Gymnasium).
StepResult Env::finish_step(StepResult r) {
  ++elapsed_steps_;
  if (spec_.max_episode_steps > 0 && elapsed_steps_ >= spec_.max_episode_steps) r.truncated = true;
  if (r.done()) needs_reset_ = true;
  return r;
}

void Env::check_action(int64_t action) const {
  RLFT_CHECK(action_space_.is_discrete(), id(), ": step: got the integer action ", action,
             " but the action space is ", action_space_.to_string(), "; pass ", action_dim(),
             " floats");
  RLFT_CHECK(action >= 0 && action < action_space_.n, id(), ": step: action ", action,
             " is not in ", action_space_.to_string());
}

void Env::check_action(const float* action) const {
  if (action_space_.is_discrete()) {
    // A discrete action given as a float must hold an exact integer (NaN fails this too).
    const float a = action[0];
    RLFT_CHECK(a == std::floor(a) && a >= 0.0f && a < float(action_space_.n), id(),
               ": step: action ", a, " is not in ", action_space_.to_string());
    return;
  }
  for (int64_t i = 0; i < action_dim(); ++i)
    RLFT_CHECK(!std::isnan(action[i]), id(), ": step: action[", i, "] is NaN");
}

StepResult Env::step(int64_t action, float* obs) {
  check_action(action);
  check_can_step();
  return finish_step(step_impl(action, nullptr, obs));
}

StepResult Env::step(const float* action, float* obs) {
  check_action(action);
  check_can_step();
  if (action_space_.is_discrete()) return finish_step(step_impl(int64_t(action[0]), nullptr, obs));
  return finish_step(step_impl(0, action, obs));
}

StepResult Env::step(std::span<const float> action, float* obs) {
  RLFT_CHECK(int64_t(action.size()) == action_dim(), id(), ": step: action has ", action.size(),
             " values, expected ", action_dim(), " for ", action_space_.to_string());
  return step(action.data(), obs);
}

// ---- registry ---------------------------------------------------------------------------

namespace {
struct Registration {
  const char* id;
  std::function<std::unique_ptr<Env>()> make;
};

const std::vector<Registration>& registry() {
  static const std::vector<Registration> r = {
      {"CartPole-v1", [] { return std::unique_ptr<Env>(new CartPole()); }},
      {"Pendulum-v1", [] { return std::unique_ptr<Env>(new Pendulum()); }},
#ifdef RLFT_HAVE_BOX2D
      {"LunarLander-v3", [] { return std::unique_ptr<Env>(new LunarLander(false)); }},
      {"LunarLanderContinuous-v3", [] { return std::unique_ptr<Env>(new LunarLander(true)); }},
#endif
  };
  return r;
}
}  // namespace

std::vector<std::string> env_ids() {
  std::vector<std::string> ids;
  for (const auto& r : registry()) ids.emplace_back(r.id);
  return ids;
}

std::unique_ptr<Env> make_env(const std::string& id) {
  for (const auto& r : registry())
    if (id == r.id) return r.make();
  std::string known;
  for (const auto& r : registry()) known += (known.empty() ? "" : ", ") + std::string(r.id);
#ifndef RLFT_HAVE_BOX2D
  if (id.rfind("LunarLander", 0) == 0)
    throw Error(str("make_env: '", id,
                    "' needs Box2D, which this build lacks (install libbox2d-dev ",
                    "and reconfigure); known environments: ", known));
#endif
  throw Error(str("make_env: unknown environment '", id, "'; known environments: ", known));
}

}  // namespace rlft::envs
