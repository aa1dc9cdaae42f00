// CPU GEMM: C = alpha * op(A) @ op(B) + beta * C, row-major, single and double precision.
// The manual (blocking scheme, FLOPs, memory traffic, versions) is at the top of gemm.cpp.
#pragma once

#include <cstdint>

namespace rlft::kernels {

// C[M,N] = alpha * op(A) @ op(B) + beta * C; row-major; lda/ldb/ldc are row strides (elements).
// op(A) is A[M,K] (lda >= K) or, with trans_a, A is stored [K,M] (lda >= M).
// op(B) is B[K,N] (ldb >= N) or, with trans_b, B is stored [N,K] (ldb >= K).
// beta == 0 never reads C (C may hold NaN or garbage). M, N or K may be 0 (K == 0: C = beta*C).
// alpha == 0 does not read A or B (the BLAS convention).
// Threads: OpenMP, at most omp_get_max_threads(); one thread for small work (up to 64^3
// multiply-adds), inside a parallel region, and for a while after parallel calls that other
// processes slowed down (see ThreadBackoff in gemm.cpp). The result is bitwise the same for any
// thread count.
void gemm_f32(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
              const float* A, int64_t lda, const float* B, int64_t ldb, float beta, float* C,
              int64_t ldc);

// The same in double precision: a plain cache-blocked loop, correctness first (float64
// gradient checks), no hand vectorisation.
void gemm_f64(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, double alpha,
              const double* A, int64_t lda, const double* B, int64_t ldb, double beta, double* C,
              int64_t ldc);

// `batch` independent GEMMs; matrix b uses A + b*stride_a, B + b*stride_b, C + b*stride_c.
void gemm_batched_f32(bool trans_a, bool trans_b, int64_t batch, int64_t M, int64_t N, int64_t K,
                      float alpha, const float* A, int64_t lda, int64_t stride_a, const float* B,
                      int64_t ldb, int64_t stride_b, float beta, float* C, int64_t ldc,
                      int64_t stride_c);
void gemm_batched_f64(bool trans_a, bool trans_b, int64_t batch, int64_t M, int64_t N, int64_t K,
                      double alpha, const double* A, int64_t lda, int64_t stride_a, const double* B,
                      int64_t ldb, int64_t stride_b, double beta, double* C, int64_t ldc,
                      int64_t stride_c);

// The reference: the plain triple loop, accumulating in double. Same contract as gemm_f32.
void gemm_naive_f32(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
                    const float* A, int64_t lda, const float* B, int64_t ldb, float beta, float* C,
                    int64_t ldc);

// The micro-kernel family in use: "avx512", "avx2" or "portable". Chosen at first use: the best
// the CPU supports (__builtin_cpu_supports), lowered by the environment variable
// RLFT_GEMM_ISA=portable|avx2|avx512 (a request above what the CPU supports is ignored).
const char* gemm_isa();

// Re-dispatch (for tests and benchmarks): isa = "portable", "avx2" or "avx512" forces that
// path (capped at what the CPU supports); nullptr or "" re-reads RLFT_GEMM_ISA and the CPU.
// Returns the name now in use. Not to be called while another thread is inside gemm_*.
const char* gemm_set_isa(const char* isa);

// Whether the unpacked path's tiles may read packed copies of A and B (on by default, AVX2 only;
// see direct_gemm_packed in gemm_kernels.h). The bits are the same either way: for the tests
// that check so, and for benchmarks. Returns the previous setting. Not to be called while another
// thread is inside gemm_*.
bool gemm_set_direct_packing(bool on);
// How many times (all threads, since the process started) the unpacked path read packed copies:
// for the tests that must know the packed reads were taken.
int64_t gemm_direct_packing_calls();

}  // namespace rlft::kernels
