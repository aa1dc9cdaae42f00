// LunarLander-v3 / LunarLanderContinuous-v3 on Box2D 2.4; documented in lunar_lander.h.
#include "rl/envs/lunar_lander.h"

#include <algorithm>
#include <cmath>
#include <numbers>

#include "engine/error.h"

#ifdef RLFT_HAVE_BOX2D
#include <box2d/box2d.h>
#endif

namespace rlft::envs {

// ---- heuristic controller (no Box2D needed) -----------------------------------------------

namespace {
// The heuristic's two control signals. NumPy 2 keeps a float32 scalar times a Python float in
// float32, so this is float arithmetic throughout.
struct HeuristicTodo {
  float angle_todo, hover_todo;
};

HeuristicTodo heuristic_todo(const float* s) {
  float angle_targ = s[0] * 0.5f + s[2] * 1.0f;  // angle should point towards centre
  if (angle_targ > 0.4f) angle_targ = 0.4f;      // more than 0.4 rad (22 degrees) is bad
  if (angle_targ < -0.4f) angle_targ = -0.4f;
  const float hover_targ = 0.55f * std::fabs(s[0]);  // target y proportional to x offset
  float angle_todo = (angle_targ - s[4]) * 0.5f - s[5] * 1.0f;
  float hover_todo = (hover_targ - s[1]) * 0.5f - s[3] * 0.5f;
  if (s[6] != 0.0f || s[7] != 0.0f) {  // legs have contact: just reduce the fall speed
    angle_todo = 0.0f;
    hover_todo = -s[3] * 0.5f;
  }
  return {angle_todo, hover_todo};
}
}  // namespace

int64_t lunar_lander_heuristic(const float* s) {
  const HeuristicTodo t = heuristic_todo(s);
  if (t.hover_todo > std::fabs(t.angle_todo) && t.hover_todo > 0.05f) return 2;
  if (t.angle_todo < -0.05f) return 3;
  if (t.angle_todo > 0.05f) return 1;
  return 0;
}

void lunar_lander_heuristic_continuous(const float* s, float* action) {
  const HeuristicTodo t = heuristic_todo(s);
  action[0] = std::clamp(t.hover_todo * 20.0f - 1.0f, -1.0f, 1.0f);
  action[1] = std::clamp(-t.angle_todo * 20.0f, -1.0f, 1.0f);
}

#ifdef RLFT_HAVE_BOX2D

// ---- constants of gymnasium/envs/box2d/lunar_lander.py --------------------------------------

namespace {
constexpr double kFps = 50;
constexpr double kScale = 30.0;
constexpr double kMainEnginePower = 13.0;
constexpr double kSideEnginePower = 0.6;
constexpr double kInitialRandom = 1000.0;
constexpr int kLanderPoly[6][2] = {{-14, 17}, {-17, 0}, {-17, -10}, {17, -10}, {17, 0}, {14, 17}};
constexpr double kLegAway = 20;
constexpr double kLegDown = 18;
constexpr double kLegW = 2, kLegH = 8;
constexpr double kLegSpringTorque = 40;
constexpr double kSideEngineHeight = 14;
constexpr double kSideEngineAway = 12;
constexpr double kMainEngineYLocation = 4;
constexpr double kViewportW = 600;
constexpr double kViewportH = 400;
constexpr double kW = kViewportW / kScale;
constexpr double kH = kViewportH / kScale;
constexpr int kChunks = 11;
constexpr double kGravity = -10.0;
constexpr float kPi = float(std::numbers::pi);
}  // namespace

struct LunarLander::World : b2ContactListener {
  std::unique_ptr<b2World> world;
  b2Body* moon = nullptr;
  b2Body* lander = nullptr;
  b2Body* legs[2] = {nullptr, nullptr};
  bool leg_contact[2] = {false, false};
  bool game_over = false;
  double helipad_y = kH / 4;
  bool has_prev_shaping = false;
  double prev_shaping = 0.0;

  // ContactDetector of lunar_lander.py.
  void BeginContact(b2Contact* contact) override {
    b2Body* a = contact->GetFixtureA()->GetBody();
    b2Body* b = contact->GetFixtureB()->GetBody();
    if (lander == a || lander == b) game_over = true;
    for (int i = 0; i < 2; ++i)
      if (legs[i] == a || legs[i] == b) leg_contact[i] = true;
  }
  void EndContact(b2Contact* contact) override {
    b2Body* a = contact->GetFixtureA()->GetBody();
    b2Body* b = contact->GetFixtureB()->GetBody();
    for (int i = 0; i < 2; ++i)
      if (legs[i] == a || legs[i] == b) leg_contact[i] = false;
  }
};

LunarLander::LunarLander(bool continuous)
    : Env(EnvSpec{continuous ? "LunarLanderContinuous-v3" : "LunarLander-v3", 1000, 200.0},
          Space::box({-2.5f, -2.5f, -10.0f, -10.0f, -2 * kPi, -10.0f, -0.0f, -0.0f},
                     {2.5f, 2.5f, 10.0f, 10.0f, 2 * kPi, 10.0f, 1.0f, 1.0f}),
          continuous ? Space::box(-1.0f, 1.0f, 2) : Space::discrete(4)),
      continuous_(continuous) {}

LunarLander::~LunarLander() = default;

bool LunarLander::game_over() const { return world_ && world_->game_over; }
bool LunarLander::lander_awake() const { return world_ && world_->lander->IsAwake(); }

void LunarLander::script_uniform_draws(std::vector<double> values) {
  script_ = std::move(values);
  script_pos_ = 0;
}

double LunarLander::uniform(double low, double high) {
  if (script_pos_ < script_.size()) return script_[script_pos_++];
  return rng_.uniform(low, high);
}

void LunarLander::reset_impl(float* obs) {
  double heights[kChunks + 1];
  for (double& h : heights) h = uniform(0, kH / 2);
  const double fx = uniform(-kInitialRandom, kInitialRandom);
  const double fy = uniform(-kInitialRandom, kInitialRandom);
  build_world(heights, fx, fy, obs);
}

void LunarLander::reset_to_state_impl(std::span<const double> state, float* obs) {
  RLFT_CHECK(state.size() == kChunks + 3, id(), ": reset_to_state: expected ", kChunks + 3,
             " values (12 terrain heights, force x, force y), got ", state.size());
  build_world(state.data(), state[kChunks + 1], state[kChunks + 2], obs);
}

void LunarLander::build_world(const double* heights_in, double force_x, double force_y,
                              float* obs) {
  // A fresh world every episode, as Gymnasium does (its issue #728).
  world_ = std::make_unique<World>();
  World& w = *world_;
  w.world = std::make_unique<b2World>(b2Vec2(0.0f, float(kGravity)));
  w.world->SetContactListener(&w);

  // Terrain.
  double height[kChunks + 1];
  std::copy(heights_in, heights_in + kChunks + 1, height);
  double chunk_x[kChunks];
  for (int i = 0; i < kChunks; ++i) chunk_x[i] = kW / (kChunks - 1) * i;
  for (int i = kChunks / 2 - 2; i <= kChunks / 2 + 2; ++i) height[i] = w.helipad_y;
  double smooth_y[kChunks];
  for (int i = 0; i < kChunks; ++i)
    smooth_y[i] = 0.33 * (height[(i + kChunks) % (kChunks + 1)] + height[i] + height[i + 1]);

  b2BodyDef moon_def;  // static
  w.moon = w.world->CreateBody(&moon_def);
  {
    b2EdgeShape edge;
    edge.SetTwoSided(b2Vec2(0.0f, 0.0f), b2Vec2(float(kW), 0.0f));
    b2FixtureDef fd;  // pybox2d's CreateStaticBody(shapes=...) keeps the defaults
    fd.shape = &edge;
    w.moon->CreateFixture(&fd);
  }
  for (int i = 0; i < kChunks - 1; ++i) {
    b2EdgeShape edge;
    edge.SetTwoSided(b2Vec2(float(chunk_x[i]), float(smooth_y[i])),
                     b2Vec2(float(chunk_x[i + 1]), float(smooth_y[i + 1])));
    b2FixtureDef fd;
    fd.shape = &edge;
    fd.density = 0.0f;
    fd.friction = 0.1f;
    w.moon->CreateFixture(&fd);
  }

  // Lander body.
  const double initial_y = kViewportH / kScale;
  const double initial_x = kViewportW / kScale / 2;
  {
    b2BodyDef bd;
    bd.type = b2_dynamicBody;
    bd.position.Set(float(initial_x), float(initial_y));
    bd.angle = 0.0f;
    w.lander = w.world->CreateBody(&bd);
    b2Vec2 vertices[6];
    for (int i = 0; i < 6; ++i)
      vertices[i].Set(float(kLanderPoly[i][0] / kScale), float(kLanderPoly[i][1] / kScale));
    b2PolygonShape poly;
    poly.Set(vertices, 6);
    b2FixtureDef fd;
    fd.shape = &poly;
    fd.density = 5.0f;
    fd.friction = 0.1f;
    fd.filter.categoryBits = 0x0010;
    fd.filter.maskBits = 0x001;  // collide only with the ground
    fd.restitution = 0.0f;
    w.lander->CreateFixture(&fd);
  }
  w.lander->ApplyForceToCenter(b2Vec2(float(force_x), float(force_y)), true);

  // Legs: index 0 is Gymnasium's i = -1, index 1 is i = +1.
  for (int k = 0; k < 2; ++k) {
    const double i = k == 0 ? -1.0 : 1.0;
    b2BodyDef bd;
    bd.type = b2_dynamicBody;
    bd.position.Set(float(initial_x - i * kLegAway / kScale), float(initial_y));
    bd.angle = float(i * 0.05);
    b2Body* leg = w.world->CreateBody(&bd);
    b2PolygonShape box;
    box.SetAsBox(float(kLegW / kScale), float(kLegH / kScale));
    b2FixtureDef fd;
    fd.shape = &box;
    fd.density = 1.0f;
    fd.restitution = 0.0f;
    fd.filter.categoryBits = 0x0020;
    fd.filter.maskBits = 0x001;
    leg->CreateFixture(&fd);
    w.legs[k] = leg;

    b2RevoluteJointDef rjd;
    rjd.bodyA = w.lander;
    rjd.bodyB = leg;
    rjd.localAnchorA.Set(0.0f, 0.0f);
    rjd.localAnchorB.Set(float(i * kLegAway / kScale), float(kLegDown / kScale));
    rjd.referenceAngle = float(i * 0.05);  // pybox2d: bodyB.angle - bodyA.angle
    rjd.enableMotor = true;
    rjd.enableLimit = true;
    rjd.maxMotorTorque = float(kLegSpringTorque);
    rjd.motorSpeed = float(0.3 * i);  // low enough not to jump back into the sky
    if (k == 0) {
      rjd.lowerAngle = float(0.9 - 0.5);  // the most esoteric numbers (Gymnasium's words)
      rjd.upperAngle = 0.9f;
    } else {
      rjd.lowerAngle = -0.9f;
      rjd.upperAngle = float(-0.9 + 0.5);
    }
    w.world->CreateJoint(&rjd);
  }

  // Gymnasium's reset returns the observation of one no-op step.
  physics_step(0.0, 0.0, 0.0, obs);
}

StepResult LunarLander::step_impl(int64_t discrete_action, const float* continuous_action,
                                  float* obs) {
  double m_power = 0.0, s_power = 0.0, direction = 0.0;
  if (continuous_) {
    // np.clip(action, -1, +1).astype(np.float64)
    const double a0 = std::clamp(continuous_action[0], -1.0f, 1.0f);
    const double a1 = std::clamp(continuous_action[1], -1.0f, 1.0f);
    if (a0 > 0.0) m_power = (std::clamp(a0, 0.0, 1.0) + 1.0) * 0.5;  // 0.5..1.0
    if (std::fabs(a1) > 0.5) {
      direction = a1 > 0 ? 1.0 : -1.0;
      s_power = std::clamp(std::fabs(a1), 0.5, 1.0);
    }
  } else {
    if (discrete_action == 2) m_power = 1.0;
    if (discrete_action == 1 || discrete_action == 3) {
      direction = double(discrete_action - 2);  // 1 is left (-1), 3 is right (+1)
      s_power = 1.0;
    }
  }
  return physics_step(m_power, direction, s_power, obs);
}

StepResult LunarLander::physics_step(double m_power, double direction, double s_power, float* obs) {
  World& w = *world_;
  b2Body* lander = w.lander;
  // tip: the (x, y) components of the lander's up axis; side: perpendicular to it.
  const double angle = lander->GetAngle();
  const double tip[2] = {std::sin(angle), std::cos(angle)};
  const double side[2] = {-tip[1], tip[0]};
  // Drawn every step, engine or not, so the random stream does not depend on the actions.
  double dispersion[2];
  for (double& d : dispersion) d = uniform(-1.0, 1.0) / kScale;

  if (m_power > 0.0) {
    // Main engine, 4 px below the centre, +-2 px of randomness.
    const double ox =
        tip[0] * (kMainEngineYLocation / kScale + 2 * dispersion[0]) + side[0] * dispersion[1];
    const double oy =
        -tip[1] * (kMainEngineYLocation / kScale + 2 * dispersion[0]) - side[1] * dispersion[1];
    const b2Vec2 pos = lander->GetPosition();
    const b2Vec2 impulse_pos(float(pos.x + ox), float(pos.y + oy));
    lander->ApplyLinearImpulse(
        b2Vec2(float(-ox * kMainEnginePower * m_power), float(-oy * kMainEnginePower * m_power)),
        impulse_pos, true);
  }
  if (s_power > 0.0) {
    // Side engines.
    const double ox = tip[0] * dispersion[0] +
                      side[0] * (3 * dispersion[1] + direction * kSideEngineAway / kScale);
    const double oy = -tip[1] * dispersion[0] -
                      side[1] * (3 * dispersion[1] + direction * kSideEngineAway / kScale);
    // Gymnasium uses 17 px (not SIDE_ENGINE_HEIGHT = 14) for the x offset, which makes the
    // side-engine torque depend on the orientation; kept as is.
    const b2Vec2 pos = lander->GetPosition();
    const b2Vec2 impulse_pos(float(pos.x + ox - tip[0] * 17 / kScale),
                             float(pos.y + oy + tip[1] * kSideEngineHeight / kScale));
    lander->ApplyLinearImpulse(
        b2Vec2(float(-ox * kSideEnginePower * s_power), float(-oy * kSideEnginePower * s_power)),
        impulse_pos, true);
  }

  w.world->Step(float(1.0 / kFps), 6 * 30, 2 * 30);

  const b2Vec2 pos = lander->GetPosition();
  const b2Vec2 vel = lander->GetLinearVelocity();
  const double state[8] = {
      (pos.x - kViewportW / kScale / 2) / (kViewportW / kScale / 2),
      (pos.y - (w.helipad_y + kLegDown / kScale)) / (kViewportH / kScale / 2),
      vel.x * (kViewportW / kScale / 2) / kFps,
      vel.y * (kViewportH / kScale / 2) / kFps,
      lander->GetAngle(),
      20.0 * lander->GetAngularVelocity() / kFps,
      w.leg_contact[0] ? 1.0 : 0.0,
      w.leg_contact[1] ? 1.0 : 0.0,
  };
  for (int i = 0; i < 8; ++i) obs[i] = float(state[i]);

  // Ten points per leg contact: losing contact after landing costs them back.
  const double shaping = -100 * std::sqrt(state[0] * state[0] + state[1] * state[1]) -
                         100 * std::sqrt(state[2] * state[2] + state[3] * state[3]) -
                         100 * std::fabs(state[4]) + 10 * state[6] + 10 * state[7];
  StepResult r;
  r.reward = w.has_prev_shaping ? shaping - w.prev_shaping : 0.0;
  w.prev_shaping = shaping;
  w.has_prev_shaping = true;
  r.reward -= m_power * 0.30;  // less fuel spent is better, about -30 for a heuristic landing
  r.reward -= s_power * 0.03;
  if (w.game_over || std::fabs(state[0]) >= 1.0) {
    r.terminated = true;
    r.reward = -100;
  }
  if (!lander->IsAwake()) {
    r.terminated = true;
    r.reward = +100;
  }
  return r;
}

#endif  // RLFT_HAVE_BOX2D

}  // namespace rlft::envs
