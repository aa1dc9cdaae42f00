// `rlft lm grpo --resume` on the jsonl task takes the data fingerprint its run recorded (no
// option sets it): a changed file is refused with the error that names it as changed, even when
// the SFT run it started from recorded no fingerprint (a run from before fingerprints).
#include <gtest/gtest.h>

#include <filesystem>
#include <string>

#include "cli/cli_util.h"
#include "engine/json.h"
#include "jsonl_data.h"

namespace {

using namespace rlft::testing::jsonl;  // reversals, write, forget_fingerprint

namespace fsys = std::filesystem;
using namespace rlft::testing::cli;  // run, expect_error, slurp, snapshot, …

}  // namespace

TEST(CliResumeRecordedKeys, GrpoResumedOnAChangedJsonlFileIsRefused) {
  const fsys::path dir = scratch_dir("grpo_recorded_keys");
  const fsys::path data = dir / "rev.jsonl";
  write(data, reversals());
  const Outcome sft = run("lm sft --task jsonl --data " + data.string() +
                          " --model nano --n-layer 1 --n-embd 32 --block-size 16 --steps 2 "
                          "--batch 4 --eval-size 4 --eval-examples 4 --quiet --out-dir " +
                          dir.string() + " --name sft");
  ASSERT_EQ(sft.status, 0) << sft.err;
  const fsys::path init = dir / "old-sft.safetensors";
  fsys::copy_file(dir / "sft" / "checkpoint.safetensors", init);
  forget_fingerprint(init.string());

  const Outcome first = run("lm grpo --init " + init.string() +
                            " --steps 2 --stop-after 1 --checkpoint-every 1 --prompts 2 --group 2 "
                            "--eval-prompts 0 --quiet --out-dir " +
                            dir.string() + " --name grpo");
  ASSERT_EQ(first.status, 0) << first.err;
  const std::string recorded =
      rlft::json::parse(slurp(dir / "grpo" / "config.json")).at("data_fingerprint").as_string();
  EXPECT_EQ(recorded.size(), 16u);

  // One answer edited: the same characters, another fingerprint.
  std::string changed = reversals();
  changed.replace(changed.find(R"("response":"ba")"), 15, R"("response":"xx")");
  write(data, changed);
  const auto before = snapshot(dir / "grpo");
  const std::string resume = "lm grpo --resume --quiet --out-dir " + dir.string() + " --name grpo";
  expect_error(resume, data.string() + ": changed since the run was trained: fingerprint ");
  expect_error(resume, ", recorded " + recorded);
  EXPECT_EQ(snapshot(dir / "grpo"), before);

  // The file as it was: the run resumes to its end.
  write(data, reversals());
  const Outcome resumed = run(resume);
  EXPECT_EQ(resumed.status, 0) << resumed.err;
  EXPECT_NE(resumed.out.find("resumed: the run is at step 2"), std::string::npos) << resumed.out;
}
