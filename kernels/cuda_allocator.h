// A caching allocator for device memory: freed blocks go to per-device bins by size class
// and are handed out again without cudaMalloc/cudaFree, so a training step that allocates
// the same tensors every iteration costs no driver calls after the first (cudaMalloc and
// cudaFree take tens of microseconds and cudaFree synchronises the whole device).
//
// Size classes (cuda_alloc_size_class):
//   up to 1 MiB   rounded up to a multiple of 512 bytes
//   above 1 MiB   rounded up to the next of 2^k·{1, 1.25, 1.5, 1.75, 2}: at most 25% waste
//                 (pure powers of two would waste up to 50% on large activations)
// A request is served by a cached block of exactly its class, else by a new cudaMalloc of the
// class size. Blocks are never split or merged: simple, and fragmentation-free as long as a
// program keeps allocating the same shapes (the RL loops here do).
//
// Stream semantics: cuda_free makes the block reusable at once, by the next cuda_alloc on
// any thread. That is safe when the memory is only used on one stream (the engine's model,
// as in PyTorch's allocator without record_stream): the next user's kernels are queued after
// the last kernels of the previous user. Memory used on several streams must be synchronised
// before cuda_free.
//
// Out of memory: when cudaMalloc fails, the cached blocks of that device are released
// (cudaFree) and the cudaMalloc is tried once more; if it fails again cuda_alloc throws
// rlft::Error naming the device, the size and the allocator's statistics. The kernels'
// per-call scratch (common.cuh's StreamScratch, from the stream-ordered pool) does the same:
// a failed cudaMallocAsync releases this allocator's cached blocks of the device and retries.
//
// Thread-safe (one mutex). Every CUDA call is checked; a failure throws rlft::Error with the
// file, the line and CUDA's error string. Cached blocks are not released at program exit (the
// CUDA context releases all memory then; freeing from a static destructor after the runtime
// has shut down would fail).
//
// Defined in kernels/cuda/allocator.cu, only when the CUDA backend is built (RLFT_HAVE_CUDA);
// cuda_alloc_size_class is inline and available everywhere.
#pragma once

#include <cstddef>
#include <cstdint>

namespace rlft::kernels {

struct CudaMemoryStats {
  size_t allocated = 0;       // bytes in blocks handed out and not freed (size-class bytes)
  size_t requested = 0;       // bytes the callers asked for in those blocks
  size_t reserved = 0;        // bytes held from cudaMalloc: allocated + cached
  size_t cached = 0;          // bytes in freed blocks waiting for reuse (reserved − allocated)
  size_t peak_allocated = 0;  // high-water mark of `allocated`
  size_t peak_reserved = 0;   // high-water mark of `reserved`
  uint64_t alloc_calls = 0;   // cuda_alloc calls that returned a block
  uint64_t cache_hits = 0;    // of those, served from the cache (no cudaMalloc)
  uint64_t cuda_mallocs = 0;  // cudaMalloc calls that succeeded
  uint64_t cuda_frees = 0;    // cudaFree calls (cuda_empty_cache, out-of-memory retries)
};

constexpr size_t kCudaAllocSmallLimit = size_t(1) << 20;  // 1 MiB
constexpr size_t kCudaAllocGranule = 512;

// The size class a request of `bytes` is served from (0 for 0 bytes).
inline size_t cuda_alloc_size_class(size_t bytes) {
  if (bytes == 0) return 0;
  if (bytes <= kCudaAllocSmallLimit)
    return (bytes + kCudaAllocGranule - 1) / kCudaAllocGranule * kCudaAllocGranule;
  // p = the largest power of two ≤ bytes; classes above it step by p/4.
  const size_t p = size_t(1) << (63 - __builtin_clzll(static_cast<unsigned long long>(bytes)));
  const size_t step = p / 4;
  if (bytes > ~size_t(0) - step) return bytes;  // absurd sizes: cudaMalloc will refuse them
  return (bytes + step - 1) / step * step;
}

// Device memory of at least `bytes` on `device` (aligned to 256 bytes, as cudaMalloc's);
// nullptr for 0 bytes. Throws rlft::Error when the device has no memory left or does not
// exist.
void* cuda_alloc(size_t bytes, int device);
// Returns a block from cuda_alloc to the cache (nullptr: no-op). Throws rlft::Error for a
// pointer that cuda_alloc did not return or that was already freed.
void cuda_free(void* ptr);
// Statistics of one device (all zero for a device never used).
CudaMemoryStats cuda_memory_stats(int device);
// Releases every cached (free) block of every device with cudaFree; blocks in use stay. Also
// synchronises each device whose kernels used stream-ordered scratch (the CUDA kernels'
// per-call temporaries: row sums, error words; not in these statistics) and trims its default
// memory pool to zero, which otherwise keeps what it held for the next call.
void cuda_empty_cache();
// Resets the peaks of `device` to the current values.
void cuda_reset_peak_memory_stats(int device);

}  // namespace rlft::kernels
