// The experiment runner (rl/llm/experiments/runner.h): jobs run as child processes at most
// `parallel` at once, write their logs, leave done markers that make a second call skip them,
// and a failing job is an error that names it and quotes its log.
#include <gtest/gtest.h>

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
    jobs.push_back(
        shell_job(dir, "job" + std::to_string(i),
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
  // A job whose command changed since it finished runs again; the others are still skipped.
  jobs[2].args[1] += " # --steps 3";
  EXPECT_FALSE(finished_as_is(jobs[2]));
  EXPECT_TRUE(finished_as_is(jobs[1]));
  run_jobs(jobs, 2, true, "/bin/sh");
  EXPECT_EQ(fs::read_file(trace), fs::read_file(trace).substr(0, 20) + "job2\n");
  EXPECT_TRUE(finished_as_is(jobs[2]));
  // An older marker (plain text) is not trusted: the job runs again.
  fs::atomic_write_file(jobs[0].done_path, "finished in 1 s\n");
  EXPECT_FALSE(finished_as_is(jobs[0]));
}

// Two jobs that each wait for the other's marker file: they can only both finish if the
// runner starts them together (each gives up after 10 s and fails, so a serial runner fails
// the test instead of hanging it). No timing threshold: a loaded machine cannot flip it.
TEST(ExperimentRunner, RunsInParallel) {
  const std::string dir = testing::temp_dir("runner-parallel");
  // Job `me` marks its start, then polls (10 ms apart, at most `tries` times) for `other`'s mark.
  auto waits_for = [](const std::string& d, const std::string& me, const std::string& other,
                      int tries) {
    return shell_job(d, me,
                     "touch " + d + "/" + me + ".started; i=0; while [ ! -f " + d + "/" + other +
                         ".started ]; do i=$((i+1)); [ $i -gt " + std::to_string(tries) +
                         " ] && exit 1; sleep 0.01; done");
  };
  run_jobs({waits_for(dir, "a", "b", 1000), waits_for(dir, "b", "a", 1000)}, 2, true, "/bin/sh");
  // With parallel 1 the same pair cannot finish: the first job waits in vain and fails.
  const std::string serial = dir + "/serial";
  fs::make_dirs(serial);
  const std::string msg = testing::error_of([&] {
    run_jobs({waits_for(serial, "a", "b", 20), waits_for(serial, "b", "a", 20)}, 1, true,
             "/bin/sh");
  });
  EXPECT_NE(msg.find("'a' failed"), std::string::npos) << msg;
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
  EXPECT_EQ(msg.find('\n'), std::string::npos) << "not one line: " << msg;
  EXPECT_EQ(
      msg, "experiment job 'bad' failed (exit status 3): the reason; its log: " + jobs[1].log_path);
  EXPECT_TRUE(fs::exists(jobs[0].done_path));
  EXPECT_FALSE(fs::exists(jobs[1].done_path));
  EXPECT_FALSE(fs::exists(jobs[2].done_path)) << "no job starts after a failure";
}

// An rlft job's reason is its "rlft: error:" line, even with other output after it; a job
// killed by a signal says which, with its last line.
TEST(ExperimentRunner, FailureIsOneLineWithTheJobsError) {
  const std::string dir = testing::temp_dir("runner-fail-line");
  const std::string msg = testing::error_of([&] {
    run_jobs({shell_job(dir, "dpo-beta0.05",
                        "echo step 1; echo 'rlft: error: --beta: nan' >&2; echo bye; exit 2")},
             1, true, "/bin/sh");
  });
  EXPECT_EQ(msg,
            "experiment job 'dpo-beta0.05' failed (exit status 2): rlft: error: --beta: "
            "nan; its log: " +
                dir + "/logs/dpo-beta0.05.log");
  const std::string killed = testing::error_of([&] {
    run_jobs({shell_job(dir, "k", "printf 'step 1\\rstep 2\\n'; kill -SEGV $$")}, 1, true,
             "/bin/sh");
  });
  EXPECT_NE(killed.find("'k' failed (signal 11"), std::string::npos) << killed;
  EXPECT_NE(killed.find("): step 2; its log: "), std::string::npos) << killed;
  EXPECT_EQ(killed.find('\n'), std::string::npos) << killed;
  const std::string silent = testing::error_of(
      [&] { run_jobs({shell_job(dir, "silent", "exit 4")}, 1, true, "/bin/sh"); });
  EXPECT_NE(silent.find("(exit status 4): (empty log); its log: "), std::string::npos) << silent;
}

TEST(ExperimentRunner, BadArguments) {
  const std::string dir = testing::temp_dir("runner-bad");
  std::vector<Job> twice = {shell_job(dir, "a", "true"), shell_job(dir, "a", "true")};
  EXPECT_NE(testing::error_of([&] {
              run_jobs(twice, 1, true, "/bin/sh");
            }).find("two experiment jobs are named 'a'"),
            std::string::npos);
  EXPECT_NE(testing::error_of([&] {
              run_jobs({}, 0, true, "/bin/sh");
            }).find("--parallel must be at least 1"),
            std::string::npos);
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
