// The caching device allocator (kernels/cuda_allocator.h has the contract).
//
// State: one mutex; per device a map from size class to a stack of free blocks and the
// statistics; one map from every live pointer to its block (size class, requested bytes,
// device). cuda_alloc pops a free block of the class or calls cudaMalloc on that device;
// cuda_free pushes the block back. Host code only, no kernels.
//
// Tested by tests/kernels/test_cuda_kernels.cpp (reuse of a freed block of the same class,
// no reuse across classes, statistics through alloc/free/empty_cache, peaks, bad frees,
// threads allocating and freeing at once, the memory being usable) and, without a GPU, the
// size-class rule.
#include <cuda_runtime.h>

#include <atomic>
#include <cstdint>
#include <map>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "engine/error.h"
#include "kernels/cuda/common.cuh"
#include "kernels/cuda_allocator.h"

namespace rlft::kernels {
namespace {

constexpr int kMaxDevices = 64;

struct Block {
  size_t size;       // size class
  size_t requested;  // what the caller asked for
  int device;
};

struct DeviceState {
  std::map<size_t, std::vector<void*>> free_blocks;  // by size class
  CudaMemoryStats stats;
};

struct AllocatorState {
  std::mutex mu;
  std::vector<DeviceState> devices;
  std::unordered_map<void*, Block> live;

  DeviceState& device(int d) {
    if (size_t(d) >= devices.size()) devices.resize(size_t(d) + 1);
    return devices[size_t(d)];
  }
};

// Never destroyed: cached blocks must not be cudaFree'd by a static destructor after the
// CUDA runtime has shut down.
AllocatorState& state() {
  static AllocatorState* s = new AllocatorState;
  return *s;
}

// Runs f with `device` current, restoring the caller's device afterwards.
template <typename F>
auto on_device(int device, F f) {
  int previous = 0;
  RLFT_CUDA_CHECK(cudaGetDevice(&previous));
  if (previous != device) RLFT_CUDA_CHECK(cudaSetDevice(device));
  struct Restore {
    int previous, device;
    ~Restore() {
      // Best effort (a destructor cannot throw); leave no stale error for the next check.
      if (previous != device && cudaSetDevice(previous) != cudaSuccess) (void)cudaGetLastError();
    }
  } restore{previous, device};
  return f();
}

// cudaFree of every cached block of one device. Caller holds the mutex.
void release_cached(int d, DeviceState& ds) {
  if (ds.stats.cached == 0) return;
  on_device(d, [&] {
    for (auto& [size, blocks] : ds.free_blocks) {
      // Each block leaves the bin and the books before its cudaFree: if one throws (an
      // earlier asynchronous error can surface here), the blocks already freed are not handed
      // out again, nor freed twice by a later empty_cache.
      while (!blocks.empty()) {
        void* p = blocks.back();
        blocks.pop_back();
        ds.stats.reserved -= size;
        ds.stats.cached -= size;
        ++ds.stats.cuda_frees;
        RLFT_CUDA_CHECK(cudaFree(p));
      }
    }
    return 0;
  });
}

void update_peaks(CudaMemoryStats& s) {
  if (s.allocated > s.peak_allocated) s.peak_allocated = s.allocated;
  if (s.reserved > s.peak_reserved) s.peak_reserved = s.reserved;
}

}  // namespace

namespace {
// Devices whose default stream-ordered pool keeps its memory (bit d: device d).
std::atomic<uint64_t>& kept_pools() {
  static std::atomic<uint64_t> mask{0};
  return mask;
}

// Gives the memory the kernels' scratch pool of `device` keeps back to the driver (after the
// frees still queued on a stream have completed). A no-op for a pool this process never set.
void trim_pool(int device) {
  if (((kept_pools().load(std::memory_order_relaxed) >> device) & 1) == 0) return;
  on_device(device, [&] {
    RLFT_CUDA_CHECK(cudaDeviceSynchronize());
    cudaMemPool_t pool{};
    RLFT_CUDA_CHECK(cudaDeviceGetDefaultMemPool(&pool, device));
    RLFT_CUDA_CHECK(cudaMemPoolTrimTo(pool, 0));
    return 0;
  });
}
}  // namespace

void* cuda_alloc(size_t bytes, int device) {
  RLFT_CHECK(device >= 0 && device < kMaxDevices, "cuda_alloc: device ", device,
             " out of range [0, ", kMaxDevices, ")");
  if (bytes == 0) return nullptr;
  const size_t size = cuda_alloc_size_class(bytes);
  AllocatorState& st = state();
  std::lock_guard<std::mutex> lock(st.mu);
  DeviceState& ds = st.device(device);
  void* p = nullptr;
  auto it = ds.free_blocks.find(size);
  if (it != ds.free_blocks.end() && !it->second.empty()) {
    p = it->second.back();
    it->second.pop_back();
    ds.stats.cached -= size;
    ++ds.stats.cache_hits;
  } else {
    cudaError_t err = on_device(device, [&] { return cudaMalloc(&p, size); });
    if (err == cudaErrorMemoryAllocation) {
      cudaGetLastError();  // clear the error, give the caches back, try once more
      release_cached(device, ds);
      trim_pool(device);
      err = on_device(device, [&] { return cudaMalloc(&p, size); });
    }
    if (err != cudaSuccess) {
      cudaGetLastError();
      throw Error(str(__FILE__, ":", __LINE__, ": cuda_alloc: cudaMalloc of ", size,
                      " bytes (request ", bytes, ") on device ", device,
                      " failed: ", cudaGetErrorString(err), " (allocated ", ds.stats.allocated,
                      " bytes, reserved ", ds.stats.reserved, " bytes)"));
    }
    ds.stats.reserved += size;
    ++ds.stats.cuda_mallocs;
  }
  st.live.emplace(p, Block{size, bytes, device});
  ds.stats.allocated += size;
  ds.stats.requested += bytes;
  ++ds.stats.alloc_calls;
  update_peaks(ds.stats);
  return p;
}

void cuda_free(void* ptr) {
  if (ptr == nullptr) return;
  AllocatorState& st = state();
  std::lock_guard<std::mutex> lock(st.mu);
  auto it = st.live.find(ptr);
  RLFT_CHECK(it != st.live.end(), "cuda_free: ", ptr,
             " was not returned by cuda_alloc or was already freed");
  const Block b = it->second;
  st.live.erase(it);
  DeviceState& ds = st.device(b.device);
  ds.free_blocks[b.size].push_back(ptr);
  ds.stats.allocated -= b.size;
  ds.stats.requested -= b.requested;
  ds.stats.cached += b.size;
}

CudaMemoryStats cuda_memory_stats(int device) {
  AllocatorState& st = state();
  std::lock_guard<std::mutex> lock(st.mu);
  if (device < 0 || size_t(device) >= st.devices.size()) return {};
  return st.devices[size_t(device)].stats;
}

namespace cuda_detail {
void keep_pool_memory() {
  int device = 0;
  RLFT_CUDA_CHECK(cudaGetDevice(&device));
  const uint64_t bit = device < kMaxDevices ? uint64_t(1) << device : 0;
  if (bit != 0 && (kept_pools().load(std::memory_order_relaxed) & bit) != 0) return;
  cudaMemPool_t pool{};
  RLFT_CUDA_CHECK(cudaDeviceGetDefaultMemPool(&pool, device));
  uint64_t never = UINT64_MAX;
  RLFT_CUDA_CHECK(cudaMemPoolSetAttribute(pool, cudaMemPoolAttrReleaseThreshold, &never));
  kept_pools().fetch_or(bit, std::memory_order_relaxed);
}

void release_cached_blocks() {
  int device = 0;
  RLFT_CUDA_CHECK(cudaGetDevice(&device));
  AllocatorState& st = state();
  std::lock_guard<std::mutex> lock(st.mu);
  if (device < 0 || size_t(device) >= st.devices.size()) return;
  release_cached(device, st.devices[size_t(device)]);
}
}  // namespace cuda_detail

void cuda_empty_cache() {
  AllocatorState& st = state();
  std::lock_guard<std::mutex> lock(st.mu);
  for (size_t d = 0; d < st.devices.size(); ++d) release_cached(int(d), st.devices[d]);
  // The kernels' stream-ordered scratch pools too (only those this process configured).
  for (int d = 0; d < kMaxDevices; ++d) trim_pool(d);
}

void cuda_reset_peak_memory_stats(int device) {
  AllocatorState& st = state();
  std::lock_guard<std::mutex> lock(st.mu);
  if (device < 0 || size_t(device) >= st.devices.size()) return;
  CudaMemoryStats& s = st.devices[size_t(device)].stats;
  s.peak_allocated = s.allocated;
  s.peak_reserved = s.reserved;
}

}  // namespace rlft::kernels
