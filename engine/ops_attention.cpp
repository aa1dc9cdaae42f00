// causal_self_attention: the fused attention op (kernels/cpu/attention.h) with its backward.
//
// The op reads q, k and v in place from the QKV projection's [B, T, 3, NH, HS] view and writes
// y as [B, T, NH·HS], so the GPT needs no head permutes; its gradient with respect to qkv is
// one [B, T, 3, NH, HS] tensor written by the kernel (the composed path's three select
// backwards each zero-filled and summed a tensor of that size). Saved for the backward: the
// inputs (views, no copies), y and one log-sum-exp per query row. On a CUDA device the same
// op runs kernels/cuda/attention.cu (head size ≤ 256), with the key mask as device bytes.
#include <cmath>

#include "engine/ops_common.h"
#include "kernels/cpu/attention.h"
#include "kernels/cuda_ops.h"

namespace rlft {

namespace {

// A [B, rows, NH, HS] view of `t` for the kernel; `t` must be 4-d with unit stride along HS.
template <typename T, typename P>
kernels::HeadView<P> head_view(const Tensor& t) {
  return {static_cast<P*>(static_cast<T*>(t.storage()->data) + t.offset()), t.strides()[0],
          t.strides()[1], t.strides()[2]};
}

// `t` itself when the head dimension is contiguous, else a contiguous copy.
Tensor unit_head_stride(const Tensor& t) {
  return t.strides()[t.dim() - 1] == 1 || t.shape()[t.dim() - 1] == 1 ? t : t.contiguous();
}

// The strides of a [B, rows, NH, HS] view for kernels/cuda_ops.h.
kernels::cuda_ops::HeadStrides head_strides(const Tensor& t) {
  return {t.strides()[0], t.strides()[1], t.strides()[2]};
}

// The backward's outputs: dqkv [B, T, 3, NH, HS] and, with a KV cache, dkeys/dvalues
// [B, NH, Tk, HS]; dq, dk, dv are the [B, ·, NH, HS] views the kernels write (dk, dv inside
// dqkv without a cache, transposed views of dkeys/dvalues with one).
struct AttentionGrads {
  Tensor dqkv, dkeys, dvalues, dq, dk, dv;
  AttentionGrads(int64_t B, int64_t T, int64_t Tk, int64_t NH, int64_t HS, bool cached,
                 DType dtype, Device dev)
      : dqkv(Tensor::empty({B, T, 3, NH, HS}, dtype, dev)) {
    if (cached) {
      dqkv.narrow(2, 1, 2).fill_(0.0);  // the op read no key or value from qkv
      dkeys = Tensor::empty({B, NH, Tk, HS}, dtype, dev);
      dvalues = Tensor::empty({B, NH, Tk, HS}, dtype, dev);
      dk = dkeys.transpose(1, 2);
      dv = dvalues.transpose(1, 2);
    } else {
      dk = dqkv.select(2, 1);
      dv = dqkv.select(2, 2);
    }
    dq = dqkv.select(2, 0);
  }
};

// The CUDA branch of causal_self_attention: q, k, v are the [B, ·, NH, HS] views the CPU
// branch builds, d its dimensions (key_mask unused: `mask` holds the device bytes).
Tensor cuda_attention(const Tensor& qkv_in, const AttentionOptions& o, const Tensor& q,
                      const Tensor& k, const Tensor& v, const Tensor& mask,
                      const kernels::AttentionDims& d, bool cached) {
  namespace co = kernels::cuda_ops;
  const Device dev = q.device();
  co::AttentionShape s;
  s.B = d.B, s.T = d.T, s.Tk = d.Tk, s.NH = d.NH, s.HS = d.HS;
  s.scale = d.scale;
  s.self_visible = d.self_visible;
  const co::Type type = detail::ctype(q.dtype());
  Tensor y = Tensor::empty({s.B, s.T, s.NH * s.HS}, q.dtype(), dev);
  Tensor lse = Tensor::empty({s.B, s.NH, s.T}, q.dtype(), dev);
  const Tensor y4 = y.view({s.B, s.T, s.NH, s.HS});
  const uint8_t* mp = mask.defined() ? mask.data<uint8_t>() : nullptr;
  co::attention_forward(type, s, mp, q.raw_data(), head_strides(q), k.raw_data(), head_strides(k),
                        v.raw_data(), head_strides(v), y4.raw_data(), head_strides(y4), lse.raw_data(),
                        dev.index);
  if (any_requires_grad({&qkv_in, &o.keys, &o.values})) {
    record("causal_self_attention", {qkv_in, o.keys, o.values}, y,
           [q, k, v, y4 = y4.detach(), lse, s, mask, cached, type](const Grads& g,
                                                                   const Needs&) -> Grads {
             const Device dev = q.device();
             const Tensor dout = g[0].contiguous().view({s.B, s.T, s.NH, s.HS});
             const AttentionGrads gr(s.B, s.T, s.Tk, s.NH, s.HS, cached, q.dtype(), dev);
             co::attention_backward(type, s, mask.defined() ? mask.data<uint8_t>() : nullptr,
                                    q.raw_data(), head_strides(q), k.raw_data(), head_strides(k),
                                    v.raw_data(), head_strides(v), y4.raw_data(), head_strides(y4),
                                    lse.raw_data(), dout.raw_data(), head_strides(dout),
                                    gr.dq.raw_data(), head_strides(gr.dq), gr.dk.raw_data(),
                                    head_strides(gr.dk), gr.dv.raw_data(), head_strides(gr.dv),
                                    dev.index);
             return {gr.dqkv, gr.dkeys, gr.dvalues};
           });
  }
  return y;
}

}  // namespace

Tensor causal_self_attention(const Tensor& qkv_in, const AttentionOptions& o) {
  const char* op = "causal_self_attention";
  const Device dev = detail::check_device(op, {&qkv_in, &o.keys, &o.values});
  // The key mask may sit on the CPU for a device qkv (it is [B, Tk] bytes: copied over).
  RLFT_CHECK(!o.key_mask.defined() || o.key_mask.device() == dev || o.key_mask.device().is_cpu(), op,
             ": key_mask on ", o.key_mask.defined() ? o.key_mask.device() : dev, " for qkv on ", dev);
  RLFT_CHECK(qkv_in.dim() == 5 && qkv_in.shape()[2] == 3, op,
             ": qkv must be [B, T, 3, NH, HS], got ", qkv_in.shape());
  RLFT_CHECK(is_floating(qkv_in.dtype()), op, ": qkv must be float32 or float64, got ",
             qkv_in.dtype());
  const int64_t B = qkv_in.shape()[0], T = qkv_in.shape()[1], NH = qkv_in.shape()[3],
                HS = qkv_in.shape()[4];
  RLFT_CHECK(B > 0 && T > 0 && NH > 0 && HS > 0, op, ": empty qkv ", qkv_in.shape());
  const bool cached = o.keys.defined() || o.values.defined();
  int64_t Tk = T;
  if (cached) {
    RLFT_CHECK(o.keys.defined() && o.values.defined(), op,
               ": keys and values must be given together");
    detail::check_same_dtype(op, qkv_in, o.keys);
    detail::check_same_dtype(op, qkv_in, o.values);
    Tk = o.keys.dim() == 4 ? o.keys.shape()[2] : -1;
    RLFT_CHECK(o.keys.dim() == 4 && o.keys.shape() == o.values.shape() && o.keys.shape()[0] == B &&
                   o.keys.shape()[1] == NH && o.keys.shape()[3] == HS && Tk >= T,
               op, ": keys ", o.keys.shape(), " and values ", o.values.shape(),
               " must both be [B, NH, Tk, HS] = [", B, ", ", NH, ", Tk ≥ ", T, ", ", HS,
               "] for qkv ", qkv_in.shape());
  }
  std::vector<uint8_t> key_mask;
  Tensor key_mask_dev;  // on a device: [B, Tk] bytes there
  if (o.key_mask.defined()) {
    RLFT_CHECK(o.key_mask.shape() == Shape({B, Tk}), op, ": key_mask ", o.key_mask.shape(),
               " must be [B, Tk] = [", B, ", ", Tk, "]");
    if (dev.is_cuda()) {
      const Tensor m = o.key_mask.detach().to(dev);
      key_mask_dev = m.dtype() == DType::b8 ? m.contiguous() : ne(m, Tensor::zeros({}, m.dtype(), dev));
    } else if (o.key_mask.dtype() == DType::b8) {
      const Tensor m = o.key_mask.contiguous();
      key_mask.assign(m.data<uint8_t>(), m.data<uint8_t>() + m.numel());
    } else {
      for (double x : o.key_mask.to_vector()) key_mask.push_back(x != 0);
    }
  }

  const Tensor qkv = unit_head_stride(qkv_in.detach());
  const Tensor q = qkv.select(2, 0);  // [B, T, NH, HS] views
  const Tensor k = cached ? unit_head_stride(o.keys.detach()).transpose(1, 2) : qkv.select(2, 1);
  const Tensor v = cached ? unit_head_stride(o.values.detach()).transpose(1, 2) : qkv.select(2, 2);
  kernels::AttentionDims d;
  d.B = B, d.T = T, d.Tk = Tk, d.NH = NH, d.HS = HS;
  d.scale = 1.0 / std::sqrt(double(HS));
  d.key_mask = key_mask.empty() ? nullptr : key_mask.data();
  d.self_visible = o.self_visible;

  if (dev.is_cuda()) return cuda_attention(qkv_in, o, q, k, v, key_mask_dev, d, cached);

  Tensor y = Tensor::empty({B, T, NH * HS}, qkv.dtype());
  Tensor lse = Tensor::empty({B, NH, T}, qkv.dtype());
  const Tensor y4 = y.view({B, T, NH, HS});
  dispatch_float(qkv.dtype(), op, [&](auto tag) {
    using F = decltype(tag);
    kernels::attention_forward<F>(d, head_view<F, const F>(q), head_view<F, const F>(k),
                                  head_view<F, const F>(v), head_view<F, F>(y4), lse.data<F>());
  });

  if (any_requires_grad({&qkv_in, &o.keys, &o.values})) {
    record(op, {qkv_in, o.keys, o.values}, y,
           [q, k, v, y4 = y4.detach(), lse, d, key_mask = std::move(key_mask), cached](
               const Grads& g, const Needs&) -> Grads {
             kernels::AttentionDims dd = d;
             dd.key_mask = key_mask.empty() ? nullptr : key_mask.data();
             const Tensor dout = g[0].contiguous().view({dd.B, dd.T, dd.NH, dd.HS});
             const AttentionGrads gr(dd.B, dd.T, dd.Tk, dd.NH, dd.HS, cached, q.dtype(),
                                     Device::cpu());
             dispatch_float(q.dtype(), "causal_self_attention backward", [&](auto tag) {
               using F = decltype(tag);
               kernels::attention_backward<F>(
                   dd, head_view<F, const F>(q), head_view<F, const F>(k), head_view<F, const F>(v),
                   head_view<F, const F>(y4), lse.data<F>(), head_view<F, const F>(dout),
                   head_view<F, F>(gr.dq), head_view<F, F>(gr.dk), head_view<F, F>(gr.dv));
             });
             return {gr.dqkv, gr.dkeys, gr.dvalues};
           });
  }
  return y;
}

}  // namespace rlft
