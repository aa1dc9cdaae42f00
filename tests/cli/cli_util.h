// Runs the rlft binary (RLFT_CLI, set by CMake for test_cli) from the tests in tests/cli.
#pragma once

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "engine/json.h"
#include "tests/test_util.h"

namespace rlft::testing::cli {

struct Outcome {
  int status = -1;
  std::string out, err;
};

// This test process's own directory under the system's temporary one (ctest runs several
// processes at once), made if missing and removed at the process's end unless a test failed
// (ScratchDirs, tests/test_util.h).
inline std::filesystem::path process_dir() {
  const auto dir =
      std::filesystem::temp_directory_path() / ("rlft_test_cli-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  ScratchDirs::add(dir);
  return dir;
}

// A scratch directory of this test process, emptied.
inline std::filesystem::path scratch_dir(const std::string& name) {
  const auto dir = process_dir() / name;
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

// The whole file, or "" when there is none.
inline std::string slurp(const std::filesystem::path& p) {
  std::ifstream f(p, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// `rlft <args>` through the shell (quote arguments yourself): exit status, stdout, stderr.
inline Outcome run(const std::string& args) {
  const auto dir = process_dir();
  const std::string out = (dir / "out.txt").string(), err = (dir / "err.txt").string();
  const std::string cmd = std::string(RLFT_CLI) + " " + args + " >" + out + " 2>" + err;
  const int raw = std::system(cmd.c_str());
  Outcome o;
  o.status = WIFEXITED(raw) ? WEXITSTATUS(raw) : -1;
  o.out = slurp(out);
  o.err = slurp(err);
  return o;
}

inline int lines(const std::string& s) {
  int n = 0;
  for (char c : s) n += c == '\n';
  return n;
}

// `rlft <args>` fails as every bad input must: exit status 2 and one line on stderr,
// "rlft: error: …", that contains `expect`.
inline void expect_error(const std::string& args, const std::string& expect) {
  const Outcome o = run(args);
  EXPECT_EQ(o.status, 2) << args << "\nstderr: " << o.err << o.out;
  EXPECT_EQ(lines(o.err), 1) << args << "\nstderr: " << o.err;
  EXPECT_EQ(o.err.rfind("rlft: error: ", 0), 0u) << args << "\nstderr: " << o.err;
  EXPECT_NE(o.err.find(expect), std::string::npos)
      << args << "\nexpected: " << expect << "\nstderr: " << o.err;
}

// Every file of a run directory and its bytes, to compare before and after a failed command.
inline std::map<std::string, std::string> snapshot(const std::filesystem::path& dir) {
  std::map<std::string, std::string> out;
  for (const auto& e : std::filesystem::directory_iterator(dir))
    out[e.path().filename().string()] = slurp(e.path());
  return out;
}

// `rlft lm sft` of the tiny reviews model (nano, 1 layer, C 32, as tests/rl/tiny_lm_runs.h) on
// a 200-example task, batch `batch`, an evaluation of 4 examples without generation, quiet.
// The caller adds --steps, --out-dir, --name and what else its run needs.
inline std::string tiny_sft_args(int batch) {
  return "lm sft --task reviews --model nano --n-layer 1 --n-embd 32 --batch " +
         std::to_string(batch) +
         " --train-size 200 --eval-size 4 --eval-examples 4 --eval-generate 0 --quiet";
}

// Preference pairs as JSONL, one a line: on the prompt "review: the plot was", each response of
// `chosen` over " dull.".
inline std::string plot_pairs(const std::vector<std::string>& chosen) {
  std::string out;
  for (const std::string& w : chosen)
    out +=
        R"({"prompt":"review: the plot was","chosen":")" + w + R"(","rejected":" dull."})" + "\n";
  return out;
}

// Base of a suite whose tests share what its SetUpTestSuite makes once in the scratch directory
// *dir_ (set there, from scratch_dir). `Suite` is the derived suite, so that each suite has a
// directory of its own.
template <typename Suite>
class ScratchSuite : public ::testing::Test {
 protected:
  static void TearDownTestSuite() {
    delete dir_;
    dir_ = nullptr;
  }
  // The path of `name` in the suite's directory.
  static std::string path(const std::string& name) { return (*dir_ / name).string(); }
  // Writes `text`, byte for byte, to `name` in the suite's directory.
  static void write(const std::string& name, const std::string& text) {
    std::ofstream(*dir_ / name, std::ios::binary) << text;
  }
  static inline std::filesystem::path* dir_ = nullptr;
};

// A run's config.json without the settings named in `drop` (those a resume may change).
inline json::Value recorded_settings(const std::filesystem::path& run_dir,
                                     const std::vector<std::string>& drop) {
  const json::Value all = json::parse(slurp(run_dir / "config.json"));
  json::Value kept = json::Value::object();
  for (const auto& [k, v] : all.as_object())
    if (std::find(drop.begin(), drop.end(), k) == drop.end()) kept.set(k, v);
  return kept;
}

}  // namespace rlft::testing::cli
