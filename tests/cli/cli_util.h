// Runs the rlft binary (RLFT_CLI, set by CMake for test_cli) from the tests in tests/cli.
#pragma once

#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

namespace rlft::testing::cli {

struct Outcome {
  int status = -1;
  std::string out, err;
};

// A scratch directory of this test process (ctest runs several processes at once), emptied.
inline std::filesystem::path scratch_dir(const std::string& name) {
  const auto dir = std::filesystem::temp_directory_path() /
                   ("rlft_test_cli-" + std::to_string(::getpid())) / name;
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
  const auto dir =
      std::filesystem::temp_directory_path() / ("rlft_test_cli-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
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

}  // namespace rlft::testing::cli
