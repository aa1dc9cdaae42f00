// The rlft subcommands. main.cpp dispatches on the first word; each returns an exit status
// and throws rlft::Error on bad input (main prints it as one line and exits with 2).
// argv[first] is the first argument after the command words.
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

namespace rlft::llm {
struct GroupRLConfig;
}

namespace rlft::cli {

class Args;

// `--resume` (without --preset): each option not written on the command line takes the value
// recorded in <run_dir>/config.json, except this invocation's own (--name, --runs-dir/--out-dir,
// --device, --quiet, --stop-after), so `--name X --resume` goes on with X's settings; the
// options written are compared with the record by the library (RunDir::check_resumable). With
// a --preset the command line states the whole run (the preset and the options beside it) and
// is compared as a whole. A run without config.json is left to the library's error; the task
// keys no option sets (a jsonl run's data_fingerprint) the library takes from the record itself
// (llm::make_run_task).
void take_recorded_settings(Args& a, const std::string& run_dir);  // cli/resume.cpp
// " (--flag was not written: --resume took the value recorded in …/config.json)" when
// `message` names a flag the last take_recorded_settings filled from the file; else "".
std::string recorded_note(const std::string& message);

// The help of a trainer's --resume: `budget` lists the settings a resumed run may change (e.g.
// "--steps, --grad-accum"); the options that say where, how far and how loudly to run
// (RunDir::check_resumable never compares them) follow, --stop-after and --log-every where the
// command has them.
inline std::string resume_help(const std::string& budget, bool has_log_every,
                               bool has_stop_after = true) {
  return "continue the run from its checkpoint with the settings it recorded (options written "
         "here must match them, except " +
         budget + ", --device" + (has_stop_after ? ", --stop-after" : "") + ", --checkpoint-every" +
         (has_log_every ? ", --log-every" : "") + " and --quiet)";
}

// The closing line of a training command whose invocation ran no final `what` (e.g.
// "validation"): --stop-after stopped it first, or the resumed run had already finished. No
// numbers are made up for it; they are in the run's metrics.jsonl. Returns the exit status 0.
inline int print_done_without(const char* what, int64_t step, const std::string& run_dir) {
  std::printf(
      "done: at step %lld, no %s in this invocation (--stop-after, or the run had finished); "
      "see its metrics.jsonl\nrun: %s\n",
      (long long)step, what, run_dir.c_str());
  return 0;
}

int run_demo(int argc, char** argv, int first);   // cli/demo.cpp
int run_train(int argc, char** argv, int first);  // cli/cmd_train.cpp: rlft train ppo|reinforce
int run_policy_eval(int argc, char** argv, int first);  // cli/cmd_train.cpp: rlft eval --run …
int run_curve_plot(int argc, char** argv, int first);   // cli/cmd_train.cpp: rlft plot <run>
int run_lm(int argc, char** argv, int first);  // cli/cmd_lm.cpp: rlft lm pretrain|sft|sample|eval
// cli/cmd_group_rl.cpp: rlft lm grpo|dr-grpo|dapo|gspo|gspo-token|dcpo|rloo (algo = that word)
int run_group_rl(const std::string& algo, int argc, char** argv, int first);
// cli/cmd_group_rl.cpp: the settings `rlft lm <algo> args…` would run with, parsed by that
// command's own options and checked, for `rlft experiment verifiable` to refuse a bad flag
// before it starts any job.
llm::GroupRLConfig parse_group_rl_command(const std::string& algo,
                                          const std::vector<std::string>& args);
// cli/cmd_rlhf.cpp: rlft lm prefs|rm|ppo|dpo|rrhf (sub = that word)
int run_rlhf(const std::string& sub, int argc, char** argv, int first);
// cli/cmd_frontier.cpp: rlft experiment frontier (DPO vs PPO-RLHF reward-KL frontier)
int run_experiment_frontier(int argc, char** argv, int first);
// cli/cmd_verifiable.cpp: rlft experiment verifiable (GRPO family on arith, several seeds)
int run_experiment_verifiable(int argc, char** argv, int first);

}  // namespace rlft::cli
