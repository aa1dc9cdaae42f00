// Bad input found by an adversarial pass over the rlft command line: each case is one line
// "rlft: error: …" naming what is wrong, exit status 2, and nothing written.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "cli/cli_util.h"
#include "engine/checkpoint.h"

namespace {

namespace fsys = std::filesystem;
using namespace rlft::testing::cli;  // run, expect_error, scratch_dir, slurp, snapshot

// Numbers are decimal as a person writes them: strtod/strtoll alone took " 3" (but not "3 ")
// and hexadecimal ("0x10" = 16, "0x1p3" = 8). The options are parsed before the run is looked
// for, so the run named here need not exist.
TEST(CliBadInput, NumbersAreDecimalOnly) {
  const std::string sample = "lm sample --run nope";
  expect_error(sample + " --n 0x10", "--n: '0x10' is not an integer");
  expect_error(sample + " --n ' 3'", "--n: ' 3' is not an integer");
  expect_error(sample + " --n 0X1e1", "--n: '0X1e1' is not an integer");
  expect_error(sample + " --temperature 0x1p3", "--temperature: '0x1p3' is not a number");
  expect_error(sample + " --temperature ' 0.5'", "--temperature: ' 0.5' is not a number");
  expect_error(sample + " --top-p -0x1", "--top-p: '-0x1' is not a number");
}

// An integer beyond int64 is "out of range", not "not an integer"; 1e19 was converted to int64
// (undefined behaviour) before it was compared.
TEST(CliBadInput, IntegersBeyondInt64AreOutOfRange) {
  expect_error("lm sample --run nope --n 99999999999999999999",
               "--n: 99999999999999999999 is out of range");
  expect_error("lm sample --run nope --n 1e19", "--n: 1e19 is out of range");
  expect_error("lm sample --run nope --n -9.3e18", "--n: -9.3e18 is out of range");
  expect_error("lm sample --run nope --n 1.5", "--n: '1.5' is not an integer");
}

// `rlft experiment frontier --betas/--kl-ctls` take the options' number syntax: hexadecimal or
// a leading space was taken, and the experiment started. (--sft names no run, so a list that
// is wrongly accepted fails on that instead, quickly.)
TEST(CliBadInput, FrontierListsAreDecimal) {
  const fsys::path dir = scratch_dir("frontier_lists");
  const std::string fr =
      "experiment frontier --quiet --sft nope --out-dir " + (dir / "fr").string();
  expect_error(fr + " --betas 0x10", "--betas: '0x10' is not a number");
  expect_error(fr + " --betas '0.1, 1'", "--betas: ' 1' is not a number");
  expect_error(fr + " --kl-ctls 1e400", "--kl-ctls: '1e400' is not a number");
  EXPECT_FALSE(fsys::exists(dir / "fr"));
}

// `--seeds 1e9` planned a billion jobs per method in memory before any ran.
TEST(CliBadInput, VerifiableSeedsAreBounded) {
  const fsys::path dir = scratch_dir("verifiable_seeds");
  expect_error(
      "experiment verifiable --quiet --init nope --seeds 1e9 --out-dir " + (dir / "v").string(),
      "--seeds must be at most 1000, got 1000000000");
  EXPECT_FALSE(fsys::exists(dir / "v"));
}

// `rlft experiment foo` named neither the word nor the experiments there are.
TEST(CliBadInput, UnknownExperimentIsNamed) {
  expect_error("experiment foo", "unknown experiment 'foo' (expected frontier or verifiable");
}

// A wrong answer rewarded as much as (or more than) a right one: every group's advantages are
// zero, or the policy is trained away from correct answers.
TEST(CliBadInput, GroupRLRewardsMustPreferCorrect) {
  expect_error("lm grpo --init nope --reward-correct 0 --reward-wrong 0",
               "--reward-correct (0) must be greater than --reward-wrong (0)");
  expect_error("lm rloo --init nope --reward-wrong 2",
               "--reward-correct (1) must be greater than --reward-wrong (2)");
  // Equal rewards with a format reward train the format: accepted (the error is then --init's).
  const Outcome o =
      run("lm grpo --init nope --reward-correct 0 --reward-wrong 0 --format-reward 1");
  EXPECT_EQ(o.status, 2) << o.err;
  EXPECT_EQ(o.err.find("--reward-correct"), std::string::npos) << o.err;
  EXPECT_NE(o.err.find("nope"), std::string::npos) << o.err;
}

// `lm prefs --samples-per-prompt 2147483648` built 32 × k prompts per round: memory filled.
TEST(CliBadInput, PrefsSamplesPerPromptIsBounded) {
  const fsys::path dir = scratch_dir("prefs_k");
  expect_error("lm prefs --run nope --samples-per-prompt 2048 --out " + (dir / "p.jsonl").string(),
               "--samples-per-prompt must be even and in [2, 1024], got 2048");
}

// Model sizes a toy engine cannot build are refused before the constructor allocates (with a
// 60000-wide model the first block alone asked for 43 GB).
TEST(CliBadInput, OversizedModelOptionsAreRefused) {
  const fsys::path dir = scratch_dir("big_model");
  const std::string sft =
      "lm sft --model nano --steps 1 --quiet --out-dir " + dir.string() + " --name big";
  expect_error(sft + " --n-embd 60000 --n-head 1", "parameters, over the limit of 2147483648");
  expect_error(sft + " --block-size 2000000", "block_size 2000000 is over the limit of 1048576");
  EXPECT_FALSE(fsys::exists(dir / "big"));
}

// A tiny reviews SFT run (a fraction of a second), and copies of its checkpoint with edited
// metadata or text files of preference pairs, for the tests below.
class CliBadInputRun : public ScratchSuite<CliBadInputRun> {
 protected:
  static void SetUpTestSuite() {
    dir_ = new fsys::path(scratch_dir("bad_input_run"));
    ASSERT_EQ(run("lm sft --task reviews --model nano --n-layer 1 --n-embd 32 --steps 1 --batch 2 "
                  "--train-size 50 --eval-size 4 --eval-examples 2 --eval-generate 0 --quiet "
                  "--out-dir " +
                  dir_->string() + " --name sft")
                  .status,
              0);
  }
  // The SFT checkpoint with its metadata `key` replaced by `value`, as <name>.safetensors.
  static std::string with_metadata(const std::string& name, const std::string& key,
                                   const std::string& value) {
    rlft::Metadata meta;
    const rlft::NamedTensors tensors =
        rlft::load_tensors(path("sft/checkpoint.safetensors"), &meta);
    meta[key] = value;
    const std::string out = path(name + ".safetensors");
    rlft::save_tensors(out, tensors, meta);
    return out;
  }
};

// A checkpoint whose model_config asks for a huge model: refused by the config's limits, with
// the file named, before anything is allocated (it was "out of memory allocating 2.8e14
// bytes"); a config error names the file too (it was a bare "gpt: …").
TEST_F(CliBadInputRun, CheckpointModelConfigIsCheckedAndNamesTheFile) {
  rlft::Metadata meta;
  rlft::load_tensors(path("sft/checkpoint.safetensors"), &meta);
  rlft::json::Value mc = rlft::json::parse(meta.at("model_config"));
  mc.set("block_size", int64_t(1000000000000));
  const std::string huge = with_metadata("huge", "model_config", mc.dump());
  expect_error("lm sample --run " + huge,
               huge + ": metadata model_config: gpt: block_size 1000000000000 is over the limit");
  mc = rlft::json::parse(meta.at("model_config"));
  mc.set("n_head", int64_t(3));
  const std::string heads = with_metadata("heads", "model_config", mc.dump());
  expect_error("lm sample --run " + heads,
               heads +
                   ": metadata model_config: gpt: n_embd (32) must be a positive multiple of "
                   "n_head (3)");
  // Within the limits but not what the file holds: refused from the tensors' count before the
  // model is built (building it first took 2 min and 9.5 GB before the shape check named
  // 'wte.weight'). The file: (V 32 + T 64)·C 32 + one block 12·32² + 13·32 + 2·32 = 15,840; the
  // config at C 4096, 10 layers: 96·4096 + 10·(12·4096² + 13·4096) + 2·4096 = 2,014,199,808.
  mc = rlft::json::parse(meta.at("model_config"));
  mc.set("n_embd", int64_t(4096));
  mc.set("n_layer", int64_t(10));
  const std::string wide = with_metadata("wide", "model_config", mc.dump());
  expect_error("lm sample --run " + wide,
               wide +
                   ": its tensors hold 15840 weights but its model_config (n_layer 10, n_head 2, "
                   "n_embd 4096, block_size 64, vocab_size 32, tie_weights true) has 2014199808");
  const std::string tok = with_metadata("tok", "tokenizer", R"({"kind":"words"})");
  expect_error("lm eval --run " + tok, tok + ": metadata tokenizer: tokenizer: unknown kind");
}

// A control character in a preference text is shown escaped in the error: a NUL ended the
// message mid-quote ("of \"a"), and the quoted text was cut at byte 60, inside a character.
TEST_F(CliBadInputRun, UnknownCharactersAreShownEscaped) {
  write("nul.jsonl", R"({"prompt":"review: the plot was","chosen":"a\u0000b","rejected":" dull."})"
                     "\n");
  expect_error("lm dpo --prefs " + path("nul.jsonl") + " --init " + path("sft") +
                   " --quiet --out-dir " + dir_->string() + " --name d",
               R"(nul.jsonl:1: "chosen": tokenizer: unknown character '\x00' (U+0000) at )"
               R"(character 1 of "a\x00b" (not in the)");
  std::string long_text;
  for (int i = 0; i < 70; ++i) long_text += "\xC3\xA9";  // é, two bytes each
  expect_error("lm sample --run " + path("sft") + " --prompt '" + long_text + "'",
               "of \"" + long_text.substr(0, 120) + "…\"");
  EXPECT_FALSE(fsys::exists(*dir_ / "d"));
}

// A run_config of the wrong type in a checkpoint names the file, the metadata and the key (it
// was a bare "json: expected a string, found integer 5").
TEST_F(CliBadInputRun, CheckpointRunConfigOfTheWrongTypeNamesFileAndKey) {
  rlft::Metadata meta;
  rlft::load_tensors(path("sft/checkpoint.safetensors"), &meta);
  rlft::json::Value rc = rlft::json::parse(meta.at("run_config"));
  rc.set("mode", int64_t(5));
  const std::string bad = with_metadata("mode", "run_config", rc.dump());
  expect_error("lm sample --run " + bad + " --prompt 'review: the plot was'",
               bad + ": metadata run_config: json: 'mode': expected a string, found integer 5");
}

// A preference file saved with a UTF-8 byte-order mark (Windows editors) is read: the BOM is
// not the first line's JSON. Line 2 is wrong here, so the error proves line 1 was read.
TEST_F(CliBadInputRun, PreferenceFileMayStartWithABom) {
  write("bom.jsonl",
        "\xEF\xBB\xBF"
        R"({"prompt":"review: the plot was","chosen":" good.","rejected":" dull."})"
        "\n"
        R"({"prompt":"review: the plot was","chosen":" good."})"
        "\n");
  expect_error("lm dpo --prefs " + path("bom.jsonl") + " --init " + path("sft") +
                   " --quiet --out-dir " + dir_->string() + " --name d",
               "bom.jsonl:2: missing \"rejected\"");
  EXPECT_FALSE(fsys::exists(*dir_ / "d"));
}

// `lm prefs --out` pointed at the --run's own checkpoint (or its config.json) replaced it with
// JSONL: the SFT run was lost. Only an earlier preference file may be replaced.
TEST_F(CliBadInputRun, PrefsOutDoesNotReplaceARunsFiles) {
  const auto before = snapshot(*dir_ / "sft");
  for (const char* file : {"checkpoint.safetensors", "config.json", "metrics.jsonl"}) {
    const std::string out = path("sft/") + file;
    expect_error("lm prefs --run " + path("sft") + " --pairs 1 --quiet --out " + out,
                 "--out " + out + ": exists and is not a preference file");
  }
  EXPECT_EQ(snapshot(*dir_ / "sft"), before);
}

// A count too large to allocate (here 1e15 prompts for `lm sample --n`) is one error line and
// status 2, not "internal error: std::bad_alloc" and status 1.
TEST_F(CliBadInputRun, OutOfMemoryIsOneErrorLine) {
  expect_error("lm sample --run " + path("sft") + " --n 1e15", "");
}

}  // namespace
