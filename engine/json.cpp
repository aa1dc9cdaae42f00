// rlft::json — recursive-descent parser and writer. Grammar: RFC 8259; see json.h for choices.
#include "engine/json.h"

#include <charconv>
#include <cmath>
#include <system_error>
#include <unordered_set>

namespace rlft::json {
namespace {

// Deeper documents are rejected so that a hostile "[[[[..." cannot overflow the stack.
constexpr int kMaxDepth = 512;

// Length of the valid UTF-8 sequence starting at s[i] (1..4), or 0 when it is invalid:
// a stray continuation byte, a truncated sequence, an overlong form, a surrogate
// (U+D800..DFFF) or a code point above U+10FFFF (RFC 3629, table 3-7 of Unicode).
size_t utf8_sequence_length(std::string_view s, size_t i) {
  const auto b = [&](size_t k) { return i + k < s.size() ? uint8_t(s[i + k]) : 0; };
  const uint8_t c = b(0);
  const auto cont = [](uint8_t x) { return (x & 0xC0) == 0x80; };
  if (c < 0x80) return 1;
  if (c >= 0xC2 && c <= 0xDF) return cont(b(1)) ? 2 : 0;
  if (c >= 0xE0 && c <= 0xEF) {
    const uint8_t lo = c == 0xE0 ? 0xA0 : 0x80, hi = c == 0xED ? 0x9F : 0xBF;
    return b(1) >= lo && b(1) <= hi && cont(b(2)) ? 3 : 0;
  }
  if (c >= 0xF0 && c <= 0xF4) {
    const uint8_t lo = c == 0xF0 ? 0x90 : 0x80, hi = c == 0xF4 ? 0x8F : 0xBF;
    return b(1) >= lo && b(1) <= hi && cont(b(2)) && cont(b(3)) ? 4 : 0;
  }
  return 0;
}

void append_utf8(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out += char(cp);
  } else if (cp < 0x800) {
    out += char(0xC0 | (cp >> 6));
    out += char(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += char(0xE0 | (cp >> 12));
    out += char(0x80 | ((cp >> 6) & 0x3F));
    out += char(0x80 | (cp & 0x3F));
  } else {
    out += char(0xF0 | (cp >> 18));
    out += char(0x80 | ((cp >> 12) & 0x3F));
    out += char(0x80 | ((cp >> 6) & 0x3F));
    out += char(0x80 | (cp & 0x3F));
  }
}

// Writes s as a JSON string literal, escaping what serde_json escapes.
void dump_string(std::string& out, std::string_view s) {
  static const char* kHex = "0123456789abcdef";
  out += '"';
  for (size_t i = 0; i < s.size();) {
    const unsigned char c = s[i];
    const size_t n = utf8_sequence_length(s, i);
    RLFT_CHECK(n > 0, "json: cannot write a string that is not valid UTF-8 (byte 0x", kHex[c >> 4],
               kHex[c & 15], " at offset ", i, ")");
    // clang-format off
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20) {
          out += "\\u00";
          out += kHex[c >> 4];
          out += kHex[c & 15];
        } else {
          out.append(s.substr(i, n));
        }
    }
    // clang-format on
    i += n;
  }
  out += '"';
}

// Python's repr() layout of the shortest round-trip digits (from std::to_chars): fixed
// notation for 1e-4 <= |d| < 1e16 ("0.0003", "100.0"), else "1e+20" / "2.5e-08". Both forms
// always hold a '.' or an 'e', so the number reads back as a double.
void dump_double(std::string& out, double d) {
  if (!std::isfinite(d)) {  // no JSON literal: see json.h
    out += "null";
    return;
  }
  char buf[64];
  const auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), d, std::chars_format::scientific);
  std::string_view s(buf, size_t(end - buf));  // "-d.ddde-05"
  if (s[0] == '-') {
    out += '-';
    s.remove_prefix(1);
  }
  const size_t e = s.find('e');
  std::string digits(1, s[0]);
  if (e > 1) digits += s.substr(2, e - 2);
  std::string_view exp_text = s.substr(e + 1);
  if (exp_text[0] == '+') exp_text.remove_prefix(1);
  int exp = 0;
  std::from_chars(exp_text.data(), exp_text.data() + exp_text.size(), exp);
  if (exp >= 16 || exp < -4) {
    out += digits[0];
    if (digits.size() > 1) {
      out += '.';
      out.append(digits, 1);
    }
    out += exp < 0 ? "e-" : "e+";
    if (std::abs(exp) < 10) out += '0';
    out += std::to_string(std::abs(exp));
  } else if (exp >= 0) {
    const size_t int_digits = size_t(exp) + 1;
    if (digits.size() < int_digits) digits.append(int_digits - digits.size(), '0');
    out += digits.substr(0, int_digits);
    out += '.';
    out += digits.size() > int_digits ? digits.substr(int_digits) : "0";
  } else {
    out += "0.";
    out.append(size_t(-exp - 1), '0');
    out += digits;
  }
}

}  // namespace

// ---- parser ---------------------------------------------------------------------------------

class Parser {
 public:
  Parser(std::string_view text, const std::string& source_name, size_t first_line)
      : s_(text), source_(source_name.empty() ? "json" : source_name), first_line_(first_line) {}

  Value parse_document() {
    skip_ws();
    Value v = parse_value();
    skip_ws();
    if (pos_ < s_.size()) fail_expected("end of input after the JSON value");
    return v;
  }

 private:
  // "<source>:<line>:<column>: <message>", the column counted in code points from 1.
  [[noreturn]] void fail(const std::string& message) const { fail_at(pos_, message); }
  [[noreturn]] void fail_at(size_t at, const std::string& message) const {
    size_t line = first_line_, column = 1;
    for (size_t i = 0; i < at && i < s_.size(); ++i) {
      if (s_[i] == '\n') {
        ++line;
        column = 1;
      } else if ((uint8_t(s_[i]) & 0xC0) != 0x80) {
        ++column;
      }
    }
    throw Error(str(source_, ":", line, ":", column, ": ", message));
  }
  [[noreturn]] void fail_expected(const std::string& what) const {
    fail(str("expected ", what, ", found ", found()));
  }
  std::string found() const {
    if (pos_ >= s_.size()) return "end of input";
    const unsigned char c = s_[pos_];
    if (c >= 0x20 && c < 0x7F) return str("'", char(c), "'");
    static const char* kHex = "0123456789abcdef";
    return str("byte 0x", kHex[c >> 4], kHex[c & 15]);
  }

  bool at_end() const { return pos_ >= s_.size(); }
  char peek() const { return at_end() ? '\0' : s_[pos_]; }
  void skip_ws() {
    while (!at_end() && (peek() == ' ' || peek() == '\t' || peek() == '\n' || peek() == '\r')) {
      ++pos_;
    }
  }
  void expect(char c, const char* what) {
    if (peek() != c || at_end()) fail_expected(what);
    ++pos_;
  }

  Value parse_value() {
    // clang-format off
    switch (peek()) {
      case '{': return parse_object();
      case '[': return parse_array();
      case '"': return Value(parse_string());
      case 't': return parse_literal("true", Value(true));
      case 'f': return parse_literal("false", Value(false));
      case 'n': return parse_literal("null", Value());
      default:
        if (peek() == '-' || (peek() >= '0' && peek() <= '9')) return parse_number();
        if (at_end() || peek() == '\0') fail_expected("a JSON value");
        fail_expected("a JSON value (object, array, string, number, true, false or null)");
    }
    // clang-format on
  }

  Value parse_literal(std::string_view word, Value v) {
    if (s_.substr(pos_, word.size()) != word) fail_expected(str("'", word, "'"));
    pos_ += word.size();
    return v;
  }

  void enter() {
    if (++depth_ > kMaxDepth) fail(str("nesting deeper than ", kMaxDepth, " levels"));
  }

  Value parse_object() {
    enter();
    ++pos_;  // '{'
    Value v = Value::object();
    std::unordered_set<std::string> keys;
    skip_ws();
    if (peek() == '}' && !at_end()) {
      ++pos_;
      --depth_;
      return v;
    }
    while (true) {
      skip_ws();
      if (peek() != '"' || at_end()) fail_expected("a string key");
      const size_t key_pos = pos_;
      std::string key = parse_string();
      if (!keys.insert(key).second) fail_at(key_pos, str("duplicate key \"", key, "\""));
      skip_ws();
      expect(':', "':' after an object key");
      skip_ws();
      Value member = parse_value();
      v.object_.emplace_back(std::move(key), std::move(member));
      skip_ws();
      if (peek() == ',' && !at_end()) {
        ++pos_;
        continue;
      }
      expect('}', "',' or '}' after an object member");
      --depth_;
      return v;
    }
  }

  Value parse_array() {
    enter();
    ++pos_;  // '['
    Value v = Value::array();
    skip_ws();
    if (peek() == ']' && !at_end()) {
      ++pos_;
      --depth_;
      return v;
    }
    while (true) {
      skip_ws();
      v.array_.push_back(parse_value());
      skip_ws();
      if (peek() == ',' && !at_end()) {
        ++pos_;
        continue;
      }
      expect(']', "',' or ']' after an array element");
      --depth_;
      return v;
    }
  }

  uint32_t parse_hex4() {
    uint32_t cp = 0;
    for (int k = 0; k < 4; ++k) {
      const char c = peek();
      uint32_t d;
      // clang-format off
      if (c >= '0' && c <= '9') d = c - '0';
      else if (c >= 'a' && c <= 'f') d = c - 'a' + 10;
      else if (c >= 'A' && c <= 'F') d = c - 'A' + 10;
      else fail_expected("4 hex digits after \\u");
      // clang-format on
      if (at_end()) fail_expected("4 hex digits after \\u");
      cp = cp * 16 + d;
      ++pos_;
    }
    return cp;
  }

  std::string parse_string() {
    ++pos_;  // opening quote
    std::string out;
    while (true) {
      if (at_end()) fail_expected("'\"' to close the string");
      const unsigned char c = s_[pos_];
      if (c == '"') {
        ++pos_;
        return out;
      }
      if (c < 0x20) {
        fail(str("control character U+00", "0123456789abcdef"[c >> 4], "0123456789abcdef"[c & 15],
                 " must be escaped inside a string"));
      }
      if (c == '\\') {
        parse_escape(out);
        continue;
      }
      const size_t n = utf8_sequence_length(s_, pos_);
      if (n == 0) fail(str("invalid UTF-8 in string (", found(), ")"));
      out.append(s_.substr(pos_, n));
      pos_ += n;
    }
  }

  void parse_escape(std::string& out) {
    const size_t escape_pos = pos_;
    ++pos_;  // backslash
    const char c = peek();
    if (at_end()) fail_expected("an escape character after '\\'");
    ++pos_;
    // clang-format off
    switch (c) {
      case '"': out += '"'; return;
      case '\\': out += '\\'; return;
      case '/': out += '/'; return;
      case 'b': out += '\b'; return;
      case 'f': out += '\f'; return;
      case 'n': out += '\n'; return;
      case 'r': out += '\r'; return;
      case 't': out += '\t'; return;
      case 'u': break;
      default:
        --pos_;
        fail_expected("one of \\\" \\\\ \\/ \\b \\f \\n \\r \\t \\u after '\\'");
    }
    // clang-format on
    uint32_t cp = parse_hex4();
    if (cp >= 0xDC00 && cp <= 0xDFFF) {
      fail_at(escape_pos, "unpaired low surrogate \\u" + std::string(s_.substr(escape_pos + 2, 4)));
    }
    if (cp >= 0xD800 && cp <= 0xDBFF) {  // UTF-16 pair: high surrogate then \uDC00..\uDFFF
      if (s_.substr(pos_, 2) != "\\u") {
        fail_at(escape_pos, str("high surrogate \\u", s_.substr(escape_pos + 2, 4),
                                " is not followed by a \\u low surrogate"));
      }
      pos_ += 2;
      const uint32_t lo = parse_hex4();
      if (lo < 0xDC00 || lo > 0xDFFF) {
        fail_at(escape_pos,
                str("high surrogate \\u", s_.substr(escape_pos + 2, 4), " is followed by \\u",
                    s_.substr(pos_ - 4, 4), ", not a low surrogate"));
      }
      cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
    }
    append_utf8(out, cp);
  }

  Value parse_number() {
    const size_t start = pos_;
    const auto digits = [&] {
      const size_t from = pos_;
      while (!at_end() && peek() >= '0' && peek() <= '9') ++pos_;
      return pos_ - from;
    };
    bool integer = true;
    if (peek() == '-') ++pos_;
    if (peek() == '0' && !at_end()) {
      ++pos_;
      if (!at_end() && peek() >= '0' && peek() <= '9') fail("leading zeros are not allowed");
    } else if (digits() == 0) {
      fail_expected("a digit");
    }
    if (peek() == '.' && !at_end()) {
      integer = false;
      ++pos_;
      if (digits() == 0) fail_expected("a digit after '.'");
    }
    if ((peek() == 'e' || peek() == 'E') && !at_end()) {
      integer = false;
      ++pos_;
      if ((peek() == '+' || peek() == '-') && !at_end()) ++pos_;
      if (digits() == 0) fail_expected("a digit in the exponent");
    }
    const char* first = s_.data() + start;
    const char* last = s_.data() + pos_;
    if (integer) {
      int64_t i = 0;
      const auto [p, ec] = std::from_chars(first, last, i);
      if (ec == std::errc() && p == last) return Value(i);
      // Outside int64: fall through to the nearest double.
    }
    double d = 0.0;
    const auto [p, ec] = std::from_chars(first, last, d);
    if (ec == std::errc::result_out_of_range) {
      // from_chars also reports underflow this way; a tiny literal is still a valid number.
      const std::string literal(first, last);
      d = std::strtod(literal.c_str(), nullptr);
      if (std::isinf(d)) fail_at(start, str("number ", literal, " is out of double range"));
    } else if (ec != std::errc() || p != last) {
      fail_at(start, str("malformed number ", std::string_view(first, size_t(last - first))));
    }
    return Value(d);
  }

  std::string_view s_;
  std::string source_;
  size_t first_line_;
  size_t pos_ = 0;
  int depth_ = 0;
};

Value parse(std::string_view text, const std::string& source_name) {
  return Parser(text, source_name, 1).parse_document();
}

Value parse_jsonl_line(std::string_view line, const std::string& source_name, size_t line_number) {
  return Parser(line, source_name, line_number).parse_document();
}

void for_each_jsonl_line(std::string_view text,
                         const std::function<void(std::string_view, size_t)>& fn) {
  // A UTF-8 byte-order mark (Windows editors write one) is not part of the first line's JSON.
  if (text.substr(0, 3) == "\xEF\xBB\xBF") text.remove_prefix(3);
  size_t line_number = 0;
  while (!text.empty()) {
    ++line_number;
    const size_t nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text = nl == std::string_view::npos ? std::string_view() : text.substr(nl + 1);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.find_first_not_of(" \t") == std::string_view::npos) continue;
    fn(line, line_number);
  }
}

std::vector<Value> parse_jsonl(std::string_view text, const std::string& source_name) {
  std::vector<Value> values;
  for_each_jsonl_line(text, [&](std::string_view line, size_t line_number) {
    values.push_back(parse_jsonl_line(line, source_name, line_number));
  });
  return values;
}

// ---- Value ----------------------------------------------------------------------------------

Value::Value(Object o) : type_(Type::Object) {
  std::unordered_set<std::string_view> keys;
  for (const auto& [key, value] : o) {
    RLFT_CHECK(keys.insert(key).second, "json: duplicate key \"", key, "\" in object");
  }
  object_ = std::move(o);
}

const char* Value::type_name() const {
  switch (type_) {
    case Type::Null:
      return "null";
    case Type::Bool:
      return "bool";
    case Type::Int:
      return "integer";
    case Type::Double:
      return "number";
    case Type::String:
      return "string";
    case Type::Array:
      return "array";
    case Type::Object:
      return "object";
  }
  return "?";
}

std::string Value::brief(size_t max) const {
  std::string shown = dump();
  if (shown.size() > max) shown = shown.substr(0, max < 3 ? 0 : max - 3) + "...";
  return shown;
}

void Value::type_error(const char* expected) const {
  throw Error(str("json: expected ", expected, ", found ", type_name(), " ", brief(60)));
}

bool Value::as_bool() const {
  if (type_ != Type::Bool) type_error("a bool");
  return bool_;
}

int64_t Value::as_int() const {
  if (type_ == Type::Int) return int_;
  // 2^63 is exactly representable; [-2^63, 2^63) is the int64 range.
  if (type_ == Type::Double && std::isfinite(double_) && std::trunc(double_) == double_ &&
      double_ >= -9223372036854775808.0 && double_ < 9223372036854775808.0) {
    return int64_t(double_);
  }
  type_error("an integer");
}

double Value::as_double() const {
  if (type_ == Type::Double) return double_;
  if (type_ == Type::Int) return double(int_);
  type_error("a number");
}

const std::string& Value::as_string() const {
  if (type_ != Type::String) type_error("a string");
  return string_;
}

const Value::Array& Value::as_array() const {
  if (type_ != Type::Array) type_error("an array");
  return array_;
}

Value::Array& Value::as_array() {
  if (type_ != Type::Array) type_error("an array");
  return array_;
}

const Value::Object& Value::as_object() const {
  if (type_ != Type::Object) type_error("an object");
  return object_;
}

Value::Object& Value::as_object() {
  if (type_ != Type::Object) type_error("an object");
  return object_;
}

const Value* Value::find(std::string_view key) const {
  for (const auto& [k, v] : as_object()) {
    if (k == key) return &v;
  }
  return nullptr;
}

void Value::throw_naming_key(std::string_view key, const Error& e) {
  std::string_view what = e.what();
  if (what.rfind("json: ", 0) == 0) what.remove_prefix(6);
  throw Error(str("json: '", key.substr(0, 60), key.size() > 60 ? "…" : "", "': ", what));
}

const Value& Value::at(std::string_view key) const {
  if (const Value* v = find(key)) return *v;
  std::string keys;
  for (size_t i = 0; i < object_.size() && i < 20; ++i) keys += (i ? ", " : "") + object_[i].first;
  if (object_.size() > 20) keys += ", ...";
  throw Error(str("json: missing key \"", key, "\" (keys: ", object_.empty() ? "none" : keys, ")"));
}

Value& Value::set(std::string_view key, Value value) {
  Value& slot = (*this)[key];
  slot = std::move(value);
  return slot;
}

Value& Value::operator[](std::string_view key) {
  if (type_ == Type::Null) type_ = Type::Object;
  for (auto& [k, v] : as_object()) {
    if (k == key) return v;
  }
  object_.emplace_back(std::string(key), Value());
  return object_.back().second;
}

const Value& Value::at(size_t index) const {
  const Array& a = as_array();
  RLFT_CHECK(index < a.size(), "json: index ", index, " out of range for an array of ", a.size(),
             " elements");
  return a[index];
}

void Value::push_back(Value value) {
  if (type_ == Type::Null) type_ = Type::Array;
  as_array().push_back(std::move(value));
}

size_t Value::size() const {
  if (type_ == Type::Array) return array_.size();
  if (type_ == Type::Object) return object_.size();
  type_error("an array or an object");
}

std::string Value::dump(int indent) const {
  std::string out;
  dump_to(out, indent, 0);
  return out;
}

void Value::dump_to(std::string& out, int indent, int depth) const {
  const auto newline = [&](int d) {
    if (indent < 0) return;
    out += '\n';
    out.append(size_t(indent) * size_t(d), ' ');
  };
  switch (type_) {
    case Type::Null:
      out += "null";
      return;
    case Type::Bool:
      out += bool_ ? "true" : "false";
      return;
    case Type::Int:
      out += std::to_string(int_);
      return;
    case Type::Double:
      dump_double(out, double_);
      return;
    case Type::String:
      dump_string(out, string_);
      return;
    case Type::Array:
      out += '[';
      for (size_t i = 0; i < array_.size(); ++i) {
        if (i) out += ',';
        newline(depth + 1);
        array_[i].dump_to(out, indent, depth + 1);
      }
      if (!array_.empty()) newline(depth);
      out += ']';
      return;
    case Type::Object:
      out += '{';
      for (size_t i = 0; i < object_.size(); ++i) {
        if (i) out += ',';
        newline(depth + 1);
        dump_string(out, object_[i].first);
        out += indent < 0 ? ":" : ": ";
        object_[i].second.dump_to(out, indent, depth + 1);
      }
      if (!object_.empty()) newline(depth);
      out += '}';
      return;
  }
}

bool operator==(const Value& a, const Value& b) {
  if (a.type_ != b.type_) return false;
  switch (a.type_) {
    case Value::Type::Null:
      return true;
    case Value::Type::Bool:
      return a.bool_ == b.bool_;
    case Value::Type::Int:
      return a.int_ == b.int_;
    case Value::Type::Double:
      return a.double_ == b.double_;
    case Value::Type::String:
      return a.string_ == b.string_;
    case Value::Type::Array:
      return a.array_ == b.array_;
    case Value::Type::Object:
      return a.object_ == b.object_;
  }
  return false;
}

}  // namespace rlft::json
