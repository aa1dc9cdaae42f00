// rlft::cuda — the device side as the engine's users see it: is the backend built, how many
// GPUs answer, wait for queued work, memory statistics. Tensors live on a GPU through
// Tensor::empty(..., Device::cuda(i)) and Tensor::to(Device::cuda(i)) (engine/tensor.h);
// engine ops on such tensors run on that device (see README, "CUDA backend").
//
//   if (rlft::cuda::is_available()) {
//     Tensor x = Tensor::ones({1024}).to(Device::cuda());
//     rlft::cuda::synchronize();
//   }
#pragma once

#include <string>

#include "kernels/cuda_allocator.h"
#include "kernels/cuda_ops.h"
#include "kernels/cuda_runtime.h"

namespace rlft::cuda {

// This build contains the CUDA backend (nvcc was found at configure time).
inline bool is_built() { return kernels::cuda::built(); }
// Devices that answer (0 without a GPU or driver; `reason` then says why).
inline int device_count(std::string* reason = nullptr) { return kernels::cuda::device_count(reason); }
inline bool is_available() { return device_count() > 0; }
// Blocks until every kernel and copy queued on `device` has finished.
inline void synchronize(int device = 0) { kernels::cuda::synchronize(device); }
// The caching allocator's statistics for `device` (allocated, reserved, peaks, cache hits).
inline kernels::CudaMemoryStats memory_stats(int device = 0) { return kernels::cuda_memory_stats(device); }
// Returns cached, unused device memory to the driver.
inline void empty_cache() { kernels::cuda_empty_cache(); }
// TF32 tensor cores for float32 matmul/linear on the GPU (inputs rounded to a 10-bit
// mantissa, float accumulation: ~1e-3 relative error, several times the speed). Off by
// default, like torch.backends.cuda.matmul.allow_tf32; float64 is never affected.
inline void set_allow_tf32(bool allow) { kernels::cuda_ops::set_allow_tf32(allow); }
inline bool allow_tf32() { return kernels::cuda_ops::allow_tf32(); }

}  // namespace rlft::cuda
