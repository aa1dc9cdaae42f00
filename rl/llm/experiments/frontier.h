// The DPO paper's controlled-sentiment experiment (Rafailov et al. 2023, arXiv 2305.18290, §6.1
// and Fig. 2 left) on the reviews task: the reward–KL frontier of DPO against PPO-RLHF.
//
// From ONE SFT model and ONE preference file (both trained/written in the experiment directory,
// or reused with --sft / --prefs), and one reward model trained on that file for PPO:
//   PPO-RLHF at several fixed kl_ctl values   (rlft lm ppo --kl-ctl k)
//   DPO at β ∈ {0.05, 0.1, 1, 5}               (rlft lm dpo --beta b)
// Every run evaluates its policy every N steps on the task's validation prompts (openings that no
// training pair or rollout uses), each sampled eval_samples times at temperature 1 with the same
// seed: x = the average sequence-level KL(π‖π_ref) = mean Σ_t (log π − log π_ref) at the sampled
// tokens, y = the expected ground-truth reward = mean p(positive | x + y). Each evaluation is one
// point; a method's frontier is the upper envelope of its points (the best ground truth reached
// at that KL or less).
//
// The runs are ordinary `rlft lm ...` commands executed by experiments/runner.h (a few at a time,
// one thread each, logs in <out>/logs/); a run that finished is skipped when the experiment is
// started again, so an interrupted experiment resumes. Outputs in <out>/:
//   frontier.csv  every point: method, param, run, step, kl, ground_truth
//   frontier.svg  ground truth against KL: each method's points and its frontier
//   results.md    per run: last and best point; per KL bin: each method's best ground truth
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "engine/json.h"
#include "rl/llm/experiments/runner.h"

namespace rlft::llm::exp {

struct FrontierConfig {
  std::string out_dir = "runs/frontier";
  int parallel = 2;          // runs at once (one thread each)
  std::string sft;           // an existing SFT run to reuse (empty: train one in <out>/sft)
  std::string prefs;         // an existing preference file to reuse (empty: <out>/prefs.jsonl)
  std::string reward_model;  // an existing reward-model run (empty: train one in <out>/rm)
  int64_t sft_steps = 1000;  // SFT: the docs/rlhf.md recipe (nano, block 128, batch 32)
  int64_t pairs = 0;         // preference pairs (0: rlft lm prefs' default)
  std::vector<double> kl_ctls = {0.02, 0.1, 0.5};     // PPO runs
  std::vector<double> betas = {0.05, 0.1, 1.0, 5.0};  // DPO runs
  int64_t ppo_steps = 150;                            // PPO updates per run
  double ppo_actor_lr = 1e-4;  // faster than rlft lm ppo's 5e-5 so 150 updates reach high KL
  int64_t ppo_eval_every = 15;
  int64_t dpo_epochs = 2;
  int64_t dpo_eval_every = 50;
  int64_t eval_samples = 8;  // samples per validation prompt at each evaluation
  uint64_t seed = 0;
  std::string device = "cpu";  // every run's --device (cpu, cuda, cuda:N)
  bool quiet = false;
};
json::Value to_json(const FrontierConfig& c);

// One evaluation of one run.
struct FrontierPoint {
  std::string method;  // "PPO" or "DPO"
  double param = 0;    // kl_ctl or β
  std::string run;     // run name
  int64_t step = 0;
  double kl = 0, ground_truth = 0;
};

// The stages of jobs (each stage needs the previous one's outputs): SFT, preferences, then the
// reward model and the DPO runs, then the PPO runs. Stages with nothing to do are left out.
std::vector<std::vector<Job>> frontier_jobs(const FrontierConfig& cfg);
// Run names, e.g. "ppo-klctl0.1", "dpo-beta0.05".
std::string frontier_run_name(const std::string& method, double param);

// The evaluation points of one run's metrics.jsonl: DPO rows with "kl" and "ground_truth"
// (its evaluation rows); PPO rows with "val_kl" and "val_ground_truth" (its rollout rows' kl
// and ground_truth are training-prompt statistics, not evaluations).
std::vector<FrontierPoint> frontier_points(const std::string& method, double param,
                                           const std::string& run,
                                           const std::vector<json::Value>& metrics);
// The upper envelope: points sorted by KL, each kept when its ground truth beats every point
// of lower (or equal) KL.
std::vector<FrontierPoint> pareto_front(std::vector<FrontierPoint> points);

std::string frontier_csv(const std::vector<FrontierPoint>& points);
// results.md: a header, a table per run (last and best point), and per KL bin [kl_edges[i],
// kl_edges[i+1]) each method's best ground truth (the first bin open below, the last above).
std::string frontier_markdown(const std::vector<FrontierPoint>& points,
                              const std::vector<double>& kl_edges, const std::string& header);
// Writes frontier.csv, frontier.svg and results.md into `dir` (atomically).
void write_frontier_outputs(const std::string& dir, const std::vector<FrontierPoint>& points,
                            const std::string& header);

struct FrontierResult {
  std::vector<FrontierPoint> points;
  std::string csv_path, svg_path, md_path;
};
// The runs and files the config reuses (--sft: an SFT run of reviews; --prefs: preference pairs;
// --reward-model: a reward model with the SFT run's tokenizer), each checked by loading it, so
// a wrong path fails before any job starts. run_frontier calls it after frontier_jobs.
void check_frontier_inputs(const FrontierConfig& cfg);
FrontierResult run_frontier(const FrontierConfig& cfg);

}  // namespace rlft::llm::exp
