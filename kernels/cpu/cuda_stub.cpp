// The CUDA runtime entry points for builds without the CUDA backend: no device, and why.
#ifndef RLFT_HAVE_CUDA
#include "engine/error.h"
#include "kernels/cuda_allocator.h"
#include "kernels/cuda_runtime.h"

namespace rlft::kernels::cuda {
bool built() { return false; }
int device_count(std::string* reason) {
  if (reason) *reason = "rlft was built without the CUDA backend (nvcc not found or RLFT_CUDA=OFF)";
  return 0;
}
std::string device_name(int) { throw Error("CUDA backend not built"); }
double selftest_axpy(int) { throw Error("CUDA backend not built"); }
namespace {
[[noreturn]] void not_built(const char* what) {
  throw Error(str(what, ": rlft was built without the CUDA backend (nvcc not found or RLFT_CUDA=OFF)"));
}
}  // namespace
void copy_host_to_device(void*, const void*, size_t, int) { not_built("copy to a CUDA device"); }
void copy_device_to_host(void*, const void*, size_t, int) { not_built("copy from a CUDA device"); }
void copy_device_to_device(void*, const void*, size_t, int) { not_built("copy on a CUDA device"); }
void synchronize(int) { not_built("cuda synchronize"); }
}  // namespace rlft::kernels::cuda

namespace rlft::kernels {
void* cuda_alloc(size_t, int device) { cuda::not_built(str("allocation on cuda:", device).c_str()); }
void cuda_free(void* ptr) {
  if (ptr) cuda::not_built("cuda_free");
}
CudaMemoryStats cuda_memory_stats(int) { return {}; }
void cuda_empty_cache() {}
void cuda_reset_peak_memory_stats(int) {}
}  // namespace rlft::kernels
#endif
