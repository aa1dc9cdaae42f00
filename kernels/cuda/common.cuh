// Shared pieces of the CUDA kernels: the error check, warp and block reductions, a 16-byte
// vector type per element type, and stream-ordered scratch memory.
//
// Everything here is device-agnostic C++17 (nvcc compiles kernels/cuda/*.cu as C++17).
#pragma once

#include <cuda_runtime.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <utility>

#include "engine/error.h"

// RLFT_CUDA_CHECK(call): throw rlft::Error("file:line: call: <CUDA error string>") when a CUDA
// runtime call fails. The runtime's last-error state is cleared first, so a recoverable error
// (an invalid device, an out-of-memory) does not resurface at the next launch check. (A copy
// without the clearing lives in kernels/cuda/runtime.cu, which predates this header; the guard
// keeps the two from clashing if a file ever sees both.)
#ifndef RLFT_CUDA_CHECK
#define RLFT_CUDA_CHECK(call)                                                                 \
  do {                                                                                        \
    const cudaError_t err_ = (call);                                                          \
    if (err_ != cudaSuccess) {                                                                \
      (void)cudaGetLastError();                                                               \
      throw ::rlft::Error(                                                                    \
          ::rlft::str(__FILE__, ":", __LINE__, ": ", #call, ": ", cudaGetErrorString(err_))); \
    }                                                                                         \
  } while (0)
#endif

// After a <<<…>>> launch: a bad configuration (too many threads, too much shared memory)
// shows up here, not at the launch statement.
#define RLFT_CUDA_CHECK_LAUNCH() RLFT_CUDA_CHECK(cudaGetLastError())

namespace rlft::kernels::cuda_detail {

constexpr unsigned kFullMask = 0xffffffffu;
constexpr int kWarp = 32;
constexpr int kMaxWarps = 32;  // 1024 threads, the hardware's block limit

// Accumulator type: float data accumulates per thread in float (a double add per element
// would make consumer GPUs, 1/64-rate FP64, compute-bound); double data in double.
template <typename Real>
struct Acc {
  using type = Real;
};

// 16-byte vectors: float4 (4 floats) and double2 (2 doubles); one LDG.128 per thread.
template <typename Real>
struct Vec16;
template <>
struct Vec16<float> {
  using type = float4;
  static constexpr int n = 4;
  __device__ static float get(const float4& v, int i) {
    return i == 0 ? v.x : i == 1 ? v.y : i == 2 ? v.z : v.w;
  }
  __device__ static void set(float4& v, int i, float x) {
    if (i == 0)
      v.x = x;
    else if (i == 1)
      v.y = x;
    else if (i == 2)
      v.z = x;
    else
      v.w = x;
  }
};
template <>
struct Vec16<double> {
  using type = double2;
  static constexpr int n = 2;
  __device__ static double get(const double2& v, int i) { return i == 0 ? v.x : v.y; }
  __device__ static void set(double2& v, int i, double x) {
    if (i == 0)
      v.x = x;
    else
      v.y = x;
  }
};

// Elements to skip before `p` reaches a 16-byte boundary (0 when already aligned). Pointers
// to Real are always sizeof(Real)-aligned, so the count is exact.
template <typename Real>
__device__ __forceinline__ int64_t elements_to_16b(const Real* p) {
  const uintptr_t mis = reinterpret_cast<uintptr_t>(p) & 15u;
  return mis == 0 ? 0 : int64_t((16u - mis) / sizeof(Real));
}

// Correctly rounded operations that nvcc never fuses. By default nvcc contracts x·y + z into
// one FMA wherever it chooses (and may choose differently for the same source in two kernels),
// which rounds once where the CPU's code (built with -ffp-contract=off) rounds twice: kernels
// that must give the CPU's bits, or the same bits in two launch layouts, write their products
// and sums with these (layer_norm.cu, optim.cu).
__device__ __forceinline__ float mul_rn(float x, float y) { return __fmul_rn(x, y); }
__device__ __forceinline__ double mul_rn(double x, double y) { return __dmul_rn(x, y); }
__device__ __forceinline__ float add_rn(float x, float y) { return __fadd_rn(x, y); }
__device__ __forceinline__ double add_rn(double x, double y) { return __dadd_rn(x, y); }
__device__ __forceinline__ float sub_rn(float x, float y) { return __fsub_rn(x, y); }
__device__ __forceinline__ double sub_rn(double x, double y) { return __dsub_rn(x, y); }
__device__ __forceinline__ float div_rn(float x, float y) { return __fdiv_rn(x, y); }
__device__ __forceinline__ double div_rn(double x, double y) { return __ddiv_rn(x, y); }
__device__ __forceinline__ float sqrt_rn(float x) { return __fsqrt_rn(x); }
__device__ __forceinline__ double sqrt_rn(double x) { return __dsqrt_rn(x); }

__device__ __forceinline__ float shfl_xor(float v, int o) {
  return __shfl_xor_sync(kFullMask, v, o);
}
__device__ __forceinline__ double shfl_xor(double v, int o) {
  return __shfl_xor_sync(kFullMask, v, o);
}

// Butterfly all-reduce over a full warp: every lane ends with op over all 32 lanes. `op` must
// be commutative in floating point (a + b == b + a exactly) so all lanes agree bit for bit.
// Structs reduce through their own shfl_xor overload, found by argument-dependent lookup.
template <typename T, typename Op>
__device__ __forceinline__ T warp_allreduce(T v, Op op) {
#pragma unroll
  for (int o = kWarp / 2; o > 0; o >>= 1) v = op(v, shfl_xor(v, o));
  return v;
}

// The first half of both block reductions below: each warp's total, written to smem[warp]
// (between two barriers) and returned to the warp's threads.
template <typename T, typename Op>
__device__ __forceinline__ T warp_totals_to_smem(T v, Op op, T* smem) {
  v = warp_allreduce(v, op);
  __syncthreads();
  if ((threadIdx.x & (kWarp - 1)) == 0) smem[threadIdx.x / kWarp] = v;
  __syncthreads();
  return v;
}

// Block all-reduce; blockDim.x must be a multiple of 32 (≤ 1024); `smem` holds kMaxWarps
// values. Every thread gets the result. The warp totals are combined in warp order by every
// thread, so the result is deterministic for a given block size (no atomics). Safe to call
// repeatedly: the first barrier keeps a new call from overwriting `smem` while a slower
// thread still reads the previous result.
template <typename T, typename Op>
__device__ __forceinline__ T block_allreduce(T v, Op op, T* smem) {
  const int nwarps = blockDim.x / kWarp;
  warp_totals_to_smem(v, op, smem);
  T r = smem[0];
  for (int w = 1; w < nwarps; ++w) r = op(r, smem[w]);
  return r;
}

// The same reduction with the result in thread 0 only (the others get their warp's total):
// one thread, not every thread, combines the warps' partials, in the same order, so thread 0
// gets exactly block_allreduce's bits. For results one thread writes out.
template <typename T, typename Op>
__device__ __forceinline__ T block_reduce_to_first(T v, Op op, T* smem) {
  const int nwarps = blockDim.x / kWarp;
  v = warp_totals_to_smem(v, op, smem);
  if (threadIdx.x == 0)
    for (int w = 1; w < nwarps; ++w) v = op(v, smem[w]);
  return v;
}

struct Sum {
  template <typename T>
  __device__ __forceinline__ T operator()(T a, T b) const {
    return a + b;
  }
};

template <typename T>
__device__ __forceinline__ T block_sum(T v, T* smem) {
  return block_allreduce(v, Sum{}, smem);
}

// Scratch memory that lives for one call, ordered on the call's stream (cudaMallocAsync /
// cudaFreeAsync from the device's default pool): a later kernel on another stream can never
// receive it while this call's kernels still run, which a plain cache would have to track.
// The pool keeps freed memory, so a steady loop costs no cudaMalloc: its release threshold is
// raised to "never" on the first scratch of each device (keep_pool_memory, allocator.cu).
// Without that, the default threshold (0) hands the pool's memory back to the driver at every
// synchronisation, and the next cudaMallocAsync maps it again (the likely cause of the ~55 µs
// ratio_clip took at any size on the H200; after the change it took 14–15 µs at 64×1024 on an
// H100 — two GPUs, so not a same-machine before/after: BENCHMARKS.md). cuda_empty_cache()
// trims the pools back to zero.
// Out of memory: as cuda_alloc does, the caching allocator's free blocks of the device are
// given back (cudaFree) and the cudaMallocAsync tried once more, so a call's scratch does not
// fail while gigabytes sit cached.
void keep_pool_memory();       // for the current device; cheap after the first call
void release_cached_blocks();  // the caching allocator's free blocks of the current device
class StreamScratch {
 public:
  StreamScratch(size_t bytes, cudaStream_t stream) : stream_(stream) {
    if (bytes == 0) return;
    keep_pool_memory();
    cudaError_t err = cudaMallocAsync(&ptr_, bytes, stream);
    if (err == cudaErrorMemoryAllocation) {
      (void)cudaGetLastError();
      release_cached_blocks();
      err = cudaMallocAsync(&ptr_, bytes, stream);
    }
    if (err != cudaSuccess) {
      (void)cudaGetLastError();
      throw ::rlft::Error(::rlft::str(__FILE__, ":", __LINE__, ": cudaMallocAsync of ", bytes,
                                      " bytes of scratch: ", cudaGetErrorString(err)));
    }
  }
  ~StreamScratch() {
    // A destructor cannot throw; a failure here would also fail the next checked call.
    if (ptr_ && cudaFreeAsync(ptr_, stream_) != cudaSuccess) (void)cudaGetLastError();
  }
  StreamScratch(const StreamScratch&) = delete;
  StreamScratch& operator=(const StreamScratch&) = delete;
  template <typename T>
  T* as() const {
    return static_cast<T*>(ptr_);
  }

 private:
  void* ptr_ = nullptr;
  cudaStream_t stream_;
};

// Programmatic dependent launch (sm_90+): a kernel launched with
// launch_programmatic_dependent() may start while the kernel before it on the stream still
// runs, once every block of that one has called pdl_launch_dependents() (or exited); it must
// call pdl_wait() before it reads anything the earlier kernel writes: pdl_wait() returns when
// that kernel has completed and its writes are visible. Both are no-ops on older GPUs and in
// kernels launched the ordinary way, so a kernel can always call them. What it saves: the
// launch latency of a short kernel that follows a long one (ratio_clip's finishing block).
__device__ __forceinline__ void pdl_launch_dependents() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}
__device__ __forceinline__ void pdl_wait() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}

// Both, first thing in a kernel that may follow another and be followed by one (ratio_clip's
// kernels): its dependents may be scheduled at once (they wait in turn), and nothing is read
// before the kernel it depends on has completed.
__device__ __forceinline__ void pdl_begin() {
  pdl_launch_dependents();
  pdl_wait();
}

// The calling thread's current device.
inline int current_device() {
  int device = 0;
  RLFT_CUDA_CHECK(cudaGetDevice(&device));
  return device;
}

// Attribute A of the current device, asked once per device (A's values are never 0).
template <cudaDeviceAttr A>
int device_attribute() {
  constexpr int kDevices = 64;
  static std::atomic<int> known[kDevices];  // 0: not asked yet
  const int device = current_device();
  const bool cached = device >= 0 && device < kDevices;
  int v = cached ? known[device].load(std::memory_order_relaxed) : 0;
  if (v == 0) {
    RLFT_CUDA_CHECK(cudaDeviceGetAttribute(&v, A, device));
    if (cached) known[device].store(v, std::memory_order_relaxed);
  }
  return v;
}

// Compute capability 9.0 or newer (Hopper): programmatic dependent launch, bulk copies
// (cp.async.bulk) and mbarrier transaction counts.
inline bool sm90_or_newer() { return device_attribute<cudaDevAttrComputeCapabilityMajor>() >= 9; }
inline bool programmatic_launch_supported() { return sm90_or_newer(); }

inline int multiprocessors() { return device_attribute<cudaDevAttrMultiProcessorCount>(); }

// Launches kernel<<<grid, block, smem, stream>>>(args...), programmatically dependent on the
// stream's previous kernel when `programmatic` is set and the device supports it (else an
// ordinary launch). The kernel must call pdl_wait() before reading that kernel's output.
template <typename... Params, typename... Args>
void launch_programmatic_dependent(bool programmatic, void (*kernel)(Params...), dim3 grid,
                                   dim3 block, size_t smem, cudaStream_t stream, Args&&... args) {
  cudaLaunchConfig_t cfg{};
  cfg.gridDim = grid;
  cfg.blockDim = block;
  cfg.dynamicSmemBytes = smem;
  cfg.stream = stream;
  cudaLaunchAttribute attr[1];
  attr[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attr[0].val.programmaticStreamSerializationAllowed = 1;
  cfg.attrs = attr;
  cfg.numAttrs = programmatic && programmatic_launch_supported() ? 1 : 0;
  RLFT_CUDA_CHECK(cudaLaunchKernelEx(&cfg, kernel, std::forward<Args>(args)...));
}

// Blocks for a grid-stride loop over `rows`: one block per row up to the grid limit.
inline unsigned grid_for_rows(int64_t rows) {
  const int64_t kMaxGridX = 2147483647;
  return unsigned(rows < kMaxGridX ? rows : kMaxGridX);
}

// Elementwise launches: 256 threads per block and a grid-stride loop over at most 65536·8
// blocks (enough to fill any current GPU many times over; the loop covers the rest).
constexpr int kThreads = 256;
inline unsigned blocks_for(int64_t n) {
  const int64_t b = (n + kThreads - 1) / kThreads;
  const int64_t kMax = int64_t(1) << 19;
  return unsigned(b < 1 ? 1 : (b < kMax ? b : kMax));
}

// One `Slot` per device in host-mapped pinned memory, for errors that kernels find and the host
// reports at its next synchronisation (index.cu's out-of-range indices, optim.cu's diverged
// Adam steps): a kernel writes its device's slot with plain stores, then a `ready` word after
// __threadfence_system(); once the host has waited for the device it reads the slot with
// loads from pinned memory — no API call, no copy. Allocated zeroed on the first get() (for
// every device at once: cudaHostAllocPortable), kept for the process's life, so the pointer
// baked into a launch (or a captured graph) stays valid. `Slot` must be trivially copyable.
template <typename Slot>
class MappedFaultSlots {
 public:
  static constexpr int kMaxDevices = 64;
  // The slot of `device`, allocating on first use; null for device >= kMaxDevices (faults there
  // go unreported).
  Slot* get(int device) {
    if (device < 0 || device >= kMaxDevices) return nullptr;
    Slot* s = slots_.load(std::memory_order_acquire);
    if (s == nullptr) {
      std::lock_guard<std::mutex> lock(mutex_);
      s = slots_.load(std::memory_order_relaxed);
      if (s == nullptr) {
        void* p = nullptr;
        RLFT_CUDA_CHECK(cudaHostAlloc(&p, sizeof(Slot) * kMaxDevices,
                                      cudaHostAllocMapped | cudaHostAllocPortable));
        s = static_cast<Slot*>(p);
        for (int d = 0; d < kMaxDevices; ++d) s[d] = Slot{};
        slots_.store(s, std::memory_order_release);
      }
    }
    return s + device;
  }
  // The slot of `device` if the slots exist (null before any get(): nothing can have been
  // recorded), for the host's poll; never allocates.
  Slot* peek(int device) const {
    Slot* s = slots_.load(std::memory_order_acquire);
    return s == nullptr || device < 0 || device >= kMaxDevices ? nullptr : s + device;
  }

 private:
  std::atomic<Slot*> slots_{nullptr};
  std::mutex mutex_;
};

// Makes `device` current for the calling thread (cheap when it already is).
inline void set_device(int device) { RLFT_CUDA_CHECK(cudaSetDevice(device)); }

}  // namespace rlft::kernels::cuda_detail
