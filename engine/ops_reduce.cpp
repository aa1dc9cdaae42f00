// Reductions and their gradients.
#include <algorithm>
#include <cmath>
#include <limits>
#include <type_traits>

#include "engine/ops_common.h"
#include "kernels/cpu/reduce.h"

namespace rlft {

namespace {

struct Split {
  int64_t outer = 1, R = 1, inner = 1;
};
Split split_at(const Shape& s, int d) {
  Split sp;
  for (int i = 0; i < d; ++i) sp.outer *= s[i];
  sp.R = s[d];
  for (int i = d + 1; i < s.size(); ++i) sp.inner *= s[i];
  return sp;
}

// Sorted, unique, wrapped dims; empty means all.
std::vector<int> norm_dims(const std::vector<int64_t>& dims, int ndim, const char* op) {
  std::vector<int> out;
  if (dims.empty()) {
    for (int i = 0; i < ndim; ++i) out.push_back(i);
    return out;
  }
  for (int64_t d : dims) out.push_back(wrap_dim(d, ndim, op));
  std::sort(out.begin(), out.end());
  RLFT_CHECK(std::adjacent_find(out.begin(), out.end()) == out.end(), op, ": repeated dimension in the list");
  if (ndim == 0) out.clear();
  return out;
}

Shape reduced_shape(const Shape& s, const std::vector<int>& dims, bool keepdim) {
  Shape out;
  for (int i = 0; i < s.size(); ++i) {
    const bool red = std::find(dims.begin(), dims.end(), i) != dims.end();
    if (!red) out.push_back(s[i]);
    else if (keepdim) out.push_back(1);
  }
  return out;
}

// Sum of contiguous `a` over one dim, keepdim.
Tensor sum_one_dim(const Tensor& a, int d) {
  const Split sp = split_at(a.shape(), d);
  Shape s = a.shape();
  s[d] = 1;
  Tensor out = Tensor::empty(s, a.dtype(), a.device());
  if (a.device().is_cuda()) {
    dispatch_float(a.dtype(), "sum", [](auto) {});
    kernels::cuda_ops::sum(detail::ctype(a.dtype()), sp.outer, sp.R, sp.inner, a.raw_data(), out.raw_data(),
                           a.device().index);
    return out;
  }
  dispatch_float(a.dtype(), "sum", [&](auto tag) {
    using T = decltype(tag);
    kernels::sum_middle(sp.outer, sp.R, sp.inner, a.data<T>(), out.data<T>());
  });
  return out;
}

}  // namespace

Tensor sum(const Tensor& a, const std::vector<int64_t>& dims_in, bool keepdim) {
  detail::check_device("sum", {&a});
  const std::vector<int> dims = norm_dims(dims_in, a.dim(), "sum");
  Tensor x = a.contiguous().detach();
  Tensor out;
  if (int(dims.size()) == a.dim()) {
    // All dims: one flat row.
    Tensor flat = x.reshape({1, a.numel()});
    out = sum_one_dim(flat, 1).reshape(reduced_shape(a.shape(), dims, keepdim));
  } else {
    for (auto it = dims.rbegin(); it != dims.rend(); ++it) x = sum_one_dim(x, *it);
    out = x.reshape(reduced_shape(a.shape(), dims, keepdim));
  }
  if (any_requires_grad(a)) {
    const Shape keep_shape = reduced_shape(a.shape(), dims, true), in_shape = a.shape();
    record("sum", {a}, out, [keep_shape, in_shape](const Grads& g, const Needs&) -> Grads {
      return {g[0].reshape(keep_shape).expand(in_shape).contiguous()};
    });
  }
  return out;
}

Tensor mean(const Tensor& a, const std::vector<int64_t>& dims_in, bool keepdim) {
  const std::vector<int> dims = norm_dims(dims_in, a.dim(), "mean");
  int64_t count = 1;
  for (int d : dims) count *= a.shape()[d];
  RLFT_CHECK(count > 0, "mean: reducing over an empty dimension of shape ", a.shape());
  return mul(sum(a, dims_in, keepdim), 1.0 / double(count));
}

Tensor var(const Tensor& a, const std::vector<int64_t>& dims_in, int correction, bool keepdim) {
  const std::vector<int> dims = norm_dims(dims_in, a.dim(), "var");
  int64_t count = 1;
  for (int d : dims) count *= a.shape()[d];
  RLFT_CHECK(count - correction > 0, "var: ", count, " elements with correction ", correction,
             " leaves no degrees of freedom");
  const Tensor centred = sub(a, mean(a, dims_in, true));
  return mul(sum(mul(centred, centred), dims_in, keepdim), 1.0 / double(count - correction));
}

namespace {
// Values and indices of the max/min over one dim.
std::pair<Tensor, Tensor> extreme(const char* op, const Tensor& a, int64_t dim, bool keepdim, bool is_max) {
  detail::check_device(op, {&a});
  RLFT_CHECK(a.numel() > 0, op, ": empty tensor of shape ", a.shape());
  const int d = wrap_dim(dim, a.dim(), op);
  if (a.dim() == 0) return {a, Tensor::zeros({}, DType::i64, a.device())};
  const Tensor x = a.contiguous();
  const Split sp = split_at(x.shape(), d);
  Shape s = x.shape();
  s[d] = 1;
  Tensor values = Tensor::empty(s, a.dtype(), a.device());
  Tensor idx = Tensor::empty(s, DType::i64, a.device());
  if (a.device().is_cuda()) {
    kernels::cuda_ops::extreme(detail::ctype(a.dtype()), sp.outer, sp.R, sp.inner, x.raw_data(), values.raw_data(),
                               idx.data<int64_t>(), is_max, a.device().index);
  } else {
    dispatch_all(a.dtype(), [&](auto tag) {
      using T = decltype(tag);
      kernels::extreme_middle(sp.outer, sp.R, sp.inner, x.data<T>(), values.data<T>(), idx.data<int64_t>(), is_max);
    });
  }
  if (!keepdim) {
    values = values.squeeze(d);
    idx = idx.squeeze(d);
  }
  return {values, idx};
}

Tensor extreme_with_grad(const char* op, const Tensor& a, int64_t dim, bool keepdim, bool is_max) {
  auto [values, idx] = extreme(op, a, dim, keepdim, is_max);
  if (any_requires_grad(a) && a.dim() > 0) {
    const int d = wrap_dim(dim, a.dim(), op);
    record(op, {a}, values, [idx = idx, d, keepdim, in_shape = a.shape()](const Grads& g, const Needs&) -> Grads {
      // Scatter the gradient to the position that was picked: one_hot(idx) along d.
      Tensor gi = keepdim ? g[0] : g[0].unsqueeze(d);
      Tensor ii = keepdim ? idx : idx.unsqueeze(d);
      Tensor pos = Tensor::arange(in_shape[d], DType::i64, g[0].device());
      Shape ps;
      ps.resize(in_shape.size(), 1);
      ps[d] = in_shape[d];
      const Tensor mask = eq(pos.reshape(ps), ii);  // broadcast to in_shape
      return {where(mask, gi, Tensor::zeros({}, g[0].dtype(), g[0].device())).expand(in_shape).contiguous()};
    });
  }
  return values;
}
}  // namespace

Tensor max(const Tensor& a, int64_t dim, bool keepdim) { return extreme_with_grad("max", a, dim, keepdim, true); }
Tensor min(const Tensor& a, int64_t dim, bool keepdim) { return extreme_with_grad("min", a, dim, keepdim, false); }
namespace {
// The extreme of all elements. Its gradient is shared evenly by the elements equal to it, as
// PyTorch's max() / min() without a dim (the per-dim forms give it to the first, as torch's).
// A NaN extreme is equal to no element: every element's gradient is then NaN.
Tensor extreme_of_all(const char* op, const Tensor& a, bool is_max) {
  Tensor out;
  {
    NoGradGuard ng;
    const Tensor flat = a.reshape({a.numel()});
    out = is_max ? max(flat, 0, false) : min(flat, 0, false);
  }
  if (any_requires_grad(a)) {
    record(op, {a}, out, [a = a.detach(), o = out.detach()](const Grads& g, const Needs&) -> Grads {
      const Tensor ties = eq(a, o).to(g[0].dtype());
      return {mul(div(ties, sum(ties)), g[0])};
    });
  }
  return out;
}
}  // namespace

Tensor max(const Tensor& a) { return extreme_of_all("max", a, true); }
Tensor min(const Tensor& a) { return extreme_of_all("min", a, false); }
Tensor argmax(const Tensor& a, int64_t dim, bool keepdim) { return extreme("argmax", a, dim, keepdim, true).second; }

namespace {
// Prefix (or, reverse, suffix) sums of `a` along d; the gradient is the other direction's sums.
Tensor cumsum_along(const Tensor& a, int d, bool reverse) {
  const Tensor x = (a.dtype() == DType::b8 ? a.to(DType::i64) : a).contiguous().detach();
  const Split sp = a.dim() == 0 ? Split{} : split_at(x.shape(), d);
  Tensor out = Tensor::empty(x.shape(), x.dtype(), x.device());
  if (x.device().is_cuda()) {
    kernels::cuda_ops::cumsum(detail::ctype(x.dtype()), sp.outer, sp.R, sp.inner, x.raw_data(),
                              out.raw_data(), reverse, x.device().index);
  } else {
    dispatch_all(x.dtype(), [&](auto tag) {
      using T = decltype(tag);
      if constexpr (!std::is_same_v<T, uint8_t>)
        kernels::cumsum_middle(sp.outer, sp.R, sp.inner, x.data<T>(), out.data<T>(), reverse);
    });
  }
  if (any_requires_grad(a))
    record(reverse ? "cumsum_reverse" : "cumsum", {a}, out,
           [d, reverse](const Grads& g, const Needs&) -> Grads {
             return {cumsum_along(g[0], d, !reverse)};
           });
  return out;
}
}  // namespace

Tensor cumsum(const Tensor& a, int64_t dim) {
  detail::check_device("cumsum", {&a});
  const int d = wrap_dim(dim, a.dim(), "cumsum");
  return cumsum_along(a, d, false);
}

Tensor logsumexp(const Tensor& a, int64_t dim, bool keepdim) {
  const int d = wrap_dim(dim, a.dim(), "logsumexp");
  // m + log Σ exp(a - m) with m the (constant) row max; an all -inf row gives -inf.
  Tensor m = max(a.detach(), d, true);
  m = detail::map_unary_float("logsumexp", m, [](auto x) { return std::isinf(x) ? decltype(x)(0) : x; },
                              kernels::cuda_ops::Unary::inf_to_zero);
  Tensor out = add(log(sum(exp(sub(a, m)), {d}, true)), m);
  return keepdim ? out : out.squeeze(d);
}

}  // namespace rlft
