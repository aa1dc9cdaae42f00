// Joining and indexing ops.
#include <cstdint>
#include <cstring>

#include "engine/ops_common.h"

namespace rlft {

Tensor concat(const std::vector<Tensor>& tensors, int64_t dim) {
  RLFT_CHECK(!tensors.empty(), "concat: no tensors given");
  const Tensor& first = tensors[0];
  const int d = wrap_dim(dim, first.dim(), "concat");
  Shape out_shape = first.shape();
  int64_t total = 0;
  for (size_t k = 0; k < tensors.size(); ++k) {
    const Tensor& t = tensors[k];
    RLFT_CHECK(t.defined(), "concat: tensor ", k, " is undefined");
    detail::check_device("concat", {&first, &t});
    detail::check_same_dtype("concat", first, t);
    RLFT_CHECK(t.dim() == first.dim(), "concat: tensor ", k, " has shape ", t.shape(), ", tensor 0 has ",
               first.shape(), " (different ranks)");
    for (int i = 0; i < t.dim(); ++i)
      RLFT_CHECK(i == d || t.shape()[i] == first.shape()[i], "concat: tensor ", k, " has shape ", t.shape(),
                 ", tensor 0 has ", first.shape(), "; they may differ only in dimension ", d);
    total += t.shape()[d];
  }
  out_shape[d] = total;
  Tensor out = Tensor::empty(out_shape, first.dtype(), first.device());
  int64_t at = 0;
  std::vector<int64_t> sizes;
  bool grad = false;
  for (const Tensor& t : tensors) {
    out.narrow(d, at, t.shape()[d]).copy_(t);
    at += t.shape()[d];
    sizes.push_back(t.shape()[d]);
    grad = grad || t.requires_grad();
  }
  if (grad && grad_enabled()) {
    record("concat", tensors, out, [sizes, d](const Grads& g, const Needs& nd) -> Grads {
      Grads gs(sizes.size());
      int64_t at = 0;
      for (size_t k = 0; k < sizes.size(); ++k) {
        if (nd[k]) gs[k] = g[0].narrow(d, at, sizes[k]).contiguous();
        at += sizes[k];
      }
      return gs;
    });
  }
  return out;
}

Tensor stack(const std::vector<Tensor>& tensors, int64_t dim) {
  RLFT_CHECK(!tensors.empty(), "stack: no tensors given");
  const int d = wrap_dim(dim, tensors[0].dim() + 1, "stack");
  std::vector<Tensor> parts;
  parts.reserve(tensors.size());
  for (size_t k = 0; k < tensors.size(); ++k) {
    RLFT_CHECK(tensors[k].shape() == tensors[0].shape(), "stack: tensor ", k, " has shape ", tensors[k].shape(),
               ", tensor 0 has ", tensors[0].shape(), " (all must be equal)");
    parts.push_back(tensors[k].unsqueeze(d));
  }
  return concat(parts, d);
}

namespace {
// out[pos] = a[pos with index[pos] at dim], or (scatter) dst[pos with index at dim] += src[pos].
template <typename T, bool kScatter>
void gather_scatter(const Tensor& a_or_dst, int d, const Tensor& index, const Tensor& out_or_src) {
  const Shape& ishape = index.shape();
  const Tensor idx = index.contiguous();
  const int64_t* ip = idx.data<int64_t>();
  const Shape ist = contiguous_strides(ishape);
  const Shape& ast = a_or_dst.strides();
  T* base = static_cast<T*>(a_or_dst.storage()->data) + a_or_dst.offset();
  const Tensor other = kScatter ? out_or_src.contiguous() : out_or_src;
  T* op = static_cast<T*>(other.storage()->data) + other.offset();
  const int64_t n = idx.numel();
  for (int64_t flat = 0; flat < n; ++flat) {
    int64_t rem = flat, aoff = 0;
    for (int i = 0; i < ishape.size(); ++i) {
      const int64_t c = rem / ist[i];
      rem -= c * ist[i];
      aoff += (i == d ? ip[flat] : c) * ast[i];
    }
    if constexpr (kScatter) base[aoff] += op[flat];
    else op[flat] = base[aoff];
  }
}
}  // namespace

Tensor gather(const Tensor& a, int64_t dim, const Tensor& index) {
  RLFT_CHECK(a.defined() && index.defined(), "gather: undefined tensor");
  const Device dev = detail::check_device("gather", {&a, &index});
  const int d = wrap_dim(dim, a.dim(), "gather");
  RLFT_CHECK(index.dtype() == DType::i64, "gather: index must be int64, got ", index.dtype());
  RLFT_CHECK(index.dim() == a.dim(), "gather: index ", index.shape(), " must have the rank of input ", a.shape());
  for (int i = 0; i < a.dim(); ++i)
    RLFT_CHECK(i == d || index.shape()[i] <= a.shape()[i], "gather: index ", index.shape(),
               " is larger than input ", a.shape(), " in dimension ", i);
  if (!dev.is_cuda()) {  // on a device the kernel checks (kernels/cuda_ops.h: at the next sync)
    const Tensor ic = index.contiguous();
    const int64_t* ip = ic.data<int64_t>();
    for (int64_t i = 0; i < ic.numel(); ++i)
      RLFT_CHECK(ip[i] >= 0 && ip[i] < a.shape()[d], "gather: index ", ip[i], " out of range [0, ", a.shape()[d],
                 ") in dimension ", d);
  }
  if (dev.is_cuda()) {
    // Geometry (out, index, a) over the index's shape; a's stride along d goes with the index.
    const Tensor idx = index.contiguous();
    Tensor out = Tensor::empty(index.shape(), a.dtype(), dev);
    Shape ast = a.strides();
    const int64_t a_dim_stride = ast[d];
    ast[d] = 0;
    kernels::cuda_ops::gather(detail::ctype(a.dtype()),
                              detail::geometry<3>(index.shape(), {&out.strides(), &idx.strides(), &ast}),
                              out.raw_data(), idx.data<int64_t>(), a.raw_data(), a_dim_stride, a.shape()[d],
                              dev.index);
    if (any_requires_grad(a)) {
      record("gather", {a}, out, [idx, d, shape = a.shape()](const Grads& g, const Needs&) -> Grads {
        const Tensor gc = g[0].contiguous();
        Tensor da = Tensor::zeros(shape, gc.dtype(), gc.device());
        Shape dst = da.strides();
        const int64_t dst_dim_stride = dst[d];
        dst[d] = 0;
        kernels::cuda_ops::scatter_add(detail::ctype(gc.dtype()),
                                       detail::geometry<3>(idx.shape(), {&gc.strides(), &idx.strides(), &dst}),
                                       gc.raw_data(), idx.data<int64_t>(), da.raw_data(), dst_dim_stride,
                                       shape[d], gc.device().index);
        return {da};
      });
    }
    return out;
  }
  Tensor out = Tensor::empty(index.shape(), a.dtype());
  dispatch_all(a.dtype(), [&](auto tag) { gather_scatter<decltype(tag), false>(a, d, index, out); });
  if (any_requires_grad(a)) {
    record("gather", {a}, out, [index, d, shape = a.shape()](const Grads& g, const Needs&) -> Grads {
      Tensor da = Tensor::zeros(shape, g[0].dtype());
      dispatch_float(g[0].dtype(), "gather backward",
                     [&](auto tag) { gather_scatter<decltype(tag), true>(da, d, index, g[0]); });
      return {da};
    });
  }
  return out;
}

Tensor index_select(const Tensor& a, int64_t dim, const Tensor& index) {
  RLFT_CHECK(a.defined() && index.defined(), "index_select: undefined tensor");
  const Device dev = detail::check_device("index_select", {&a, &index});
  const int d = wrap_dim(dim, a.dim(), "index_select");
  RLFT_CHECK(index.dtype() == DType::i64 && index.dim() == 1, "index_select: index must be a 1-d int64 tensor, got ",
             index.dtype(), " ", index.shape());
  Shape s = a.shape();
  s[d] = index.numel();
  if (dev.is_cuda()) {  // indices checked by the kernel (kernels/cuda_ops.h: at the next sync)
    const Tensor src = a.contiguous(), ic = index.contiguous();
    int64_t outer = 1, inner = 1;
    for (int i = 0; i < d; ++i) outer *= a.shape()[i];
    for (int i = d + 1; i < a.dim(); ++i) inner *= a.shape()[i];
    const int64_t n_d = a.shape()[d], k = index.numel();
    Tensor out = Tensor::empty(s, a.dtype(), dev);
    kernels::cuda_ops::index_select(detail::ctype(a.dtype()), outer, n_d, inner, src.raw_data(), ic.data<int64_t>(),
                                    k, out.raw_data(), dev.index);
    if (any_requires_grad(a)) {
      record("index_select", {a}, out, [ic, outer, n_d, inner, k, shape = a.shape()](const Grads& g, const Needs&) -> Grads {
        const Tensor gc = g[0].contiguous();
        Tensor da = Tensor::zeros(shape, gc.dtype(), gc.device());
        kernels::cuda_ops::index_add(detail::ctype(gc.dtype()), outer, n_d, inner, da.raw_data(), ic.data<int64_t>(),
                                     k, gc.raw_data(), gc.device().index);
        return {da};
      });
    }
    return out;
  }
  const std::vector<int64_t> idx = index.to_int_vector();
  for (size_t i = 0; i < idx.size(); ++i)
    RLFT_CHECK(idx[i] >= 0 && idx[i] < a.shape()[d], "index_select: index ", idx[i], " out of range [0, ",
               a.shape()[d], ") at position ", i);
  Tensor out = Tensor::empty(s, a.dtype());
  // View the contiguous input as [outer, n_d, inner] and copy whole inner rows.
  const Tensor src = a.contiguous();
  int64_t outer = 1, inner = 1;
  for (int i = 0; i < d; ++i) outer *= a.shape()[i];
  for (int i = d + 1; i < a.dim(); ++i) inner *= a.shape()[i];
  const int64_t n_d = a.shape()[d], k = int64_t(idx.size());
  const size_t row = size_t(inner) * dtype_size(a.dtype());
  const char* sp = static_cast<const char*>(src.raw_data());
  char* op = static_cast<char*>(out.raw_data());
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t i = 0; i < k; ++i) std::memcpy(op + (o * k + i) * row, sp + (o * n_d + idx[size_t(i)]) * row, row);
  if (any_requires_grad(a)) {
    record("index_select", {a}, out, [idx, d, shape = a.shape()](const Grads& g, const Needs&) -> Grads {
      Tensor da = Tensor::zeros(shape, g[0].dtype());
      for (size_t i = 0; i < idx.size(); ++i) {
        Tensor dst = da.narrow(d, idx[i], 1);
        dst.copy_(add(dst, g[0].narrow(d, int64_t(i), 1)));
      }
      return {da};
    });
  }
  return out;
}

Tensor masked_fill(const Tensor& a, const Tensor& mask, double value) {
  RLFT_CHECK(mask.dtype() == DType::b8, "masked_fill: mask must be bool, got ", mask.dtype());
  broadcast_shapes(a.shape(), mask.shape(), "masked_fill");
  RLFT_CHECK(broadcast_shapes(a.shape(), mask.shape(), "masked_fill") == a.shape(), "masked_fill: mask ",
             mask.shape(), " does not broadcast to input ", a.shape());
  return where(mask, Tensor::full({}, value, a.dtype(), a.device()), a);
}

Tensor one_hot(const Tensor& indices, int64_t num_classes, DType dtype) {
  detail::check_device("one_hot", {&indices});
  RLFT_CHECK(indices.dtype() == DType::i64, "one_hot: indices must be int64, got ", indices.dtype());
  RLFT_CHECK(num_classes > 0, "one_hot: num_classes must be positive, got ", num_classes);
  if (indices.device().is_cuda()) {
    // Checked on the device, reported at the next synchronisation (kernels/cuda_ops.h); a bad
    // index gives an all-zero row. [..., 1] == [C] broadcast, then the dtype.
    const Tensor ic = indices.contiguous();
    kernels::cuda_ops::check_targets(kernels::cuda_ops::Type::f32, ic.data<int64_t>(), ic.numel(),
                                     num_classes, INT64_MIN, nullptr, indices.device().index,
                                     kernels::cuda_ops::IndexOp::one_hot);
    const Tensor classes = Tensor::arange(num_classes, DType::i64, indices.device());
    return eq(indices.unsqueeze(-1), classes).to(dtype);
  }
  const std::vector<int64_t> idx = indices.to_int_vector();
  Shape s = indices.shape();
  s.push_back(num_classes);
  Tensor out = Tensor::zeros(s, dtype);
  dispatch_all(dtype, [&](auto tag) {
    using T = decltype(tag);
    T* p = out.data<T>();
    for (size_t i = 0; i < idx.size(); ++i) {
      RLFT_CHECK(idx[i] >= 0 && idx[i] < num_classes, "one_hot: index ", idx[i], " out of range [0, ", num_classes,
                 ") at position ", i);
      p[int64_t(i) * num_classes + idx[i]] = T(1);
    }
  });
  return out;
}

}  // namespace rlft
