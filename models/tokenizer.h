// Tokenizers for the toy language models: character-level (built from a corpus) and
// byte-level (all 256 bytes). Both append three special tokens after the ordinary symbols:
//
//   char:  ids 0 … n−1 are the corpus's distinct Unicode code points in code-point order,
//          then BOS = n, EOS = n+1, PAD = n+2            (vocab_size = n + 3)
//   byte:  ids 0 … 255 are the bytes, BOS = 256, EOS = 257, PAD = 258   (vocab_size = 259)
//
// encode() never adds specials (callers add BOS/EOS where the format wants them). A character
// the char tokenizer has never seen is an rlft::Error naming it, its code point and its
// position ("tokenizer: unknown character 'é' (U+00E9) at character 3 of \"café\""). The byte
// tokenizer encodes anything. decode() renders specials as "<|bos|>", "<|eos|>", "<|pad|>"
// unless told to skip them.
//
// A tokenizer serialises to JSON ({"kind":"char","symbols":"+0123…"} or {"kind":"byte"}),
// which runs store in their checkpoint metadata so a model always comes with its vocabulary.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "engine/json.h"

namespace rlft::models {

class Tokenizer {
 public:
  enum class Kind { chars, bytes };

  // The distinct code points of `corpus` (UTF-8; invalid UTF-8 is an error).
  static Tokenizer from_corpus(std::string_view corpus);
  static Tokenizer bytes();
  // "char" (needs a corpus) or "byte"; other names are an error.
  static Tokenizer make(const std::string& kind, std::string_view corpus);

  Kind kind() const { return kind_; }
  int64_t vocab_size() const { return n_symbols_ + 3; }
  int64_t bos_id() const { return n_symbols_; }
  int64_t eos_id() const { return n_symbols_ + 1; }
  int64_t pad_id() const { return n_symbols_ + 2; }
  bool is_special(int64_t id) const { return id >= n_symbols_; }

  std::vector<int64_t> encode(std::string_view text) const;
  // ids out of [0, vocab_size) are an error naming the id.
  std::string decode(const std::vector<int64_t>& ids, bool skip_special = false) const;
  // One token's text ("<|eos|>" for EOS).
  std::string token_text(int64_t id) const;

  json::Value to_json() const;
  static Tokenizer from_json(const json::Value& v);

  static constexpr const char* kBosText = "<|bos|>";
  static constexpr const char* kEosText = "<|eos|>";
  static constexpr const char* kPadText = "<|pad|>";

 private:
  Kind kind_ = Kind::bytes;
  int64_t n_symbols_ = 256;
  std::vector<char32_t> symbols_;     // chars: id → code point (sorted)
  std::vector<int64_t> ascii_to_id_;  // chars: fast path for code points < 128 (-1 = unknown)
};

// UTF-8 helpers (invalid input is an rlft::Error naming the byte offset).
std::vector<char32_t> utf8_decode(std::string_view text);
std::string utf8_encode(char32_t cp);

}  // namespace rlft::models
