// Tests of the character- and byte-level tokenizers.
#include <gtest/gtest.h>

#include "models/tokenizer.h"

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
