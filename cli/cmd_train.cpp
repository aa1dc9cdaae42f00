// rlft train ppo|reinforce: classic-control training runs (rl/ppo.h, rl/reinforce.h).
#include <cstdio>
#include <cstring>
#include <string>

#include "cli/args.h"
#include "cli/commands.h"
#include "rl/eval.h"
#include "rl/ppo.h"
#include "rl/reinforce.h"
#include "rl/run.h"

namespace rlft::cli {

namespace {

// "ppo-CartPole-v1-1": a name made from --env, with anything a run name may not hold ('/',
// control characters) written as '_', so a bad --env is reported as an unknown environment.
std::string default_run_name(const std::string& algo, const std::string& env, uint64_t seed) {
  std::string name = algo + "-" + env + "-" + std::to_string(seed);
  for (char& c : name)
    if (c == '/' || static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = '_';
  return name;
}

void print_train_usage() {
  std::printf(
      "usage: rlft train ppo|reinforce [options]\n\n"
      "Train a classic-control policy:\n"
      "  rlft train ppo        PPO (clip or KL-penalty) on CartPole, Pendulum or LunarLander\n"
      "  rlft train reinforce  REINFORCE (Monte-Carlo policy gradient)\n\n"
      "'rlft train ppo --help' and 'rlft train reinforce --help' list their options.\n");
}

// --checkpoint-every and --resume of a classic-control trainer; `budget` is the option a resumed
// run may grow (--total-steps, --total-episodes).
void add_resume_flags(Args& a, int64_t* checkpoint_every, bool* resume, const char* budget) {
  a.add("--checkpoint-every", checkpoint_every,
        "write checkpoint.safetensors every N updates (0 = only at the end)");
  a.add("--resume", resume, resume_help(budget, /*has_log_every=*/true, /*has_stop_after=*/false));
}

void add_ppo_flags(Args& a, rl::PPOConfig& c) {
  a.add("--env", &c.env_id,
        "environment id (CartPole-v1, Pendulum-v1, LunarLander-v3, LunarLanderContinuous-v3)");
  a.add("--seed", &c.seed, "random seed (policy init, sampling, environments)");
  a.add("--device", &c.device,
        "cpu, or cuda[:N]: networks and update on the GPU, environments on the CPU");
  a.add("--total-steps", &c.total_steps, "environment steps over all envs");
  a.add("--num-envs", &c.num_envs, "parallel environment copies");
  a.add("--num-steps", &c.num_steps, "steps per env per rollout");
  a.add("--lr", &c.learning_rate, "Adam learning rate");
  a.add("--anneal-lr", &c.anneal_lr, "linearly anneal the learning rate to 0");
  a.add("--adam-eps", &c.adam_eps, "Adam epsilon");
  a.add("--gamma", &c.gamma, "discount factor");
  a.add("--gae-lambda", &c.gae_lambda, "GAE lambda");
  a.add("--num-minibatches", &c.num_minibatches, "minibatches per epoch");
  a.add("--update-epochs", &c.update_epochs, "epochs over each rollout");
  a.add("--norm-adv", &c.norm_adv, "normalise advantages per minibatch");
  a.add("--loss", &c.loss, "policy loss: clip (PPO-clip) or penalty (adaptive KL penalty)");
  a.add("--clip-coef", &c.clip_coef, "ratio clip range epsilon (also the value clip)");
  a.add("--dual-clip", &c.dual_clip, "dual-clip constant c > 1 for negative advantages (0 = off)");
  a.add("--clip-vloss", &c.clip_vloss, "clipped value loss");
  a.add("--ent-coef", &c.ent_coef, "entropy bonus coefficient");
  a.add("--vf-coef", &c.vf_coef, "value loss coefficient");
  a.add("--max-grad-norm", &c.max_grad_norm, "global gradient norm clip (0 = off)");
  a.add("--target-kl", &c.target_kl, "early-stop the epochs above this approx KL (0 = off)");
  a.add("--kl-target", &c.kl_target, "penalty loss: KL target of the adaptive beta");
  a.add("--kl-beta", &c.kl_beta, "penalty loss: initial beta");
  a.add("--hidden", &c.hidden, "hidden layer sizes, comma-separated");
  a.add("--activation", &c.activation, "tanh, relu, gelu or sigmoid");
  a.add("--shared-trunk", &c.shared_trunk, "actor and critic share their hidden layers");
  a.add("--log-std-init", &c.log_std_init, "Gaussian policy: initial log std");
  a.add(
      "--fixed-std", &c.fixed_std,
      "Gaussian policy: keep the std at exp(--log-std-init), not learnt (the seed's sigma^2 = 0.5: "
      "--log-std-init -0.3466)");
  a.add("--norm-obs", &c.norm_obs, "normalise observations with running statistics");
  a.add("--norm-reward", &c.norm_reward, "scale rewards by the running std of the return");
  add_resume_flags(a, &c.checkpoint_every, &c.resume, "--total-steps");
  a.add("--log-every", &c.log_every, "print a progress line every N updates (N >= 1)");
  a.add("--quiet", &c.quiet, "no progress lines");
  a.record_as("--env", "env_id");  // config.json's names of these two settings
  a.record_as("--lr", "learning_rate");
}

}  // namespace

int run_train(int argc, char** argv, int first) {
  RLFT_CHECK(first < argc, "rlft train: missing algorithm (ppo or reinforce); see rlft --help");
  const std::string algo = argv[first];
  if (algo == "--help" || algo == "-h" || algo == "help") {
    print_train_usage();
    return 0;
  }
  std::string name, runs_dir = "runs", preset;
  if (algo == "ppo") {
    rl::PPOConfig cfg;
    if (const auto p = Args::peek_once(argc, argv, first + 1, "--preset"))
      rl::apply_preset(preset = *p, cfg);
    Args args("rlft train ppo", "Train PPO (clip or KL-penalty) on a classic-control environment.");
    args.add("--preset", &preset,
             "start from a named preset (cartpole, cartpole-fast, pendulum, lunarlander), given "
             "once; the other options override its settings wherever they are written");
    add_ppo_flags(args, cfg);
    args.add("--name", &name, "run name (default: ppo-<env>-<seed>)");
    args.add("--runs-dir", &runs_dir, "parent directory of runs");
    if (!args.parse(argc, argv, first + 1)) return 0;
    if (name.empty()) name = default_run_name("ppo", cfg.env_id, cfg.seed);
    const std::string run_dir = rl::run_path(runs_dir, name);
    if (cfg.resume) take_recorded_settings(args, run_dir);
    const rl::PPOResult r = rl::train_ppo(cfg, run_dir);
    std::printf("run written to %s/%s", runs_dir.c_str(), name.c_str());
    if (r.steps_to_threshold >= 0)
      std::printf(" (solved: last-20 return reached the threshold at step %lld)",
                  (long long)r.steps_to_threshold);
    std::printf("\n");
    return 0;
  }
  if (algo == "reinforce") {
    rl::ReinforceConfig cfg;
    if (const auto p = Args::peek_once(argc, argv, first + 1, "--preset"))
      rl::apply_reinforce_preset(preset = *p, cfg);
    Args args("rlft train reinforce",
              "Train REINFORCE (Monte-Carlo policy gradient) on a classic-control environment.");
    args.add("--preset", &preset,
             "start from a named preset (default, or seed: the seed document's settings), given "
             "once; the other options override its settings wherever they are written");
    args.add("--env", &cfg.env_id, "environment id");
    args.add("--seed", &cfg.seed, "random seed");
    args.add("--device", &cfg.device,
             "cpu, cuda or cuda:N (the policy on the GPU; the environment stays on the CPU)");
    args.add("--total-episodes", &cfg.total_episodes, "episodes to train on");
    args.add("--episodes-per-update", &cfg.episodes_per_update, "episodes per gradient step");
    args.add("--lr", &cfg.learning_rate, "Adam learning rate");
    args.add("--gamma", &cfg.gamma, "discount factor");
    args.add(
        "--reward-to-go", &cfg.reward_to_go,
        "weight each step by its reward-to-go (false: the whole-episode return G_0, discounted; "
        "--gamma 1 gives the seed's R(tau), the plain sum)");
    args.add("--baseline", &cfg.baseline, "mean (running mean of returns) or none");
    args.add("--baseline-momentum", &cfg.baseline_momentum,
             "momentum of the running-mean baseline, in [0, 1]");
    args.add("--normalize-returns", &cfg.normalize_returns,
             "standardise the weights over each batch");
    args.add("--hidden", &cfg.hidden, "hidden layer sizes, comma-separated");
    args.add("--activation", &cfg.activation, "tanh, relu, gelu or sigmoid");
    add_resume_flags(args, &cfg.checkpoint_every, &cfg.resume, "--total-episodes");
    args.add("--log-every", &cfg.log_every, "print a progress line every N episodes (N >= 1)");
    args.add("--quiet", &cfg.quiet, "no progress lines");
    args.add("--name", &name, "run name (default: reinforce-<env>-<seed>)");
    args.add("--runs-dir", &runs_dir, "parent directory of runs");
    args.record_as("--env", "env_id");  // config.json's names of these two settings
    args.record_as("--lr", "learning_rate");
    if (!args.parse(argc, argv, first + 1)) return 0;
    if (name.empty()) name = default_run_name("reinforce", cfg.env_id, cfg.seed);
    const std::string run_dir = rl::run_path(runs_dir, name);
    if (cfg.resume) take_recorded_settings(args, run_dir);
    const rl::ReinforceResult r = rl::train_reinforce(cfg, run_dir);
    std::printf("run written to %s/%s", runs_dir.c_str(), name.c_str());
    if (r.episodes_to_threshold >= 0)
      std::printf(" (solved: last-20 return reached the threshold at episode %lld)",
                  (long long)r.episodes_to_threshold);
    std::printf("\n");
    return 0;
  }
  throw Error(str("rlft train: unknown algorithm '", algo, "' (expected ppo or reinforce)"));
}

int run_policy_eval(int argc, char** argv, int first) {
  std::string run_dir;
  int64_t episodes = 100;
  uint64_t seed = 1000;
  bool stochastic = false;
  Args args("rlft eval",
            "Play episodes with a trained classic-control policy and report the return.");
  args.add("--run", &run_dir, "run directory (e.g. runs/ppo-CartPole-v1-1)");
  args.add("--episodes", &episodes, "number of episodes (1 to 1000000)");
  args.add("--seed", &seed, "seed of the first episode (episode i uses seed + i)");
  args.add("--stochastic", &stochastic,
           "sample actions instead of taking the greedy / mean action");
  if (!args.parse(argc, argv, first)) return 0;
  RLFT_CHECK(!run_dir.empty(), "rlft eval: --run is required");
  const rl::EvalResult r = rl::evaluate_run(run_dir, episodes, seed, !stochastic);
  std::printf("%s: %lld episodes, return %.2f ± %.2f (min %.2f, max %.2f)\n", r.env_id.c_str(),
              (long long)r.returns.size(), r.mean, r.std, r.min, r.max);
  return 0;
}

int run_curve_plot(int argc, char** argv, int first) {
  std::string run_dir;
  Args args("rlft plot", "Draw a run's learning curve (return against environment steps) as SVG.");
  args.positional("run", &run_dir, "run directory (e.g. runs/ppo-CartPole-v1-1)");
  if (!args.parse(argc, argv, first)) return 0;
  int64_t skipped = 0;
  bool cut = false;
  const std::string svg = rl::write_learning_curve(run_dir, &skipped, &cut);
  std::printf("wrote %s", svg.c_str());
  if (skipped > 0)
    std::printf(" (%lld point%s not drawn: not finite or beyond ±1e300)", (long long)skipped,
                skipped == 1 ? "" : "s");
  if (cut) std::printf(" (the last line of metrics.jsonl, cut short, was left out)");
  std::printf("\n");
  return 0;
}

}  // namespace rlft::cli
