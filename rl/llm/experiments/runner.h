// Experiment runner: an experiment (`rlft experiment frontier|verifiable`) is a list of ordinary
// `rlft` commands — one training run each — executed as child processes of this same binary, a
// few at a time, and then read back through their metrics.jsonl files.
//
// Why processes rather than threads: every run is then exactly the command a user could type
// (its log shows it), runs cannot share hidden global state (grad mode, thread pools), one
// crashing run does not take the others down, and `--parallel 2` uses both cores of a small
// machine with OMP_NUM_THREADS=1 per run, which for these toy models beats one run on two
// threads. Resume is per job: a job that finished leaves a marker file and is skipped when the
// experiment is started again.
//
//   std::vector<exp::Job> jobs = {{"dpo-beta0.1", {"lm", "dpo", "--beta", "0.1", ...},
//                                  "runs/frontier/logs/dpo-beta0.1.log",
//                                  "runs/frontier/logs/dpo-beta0.1.done"}};
//   exp::run_jobs(jobs, /*parallel=*/2, /*quiet=*/false);
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "engine/json.h"

namespace rlft::llm::exp {

struct Job {
  std::string name;               // shown in progress lines and errors
  std::vector<std::string> args;  // arguments after the program name, e.g. {"lm", "dpo", ...}
  std::string log_path;           // the child's stdout and stderr (truncated at start)
  std::string done_path;          // marker: written when the job exits with status 0, holding
                                  // its command line
};

// True when the job finished earlier with this very command line (its marker says so): a job
// whose command changed since (other --steps, --rl-args, device) is run again, so an
// experiment never reports settings its runs did not use.
bool finished_as_is(const Job& job);

// The experiments' convention: `name`'s output in <logs_dir>/<name>.log, its marker
// <logs_dir>/<name>.done.
inline Job logged_job(const std::string& logs_dir, const std::string& name,
                      std::vector<std::string> args) {
  return {name, std::move(args), logs_dir + "/" + name + ".log", logs_dir + "/" + name + ".done"};
}

// Appends `--device <device>` to every job's command unless it is "cpu" (the commands' default,
// so CPU experiments keep their command lines). All the runs share the device: on one GPU the
// `parallel` jobs run side by side on it.
inline void put_on_device(std::vector<Job>& jobs, const std::string& device) {
  if (device == "cpu") return;
  for (Job& j : jobs) j.args.insert(j.args.end(), {"--device", device});
}

// Runs `<this rlft binary> args...` for every job whose done_path does not exist yet, at most
// `parallel` at once, each with OMP_NUM_THREADS=1 (unless the caller's environment sets it)
// and its output in log_path (parent directories are created). When a job fails (non-zero
// exit or a signal), no new job is started, the running ones are waited for, and an
// rlft::Error, one line, names the failed job, its exit status, the reason from its log (its
// "rlft: error:" line, else its last line) and the log's path.
// Progress lines ("[3/18] grpo-s1 done in 5m12s") go to stdout unless `quiet`.
// `program` replaces this binary (tests run /bin/sh); empty means this very binary, even if
// its file is replaced by a rebuild while the experiment runs.
void run_jobs(const std::vector<Job>& jobs, int parallel, bool quiet,
              const std::string& program = "");

// Mean and sample standard deviation (n − 1; 0 for fewer than two values) of `values`.
struct MeanStd {
  double mean = 0, std = 0;
};
MeanStd mean_std(const std::vector<double>& values);

}  // namespace rlft::llm::exp
