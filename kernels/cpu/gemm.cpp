// CPU GEMM — the manual.
//
// What it computes
//   C[M,N] = alpha * op(A)[M,K] @ op(B)[K,N] + beta * C[M,N], row-major with row strides
//   lda/ldb/ldc; op(X) = X or X^T (trans_a: A stored [K,M]; trans_b: B stored [N,K]).
//   beta == 0 never reads C; alpha == 0 or K == 0 only scales C. f32 is the fast path;
//   f64 is a plain blocked loop for float64 gradient checks.
//
// FLOPs and memory traffic
//   2*M*N*K FLOPs over 4*(M*K + K*N + 2*M*N) bytes at least: arithmetic intensity
//   ~ 2MNK / (4(MK + KN + 2MN)), 170 FLOP/byte at 1024^3 (compute bound), but only ~5 at the RL
//   shape 64 x 64 x 64 and < 1 at M = 1 (GEMV: bound by reading B once).
//   Peak on the reference machine (AMD EPYC Zen 4, 2 cores): one 512-bit FMA (or two 256-bit)
//   per cycle per core = 32 FP32 FLOP/cycle/core.
//
// Versions (the loop nest picks one per call; all are kept, each for the shapes it wins)
//   gemm_naive_f32      version 1: the triple loop accumulating in double. The reference.
//   macro/micro_tile    version 2: BLIS/GotoBLAS packed GEMM (gemm_kernels.h), for large shapes:
//     for i0 in M step MB        packed A block  Ap[MB x KC], shared by all threads  (L3)
//       for p0 in K step KC      (K split into equal chunks <= KC)
//         pack Ap                threads pack micro-panels in parallel, then a barrier
//         for j0 in my N range step NB
//           pack Bp[KC x NB]     private to the thread                              (L2)
//           for ir step MR       one A micro-panel [KC x MR] stays in L1
//             for jr step NR     B micro-panels stream from L2
//               micro-kernel     MR x NR accumulators in registers, KC rank-1 updates
//     Threads (OpenMP) split the MxN tile grid into tm x tn rectangles (tm*tn = threads, the
//     most balanced split, ties going to splitting N so that no B block is packed twice).
//     Why: packing makes every operand contiguous and aligned whatever the transposes and
//     strides, so one micro-kernel covers the four cases; per k the micro-kernel loads NR + MR
//     floats for MR*NR FMAs, so with MR x NR = 12 x 32 (AVX-512) it needs ~6 bytes/cycle from
//     L1/L2 and stays FMA-bound. Packing costs O(MK + KN) per KC chunk: < 3% from 512^3 up.
//   direct_tile         version 3: no packing, for small shapes (RL MLPs: M <= 512, K,N <= 256)
//     where a pack and a parallel region cost as much as the math. Same register tile, reading
//     op(A) by broadcasts at any stride and B rows in place; single-threaded below
//     kMinWorkPerThread FMAs per thread, otherwise rows (or columns) split across threads.
//   dot_tile            version 4: C(i,j) = dot(A row i, B^T row j), vectorised along K, for
//     trans_b (the Linear layer's y = x W^T with W [out,in]) and for very narrow N (a value
//     head, N = 1 or 2), where vectors along N would be mostly empty.
//   Micro-kernels: AVX-512 (12x32 packed, 6x64 direct, 4x4 dot), AVX2+FMA (6x16, 6x16, 4x2),
//   portable GCC vectors (4-wide, 6x8). Chosen at first use with __builtin_cpu_supports;
//   RLFT_GEMM_ISA=portable|avx2|avx512 lowers the choice, gemm_set_isa re-dispatches (tests).
//   Compiled with `#pragma GCC target`, the library has no -march flag.
//
// Tested against gemm_naive_f32 (tests/kernels/test_gemm.cpp): odd and zero sizes, all four
// transposes, alpha/beta (beta = 0 over NaN), padded strides, batched, f64, every ISA path.
// Measured by bench/bench_gemm.cpp against OpenBLAS cblas_sgemm (BENCHMARKS.md, "CPU GEMM").
#include "kernels/cpu/gemm.h"

#include <omp.h>

#include <algorithm>
#include <atomic>
#include <cassert>
#include <cstdlib>
#include <cstring>

#include "kernels/cpu/gemm_kernels.h"

namespace rlft::kernels {
namespace gemm_detail {

float* gemm_scratch(int slot, int64_t floats) {
  struct Buffers {
    float* ptr[kScratchSlots] = {};
    int64_t cap[kScratchSlots] = {};
    ~Buffers() {
      for (float* p : ptr) std::free(p);
    }
  };
  thread_local Buffers buffers;
  if (floats > buffers.cap[slot]) {
    std::free(buffers.ptr[slot]);
    // Round up to whole 4 KiB pages; 64-byte alignment keeps packed rows on cache lines.
    const int64_t bytes = (floats * 4 + 4095) / 4096 * 4096;
    buffers.ptr[slot] = static_cast<float*>(std::aligned_alloc(64, static_cast<size_t>(bytes)));
    if (buffers.ptr[slot] == nullptr) std::abort();
    buffers.cap[slot] = bytes / 4;
  }
  return buffers.ptr[slot];
}

}  // namespace gemm_detail

namespace {

using gemm_detail::GemmKernels;

// Below this many multiply-adds per thread a parallel region costs more than it saves
// (an OpenMP fork/join is ~1-3 us; 2^17 FMAs is ~4 us on one Zen 4 core at full speed).
constexpr double kMinWorkPerThread = 131072.0;

// ---- dispatch ---------------------------------------------------------------------------------

int cpu_best_isa() {  // 2 = avx512, 1 = avx2, 0 = portable
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
      __builtin_cpu_supports("fma"))
    return 2;
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return 1;
#endif
  return 0;
}

int isa_from_name(const char* name) {
  if (name == nullptr) return -1;
  if (std::strcmp(name, "avx512") == 0) return 2;
  if (std::strcmp(name, "avx2") == 0) return 1;
  if (std::strcmp(name, "portable") == 0) return 0;
  return -1;
}

const GemmKernels* kernels_for(int isa) {
#if defined(__x86_64__) || defined(__i386__)
  if (isa == 2) return &gemm_detail::gemm_kernels_avx512();
  if (isa == 1) return &gemm_detail::gemm_kernels_avx2();
#endif
  return &gemm_detail::gemm_kernels_portable();
}

const GemmKernels* select_kernels(const char* forced) {
  int isa = cpu_best_isa();
  int want = isa_from_name(forced);
  if (want < 0) want = isa_from_name(std::getenv("RLFT_GEMM_ISA"));
  if (want >= 0) isa = std::min(isa, want);
  return kernels_for(isa);
}

std::atomic<const GemmKernels*> g_kernels{nullptr};

const GemmKernels& kernels() {
  const GemmKernels* k = g_kernels.load(std::memory_order_acquire);
  if (k == nullptr) {
    k = select_kernels(nullptr);
    g_kernels.store(k, std::memory_order_release);
  }
  return *k;
}

// ---- helpers ----------------------------------------------------------------------------------

template <class T>
void scale_c(int64_t M, int64_t N, T beta, T* C, int64_t ldc) {
  for (int64_t i = 0; i < M; ++i) {
    T* c = C + i * ldc;
    if (beta == T(0)) {
      std::fill(c, c + N, T(0));
    } else if (beta != T(1)) {
      for (int64_t j = 0; j < N; ++j) c[j] *= beta;
    }
  }
}

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Threads worth using for M*N*K multiply-adds, at most max_threads.
int threads_for(double fmas, int max_threads) {
  if (max_threads <= 1 || fmas < 2 * kMinWorkPerThread) return 1;
  return static_cast<int>(std::min<double>(max_threads, fmas / kMinWorkPerThread));
}

int max_threads_here() { return omp_in_parallel() ? 1 : omp_get_max_threads(); }

// The unpacked path (versions 3 and 4) when op(B) fits in L2 or M is a few rows: B is then
// read from cache (or once) by every row tile, and packing would cost as much as the math.
bool use_small_path(const GemmKernels& kr, int64_t M, int64_t N, int64_t K) {
  static const char* force = std::getenv("RLFT_GEMM_FORCE");  // DEVONLY
  if (force) return force[0] == 's';  // DEVONLY
  return M <= kr.mr || (K * N <= 256 * 512 && K <= 1024);
}

void run_small(const GemmKernels& kr, bool ta, bool tb, int64_t M, int64_t N, int64_t K,
               float alpha, const float* A, int64_t lda, const float* B, int64_t ldb, float beta,
               float* C, int64_t ldc, int nt) {
  // Split rows when there are enough row tiles, otherwise columns; each thread runs the
  // single-threaded unpacked kernel on its own rectangle of C.
  const int64_t row_units = ceil_div(M, kr.small_rows);
  const int64_t col_units = ceil_div(N, kr.small_cols);
  nt = static_cast<int>(std::min<int64_t>(nt, std::max(row_units, col_units)));
  if (nt <= 1) {
    kr.small(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    return;
  }
  const bool split_rows = row_units >= col_units || row_units >= 2 * nt;
#pragma omp parallel num_threads(nt)
  {
    const int t = omp_get_thread_num(), n = omp_get_num_threads();
    const int64_t units = split_rows ? row_units : col_units;
    const int64_t u0 = units * t / n, u1 = units * (t + 1) / n;
    if (split_rows) {
      const int64_t i0 = u0 * kr.small_rows, i1 = std::min(M, u1 * kr.small_rows);
      if (i1 > i0)
        kr.small(ta, tb, i1 - i0, N, K, alpha, ta ? A + i0 : A + i0 * lda, lda, B, ldb, beta,
                 C + i0 * ldc, ldc);
    } else {
      const int64_t j0 = u0 * kr.small_cols, j1 = std::min(N, u1 * kr.small_cols);
      if (j1 > j0)
        kr.small(ta, tb, M, j1 - j0, K, alpha, A, lda, tb ? B + j0 * ldb : B + j0, ldb, beta,
                 C + j0, ldc);
    }
  }
}

// Version 2 on one thread: the whole loop nest of the manual over C[0:M, 0:N].
void packed_serial(const GemmKernels& kr, bool ta, bool tb, int64_t M, int64_t N, int64_t K,
                   float alpha, const float* A, int64_t lda, const float* B, int64_t ldb,
                   float beta, float* C, int64_t ldc) {
  const int64_t MR = kr.mr, NB = kr.nb, MB = kr.mb;
  // Equal K chunks of at most KC (1100 -> 3 x 368, not 384 + 384 + 332), multiples of 8. The
  // chunking depends on K alone, so every element is summed in the same order whatever the
  // thread split: the bits do not depend on the thread count.
  const int64_t kchunks = ceil_div(K, kr.kc);
  const int64_t KC = std::min<int64_t>(kr.kc, ceil_div(ceil_div(K, kchunks), 8) * 8);
  float* Ap = gemm_detail::gemm_scratch(gemm_detail::kScratchA, std::min(MB, ceil_div(M, MR) * MR) * KC);
  float* Bp = gemm_detail::gemm_scratch(gemm_detail::kScratchB, KC * NB);
  for (int64_t i0 = 0; i0 < M; i0 += MB) {
    const int64_t mb = std::min(MB, M - i0);
    for (int64_t p0 = 0; p0 < K; p0 += KC) {
      const int64_t kc = std::min(KC, K - p0);
      kr.pack_a(ta, ta ? A + p0 * lda + i0 : A + i0 * lda + p0, lda, mb, kc, Ap);
      for (int64_t j0 = 0; j0 < N; j0 += NB) {
        const int64_t nb = std::min(NB, N - j0);
        kr.pack_b(tb, tb ? B + j0 * ldb + p0 : B + p0 * ldb + j0, ldb, kc, nb, Bp);
        kr.macro(mb, nb, kc, Ap, Bp, C + i0 * ldc + j0, ldc, alpha, p0 == 0 ? beta : 1.0f);
      }
    }
  }
}

// Threads take disjoint rectangles of C (tm x tn of them) and run the serial loop nest on their
// own, packing their own panels into their own buffers: no barrier anywhere, so a thread that
// the OS preempts (2 cores shared with other work) delays only its own rectangle. The price is
// that an operand panel shared by two rectangles is packed twice: B when splitting M (a copy,
// K*N/(M/tm) of the work), A when splitting N.
void run_packed(const GemmKernels& kr, bool ta, bool tb, int64_t M, int64_t N, int64_t K,
                float alpha, const float* A, int64_t lda, const float* B, int64_t ldb,
                float beta, float* C, int64_t ldc, int nt) {
  const int64_t MR = kr.mr, NR = kr.nr;
  const int64_t mp = ceil_div(M, MR), np = ceil_div(N, NR);
  nt = static_cast<int>(std::min<int64_t>(nt, mp * np));
  if (nt <= 1) {
    packed_serial(kr, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    return;
  }
  // The most balanced grid (fewest tiles on the busiest thread); ties split M.
  int tm = 1;
  int64_t best = -1;
  for (int t = nt; t >= 1; --t) {
    if (nt % t != 0) continue;
    const int64_t cost = ceil_div(mp, t) * ceil_div(np, nt / t);
    if (best < 0 || cost < best) best = cost, tm = t;
  }
#pragma omp parallel num_threads(nt)
  {
    const int t = omp_get_thread_num(), n = omp_get_num_threads();
    const int my_tm = n == nt ? tm : n, my_tn = n / my_tm;  // fewer threads than asked: split M
    const int ti = t / my_tn, tj = t % my_tn;
    const int64_t i0 = std::min(M, mp * ti / my_tm * MR), i1 = std::min(M, mp * (ti + 1) / my_tm * MR);
    const int64_t j0 = std::min(N, np * tj / my_tn * NR), j1 = std::min(N, np * (tj + 1) / my_tn * NR);
    if (i1 > i0 && j1 > j0)
      packed_serial(kr, ta, tb, i1 - i0, j1 - j0, K, alpha, ta ? A + i0 : A + i0 * lda, lda,
                    tb ? B + j0 * ldb : B + j0, ldb, beta, C + i0 * ldc + j0, ldc);
  }
}

void gemm_f32_impl(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha,
                   const float* A, int64_t lda, const float* B, int64_t ldb, float beta, float* C,
                   int64_t ldc, int max_threads) {
  assert(M >= 0 && N >= 0 && K >= 0);
  if (M <= 0 || N <= 0) return;
  if (K <= 0 || alpha == 0.0f) {
    scale_c(M, N, beta, C, ldc);
    return;
  }
  const GemmKernels& kr = kernels();
  const int nt = threads_for(static_cast<double>(M) * N * K, max_threads);
  if (use_small_path(kr, M, N, K)) {
    run_small(kr, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, nt);
  } else {
    run_packed(kr, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, nt);
  }
}

// f64: correctness first. i-k-j (axpy rows of B) without trans_b, dot products with it, so the
// inner loop is always contiguous in B; rows of C in parallel when there is enough work.
void gemm_f64_impl(bool ta, bool tb, int64_t M, int64_t N, int64_t K, double alpha,
                   const double* A, int64_t lda, const double* B, int64_t ldb, double beta,
                   double* C, int64_t ldc, int max_threads) {
  assert(M >= 0 && N >= 0 && K >= 0);
  if (M <= 0 || N <= 0) return;
  scale_c(M, N, beta, C, ldc);
  if (K <= 0 || alpha == 0.0) return;
  const int nt = threads_for(static_cast<double>(M) * N * K, max_threads);
  constexpr int64_t kKB = 256;  // a 256-row slab of B is reused by every row of C
#pragma omp parallel for num_threads(nt) if (nt > 1) schedule(static)
  for (int64_t i = 0; i < M; ++i) {
    double* c = C + i * ldc;
    for (int64_t k0 = 0; k0 < K; k0 += kKB) {
      const int64_t k1 = std::min(K, k0 + kKB);
      if (tb) {
        for (int64_t j = 0; j < N; ++j) {
          const double* b = B + j * ldb;
          double s = 0.0;
          for (int64_t k = k0; k < k1; ++k) s += (ta ? A[k * lda + i] : A[i * lda + k]) * b[k];
          c[j] += alpha * s;
        }
      } else {
        for (int64_t k = k0; k < k1; ++k) {
          const double a = alpha * (ta ? A[k * lda + i] : A[i * lda + k]);
          const double* b = B + k * ldb;
          for (int64_t j = 0; j < N; ++j) c[j] += a * b[j];
        }
      }
    }
  }
}

}  // namespace

// ---- public API -------------------------------------------------------------------------------

void gemm_f32(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
              const float* A, int64_t lda, const float* B, int64_t ldb, float beta, float* C,
              int64_t ldc) {
  gemm_f32_impl(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc,
                max_threads_here());
}

void gemm_f64(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, double alpha,
              const double* A, int64_t lda, const double* B, int64_t ldb, double beta, double* C,
              int64_t ldc) {
  gemm_f64_impl(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc,
                max_threads_here());
}

// Many small GEMMs (attention heads, a batch of tiny MLPs): one GEMM per thread; large ones:
// one after another, each using all threads.
void gemm_batched_f32(bool trans_a, bool trans_b, int64_t batch, int64_t M, int64_t N, int64_t K,
                      float alpha, const float* A, int64_t lda, int64_t stride_a, const float* B,
                      int64_t ldb, int64_t stride_b, float beta, float* C, int64_t ldc,
                      int64_t stride_c) {
  assert(batch >= 0);
  const int max_threads = max_threads_here();
  const double each = static_cast<double>(M) * N * K;
  const int nt = std::min<int64_t>(batch, threads_for(each * batch, max_threads));
  if (nt > 1 && each < 8 * kMinWorkPerThread) {
#pragma omp parallel for num_threads(nt) schedule(static)
    for (int64_t b = 0; b < batch; ++b)
      gemm_f32_impl(trans_a, trans_b, M, N, K, alpha, A + b * stride_a, lda, B + b * stride_b, ldb,
                    beta, C + b * stride_c, ldc, 1);
  } else {
    for (int64_t b = 0; b < batch; ++b)
      gemm_f32_impl(trans_a, trans_b, M, N, K, alpha, A + b * stride_a, lda, B + b * stride_b, ldb,
                    beta, C + b * stride_c, ldc, max_threads);
  }
}

void gemm_batched_f64(bool trans_a, bool trans_b, int64_t batch, int64_t M, int64_t N, int64_t K,
                      double alpha, const double* A, int64_t lda, int64_t stride_a,
                      const double* B, int64_t ldb, int64_t stride_b, double beta, double* C,
                      int64_t ldc, int64_t stride_c) {
  assert(batch >= 0);
  const int max_threads = max_threads_here();
  const double each = static_cast<double>(M) * N * K;
  const int nt = std::min<int64_t>(batch, threads_for(each * batch, max_threads));
  if (nt > 1 && each < 8 * kMinWorkPerThread) {
#pragma omp parallel for num_threads(nt) schedule(static)
    for (int64_t b = 0; b < batch; ++b)
      gemm_f64_impl(trans_a, trans_b, M, N, K, alpha, A + b * stride_a, lda, B + b * stride_b, ldb,
                    beta, C + b * stride_c, ldc, 1);
  } else {
    for (int64_t b = 0; b < batch; ++b)
      gemm_f64_impl(trans_a, trans_b, M, N, K, alpha, A + b * stride_a, lda, B + b * stride_b, ldb,
                    beta, C + b * stride_c, ldc, max_threads);
  }
}

// Version 1, the reference: C(i,j) = alpha * sum_k op(A)(i,k) op(B)(k,j) + beta * C(i,j), the sum
// in double, one rounding to float at the end.
void gemm_naive_f32(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
                    const float* A, int64_t lda, const float* B, int64_t ldb, float beta, float* C,
                    int64_t ldc) {
  for (int64_t i = 0; i < M; ++i)
    for (int64_t j = 0; j < N; ++j) {
      double s = 0.0;
      if (alpha != 0.0f)
        for (int64_t k = 0; k < K; ++k)
          s += static_cast<double>(trans_a ? A[k * lda + i] : A[i * lda + k]) *
               static_cast<double>(trans_b ? B[j * ldb + k] : B[k * ldb + j]);
      double c = static_cast<double>(alpha) * s;
      if (beta != 0.0f) c += static_cast<double>(beta) * C[i * ldc + j];
      C[i * ldc + j] = static_cast<float>(c);
    }
}

const char* gemm_isa() { return kernels().name; }

const char* gemm_set_isa(const char* isa) {
  const GemmKernels* k = select_kernels(isa != nullptr && isa[0] != '\0' ? isa : nullptr);
  g_kernels.store(k, std::memory_order_release);
  return k->name;
}

}  // namespace rlft::kernels
