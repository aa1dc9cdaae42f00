// Shared by the CUDA benchmarks (bench_cuda_kernels, bench_cuda_engine): a checked CUDA call,
// a cudaEvent timer on the default stream and the L2 flush run before each timed region.
// Only for builds with the CUDA backend.
#pragma once

#ifdef RLFT_HAVE_CUDA
#include <cuda_runtime.h>

#include <functional>
#include <stdexcept>
#include <string>

#include "kernels/cuda_ops.h"

namespace rlft::bench {

inline void cuda_ok(cudaError_t e, const char* what) {
  if (e != cudaSuccess) throw std::runtime_error(std::string(what) + ": " + cudaGetErrorString(e));
}
#define CUDA_OK(call) ::rlft::bench::cuda_ok((call), #call)

// Seconds of GPU time between two events recorded around f() on `stream` (default: the legacy
// default stream).
struct EventTimer {
  cudaEvent_t a{}, b{};
  EventTimer() {
    CUDA_OK(cudaEventCreate(&a));
    CUDA_OK(cudaEventCreate(&b));
  }
  ~EventTimer() {
    cudaEventDestroy(a);
    cudaEventDestroy(b);
  }
  EventTimer(const EventTimer&) = delete;
  EventTimer& operator=(const EventTimer&) = delete;
  double seconds(const std::function<void()>& f, cudaStream_t stream = nullptr) {
    CUDA_OK(cudaEventRecord(a, stream));
    f();
    CUDA_OK(cudaEventRecord(b, stream));
    CUDA_OK(cudaEventSynchronize(b));
    float ms = 0;
    CUDA_OK(cudaEventElapsedTime(&ms, a, b));
    return double(ms) * 1e-3;
  }
};

// The DRAM peak from the device attributes, GB/s: 2 (DDR) × memory clock × bus width.
inline double peak_dram_gbps(int device) {
  int clock_khz = 0, bus_bits = 0;
  CUDA_OK(cudaDeviceGetAttribute(&clock_khz, cudaDevAttrMemoryClockRate, device));
  CUDA_OK(cudaDeviceGetAttribute(&bus_bits, cudaDevAttrGlobalMemoryBusWidth, device));
  return 2.0 * double(clock_khz) * 1e3 * double(bus_bits) / 8.0 / 1e9;
}

inline int l2_bytes() {
  int l2 = 0;
  CUDA_OK(cudaDeviceGetAttribute(&l2, cudaDevAttrL2CacheSize, 0));
  return l2;
}

// Empties device 0's L2 of the timed call's data, on the legacy default stream.
//   clean (dirty = false, the default): READS a buffer of its own 4× the L2 (a row sum into
//     4096 floats through the engine's reduction kernel), so no input is left in the cache and
//     the L2 holds clean lines: the timed call's DRAM traffic is its own.
//   dirty (bench_cuda_kernels' dirty_l2/… lines, its sessions 1–7 protocol, nvbench's kind of
//     flush): ZEROES a buffer 2× the L2, which leaves the L2 full of dirty lines that the timed
//     call writes back to DRAM while it reads.
struct L2Flush {
  static constexpr int64_t kRows = 4096;
  bool dirty = false;
  size_t bytes = 0;     // the buffer
  int64_t per_row = 0;  // clean: floats per row of the summed buffer (kRows rows)
  float* p = nullptr;
  float* sums = nullptr;
  explicit L2Flush(bool zeroing = false) : dirty(zeroing) {
    const size_t l2 = size_t(l2_bytes());
    if (l2 == 0) return;
    per_row = int64_t((4 * l2 / sizeof(float) + kRows - 1) / kRows);
    bytes = dirty ? 2 * l2 : size_t(kRows * per_row) * sizeof(float);
    CUDA_OK(cudaMalloc(reinterpret_cast<void**>(&p), bytes));
    CUDA_OK(cudaMemset(p, 0, bytes));
    CUDA_OK(cudaMalloc(reinterpret_cast<void**>(&sums), kRows * sizeof(float)));
    CUDA_OK(cudaDeviceSynchronize());
  }
  ~L2Flush() {
    cudaFree(p);
    cudaFree(sums);
  }
  L2Flush(const L2Flush&) = delete;
  L2Flush& operator=(const L2Flush&) = delete;
  void operator()() const {
    if (!p) return;
    if (dirty)
      CUDA_OK(cudaMemsetAsync(p, 0, bytes));
    else
      kernels::cuda_ops::sum(kernels::cuda_ops::Type::f32, kRows, per_row, 1, p, sums, 0);
  }
};

}  // namespace rlft::bench
#endif  // RLFT_HAVE_CUDA
