// Pendulum-v1: swing a frictionless pendulum up and hold it upright, equation for equation as
// Gymnasium's gymnasium/envs/classic_control/pendulum.py (Gymnasium 1.x; constants from there).
//
//   state  (theta, theta_dot) in float64, theta = 0 upright; theta is not wrapped
//   observation        (cos theta, sin theta, theta_dot) as float32,
//                      space Box([-1, -1, -8], [1, 1, 8], (3,))
//   action space       Box(-2, 2, (1,)): the torque u; clipped to [-2, 2] (np.clip) in float32
//   dynamics           semi-implicit Euler, dt = 0.05, g = 10, m = 1, l = 1:
//                        theta_dot' = clip(theta_dot + (3g/(2l) sin th + 3/(m l^2) u) dt, -8, 8)
//                        theta'     = theta + theta_dot' dt
//   reward             -(angle_normalize(theta)^2 + 0.1 theta_dot^2 + 0.001 u^2), from the
//                      state before the step; angle_normalize(a) = ((a + pi) mod 2 pi) - pi
//   terminated         never; truncated after 200 steps (TimeLimit); no reward threshold
//   reset              theta uniform in [-pi, pi), theta_dot uniform in [-1, 1)
//   reset_to_state     state = {theta, theta_dot}
//
// Precision follows NumPy 2 on a float32 action: u, u^2, 0.001 u^2 and 3.0 u are float32
// products (a Python float times a float32 scalar stays float32), summed into float64. One
// difference is left: Gymnasium's u**2 on a float32 scalar is NumPy's float power, which
// differs from the correctly rounded u·u here by one float32 ulp for about 0.1% of actions
// (a reward differs by ~1e-11 then; measured over 20k random actions against Gymnasium 1.4).
#pragma once

#include "rl/envs/env.h"

namespace rlft::envs {

class Pendulum final : public Env {
 public:
  Pendulum();
  const double* state() const { return state_; }

 protected:
  void reset_impl(float* obs) override;
  void reset_to_state_impl(std::span<const double> state, float* obs) override;
  StepResult step_impl(int64_t discrete_action, const float* continuous_action,
                       float* obs) override;

 private:
  void write_obs(float* obs) const;
  double state_[2] = {0, 0};
};

}  // namespace rlft::envs
