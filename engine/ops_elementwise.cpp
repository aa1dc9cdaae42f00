// Elementwise ops and their gradients. Each backward sits right under its forward and is
// written with other ops (it runs with grad mode off).
#include <cmath>

#include "engine/ops_common.h"
#include "kernels/cpu/activation.h"
#include "kernels/cpu/fast_math.h"

namespace rlft {

using detail::map_binary;
using detail::map_unary_float;
using Unary = kernels::cuda_ops::Unary;
using Binary = kernels::cuda_ops::Binary;

Device common_device(const char* op, std::initializer_list<const Tensor*> tensors) {
  Device d;
  bool first = true;
  for (const Tensor* t : tensors) {
    if (!t || !t->defined()) continue;
    if (first) {
      d = t->device();
      first = false;
    } else {
      RLFT_CHECK(t->device() == d, op, ": tensors on different devices (", d, " and ", t->device(), ")");
    }
  }
  return d;
}

// ---- binary ----------------------------------------------------------------------------

Tensor add(const Tensor& a, const Tensor& b) {
  Tensor out = map_binary<false>("add", a, b, [](auto x, auto y) { return x + y; }, Binary::add);
  if (any_requires_grad(a, b)) {
    record("add", {a, b}, out, [sa = a.shape(), sb = b.shape()](const Grads& g, const Needs& n) -> Grads {
      return {n[0] ? sum_to(g[0], sa) : Tensor(), n[1] ? sum_to(g[0], sb) : Tensor()};
    });
  }
  return out;
}

Tensor sub(const Tensor& a, const Tensor& b) {
  Tensor out = map_binary<false>("sub", a, b, [](auto x, auto y) { return x - y; }, Binary::sub);
  if (any_requires_grad(a, b)) {
    record("sub", {a, b}, out, [sa = a.shape(), sb = b.shape()](const Grads& g, const Needs& n) -> Grads {
      return {n[0] ? sum_to(g[0], sa) : Tensor(), n[1] ? sum_to(neg(g[0]), sb) : Tensor()};
    });
  }
  return out;
}

Tensor mul(const Tensor& a, const Tensor& b) {
  Tensor out = map_binary<false>("mul", a, b, [](auto x, auto y) { return x * y; }, Binary::mul);
  if (any_requires_grad(a, b)) {
    record("mul", {a, b}, out, [a = a.detach(), b = b.detach()](const Grads& g, const Needs& n) -> Grads {
      return {n[0] ? sum_to(mul(g[0], b), a.shape()) : Tensor(),
              n[1] ? sum_to(mul(g[0], a), b.shape()) : Tensor()};
    });
  }
  return out;
}

Tensor div(const Tensor& a, const Tensor& b) {
  Tensor out = map_binary<false>("div", a, b, [](auto x, auto y) { return x / y; }, Binary::div);
  if (any_requires_grad(a, b)) {
    record("div", {a, b}, out,
           [a = a.detach(), b = b.detach(), o = out.detach()](const Grads& g, const Needs& n) -> Grads {
             // d(a/b)/da = 1/b; d(a/b)/db = -a/b^2 = -out/b
             return {n[0] ? sum_to(div(g[0], b), a.shape()) : Tensor(),
                     n[1] ? sum_to(neg(div(mul(g[0], o), b)), b.shape()) : Tensor()};
           });
  }
  return out;
}

namespace {
// Gradient routing for minimum/maximum: `pick_a` is true where a was chosen.
Tensor min_max(const char* op, const Tensor& a, const Tensor& b, bool is_max) {
  Tensor out = is_max ? map_binary<false>(op, a, b, [](auto x, auto y) { return x >= y ? x : y; }, Binary::maximum)
                      : map_binary<false>(op, a, b, [](auto x, auto y) { return x <= y ? x : y; }, Binary::minimum);
  if (any_requires_grad(a, b)) {
    record(op, {a, b}, out, [a = a.detach(), b = b.detach(), is_max](const Grads& g, const Needs& n) -> Grads {
      const Tensor pick_a = (is_max ? ge(a, b) : le(a, b)).to(g[0].dtype());
      return {n[0] ? sum_to(mul(g[0], pick_a), a.shape()) : Tensor(),
              n[1] ? sum_to(mul(g[0], rsub(1.0, pick_a)), b.shape()) : Tensor()};
    });
  }
  return out;
}
}  // namespace

Tensor minimum(const Tensor& a, const Tensor& b) { return min_max("minimum", a, b, false); }
Tensor maximum(const Tensor& a, const Tensor& b) { return min_max("maximum", a, b, true); }

// ---- with a scalar -----------------------------------------------------------------------

Tensor add(const Tensor& a, double s) {
  Tensor out = map_unary_float("add", a, [s](auto x) { return x + decltype(x)(s); }, Unary::add_scalar, s);
  if (any_requires_grad(a)) {
    record("add_scalar", {a}, out, [](const Grads& g, const Needs&) -> Grads { return {g[0]}; });
  }
  return out;
}

Tensor mul(const Tensor& a, double s) {
  Tensor out = map_unary_float("mul", a, [s](auto x) { return x * decltype(x)(s); }, Unary::mul_scalar, s);
  if (any_requires_grad(a)) {
    record("mul_scalar", {a}, out, [s](const Grads& g, const Needs&) -> Grads { return {mul(g[0], s)}; });
  }
  return out;
}

Tensor rsub(double s, const Tensor& a) {
  Tensor out = map_unary_float("rsub", a, [s](auto x) { return decltype(x)(s) - x; }, Unary::rsub_scalar, s);
  if (any_requires_grad(a)) {
    record("rsub", {a}, out, [](const Grads& g, const Needs&) -> Grads { return {neg(g[0])}; });
  }
  return out;
}

Tensor rdiv(double s, const Tensor& a) {
  Tensor out = map_unary_float("rdiv", a, [s](auto x) { return decltype(x)(s) / x; }, Unary::rdiv_scalar, s);
  if (any_requires_grad(a)) {
    // d(s/a)/da = -s/a^2 = -out/a
    record("rdiv", {a}, out, [a = a.detach(), o = out.detach()](const Grads& g, const Needs&) -> Grads {
      return {neg(div(mul(g[0], o), a))};
    });
  }
  return out;
}

// ---- unary -----------------------------------------------------------------------------

Tensor neg(const Tensor& a) {
  Tensor out = map_unary_float("neg", a, [](auto x) { return -x; }, Unary::neg);
  if (any_requires_grad(a)) {
    record("neg", {a}, out, [](const Grads& g, const Needs&) -> Grads { return {neg(g[0])}; });
  }
  return out;
}

Tensor pow(const Tensor& a, double e) {
  Tensor out = map_unary_float("pow", a, [e](auto x) {
    using T = decltype(x);
    if (e == 2.0) return x * x;
    return T(std::pow(x, T(e)));
  }, Unary::pow_scalar, e);
  if (any_requires_grad(a)) {
    record("pow", {a}, out, [a = a.detach(), e](const Grads& g, const Needs&) -> Grads {
      // x⁰ = 1 has gradient 0 everywhere, x = 0 included (e·x^(e−1) would be 0·∞ = NaN there).
      if (e == 0.0) return {Tensor::zeros(a.shape(), g[0].dtype(), g[0].device())};
      return {mul(g[0], mul(pow(a, e - 1.0), e))};
    });
  }
  return out;
}

Tensor exp(const Tensor& a) {
  Tensor out = map_unary_float("exp", a, [](auto x) { return std::exp(x); }, Unary::exp);
  if (any_requires_grad(a)) {
    record("exp", {a}, out, [o = out.detach()](const Grads& g, const Needs&) -> Grads { return {mul(g[0], o)}; });
  }
  return out;
}

Tensor log(const Tensor& a) {
  Tensor out = map_unary_float("log", a, [](auto x) { return std::log(x); }, Unary::log);
  if (any_requires_grad(a)) {
    record("log", {a}, out, [a = a.detach()](const Grads& g, const Needs&) -> Grads { return {div(g[0], a)}; });
  }
  return out;
}

Tensor sqrt(const Tensor& a) {
  Tensor out = map_unary_float("sqrt", a, [](auto x) { return std::sqrt(x); }, Unary::sqrt);
  if (any_requires_grad(a)) {
    record("sqrt", {a}, out, [o = out.detach()](const Grads& g, const Needs&) -> Grads {
      return {div(mul(g[0], 0.5), o)};
    });
  }
  return out;
}

Tensor abs(const Tensor& a) {
  Tensor out = map_unary_float("abs", a, [](auto x) { return std::abs(x); }, Unary::abs);
  if (any_requires_grad(a)) {
    record("abs", {a}, out, [a = a.detach()](const Grads& g, const Needs&) -> Grads {
      const Tensor sign = map_unary_float("sign", a, [](auto x) {
        using T = decltype(x);
        return x > T(0) ? T(1) : (x < T(0) ? T(-1) : T(0));
      }, Unary::sign);
      return {mul(g[0], sign)};
    });
  }
  return out;
}

namespace {

// The cloned float32 loops of kernels/cpu/activation.h (the lambdas' formula, wider vectors,
// bitwise equal) take contiguous float32 CPU tensors; every other layout, dtype or device
// takes the lambdas.
bool cpu_f32_contiguous(const Tensor& t) {
  return t.device().is_cpu() && t.dtype() == DType::f32 && t.is_contiguous();
}

// y = kernel(x) for a contiguous float32 CPU x, else fallback().
template <typename Kernel, typename Fallback>
Tensor f32_kernel_or(const Tensor& x, Kernel kernel, Fallback fallback) {
  if (!cpu_f32_contiguous(x)) return fallback();
  Tensor y = Tensor::empty(x.shape(), x.dtype());
  kernel(x.numel(), x.data<float>(), y.data<float>());
  return y;
}

// The backward's dx = kernel(g, saved) when both are contiguous float32 CPU tensors of one
// shape; an undefined tensor otherwise (the caller's lambdas then run).
template <typename Kernel>
Tensor f32_backward_kernel(const Tensor& g, const Tensor& saved, Kernel kernel) {
  if (!cpu_f32_contiguous(g) || !cpu_f32_contiguous(saved) || g.shape() != saved.shape()) return Tensor();
  Tensor dx = Tensor::empty(saved.shape(), saved.dtype());
  kernel(saved.numel(), g.data<float>(), saved.data<float>(), dx.data<float>());
  return dx;
}

}  // namespace

Tensor tanh(const Tensor& a) {
  // float: the vectorisable rational approximation (≈1e-7 abs error); double: libm.
  Tensor out = f32_kernel_or(a, kernels::tanh_forward_f32, [&] {
    return map_unary_float("tanh", a, [](auto x) {
      if constexpr (std::is_same_v<decltype(x), float>) return kernels::tanh_fast(x);
      else return std::tanh(x);
    }, Unary::tanh);
  });
  if (any_requires_grad(a)) {
    record("tanh", {a}, out, [o = out.detach()](const Grads& g, const Needs&) -> Grads {
      if (Tensor dx = f32_backward_kernel(g[0], o, kernels::tanh_backward_f32); dx.defined()) return {dx};
      const Tensor d = map_unary_float("tanh_backward", o, [](auto y) { return decltype(y)(1) - y * y; }, Unary::tanh_backward);
      return {mul(g[0], d)};
    });
  }
  return out;
}

Tensor sigmoid(const Tensor& a) {
  Tensor out = map_unary_float("sigmoid", a, [](auto x) {
    using T = decltype(x);
    // Split by sign so exp never overflows.
    if (x >= T(0)) return T(1) / (T(1) + std::exp(-x));
    const T e = std::exp(x);
    return e / (T(1) + e);
  }, Unary::sigmoid);
  if (any_requires_grad(a)) {
    record("sigmoid", {a}, out, [o = out.detach()](const Grads& g, const Needs&) -> Grads {
      const Tensor d = map_unary_float("sigmoid_backward", o, [](auto y) { return y * (decltype(y)(1) - y); },
                                       Unary::sigmoid_backward);
      return {mul(g[0], d)};
    });
  }
  return out;
}

Tensor relu(const Tensor& a) {
  Tensor out = map_unary_float("relu", a, [](auto x) { return x > decltype(x)(0) ? x : decltype(x)(0); }, Unary::relu);
  if (any_requires_grad(a)) {
    record("relu", {a}, out, [o = out.detach()](const Grads& g, const Needs&) -> Grads {
      return {map_binary<false>("relu_backward", g[0], o, [](auto gy, auto y) {
        return y > decltype(y)(0) ? gy : decltype(y)(0);
      }, Binary::relu_backward)};
    });
  }
  return out;
}

namespace {
// GELU, tanh approximation: 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))).
constexpr double kGeluC = 0.7978845608028654;  // sqrt(2/pi)
constexpr double kGeluA = 0.044715;
// float: the vectorisable approximation of kernels/cpu/fast_math.h; double: libm.
template <typename T>
inline T tanh_of(T x) {
  if constexpr (std::is_same_v<T, float>) return kernels::tanh_fast(x);
  else return std::tanh(x);
}
}  // namespace

// Contiguous float32 tensors go to kernels/cpu/activation.h (the same formula in loops
// compiled for AVX-512/AVX2, bitwise equal); other layouts and float64 use the lambdas here.
Tensor gelu(const Tensor& a) {
  Tensor out = f32_kernel_or(a, kernels::gelu_forward_f32, [&] {
    return map_unary_float("gelu", a, [](auto x) {
      using T = decltype(x);
      return T(0.5) * x * (T(1) + tanh_of(T(kGeluC) * (x + T(kGeluA) * x * x * x)));
    }, Unary::gelu);
  });
  if (any_requires_grad(a)) {
    record("gelu", {a}, out, [a = a.detach()](const Grads& g, const Needs&) -> Grads {
      if (Tensor dx = f32_backward_kernel(g[0], a, kernels::gelu_backward_f32); dx.defined()) return {dx};
      return {map_binary<false>("gelu_backward", g[0], a, [](auto gy, auto x) {
        using T = decltype(x);
        const T u = T(kGeluC) * (x + T(kGeluA) * x * x * x);
        const T th = tanh_of(u);
        const T du = T(kGeluC) * (T(1) + T(3 * kGeluA) * x * x);
        return gy * (T(0.5) * (T(1) + th) + T(0.5) * x * (T(1) - th * th) * du);
      }, Binary::gelu_backward)};
    });
  }
  return out;
}

Tensor softplus(const Tensor& a) {
  // log(1 + e^x) = max(x, 0) + log1p(e^{-|x|}), stable for large |x|.
  Tensor out = map_unary_float("softplus", a, [](auto x) {
    using T = decltype(x);
    return (x > T(0) ? x : T(0)) + std::log1p(std::exp(-std::abs(x)));
  }, Unary::softplus);
  if (any_requires_grad(a)) {
    record("softplus", {a}, out, [a = a.detach()](const Grads& g, const Needs&) -> Grads {
      NoGradGuard ng;
      return {mul(g[0], sigmoid(a))};
    });
  }
  return out;
}

Tensor clamp(const Tensor& a, double lo, double hi) {
  RLFT_CHECK(lo <= hi, "clamp: lower bound ", lo, " exceeds upper bound ", hi);
  Tensor out = map_unary_float("clamp", a, [lo, hi](auto x) {
    using T = decltype(x);
    return x < T(lo) ? T(lo) : (x > T(hi) ? T(hi) : x);
  }, Unary::clamp, lo, hi);
  if (any_requires_grad(a)) {
    record("clamp", {a}, out, [a = a.detach(), lo, hi](const Grads& g, const Needs&) -> Grads {
      return {map_binary<false>("clamp_backward", g[0], a, [lo, hi](auto gy, auto x) {
        using T = decltype(x);
        return (x >= T(lo) && x <= T(hi)) ? gy : T(0);
      }, Binary::clamp_backward, lo, hi)};
    });
  }
  return out;
}

Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b) {
  RLFT_CHECK(cond.defined() && a.defined() && b.defined(), "where: undefined tensor");
  const Device dev = detail::check_device("where", {&cond, &a, &b});
  RLFT_CHECK(cond.dtype() == DType::b8, "where: condition must be bool, got ", cond.dtype());
  detail::check_same_dtype("where", a, b);
  const Shape shape = broadcast_shapes(broadcast_shapes(cond.shape(), a.shape(), "where"), b.shape(), "where");
  Tensor out = Tensor::empty(shape, a.dtype(), a.device());
  const Shape sc = detail::broadcast_strides(cond, shape), sa = detail::broadcast_strides(a, shape),
              sb = detail::broadcast_strides(b, shape);
  if (dev.is_cuda()) {
    kernels::cuda_ops::where(detail::ctype(a.dtype()), detail::geometry<4>(shape, {&out.strides(), &sc, &sa, &sb}),
                             out.raw_data(), static_cast<const uint8_t*>(cond.raw_data()), a.raw_data(), b.raw_data(),
                             dev.index);
  } else {
    dispatch_all(a.dtype(), [&](auto tag) {
      using T = decltype(tag);
      const uint8_t* c = cond.data<uint8_t>();
      const T* x = a.data<T>();
      const T* y = b.data<T>();
      T* o = out.data<T>();
      kernels::strided_loop<4>(shape.size(), shape.data(), {out.strides().data(), sc.data(), sa.data(), sb.data()},
                               [&](const std::array<int64_t, 4>& off, int64_t n, const std::array<int64_t, 4>& inc) {
                                 for (int64_t i = 0; i < n; ++i)
                                   o[off[0] + i * inc[0]] =
                                       c[off[1] + i * inc[1]] ? x[off[2] + i * inc[2]] : y[off[3] + i * inc[3]];
                               });
    });
  }
  if (any_requires_grad(a, b)) {
    record("where", {cond, a, b}, out,
           [c = cond.detach(), sa = a.shape(), sb = b.shape()](const Grads& g, const Needs& n) -> Grads {
             const Tensor zero = Tensor::zeros({}, g[0].dtype(), g[0].device());
             return {Tensor(), n[1] ? sum_to(where(c, g[0], zero), sa) : Tensor(),
                     n[2] ? sum_to(where(c, zero, g[0]), sb) : Tensor()};
           });
  }
  return out;
}

// ---- comparisons ---------------------------------------------------------------------------

Tensor eq(const Tensor& a, const Tensor& b) { return map_binary<true>("eq", a, b, [](auto x, auto y) { return uint8_t(x == y); }, Binary::eq); }
Tensor ne(const Tensor& a, const Tensor& b) { return map_binary<true>("ne", a, b, [](auto x, auto y) { return uint8_t(x != y); }, Binary::ne); }
Tensor lt(const Tensor& a, const Tensor& b) { return map_binary<true>("lt", a, b, [](auto x, auto y) { return uint8_t(x < y); }, Binary::lt); }
Tensor le(const Tensor& a, const Tensor& b) { return map_binary<true>("le", a, b, [](auto x, auto y) { return uint8_t(x <= y); }, Binary::le); }
Tensor gt(const Tensor& a, const Tensor& b) { return map_binary<true>("gt", a, b, [](auto x, auto y) { return uint8_t(x > y); }, Binary::gt); }
Tensor ge(const Tensor& a, const Tensor& b) { return map_binary<true>("ge", a, b, [](auto x, auto y) { return uint8_t(x >= y); }, Binary::ge); }
Tensor lt(const Tensor& a, double s) { return lt(a, Tensor::full({}, s, a.dtype(), a.device())); }
Tensor gt(const Tensor& a, double s) { return gt(a, Tensor::full({}, s, a.dtype(), a.device())); }
Tensor logical_not(const Tensor& a) {
  RLFT_CHECK(a.dtype() == DType::b8, "logical_not: expected a bool tensor, got ", a.dtype());
  return eq(a, Tensor::zeros({}, DType::b8, a.device()));
}

}  // namespace rlft
