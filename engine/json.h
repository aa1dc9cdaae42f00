// rlft::json — a small JSON reader and writer (RFC 8259).
//
// Used for config.json, metrics.jsonl, preference-data JSONL files and the safetensors header.
//
// - Numbers: a literal written without fraction or exponent that fits int64 is kept as an exact
//   int64 (seeds, step counts, byte offsets); every other number is a double. An integer literal
//   outside int64 becomes the nearest double.
// - Objects keep their members in insertion (file) order; a duplicate key is a parse error.
// - Strings are UTF-8. The parser rejects invalid UTF-8, raw control characters and unpaired
//   \uXXXX surrogates; \uD83D\uDE00 pairs decode to one code point.
// - dump() is compact by default, byte-for-byte the form serde_json and safetensors write:
//   no spaces, only '"', '\\' and control characters escaped, non-ASCII kept as UTF-8. A double
//   is written in its shortest round-trip form (std::to_chars) with ".0" added when that form
//   looks like an integer, so 1.0 reads back as a double, not an int.
//   NaN and +-Inf have no JSON literal: dump() writes them as null (as JavaScript's
//   JSON.stringify does) so that a diverging run can still log its metrics line.
// - Errors are rlft::Error with "<source>:<line>:<column>: <what was expected>, found <what>";
//   columns count code points from 1. For JSONL, parse_jsonl_line() puts the file's own line
//   number in the message ("metrics.jsonl:17:9: expected ',' or '}' ...").
#pragma once

#include <concepts>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "engine/error.h"

namespace rlft::json {

class Value {
 public:
  enum class Type { Null, Bool, Int, Double, String, Array, Object };
  using Array = std::vector<Value>;
  using Member = std::pair<std::string, Value>;
  using Object = std::vector<Member>;  // insertion order; keys unique

  Value() = default;  // null
  Value(std::nullptr_t) {}
  Value(bool b) : type_(Type::Bool), bool_(b) {}
  template <std::integral I>
  requires(!std::same_as<I, bool>) Value(I i) : type_(Type::Int), int_(checked_int64(i)) {}
  template <std::floating_point F>
  Value(F d) : type_(Type::Double), double_(double(d)) {}
  Value(const char* s) : type_(Type::String), string_(s) {}
  Value(std::string_view s) : type_(Type::String), string_(s) {}
  Value(std::string s) : type_(Type::String), string_(std::move(s)) {}
  Value(Array a) : type_(Type::Array), array_(std::move(a)) {}
  Value(Object o);  // checks that keys are unique

  static Value array() { return Value(Array{}); }
  static Value object() { return Value(Object{}); }

  Type type() const { return type_; }
  const char* type_name() const;  // "null", "bool", "integer", "number", "string", ...
  bool is_null() const { return type_ == Type::Null; }
  bool is_bool() const { return type_ == Type::Bool; }
  bool is_int() const { return type_ == Type::Int; }
  bool is_number() const { return type_ == Type::Int || type_ == Type::Double; }
  bool is_string() const { return type_ == Type::String; }
  bool is_array() const { return type_ == Type::Array; }
  bool is_object() const { return type_ == Type::Object; }

  // Typed access; a wrong type throws "json: expected an integer, found string \"abc\"".
  bool as_bool() const;
  int64_t as_int() const;    // an int, or a double holding an exact integer in int64 range
  double as_double() const;  // an int or a double
  const std::string& as_string() const;
  const Array& as_array() const;
  Array& as_array();
  const Object& as_object() const;
  Object& as_object();

  // as<T>() for T = bool, any integral type (range-checked), float/double, std::string.
  template <typename T>
  T as() const;

  // Object access. at() throws "json: missing key \"lr\" (keys: a, b, c)"; find() returns
  // nullptr when absent; get_or() returns the fallback when the key is absent or null, and
  // names the key when the value is of another type ("json: 'mode': expected a string, …").
  bool contains(std::string_view key) const { return find(key) != nullptr; }
  const Value* find(std::string_view key) const;
  const Value& at(std::string_view key) const;
  template <typename T>
  T get_or(std::string_view key, T fallback) const {
    const Value* v = find(key);
    if (v == nullptr || v->is_null()) return fallback;
    try {
      return v->as<T>();
    } catch (const Error& e) {
      throw_naming_key(key, e);
    }
  }
  std::string get_or(std::string_view key, const char* fallback) const {
    return get_or<std::string>(key, std::string(fallback));
  }
  // Sets key (replacing an existing value in place, else appending); turns null into {}.
  Value& set(std::string_view key, Value value);
  // Like set(key, null) when absent; returns the member. Turns null into {}.
  Value& operator[](std::string_view key);

  // Array access (index checked) and append (turns null into []).
  const Value& at(size_t index) const;
  void push_back(Value value);
  size_t size() const;  // members of an object, elements of an array; else an error

  // indent < 0: one line, no spaces. indent >= 0: one member per line, indented.
  std::string dump(int indent = -1) const;
  // dump() for an error message: at most `max` characters, a longer text cut and ended "...".
  std::string brief(size_t max = 120) const;

  friend bool operator==(const Value& a, const Value& b);  // Int 1 != Double 1.0

 private:
  friend class Parser;

  template <typename I>
  static int64_t checked_int64(I i) {
    if constexpr (std::is_unsigned_v<I> && sizeof(I) >= sizeof(int64_t)) {
      RLFT_CHECK(i <= uint64_t(INT64_MAX), "json: integer ", i, " does not fit int64");
    }
    return int64_t(i);
  }
  [[noreturn]] void type_error(const char* expected) const;
  [[noreturn]] static void throw_naming_key(std::string_view key, const Error& e);
  void dump_to(std::string& out, int indent, int depth) const;

  Type type_ = Type::Null;
  bool bool_ = false;
  int64_t int_ = 0;
  double double_ = 0.0;
  std::string string_;
  Array array_;
  Object object_;
};

template <typename T>
T Value::as() const {
  if constexpr (std::same_as<T, bool>) {
    return as_bool();
  } else if constexpr (std::integral<T>) {
    const int64_t i = as_int();
    if constexpr (!std::same_as<T, int64_t>) {
      RLFT_CHECK(std::in_range<T>(i), "json: integer ", i, " is out of range for this field");
    }
    return T(i);
  } else if constexpr (std::floating_point<T>) {
    return T(as_double());
  } else if constexpr (std::same_as<T, std::string>) {
    return as_string();
  } else {
    static_assert(sizeof(T) == 0, "json::Value::as<T>: unsupported T");
  }
}

// Parses one JSON document; whitespace may surround it, anything else after it is an error.
// source_name (a file name) starts every error message; "json" when empty.
Value parse(std::string_view text, const std::string& source_name = "");

// Parses one line of a JSONL file; errors read "<source_name>:<line_number>:<column>: ...".
Value parse_jsonl_line(std::string_view line, const std::string& source_name, size_t line_number);

// Calls fn(line, line_number) for each non-blank line of a JSONL text (numbered from 1 as in
// the file), without its trailing '\r'; a UTF-8 byte-order mark at the start is skipped.
void for_each_jsonl_line(std::string_view text,
                         const std::function<void(std::string_view, size_t)>& fn);

// Parses a whole JSONL text: one value per non-blank line (a trailing '\r' is ignored).
std::vector<Value> parse_jsonl(std::string_view text, const std::string& source_name = "");

}  // namespace rlft::json
