// `--grad-accum K` of rlft lm sft|pretrain, dpo and rm: listed by --help, checked against
// --batch before anything is written, recorded in config.json, free on --resume, and a run with
// it logs the losses of the run without it (float32: within rounding).
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <string>

#include "cli/cli_util.h"

namespace {

namespace fsys = std::filesystem;
using namespace rlft::testing::cli;  // run, expect_error, slurp, …

const std::string kSft = tiny_sft_args(8) + " --steps 3 --log-every 1";

std::vector<rlft::json::Value> metrics(const fsys::path& run) {
  return rlft::json::parse_jsonl(slurp(run / "metrics.jsonl"));
}

int64_t recorded_grad_accum(const fsys::path& run) {
  return rlft::json::parse(slurp(run / "config.json")).at("grad_accum").as_int();
}

TEST(CliGradAccum, HelpListsTheOption) {
  for (const char* cmd : {"lm sft", "lm pretrain", "lm dpo", "lm rm"}) {
    const Outcome o = run(std::string(cmd) + " --help");
    EXPECT_EQ(o.status, 0) << cmd;
    EXPECT_NE(o.out.find("--grad-accum"), std::string::npos) << cmd << "\n" << o.out;
  }
}

TEST(CliGradAccum, BatchNotDivisibleIsRefusedNamingBoth) {
  const fsys::path dir = scratch_dir("grad_accum_errors");
  const std::string out = " --quiet --out-dir " + dir.string() + " --name x";
  expect_error("lm sft --model nano --steps 2 --batch 6 --grad-accum 4" + out,
               "rlft lm sft: --batch 6 is not divisible by --grad-accum 4");
  expect_error("lm pretrain --model nano --steps 2 --batch 6 --grad-accum 0" + out,
               "--grad-accum must be positive, got 0");
  expect_error("lm dpo --prefs nope.jsonl --init nope --batch 16 --grad-accum 3" + out,
               "rlft lm dpo: --batch 16 is not divisible by --grad-accum 3");
  expect_error("lm dpo --prefs nope.jsonl --init nope --grad-accum 0" + out,
               "--grad-accum must be > 0, got 0");
  expect_error("lm rm --prefs nope.jsonl --init nope --batch 32 --grad-accum 5" + out,
               "rlft lm rm: --batch 32 is not divisible by --grad-accum 5");
  EXPECT_FALSE(fsys::exists(dir / "x")) << "no run directory for a refused command";
}

// SFT with --grad-accum 4 against 1: the same losses and gradient norms within float32 rounding
// (1e-5 relative), grad_accum recorded; then --resume with another K is allowed, and a bare
// --resume keeps the recorded K.
TEST(CliGradAccum, SFTRunsRecordsAndResumesWithAnotherK) {
  const fsys::path dir = scratch_dir("grad_accum_sft");
  const std::string d = " --out-dir " + dir.string();
  ASSERT_EQ(run(kSft + d + " --name k1").status, 0);
  const Outcome four = run(kSft + d + " --name k4 --grad-accum 4");
  ASSERT_EQ(four.status, 0) << four.err;
  EXPECT_EQ(recorded_grad_accum(dir / "k1"), 1);
  EXPECT_EQ(recorded_grad_accum(dir / "k4"), 4);
  const auto a = metrics(dir / "k1"), b = metrics(dir / "k4");
  ASSERT_EQ(a.size(), 3u);
  ASSERT_EQ(b.size(), 3u);
  for (size_t i = 0; i < 3; ++i) {
    for (const char* key : {"loss", "grad_norm"}) {
      const double x = a[i].at(key).as_double(), y = b[i].at(key).as_double();
      EXPECT_NEAR(y, x, 1e-5 * std::abs(x)) << key << " row " << i;
    }
  }
  // Stopped with K = 1, resumed with K = 2, then once more with no --grad-accum: K stays 2.
  ASSERT_EQ(run(kSft + d + " --name r --steps 4 --stop-after 2").status, 0);
  const Outcome switched =
      run(kSft + d + " --name r --steps 4 --stop-after 1 --resume " + "--grad-accum 2");
  EXPECT_EQ(switched.status, 0) << switched.err;
  EXPECT_EQ(recorded_grad_accum(dir / "r"), 2);
  const Outcome bare = run("lm sft --quiet" + d + " --name r --resume");
  EXPECT_EQ(bare.status, 0) << bare.err;
  EXPECT_NE(bare.out.find("(resumed: the run is at step 4)"), std::string::npos) << bare.out;
  EXPECT_EQ(recorded_grad_accum(dir / "r"), 2);
  // Settings other than the free ones are still compared.
  expect_error("lm sft --quiet" + d + " --name r --resume --steps 5 --batch 4 --grad-accum 2",
               "--resume: setting 'batch' is 4");
}

// DPO and the reward model take the option and record it (the exactness of the step is
// tests/rl/test_grad_accum.cpp's).
TEST(CliGradAccum, DPOAndRewardModelRunWithIt) {
  const fsys::path dir = scratch_dir("grad_accum_rlhf");
  const std::string d = " --quiet --out-dir " + dir.string();
  ASSERT_EQ(run(kSft + " --out-dir " + dir.string() + " --name sft").status, 0);
  std::ofstream(dir / "p.jsonl", std::ios::binary)
      << plot_pairs({" great.", " superb.", " fine.", " good.", " really good.", " warm."});
  const std::string common =
      " --prefs " + (dir / "p.jsonl").string() + " --init " + (dir / "sft").string();
  const Outcome dpo = run("lm dpo" + common + " --batch 4 --grad-accum 2 --epochs 1 " +
                          "--eval-samples 1 --eval-fraction 0" + d + " --name dpo");
  EXPECT_EQ(dpo.status, 0) << dpo.err;
  EXPECT_EQ(recorded_grad_accum(dir / "dpo"), 2);
  // A resumed DPO run may change K too.
  const Outcome dpo_stop = run("lm dpo" + common + " --batch 2 --epochs 2 --eval-samples 1 " +
                               "--eval-fraction 0 --stop-after 2" + d + " --name dpo-r");
  ASSERT_EQ(dpo_stop.status, 0) << dpo_stop.err;
  const Outcome dpo_resume = run("lm dpo --resume --grad-accum 2" + d + " --name dpo-r");
  EXPECT_EQ(dpo_resume.status, 0) << dpo_resume.err;
  EXPECT_EQ(recorded_grad_accum(dir / "dpo-r"), 2);
  const Outcome rm = run("lm rm" + common + " --batch 4 --grad-accum 4 --epochs 1 " +
                         "--eval-fraction 0" + d + " --name rm");
  EXPECT_EQ(rm.status, 0) << rm.err;
  EXPECT_EQ(recorded_grad_accum(dir / "rm"), 4);
}

}  // namespace
