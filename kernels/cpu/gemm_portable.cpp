// Portable kernels of the CPU GEMM (the manual is at the top of gemm.cpp): the same kernel
// bodies (gemm_kernels.h) over a 4-wide GCC/Clang vector type, which compiles to SSE2 on x86-64
// and NEON on AArch64. No FMA is assumed (a*b+c may be two roundings).
//
// Tiles: packed 6 x 8, unpacked 6 x 8, dot 2 x 2. Blocks: KC = 256, NB = 512, MB = 3072.
#include <cstdint>
#include <cstring>

#include "kernels/cpu/gemm_kernels.h"

namespace rlft::kernels::gemm_portable {

struct V {
  typedef float T __attribute__((vector_size(16)));
  using Mask = int;
  static constexpr bool kCheapMask = false;  // loadm is a scalar loop
  static constexpr int W = 4;
  static T zero() { return T{0.0f, 0.0f, 0.0f, 0.0f}; }
  static T load(const float* p) {
    T v;
    std::memcpy(&v, p, sizeof v);
    return v;
  }
  static T loadm(const float* p, Mask n) {
    T v = zero();
    for (int i = 0; i < n; ++i) v[i] = p[i];
    return v;
  }
  static void store(float* p, T v) { std::memcpy(p, &v, sizeof v); }
  static void storem(float* p, T v, Mask n) {
    for (int i = 0; i < n; ++i) p[i] = v[i];
  }
  static T set1(float x) { return T{x, x, x, x}; }
  static T fmadd(T a, T b, T c) { return a * b + c; }
  static T mul(T a, T b) { return a * b; }
  static T add(T a, T b) { return a + b; }
  static Mask mask(int n) { return n; }
  // The W/N floats at p, each repeated N times (N = 2 or 4).
  template <int N>
  static T dup(const float* p) {
    T v;
    for (int l = 0; l < W; ++l) v[l] = p[l / N];
    return v;
  }
  template <int N>
  static T dupm(const float* p, int n) {
    T v = zero();
    for (int l = 0; l < n * N; ++l) v[l] = p[l / N];
    return v;
  }
  template <int N>
  static void fold(T v, float* out) {  // out[j] = sum of the lanes l with l % N == j
    for (int j = 0; j < N; ++j) out[j] = 0.0f;
    for (int l = 0; l < W; ++l) out[l % N] += v[l];
  }
  static float hsum(T v) { return (v[0] + v[2]) + (v[1] + v[3]); }  // hsum_w uses it too
  static void hsum_w(const T* v, float* out) {
    for (int t = 0; t < W; ++t) out[t] = hsum(v[t]);
  }
  static void transpose_w(const float* src, int64_t lds, float* dst, int64_t ldd) {
    for (int r = 0; r < W; ++r)
      for (int c = 0; c < W; ++c) dst[c * ldd + r] = src[r * lds + c];
  }
};

struct Params {
  static constexpr int MR = 6, NV = 2, KC = 256, NB = 512, MB = 3072;
  static constexpr int KU1 = 2, KU2 = 1;  // partial sums over k of narrow direct tiles
  static constexpr int MRD = 6, NVD = 2;
  static constexpr int DOT_MIN_K = 8;
  static constexpr int GEMV_NV = 4;  // one-row kernel: 16 columns per chunk
  static constexpr bool PACK_DIRECT = false;  // direct tiles over packed copies (gemm_kernels.h)
};

}  // namespace rlft::kernels::gemm_portable

#define RLFT_GEMM_NS gemm_portable
#include "kernels/cpu/gemm_kernels.h"
#undef RLFT_GEMM_NS

namespace rlft::kernels::gemm_detail {
const GemmKernels& gemm_kernels_portable() {
  namespace k = gemm_portable;
  static const GemmKernels table{"portable",
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
