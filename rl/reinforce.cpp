// REINFORCE. The objective, its sources and the defaults are in rl/reinforce.h; this file
// reads top to bottom: setup → episodes → returns → loss → update → log.
#include "rl/reinforce.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <deque>
#include <numeric>

#include "engine/checkpoint.h"
#include "engine/fs.h"
#include "engine/optim.h"
#include "models/policy.h"
#include "rl/envs/env.h"
#include "rl/eval.h"
#include "rl/run.h"

namespace rlft::rl {

void apply_reinforce_preset(const std::string& name, ReinforceConfig& c) {
  if (name == "seed") {
    // The seed's §1 CartPole code: Adam lr 2e-4, γ 0.98, one episode per update,
    // reward-to-go with a running-mean baseline, no normalisation.
    c.learning_rate = 2e-4;
    c.gamma = 0.98;
    c.normalize_returns = false;
    c.hidden = "128";
    c.activation = "relu";
  } else if (name != "default") {
    throw Error(str("unknown REINFORCE preset '", name, "' (known: default, seed)"));
  }
}

json::Value to_json(const ReinforceConfig& c) {
  json::Value v = json::Value::object();
  v.set("env_id", c.env_id);
  v.set("seed", int64_t(c.seed));
  v.set("device", c.device);
  v.set("total_episodes", c.total_episodes);
  v.set("episodes_per_update", c.episodes_per_update);
  v.set("learning_rate", c.learning_rate);
  v.set("gamma", c.gamma);
  v.set("reward_to_go", c.reward_to_go);
  v.set("baseline", c.baseline);
  v.set("baseline_momentum", c.baseline_momentum);
  v.set("normalize_returns", c.normalize_returns);
  v.set("hidden", c.hidden);
  v.set("activation", c.activation);
  return v;
}

namespace {

// Every setting, before anything is built or written: the error names the option and value.
void validate(const ReinforceConfig& c) {
  resolve_device(c.device);
  try {
    envs::make_env(c.env_id);
  } catch (const Error& e) {
    throw Error(str("reinforce: --env: ", e.what()));
  }
  RLFT_CHECK(c.total_episodes > 0, "reinforce: --total-episodes must be positive, got ",
             c.total_episodes);
  RLFT_CHECK(c.episodes_per_update > 0, "reinforce: --episodes-per-update must be positive, got ",
             c.episodes_per_update);
  RLFT_CHECK(std::isfinite(c.learning_rate) && c.learning_rate > 0,
             "reinforce: --lr must be a finite number > 0, got ", c.learning_rate);
  RLFT_CHECK(c.gamma >= 0 && c.gamma <= 1, "reinforce: --gamma must be in [0, 1], got ", c.gamma);
  RLFT_CHECK(c.baseline == "mean" || c.baseline == "none",
             "reinforce: baseline must be mean or none, got '", c.baseline, "' (--baseline)");
  // b ← m·b + (1 − m)·G: a convex combination only for m in [0, 1].
  RLFT_CHECK(c.baseline_momentum >= 0 && c.baseline_momentum <= 1,
             "reinforce: --baseline-momentum must be in [0, 1], got ", c.baseline_momentum);
  models::check_hidden_sizes(parse_sizes("--hidden", c.hidden), "reinforce: --hidden");
  RLFT_CHECK(c.activation == "tanh" || c.activation == "relu" || c.activation == "gelu" ||
                 c.activation == "sigmoid",
             "reinforce: --activation must be tanh, relu, gelu or sigmoid, got '", c.activation,
             "'");
  RLFT_CHECK(c.log_every > 0, "reinforce: --log-every must be positive, got ", c.log_every);
  RLFT_CHECK(c.checkpoint_every >= 0,
             "reinforce: --checkpoint-every must be >= 0 (0 = only at the end), got ",
             c.checkpoint_every);
}

}  // namespace

ReinforceResult train_reinforce(const ReinforceConfig& cfg, const std::string& run_dir,
                                const std::function<bool(const ReinforceUpdate&)>& on_update) {
  // With --device cuda the policy's forward, backward and Adam step run on the GPU; the
  // environment, the returns and the sampling's random stream stay on the CPU (as in PPO), so
  // a seeded run takes the same actions on both devices up to float rounding. One environment
  // and a small network gain little from a GPU: each step moves one observation over and one
  // action back.
  validate(cfg);
  const Device dev = resolve_device(cfg.device), cpu = Device::cpu();
  // Setup: one environment, a policy without a critic, Adam.
  std::unique_ptr<envs::Env> env = envs::make_env(cfg.env_id);
  const auto& act_space = env->action_space();
  const bool discrete = act_space.is_discrete();
  const int64_t O = env->obs_dim(), A = env->action_dim();
  Generator gen(cfg.seed);
  models::PolicyConfig pc;
  pc.obs_dim = O;
  pc.discrete = discrete;
  pc.num_actions = discrete ? act_space.n : A;
  pc.hidden = parse_sizes("--hidden", cfg.hidden);
  pc.activation = cfg.activation;
  pc.critic = false;
  pc.orthogonal_init = false;  // PyTorch's default init, as the seed's code
  models::ActorCritic policy(pc, gen);
  policy.to(dev);  // in place, before the optimiser takes the parameters
  optim::Adam optimizer(policy.parameters(), cfg.learning_rate);

  // A resumed run keeps its settings; only the episode budget may grow. Checked before the
  // checkpoint is read; the new budget is recorded once the checkpoint has loaded (below), so a
  // resume that fails leaves config.json as it was.
  json::Value config = to_json(cfg);
  const std::unique_ptr<RunDir> run = open_policy_run(run_dir, cfg.resume, config, "reinforce",
                                                      models::describe(pc), "total_episodes");

  ReinforceResult result;
  std::deque<double> last_returns;
  const double threshold = env->spec().reward_threshold.value_or(INFINITY);
  double baseline = 0;
  bool baseline_init = false;
  int64_t global_step = 0, first_episode = 1;
  if (cfg.resume) {
    const std::string ckpt = run->path("checkpoint.safetensors");
    RLFT_CHECK(fs::exists(ckpt), "reinforce: cannot resume: no checkpoint at ", ckpt);
    const Metadata md = load_checkpoint(ckpt, policy, &optimizer);
    RLFT_CHECK(md.count("reinforce_state"), ckpt,
               ": not a REINFORCE training checkpoint (no reinforce_state in its metadata)");
    // The checkpoint's own record of its environment and network, against what config.json
    // (edited by hand, say) builds now.
    check_checkpoint_policy(md, ckpt, models::describe(pc), cfg.env_id);
    const StateReader state(md.at("reinforce_state"), ckpt, "reinforce_state");
    const int64_t done = state.integer("episode");
    global_step = metadata_int(md, "global_step", ckpt);
    const uint64_t offset = uint64_t(state.integer("generator_offset"));
    baseline = state.finite("baseline");
    const json::Value& init = state.field("baseline_init");
    RLFT_CHECK(init.is_bool(), state.where(), ": field 'baseline_init' must be true or false, got ",
               init.brief());
    baseline_init = init.as_bool();
    const json::Value& returns = state.field("last_returns");
    RLFT_CHECK(returns.is_array() && returns.as_array().size() <= 20, state.where(),
               ": field 'last_returns' must be an array of at most 20 numbers, got ",
               returns.brief());
    for (const json::Value& r : returns.as_array()) {
      RLFT_CHECK(r.is_number() && std::isfinite(r.as_double()), state.where(),
                 ": field 'last_returns' holds ", r.brief(), " (returns must be finite numbers)");
      last_returns.push_back(r.as_double());
    }
    RLFT_CHECK(done <= cfg.total_episodes, ckpt, ": the checkpoint is at episode ", done,
               ", beyond --total-episodes ", cfg.total_episodes);
    gen.set_state(cfg.seed, offset);
    first_episode = done + 1;
    // Metrics of updates after the checkpoint are logged again by the resumed run: keep the
    // lines up to its episode only, then record the new budget.
    (void)run->keep_metrics_through(done, "episode");
    run->write_config(config);
  }
  // Metadata of the policy and checkpoint files: architecture, environment and, for --resume,
  // the loop's state after `episode`.
  auto metadata = [&](int64_t episode) {
    json::Value state = json::Value::object();
    state.set("episode", episode);
    state.set("generator_offset", int64_t(gen.offset()));
    state.set("baseline", baseline);
    state.set("baseline_init", baseline_init);
    json::Value returns = json::Value::array();
    for (double r : last_returns) returns.push_back(r);
    state.set("last_returns", returns);
    return Metadata{{"format", "rlft-policy"},
                    {"algorithm", "reinforce"},
                    {"env_id", cfg.env_id},
                    {"policy", models::describe(pc)},
                    {"global_step", std::to_string(global_step)},
                    {"reinforce_state", state.dump()}};
  };
  Stopwatch clock;
  const int64_t start_step = global_step;
  std::vector<float> obs(static_cast<size_t>(O)), act(static_cast<size_t>(A));
  // A resumed run restarts the environment's stream at a seed of its own episode.
  env->reset(cfg.resume ? cfg.seed + uint64_t(first_episode - 1) * 1000003ULL : cfg.seed,
             obs.data());

  // Batch of steps for one update.
  std::vector<float> b_obs, b_weights;
  std::vector<int64_t> b_act_i;
  std::vector<float> b_act_f;
  int64_t batch_episodes = 0;
  double batch_return = 0;

  int64_t last_episode = first_episode - 1;
  for (int64_t episode = first_episode; episode <= cfg.total_episodes; ++episode) {
    // ---- one episode ----
    std::vector<double> rewards;
    while (true) {
      b_obs.insert(b_obs.end(), obs.begin(), obs.end());
      models::ActionSample s;
      {
        NoGradGuard no_grad;  // the loss re-evaluates the batch; sampling records nothing
        s = policy.sample(Tensor::from_vector(obs, {1, O}).to(dev), gen);
        s.actions = s.actions.to(cpu);
      }
      envs::StepResult r;
      if (discrete) {
        const int64_t a = s.actions.data<int64_t>()[0];
        b_act_i.push_back(a);
        r = env->step(a, obs.data());
      } else {
        const float* a = s.actions.data<float>();
        b_act_f.insert(b_act_f.end(), a, a + A);
        for (int64_t j = 0; j < A; ++j)
          act[j] = std::clamp(a[j], act_space.low[j], act_space.high[j]);
        r = env->step(act.data(), obs.data());
      }
      rewards.push_back(r.reward);
      ++global_step;
      if (r.done()) break;
    }
    env->reset(obs.data());  // continues the env's seeded stream

    // ---- returns: G_t = Σ_{t'≥t} γ^{t'−t} r_t' (or G_0 everywhere) ----
    const size_t L = rewards.size();
    std::vector<double> G(L);
    double g = 0;
    for (size_t t = L; t-- > 0;) G[t] = g = rewards[t] + cfg.gamma * g;
    const double episode_return = std::accumulate(rewards.begin(), rewards.end(), 0.0);
    const double b = cfg.baseline == "mean" && baseline_init ? baseline : 0.0;
    for (size_t t = 0; t < L; ++t) b_weights.push_back(float((cfg.reward_to_go ? G[t] : G[0]) - b));
    if (cfg.baseline == "mean") {
      baseline = baseline_init
                     ? cfg.baseline_momentum * baseline + (1 - cfg.baseline_momentum) * G[0]
                     : G[0];
      baseline_init = true;
    }
    ++batch_episodes;
    batch_return += episode_return;
    last_returns.push_back(episode_return);
    if (last_returns.size() > 20) last_returns.pop_front();

    if (batch_episodes < cfg.episodes_per_update && episode < cfg.total_episodes) continue;

    // ---- loss: −(1/N) Σ (G − b)·log π(a|s), all steps of the batch in one forward ----
    const int64_t steps = int64_t(b_weights.size());
    std::vector<float> w = b_weights;
    if (cfg.normalize_returns) normalize_weights(w);
    const Tensor obs_t = Tensor::from_vector(b_obs, {steps, O}).to(dev);
    const Tensor act_t = (discrete ? Tensor::from_vector(b_act_i, {steps})
                                   : Tensor::from_vector(b_act_f, {steps, A}))
                             .to(dev);
    const models::ActionEval ev = policy.evaluate(obs_t, act_t);
    const Tensor weights = Tensor::from_vector(w, {steps}).to(dev);
    const Tensor loss = mul(sum(mul(weights, ev.log_probs)), -1.0 / double(batch_episodes));
    optimizer.zero_grad();
    loss.backward();
    optimizer.step();

    // ---- log ----
    ReinforceUpdate u;
    u.episode = episode;
    u.global_step = global_step;
    u.episode_return = batch_return / double(batch_episodes);
    u.return_last20 = std::accumulate(last_returns.begin(), last_returns.end(), 0.0) /
                      double(last_returns.size());
    u.loss = loss.item();
    u.entropy = mean(ev.entropy).item();
    u.baseline = baseline;
    u.sps = double(global_step - start_step) / clock.seconds();
    if (result.episodes_to_threshold < 0 && last_returns.size() >= 20 &&
        u.return_last20 >= threshold)
      result.episodes_to_threshold = episode;
    result.updates.push_back(u);
    if (run) {
      json::Value m = json::Value::object();
      m.set("episode", u.episode);
      m.set("global_step", u.global_step);
      m.set("episodic_return", u.episode_return);
      m.set("return_last20", u.return_last20);
      m.set("loss", u.loss);
      m.set("entropy", u.entropy);
      m.set("baseline", u.baseline);
      m.set("sps", u.sps);
      run->log(m);
    }
    if (!cfg.quiet &&
        (episode % cfg.log_every < cfg.episodes_per_update || episode == cfg.total_episodes)) {
      const double eta = clock.seconds() / double(episode - first_episode + 1) *
                         double(cfg.total_episodes - episode);
      std::printf(
          "episode %5lld/%lld  step %8lld  return %7.1f (last20 %7.1f)  loss %+9.3f  ent %.3f  "
          "%7.0f sps  ETA %s\n",
          (long long)episode, (long long)cfg.total_episodes, (long long)global_step,
          u.episode_return, u.return_last20, u.loss, u.entropy, u.sps,
          format_duration(eta).c_str());
      std::fflush(stdout);
    }
    b_obs.clear();
    b_weights.clear();
    b_act_i.clear();
    b_act_f.clear();
    batch_episodes = 0;
    batch_return = 0;
    last_episode = episode;
    const int64_t update = (episode + cfg.episodes_per_update - 1) / cfg.episodes_per_update;
    if (run && cfg.checkpoint_every > 0 && update % cfg.checkpoint_every == 0) {
      run->sync_log();
      save_checkpoint(run->path("checkpoint.safetensors"), policy, &optimizer, metadata(episode));
    }
    if (on_update && !on_update(u)) break;
  }
  if (run) {
    const Metadata md = metadata(last_episode);
    run->sync_log();
    save_checkpoint(run->path("policy.safetensors"), policy, nullptr, md);
    save_checkpoint(run->path("checkpoint.safetensors"), policy, &optimizer, md);
    if (!result.updates.empty() || cfg.resume) write_learning_curve(run->dir());
  }
  return result;
}

void normalize_weights(std::vector<float>& w) {
  const size_t n = w.size();
  if (n < 2) return;
  double m = 0, v = 0;
  for (float x : w) m += x;
  m /= double(n);
  for (float x : w) v += (x - m) * (x - m);
  const double sd = std::sqrt(v / double(n - 1)) + 1e-8;
  for (float& x : w) x = float((x - m) / sd);
}

}  // namespace rlft::rl
