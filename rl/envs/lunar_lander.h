// LunarLander-v3 and LunarLanderContinuous-v3: land a rocket on a pad between two flags,
// rebuilt on Box2D 2.4 (C++) from Gymnasium's gymnasium/envs/box2d/lunar_lander.py
// (Gymnasium 1.x, which runs pybox2d 2.3); every constant below comes from that file.
//
//   world        gravity (0, -10), Step(1/50 s, 180 velocity, 60 position iterations),
//                SCALE = 30 px per metre, viewport W x H = 600/30 x 400/30 m
//   terrain      11 chunks; 12 heights uniform in [0, H/2), the 5 around the middle set to the
//                helipad height H/4, smoothed by 0.33 (h[i-1] + h[i] + h[i+1]) (with h[-1] =
//                h[11], Python's negative index, kept on purpose); pad between chunks 4 and 6
//   lander       polygon LANDER_POLY / SCALE, density 5, friction 0.1, starting at (W/2, H),
//                pushed by a force uniform in [-1000, 1000]^2 applied before the first step;
//                two legs (box 2x8 px, density 1) on revolute joints with limits, a motor
//                (max torque 40, speed +-0.3) and reference angle +-0.05 (pybox2d sets
//                referenceAngle = bodyB.angle - bodyA.angle; C++ Box2D would default to 0)
//   contacts     the lander body touching anything ends the game; each leg's ground contact
//                is tracked by Begin/EndContact
//   observation  8 float32: (x - W/2)/(W/2), (y - (H/4 + 18/30))/(H/2), vx (W/2)/50,
//                vy (H/2)/50, angle, 20 angular_velocity/50, leg 1 contact, leg 2 contact;
//                space Box([-2.5 -2.5 -10 -10 -2pi -10 -0 -0], [2.5 2.5 10 10 2pi 10 1 1])
//   actions      discrete Discrete(4): 0 nothing, 1 left engine, 2 main engine, 3 right engine;
//                continuous Box(-1, 1, (2,)), clipped to [-1, 1]: main = a[0] > 0 with power
//                (clip(a[0], 0, 1) + 1) / 2; side = |a[1]| > 0.5 with power clip(|a[1]|, .5, 1)
//                and direction sign(a[1]); every step draws a dispersion pair uniform in
//                [-1, 1]/SCALE that moves where the impulses act (main power 13, side 0.6)
//   reward       shaping_t - shaping_{t-1} - 0.3 main_power - 0.03 side_power, with
//                shaping = -100 |(s0, s1)| - 100 |(s2, s3)| - 100 |s4| + 10 s6 + 10 s7;
//                replaced by -100 and terminated when the lander body touches the ground or
//                |s0| >= 1, and by +100 and terminated when the lander falls asleep
//   truncated    after 1000 steps (TimeLimit); reward threshold 200
//   reset        builds a new world and takes one no-op step (as Gymnasium does), whose
//                observation is returned
//   reset_to_state  state = the 14 reset draws: 12 terrain heights then the force (fx, fy);
//                the dispersion draws still come from the generator
//
// Wind and turbulence (enable_wind) are not implemented: they are off in both registered ids.
// Box2D 2.4 is not Box2D 2.3 (the revolute joint solver and contact details changed), so a
// trajectory matches Gymnasium's closely for the first steps and statistically afterwards;
// the tests replay a Gymnasium trajectory with loose bounds and compare the heuristic
// controller's mean return over 100 seeds with Gymnasium's.
#pragma once

#include <memory>
#include <vector>

#include "rl/envs/env.h"

namespace rlft::envs {

// Gymnasium's heuristic(env, s) controller, computed in float32 as NumPy 2 does on the
// float32 observation. Discrete: returns the action index. Continuous: writes 2 floats.
int64_t lunar_lander_heuristic(const float* s);
void lunar_lander_heuristic_continuous(const float* s, float* action);

#ifdef RLFT_HAVE_BOX2D

class LunarLander final : public Env {
 public:
  explicit LunarLander(bool continuous);
  ~LunarLander() override;
  bool continuous() const { return continuous_; }
  bool game_over() const;
  bool lander_awake() const;

  // Test hook: the next random draws (terrain heights, initial force, then two dispersions per
  // step, each the value of the uniform draw in its own range) are taken from `values` in
  // order, before falling back to the generator. Lets a test replay Gymnasium's draws exactly.
  void script_uniform_draws(std::vector<double> values);

 protected:
  void reset_impl(float* obs) override;
  void reset_to_state_impl(std::span<const double> state, float* obs) override;
  StepResult step_impl(int64_t discrete_action, const float* continuous_action,
                       float* obs) override;

 private:
  struct World;
  double uniform(double low, double high);
  void build_world(const double* heights, double force_x, double force_y, float* obs);
  // Fires the engines (power 0 = off; side_direction -1 left, +1 right), steps the world,
  // writes the observation and computes reward and termination.
  StepResult physics_step(double m_power, double side_direction, double s_power, float* obs);

  bool continuous_;
  std::unique_ptr<World> world_;
  std::vector<double> script_;
  size_t script_pos_ = 0;
};

#endif  // RLFT_HAVE_BOX2D

}  // namespace rlft::envs
