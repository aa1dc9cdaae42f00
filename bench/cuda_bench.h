// Shared by the CUDA benchmarks (bench_cuda_kernels, bench_cuda_engine): a checked CUDA call
// and a cudaEvent timer on the default stream. Only for builds with the CUDA backend.
#pragma once

#ifdef RLFT_HAVE_CUDA
#include <cuda_runtime.h>

#include <functional>
#include <stdexcept>
#include <string>

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

}  // namespace rlft::bench
#endif  // RLFT_HAVE_CUDA
