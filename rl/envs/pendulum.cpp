// Pendulum-v1; the equations and constants are documented in pendulum.h.
#include "rl/envs/pendulum.h"

#include <algorithm>
#include <cmath>
#include <numbers>

#include "engine/error.h"

namespace rlft::envs {

namespace {
// Constants of gymnasium/envs/classic_control/pendulum.py.
constexpr double kMaxSpeed = 8;
constexpr float kMaxTorque = 2.0f;
constexpr double kDt = 0.05;
constexpr double kG = 10.0;
constexpr double kM = 1.0;
constexpr double kL = 1.0;
constexpr double kPi = std::numbers::pi;

// ((x + pi) % (2 pi)) - pi with Python's floor modulo (the result takes the divisor's sign),
// as NumPy computes it for a float64 scalar.
double angle_normalize(double x) {
  const double b = 2 * kPi;
  double mod = std::fmod(x + kPi, b);
  if (mod != 0.0) {
    if (mod < 0.0) mod += b;
  } else {
    mod = 0.0;
  }
  return mod - kPi;
}
}  // namespace

Pendulum::Pendulum()
    : Env(EnvSpec{"Pendulum-v1", 200, std::nullopt},
          Space::box({-1.0f, -1.0f, -float(kMaxSpeed)}, {1.0f, 1.0f, float(kMaxSpeed)}),
          Space::box(-kMaxTorque, kMaxTorque, 1)) {}

void Pendulum::write_obs(float* obs) const {
  obs[0] = float(std::cos(state_[0]));
  obs[1] = float(std::sin(state_[0]));
  obs[2] = float(state_[1]);
}

void Pendulum::reset_impl(float* obs) {
  state_[0] = rng_.uniform(-kPi, kPi);
  state_[1] = rng_.uniform(-1.0, 1.0);
  write_obs(obs);
}

void Pendulum::reset_to_state_impl(std::span<const double> state, float* obs) {
  RLFT_CHECK(state.size() == 2, id(),
             ": reset_to_state: expected 2 values (theta, theta_dot), got ", state.size());
  state_[0] = state[0];
  state_[1] = state[1];
  write_obs(obs);
}

StepResult Pendulum::step_impl(int64_t, const float* action, float* obs) {
  const double th = state_[0], thdot = state_[1];
  // np.clip(u, -max_torque, max_torque)[0] on a float32 array stays float32.
  const float u = std::clamp(action[0], -kMaxTorque, kMaxTorque);
  const float u_cost = 0.001f * (u * u);  // float32 in NumPy 2
  const double an = angle_normalize(th);
  const double costs = an * an + 0.1 * (thdot * thdot) + double(u_cost);

  const float u_acc = float(3.0 / (kM * kL * kL)) * u;  // float32 in NumPy 2
  double newthdot = thdot + (3 * kG / (2 * kL) * std::sin(th) + double(u_acc)) * kDt;
  newthdot = std::clamp(newthdot, -kMaxSpeed, kMaxSpeed);
  const double newth = th + newthdot * kDt;
  state_[0] = newth;
  state_[1] = newthdot;
  write_obs(obs);
  StepResult r;
  r.reward = -costs;
  return r;
}

}  // namespace rlft::envs
