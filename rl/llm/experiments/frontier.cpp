// rlft experiment frontier (frontier.h): jobs, points read back from metrics.jsonl, the
// frontier's CSV, SVG and Markdown.
#include "rl/llm/experiments/frontier.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <map>

#include "engine/error.h"
#include "engine/fs.h"
#include "rl/llm/lm.h"
#include "rl/llm/rlhf_data.h"
#include "rl/plot.h"
#include "rl/run.h"

namespace rlft::llm::exp {

namespace {

std::string num(double x) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", x);
  return buf;
}

std::string list(const std::vector<double>& xs) {
  std::string s;
  for (double x : xs) {
    if (!s.empty()) s += ',';
    s += num(x);
  }
  return s;
}

Job make_job(const std::string& out, const std::string& name, std::vector<std::string> args) {
  return logged_job(out + "/logs", name, std::move(args));
}

// A training run writing <out>/<name>: `args` then the flags every such run shares.
Job run_job(const std::string& out, const std::string& name, const std::string& seed,
            std::vector<std::string> args) {
  args.insert(args.end(), {"--out-dir", out, "--name", name, "--seed", seed, "--quiet"});
  return make_job(out, name, std::move(args));
}

}  // namespace

json::Value to_json(const FrontierConfig& c) {
  json::Value v = json::Value::object();
  v.set("out_dir", c.out_dir);
  v.set("parallel", int64_t(c.parallel));
  v.set("sft", c.sft);
  v.set("prefs", c.prefs);
  v.set("reward_model", c.reward_model);
  v.set("sft_steps", c.sft_steps);
  v.set("pairs", c.pairs);
  v.set("kl_ctls", list(c.kl_ctls));
  v.set("betas", list(c.betas));
  v.set("ppo_steps", c.ppo_steps);
  v.set("ppo_actor_lr", c.ppo_actor_lr);
  v.set("ppo_eval_every", c.ppo_eval_every);
  v.set("dpo_epochs", c.dpo_epochs);
  v.set("dpo_eval_every", c.dpo_eval_every);
  v.set("eval_samples", c.eval_samples);
  v.set("seed", c.seed);
  v.set("device", c.device);
  return v;
}

std::string frontier_run_name(const std::string& method, double param) {
  if (method == "PPO") return "ppo-klctl" + num(param);
  if (method == "DPO") return "dpo-beta" + num(param);
  throw Error(str("frontier: unknown method '", method, "' (PPO or DPO)"));
}

std::vector<std::vector<Job>> frontier_jobs(const FrontierConfig& c) {
  RLFT_CHECK(!c.kl_ctls.empty() || !c.betas.empty(),
             "rlft experiment frontier: no runs (--kl-ctls and --betas are both empty)");
  const char* cmd = "rlft experiment frontier: ";
  // Two values with the same run name (0.1 and 0.10) would be one run.
  auto distinct = [&](const char* flag, const std::vector<double>& xs, const char* method) {
    for (size_t i = 0; i < xs.size(); ++i)
      for (size_t j = 0; j < i; ++j)
        RLFT_CHECK(frontier_run_name(method, xs[i]) != frontier_run_name(method, xs[j]), cmd, flag,
                   ": ", num(xs[i]), " is listed twice");
  };
  for (double k : c.kl_ctls)
    RLFT_CHECK(std::isfinite(k) && k >= 0, cmd, "--kl-ctls: ", num(k),
               " is not a finite number >= 0");
  distinct("--kl-ctls", c.kl_ctls, "PPO");
  for (double b : c.betas)
    RLFT_CHECK(std::isfinite(b) && b > 0, cmd, "--betas: ", num(b), " is not a finite number > 0");
  distinct("--betas", c.betas, "DPO");
  RLFT_CHECK(!c.out_dir.empty(), cmd, "--out-dir may not be empty");
  RLFT_CHECK(c.parallel >= 1, cmd, "--parallel must be at least 1, got ", c.parallel);
  RLFT_CHECK(!c.sft.empty() || c.sft_steps > 0, cmd, "--sft-steps must be positive, got ",
             c.sft_steps);
  RLFT_CHECK(c.pairs >= 0, cmd, "--pairs must be >= 0 (0: the default), got ", c.pairs);
  RLFT_CHECK(c.ppo_steps > 0, cmd, "--ppo-steps must be positive, got ", c.ppo_steps);
  RLFT_CHECK(std::isfinite(c.ppo_actor_lr) && c.ppo_actor_lr > 0, cmd,
             "--ppo-actor-lr must be a finite number > 0, got ", c.ppo_actor_lr);
  RLFT_CHECK(c.ppo_eval_every >= 0, cmd, "--ppo-eval-every must be >= 0, got ", c.ppo_eval_every);
  RLFT_CHECK(c.dpo_epochs > 0, cmd, "--dpo-epochs must be positive, got ", c.dpo_epochs);
  RLFT_CHECK(c.dpo_eval_every >= 0, cmd, "--dpo-eval-every must be >= 0, got ", c.dpo_eval_every);
  RLFT_CHECK(c.eval_samples > 0, cmd, "--eval-samples must be positive, got ", c.eval_samples);
  rl::resolve_device(c.device);  // a bad name, or cuda without a GPU: one error before any job
  const std::string& out = c.out_dir;
  const std::string seed = std::to_string(c.seed), samples = std::to_string(c.eval_samples);
  const std::string sft = c.sft.empty() ? out + "/sft" : c.sft;
  const std::string prefs = c.prefs.empty() ? out + "/prefs.jsonl" : c.prefs;
  const std::string rm = c.reward_model.empty() ? out + "/rm" : c.reward_model;
  std::vector<std::vector<Job>> stages;
  if (c.sft.empty())
    stages.push_back({make_job(out, "sft", {"lm",           "sft",
                                            "--task",       "reviews",
                                            "--model",      "nano",
                                            "--block-size", "128",
                                            "--steps",      std::to_string(c.sft_steps),
                                            "--batch",      "32",
                                            "--lr",         "3e-3",
                                            "--warmup",     "50",
                                            "--out-dir",    out,
                                            "--name",       "sft",
                                            "--seed",       seed})});
  if (c.prefs.empty()) {
    std::vector<std::string> a = {"lm",    "prefs", "--run",  sft,  "--task", "reviews",
                                  "--out", prefs,   "--seed", seed, "--quiet"};
    if (c.pairs > 0) a.insert(a.end(), {"--pairs", std::to_string(c.pairs)});
    stages.push_back({make_job(out, "prefs", a)});
  }
  // The reward model first: the PPO stage waits for it, the DPO runs do not.
  std::vector<Job> models;
  if (c.reward_model.empty() && !c.kl_ctls.empty())
    models.push_back(run_job(out, "rm", seed, {"lm", "rm", "--prefs", prefs, "--init", sft}));
  for (double b : c.betas) {
    const std::string name = frontier_run_name("DPO", b);
    models.push_back(run_job(out, name, seed,
                             {"lm", "dpo", "--prefs", prefs, "--init", sft, "--beta", num(b),
                              "--epochs", std::to_string(c.dpo_epochs), "--eval-every",
                              std::to_string(c.dpo_eval_every), "--eval-samples", samples}));
  }
  if (!models.empty()) stages.push_back(models);
  std::vector<Job> ppo;
  for (double k : c.kl_ctls) {
    const std::string name = frontier_run_name("PPO", k);
    ppo.push_back(
        run_job(out, name, seed,
                {"lm", "ppo", "--init", sft, "--reward-model", rm, "--kl-ctl", num(k), "--steps",
                 std::to_string(c.ppo_steps), "--actor-lr", num(c.ppo_actor_lr), "--eval-every",
                 std::to_string(c.ppo_eval_every), "--eval-samples", samples}));
  }
  if (!ppo.empty()) stages.push_back(ppo);
  for (std::vector<Job>& stage : stages) put_on_device(stage, c.device);
  return stages;
}

std::vector<FrontierPoint> frontier_points(const std::string& method, double param,
                                           const std::string& run,
                                           const std::vector<json::Value>& metrics) {
  const bool ppo = method == "PPO";
  RLFT_CHECK(ppo || method == "DPO", "frontier: unknown method '", method, "' (PPO or DPO)");
  const char* kl_key = ppo ? "val_kl" : "kl";
  const char* gt_key = ppo ? "val_ground_truth" : "ground_truth";
  std::vector<FrontierPoint> out;
  for (const json::Value& m : metrics) {
    if (!m.contains(kl_key) || !m.contains(gt_key)) continue;
    FrontierPoint p;
    p.method = method, p.param = param, p.run = run;
    p.step = m.get_or<int64_t>("step", 0);
    p.kl = m.at(kl_key).as_double();
    p.ground_truth = m.at(gt_key).as_double();
    out.push_back(p);
  }
  return out;
}

std::vector<FrontierPoint> pareto_front(std::vector<FrontierPoint> points) {
  std::stable_sort(points.begin(), points.end(),
                   [](const FrontierPoint& a, const FrontierPoint& b) {
                     return a.kl != b.kl ? a.kl < b.kl : a.ground_truth > b.ground_truth;
                   });
  std::vector<FrontierPoint> front;
  double best = -std::numeric_limits<double>::infinity();
  for (const FrontierPoint& p : points)
    if (p.ground_truth > best) front.push_back(p), best = p.ground_truth;
  return front;
}

std::string frontier_csv(const std::vector<FrontierPoint>& points) {
  std::string s = "method,param,run,step,kl,ground_truth\n";
  char buf[256];
  for (const FrontierPoint& p : points) {
    std::snprintf(buf, sizeof buf, "%s,%g,%s,%lld,%.6g,%.6g\n", p.method.c_str(), p.param,
                  p.run.c_str(), (long long)p.step, p.kl, p.ground_truth);
    s += buf;
  }
  return s;
}

std::string frontier_markdown(const std::vector<FrontierPoint>& points,
                              const std::vector<double>& kl_edges, const std::string& header) {
  std::string s = header;
  char buf[512];
  // Per run: the last evaluation and the best one.
  s += "\n## Runs\n\n| method | param | run | evaluations | last step | last KL | last ground "
       "truth | best ground truth (at KL) |\n|---|---|---|---|---|---|---|---|\n";
  std::vector<std::string> runs;
  for (const FrontierPoint& p : points)
    if (std::find(runs.begin(), runs.end(), p.run) == runs.end()) runs.push_back(p.run);
  for (const std::string& run : runs) {
    const FrontierPoint *last = nullptr, *best = nullptr;
    int n = 0;
    for (const FrontierPoint& p : points) {
      if (p.run != run) continue;
      ++n;
      if (last == nullptr || p.step >= last->step) last = &p;
      if (best == nullptr || p.ground_truth > best->ground_truth) best = &p;
    }
    std::snprintf(buf, sizeof buf, "| %s | %s %g | %s | %d | %lld | %.2f | %.3f | %.3f (%.2f) |\n",
                  last->method.c_str(), last->method == "PPO" ? "kl_ctl" : "β", last->param,
                  run.c_str(), n, (long long)last->step, rl::printable(last->kl, 2),
                  last->ground_truth, best->ground_truth, rl::printable(best->kl, 2));
    s += buf;
  }
  // Per KL bin: each method's best ground truth among its points in the bin ("—": none).
  std::vector<std::string> methods;
  for (const FrontierPoint& p : points)
    if (std::find(methods.begin(), methods.end(), p.method) == methods.end())
      methods.push_back(p.method);
  s += "\n## Best ground truth per KL bin\n\n| KL(π‖π_ref) |";
  for (const std::string& m : methods) s += " " + m + " |";
  s += "\n|---|";
  for (size_t i = 0; i < methods.size(); ++i) s += "---|";
  s += "\n";
  for (size_t b = 0; b < kl_edges.size(); ++b) {
    // The first bin is open below: the sampled KL estimate can be slightly negative.
    const double inf = std::numeric_limits<double>::infinity();
    const double lo = b == 0 ? -inf : kl_edges[b],
                 hi = b + 1 < kl_edges.size() ? kl_edges[b + 1] : inf;
    if (std::isinf(hi))
      std::snprintf(buf, sizeof buf, "| ≥ %g |", lo);
    else if (std::isinf(lo))
      std::snprintf(buf, sizeof buf, "| < %g |", hi);
    else
      std::snprintf(buf, sizeof buf, "| [%g, %g) |", lo, hi);
    s += buf;
    for (const std::string& m : methods) {
      double best = -1;
      for (const FrontierPoint& p : points)
        if (p.method == m && p.kl >= lo && p.kl < hi) best = std::max(best, p.ground_truth);
      if (best < 0)
        s += " — |";
      else
        std::snprintf(buf, sizeof buf, " %.3f |", best), s += buf;
    }
    s += "\n";
  }
  return s;
}

void write_frontier_outputs(const std::string& dir, const std::vector<FrontierPoint>& points,
                            const std::string& header) {
  fs::atomic_write_file(dir + "/frontier.csv", frontier_csv(points));
  fs::atomic_write_file(dir + "/results.md",
                        frontier_markdown(points, {0, 1, 2, 5, 10, 20, 40}, header));
  // Per method: every point as a dot (NaN between points breaks the polyline, and write_line_plot
  // draws an isolated point as a dot), and its frontier as a line.
  std::vector<plot::Series> series;
  std::vector<std::string> methods;
  for (const FrontierPoint& p : points)
    if (std::find(methods.begin(), methods.end(), p.method) == methods.end())
      methods.push_back(p.method);
  const double nan = std::numeric_limits<double>::quiet_NaN();
  for (const std::string& m : methods) {
    std::vector<FrontierPoint> mine;
    for (const FrontierPoint& p : points)
      if (p.method == m) mine.push_back(p);
    plot::Series dots{m + " (every evaluation)", {}, {}}, line{m + " frontier", {}, {}};
    for (const FrontierPoint& p : mine) {
      if (!dots.x.empty()) dots.x.push_back(nan), dots.y.push_back(nan);
      dots.x.push_back(p.kl), dots.y.push_back(p.ground_truth);
    }
    for (const FrontierPoint& p : pareto_front(mine))
      line.x.push_back(p.kl), line.y.push_back(p.ground_truth);
    series.push_back(std::move(dots));
    series.push_back(std::move(line));
  }
  plot::write_line_plot(dir + "/frontier.svg",
                        "reviews: expected ground truth vs KL (validation prompts)",
                        "KL(pi || pi_ref) per sequence", "mean p(positive)", series);
}

void check_frontier_inputs(const FrontierConfig& c) {
  const char* cmd = "rlft experiment frontier: ";
  auto load = [&](const char* flag, const std::string& path) {
    RLFT_CHECK(fs::exists(path), cmd, flag, " ", path, ": no such run");
    try {
      return load_model(path);
    } catch (const Error& e) {
      throw Error(str(cmd, flag, " ", path, ": ", e.what()));
    }
  };
  LoadedModel sft;
  if (!c.sft.empty()) {
    sft = load("--sft", c.sft);
    RLFT_CHECK(!sft.model->config().reward_head && !sft.run_config.is_null() &&
                   sft.run_config.get_or("mode", std::string()) == "sft",
               cmd, "--sft ", c.sft, ": not an SFT run (`rlft lm sft`)");
    const std::string task = task_config_of(sft).task;
    RLFT_CHECK(task == "reviews", cmd, "--sft ", c.sft, ": an SFT run of task '", task,
               "'; the frontier is measured on reviews");
  }
  if (!c.prefs.empty()) {
    RLFT_CHECK(fs::exists(c.prefs), cmd, "--prefs ", c.prefs, ": no such file");
    RLFT_CHECK(!read_preferences(c.prefs).empty(), cmd, "--prefs ", c.prefs,
               ": holds no preference pairs");
  }
  if (!c.reward_model.empty() && !c.kl_ctls.empty()) {
    const LoadedModel rm = load("--reward-model", c.reward_model);
    RLFT_CHECK(rm.model->config().reward_head, cmd, "--reward-model ", c.reward_model,
               ": not a reward model (`rlft lm rm`; its model has no reward head)");
    RLFT_CHECK(c.sft.empty() || rm.tokenizer.to_json() == sft.tokenizer.to_json(), cmd,
               "--reward-model ", c.reward_model, ": its tokenizer differs from --sft ", c.sft,
               "'s");
  }
}

FrontierResult run_frontier(const FrontierConfig& cfg) {
  const std::vector<std::vector<Job>> stages = frontier_jobs(cfg);
  check_frontier_inputs(cfg);  // reused runs and files, before any job starts
  fs::make_dirs(cfg.out_dir);
  fs::atomic_write_file(cfg.out_dir + "/config.json", to_json(cfg).dump(2) + "\n");
  for (const std::vector<Job>& stage : stages) run_jobs(stage, cfg.parallel, cfg.quiet);

  FrontierResult res;
  for (double k : cfg.kl_ctls) {
    const std::string name = frontier_run_name("PPO", k);
    for (const FrontierPoint& p : frontier_points(
             "PPO", k, name, rl::read_metrics(cfg.out_dir + "/" + name + "/metrics.jsonl")))
      res.points.push_back(p);
  }
  for (double b : cfg.betas) {
    const std::string name = frontier_run_name("DPO", b);
    for (const FrontierPoint& p : frontier_points(
             "DPO", b, name, rl::read_metrics(cfg.out_dir + "/" + name + "/metrics.jsonl")))
      res.points.push_back(p);
  }
  const std::string header = str(
      "# DPO vs PPO-RLHF: reward–KL frontier on reviews\n\n"
      "Points: every evaluation of every run — ",
      cfg.eval_samples,
      " samples (temperature 1) per validation prompt; KL = mean Σ_t (log π − log π_ref) at the "
      "sampled tokens, ground truth = mean p(positive). Settings: ",
      cfg.out_dir, "/config.json; commands: ", cfg.out_dir, "/logs/*.log.\n");
  write_frontier_outputs(cfg.out_dir, res.points, header);
  res.csv_path = cfg.out_dir + "/frontier.csv";
  res.svg_path = cfg.out_dir + "/frontier.svg";
  res.md_path = cfg.out_dir + "/results.md";
  return res;
}

}  // namespace rlft::llm::exp
