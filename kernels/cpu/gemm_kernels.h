// Private to kernels/cpu/gemm*.cpp: the interface between the GEMM driver (gemm.cpp: blocking,
// threads, dispatch) and the per-ISA kernels (gemm_avx512.cpp, gemm_avx2.cpp, gemm_portable.cpp).
//
// This header has two parts.
//  1. Declarations (include-guarded): the table of kernel entry points one ISA provides.
//  2. The kernel bodies, written once against a vector type `V` and a `Params` struct, emitted
//     only when RLFT_GEMM_NS names the ISA's namespace. Each gemm_<isa>.cpp includes this header
//     a second time after `#pragma GCC target(...)`, so the same source is compiled once per
//     instruction set without -march flags. Everything in part 2 lives in an ISA-specific
//     namespace (and mostly an anonymous one) so no inline or template function compiled for
//     AVX-512 can be merged by the linker with a copy meant for a CPU without it.
//
// Shapes: op(A) is [M,K], op(B) is [K,N], C is [M,N], all row-major with row strides.

#ifndef RLFT_KERNELS_CPU_GEMM_KERNELS_DECLS
#define RLFT_KERNELS_CPU_GEMM_KERNELS_DECLS

#include <array>
#include <cstdint>
#include <utility>

namespace rlft::kernels::gemm_detail {

struct GemmKernels {
  const char* name;
  // Packed path: micro-tile MR x NR, cache blocks KC (depth), NB (columns of a packed B block,
  // sized for L2) and MB (rows of a packed A block, sized for L3).
  int mr, nr, kc, nb, mb;
  // Rows and columns per unit when the unpacked path is split across threads (multiples of its
  // tiles, so that a split never changes how an element is computed).
  int small_rows, small_cols;
  // Packs op(A)[0:m, 0:k] (A already offset to the block's origin) into ceil(m/MR) micro-panels,
  // each k x MR with the MR values of one k contiguous; rows past m are zero.
  void (*pack_a)(bool trans_a, const float* A, int64_t lda, int64_t m, int64_t k, float* dst);
  // Packs op(B)[0:k, 0:n] into ceil(n/NR) micro-panels, each k x NR; columns past n are zero.
  void (*pack_b)(bool trans_b, const float* B, int64_t ldb, int64_t k, int64_t n, float* dst);
  // C[0:m,0:n] = alpha * Ap @ Bp + beta * C over packed panels (beta == 0: C is not read).
  void (*macro)(int64_t m, int64_t n, int64_t k, const float* Ap, const float* Bp, float* C,
                int64_t ldc, float alpha, float beta);
  // Unpacked path for small shapes, one thread: the whole problem or a thread's share of its
  // rows or columns (m_all: the whole problem's rows); K >= 1, alpha != 0.
  void (*small)(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
                const float* A, int64_t lda, const float* B, int64_t ldb, float beta, float* C,
                int64_t ldc, int64_t m_all);
};

const GemmKernels& gemm_kernels_avx512();
const GemmKernels& gemm_kernels_avx2();
const GemmKernels& gemm_kernels_portable();

// Thread-local, 64-byte aligned, grow-only scratch buffers (one per slot), so that a GEMM in
// steady state allocates nothing. Slot 0: packed A, 1: packed B, 2: transposed B of the
// unpacked path.
enum ScratchSlot { kScratchA = 0, kScratchB = 1, kScratchT = 2, kScratchSlots = 3 };
float* gemm_scratch(int slot, int64_t floats);

// Whether the unpacked path may read its operands from packed copies (direct_gemm_packed in part
// 2; on by default, where the ISA's Params enable it). Off: the tiles read A and B in place.
// gemm_set_direct_packing (gemm.h) sets it, for the tests that hold the two to the same bits.
bool direct_packing_enabled();
// Counts direct_gemm_packed's calls (gemm_direct_packing_calls in gemm.h, for the tests).
void count_direct_packing_call();

}  // namespace rlft::kernels::gemm_detail

#endif  // RLFT_KERNELS_CPU_GEMM_KERNELS_DECLS

// ----------------------------------------------------------------------------------------------
// Part 2: kernel bodies. Needs, in namespace rlft::kernels::RLFT_GEMM_NS:
//   struct V {  // one vector register of W floats
//     using T, Mask; W; kCheapMask (a masked load costs no more than a plain one);
//     zero, load, loadm, store, storem, set1, add, mul, fmadd, mask(n): the first n lanes;
//     hsum(v); hsum_w(v[W], out[W]): W horizontal sums at once; transpose_w: a W x W transpose;
//     dup<N>(p), dupm<N>(p, n): W/N floats each repeated N times; fold<N>(v, out): the sums of
//     the lanes l with l % N == j (N = 2, 4) };
//   struct Params { MR, NV (packed tile MR x NV*W), KC, NB, MB,
//                   MRD, NVD (unpacked tile MRD x NVD*W), KU1, KU2 (partial sums over k of the
//                   unpacked tile when NV = 1, 2), DOT_MIN_K (shortest K for the dot tile),
//                   GEMV_NV (vectors per chunk of the one-row kernel) };
// ----------------------------------------------------------------------------------------------
#ifdef RLFT_GEMM_NS

#define RLFT_GEMM_INLINE inline __attribute__((always_inline))

namespace rlft::kernels::RLFT_GEMM_NS {
namespace {

using VT = V::T;
constexpr int W = V::W;

RLFT_GEMM_INLINE int64_t imin(int64_t a, int64_t b) { return a < b ? a : b; }

// Writes one row of an accumulator tile: C[0:n] = alpha*acc + beta*C, NV vectors, n <= NV*W.
// Writes an accumulator tile: C[0:m, 0:n] = alpha*acc + beta*C (n <= NV*W, beta == 0: C is not
// read). The common case (full tile, alpha == 1, beta == 0) is plain stores; at K = 4 a multiply
// per vector would cost a quarter of the FMAs.
template <int MR, int NV>
RLFT_GEMM_INLINE void store_tile(float* c, int64_t ldc, const VT (&acc)[MR][NV], int m, int n,
                                 float alpha, float beta) {
  if (n == NV * W && alpha == 1.0f && beta == 0.0f) {
#pragma GCC unroll 32
    for (int r = 0; r < MR; ++r)
      if (r < m)
#pragma GCC unroll 8
        for (int v = 0; v < NV; ++v) V::store(c + r * ldc + v * W, acc[r][v]);
    return;
  }
  const VT va = V::set1(alpha), vb = V::set1(beta);
#pragma GCC unroll 32
  for (int r = 0; r < MR; ++r) {
    if (r >= m) continue;
    float* cr = c + r * ldc;
#pragma GCC unroll 8
    for (int v = 0; v < NV; ++v) {
      const int nn = n - v * W;
      if (nn >= W) {
        VT x = V::mul(acc[r][v], va);
        if (beta != 0.0f) x = V::fmadd(vb, V::load(cr + v * W), x);
        V::store(cr + v * W, x);
      } else if (nn > 0) {
        const typename V::Mask mk = V::mask(nn);
        VT x = V::mul(acc[r][v], va);
        if (beta != 0.0f) x = V::fmadd(vb, V::loadm(cr + v * W, mk), x);
        V::storem(cr + v * W, x, mk);
      }
    }
  }
}

// dst[c*ldd + r] = src[r*lds + c] for r < rows, c < cols: W x W blocks in registers
// (V::transpose_w), the ragged edges element by element.
void transpose(const float* src, int64_t lds, int64_t rows, int64_t cols, float* dst, int64_t ldd) {
  int64_t r = 0;
  for (; r + W <= rows; r += W) {
    int64_t c = 0;
    for (; c + W <= cols; c += W) V::transpose_w(src + r * lds + c, lds, dst + c * ldd + r, ldd);
    for (; c < cols; ++c)
      for (int64_t i = r; i < r + W; ++i) dst[c * ldd + i] = src[i * lds + c];
  }
  for (; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) dst[c * ldd + r] = src[r * lds + c];
}

// ---- version 2: packed micro-kernel -----------------------------------------------------------
// C[MR x NR] (m x n valid) = alpha * sum_k a[k][0:MR] (outer) b[k][0:NR] + beta * C.
// MR*NV accumulators stay in registers for the whole k loop; per k: NV vector loads of B,
// MR broadcasts of A, MR*NV FMAs.
// Not inlined into macro(): on its own, GCC keeps all 27 live vectors of the 12 x 32 AVX-512
// tile in the 32 registers; inlined, it spilled a B vector inside the k loop.
template <int MR, int NV>
__attribute__((noinline)) void micro_tile(int64_t kc, const float* __restrict a,
                                          const float* __restrict b, float* c, int64_t ldc, int m,
                                          int n, float alpha, float beta) {
  constexpr int NR = NV * W;
  VT acc[MR][NV];
#pragma GCC unroll 32
  for (int r = 0; r < MR; ++r)
#pragma GCC unroll 8
    for (int v = 0; v < NV; ++v) acc[r][v] = V::zero();
  for (int r = 0; r < m; ++r) {  // the C tile is read (or written) once the k loop is done
    __builtin_prefetch(c + r * ldc, 1, 3);
    __builtin_prefetch(c + r * ldc + NR - 1, 1, 3);
  }
  for (int64_t k = 0; k < kc; ++k) {
    VT bv[NV];
#pragma GCC unroll 8
    for (int v = 0; v < NV; ++v) bv[v] = V::load(b + v * W);
#pragma GCC unroll 32
    for (int r = 0; r < MR; ++r) {
      const VT av = V::set1(a[r]);
#pragma GCC unroll 8
      for (int v = 0; v < NV; ++v) acc[r][v] = V::fmadd(av, bv[v], acc[r][v]);
    }
    a += MR;
    b += NR;
  }
  store_tile<MR, NV>(c, ldc, acc, m, n, alpha, beta);
}

void macro(int64_t m, int64_t n, int64_t k, const float* Ap, const float* Bp, float* C, int64_t ldc,
           float alpha, float beta) {
  constexpr int MR = Params::MR, NR = Params::NV * W;
  // i outer: one A micro-panel (MR x k) stays in L1 while the B micro-panels stream from L2.
  for (int64_t i = 0; i < m; i += MR)
    for (int64_t j = 0; j < n; j += NR)
      micro_tile<MR, Params::NV>(k, Ap + i * k, Bp + j * k, C + i * ldc + j, ldc,
                                 static_cast<int>(imin(MR, m - i)),
                                 static_cast<int>(imin(NR, n - j)), alpha, beta);
}

// readable: how many of op(A)'s rows (from A's origin) may be read, >= m; a panel row past the
// first m stays unread (zero).
void pack_a_within(bool trans_a, const float* A, int64_t lda, int64_t m, int64_t k, float* dst,
                   int64_t readable) {
  constexpr int MR = Params::MR;
  for (int64_t i = 0; i < m; i += MR, dst += MR * k) {
    const int mm = static_cast<int>(imin(MR, m - i));
    if (trans_a && Params::PACK_DIRECT && MR <= W) {
      // op(A)(i+r, p) = A[p*lda + i + r]: MR contiguous values per p, moved as one vector whose
      // last W - MR lanes the next row overwrites (the caller leaves W floats of slack after
      // the last panel); masked where the panel is short (its masked lanes load zeros, so rows
      // past m are zero) or a vector would cross the readable rows. The values are the same as
      // element by element below (PACK_DIRECT ISAs only: measured on Zen 3).
      const bool whole = mm == MR && i + W <= readable;
      const typename V::Mask msk = V::mask(whole ? W : mm);
      for (int64_t p = 0; p < k; ++p) {
        const float* src = A + p * lda + i;
        V::store(dst + p * MR, whole ? V::load(src) : V::loadm(src, msk));
      }
    } else if (trans_a) {  // op(A)(i+r, p) = A[p*lda + i + r]: MR contiguous values per p
      for (int64_t p = 0; p < k; ++p) {
        const float* src = A + p * lda + i;
        float* d = dst + p * MR;
        for (int r = 0; r < mm; ++r) d[r] = src[r];
        for (int r = mm; r < MR; ++r) d[r] = 0.0f;
      }
    } else {  // op(A)(i+r, p) = A[(i+r)*lda + p]: a transpose, W columns at a time
      const float* rows[MR];
      for (int r = 0; r < MR; ++r) rows[r] = A + (i + (r < mm ? r : 0)) * lda;
      for (int64_t p = 0; p < k; ++p) {
        float* d = dst + p * MR;
#pragma GCC unroll 32
        for (int r = 0; r < MR; ++r) d[r] = r < mm ? rows[r][p] : 0.0f;
      }
    }
  }
}

void pack_a(bool trans_a, const float* A, int64_t lda, int64_t m, int64_t k, float* dst) {
  pack_a_within(trans_a, A, lda, m, k, dst, m);
}

void pack_b(bool trans_b, const float* B, int64_t ldb, int64_t k, int64_t n, float* dst) {
  constexpr int NV = Params::NV, NR = NV * W;
  for (int64_t j = 0; j < n; j += NR, dst += NR * k) {
    const int nn = static_cast<int>(imin(NR, n - j));
    if (!trans_b) {  // op(B)(p, j+c) = B[p*ldb + j + c]: a copy of NR contiguous values per p
      if (nn == NR) {
        for (int64_t p = 0; p < k; ++p) {
          const float* src = B + p * ldb + j;
#pragma GCC unroll 8
          for (int v = 0; v < NV; ++v) V::store(dst + p * NR + v * W, V::load(src + v * W));
        }
      } else {
        for (int64_t p = 0; p < k; ++p) {
          const float* src = B + p * ldb + j;
          float* d = dst + p * NR;
          for (int c = 0; c < nn; ++c) d[c] = src[c];
          for (int c = nn; c < NR; ++c) d[c] = 0.0f;
        }
      }
    } else {  // op(B)(p, j+c) = B[(j+c)*ldb + p]: a transpose
      transpose(B + j * ldb, ldb, nn, k, dst, NR);
      for (int64_t p = 0; p < k; ++p)
        for (int c = nn; c < NR; ++c) dst[p * NR + c] = 0.0f;
    }
  }
}

// ---- version 3: unpacked ("direct") tile for small shapes --------------------------------------
// Same register tiling as the micro-kernel but reading op(A) and B where they lie: A by scalar
// broadcasts at any strides (so trans_a costs nothing), B rows contiguous along N (B[K,N]).
// Nothing is packed, so the per-call cost is just the tiles. C[MR x n] (n <= NV*W).
// Narrow tiles (NV = 1 or 2) would leave a single row (M = 1: a matrix-vector product) waiting
// on the FMA latency; they keep KU = Params::KU[NV] partial sums over k instead. KU depends on
// the column tile only, never on the row count, so the bits do not depend on the thread split.
template <int MR, int NV, bool TA>
void direct_tile(int64_t K, const float* __restrict A, int64_t lda, const float* __restrict B,
                 int64_t ldb, float* C, int64_t ldc, int n, float alpha, float beta) {
  constexpr int KU = NV == 1 ? Params::KU1 : NV == 2 ? Params::KU2 : 1;
  VT acc[KU][MR][NV];
#pragma GCC unroll 32
  for (int u = 0; u < KU; ++u)
#pragma GCC unroll 32
    for (int r = 0; r < MR; ++r)
#pragma GCC unroll 8
      for (int v = 0; v < NV; ++v) acc[u][r][v] = V::zero();
  const typename V::Mask last = V::mask(n - (NV - 1) * W);
  const bool full = n == NV * W;
  // One rank-1 update of partial sum u with row k of B.
  auto step = [&](int u, int64_t k) __attribute__((always_inline)) {
    const float* bk = B + k * ldb;
    VT bv[NV];
#pragma GCC unroll 8
    for (int v = 0; v < NV - 1; ++v) bv[v] = V::load(bk + v * W);
    if constexpr (V::kCheapMask) {
      bv[NV - 1] = V::loadm(bk + (NV - 1) * W, last);
    } else {  // the mask is a scalar loop: only on the ragged column tile
      bv[NV - 1] = full ? V::load(bk + (NV - 1) * W) : V::loadm(bk + (NV - 1) * W, last);
    }
#pragma GCC unroll 32
    for (int r = 0; r < MR; ++r) {
      const VT av = V::set1(TA ? A[k * lda + r] : A[r * lda + k]);
#pragma GCC unroll 8
      for (int v = 0; v < NV; ++v) acc[u][r][v] = V::fmadd(av, bv[v], acc[u][r][v]);
    }
  };
  int64_t k = 0;
#pragma GCC unroll 2
  for (; k + KU <= K; k += KU)
#pragma GCC unroll 4
    for (int u = 0; u < KU; ++u) step(u, k + u);
  for (; k < K; ++k) step(0, k);
  if constexpr (KU == 4) {
#pragma GCC unroll 32
    for (int r = 0; r < MR; ++r)
#pragma GCC unroll 8
      for (int v = 0; v < NV; ++v)
        acc[0][r][v] =
            V::add(V::add(acc[0][r][v], acc[1][r][v]), V::add(acc[2][r][v], acc[3][r][v]));
  } else if constexpr (KU == 2) {
#pragma GCC unroll 32
    for (int r = 0; r < MR; ++r)
#pragma GCC unroll 8
      for (int v = 0; v < NV; ++v) acc[0][r][v] = V::add(acc[0][r][v], acc[1][r][v]);
  }
  store_tile<MR, NV>(C, ldc, acc[0], MR, n, alpha, beta);
}

using DirectFn = void (*)(int64_t, const float*, int64_t, const float*, int64_t, float*, int64_t,
                          int, float, float);

template <bool TA, int... I>
constexpr auto direct_table(std::integer_sequence<int, I...>) {
  // Entry (r-1)*NVD + (v-1) is direct_tile<r, v, TA>.
  return std::array<DirectFn, sizeof...(I)>{
      &direct_tile<I / Params::NVD + 1, I % Params::NVD + 1, TA>...};
}
constexpr auto kDirectN =
    direct_table<false>(std::make_integer_sequence<int, Params::MRD * Params::NVD>());
constexpr auto kDirectT =
    direct_table<true>(std::make_integer_sequence<int, Params::MRD * Params::NVD>());

// One row (M = 1: a single observation through a layer) times B[K,N]: GEMV_NV vectors of
// columns at a time (256 on AVX-512), so that B, the whole cost here, streams row after row
// through the prefetchers instead of in 64-column strips. Every element is one FMA chain over k,
// however the columns are chunked.
template <int NV>
void gemv_chunk(int64_t K, const float* a, int64_t sa, const float* B, int64_t ldb, float* c, int n,
                float alpha, float beta) {
  VT acc[1][NV];
#pragma GCC unroll 16
  for (int v = 0; v < NV; ++v) acc[0][v] = V::zero();
  const typename V::Mask last = V::mask(n - (NV - 1) * W);
  const bool full = n == NV * W;
  for (int64_t k = 0; k < K; ++k) {
    const VT av = V::set1(a[k * sa]);
    const float* bk = B + k * ldb;
#pragma GCC unroll 16
    for (int v = 0; v < NV - 1; ++v) acc[0][v] = V::fmadd(av, V::load(bk + v * W), acc[0][v]);
    const float* bl = bk + (NV - 1) * W;
    VT bv;
    if constexpr (V::kCheapMask) {
      bv = V::loadm(bl, last);
    } else {
      bv = full ? V::load(bl) : V::loadm(bl, last);
    }
    acc[0][NV - 1] = V::fmadd(av, bv, acc[0][NV - 1]);
  }
  store_tile<1, NV>(c, 0, acc, 1, n, alpha, beta);
}

using GemvFn = void (*)(int64_t, const float*, int64_t, const float*, int64_t, float*, int, float,
                        float);
template <int... I>
constexpr auto gemv_table(std::integer_sequence<int, I...>) {
  return std::array<GemvFn, sizeof...(I)>{&gemv_chunk<I + 1>...};
}
constexpr auto kGemv = gemv_table(std::make_integer_sequence<int, Params::GEMV_NV>());

void gemv_row(bool trans_a, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
              const float* B, int64_t ldb, float beta, float* C) {
  constexpr int NC = Params::GEMV_NV * W;
  const int64_t sa = trans_a ? lda : 1;
  for (int64_t j = 0; j < N; j += NC) {
    const int n = static_cast<int>(imin(NC, N - j));
    kGemv[(n + W - 1) / W - 1](K, A, sa, B + j, ldb, C + j, n, alpha, beta);
  }
}

void direct_gemm(bool trans_a, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
                 int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  constexpr int MRD = Params::MRD, NRD = Params::NVD * W;
  const auto& table = trans_a ? kDirectT : kDirectN;
  for (int64_t i = 0; i < M; i += MRD) {
    const int mm = static_cast<int>(imin(MRD, M - i));
    const float* Ai = trans_a ? A + i : A + i * lda;
    for (int64_t j = 0; j < N; j += NRD) {
      const int nn = static_cast<int>(imin(NRD, N - j));
      const int nv = (nn + W - 1) / W;
      table[(mm - 1) * Params::NVD + (nv - 1)](K, Ai, lda, B + j, ldb, C + i * ldc + j, ldc, nn,
                                               alpha, beta);
    }
  }
}

// ---- version 3 over packed copies --------------------------------------------------------------
// The same direct tiles reading op(B) from a copy packed once per call into strips of NRD
// columns (each K x NRD, contiguous; B stored [N,K] is transposed straight into them) and, with
// trans_a, op(A) from row panels (K x MRD, contiguous), where use_direct_packing says. Each tile is
// the same direct_tile<mm, nv, TA> over the same values in the same order, so C has direct_gemm's
// bits; only where the values are read from changes (tested: GemmDirectPacking.*). Why: rows of B
// that lie ldb floats apart fall into few L1 sets when ldb is a multiple of a large power of two
// (the LM's 128, 384, 512: 8, 8 and 2 of the 64 sets of a 32 KiB 8-way L1), so the in-place tile
// missed L1 on nearly every row of B; with trans_a the same holds for A's rows, of which a tile
// uses MRD floats per 64-byte line. A strip is read front to back. Measured on Zen 3 (AVX2, 1
// thread, medians of three rounds; BENCHMARKS.md "CPU GEMM"): the micro GPT step's nine shapes from
// 29-75 to 57-78 GFLOP/s (dW = dy^T x at K = 2048: 29-35 to 57-65), 512^3 from 50-53 to 75-80. AVX2
// only for now (Params::PACK_DIRECT): the AVX-512 tiles were tuned on a Zen 4 with a 1 MiB L2, and
// no AVX-512 machine was at hand to measure them packed. Row tiles outside: the packed B (at
// most 1.5 MiB on this path) streams from L2 or L3 for each tile, front to back. (Tried on Zen 3:
// strips outside with all of op(A) packed once, for a packed B over 256 KiB: the LM's dW = dy^T x
// at K = 2048 ran at 36-49 GFLOP/s against 54-55.)
void direct_gemm_packed(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
                        const float* A, int64_t lda, const float* B, int64_t ldb, float beta,
                        float* C, int64_t ldc) {
  // The packed path's pack_b and pack_a lay out exactly these strips and panels when its tile is
  // the direct tile's (strips of any other width would change which columns share a tile, and
  // with it the partial sums of the narrow tiles).
  static_assert(!Params::PACK_DIRECT || (Params::NV == Params::NVD && Params::MR == Params::MRD),
                "packed reads need the packed tile to be the direct tile");
  constexpr int MRD = Params::MRD, NRD = Params::NVD * W;
  gemm_detail::count_direct_packing_call();
  const int64_t strips = (N + NRD - 1) / NRD;
  // Strip s: Bp[s*K*NRD + k*NRD + c] = op(B)(k, s*NRD + c) (B stored [N,K] transposed into it).
  float* Bp = gemm_detail::gemm_scratch(gemm_detail::kScratchB, strips * NRD * K);
  pack_b(trans_b, B, ldb, K, N, Bp);
  // op(A)'s rows of a row tile: in place, or (trans_a) a panel packed for the tile, Ap[k*MRD + r]
  // (+ W: pack_a may move a whole vector for the panel's last row).
  float* Ap = trans_a ? gemm_detail::gemm_scratch(gemm_detail::kScratchA, K * MRD + W) : nullptr;
  for (int64_t i = 0; i < M; i += MRD) {
    const int64_t mm = imin(MRD, M - i);
    if (trans_a) pack_a_within(true, A + i, lda, mm, K, Ap, M - i);  // unmasked but at the end
    for (int64_t s = 0; s < strips; ++s)  // one tile each: direct_gemm's own dispatch
      direct_gemm(trans_a, mm, imin(NRD, N - s * NRD), K, alpha, trans_a ? Ap : A + i * lda,
                  trans_a ? MRD : lda, Bp + s * K * NRD, NRD, beta, C + i * ldc + s * NRD, ldc);
  }
}

// Packing costs one pass over op(B) (and op(A) with trans_a) per call: worth it where B does
// not sit in L1 anyway (over 32 KiB) and enough row tiles reuse it (128 rows on). Measured on
// Zen 3 (bench_gemm rl/, medians of three rounds): 512 x 64 x 64 (16 KiB of B) ran at 0.85x
// packed, 64 x 256 x 256 at 0.81-0.99x, 512 x 256 x 256 at 0.96-1.25x.
RLFT_GEMM_INLINE bool use_direct_packing(int64_t m_all, int64_t N, int64_t K) {
  return Params::PACK_DIRECT && gemm_detail::direct_packing_enabled() && m_all >= 128 &&
         N * K >= 8192;
}

// ---- version 4: dot-product tile, C = A @ Bt^T with both operands contiguous along K ----------
// For B stored [N,K] (trans_b, the Linear layer's weight) when M is small, and for very narrow N
// (value heads, N = 1 or 2): vectorise along K with MI x NJ accumulators (MI*NJ <= W, powers of
// two, shaped to the problem: 4x4, 8x2 for N = 2, 1x16 for M = 1), then reduce them together
// (hsum_w: one transpose-add tree for W sums instead of W separate horizontal sums).
template <int MI, int NJ>
void dot_tile(int64_t K, const float* __restrict A, int64_t lda, const float* __restrict Bt,
              int64_t ldbt, float* C, int64_t ldc, float alpha, float beta) {
  constexpr int T = MI * NJ;
  constexpr bool kTree = 2 * T > W;  // the tree pays from half a register of sums up
  VT acc[kTree ? W : T];
#pragma GCC unroll 32
  for (int t = 0; t < (kTree ? W : T); ++t) acc[t] = V::zero();
  int64_t k = 0;
#pragma GCC unroll 2
  for (; k + W <= K; k += W) {
    VT bv[NJ];
#pragma GCC unroll 16
    for (int j = 0; j < NJ; ++j) bv[j] = V::load(Bt + j * ldbt + k);
#pragma GCC unroll 16
    for (int i = 0; i < MI; ++i) {
      const VT av = V::load(A + i * lda + k);
#pragma GCC unroll 16
      for (int j = 0; j < NJ; ++j) acc[i * NJ + j] = V::fmadd(av, bv[j], acc[i * NJ + j]);
    }
  }
  if (k < K) {
    const typename V::Mask mk = V::mask(static_cast<int>(K - k));
    VT bv[NJ];
#pragma GCC unroll 16
    for (int j = 0; j < NJ; ++j) bv[j] = V::loadm(Bt + j * ldbt + k, mk);
#pragma GCC unroll 16
    for (int i = 0; i < MI; ++i) {
      const VT av = V::loadm(A + i * lda + k, mk);
#pragma GCC unroll 16
      for (int j = 0; j < NJ; ++j) acc[i * NJ + j] = V::fmadd(av, bv[j], acc[i * NJ + j]);
    }
  }
  float s[W > T ? W : T];
  if constexpr (kTree) {
    V::hsum_w(acc, s);
  } else {
    for (int t = 0; t < T; ++t) s[t] = V::hsum(acc[t]);
  }
  for (int i = 0; i < MI; ++i)
    for (int j = 0; j < NJ; ++j) {
      float* c = C + i * ldc + j;
      *c = beta == 0.0f ? alpha * s[i * NJ + j] : alpha * s[i * NJ + j] + beta * *c;
    }
}

using DotFn = void (*)(int64_t, const float*, int64_t, const float*, int64_t, float*, int64_t,
                       float, float);

constexpr int ilog2(int x) { return x <= 1 ? 0 : 1 + ilog2(x / 2); }
constexpr int kLogW = ilog2(W);

// Entry [log2 MI][log2 NJ]; products above W are never asked for (they map to 1 x 1).
template <int I>
constexpr DotFn dot_entry() {
  constexpr int mi = 1 << (I / (kLogW + 1)), nj = 1 << (I % (kLogW + 1));
  if constexpr (mi * nj <= W) {
    return &dot_tile<mi, nj>;
  } else {
    return &dot_tile<1, 1>;
  }
}
template <int... I>
constexpr auto dot_table(std::integer_sequence<int, I...>) {
  return std::array<DotFn, sizeof...(I)>{dot_entry<I>()...};
}
constexpr auto kDot = dot_table(std::make_integer_sequence<int, (kLogW + 1) * (kLogW + 1)>());

RLFT_GEMM_INLINE int pow2_floor(int64_t x) {
  int p = 1;
  while (2 * p <= x && 2 * p <= W) p *= 2;
  return p;
}

void dot_gemm(int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
              const float* Bt, int64_t ldbt, float beta, float* C, int64_t ldc) {
  // Largest power-of-two tile within the problem, as square as W allows.
  int mi = pow2_floor(M), nj = pow2_floor(N);
  while (mi * nj > W) (mi > nj ? mi : nj) /= 2;
  for (int64_t i = 0; i < M;) {
    while (i + mi > M) mi /= 2;  // ragged rows: halve the tile
    const int lm = ilog2(mi);
    int njr = nj;
    for (int64_t j = 0; j < N;) {
      while (j + njr > N) njr /= 2;
      kDot[lm * (kLogW + 1) + ilog2(njr)](K, A + i * lda, lda, Bt + j * ldbt, ldbt, C + i * ldc + j,
                                          ldc, alpha, beta);
      j += njr;
    }
    i += mi;
  }
}

// ---- version 5: interleaved dot for N = 2 or 4 with B contiguous ([K,N], ldb == N) -----------
// A vector of B then holds W/N consecutive rows of B; the matching A values (A[i, k..k+W/N))
// are loaded once and each repeated N times (V::dup<N>), so one FMA does W/N steps of k for all
// N columns with no lane wasted and no transpose. At the end the lanes of one column
// (lane % N == j) are summed (V::fold<N>). Used for the narrow value/policy heads.
template <int NC, int MI>
RLFT_GEMM_INLINE void ilv_rows(int64_t K, const float* __restrict A, int64_t lda,
                               const float* __restrict B, float* C, int64_t ldc, float alpha,
                               float beta) {
  constexpr int P = W / NC;  // rows of B per vector
  VT acc[MI];
#pragma GCC unroll 8
  for (int i = 0; i < MI; ++i) acc[i] = V::zero();
  int64_t k = 0;
  for (; k + P <= K; k += P) {
    const VT bv = V::load(B + k * NC);
#pragma GCC unroll 8
    for (int i = 0; i < MI; ++i)
      acc[i] = V::fmadd(V::template dup<NC>(A + i * lda + k), bv, acc[i]);
  }
  if (k < K) {
    const int rem = static_cast<int>(K - k);
    const VT bv = V::loadm(B + k * NC, V::mask(rem * NC));
#pragma GCC unroll 8
    for (int i = 0; i < MI; ++i)
      acc[i] = V::fmadd(V::template dupm<NC>(A + i * lda + k, rem), bv, acc[i]);
  }
#pragma GCC unroll 8
  for (int i = 0; i < MI; ++i) {
    float s[NC];
    V::template fold<NC>(acc[i], s);
    float* c = C + i * ldc;
    for (int j = 0; j < NC; ++j) c[j] = beta == 0.0f ? alpha * s[j] : alpha * s[j] + beta * c[j];
  }
}

template <int NC>
void ilv_gemm(int64_t M, int64_t K, float alpha, const float* A, int64_t lda, const float* B,
              float beta, float* C, int64_t ldc) {
  int64_t i = 0;
  for (; i + 4 <= M; i += 4) ilv_rows<NC, 4>(K, A + i * lda, lda, B, C + i * ldc, ldc, alpha, beta);
  for (; i < M; ++i) ilv_rows<NC, 1>(K, A + i * lda, lda, B, C + i * ldc, ldc, alpha, beta);
}

// Up to this many rows the dot tile beats transposing B [N,K] for the direct tile (measured on
// Zen 4: the crossover is M ~ 16 at K = 64 and M ~ 64 at K = 256).
RLFT_GEMM_INLINE int64_t dot_max_m(int64_t K) { return K / 4 > 8 ? K / 4 : 8; }

// The unpacked path. The dot tile needs A rows and B^T rows contiguous along K (no trans_a);
// it takes trans_b when M is small next to K (then the reduction at the end is cheap next to
// the K/W FMAs per output, and transposing B for the direct tile would cost more than it
// saves), and narrow N (vectors along N would be mostly empty), transposing B (K x N, N < W/2)
// unless it is one contiguous column. Everything else takes the direct tile, with B transposed
// into scratch when it is stored [N,K].
// m_all: the rows of the whole problem when this call is one thread's share of it. The choice
// of tile depends on it, not on M, so that every element is computed the same way whatever the
// thread count (and the reductions of the dot tiles all follow one tree: V::hsum == hsum_w).
void small(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
           int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc,
           int64_t m_all) {
  if (!trans_a && K >= Params::DOT_MIN_K) {
    if (trans_b && (m_all <= dot_max_m(K) || N <= W / 2)) {
      dot_gemm(M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
      return;
    }
    if (!trans_b && N == 1 && ldb == 1) {  // the column is contiguous already
      dot_gemm(M, N, K, alpha, A, lda, B, K, beta, C, ldc);
      return;
    }
    if (!trans_b && ldb == N && (N == 2 || N == 4) && N < W && m_all <= 8) {
      if (N == 2) {
        ilv_gemm<2>(M, K, alpha, A, lda, B, beta, C, ldc);
      } else {
        ilv_gemm<4>(M, K, alpha, A, lda, B, beta, C, ldc);
      }
      return;
    }
    // A few rows and a short K: masked direct tiles beat a transpose of B.
    if (!trans_b && N <= W / 2 && (m_all > 4 || K >= 128)) {
      float* Bt = gemm_detail::gemm_scratch(gemm_detail::kScratchT, N * K);  // Bt[j][p] = B[p][j]
      transpose(B, ldb, K, N, Bt, K);
      dot_gemm(M, N, K, alpha, A, lda, Bt, K, beta, C, ldc);
      return;
    }
  }
  if (use_direct_packing(m_all, N, K)) {  // op(B) transposed, if stored [N,K], into the strips
    direct_gemm_packed(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    return;
  }
  if (trans_b) {
    float* Bn = gemm_detail::gemm_scratch(gemm_detail::kScratchT, K * N);  // Bn[p][j] = B[j][p]
    transpose(B, ldb, N, K, Bn, N);
    direct_gemm(trans_a, M, N, K, alpha, A, lda, Bn, N, beta, C, ldc);
    return;
  }
  if (m_all == 1) {
    gemv_row(trans_a, N, K, alpha, A, lda, B, ldb, beta, C);
    return;
  }
  direct_gemm(trans_a, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

}  // namespace
}  // namespace rlft::kernels::RLFT_GEMM_NS

#endif  // RLFT_GEMM_NS
