// `rlft lm rm --stop-after / --resume`: a reward-model run stopped after one step says so, and a
// bare `lm rm --name R --resume` takes the run's recorded settings, finishes it and says it
// resumed; the options are listed by --help.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "cli/cli_util.h"

namespace {

namespace fsys = std::filesystem;
using namespace rlft::testing::cli;  // run, expect_error, slurp, …

TEST(CliRewardModelResume, StoppedThenBareResumeFinishes) {
  const fsys::path dir = scratch_dir("rm_resume");
  const std::string d = " --out-dir " + dir.string();
  ASSERT_EQ(run(tiny_sft_args(8) + " --steps 3" + d + " --name sft").status, 0);
  std::ofstream(dir / "p.jsonl", std::ios::binary)
      << plot_pairs({" great.", " superb.", " fine.", " good.", " really good.", " warm."});

  const Outcome listed = run("lm rm --help");
  for (const char* flag : {"--resume", "--stop-after", "--checkpoint-every"})
    EXPECT_NE(listed.out.find(flag), std::string::npos) << flag << "\n" << listed.out;

  // 6 pairs, batch 2, 2 epochs: 6 steps; stopped after the first.
  const Outcome first =
      run("lm rm --prefs " + (dir / "p.jsonl").string() + " --init " + (dir / "sft").string() +
          " --batch 2 --epochs 2 --eval-fraction 0" + d + " --stop-after 1 --name R");
  ASSERT_EQ(first.status, 0) << first.err;
  EXPECT_NE(first.out.find("stopped after step 1"), std::string::npos) << first.out;
  EXPECT_NE(first.out.find("done: at step 1, no final evaluation"), std::string::npos) << first.out;
  EXPECT_FALSE(fsys::exists(dir / "R" / "metrics.jsonl")) << "no epoch ended";

  const Outcome resumed = run("lm rm --name R --resume" + d);
  ASSERT_EQ(resumed.status, 0) << resumed.err;
  EXPECT_NE(resumed.out.find("resumed at step 1 from"), std::string::npos) << resumed.out;
  EXPECT_NE(resumed.out.find("done (resumed at step 1): no held-out pairs"), std::string::npos)
      << resumed.out;
  const std::vector<rlft::json::Value> rows =
      rlft::json::parse_jsonl(slurp(dir / "R" / "metrics.jsonl"));
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows.back().at("step").as_int(), 6);
  EXPECT_EQ(rlft::json::parse(slurp(dir / "R" / "config.json")).at("batch").as_int(), 2)
      << "the recorded --batch, not the default";
}

}  // namespace
