#include "engine/checkpoint.h"

#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <set>

namespace rlft {

namespace {
const char* kOptimizerPrefix = "optimizer.";

// "holds NaN at flat index 3" for the first NaN or ±inf of a float tensor (CPU, contiguous);
// "" when every value is finite (or the tensor is not a float one).
std::string non_finite(const Tensor& t) {
  std::string found;
  if (t.dtype() != DType::f32 && t.dtype() != DType::f64) return found;
  dispatch_float(t.dtype(), "checkpoint", [&](auto tag) {
    using T = decltype(tag);
    const T* p = t.data<T>();
    for (int64_t i = 0; i < t.numel() && found.empty(); ++i)
      if (!std::isfinite(p[i]))
        found = str("holds ",
                    std::isnan(p[i]) ? "NaN"
                    : p[i] > 0       ? "+inf"
                                     : "-inf",
                    " at flat index ", i);
  });
  return found;
}

safetensors::DType to_st(DType t) {
  switch (t) {
    case DType::f32: return safetensors::DType::F32;
    case DType::f64: return safetensors::DType::F64;
    case DType::i64: return safetensors::DType::I64;
    case DType::b8: return safetensors::DType::BOOL;
  }
  throw Error("unknown dtype");
}
}  // namespace

safetensors::TensorRecord to_record(const std::string& name, const Tensor& t) {
  const Tensor c = t.to(Device::cpu()).contiguous();
  safetensors::TensorRecord r;
  r.name = name;
  r.dtype = to_st(t.dtype());
  r.shape = t.shape().vec();
  r.data.resize(size_t(c.numel()) * dtype_size(c.dtype()));
  if (!r.data.empty()) std::memcpy(r.data.data(), c.raw_data(), r.data.size());
  return r;
}

Tensor from_record(const safetensors::TensorRecord& r, const std::string& source) {
  DType dt;
  switch (r.dtype) {
    case safetensors::DType::F32: dt = DType::f32; break;
    case safetensors::DType::F64: dt = DType::f64; break;
    case safetensors::DType::I64: dt = DType::i64; break;
    case safetensors::DType::BOOL:
    case safetensors::DType::U8: dt = DType::b8; break;
    default:
      throw Error(str(source, ": tensor '", r.name, "' has dtype ", safetensors::dtype_name(r.dtype),
                      ", which rlft does not load (F32, F64, I64, BOOL, U8)"));
  }
  Tensor t = Tensor::empty(Shape(r.shape), dt);
  RLFT_CHECK(r.data.size() == size_t(t.numel()) * dtype_size(dt), source, ": tensor '", r.name, "' has ",
             r.data.size(), " bytes for shape ", t.shape());
  if (!r.data.empty()) std::memcpy(t.raw_data(), r.data.data(), r.data.size());
  return t;
}

void save_tensors(const std::string& path, const NamedTensors& tensors, const Metadata& metadata) {
  std::vector<safetensors::TensorRecord> records;
  records.reserve(tensors.size());
  for (const auto& [name, t] : tensors) records.push_back(to_record(name, t));
  safetensors::save(path, records, metadata);
}

NamedTensors load_tensors(const std::string& path, Metadata* metadata) {
  const safetensors::File f = safetensors::load(path);
  NamedTensors out;
  for (const auto& r : f.tensors) out.emplace_back(r.name, from_record(r, path));
  if (metadata) *metadata = f.metadata;
  return out;
}

void save_checkpoint(const std::string& path, const nn::Module& module, const optim::Optimizer* opt,
                     const Metadata& metadata) {
  NamedTensors all = module.named_parameters();
  if (opt) {
    for (auto& [name, t] : opt->state()) all.emplace_back(kOptimizerPrefix + name, t);
  }
  save_tensors(path, all, metadata);
}

Metadata load_checkpoint(const std::string& path, nn::Module& module, optim::Optimizer* opt) {
  Metadata metadata;
  load_checkpoint_tensors(load_tensors(path, &metadata), path, module, opt);
  return metadata;
}

double stored_weight_count(const NamedTensors& tensors) {
  double n = 0;
  for (const auto& [name, t] : tensors)
    if (name.rfind(kOptimizerPrefix, 0) != 0) n += double(t.numel());
  return n;
}

void load_checkpoint_tensors(const NamedTensors& loaded, const std::string& path,
                             nn::Module& module, optim::Optimizer* opt) {
  std::map<std::string, Tensor> by_name;
  NamedTensors opt_state;
  for (const auto& [name, t] : loaded) {
    if (name.rfind(kOptimizerPrefix, 0) == 0) opt_state.emplace_back(name.substr(std::strlen(kOptimizerPrefix)), t);
    else by_name[name] = t;
  }
  // Validate everything before touching the module.
  const NamedTensors params = module.named_parameters();
  std::vector<std::string> missing, problems;
  std::set<std::string> expected;
  for (const auto& [name, p] : params) {
    expected.insert(name);
    auto it = by_name.find(name);
    if (it == by_name.end()) {
      missing.push_back(name);
      continue;
    }
    const DType dt = it->second.dtype();  // a U8 file tensor loads as bool (from_record)
    if (dt != p.dtype())
      problems.push_back(str("'", name, "' is ", dt == DType::b8 ? "bool or uint8" : dtype_name(dt),
                             " but the model expects ", p.dtype()));
    else if (it->second.shape() != p.shape())
      problems.push_back(str("'", name, "' has shape ", it->second.shape(), " but the model expects ", p.shape()));
    else if (const std::string bad = non_finite(it->second); !bad.empty())
      problems.push_back(str("'", name, "' ", bad, " (weights must be finite)"));
  }
  std::vector<std::string> unexpected;
  for (const auto& [name, t] : by_name)
    if (!expected.count(name)) unexpected.push_back(name);
  auto join = [](const std::vector<std::string>& v) {
    std::string s;
    for (size_t i = 0; i < v.size() && i < 8; ++i) s += (i ? ", " : "") + v[i];
    if (v.size() > 8) s += str(", … (", v.size(), " in all)");
    return s;
  };
  RLFT_CHECK(problems.empty(), path, ": ", join(problems));
  RLFT_CHECK(missing.empty() && unexpected.empty(), path, ": checkpoint does not match the model: ",
             missing.empty() ? "" : "missing " + join(missing), !missing.empty() && !unexpected.empty() ? "; " : "",
             unexpected.empty() ? "" : "unexpected " + join(unexpected));
  RLFT_CHECK(!opt || !opt_state.empty(), path, ": no optimizer state in this checkpoint");
  if (opt) {
    try {
      opt->load_state(opt_state);  // validates its own names, shapes and values before we copy
    } catch (const Error& e) {
      throw Error(str(path, ": ", e.what()));
    }
  }
  NoGradGuard ng;
  for (const auto& [name, p] : params) p.copy_(by_name[name].to(p.device()));
}

namespace {

const std::string& metadata_text(const Metadata& m, const std::string& key,
                                 const std::string& source) {
  const auto it = m.find(key);
  RLFT_CHECK(it != m.end(), source, ": no '", key, "' in the checkpoint's metadata");
  RLFT_CHECK(!it->second.empty(), source, ": metadata '", key, "' is empty");
  return it->second;
}

// Written as rlft writes numbers: a sign then a digit, and none of the forms strtoll/strtod
// also take (leading space, '+', hexadecimal "0x10", "inf").
bool plain_number(const std::string& s, bool fraction) {
  const size_t first = s[0] == '-' ? 1 : 0;
  if (first >= s.size() || !std::isdigit(static_cast<unsigned char>(s[first]))) return false;
  for (char c : s)
    if (!std::isdigit(static_cast<unsigned char>(c)) && c != '-' &&
        !(fraction && (c == '.' || c == 'e' || c == 'E' || c == '+')))
      return false;
  return true;
}

}  // namespace

int64_t metadata_int(const Metadata& m, const std::string& key, const std::string& source,
                     int64_t lo, int64_t hi) {
  const std::string& s = metadata_text(m, key, source);
  char* end = nullptr;
  errno = 0;
  const long long v = std::strtoll(s.c_str(), &end, 10);
  RLFT_CHECK(plain_number(s, false) && *end == '\0' && errno != ERANGE, source, ": metadata '", key,
             "' is '", s, "', not an integer");
  RLFT_CHECK(v >= lo && v <= hi, source, ": metadata '", key, "' is ", v, ", outside [", lo, ", ",
             hi, "]");
  return v;
}

uint64_t metadata_uint(const Metadata& m, const std::string& key, const std::string& source) {
  const std::string& s = metadata_text(m, key, source);
  char* end = nullptr;
  errno = 0;
  const unsigned long long v = std::strtoull(s.c_str(), &end, 10);
  RLFT_CHECK(s[0] != '-' && plain_number(s, false) && *end == '\0' && errno != ERANGE, source,
             ": metadata '", key, "' is '", s, "', not an unsigned integer");
  return v;
}

double metadata_double(const Metadata& m, const std::string& key, const std::string& source) {
  const std::string& s = metadata_text(m, key, source);
  char* end = nullptr;
  const double v = std::strtod(s.c_str(), &end);
  RLFT_CHECK(plain_number(s, true) && *end == '\0' && std::isfinite(v), source, ": metadata '", key,
             "' is '", s, "', not a finite number");
  return v;
}

}  // namespace rlft
