// AVX-512 kernels of the CPU GEMM (the manual is at the top of gemm.cpp). The kernel bodies are
// in gemm_kernels.h; this file supplies the vector type and the block sizes, and compiles them
// with `#pragma GCC target` (Clang: `#pragma clang attribute`), so the library itself is built
// without -march flags.
//
// Tiles: packed 12 x 32 (24 zmm accumulators), unpacked 6 x 64 (24), dot 4 x 4 (16).
// Blocks for Zen 4 / Skylake-X: KC = 384 (a 12 x 384 A micro-panel is 18 KiB: L1),
// NB = 384 (a 384 x 384 packed B block is 576 KiB: L2 of 1 MiB), MB = 3072 (4.5 MiB: L3).
//
#if defined(__x86_64__) || defined(__i386__)  // x86 only; gemm.cpp never asks elsewhere

// GCC 12 reports the intrinsics' internal _mm*_undefined_*() as uninitialized (GCC PR 105593).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#if !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <immintrin.h>

#include <cstdint>

#include "kernels/cpu/gemm_kernels.h"

// GCC takes the target from its pragma; Clang ignores that one and takes its own.
#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx512f,avx512vl,avx2,fma"))), \
                             apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx512f,avx512vl,avx2,fma")
#endif

namespace rlft::kernels::gemm_avx512 {

struct V {
  using T = __m512;
  using Mask = __mmask16;
  static constexpr bool kCheapMask = true;  // masked loads cost as much as plain ones
  static constexpr int W = 16;
  static T zero() { return _mm512_setzero_ps(); }
  static T load(const float* p) { return _mm512_loadu_ps(p); }
  static T loadm(const float* p, Mask m) { return _mm512_maskz_loadu_ps(m, p); }
  static void store(float* p, T v) { _mm512_storeu_ps(p, v); }
  static void storem(float* p, T v, Mask m) { _mm512_mask_storeu_ps(p, m, v); }
  static T set1(float x) { return _mm512_set1_ps(x); }
  static T fmadd(T a, T b, T c) { return _mm512_fmadd_ps(a, b, c); }
  static T mul(T a, T b) { return _mm512_mul_ps(a, b); }
  static T add(T a, T b) { return _mm512_add_ps(a, b); }
  static Mask mask(int n) { return static_cast<Mask>((1u << n) - 1u); }
  // The same tree as hsum_w, so that a sum does not depend on the tile that computed it.
  static float hsum(T v) {
    const __m256 h =
        _mm256_add_ps(_mm512_castps512_ps256(v),
                      _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)));
    __m128 q = _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
    q = _mm_add_ps(q, _mm_movehl_ps(q, q));  // (q0 + q2, q1 + q3)
    return _mm_cvtss_f32(_mm_add_ss(q, _mm_movehdup_ps(q)));
  }
  // The W/N floats at p, each repeated N times: [p0 x N, p1 x N, ...].
  template <int N>
  static T dup(const float* p) {  // reads exactly W/N floats
    const T x = N == 2 ? _mm512_castps256_ps512(_mm256_loadu_ps(p))
                       : _mm512_castps128_ps512(_mm_loadu_ps(p));
    return _mm512_permutexvar_ps(dup_index<N>(), x);
  }
  template <int N>
  static T dupm(const float* p, int n) {  // only the first n < W/N floats exist
    return _mm512_permutexvar_ps(dup_index<N>(), _mm512_maskz_loadu_ps(mask(n), p));
  }
  template <int N>
  static __m512i dup_index() {
    return N == 2 ? _mm512_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7)
                  : _mm512_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3);
  }
  // out[j] = sum of the lanes l with l % N == j (N = 2 or 4): fold halves down to N lanes.
  template <int N>
  static void fold(T v, float* out) {
    __m256 h = _mm256_add_ps(_mm512_castps512_ps256(v),
                             _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)));
    __m128 q = _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
    if (N == 2) q = _mm_add_ps(q, _mm_movehl_ps(q, q));
    _mm_mask_storeu_ps(out, static_cast<__mmask8>((1u << N) - 1u), q);
  }
  // out[t] = sum of the lanes of v[t], t < 16: a transpose-add tree (24 shuffles, 14 adds).
  static void hsum_w(const T* v, float* out) {
    T u[8], w[4];
#pragma GCC unroll 16
    for (int t = 0; t < 8; ++t)  // lanes 0-7: halves of v[2t], lanes 8-15: of v[2t+1]
      u[t] = _mm512_add_ps(_mm512_shuffle_f32x4(v[2 * t], v[2 * t + 1], _MM_SHUFFLE(1, 0, 1, 0)),
                           _mm512_shuffle_f32x4(v[2 * t], v[2 * t + 1], _MM_SHUFFLE(3, 2, 3, 2)));
#pragma GCC unroll 16
    for (int s = 0; s < 4; ++s)  // 128-bit lane q: 4 partial sums of v[4s+q]
      w[s] = _mm512_add_ps(_mm512_shuffle_f32x4(u[2 * s], u[2 * s + 1], _MM_SHUFFLE(2, 0, 2, 0)),
                           _mm512_shuffle_f32x4(u[2 * s], u[2 * s + 1], _MM_SHUFFLE(3, 1, 3, 1)));
    const T x = _mm512_add_ps(_mm512_unpacklo_ps(w[0], w[1]), _mm512_unpackhi_ps(w[0], w[1]));
    const T y = _mm512_add_ps(_mm512_unpacklo_ps(w[2], w[3]), _mm512_unpackhi_ps(w[2], w[3]));
    // z lane 4q+p = sum of v[4p+q]
    const T z = _mm512_add_ps(
        _mm512_castpd_ps(_mm512_unpacklo_pd(_mm512_castps_pd(x), _mm512_castps_pd(y))),
        _mm512_castpd_ps(_mm512_unpackhi_pd(_mm512_castps_pd(x), _mm512_castps_pd(y))));
    const __m512i idx = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
    _mm512_storeu_ps(out, _mm512_permutexvar_ps(idx, z));
  }
  // dst[c*ldd + r] = src[r*lds + c], r, c < 16: unpack rows in pairs, then in fours, then
  // gather 128-bit lanes (64 shuffles for 256 floats).
  static void transpose_w(const float* src, int64_t lds, float* dst, int64_t ldd) {
    T r[16], t[16];
#pragma GCC unroll 16
    for (int i = 0; i < 16; ++i) r[i] = _mm512_loadu_ps(src + i * lds);
#pragma GCC unroll 16
    for (int i = 0; i < 8; ++i) {
      t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
      t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
#pragma GCC unroll 16
    for (int i = 0; i < 4; ++i) {  // lane q of r[4i+e]: rows 4i..4i+3 of column 4q+e
      const __m512d a = _mm512_castps_pd(t[4 * i]), b = _mm512_castps_pd(t[4 * i + 2]);
      const __m512d c = _mm512_castps_pd(t[4 * i + 1]), d = _mm512_castps_pd(t[4 * i + 3]);
      r[4 * i] = _mm512_castpd_ps(_mm512_unpacklo_pd(a, b));
      r[4 * i + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a, b));
      r[4 * i + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(c, d));
      r[4 * i + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(c, d));
    }
#pragma GCC unroll 16
    for (int e = 0; e < 4; ++e) {
      const T t0 = _mm512_shuffle_f32x4(r[e], r[4 + e], 0x44);
      const T t1 = _mm512_shuffle_f32x4(r[e], r[4 + e], 0xEE);
      const T t2 = _mm512_shuffle_f32x4(r[8 + e], r[12 + e], 0x44);
      const T t3 = _mm512_shuffle_f32x4(r[8 + e], r[12 + e], 0xEE);
      _mm512_storeu_ps(dst + (0 + e) * ldd, _mm512_shuffle_f32x4(t0, t2, 0x88));
      _mm512_storeu_ps(dst + (4 + e) * ldd, _mm512_shuffle_f32x4(t0, t2, 0xDD));
      _mm512_storeu_ps(dst + (8 + e) * ldd, _mm512_shuffle_f32x4(t1, t3, 0x88));
      _mm512_storeu_ps(dst + (12 + e) * ldd, _mm512_shuffle_f32x4(t1, t3, 0xDD));
    }
  }
};

struct Params {
  static constexpr int MR = 12, NV = 2, KC = 384, NB = 384, MB = 3072;
  static constexpr int KU1 = 4, KU2 = 2;  // partial sums over k of narrow direct tiles
  static constexpr int MRD = 6, NVD = 4;
  static constexpr int DOT_MIN_K = 16;
  static constexpr int GEMV_NV = 16;  // one-row kernel: 256 columns per chunk
  static constexpr bool PACK_DIRECT = false;  // direct tiles over packed copies (gemm_kernels.h)
};

}  // namespace rlft::kernels::gemm_avx512

#define RLFT_GEMM_NS gemm_avx512
#include "kernels/cpu/gemm_kernels.h"
#undef RLFT_GEMM_NS

#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif

namespace rlft::kernels::gemm_detail {
const GemmKernels& gemm_kernels_avx512() {
  namespace k = gemm_avx512;
  static const GemmKernels table{"avx512",
                                 k::Params::MR,
                                 k::Params::NV * k::V::W,
                                 k::Params::KC,
                                 k::Params::NB,
                                 k::Params::MB,
                                 12,
                                 k::Params::NVD * k::V::W,
                                 &k::pack_a,
                                 &k::pack_b,
                                 &k::macro,
                                 &k::small};
  return table;
}
}  // namespace rlft::kernels::gemm_detail

#pragma GCC diagnostic pop

#endif  // x86
