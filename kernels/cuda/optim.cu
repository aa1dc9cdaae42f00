// optim — the optimiser updates of engine/optim.cpp on device parameters (declared in
// kernels/cuda_ops.h). Adam: a multi-tensor launch — up to 24 parameters per launch, their
// pointers in the kernel's arguments, blockIdx.y picking the parameter and the x blocks a
// grid-stride loop over its elements (a model of a few dozen tensors is one or two launches).
// SGD: one launch per parameter.
//
//   Adam(W):  decoupled: w ← w·(1 − lr·wd), else g ← g + wd·w;  m ← β1·m + (1 − β1)·g;
//             v ← β2·v + (1 − β2)·g²;  w ← w − (lr/bc1)·m / (√v/√bc2 + eps)
//   SGD:      d = g + wd·w; with momentum v ← first ? d : μ·v + (1 − dampening)·d,
//             d = nesterov ? d + μ·v : v;  w ← w − lr·d   (in double, as the CPU)
// The arithmetic is the CPU loop's, in the same type and order, so float results agree to a
// few ulp (the GPU may contract a·b + c into one FMA).
// Traffic per element: Adam reads w, g, m, v and writes w, m, v (28 bytes float); SGD 12–20.
// Reference: Adam::step and SGD::step in engine/optim.cpp.
#include <cuda_runtime.h>

#include "kernels/cuda/common.cuh"
#include "kernels/cuda_ops.h"

namespace rlft::kernels::cuda_ops {

namespace {

__device__ __forceinline__ float m_sqrt(float x) { return sqrtf(x); }
__device__ __forceinline__ double m_sqrt(double x) { return ::sqrt(x); }

// Up to kAdamTensorsPerLaunch tensors, by value in the kernel's argument space (24 × 40 bytes).
struct AdamBatch {
  AdamTensor t[kAdamTensorsPerLaunch];
};

// blockIdx.y picks the tensor; the x blocks stride over its elements.
template <typename T>
__global__ void adam_kernel(AdamBatch batch, AdamArgs a) {
  const AdamTensor& p = batch.t[blockIdx.y];
  T* w = static_cast<T*>(p.w);
  const T* g = static_cast<const T*>(p.g);
  T* m = static_cast<T*>(p.m);
  T* v = static_cast<T*>(p.v);
  const T b1 = T(a.beta1), b2 = T(a.beta2), one = T(1);
  const T decay = T(a.decay), l2 = T(a.l2), ss = T(a.step_size), sb = T(a.sqrt_bc2), eps = T(a.eps);
  for (int64_t k = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; k < p.n;
       k += int64_t(gridDim.x) * blockDim.x) {
    T gk = g[k];
    T wk = w[k];
    if (a.decoupled)
      wk *= decay;
    else
      gk += l2 * wk;
    const T mk = b1 * m[k] + (one - b1) * gk;
    const T vk = b2 * v[k] + (one - b2) * gk * gk;
    m[k] = mk;
    v[k] = vk;
    w[k] = wk - ss * mk / (m_sqrt(vk) / sb + eps);
  }
}

template <typename T>
__global__ void sgd_kernel(int64_t n, T* w, const T* g, T* v, double lr, double momentum,
                           double dampening, double weight_decay, bool nesterov, bool first) {
  for (int64_t k = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; k < n;
       k += int64_t(gridDim.x) * blockDim.x) {
    double d = double(g[k]) + weight_decay * double(w[k]);
    if (v) {
      const double vk = first ? d : momentum * double(v[k]) + (1 - dampening) * d;
      v[k] = T(vk);
      d = nesterov ? d + momentum * vk : vk;
    }
    w[k] = T(double(w[k]) - lr * d);
  }
}

}  // namespace

void adam_step(Type type, const AdamTensor* tensors, int count, const AdamArgs& args, int device) {
  if (count == 0) return;
  RLFT_CHECK(type == Type::f32 || type == Type::f64,
             "cuda adam_step: expected a floating element type");
  cuda_detail::set_device(device);
  for (int first = 0; first < count; first += kAdamTensorsPerLaunch) {
    const int k = count - first < kAdamTensorsPerLaunch ? count - first : kAdamTensorsPerLaunch;
    AdamBatch batch{};
    int64_t largest = 0;
    for (int i = 0; i < k; ++i) {
      batch.t[i] = tensors[first + i];
      if (batch.t[i].n > largest) largest = batch.t[i].n;
    }
    if (largest == 0) continue;
    // x blocks sized for the largest tensor (capped; the loop covers the rest), y = tensors.
    const dim3 grid(cuda_detail::blocks_for(largest), unsigned(k));
    if (type == Type::f32) {
      adam_kernel<float><<<grid, cuda_detail::kThreads>>>(batch, args);
    } else {
      adam_kernel<double><<<grid, cuda_detail::kThreads>>>(batch, args);
    }
    RLFT_CUDA_CHECK_LAUNCH();
  }
}

void sgd_step(Type type, int64_t n, void* w, const void* g, void* v, double lr, double momentum,
              double dampening, double weight_decay, bool nesterov, bool first, int device) {
  if (n == 0) return;
  cuda_detail::set_device(device);
  if (type == Type::f32) {
    sgd_kernel<float><<<cuda_detail::blocks_for(n), cuda_detail::kThreads>>>(
        n, static_cast<float*>(w), static_cast<const float*>(g), static_cast<float*>(v), lr,
        momentum, dampening, weight_decay, nesterov, first);
  } else if (type == Type::f64) {
    sgd_kernel<double><<<cuda_detail::blocks_for(n), cuda_detail::kThreads>>>(
        n, static_cast<double*>(w), static_cast<const double*>(g), static_cast<double*>(v), lr,
        momentum, dampening, weight_decay, nesterov, first);
  } else {
    throw Error("cuda sgd_step: expected a floating element type");
  }
  RLFT_CUDA_CHECK_LAUNCH();
}

}  // namespace rlft::kernels::cuda_ops
