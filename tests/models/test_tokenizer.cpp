// Tests of the character- and byte-level tokenizers.
#include <gtest/gtest.h>

#include "models/tokenizer.h"
#include "test_util.h"

using namespace rlft;
using namespace rlft::models;

TEST(Tokenizer, CharRoundTripAndSpecials) {
  const Tokenizer t = Tokenizer::from_corpus("hello wörld 12+3=15\n");
  EXPECT_EQ(t.kind(), Tokenizer::Kind::chars);
  // distinct: '\n' ' ' '+' '1' '2' '3' '5' '=' 'd' 'e' 'h' 'l' 'o' 'r' 'w' 'ö' = 16
  EXPECT_EQ(t.vocab_size(), 16 + 3);
  EXPECT_EQ(t.bos_id(), 16);
  EXPECT_EQ(t.eos_id(), 17);
  EXPECT_EQ(t.pad_id(), 18);
  const std::string text = "wörld 15\nhello";
  const std::vector<int64_t> ids = t.encode(text);
  EXPECT_EQ(ids.size(), 14u);  // code points, not bytes
  EXPECT_EQ(t.decode(ids), text);
  std::vector<int64_t> with = ids;
  with.insert(with.begin(), t.bos_id());
  with.push_back(t.eos_id());
  EXPECT_EQ(t.decode(with), "<|bos|>" + text + "<|eos|>");
  EXPECT_EQ(t.decode(with, true), text);
  EXPECT_EQ(t.encode("+").at(0), 2);  // code-point order: '\n' ' ' '+'
  EXPECT_THROW(t.decode({19}), Error);
  EXPECT_THROW(t.decode({-1}), Error);
}

// Code points of every UTF-8 length, 4 bytes included (U+1F600, F0 9F 98 80): a corpus of
// "a中😀" has 3 symbols in code-point order, and text round-trips byte for byte.
TEST(Tokenizer, FourByteCharactersRoundTrip) {
  const Tokenizer t = Tokenizer::from_corpus("a\u4e2d\U0001F600");
  EXPECT_EQ(t.vocab_size(), 3 + 3);
  const std::string text = "\U0001F600\u4e2da";
  EXPECT_EQ(text, std::string("\xF0\x9F\x98\x80\xE4\xB8\xAD"
                              "a"));
  EXPECT_EQ(t.encode(text), (std::vector<int64_t>{2, 1, 0}));
  EXPECT_EQ(t.decode(t.encode(text)), text);
  EXPECT_EQ(utf8_encode(U'\U0001F600'), std::string("\xF0\x9F\x98\x80"));
  EXPECT_EQ(utf8_decode("\xF0\x9F\x98\x80"), std::vector<char32_t>{U'\U0001F600'});
}

TEST(Tokenizer, UnknownCharacterIsAnErrorNamingItAndItsPosition) {
  const Tokenizer t = Tokenizer::from_corpus("abc");
  try {
    t.encode("abéc");
    FAIL() << "no error";
  } catch (const Error& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("'é'"), std::string::npos) << m;
    EXPECT_NE(m.find("U+00E9"), std::string::npos) << m;
    EXPECT_NE(m.find("character 2"), std::string::npos) << m;
  }
  EXPECT_THROW(Tokenizer::from_corpus(""), Error);
  EXPECT_THROW(Tokenizer::from_corpus("\xff"), Error);  // invalid UTF-8
}

TEST(Tokenizer, BytesEncodeAnything) {
  const Tokenizer t = Tokenizer::bytes();
  EXPECT_EQ(t.vocab_size(), 259);
  EXPECT_EQ(t.eos_id(), 257);
  std::string all;
  for (int c = 0; c < 256; ++c) all += char(c);
  const std::vector<int64_t> ids = t.encode(all);
  ASSERT_EQ(ids.size(), 256u);
  for (int c = 0; c < 256; ++c) EXPECT_EQ(ids[size_t(c)], c);
  EXPECT_EQ(t.decode(ids), all);
  EXPECT_EQ(t.encode("é").size(), 2u);
}

TEST(Tokenizer, JsonRoundTrip) {
  const Tokenizer c = Tokenizer::from_corpus("zyx ×÷");
  const Tokenizer c2 = Tokenizer::from_json(json::parse(c.to_json().dump()));
  EXPECT_EQ(c2.vocab_size(), c.vocab_size());
  EXPECT_EQ(c2.encode("x × z"), c.encode("x × z"));
  const Tokenizer b2 = Tokenizer::from_json(Tokenizer::bytes().to_json());
  EXPECT_EQ(b2.kind(), Tokenizer::Kind::bytes);
  EXPECT_THROW(Tokenizer::from_json(json::parse(R"({"kind":"bpe"})")), Error);
  EXPECT_THROW(Tokenizer::from_json(json::parse(R"({"kind":"char","symbols":"ba"})")), Error);
  EXPECT_THROW(Tokenizer::make("word", "abc"), Error);
}

// Each UTF-8 length at both ends of its range: U+007F, U+0080, U+07FF, U+0800, U+FFFF,
// U+10000 and U+10FFFF encode to the bytes of RFC 3629 and decode back.
TEST(Tokenizer, Utf8LengthsChangeExactlyAtTheirBoundaries) {
  const std::pair<char32_t, std::string> cases[] = {{0x7F, "\x7F"},
                                                    {0x80, "\xC2\x80"},
                                                    {0x7FF, "\xDF\xBF"},
                                                    {0x800, "\xE0\xA0\x80"},
                                                    {0xFFFF, "\xEF\xBF\xBF"},
                                                    {0x10000, "\xF0\x90\x80\x80"},
                                                    {0x10FFFF, "\xF4\x8F\xBF\xBF"}};
  for (const auto& [cp, bytes] : cases) {
    EXPECT_EQ(utf8_encode(cp), bytes) << std::hex << unsigned(cp);
    EXPECT_EQ(utf8_decode(bytes), std::vector<char32_t>{cp}) << std::hex << unsigned(cp);
  }
}

// Byte sequences that are not UTF-8 though their lead and continuation bytes look right:
// overlong forms (a code point written with more bytes than it needs), UTF-16 surrogates and
// code points above U+10FFFF are refused, not decoded.
TEST(Tokenizer, OverlongSurrogateAndTooLargeSequencesAreRefused) {
  for (const char* bad : {"\xC0\x80",           // U+0000 in 2 bytes
                          "\xC1\xBF",           // U+007F in 2 bytes
                          "\xE0\x9F\xBF",       // U+07FF in 3 bytes
                          "\xF0\x8F\xBF\xBF",   // U+FFFF in 4 bytes
                          "\xED\xA0\x80",       // U+D800, a surrogate
                          "\xED\xBF\xBF",       // U+DFFF, a surrogate
                          "\xF4\x90\x80\x80"})  // U+110000
    EXPECT_THROW(utf8_decode(bad), Error) << ::testing::PrintToString(std::string(bad));
  EXPECT_EQ(utf8_decode("\xED\x9F\xBF"), std::vector<char32_t>{0xD7FF});  // just below them
  EXPECT_EQ(utf8_decode("\xEE\x80\x80"), std::vector<char32_t>{0xE000});  // just above them
}

// A sequence the end of the text cuts short is refused as truncated, also when the text is a
// view into a longer buffer whose next bytes would complete it (the decoder never reads past the
// view's end).
TEST(Tokenizer, DecodeRefusesASequenceCutByTheEndOfTheText) {
  const std::string buffer = "ab\xC3\xA9\xE2\x82\xAC";  // "ab", U+00E9, U+20AC
  EXPECT_EQ(utf8_decode(buffer), (std::vector<char32_t>{'a', 'b', 0xE9, 0x20AC}));
  for (const size_t cut : {3, 5, 6})
    EXPECT_EQ(rlft::testing::error_of(
                  [&] { (void)utf8_decode(std::string_view(buffer).substr(0, cut)); }),
              std::string("utf8: truncated sequence at byte ") + (cut == 3 ? "2" : "4"))
        << cut;
}

// DEL (0x7F) is the last ASCII character: in a corpus it is a symbol like any other.
TEST(Tokenizer, TheLastAsciiCharacterEncodes) {
  const Tokenizer t = Tokenizer::from_corpus("a\x7F");
  EXPECT_EQ(t.encode("\177a\177"), (std::vector<int64_t>{1, 0, 1}));  // octal: DEL a DEL
  EXPECT_EQ(t.decode({1, 0}), "\177a");
}

// A json vocab_size is checked against the one its symbols give (symbols + BOS, EOS, PAD).
TEST(Tokenizer, JsonVocabSizeMustMatchTheSymbols) {
  EXPECT_EQ(Tokenizer::from_json(json::parse(R"({"kind":"char","symbols":"ab","vocab_size":5})"))
                .vocab_size(),
            5);
  EXPECT_THROW(
      Tokenizer::from_json(json::parse(R"({"kind":"char","symbols":"ab","vocab_size":6})")), Error);
  EXPECT_THROW(Tokenizer::from_json(json::parse(R"({"kind":"byte","vocab_size":258})")), Error);
}
