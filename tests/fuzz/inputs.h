// One parser of outside input, picked by an input's first byte, run over the rest: the body of
// the libFuzzer target (libfuzzer_main.cpp, built with -DRLFT_FUZZ=ON and Clang) and of the
// corpus replay test (tests/rl/test_fuzz_corpus.cpp, in every build).
//
//   0 json::parse (then its dump parsed again)   5 Tokenizer::from_json, encode, decode
//   1 json::parse_jsonl                          6 GPTConfig::from_json and validate
//   2 safetensors::parse (then serialize)        7 a GPT checkpoint file: llm::load_model
//   3 preference pairs (rlhf_data)               8 a classic-control policy file: rlft eval
//   4 prompt/response lines (jsonl task)           of one episode
//
// Whatever the bytes, the outcome must be a result or an rlft::Error: a crash, a sanitizer
// report, another exception, a hang or an allocation far beyond the input's size is a finding.
#pragma once

#include <string>
#include <string_view>

namespace rlft::fuzz {

inline constexpr int kParsers = 9;

// Runs parser input[0] % kParsers on input[1:]; files for parsers 7 and 8 are written under
// `scratch_dir` (which must exist). Throws what the parser throws.
void parse_one_input(std::string_view input, const std::string& scratch_dir);

}  // namespace rlft::fuzz
