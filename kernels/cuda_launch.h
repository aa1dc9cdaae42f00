// The launch shape of a CUDA row kernel, for benchmarks that sweep it and tests that pin it.
// Every field 0 means "the dispatcher's choice" (each kernel's manual says what that is), so
// callers other than sweeps pass nothing. Header-only, host side, no CUDA headers needed.
#pragma once

#include <charconv>
#include <cstdlib>
#include <string>
#include <string_view>

#include "engine/error.h"

namespace rlft::kernels {

struct CudaLaunch {
  int block = 0;   // threads per block: 0, or a power of two in [32, 512]
  int unroll = 0;  // loads issued together per thread before any is used: 0, 1, 2, 4 or 8
  int vec = 0;     // 0: 16-byte vector loads where the data allows them; 1: scalar loads only
  int version = 0;  // a kernel with several versions behind one call (ratio_clip): 0 = default
  // ratio_clip's token-level layout: 0 = default (a block per row); 1 = rows in chunks of a
  // block each; 2 = flat (token_mean: the [B, T] tokens as one sequence cut into one chunk per
  // resident block, a persistent grid); 3 = bulk (flat's tokens in chunks copied into shared
  // memory by the tensor memory accelerator, sm_90+)
  int chunked = 0;
  // 1: a kernel that follows another is launched the ordinary way, after it has finished;
  // 0 (default): programmatically dependent where the GPU allows it (sm_90+: its launch
  // overlaps the first kernel's end). Used by ratio_clip's finishing kernel.
  int serial = 0;
  // 1: the op's FIRST kernel is itself launched programmatically dependent on whatever
  // precedes it on the stream (sm_90+: its blocks are scheduled while that one ends and wait
  // for it in-kernel before their first load); 0 (default): the ordinary way. Used by
  // ratio_clip's forward.
  int dependent = 0;
  // 1: no finishing kernel: the first kernel's blocks take tickets from a per-stream counter
  // after their partial sums and the last one computes the totals; 0 (default): a finishing
  // kernel. Used by ratio_clip's forward.
  int last_block = 0;
  // 1: each thread loads its next group of tokens before it computes the current one (one
  // group ahead in registers, so a thread's loads overlap its own arithmetic); 0 (default):
  // load, then compute. Used by ratio_clip's version 3 forward (unroll 0 or 1).
  int prefetch = 0;
};

// Throws rlft::Error naming `op` and the bad field.
inline void check_launch(const char* op, const CudaLaunch& l) {
  const bool pow2 = l.block > 0 && (l.block & (l.block - 1)) == 0;
  RLFT_CHECK(l.block == 0 || (pow2 && l.block >= 32 && l.block <= 512), op,
             ": launch.block must be 0 or a power of two in [32, 512], got ", l.block);
  RLFT_CHECK(l.unroll == 0 || l.unroll == 1 || l.unroll == 2 || l.unroll == 4 || l.unroll == 8, op,
             ": launch.unroll must be 0, 1, 2, 4 or 8, got ", l.unroll);
  RLFT_CHECK(l.vec == 0 || l.vec == 1, op, ": launch.vec must be 0 or 1, got ", l.vec);
  RLFT_CHECK(l.version >= 0, op, ": launch.version must be >= 0, got ", l.version);
  RLFT_CHECK(l.chunked >= 0 && l.chunked <= 3, op, ": launch.chunked must be 0, 1, 2 or 3, got ",
             l.chunked);
  RLFT_CHECK(l.serial == 0 || l.serial == 1, op, ": launch.serial must be 0 or 1, got ", l.serial);
  RLFT_CHECK(l.dependent == 0 || l.dependent == 1, op, ": launch.dependent must be 0 or 1, got ",
             l.dependent);
  RLFT_CHECK(l.last_block == 0 || l.last_block == 1, op, ": launch.last_block must be 0 or 1, got ",
             l.last_block);
  RLFT_CHECK(l.prefetch == 0 || l.prefetch == 1, op, ": launch.prefetch must be 0 or 1, got ",
             l.prefetch);
}

// CudaLaunch's fields by name (parse_launch, with_defaults); null for an unknown name.
inline constexpr const char* kLaunchFieldNames[] = {"block",     "unroll",     "vec",
                                                    "version",   "chunked",    "serial",
                                                    "dependent", "last_block", "prefetch"};
inline int* launch_field(CudaLaunch& l, std::string_view name) {
  if (name == "block") return &l.block;
  if (name == "unroll") return &l.unroll;
  if (name == "vec") return &l.vec;
  if (name == "version") return &l.version;
  if (name == "chunked") return &l.chunked;
  if (name == "serial") return &l.serial;
  if (name == "dependent") return &l.dependent;
  if (name == "last_block") return &l.last_block;
  if (name == "prefetch") return &l.prefetch;
  return nullptr;
}

// A launch written as comma-separated "field=value" items, the fields by their names above
// (e.g. "version=3,chunked=2"; empty text: all 0), for tuning runs through an environment
// variable such as RLFT_RATIO_CLIP_LAUNCH (kernels/ratio_clip.h). Throws rlft::Error naming
// `what` and the bad item: an unknown field, a value that is not an integer, a field given
// twice, or a value check_launch rejects.
inline CudaLaunch parse_launch(std::string_view text, const char* what) {
  CudaLaunch l;
  CudaLaunch seen;  // 1 where a field was given
  while (!text.empty()) {
    const size_t comma = text.find(',');
    const std::string_view item = text.substr(0, comma);
    text = comma == std::string_view::npos ? std::string_view{} : text.substr(comma + 1);
    const size_t eq = item.find('=');
    RLFT_CHECK(eq != std::string_view::npos, what, ": '", std::string(item),
               "' is not field=value (fields: block, unroll, vec, version, chunked, serial, "
               "dependent, last_block, prefetch)");
    const std::string_view name = item.substr(0, eq), value = item.substr(eq + 1);
    int* field = launch_field(l, name);
    RLFT_CHECK(field != nullptr, what, ": unknown launch field '", std::string(name),
               "' (fields: block, unroll, vec, version, chunked, serial, dependent, "
               "last_block, prefetch)");
    int* given = launch_field(seen, name);
    RLFT_CHECK(*given == 0, what, ": launch field '", std::string(name), "' is given twice");
    *given = 1;
    int v = 0;
    const auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), v);
    RLFT_CHECK(ec == std::errc{} && end == value.data() + value.size() && !value.empty(), what,
               ": launch field '", std::string(name), "' needs an integer, got '",
               std::string(value), "'");
    *field = v;
  }
  check_launch(what, l);
  return l;
}

// `l` with every field it leaves 0 taken from `defaults` (a field set in `l` wins).
inline CudaLaunch with_defaults(CudaLaunch l, const CudaLaunch& defaults) {
  CudaLaunch d = defaults;
  for (const char* name : kLaunchFieldNames) {
    int* field = launch_field(l, name);
    if (*field == 0) *field = *launch_field(d, name);
  }
  return l;
}

// The launch the environment variable `var` spells (parse_launch; unset or empty: all 0),
// read at every call so a test can set it. A malformed value throws rlft::Error naming `var`.
inline CudaLaunch launch_from_env(const char* var) {
  const char* text = std::getenv(var);
  return text ? parse_launch(text, var) : CudaLaunch{};
}

}  // namespace rlft::kernels
