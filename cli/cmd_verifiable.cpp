// rlft experiment verifiable: the group-relative RL methods compared on arith from one SFT
// checkpoint, several seeds each, equal generation budgets (rl/llm/experiments/verifiable.h).
//
//   rlft experiment verifiable                                  (defaults: 6 methods × 3 seeds)
//   rlft experiment verifiable --methods grpo,dapo --seeds 1 --steps 100 --out-dir runs/v-small
//
// Rerunning the same command skips every run that finished (logs/*.done) and redraws the
// results from the runs on disk.
#include <cstdio>
#include <sstream>
#include <string>
#include <vector>

#include "cli/args.h"
#include "cli/commands.h"
#include "engine/error.h"
#include "rl/llm/experiments/runner.h"
#include "rl/llm/experiments/verifiable.h"
#include "rl/llm/group_rl.h"
#include "rl/run.h"

namespace rlft::cli {

namespace {

std::vector<std::string> split_list(const std::string& text, char sep) {
  std::vector<std::string> out;
  std::string item;
  std::istringstream in(text);
  while (std::getline(in, item, sep))
    if (!item.empty()) out.push_back(item);
  return out;
}

}  // namespace

int run_experiment_verifiable(int argc, char** argv, int first) {
  llm::exp::VerifiableConfig c;
  std::string methods, rl_args;
  for (const std::string& m : c.methods) methods += (methods.empty() ? "" : ",") + m;
  Args a("rlft experiment verifiable",
         "GRPO, Dr. GRPO, DAPO, GSPO, DCPO and RLOO on arith from one SFT checkpoint, several "
         "seeds each, equal generation budgets; writes curves (SVG, CSV) and results.md with "
         "the final held-out test exact match. Rerunning skips finished runs.");
  a.add("--out-dir", &c.out_dir, "experiment directory");
  a.add("--methods", &methods,
        "comma-separated: grpo, dr-grpo, dapo, gspo, gspo-token, dcpo, rloo");
  a.add("--seeds", &c.seeds, "seeds per method (1..N)");
  a.add("--parallel", &c.parallel, "runs at once, one thread each");
  a.add("--preset", &c.preset, "SFT preset trained as <out-dir>/sft (rlft lm sft --preset)");
  a.add("--init", &c.init, "an existing SFT run to start from instead of the preset");
  a.add("--steps", &c.steps, "update steps of every run");
  a.add("--prompts", &c.prompts, "prompts per update step");
  a.add("--group", &c.group, "responses per prompt (G)");
  a.add("--train-prompts", &c.train_prompts, "use only the first N train prompts (0: all)");
  a.add("--lr", &c.lr, "AdamW learning rate of every run");
  a.add("--lr-schedule", &c.lr_schedule, "constant, linear or cosine decay to 0 over --steps");
  a.add("--minibatches", &c.minibatches, "optimizer steps per rollout");
  a.add("--eval-every", &c.eval_every, "greedy validation accuracy every N steps");
  a.add("--eval-prompts", &c.eval_prompts, "validation prompts for it");
  a.add("--eval-samples", &c.eval_samples, "sampled test responses per prompt at the end");
  a.add("--test-prompts", &c.test_prompts, "final evaluation on the first N test prompts (0: all)");
  a.add("--rl-args", &rl_args, "extra flags for every RL run, space-separated (e.g. \"--beta 0\")");
  a.add("--device", &c.device, "device of every run: cpu, cuda or cuda:N");
  a.add("--quiet", &c.quiet, "no progress lines");
  if (!a.parse(argc, argv, first)) return 0;
  // Every (method, seed) job is planned up front: a count in the millions is a typo, and it
  // would fill memory with jobs before the first one ran.
  RLFT_CHECK(c.seeds <= 1000, "rlft experiment verifiable: --seeds must be at most 1000, got ",
             c.seeds);
  c.methods = split_list(methods, ',');
  c.extra_args = split_list(rl_args, ' ');
  // Extra flags only: the settings the experiment sets itself (and reports) stay its own, and
  // a bare word would become the value of the flag before it.
  if (!c.extra_args.empty())
    RLFT_CHECK(c.extra_args.front().rfind("--", 0) == 0, "--rl-args: '", c.extra_args.front(),
               "' is not an option (expected flags such as \"--beta 0\")");
  for (const std::string& word : c.extra_args) {
    const std::string flag = word.substr(0, word.find('='));
    for (const char* own : {"--init", "--seed", "--name", "--out-dir", "--steps", "--prompts",
                            "--group", "--train-prompts", "--lr", "--lr-schedule", "--minibatches",
                            "--eval-every", "--eval-prompts", "--device"})
      RLFT_CHECK(flag != own, "--rl-args: ", own, " is set by the experiment itself (",
                 std::string(own) == "--init" || std::string(own) == "--seed" ||
                         std::string(own) == "--name" || std::string(own) == "--out-dir"
                     ? "per run"
                     : "use the experiment's own " + std::string(own),
                 ")");
  }
  // Every RL job's command line, through the RL command's own parser, before any job starts.
  c.check_rl_command = [](const std::string& method, const std::vector<std::string>& args) {
    parse_group_rl_command(method, args);
  };
  const llm::exp::VerifiableResult r = llm::exp::run_verifiable(c);
  std::printf("SFT start: test exact match greedy %.3f, sampled %.3f\n", r.sft_greedy,
              r.sft_sampled);
  for (const llm::exp::MethodResult& m : r.methods) {
    const llm::exp::MeanStd g = llm::exp::mean_std(m.greedy);
    std::printf("%-10s greedy %.3f ± %.3f (%+.3f)\n", m.method.c_str(), g.mean, g.std,
                g.mean - r.sft_greedy);
  }
  std::printf("done in %s; results: %s\n", rl::format_duration(r.seconds).c_str(),
              r.results_md.c_str());
  return 0;
}

}  // namespace rlft::cli
