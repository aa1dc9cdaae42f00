// The host caching allocator (kernels/cpu/host_allocator.h): reuse by size class, the small
// blocks' 64-byte classes, alignment, the cache bound, thread safety, and CPU tensors on top of it.
// The statistics are process-wide, so every check is on a difference across the test's own
// calls.
#include "kernels/cpu/host_allocator.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <thread>
#include <vector>

#include "engine/tensor.h"
#include "kernels/cuda_allocator.h"

namespace rk = rlft::kernels;

namespace {

bool aligned64(const void* p) { return reinterpret_cast<uintptr_t>(p) % 64 == 0; }

// Restores the bound a test changed.
struct LimitGuard {
  size_t saved = rk::host_cache_limit();
  ~LimitGuard() { rk::host_set_cache_limit(saved); }
};

TEST(HostAllocator, AFreedLargeBlockIsHandedOutAgainForTheSameSizeClass) {
  LimitGuard guard;
  rk::host_set_cache_limit(size_t(64) << 20);
  const size_t n = 3u << 20;  // 3 MiB: class 3 MiB exactly
  void* a = rk::host_alloc(n);
  ASSERT_TRUE(aligned64(a));
  std::memset(a, 1, n);  // the whole class is usable memory
  const rk::HostMemoryStats s0 = rk::host_memory_stats();
  rk::host_free(a, n);
  const rk::HostMemoryStats s1 = rk::host_memory_stats();
  EXPECT_EQ(s1.cached, s0.cached + rk::cuda_alloc_size_class(n));
  EXPECT_EQ(s1.allocated, s0.allocated - rk::cuda_alloc_size_class(n));
  // A request of another size in the same class (3 MiB − 1000 bytes) gets the same block.
  void* b = rk::host_alloc(n - 1000);
  const rk::HostMemoryStats s2 = rk::host_memory_stats();
  EXPECT_EQ(b, a);
  EXPECT_EQ(s2.cache_hits, s1.cache_hits + 1);
  EXPECT_EQ(s2.alloc_calls, s1.alloc_calls + 1);
  EXPECT_EQ(s2.cached, s0.cached);
  EXPECT_GE(s2.peak_allocated, s2.allocated);
  // Another class does not take it.
  rk::host_free(b, n - 1000);
  void* c = rk::host_alloc(5u << 20);
  EXPECT_NE(c, b);
  rk::host_free(c, 5u << 20);
}

TEST(HostAllocator, SmallBlocksAreCachedIn64ByteClassesAndEveryBlockIs64ByteAligned) {
  LimitGuard guard;
  rk::host_set_cache_limit(size_t(64) << 20);
  EXPECT_EQ(rk::host_size_class(0), 64u);
  EXPECT_EQ(rk::host_size_class(1), 64u);
  EXPECT_EQ(rk::host_size_class(64), 64u);
  EXPECT_EQ(rk::host_size_class(65), 128u);
  EXPECT_EQ(rk::host_size_class(1000), 1024u);
  EXPECT_EQ(rk::host_size_class(rk::kHostSmallClassLimit - 1), rk::kHostSmallClassLimit);
  EXPECT_EQ(rk::host_size_class(rk::kHostSmallClassLimit + 1),
            rk::cuda_alloc_size_class(rk::kHostSmallClassLimit + 1));
  const rk::HostMemoryStats s0 = rk::host_memory_stats();
  std::vector<std::pair<void*, size_t>> blocks;
  size_t classes = 0;
  for (size_t n : {size_t(0), size_t(1), size_t(63), size_t(65), size_t(1000),
                   rk::kHostSmallClassLimit - 1}) {
    void* p = rk::host_alloc(n);
    ASSERT_NE(p, nullptr) << n;
    EXPECT_TRUE(aligned64(p)) << n;
    std::memset(p, 0, rk::host_size_class(n));  // the whole class is usable memory
    blocks.push_back({p, n});
    classes += rk::host_size_class(n);
  }
  const rk::HostMemoryStats s1 = rk::host_memory_stats();
  EXPECT_EQ(s1.alloc_calls, s0.alloc_calls + blocks.size());
  EXPECT_EQ(s1.allocated, s0.allocated + classes);
  for (auto [p, n] : blocks) rk::host_free(p, n);
  EXPECT_EQ(rk::host_memory_stats().cached, s1.cached + classes);
  // 100 bytes is the class of 65 (128): the block freed for it comes back.
  void* again = rk::host_alloc(100);
  EXPECT_EQ(again, blocks[3].first);
  EXPECT_EQ(rk::host_memory_stats().cache_hits, s1.cache_hits + 1);
  rk::host_free(again, 100);
  rk::host_free(nullptr, 12345);  // a no-op
}

TEST(HostAllocator, TheCacheStaysUnderItsBoundAndEmptyCacheReleasesEverything) {
  LimitGuard guard;
  rk::host_empty_cache();
  rk::host_set_cache_limit(size_t(1) << 20);  // room for two 512 KiB blocks
  const size_t n = size_t(512) << 10;
  void* p[3] = {rk::host_alloc(n), rk::host_alloc(n), rk::host_alloc(n)};
  const rk::HostMemoryStats s0 = rk::host_memory_stats();
  for (void* q : p) rk::host_free(q, n);
  const rk::HostMemoryStats s1 = rk::host_memory_stats();
  EXPECT_EQ(s1.cached, 2 * n);
  EXPECT_EQ(s1.system_frees, s0.system_frees + 1);  // the third went back to the system
  // Lowering the bound gives back what is above it.
  rk::host_set_cache_limit(n);
  EXPECT_EQ(rk::host_memory_stats().cached, n);
  EXPECT_EQ(rk::host_cache_limit(), n);
  rk::host_empty_cache();
  const rk::HostMemoryStats s2 = rk::host_memory_stats();
  EXPECT_EQ(s2.cached, 0u);
  EXPECT_EQ(s2.cache_limit, n);  // emptying keeps the bound
  // A bound of 0 turns caching off.
  rk::host_set_cache_limit(0);
  void* q = rk::host_alloc(n);
  rk::host_free(q, n);
  EXPECT_EQ(rk::host_memory_stats().cached, 0u);
}

// Four threads allocate, fill with their own byte and check it, and free, many times over a
// few size classes: no block is ever handed to two owners at once.
TEST(HostAllocator, ThreadsNeverShareABlock) {
  LimitGuard guard;
  rk::host_set_cache_limit(size_t(64) << 20);
  std::vector<std::thread> threads;
  std::vector<int> bad(4, 0);
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([t, &bad] {
      for (int i = 0; i < 300; ++i) {
        const size_t n = (size_t(256) << 10) + size_t(i % 3) * (size_t(128) << 10);
        auto* p = static_cast<unsigned char*>(rk::host_alloc(n));
        std::memset(p, t + 1, n);
        std::this_thread::yield();
        for (size_t k = 0; k < n; k += 4096)
          if (p[k] != t + 1) ++bad[size_t(t)];
        rk::host_free(p, n);
      }
    });
  for (auto& th : threads) th.join();
  for (int t = 0; t < 4; ++t) EXPECT_EQ(bad[size_t(t)], 0) << "thread " << t;
}

// CPU tensors use it: a large tensor's storage comes back for the next tensor of that size,
// and Tensor::zeros on a reused (dirty) block is still all zeros.
TEST(HostAllocator, CpuTensorsReuseCachedStorageAndZerosClearsIt) {
  LimitGuard guard;
  rk::host_set_cache_limit(size_t(64) << 20);
  const void* first = nullptr;
  {
    rlft::Tensor a = rlft::Tensor::full({512, 1024}, 7.0);
    first = a.raw_data();
  }
  const rk::HostMemoryStats s0 = rk::host_memory_stats();
  rlft::Tensor z = rlft::Tensor::zeros({512, 1024});
  EXPECT_EQ(z.raw_data(), first);
  EXPECT_EQ(rk::host_memory_stats().cache_hits, s0.cache_hits + 1);
  const float* d = z.data<float>();
  for (int64_t i = 0; i < z.numel(); ++i) ASSERT_EQ(d[i], 0.0f) << i;
}

}  // namespace
