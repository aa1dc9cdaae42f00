// A caching allocator for CPU tensor storage: freed blocks go to bins by size class and are
// handed out again, so a training step that allocates the same tensors every iteration stops
// paying for fresh pages and for glibc's bookkeeping. Without it, glibc returns large blocks to
// the kernel (munmap, or trimming the top of the heap) and the next step takes a page fault and
// a zeroed page for every 4 KiB it touches again: ~3% of a toy-LM training step's CPU time on
// one thread (BENCHMARKS.md, "Toy language models"). Blocks up to 256 KiB were glibc's until
// 2026-11-26: caching those from 4 KiB (a PPO CartPole minibatch's activations are 128×64
// floats, 32 KiB) took glibc's malloc/free from 19.0% to 17.6% of a PPO run's profile. Blocks
// under 4 KiB (the rollout's per-step tensors: a few envs × 64 floats) went to aligned_alloc,
// which glibc serves through its memalign path (a larger chunk, split; the remainders freed
// into its bins, then consolidated): caching them too (2026-11-27) took glibc from 17.4% to
// 10.9% of a PPO run's profile, PPO 5–7% and REINFORCE 8–11% faster with the same results,
// the LM steps unchanged (BENCHMARKS.md). What glibc still does there is the engine's
// non-tensor objects.
//
// Size classes: 64-byte steps below 4 KiB (kHostSmallClassLimit), then those of the CUDA
// caching allocator (cuda_alloc_size_class in kernels/cuda_allocator.h: 512-byte steps up to
// 1 MiB, so at most 12.5% waste from 4 KiB, then 2^k·{1, 1.25, 1.5, 1.75, 2}, at most 25%).
// Blocks are never split or merged.
//
// Bounded: the cache holds at most host_cache_limit() bytes of free blocks (default 1 GiB,
// RLFT_HOST_CACHE_MB in the environment overrides it at first use; 0 turns caching off; off
// by default under AddressSanitizer, so that a use after free is still caught). A
// block freed while the cache is full goes back to the system, so a program whose shapes
// keep changing (generation with a growing context) cannot grow without bound.
//
// Thread-safe (one mutex). Every block is 64-byte aligned.
#pragma once

#include <cstddef>
#include <cstdint>

namespace rlft::kernels {

struct HostMemoryStats {
  size_t allocated = 0;       // bytes in cached-size blocks handed out and not freed (class bytes)
  size_t cached = 0;          // bytes in freed blocks waiting for reuse
  size_t peak_allocated = 0;  // high-water mark of `allocated`
  size_t cache_limit = 0;     // the most `cached` may reach
  uint64_t alloc_calls = 0;   // host_alloc calls of a cached size
  uint64_t cache_hits = 0;    // of those, served from the cache
  uint64_t system_frees = 0;  // cached-size blocks given back to the system (cache full, empty)
};

constexpr size_t kHostSmallClassLimit = size_t(4) << 10;  // 4 KiB: 64-byte classes below
// The size class of a request of `bytes` (what it counts for in the statistics).
size_t host_size_class(size_t bytes);

// At least `bytes` (a 64-byte block for 0), 64-byte aligned. Throws rlft::Error when the
// system has no memory left.
void* host_alloc(size_t bytes);
// Returns a block from host_alloc; `bytes` must be the size it was asked for (nullptr: no-op).
void host_free(void* ptr, size_t bytes);
HostMemoryStats host_memory_stats();
// Gives every cached block back to the system.
void host_empty_cache();
// Sets the cache's bound (bytes); blocks above it are given back at once.
void host_set_cache_limit(size_t bytes);
size_t host_cache_limit();

}  // namespace rlft::kernels
