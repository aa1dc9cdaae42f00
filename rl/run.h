// Run directories and the metrics log shared by every algorithm.
//
// runs/<name>/config.json    every setting, the seed and the git revision (atomic write)
// runs/<name>/metrics.jsonl  one JSON object per update, appended and flushed
// plus the algorithm's checkpoints and SVG curves.
#pragma once

#include <chrono>
#include <cmath>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "engine/dtype.h"
#include "engine/json.h"

namespace rlft::rl {

// The directory of run `name` under `runs_dir`, checked: neither may be empty, and the name is
// one path component (no '/', not "." or "..", not starting with '-', no control characters),
// so a run never lands outside `runs_dir` (e.g. in / for --runs-dir '').
std::string run_path(const std::string& runs_dir, const std::string& name);

// Refuses a run that would write over one of its own inputs (`lm grpo --init runs/x --name x`
// would delete runs/x's checkpoint at its first write): each (flag, path) whose path is the
// same directory as `run_dir` is an error naming the flag. Empty paths are skipped.
void check_not_the_run(const std::string& run_dir,
                       std::initializer_list<std::pair<const char*, std::string>> inputs);

// A number of a metrics line as rlft wrote it: null (a non-finite value, json.h) reads as NaN;
// anything else but a number is an error naming the key.
double metric_number(const json::Value& line, const std::string& key);

// The lines of a metrics.jsonl file, in order, for every reader of one (--resume, `rlft plot`,
// the experiments' tables). A last line without its newline that does not parse is left out,
// and `cut`, when given, is set: an append cut short by a crash of the machine, or the line a
// running trainer is writing as this reads the file (a whole line whose newline is missing is
// kept). Any other line that is not JSON is an error naming the file and the line, and a missing
// file is an error naming it.
std::vector<json::Value> read_metrics(const std::string& path, bool* cut = nullptr);

class RunDir {
 public:
  // A fresh run creates `dir` (e.g. "runs/ppo-cartpole"); a resumed one (fresh = false) needs
  // it to exist. An unwritable location is an rlft::Error. Nothing an earlier run left in
  // `dir` is touched here but the temporary files of a write that was killed midway
  // (".<file>.tmp.<…>", see fs::atomic_write_file).
  RunDir(const std::string& dir, bool fresh);
  const std::string& dir() const { return dir_; }
  std::string path(const std::string& file) const { return dir_ + "/" + file; }
  // The run's first write. For a fresh run it first removes what an earlier run of the same
  // name left (metrics.jsonl, checkpoint.safetensors, policy.safetensors, critic.safetensors,
  // critic.previous.safetensors, eval_test.json, the *.svg curves), so old metrics, weights and
  // curves never mix with the new run's. Call it once every input has been read and every setting
  // checked: a command that fails before it leaves an earlier run in `dir` as it was.
  void write_config(const json::Value& config) const;
  void log(const json::Value& metrics) const;
  // Flushes metrics.jsonl to disk (nothing logged yet: nothing to do). Every trainer calls it
  // just before it writes its training checkpoint, so a checkpoint of step N never outlives
  // the lines through N: a crash of the machine can lose or cut only lines after it, which a
  // resume drops anyway (keep_metrics_through).
  void sync_log() const;
  // For --resume: drops the metrics.jsonl lines whose `key` (an integer every line holds:
  // "step", PPO's "update") is past `step` (a crash between two checkpoints leaves them
  // behind; the resumed run logs those steps again) and returns the lines kept, in order, for
  // the caller to rebuild its curves from. No file: no lines. A last line cut short by a crash
  // (no newline, not JSON) is dropped with them: sync_log put every line through the
  // checkpoint on disk before it. Any other line that is not JSON, or without the key, is an
  // error naming the file and the entry. `use`, when given, sees each kept line before
  // anything is written (the caller's curves are rebuilt there): an error it throws is named
  // with the file and the entry, and leaves metrics.jsonl as it was.
  std::vector<json::Value> keep_metrics_through(
      int64_t step, const std::string& key = "step",
      const std::function<void(const json::Value&)>& use = {}) const;
  // For --resume: a run continues only with the settings it was started with. Every key of
  // `now` (the resumed command's config) must equal the run's config.json, except those that
  // say where, how far and how loudly to run (resume, quiet, device, name, out_dir, runs_dir,
  // git_revision, stop_after, checkpoint_every, log_every) and the caller's `free` ones (e.g.
  // "steps": a longer run). A difference is an error naming the setting and both values; the
  // "algorithm" key, when `now` has one, is compared first (resuming another algorithm's run).
  void check_resumable(const json::Value& now, const std::vector<std::string>& free = {}) const;
  // An LM trainer's --resume, before anything is loaded: the run has a checkpoint.safetensors
  // ("<it>: nothing to resume (no checkpoint)") and check_resumable(now, free) holds.
  void check_resume(const json::Value& now, const std::vector<std::string>& free) const;

 private:
  std::string dir_;
  bool fresh_;
};

// The directory of a run that records `config` (the settings its config.json will hold; the git
// revision is added here) and resumes from a checkpoint. A fresh run creates it (RunDir(dir,
// true)); a resumed one (`resume`) is opened and checked at once, before anything of the run is
// read: its checkpoint and its settings (RunDir::check_resume(config, free), `free` the
// trainer's settings that may change, e.g. "steps").
RunDir open_run(const std::string& dir, bool resume, json::Value& config,
                const std::vector<std::string>& free = {});

// For --resume, once the checkpoint is read: the settings the checkpoint itself recorded
// (`recorded`: its run_config metadata; train ppo's policy record and environment) against
// those the run goes on with (`now`, taken from config.json and the command line). config.json
// can be edited by hand; the checkpoint's record is the settings its weights were trained with. Keys both hold must be equal, except those
// check_resumable exempts and the caller's `free` ones; a key only one side holds (a record from
// before the key existed) is not compared. A difference names the checkpoint, the setting and
// both values.
void check_checkpoint_settings(const json::Value& recorded, const json::Value& now,
                               const std::vector<std::string>& free, const std::string& ckpt);

// For --resume of a classic-control run: the checkpoint's own record of its network (metadata
// "policy", models::describe's JSON) and environment ("env_id") against what the run builds now
// (`policy`, `env_id`): equal shapes alone would load tanh weights into a relu network. A
// difference names the checkpoint, the setting and both values (check_checkpoint_settings).
void check_checkpoint_policy(const std::map<std::string, std::string>& metadata,
                             const std::string& ckpt, const std::string& policy,
                             const std::string& env_id);
// The run directory of a classic-control trainer (PPO, REINFORCE), or none when `run_dir` is ""
// (a resume needs one: "<algorithm>: resume needs a run directory"). `config` (the trainer's
// settings) gets "algorithm", "git_revision" and "policy" (`policy`, models::describe's JSON).
// A fresh run writes it; a resumed run checks it against config.json, where only `budget` (e.g.
// "total_steps") may differ, and leaves the file as it is: the caller records the new budget
// once its checkpoint has loaded, so a resume that fails changes nothing.
std::unique_ptr<RunDir> open_policy_run(const std::string& run_dir, bool resume,
                                        json::Value& config, const std::string& algorithm,
                                        const std::string& policy, const std::string& budget);
// The git revision of the source tree rlft was built from, or "unknown".
std::string git_revision();

// Seconds since construction, and a human "1m05s" ETA.
class Stopwatch {
 public:
  Stopwatch() : start_(std::chrono::steady_clock::now()) {}
  double seconds() const {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  }

 private:
  std::chrono::steady_clock::time_point start_;
};
std::string format_duration(double seconds);

// `x` for a "%.<decimals>f" print: a value that rounds to zero is returned as +0, so a KL of
// -1e-5 prints "0.00", not "-0.00".
double printable(double x, int decimals);

// The device a --device value names, checked: "cpu", or "cuda[:N]" when that GPU answers
// (otherwise one error with the runtime's reason, e.g. "CUDA driver version is insufficient").
Device resolve_device(const std::string& device);

// A numeric option checked: `v` finite and in [lo, hi] (lo itself excluded when `open_lo`),
// else "<cmd><flag> must be <what>, got <v>" (what: e.g. "a finite number > 0", "in [0, 1]").
void check_number(const std::string& cmd, const char* flag, double v, double lo, bool open_lo,
                  double hi, const char* what);

// A trainer's loop state kept as a JSON object in a checkpoint's metadata (e.g. "rrhf_state":
// random streams' counters, a metrics window), read field by field before the run changes
// anything; every error names the checkpoint, the state and the field.
class StateReader {
 public:
  StateReader(const std::string& text, const std::string& ckpt, const std::string& name);
  const json::Value& field(const char* key) const;  // missing: error
  // An integer in [lo, hi].
  int64_t integer(const char* key, int64_t lo = 0, int64_t hi = INT64_MAX) const;
  // A finite number >= lo.
  double finite(const char* key, double lo = -HUGE_VAL) const;
  // A number, or null for a sum that was not finite (JSON has no NaN), read back as NaN.
  double number_or_nan(const char* key) const;
  const std::string& where() const { return where_; }

 private:
  json::Value state_;
  std::string where_;
};

// A count option (sequences, samples, candidates per step) in [1, max], else "<cmd><flag> must
// be in [1, <max>], got <v>". The bound keeps a mistyped count (2147483648) an error instead of
// memory filling up.
inline constexpr int64_t kMaxSequencesPerStep = int64_t(1) << 20;
void check_count(const std::string& cmd, const char* flag, int64_t v,
                 int64_t max = kMaxSequencesPerStep);

// --checkpoint-every and --stop-after of a resumable trainer, both >= 0 (0: a checkpoint only at
// --stop-after and the end; run to the end), each error naming the option.
void check_checkpoint_options(const std::string& cmd, int64_t checkpoint_every, int64_t stop_after);

// "64,64" → {64, 64}; anything but positive integers is an error naming `flag`.
std::vector<int64_t> parse_sizes(const std::string& flag, const std::string& text);

}  // namespace rlft::rl
