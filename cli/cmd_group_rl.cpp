// rlft lm grpo|dr-grpo|dapo|gspo|gspo-token|dcpo|rloo: group-relative RL with verifiable rewards
// (rl/llm/group_rl.h) from an SFT run on a task with a verifier: arith, or jsonl (your own
// prompt/response file, rewarded by exact match with its responses).
//
//   rlft lm sft --task arith --model nano --steps 600 --lr 3e-3 --name arith-nano
//   rlft lm grpo --init runs/arith-nano --steps 50 --name grpo-arith
//   rlft lm eval --run runs/grpo-arith
//   rlft lm grpo --init runs/arith-nano --steps 100 --name grpo-arith --resume   (continue)
//   rlft lm sft --task jsonl --data my.jsonl --name mine && rlft lm grpo --init runs/mine
//
// Each algorithm's flags default to its paper's values (--help shows them).
#include <cstdio>
#include <string>
#include <vector>

#include "cli/args.h"
#include "cli/commands.h"
#include "rl/llm/group_rl.h"
#include "rl/run.h"

namespace rlft::cli {

namespace {

// The options of `rlft lm <algo>`, bound to the fields of `c`.
void add_options(Args& a, llm::GroupRLConfig& c) {
  a.add("--init", &c.init,
        "SFT run directory (or checkpoint) to start from, of task arith or jsonl (required)");
  a.add("--train-prompts", &c.train_prompts, "use only the first N train prompts (0: all)");
  a.add("--prompts", &c.prompts, "distinct prompts per update step");
  a.add("--group", &c.group_size, "G: responses sampled per prompt");
  a.add("--max-new-tokens", &c.max_new_tokens, "response budget L_max (0: from the task)");
  a.add("--temperature", &c.temperature, "sampling temperature");
  a.add("--reward-correct", &c.reward_correct, "reward of a correct answer");
  a.add("--reward-wrong", &c.reward_wrong, "reward of a wrong answer");
  a.add("--format-reward", &c.format_reward, "added when the response is an integer then EOS");
  a.add("--epsilon", &c.epsilon, "lower clip range eps_low (ratio >= 1 - eps)");
  a.add("--epsilon-high", &c.epsilon_high, "upper clip range eps_high (ratio <= 1 + eps_high)");
  a.add("--dual-clip", &c.dual_clip, "dual-clip constant c > 1 for A < 0 (0: off)");
  a.add("--ratio-level", &c.ratio_level, "token, sequence (GSPO) or sequence_token (GSPO-token)");
  a.add("--aggregation", &c.aggregation,
        "token_mean, seq_mean_token_mean, seq_mean_token_sum, constant_norm or only_token_mean");
  a.add("--beta", &c.beta, "KL coefficient (k3 in the loss, or k1 in the reward)");
  a.add("--kl", &c.kl, "KL placement: none, loss_k3 or reward_k1");
  a.add("--scale-by-std", &c.scale_by_std, "divide group advantages by their std + 1e-6");
  a.add("--dynamic-sampling", &c.dynamic_sampling, "drop groups with all-equal rewards, resample");
  a.add("--max-extra-rounds", &c.max_extra_rounds,
        "dynamic sampling: extra rounds per step at most");
  a.add("--overlong-shaping", &c.overlong_shaping, "DAPO's soft overlong punishment");
  a.add("--overlong-max", &c.overlong_max, "L_max of the shaping (0: --max-new-tokens)");
  a.add("--overlong-cache", &c.overlong_cache, "L_cache of the shaping (tokens)");
  a.add("--dcpo-r-max", &c.dcpo_r_max, "DCPO: cap of the dynamic ratio bounds");
  a.add("--steps", &c.steps, "update steps (rollouts)");
  a.add("--minibatches", &c.minibatches, "optimizer steps per rollout per epoch");
  a.add("--epochs", &c.epochs, "passes over each rollout");
  a.add("--grad-accum", &c.grad_accum,
        "micro-batches per minibatch (gradients summed, one optimizer step)");
  a.add("--lr", &c.lr, "AdamW learning rate (peak, with --lr-schedule)");
  a.add("--lr-schedule", &c.lr_schedule,
        "constant, linear or cosine (decay over --steps to --min-lr-ratio)");
  a.add("--min-lr-ratio", &c.min_lr_ratio, "final learning rate as a fraction of --lr");
  a.add("--weight-decay", &c.weight_decay,
        "AdamW decoupled weight decay of the matrices and embeddings (not biases or LayerNorm, "
        "as lm sft)");
  a.add("--beta1", &c.beta1, "AdamW beta1");
  a.add("--beta2", &c.beta2, "AdamW beta2");
  a.add("--grad-clip", &c.grad_clip, "max global gradient norm (0: off)");
  a.add("--eval-every", &c.eval_every, "greedy validation accuracy every N steps (0: at the end)");
  a.add("--eval-prompts", &c.eval_prompts, "validation prompts for eval accuracy (0: none)");
  a.add("--out-dir", &c.out_dir, "parent directory of runs");
  a.add("--name", &c.name, "run name (default <algo>-<init run>)");
  a.add("--seed", &c.seed, "seed of prompt order, sampling and minibatch shuffles");
  a.add("--checkpoint-every", &c.checkpoint_every,
        "training checkpoint (with optimizer state) every N steps (0: only at the end)");
  a.add("--resume", &c.resume, resume_help("--steps", false));
  a.add("--stop-after", &c.stop_after, "stop after N steps of this invocation (0: run to --steps)");
  a.add("--quiet", &c.quiet, "no progress lines");
  a.add("--device", &c.device, "cpu, or cuda[:N]: policy, reference and updates on the GPU");
  a.record_as("--group", "group_size");  // config.json's name of the setting
}

// `--kl none` on an algorithm whose default places a KL term (GRPO, RLOO) turns its default β
// off with it; a --beta written beside it is an error (check_group_rl_config).
void settle_kl(const Args& a, llm::GroupRLConfig& c) {
  if (a.given("--kl") && !a.given("--beta") && c.kl == "none") c.beta = 0;
}

Args make_args(const std::string& algo) {
  return Args("rlft lm " + algo,
              "Group-relative RL with a verifiable reward (" + algo +
                  ", ALGORITHMS.md §7–11) from an SFT run; the task and its data options come "
                  "from the --init run.");
}

}  // namespace

// For `rlft experiment verifiable` (cmd_verifiable.cpp): the settings `rlft lm <algo> args…`
// would run with, parsed by that command's own options and checked (check_group_rl_config),
// so a bad flag fails before the experiment starts any job.
llm::GroupRLConfig parse_group_rl_command(const std::string& algo,
                                          const std::vector<std::string>& args) {
  llm::GroupRLConfig c = llm::group_rl_defaults(algo);
  Args a = make_args(algo);
  add_options(a, c);
  std::vector<std::string> words = {"rlft", "lm", algo};
  words.insert(words.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (std::string& w : words) argv.push_back(w.data());
  RLFT_CHECK(a.parse(int(argv.size()), argv.data(), 3), "rlft lm ", algo,
             ": --help is not a training option");
  settle_kl(a, c);
  llm::check_group_rl_config(c);
  return c;
}

int run_group_rl(const std::string& algo, int argc, char** argv, int first) {
  llm::GroupRLConfig c = llm::group_rl_defaults(algo);
  Args a = make_args(algo);
  add_options(a, c);
  if (!a.parse(argc, argv, first)) return 0;
  settle_kl(a, c);
  if (c.resume && (!c.name.empty() || !c.init.empty())) {
    if (c.name.empty()) c.name = llm::default_group_rl_run_name(c);
    take_recorded_settings(a, rl::run_path(c.out_dir, c.name));
  }
  RLFT_CHECK(!c.init.empty(), "rlft lm ", algo, ": --init <SFT run> is required");
  const llm::GroupRLResult r = llm::train_group_rl(c);
  const int64_t ran = r.steps - r.start_step;
  std::printf("done: %lld step%s in %.1f s", (long long)ran, ran == 1 ? "" : "s", r.seconds);
  if (r.start_step > 0) std::printf(" (resumed: the run is at step %lld)", (long long)r.steps);
  if (!r.reward_mean.empty())
    std::printf("; reward %.4f -> %.4f (sampled, train prompts, steps 1-%lld)",
                r.reward_mean.front(), r.reward_mean.back(), (long long)r.steps);
  if (r.eval_accuracy_start >= 0 && r.eval_accuracy_end >= 0) {
    std::printf("; greedy validation accuracy %.4f -> %.4f", r.eval_accuracy_start,
                r.eval_accuracy_end);
    if (r.eval_step < r.steps) std::printf(" (at step %lld)", (long long)r.eval_step);
  } else if (r.eval_accuracy_start >= 0)
    std::printf(
        "; greedy validation accuracy %.4f at the start, not evaluated since (--stop-after)",
        r.eval_accuracy_start);
  std::printf("\nrun: %s\n", r.run_dir.c_str());
  return 0;
}

}  // namespace rlft::cli
