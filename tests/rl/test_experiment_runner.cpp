// The experiment runner (rl/llm/experiments/runner.h): jobs run as child processes at most
// `parallel` at once, write their logs, leave done markers that make a second call skip them,
// and a failing job is an error that names it and quotes its log.
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <filesystem>

#include "engine/fs.h"
#include "rl/llm/experiments/runner.h"
#include "tests/test_util.h"

namespace rlft::llm::exp {
namespace {

Job shell_job(const std::string& dir, const std::string& name, const std::string& script) {
  return {name, {"-c", script}, dir + "/logs/" + name + ".log", dir + "/logs/" + name + ".done"};
}

TEST(ExperimentRunner, RunsJobsWritesLogsAndSkipsFinishedOnes) {
  const std::string dir = testing::temp_dir("runner-basic");
  // Each job appends its name to a shared file: the second call must add nothing.
  const std::string trace = dir + "/trace.txt";
  std::vector<Job> jobs;
  for (int i = 0; i < 4; ++i)
    jobs.push_back(shell_job(dir, "job" + std::to_string(i),
                             "echo out$OMP_NUM_THREADS; echo job" + std::to_string(i) + " >> " + trace));
  run_jobs(jobs, 2, /*quiet=*/true, "/bin/sh");
  for (const Job& j : jobs) {
    EXPECT_TRUE(fs::exists(j.done_path)) << j.name;
    // The child saw OMP_NUM_THREADS=1 unless the test's own environment set it.
    const char* omp = std::getenv("OMP_NUM_THREADS");
    EXPECT_EQ(fs::read_file(j.log_path), "out" + std::string(omp ? omp : "1") + "\n");
  }
  EXPECT_EQ(fs::read_file(trace).size(), 4u * 5u);  // "jobN\n" four times
  run_jobs(jobs, 2, true, "/bin/sh");
  EXPECT_EQ(fs::read_file(trace).size(), 4u * 5u);
}

TEST(ExperimentRunner, RunsInParallel) {
  const std::string dir = testing::temp_dir("runner-parallel");
  std::vector<Job> jobs;
  for (int i = 0; i < 4; ++i) jobs.push_back(shell_job(dir, "sleep" + std::to_string(i), "sleep 0.4"));
  const auto t0 = std::chrono::steady_clock::now();
  run_jobs(jobs, 4, true, "/bin/sh");
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_LT(s, 1.2) << "4 jobs of 0.4 s with parallel 4 took " << s << " s";
}

TEST(ExperimentRunner, FailureNamesJobStatusAndLog) {
  const std::string dir = testing::temp_dir("runner-fail");
  std::vector<Job> jobs = {shell_job(dir, "good", "true"),
                           shell_job(dir, "bad", "echo first line; echo the reason >&2; exit 3"),
                           shell_job(dir, "later", "true")};
  const std::string msg = testing::error_of([&] { run_jobs(jobs, 1, true, "/bin/sh"); });
  EXPECT_NE(msg.find("'bad'"), std::string::npos) << msg;
  EXPECT_NE(msg.find("exit status 3"), std::string::npos) << msg;
  EXPECT_NE(msg.find("bad.log"), std::string::npos) << msg;
  EXPECT_NE(msg.find("the reason"), std::string::npos) << msg;
  EXPECT_TRUE(fs::exists(jobs[0].done_path));
  EXPECT_FALSE(fs::exists(jobs[1].done_path));
  EXPECT_FALSE(fs::exists(jobs[2].done_path)) << "no job starts after a failure";
}

TEST(ExperimentRunner, BadArguments) {
  const std::string dir = testing::temp_dir("runner-bad");
  std::vector<Job> twice = {shell_job(dir, "a", "true"), shell_job(dir, "a", "true")};
  EXPECT_NE(testing::error_of([&] { run_jobs(twice, 1, true, "/bin/sh"); }).find("two experiment jobs are named 'a'"),
            std::string::npos);
  EXPECT_NE(testing::error_of([&] { run_jobs({}, 0, true, "/bin/sh"); }).find("--parallel must be at least 1"),
            std::string::npos);
  EXPECT_NE(testing::error_of([&] { read_metrics(dir + "/nope.jsonl"); }).find("nope.jsonl"), std::string::npos);
}

TEST(ExperimentRunner, MeanStd) {
  const MeanStd m = mean_std({1, 2, 3, 4});
  EXPECT_DOUBLE_EQ(m.mean, 2.5);
  EXPECT_NEAR(m.std, std::sqrt(5.0 / 3.0), 1e-12);  // sample std: sum of squares 5 over n-1 = 3
  EXPECT_EQ(mean_std({7}).std, 0.0);
  EXPECT_EQ(mean_std({}).mean, 0.0);
}

}  // namespace
}  // namespace rlft::llm::exp
