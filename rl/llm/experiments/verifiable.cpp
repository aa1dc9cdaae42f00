// rlft experiment verifiable (verifiable.h): job lists for the runner, then curves, CSV and the
// results table from the runs' own files.
#include "rl/llm/experiments/verifiable.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <set>
#include <utility>

#include "engine/error.h"
#include "engine/fs.h"
#include "engine/json.h"
#include "engine/optim.h"
#include "rl/llm/experiments/runner.h"
#include "rl/llm/group_rl.h"
#include "rl/llm/lm.h"
#include "rl/llm/rlhf_data.h"
#include "rl/llm/sft.h"
#include "rl/plot.h"
#include "rl/run.h"

namespace rlft::llm::exp {
namespace {

std::string fmt(double x, int digits = 3) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", digits, x);
  return buf;
}

// 1234567 → "1.23M", 45600 → "45.6k".
std::string count(double x) {
  if (x >= 1e6) return fmt(x / 1e6, 2) + "M";
  if (x >= 1e3) return fmt(x / 1e3, 1) + "k";
  return fmt(x, 0);
}

std::string run_name(const std::string& method, int64_t seed) {
  return method + "-s" + std::to_string(seed);
}

// The command of one RL run after `rlft lm <method>`.
std::vector<std::string> rl_args(const VerifiableConfig& c, const std::string& method, int64_t seed,
                                 const std::string& sft_dir, const std::string& runs) {
  // (flag, value) pairs, one per line, as they would be written on a command line.
  const std::pair<const char*, std::string> options[] = {
      {"--init", sft_dir},
      {"--seed", std::to_string(seed)},
      {"--name", run_name(method, seed)},
      {"--out-dir", runs},
      {"--steps", std::to_string(c.steps)},
      {"--prompts", std::to_string(c.prompts)},
      {"--group", std::to_string(c.group)},
      {"--train-prompts", std::to_string(c.train_prompts)},
      {"--lr", str(c.lr)},
      {"--lr-schedule", c.lr_schedule},
      {"--minibatches", std::to_string(c.minibatches)},
      {"--eval-every", std::to_string(c.eval_every)},
      {"--eval-prompts", std::to_string(c.eval_prompts)},
  };
  std::vector<std::string> args;
  for (const auto& [flag, value] : options) {
    args.push_back(flag);
    args.push_back(value);
  }
  args.push_back("--quiet");
  args.insert(args.end(), c.extra_args.begin(), c.extra_args.end());
  return args;
}

// Every setting, the SFT start and every RL run's command, checked before any job starts: a
// mistake fails at once with one error, not after the SFT job or half of the runs.
void check_config(const VerifiableConfig& c) {
  const char* cmd = "rlft experiment verifiable: ";
  RLFT_CHECK(!c.methods.empty(), cmd, "--methods: at least one method is needed");
  for (const std::string& m : c.methods) group_rl_defaults(m);  // unknown name: error
  for (size_t i = 0; i < c.methods.size(); ++i)
    for (size_t j = i + 1; j < c.methods.size(); ++j)
      RLFT_CHECK(c.methods[i] != c.methods[j], cmd, "--methods: '", c.methods[i],
                 "' is listed twice");
  RLFT_CHECK(c.seeds >= 1, cmd, "--seeds must be at least 1, got ", c.seeds);
  RLFT_CHECK(c.parallel >= 1 && c.parallel <= 64, cmd, "--parallel must be in [1, 64], got ",
             c.parallel);
  RLFT_CHECK(c.steps >= 1, cmd, "--steps must be positive, got ", c.steps);
  optim::LRSchedule::parse(c.lr_schedule);  // an unknown name fails before any job starts
  RLFT_CHECK(c.prompts >= 1, cmd, "--prompts must be positive, got ", c.prompts);
  RLFT_CHECK(c.group >= 2, cmd, "--group must be at least 2, got ", c.group);
  RLFT_CHECK(c.test_prompts >= 0, cmd, "--test-prompts must be >= 0 (0: all), got ",
             c.test_prompts);
  RLFT_CHECK(c.eval_samples >= 1, cmd, "--eval-samples must be positive, got ", c.eval_samples);
  rl::resolve_device(c.device);  // a bad name, or cuda without a GPU: one error before any job
  RLFT_CHECK(!c.out_dir.empty(), cmd, "--out-dir may not be empty");
  RLFT_CHECK(!c.init.empty() || !c.preset.empty(), cmd, "give --init or --preset");
  std::string sft_dir = c.init;
  if (c.init.empty()) {
    TaskConfig task;
    try {
      task = sft_preset(c.preset).task;  // an unknown name: the list of known ones
    } catch (const Error& e) {
      throw Error(str(cmd, e.what()));
    }
    RLFT_CHECK(make_task(task)->has_verifier(), cmd, "--preset ", c.preset,
               ": an SFT preset of task '", task.task,
               "', which has no verifier (group RL needs one: arith or jsonl)");
    sft_dir = c.out_dir + "/sft";
  } else {
    // The start must be a run whose task has a verifier (arith, jsonl), as every RL job needs.
    RLFT_CHECK(fs::exists(c.init), cmd, "--init ", c.init, ": no such run");
    TaskConfig task;
    try {
      task = task_config_of(load_policy(c.init));
    } catch (const Error& e) {
      throw Error(str(cmd, "--init ", c.init, ": ", e.what()));
    }
    RLFT_CHECK(make_task(task)->has_verifier(), cmd, "--init ", c.init, ": a run of task '",
               task.task, "', which has no verifier (group RL needs one: arith or jsonl)");
  }
  // Every RL job's settings, as its own command will check them.
  for (const std::string& m : c.methods) {
    const std::vector<std::string> args = rl_args(c, m, 1, sft_dir, c.out_dir + "/runs");
    try {
      GroupRLConfig g = group_rl_defaults(m);
      g.init = sft_dir;
      g.steps = c.steps, g.prompts = c.prompts, g.group_size = c.group;
      g.train_prompts = c.train_prompts, g.lr = c.lr, g.lr_schedule = c.lr_schedule;
      g.minibatches = c.minibatches, g.eval_every = c.eval_every, g.eval_prompts = c.eval_prompts;
      g.out_dir = c.out_dir + "/runs", g.name = run_name(m, 1);
      check_group_rl_config(g);
      if (c.check_rl_command) c.check_rl_command(m, args);
    } catch (const Error& e) {
      std::string extra;
      for (const std::string& a : c.extra_args) extra += (extra.empty() ? "" : " ") + a;
      throw Error(str(cmd, "the ", m, " runs",
                      extra.empty() ? std::string() : str(" (--rl-args '", extra, "')"), ": ",
                      e.what()));
    }
  }
}

Job eval_job(const std::string& name, const std::string& run_dir, const std::string& logs,
             const VerifiableConfig& c) {
  return logged_job(
      logs, "eval-" + name,
      {"lm", "eval", "--run", run_dir, "--split", "test", "--n", std::to_string(c.test_prompts),
       "--samples-per-prompt", std::to_string(c.eval_samples), "--show", "0", "--seed", "0"});
}

// One logged run, as the columns the plots need (NaN where a step has no value).
struct Curve {
  std::vector<double> step, tokens, train_acc, eval_acc, length, entropy;
  double eval_start = NAN;
  double seconds = 0;
};

Curve read_curve(const std::string& run_dir) {
  Curve c;
  for (const json::Value& v : rl::read_metrics(run_dir + "/metrics.jsonl")) {
    auto num = [&](const char* k) {
      const json::Value* x = v.find(k);
      return x && x->is_number() ? x->as_double() : NAN;
    };
    c.step.push_back(num("step"));
    c.tokens.push_back(num("generated_tokens"));
    c.train_acc.push_back(num("accuracy"));
    c.eval_acc.push_back(num("eval_accuracy"));
    c.length.push_back(num("response_length_mean"));
    c.entropy.push_back(num("entropy"));
    if (v.contains("eval_accuracy_start")) c.eval_start = num("eval_accuracy_start");
    c.seconds = num("elapsed_seconds");
  }
  RLFT_CHECK(!c.step.empty(), run_dir, "/metrics.jsonl has no steps");
  return c;
}

// Mean over seeds of column `col` at every step that all seeds logged with a finite value.
// x is the step, or the seeds' mean of `generated_tokens` at that step.
plot::Series mean_series(const std::string& name, const std::vector<Curve>& runs,
                         std::vector<double> Curve::*col, bool by_tokens, bool with_start) {
  plot::Series s{name, {}, {}};
  if (with_start) {
    double y = 0;
    for (const Curve& r : runs) y += r.eval_start;
    if (std::isfinite(y)) s.x.push_back(0), s.y.push_back(y / double(runs.size()));
  }
  size_t n = runs.front().step.size();
  for (const Curve& r : runs) n = std::min(n, r.step.size());
  for (size_t i = 0; i < n; ++i) {
    double x = 0, y = 0;
    bool ok = true;
    for (const Curve& r : runs) {
      const double v = (r.*col)[i];
      ok = ok && std::isfinite(v);
      y += v;
      x += by_tokens ? r.tokens[i] : r.step[i];
    }
    if (!ok) continue;
    s.x.push_back(x / double(runs.size()));
    s.y.push_back(y / double(runs.size()));
  }
  return s;
}

// The per-step sampled accuracy is a 256-sample mean, too noisy to compare methods by eye.
plot::Series smooth(plot::Series s, size_t w) {
  s.y = trailing_mean(s.y, w);
  return s;
}

double eval_value(const std::string& run_dir, const char* key) {
  const std::string path = run_dir + "/eval_test.json";
  const json::Value v = json::parse(fs::read_file(path));
  RLFT_CHECK(v.contains(key), path, " has no '", key, "'");
  return v.at(key).as_double();
}

}  // namespace

std::vector<double> trailing_mean(const std::vector<double>& values, size_t w) {
  std::vector<double> y(values.size());
  double acc = 0;
  for (size_t i = 0; i < values.size(); ++i) {
    acc += values[i];
    if (i >= w) acc -= values[i - w];
    y[i] = acc / double(std::min(i + 1, w));
  }
  return y;
}

VerifiableResult run_verifiable(const VerifiableConfig& cfg) {
  check_config(cfg);
  const rl::Stopwatch clock;
  const std::string& out = cfg.out_dir;
  const std::string logs = out + "/logs", runs = out + "/runs";
  fs::make_dirs(logs);
  const std::string sft_dir = cfg.init.empty() ? out + "/sft" : cfg.init;

  bool ran_jobs = false;          // did this invocation run anything, or only redraw?
  std::set<std::string> trained;  // runs this invocation (re)trains: their evaluations are stale
  auto pending = [&](std::vector<Job> js) {
    put_on_device(js, cfg.device);
    for (const Job& j : js) {
      const bool eval = j.name.rfind("eval-", 0) == 0;
      // An evaluation of a run trained again is stale, though its own command is the same.
      if (eval && trained.count(j.name.substr(5))) fs::remove_file(j.done_path);
      if (!finished_as_is(j)) {
        ran_jobs = true;
        if (!eval) trained.insert(j.name);
      }
    }
    return js;
  };

  // ---- 1. the SFT start (trained once; a rerun finds its marker)
  if (cfg.init.empty())
    run_jobs(pending({logged_job(logs, "sft",
                                 {"lm", "sft", "--preset", cfg.preset, "--out-dir", out, "--name",
                                  "sft", "--quiet"})}),
             1, cfg.quiet, cfg.program);

  // ---- 2. the SFT's own test accuracy, and every method × seed, equal budgets
  std::vector<Job> jobs = {eval_job("sft", sft_dir, logs, cfg)};
  for (int64_t seed = 1; seed <= cfg.seeds; ++seed)  // seed-major: partial results stay balanced
    for (const std::string& m : cfg.methods) {
      const std::string name = run_name(m, seed);
      std::vector<std::string> args = {"lm", m};
      for (std::string& a : rl_args(cfg, m, seed, sft_dir, runs)) args.push_back(std::move(a));
      jobs.push_back(logged_job(logs, name, std::move(args)));
    }
  run_jobs(pending(jobs), cfg.parallel, cfg.quiet, cfg.program);

  // ---- 3. final test accuracy of every run
  jobs.clear();
  for (int64_t seed = 1; seed <= cfg.seeds; ++seed)
    for (const std::string& m : cfg.methods) {
      const std::string name = run_name(m, seed);
      jobs.push_back(eval_job(name, runs + "/" + name, logs, cfg));
    }
  run_jobs(pending(jobs), cfg.parallel, cfg.quiet, cfg.program);

  // ---- 4. curves, CSV, table
  VerifiableResult result;
  result.sft_greedy = eval_value(sft_dir, "greedy_exact_match");
  result.sft_sampled = eval_value(sft_dir, "sampled_exact_match");
  std::vector<plot::Series> acc_steps, acc_tokens, train_steps, train_tokens, len_steps, ent_steps;
  std::string csv =
      "method,seed,step,generated_tokens,train_accuracy_sampled,eval_accuracy_greedy,"
      "response_length_mean,entropy\n";
  auto cell = [](double x) { return std::isfinite(x) ? str(x) : std::string(); };
  for (const std::string& m : cfg.methods) {
    MethodResult mr;
    mr.method = m;
    std::vector<Curve> curves;
    for (int64_t seed = 1; seed <= cfg.seeds; ++seed) {
      const std::string dir = runs + "/" + run_name(m, seed);
      curves.push_back(read_curve(dir));
      const Curve& c = curves.back();
      if (std::isfinite(c.eval_start))
        csv += str(m, ",", seed, ",0,0,,", cell(c.eval_start), ",,\n");
      for (size_t i = 0; i < c.step.size(); ++i)
        csv += str(m, ",", seed, ",", cell(c.step[i]), ",", cell(c.tokens[i]), ",",
                   cell(c.train_acc[i]), ",", cell(c.eval_acc[i]), ",", cell(c.length[i]), ",",
                   cell(c.entropy[i]), "\n");
      mr.greedy.push_back(eval_value(dir, "greedy_exact_match"));
      mr.sampled.push_back(eval_value(dir, "sampled_exact_match"));
      mr.generated_tokens += c.tokens.back() / double(cfg.seeds);
      mr.seconds += c.seconds / double(cfg.seeds);
    }
    acc_steps.push_back(mean_series(m, curves, &Curve::eval_acc, false, true));
    acc_tokens.push_back(mean_series(m, curves, &Curve::eval_acc, true, true));
    const size_t w = size_t(std::max<int64_t>(1, cfg.steps / 20));
    train_steps.push_back(smooth(mean_series(m, curves, &Curve::train_acc, false, false), w));
    train_tokens.push_back(smooth(mean_series(m, curves, &Curve::train_acc, true, false), w));
    len_steps.push_back(smooth(mean_series(m, curves, &Curve::length, false, false), w));
    ent_steps.push_back(smooth(mean_series(m, curves, &Curve::entropy, false, false), w));
    result.methods.push_back(mr);
  }
  const std::string seeds = str(cfg.seeds, cfg.seeds == 1 ? " seed" : " seeds");
  const std::string budget =
      str(cfg.prompts, " prompts × ", cfg.group, " per step, ", seeds, " (mean)");
  plot::write_line_plot(out + "/accuracy_vs_steps.svg",
                        "arith: greedy validation exact match — " + budget, "update step",
                        "exact match", acc_steps);
  plot::write_line_plot(out + "/accuracy_vs_tokens.svg",
                        "arith: greedy validation exact match — " + budget,
                        "generated response tokens", "exact match", acc_tokens);
  plot::write_line_plot(out + "/train_accuracy_vs_steps.svg",
                        "arith: sampled train accuracy (moving average) — " + budget, "update step",
                        "accuracy", train_steps);
  plot::write_line_plot(out + "/train_accuracy_vs_tokens.svg",
                        "arith: sampled train accuracy (moving average) — " + budget,
                        "generated response tokens", "accuracy", train_tokens);
  plot::write_line_plot(out + "/response_length.svg",
                        "arith: mean response length (tokens, EOS included) — " + budget,
                        "update step", "tokens", len_steps);
  plot::write_line_plot(out + "/entropy.svg",
                        "arith: policy entropy on its responses (nats/token) — " + budget,
                        "update step", "entropy", ent_steps);
  fs::atomic_write_file(out + "/curves.csv", csv);

  std::string md = "# rlft experiment verifiable\n\n";
  md += str(
      "Start: `", sft_dir, "` (SFT). Every method: ", cfg.steps, " update steps of ", cfg.prompts,
      " prompts × ", cfg.group, " responses, lr ", cfg.lr,
      cfg.lr_schedule == "constant" ? std::string() : str(" (", cfg.lr_schedule, " decay to 0)"),
      ", ", cfg.minibatches, cfg.minibatches == 1 ? " minibatch" : " minibatches", " per step, ",
      cfg.train_prompts > 0 ? str("the first ", cfg.train_prompts, " train prompts")
                            : std::string("all train prompts"),
      ", its own objective defaults otherwise; ", seeds, ".\n");
  if (!cfg.extra_args.empty()) {
    md += "Extra flags for every run:";
    for (const std::string& a : cfg.extra_args) md += " " + a;
    md += "\n";
  }
  md +=
      str("\nHeld-out test exact match (arith test split, `rlft lm eval`): greedy, and sampled "
          "at temperature 1 (",
          cfg.eval_samples,
          " per prompt); mean ± std over seeds (std with n − 1). Δ = greedy gain over the SFT "
          "start.\n\n");
  md += "| method | greedy | sampled | Δ greedy | generated tokens / run | wall / run |\n";
  md += "|---|---|---|---|---|---|\n";
  md += str("| SFT start | ", fmt(result.sft_greedy), " | ", fmt(result.sft_sampled),
            " | — | — | — |\n");
  for (const MethodResult& mr : result.methods) {
    const MeanStd g = mean_std(mr.greedy), s = mean_std(mr.sampled);
    md += str("| ", mr.method, " | ", fmt(g.mean), " ± ", fmt(g.std), " | ", fmt(s.mean), " ± ",
              fmt(s.std), " | ", g.mean >= result.sft_greedy ? "+" : "",
              fmt(g.mean - result.sft_greedy), " | ", count(mr.generated_tokens), " | ",
              rl::format_duration(mr.seconds), " |\n");
  }
  md += "\nPer seed (greedy / sampled):\n\n";
  for (const MethodResult& mr : result.methods) {
    md += "- " + mr.method + ":";
    for (size_t i = 0; i < mr.greedy.size(); ++i)
      md += str(" s", i + 1, " ", fmt(mr.greedy[i]), " / ", fmt(mr.sampled[i]),
                i + 1 < mr.greedy.size() ? "," : "");
    md += "\n";
  }
  md +=
      "\nCurves: accuracy_vs_steps.svg, accuracy_vs_tokens.svg (greedy validation exact match "
      "during training), train_accuracy_vs_steps.svg / _vs_tokens.svg, response_length.svg, "
      "entropy.svg; every point in curves.csv; each run's command and output in logs/.\n";
  // Wall time over the invocations that ran jobs (a rerun that only redraws adds nothing), kept
  // in <out>/timing.json so the table still reports the real cost after a resume.
  const std::string timing_path = out + "/timing.json";
  json::Value timing = fs::exists(timing_path)
                           ? json::parse(fs::read_file(timing_path), timing_path)
                           : json::Value::object();
  double wall = timing.get_or("wall_seconds", 0.0);
  int64_t invocations = timing.get_or("invocations", int64_t(0));
  if (ran_jobs) {
    wall += clock.seconds();
    ++invocations;
    timing.set("wall_seconds", wall);
    timing.set("invocations", invocations);
    fs::atomic_write_file(timing_path, timing.dump(2) + "\n");
  }
  md += str("\nWall time of the experiment: ", rl::format_duration(wall), " over ", invocations,
            invocations == 1 ? " invocation" : " invocations", " that ran jobs (", cfg.parallel,
            " runs at once, one thread each).\n");
  result.results_md = out + "/results.md";
  fs::atomic_write_file(result.results_md, md);
  result.seconds = clock.seconds();
  return result;
}

}  // namespace rlft::llm::exp
