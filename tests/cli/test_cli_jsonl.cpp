// `rlft lm sft|eval|grpo` on the jsonl task (the user's own prompt/response file): a run records
// the file (from the root, so it is found from any directory) and its fingerprint, eval reports
// exact match, a bad line is one error naming the file and line, and a file changed since the run
// was trained is refused.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "cli/cli_util.h"
#include "jsonl_data.h"
#include "test_util.h"

namespace {

using namespace rlft::testing::jsonl;  // line, reversals, write

namespace fsys = std::filesystem;
using namespace rlft::testing::cli;  // run, expect_error, slurp, snapshot, …

// Two SFT steps on a 1-layer model (a fraction of a second), greedy exact match at validation.
std::string sft_args(const fsys::path& data, const fsys::path& dir, const std::string& name) {
  return "lm sft --task jsonl --data " + data.string() +
         " --model nano --n-layer 1 --n-embd 32 --block-size 16 --steps 2 --batch 4 --eval-size 4 "
         "--eval-examples 4 --eval-generate 4 --quiet --out-dir " +
         dir.string() + " --name " + name;
}

std::string grpo_args(const fsys::path& dir, const std::string& init, const std::string& name) {
  return "lm grpo --init " + (dir / init).string() +
         " --steps 1 --prompts 2 --group 2 --eval-prompts 0 --quiet --out-dir " + dir.string() +
         " --name " + name;
}

}  // namespace

TEST(CliJsonl, SftRecordsTheFileEvalReportsExactMatchAndGrpoTrainsOnIt) {
  const fsys::path dir = scratch_dir("jsonl_runs");
  const fsys::path data = dir / "rev.jsonl";
  write(data, reversals());
  // Trained on "rev.jsonl" in its directory; everything after runs from another one ("/"):
  // the run records the file from the root.
  Outcome sft;
  rlft::testing::in_directory(dir, [&] { sft = run(sft_args("rev.jsonl", dir, "sft")); });
  ASSERT_EQ(sft.status, 0) << sft.err;
  const rlft::testing::WorkingDirectory elsewhere("/");
  EXPECT_NE(sft.out.find("exact_match"), std::string::npos) << sft.out;
  const rlft::json::Value config = rlft::json::parse(slurp(dir / "sft" / "config.json"));
  EXPECT_EQ(config.at("task").as_string(), "jsonl");
  EXPECT_EQ(config.at("data").as_string(), data.string());
  EXPECT_EQ(config.at("data_fingerprint").as_string().size(), 16u);

  // lm sample scores a prompt of the file by exact match, and leaves others unscored.
  const Outcome known =
      run("lm sample --run " + (dir / "sft").string() + " --prompt 'rev ab=' --n 2");
  ASSERT_EQ(known.status, 0) << known.err;
  EXPECT_NE(known.out.find("(exact_match "), std::string::npos) << known.out;
  const Outcome other =
      run("lm sample --run " + (dir / "sft").string() + " --prompt 'rev ba' --n 1");
  ASSERT_EQ(other.status, 0) << other.err;
  EXPECT_EQ(other.out.find("exact_match"), std::string::npos) << other.out;

  const Outcome eval = run("lm eval --run " + (dir / "sft").string());
  ASSERT_EQ(eval.status, 0) << eval.err;
  EXPECT_NE(eval.out.find("jsonl/test (4 examples"), std::string::npos) << eval.out;
  EXPECT_NE(eval.out.find("greedy on 4 prompts:  exact_match "), std::string::npos) << eval.out;
  const rlft::json::Value report = rlft::json::parse(slurp(dir / "sft" / "eval_test.json"));
  EXPECT_EQ(report.at("task").as_string(), "jsonl");
  for (const char* k : {"greedy_exact_match", "sampled_exact_match"}) {
    ASSERT_TRUE(report.contains(k)) << k;
    EXPECT_GE(report.at(k).as_double(), 0.0);
    EXPECT_LE(report.at(k).as_double(), 1.0);
  }

  // GRPO from the SFT run: rewarded by the file's answers, recording the same file and
  // fingerprint, and itself evaluable.
  const Outcome grpo = run(grpo_args(dir, "sft", "grpo"));
  ASSERT_EQ(grpo.status, 0) << grpo.err;
  const rlft::json::Value rl = rlft::json::parse(slurp(dir / "grpo" / "config.json"));
  EXPECT_EQ(rl.at("task").as_string(), "jsonl");
  EXPECT_EQ(rl.at("data_fingerprint"), config.at("data_fingerprint"));
  EXPECT_EQ(run("lm eval --run " + (dir / "grpo").string()).status, 0);
}

TEST(CliJsonl, ABadLineIsOneErrorNamingTheFileAndLine) {
  const fsys::path dir = scratch_dir("jsonl_bad");
  const fsys::path data = dir / "bad.jsonl";
  write(data, reversals() + "\n" + R"({"prompt":"rev zz="})" + "\n");  // line 51
  expect_error(sft_args(data, dir, "sft"),
               data.string() + ":51: missing \"response\" (or \"completion\")");
  write(data, "\xEF\xBB\xBF" + reversals() + R"({"prompt":"rev zz=","completion":7})" + "\r\n");
  expect_error(sft_args(data, dir, "sft"),
               data.string() + ":50: \"completion\" must be a string, got integer");
  write(data, R"({"prompt":"rev ab=","response":"ba"})"
              "\nrev ab=ba\n");
  expect_error(sft_args(data, dir, "sft"), data.string() + ":2:1: expected a JSON value");
  write(data, "");
  expect_error(sft_args(data, dir, "sft"), data.string() + ": no examples");
  expect_error(sft_args(dir / "missing.jsonl", dir, "sft"), "jsonl: --data: ");
  expect_error("lm sft --task jsonl --quiet --out-dir " + dir.string(),
               "jsonl: --data FILE.jsonl is required for --task jsonl");
  EXPECT_FALSE(fsys::exists(dir / "sft"));  // nothing written
}

TEST(CliJsonl, AChangedFileIsRefusedByEvalAndGrpo) {
  const fsys::path dir = scratch_dir("jsonl_changed");
  const fsys::path data = dir / "rev.jsonl";
  write(data, reversals());
  ASSERT_EQ(run(sft_args(data, dir, "sft")).status, 0);
  const std::string recorded =
      rlft::json::parse(slurp(dir / "sft" / "config.json")).at("data_fingerprint").as_string();
  const auto before = snapshot(dir / "sft");
  // One answer edited: the same size, another fingerprint.
  std::string changed = reversals();
  changed.replace(changed.find(R"("response":"ba")"), 15, R"("response":"xx")");
  write(data, changed);
  const std::string refused = data.string() + ": changed since the run was trained: fingerprint ";
  // lm sample still samples, unscored, and says why.
  const Outcome sample =
      run("lm sample --run " + (dir / "sft").string() + " --prompt 'rev ab=' --n 1");
  EXPECT_EQ(sample.status, 0) << sample.err;
  EXPECT_NE(sample.err.find("note: samples not scored: " + refused), std::string::npos)
      << sample.err;
  EXPECT_EQ(sample.out.find("exact_match"), std::string::npos) << sample.out;
  expect_error("lm eval --run " + (dir / "sft").string(), refused);
  expect_error("lm eval --run " + (dir / "sft").string(), ", recorded " + recorded);
  expect_error(grpo_args(dir, "sft", "grpo"), refused);
  expect_error(sft_args(data, dir, "sft") + " --resume --steps 4", refused);
  EXPECT_EQ(snapshot(dir / "sft"), before);
  EXPECT_FALSE(fsys::exists(dir / "grpo"));
  // The file as it was: both run again.
  write(data, reversals());
  EXPECT_EQ(run("lm eval --run " + (dir / "sft").string()).status, 0);
  EXPECT_EQ(run(grpo_args(dir, "sft", "grpo")).status, 0);
}

// `lm eval --data`: a run whose file has moved is evaluated from the new path (as it is: the
// fingerprint is the recorded path's); the recorded path itself, changed, is still refused; and
// --data is an error for a task without a data file.
TEST(CliJsonl, EvalTakesTheDataFileFromDataWhenItHasMoved) {
  const fsys::path dir = scratch_dir("jsonl_moved");
  const fsys::path data = dir / "rev.jsonl", moved = dir / "moved.jsonl";
  write(data, reversals());
  ASSERT_EQ(run(sft_args(data, dir, "sft")).status, 0);
  fsys::rename(data, moved);
  expect_error("lm eval --run " + (dir / "sft").string(), "jsonl: --data: ");
  const Outcome eval = run("lm eval --run " + (dir / "sft").string() + " --data " + moved.string());
  ASSERT_EQ(eval.status, 0) << eval.err;
  EXPECT_NE(eval.out.find("jsonl/test (4 examples"), std::string::npos) << eval.out;
  std::string changed = reversals();
  changed.replace(changed.find(R"("response":"ba")"), 15, R"("response":"xx")");
  write(data, changed);
  expect_error("lm eval --run " + (dir / "sft").string() + " --data " + data.string(),
               data.string() + ": changed since the run was trained: fingerprint ");
  expect_error("lm eval --run " + (dir / "sft").string() + " --task arith --data " + moved.string(),
               "rlft lm eval: --data is for --task text or jsonl; the task here is arith");
}
