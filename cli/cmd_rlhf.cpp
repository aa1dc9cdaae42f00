// rlft lm prefs|rm|dpo|rrhf|ppo: the RLHF pipeline on the toy language models (docs/rlhf.md).
//
//   rlft lm sft   --task reviews --model nano --name reviews-sft
//   rlft lm prefs --run runs/reviews-sft --task reviews --pairs 2000 --out runs/prefs.jsonl
//   rlft lm rm    --prefs runs/prefs.jsonl --init runs/reviews-sft --name reviews-rm
//   rlft lm dpo   --prefs runs/prefs.jsonl --init runs/reviews-sft --beta 0.1
//   rlft lm rrhf  --init runs/reviews-sft --reward-model runs/reviews-rm
//   rlft lm ppo   --init runs/reviews-sft --reward-model runs/reviews-rm
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <iterator>
#include <string>

#include "cli/args.h"
#include "cli/commands.h"
#include "engine/error.h"
#include "rl/llm/dpo.h"
#include "rl/llm/lm.h"
#include "rl/llm/ppo_rlhf.h"
#include "rl/llm/reward_model.h"
#include "rl/llm/rlhf_data.h"
#include "rl/llm/rrhf.h"
#include "rl/run.h"

namespace rlft::cli {

namespace {

// The options every RLHF training command shares: where its run goes, its seed, quiet, device.
template <typename Config>
void add_run_options(Args& a, Config& c) {
  a.add("--out-dir", &c.out_dir, "parent directory of runs");
  a.add("--name", &c.name, "run name");
  a.add("--seed", &c.seed, "seed");
  a.add("--quiet", &c.quiet, "no progress lines");
  a.add("--device", &c.device, "cpu, or cuda[:N]: every model of the run on the GPU");
}

// --checkpoint-every, --resume and --stop-after of a resumable trainer (lm rm, dpo, rrhf, ppo);
// `unit` names a step in the help ("steps", "updates"), `budget` the options that may grow.
template <typename Config>
void add_resume_options(Args& a, Config& c, const char* unit, const char* budget,
                        bool has_log_every) {
  a.add("--checkpoint-every", &c.checkpoint_every,
        std::string("training checkpoint (weights, Adam state, the loop's state) every N ") + unit +
            " (0: only at --stop-after and the end)");
  a.add("--resume", &c.resume, resume_help(budget, has_log_every));
  a.add("--stop-after", &c.stop_after,
        std::string("stop after N ") + unit + " of this invocation (0: run to the end)");
}

// The closing line of a policy trainer (lm dpo, rrhf, ppo): the ground truth of its samples and
// their KL to `kl_to` before and after training, then `extra` (", held-out …") and the run.
int print_policy_done(const llm::PolicyEval& before, const llm::PolicyEval& after,
                      const char* kl_to, const std::string& extra, const std::string& run_dir) {
  std::printf("done: ground truth %.3f -> %.3f, KL to %s %.2f -> %.2f%s\nrun: %s\n",
              before.ground_truth, after.ground_truth, kl_to, rl::printable(before.kl, 2),
              rl::printable(after.kl, 2), extra.c_str(), run_dir.c_str());
  return 0;
}

int run_prefs(int argc, char** argv, int first) {
  llm::PrefsConfig c;
  Args a("rlft lm prefs",
         "Sample responses from an SFT policy and label pairs by the task's hidden ground-truth "
         "score (the higher one, or a Bradley-Terry draw); writes JSONL {prompt, chosen, rejected, "
         "chosen_score, rejected_score}.");
  a.add("--run", &c.run, "SFT run that samples the responses");
  a.add("--task", &c.task, "task with a ground-truth scorer (reviews)");
  a.add("--pairs", &c.pairs, "pairs to write");
  a.add("--samples-per-prompt", &c.samples_per_prompt,
        "responses per prompt (even; taken in pairs)");
  a.add("--temperature", &c.temperature, "sampling temperature");
  a.add("--label-noise", &c.label_noise, "flip each label with this probability");
  a.add("--deterministic-labels", &c.deterministic_labels,
        "chosen = the higher ground truth (--no-deterministic-labels: a Bradley-Terry draw)");
  a.add("--min-gap", &c.min_gap,
        "skip pairs whose ground-truth p(positive) differ by less than this");
  a.add("--seed", &c.seed, "seed of sampling and labels");
  a.add("--out", &c.out, "JSONL file to write (atomically)");
  a.add("--quiet", &c.quiet, "no progress lines");
  a.add("--device", &c.device, "cpu, or cuda[:N]: the policy samples on the GPU");
  if (!a.parse(argc, argv, first)) return 0;
  const llm::PrefsResult r = llm::generate_preferences(c);
  std::printf(
      "wrote %zu pairs to %s; mean ground-truth gap %.3f, chosen has the higher ground truth in "
      "%.1f%%\n",
      r.pairs.size(), c.out.c_str(), r.mean_score_gap, 100 * r.agreement);
  return 0;
}

// rlft lm rm --evaluate <run> --prefs <file>: a trained reward model on every pair of a file,
// overall and by the pairs' ground-truth gap (how much of an accuracy is the pairs' difficulty).
int evaluate_rm(const std::string& run, const std::string& prefs, const std::string& device) {
  RLFT_CHECK(!prefs.empty(), "rlft lm rm --evaluate: --prefs is required");
  const Device dev = rl::resolve_device(device);
  const std::vector<llm::PreferencePair> pairs = llm::read_preferences(prefs);
  const llm::LoadedModel lm = llm::load_reward_model(run, dev);
  llm::check_preferences(pairs, lm.tokenizer, lm.model->config().block_size, prefs);
  const llm::RewardModelEval all = llm::evaluate_reward_model(*lm.model, lm.tokenizer, pairs);
  std::printf("%zu pairs: accuracy %.3f (against the ground-truth order %.3f), correlation %.3f\n",
              pairs.size(), all.accuracy, all.truth_accuracy, all.correlation);
  const double edges[] = {0, 0.05, 0.1, 0.2, 0.4, 1.01};
  for (int b = 0; b + 1 < int(std::size(edges)); ++b) {
    std::vector<llm::PreferencePair> bin;
    for (const auto& p : pairs) {
      const double gap = std::abs(p.chosen_score - p.rejected_score);
      if (gap >= edges[b] && gap < edges[b + 1]) bin.push_back(p);
    }
    if (bin.empty()) continue;
    const llm::RewardModelEval ev = llm::evaluate_reward_model(*lm.model, lm.tokenizer, bin);
    std::printf("  ground-truth gap [%.2f, %.2f): %5zu pairs, accuracy %.3f\n", edges[b],
                std::min(edges[b + 1], 1.0), bin.size(), ev.accuracy);
  }
  return 0;
}

int run_rm(int argc, char** argv, int first) {
  llm::RewardModelConfig c;
  std::string evaluate;
  Args a(
      "rlft lm rm",
      "Train a reward model (GPT backbone + reward head, Bradley-Terry loss) on preference pairs.");
  a.add("--prefs", &c.prefs, "preference JSONL");
  a.add("--init", &c.init, "SFT run the backbone starts from");
  a.add("--epochs", &c.epochs, "passes over the training pairs");
  a.add("--batch", &c.batch, "pairs per step");
  a.add("--grad-accum", &c.grad_accum,
        "micro-batches per step (--batch / K pairs each; gradients summed, one step)");
  a.add("--lr", &c.lr, "AdamW peak learning rate");
  a.add("--lr-schedule", &c.lr_schedule, "constant, linear or cosine (decay to --min-lr-ratio)");
  a.add("--min-lr-ratio", &c.min_lr_ratio, "final learning rate as a fraction of --lr");
  a.add("--weight-decay", &c.weight_decay,
        "AdamW decoupled weight decay of the matrices and embeddings (not biases or LayerNorm, "
        "as lm sft)");
  a.add("--grad-clip", &c.grad_clip, "max global gradient norm (0: off)");
  a.add("--margin", &c.margin, "Bradley-Terry margin");
  a.add("--center-coef", &c.center_coef,
        "eta of the centring term eta*(r_w + r_l)^2 (0.01 suggested; 0: off)");
  a.add("--eval-fraction", &c.eval_fraction, "fraction of pairs held out");
  add_resume_options(a, c, "steps", "--epochs, --grad-accum", false);
  add_run_options(a, c);
  a.add("--evaluate", &evaluate,
        "evaluate this reward-model run on every pair of --prefs instead of training");
  if (!a.parse(argc, argv, first)) return 0;
  if (!evaluate.empty()) return evaluate_rm(evaluate, c.prefs, c.device);
  if (c.resume) take_recorded_settings(a, rl::run_path(c.out_dir, c.name));
  const llm::RewardModelResult r = llm::train_reward_model(c);
  if (!r.finished) return print_done_without("final evaluation", r.step, r.run_dir);
  // A resumed run says where it started; its final evaluation is the run's last epoch row.
  char resumed[64] = "";
  if (r.start_step > 0)
    std::snprintf(resumed, sizeof resumed, " (resumed at step %lld)", (long long)r.start_step);
  const auto& ev = r.evals.back();
  if (ev.pairs == 0) {
    std::printf("done%s: no held-out pairs (--eval-fraction 0)\nrun: %s\n", resumed,
                r.run_dir.c_str());
    return 0;
  }
  std::printf(
      "done%s: held-out pair accuracy %.3f (against the ground-truth order %.3f), correlation "
      "with ground truth %.3f\nrun: %s\n",
      resumed, ev.accuracy, ev.truth_accuracy, ev.correlation, r.run_dir.c_str());
  return 0;
}

int run_dpo(int argc, char** argv, int first) {
  llm::DPOConfig c;
  Args a("rlft lm dpo",
         "Direct Preference Optimization (sigmoid, cDPO or IPO loss) from an SFT run.");
  a.add("--prefs", &c.prefs, "preference JSONL");
  a.add("--init", &c.init, "SFT run: the policy's start and the reference");
  a.add("--beta", &c.beta, "beta (tau for IPO)");
  a.add("--loss", &c.loss, "sigmoid, cdpo or ipo");
  a.add("--label-smoothing", &c.label_smoothing, "cDPO epsilon");
  a.add("--epochs", &c.epochs, "passes over the training pairs");
  a.add("--batch", &c.batch, "pairs per step");
  a.add("--grad-accum", &c.grad_accum,
        "micro-batches per step (--batch / K pairs each; gradients summed, one step)");
  a.add("--lr", &c.lr, "Adam learning rate");
  a.add("--grad-clip", &c.grad_clip, "max global gradient norm (0: off)");
  a.add("--eval-fraction", &c.eval_fraction, "fraction of pairs held out");
  a.add("--log-every", &c.log_every, "log every N steps");
  a.add("--eval-every", &c.eval_every, "held-out pairs and policy samples every N steps");
  a.add("--eval-samples", &c.eval_samples, "samples per validation prompt");
  a.add("--max-steps", &c.max_steps, "stop after N steps (0: all epochs)");
  add_resume_options(a, c, "steps", "--epochs, --max-steps, --grad-accum", true);
  add_run_options(a, c);
  if (!a.parse(argc, argv, first)) return 0;
  if (c.resume) take_recorded_settings(a, rl::run_path(c.out_dir, c.name));
  const llm::DPOResult r = llm::train_dpo(c);
  if (!r.finished) return print_done_without("final evaluation", r.step, r.run_dir);
  char heldout[64] = ", no held-out pairs";
  if (r.heldout_pairs > 0)
    std::snprintf(heldout, sizeof heldout, ", held-out preference accuracy %.3f",
                  r.heldout_accuracy);
  return print_policy_done(r.before, r.after, "reference", heldout, r.run_dir);
}

int run_rrhf(int argc, char** argv, int first) {
  llm::RRHFConfig c;
  Args a(
      "rlft lm rrhf",
      "RRHF: rank k sampled responses per prompt (scored by a reward model or the ground truth).");
  a.add("--init", &c.init, "SFT run");
  a.add("--reward-model", &c.reward_model, "reward-model run (with --scorer rm)");
  a.add("--scorer", &c.scorer, "rm or ground_truth");
  a.add("--steps", &c.steps, "optimizer steps");
  a.add("--prompts-per-step", &c.prompts_per_step, "prompts per step");
  a.add("--k", &c.k, "candidates per prompt");
  a.add("--temperature", &c.temperature, "sampling temperature of the candidates");
  a.add("--lr", &c.lr, "Adam learning rate");
  a.add("--grad-clip", &c.grad_clip, "max global gradient norm (0: off)");
  a.add("--log-every", &c.log_every, "log every N steps");
  a.add("--eval-every", &c.eval_every, "validation samples every N steps");
  a.add("--eval-samples", &c.eval_samples, "samples per validation prompt");
  add_resume_options(a, c, "steps", "--steps", true);
  add_run_options(a, c);
  if (!a.parse(argc, argv, first)) return 0;
  if (c.resume) take_recorded_settings(a, rl::run_path(c.out_dir, c.name));
  const llm::RRHFResult r = llm::train_rrhf(c);
  if (!r.finished) return print_done_without("final evaluation", r.steps, r.run_dir);
  return print_policy_done(r.before, r.after, "the SFT model", "", r.run_dir);
}

int run_ppo(int argc, char** argv, int first) {
  llm::PPORLHFConfig c;
  Args a(
      "rlft lm ppo",
      "PPO-RLHF with four models (actor, reference, critic, reward model), DeepSpeed-Chat style.");
  a.add("--init", &c.init, "SFT run: actor and reference");
  a.add("--reward-model", &c.reward_model, "reward-model run: reward model and critic");
  a.add("--steps", &c.steps, "PPO updates (one rollout each)");
  a.add("--batch", &c.batch, "prompts per rollout");
  a.add("--ppo-epochs", &c.ppo_epochs, "passes over each rollout");
  a.add("--minibatches", &c.minibatches, "minibatches per pass");
  a.add("--actor-lr", &c.actor_lr, "actor Adam learning rate");
  a.add("--critic-lr", &c.critic_lr, "critic Adam learning rate");
  a.add("--kl-ctl", &c.kl_ctl, "KL penalty coefficient in the reward");
  a.add("--adaptive-kl", &c.adaptive_kl, "adaptive KL controller");
  a.add("--kl-target", &c.kl_target, "adaptive: target KL per sequence");
  a.add("--kl-horizon", &c.kl_horizon, "adaptive: horizon in sequences (more than 0.2 x --batch)");
  a.add("--clip-reward-value", &c.clip_reward_value, "RM score clipped to +-this");
  a.add("--cliprange", &c.cliprange, "actor ratio clip");
  a.add("--cliprange-value", &c.cliprange_value, "critic value clip");
  a.add("--gamma", &c.gamma, "discount");
  a.add("--lam", &c.lam, "GAE lambda");
  a.add("--whiten-advantages", &c.whiten_advantages, "whiten advantages over response tokens");
  a.add("--temperature", &c.temperature, "rollout sampling temperature");
  a.add("--max-new-tokens", &c.max_new_tokens, "response budget (0: the context's)");
  a.add("--grad-clip", &c.grad_clip, "max global gradient norm (0: off)");
  a.add("--eval-every", &c.eval_every, "validation samples every N updates");
  a.add("--eval-samples", &c.eval_samples, "samples per validation prompt");
  add_resume_options(a, c, "updates", "--steps", false);
  add_run_options(a, c);
  if (!a.parse(argc, argv, first)) return 0;
  if (c.resume) take_recorded_settings(a, rl::run_path(c.out_dir, c.name));
  const llm::PPORLHFResult r = llm::train_ppo_rlhf(c);
  if (!r.finished) return print_done_without("final evaluation", r.steps, r.run_dir);
  return print_policy_done(r.before, r.after, "reference", "", r.run_dir);
}

}  // namespace

int run_rlhf(const std::string& sub, int argc, char** argv, int first) {
  if (sub == "prefs") return run_prefs(argc, argv, first);
  if (sub == "rm") return run_rm(argc, argv, first);
  if (sub == "dpo") return run_dpo(argc, argv, first);
  if (sub == "rrhf") return run_rrhf(argc, argv, first);
  if (sub == "ppo") return run_ppo(argc, argv, first);
  throw Error(str("rlft lm: unknown RLHF command '", sub, "' (prefs, rm, dpo, rrhf, ppo)"));
}

}  // namespace rlft::cli
