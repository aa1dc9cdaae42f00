// Internal helpers shared by the engine's op files (not part of the public API).
#pragma once

#include <array>

#include "engine/autograd.h"
#include "engine/ops.h"
#include "kernels/cpu/elementwise.h"
#include "kernels/cuda_ops.h"

namespace rlft::detail {

namespace cuda_ops = kernels::cuda_ops;

// The CUDA kernels' element type of a dtype (the two enums list the types in the same order).
static_assert(int(cuda_ops::Type::f32) == int(DType::f32) && int(cuda_ops::Type::f64) == int(DType::f64) &&
              int(cuda_ops::Type::i64) == int(DType::i64) && int(cuda_ops::Type::b8) == int(DType::b8));
inline cuda_ops::Type ctype(DType t) { return static_cast<cuda_ops::Type>(t); }

// The squeezed index space of K operands over `shape` (operand 0 is the output).
template <size_t K>
cuda_ops::Geometry geometry(const Shape& shape, const std::array<const Shape*, K>& strides) {
  std::array<const int64_t*, K> st;
  for (size_t k = 0; k < K; ++k) st[k] = strides[k]->data();
  return cuda_ops::make_geometry<K>(shape.size(), shape.data(), st);
}

// Strides that address `t` as if broadcast to `shape` (0 along broadcast dimensions).
inline Shape broadcast_strides(const Tensor& t, const Shape& shape) {
  Shape st;
  st.resize(shape.size());
  const int lead = shape.size() - t.dim();
  for (int i = 0; i < shape.size(); ++i) {
    if (i < lead) {
      st[i] = 0;
    } else {
      st[i] = t.shape()[i - lead] == 1 && shape[i] != 1 ? 0 : t.strides()[i - lead];
    }
  }
  return st;
}

// The one device of the (defined) tensors: "add: tensors on different devices (cpu and cuda:0)"
// otherwise. The first tensor must be defined.
inline Device check_device(const char* op, std::initializer_list<const Tensor*> tensors) {
  RLFT_CHECK(tensors.size() > 0 && (*tensors.begin())->defined(), op, ": undefined tensor");
  return common_device(op, tensors);
}

inline void check_cpu(const char* op, const Tensor& t) {
  RLFT_CHECK(t.defined(), op, ": undefined tensor");
  RLFT_CHECK(t.device().is_cpu(), op, ": tensor on ", t.device(),
             " but this op runs on the CPU only in this build");
}

inline void check_same_dtype(const char* op, const Tensor& a, const Tensor& b) {
  RLFT_CHECK(a.dtype() == b.dtype(), op, ": dtype mismatch: ", a.dtype(), " ", a.shape(), " vs ",
             b.dtype(), " ", b.shape());
}

// out = f(a) elementwise for floating `a`, output of the same dtype. On a CUDA device the
// kernel computes `code` (with scalars s0, s1), the same function as f.
template <typename F>
Tensor map_unary_float(const char* op, const Tensor& a, F f, cuda_ops::Unary code, double s0 = 0, double s1 = 0) {
  RLFT_CHECK(a.defined(), op, ": undefined tensor");
  Tensor out = Tensor::empty(a.shape(), a.dtype(), a.device());
  if (a.device().is_cuda()) {
    dispatch_float(a.dtype(), op, [](auto) {});  // the CPU's dtype error
    cuda_ops::unary(code, ctype(a.dtype()), geometry<2>(a.shape(), {&out.strides(), &a.strides()}), out.raw_data(),
                    a.raw_data(), s0, s1, a.device().index);
    return out;
  }
  dispatch_float(a.dtype(), op, [&](auto tag) {
    using T = decltype(tag);
    const T* x = static_cast<const T*>(a.storage()->data) + a.offset();
    if (a.is_contiguous()) {
      kernels::unary_contiguous(a.numel(), x, out.data<T>(), f);
    } else {
      kernels::unary_strided(a.dim(), a.shape().data(), x, a.strides().data(), out.data<T>(),
                             out.strides().data(), f);
    }
  });
  return out;
}

// out = f(a, b) with broadcasting; both of one dtype in `Dispatch`'s set; the output has
// dtype `out_dtype` whose C++ type is OutOf<T>.
// On a CUDA device the kernel computes `code` (with scalars s0, s1), the same function as f.
template <bool kCompare, typename F>
Tensor map_binary(const char* op, const Tensor& a, const Tensor& b, F f, cuda_ops::Binary code, double s0 = 0,
                  double s1 = 0) {
  RLFT_CHECK(a.defined() && b.defined(), op, ": undefined tensor");
  const Device dev = check_device(op, {&a, &b});
  check_same_dtype(op, a, b);
  const Shape shape = a.shape() == b.shape() ? a.shape() : broadcast_shapes(a.shape(), b.shape(), op);
  const DType out_dtype = kCompare ? DType::b8 : a.dtype();
  Tensor out = Tensor::empty(shape, out_dtype, a.device());
  if (dev.is_cuda()) {
    if (!kCompare) dispatch_float(a.dtype(), op, [](auto) {});  // the CPU's dtype error
    const Shape sa = broadcast_strides(a, shape), sb = broadcast_strides(b, shape);
    cuda_ops::binary(code, ctype(a.dtype()), geometry<3>(shape, {&out.strides(), &sa, &sb}), out.raw_data(),
                     a.raw_data(), b.raw_data(), s0, s1, dev.index);
    return out;
  }
  auto body = [&](auto tag) {
    using T = decltype(tag);
    using O = std::conditional_t<kCompare, uint8_t, T>;
    const T* x = static_cast<const T*>(a.storage()->data) + a.offset();
    const T* y = static_cast<const T*>(b.storage()->data) + b.offset();
    O* o = out.data<O>();
    if (a.shape() == b.shape() && a.is_contiguous() && b.is_contiguous()) {
      kernels::binary_contiguous(out.numel(), x, y, o, f);
    } else {
      const Shape sa = broadcast_strides(a, shape), sb = broadcast_strides(b, shape);
      kernels::binary_strided(shape.size(), shape.data(), x, sa.data(), y, sb.data(), o,
                              out.strides().data(), f);
    }
  };
  if constexpr (kCompare) {
    dispatch_all(a.dtype(), body);
  } else {
    dispatch_float(a.dtype(), op, body);
  }
  return out;
}

}  // namespace rlft::detail
