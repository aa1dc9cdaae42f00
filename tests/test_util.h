// Helpers shared by the test binaries.
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <string>
#include <system_error>
#include <vector>

#include "engine/cuda.h"
#include "engine/error.h"

namespace rlft::testing {

// The scratch directories a test process made (temp_dir, tests/cli's scratch_dir), removed
// when the process ends if none of its tests failed: every ctest run used to leave ~90 of them
// (~200 MB) behind. A failed test's directories stay for inspection, and so do all of them with
// RLFT_KEEP_TEST_TMP=1 (a crash runs no destructor, so its directories stay too).
class ScratchDirs {
 public:
  static void add(const std::filesystem::path& dir) {
    auto& dirs = get().dirs_;
    for (const auto& d : dirs)
      if (d == dir) return;
    dirs.push_back(dir);
  }

 private:
  static ScratchDirs& get() {
    static ScratchDirs s;  // built at the first add(), after GoogleTest's UnitTest: ends first
    return s;
  }
  ~ScratchDirs() {
    const char* keep = std::getenv("RLFT_KEEP_TEST_TMP");
    if ((keep != nullptr && *keep != '\0' && std::string(keep) != "0") ||
        ::testing::UnitTest::GetInstance()->failed_test_count() > 0)
      return;
    std::error_code ec;  // best effort: a directory that cannot go stays
    for (const auto& d : dirs_) std::filesystem::remove_all(d, ec);
  }
  std::vector<std::filesystem::path> dirs_;
};

// "" when a GPU answers, else why not ("no GPU: <the runtime's reason>"), for GTEST_SKIP.
inline std::string no_gpu_reason() {
  std::string reason;
  return cuda::device_count(&reason) > 0 ? std::string() : "no GPU: " + reason;
}
// Skips the calling test (GoogleTest must be included) when no GPU answers, with the reason.
#define RLFT_SKIP_WITHOUT_GPU()                                        \
  do {                                                                 \
    const std::string rlft_no_gpu_ = ::rlft::testing::no_gpu_reason(); \
    if (!rlft_no_gpu_.empty()) GTEST_SKIP() << rlft_no_gpu_;           \
  } while (0)

// The message of the rlft::Error that fn() throws, or "<no error>".
template <typename Fn>
std::string error_of(Fn&& fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.what();
  }
  return "<no error>";
}

// Moves to `dir` for its lifetime, then back to the working directory it found.
class WorkingDirectory {
 public:
  explicit WorkingDirectory(const std::filesystem::path& dir)
      : back_(std::filesystem::current_path()) {
    std::filesystem::current_path(dir);
  }
  ~WorkingDirectory() {
    std::error_code ec;  // a destructor must not throw; a failed return fails the test
    std::filesystem::current_path(back_, ec);
    EXPECT_FALSE(ec) << "cannot return to " << back_ << ": " << ec.message();
  }
  WorkingDirectory(const WorkingDirectory&) = delete;
  WorkingDirectory& operator=(const WorkingDirectory&) = delete;

 private:
  std::filesystem::path back_;
};

// Runs fn() in `dir`, then goes back to the working directory it found, whatever fn does.
template <typename Fn>
void in_directory(const std::filesystem::path& dir, Fn&& fn) {
  const WorkingDirectory here(dir);
  fn();
}

// Every regular file of a directory with its bytes, to check that a refused command left a run
// as it was.
inline std::map<std::string, std::string> files_of(const std::string& dir) {
  std::map<std::string, std::string> out;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    if (!e.is_regular_file()) continue;
    std::ifstream in(e.path(), std::ios::binary);
    out[e.path().filename().string()] =
        std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  return out;
}

#ifdef RLFT_BINARY_DIR
// A fresh directory <build>/test_tmp/<name>-<pid>. The process id keeps apart the test
// processes that ctest runs in parallel (each test is its own process, and suite fixtures
// that train a model once per process would otherwise delete each other's files). Removed at
// the process's end unless a test failed (ScratchDirs).
inline std::string temp_dir(const std::string& name) {
  const std::string d = std::string(RLFT_BINARY_DIR) + "/test_tmp/" + name + "-" + std::to_string(::getpid());
  std::filesystem::remove_all(d);
  std::filesystem::create_directories(d);
  ScratchDirs::add(d);
  return d;
}
#endif

}  // namespace rlft::testing
