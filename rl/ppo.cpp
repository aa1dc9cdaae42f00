// PPO on classic control. The objective, its sources and the defaults are in rl/ppo.h; this
// file reads top to bottom: setup → rollout → advantages → minibatch loss → update → log.
#include "rl/ppo.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <deque>
#include <numeric>
#include <sstream>

#include "engine/checkpoint.h"
#include "engine/fs.h"
#include "engine/optim.h"
#include "models/policy.h"
#include "rl/envs/env.h"
#include "rl/envs/vector_env.h"
#include "rl/eval.h"
#include "rl/normalize.h"
#include "rl/run.h"

namespace rlft::rl {

// ---- configuration -----------------------------------------------------------------------

std::vector<std::string> preset_names() {
  return {"cartpole", "cartpole-fast", "pendulum", "lunarlander"};
}

void apply_preset(const std::string& name, PPOConfig& c) {
  if (name == "cartpole") {
    c = PPOConfig{};  // CleanRL ppo.py
  } else if (name == "cartpole-fast") {
    // Tuned for CartPole-v1 within 100k steps: more envs, larger lr, no entropy bonus.
    c.env_id = "CartPole-v1";
    c.total_steps = 100000;
    c.num_envs = 8;
    c.num_steps = 32;
    c.learning_rate = 1e-3;
    c.update_epochs = 10;
    c.num_minibatches = 2;
    c.gamma = 0.98;
    c.gae_lambda = 0.8;
    c.ent_coef = 0.0;
  } else if (name == "pendulum") {
    // 4 envs × 1024 steps and 10 epochs as SB3 zoo's Pendulum-v1 settings, but without its
    // state-dependent exploration: γ 0.98, λ 0.92, lr 3e-4, 32 minibatches, running
    // observation and reward normalisation (tuned here; BENCHMARKS.md has the runs).
    c.env_id = "Pendulum-v1";
    c.total_steps = 300000;
    c.num_envs = 4;
    c.num_steps = 1024;
    c.learning_rate = 3e-4;
    c.gamma = 0.98;
    c.gae_lambda = 0.92;
    c.update_epochs = 10;
    c.num_minibatches = 32;
    c.ent_coef = 0.0;
    c.clip_coef = 0.2;
    c.max_grad_norm = 0.5;
    c.norm_obs = true;
    c.norm_reward = true;
    c.log_std_init = -0.5;
  } else if (name == "lunarlander") {
    // SB3 zoo's PPO settings for LunarLander (16 envs × 1024 steps, minibatches of 64, γ 0.999,
    // λ 0.98, 4 epochs, no lr annealing) including its unclipped value loss: with γ 0.999 the
    // returns are in the hundreds and a ±0.2 value clip starves the critic (82 at 1M steps
    // with it, 248 without, seed 1; BENCHMARKS.md). Added here: rewards scaled by the running
    // std of the return. Without it the first targets are around −200, the tanh critic
    // saturates its second layer to reach them and its output stays near one constant (explained
    // variance < 0.1) for the first 13 to 39 updates of every seed tried, the policy learning
    // with no baseline meanwhile; one seed's critic never recovered in an earlier build (eval
    // 17.6). With it the critic is live from update 5-7 and 12 seeds of 12 reach a training
    // last-20 mean of 200 within 1M steps (1 of 6 without); eval 264-279 (225-254 without).
    c.env_id = "LunarLander-v3";
    c.total_steps = 1000000;
    c.num_envs = 16;
    c.num_steps = 1024;
    c.learning_rate = 3e-4;
    c.anneal_lr = false;
    c.gamma = 0.999;
    c.gae_lambda = 0.98;
    c.num_minibatches = 256;
    c.update_epochs = 4;
    c.ent_coef = 0.01;
    c.clip_vloss = false;
    c.norm_reward = true;
  } else {
    std::string known;
    for (const auto& n : preset_names()) known += (known.empty() ? "" : ", ") + n;
    throw Error(str("unknown preset '", name, "' (known: ", known, ")"));
  }
}

json::Value to_json(const PPOConfig& c) {
  json::Value v = json::Value::object();
  v.set("env_id", c.env_id);
  v.set("seed", int64_t(c.seed));
  v.set("device", c.device);
  v.set("total_steps", c.total_steps);
  v.set("num_envs", c.num_envs);
  v.set("num_steps", c.num_steps);
  v.set("learning_rate", c.learning_rate);
  v.set("anneal_lr", c.anneal_lr);
  v.set("adam_eps", c.adam_eps);
  v.set("gamma", c.gamma);
  v.set("gae_lambda", c.gae_lambda);
  v.set("num_minibatches", c.num_minibatches);
  v.set("update_epochs", c.update_epochs);
  v.set("norm_adv", c.norm_adv);
  v.set("loss", c.loss);
  v.set("clip_coef", c.clip_coef);
  v.set("dual_clip", c.dual_clip);
  v.set("clip_vloss", c.clip_vloss);
  v.set("ent_coef", c.ent_coef);
  v.set("vf_coef", c.vf_coef);
  v.set("max_grad_norm", c.max_grad_norm);
  v.set("target_kl", c.target_kl);
  v.set("kl_target", c.kl_target);
  v.set("kl_beta", c.kl_beta);
  v.set("hidden", c.hidden);
  v.set("activation", c.activation);
  v.set("shared_trunk", c.shared_trunk);
  v.set("log_std_init", c.log_std_init);
  v.set("fixed_std", c.fixed_std);
  v.set("norm_obs", c.norm_obs);
  v.set("norm_reward", c.norm_reward);
  return v;
}

namespace {

// Limits that keep a run's buffers and networks a sane size (a typo like --num-envs 1e9 is an
// error, not an allocation failure minutes later).
constexpr int64_t kMaxEnvs = 1 << 16, kMaxBatch = int64_t(1) << 24;

// rl::check_number with this command's prefix; (lo, hi) as (lo, hi, open_lo).
void check_range(const char* flag, double v, double lo, double hi, bool open_lo, const char* what) {
  check_number("ppo: ", flag, v, lo, open_lo, hi, what);
}

// Every setting, before anything is built or written: the error names the option and value.
void validate(const PPOConfig& c) {
  resolve_device(c.device);
  try {
    envs::make_env(c.env_id);
  } catch (const Error& e) {
    throw Error(str("ppo: --env: ", e.what()));
  }
  RLFT_CHECK(c.num_envs > 0 && c.num_envs <= kMaxEnvs, "ppo: --num-envs must be in [1, ", kMaxEnvs,
             "], got ", c.num_envs);
  RLFT_CHECK(c.num_steps > 0 && c.num_steps <= kMaxBatch, "ppo: --num-steps must be in [1, ",
             kMaxBatch, "], got ", c.num_steps);
  RLFT_CHECK(c.num_envs * c.num_steps <= kMaxBatch,
             "ppo: the batch --num-envs × --num-steps = ", c.num_envs * c.num_steps,
             " is over the limit ", kMaxBatch);
  RLFT_CHECK(c.total_steps >= c.num_envs * c.num_steps, "ppo: --total-steps ", c.total_steps,
             " is less than one rollout (num_envs × num_steps = ", c.num_envs * c.num_steps, ")");
  RLFT_CHECK(c.num_minibatches > 0 && (c.num_envs * c.num_steps) % c.num_minibatches == 0,
             "ppo: num_minibatches ", c.num_minibatches, " must divide the batch size ",
             c.num_envs * c.num_steps, " (--num-minibatches)");
  RLFT_CHECK(c.update_epochs > 0, "ppo: --update-epochs must be positive, got ", c.update_epochs);
  check_range("--lr", c.learning_rate, 0, INFINITY, true, "a finite number > 0");
  check_range("--adam-eps", c.adam_eps, 0, INFINITY, false, "a finite number >= 0");
  check_range("--gamma", c.gamma, 0, 1, false, "in [0, 1]");
  check_range("--gae-lambda", c.gae_lambda, 0, 1, false, "in [0, 1]");
  RLFT_CHECK(c.loss == "clip" || c.loss == "penalty", "ppo: --loss must be clip or penalty, got '",
             c.loss, "'");
  check_range("--clip-coef", c.clip_coef, 0, INFINITY, true, "a finite number > 0");
  RLFT_CHECK(c.dual_clip == 0 || (std::isfinite(c.dual_clip) && c.dual_clip > 1),
             "ppo: --dual-clip must be 0 (off) or a finite number > 1, got ", c.dual_clip);
  check_range("--ent-coef", c.ent_coef, 0, INFINITY, false, "a finite number >= 0");
  check_range("--vf-coef", c.vf_coef, 0, INFINITY, false, "a finite number >= 0");
  check_range("--max-grad-norm", c.max_grad_norm, 0, INFINITY, false,
              "a finite number >= 0 (0 = off)");
  check_range("--target-kl", c.target_kl, 0, INFINITY, false, "a finite number >= 0 (0 = off)");
  check_range("--kl-target", c.kl_target, 0, INFINITY, true, "a finite number > 0");
  // β only ever doubles or halves, so β = 0 would stay 0: no penalty at all.
  check_range("--kl-beta", c.kl_beta, 0, INFINITY, true, "a finite number > 0");
  models::check_hidden_sizes(parse_sizes("--hidden", c.hidden), "ppo: --hidden");
  RLFT_CHECK(c.activation == "tanh" || c.activation == "relu" || c.activation == "gelu" ||
                 c.activation == "sigmoid",
             "ppo: --activation must be tanh, relu, gelu or sigmoid, got '", c.activation, "'");
  // σ = exp(log σ) must stay a normal float32 with room for the sampled noise.
  check_range("--log-std-init", c.log_std_init, -20, 20, false, "in [-20, 20]");
  RLFT_CHECK(c.checkpoint_every >= 0,
             "ppo: --checkpoint-every must be >= 0 (0 = only at the end), got ",
             c.checkpoint_every);
  RLFT_CHECK(c.log_every > 0, "ppo: --log-every must be positive, got ", c.log_every);
}

}  // namespace

double explained_variance(const Tensor& values, const Tensor& returns) {
  const double var_y = var(returns, {}, 0).item();
  if (var_y == 0) return std::nan("");
  return 1.0 - var(sub(returns, values), {}, 0).item() / var_y;
}

// ---- training ----------------------------------------------------------------------------

Tensor normalize_advantages(const Tensor& advantages) {
  return div(sub(advantages, mean(advantages)), add(sqrt(var(advantages)), 1e-8));
}

Tensor ppo_value_loss(const Tensor& values, const Tensor& old_values, const Tensor& returns,
                      double clip_coef, bool clip) {
  const Tensor v_loss_unclipped = pow(sub(values, returns), 2.0);
  if (!clip) return mul(mean(v_loss_unclipped), 0.5);
  const Tensor values_clipped =
      add(old_values, clamp(sub(values, old_values), -clip_coef, clip_coef));
  const Tensor v_loss_clipped = pow(sub(values_clipped, returns), 2.0);
  return mul(mean(maximum(v_loss_unclipped, v_loss_clipped)), 0.5);
}

// One rollout: T steps of every env under the current policy, without gradients. The policy
// runs on `dev`; the envs, the buffers and the bootstrap bookkeeping on the CPU.
void collect_rollout(envs::VectorEnv& env, models::ActorCritic& agent, Generator& gen,
                     const Device& dev, int64_t T, const ObserveFn& observe,
                     const RewardScaleFn& scale_rewards, Tensor& next_obs, PPORollout& out) {
  const auto& act_space = env.single_action_space();
  const bool discrete = act_space.is_discrete();
  const int64_t N = env.num_envs(), O = env.obs_dim(), A = env.action_dim();
  RLFT_CHECK(T > 0, "collect_rollout: T must be positive, got ", T);
  RLFT_CHECK(next_obs.shape() == Shape({N, O}), "collect_rollout: next_obs has shape ",
             next_obs.shape(), ", expected ", Shape({N, O}), " (num_envs, obs_dim)");
  const Shape action_shape = discrete ? Shape{T, N} : Shape{T, N, A};
  if (!out.obs.defined() || out.obs.shape() != Shape({T, N, O}) ||
      out.actions.shape() != action_shape) {
    out.obs = Tensor::zeros({T, N, O});
    out.actions = discrete ? Tensor::zeros({T, N}, DType::i64) : Tensor::zeros({T, N, A});
    for (Tensor* t :
         {&out.log_probs, &out.values, &out.rewards, &out.terminated, &out.ended, &out.next_values})
      *t = Tensor::zeros({T, N});
  }
  out.finished.clear();
  const Device cpu = Device::cpu();
  std::vector<int64_t> int_actions(static_cast<size_t>(N));
  std::vector<float> float_actions(static_cast<size_t>(N * A));
  std::vector<float> rewards(static_cast<size_t>(N));
  std::vector<uint8_t> done(static_cast<size_t>(N));
  std::vector<std::pair<int64_t, Tensor>> final_obs_rows;  // (t·N + i, the policy's final obs)
  NoGradGuard no_grad;
  for (int64_t t = 0; t < T; ++t) {
    out.obs.select(0, t).copy_(next_obs);
    const Tensor obs_dev = next_obs.to(dev);
    const models::ActionSample s = agent.sample(obs_dev, gen);
    const Tensor actions = s.actions.to(cpu);
    out.values.select(0, t).copy_(agent.value(obs_dev).to(cpu));
    out.actions.select(0, t).copy_(actions);
    out.log_probs.select(0, t).copy_(s.log_probs.to(cpu));
    if (discrete) {
      const int64_t* a = actions.data<int64_t>();
      std::copy(a, a + N, int_actions.begin());
      env.step(std::span<const int64_t>(int_actions));
    } else {
      // Clip to the action space only when sent to the env (CleanRL's ClipAction).
      const float* a = actions.data<float>();
      for (int64_t k = 0; k < N * A; ++k)
        float_actions[k] = std::clamp(a[k], act_space.low[k % A], act_space.high[k % A]);
      env.step(std::span<const float>(float_actions));
    }
    std::copy(env.rewards().begin(), env.rewards().end(), rewards.begin());
    for (int64_t i = 0; i < N; ++i) done[i] = env.terminated()[i] || env.truncated()[i];
    if (scale_rewards) scale_rewards(rewards.data(), done.data(), N);
    float* rw = out.rewards.select(0, t).data<float>();
    float* tm = out.terminated.select(0, t).data<float>();
    float* en = out.ended.select(0, t).data<float>();
    for (int64_t i = 0; i < N; ++i) {
      rw[i] = rewards[i];
      tm[i] = env.terminated()[i];
      en[i] = done[i];
      if (env.truncated()[i] && !env.terminated()[i]) {
        // Bootstrap a time-limit cut from V(final observation).
        final_obs_rows.emplace_back(t * N + i,
                                    observe(env.final_obs().subspan(i * O, O), 1, false));
      }
    }
    next_obs = observe(env.obs(), N, true);
    for (const auto& ep : env.take_episode_stats()) out.finished.push_back(ep.episode_return);
  }
  // next_values[t] = V(s_{t+1}): the next step's value, the bootstrap value after the last
  // step, and V(final obs) where a time limit ended the episode.
  if (T > 1) out.next_values.narrow(0, 0, T - 1).copy_(out.values.narrow(0, 1, T - 1));
  out.next_values.select(0, T - 1).copy_(agent.value(next_obs.to(dev)).to(cpu));
  float* nv = out.next_values.data<float>();
  for (const auto& [flat, o] : final_obs_rows) nv[flat] = float(agent.value(o.to(dev)).item());
}

PPOResult train_ppo(const PPOConfig& cfg, const std::string& run_dir,
                    const std::function<bool(const PPOUpdate&)>& on_update) {
  validate(cfg);
  // With --device cuda the networks, the losses and the update run on the GPU; the
  // environments, the rollout buffers and GAE stay on the CPU (a rollout step is a handful of
  // rows), and each step moves its observations over and its actions and values back.
  const Device dev = resolve_device(cfg.device);
  // Setup: environments, policy, optimiser.
  envs::VectorEnv env(cfg.env_id, cfg.num_envs);
  const auto& act_space = env.single_action_space();
  const bool discrete = act_space.is_discrete();
  const int64_t N = cfg.num_envs, T = cfg.num_steps, O = env.obs_dim(), A = env.action_dim();
  const int64_t batch_size = N * T, minibatch_size = batch_size / cfg.num_minibatches;
  const int64_t num_updates = cfg.total_steps / batch_size;

  Generator gen(cfg.seed);
  models::PolicyConfig pc;
  pc.obs_dim = O;
  pc.discrete = discrete;
  pc.num_actions = discrete ? act_space.n : A;
  pc.hidden = parse_sizes("--hidden", cfg.hidden);
  pc.activation = cfg.activation;
  pc.shared_trunk = cfg.shared_trunk;
  pc.log_std_init = cfg.log_std_init;
  pc.fixed_std = cfg.fixed_std;
  models::ActorCritic agent(pc, gen);
  agent.to(dev);  // in place, before the optimiser takes the parameters
  optim::Adam optimizer(agent.parameters(), cfg.learning_rate, 0.9, 0.999, cfg.adam_eps);
  double kl_beta = cfg.kl_beta;

  // A resumed run keeps its settings (environment, network, losses); only the step budget may
  // grow. Checked before the checkpoint is read, so a Pendulum run resumed as CartPole is named
  // as such rather than as a tensor shape mismatch. A resumed run records its new budget once
  // its checkpoint has loaded and been checked (below): a resume that fails leaves config.json
  // as it was.
  json::Value config = to_json(cfg);
  const std::unique_ptr<RunDir> run =
      open_policy_run(run_dir, cfg.resume, config, "ppo", models::describe(pc), "total_steps");

  RunningMeanStd obs_rms(O);
  int64_t first_update = 1, global_step = 0;
  if (cfg.resume) {
    const std::string ckpt = run->path("checkpoint.safetensors");
    RLFT_CHECK(fs::exists(ckpt), "ppo: cannot resume: no checkpoint at ", ckpt);
    const Metadata md = load_checkpoint(ckpt, agent, &optimizer);
    RLFT_CHECK(
        md.count("update") && md.count("global_step") && md.count("generator_offset"), ckpt,
        ": not a PPO training checkpoint (metadata lacks update/global_step/generator_offset)");
    first_update = metadata_int(md, "update", ckpt) + 1;
    global_step = metadata_int(md, "global_step", ckpt);
    gen.set_state(cfg.seed, metadata_uint(md, "generator_offset", ckpt));
    if (md.count("kl_beta")) kl_beta = metadata_double(md, "kl_beta", ckpt);
    if (md.count("obs_rms")) obs_rms = RunningMeanStd::from_metadata(md.at("obs_rms"), ckpt, O);
    // The checkpoint's own record of its environment and network, against what config.json
    // (edited by hand, say) builds now.
    check_checkpoint_policy(md, ckpt, models::describe(pc), cfg.env_id);
    RLFT_CHECK(first_update - 1 <= num_updates, ckpt, ": the checkpoint is at update ",
               first_update - 1, " (global step ", global_step, "), beyond --total-steps ",
               cfg.total_steps, " (", num_updates, " updates of ", batch_size, " steps)");
    // A crash between two checkpoints leaves metrics of updates that the resumed run logs
    // again: keep the lines up to the checkpoint's update only (every line read and checked
    // first), then record the new budget, now that the resume can go on.
    (void)run->keep_metrics_through(first_update - 1, "update");
    run->write_config(config);
  }
  // Metadata of policy and checkpoint files (architecture, env, counters, RNG position).
  auto metadata = [&](int64_t update) {
    Metadata md = {{"format", "rlft-policy"},
                   {"algorithm", "ppo"},
                   {"env_id", cfg.env_id},
                   {"policy", models::describe(pc)},
                   {"update", std::to_string(update)},
                   {"global_step", std::to_string(global_step)},
                   {"generator_offset", std::to_string(gen.offset())},
                   {"kl_beta", str(kl_beta)}};
    if (cfg.norm_obs) md["obs_rms"] = obs_rms.to_json().dump();
    return md;
  };
  RewardScaler reward_scaler(N, cfg.gamma);
  // The observation the policy sees (normalised when norm_obs), updating the running stats.
  auto policy_obs = [&](std::span<const float> raw, int64_t rows, bool update) {
    if (!cfg.norm_obs)
      return Tensor::from_vector(std::vector<float>(raw.begin(), raw.end()), {rows, O});
    if (update) obs_rms.update(raw.data(), rows);
    std::vector<float> out(static_cast<size_t>(rows * O));
    obs_rms.normalize(raw.data(), rows, out.data());
    return Tensor::from_vector(out, {rows, O});
  };

  // Rollout storage, time-major [T, N, …] (collect_rollout allocates it on the first update).
  PPORollout ro;
  const RewardScaleFn scale_rewards = [&](float* rewards, const uint8_t* done, int64_t n) {
    reward_scaler.scale(rewards, done, n);
  };

  std::deque<double> last_returns;
  PPOResult result;
  const double threshold = env.spec().reward_threshold.value_or(INFINITY);
  env.reset(cfg.seed + uint64_t(first_update - 1) * 1000003ULL);
  Tensor next_obs = policy_obs(env.obs(), N, true);
  Stopwatch clock;
  const int64_t start_step = global_step;

  if (!cfg.quiet) {
    std::printf("ppo on %s: %lld updates of %lld×%lld steps, %lld parameters, seed %llu\n",
                cfg.env_id.c_str(), (long long)num_updates, (long long)N, (long long)T,
                (long long)agent.num_parameters(), (unsigned long long)cfg.seed);
  }

  int64_t last_update = first_update - 1;
  for (int64_t update = first_update; update <= num_updates; ++update) {
    // Learning-rate annealing (CleanRL: frac = 1 − (update − 1)/num_updates).
    const double lr = cfg.anneal_lr
                          ? cfg.learning_rate * (1.0 - double(update - 1) / double(num_updates))
                          : cfg.learning_rate;
    optimizer.set_lr(lr);

    // ---- rollout ----
    PPOUpdate u;
    collect_rollout(env, agent, gen, dev, T, policy_obs,
                    cfg.norm_reward ? scale_rewards : RewardScaleFn(), next_obs, ro);
    global_step += N * T;
    const std::vector<double>& finished = ro.finished;

    // ---- advantages (fused GAE op) ----
    auto [advantages, returns] = gae(ro.rewards, ro.values, ro.next_values, ro.terminated,
                                     ro.ended, cfg.gamma, cfg.gae_lambda);

    // ---- update: epochs × minibatches over the flattened batch ----
    const Tensor b_obs = ro.obs.reshape({batch_size, O}).to(dev);
    const Tensor b_act =
        (discrete ? ro.actions.reshape({batch_size}) : ro.actions.reshape({batch_size, A})).to(dev);
    const Tensor b_logp = ro.log_probs.reshape({batch_size}).to(dev),
                 b_val = ro.values.reshape({batch_size}).to(dev);
    const Tensor b_adv = advantages.reshape({batch_size}).to(dev),
                 b_ret = returns.reshape({batch_size}).to(dev);
    std::vector<int64_t> order(static_cast<size_t>(batch_size));
    std::iota(order.begin(), order.end(), 0);
    double pg_sum = 0, v_sum = 0, ent_sum = 0, kl_sum = 0, kl1_sum = 0, cl_lo = 0, cl_hi = 0;
    int64_t n_mb = 0, epochs_run = 0;
    double last_kl = 0;
    for (int64_t epoch = 0; epoch < cfg.update_epochs; ++epoch) {
      for (int64_t i = batch_size - 1; i > 0; --i)
        std::swap(order[i], order[gen.below(uint64_t(i + 1))]);
      double epoch_kl = 0, minibatch_kl = 0;
      for (int64_t start = 0; start < batch_size; start += minibatch_size) {
        const Tensor idx =
            Tensor::from_vector(
                std::vector<int64_t>(order.begin() + start, order.begin() + start + minibatch_size),
                {minibatch_size})
                .to(dev);
        const Tensor mb_obs = index_select(b_obs, 0, idx), mb_act = index_select(b_act, 0, idx);
        const Tensor mb_logp = index_select(b_logp, 0, idx), mb_val = index_select(b_val, 0, idx);
        const Tensor mb_ret = index_select(b_ret, 0, idx);
        Tensor mb_adv = index_select(b_adv, 0, idx);
        if (cfg.norm_adv && minibatch_size > 1) mb_adv = normalize_advantages(mb_adv);

        const models::ActionEval ev = agent.evaluate(mb_obs, mb_act);
        // Policy loss: the fused clipped surrogate (its stats serve both modes).
        RatioClipOptions rc_opt;
        rc_opt.eps_low = rc_opt.eps_high = cfg.clip_coef;
        rc_opt.dual_clip = cfg.dual_clip;
        const RatioClipResult rc = ratio_clip(ev.log_probs, mb_logp, mb_adv, Tensor(), rc_opt);
        Tensor pg_loss = rc.loss;
        if (cfg.loss == "penalty") {
          const Tensor logratio = sub(ev.log_probs, mb_logp), ratio = exp(logratio);
          const Tensor k3 = sub(add(ratio, -1.0), logratio);  // (r − 1) − log r ≥ 0
          pg_loss = add(neg(mean(mul(ratio, mb_adv))), mul(mean(k3), kl_beta));
        }
        // Value loss, clipped around the rollout's values (CleanRL).
        const Tensor v_loss =
            ppo_value_loss(agent.value(mb_obs), mb_val, mb_ret, cfg.clip_coef, cfg.clip_vloss);
        const Tensor entropy = mean(ev.entropy);
        const Tensor loss = add(sub(pg_loss, mul(entropy, cfg.ent_coef)), mul(v_loss, cfg.vf_coef));

        optimizer.zero_grad();
        loss.backward();
        if (cfg.max_grad_norm > 0) optim::clip_grad_norm(agent.parameters(), cfg.max_grad_norm);
        optimizer.step();

        pg_sum += pg_loss.item();
        v_sum += v_loss.item();
        ent_sum += entropy.item();
        kl_sum += rc.stats.approx_kl_k3;
        kl1_sum += rc.stats.approx_kl_k1;
        cl_lo += rc.stats.clip_frac_low;
        cl_hi += rc.stats.clip_frac_high;
        epoch_kl += rc.stats.approx_kl_k3;
        minibatch_kl = rc.stats.approx_kl_k3;
        ++n_mb;
      }
      ++epochs_run;
      last_kl = epoch_kl / double(cfg.num_minibatches);  // the penalty's d: the epoch's mean
      // CleanRL's early stop: the epoch's last minibatch's approx KL (k3) above target_kl ends
      // the update's epochs.
      if (cfg.target_kl > 0 && minibatch_kl > cfg.target_kl) break;
    }
    if (cfg.loss == "penalty") {
      if (last_kl > 1.5 * cfg.kl_target)
        kl_beta *= 2;
      else if (last_kl < cfg.kl_target / 1.5)
        kl_beta /= 2;
    }

    // ---- log ----
    for (double r : finished) {
      last_returns.push_back(r);
      if (last_returns.size() > 20) last_returns.pop_front();
    }
    u.update = update;
    u.global_step = global_step;
    u.episodes = int64_t(finished.size());
    if (!finished.empty()) {
      u.episodic_return_mean =
          std::accumulate(finished.begin(), finished.end(), 0.0) / double(finished.size());
      u.episodic_return_min = *std::min_element(finished.begin(), finished.end());
      u.episodic_return_max = *std::max_element(finished.begin(), finished.end());
    }
    u.return_last20 = last_returns.empty()
                          ? 0
                          : std::accumulate(last_returns.begin(), last_returns.end(), 0.0) /
                                double(last_returns.size());
    u.pg_loss = pg_sum / double(n_mb);
    u.v_loss = v_sum / double(n_mb);
    u.entropy = ent_sum / double(n_mb);
    u.approx_kl = kl_sum / double(n_mb);
    u.approx_kl_k1 = kl1_sum / double(n_mb);
    u.clipfrac_low = cl_lo / double(n_mb);
    u.clipfrac_high = cl_hi / double(n_mb);
    u.clipfrac = u.clipfrac_low + u.clipfrac_high;
    u.explained_variance = explained_variance(b_val, b_ret);
    u.learning_rate = lr;
    u.kl_beta = kl_beta;
    u.epochs = epochs_run;
    u.sps = double(global_step - start_step) / clock.seconds();
    if (result.steps_to_threshold < 0 && last_returns.size() >= 20 && u.return_last20 >= threshold)
      result.steps_to_threshold = global_step;
    result.updates.push_back(u);

    if (run) {
      json::Value m = json::Value::object();
      m.set("update", u.update);
      m.set("global_step", u.global_step);
      m.set("episodes", u.episodes);
      m.set("episodic_return_mean",
            u.episodes ? json::Value(u.episodic_return_mean) : json::Value());
      m.set("episodic_return_min", u.episodes ? json::Value(u.episodic_return_min) : json::Value());
      m.set("episodic_return_max", u.episodes ? json::Value(u.episodic_return_max) : json::Value());
      m.set("return_last20", u.return_last20);
      m.set("pg_loss", u.pg_loss);
      m.set("v_loss", u.v_loss);
      m.set("entropy", u.entropy);
      m.set("approx_kl", u.approx_kl);
      m.set("approx_kl_k1", u.approx_kl_k1);
      m.set("clipfrac", u.clipfrac);
      m.set("clipfrac_low", u.clipfrac_low);
      m.set("clipfrac_high", u.clipfrac_high);
      m.set("explained_variance", u.explained_variance);
      m.set("learning_rate", u.learning_rate);
      if (cfg.loss == "penalty") m.set("kl_beta", u.kl_beta);
      m.set("epochs", u.epochs);
      m.set("sps", u.sps);
      run->log(m);
    }
    if (!cfg.quiet && (update % cfg.log_every == 0 || update == num_updates)) {
      const double eta = (double(num_updates - update) * double(batch_size)) / std::max(u.sps, 1.0);
      char ret[16] = "       -";  // no episode finished in this update
      if (u.episodes) std::snprintf(ret, sizeof ret, "%8.2f", u.episodic_return_mean);
      std::printf(
          "update %4lld/%lld  step %8lld  return %s (last20 %8.2f)  pg %+.4f  v %8.4f  ent %.3f  "
          "kl %.5f  clip %.3f  ev %+.2f  %7.0f sps  ETA %s\n",
          (long long)update, (long long)num_updates, (long long)global_step, ret, u.return_last20,
          u.pg_loss, u.v_loss, u.entropy, u.approx_kl, u.clipfrac, u.explained_variance, u.sps,
          format_duration(eta).c_str());
      std::fflush(stdout);
    }
    if (run && cfg.checkpoint_every > 0 && update % cfg.checkpoint_every == 0) {
      run->sync_log();
      save_checkpoint(run->path("checkpoint.safetensors"), agent, &optimizer, metadata(update));
    }
    last_update = update;
    if (on_update && !on_update(u)) break;
  }

  if (run) {
    run->sync_log();
    save_checkpoint(run->path("policy.safetensors"), agent, nullptr, metadata(last_update));
    save_checkpoint(run->path("checkpoint.safetensors"), agent, &optimizer, metadata(last_update));
    if (!result.updates.empty() || cfg.resume) {
      try {
        write_learning_curve(run->dir());
      } catch (const Error&) {
        // No episode finished yet: nothing to draw.
      }
    }
  }
  return result;
}

}  // namespace rlft::rl
