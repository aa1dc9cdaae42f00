// Neural-network ops: softmax family, cross-entropy, embedding, layer norm, dropout, and
// random tensors.
#include <cmath>
#include <cstring>

#include "engine/ops_common.h"
#include "kernels/cpu/layer_norm.h"
#include "kernels/cpu/softmax.h"

namespace rlft {

namespace {

namespace cuda_ops = kernels::cuda_ops;
using detail::ctype;

// Applies a last-dim row function to `a` along `dim` by moving dim last.
Tensor softmax_impl(const char* op, const Tensor& a, int64_t dim, bool log_space) {
  detail::check_device(op, {&a});
  if (a.dim() == 0) return softmax_impl(op, a.reshape({1}), 0, log_space).reshape({});
  const int d = wrap_dim(dim, a.dim(), op);
  const int last = a.dim() - 1;
  if (d != last) return softmax_impl(op, a.transpose(d, last), last, log_space).transpose(d, last);
  const Tensor x = a.contiguous();
  const int64_t V = a.shape()[last], N = V ? a.numel() / V : 0;
  Tensor y = Tensor::empty(a.shape(), a.dtype(), a.device());
  if (a.device().is_cuda()) {
    dispatch_float(a.dtype(), op, [](auto) {});
    cuda_ops::softmax_rows(ctype(a.dtype()), N, V, x.raw_data(), y.raw_data(), log_space, a.device().index);
  } else {
    dispatch_float(a.dtype(), op, [&](auto tag) {
      using T = decltype(tag);
      kernels::softmax_rows(N, V, x.data<T>(), y.data<T>(), log_space);
    });
  }
  if (any_requires_grad(a)) {
    record(op, {a}, y, [yd = y.detach(), N, V, log_space](const Grads& g, const Needs&) -> Grads {
      const Tensor gc = g[0].contiguous();
      Tensor dx = Tensor::empty(yd.shape(), yd.dtype(), yd.device());
      if (yd.device().is_cuda()) {
        cuda_ops::softmax_rows_backward(ctype(yd.dtype()), N, V, yd.raw_data(), gc.raw_data(), dx.raw_data(),
                                        log_space, yd.device().index);
        return {dx};
      }
      dispatch_float(yd.dtype(), "softmax backward", [&](auto tag) {
        using T = decltype(tag);
        kernels::softmax_rows_backward(N, V, yd.data<T>(), gc.data<T>(), dx.data<T>(), log_space);
      });
      return {dx};
    });
  }
  return y;
}

// Every index in [0, limit) (or equal to `ignore`), else an error naming the first bad one.
void check_index_values(const char* op, const int64_t* p, int64_t n, int64_t limit, int64_t ignore) {
  for (int64_t i = 0; i < n; ++i)
    RLFT_CHECK(p[i] == ignore || (p[i] >= 0 && p[i] < limit), op, ": index ", p[i], " out of range [0, ",
               limit, ") at position ", i);
}

// CPU indices only: on a CUDA device the kernels check them (kernels/cuda_ops.h).
void check_indices(const char* op, const Tensor& idx, int64_t limit, int64_t ignore = INT64_MIN) {
  RLFT_CHECK(idx.dtype() == DType::i64, op, ": indices must be int64, got ", idx.dtype());
  const Tensor c = idx.contiguous();
  check_index_values(op, c.data<int64_t>(), c.numel(), limit, ignore);
}

}  // namespace

Tensor softmax(const Tensor& a, int64_t dim) { return softmax_impl("softmax", a, dim, false); }
Tensor log_softmax(const Tensor& a, int64_t dim) { return softmax_impl("log_softmax", a, dim, true); }

Tensor cross_entropy(const Tensor& logits, const Tensor& targets, int64_t ignore_index, const char* reduction) {
  RLFT_CHECK(targets.defined(), "cross_entropy: undefined targets");
  const Device dev = detail::check_device("cross_entropy", {&logits, &targets});
  RLFT_CHECK(logits.dim() == 2, "cross_entropy: logits must be [N, C], got ", logits.shape());
  RLFT_CHECK(targets.dim() == 1 && targets.shape()[0] == logits.shape()[0], "cross_entropy: targets ",
             targets.shape(), " do not match logits ", logits.shape(), " (expected [", logits.shape()[0], "])");
  const std::string red = reduction;
  RLFT_CHECK(red == "mean" || red == "sum" || red == "none", "cross_entropy: unknown reduction '", red,
             "' (expected mean, sum or none)");
  const int64_t N = logits.shape()[0], C = logits.shape()[1];
  RLFT_CHECK(targets.dtype() == DType::i64, "cross_entropy: indices must be int64, got ", targets.dtype());
  const Tensor x = logits.contiguous(), t = targets.contiguous();
  if (dev.is_cuda()) {
    dispatch_float(logits.dtype(), "cross_entropy", [](auto) {});
    // The targets stay on the device: the kernel checks their range (a bad one is reported at
    // the next synchronisation, as embedding's indices are) and marks the rows that count, so
    // the mean's divisor is a device scalar and the step needs no host round trip.
    Tensor valid;  // only the mean needs the count
    if (red == "mean") valid = Tensor::empty({N}, logits.dtype(), dev);
    cuda_ops::check_targets(ctype(x.dtype()), t.data<int64_t>(), N, C, ignore_index,
                            valid.defined() ? valid.raw_data() : nullptr, dev.index);
    Tensor per_row = Tensor::empty({N}, logits.dtype(), dev);
    Tensor lse = Tensor::empty({N}, DType::f64, dev);
    cuda_ops::cross_entropy_rows(ctype(x.dtype()), N, C, x.raw_data(), t.data<int64_t>(), ignore_index,
                                 per_row.raw_data(), lse.data<double>(), dev.index);
    if (any_requires_grad(logits)) {
      record("cross_entropy", {logits}, per_row,
             [xd = x.detach(), t, lse, N, C, ignore_index](const Grads& g, const Needs&) -> Grads {
               const Tensor gc = g[0].contiguous();
               Tensor dx = Tensor::empty({N, C}, xd.dtype(), xd.device());
               cuda_ops::cross_entropy_rows_backward(ctype(xd.dtype()), N, C, xd.raw_data(), t.data<int64_t>(),
                                                     ignore_index, lse.data<double>(), gc.raw_data(), dx.raw_data(),
                                                     xd.device().index);
               return {dx};
             });
    }
    if (red == "none") return per_row;
    Tensor total = sum(per_row);
    if (red == "sum") return total;
    return div(total, sum(valid));  // 0 / 0 = NaN when every row is ignored, as on the CPU
  }
  const int64_t* tp = t.data<int64_t>();
  check_index_values("cross_entropy", tp, N, C, ignore_index);
  Tensor per_row = Tensor::empty({N}, logits.dtype());
  auto lse = std::make_shared<std::vector<double>>(size_t(N));
  int64_t count = 0;
  for (int64_t i = 0; i < N; ++i) count += tp[i] != ignore_index;
  dispatch_float(logits.dtype(), "cross_entropy", [&](auto tag) {
    using T = decltype(tag);
    kernels::cross_entropy_rows(N, C, x.data<T>(), tp, ignore_index, per_row.data<T>(), lse->data());
  });
  if (any_requires_grad(logits)) {
    record("cross_entropy", {logits}, per_row,
           [xd = x.detach(), t, lse, N, C, ignore_index](const Grads& g, const Needs&) -> Grads {
             const Tensor gc = g[0].contiguous();
             Tensor dx = Tensor::empty({N, C}, xd.dtype());
             dispatch_float(xd.dtype(), "cross_entropy backward", [&](auto tag) {
               using T = decltype(tag);
               kernels::cross_entropy_rows_backward(N, C, xd.data<T>(), t.data<int64_t>(), ignore_index, lse->data(),
                                                    gc.data<T>(), dx.data<T>());
             });
             return {dx};
           });
  }
  if (red == "none") return per_row;
  Tensor total = sum(per_row);
  if (red == "sum") return total;
  // Mean over the rows that count (PyTorch gives NaN when every row is ignored; so do we).
  return mul(total, 1.0 / double(count));
}

Tensor embedding(const Tensor& weight, const Tensor& indices) {
  RLFT_CHECK(weight.defined() && indices.defined(), "embedding: undefined tensor");
  const Device dev = detail::check_device("embedding", {&weight, &indices});
  RLFT_CHECK(weight.dim() == 2, "embedding: weight must be [V, C], got ", weight.shape());
  const int64_t V = weight.shape()[0], C = weight.shape()[1];
  if (dev.is_cuda()) {
    // Checked on the device by the kernels, reported at the next synchronisation
    // (kernels/cuda_ops.h): no copy of the indices to the host here.
    RLFT_CHECK(indices.dtype() == DType::i64, "embedding: indices must be int64, got ", indices.dtype());
  } else {
    check_indices("embedding", indices, V);
  }
  const Tensor idx = indices.contiguous(), w = weight.contiguous();
  Shape out_shape = indices.shape();
  out_shape.push_back(C);
  const int64_t n = idx.numel();
  if (dev.is_cuda()) {
    Tensor out = Tensor::empty(out_shape, weight.dtype(), dev);
    cuda_ops::index_select(ctype(w.dtype()), 1, V, C, w.raw_data(), idx.data<int64_t>(), n, out.raw_data(), dev.index,
                           cuda_ops::IndexOp::embedding);
    if (any_requires_grad(weight)) {
      record("embedding", {weight}, out, [idx, V, C, n](const Grads& g, const Needs&) -> Grads {
        const Tensor gc = g[0].contiguous();
        Tensor dw = Tensor::zeros({V, C}, gc.dtype(), gc.device());
        cuda_ops::index_add(ctype(gc.dtype()), 1, V, C, dw.raw_data(), idx.data<int64_t>(), n, gc.raw_data(),
                            gc.device().index, cuda_ops::IndexOp::embedding);
        return {dw};
      });
    }
    return out;
  }
  Tensor out = Tensor::empty(out_shape, weight.dtype());
  const int64_t* ip = idx.data<int64_t>();
  const size_t row_bytes = size_t(C) * dtype_size(weight.dtype());
  const char* wp = static_cast<const char*>(w.raw_data());
  char* op = static_cast<char*>(out.raw_data());
  for (int64_t i = 0; i < n; ++i) std::memcpy(op + i * row_bytes, wp + ip[i] * row_bytes, row_bytes);
  if (any_requires_grad(weight)) {
    record("embedding", {weight}, out, [idx, V, C](const Grads& g, const Needs&) -> Grads {
      const Tensor gc = g[0].contiguous();
      Tensor dw = Tensor::zeros({V, C}, gc.dtype());
      dispatch_float(gc.dtype(), "embedding backward", [&](auto tag) {
        using T = decltype(tag);
        const int64_t* ip = idx.data<int64_t>();
        const T* gp = gc.data<T>();
        T* dp = dw.data<T>();
        for (int64_t i = 0; i < idx.numel(); ++i)
          for (int64_t j = 0; j < C; ++j) dp[ip[i] * C + j] += gp[i * C + j];
      });
      return {dw};
    });
  }
  return out;
}

Tensor layer_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, double eps) {
  const Device dev = detail::check_device("layer_norm", {&x, &weight, &bias});
  RLFT_CHECK(x.dim() >= 1, "layer_norm: input must have at least 1 dimension");
  const int64_t C = x.shape()[x.dim() - 1], N = C ? x.numel() / C : 0;
  for (const Tensor* p : {&weight, &bias}) {
    if (!p->defined()) continue;
    detail::check_same_dtype("layer_norm", x, *p);
    RLFT_CHECK(p->dim() == 1 && p->shape()[0] == C, "layer_norm: affine parameter ", p->shape(),
               " does not match the normalised dimension ", C, " of input ", x.shape());
  }
  const Tensor xc = x.contiguous();
  const Tensor wc = weight.defined() ? weight.contiguous() : Tensor();
  const Tensor bc = bias.defined() ? bias.contiguous() : Tensor();
  if (dev.is_cuda()) {
    dispatch_float(x.dtype(), "layer_norm", [](auto) {});
    Tensor y = Tensor::empty(x.shape(), x.dtype(), dev);
    Tensor stats = Tensor::empty({2, N}, DType::f64, dev);  // mean, rstd per row
    double* mean = stats.data<double>();
    cuda_ops::layer_norm_forward(ctype(x.dtype()), N, C, xc.raw_data(), wc.defined() ? wc.raw_data() : nullptr,
                                 bc.defined() ? bc.raw_data() : nullptr, eps, y.raw_data(), mean, mean + N, dev.index);
    if (any_requires_grad({&x, &weight, &bias})) {
      record("layer_norm", {x, weight, bias}, y,
             [xd = xc.detach(), wd = wc.defined() ? wc.detach() : Tensor(), stats, N, C](const Grads& g,
                                                                                        const Needs& nd) -> Grads {
               const Tensor gc = g[0].contiguous();
               const Device d = xd.device();
               Tensor dx = nd[0] ? Tensor::empty(xd.shape(), xd.dtype(), d) : Tensor();
               Tensor dw = nd[1] ? Tensor::empty({C}, xd.dtype(), d) : Tensor();
               Tensor db = nd[2] ? Tensor::empty({C}, xd.dtype(), d) : Tensor();
               const double* mean = stats.data<double>();
               cuda_ops::layer_norm_backward(ctype(xd.dtype()), N, C, xd.raw_data(),
                                             wd.defined() ? wd.raw_data() : nullptr, mean, mean + N, gc.raw_data(),
                                             nd[0] ? dx.raw_data() : nullptr, nd[1] ? dw.raw_data() : nullptr,
                                             nd[2] ? db.raw_data() : nullptr, d.index);
               return {dx, dw, db};
             });
    }
    return y;
  }
  Tensor y = Tensor::empty(x.shape(), x.dtype());
  auto stats = std::make_shared<std::vector<double>>(size_t(2 * N));
  dispatch_float(x.dtype(), "layer_norm", [&](auto tag) {
    using T = decltype(tag);
    kernels::layer_norm_forward(N, C, xc.data<T>(), wc.defined() ? wc.data<T>() : nullptr,
                                bc.defined() ? bc.data<T>() : nullptr, eps, y.data<T>(), stats->data(),
                                stats->data() + N);
  });
  if (any_requires_grad({&x, &weight, &bias})) {
    record("layer_norm", {x, weight, bias}, y,
           [xd = xc.detach(), wd = wc.defined() ? wc.detach() : Tensor(), stats, N, C](const Grads& g,
                                                                                      const Needs& nd) -> Grads {
             const Tensor gc = g[0].contiguous();
             Tensor dx = nd[0] ? Tensor::empty(xd.shape(), xd.dtype()) : Tensor();
             Tensor dw = nd[1] ? Tensor::empty({C}, xd.dtype()) : Tensor();
             Tensor db = nd[2] ? Tensor::empty({C}, xd.dtype()) : Tensor();
             dispatch_float(xd.dtype(), "layer_norm backward", [&](auto tag) {
               using T = decltype(tag);
               kernels::layer_norm_backward(N, C, xd.data<T>(), wd.defined() ? wd.data<T>() : nullptr, stats->data(),
                                            stats->data() + N, gc.data<T>(), nd[0] ? dx.data<T>() : nullptr,
                                            nd[1] ? dw.data<T>() : nullptr, nd[2] ? db.data<T>() : nullptr);
             });
             return {dx, dw, db};
           });
  }
  return y;
}

Tensor dropout(const Tensor& a, double p, bool training, Generator* gen) {
  RLFT_CHECK(p >= 0 && p < 1, "dropout: probability must be in [0, 1), got ", p);
  if (!training || p == 0) return a;
  // On a CUDA tensor the CPU's rand() stream is drawn on the device: the same mask.
  const Tensor u = rand(a.shape(), gen, a.dtype(), a.device());
  const double scale = 1.0 / (1.0 - p);
  const Tensor mask = detail::map_unary_float("dropout", u, [p, scale](auto x) {
    using T = decltype(x);
    return x < T(p) ? T(0) : T(scale);
  }, cuda_ops::Unary::dropout_mask, p, scale);
  return mul(a, mask);
}

// ---- random ----------------------------------------------------------------------------

Tensor rand(const Shape& shape, Generator* gen, DType dtype, Device device) {
  dispatch_float(dtype, "rand", [](auto) {});
  Generator& g = gen ? *gen : default_generator();
  Tensor out = Tensor::empty(shape, dtype, device);
  const int64_t n = out.numel();
  const uint64_t first = g.reserve(uint64_t((n + 3) / 4));
  const uint64_t seed = g.seed();
  if (device.is_cuda()) {
    cuda_ops::uniform(ctype(dtype), n, seed, first, out.raw_data(), device.index);
    return out;
  }
  dispatch_float(dtype, "rand", [&](auto tag) {
    using T = decltype(tag);
    T* p = out.data<T>();
    for (int64_t b = 0; b * 4 < n; ++b) {
      const auto blk = Philox4x32::generate(seed, first + uint64_t(b));
      for (int k = 0; k < 4 && b * 4 + k < n; ++k) p[b * 4 + k] = T(Philox4x32::to_unit_float(blk.v[k]));
    }
  });
  return out;
}

Tensor randn(const Shape& shape, Generator* gen, DType dtype, Device device) {
  // Element pair (2j, 2j+1) comes from block j: two 64-bit uniforms through Box-Muller.
  dispatch_float(dtype, "randn", [](auto) {});
  Generator& g = gen ? *gen : default_generator();
  Tensor out = Tensor::empty(shape, dtype, device);
  const int64_t n = out.numel();
  const uint64_t first = g.reserve(uint64_t((n + 1) / 2));
  const uint64_t seed = g.seed();
  if (device.is_cuda()) {
    cuda_ops::normal(ctype(dtype), n, seed, first, out.raw_data(), device.index);  // the same math
    return out;
  }
  dispatch_float(dtype, "randn", [&](auto tag) {
    using T = decltype(tag);
    T* p = out.data<T>();
    for (int64_t j = 0; j * 2 < n; ++j) {
      const auto blk = Philox4x32::generate(seed, first + uint64_t(j));
      const double u1 = 1.0 - Philox4x32::to_unit_double(blk.v[0], blk.v[1]);  // (0, 1]
      const double u2 = Philox4x32::to_unit_double(blk.v[2], blk.v[3]);
      const double r = std::sqrt(-2.0 * std::log(u1));
      p[2 * j] = T(r * std::cos(6.283185307179586 * u2));
      if (2 * j + 1 < n) p[2 * j + 1] = T(r * std::sin(6.283185307179586 * u2));
    }
  });
  return out;
}

Tensor multinomial(const Tensor& probs, Generator* gen) {
  RLFT_CHECK(probs.defined(), "multinomial: undefined probs");
  if (probs.device().is_cuda()) {
    // The draws walk each row in order on the host generator: sampling on the host keeps the
    // stream (and so the samples) identical to the CPU's; only the [N] result goes back.
    return multinomial(probs.to(Device::cpu()), gen).to(probs.device());
  }
  RLFT_CHECK(probs.dim() == 2, "multinomial: probs must be [N, C], got ", probs.shape());
  Generator& g = gen ? *gen : default_generator();
  const int64_t N = probs.shape()[0], C = probs.shape()[1];
  RLFT_CHECK(C > 0, "multinomial: no categories in probs ", probs.shape());
  const Tensor pc = probs.to(DType::f64).contiguous();
  Tensor out = Tensor::empty({N}, DType::i64);
  const double* p = pc.data<double>();
  int64_t* o = out.data<int64_t>();
  for (int64_t i = 0; i < N; ++i) {
    double total = 0;
    for (int64_t j = 0; j < C; ++j) {
      const double v = p[i * C + j];
      RLFT_CHECK(
          v >= 0 && std::isfinite(v), "multinomial: row ", i, " has an invalid probability ", v,
          std::isnan(v)
              ? " (NaN: weights that blew up in training give this: a smaller learning rate?)"
              : "");
      total += v;
    }
    RLFT_CHECK(total > 0, "multinomial: row ", i, " sums to zero");
    const double u = g.uniform() * total;
    double c = 0;
    int64_t pick = C - 1;
    for (int64_t j = 0; j < C; ++j) {
      c += p[i * C + j];
      if (u < c && p[i * C + j] > 0) {
        pick = j;
        break;
      }
    }
    while (p[i * C + pick] <= 0 && pick > 0) --pick;  // rounding at the end: last positive class
    o[i] = pick;
  }
  return out;
}

}  // namespace rlft
