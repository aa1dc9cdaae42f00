// Internal helpers shared by the engine's op files (not part of the public API).
#pragma once

#include "engine/autograd.h"
#include "engine/ops.h"
#include "kernels/cpu/elementwise.h"

namespace rlft::detail {

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

inline void check_cpu(const char* op, const Tensor& t) {
  RLFT_CHECK(t.defined(), op, ": undefined tensor");
  RLFT_CHECK(t.device().is_cpu(), op, ": tensor on ", t.device(),
             " but this op runs on the CPU only in this build");
}

inline void check_same_dtype(const char* op, const Tensor& a, const Tensor& b) {
  RLFT_CHECK(a.dtype() == b.dtype(), op, ": dtype mismatch: ", a.dtype(), " ", a.shape(), " vs ",
             b.dtype(), " ", b.shape());
}

// out = f(a) elementwise for floating `a`, output of the same dtype.
template <typename F>
Tensor map_unary_float(const char* op, const Tensor& a, F f) {
  check_cpu(op, a);
  Tensor out = Tensor::empty(a.shape(), a.dtype(), a.device());
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
template <bool kCompare, typename F>
Tensor map_binary(const char* op, const Tensor& a, const Tensor& b, F f) {
  check_cpu(op, a);
  check_cpu(op, b);
  check_same_dtype(op, a, b);
  const Shape shape = a.shape() == b.shape() ? a.shape() : broadcast_shapes(a.shape(), b.shape(), op);
  const DType out_dtype = kCompare ? DType::b8 : a.dtype();
  Tensor out = Tensor::empty(shape, out_dtype, a.device());
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
