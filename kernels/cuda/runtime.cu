// CUDA runtime helpers and the self-test kernel.
//
// axpy_kernel: y[i] = a·x[i] + y[i], one thread per element; 12 bytes moved per element
// (read x, read y, write y). Reference: the same loop on the CPU in selftest_axpy.
#include <cuda_runtime.h>

#include <cmath>
#include <string>
#include <vector>

#include "engine/error.h"
#include "kernels/cuda_ops.h"
#include "kernels/cuda_runtime.h"

#define RLFT_CUDA_CHECK(call)                                                                   \
  do {                                                                                          \
    cudaError_t err_ = (call);                                                                  \
    if (err_ != cudaSuccess)                                                                    \
      throw ::rlft::Error(::rlft::str(__FILE__, ":", __LINE__, ": ", #call, ": ",               \
                                      cudaGetErrorString(err_)));                               \
  } while (0)

namespace rlft::kernels::cuda {

namespace {
__global__ void axpy_kernel(int n, float a, const float* x, float* y) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) y[i] = a * x[i] + y[i];
}
}  // namespace

bool built() { return true; }

int device_count(std::string* reason) {
  int n = 0;
  const cudaError_t err = cudaGetDeviceCount(&n);
  if (err != cudaSuccess) {
    if (reason) *reason = cudaGetErrorString(err);
    cudaGetLastError();  // clear the sticky error
    return 0;
  }
  if (n == 0 && reason) *reason = "no CUDA device found";
  return n;
}

std::string device_name(int index) {
  cudaDeviceProp prop{};
  RLFT_CUDA_CHECK(cudaGetDeviceProperties(&prop, index));
  return str(prop.name, " (sm_", prop.major, prop.minor, ")");
}

namespace {
// Makes `device` current for the calling thread; an index with no device is a clear error.
void use_device(int device) {
  int n = 0;
  RLFT_CUDA_CHECK(cudaGetDeviceCount(&n));
  RLFT_CHECK(device >= 0 && device < n, "cuda:", device, ": no such device (", n, " present)");
  RLFT_CUDA_CHECK(cudaSetDevice(device));
}
}  // namespace

// What kernels recorded for the next synchronisation: an out-of-range index (index.cu), then a
// fused Adam step that left a parameter non-finite (optim.cu); one error per call, another
// pending one is thrown by the next.
namespace {
void report_device_faults(int device) {
  cuda_ops::check_index_faults(device);
  cuda_ops::check_adam_faults(device);
}
}  // namespace

void copy_host_to_device(void* dst, const void* src, size_t bytes, int device) {
  if (bytes == 0) return;
  use_device(device);
  RLFT_CUDA_CHECK(cudaMemcpy(dst, src, bytes, cudaMemcpyHostToDevice));
}

void copy_device_to_host(void* dst, const void* src, size_t bytes, int device) {
  if (bytes == 0) return;
  use_device(device);
  RLFT_CUDA_CHECK(cudaMemcpy(dst, src, bytes, cudaMemcpyDeviceToHost));
  report_device_faults(device);  // the copy waited for every earlier kernel
}

void copy_device_to_device(void* dst, const void* src, size_t bytes, int device) {
  if (bytes == 0) return;
  use_device(device);
  RLFT_CUDA_CHECK(cudaMemcpy(dst, src, bytes, cudaMemcpyDeviceToDevice));
}

void synchronize(int device) {
  use_device(device);
  RLFT_CUDA_CHECK(cudaDeviceSynchronize());
  report_device_faults(device);
}

double selftest_axpy(int n) {
  std::vector<float> x(n), y(n), ref(n);
  for (int i = 0; i < n; ++i) {
    x[i] = float(i % 97) * 0.5f;
    y[i] = float(i % 13) - 6.0f;
    ref[i] = 2.5f * x[i] + y[i];
  }
  float *dx = nullptr, *dy = nullptr;
  RLFT_CUDA_CHECK(cudaMalloc(&dx, n * sizeof(float)));
  RLFT_CUDA_CHECK(cudaMalloc(&dy, n * sizeof(float)));
  RLFT_CUDA_CHECK(cudaMemcpy(dx, x.data(), n * sizeof(float), cudaMemcpyHostToDevice));
  RLFT_CUDA_CHECK(cudaMemcpy(dy, y.data(), n * sizeof(float), cudaMemcpyHostToDevice));
  axpy_kernel<<<(n + 255) / 256, 256>>>(n, 2.5f, dx, dy);
  RLFT_CUDA_CHECK(cudaGetLastError());
  RLFT_CUDA_CHECK(cudaMemcpy(y.data(), dy, n * sizeof(float), cudaMemcpyDeviceToHost));
  RLFT_CUDA_CHECK(cudaFree(dx));
  RLFT_CUDA_CHECK(cudaFree(dy));
  double worst = 0;
  for (int i = 0; i < n; ++i) worst = std::max(worst, double(std::abs(y[i] - ref[i])));
  return worst;
}

}  // namespace rlft::kernels::cuda
