// Tests of rlft::safetensors and rlft::fs: round trips of every dtype, byte-exact agreement with
// the reference writer, the Python fixture, a table of corrupt files (each with its own error),
// and atomic writes that leave the old file intact on failure.
//
// Interop, both directions:
//  - tests/data/safetensors/python_fixture.safetensors is written by Hugging Face's safetensors
//    (scripts/make_safetensors_fixtures.py); SafetensorsInterop.ReadsPythonFixture checks it.
//  - SafetensorsInterop.WritesFileForPython writes the same tensors with our save() to
//    <gtest TempDir>/rlft_interop.safetensors (/tmp/ by default); checked by hand with
//      /tmp/st-venv/bin/python scripts/make_safetensors_fixtures.py --check
//      /tmp/rlft_interop.safetensors
//    → "OK: /tmp/rlft_interop.safetensors: 8 tensors and metadata match"
//    (safetensors 0.8.0, numpy 2.4.6; venv set up as the script's docstring says).
#include <dirent.h>
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <bit>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <set>

#include "engine/error.h"
#include "engine/fs.h"
#include "engine/json.h"
#include "engine/safetensors.h"
#include "test_util.h"

namespace rlft::safetensors {
namespace {

template <typename T>
std::vector<uint8_t> bytes_of(const std::vector<T>& values) {
  std::vector<uint8_t> out(values.size() * sizeof(T));
  if (!out.empty()) std::memcpy(out.data(), values.data(), out.size());
  return out;
}

template <typename T>
TensorRecord record(std::string name, DType dtype, std::vector<int64_t> shape,
                    const std::vector<T>& values) {
  return {std::move(name), dtype, std::move(shape), bytes_of(values)};
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

// A fresh empty directory per test, removed with its files afterwards.
class TempDir {
 public:
  TempDir() {
    std::string pattern = ::testing::TempDir() + "rlft_st_XXXXXX";
    char* made = ::mkdtemp(pattern.data());
    if (made == nullptr) throw Error("mkdtemp failed");
    path_ = made;
  }
  ~TempDir() { remove_tree(path_); }
  const std::string& path() const { return path_; }
  std::string operator/(const std::string& name) const { return path_ + "/" + name; }
  std::vector<std::string> entries() const {
    std::vector<std::string> names;
    if (DIR* d = ::opendir(path_.c_str())) {
      while (dirent* e = ::readdir(d)) {
        if (std::strcmp(e->d_name, ".") != 0 && std::strcmp(e->d_name, "..") != 0) {
          names.push_back(e->d_name);
        }
      }
      ::closedir(d);
    }
    std::sort(names.begin(), names.end());
    return names;
  }

 private:
  static void remove_tree(const std::string& path) {
    ::chmod(path.c_str(), 0700);
    if (DIR* d = ::opendir(path.c_str())) {
      while (dirent* e = ::readdir(d)) {
        if (std::strcmp(e->d_name, ".") == 0 || std::strcmp(e->d_name, "..") == 0) continue;
        const std::string child = path + "/" + e->d_name;
        struct stat st;
        if (::lstat(child.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) {
          remove_tree(child);
        } else {
          ::unlink(child.c_str());
        }
      }
      ::closedir(d);
    }
    ::rmdir(path.c_str());
  }
  std::string path_;
};

// ---- dtypes ---------------------------------------------------------------------------------

TEST(SafetensorsDType, NamesAndSizes) {
  const std::pair<DType, size_t> all[] = {
      {DType::F64, 8}, {DType::F32, 4}, {DType::F16, 2}, {DType::BF16, 2}, {DType::I64, 8},
      {DType::I32, 4}, {DType::I16, 2}, {DType::I8, 1},  {DType::U8, 1},   {DType::BOOL, 1}};
  for (const auto& [dtype, size] : all) {
    EXPECT_EQ(dtype_size(dtype), size);
    EXPECT_EQ(parse_dtype(dtype_name(dtype)), dtype);
  }
  EXPECT_STREQ(dtype_name(DType::BF16), "BF16");
  EXPECT_STREQ(dtype_name(DType::BOOL), "BOOL");
  EXPECT_NE(error_of([] { parse_dtype("f32"); }).find("unknown safetensors dtype \"f32\""),
            std::string::npos);
  EXPECT_NE(error_of([] {
              parse_dtype("F8_E4M3");
            }).find("\"F8_E4M3\" is valid safetensors but not supported by rlft"),
            std::string::npos);
}

// ---- writing: byte-exact agreement with the reference ---------------------------------------

std::vector<uint8_t> le_bytes(std::initializer_list<int> bytes) {
  return std::vector<uint8_t>(bytes.begin(), bytes.end());
}

// The expected bytes are copied from the reference's own tests (test_serialization,
// test_empty in safetensors/src/tensor.rs).
TEST(SafetensorsWrite, MatchesReferenceBytes) {
  const std::string out =
      serialize({record("attn.0", DType::F32, {1, 2, 3}, std::vector<float>{0, 1, 2, 3, 4, 5})});
  const std::vector<uint8_t> want =
      le_bytes({64, 0,  0,   0,   0,   0,   0,   0,   123, 34,  97,  116, 116, 110, 46,  48,
                34, 58, 123, 34,  100, 116, 121, 112, 101, 34,  58,  34,  70,  51,  50,  34,
                44, 34, 115, 104, 97,  112, 101, 34,  58,  91,  49,  44,  50,  44,  51,  93,
                44, 34, 100, 97,  116, 97,  95,  111, 102, 102, 115, 101, 116, 115, 34,  58,
                91, 48, 44,  50,  52,  93,  125, 125, 0,   0,   0,   0,   0,   0,   128, 63,
                0,  0,  0,   64,  0,   0,   64,  64,  0,   0,   128, 64,  0,   0,   160, 64});
  EXPECT_EQ(std::vector<uint8_t>(out.begin(), out.end()), want);

  const std::string empty = serialize({});
  EXPECT_EQ(empty, std::string("\x08\0\0\0\0\0\0\0{}      ", 16));
  const std::string meta = serialize({}, {{"framework", "pt"}});
  EXPECT_EQ(meta, std::string("\x28\0\0\0\0\0\0\0", 8) +
                      "{\"__metadata__\":{\"framework\":\"pt\"}}     ");
}

TEST(SafetensorsWrite, SortsByDtypeAlignmentThenNameAndPadsHeader) {
  const std::vector<TensorRecord> tensors = {
      record("b_bool", DType::BOOL, {3}, std::vector<uint8_t>{1, 0, 1}),
      record("z_f32", DType::F32, {1}, std::vector<float>{1}),
      record("a_f32", DType::F32, {1}, std::vector<float>{2}),
      record("u8", DType::U8, {1}, std::vector<uint8_t>{7}),
      record("i64", DType::I64, {1}, std::vector<int64_t>{-1}),
      record("f64", DType::F64, {1}, std::vector<double>{0.5}),
      record("bf16", DType::BF16, {1}, std::vector<uint16_t>{0x3f80}),
      record("f16", DType::F16, {1}, std::vector<uint16_t>{0x3c00}),
      record("i32", DType::I32, {1}, std::vector<int32_t>{5}),
      record("i16", DType::I16, {1}, std::vector<int16_t>{-5}),
      record("i8", DType::I8, {1}, std::vector<int8_t>{-6}),
  };
  const std::string bytes = serialize(tensors);
  uint64_t n = 0;
  std::memcpy(&n, bytes.data(), 8);
  EXPECT_EQ(n % 8, 0u);
  const File file = parse(bytes, "sorted");
  std::vector<std::string> order;
  for (const auto& t : file.tensors) order.push_back(t.name);
  // The reference's Dtype enum order, descending: I64 F64 F32 I32 BF16 F16 I16 I8 U8 BOOL.
  EXPECT_EQ(order, (std::vector<std::string>{"i64", "f64", "a_f32", "z_f32", "i32", "bf16", "f16",
                                             "i16", "i8", "u8", "b_bool"}));
}

TEST(SafetensorsWrite, RoundTripsEveryDtypeAndShape) {
  const std::vector<TensorRecord> tensors = {
      record("f64", DType::F64, {2, 2}, std::vector<double>{1.5, -0.0, 1e300, -5e-324}),
      record("f32", DType::F32, {3}, std::vector<float>{1, 2, std::numeric_limits<float>::max()}),
      record("f16", DType::F16, {2, 1}, std::vector<uint16_t>{0x3c00, 0xfbff}),
      record("bf16", DType::BF16, {2}, std::vector<uint16_t>{0x3f80, 0xff80}),
      record("i64", DType::I64, {2}, std::vector<int64_t>{INT64_MIN, INT64_MAX}),
      record("i32", DType::I32, {1, 1, 2}, std::vector<int32_t>{INT32_MIN, INT32_MAX}),
      record("i16", DType::I16, {2}, std::vector<int16_t>{-32768, 32767}),
      record("i8", DType::I8, {2}, std::vector<int8_t>{-128, 127}),
      record("u8", DType::U8, {}, std::vector<uint8_t>{255}),          // 0-d
      record("bool", DType::BOOL, {2, 0, 3}, std::vector<uint8_t>{}),  // empty
      record("layers.0.attn/qkv \xc3\xa9", DType::F32, {0}, std::vector<float>{}),
  };
  const std::map<std::string, std::string> metadata = {{"step", "12"}, {"note", "a \"q\" \n"}};
  const File file = parse(serialize(tensors, metadata), "round-trip");
  EXPECT_EQ(file.metadata, metadata);
  ASSERT_EQ(file.tensors.size(), tensors.size());
  for (const auto& want : tensors) {
    const TensorRecord* got = file.find(want.name);
    ASSERT_NE(got, nullptr) << want.name;
    EXPECT_EQ(got->dtype, want.dtype) << want.name;
    EXPECT_EQ(got->shape, want.shape) << want.name;
    EXPECT_EQ(got->data, want.data) << want.name;
  }
  EXPECT_EQ(file.find("absent"), nullptr);
  EXPECT_NE(error_of([&] { file.at("absent"); }).find("round-trip: no tensor \"absent\""),
            std::string::npos);
}

TEST(SafetensorsWrite, RefusesBadRecords) {
  const auto f32 = [](std::string name, std::vector<int64_t> shape, size_t n) {
    return record(std::move(name), DType::F32, std::move(shape), std::vector<float>(n));
  };
  EXPECT_EQ(error_of([&] {
              serialize({f32("w", {2}, 2), f32("w", {1}, 1)});
            }),
            "safetensors serialize: duplicate tensor name \"w\"");
  EXPECT_EQ(error_of([&] {
              serialize({f32("w", {2, 3}, 5)});
            }),
            "safetensors serialize: tensor \"w\": F32 [2, 3] needs 24 bytes, data has 20");
  EXPECT_EQ(error_of([&] { serialize({f32("__metadata__", {1}, 1)}); }),
            "safetensors serialize: tensor \"__metadata__\": the name is reserved for the "
            "metadata");
  EXPECT_EQ(error_of([&] {
              serialize({f32("w", {2, -1}, 0)});
            }),
            "safetensors serialize: tensor \"w\": shape [2, -1] has a negative dimension");
  EXPECT_NE(error_of([&] { serialize({f32("bad\xff", {1}, 1)}); })
                .find("safetensors serialize: cannot write the header: json: cannot write a "
                      "string that is not valid UTF-8"),
            std::string::npos);
  TempDir dir;
  const std::string path = dir / "m.safetensors";
  EXPECT_EQ(error_of([&] { save(path, {f32("w", {2}, 3)}); }),
            "safetensors save '" + path + "': tensor \"w\": F32 [2] needs 8 bytes, data has 12");
  EXPECT_FALSE(fs::exists(path));
}

TEST(SafetensorsWrite, SaveAndLoadAFile) {
  TempDir dir;
  const std::string path = dir / "ckpt.safetensors";
  save(path, {record("w", DType::F32, {2}, std::vector<float>{1, 2})}, {{"step", "1"}});
  save(path, {record("w", DType::F32, {2}, std::vector<float>{3, 4})}, {{"step", "2"}});
  const File file = load(path);
  EXPECT_EQ(file.source, path);
  EXPECT_EQ(file.metadata.at("step"), "2");
  EXPECT_EQ(file.at("w").data, bytes_of(std::vector<float>{3, 4}));
  EXPECT_EQ(dir.entries(), std::vector<std::string>{"ckpt.safetensors"});  // no temp files left
  EXPECT_NE(error_of([&] {
              load(dir / "missing.safetensors");
            }).find("cannot read '" + dir.path() + "/missing.safetensors': No such file"),
            std::string::npos);
}

// ---- reading: the reference's own samples ---------------------------------------------------

TEST(SafetensorsRead, AcceptsReferenceSamples) {
  // test_empty_shapes_allowed, test_whitespace_leading_padded_header, test_zero_sized_tensor.
  const File scalar = parse(std::string("8\0\0\0\0\0\0\0", 8) +
                                R"({"test":{"dtype":"I32","shape":[],"data_offsets":[0,4]}})" +
                                std::string(4, '\0'),
                            "scalar");
  EXPECT_TRUE(scalar.at("test").shape.empty());
  EXPECT_EQ(scalar.at("test").data.size(), 4u);
  const File padded = parse(std::string("\x06\0\0\0\0\0\0\0\x09\x0a{}\x0d\x20", 14), "padded");
  EXPECT_TRUE(padded.tensors.empty());
  const File zero = parse(std::string("<\0\0\0\0\0\0\0", 8) +
                              R"({"test":{"dtype":"I32","shape":[2,0],"data_offsets":[0, 0]}})",
                          "zero");
  EXPECT_EQ(zero.at("test").shape, (std::vector<int64_t>{2, 0}));
  // Extra keys in an entry are ignored, as the reference ignores them.
  const std::string extra = R"({"t":{"dtype":"U8","shape":[1],"data_offsets":[0,1],"x":[]}})";
  std::string n(8, '\0');
  n[0] = char(extra.size());
  EXPECT_EQ(parse(n + extra + "\x2a", "extra").at("t").data, std::vector<uint8_t>{42});
}

// ---- reading: the Python fixture ------------------------------------------------------------

#ifndef RLFT_SOURCE_DIR
#define RLFT_SOURCE_DIR "."
#endif
const std::string kFixture =
    std::string(RLFT_SOURCE_DIR) + "/tests/data/safetensors/python_fixture.safetensors";

// The tensors of scripts/make_safetensors_fixtures.py (expected_tensors, METADATA).
std::vector<TensorRecord> fixture_tensors() {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const double inf = std::numeric_limits<double>::infinity();
  return {
      record("f32_matrix", DType::F32, {2, 3},
             std::vector<float>{0.0f, 1.5f, -2.25f, 3.4028235e38f, 1e-45f, -0.0f}),
      record("f32_empty", DType::F32, {0, 3}, std::vector<float>{}),
      record("f64_scalar", DType::F64, {}, std::vector<double>{3.141592653589793}),
      record("f64_special", DType::F64, {4}, std::vector<double>{nan, inf, -inf, 5e-324}),
      // float16 1, -2, 65504 (largest), 2^-14 (smallest normal).
      record("f16_vector", DType::F16, {4}, std::vector<uint16_t>{0x3c00, 0xc000, 0x7bff, 0x0400}),
      record("i64_extremes", DType::I64, {4}, std::vector<int64_t>{INT64_MIN, -1, 0, INT64_MAX}),
      record("u8_cube", DType::U8, {2, 2, 2}, std::vector<uint8_t>{0, 1, 2, 3, 4, 5, 254, 255}),
      record("bool_mask", DType::BOOL, {5}, std::vector<uint8_t>{1, 0, 1, 1, 0}),
  };
}
const std::map<std::string, std::string> kFixtureMetadata = {
    {"format", "np"}, {"note", "rlft fixture \xc3\xa9\xe2\x9c\x93"}};

TEST(SafetensorsInterop, ReadsPythonFixture) {
  const File file = load(kFixture);
  EXPECT_EQ(file.metadata, kFixtureMetadata);
  const std::vector<TensorRecord> want = fixture_tensors();
  ASSERT_EQ(file.tensors.size(), want.size());
  for (const auto& w : want) {
    const TensorRecord& got = file.at(w.name);
    EXPECT_EQ(got.dtype, w.dtype) << w.name;
    EXPECT_EQ(got.shape, w.shape) << w.name;
    EXPECT_EQ(got.data, w.data) << w.name;  // bit for bit, NaN included
  }
  // Our writer lays the same tensors out exactly as the reference did: same header entries in
  // the same order, same buffer. (Only the metadata key order may differ: the reference takes
  // it from a hash map.)
  const std::string theirs = fs::read_file(kFixture);
  const std::string ours = serialize(want, kFixtureMetadata);
  ASSERT_EQ(ours.size(), theirs.size());
  uint64_t n = 0;
  std::memcpy(&n, theirs.data(), 8);
  EXPECT_EQ(ours.substr(0, 8 + n).size(), theirs.substr(0, 8 + n).size());
  EXPECT_EQ(ours.substr(8 + n), theirs.substr(8 + n));
  json::Value their_header = json::parse(std::string_view(theirs).substr(8, n));
  json::Value our_header = json::parse(std::string_view(ours).substr(8, n));
  their_header.as_object().erase(their_header.as_object().begin());  // "__metadata__" is first
  our_header.as_object().erase(our_header.as_object().begin());
  EXPECT_EQ(our_header, their_header);
}

TEST(SafetensorsInterop, WritesFileForPython) {
  const std::string path = ::testing::TempDir() + "rlft_interop.safetensors";
  save(path, fixture_tensors(), kFixtureMetadata);
  std::printf("wrote %s; check with: python scripts/make_safetensors_fixtures.py --check %s\n",
              path.c_str(), path.c_str());
  EXPECT_EQ(load(path).tensors.size(), fixture_tensors().size());
}

// ---- reading: corrupt, truncated and mismatched files ---------------------------------------

// A file from header text and buffer bytes; `n` overrides the header length field.
std::string file_bytes(const std::string& header, const std::string& buffer,
                       uint64_t n = UINT64_MAX) {
  if (n == UINT64_MAX) n = header.size();
  std::string out;
  for (int i = 0; i < 8; ++i) out += char((n >> (8 * i)) & 0xFF);
  return out + header + buffer;
}

std::string entry(const std::string& name, const std::string& dtype, const std::string& shape,
                  const std::string& offsets) {
  return "\"" + name + "\":{\"dtype\":" + dtype + ",\"shape\":" + shape +
         ",\"data_offsets\":" + offsets + "}";
}

TEST(SafetensorsRead, EachCorruptionHasItsOwnError) {
  const std::string b16(16, '\0'), b24(24, '\0');
  const std::string w = entry("w", "\"I32\"", "[2,2]", "[0,16]");  // a valid 16-byte tensor
  struct Case {
    const char* what;
    std::string bytes;
    std::string error;
  };
  const std::vector<Case> cases = {
      {"empty file", "", "file is 0 bytes, too short for the 8-byte header length"},
      {"5 bytes", std::string("\x10\0\0\0\0", 5), "file is 5 bytes, too short"},
      {"absurd header length", file_bytes("{}", "", uint64_t(1) << 40),
       "header length 1099511627776 exceeds the 100000000-byte limit"},
      {"header past the end", file_bytes("{}", "", 100),
       "header length 100 runs past the end of "
       "the file (10 bytes)"},
      {"header length zero", file_bytes("", ""),
       "header:1:1: expected a JSON value, found end "
       "of input"},
      {"header cut short", file_bytes("{\"w\":", ""),
       "header:1:6: expected a JSON value, found "
       "end of input"},
      {"header not UTF-8", file_bytes("{\"w\xff\":1}", ""), "header:1:4: invalid UTF-8"},
      {"header not an object", file_bytes("[1,2]   ", ""),
       "header is an array, expected an "
       "object"},
      {"duplicate name", file_bytes("{" + w + "," + w + "}", b16),
       "header:1:58: duplicate key "
       "\"w\""},
      {"entry not an object", file_bytes("{\"w\":5}", ""),
       "tensor \"w\": entry is an integer, "
       "expected an object"},
      {"missing dtype", file_bytes(R"({"w":{"shape":[1],"data_offsets":[0,1]}})", "x"),
       "tensor \"w\": missing \"dtype\""},
      {"missing shape", file_bytes(R"({"w":{"dtype":"U8","data_offsets":[0,1]}})", "x"),
       "tensor \"w\": missing \"shape\""},
      {"missing offsets", file_bytes(R"({"w":{"dtype":"U8","shape":[1]}})", "x"),
       "tensor \"w\": missing \"data_offsets\""},
      {"dtype not a string", file_bytes("{" + entry("w", "4", "[1]", "[0,4]") + "}", "xxxx"),
       "tensor \"w\": \"dtype\" is an integer, expected a string"},
      {"unknown dtype", file_bytes("{" + entry("w", "\"F33\"", "[1]", "[0,4]") + "}", "xxxx"),
       "tensor \"w\": unknown safetensors dtype \"F33\""},
      {"unsupported dtype", file_bytes("{" + entry("w", "\"U16\"", "[2]", "[0,4]") + "}", "xxxx"),
       "tensor \"w\": dtype \"U16\" is valid safetensors but not supported by rlft"},
      {"shape not an array", file_bytes("{" + entry("w", "\"U8\"", "\"1\"", "[0,1]") + "}", "x"),
       "tensor \"w\": \"shape\" is a string, expected an array of integers"},
      {"negative dim", file_bytes("{" + entry("w", "\"U8\"", "[2,-1]", "[0,0]") + "}", ""),
       "tensor \"w\": shape [2,-1] has a negative dimension"},
      {"fractional dim", file_bytes("{" + entry("w", "\"U8\"", "[1.5]", "[0,1]") + "}", "x"),
       "tensor \"w\": shape [1.5] has a non-integer dimension"},
      {"numel overflow",
       file_bytes("{" + entry("w", "\"U8\"", "[4294967296,4294967296]", "[0,1]") + "}", "x"),
       "tensor \"w\": shape [4294967296, 4294967296] has more elements than int64 can count"},
      {"bytes overflow",
       file_bytes("{" + entry("w", "\"F64\"", "[4611686018427387904]", "[0,1]") + "}", "x"),
       "tensor \"w\": shape [4611686018427387904] is too large to hold in bytes"},
      {"offsets not a pair", file_bytes("{" + entry("w", "\"I32\"", "[2,2]", "[16]") + "}", b16),
       "tensor \"w\": data_offsets must be [begin, end] with non-negative integers, found [16]"},
      {"offset beyond int64",
       file_bytes("{" + entry("w", "\"I32\"", "[2,2]", "[0,18446744073709551615]") + "}", b16),
       "found [0,1.8446744073709552e+19]"},
      {"begin after end", file_bytes("{" + entry("w", "\"I32\"", "[2,2]", "[16,0]") + "}", b16),
       "tensor \"w\": data_offsets [16,0] have begin > end"},
      {"truncated data", file_bytes("{" + w + "}", b16.substr(0, 14)),
       "tensor \"w\": data_offsets [0,16] run past the end of the 14-byte data buffer "
       "(truncated file?)"},
      {"size mismatch", file_bytes("{" + entry("w", "\"I32\"", "[2,2]", "[0,8]") + "}", b16),
       "tensor \"w\": data_offsets [0,8] hold 8 bytes but I32 [2, 2] needs 16"},
      // more bytes than the shape needs, even when they tile the buffer exactly
      {"size too large", file_bytes("{" + entry("w", "\"I32\"", "[2,2]", "[0,24]") + "}", b24),
       "tensor \"w\": data_offsets [0,24] hold 24 bytes but I32 [2, 2] needs 16"},
      {"overlap", file_bytes("{" + w + "," + entry("v", "\"F32\"", "[2]", "[8,16]") + "}", b16),
       "tensor \"w\" data_offsets [8, 24] overlap"},  // placeholder, replaced below
      // b lies inside a (it ends first): in offset order, a then b, it is an overlap, not a hole
      {"nested overlap",
       file_bytes("{" + entry("a", "\"U8\"", "[16]", "[0,16]") + "," +
                      entry("b", "\"U8\"", "[4]", "[8,12]") + "}",
                  b16),
       "tensor \"b\" data_offsets [8, 12] overlap tensor \"a\" [0, 16]"},
      {"hole",
       file_bytes("{" + entry("a", "\"U8\"", "[8]", "[0,8]") + "," +
                      entry("b", "\"U8\"", "[8]", "[16,24]") + "}",
                  b24),
       "bytes [8, 16) of the data buffer belong to no tensor (a hole before tensor \"b\")"},
      {"hole at start", file_bytes("{" + entry("a", "\"U8\"", "[8]", "[8,16]") + "}", b16),
       "bytes [0, 8) of the data buffer belong to no tensor (a hole before tensor \"a\")"},
      {"trailing bytes", file_bytes("{" + w + "}", b24),
       "the data buffer has 24 bytes but the tensors cover only 16 (trailing bytes)"},
      {"no tensors, data", file_bytes("{}", "polyglot"),
       "the data buffer has 8 bytes but the tensors cover only 0 (trailing bytes)"},
      {"metadata not an object", file_bytes(R"({"__metadata__":["a"]})", ""),
       "__metadata__ is an array, expected an object of strings"},
      {"metadata value not a string", file_bytes(R"({"__metadata__":{"step":12}})", ""),
       "__metadata__ \"step\" is an integer, expected a string"},
  };
  std::set<std::string> distinct;
  for (Case c : cases) {
    if (std::string(c.what) == "overlap") {
      c.error = "tensor \"v\" data_offsets [8, 16] overlap tensor \"w\" [0, 16]";
    }
    distinct.insert(c.error);
    const std::string message = error_of([&] { parse(c.bytes, "bad.safetensors"); });
    EXPECT_EQ(message.rfind("bad.safetensors: ", 0), 0u) << c.what << ": " << message;
    EXPECT_NE(message.find(c.error), std::string::npos)
        << c.what << "\n  message: " << message << "\n  wanted:  " << c.error;
  }
  EXPECT_EQ(distinct.size(), cases.size());  // every case is told apart
}

// Every truncation and every single-byte corruption of a valid file either parses or throws
// rlft::Error — never crashes (run under -DRLFT_SANITIZE=ON to check for UB too).
TEST(SafetensorsRead, SurvivesEveryTruncationAndByteFlip) {
  const std::string good = serialize({record("a", DType::F32, {2}, std::vector<float>{1, 2}),
                                      record("b", DType::I64, {}, std::vector<int64_t>{3}),
                                      record("c", DType::BOOL, {0}, std::vector<uint8_t>{})},
                                     {{"k", "v"}});
  for (size_t len = 0; len < good.size(); ++len) {
    EXPECT_THROW(parse(std::string_view(good).substr(0, len), "cut"), Error) << len;
  }
  const uint8_t flips[] = {0x01, 0x80, 0xff, 0x20};
  int parsed = 0, rejected = 0;
  for (size_t i = 0; i < good.size(); ++i) {
    for (const uint8_t x : flips) {
      std::string bad = good;
      bad[i] = char(uint8_t(bad[i]) ^ x);
      try {
        parse(bad, "flip");
        ++parsed;
      } catch (const Error&) {
        ++rejected;
      }
    }
  }
  EXPECT_GT(rejected, 0);
  EXPECT_GT(parsed, 0);  // flips inside tensor data are still valid files
}

// ---- fs -------------------------------------------------------------------------------------

TEST(Fs, AtomicWriteCreatesAndReplaces) {
  TempDir dir;
  const std::string path = dir / "config.json";
  fs::atomic_write_file(path, "first");
  EXPECT_EQ(fs::read_file(path), "first");
  fs::atomic_write_file(path, std::string("sec\0ond", 7));
  EXPECT_EQ(fs::read_file(path), std::string("sec\0ond", 7));
  fs::atomic_write_file(path, "");
  EXPECT_EQ(fs::read_file(path), "");
  EXPECT_EQ(dir.entries(), std::vector<std::string>{"config.json"});
}

// The file replaced keeps its permissions (it took 0666 minus the umask: a config.json made
// private with chmod 600 was 0644 after the next write); a new file takes the umask's.
TEST(Fs, AtomicWriteKeepsTheReplacedFilesPermissions) {
  TempDir dir;
  const std::string path = dir / "config.json";
  fs::atomic_write_file(path, "first");
  ASSERT_EQ(::chmod(path.c_str(), 0600), 0);
  fs::atomic_write_file(path, "second");
  struct stat st;
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0600u);
  EXPECT_EQ(fs::read_file(path), "second");
  ASSERT_EQ(::chmod(path.c_str(), 0640), 0);
  fs::atomic_write_file(path, "third");
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0640u);
}

// A failure part-way through writing (file size limit → EFBIG; works even as root, unlike
// permission bits) leaves the old file as it was and no temporary file behind.
TEST(Fs, FailedAtomicWriteKeepsOldFileAndLeavesNoTemp) {
  TempDir dir;
  const std::string path = dir / "model.safetensors";
  fs::atomic_write_file(path, "old contents");

  struct rlimit old_limit;
  ASSERT_EQ(::getrlimit(RLIMIT_FSIZE, &old_limit), 0);
  const auto old_handler = std::signal(SIGXFSZ, SIG_IGN);
  struct rlimit small = old_limit;
  small.rlim_cur = 1024;
  ASSERT_EQ(::setrlimit(RLIMIT_FSIZE, &small), 0);
  const std::string message =
      error_of([&] { fs::atomic_write_file(path, std::string(4096, 'x')); });
  ::setrlimit(RLIMIT_FSIZE, &old_limit);
  std::signal(SIGXFSZ, old_handler);

  EXPECT_NE(message.find("cannot write '" + path + "'"), std::string::npos) << message;
  EXPECT_NE(message.find("File too large"), std::string::npos) << message;
  EXPECT_EQ(fs::read_file(path), "old contents");
  EXPECT_EQ(dir.entries(), std::vector<std::string>{"model.safetensors"});
}

TEST(Fs, AtomicWriteIntoUnwritableOrMissingDirectory) {
  TempDir dir;
  const std::string missing = dir / "no/such/dir/file";
  EXPECT_EQ(error_of([&] { fs::atomic_write_file(missing, "x"); }),
            "cannot write '" + missing + "': cannot create a temporary file in '" + dir.path() +
                "/no/such/dir': No such file or directory");
  if (::geteuid() == 0) GTEST_SKIP() << "root ignores directory permissions";
  const std::string locked = dir / "locked";
  fs::make_dirs(locked);
  fs::atomic_write_file(locked + "/f", "old");
  ASSERT_EQ(::chmod(locked.c_str(), 0500), 0);
  const std::string message = error_of([&] { fs::atomic_write_file(locked + "/f", "new"); });
  ::chmod(locked.c_str(), 0700);
  EXPECT_NE(message.find("Permission denied"), std::string::npos) << message;
  EXPECT_EQ(fs::read_file(locked + "/f"), "old");
}

TEST(Fs, RenameFileReplacesTheTargetAndNamesWhatIsWrong) {
  TempDir dir;
  const std::string a = dir / "critic.safetensors", b = dir / "critic.previous.safetensors";
  fs::atomic_write_file(a, "new");
  fs::atomic_write_file(b, "old");
  fs::rename_file(a, b);
  EXPECT_EQ(fs::read_file(b), "new");
  EXPECT_EQ(dir.entries(), std::vector<std::string>{"critic.previous.safetensors"});
  EXPECT_EQ(error_of([&] { fs::rename_file(a, b); }),
            "cannot rename '" + a + "' to '" + b + "': No such file or directory");
  EXPECT_EQ(fs::read_file(b), "new");
  fs::make_dirs(dir / "sub");
  EXPECT_EQ(error_of([&] { fs::rename_file(dir / "sub", b); }),
            "cannot rename '" + dir.path() + "/sub': it is a directory, not a file");
  EXPECT_EQ(error_of([&] { fs::rename_file(b, dir / "sub/x"); }),
            "rename_file: '" + b + "' and '" + dir.path() + "/sub/x' are in different directories");
}

TEST(Fs, ReadFileErrors) {
  TempDir dir;
  EXPECT_EQ(error_of([&] { fs::read_file(dir / "nope"); }),
            "cannot read '" + dir.path() + "/nope': No such file or directory");
  EXPECT_EQ(error_of([&] { fs::read_file(dir.path()); }),
            "cannot read '" + dir.path() + "': Is a directory");
  const std::string big(300000, 'z');  // more than one read() chunk
  fs::atomic_write_file(dir / "big", big);
  EXPECT_EQ(fs::read_file(dir / "big"), big);
}

TEST(Fs, AppendLine) {
  TempDir dir;
  const std::string path = dir / "metrics.jsonl";
  fs::append_line(path, R"({"step":1})");
  fs::append_line(path, R"({"step":2})");
  EXPECT_EQ(fs::read_file(path), "{\"step\":1}\n{\"step\":2}\n");
  EXPECT_EQ(error_of([&] { fs::append_line(path, "a\nb"); }),
            "append_line '" + path + "': the line contains a newline");
  EXPECT_EQ(error_of([&] { fs::append_line(dir.path(), "x"); }),
            "cannot append to '" + dir.path() + "': Is a directory");

  // A line that hits the file size limit part-way is removed again: no partial line remains.
  struct rlimit old_limit;
  ASSERT_EQ(::getrlimit(RLIMIT_FSIZE, &old_limit), 0);
  const auto old_handler = std::signal(SIGXFSZ, SIG_IGN);
  struct rlimit small = old_limit;
  small.rlim_cur = 64;
  ASSERT_EQ(::setrlimit(RLIMIT_FSIZE, &small), 0);
  const std::string message = error_of([&] { fs::append_line(path, std::string(100, 'x')); });
  ::setrlimit(RLIMIT_FSIZE, &old_limit);
  std::signal(SIGXFSZ, old_handler);
  EXPECT_EQ(message, "cannot append to '" + path + "': File too large");
  EXPECT_EQ(fs::read_file(path), "{\"step\":1}\n{\"step\":2}\n");
}

TEST(Fs, SyncFileRecordsTheSizeItMadeDurable) {
  TempDir dir;
  const std::string path = dir / "metrics.jsonl";
  fs::forget_flushes();
  fs::append_line(path, R"({"step":1})");  // 11 bytes with the newline
  EXPECT_EQ(fs::synced_size(path), -1);    // appended, never flushed
  fs::sync_file(path);
  EXPECT_EQ(fs::read_file(path), "{\"step\":1}\n");
  EXPECT_EQ(fs::synced_size(path), 11);
  fs::append_line(path, R"({"step":2})");
  EXPECT_EQ(fs::synced_size(path), 11) << "a later append is not on disk until the next flush";
  fs::sync_file(path);
  EXPECT_EQ(fs::synced_size(path), 22);
  // Another file at the same path (a rewrite, as a resume's) is on disk as it was written.
  fs::atomic_write_file(path, "{\"step\":1}\n");
  EXPECT_EQ(fs::synced_size(path), 11);
  fs::append_line(path, R"({"step":2})");
  EXPECT_EQ(fs::synced_size(path), 11);
  fs::sync_file(path);
  EXPECT_EQ(fs::synced_size(path), 22);
  fs::forget_flushes();
  EXPECT_EQ(fs::synced_size(path), -1);
  EXPECT_EQ(fs::synced_size(dir / "nope"), -1);
  EXPECT_EQ(error_of([&] { fs::sync_file(dir / "nope"); }),
            "cannot flush '" + dir.path() + "/nope' to disk: No such file or directory");
}

// The order of the last flushes: a trainer's log flushed before its checkpoint was written has the
// smaller number (tests/rl/resume_fixture.h).
TEST(Fs, FlushOrderFollowsTheFlushes) {
  TempDir dir;
  const std::string log = dir / "metrics.jsonl", ckpt = dir / "checkpoint.safetensors";
  fs::forget_flushes();
  fs::append_line(log, R"({"step":1})");
  EXPECT_EQ(fs::flush_order(log), -1);
  fs::sync_file(log);
  fs::atomic_write_file(ckpt, "weights");
  const int64_t log_first = fs::flush_order(log), ckpt_first = fs::flush_order(ckpt);
  EXPECT_GT(log_first, 0);
  EXPECT_LT(log_first, ckpt_first) << "the log was flushed first";
  EXPECT_EQ(fs::synced_size(ckpt), 7);
  // The other order: the checkpoint rewritten, then the log flushed.
  fs::atomic_write_file(ckpt, "weights2");
  fs::sync_file(log);
  EXPECT_GT(fs::flush_order(ckpt), ckpt_first);
  EXPECT_GT(fs::flush_order(log), fs::flush_order(ckpt));
  fs::forget_flushes();
  EXPECT_EQ(fs::flush_order(log), -1);
  EXPECT_EQ(fs::flush_order(ckpt), -1);
  EXPECT_EQ(fs::flush_order(dir / "nope"), -1);
}

TEST(Fs, MakeDirs) {
  TempDir dir;
  const std::string nested = dir / "runs/ppo/seed1";
  fs::make_dirs(nested);
  fs::make_dirs(nested);  // existing: fine
  fs::make_dirs(nested + "/");
  EXPECT_TRUE(fs::exists(nested));
  fs::atomic_write_file(dir / "file", "x");
  EXPECT_EQ(error_of([&] { fs::make_dirs(dir / "file/sub"); }),
            "cannot create directory '" + dir.path() + "/file/sub' (at '" + dir.path() +
                "/file'): it exists and is not a directory");
  EXPECT_EQ(error_of([&] { fs::make_dirs(dir / "file"); }),
            "cannot create directory '" + dir.path() + "/file': it exists and is not a directory");
  if (::geteuid() == 0) GTEST_SKIP() << "root ignores directory permissions";
  const std::string locked = dir / "locked";
  fs::make_dirs(locked);
  ASSERT_EQ(::chmod(locked.c_str(), 0500), 0);
  const std::string message = error_of([&] { fs::make_dirs(locked + "/run/x"); });
  ::chmod(locked.c_str(), 0700);
  EXPECT_EQ(message, "cannot create directory '" + locked + "/run/x' (at '" + locked +
                         "/run'): Permission denied");
}

TEST(Fs, AbsolutePathJoinsTheWorkingDirectory) {
  TempDir dir;
  fs::make_dirs(dir / "sub");
  rlft::testing::in_directory(dir / "sub", [&] {
    std::string cwd(4096, '\0');
    ASSERT_NE(::getcwd(cwd.data(), cwd.size()), nullptr);
    cwd.resize(std::strlen(cwd.c_str()));
    EXPECT_EQ(fs::absolute_path("d.jsonl"), cwd + "/d.jsonl");
    EXPECT_EQ(fs::absolute_path("./d.jsonl"), cwd + "/d.jsonl");
    EXPECT_EQ(fs::absolute_path(".//./x/d.jsonl"), cwd + "/x/d.jsonl");
    EXPECT_EQ(fs::absolute_path("../d.jsonl"), cwd + "/../d.jsonl");  // not rewritten
    EXPECT_EQ(fs::absolute_path("."), cwd);
    EXPECT_EQ(fs::absolute_path("./"), cwd);
    EXPECT_EQ(fs::absolute_path("/etc/x"), "/etc/x");  // from the root already: as it is
  });
  rlft::testing::in_directory("/", [&] { EXPECT_EQ(fs::absolute_path("tmp/x"), "/tmp/x"); });
  EXPECT_EQ(error_of([&] { fs::absolute_path(""); }), "absolute_path: empty path");
  // A working directory that no longer exists cannot be read: the error names the path.
  rlft::testing::in_directory(dir / "sub", [&] {
    ASSERT_EQ(::rmdir((dir / "sub").c_str()), 0);
    const std::string message = error_of([&] { fs::absolute_path("d.jsonl"); });
    EXPECT_EQ(message.rfind("cannot resolve 'd.jsonl': the working directory: ", 0), 0u) << message;
    EXPECT_EQ(::chdir(dir.path().c_str()), 0);
  });
}

}  // namespace
}  // namespace rlft::safetensors
