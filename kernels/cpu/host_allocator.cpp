// The host caching allocator (manual in host_allocator.h).
#include "kernels/cpu/host_allocator.h"

#include <algorithm>
#include <cstdlib>
#include <iterator>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "engine/error.h"
#include "kernels/cuda_allocator.h"

namespace rlft::kernels {

namespace {

constexpr size_t kAlign = 64;

size_t default_limit() {
#if defined(__SANITIZE_ADDRESS__)
  // Under AddressSanitizer (make asan) blocks go straight back to the system, so a use after
  // free of a large tensor is still reported.
  if (std::getenv("RLFT_HOST_CACHE_MB") == nullptr) return 0;
#endif
  const char* env = std::getenv("RLFT_HOST_CACHE_MB");
  if (env == nullptr || *env == '\0') return size_t(1) << 30;
  char* end = nullptr;
  const long long mb = std::strtoll(env, &end, 10);
  RLFT_CHECK(*end == '\0' && mb >= 0, "RLFT_HOST_CACHE_MB: expected a number of MiB >= 0, got '",
             env, "'");
  return size_t(mb) << 20;
}

void* system_alloc(size_t bytes) {
  const size_t rounded = std::max(kAlign, (bytes + kAlign - 1) / kAlign * kAlign);
  void* p = std::aligned_alloc(kAlign, rounded);
  RLFT_CHECK(p != nullptr, "out of memory allocating ", bytes, " bytes on the CPU");
  return p;
}

struct Cache {
  std::mutex mu;
  // Free blocks by size class: the small classes (64-byte steps below 4 KiB) in an array
  // indexed by class / 64 (no hashing on the hot path of small tensors), the others by class.
  std::vector<void*> small[kHostSmallClassLimit / kAlign];
  std::unordered_map<size_t, std::vector<void*>> bins;
  HostMemoryStats stats;
  Cache() { stats.cache_limit = default_limit(); }

  std::vector<void*>& bin(size_t cls) {
    return cls < kHostSmallClassLimit ? small[cls / kAlign] : bins[cls];
  }

  // Gives back free blocks of `blocks` (class `cls`) until `cached` ≤ the limit.
  void shrink(std::vector<void*>& blocks, size_t cls) {
    while (!blocks.empty() && stats.cached > stats.cache_limit) {
      std::free(blocks.back());
      blocks.pop_back();
      stats.cached -= cls;
      ++stats.system_frees;
    }
  }
  // Gives back free blocks until `cached` ≤ the limit (caller holds mu).
  void shrink_to_limit() {
    for (size_t k = 0; k < std::size(small); ++k) shrink(small[k], k * kAlign);
    for (auto& [cls, blocks] : bins) shrink(blocks, cls);
  }
};

Cache& cache() {
  static Cache* c = new Cache();  // never destroyed: tensors may be freed by static destructors
  return *c;
}

}  // namespace

size_t host_size_class(size_t bytes) {
  if (bytes < kHostSmallClassLimit) return std::max(kAlign, (bytes + kAlign - 1) / kAlign * kAlign);
  return cuda_alloc_size_class(bytes);
}

void* host_alloc(size_t bytes) {
  const size_t cls = host_size_class(bytes);
  Cache& c = cache();
  {
    std::lock_guard<std::mutex> lock(c.mu);
    ++c.stats.alloc_calls;
    c.stats.allocated += cls;
    c.stats.peak_allocated = std::max(c.stats.peak_allocated, c.stats.allocated);
    std::vector<void*>& blocks = c.bin(cls);
    if (!blocks.empty()) {
      void* p = blocks.back();
      blocks.pop_back();
      c.stats.cached -= cls;
      ++c.stats.cache_hits;
      return p;
    }
  }
  try {
    return system_alloc(cls);
  } catch (...) {
    std::lock_guard<std::mutex> lock(c.mu);
    c.stats.allocated -= cls;
    throw;
  }
}

void host_free(void* ptr, size_t bytes) {
  if (ptr == nullptr) return;
  const size_t cls = host_size_class(bytes);
  Cache& c = cache();
  std::lock_guard<std::mutex> lock(c.mu);
  c.stats.allocated -= cls;
  if (c.stats.cached + cls > c.stats.cache_limit) {
    std::free(ptr);
    ++c.stats.system_frees;
    return;
  }
  c.bin(cls).push_back(ptr);
  c.stats.cached += cls;
}

HostMemoryStats host_memory_stats() {
  Cache& c = cache();
  std::lock_guard<std::mutex> lock(c.mu);
  return c.stats;
}

void host_empty_cache() {
  Cache& c = cache();
  std::lock_guard<std::mutex> lock(c.mu);
  const size_t limit = c.stats.cache_limit;
  c.stats.cache_limit = 0;
  c.shrink_to_limit();
  c.stats.cache_limit = limit;
  c.bins.clear();
}

void host_set_cache_limit(size_t bytes) {
  Cache& c = cache();
  std::lock_guard<std::mutex> lock(c.mu);
  c.stats.cache_limit = bytes;
  c.shrink_to_limit();
}

size_t host_cache_limit() {
  Cache& c = cache();
  std::lock_guard<std::mutex> lock(c.mu);
  return c.stats.cache_limit;
}

}  // namespace rlft::kernels
