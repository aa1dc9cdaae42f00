// The fused RL ops: thin wrappers that check inputs, call the kernels of kernels/ and record
// the backward. The math and the memory traffic are documented in each kernel's header.
#include "engine/ops_common.h"
#include "kernels/gae.h"
#include "kernels/softmax_logprob.h"

namespace rlft {

std::pair<Tensor, Tensor> softmax_logprob(const Tensor& logits, const Tensor& targets, double temperature,
                                          int64_t ignore_index) {
  RLFT_CHECK(targets.defined(), "softmax_logprob: undefined targets");
  const Device dev = detail::check_device("softmax_logprob", {&logits, &targets});
  RLFT_CHECK(logits.dim() >= 1, "softmax_logprob: logits must be [..., V], got ", logits.shape());
  RLFT_CHECK(targets.dtype() == DType::i64, "softmax_logprob: targets must be int64, got ", targets.dtype());
  Shape row_shape(logits.shape().begin(), logits.shape().end() - 1);
  RLFT_CHECK(targets.shape() == row_shape, "softmax_logprob: targets ", targets.shape(), " do not match logits ",
             logits.shape(), " (expected ", row_shape, ")");
  RLFT_CHECK(temperature > 0, "softmax_logprob: temperature must be > 0, got ", temperature);
  const int64_t V = logits.shape()[logits.dim() - 1];
  RLFT_CHECK(V > 0, "softmax_logprob: empty vocabulary in logits ", logits.shape());
  const int64_t N = row_shape.numel();
  const Tensor x = logits.contiguous(), t = targets.contiguous();
  // The CPU checks the targets here; kernels/cuda/softmax_logprob.cu (check = true) throws the
  // same errors for a target out of range or a row without a finite logit, after one stream
  // synchronisation (the forward's only: the backward reuses its verdict). The two kernels
  // take the same arguments.
  const bool cuda = dev.is_cuda();
  if (!cuda) {
    const int64_t* tp = t.data<int64_t>();
    for (int64_t i = 0; i < N; ++i)
      RLFT_CHECK(tp[i] == ignore_index || (tp[i] >= 0 && tp[i] < V), "softmax_logprob: target ", tp[i],
                 " out of range [0, ", V, ") at row ", i);
  }
  Tensor logp = Tensor::empty(row_shape, logits.dtype(), dev);
  Tensor entropy = Tensor::empty(row_shape, logits.dtype(), dev);
  Tensor lse = Tensor::empty(row_shape, logits.dtype(), dev);
  dispatch_float(logits.dtype(), "softmax_logprob", [&](auto tag) {
    using T = decltype(tag);
    const auto forward = [&](auto kernel) {
      kernel(x.data<T>(), N, V, V, t.data<int64_t>(), ignore_index, T(temperature), logp.data<T>(),
             entropy.data<T>(), lse.data<T>());
    };
    if (cuda) {
      kernels::cuda_ops::set_device_for(dev.index);
      forward([](auto... a) { kernels::softmax_logprob_forward_cuda<T>(a...); });
    } else {
      forward([](auto... a) { kernels::softmax_logprob_forward_cpu<T>(a...); });
    }
  });
  if (any_requires_grad(logits)) {
    record("softmax_logprob", {logits}, {logp, entropy},
           [xd = x.detach(), t, lse, ent = entropy.detach(), N, V, temperature, ignore_index, cuda](
               const Grads& g, const Needs&) -> Grads {
             const Tensor gl = g[0].defined() ? g[0].contiguous() : Tensor();
             const Tensor ge = g[1].defined() ? g[1].contiguous() : Tensor();
             Tensor dx = Tensor::empty(xd.shape(), xd.dtype(), xd.device());
             dispatch_float(xd.dtype(), "softmax_logprob backward", [&](auto tag) {
               using T = decltype(tag);
               const auto backward = [&](auto kernel) {
                 kernel(xd.data<T>(), N, V, V, t.data<int64_t>(), ignore_index, T(temperature), lse.data<T>(),
                        ent.data<T>(), gl.defined() ? gl.data<T>() : nullptr,
                        ge.defined() ? ge.data<T>() : nullptr, dx.data<T>(), V);
               };
               if (cuda) {
                 // check = false: the forward checked these targets and rows (its lse is
                 // saved), so the backward needs no stream synchronisation of its own.
                 kernels::cuda_ops::set_device_for(xd.device().index);
                 backward([](auto... a) {
                   kernels::softmax_logprob_backward_cuda<T>(a..., /*accumulate=*/false,
                                                             /*stream=*/nullptr, /*version=*/0,
                                                             /*check=*/false);
                 });
               } else {
                 backward([](auto... a) { kernels::softmax_logprob_backward_cpu<T>(a...); });
               }
             });
             return {dx};
           });
  }
  return {logp, entropy};
}

namespace {
// The kernel's argument block over contiguous [B, T] inputs (undefined tensors → null).
template <typename R>
kernels::RatioClipArgs<R> ratio_clip_args(const Tensor& x, const Tensor& old, const Tensor& adv, const Tensor& m,
                                          const Tensor& lo, const Tensor& hi, const RatioClipOptions& o) {
  kernels::RatioClipArgs<R> a;
  a.B = x.shape()[0];
  a.T = x.shape()[1];
  a.logp = x.data<R>();
  a.old_logp = old.data<R>();
  a.advantages = adv.data<R>();
  a.advantages_per_sequence = adv.dim() == 1;
  a.mask = m.defined() ? m.data<R>() : nullptr;
  a.lower = lo.defined() ? lo.data<R>() : nullptr;
  a.upper = hi.defined() ? hi.data<R>() : nullptr;
  a.eps_low = o.eps_low;
  a.eps_high = o.eps_high;
  a.dual_clip = o.dual_clip;
  a.level = o.level;
  a.aggregation = o.aggregation;
  a.normalizer = o.normalizer;
  return a;
}
}  // namespace

RatioClipResult ratio_clip(const Tensor& log_probs, const Tensor& old_log_probs, const Tensor& advantages,
                           const Tensor& mask, const RatioClipOptions& o) {
  const char* op = "ratio_clip";
  const Device dev = detail::check_device(op, {&log_probs, &old_log_probs, &advantages, &mask, &o.lower, &o.upper});
  RLFT_CHECK(is_floating(log_probs.dtype()), op, ": log_probs must be floating, got ", log_probs.dtype());
  RLFT_CHECK(log_probs.dim() == 1 || log_probs.dim() == 2, op, ": log_probs must be [B, T] or [N], got ",
             log_probs.shape());
  const Tensor lp = log_probs.dim() == 1 ? log_probs.unsqueeze(1) : log_probs;
  const int64_t B = lp.shape()[0];
  auto prep = [&](const Tensor& t, const char* name, bool allow_per_seq) -> Tensor {
    if (!t.defined()) return t;
    Tensor c = t.to(log_probs.dtype());
    if (c.dim() == 1 && log_probs.dim() == 1) c = c.unsqueeze(1);
    const bool per_seq = allow_per_seq && c.dim() == 1 && c.shape()[0] == B;
    RLFT_CHECK(per_seq || c.shape() == lp.shape(), op, ": ", name, " ", t.shape(), " does not match log_probs ",
               log_probs.shape(), allow_per_seq ? " (or [B] per sequence)" : "");
    return c.contiguous();
  };
  const Tensor old = prep(old_log_probs, "old_log_probs", false);
  RLFT_CHECK(old.defined() && advantages.defined(), op, ": old_log_probs and advantages are required");
  const Tensor adv = prep(advantages, "advantages", log_probs.dim() == 2);
  const Tensor m = prep(mask, "mask", false);
  const Tensor lo = prep(o.lower, "lower", false), hi = prep(o.upper, "upper", false);
  const Tensor x = lp.contiguous();
  RatioClipResult result;
  dispatch_float(log_probs.dtype(), op, [&](auto tag) {
    const auto args = ratio_clip_args<decltype(tag)>(x, old, adv, m, lo, hi, o);
    if (dev.is_cuda()) {
      kernels::cuda_ops::set_device_for(dev.index);
      result.stats = kernels::ratio_clip_forward_cuda(args);
    } else {
      result.stats = kernels::ratio_clip_forward_cpu(args);
    }
  });
  result.loss = Tensor::full({}, result.stats.loss, log_probs.dtype(), dev);
  if (any_requires_grad(log_probs)) {
    // The closure keeps every input alive; the kernel recomputes what it needs.
    record(op, {log_probs}, result.loss,
           [x, old, adv, m, lo, hi, o, shape = log_probs.shape()](const Grads& g,
                                                                  const Needs&) -> Grads {
             Tensor dx = Tensor::empty(x.shape(), x.dtype(), x.device());
             dispatch_float(x.dtype(), "ratio_clip backward", [&](auto tag) {
               using R = decltype(tag);
               if (x.device().is_cuda()) {
                 // The loss's gradient is read where it lies (a scalar of the loss's dtype on
                 // its device): no copy to the host, no wait.
                 const Tensor gd = g[0].contiguous();
                 RLFT_CHECK(gd.device() == x.device(),
                            "ratio_clip backward: the loss's gradient is on ", gd.device(),
                            ", the loss on ", x.device());
                 kernels::cuda_ops::set_device_for(x.device().index);
                 kernels::ratio_clip_backward_cuda(ratio_clip_args<R>(x, old, adv, m, lo, hi, o),
                                                   1.0, dx.data<R>(), false, nullptr, {},
                                                   gd.data<R>());
               } else {
                 kernels::ratio_clip_backward_cpu(ratio_clip_args<R>(x, old, adv, m, lo, hi, o),
                                                  g[0].item(), dx.data<R>());
               }
             });
             return {dx.reshape(shape)};
           });
  }
  return result;
}

namespace {
Tensor as_float_like(const Tensor& t, const Tensor& like, const char* op, const char* name) {
  RLFT_CHECK(t.defined(), op, ": ", name, " is undefined");
  detail::check_device(op, {&like, &t});
  RLFT_CHECK(t.shape() == like.shape(), op, ": ", name, " ", t.shape(), " does not match rewards ", like.shape());
  return t.to(like.dtype()).contiguous();
}
}  // namespace

std::pair<Tensor, Tensor> gae(const Tensor& rewards, const Tensor& values, const Tensor& next_values,
                              const Tensor& terminated, const Tensor& episode_end, double gamma, double lambda) {
  const char* op = "gae";
  const Device dev = detail::check_device(op, {&rewards});
  RLFT_CHECK(rewards.dim() == 2, op, ": rewards must be [T, N], got ", rewards.shape());
  RLFT_CHECK(gamma >= 0 && gamma <= 1 && lambda >= 0 && lambda <= 1, op, ": gamma and lambda must be in [0, 1], got ",
             gamma, " and ", lambda);
  const Tensor r = rewards.contiguous();
  const Tensor v = as_float_like(values, r, op, "values"), nv = as_float_like(next_values, r, op, "next_values");
  const Tensor term = as_float_like(terminated, r, op, "terminated"),
               end = as_float_like(episode_end, r, op, "episode_end");
  Tensor adv = Tensor::empty(r.shape(), r.dtype(), dev), ret = Tensor::empty(r.shape(), r.dtype(), dev);
  dispatch_float(r.dtype(), op, [&](auto tag) {
    using R = decltype(tag);
    if (dev.is_cuda()) {
      kernels::cuda_ops::set_device_for(dev.index);
      kernels::gae_cuda<R>(r.data<R>(), v.data<R>(), nv.data<R>(), term.data<R>(), end.data<R>(), r.shape()[0],
                           r.shape()[1], R(gamma), R(lambda), adv.data<R>(), ret.data<R>());
      return;
    }
    kernels::gae_cpu<R>(r.data<R>(), v.data<R>(), nv.data<R>(), term.data<R>(), end.data<R>(), r.shape()[0],
                        r.shape()[1], R(gamma), R(lambda), adv.data<R>(), ret.data<R>());
  });
  return {adv, ret};
}

std::pair<Tensor, Tensor> gae_masked(const Tensor& rewards, const Tensor& values, const Tensor& action_mask,
                                     double gamma, double lambda) {
  const char* op = "gae_masked";
  const Device dev = detail::check_device(op, {&rewards});
  RLFT_CHECK(rewards.dim() == 2, op, ": rewards must be [B, T], got ", rewards.shape());
  const Tensor r = rewards.contiguous();
  const Tensor v = as_float_like(values, r, op, "values"), m = as_float_like(action_mask, r, op, "action_mask");
  Tensor adv = Tensor::empty(r.shape(), r.dtype(), dev), ret = Tensor::empty(r.shape(), r.dtype(), dev);
  dispatch_float(r.dtype(), op, [&](auto tag) {
    using R = decltype(tag);
    if (dev.is_cuda()) {
      kernels::cuda_ops::set_device_for(dev.index);
      kernels::gae_masked_rows_cuda<R>(r.data<R>(), v.data<R>(), m.data<R>(), r.shape()[0], r.shape()[1], R(gamma),
                                       R(lambda), adv.data<R>(), ret.data<R>());
      return;
    }
    kernels::gae_masked_rows_cpu<R>(r.data<R>(), v.data<R>(), m.data<R>(), r.shape()[0], r.shape()[1], R(gamma),
                                    R(lambda), adv.data<R>(), ret.data<R>());
  });
  return {adv, ret};
}

}  // namespace rlft
