// CPU GEMM — the manual.
//
// What it computes
//   C[M,N] = alpha * op(A)[M,K] @ op(B)[K,N] + beta * C[M,N], row-major with row strides
//   lda/ldb/ldc; op(X) = X or X^T (trans_a: A stored [K,M]; trans_b: B stored [N,K]).
//   beta == 0 never reads C; alpha == 0 or K == 0 only scales C. f32 is the fast path; f64 is
//   a plain blocked loop for float64 gradient checks.
//
// FLOPs and memory traffic
//   2*M*N*K FLOPs over at least 4*(M*K + K*N + 2*M*N) bytes: 128 FLOP/byte at 1024^3 (compute
//   bound), 8 at the RL shape 64^3, ~0.5 at M = 1 (a matrix-vector product: reading B once is
//   the cost). Peak of the reference machine (AMD EPYC Zen 4, 2 cores): one 512-bit FMA (or
//   two 256-bit) per cycle per core = 32 FP32 FLOP/cycle/core, ~118 GFLOP/s/core at 3.7 GHz.
//
// Versions (each call picks one; all are kept, each for the shapes where it wins)
//   version 1  gemm_naive_f32: the triple loop accumulating in double. The reference.
//   version 2  packed (BLIS/GotoBLAS) GEMM, for large shapes: macro/micro_tile, pack_a/pack_b
//              in gemm_kernels.h, the loop nest in packed_serial below:
//       for i0 in M step MB            pack Ap[MB x KC]            (L3: 3072 x 384 = 4.5 MiB)
//         for p0 in K step KC          equal K chunks <= KC
//           for j0 in N step NB        pack Bp[KC x NB]            (L2: 384 x 384 = 576 KiB)
//             for ir step MR           one A micro-panel [KC x MR] stays in L1 (18 KiB)
//               for jr step NR         B micro-panels stream from L2
//                 micro-kernel         MR x NR accumulators in registers, KC rank-1 updates
//     Why: packing makes both operands contiguous and aligned whatever the transposes and
//     strides, so one micro-kernel covers the four cases, and the blocks keep each operand in
//     the cache level whose bandwidth its reuse needs. Per k the 12 x 32 AVX-512 micro-kernel
//     loads 44 floats for 24 FMAs (~6 bytes/cycle), so it is FMA-bound. Packing costs
//     O(MK + KN) per KC chunk: ~2% at 1024^3 (perf).
//   version 3  direct_tile: no blocking, for small shapes (RL MLPs: M = 1..512, N,K = 4..256),
//              where a full pack would cost as much as the math. The same register tiling (6 x 64
//              on AVX-512) reading op(A) by broadcasts at any stride and the rows of B in place
//              (B stored [N,K] is first transposed into scratch, 16 x 16 blocks in registers).
//              On AVX2, from 128 rows on, the same tiles read op(B) from a copy packed into
//              column strips and, with trans_a, op(A) from a packed row panel
//              (direct_gemm_packed): the same sums, bit for bit, without the L1 set conflicts of
//              rows a power of two apart (Zen 3: up to 1.95x on the LM step's shapes).
//   version 4  dot_tile: C(i,j) = dot(A row i, B^T row j), vectorised along K, MI x NJ sums
//              reduced together by a transpose-add tree. For trans_b (y = x W^T with W [out,in])
//              when M is small next to K (M <= max(8, K/4)), and for narrow N (<= W/2).
//   version 5  ilv_rows: N = 2 or 4 with B contiguous: one vector of B holds W/N rows of B,
//              A's values are repeated N times to match, no lane wasted and no transpose. For
//              a value/policy head at M <= 8.
//   Which path (gemm_f32_impl, small() in gemm_kernels.h): unpacked (3-5) when op(B) is at
//   most 1.5 MiB or M <= 8, packed (2) otherwise; thresholds measured on Zen 4 (comments there).
//
// Threads (OpenMP): none up to 2 x kMinWorkPerThread multiply-adds (64^3, as OpenBLAS), or
// inside a parallel region, or while backing off after calls where threads did harm on a busy
// machine (ThreadBackoff); otherwise each thread takes a rectangle of C and runs the serial
// code on it, with no barrier (see run_packed for why).
// Every element is summed in the same order whatever the split (K chunks depend on K only, and
// the direct tile's partial sums on its column tile only), so results are bitwise identical
// for any thread count.
//
// Micro-kernels: AVX-512 (packed 12x32, direct 6x64, dot 4x4), AVX2+FMA (6x16, 6x16, 4x2),
// portable GCC vectors (4-wide: 6x8, 6x8, 2x2). Chosen at first use with
// __builtin_cpu_supports; RLFT_GEMM_ISA=portable|avx2|avx512 lowers the choice and
// gemm_set_isa re-dispatches (tests). Each family is the same source (gemm_kernels.h) compiled
// under `#pragma GCC target` in its own file, so the library needs no -march flag.
//
// Tested against gemm_naive_f32 (tests/kernels/test_gemm.cpp): odd and zero sizes, all four
// transposes, alpha/beta (beta = 0 over NaN), padded strides, batched, f64, every ISA path,
// bitwise equality across thread counts. Measured by bench/bench_gemm.cpp against OpenBLAS
// cblas_sgemm (BENCHMARKS.md, "CPU GEMM").
#include "kernels/cpu/gemm.h"

#include <omp.h>

#include <algorithm>
#include <atomic>
#include <cassert>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <ctime>

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

std::atomic<bool> g_direct_packing{true};
bool direct_packing_enabled() { return g_direct_packing.load(std::memory_order_relaxed); }
std::atomic<int64_t> g_direct_packing_calls{0};
void count_direct_packing_call() { g_direct_packing_calls.fetch_add(1, std::memory_order_relaxed); }

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
  if (max_threads <= 1 || fmas <= 2 * kMinWorkPerThread) return 1;  // 64^3 and below: 1 thread
  return static_cast<int>(std::min<double>(max_threads, fmas / kMinWorkPerThread));
}

// Threads allowed for a call of `fmas` multiply-adds: small calls skip the OpenMP queries (a few
// ns each, which count at M = 1).
int max_threads_here(double fmas) {
  if (fmas <= 2 * kMinWorkPerThread) return 1;
  return omp_in_parallel() ? 1 : omp_get_max_threads();
}

// ---- threads on a shared machine --------------------------------------------------------------
// With the default OMP_WAIT_POLICY, an OpenMP thread that finishes its share spins (libgomp:
// ~300k pause instructions, a few ms) at the join. When other processes hold the cores, the
// other thread may not run for a whole time slice, so a 20 us GEMM took 5-20 ms (measured on
// the 2-core machine at load ~6: 128^3 fell from 210 to 0.5 GFLOP/s; OpenBLAS, whose threads
// sched_yield while waiting, kept ~60). So every parallel call is timed: if its wall time
// exceeded the CPU time of all its threads added up (what one thread alone would have taken on
// a core of its own), threads did harm, and calls run on one thread for a back-off period
// (max(1 ms, 4 x that call), doubling with each repeat up to 4 s, halving with each call where
// threads helped). Results do not depend on the thread count (see the manual), so this changes
// the speed only. OMP_WAIT_POLICY=passive avoids the spinning altogether, at the cost of a
// slower wake-up when the machine is idle.
class ThreadBackoff {
 public:
  int admit(int nt) const {
    if (nt <= 1) return 1;
    return now_ns() < until_ns_.load(std::memory_order_relaxed) ? 1 : nt;
  }
  void report(int64_t wall_ns, int64_t busy_ns) {
    constexpr int64_t kSlackNs = 20000;   // fork/join of an idle machine: a few us
    if (wall_ns <= busy_ns + kSlackNs) {  // helped: trust threads a little more
      level_.store(std::max(level_.load(std::memory_order_relaxed) - 1, 0),
                   std::memory_order_relaxed);
      return;
    }
    const int level = std::min(level_.load(std::memory_order_relaxed) + 1, 12);
    level_.store(level, std::memory_order_relaxed);
    // At least a few calls' worth: a back-off shorter than one call would probe every call.
    const int64_t base = std::max<int64_t>(1000000, 4 * wall_ns);
    until_ns_.store(now_ns() + std::min<int64_t>(int64_t{4000000000}, base << (level - 1)),
                    std::memory_order_relaxed);
  }
  // This thread's CPU time: the work itself, without the time slices lost to other processes.
  static int64_t cpu_ns() {
    timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return int64_t{ts.tv_sec} * 1000000000 + ts.tv_nsec;
  }
  static int64_t now_ns() {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(
               std::chrono::steady_clock::now().time_since_epoch())
        .count();
  }

 private:
  std::atomic<int64_t> until_ns_{0};
  std::atomic<int> level_{0};
};

ThreadBackoff g_backoff;

// Runs body(thread, threads) on up to nt OpenMP threads (1: inline, no parallel region) and
// feeds the timing to g_backoff.
template <class Body>
void parallel_run(int nt, Body&& body) {
  nt = g_backoff.admit(nt);
  if (nt <= 1) {
    body(0, 1);
    return;
  }
  constexpr int kMaxTimed = 64;
  int64_t busy[kMaxTimed] = {};
  int used = 1;
  const int64_t t0 = ThreadBackoff::now_ns();
#pragma omp parallel num_threads(nt)
  {
    const int t = omp_get_thread_num(), n = omp_get_num_threads();
    const int64_t s = ThreadBackoff::cpu_ns();
    body(t, n);
    if (t < kMaxTimed) busy[t] = ThreadBackoff::cpu_ns() - s;
    if (t == 0) used = n;
  }
  const int64_t wall = ThreadBackoff::now_ns() - t0;
  int64_t total = 0;
  for (int t = 0; t < std::min(used, kMaxTimed); ++t) total += busy[t];
  if (used > 1) g_backoff.report(wall, total);
}

// The unpacked path (versions 3-5) when op(B) is at most 1.5 MiB or M is a few rows: every row
// tile then reads B from L2/L3 (or B is read once), and packing would cost more than it saves.
// Measured on Zen 4 (1 thread): unpacked wins up to 512^3 and at M <= 64 even with a 1536^2 B;
// the packed path wins from 1024^2 x 256 rows, and by 3x at 2048^2 where rows of B 8 KiB apart
// thrash the caches' sets.
bool use_small_path(const GemmKernels& kr, int64_t M, int64_t N, int64_t K) {
  return M <= 8 || K * N <= 384 * 1024;
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
    kr.small(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, M);
    return;
  }
  const bool split_rows = row_units >= col_units || row_units >= 2 * nt;
  parallel_run(nt, [&](int t, int n) {
    const int64_t units = split_rows ? row_units : col_units;
    const int64_t u0 = units * t / n, u1 = units * (t + 1) / n;
    if (split_rows) {
      const int64_t i0 = u0 * kr.small_rows, i1 = std::min(M, u1 * kr.small_rows);
      if (i1 > i0)
        kr.small(ta, tb, i1 - i0, N, K, alpha, ta ? A + i0 : A + i0 * lda, lda, B, ldb, beta,
                 C + i0 * ldc, ldc, M);
    } else {
      const int64_t j0 = u0 * kr.small_cols, j1 = std::min(N, u1 * kr.small_cols);
      if (j1 > j0)
        kr.small(ta, tb, M, j1 - j0, K, alpha, A, lda, tb ? B + j0 * ldb : B + j0, ldb, beta,
                 C + j0, ldc, M);
    }
  });
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
  // + 16: pack_a may move a whole vector for a panel's last row (see there).
  float* Ap = gemm_detail::gemm_scratch(gemm_detail::kScratchA,
                                        std::min(MB, ceil_div(M, MR) * MR) * KC + 16);
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
// K*N/(M/tm) of the work), A when splitting N. (Tried: B packed once into a shared buffer,
// one barrier, then a dynamic queue of row bands. On the shared 2-core machine it was 5-30%
// slower: a thread waiting at the barrier for a preempted one spins on the core the latter
// needs.)
void run_packed(const GemmKernels& kr, bool ta, bool tb, int64_t M, int64_t N, int64_t K,
                float alpha, const float* A, int64_t lda, const float* B, int64_t ldb, float beta,
                float* C, int64_t ldc, int nt) {
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
  parallel_run(nt, [&](int t, int n) {
    const int my_tm = n == nt ? tm : n, my_tn = n / my_tm;  // fewer threads than asked: split M
    const int ti = t / my_tn, tj = t % my_tn;
    const int64_t i0 = std::min(M, mp * ti / my_tm * MR),
                  i1 = std::min(M, mp * (ti + 1) / my_tm * MR);
    const int64_t j0 = std::min(N, np * tj / my_tn * NR),
                  j1 = std::min(N, np * (tj + 1) / my_tn * NR);
    if (i1 > i0 && j1 > j0)
      packed_serial(kr, ta, tb, i1 - i0, j1 - j0, K, alpha, ta ? A + i0 : A + i0 * lda, lda,
                    tb ? B + j0 * ldb : B + j0, ldb, beta, C + i0 * ldc + j0, ldc);
  });
}

void gemm_f32_impl(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
                   int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc,
                   int max_threads) {
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
void gemm_f64_impl(bool ta, bool tb, int64_t M, int64_t N, int64_t K, double alpha, const double* A,
                   int64_t lda, const double* B, int64_t ldb, double beta, double* C, int64_t ldc,
                   int max_threads) {
  assert(M >= 0 && N >= 0 && K >= 0);
  if (M <= 0 || N <= 0) return;
  scale_c(M, N, beta, C, ldc);
  if (K <= 0 || alpha == 0.0) return;
  const int nt = threads_for(static_cast<double>(M) * N * K, max_threads);
  constexpr int64_t kKB = 256;  // a 256-row slab of B is reused by every row of C
  parallel_run(nt, [&](int t, int n) {
    for (int64_t i = M * t / n; i < M * (t + 1) / n; ++i) {
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
  });
}

}  // namespace

// ---- public API -------------------------------------------------------------------------------

void gemm_f32(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
              const float* A, int64_t lda, const float* B, int64_t ldb, float beta, float* C,
              int64_t ldc) {
  gemm_f32_impl(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc,
                max_threads_here(static_cast<double>(M) * N * K));
}

void gemm_f64(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, double alpha,
              const double* A, int64_t lda, const double* B, int64_t ldb, double beta, double* C,
              int64_t ldc) {
  gemm_f64_impl(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc,
                max_threads_here(static_cast<double>(M) * N * K));
}

// Many small GEMMs (attention heads, a batch of tiny MLPs): one GEMM per thread; large ones:
// one after another, each using all threads.
void gemm_batched_f32(bool trans_a, bool trans_b, int64_t batch, int64_t M, int64_t N, int64_t K,
                      float alpha, const float* A, int64_t lda, int64_t stride_a, const float* B,
                      int64_t ldb, int64_t stride_b, float beta, float* C, int64_t ldc,
                      int64_t stride_c) {
  assert(batch >= 0);
  const double each = static_cast<double>(M) * N * K;
  const int max_threads = max_threads_here(each * static_cast<double>(batch));
  const int nt = std::min<int64_t>(batch, threads_for(each * batch, max_threads));
  if (nt > 1 && each < 8 * kMinWorkPerThread) {
    parallel_run(nt, [&](int t, int n) {
      for (int64_t b = batch * t / n; b < batch * (t + 1) / n; ++b)
        gemm_f32_impl(trans_a, trans_b, M, N, K, alpha, A + b * stride_a, lda, B + b * stride_b,
                      ldb, beta, C + b * stride_c, ldc, 1);
    });
  } else {
    for (int64_t b = 0; b < batch; ++b)
      gemm_f32_impl(trans_a, trans_b, M, N, K, alpha, A + b * stride_a, lda, B + b * stride_b, ldb,
                    beta, C + b * stride_c, ldc, max_threads);
  }
}

void gemm_batched_f64(bool trans_a, bool trans_b, int64_t batch, int64_t M, int64_t N, int64_t K,
                      double alpha, const double* A, int64_t lda, int64_t stride_a, const double* B,
                      int64_t ldb, int64_t stride_b, double beta, double* C, int64_t ldc,
                      int64_t stride_c) {
  assert(batch >= 0);
  const double each = static_cast<double>(M) * N * K;
  const int max_threads = max_threads_here(each * static_cast<double>(batch));
  const int nt = std::min<int64_t>(batch, threads_for(each * batch, max_threads));
  if (nt > 1 && each < 8 * kMinWorkPerThread) {
    parallel_run(nt, [&](int t, int n) {
      for (int64_t b = batch * t / n; b < batch * (t + 1) / n; ++b)
        gemm_f64_impl(trans_a, trans_b, M, N, K, alpha, A + b * stride_a, lda, B + b * stride_b,
                      ldb, beta, C + b * stride_c, ldc, 1);
    });
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

bool gemm_set_direct_packing(bool on) {
  return gemm_detail::g_direct_packing.exchange(on, std::memory_order_relaxed);
}

int64_t gemm_direct_packing_calls() {
  return gemm_detail::g_direct_packing_calls.load(std::memory_order_relaxed);
}

const char* gemm_set_isa(const char* isa) {
  const GemmKernels* k = select_kernels(isa != nullptr && isa[0] != '\0' ? isa : nullptr);
  g_kernels.store(k, std::memory_order_release);
  return k->name;
}

}  // namespace rlft::kernels
