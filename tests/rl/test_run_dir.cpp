// Run directories (rl/run.h): where a run goes, and what a new run does to an earlier run of
// the same name — nothing until its first write, so a command that fails first keeps it.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "engine/fs.h"
#include "engine/json.h"
#include "rl/run.h"
#include "test_util.h"

namespace rlft::rl {
namespace {

using testing::error_of;

std::string scratch(const std::string& name) {
  const auto dir = std::filesystem::temp_directory_path() / "rlft_test_run_dir" / name;
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir.parent_path());
  return dir.string();
}

TEST(RunDir, AnEarlierRunsFilesGoOnlyAtTheNewRunsFirstWrite) {
  const std::string dir = scratch("fresh");
  fs::make_dirs(dir);
  fs::atomic_write_file(dir + "/metrics.jsonl", "{\"step\":1}\n");
  fs::atomic_write_file(dir + "/checkpoint.safetensors", "old weights");
  fs::atomic_write_file(dir + "/config.json", "{}\n");
  fs::atomic_write_file(dir + "/policy.safetensors", "old policy");
  fs::atomic_write_file(dir + "/return.svg", "<svg/>");
  fs::atomic_write_file(dir + "/notes.txt", "the user's own file");
  const RunDir run(dir, /*fresh=*/true);
  EXPECT_EQ(fs::read_file(dir + "/metrics.jsonl"), "{\"step\":1}\n")
      << "touched before the first write";
  EXPECT_EQ(fs::read_file(dir + "/checkpoint.safetensors"), "old weights");
  json::Value cfg = json::Value::object();
  cfg.set("lr", 0.5);
  run.write_config(cfg);
  EXPECT_FALSE(fs::exists(dir + "/metrics.jsonl"));
  EXPECT_FALSE(fs::exists(dir + "/checkpoint.safetensors"));
  EXPECT_FALSE(fs::exists(dir + "/policy.safetensors"));
  EXPECT_FALSE(fs::exists(dir + "/return.svg"));
  EXPECT_EQ(fs::read_file(dir + "/notes.txt"), "the user's own file");
  EXPECT_EQ(json::parse(fs::read_file(dir + "/config.json")).at("lr").as_double(), 0.5);

  // A resumed run keeps them.
  fs::atomic_write_file(dir + "/metrics.jsonl", "{\"step\":1}\n");
  fs::atomic_write_file(dir + "/checkpoint.safetensors", "weights");
  RunDir(dir, /*fresh=*/false).write_config(cfg);
  EXPECT_EQ(fs::read_file(dir + "/metrics.jsonl"), "{\"step\":1}\n");
  EXPECT_EQ(fs::read_file(dir + "/checkpoint.safetensors"), "weights");
}

// Every file an earlier run of any algorithm writes goes at a new run's first write: the
// critic and its previous copy (PPO-RLHF) and the test evaluation (lm eval) as well.
TEST(RunDir, AFreshRunRemovesTheCriticsAndTheTestEvaluationToo) {
  const std::string dir = scratch("fresh_all");
  fs::make_dirs(dir);
  for (const char* f : {"critic.safetensors", "critic.previous.safetensors", "eval_test.json"})
    fs::atomic_write_file(dir + "/" + f, "old");
  RunDir(dir, /*fresh=*/true).write_config(json::Value::object());
  for (const char* f : {"critic.safetensors", "critic.previous.safetensors", "eval_test.json"})
    EXPECT_FALSE(fs::exists(dir + "/" + f)) << f;
}

TEST(RunDir, ResumingARunThatDoesNotExistCreatesNothing) {
  const std::string dir = scratch("missing");
  EXPECT_EQ(error_of([&] { RunDir(dir, false); }),
            dir + ": nothing to resume (no such run directory)");
  EXPECT_FALSE(fs::exists(dir));
}

TEST(RunDir, ADirectoryWhereARunFileGoesIsNamed) {
  const std::string dir = scratch("in_the_way");
  std::filesystem::create_directories(dir + "/checkpoint.safetensors/sub");
  const RunDir run(dir, true);
  EXPECT_EQ(error_of([&] { run.write_config(json::Value::object()); }),
            "cannot remove '" + dir + "/checkpoint.safetensors': it is a directory, not a file");
  EXPECT_FALSE(fs::exists(dir + "/config.json"));
}

TEST(RunDir, AResumeKeepsTheSettingsTheRunStartedWith) {
  const std::string kHint =
      " (an option left out takes the run's recorded value; with a --preset the command line "
      "states the whole run: see its config.json)";
  const std::string dir = scratch("resume");
  json::Value started = json::Value::object();
  started.set("lr", 0.5);
  started.set("steps", int64_t(10));
  started.set("name", "a");
  started.set("quiet", false);
  RunDir(dir, true).write_config(started);
  const RunDir run(dir, false);
  json::Value now = started;
  now.set("steps", int64_t(20));  // free: the caller says so
  now.set("name", "b");           // free: a copied or renamed run
  now.set("quiet", true);         // free: how loudly
  EXPECT_NO_THROW(run.check_resumable(now, {"steps"}));
  EXPECT_EQ(
      error_of([&] { run.check_resumable(now); }),
      "--resume: setting 'steps' is 20 but the run at " + dir + " was started with 10" + kHint);
  now.set("lr", 0.25);
  EXPECT_EQ(
      error_of([&] { run.check_resumable(now, {"steps"}); }),
      "--resume: setting 'lr' is 0.25 but the run at " + dir + " was started with 0.5" + kHint);
  json::Value extra = started;
  extra.set("activation", "relu");
  EXPECT_EQ(error_of([&] { run.check_resumable(extra); }),
            "--resume: setting 'activation' is \"relu\" but the run at " + dir +
                " was started with (none)" + kHint);
  // A value of any length is shown in at most 120 characters (a 20 MB string made a 20 MB
  // error line).
  json::Value long_value = started;
  long_value.set("lr", std::string(1 << 20, 'x'));
  EXPECT_EQ(error_of([&] { run.check_resumable(long_value); }),
            "--resume: setting 'lr' is \"" + std::string(116, 'x') + "... but the run at " + dir +
                " was started with 0.5" + kHint);
}

TEST(RunDir, MetricsKeptThroughAStepAndBadLinesNamed) {
  const std::string dir = scratch("metrics");
  const RunDir run(dir, true);
  run.write_config(json::Value::object());
  for (int64_t s : {1, 2, 3}) {
    json::Value m = json::Value::object();
    m.set("step", s);
    run.log(m);
  }
  EXPECT_EQ(run.keep_metrics_through(2).size(), 2u);
  EXPECT_EQ(fs::read_file(dir + "/metrics.jsonl"), "{\"step\":1}\n{\"step\":2}\n");
  fs::atomic_write_file(dir + "/metrics.jsonl", "{\"step\":1}\n{\"step\":\"x\"}\n");
  EXPECT_EQ(error_of([&] { (void)run.keep_metrics_through(2); }),
            dir + "/metrics.jsonl: entry 2 has no integer \"step\" (it is \"x\")");
  fs::atomic_write_file(dir + "/metrics.jsonl", "[1]\n");
  EXPECT_EQ(error_of([&] { (void)run.keep_metrics_through(2); }),
            dir + "/metrics.jsonl: entry 1 is not an object");
  // The caller's use of each kept line comes before the file is rewritten: an entry it cannot
  // read is named with the file, and the lines past the step are still there.
  const std::string text =
      "{\"step\":1,\"loss\":null}\n{\"step\":2,\"loss\":\"x\"}\n{\"step\":3}\n";
  fs::atomic_write_file(dir + "/metrics.jsonl", text);
  std::vector<double> losses;
  const auto use = [&](const json::Value& line) { losses.push_back(metric_number(line, "loss")); };
  EXPECT_EQ(error_of([&] { (void)run.keep_metrics_through(2, "step", use); }),
            dir + "/metrics.jsonl: entry 2: 'loss' must be a number, got \"x\"");
  EXPECT_EQ(fs::read_file(dir + "/metrics.jsonl"), text);
  ASSERT_EQ(losses.size(), 1u);
  EXPECT_TRUE(std::isnan(losses[0]));  // null: a non-finite value as rlft writes it
}

TEST(RunDir, ALastLineCutShortByACrashIsDroppedOnResume) {
  const std::string dir = scratch("cut");
  const RunDir run(dir, true);
  run.sync_log();  // nothing logged yet: nothing to flush
  run.write_config(json::Value::object());
  const std::string metrics = dir + "/metrics.jsonl";
  const std::string two = "{\"step\":1}\n{\"step\":2}\n";
  // The append of step 3 cut by a crash: dropped with the lines past the checkpoint.
  fs::atomic_write_file(metrics, two + "{\"step\":3,\"lo");
  EXPECT_EQ(run.keep_metrics_through(5).size(), 2u);
  EXPECT_EQ(fs::read_file(metrics), two);
  fs::atomic_write_file(metrics, "{\"st");  // the only line
  EXPECT_EQ(run.keep_metrics_through(5).size(), 0u);
  EXPECT_EQ(fs::read_file(metrics), "");
  // A whole line that lost only its newline is a line like any other.
  fs::atomic_write_file(metrics, two + "{\"step\":3}");
  EXPECT_EQ(run.keep_metrics_through(5).size(), 3u);
  EXPECT_EQ(fs::read_file(metrics), two + "{\"step\":3}\n");
  // A line that is not JSON before the last one is no crash's doing: an error, file untouched.
  const std::string bad = "{\"step\":1}\n{\"st\n{\"step\":2}\n";
  fs::atomic_write_file(metrics, bad);
  const std::string error = error_of([&] { (void)run.keep_metrics_through(5); });
  EXPECT_EQ(error.rfind(metrics + ":2:", 0), 0u) << error;
  EXPECT_EQ(fs::read_file(metrics), bad);
  fs::forget_flushes();
  run.log(json::parse("{\"step\":3}"));
  EXPECT_EQ(fs::synced_size(metrics), -1);  // appended, not flushed
  run.sync_log();
  EXPECT_EQ(fs::read_file(metrics), bad + "{\"step\":3}\n");
  EXPECT_EQ(fs::synced_size(metrics), int64_t(bad.size() + 11));  // the whole file flushed
}

// The one reader every consumer of metrics.jsonl goes through (resume, `rlft plot`, the
// experiments' tables): a running trainer may be appending the last line as it reads.
TEST(RunDir, ReadMetricsLeavesOutOnlyALastLineCutShort) {
  const std::string dir = scratch("read");
  fs::make_dirs(dir);
  const std::string metrics = dir + "/metrics.jsonl";
  const std::string two = "{\"step\":1}\n{\"step\":2}\n";
  bool cut = false;
  fs::atomic_write_file(metrics, two + "{\"step\":3,\"lo");
  std::vector<json::Value> lines = read_metrics(metrics, &cut);
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[1].at("step").as_int(), 2);
  EXPECT_TRUE(cut);
  EXPECT_EQ(fs::read_file(metrics), two + "{\"step\":3,\"lo") << "a reader writes nothing";
  fs::atomic_write_file(metrics, two + "{\"step\":3}");  // whole, only its newline missing
  EXPECT_EQ(read_metrics(metrics, &cut).size(), 3u);
  EXPECT_FALSE(cut);
  fs::atomic_write_file(metrics, two);
  EXPECT_EQ(read_metrics(metrics, &cut).size(), 2u);
  EXPECT_FALSE(cut);
  fs::atomic_write_file(metrics, "");
  EXPECT_EQ(read_metrics(metrics, &cut).size(), 0u);
  EXPECT_FALSE(cut);
  fs::atomic_write_file(metrics, "{\"st");  // the only line, cut
  EXPECT_EQ(read_metrics(metrics, &cut).size(), 0u);
  EXPECT_TRUE(cut);
  // A bad line before the last one, or a bad last line that has its newline, is an error
  // naming the file and the line.
  fs::atomic_write_file(metrics, "{\"step\":1}\n{\"st\n{\"step\":2}");
  std::string error = error_of([&] { (void)read_metrics(metrics); });
  EXPECT_EQ(error.rfind(metrics + ":2:", 0), 0u) << error;
  fs::atomic_write_file(metrics, two + "{\"st\n");
  error = error_of([&] { (void)read_metrics(metrics); });
  EXPECT_EQ(error.rfind(metrics + ":3:", 0), 0u) << error;
  EXPECT_EQ(error_of([&] { (void)read_metrics(dir + "/nope.jsonl"); }),
            "metrics file '" + dir + "/nope.jsonl' does not exist");
}

TEST(RunDir, ARunIsNeverItsOwnInputAndStaleTemporaryFilesGo) {
  const std::string dir = scratch("own");
  fs::make_dirs(dir);
  EXPECT_EQ(error_of([&] {
              check_not_the_run(dir, {{"--init", dir + "/."}});
            }),
            "--init " + dir + "/. is the run this command would write (" + dir +
                "): a new run over its own input would destroy it; give it another --name");
  EXPECT_NO_THROW(check_not_the_run(dir, {{"--init", ""}, {"--reward-model", dir + "-other"}}));
  EXPECT_NO_THROW(check_not_the_run(dir + "-new", {{"--init", dir}}));
  // A write killed midway left its temporary file: the next run of this directory removes it.
  fs::atomic_write_file(dir + "/.checkpoint.safetensors.tmp.123.0.45", "partial");
  fs::atomic_write_file(dir + "/.hidden", "the user's");
  RunDir(dir, false);
  EXPECT_FALSE(fs::exists(dir + "/.checkpoint.safetensors.tmp.123.0.45"));
  EXPECT_TRUE(fs::exists(dir + "/.hidden"));
}

TEST(RunDir, RunPathsStayUnderTheRunsDirectory) {
  EXPECT_EQ(run_path("runs", "ppo-1"), "runs/ppo-1");
  EXPECT_EQ(error_of([] { (void)run_path("", "x"); }),
            "the runs directory (--runs-dir, --out-dir) is an empty path");
  EXPECT_EQ(error_of([] { (void)run_path("runs", ""); }), "the run name is empty");
  for (const char* bad : {".", "..", "a/b", "/tmp/abs", "--quiet"})
    EXPECT_NE(
        error_of([&] { (void)run_path("runs", bad); }).find("a run name is one path component"),
        std::string::npos)
        << bad;
  EXPECT_EQ(error_of([] { (void)run_path("runs", "a\nb"); }),
            "run name: a control character in it");
  EXPECT_EQ(error_of([] { (void)run_path("runs", " "); }),
            "run name ' ': it starts or ends with a space");
}

// DEL (0x7f) is a control character like those below 0x20: no run name holds it.
TEST(RunDir, ARunNameWithTheDeleteCharacterIsRefused) {
  EXPECT_EQ(error_of([] {
              (void)run_path("runs",
                             "a\x7f"
                             "b");
            }),
            "run name: a control character in it");
  EXPECT_EQ(run_path("runs", "a~b"), "runs/a~b");  // 0x7e, the last printable one
}

// Where, how far and how loudly a run goes may change on a resume, --log-every among them;
// the run's other settings may not.
TEST(RunDir, AResumeMayChangeHowOftenItLogs) {
  const std::string dir = scratch("resume_log_every");
  json::Value started = json::Value::object();
  started.set("lr", 0.5);
  started.set("log_every", int64_t(10));
  started.set("checkpoint_every", int64_t(100));
  started.set("stop_after", int64_t(0));
  RunDir(dir, true).write_config(started);
  const RunDir run(dir, false);
  json::Value now = started;
  now.set("log_every", int64_t(1));
  now.set("checkpoint_every", int64_t(5));
  now.set("stop_after", int64_t(7));
  EXPECT_NO_THROW(run.check_resumable(now));
  now.set("lr", 0.25);
  EXPECT_NE(error_of([&] { run.check_resumable(now); }).find("setting 'lr' is 0.25"),
            std::string::npos);
}

// A checkpoint's own record of its settings against the run's: a key both hold and that may not
// change must be equal; the always-free keys, the caller's free ones and a key only one side
// holds are not compared.
TEST(RunDir, ACheckpointsRecordedSettingsMustMatchTheRunsOwn) {
  json::Value recorded = json::Value::object();
  recorded.set("lr", 0.1);
  recorded.set("steps", int64_t(10));
  recorded.set("log_every", int64_t(10));
  recorded.set("old_key", "x");
  json::Value now = recorded;
  now.set("steps", int64_t(20));     // the caller's free key
  now.set("log_every", int64_t(2));  // always free
  now.set("new_key", int64_t(3));    // the checkpoint predates it
  EXPECT_NO_THROW(check_checkpoint_settings(recorded, now, {"steps"}, "run/ck.safetensors"));
  EXPECT_EQ(error_of([&] { check_checkpoint_settings(recorded, now, {}, "run/ck.safetensors"); }),
            "--resume: setting 'steps' is 20 but the checkpoint run/ck.safetensors was trained "
            "with 10 (the run's config.json no longer says what the checkpoint records: edited?)");
  now.set("lr", 0.2);
  EXPECT_EQ(
      error_of([&] { check_checkpoint_settings(recorded, now, {"steps"}, "run/ck.safetensors"); }),
      "--resume: setting 'lr' is 0.2 but the checkpoint run/ck.safetensors was trained with 0.1 "
      "(the run's config.json no longer says what the checkpoint records: edited?)");
}

}  // namespace
}  // namespace rlft::rl

// A count is in [1, max], both ends included.
TEST(RunFormat, CountsAreFromOneToTheirBound) {
  using rlft::rl::check_count;
  EXPECT_NO_THROW(check_count("lm prefs: ", "--pairs", 1, 8));
  EXPECT_NO_THROW(check_count("lm prefs: ", "--pairs", 8, 8));
  EXPECT_EQ(rlft::testing::error_of([] { check_count("lm prefs: ", "--pairs", 0, 8); }),
            "lm prefs: --pairs must be in [1, 8], got 0");
  EXPECT_THROW(check_count("lm prefs: ", "--pairs", 9, 8), rlft::Error);
  EXPECT_THROW(check_count("lm prefs: ", "--pairs", -1, 8), rlft::Error);
}

// A number's lower bound is excluded when open_lo says so, included otherwise; the upper bound
// is always included, and a non-finite number is refused.
TEST(RunFormat, NumbersAreCheckedAgainstAnOpenOrClosedLowerBound) {
  using rlft::rl::check_number;
  EXPECT_EQ(rlft::testing::error_of(
                [] { check_number("ppo: ", "--lr", 0, 0, true, 1, "a finite number > 0"); }),
            "ppo: --lr must be a finite number > 0, got 0");
  EXPECT_NO_THROW(check_number("ppo: ", "--lr", 1e-300, 0, true, 1, "> 0"));
  EXPECT_NO_THROW(check_number("ppo: ", "--gamma", 0, 0, false, 1, "in [0, 1]"));
  EXPECT_NO_THROW(check_number("ppo: ", "--gamma", 1, 0, false, 1, "in [0, 1]"));
  EXPECT_THROW(check_number("ppo: ", "--gamma", -1e-300, 0, false, 1, "in [0, 1]"), rlft::Error);
  EXPECT_THROW(check_number("ppo: ", "--gamma", 1.0000001, 0, false, 1, "in [0, 1]"), rlft::Error);
  EXPECT_THROW(check_number("ppo: ", "--gamma", std::nan(""), 0, false, 1, "in [0, 1]"),
               rlft::Error);
}

// --checkpoint-every and --stop-after are both >= 0 (0 has a meaning for each).
TEST(RunFormat, CheckpointOptionsAreNotNegative) {
  using rlft::rl::check_checkpoint_options;
  EXPECT_NO_THROW(check_checkpoint_options("ppo: ", 0, 0));
  EXPECT_EQ(rlft::testing::error_of([] { check_checkpoint_options("ppo: ", 0, -1); }),
            "ppo: --stop-after must be >= 0 (0: run to the end), got -1");
  EXPECT_EQ(rlft::testing::error_of([] { check_checkpoint_options("ppo: ", -1, 0); }),
            "ppo: --checkpoint-every must be >= 0 (0: only at --stop-after and the end), got -1");
}

TEST(RunFormat, PrintableHasNoNegativeZero) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f", rlft::rl::printable(-0.004, 2));
  EXPECT_STREQ(buf, "0.00");
  std::snprintf(buf, sizeof buf, "%.2f", rlft::rl::printable(-0.006, 2));
  EXPECT_STREQ(buf, "-0.01");
  std::snprintf(buf, sizeof buf, "%.4f", rlft::rl::printable(-0.00004, 4));
  EXPECT_STREQ(buf, "0.0000");
  EXPECT_EQ(rlft::rl::printable(1.5, 0), 1.5);
}

// Durations round to whole seconds and read as s, m ss or h mm: 9000 s is 2h30m.
TEST(RunFormat, DurationsInSecondsMinutesAndHours) {
  using rlft::rl::format_duration;
  EXPECT_EQ(format_duration(0), "0s");
  EXPECT_EQ(format_duration(59.4), "59s");
  EXPECT_EQ(format_duration(59.6), "1m00s");
  EXPECT_EQ(format_duration(61), "1m01s");
  EXPECT_EQ(format_duration(3599), "59m59s");
  EXPECT_EQ(format_duration(3600), "1h00m");
  EXPECT_EQ(format_duration(9000), "2h30m");
  EXPECT_EQ(format_duration(7199), "1h59m");
  EXPECT_EQ(format_duration(-1), "?");
  EXPECT_EQ(format_duration(std::nan("")), "?");
}

// A size list is positive integers only: 0 is refused like any other non-size.
TEST(RunFormat, SizeListsArePositiveIntegers) {
  using rlft::rl::parse_sizes;
  EXPECT_EQ(parse_sizes("--hidden", "64,1,32"), (std::vector<int64_t>{64, 1, 32}));
  for (const char* bad : {"0", "64,0", "0,64", "-1", "64,", " 64", "+64", "6x"})
    EXPECT_THROW(parse_sizes("--hidden", bad), rlft::Error) << bad;
}

// A checkpoint state's integer field is read within [lo, hi], both ends included; its finite
// fields at or above lo.
TEST(RunFormat, StateIntegersAreReadWithinBothBounds) {
  const rlft::rl::StateReader r(R"({"n": 5, "x": 0.5})", "ck.safetensors", "state");
  EXPECT_EQ(r.integer("n", 0, 5), 5);
  EXPECT_EQ(r.integer("n", 5, 9), 5);
  EXPECT_THROW(r.integer("n", 0, 4), rlft::Error);
  EXPECT_THROW(r.integer("n", 6, 9), rlft::Error);
  EXPECT_EQ(r.finite("x", 0.5), 0.5);
  EXPECT_THROW(r.finite("x", 0.6), rlft::Error);
}
