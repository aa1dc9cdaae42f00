// matmul and linear on top of the CPU GEMM (kernels/cpu/gemm.h).
//
// Operands are passed to GEMM without copying whenever their last two dimensions are
// row-major or column-major (a transposed view); other layouts are made contiguous first.
#include <omp.h>

#include "engine/ops_common.h"
#include "kernels/cpu/gemm.h"
#include "kernels/cpu/parallel.h"

namespace rlft {

namespace {

template <typename T>
void gemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, T alpha, const T* A, int64_t lda, const T* B,
          int64_t ldb, T beta, T* C, int64_t ldc) {
  if constexpr (std::is_same_v<T, float>) {
    kernels::gemm_f32(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
  } else {
    kernels::gemm_f64(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
  }
}

template <typename T>
void gemm_batched(bool ta, bool tb, int64_t batch, int64_t M, int64_t N, int64_t K, const T* A, int64_t lda,
                  int64_t sa, const T* B, int64_t ldb, int64_t sb, T* C, int64_t ldc, int64_t sc) {
  if constexpr (std::is_same_v<T, float>) {
    kernels::gemm_batched_f32(ta, tb, batch, M, N, K, 1.0f, A, lda, sa, B, ldb, sb, 0.0f, C, ldc, sc);
  } else {
    kernels::gemm_batched_f64(ta, tb, batch, M, N, K, 1.0, A, lda, sa, B, ldb, sb, 0.0, C, ldc, sc);
  }
}

// The same two calls on a CUDA device: cuBLAS through kernels/cuda_ops.h (pointers are
// device pointers; `dev` is the device).
void gemm_cuda(Device dev, DType dt, bool ta, bool tb, int64_t batch, int64_t M, int64_t N, int64_t K, const void* A,
               int64_t lda, int64_t sa, const void* B, int64_t ldb, int64_t sb, double beta, void* C, int64_t ldc,
               int64_t sc) {
  kernels::cuda_ops::gemm(detail::ctype(dt), ta, tb, batch, M, N, K, 1.0, A, lda, sa, B, ldb, sb, beta, C, ldc, sc,
                          dev.index);
}

// How a matrix operand (the last two dims of t) is handed to GEMM.
struct Operand {
  Tensor t;  // possibly a contiguous copy
  bool trans = false;
  int64_t ld = 0;
  int64_t batch_stride = 0;
};

// `t` has shape [batch..., R, C] already broadcast to the full batch shape.
Operand as_operand(Tensor t) {
  const int n = t.dim();
  auto fits = [&](const Tensor& x, Operand& op) {
    const int64_t R = x.shape()[n - 2], C = x.shape()[n - 1];
    const int64_t s0 = x.strides()[n - 2], s1 = x.strides()[n - 1];
    if (s1 == 1 && (s0 >= C || R == 1)) {
      op.trans = false;
      op.ld = R == 1 ? std::max<int64_t>(C, 1) : s0;
    } else if (s0 == 1 && (s1 >= R || C == 1)) {
      op.trans = true;
      op.ld = C == 1 ? std::max<int64_t>(R, 1) : s1;
    } else {
      return false;
    }
    // Batch dims must collapse to one stride.
    int64_t stride = -1, expect = -1;
    for (int d = n - 3; d >= 0; --d) {
      if (x.shape()[d] == 1) continue;
      if (stride < 0) {
        stride = x.strides()[d];
        expect = stride * x.shape()[d];
      } else {
        if (x.strides()[d] != expect) return false;
        expect *= x.shape()[d];
      }
    }
    op.batch_stride = stride < 0 ? 0 : stride;
    return true;
  };
  Operand op;
  op.t = t;
  if (!fits(t, op)) {
    op.t = t.contiguous();
    fits(op.t, op);
  }
  return op;
}

// Forward GEMM of a [.., M, K] @ b [.., K, N] with a and b already broadcast (no autograd).
Tensor matmul_raw(const Tensor& a, const Tensor& b) {
  const int n = a.dim();
  const int64_t M = a.shape()[n - 2], K = a.shape()[n - 1], N = b.shape()[n - 1];
  Shape out_shape = a.shape();
  out_shape[n - 1] = N;
  Tensor out = Tensor::empty(out_shape, a.dtype(), a.device());
  int64_t batch = 1;
  for (int d = 0; d < n - 2; ++d) batch *= a.shape()[d];
  if (out.numel() == 0) return out;
  const Operand A = as_operand(a), B = as_operand(b);
  if (a.device().is_cuda()) {
    gemm_cuda(a.device(), a.dtype(), A.trans, B.trans, batch, M, N, K, A.t.raw_data(), A.ld, A.batch_stride,
              B.t.raw_data(), B.ld, B.batch_stride, 0.0, out.raw_data(), N, M * N);
    return out;
  }
  dispatch_float(a.dtype(), "matmul", [&](auto tag) {
    using T = decltype(tag);
    if (batch == 1) {
      gemm<T>(A.trans, B.trans, M, N, K, T(1), A.t.template data<T>(), A.ld, B.t.template data<T>(), B.ld, T(0),
              out.data<T>(), N);
    } else {
      gemm_batched<T>(A.trans, B.trans, batch, M, N, K, A.t.template data<T>(), A.ld, A.batch_stride,
                      B.t.template data<T>(), B.ld, B.batch_stride, out.data<T>(), N, M * N);
    }
  });
  return out;
}

}  // namespace

Tensor matmul(const Tensor& a_in, const Tensor& b_in) {
  detail::check_device("matmul", {&a_in, &b_in});
  RLFT_CHECK(b_in.defined(), "matmul: undefined tensor");
  detail::check_same_dtype("matmul", a_in, b_in);
  dispatch_float(a_in.dtype(), "matmul", [](auto) {});
  RLFT_CHECK(a_in.dim() >= 1 && b_in.dim() >= 1, "matmul: both operands need at least 1 dimension, got ",
             a_in.shape(), " @ ", b_in.shape());
  // NumPy promotion of 1-d operands.
  const bool a_vec = a_in.dim() == 1, b_vec = b_in.dim() == 1;
  Tensor a = a_vec ? a_in.unsqueeze(0) : a_in;
  Tensor b = b_vec ? b_in.unsqueeze(1) : b_in;
  const int64_t K = a.shape()[a.dim() - 1];
  RLFT_CHECK(b.shape()[b.dim() - 2] == K, "matmul: ", a_in.shape(), " @ ", b_in.shape(),
             ": inner dimensions differ (", K, " vs ", b.shape()[b.dim() - 2], ")");
  // Broadcast the batch dims.
  Shape ba(a.shape().begin(), a.shape().end() - 2), bb(b.shape().begin(), b.shape().end() - 2);
  const Shape batch = broadcast_shapes(ba, bb, "matmul");
  Shape sa = batch, sb = batch;
  sa.push_back(a.shape()[a.dim() - 2]);
  sa.push_back(K);
  sb.push_back(K);
  sb.push_back(b.shape()[b.dim() - 1]);
  const Tensor ae = a.detach().expand(sa), be = b.detach().expand(sb);
  Tensor out = matmul_raw(ae, be);
  if (any_requires_grad(a, b)) {
    record("matmul", {a, b}, out, [ae, be, sa0 = a.shape(), sb0 = b.shape()](const Grads& g, const Needs& nd) -> Grads {
      const int n = ae.dim();
      Tensor ga, gb;
      if (nd[0]) ga = sum_to(matmul_raw(g[0], be.transpose(n - 2, n - 1)), sa0);
      if (nd[1]) gb = sum_to(matmul_raw(ae.transpose(n - 2, n - 1), g[0]), sb0);
      return {ga, gb};
    });
  }
  if (a_vec) out = out.squeeze(-2);
  if (b_vec) out = out.squeeze(-1);
  return out;
}

Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias) {
  RLFT_CHECK(x.defined() && weight.defined(), "linear: undefined tensor");
  const Device dev = detail::check_device("linear", {&x, &weight, &bias});
  detail::check_same_dtype("linear", x, weight);
  dispatch_float(x.dtype(), "linear", [](auto) {});
  RLFT_CHECK(weight.dim() == 2, "linear: weight must be [out, in], got ", weight.shape());
  RLFT_CHECK(x.dim() >= 1, "linear: input must have at least 1 dimension");
  const int64_t in = weight.shape()[1], out_f = weight.shape()[0];
  RLFT_CHECK(x.shape()[x.dim() - 1] == in, "linear: input ", x.shape(), " has ", x.shape()[x.dim() - 1],
             " features but weight ", weight.shape(), " expects ", in);
  if (bias.defined()) {
    detail::check_same_dtype("linear", x, bias);
    RLFT_CHECK(bias.dim() == 1 && bias.shape()[0] == out_f, "linear: bias ", bias.shape(),
               " does not match weight ", weight.shape(), " (expected [", out_f, "])");
  }
  const int64_t rows = x.numel() / std::max<int64_t>(in, 1);
  const Tensor x2 = x.detach().reshape({rows, in}).contiguous();
  const Tensor w = weight.detach().contiguous();
  Shape out_shape = x.shape();
  out_shape[out_shape.size() - 1] = out_f;
  Tensor out = Tensor::empty(out_shape, x.dtype(), x.device());
  if (dev.is_cuda()) {
    double beta = 0;
    if (bias.defined() && rows > 0) {
      // Every row starts as the bias (a broadcast copy), then GEMM adds x·Wᵀ onto it.
      const Tensor o2 = out.reshape({rows, out_f});
      o2.copy_(bias.detach().expand({rows, out_f}));
      beta = 1;
    }
    gemm_cuda(dev, x.dtype(), false, true, 1, rows, out_f, in, x2.raw_data(), in, 0, w.raw_data(), in, 0, beta,
              out.raw_data(), out_f, 0);
  } else {
    dispatch_float(x.dtype(), "linear", [&](auto tag) {
      using T = decltype(tag);
      T* o = out.data<T>();
      T beta = T(0);
      if (bias.defined()) {
        const Tensor bc = bias.contiguous();
        const T* bp = bc.data<T>();
        kernels::parallel_for(rows, rows * out_f >= (1 << 16), [&](int64_t r) {
          for (int64_t j = 0; j < out_f; ++j) o[r * out_f + j] = bp[j];
        });
        beta = T(1);
      }
      gemm<T>(false, true, rows, out_f, in, T(1), x2.data<T>(), in, w.data<T>(), in, beta, o, out_f);
    });
  }
  if (any_requires_grad({&x, &weight, &bias})) {
    record("linear", {x, weight, bias}, out,
           [x2, w, rows, in, out_f, x_shape = x.shape()](const Grads& g, const Needs& nd) -> Grads {
             const Tensor gy = g[0].reshape({rows, out_f}).contiguous();
             Tensor gx, gw, gb;
             if (gy.device().is_cuda()) {
               const Device dev = gy.device();
               if (nd[0]) {  // dx = gy [rows,out] @ W [out,in]
                 gx = Tensor::empty({rows, in}, gy.dtype(), dev);
                 gemm_cuda(dev, gy.dtype(), false, false, 1, rows, in, out_f, gy.raw_data(), out_f, 0, w.raw_data(),
                           in, 0, 0.0, gx.raw_data(), in, 0);
                 gx = gx.reshape(x_shape);
               }
               if (nd[1]) {  // dW = gy^T [out,rows] @ x [rows,in]
                 gw = Tensor::empty({out_f, in}, gy.dtype(), dev);
                 gemm_cuda(dev, gy.dtype(), true, false, 1, out_f, in, rows, gy.raw_data(), out_f, 0, x2.raw_data(),
                           in, 0, 0.0, gw.raw_data(), in, 0);
               }
               if (nd[2]) gb = sum(gy, {0});
               return {gx, gw, gb};
             }
             dispatch_float(gy.dtype(), "linear backward", [&](auto tag) {
               using T = decltype(tag);
               if (nd[0]) {  // dx = gy [rows,out] @ W [out,in]
                 gx = Tensor::empty({rows, in}, gy.dtype());
                 gemm<T>(false, false, rows, in, out_f, T(1), gy.data<T>(), out_f, w.data<T>(), in, T(0),
                         gx.data<T>(), in);
                 gx = gx.reshape(x_shape);
               }
               if (nd[1]) {  // dW = gy^T [out,rows] @ x [rows,in]
                 gw = Tensor::empty({out_f, in}, gy.dtype());
                 gemm<T>(true, false, out_f, in, rows, T(1), gy.data<T>(), out_f, x2.data<T>(), in, T(0),
                         gw.data<T>(), in);
               }
               if (nd[2]) gb = sum(gy, {0});
             });
             return {gx, gw, gb};
           });
  }
  return out;
}

}  // namespace rlft
