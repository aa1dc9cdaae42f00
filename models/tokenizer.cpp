// Character-level and byte-level tokenizers (see tokenizer.h).
#include "models/tokenizer.h"

#include <algorithm>
#include <cstdio>

#include "engine/error.h"

namespace rlft::models {

std::vector<char32_t> utf8_decode(std::string_view s) {
  std::vector<char32_t> out;
  out.reserve(s.size());
  size_t i = 0;
  while (i < s.size()) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    int len;
    char32_t cp;
    if (c < 0x80) {
      len = 1;
      cp = c;
    } else if ((c & 0xE0) == 0xC0) {
      len = 2;
      cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      len = 3;
      cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      len = 4;
      cp = c & 0x07;
    } else
      throw Error(str("utf8: invalid lead byte 0x", std::hex, int(c), std::dec, " at byte ", i));
    RLFT_CHECK(i + size_t(len) <= s.size(), "utf8: truncated sequence at byte ", i);
    for (int k = 1; k < len; ++k) {
      const unsigned char cc = static_cast<unsigned char>(s[i + size_t(k)]);
      RLFT_CHECK((cc & 0xC0) == 0x80, "utf8: invalid continuation byte at byte ", i + size_t(k));
      cp = (cp << 6) | (cc & 0x3F);
    }
    static const char32_t kMin[5] = {0, 0, 0x80, 0x800, 0x10000};
    RLFT_CHECK(cp >= kMin[len] && cp <= 0x10FFFF && !(cp >= 0xD800 && cp <= 0xDFFF),
               "utf8: invalid code point at byte ", i);
    out.push_back(cp);
    i += size_t(len);
  }
  return out;
}

std::string utf8_encode(char32_t cp) {
  std::string s;
  if (cp < 0x80) {
    s += char(cp);
  } else if (cp < 0x800) {
    s += char(0xC0 | (cp >> 6));
    s += char(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    s += char(0xE0 | (cp >> 12));
    s += char(0x80 | ((cp >> 6) & 0x3F));
    s += char(0x80 | (cp & 0x3F));
  } else {
    s += char(0xF0 | (cp >> 18));
    s += char(0x80 | ((cp >> 12) & 0x3F));
    s += char(0x80 | ((cp >> 6) & 0x3F));
    s += char(0x80 | (cp & 0x3F));
  }
  return s;
}

namespace {
// A character as an error message shows it: control characters escaped (a NUL would end the
// message, a newline split it), everything else as itself.
std::string shown(char32_t cp) {
  if (cp == '\n') return "\\n";
  if (cp == '\r') return "\\r";
  if (cp == '\t') return "\\t";
  if (cp < 0x20 || cp == 0x7f) {
    char buf[8];
    std::snprintf(buf, sizeof buf, "\\x%02x", unsigned(cp));
    return buf;
  }
  return utf8_encode(cp);
}
std::string describe(char32_t cp) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "U+%04X", unsigned(cp));
  // Appended piece by piece: "'" + shown(cp) made GCC 12 warn (-Wrestrict) about the
  // inlined insert at the front of a temporary, a false positive.
  std::string s = "'";
  s += shown(cp);
  s += "' (";
  s += buf;
  s += ')';
  return s;
}
}  // namespace

Tokenizer Tokenizer::from_corpus(std::string_view corpus) {
  std::vector<char32_t> cps = utf8_decode(corpus);
  std::sort(cps.begin(), cps.end());
  cps.erase(std::unique(cps.begin(), cps.end()), cps.end());
  RLFT_CHECK(!cps.empty(),
             "tokenizer: empty corpus (a char tokenizer needs at least one character)");
  Tokenizer t;
  t.kind_ = Kind::chars;
  t.symbols_ = std::move(cps);
  t.n_symbols_ = int64_t(t.symbols_.size());
  t.ascii_to_id_.assign(128, -1);
  for (size_t i = 0; i < t.symbols_.size(); ++i)
    if (t.symbols_[i] < 128) t.ascii_to_id_[t.symbols_[i]] = int64_t(i);
  return t;
}

Tokenizer Tokenizer::bytes() { return Tokenizer(); }

Tokenizer Tokenizer::make(const std::string& kind, std::string_view corpus) {
  if (kind == "char") return from_corpus(corpus);
  if (kind == "byte") return bytes();
  throw Error(str("tokenizer: unknown kind '", kind, "' (expected char or byte)"));
}

std::vector<int64_t> Tokenizer::encode(std::string_view text) const {
  std::vector<int64_t> ids;
  if (kind_ == Kind::bytes) {
    ids.reserve(text.size());
    for (char c : text) ids.push_back(int64_t(static_cast<unsigned char>(c)));
    return ids;
  }
  const std::vector<char32_t> cps = utf8_decode(text);
  ids.reserve(cps.size());
  for (size_t i = 0; i < cps.size(); ++i) {
    const char32_t cp = cps[i];
    int64_t id = -1;
    if (cp < 128) {
      id = ascii_to_id_[cp];
    } else {
      auto it = std::lower_bound(symbols_.begin(), symbols_.end(), cp);
      if (it != symbols_.end() && *it == cp) id = int64_t(it - symbols_.begin());
    }
    if (id < 0) {
      // The text's first 60 characters (whole characters, not bytes), escaped like `cp`.
      std::string quoted;
      for (size_t j = 0; j < std::min<size_t>(cps.size(), 60); ++j) quoted += shown(cps[j]);
      throw Error(str("tokenizer: unknown character ", describe(cp), " at character ", i, " of \"",
                      quoted, cps.size() > 60 ? "…" : "", "\" (not in the ", n_symbols_,
                      "-character vocabulary)"));
    }
    ids.push_back(id);
  }
  return ids;
}

std::string Tokenizer::token_text(int64_t id) const {
  RLFT_CHECK(id >= 0 && id < vocab_size(), "tokenizer: token id ", id, " out of range [0, ",
             vocab_size(), ")");
  if (id == bos_id()) return kBosText;
  if (id == eos_id()) return kEosText;
  if (id == pad_id()) return kPadText;
  if (kind_ == Kind::bytes) return std::string(1, char(id));
  return utf8_encode(symbols_[size_t(id)]);
}

std::string Tokenizer::decode(const std::vector<int64_t>& ids, bool skip_special) const {
  std::string out;
  for (int64_t id : ids) {
    if (skip_special && id >= n_symbols_ && id < vocab_size()) continue;
    out += token_text(id);
  }
  return out;
}

json::Value Tokenizer::to_json() const {
  json::Value v = json::Value::object();
  if (kind_ == Kind::bytes) {
    v.set("kind", "byte");
  } else {
    std::string s;
    for (char32_t cp : symbols_) s += utf8_encode(cp);
    v.set("kind", "char");
    v.set("symbols", s);
  }
  v.set("vocab_size", vocab_size());
  return v;
}

Tokenizer Tokenizer::from_json(const json::Value& v) {
  const std::string kind = v.at("kind").as_string();
  Tokenizer t;
  if (kind == "byte") {
    t = bytes();
  } else if (kind == "char") {
    const std::string& s = v.at("symbols").as_string();
    t = from_corpus(s);
    RLFT_CHECK(t.symbols_ == utf8_decode(s),
               "tokenizer: json symbols must be distinct and in code-point order");
  } else {
    throw Error(str("tokenizer: unknown kind '", kind, "' in json (expected char or byte)"));
  }
  if (const json::Value* n = v.find("vocab_size"))
    RLFT_CHECK(n->as_int() == t.vocab_size(), "tokenizer: json vocab_size ", n->as_int(),
               " but the symbols give ", t.vocab_size());
  return t;
}

}  // namespace rlft::models
