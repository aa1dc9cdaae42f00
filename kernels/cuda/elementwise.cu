// elementwise — the engine's unary, binary (broadcasting), where, dtype-cast / strided copy,
// fill, uniform- and normal-random and arange kernels (declared in kernels/cuda_ops.h).
//
// What: out[p] = f(operands at p) over a Geometry (shape + per-operand strides, ≤ 8 dims,
// already squeezed on the host). One version each: a grid-stride loop over the flat index;
// when every operand is dense (Geometry::contiguous) the offset is the index itself, else it
// is decomposed dimension by dimension (div/mod per dimension). The op is a switch on a code
// that is the same for every thread, so the branch does not diverge; one kernel per element
// type keeps nvcc's work small.
// Traffic per element: unary 2·sizeof(T) bytes; binary 3·sizeof(T) (comparisons 2·sizeof(T)
// + 1); where 3·sizeof(T) + 1; copy sizeof(S) + sizeof(D); fill, uniform, normal and arange
// sizeof(T) (written only).
// Math per element in T (float in float: expf, tanhf, … — the CPU's float tanh is a rational
// approximation within ~1e-7, so float results agree to a few ulp, not bit for bit).
// Reference: the CPU branch of each op in engine/ops_elementwise.cpp, tensor.cpp (copy, fill)
// and ops_nn.cpp (rand, randn, dropout), Tensor::arange in tensor.cpp;
// tests/engine/test_cuda_ops.cpp compares them. rand, dropout and arange are bitwise the CPU's
// (the same Philox blocks and the same rounding; arange's start + i·step is two roundings on
// both devices); randn's Box-Muller goes through double log, sqrt, cos and sin, whose CUDA
// versions are within 1-2 ulp of glibc's: doubles agree to ~1e-15 relative and floats are
// the same bits except where a double lands within an ulp of a float rounding boundary.
#include <cuda_runtime.h>

#include "engine/rng.h"
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/dispatch.cuh"
#include "kernels/cuda/geometry.cuh"
#include "kernels/cuda_ops.h"

namespace rlft::kernels::cuda_ops {

namespace {

using cuda_detail::blocks_for;
using cuda_detail::kThreads;

// Float and double overloads spelled out, so no implicit double math sneaks into float code.
__device__ __forceinline__ float m_exp(float x) { return expf(x); }
__device__ __forceinline__ double m_exp(double x) { return ::exp(x); }
__device__ __forceinline__ float m_log(float x) { return logf(x); }
__device__ __forceinline__ double m_log(double x) { return ::log(x); }
__device__ __forceinline__ float m_log1p(float x) { return log1pf(x); }
__device__ __forceinline__ double m_log1p(double x) { return ::log1p(x); }
__device__ __forceinline__ float m_sqrt(float x) { return sqrtf(x); }
__device__ __forceinline__ double m_sqrt(double x) { return ::sqrt(x); }
__device__ __forceinline__ float m_tanh(float x) { return tanhf(x); }
__device__ __forceinline__ double m_tanh(double x) { return ::tanh(x); }
__device__ __forceinline__ float m_abs(float x) { return fabsf(x); }
__device__ __forceinline__ double m_abs(double x) { return ::fabs(x); }
__device__ __forceinline__ float m_pow(float x, float e) { return powf(x, e); }
__device__ __forceinline__ double m_pow(double x, double e) { return ::pow(x, e); }
__device__ __forceinline__ bool m_isinf(float x) { return isinf(x); }
__device__ __forceinline__ bool m_isinf(double x) { return isinf(x); }

// GELU, tanh approximation (engine/ops_elementwise.cpp): 0.5·x·(1 + tanh(√(2/π)(x + 0.044715x³))).
constexpr double kGeluC = 0.7978845608028654;
constexpr double kGeluA = 0.044715;

// One case per op, read as a table.
// clang-format off
template <typename T>
__device__ __forceinline__ T apply_unary(Unary op, T x, T s0, T s1) {
  switch (op) {
    case Unary::neg: return -x;
    case Unary::exp: return m_exp(x);
    case Unary::log: return m_log(x);
    case Unary::sqrt: return m_sqrt(x);
    case Unary::abs: return m_abs(x);
    case Unary::sign: return x > T(0) ? T(1) : (x < T(0) ? T(-1) : T(0));
    case Unary::tanh: return m_tanh(x);
    case Unary::sigmoid: {
      if (x >= T(0)) return T(1) / (T(1) + m_exp(-x));
      const T e = m_exp(x);
      return e / (T(1) + e);
    }
    case Unary::relu: return x > T(0) ? x : T(0);
    case Unary::gelu: return T(0.5) * x * (T(1) + m_tanh(T(kGeluC) * (x + T(kGeluA) * x * x * x)));
    case Unary::softplus: return (x > T(0) ? x : T(0)) + m_log1p(m_exp(-m_abs(x)));
    case Unary::tanh_backward: return T(1) - x * x;
    case Unary::sigmoid_backward: return x * (T(1) - x);
    case Unary::add_scalar: return x + s0;
    case Unary::mul_scalar: return x * s0;
    case Unary::rsub_scalar: return s0 - x;
    case Unary::rdiv_scalar: return s0 / x;
    case Unary::pow_scalar: return s0 == T(2) ? x * x : m_pow(x, s0);
    case Unary::clamp: return x < s0 ? s0 : (x > s1 ? s1 : x);
    case Unary::inf_to_zero: return m_isinf(x) ? T(0) : x;
    case Unary::dropout_mask: return x < s0 ? T(0) : s1;
  }
  return x;
}

template <typename T>
__device__ __forceinline__ T apply_binary(Binary op, T x, T y, T s0, T s1) {
  switch (op) {
    case Binary::add: return x + y;
    case Binary::sub: return x - y;
    case Binary::mul: return x * y;
    case Binary::div: return x / y;
    case Binary::minimum: return x <= y ? x : y;
    case Binary::maximum: return x >= y ? x : y;
    case Binary::relu_backward: return y > T(0) ? x : T(0);
    case Binary::gelu_backward: {
      const T u = T(kGeluC) * (y + T(kGeluA) * y * y * y);
      const T th = m_tanh(u);
      const T du = T(kGeluC) * (T(1) + T(3 * kGeluA) * y * y);
      return x * (T(0.5) * (T(1) + th) + T(0.5) * y * (T(1) - th * th) * du);
    }
    case Binary::clamp_backward: return (y >= s0 && y <= s1) ? x : T(0);
    default: return T(0);  // comparisons run in compare_kernel
  }
}

template <typename T>
__device__ __forceinline__ uint8_t apply_compare(Binary op, T x, T y) {
  switch (op) {
    case Binary::eq: return x == y;
    case Binary::ne: return x != y;
    case Binary::lt: return x < y;
    case Binary::le: return x <= y;
    case Binary::gt: return x > y;
    case Binary::ge: return x >= y;
    default: return 0;
  }
}
// clang-format on

template <typename T>
__global__ void unary_kernel(Unary op, Geometry g, T* out, const T* in, T s0, T s1) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < g.numel;
       i += int64_t(gridDim.x) * blockDim.x)
    out[offset_of(g, 0, i)] = apply_unary(op, in[offset_of(g, 1, i)], s0, s1);
}

template <typename T>
__global__ void binary_kernel(Binary op, Geometry g, T* out, const T* a, const T* b, T s0, T s1) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < g.numel;
       i += int64_t(gridDim.x) * blockDim.x)
    out[offset_of(g, 0, i)] =
        apply_binary(op, a[offset_of(g, 1, i)], b[offset_of(g, 2, i)], s0, s1);
}

template <typename T>
__global__ void compare_kernel(Binary op, Geometry g, uint8_t* out, const T* a, const T* b) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < g.numel;
       i += int64_t(gridDim.x) * blockDim.x)
    out[offset_of(g, 0, i)] = apply_compare(op, a[offset_of(g, 1, i)], b[offset_of(g, 2, i)]);
}

template <typename T>
__global__ void where_kernel(Geometry g, T* out, const uint8_t* cond, const T* a, const T* b) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < g.numel;
       i += int64_t(gridDim.x) * blockDim.x)
    out[offset_of(g, 0, i)] =
        cond[offset_of(g, 1, i)] ? a[offset_of(g, 2, i)] : b[offset_of(g, 3, i)];
}

// Conversions as C++'s static_cast on the CPU (float → int64 truncates; → bool keeps 0/1 only
// when the CPU does: the CPU writes uint8_t(x), so 2.0 becomes 2 there too).
template <typename D, typename S>
__global__ void copy_kernel(Geometry g, D* dst, const S* src) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < g.numel;
       i += int64_t(gridDim.x) * blockDim.x)
    dst[offset_of(g, 0, i)] = D(src[offset_of(g, 1, i)]);
}

template <typename T>
__global__ void fill_kernel(Geometry g, T* dst, T value) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < g.numel;
       i += int64_t(gridDim.x) * blockDim.x)
    dst[offset_of(g, 0, i)] = value;
}

template <typename T>
__global__ void uniform_kernel(int64_t n, uint64_t seed, uint64_t first_block, T* out) {
  // One thread per Philox block: four consecutive elements.
  const int64_t blocks = (n + 3) / 4;
  for (int64_t b = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; b < blocks;
       b += int64_t(gridDim.x) * blockDim.x) {
    const Philox4x32::Block blk = Philox4x32::generate(seed, first_block + uint64_t(b));
    for (int k = 0; k < 4; ++k) {
      const int64_t i = b * 4 + k;
      if (i < n) out[i] = T(Philox4x32::to_unit_float(blk.v[k]));
    }
  }
}

template <typename T>
__global__ void normal_kernel(int64_t n, uint64_t seed, uint64_t first_block, T* out) {
  // One thread per Philox block: the pair (2j, 2j+1) by Box-Muller on two 53-bit uniforms, in
  // double, term for term as ops_nn.cpp's randn (no sum here for FMA contraction to change:
  // 1 − u·2⁻⁵³ is exact).
  const int64_t pairs = (n + 1) / 2;
  for (int64_t j = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; j < pairs;
       j += int64_t(gridDim.x) * blockDim.x) {
    const Philox4x32::Block blk = Philox4x32::generate(seed, first_block + uint64_t(j));
    const double u1 = 1.0 - Philox4x32::to_unit_double(blk.v[0], blk.v[1]);  // (0, 1]
    const double u2 = Philox4x32::to_unit_double(blk.v[2], blk.v[3]);
    const double r = ::sqrt(-2.0 * ::log(u1));
    out[2 * j] = T(r * ::cos(6.283185307179586 * u2));
    if (2 * j + 1 < n) out[2 * j + 1] = T(r * ::sin(6.283185307179586 * u2));
  }
}

template <typename T>
__global__ void arange_kernel(int64_t n, double start, double step, T* out) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x)
    out[i] = T(start + __dmul_rn(double(i), step));  // product rounded first, as the CPU (no FMA)
}

}  // namespace

void set_device_for(int device) { cuda_detail::set_device(device); }

void unary(Unary op, Type type, const Geometry& g, void* out, const void* in, double s0, double s1,
           int device) {
  if (g.numel == 0) return;
  cuda_detail::set_device(device);
  dispatch_floating(type, "cuda unary", [&](auto tag) {
    using T = decltype(tag);
    unary_kernel<T><<<blocks_for(g.numel), kThreads>>>(op, g, static_cast<T*>(out),
                                                       static_cast<const T*>(in), T(s0), T(s1));
  });
  RLFT_CUDA_CHECK_LAUNCH();
}

void binary(Binary op, Type type, const Geometry& g, void* out, const void* a, const void* b,
            double s0, double s1, int device) {
  if (g.numel == 0) return;
  cuda_detail::set_device(device);
  if (is_comparison(op)) {
    dispatch_all(type, [&](auto tag) {
      using T = decltype(tag);
      compare_kernel<T><<<blocks_for(g.numel), kThreads>>>(
          op, g, static_cast<uint8_t*>(out), static_cast<const T*>(a), static_cast<const T*>(b));
    });
  } else {
    dispatch_floating(type, "cuda binary", [&](auto tag) {
      using T = decltype(tag);
      binary_kernel<T><<<blocks_for(g.numel), kThreads>>>(op, g, static_cast<T*>(out),
                                                          static_cast<const T*>(a),
                                                          static_cast<const T*>(b), T(s0), T(s1));
    });
  }
  RLFT_CUDA_CHECK_LAUNCH();
}

void where(Type type, const Geometry& g, void* out, const uint8_t* cond, const void* a,
           const void* b, int device) {
  if (g.numel == 0) return;
  cuda_detail::set_device(device);
  dispatch_all(type, [&](auto tag) {
    using T = decltype(tag);
    where_kernel<T><<<blocks_for(g.numel), kThreads>>>(
        g, static_cast<T*>(out), cond, static_cast<const T*>(a), static_cast<const T*>(b));
  });
  RLFT_CUDA_CHECK_LAUNCH();
}

void copy(Type dst_type, Type src_type, const Geometry& g, void* dst, const void* src, int device) {
  if (g.numel == 0) return;
  cuda_detail::set_device(device);
  dispatch_all(dst_type, [&](auto dtag) {
    using D = decltype(dtag);
    dispatch_all(src_type, [&](auto stag) {
      using S = decltype(stag);
      copy_kernel<D, S>
          <<<blocks_for(g.numel), kThreads>>>(g, static_cast<D*>(dst), static_cast<const S*>(src));
    });
  });
  RLFT_CUDA_CHECK_LAUNCH();
}

void fill(Type type, const Geometry& g, void* dst, double value, int device) {
  if (g.numel == 0) return;
  cuda_detail::set_device(device);
  dispatch_all(type, [&](auto tag) {
    using T = decltype(tag);
    fill_kernel<T><<<blocks_for(g.numel), kThreads>>>(g, static_cast<T*>(dst), T(value));
  });
  RLFT_CUDA_CHECK_LAUNCH();
}

void uniform(Type type, int64_t n, uint64_t seed, uint64_t first_block, void* out, int device) {
  if (n == 0) return;
  cuda_detail::set_device(device);
  dispatch_floating(type, "cuda uniform", [&](auto tag) {
    using T = decltype(tag);
    uniform_kernel<T>
        <<<blocks_for((n + 3) / 4), kThreads>>>(n, seed, first_block, static_cast<T*>(out));
  });
  RLFT_CUDA_CHECK_LAUNCH();
}

void normal(Type type, int64_t n, uint64_t seed, uint64_t first_block, void* out, int device) {
  if (n == 0) return;
  cuda_detail::set_device(device);
  dispatch_floating(type, "cuda normal", [&](auto tag) {
    using T = decltype(tag);
    normal_kernel<T><<<blocks_for((n + 1) / 2), kThreads>>>(n, seed, first_block,
                                                            static_cast<T*>(out));
  });
  RLFT_CUDA_CHECK_LAUNCH();
}

void arange(Type type, int64_t n, double start, double step, void* out, int device) {
  if (n == 0) return;
  cuda_detail::set_device(device);
  dispatch_all(type, [&](auto tag) {
    using T = decltype(tag);
    arange_kernel<T><<<blocks_for(n), kThreads>>>(n, start, step, static_cast<T*>(out));
  });
  RLFT_CUDA_CHECK_LAUNCH();
}

}  // namespace rlft::kernels::cuda_ops
