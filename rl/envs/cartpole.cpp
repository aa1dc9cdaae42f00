// CartPole-v1; the equations and constants are documented in cartpole.h.
#include "rl/envs/cartpole.h"

#include <cmath>
#include <numbers>

#include "engine/error.h"

namespace rlft::envs {

namespace {
// Constants of gymnasium/envs/classic_control/cartpole.py, evaluated in the same order.
constexpr double kGravity = 9.8;
constexpr double kMassCart = 1.0;
constexpr double kMassPole = 0.1;
constexpr double kTotalMass = kMassPole + kMassCart;
constexpr double kLength = 0.5;  // half the pole's length
constexpr double kPoleMassLength = kMassPole * kLength;
constexpr double kForceMag = 10.0;
constexpr double kTau = 0.02;
constexpr double kThetaThreshold = 12 * 2 * std::numbers::pi / 360;
constexpr double kXThreshold = 2.4;
constexpr double kResetBound = 0.05;
constexpr float kInf = INFINITY;

Space cartpole_observation_space() {
  const float high[4] = {float(kXThreshold * 2), kInf, float(kThetaThreshold * 2), kInf};
  return Space::box({-high[0], -high[1], -high[2], -high[3]}, {high[0], high[1], high[2], high[3]});
}
}  // namespace

CartPole::CartPole()
    : Env(EnvSpec{"CartPole-v1", 500, 475.0}, cartpole_observation_space(), Space::discrete(2)) {}

void CartPole::write_obs(float* obs) const {
  for (int i = 0; i < 4; ++i) obs[i] = float(state_[i]);
}

void CartPole::reset_impl(float* obs) {
  for (double& s : state_) s = rng_.uniform(-kResetBound, kResetBound);
  write_obs(obs);
}

void CartPole::reset_to_state_impl(std::span<const double> state, float* obs) {
  RLFT_CHECK(state.size() == 4, id(), ": reset_to_state: expected 4 values (x, x_dot, theta, ",
             "theta_dot), got ", state.size());
  for (int i = 0; i < 4; ++i) state_[i] = state[i];
  write_obs(obs);
}

StepResult CartPole::step_impl(int64_t action, const float*, float* obs) {
  double x = state_[0], x_dot = state_[1], theta = state_[2], theta_dot = state_[3];
  const double force = action == 1 ? kForceMag : -kForceMag;
  const double costheta = std::cos(theta), sintheta = std::sin(theta);
  // Same operation order as Gymnasium so float64 results agree to the last bit or two.
  const double temp = (force + kPoleMassLength * (theta_dot * theta_dot) * sintheta) / kTotalMass;
  const double thetaacc = (kGravity * sintheta - costheta * temp) /
                          (kLength * (4.0 / 3.0 - kMassPole * (costheta * costheta) / kTotalMass));
  const double xacc = temp - kPoleMassLength * thetaacc * costheta / kTotalMass;
  // Explicit Euler (kinematics_integrator = "euler"): positions use the old velocities.
  x = x + kTau * x_dot;
  x_dot = x_dot + kTau * xacc;
  theta = theta + kTau * theta_dot;
  theta_dot = theta_dot + kTau * thetaacc;
  state_[0] = x;
  state_[1] = x_dot;
  state_[2] = theta;
  state_[3] = theta_dot;
  write_obs(obs);
  StepResult r;
  r.terminated =
      x < -kXThreshold || x > kXThreshold || theta < -kThetaThreshold || theta > kThetaThreshold;
  r.reward = 1.0;
  return r;
}

}  // namespace rlft::envs
