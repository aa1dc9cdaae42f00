// The CUDA runtime entry points for builds without the CUDA backend: no device, and why.
#ifndef RLFT_HAVE_CUDA
#include "engine/error.h"
#include "kernels/cuda_runtime.h"

namespace rlft::kernels::cuda {
bool built() { return false; }
int device_count(std::string* reason) {
  if (reason) *reason = "rlft was built without the CUDA backend (nvcc not found or RLFT_CUDA=OFF)";
  return 0;
}
std::string device_name(int) { throw Error("CUDA backend not built"); }
double selftest_axpy(int) { throw Error("CUDA backend not built"); }
}  // namespace rlft::kernels::cuda
#endif
