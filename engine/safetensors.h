// rlft::safetensors — reads and writes Hugging Face's safetensors format, independent of Tensor.
//
// Format (github.com/huggingface/safetensors, README "Format" and safetensors/src/tensor.rs):
//   [8 bytes]  N, unsigned 64-bit little-endian: the header length
//   [N bytes]  UTF-8 JSON object:
//                {"__metadata__": {"key": "value", ...},              (optional, strings only)
//                 "name": {"dtype": "F32", "shape": [2, 3], "data_offsets": [begin, end]}, ...}
//   [rest]     the byte buffer; [begin, end) is relative to its start. Row-major, little-endian.
//
// Writing, as the reference writer does: tensors are laid out back to back, sorted by dtype
// alignment, largest first (I64, F64, F32, I32, BF16, F16, I16, I8, U8, BOOL — the reference's
// Dtype order, descending) then by name (bytewise); the header is compact JSON with
// "__metadata__" first (omitted when empty) and is padded with spaces to a multiple of 8 so
// every tensor starts 8-byte aligned. Our output is byte-identical to the reference's (up to
// the order of metadata keys, which the reference takes from a hash map and we sort).
//
// Reading validates everything and never trusts a length: header length (at most 100 MB, as in
// the reference), JSON, each entry's dtype/shape/data_offsets, and that the tensors cover the
// buffer exactly — sorted by offsets, each must start where the previous ended, the first at 0
// and the last ending at the end of the file — so no overlaps, holes or trailing bytes (the
// reference rejects these to prevent polyglot files). Extra keys in an entry are ignored, as the
// reference ignores them. Each failure is an rlft::Error naming the file and the tensor.
//
// Tensor data bytes are copied as they are: the caller provides and receives little-endian
// (host order on every machine rlft targets).
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace rlft::safetensors {

// The subset of the format's dtypes rlft reads and writes; names as in the format.
enum class DType { F64, F32, F16, BF16, I64, I32, I16, I8, U8, BOOL };

size_t dtype_size(DType dtype);            // bytes per element
const char* dtype_name(DType dtype);       // "F32", ...
DType parse_dtype(std::string_view name);  // "F32" → F32; anything else is an error

struct TensorRecord {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;  // [] is a scalar; a 0 dimension makes an empty tensor
  std::vector<uint8_t> data;   // numel × dtype_size bytes, row-major, little-endian
};

struct File {
  std::vector<TensorRecord> tensors;  // in the order of their data in the file
  std::map<std::string, std::string> metadata;
  std::string source;  // the path or name it was parsed from, for error messages

  const TensorRecord* find(std::string_view name) const;  // nullptr when absent
  // Throws "<source>: no tensor \"x\" (tensors: a, b, ...)" when absent.
  const TensorRecord& at(std::string_view name) const;
};

// Product of the dims (1 for a scalar); an error on a negative dim or int64 overflow.
int64_t numel(const std::vector<int64_t>& shape);

// Writes atomically (fs::atomic_write_file). Refuses duplicate names, the name "__metadata__",
// negative dims, and data whose size is not numel × dtype_size.
void save(const std::string& path, const std::vector<TensorRecord>& tensors,
          const std::map<std::string, std::string>& metadata = {});
// The file's bytes, as save() would write them.
std::string serialize(const std::vector<TensorRecord>& tensors,
                      const std::map<std::string, std::string>& metadata = {});

File load(const std::string& path);
File parse(std::string_view bytes, const std::string& source_name);

}  // namespace rlft::safetensors
