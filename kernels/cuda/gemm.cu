// gemm — row-major (batched) matrix products through cuBLAS (declared in kernels/cuda_ops.h),
// with the argument convention of kernels/cpu/gemm.h.
//
// cuBLAS is column-major. A row-major matrix X [R, C] with leading dimension ld is, read
// column-major, X^T [C, R] with the same ld. So row-major C = op(A)·op(B) is computed as the
// column-major product C^T = op(B)^T · op(A)^T: cuBLAS's first operand is B, its second A,
// and m = N, n = M, k = K.
//   - B not transposed (stored row-major [K, N]): column-major it is B^T [N, K] — already the
//     first factor, so CUBLAS_OP_N with ld = ldb. Transposed (stored [N, K]): column-major it
//     is B [K, N], so CUBLAS_OP_T with ld = ldb.
//   - likewise A: not transposed (stored [M, K]) reads as A^T [K, M]: CUBLAS_OP_N, ld = lda;
//     transposed (stored [K, M]) reads as A [M, K]: CUBLAS_OP_T.
// batch > 1 uses the strided-batched call with the given element strides (0: broadcast).
// One cuBLAS handle per device, created on first use (never destroyed: the CUDA context's
// teardown at exit releases it), on the legacy default stream. TF32 is opt-in
// (set_allow_tf32): CUBLAS_TF32_TENSOR_OP_MATH for float, otherwise CUBLAS_DEFAULT_MATH.
// Traffic: (M·K + K·N + M·N)·sizeof(T) per matrix at best; 2·M·N·K flops.
// Reference: kernels/cpu/gemm.h through the engine's CPU matmul/linear (test_cuda_ops.cpp).
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <atomic>
#include <mutex>
#include <vector>

#include "kernels/cuda/common.cuh"
#include "kernels/cuda_ops.h"

namespace rlft::kernels::cuda_ops {

namespace {

std::atomic<bool> g_allow_tf32{false};

const char* cublas_status_name(cublasStatus_t s) {
  switch (s) {
    case CUBLAS_STATUS_SUCCESS:
      return "CUBLAS_STATUS_SUCCESS";
    case CUBLAS_STATUS_NOT_INITIALIZED:
      return "CUBLAS_STATUS_NOT_INITIALIZED";
    case CUBLAS_STATUS_ALLOC_FAILED:
      return "CUBLAS_STATUS_ALLOC_FAILED";
    case CUBLAS_STATUS_INVALID_VALUE:
      return "CUBLAS_STATUS_INVALID_VALUE";
    case CUBLAS_STATUS_ARCH_MISMATCH:
      return "CUBLAS_STATUS_ARCH_MISMATCH";
    case CUBLAS_STATUS_MAPPING_ERROR:
      return "CUBLAS_STATUS_MAPPING_ERROR";
    case CUBLAS_STATUS_EXECUTION_FAILED:
      return "CUBLAS_STATUS_EXECUTION_FAILED";
    case CUBLAS_STATUS_INTERNAL_ERROR:
      return "CUBLAS_STATUS_INTERNAL_ERROR";
    case CUBLAS_STATUS_NOT_SUPPORTED:
      return "CUBLAS_STATUS_NOT_SUPPORTED";
    default:
      return "unknown cuBLAS status";
  }
}

#define RLFT_CUBLAS_CHECK(call)                                                              \
  do {                                                                                       \
    const cublasStatus_t st_ = (call);                                                       \
    if (st_ != CUBLAS_STATUS_SUCCESS)                                                        \
      throw ::rlft::Error(                                                                   \
          ::rlft::str(__FILE__, ":", __LINE__, ": ", #call, ": ", cublas_status_name(st_))); \
  } while (0)

// The handle of `device` (the caller has made it current).
cublasHandle_t handle_for(int device) {
  static std::mutex mu;
  static std::vector<cublasHandle_t> handles;
  std::lock_guard<std::mutex> lock(mu);
  if (int(handles.size()) <= device) handles.resize(size_t(device) + 1, nullptr);
  if (!handles[size_t(device)]) {
    cublasHandle_t h = nullptr;
    RLFT_CUBLAS_CHECK(cublasCreate(&h));
    RLFT_CUBLAS_CHECK(cublasSetStream(h, nullptr));
    handles[size_t(device)] = h;
  }
  return handles[size_t(device)];
}

}  // namespace

void set_allow_tf32(bool allow) { g_allow_tf32.store(allow); }
bool allow_tf32() { return g_allow_tf32.load(); }

void gemm(Type type, bool ta, bool tb, int64_t batch, int64_t M, int64_t N, int64_t K, double alpha,
          const void* A, int64_t lda, int64_t sa, const void* B, int64_t ldb, int64_t sb,
          double beta, void* C, int64_t ldc, int64_t sc, int device) {
  if (batch == 0 || M == 0 || N == 0) return;
  const int64_t kIntMax = 2147483647;
  RLFT_CHECK(M <= kIntMax && N <= kIntMax && K <= kIntMax && lda <= kIntMax && ldb <= kIntMax &&
                 ldc <= kIntMax && batch <= kIntMax,
             "cuda gemm: sizes beyond cuBLAS's 32-bit range (M ", M, ", N ", N, ", K ", K,
             ", batch ", batch, ")");
  cuda_detail::set_device(device);
  cublasHandle_t h = handle_for(device);
  const cublasOperation_t op_b = tb ? CUBLAS_OP_T : CUBLAS_OP_N;
  const cublasOperation_t op_a = ta ? CUBLAS_OP_T : CUBLAS_OP_N;
  // cuBLAS requires ld ≥ 1 even for empty inner dimensions.
  const int lb = int(ldb > 0 ? ldb : 1), la = int(lda > 0 ? lda : 1), lc = int(ldc > 0 ? ldc : 1);
  if (type == Type::f32) {
    RLFT_CUBLAS_CHECK(
        cublasSetMathMode(h, allow_tf32() ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH));
    const float al = float(alpha), be = float(beta);
    if (batch == 1) {
      RLFT_CUBLAS_CHECK(cublasSgemm(h, op_b, op_a, int(N), int(M), int(K), &al,
                                    static_cast<const float*>(B), lb, static_cast<const float*>(A),
                                    la, &be, static_cast<float*>(C), lc));
    } else {
      RLFT_CUBLAS_CHECK(cublasSgemmStridedBatched(
          h, op_b, op_a, int(N), int(M), int(K), &al, static_cast<const float*>(B), lb,
          (long long)sb, static_cast<const float*>(A), la, (long long)sa, &be,
          static_cast<float*>(C), lc, (long long)sc, int(batch)));
    }
  } else if (type == Type::f64) {
    RLFT_CUBLAS_CHECK(cublasSetMathMode(h, CUBLAS_DEFAULT_MATH));
    const double al = alpha, be = beta;
    if (batch == 1) {
      RLFT_CUBLAS_CHECK(
          cublasDgemm(h, op_b, op_a, int(N), int(M), int(K), &al, static_cast<const double*>(B), lb,
                      static_cast<const double*>(A), la, &be, static_cast<double*>(C), lc));
    } else {
      RLFT_CUBLAS_CHECK(cublasDgemmStridedBatched(
          h, op_b, op_a, int(N), int(M), int(K), &al, static_cast<const double*>(B), lb,
          (long long)sb, static_cast<const double*>(A), la, (long long)sa, &be,
          static_cast<double*>(C), lc, (long long)sc, int(batch)));
    }
  } else {
    throw Error("cuda gemm: expected a floating element type");
  }
}

}  // namespace rlft::kernels::cuda_ops
