// rlft::safetensors — see safetensors.h for the format and the rules checked.
#include "engine/safetensors.h"

#include <algorithm>
#include <bit>
#include <numeric>
#include <set>

#include "engine/error.h"
#include "engine/fs.h"
#include "engine/json.h"

namespace rlft::safetensors {
namespace {

static_assert(std::endian::native == std::endian::little,
              "safetensors data is little-endian; rlft copies it as host bytes");

// The reference rejects larger headers (MAX_HEADER_SIZE in safetensors/src/tensor.rs).
constexpr uint64_t kMaxHeaderBytes = 100'000'000;

struct DTypeInfo {
  DType dtype;
  const char* name;
  size_t size;
  int rank;  // position in the reference's Dtype enum, which lists dtypes by rising alignment
};
constexpr DTypeInfo kDTypes[] = {
    {DType::F64, "F64", 8, 8},   {DType::F32, "F32", 4, 7}, {DType::F16, "F16", 2, 4},
    {DType::BF16, "BF16", 2, 5}, {DType::I64, "I64", 8, 9}, {DType::I32, "I32", 4, 6},
    {DType::I16, "I16", 2, 3},   {DType::I8, "I8", 1, 2},   {DType::U8, "U8", 1, 1},
    {DType::BOOL, "BOOL", 1, 0},
};
// Valid in the format, not (yet) in rlft: named so the error can say so.
constexpr const char* kOtherFormatDTypes[] = {"U16",         "U32",     "U64",     "C64",
                                              "F8_E5M2",     "F8_E4M3", "F8_E8M0", "F8_E4M3FNUZ",
                                              "F8_E5M2FNUZ", "F4",      "F6_E2M3", "F6_E3M2"};

const DTypeInfo& info(DType dtype) {
  for (const auto& d : kDTypes) {
    if (d.dtype == dtype) return d;
  }
  throw Error(str("safetensors: invalid DType value ", int(dtype)));
}

std::string shape_str(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

// numel × dtype size, or an error (prefixed by `where`) on overflow.
uint64_t byte_size(DType dtype, const std::vector<int64_t>& shape, const std::string& where) {
  int64_t n = 0;
  try {
    n = numel(shape);  // throws on negative dims / overflow
  } catch (const Error& e) {
    throw Error(where + e.what());
  }
  const uint64_t size = dtype_size(dtype);
  RLFT_CHECK(uint64_t(n) <= UINT64_MAX / size, where, "shape ", shape_str(shape),
             " is too large to hold in bytes");
  return uint64_t(n) * size;
}

// "an integer", "a string", "null": for messages such as "dtype is an integer".
std::string a_type(const json::Value& v) {
  const std::string t = v.type_name();
  if (v.is_null()) return t;
  return (t[0] == 'a' || t[0] == 'i' || t[0] == 'o' ? "an " : "a ") + t;
}

}  // namespace

size_t dtype_size(DType dtype) { return info(dtype).size; }
const char* dtype_name(DType dtype) { return info(dtype).name; }

DType parse_dtype(std::string_view name) {
  for (const auto& d : kDTypes) {
    if (name == d.name) return d.dtype;
  }
  std::string supported;
  for (const auto& d : kDTypes) supported += (supported.empty() ? "" : ", ") + std::string(d.name);
  for (const char* other : kOtherFormatDTypes) {
    RLFT_CHECK(name != other, "dtype \"", name,
               "\" is valid safetensors but not supported by rlft (supported: ", supported, ")");
  }
  throw Error(str("unknown safetensors dtype \"", name, "\" (supported: ", supported, ")"));
}

int64_t numel(const std::vector<int64_t>& shape) {
  int64_t n = 1;
  for (const int64_t d : shape) {
    RLFT_CHECK(d >= 0, "shape ", shape_str(shape), " has a negative dimension");
    RLFT_CHECK(d == 0 || n <= INT64_MAX / d, "shape ", shape_str(shape),
               " has more elements than int64 can count");
    n *= d;
  }
  return n;
}

const TensorRecord* File::find(std::string_view name) const {
  for (const auto& t : tensors) {
    if (t.name == name) return &t;
  }
  return nullptr;
}

const TensorRecord& File::at(std::string_view name) const {
  if (const TensorRecord* t = find(name)) return *t;
  std::string names;
  for (size_t i = 0; i < tensors.size() && i < 20; ++i) names += (i ? ", " : "") + tensors[i].name;
  if (tensors.size() > 20) names += ", ...";
  throw Error(
      str(source, ": no tensor \"", name, "\" (tensors: ", names.empty() ? "none" : names, ")"));
}

// ---- writing --------------------------------------------------------------------------------

namespace {

std::string serialize_for(const std::vector<TensorRecord>& tensors,
                          const std::map<std::string, std::string>& metadata,
                          const std::string& where) {
  // Check every record, then order them as the reference writer does.
  std::set<std::string_view> names;
  std::vector<const TensorRecord*> order;
  for (const auto& t : tensors) {
    const std::string at = str(where, ": tensor \"", t.name, "\": ");
    RLFT_CHECK(t.name != "__metadata__", at, "the name is reserved for the metadata");
    RLFT_CHECK(names.insert(t.name).second, where, ": duplicate tensor name \"", t.name, "\"");
    const uint64_t want = byte_size(t.dtype, t.shape, at);
    RLFT_CHECK(t.data.size() == want, at, dtype_name(t.dtype), " ", shape_str(t.shape), " needs ",
               want, " bytes, data has ", t.data.size());
    order.push_back(&t);
  }
  std::stable_sort(order.begin(), order.end(), [](const TensorRecord* a, const TensorRecord* b) {
    const int ra = info(a->dtype).rank, rb = info(b->dtype).rank;
    return ra != rb ? ra > rb : a->name < b->name;  // std::string compares bytes as unsigned
  });

  json::Value header = json::Value::object();
  if (!metadata.empty()) {
    json::Value& m = header.set("__metadata__", json::Value::object());
    for (const auto& [key, value] : metadata) m.as_object().emplace_back(key, json::Value(value));
  }
  uint64_t offset = 0;
  for (const TensorRecord* t : order) {
    json::Value shape = json::Value::array();
    for (const int64_t d : t->shape) shape.push_back(d);
    json::Value entry = json::Value::object();
    entry.set("dtype", dtype_name(t->dtype));
    entry.set("shape", std::move(shape));
    entry.set("data_offsets", json::Value::Array{offset, offset + t->data.size()});
    header.as_object().emplace_back(t->name, std::move(entry));
    offset += t->data.size();
  }
  std::string header_text;
  try {
    header_text = header.dump();
  } catch (const Error& e) {  // e.g. a name that is not UTF-8
    throw Error(str(where, ": cannot write the header: ", e.what()));
  }
  header_text.append((8 - header_text.size() % 8) % 8, ' ');  // data starts 8-byte aligned
  RLFT_CHECK(header_text.size() <= kMaxHeaderBytes, where, ": header of ", header_text.size(),
             " bytes exceeds the ", kMaxHeaderBytes, "-byte limit readers accept");

  std::string out;
  out.reserve(8 + header_text.size() + offset);
  const uint64_t n = header_text.size();
  for (int i = 0; i < 8; ++i) out += char((n >> (8 * i)) & 0xFF);
  out += header_text;
  for (const TensorRecord* t : order) {
    out.append(reinterpret_cast<const char*>(t->data.data()), t->data.size());
  }
  return out;
}

}  // namespace

std::string serialize(const std::vector<TensorRecord>& tensors,
                      const std::map<std::string, std::string>& metadata) {
  return serialize_for(tensors, metadata, "safetensors serialize");
}

void save(const std::string& path, const std::vector<TensorRecord>& tensors,
          const std::map<std::string, std::string>& metadata) {
  fs::atomic_write_file(path,
                        serialize_for(tensors, metadata, str("safetensors save '", path, "'")));
}

// ---- reading --------------------------------------------------------------------------------

namespace {

// One header entry, before the coverage check.
struct Entry {
  std::string name;
  DType dtype;
  std::vector<int64_t> shape;
  uint64_t begin, end;
};

// A required member of a tensor entry, with its own error when absent.
const json::Value& field(const json::Value& entry, const char* key, const std::string& at) {
  const json::Value* v = entry.find(key);
  RLFT_CHECK(v != nullptr, at, "missing \"", key, "\"");
  return *v;
}

Entry parse_entry(const std::string& name, const json::Value& v, uint64_t buffer_size,
                  const std::string& at) {
  RLFT_CHECK(v.is_object(), at, "entry is ", a_type(v),
             ", expected an object with dtype, shape and data_offsets");
  Entry e{name, DType::F32, {}, 0, 0};

  const json::Value& dtype = field(v, "dtype", at);
  RLFT_CHECK(dtype.is_string(), at, "\"dtype\" is ", a_type(dtype), ", expected a string");
  try {
    e.dtype = parse_dtype(dtype.as_string());
  } catch (const Error& err) {
    throw Error(at + err.what());
  }

  const json::Value& shape = field(v, "shape", at);
  RLFT_CHECK(shape.is_array(), at, "\"shape\" is ", a_type(shape),
             ", expected an array of integers");
  for (const json::Value& d : shape.as_array()) {
    RLFT_CHECK(d.is_int(), at, "shape ", shape.dump(), " has a non-integer dimension");
    RLFT_CHECK(d.as_int() >= 0, at, "shape ", shape.dump(), " has a negative dimension");
    e.shape.push_back(d.as_int());
  }
  const uint64_t want = byte_size(e.dtype, e.shape, at);

  const json::Value& offsets = field(v, "data_offsets", at);
  const bool pair = offsets.is_array() && offsets.size() == 2 && offsets.at(0).is_int() &&
                    offsets.at(1).is_int() && offsets.at(0).as_int() >= 0 &&
                    offsets.at(1).as_int() >= 0;
  RLFT_CHECK(pair, at, "data_offsets must be [begin, end] with non-negative integers, found ",
             offsets.dump());
  e.begin = uint64_t(offsets.at(0).as_int());
  e.end = uint64_t(offsets.at(1).as_int());
  RLFT_CHECK(e.begin <= e.end, at, "data_offsets ", offsets.dump(), " have begin > end");
  RLFT_CHECK(e.end <= buffer_size, at, "data_offsets ", offsets.dump(), " run past the end of the ",
             buffer_size, "-byte data buffer (truncated file?)");
  RLFT_CHECK(e.end - e.begin == want, at, "data_offsets ", offsets.dump(), " hold ",
             e.end - e.begin, " bytes but ", dtype_name(e.dtype), " ", shape_str(e.shape),
             " needs ", want);
  return e;
}

}  // namespace

File parse(std::string_view bytes, const std::string& source_name) {
  const std::string src = source_name.empty() ? std::string("safetensors") : source_name;
  RLFT_CHECK(bytes.size() >= 8, src, ": file is ", bytes.size(),
             " bytes, too short for the 8-byte header length");
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | uint8_t(bytes[size_t(i)]);
  RLFT_CHECK(n <= kMaxHeaderBytes, src, ": header length ", n, " exceeds the ", kMaxHeaderBytes,
             "-byte limit (corrupt file, or not safetensors)");
  RLFT_CHECK(n <= bytes.size() - 8, src, ": header length ", n, " runs past the end of the file (",
             bytes.size(), " bytes)");
  const std::string_view header_text = bytes.substr(8, n);
  const std::string_view buffer = bytes.substr(8 + n);

  json::Value header;
  try {
    header = json::parse(header_text, "header");
  } catch (const Error& e) {
    throw Error(str(src, ": ", e.what()));
  }
  RLFT_CHECK(header.is_object(), src, ": header is ", a_type(header), ", expected an object");

  File file;
  file.source = src;
  std::vector<Entry> entries;
  for (const auto& [name, value] : header.as_object()) {
    if (name == "__metadata__") {
      RLFT_CHECK(value.is_object(), src, ": __metadata__ is ", a_type(value),
                 ", expected an object of strings");
      for (const auto& [key, v] : value.as_object()) {
        RLFT_CHECK(v.is_string(), src, ": __metadata__ \"", key, "\" is ", a_type(v),
                   ", expected a string");
        file.metadata.emplace(key, v.as_string());
      }
      continue;
    }
    // (Duplicate names cannot reach here: the JSON parser rejects duplicate keys.)
    entries.push_back(
        parse_entry(name, value, buffer.size(), str(src, ": tensor \"", name, "\": ")));
  }

  // The tensors, in offset order, must tile the buffer exactly.
  std::stable_sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  uint64_t covered = 0;
  for (size_t i = 0; i < entries.size(); ++i) {
    const Entry& e = entries[i];
    RLFT_CHECK(e.begin >= covered, src, ": tensor \"", e.name, "\" data_offsets [", e.begin, ", ",
               e.end, "] overlap tensor \"", entries[i - 1].name, "\" [", entries[i - 1].begin,
               ", ", entries[i - 1].end, "]");
    RLFT_CHECK(e.begin == covered, src, ": bytes [", covered, ", ", e.begin,
               ") of the data buffer belong to no tensor (a hole before tensor \"", e.name, "\")");
    covered = e.end;
  }
  RLFT_CHECK(covered == buffer.size(), src, ": the data buffer has ", buffer.size(),
             " bytes but the tensors cover only ", covered, " (trailing bytes)");

  file.tensors.reserve(entries.size());
  for (Entry& e : entries) {
    const auto* p = reinterpret_cast<const uint8_t*>(buffer.data()) + e.begin;
    file.tensors.push_back({std::move(e.name), e.dtype, std::move(e.shape),
                            std::vector<uint8_t>(p, p + (e.end - e.begin))});
  }
  return file;
}

File load(const std::string& path) { return parse(fs::read_file(path), path); }

}  // namespace rlft::safetensors
