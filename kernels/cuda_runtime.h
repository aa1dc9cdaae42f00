// The CUDA runtime as seen by the rest of rlft: whether the backend was built, how many
// devices answer, and a self-test kernel. Without a GPU (or without a driver) the device
// count is 0 and `reason` says why, e.g. "CUDA driver version is insufficient for CUDA
// runtime version": that means "no GPU here", not a failure.
#pragma once

#include <cstddef>
#include <string>

namespace rlft::kernels::cuda {

// True when this build contains the CUDA backend (nvcc was found at configure time).
bool built();
// Number of usable devices; 0 with `reason` filled when none answers.
int device_count(std::string* reason);
// Name and compute capability of device `index` (e.g. "NVIDIA H100 80GB HBM3 (sm_90)").
std::string device_name(int index);
// Blocking copies between host and device memory, or within one device (`bytes` may be 0).
// Every call is checked: a failure throws rlft::Error with the file, line and CUDA's reason.
// copy_device_to_host and synchronize also report (throw) an out-of-range index that an
// earlier index kernel met on the device (kernels/cuda_ops.h, check_index_faults).
void copy_host_to_device(void* dst, const void* src, size_t bytes, int device);
void copy_device_to_host(void* dst, const void* src, size_t bytes, int device);
void copy_device_to_device(void* dst, const void* src, size_t bytes, int device);
// Waits for all work queued on `device`.
void synchronize(int device);
// Runs y = a·x + y over n elements on the device and returns the largest absolute error
// against the same loop on the CPU (a smoke test of allocation, copies and launches).
double selftest_axpy(int n);

}  // namespace rlft::kernels::cuda
