// libFuzzer entry point over rlft::fuzz::parse_one_input (inputs.h). Build and run:
//   CC=clang CXX=clang++ cmake -S . -B build-fuzz -DRLFT_FUZZ=ON -DRLFT_CUDA=OFF
//   cmake --build build-fuzz --target fuzz_inputs -j2
//   build-fuzz/fuzz_inputs -max_total_time=600 -max_len=65536 -rss_limit_mb=2048 \
//       -malloc_limit_mb=2048 tests/data/fuzz   # (copy the corpus first to keep it unchanged)
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <string>

#include "engine/error.h"
#include "engine/fs.h"
#include "fuzz/inputs.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string scratch = [] {
    const std::string dir = "/tmp/rlft_fuzz_" + std::to_string(getpid());
    rlft::fs::make_dirs(dir);
    return dir;
  }();
  try {
    rlft::fuzz::parse_one_input(std::string_view(reinterpret_cast<const char*>(data), size),
                                scratch);
  } catch (const rlft::Error&) {
    // a clear error: an accepted outcome
  }
  return 0;
}
