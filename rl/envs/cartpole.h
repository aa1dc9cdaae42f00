// CartPole-v1: the cart-pole balancing task of Barto, Sutton & Anderson (1983), equation for
// equation as Gymnasium's gymnasium/envs/classic_control/cartpole.py (Gymnasium 1.x), which
// is also where every constant below comes from.
//
//   state  (x, x_dot, theta, theta_dot) in float64; observation: the same four as float32
//   observation space  Box([-4.8, -inf, -0.4189, -inf], [4.8, inf, 0.4189, inf], (4,))
//   action space       Discrete(2): 0 pushes the cart left (-10 N), 1 pushes it right (+10 N)
//   dynamics           Florian (2005) "Correct equations for the dynamics of the cart-pole
//                      system", explicit Euler with tau = 0.02 s:
//                        temp      = (F + m_p l theta_dot^2 sin(theta)) / (m_c + m_p)
//                        theta_acc = (g sin(theta) - cos(theta) temp)
//                                    / (l (4/3 - m_p cos^2(theta) / (m_c + m_p)))
//                        x_acc     = temp - m_p l theta_acc cos(theta) / (m_c + m_p)
//                        x += tau x_dot; x_dot += tau x_acc; theta += tau theta_dot; ...
//                      g = 9.8, m_c = 1.0, m_p = 0.1, l = 0.5 (half the pole), F = +-10
//   reward             +1 for every step, the terminating one included
//   terminated         |x| > 2.4 or |theta| > 12 degrees (12 * 2 pi / 360 rad)
//   truncated          after 500 steps (TimeLimit); reward threshold 475
//   reset              each state variable uniform in [-0.05, 0.05)
//   reset_to_state     state = {x, x_dot, theta, theta_dot}
#pragma once

#include "rl/envs/env.h"

namespace rlft::envs {

class CartPole final : public Env {
 public:
  CartPole();
  const double* state() const { return state_; }

 protected:
  void reset_impl(float* obs) override;
  void reset_to_state_impl(std::span<const double> state, float* obs) override;
  StepResult step_impl(int64_t discrete_action, const float* continuous_action,
                       float* obs) override;

 private:
  void write_obs(float* obs) const;
  double state_[4] = {0, 0, 0, 0};
};

}  // namespace rlft::envs
