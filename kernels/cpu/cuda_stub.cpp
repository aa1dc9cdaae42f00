// The CUDA runtime entry points for builds without the CUDA backend: no device, and why.
#ifndef RLFT_HAVE_CUDA
#include "engine/error.h"
#include "kernels/cuda_allocator.h"
#include "kernels/cuda_ops.h"
#include "kernels/cuda_runtime.h"
#include "kernels/gae.h"
#include "kernels/ratio_clip.h"
#include "kernels/softmax_logprob.h"

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

// The fused RL kernels' device entry points (the engine's ops reach them only for tensors on
// a device, which cannot exist in this build; they are defined so that it links).
template <typename Real>
void softmax_logprob_forward_cuda(const Real*, int64_t, int64_t, int64_t, const int64_t*, int64_t, Real, Real*, Real*,
                                  Real*, CUstream_st*, int, bool, CudaLaunch) {
  cuda::not_built("softmax_logprob on a CUDA device");
}
template <typename Real>
void softmax_logprob_backward_cuda(const Real*, int64_t, int64_t, int64_t, const int64_t*, int64_t, Real, const Real*,
                                   const Real*, const Real*, const Real*, Real*, int64_t, bool, CUstream_st*, int,
                                   bool, CudaLaunch) {
  cuda::not_built("softmax_logprob backward on a CUDA device");
}
template <typename Real>
RatioClipStats ratio_clip_forward_cuda(const RatioClipArgs<Real>&, CUstream_st*, CudaLaunch) {
  cuda::not_built("ratio_clip on a CUDA device");
}
template <typename Real>
void ratio_clip_forward_cuda_async(const RatioClipArgs<Real>&, double*, CUstream_st*, CudaLaunch) {
  cuda::not_built("ratio_clip on a CUDA device");
}
template <typename Real>
void ratio_clip_backward_cuda(const RatioClipArgs<Real>&, double, Real*, bool, CUstream_st*,
                              CudaLaunch, const Real*) {
  cuda::not_built("ratio_clip backward on a CUDA device");
}
template <typename Real>
void gae_cuda(const Real*, const Real*, const Real*, const Real*, const Real*, int64_t, int64_t, Real, Real, Real*,
              Real*, CUstream_st*, int) {
  cuda::not_built("gae on a CUDA device");
}
template <typename Real>
void gae_masked_rows_cuda(const Real*, const Real*, const Real*, int64_t, int64_t, Real, Real, Real*, Real*,
                          CUstream_st*, int) {
  cuda::not_built("gae_masked on a CUDA device");
}
#define RLFT_STUB_INSTANTIATE(R)                                                                   \
  template void softmax_logprob_forward_cuda<R>(const R*, int64_t, int64_t, int64_t,               \
                                                const int64_t*, int64_t, R, R*, R*, R*,            \
                                                CUstream_st*, int, bool, CudaLaunch);              \
  template void softmax_logprob_backward_cuda<R>(                                                  \
      const R*, int64_t, int64_t, int64_t, const int64_t*, int64_t, R, const R*, const R*,         \
      const R*, const R*, R*, int64_t, bool, CUstream_st*, int, bool, CudaLaunch);                 \
  template RatioClipStats ratio_clip_forward_cuda<R>(const RatioClipArgs<R>&, CUstream_st*,        \
                                                     CudaLaunch);                                  \
  template void ratio_clip_forward_cuda_async<R>(const RatioClipArgs<R>&, double*, CUstream_st*,   \
                                                 CudaLaunch);                                      \
  template void ratio_clip_backward_cuda<R>(const RatioClipArgs<R>&, double, R*, bool,             \
                                            CUstream_st*, CudaLaunch, const R*);                   \
  template void gae_cuda<R>(const R*, const R*, const R*, const R*, const R*, int64_t, int64_t, R, \
                            R, R*, R*, CUstream_st*, int);                                         \
  template void gae_masked_rows_cuda<R>(const R*, const R*, const R*, int64_t, int64_t, R, R, R*,  \
                                        R*, CUstream_st*, int);
RLFT_STUB_INSTANTIATE(float)
RLFT_STUB_INSTANTIATE(double)
#undef RLFT_STUB_INSTANTIATE

// A stub whose signature drifted from its header's declaration is a second overload, which the
// engine's calls never reach (the build then fails to link, but only without nvcc). Taking the
// address of each template's specialisation is then ambiguous: a compile error here. The
// non-template stubs are checked by -Werror=missing-declarations (a drifted one has no prior
// declaration). CMake compiles this file in CUDA builds too (rlft_cuda_stub_check, never
// linked), so CI, which builds with nvcc, sees both checks.
namespace stub_check {
[[maybe_unused]] constexpr auto* kSoftmaxLogprobForward = &softmax_logprob_forward_cuda<float>;
[[maybe_unused]] constexpr auto* kSoftmaxLogprobBackward = &softmax_logprob_backward_cuda<float>;
[[maybe_unused]] constexpr auto* kRatioClipForward = &ratio_clip_forward_cuda<float>;
[[maybe_unused]] constexpr auto* kRatioClipForwardAsync = &ratio_clip_forward_cuda_async<float>;
[[maybe_unused]] constexpr auto* kRatioClipBackward = &ratio_clip_backward_cuda<float>;
[[maybe_unused]] constexpr auto* kGae = &gae_cuda<float>;
[[maybe_unused]] constexpr auto* kGaeMaskedRows = &gae_masked_rows_cuda<float>;
}  // namespace stub_check
}  // namespace rlft::kernels

// The engine's generic device ops (kernels/cuda_ops.h).
namespace rlft::kernels::cuda_ops {
namespace {
bool g_allow_tf32 = false;
[[noreturn]] void not_built(const char* what) { cuda::not_built(what); }
}  // namespace
void set_device_for(int) { not_built("cuda set device"); }
void unary(Unary, Type, const Geometry&, void*, const void*, double, double, int) { not_built("cuda unary op"); }
void binary(Binary, Type, const Geometry&, void*, const void*, const void*, double, double, int) {
  not_built("cuda binary op");
}
void where(Type, const Geometry&, void*, const uint8_t*, const void*, const void*, int) { not_built("cuda where"); }
void copy(Type, Type, const Geometry&, void*, const void*, int) { not_built("cuda copy"); }
void fill(Type, const Geometry&, void*, double, int) { not_built("cuda fill"); }
void uniform(Type, int64_t, uint64_t, uint64_t, void*, int) { not_built("cuda uniform"); }
void normal(Type, int64_t, uint64_t, uint64_t, void*, int) { not_built("cuda normal"); }
void arange(Type, int64_t, double, double, void*, int) { not_built("cuda arange"); }
void sum(Type, int64_t, int64_t, int64_t, const void*, void*, int, int) { not_built("cuda sum"); }
void extreme(Type, int64_t, int64_t, int64_t, const void*, void*, int64_t*, bool, int, int) { not_built("cuda max/min"); }
void cumsum(Type, int64_t, int64_t, int64_t, const void*, void*, bool, int) { not_built("cuda cumsum"); }
void gemm(Type, bool, bool, int64_t, int64_t, int64_t, int64_t, double, const void*, int64_t, int64_t, const void*,
          int64_t, int64_t, double, void*, int64_t, int64_t, int) {
  not_built("cuda gemm");
}
void set_allow_tf32(bool allow) { g_allow_tf32 = allow; }
bool allow_tf32() { return g_allow_tf32; }
void softmax_rows(Type, int64_t, int64_t, const void*, void*, bool, int) { not_built("cuda softmax"); }
void softmax_rows_backward(Type, int64_t, int64_t, const void*, const void*, void*, bool, int) {
  not_built("cuda softmax backward");
}
void cross_entropy_rows(Type, int64_t, int64_t, const void*, const int64_t*, int64_t, void*, double*, int) {
  not_built("cuda cross_entropy");
}
void cross_entropy_rows_backward(Type, int64_t, int64_t, const void*, const int64_t*, int64_t, const double*,
                                 const void*, void*, int) {
  not_built("cuda cross_entropy backward");
}
void layer_norm_forward(Type, int64_t, int64_t, const void*, const void*, const void*, double, void*, double*, double*,
                        int) {
  not_built("cuda layer_norm");
}
void layer_norm_backward(Type, int64_t, int64_t, const void*, const void*, const double*, const double*, const void*,
                         void*, void*, void*, int, int) {
  not_built("cuda layer_norm backward");
}
void check_index_faults(int) {}  // no device kernel can have run
void check_targets(Type, const int64_t*, int64_t, int64_t, int64_t, void*, int, IndexOp) {
  not_built("cuda check_targets");
}
void index_select(Type, int64_t, int64_t, int64_t, const void*, const int64_t*, int64_t, void*, int, IndexOp) {
  not_built("cuda index_select");
}
void index_add(Type, int64_t, int64_t, int64_t, void*, const int64_t*, int64_t, const void*, int, IndexOp) {
  not_built("cuda index_add");
}
void gather(Type, const Geometry&, void*, const int64_t*, const void*, int64_t, int64_t, int) {
  not_built("cuda gather");
}
void scatter_add(Type, const Geometry&, const void*, const int64_t*, void*, int64_t, int64_t, int) {
  not_built("cuda scatter_add");
}
void attention_forward(Type, const AttentionShape&, const uint8_t*, const void*, HeadStrides, const void*,
                       HeadStrides, const void*, HeadStrides, void*, HeadStrides, void*, int) {
  not_built("cuda attention");
}
void attention_backward(Type, const AttentionShape&, const uint8_t*, const void*, HeadStrides, const void*,
                        HeadStrides, const void*, HeadStrides, const void*, HeadStrides, const void*, const void*,
                        HeadStrides, void*, HeadStrides, void*, HeadStrides, void*, HeadStrides, int) {
  not_built("cuda attention backward");
}
void adam_step(Type, const AdamTensor*, int, const AdamArgs&, int) { not_built("cuda adam step"); }
void check_adam_faults(int) {}  // no device kernel can have run
void sgd_step(Type, int64_t, void*, const void*, void*, double, double, double, double, bool, bool, int) {
  not_built("cuda sgd step");
}
}  // namespace rlft::kernels::cuda_ops
#endif
