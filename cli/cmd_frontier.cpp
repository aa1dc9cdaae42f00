// rlft experiment frontier: the DPO paper's reward–KL frontier, DPO against PPO-RLHF, on the
// reviews task (rl/llm/experiments/frontier.h; docs/rlhf.md).
//
//   rlft experiment frontier --out-dir runs/frontier --parallel 2
//   rlft experiment frontier --sft runs/rlhf-reviews-sft --betas 0.1,1 --kl-ctls 0.1
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "cli/args.h"
#include "cli/commands.h"
#include "engine/error.h"
#include "rl/llm/experiments/frontier.h"
#include "rl/run.h"

namespace rlft::cli {

namespace {

// "0.05,0.1,1" → {0.05, 0.1, 1}; an empty string is an empty list.
std::vector<double> parse_list(const std::string& flag, const std::string& s) {
  std::vector<double> out;
  size_t start = 0;
  while (start < s.size()) {
    size_t end = s.find(',', start);
    if (end == std::string::npos) end = s.size();
    const std::string item = s.substr(start, end - start);
    // The options' own number syntax (decimal, no spaces or hexadecimal; 1e400 overflows).
    double x = 0;
    try {
      x = Args::parse_double(flag, item);
    } catch (const Error&) {
      throw Error(str(flag, ": '", item,
                      "' is not a number (expected a comma-separated list such as 0.05,0.1,1)"));
    }
    out.push_back(x);
    start = end + 1;
  }
  return out;
}

std::string join(const std::vector<double>& xs) {
  std::string s;
  char buf[32];
  for (double x : xs) {
    std::snprintf(buf, sizeof buf, "%g", x);
    if (!s.empty()) s += ',';
    s += buf;
  }
  return s;
}

}  // namespace

int run_experiment_frontier(int argc, char** argv, int first) {
  llm::exp::FrontierConfig c;
  std::string kl_ctls = join(c.kl_ctls), betas = join(c.betas);
  int64_t parallel = c.parallel;
  Args a(
      "rlft experiment frontier",
      "DPO vs PPO-RLHF reward-KL frontier on reviews (DPO paper, Fig. 2): one SFT model, one "
      "preference file, PPO at several kl_ctl and DPO at several beta; every evaluation is a "
      "point (KL to the reference, ground-truth p(positive)) on the validation prompts. Writes "
      "frontier.svg, frontier.csv and results.md; finished runs are skipped when started again.");
  a.add("--out-dir", &c.out_dir, "experiment directory (runs, logs and results)");
  a.add("--parallel", &parallel, "runs at once (one thread each)");
  a.add("--sft", &c.sft, "reuse this SFT run (empty: train one in <out-dir>/sft)");
  a.add("--prefs", &c.prefs, "reuse this preference JSONL (empty: write <out-dir>/prefs.jsonl)");
  a.add("--reward-model", &c.reward_model,
        "reuse this reward-model run (empty: train <out-dir>/rm)");
  a.add("--sft-steps", &c.sft_steps, "SFT steps when the SFT model is trained here");
  a.add("--pairs", &c.pairs, "preference pairs (0: rlft lm prefs' default)");
  a.add("--kl-ctls", &kl_ctls, "PPO runs: comma-separated kl_ctl values");
  a.add("--betas", &betas, "DPO runs: comma-separated beta values");
  a.add("--ppo-steps", &c.ppo_steps, "PPO updates per run");
  a.add("--ppo-actor-lr", &c.ppo_actor_lr, "PPO actor learning rate");
  a.add("--ppo-eval-every", &c.ppo_eval_every, "PPO: evaluate every N updates");
  a.add("--dpo-epochs", &c.dpo_epochs, "DPO: passes over the preference pairs");
  a.add("--dpo-eval-every", &c.dpo_eval_every, "DPO: evaluate every N steps");
  a.add("--eval-samples", &c.eval_samples, "samples per validation prompt at each evaluation");
  a.add("--seed", &c.seed, "seed of every run");
  a.add("--device", &c.device, "device of every run: cpu, cuda or cuda:N");
  a.add("--quiet", &c.quiet, "no progress lines");
  if (!a.parse(argc, argv, first)) return 0;
  RLFT_CHECK(parallel >= 1 && parallel <= 64, "--parallel: must be in [1, 64], got ", parallel);
  c.parallel = int(parallel);
  c.kl_ctls = parse_list("--kl-ctls", kl_ctls);
  c.betas = parse_list("--betas", betas);
  rl::Stopwatch clock;
  const llm::exp::FrontierResult r = llm::exp::run_frontier(c);
  std::printf("done in %.0f s: %zu points\n%s\n%s\n%s\n", clock.seconds(), r.points.size(),
              r.md_path.c_str(), r.csv_path.c_str(), r.svg_path.c_str());
  return 0;
}

}  // namespace rlft::cli
