// AVX2+FMA kernels of the CPU GEMM (the manual is at the top of gemm.cpp). The kernel bodies are
// in gemm_kernels.h; this file supplies the vector type and the block sizes, and compiles them
// with `#pragma GCC target` (Clang: `#pragma clang attribute`), so the library itself is built
// without -march flags.
//
// 16 ymm registers: packed tile 6 x 16 (12 accumulators + 2 B vectors + 1 broadcast), unpacked
// 6 x 16 (over packed copies of B, and of A with trans_a, from 128 rows: PACK_DIRECT), dot 4 x 2.
// Blocks: KC = 384, NB = 384 (576 KiB of packed B: L2 on Zen 4; Zen 3's L2 is 512 KiB), MB = 3072.
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
#pragma clang attribute push(__attribute__((target("avx2,fma"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx2,fma")
#endif

namespace rlft::kernels::gemm_avx2 {

alignas(32) inline constexpr int32_t kMaskTable[16] = {-1, -1, -1, -1, -1, -1, -1, -1,
                                                       0,  0,  0,  0,  0,  0,  0,  0};

struct V {
  using T = __m256;
  using Mask = __m256i;
  static constexpr bool kCheapMask = false;  // vmaskmovps: 20-30% slower tiles on Zen 4
  static constexpr int W = 8;
  static T zero() { return _mm256_setzero_ps(); }
  static T load(const float* p) { return _mm256_loadu_ps(p); }
  static T loadm(const float* p, Mask m) { return _mm256_maskload_ps(p, m); }
  static void store(float* p, T v) { _mm256_storeu_ps(p, v); }
  static void storem(float* p, T v, Mask m) { _mm256_maskstore_ps(p, m, v); }
  static T set1(float x) { return _mm256_set1_ps(x); }
  static T fmadd(T a, T b, T c) { return _mm256_fmadd_ps(a, b, c); }
  static T mul(T a, T b) { return _mm256_mul_ps(a, b); }
  static T add(T a, T b) { return _mm256_add_ps(a, b); }
  static Mask mask(int n) {
    return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(kMaskTable + 8 - n));
  }
  // The W/N floats at p, each repeated N times: [p0 x N, p1 x N, ...].
  template <int N>
  static T dup(const float* p) {  // reads exactly W/N floats
    const __m128 x = N == 2
                         ? _mm_loadu_ps(p)
                         : _mm_castsi128_ps(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p)));
    return _mm256_permutevar8x32_ps(_mm256_castps128_ps256(x), dup_index<N>());
  }
  template <int N>
  static T dupm(const float* p, int n) {  // only the first n < W/N floats exist
    return _mm256_permutevar8x32_ps(_mm256_maskload_ps(p, mask(n)), dup_index<N>());
  }
  template <int N>
  static __m256i dup_index() {
    return N == 2 ? _mm256_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3)
                  : _mm256_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1);
  }
  // out[j] = sum of the lanes l with l % N == j (N = 2 or 4).
  template <int N>
  static void fold(T v, float* out) {
    __m128 q = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    if (N == 2) q = _mm_add_ps(q, _mm_movehl_ps(q, q));
    float t[4];
    _mm_storeu_ps(t, q);
    for (int j = 0; j < N; ++j) out[j] = t[j];
  }
  // The same tree as hsum_w, so that a sum does not depend on the tile that computed it.
  static float hsum(T v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_hadd_ps(s, s);  // (s0 + s1, s2 + s3)
    return _mm_cvtss_f32(_mm_hadd_ps(s, s));
  }
  // out[t] = sum of the lanes of v[t], t < 8.
  static void hsum_w(const T* v, float* out) {
    T u[4];
#pragma GCC unroll 16
    for (int t = 0; t < 4; ++t)  // lanes 0-3: halves of v[2t], lanes 4-7: of v[2t+1]
      u[t] = _mm256_add_ps(_mm256_permute2f128_ps(v[2 * t], v[2 * t + 1], 0x20),
                           _mm256_permute2f128_ps(v[2 * t], v[2 * t + 1], 0x31));
    const T x = _mm256_hadd_ps(u[0], u[1]);
    const T y = _mm256_hadd_ps(u[2], u[3]);
    const T z = _mm256_hadd_ps(x, y);  // lanes: v0 v2 v4 v6 | v1 v3 v5 v7
    const __m256i idx = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    _mm256_storeu_ps(out, _mm256_permutevar8x32_ps(z, idx));
  }
  // dst[c*ldd + r] = src[r*lds + c], r, c < 8.
  static void transpose_w(const float* src, int64_t lds, float* dst, int64_t ldd) {
    T r[8], t[8];
#pragma GCC unroll 16
    for (int i = 0; i < 8; ++i) r[i] = _mm256_loadu_ps(src + i * lds);
#pragma GCC unroll 16
    for (int i = 0; i < 4; ++i) {
      t[2 * i] = _mm256_unpacklo_ps(r[2 * i], r[2 * i + 1]);
      t[2 * i + 1] = _mm256_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
#pragma GCC unroll 16
    for (int i = 0; i < 2; ++i) {  // lane q of r[4i+e]: rows 4i..4i+3 of column 4q+e
      r[4 * i] = _mm256_shuffle_ps(t[4 * i], t[4 * i + 2], 0x44);
      r[4 * i + 1] = _mm256_shuffle_ps(t[4 * i], t[4 * i + 2], 0xEE);
      r[4 * i + 2] = _mm256_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0x44);
      r[4 * i + 3] = _mm256_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0xEE);
    }
#pragma GCC unroll 16
    for (int e = 0; e < 4; ++e) {
      _mm256_storeu_ps(dst + e * ldd, _mm256_permute2f128_ps(r[e], r[4 + e], 0x20));
      _mm256_storeu_ps(dst + (4 + e) * ldd, _mm256_permute2f128_ps(r[e], r[4 + e], 0x31));
    }
  }
};

struct Params {
  static constexpr int MR = 6, NV = 2, KC = 384, NB = 384, MB = 3072;
  static constexpr int KU1 = 2, KU2 = 1;  // partial sums over k of narrow direct tiles
  static constexpr int MRD = 6, NVD = 2;
  static constexpr int DOT_MIN_K = 8;
  static constexpr int GEMV_NV = 8;  // one-row kernel: 64 columns per chunk
  static constexpr bool PACK_DIRECT = true;  // direct tiles over packed copies (gemm_kernels.h)
};

}  // namespace rlft::kernels::gemm_avx2

#define RLFT_GEMM_NS gemm_avx2
#include "kernels/cpu/gemm_kernels.h"
#undef RLFT_GEMM_NS

#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif

namespace rlft::kernels::gemm_detail {
const GemmKernels& gemm_kernels_avx2() {
  namespace k = gemm_avx2;
  static const GemmKernels table{"avx2",
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
