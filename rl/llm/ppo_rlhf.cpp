// PPO-RLHF loop (see ppo_rlhf.h for the objective): rollout → experience (rewards with the KL
// penalty, GAE) → actor and critic minibatch updates → log → checkpoint (actor and critic files
// at one step, with both Adam states and the loop's state, so --resume continues exactly).
#include "rl/llm/ppo_rlhf.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <limits>
#include <tuple>

#include "engine/checkpoint.h"
#include "engine/error.h"
#include "engine/fs.h"
#include "engine/ops.h"
#include "engine/optim.h"
#include "models/generate.h"
#include "rl/llm/lm.h"
#include "rl/plot.h"
#include "rl/run.h"

namespace rlft::llm {

namespace {
// CPU seconds of this process (all threads): with one thread, the phase's cost without the
// waiting that a shared machine adds to wall time.
double process_cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return double(ts.tv_sec) + 1e-9 * double(ts.tv_nsec);
}
}  // namespace

Tensor compute_rewards(const Tensor& log_probs, const Tensor& ref_log_probs,
                       const Tensor& reward_score, const Tensor& action_mask, double kl_ctl,
                       double clip_reward_value) {
  RLFT_CHECK(log_probs.dim() == 2 && ref_log_probs.shape() == log_probs.shape() &&
                 action_mask.shape() == log_probs.shape(),
             "compute_rewards: log_probs ", log_probs.shape(), ", ref_log_probs ",
             ref_log_probs.shape(), ", action_mask ", action_mask.shape(), " must be one [B, T]");
  const int64_t B = log_probs.size(0), T = log_probs.size(1);
  RLFT_CHECK(reward_score.numel() == B, "compute_rewards: reward_score has ", reward_score.numel(),
             " entries for ", B, " rows");
  const std::vector<double> lp = log_probs.to_vector(), ref = ref_log_probs.to_vector(),
                            m = action_mask.to_vector(), score = reward_score.to_vector();
  std::vector<double> rewards(size_t(B * T), 0.0);
  for (int64_t b = 0; b < B; ++b) {
    int64_t last = -1;
    for (int64_t t = 0; t < T; ++t) {
      const size_t i = size_t(b * T + t);
      if (m[i] == 0) continue;
      rewards[i] = -kl_ctl * (lp[i] - ref[i]);  // kl_divergence_estimate
      last = t;
    }
    // reward_clip added at this row's own end: rewards[j, start:ends[j]][-1] += reward_clip[j]
    if (last >= 0)
      rewards[size_t(b * T + last)] +=
          std::clamp(score[size_t(b)], -clip_reward_value, clip_reward_value);
  }
  return Tensor::from_vector(rewards, {B, T}).to(log_probs.dtype()).to(log_probs.device());
}

Tensor critic_loss(const Tensor& values, const Tensor& old_values, const Tensor& returns,
                   const Tensor& action_mask, double cliprange_value) {
  const Tensor m = action_mask.to(values.dtype());
  // values_clipped = clip(values, old_values − c, old_values + c)
  const Tensor values_clipped =
      add(old_values, clamp(sub(values, old_values), -cliprange_value, cliprange_value));
  const Tensor vf_loss1 = pow(sub(values, returns), 2.0);
  const Tensor vf_loss2 = pow(sub(values_clipped, returns), 2.0);
  return mul(div(sum(mul(maximum(vf_loss1, vf_loss2), m)), sum(m)), 0.5);
}

RatioClipResult actor_loss(const Tensor& log_probs, const Tensor& old_log_probs,
                           const Tensor& advantages, const Tensor& action_mask, double cliprange) {
  RatioClipOptions o;
  o.eps_low = o.eps_high = cliprange;
  o.aggregation = kernels::Aggregation::token_mean;
  return ratio_clip(log_probs, old_log_probs, advantages, action_mask.to(log_probs.dtype()), o);
}

Tensor whiten_masked(const Tensor& advantages, const Tensor& action_mask) {
  const std::vector<double> a = advantages.to_vector(), m = action_mask.to_vector();
  double n = 0, s = 0, ss = 0;
  for (size_t i = 0; i < a.size(); ++i)
    if (m[i] != 0) n += 1, s += a[i];
  if (n == 0) return advantages;
  const double mu = s / n;
  for (size_t i = 0; i < a.size(); ++i)
    if (m[i] != 0) ss += (a[i] - mu) * (a[i] - mu);
  const double sd = std::sqrt(ss / std::max(n - 1, 1.0));
  std::vector<double> w(a.size(), 0.0);
  for (size_t i = 0; i < a.size(); ++i)
    if (m[i] != 0) w[i] = (a[i] - mu) / (sd + 1e-8);
  return Tensor::from_vector(w, advantages.shape()).to(advantages.dtype()).to(advantages.device());
}

void AdaptiveKLController::update(double kl, int64_t n_steps) {
  const double e = std::clamp(kl / target - 1.0, -0.2, 0.2);
  value *= 1.0 + e * double(n_steps) / horizon;
}

json::Value to_json(const PPORLHFConfig& c) {
  json::Value v = json::Value::object();
  v.set("init", c.init);
  v.set("reward_model", c.reward_model);
  v.set("steps", c.steps);
  v.set("batch", c.batch);
  v.set("ppo_epochs", c.ppo_epochs);
  v.set("minibatches", c.minibatches);
  v.set("actor_lr", c.actor_lr);
  v.set("critic_lr", c.critic_lr);
  v.set("kl_ctl", c.kl_ctl);
  v.set("adaptive_kl", c.adaptive_kl);
  v.set("kl_target", c.kl_target);
  v.set("kl_horizon", c.kl_horizon);
  v.set("clip_reward_value", c.clip_reward_value);
  v.set("cliprange", c.cliprange);
  v.set("cliprange_value", c.cliprange_value);
  v.set("gamma", c.gamma);
  v.set("lam", c.lam);
  v.set("whiten_advantages", c.whiten_advantages);
  v.set("temperature", c.temperature);
  v.set("max_new_tokens", c.max_new_tokens);
  v.set("grad_clip", c.grad_clip);
  v.set("eval_every", c.eval_every);
  v.set("eval_samples", c.eval_samples);
  v.set("out_dir", c.out_dir);
  v.set("name", c.name);
  v.set("seed", c.seed);
  v.set("device", c.device);
  v.set("checkpoint_every", c.checkpoint_every);
  v.set("resume", c.resume);
  v.set("stop_after", c.stop_after);
  return v;
}

Tensor aligned_values(models::GPT& critic, const Tensor& tokens, const Tensor& attention_mask) {
  const Tensor v = critic.values(critic.forward(tokens, attention_mask));
  const int64_t B = v.size(0), T = v.size(1);
  return concat({Tensor::zeros({B, 1}, v.dtype(), v.device()), v.narrow(1, 0, T - 1)}, 1);
}

Experience make_experience(models::GPT& ref, models::GPT& critic, models::GPT& rm,
                           const Tensor& tokens, const Tensor& attention_mask,
                           const Tensor& log_probs, const Tensor& action_mask, double kl_coef,
                           const PPORLHFConfig& cfg) {
  NoGradGuard ng;
  Experience e;
  // The reference is scored at the rollout's temperature, as the actor's log_probs were: at
  // τ ≠ 1 the KL penalty then compares π_θ^τ with π_ref^τ and is 0 while θ = ref (TRL does the
  // same: its reference logits are divided by the temperature too).
  e.ref_log_probs = models::sequence_log_probs(ref, tokens, attention_mask, cfg.temperature);
  critic.eval();
  e.old_values = mul(aligned_values(critic, tokens, attention_mask), action_mask);
  e.reward_score = rm.rewards(rm.forward(tokens, attention_mask), attention_mask);
  e.rewards = compute_rewards(log_probs, e.ref_log_probs, e.reward_score, action_mask, kl_coef,
                              cfg.clip_reward_value);
  std::tie(e.advantages, e.returns) =
      gae_masked(e.rewards, e.old_values, action_mask, cfg.gamma, cfg.lam);
  if (cfg.whiten_advantages) e.advantages = whiten_masked(e.advantages, action_mask);
  return e;
}

namespace {

// Actor log-probs and entropies [B, T] (0 at t = 0), from one forward pass.
std::pair<Tensor, Tensor> actor_log_probs(models::GPT& actor, const Tensor& tokens,
                                          const Tensor& attention_mask, double temperature) {
  const Tensor logits = actor.lm_logits(actor.forward(tokens, attention_mask));
  const int64_t B = tokens.size(0), T = tokens.size(1);
  auto [lp, ent] =
      softmax_logprob(logits.narrow(1, 0, T - 1), tokens.narrow(1, 1, T - 1), temperature);
  const Tensor z = Tensor::zeros({B, 1}, lp.dtype(), lp.device());
  return {concat({z, lp}, 1), concat({z, ent}, 1)};
}

Tensor rows(const Tensor& t, int64_t s, int64_t n) { return t.narrow(0, s, n).contiguous(); }

// The loop's state between two updates, beside the weights and the optimisers in the actor's
// checkpoint (metadata "ppo_rlhf_state"): the adaptive controller's β and the counters of the
// random streams, each realigned to a Philox block at the start of every update.
struct ResumeState {
  double kl_ctl = 0;
  uint64_t sample_offset = 0, actor_dropout_offset = 0, critic_dropout_offset = 0;
};

ResumeState parse_resume_state(const std::string& text, const std::string& ckpt) {
  const rl::StateReader st(text, ckpt, "ppo_rlhf_state");
  ResumeState r;
  r.kl_ctl = st.finite("kl_ctl", 0);
  r.sample_offset = uint64_t(st.integer("sample_offset"));
  r.actor_dropout_offset = uint64_t(st.integer("actor_dropout_offset"));
  r.critic_dropout_offset = uint64_t(st.integer("critic_dropout_offset"));
  return r;
}

}  // namespace

PPORLHFResult train_ppo_rlhf(const PPORLHFConfig& given) {
  const json::Value recorded =
      recorded_config(given.resume ? rl::run_path(given.out_dir, given.name) : "");
  // The inputs from the root: a resume from another directory reads the same runs.
  PPORLHFConfig cfg = given;
  cfg.init = recorded_input_path(cfg.init, "init", recorded);
  cfg.reward_model = recorded_input_path(cfg.reward_model, "reward_model", recorded);
  RLFT_CHECK(!cfg.init.empty(), "rlft lm ppo: --init (an SFT run) is required");
  RLFT_CHECK(!cfg.reward_model.empty(),
             "rlft lm ppo: --reward-model (an `rlft lm rm` run) is required");
  const char* cmd = "rlft lm ppo: ";
  auto positive = [&](const char* flag, int64_t x) {
    RLFT_CHECK(x > 0, cmd, flag, " must be positive, got ", x);
  };
  positive("--steps", cfg.steps);
  rl::check_count(cmd, "--batch", cfg.batch);
  positive("--ppo-epochs", cfg.ppo_epochs);
  positive("--minibatches", cfg.minibatches);
  RLFT_CHECK(cfg.batch % cfg.minibatches == 0, cmd, "--minibatches ", cfg.minibatches,
             " must divide --batch ", cfg.batch);
  const double inf = std::numeric_limits<double>::infinity();
  rl::check_number(cmd, "--actor-lr", cfg.actor_lr, 0, true, inf, "a finite number > 0");
  rl::check_number(cmd, "--critic-lr", cfg.critic_lr, 0, true, inf, "a finite number > 0");
  rl::check_number(cmd, "--kl-ctl", cfg.kl_ctl, 0, false, inf, "a finite number >= 0");
  rl::check_number(cmd, "--kl-target", cfg.kl_target, 0, true, inf, "a finite number > 0");
  rl::check_number(cmd, "--kl-horizon", cfg.kl_horizon, 0, true, inf,
                   "a finite number > 0 (sequences)");
  // One update multiplies kl_ctl by 1 + e·B/horizon with e down to −0.2: a horizon of 0.2·B or
  // less makes it zero or negative (a bonus for leaving the reference) after one KL under target.
  RLFT_CHECK(!cfg.adaptive_kl || cfg.kl_horizon > 0.2 * double(cfg.batch), cmd,
             "--kl-horizon must be more than 0.2 x --batch = ", 0.2 * double(cfg.batch),
             " with --adaptive-kl (a smaller horizon lets one update under the KL target make "
             "kl_ctl zero or negative), got ",
             cfg.kl_horizon);
  rl::check_number(cmd, "--clip-reward-value", cfg.clip_reward_value, 0, true, inf,
                   "a finite number > 0");
  rl::check_number(cmd, "--cliprange", cfg.cliprange, 0, true, 1, "a finite number in (0, 1]");
  rl::check_number(cmd, "--cliprange-value", cfg.cliprange_value, 0, true, inf,
                   "a finite number > 0");
  rl::check_number(cmd, "--gamma", cfg.gamma, 0, false, 1, "a finite number in [0, 1]");
  rl::check_number(cmd, "--lam", cfg.lam, 0, false, 1, "a finite number in [0, 1]");
  rl::check_number(cmd, "--temperature", cfg.temperature, 0, true, inf, "a finite number > 0");
  rl::check_number(cmd, "--grad-clip", cfg.grad_clip, 0, false, inf,
                   "a finite number >= 0 (0: off)");
  RLFT_CHECK(cfg.max_new_tokens >= 0, cmd,
             "--max-new-tokens must be >= 0 (0: as the context allows), got ", cfg.max_new_tokens);
  RLFT_CHECK(cfg.eval_every >= 0, cmd, "--eval-every must be >= 0 (0: start and end), got ",
             cfg.eval_every);
  rl::check_count(cmd, "--eval-samples", cfg.eval_samples);
  rl::check_checkpoint_options(cmd, cfg.checkpoint_every, cfg.stop_after);
  // --out-dir and --name, checked before any loading; the run is not its own input.
  rl::check_not_the_run(rl::run_path(cfg.out_dir, cfg.name),
                        {{"--init", cfg.init}, {"--reward-model", cfg.reward_model}});
  const Device dev = rl::resolve_device(cfg.device);
  // A resume reads the SFT run and the reward model the run started with: checked before they
  // are read.
  const json::Value fingerprints = fingerprint_inputs(
      {run_input("--init", cfg.init), run_input("--reward-model", cfg.reward_model)}, recorded);
  const LoadedModel actor_run = load_policy(cfg.init, dev), ref_run = load_policy(cfg.init, dev);
  const LoadedModel rm_run = load_reward_model(cfg.reward_model, dev);
  RLFT_CHECK(rm_run.tokenizer.to_json() == actor_run.tokenizer.to_json(), cfg.reward_model,
             ": its tokenizer differs from the SFT run's");
  models::GPT& actor = *actor_run.model;
  models::GPT& ref = *ref_run.model;
  models::GPT& rm = *rm_run.model;
  const models::Tokenizer& tok = actor_run.tokenizer;
  // Critic: the reward model's backbone, its reward head as the value head (DeepSpeed-Chat
  // initialises the critic from the reward model).
  Generator gen(cfg.seed);
  models::GPT critic(with_heads(rm.config(), true, false), gen);
  critic.to(dev);  // built on the host (the same draws from gen on every device), then moved
  copy_matching_parameters(critic, rm);
  {
    NoGradGuard ng;
    critic.value_head->weight.copy_(rm.reward_head->weight);
    critic.value_head->bias.copy_(rm.reward_head->bias);
  }
  for (models::GPT* m : {&ref, &rm}) {
    for (Tensor p : m->parameters()) p.set_requires_grad(false);
    m->eval();
  }

  const TaskConfig task_config = task_config_of(actor_run);
  // The rollout and evaluation statistics are the reviews task's hidden ground truth.
  RLFT_CHECK(task_config.task == "reviews", cfg.init, ": a run of task '", task_config.task,
             "'; rlft lm ppo needs a reviews SFT run (its ground truth scores the samples)");
  const std::unique_ptr<Task> task = make_task(task_config);
  std::vector<std::string> train_prompts = task->prompts(Split::train), eval_prompts;
  for (const std::string& p : task->prompts(Split::validation))
    for (int64_t j = 0; j < cfg.eval_samples; ++j) eval_prompts.push_back(p);
  for (size_t i = train_prompts.size(); i > 1; --i)
    std::swap(train_prompts[i - 1], train_prompts[gen.below(i)]);

  json::Value config_json = to_json(cfg);
  // A resume: the same run; only --steps may grow.
  const rl::RunDir run =
      rl::open_run(rl::run_path(cfg.out_dir, cfg.name), cfg.resume, config_json, {"steps"});
  record_fingerprints(config_json, fingerprints);
  // The training checkpoint, two files: the actor (the policy `rlft lm eval|sample` load) with
  // its Adam state and the loop's state, and the critic with its Adam state, both at one step.
  // While a checkpoint is written the critic's previous file is kept as critic_prev, so a kill
  // between the two writes leaves a pair at the previous step (see `save`).
  const std::string ckpt = run.path("checkpoint.safetensors"),
                    critic_ckpt = run.path("critic.safetensors"),
                    critic_prev = run.path("critic.previous.safetensors");
  bool critic_from_prev = false;  // a resume whose pair is {ckpt, critic_prev}
  optim::Adam actor_opt(actor.parameters(), cfg.actor_lr),
      critic_opt(critic.parameters(), cfg.critic_lr);
  AdaptiveKLController kl_ctl{cfg.kl_ctl, cfg.kl_target, cfg.kl_horizon};
  models::SamplingConfig sc;
  sc.temperature = cfg.temperature;
  sc.max_new_tokens = cfg.max_new_tokens > 0 ? cfg.max_new_tokens : actor.config().block_size;
  sc = clamp_to_context(sc, actor, tok, train_prompts);
  sc.eos_id = tok.eos_id();
  sc.pad_id = tok.pad_id();
  // The random streams of the loop: rollout sampling, and the dropout masks of the actor's and
  // the critic's training passes (drawn only with dropout > 0), seeded from --seed. Each is
  // realigned to a Philox block at the start of every update (align_to_block), so between updates
  // each is its counter alone, and a resumed run draws exactly what a straight run draws. (The
  // minibatches are contiguous rows and the evaluations use a fresh stream each: neither has
  // state.)
  Generator sample_gen(cfg.seed + 1);
  Generator& actor_dropout = actor.dropout_generator();
  Generator& critic_dropout = critic.dropout_generator();
  actor_dropout.set_state(cfg.seed ^ 0xac70dull, 0);
  critic_dropout.set_state(cfg.seed ^ 0xc217cull, 0);

  PPORLHFResult res;
  res.run_dir = run.dir();
  // Whole-run curves (a resumed run reads the earlier updates back from metrics.jsonl).
  std::vector<double> xs;
  int64_t start = 0;
  double elapsed_before = 0;
  if (cfg.resume) {
    // Everything is read and checked before the run's files change: a refused resume leaves
    // them as they were. Each file's model and tokenizer are checked before its weights load.
    const Metadata meta =
        load_training_checkpoint(ckpt, actor, actor_opt, tok, "--init " + cfg.init);
    RLFT_CHECK(meta.count("ppo_rlhf_state"), ckpt,
               ": not a PPO-RLHF training checkpoint (no ppo_rlhf_state in its metadata; a run "
               "written before PPO-RLHF could resume)");
    const ResumeState st = parse_resume_state(meta.at("ppo_rlhf_state"), ckpt);
    start = metadata_int(meta, "step", ckpt);
    RLFT_CHECK(start <= cfg.steps, ckpt, ": checkpoint is at step ", start, ", beyond --steps ",
               cfg.steps);
    // The critic at the actor's step: critic.safetensors, or, after a kill inside a checkpoint's
    // writes, the previous file kept beside it.
    RLFT_CHECK(fs::exists(critic_ckpt) || fs::exists(critic_prev), critic_ckpt,
               ": missing (the critic of ", ckpt, ", step ", start, "): nothing to resume");
    const std::string critic_source =
        "--reward-model " + cfg.reward_model + " (with a value head for its reward head)";
    int64_t critic_step = -1;
    if (fs::exists(critic_ckpt))
      critic_step = metadata_int(
          load_training_checkpoint(critic_ckpt, critic, critic_opt, tok, critic_source), "step",
          critic_ckpt);
    if (critic_step != start && fs::exists(critic_prev)) {
      const int64_t prev_step = metadata_int(
          load_training_checkpoint(critic_prev, critic, critic_opt, tok, critic_source), "step",
          critic_prev);
      RLFT_CHECK(prev_step == start, critic_prev, ": the critic's previous checkpoint is at step ",
                 prev_step, " and ", critic_ckpt, " at step ", critic_step, ", but the actor's (",
                 ckpt, ") at step ", start, ": the run cannot continue exactly");
      critic_from_prev = true;
    } else {
      RLFT_CHECK(critic_step == start, critic_ckpt, ": the critic's checkpoint is at step ",
                 critic_step, " but the actor's (", ckpt, ") at step ", start,
                 ": the run cannot continue exactly");
    }
    kl_ctl.value = st.kl_ctl;
    sample_gen.set_state(sample_gen.seed(), st.sample_offset);
    actor_dropout.set_state(actor_dropout.seed(), st.actor_dropout_offset);
    critic_dropout.set_state(critic_dropout.seed(), st.critic_dropout_offset);
    // The metrics up to the checkpoint rebuild the curves, each kept line checked before the
    // file is rewritten (rl::RunDir::keep_metrics_through names the file and the entry); rows
    // logged after the checkpoint (a run killed between two checkpoints) go: those steps run
    // again.
    run.keep_metrics_through(start, "step", [&](const json::Value& line) {
      const int64_t s = line.at("step").as_int();
      RLFT_CHECK(s >= 0, "'step' must be an integer >= 0, got ", s);
      auto number = [&](const char* key, bool required) {
        const json::Value* v = line.find(key);
        RLFT_CHECK(v ? v->is_number() && std::isfinite(v->as_double()) : !required, "'", key,
                   "' must be a finite number, got ", v ? v->brief() : std::string("(none)"));
      };
      if (s > 0)
        for (const char* key : {"rm_score", "ground_truth", "kl"}) number(key, true);
      const bool evaluated = line.contains("val_ground_truth");
      for (const char* key : {"val_ground_truth", "val_kl", "val_response_length"})
        number(key, evaluated);
      number("elapsed_seconds", false);
      if (evaluated) {
        const PolicyEval pe{line.at("val_ground_truth").as_double(), line.at("val_kl").as_double(),
                            line.get_or("val_response_length", 0.0)};
        if (s == 0) res.before = pe;
        if (s > 0 && s == cfg.steps) res.after = pe, res.finished = true;
      }
      if (s > 0) {
        xs.push_back(double(s));
        res.rm_scores.push_back(line.at("rm_score").as_double());
        res.ground_truths.push_back(line.at("ground_truth").as_double());
        res.kls.push_back(line.at("kl").as_double());
      }
      elapsed_before = line.get_or("elapsed_seconds", elapsed_before);
    });
    if (!cfg.quiet)
      std::printf("ppo-rlhf: resumed at step %lld from %s\n", (long long)start, ckpt.c_str());
  }
  res.start_step = res.steps = start;
  run.write_config(config_json);  // a fresh run: an earlier run's files of that name go
  // A resumed pair is made the current one again: the critic's file at the actor's step is
  // critic.safetensors, and no previous file is left (a stale one, from a kill after the
  // actor's write, would pair with nothing).
  if (critic_from_prev)
    fs::rename_file(critic_prev, critic_ckpt);
  else
    fs::remove_file(critic_prev);
  rl::Stopwatch clock;
  auto evaluate = [&]() {
    Generator g(cfg.seed + 12345);
    return evaluate_policy(actor, ref, tok, eval_prompts, 1.0, g);
  };
  // A checkpoint at step `at`, each file written atomically, in an order that leaves a pair at
  // one step on disk whenever the process dies: (1) the critic's current file (the pair of the
  // actor's file on disk) is renamed critic.previous.safetensors; (2) the new critic is written;
  // (3) the new actor; (4) the previous critic is removed. Killed after (1) or (2), the actor's
  // file and the previous critic are the pair --resume takes; after (3), the new pair.
  auto save = [&](int64_t at) {
    json::Value st = json::Value::object();
    st.set("kl_ctl", kl_ctl.value);
    st.set("sample_offset", int64_t(sample_gen.offset()));
    st.set("actor_dropout_offset", int64_t(actor_dropout.offset()));
    st.set("critic_dropout_offset", int64_t(critic_dropout.offset()));
    run.sync_log();
    if (fs::exists(critic_ckpt)) fs::rename_file(critic_ckpt, critic_prev);
    save_checkpoint(critic_ckpt, critic, &critic_opt,
                    checkpoint_metadata(critic.config(), tok, actor_run.run_config, at));
    Metadata meta = checkpoint_metadata(actor.config(), tok, actor_run.run_config, at);
    meta["ppo_rlhf_state"] = st.dump();
    save_checkpoint(ckpt, actor, &actor_opt, meta);
    fs::remove_file(critic_prev);
  };
  if (!cfg.resume) {
    res.before = evaluate();
    // The SFT policy's point (KL 0 by construction), so every run's evaluations start at step 0
    // as DPO's do (the frontier experiment reads val_* rows).
    json::Value m0 = json::Value::object();
    m0.set("step", int64_t(0));
    m0.set("val_ground_truth", res.before.ground_truth);
    m0.set("val_kl", res.before.kl);
    m0.set("val_response_length", res.before.response_length);
    run.log(m0);
    if (!cfg.quiet)
      std::printf(
          "ppo-rlhf: before training, validation samples: ground truth %.3f  KL %.2f  length "
          "%.1f\n",
          res.before.ground_truth, rl::printable(res.before.kl, 2), res.before.response_length);
  }
  // The prompts are taken in order from the shuffled list: update s starts at (s − 1)·batch.
  size_t next = size_t(start) * size_t(cfg.batch);
  const int64_t end = cfg.stop_after > 0 ? std::min(cfg.steps, start + cfg.stop_after) : cfg.steps;
  for (int64_t step = start + 1; step <= end; ++step) {
    sample_gen.align_to_block(), actor_dropout.align_to_block(), critic_dropout.align_to_block();
    // ---- rollout: batched KV-cache generation
    rl::Stopwatch t_gen;
    const double cpu_gen = process_cpu_seconds();
    std::vector<std::string> prompts;
    for (int64_t i = 0; i < cfg.batch; ++i)
      prompts.push_back(train_prompts[next++ % train_prompts.size()]);
    const PromptBatch pb = make_prompt_batch(tok, prompts);
    const models::Generation g = models::generate(actor, pb.tokens, pb.mask, sc, sample_gen);
    const double time_generation = t_gen.seconds();
    const double cpu_exp = process_cpu_seconds();
    // ---- experience: log-probs of actor and reference, values, RM score (no gradient)
    rl::Stopwatch t_exp;
    const Tensor tokens = g.tokens, attention_mask = g.attention_mask;
    const DType dt = g.log_probs.dtype();
    const Tensor action_mask = g.response_mask.to(dt);
    const Tensor old_log_probs = g.log_probs;
    const auto [ref_log_probs, old_values, reward_score, rewards, advantages, returns] =
        make_experience(ref, critic, rm, tokens, attention_mask, old_log_probs, action_mask,
                        kl_ctl.value, cfg);
    // Rollout statistics.
    const int64_t B = tokens.size(0), T = tokens.size(1);
    double kl = 0, rm_mean = 0, gt = 0, length = 0;
    {
      const std::vector<double> lp = old_log_probs.to_vector(), rlp = ref_log_probs.to_vector(),
                                m = action_mask.to_vector(), rs = reward_score.to_vector();
      const std::vector<int64_t> ids = tokens.to_int_vector();
      for (int64_t b = 0; b < B; ++b) {
        std::vector<int64_t> resp;
        for (int64_t t = 0; t < T; ++t) {
          const size_t i = size_t(b * T + t);
          if (m[i] == 0) continue;
          kl += lp[i] - rlp[i];
          resp.push_back(ids[i]);
        }
        length += double(resp.size());
        rm_mean += rs[size_t(b)];
        gt += ground_truth_probability(prompts[size_t(b)], tok.decode(resp));
      }
      kl /= double(B), rm_mean /= double(B), gt /= double(B), length /= double(B);
    }
    double explained_variance = 0;
    {
      const std::vector<double> r = returns.to_vector(), v = old_values.to_vector(),
                                m = action_mask.to_vector();
      double n = 0, sr = 0, srr = 0, sd = 0, sdd = 0;
      for (size_t i = 0; i < r.size(); ++i)
        if (m[i] != 0)
          n += 1, sr += r[i], srr += r[i] * r[i], sd += r[i] - v[i],
              sdd += (r[i] - v[i]) * (r[i] - v[i]);
      const double var_r = srr / n - (sr / n) * (sr / n), var_d = sdd / n - (sd / n) * (sd / n);
      explained_variance = var_r > 0 ? 1.0 - var_d / var_r : 0.0;
    }
    const double time_experience = t_exp.seconds();
    // ---- training: ppo_epochs × minibatches, separate optimisers
    rl::Stopwatch t_train;
    const double cpu_train = process_cpu_seconds();
    actor.train();
    critic.train();
    double a_loss = 0, c_loss = 0, entropy = 0, clip_low = 0, clip_high = 0, approx_kl = 0,
           approx_kl_k1 = 0;
    // Global gradient norms before clipping of the update's last minibatch step (the logged
    // ones): clip_grad_norm returns them; without clipping they are measured on that step
    // only (a host synchronisation on a GPU).
    double actor_grad_norm = 0, critic_grad_norm = 0;
    int64_t n_mb = 0;
    const int64_t mb = B / cfg.minibatches;
    for (int64_t epoch = 0; epoch < cfg.ppo_epochs; ++epoch) {
      for (int64_t k = 0; k < cfg.minibatches; ++k) {
        const int64_t s = k * mb;
        const bool last = epoch + 1 == cfg.ppo_epochs && k + 1 == cfg.minibatches;
        const Tensor tk = rows(tokens, s, mb), am = rows(attention_mask, s, mb),
                     m = rows(action_mask, s, mb);
        auto [lp, ent] = actor_log_probs(actor, tk, am, cfg.temperature);
        const RatioClipResult rc =
            actor_loss(lp, rows(old_log_probs, s, mb), rows(advantages, s, mb), m, cfg.cliprange);
        actor_opt.zero_grad();
        rc.loss.backward();
        if (cfg.grad_clip > 0)
          actor_grad_norm = optim::clip_grad_norm(actor.parameters(), cfg.grad_clip);
        else if (last)
          actor_grad_norm = optim::grad_norm(actor.parameters());
        actor_opt.step();
        const Tensor values = aligned_values(critic, tk, am);
        const Tensor vl = critic_loss(values, rows(old_values, s, mb), rows(returns, s, mb), m,
                                      cfg.cliprange_value);
        critic_opt.zero_grad();
        vl.backward();
        if (cfg.grad_clip > 0)
          critic_grad_norm = optim::clip_grad_norm(critic.parameters(), cfg.grad_clip);
        else if (last)
          critic_grad_norm = optim::grad_norm(critic.parameters());
        critic_opt.step();
        {
          NoGradGuard ng;
          entropy += (sum(mul(ent.detach(), m)) / sum(m)).item();
        }
        a_loss += rc.loss.item(), c_loss += vl.item();
        clip_low += rc.stats.clip_frac_low, clip_high += rc.stats.clip_frac_high,
            approx_kl += rc.stats.approx_kl_k3, approx_kl_k1 += rc.stats.approx_kl_k1;
        ++n_mb;
      }
    }
    const double time_training = t_train.seconds();
    res.cpu_generation.push_back(cpu_exp - cpu_gen);
    res.cpu_experience.push_back(cpu_train - cpu_exp);
    res.cpu_training.push_back(process_cpu_seconds() - cpu_train);
    if (cfg.adaptive_kl) kl_ctl.update(kl, B);
    res.rm_scores.push_back(rm_mean), res.ground_truths.push_back(gt), res.kls.push_back(kl);
    res.time_generation.push_back(time_generation);
    res.time_experience.push_back(time_experience);
    res.time_training.push_back(time_training);
    xs.push_back(double(step));
    json::Value mj = json::Value::object();
    mj.set("step", step);
    mj.set("rm_score", rm_mean);
    mj.set("ground_truth", gt);
    mj.set("kl", kl);
    mj.set("kl_ctl", kl_ctl.value);
    mj.set("entropy", entropy / double(n_mb));
    mj.set("clip_frac_low", clip_low / double(n_mb));
    mj.set("clip_frac_high", clip_high / double(n_mb));
    mj.set("approx_kl", approx_kl / double(n_mb));
    mj.set("approx_kl_k1", approx_kl_k1 / double(n_mb));
    mj.set("actor_loss", a_loss / double(n_mb));
    mj.set("critic_loss", c_loss / double(n_mb));
    mj.set("actor_grad_norm", actor_grad_norm);
    mj.set("critic_grad_norm", critic_grad_norm);
    mj.set("explained_variance", explained_variance);
    mj.set("response_length", length);
    mj.set("time_generation", time_generation);
    mj.set("time_experience", time_experience);
    mj.set("time_training", time_training);
    mj.set("samples_per_second",
           double(B) / std::max(time_generation + time_experience + time_training, 1e-9));
    const bool do_eval = step == cfg.steps || (cfg.eval_every > 0 && step % cfg.eval_every == 0);
    if (do_eval) {
      const PolicyEval pe = evaluate();
      if (step == cfg.steps) res.after = pe, res.finished = true;
      mj.set("val_ground_truth", pe.ground_truth);
      mj.set("val_kl", pe.kl);
      mj.set("val_response_length", pe.response_length);
    }
    mj.set("elapsed_seconds", elapsed_before + clock.seconds());
    run.log(mj);
    if (!cfg.quiet)
      std::printf(
          "step %4lld  rm %+.3f  truth %.3f  kl %6.2f  ent %.3f  clip %.3f  vloss %.4f  ev %+.2f  "
          "len %5.1f  "
          "gen/exp/train %.1f/%.1f/%.1fs\n",
          (long long)step, rl::printable(rm_mean, 3), gt, rl::printable(kl, 2),
          entropy / double(n_mb), (clip_low + clip_high) / double(n_mb), c_loss / double(n_mb),
          rl::printable(explained_variance, 2), length, time_generation, time_experience,
          time_training);
    res.steps = step;
    // A checkpoint every --checkpoint-every updates, at --stop-after and at the end.
    if (step == end || (cfg.checkpoint_every > 0 && step % cfg.checkpoint_every == 0)) save(step);
  }
  if (start < end) {  // the whole run's curves (a resumed finished run has nothing new to draw)
    plot::write_line_plot(
        run.path("reward.svg"), "PPO-RLHF rollouts", "update", "mean",
        {{"rm score", xs, res.rm_scores}, {"ground truth", xs, res.ground_truths}});
    plot::write_line_plot(run.path("kl.svg"), "PPO-RLHF KL(actor || ref) per sequence", "update",
                          "KL", {{"kl", xs, res.kls}});
  }
  if (!cfg.quiet) {
    if (res.finished)
      std::printf(
          "ppo-rlhf: after training, validation samples: ground truth %.3f  KL %.2f  length "
          "%.1f\n",
          res.after.ground_truth, rl::printable(res.after.kl, 2), res.after.response_length);
    else
      std::printf("ppo-rlhf: stopped after step %lld of %lld (--stop-after; --resume continues)\n",
                  (long long)res.steps, (long long)cfg.steps);
  }
  return res;
}

}  // namespace rlft::llm
