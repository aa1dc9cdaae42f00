// Experiment runner (runner.h): posix_spawn of this binary, a bounded pool of children, marker
// files for resume.
#include "rl/llm/experiments/runner.h"

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>

#include "engine/error.h"
#include "engine/fs.h"
#include "rl/run.h"

extern char** environ;

namespace rlft::llm::exp {
namespace {

json::Value command_json(const Job& job) {
  json::Value args = json::Value::array();
  for (const std::string& a : job.args) args.push_back(a);
  return args;
}

std::string parent_dir(const std::string& path) {
  const size_t slash = path.find_last_of('/');
  return slash == std::string::npos ? std::string() : path.substr(0, slash);
}

// The line of a failed job's log that says why: its last "rlft: error:" line, else its last
// non-empty line (progress lines that overwrite themselves with '\r': their last state).
std::string failure_line(const std::string& path) {
  std::string text;
  try {
    text = fs::read_file(path);
  } catch (const Error&) {
    return "(log unreadable)";
  }
  std::string last, error;
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    std::string line = text.substr(start, end - start);
    while (!line.empty() && line.back() == '\r') line.pop_back();
    const size_t cr = line.find_last_of('\r');
    if (cr != std::string::npos) line = line.substr(cr + 1);
    if (!line.empty()) last = line;
    if (line.find("rlft: error:") != std::string::npos) error = line;
    start = end + 1;
  }
  if (!error.empty()) return error;
  return last.empty() ? std::string("(empty log)") : last;
}

std::string describe_status(int status) {
  if (WIFEXITED(status)) return str("exit status ", WEXITSTATUS(status));
  if (WIFSIGNALED(status))
    return str("signal ", WTERMSIG(status), " (", strsignal(WTERMSIG(status)), ")");
  return str("wait status ", status);
}

// The child's environment: ours, with OMP_NUM_THREADS=1 added when it is not set.
std::vector<std::string> child_environment() {
  std::vector<std::string> env;
  bool has_omp = false;
  for (char** e = environ; e && *e; ++e) {
    env.emplace_back(*e);
    if (std::strncmp(*e, "OMP_NUM_THREADS=", 16) == 0) has_omp = true;
  }
  if (!has_omp) env.emplace_back("OMP_NUM_THREADS=1");
  return env;
}

pid_t spawn(const std::string& exe, const Job& job, const std::vector<std::string>& env) {
  const std::string dir = parent_dir(job.log_path);
  if (!dir.empty()) fs::make_dirs(dir);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, job.log_path.c_str(),
                                   O_WRONLY | O_CREAT | O_TRUNC, 0666);
  posix_spawn_file_actions_adddup2(&actions, STDOUT_FILENO, STDERR_FILENO);
  posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);

  std::vector<char*> argv;
  argv.push_back(const_cast<char*>(exe.c_str()));
  for (const std::string& a : job.args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  std::vector<char*> envp;
  for (const std::string& e : env) envp.push_back(const_cast<char*>(e.c_str()));
  envp.push_back(nullptr);

  pid_t pid = 0;
  const int rc = posix_spawn(&pid, exe.c_str(), &actions, nullptr, argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  RLFT_CHECK(rc == 0, "experiment job '", job.name, "': cannot start '", exe,
             "': ", std::strerror(rc));
  return pid;
}

}  // namespace

bool finished_as_is(const Job& job) {
  if (!fs::exists(job.done_path)) return false;
  try {
    const json::Value marker = json::parse(fs::read_file(job.done_path), job.done_path);
    const json::Value* args = marker.is_object() ? marker.find("args") : nullptr;
    return args != nullptr && *args == command_json(job);
  } catch (const Error&) {
    return false;  // an older or damaged marker: run the job again
  }
}

void run_jobs(const std::vector<Job>& jobs, int parallel, bool quiet, const std::string& program) {
  RLFT_CHECK(parallel >= 1, "--parallel must be at least 1, got ", parallel);
  std::map<std::string, size_t> names;
  for (size_t i = 0; i < jobs.size(); ++i) {
    RLFT_CHECK(!jobs[i].done_path.empty() && !jobs[i].log_path.empty(), "experiment job '",
               jobs[i].name, "' has no log or done path");
    RLFT_CHECK(names.emplace(jobs[i].name, i).second, "two experiment jobs are named '",
               jobs[i].name, "'");
  }
  std::vector<size_t> todo;
  for (size_t i = 0; i < jobs.size(); ++i) {
    if (finished_as_is(jobs[i])) {
      if (!quiet)
        std::printf("[skip] %s (finished earlier: %s)\n", jobs[i].name.c_str(),
                    jobs[i].done_path.c_str());
    } else {
      if (!quiet && fs::exists(jobs[i].done_path))
        std::printf("[rerun] %s (its command changed since it finished)\n", jobs[i].name.c_str());
      todo.push_back(i);
    }
  }
  if (todo.empty()) return;
  // "/proc/self/exe" rather than the path it resolves to: a rebuild during a long experiment
  // replaces the file at that path (the old one shows as "rlft (deleted)"), and every job should
  // run the very binary the experiment started with anyway.
  const std::string exe = program.empty() ? std::string("/proc/self/exe") : program;
  const std::vector<std::string> env = child_environment();

  struct Running {
    size_t job;
    std::chrono::steady_clock::time_point start;
  };
  std::map<pid_t, Running> running;
  size_t next = 0, finished = 0;
  std::string failure;
  while (next < todo.size() || !running.empty()) {
    while (failure.empty() && next < todo.size() && running.size() < size_t(parallel)) {
      const Job& job = jobs[todo[next]];
      if (!quiet) {
        std::string cmd = program.empty() ? "rlft" : program;
        for (const std::string& a : job.args) cmd += " " + a;
        std::printf("[start] %s: %s > %s\n", job.name.c_str(), cmd.c_str(), job.log_path.c_str());
        std::fflush(stdout);
      }
      running[spawn(exe, job, env)] = {todo[next], std::chrono::steady_clock::now()};
      ++next;
    }
    if (running.empty()) break;
    int status = 0;
    const pid_t pid = waitpid(-1, &status, 0);
    if (pid < 0) {
      if (errno == EINTR) continue;
      RLFT_CHECK(false, "waitpid failed: ", std::strerror(errno));
    }
    auto it = running.find(pid);
    if (it == running.end()) continue;  // not one of ours
    const Job& job = jobs[it->second.job];
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - it->second.start).count();
    running.erase(it);
    ++finished;
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
      const std::string dir = parent_dir(job.done_path);
      if (!dir.empty()) fs::make_dirs(dir);
      json::Value marker = json::Value::object();
      marker.set("args", command_json(job));
      marker.set("seconds", seconds);
      fs::atomic_write_file(job.done_path, marker.dump() + "\n");
      if (!quiet) {
        std::printf("[%zu/%zu] %s done in %s\n", finished, todo.size(), job.name.c_str(),
                    rl::format_duration(seconds).c_str());
        std::fflush(stdout);
      }
    } else if (failure.empty()) {
      // One line, as every rlft error: the job's own reason and where its whole log is.
      failure = str("experiment job '", job.name, "' failed (", describe_status(status),
                    "): ", failure_line(job.log_path), "; its log: ", job.log_path);
      if (!quiet && !running.empty()) {
        std::printf("%s failed; waiting for %zu running job(s)\n", job.name.c_str(),
                    running.size());
        std::fflush(stdout);
      }
    }
  }
  if (!failure.empty()) throw Error(failure);
}

MeanStd mean_std(const std::vector<double>& values) {
  MeanStd r;
  if (values.empty()) return r;
  for (double v : values) r.mean += v;
  r.mean /= double(values.size());
  if (values.size() < 2) return r;
  double ss = 0;
  for (double v : values) ss += (v - r.mean) * (v - r.mean);
  r.std = std::sqrt(ss / double(values.size() - 1));
  return r;
}

}  // namespace rlft::llm::exp
