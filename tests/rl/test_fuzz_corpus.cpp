// The fuzz corpus (tests/data/fuzz) replayed through the libFuzzer target's body
// (tests/fuzz/inputs.h) in every build, so the target compiles and its seeds keep their meaning:
// each ok_* input parses without error, each err_* input is a clear rlft::Error with the text
// below. New findings of a fuzzing run (tests/fuzz/libfuzzer_main.cpp) are added here as err_*
// files once fixed.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "engine/error.h"
#include "engine/fs.h"
#include "fuzz/inputs.h"
#include "test_util.h"

using namespace rlft;

namespace {

const std::map<std::string, std::string> kExpectedErrors = {
    // ok_checkpoint (the golden-logits GPT: (V 7 + T 8)·8 + 2·(12·8² + 13·8) + 2·8 = 1880
    // weights) whose model_config says n_embd 4096 and 10 layers (15·4096 + 10·(12·4096² +
    // 13·4096) + 2·4096 = 2,013,868,032): refused before that model is built.
    {"err_checkpoint_config_too_wide",
     "its tensors hold 1880 weights but its model_config (n_layer 10, n_head 2, n_embd 4096, "
     "block_size 8, vocab_size 7, tie_weights true) has 2013868032"},
    // A policy whose metadata lists 40 hidden layers for the tensors of two.
    {"err_policy_more_layers", "its tensors hold 9155 weights but its metadata policy describes"},
};

TEST(FuzzCorpus, EveryInputParsesOrIsTheExpectedClearError) {
  const std::string corpus = std::string(RLFT_SOURCE_DIR) + "/tests/data/fuzz";
  std::vector<std::filesystem::path> files;
  for (const auto& e : std::filesystem::directory_iterator(corpus)) files.push_back(e.path());
  std::sort(files.begin(), files.end());
  ASSERT_GE(files.size(), size_t(fuzz::kParsers)) << "one input per parser at least";
  std::vector<bool> parser_seen(fuzz::kParsers, false);
  const std::string scratch = rlft::testing::temp_dir("fuzz_corpus");
  for (const auto& f : files) {
    const std::string name = f.filename().string(), bytes = fs::read_file(f.string());
    ASSERT_FALSE(bytes.empty()) << name;
    const bool ok = name.rfind("ok_", 0) == 0;
    ASSERT_TRUE(ok || kExpectedErrors.count(name)) << name << ": neither ok_* nor a listed err_*";
    if (ok) parser_seen[static_cast<unsigned char>(bytes[0]) % fuzz::kParsers] = true;
    const std::string error =
        rlft::testing::error_of([&] { fuzz::parse_one_input(bytes, scratch); });
    if (ok)
      EXPECT_EQ(error, "<no error>") << name;
    else
      EXPECT_NE(error.find(kExpectedErrors.at(name)), std::string::npos)
          << name << ": expected \"" << kExpectedErrors.at(name) << "\", got: " << error;
  }
  for (int p = 0; p < fuzz::kParsers; ++p)
    EXPECT_TRUE(parser_seen[p]) << "no ok_* input for parser " << p;
}

}  // namespace
