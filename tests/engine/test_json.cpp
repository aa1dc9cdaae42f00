// Tests of rlft::json: values, numbers, escapes, error positions, JSONL, accessors.
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstring>
#include <limits>
#include <random>

#include "engine/json.h"

namespace rlft::json {
namespace {

// Expects parse(text) to throw an rlft::Error whose message contains `part`.
void expect_parse_error(std::string_view text, const std::string& part,
                        const std::string& source = "") {
  try {
    parse(text, source);
    ADD_FAILURE() << "no error for: " << text;
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(part), std::string::npos)
        << "input: " << text << "\nmessage: " << e.what() << "\nwanted: " << part;
  }
}

template <typename F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

TEST(Json, ParsesEveryType) {
  const Value v = parse(R"( {"n": null, "t": true, "f": false, "i": -42, "d": 2.5,
                             "s": "hi", "a": [1, [], {}], "o": {"x": "y"}} )");
  ASSERT_TRUE(v.is_object());
  EXPECT_TRUE(v.at("n").is_null());
  EXPECT_TRUE(v.at("t").as_bool());
  EXPECT_FALSE(v.at("f").as_bool());
  EXPECT_TRUE(v.at("i").is_int());
  EXPECT_EQ(v.at("i").as_int(), -42);
  EXPECT_EQ(v.at("d").type(), Value::Type::Double);
  EXPECT_EQ(v.at("d").as_double(), 2.5);
  EXPECT_EQ(v.at("s").as_string(), "hi");
  EXPECT_EQ(v.at("a").size(), 3u);
  EXPECT_EQ(v.at("a").at(0).as_int(), 1);
  EXPECT_EQ(v.at("a").at(1).size(), 0u);
  EXPECT_EQ(v.at("o").at("x").as_string(), "y");
}

TEST(Json, ObjectsKeepInsertionOrder) {
  const Value v = parse(R"({"zeta": 1, "alpha": 2, "mid": 3})");
  EXPECT_EQ(v.as_object()[0].first, "zeta");
  EXPECT_EQ(v.as_object()[1].first, "alpha");
  EXPECT_EQ(v.as_object()[2].first, "mid");
  EXPECT_EQ(v.dump(), R"({"zeta":1,"alpha":2,"mid":3})");
}

TEST(Json, Int64ExtremesAreExact) {
  const Value v = parse("[9223372036854775807, -9223372036854775808, 0, -0]");
  EXPECT_EQ(v.at(0).as_int(), std::numeric_limits<int64_t>::max());
  EXPECT_EQ(v.at(1).as_int(), std::numeric_limits<int64_t>::min());
  EXPECT_TRUE(v.at(0).is_int());
  EXPECT_TRUE(v.at(1).is_int());
  EXPECT_EQ(v.dump(), "[9223372036854775807,-9223372036854775808,0,0]");
  // One past int64: the nearest double, as documented.
  const Value big = parse("9223372036854775808");
  EXPECT_EQ(big.type(), Value::Type::Double);
  EXPECT_EQ(big.as_double(), 9223372036854775808.0);
  EXPECT_NE(error_of([&] { big.as_int(); }).find("expected an integer, found number"),
            std::string::npos);
  // Values built from C++ integers.
  EXPECT_EQ(Value(uint64_t(INT64_MAX)).as_int(), INT64_MAX);
  EXPECT_NE(error_of([] { Value(uint64_t(1) << 63); }).find("does not fit int64"),
            std::string::npos);
}

TEST(Json, DoublesRoundTripExactly) {
  const double cases[] = {
      0.1, 1.0 / 3.0, 5e-324, 2.2250738585072014e-308, 1.7976931348623157e308, -0.0,
      1.0, -2.0,      1e20,   123456.789e-12};
  for (const double d : cases) {
    const std::string text = Value(d).dump();
    const Value back = parse(text);
    EXPECT_EQ(back.type(), Value::Type::Double) << text;
    EXPECT_EQ(std::bit_cast<uint64_t>(back.as_double()), std::bit_cast<uint64_t>(d)) << text;
  }
  // Random bit patterns: every finite double survives dump → parse bit for bit.
  std::mt19937_64 rng(7);
  for (int i = 0; i < 20000; ++i) {
    const double d = std::bit_cast<double>(rng());
    if (!std::isfinite(d)) continue;
    const double back = parse(Value(d).dump()).as_double();
    ASSERT_EQ(std::bit_cast<uint64_t>(back), std::bit_cast<uint64_t>(d)) << Value(d).dump();
  }
}

// The layout is Python's repr(), so a metrics line reads the same in rlft and in Python.
TEST(Json, DoublesDumpShortestAndStayDoubles) {
  EXPECT_EQ(Value(1.0).dump(), "1.0");
  EXPECT_EQ(Value(-0.0).dump(), "-0.0");
  EXPECT_EQ(Value(0.1).dump(), "0.1");
  EXPECT_EQ(Value(1e20).dump(), "1e+20");
  EXPECT_EQ(Value(1e16).dump(), "1e+16");
  EXPECT_EQ(Value(1e15).dump(), "1000000000000000.0");
  EXPECT_EQ(Value(123.25).dump(), "123.25");
  EXPECT_EQ(Value(0.0003).dump(), "0.0003");
  EXPECT_EQ(Value(0.0001).dump(), "0.0001");
  EXPECT_EQ(Value(1.5e-5).dump(), "1.5e-05");
  EXPECT_EQ(Value(-1.7976931348623157e308).dump(), "-1.7976931348623157e+308");
  EXPECT_EQ(Value(5e-324).dump(), "5e-324");
  EXPECT_EQ(Value(0.0).dump(), "0.0");
  EXPECT_EQ(Value(2.5e-8).dump(), "2.5e-08");
  EXPECT_EQ(Value(0.1f).dump(), "0.10000000149011612");  // a float widened to double
  EXPECT_EQ(parse("1E2").as_double(), 100.0);
  EXPECT_EQ(parse("-1.5e-3").as_double(), -0.0015);
  EXPECT_EQ(parse("1e-400").as_double(), 0.0);  // underflow rounds to zero, not an error
}

TEST(Json, NanAndInfinityDumpAsNull) {
  Value v = Value::object();
  v.set("loss", std::numeric_limits<double>::quiet_NaN());
  v.set("kl", std::numeric_limits<double>::infinity());
  v.set("neg", -std::numeric_limits<double>::infinity());
  EXPECT_EQ(v.dump(), R"({"loss":null,"kl":null,"neg":null})");
}

TEST(Json, StringEscapes) {
  const Value v = parse(R"("q\" b\\ s\/ \b\f\n\r\t \u0041\u00e9\u4e2d \ud83d\ude00")");
  EXPECT_EQ(v.as_string(), "q\" b\\ s/ \b\f\n\r\t A\xc3\xa9\xe4\xb8\xad \xf0\x9f\x98\x80");
  // dump escapes only what it must (as serde_json does); UTF-8 stays as it is.
  EXPECT_EQ(v.dump(), "\"q\\\" b\\\\ s/ \\b\\f\\n\\r\\t A\xc3\xa9\xe4\xb8\xad \xf0\x9f\x98\x80\"");
  EXPECT_EQ(Value(std::string("\x01\x1f\x7f", 3)).dump(), "\"\\u0001\\u001f\x7f\"");
  EXPECT_EQ(Value(std::string("a\0b", 3)).dump(), "\"a\\u0000b\"");
  EXPECT_EQ(parse("\"a\\u0000b\"").as_string(), std::string("a\0b", 3));
  // Raw UTF-8 in the input: 2-, 3- and 4-byte sequences.
  EXPECT_EQ(parse("\"\xc3\xa9\xe2\x9c\x93\xf0\x9f\x98\x80\"").as_string(),
            "\xc3\xa9\xe2\x9c\x93\xf0\x9f\x98\x80");
}

// \u escapes at every UTF-8 length boundary, and the extreme surrogate pairs. Expected bytes
// from RFC 3629's table: U+007F → 7F; U+0080 → C2 80; U+07FF → DF BF; U+0800 → E0 A0 80;
// U+D7FF → ED 9F BF; U+E000 → EE 80 80; U+FFFF → EF BF BF; the pair D800 DC00 is U+10000
// (0x10000 + (0 << 10) + 0) → F0 90 80 80; DBFF DFFF is U+10FFFF (0x10000 + (0x3FF << 10) +
// 0x3FF) → F4 8F BF BF. An encoder that puts a boundary code point in the wrong length, or
// a surrogate check off by one at either end of DC00..DFFF, changes one of these.
TEST(Json, UnicodeEscapesAtEveryEncodingBoundary) {
  const struct {
    const char* escape;
    std::string utf8;
  } cases[] = {
      {"\\u007f", "\x7f"},
      {"\\u0080", "\xc2\x80"},
      {"\\u07ff", "\xdf\xbf"},
      {"\\u0800", "\xe0\xa0\x80"},
      {"\\ud7ff", "\xed\x9f\xbf"},
      {"\\ue000", "\xee\x80\x80"},
      {"\\uffff", "\xef\xbf\xbf"},
      {"\\ud800\\udc00", "\xf0\x90\x80\x80"},
      {"\\udbff\\udfff", "\xf4\x8f\xbf\xbf"},
  };
  for (const auto& c : cases) {
    const std::string text = std::string("\"") + c.escape + "\"";
    EXPECT_EQ(parse(text).as_string(), c.utf8) << text;
  }
  expect_parse_error("\"\\udbff\\ue000\"", "is followed by \\ue000, not a low surrogate");
  expect_parse_error("\"\\udfff\"", "unpaired low surrogate \\udfff");
}

// Raw UTF-8 that RFC 3629 forbids at the edges of table 3-7, beyond the cases of
// ErrorsGiveLineColumnAndWhatWasExpected: an overlong 3-byte form (E0 80 80 would be U+0000),
// an overlong 4-byte form (F0 8F BF BF would be U+FFFF), and F4 90 80 80 (U+110000, above the
// last code point). The smallest and largest legal forms next to them parse.
TEST(Json, RawUtf8OutsideUnicodeOrOverlongIsRejected) {
  expect_parse_error("\"\xe0\x80\x80\"", "invalid UTF-8 in string (byte 0xe0)");
  expect_parse_error("\"\xf0\x8f\xbf\xbf\"", "invalid UTF-8 in string (byte 0xf0)");
  expect_parse_error("\"\xf4\x90\x80\x80\"", "invalid UTF-8 in string (byte 0xf4)");
  EXPECT_EQ(parse("\"\xe0\xa0\x80\"").as_string(), "\xe0\xa0\x80");
  EXPECT_EQ(parse("\"\xf0\x90\x80\x80\"").as_string(), "\xf0\x90\x80\x80");
  EXPECT_EQ(parse("\"\xf4\x8f\xbf\xbf\"").as_string(), "\xf4\x8f\xbf\xbf");
}

TEST(Json, RejectsBadStringsWhenWriting) {
  EXPECT_NE(error_of([] { Value(std::string("\xff")).dump(); }).find("not valid UTF-8"),
            std::string::npos);
}

TEST(Json, RoundTripsADocument) {
  const char* text =
      R"({"name":"ppo","seed":12345678901234,"lr":0.0003,"eps":[0.2,0.28],"flags":{"on":true,"off":false,"none":null},"text":"line1\nline2 é","empty":[],"nested":[[{}]]})";
  const Value v = parse(text);
  EXPECT_EQ(v.dump(), text);  // compact dump reproduces this canonical text exactly
  EXPECT_EQ(parse(v.dump(2)), v);
  EXPECT_EQ(parse(v.dump(0)), v);
}

TEST(Json, PrettyDump) {
  Value v;
  v["a"] = 1;
  v["b"].push_back(true);
  v["b"].push_back("x");
  v["c"] = Value::object();
  v["d"] = Value::array();
  EXPECT_EQ(v.dump(2),
            "{\n  \"a\": 1,\n  \"b\": [\n    true,\n    \"x\"\n  ],\n  \"c\": {},\n"
            "  \"d\": []\n}");
  EXPECT_EQ(v.dump(), R"({"a":1,"b":[true,"x"],"c":{},"d":[]})");
}

TEST(Json, Accessors) {
  const Value v = parse(R"({"lr": 0.001, "steps": 100, "big": 1e3, "half": 2.5, "name": "abc",
                            "nothing": null, "flag": true})");
  EXPECT_EQ(v.get_or("lr", 0.1), 0.001);
  EXPECT_EQ(v.get_or("missing", 0.1), 0.1);
  EXPECT_EQ(v.get_or("steps", 7), 100);
  EXPECT_EQ(v.get_or("nothing", 7), 7);  // null counts as absent
  EXPECT_EQ(v.get_or("name", "dflt"), "abc");
  EXPECT_EQ(v.get_or("missing", "dflt"), "dflt");
  EXPECT_EQ(v.get_or("flag", false), true);
  EXPECT_EQ(v.at("steps").as_double(), 100.0);  // an int reads as a double
  EXPECT_EQ(v.at("big").as_int(), 1000);        // an integral double reads as an int
  EXPECT_EQ(v.at("steps").as<uint8_t>(), 100);
  EXPECT_TRUE(v.contains("lr"));
  EXPECT_FALSE(v.contains("nope"));
  EXPECT_EQ(v.find("nope"), nullptr);

  EXPECT_EQ(error_of([&] { v.at("lrr"); }),
            "json: missing key \"lrr\" (keys: lr, steps, big, half, name, nothing, flag)");
  EXPECT_EQ(error_of([&] { v.at("name").as_int(); }),
            "json: expected an integer, found string \"abc\"");
  EXPECT_EQ(error_of([&] { v.at("half").as_int(); }),
            "json: expected an integer, found number 2.5");
  EXPECT_EQ(error_of([&] { v.at("flag").as_string(); }),
            "json: expected a string, found bool true");
  EXPECT_EQ(error_of([&] { v.at("lr").as_bool(); }), "json: expected a bool, found number 0.001");
  EXPECT_EQ(error_of([&] { v.at("name").at("x"); }),
            "json: expected an object, found string \"abc\"");
  EXPECT_EQ(error_of([&] { v.get_or("name", 1); }),
            "json: 'name': expected an integer, found string \"abc\"");
  EXPECT_EQ(error_of([&] { parse("[1,2]").at(2); }),
            "json: index 2 out of range for an array of 2 elements");
  EXPECT_NE(error_of([&] { parse("300").as<uint8_t>(); }).find("out of range"), std::string::npos);
  EXPECT_NE(error_of([&] { parse("-1").as<uint64_t>(); }).find("out of range"), std::string::npos);
  EXPECT_EQ(error_of([] {
              Value(Value::Object{{"a", 1}, {"a", 2}});
            }),
            "json: duplicate key \"a\" in object");
}

TEST(Json, SetReplacesInPlace) {
  Value v;
  v.set("a", 1);
  v.set("b", 2);
  v.set("a", 3);
  EXPECT_EQ(v.dump(), R"({"a":3,"b":2})");
}

// Each malformed input, with the position and expectation its error must state.
TEST(Json, ErrorsGiveLineColumnAndWhatWasExpected) {
  struct Case {
    std::string text, error;
  };
  const Case cases[] = {
      {"", "json:1:1: expected a JSON value, found end of input"},
      {"   \n  ", "json:2:3: expected a JSON value, found end of input"},
      {"{\"a\": 1,}", "json:1:9: expected a string key, found '}'"},
      {"{\"a\" 1}", "json:1:6: expected ':' after an object key, found '1'"},
      {"{\"a\": 1 \"b\": 2}", "json:1:9: expected ',' or '}' after an object member, found '\"'"},
      {"[1 2]", "json:1:4: expected ',' or ']' after an array element, found '2'"},
      {"[1,]",
       "json:1:4: expected a JSON value (object, array, string, number, true, false or "
       "null), found ']'"},
      {"{\n  \"a\": tru\n}", "json:2:8: expected 'true', found 't'"},
      {"nul", "json:1:1: expected 'null'"},
      {"NaN", "json:1:1: expected a JSON value (object"},
      {"{\"a\":1,\"a\":2}", "json:1:8: duplicate key \"a\""},
      {"[1] x", "json:1:5: expected end of input after the JSON value, found 'x'"},
      {"01", "json:1:2: leading zeros are not allowed"},
      {"-", "json:1:2: expected a digit, found end of input"},
      {"1.", "json:1:3: expected a digit after '.', found end of input"},
      {"1e+", "json:1:4: expected a digit in the exponent, found end of input"},
      {"1e999", "json:1:1: number 1e999 is out of double range"},
      {"\"abc", "json:1:5: expected '\"' to close the string, found end of input"},
      {"\"a\nb\"", "json:1:3: control character U+000a must be escaped inside a string"},
      {"\"\\x\"",
       "json:1:3: expected one of \\\" \\\\ \\/ \\b \\f \\n \\r \\t \\u after '\\', "
       "found 'x'"},
      {"\"\\u12G4\"", "json:1:6: expected 4 hex digits after \\u, found 'G'"},
      {"\"\\udc00\"", "json:1:2: unpaired low surrogate \\udc00"},
      {"\"\\ud83d\"", "json:1:2: high surrogate \\ud83d is not followed by a \\u low surrogate"},
      {"\"\\ud83d\\u0041\"", "json:1:2: high surrogate \\ud83d is followed by \\u0041, not a low"},
      {"\"\xff\"", "json:1:2: invalid UTF-8 in string (byte 0xff)"},
      {"\"\xc0\xaf\"", "json:1:2: invalid UTF-8 in string (byte 0xc0)"},      // overlong '/'
      {"\"\xed\xa0\x80\"", "json:1:2: invalid UTF-8 in string (byte 0xed)"},  // encoded surrogate
      {"\"\xe2\x9c\"", "json:1:2: invalid UTF-8 in string (byte 0xe2)"},      // truncated
      {"\xef\xbb\xbf{}",
       "json:1:1: expected a JSON value (object, array, string, number, true, "
       "false or null), found byte 0xef"},  // a byte-order mark is not JSON
      {"[\"\xc3\xa9\xc3\xa9\" x]", "json:1:7: expected ',' or ']'"},  // columns count code points
      {std::string(600, '['), "json:1:513: nesting deeper than 512 levels"},
  };
  for (const auto& c : cases) expect_parse_error(c.text, c.error);
  expect_parse_error("{\n\"a\": [1,\n 2,,\n]}", "config.json:3:4: expected a JSON value",
                     "config.json");
}

TEST(Json, JsonlLinesNameTheirLine) {
  EXPECT_EQ(error_of([] { parse_jsonl_line("{\"step\": 1 \"loss\": 2}", "metrics.jsonl", 17); }),
            "metrics.jsonl:17:12: expected ',' or '}' after an object member, found '\"'");
  const std::vector<Value> rows =
      parse_jsonl("{\"a\": 1}\r\n\n   \n{\"a\": 2}\n{\"a\": 3}", "prefs.jsonl");
  ASSERT_EQ(rows.size(), 3u);
  EXPECT_EQ(rows[2].at("a").as_int(), 3);
  EXPECT_EQ(error_of([] { parse_jsonl("{\"a\": 1}\n\n{\"a\": }\n", "prefs.jsonl"); }),
            "prefs.jsonl:3:7: expected a JSON value (object, array, string, number, true, false "
            "or null), found '}'");
}

}  // namespace
}  // namespace rlft::json
