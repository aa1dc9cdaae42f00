// attention — fused causal self-attention on CUDA, forward and backward (declared in
// kernels/cuda_ops.h; the arguments, shapes and masking rule are kernels/cpu/attention.h's).
//
// What it computes, per batch row b and head h, with S = scale·Q·Kᵀ [T, Tk] and M the mask
// (0 where key j is visible to query i: j ≤ P + i and key_mask[b, j] ≠ 0, or j = P + i with
// self_visible; −∞ elsewhere; P = Tk − T earlier positions, a KV cache):
//   forward   P = softmax_rows(S + M), out = P·V, lse_i = log Σ_j e^{S_ij + M_ij} (+∞, out 0
//             for a row with no visible key)
//   backward  P = e^{S + M − lse} recomputed, D_i = Σ_d dO_id·out_id,
//             dV = Pᵀ·dO, dS = P ⊙ (dO·Vᵀ − D), dQ = scale·dS·K, dK = scale·dSᵀ·Q
// Only lse (one number per query row) is kept between the two; no [T, Tk] block is ever
// stored, on chip or off (FlashAttention's recomputation, Dao et al. 2022, arXiv 2205.14135).
//
// Version 1 (this file): one warp per output row, keys (or queries) 32 at a time.
//   forward        warp = one query row i; q_i in shared memory. Per chunk of 32 keys each
//                  lane computes one score (its own dot product over HS), the warp takes the
//                  chunk's max and sum (online softmax: running max m, sum l, and the output
//                  accumulator rescaled by e^{m_old − m_new}); then the 32 probabilities are
//                  broadcast one by one (shuffles) and every lane adds p_j·v_j over its
//                  HS/32 columns. Causality ends the key loop at P + i.
//   backward dQ    warp = one query row: q_i and dO_i in shared memory; per chunk, lane j
//                  recomputes p_ij and dp_ij = dO_i·v_j and forms ds = p·(dp − D_i); the
//                  ds are broadcast and every lane adds ds_j·k_j over its columns.
//   backward dK,dV warp = one key row j: k_j and v_j in shared memory; the queries that can
//                  see j (i ≥ j − P) in chunks of 32, each lane one query: p_ij and ds_ij;
//                  broadcast and add p·dO_i to dv_j and ds·q_i to dk_j. Every key row is
//                  written (zeros for a key no query sees), as the CPU's dk, dv.
//   D_i            one thread per query row, accumulated in double.
// No atomics: every output element is written by one lane, in a fixed order (deterministic).
// Lanes' dot products read a key (or query) row of HS contiguous elements each, so a warp
// touches 32 rows at once: the loads are not coalesced across lanes but every 32-byte sector
// a lane fetches serves its next 8 (float) elements from L1. Version 1 is about correctness
// and no [T, Tk] traffic, not peak speed: a tiled version (a block per 64 queries, K/V tiles
// staged in shared memory, tensor-core MMA) is the next step.
// Memory traffic per (b, h): forward reads q (T·HS), k and v (each key row once per query
// row that sees it, from L2/L1: ~T·Tk/2·HS·2 elements of cache traffic, Tk·HS·2 from DRAM
// when the head's K and V fit in L2), writes out (T·HS) and lse (T); the backward reads q,
// k, v, out, dO, lse twice over the same pattern and writes dq, dk, dv once.
// Accumulation in the element type (float for float32; exp in float via expf), row sums l in
// double. Head size up to kMaxHeadSize = 256 (8 columns per lane).
// Reference: kernels/cpu/attention.cpp (attention_forward / attention_backward);
// tests/engine/test_cuda_ops.cpp (CudaOps.FusedAttention*) compares the engine op on both
// devices, forward and every gradient, with padding masks, empty rows and a KV cache.
#include <cuda_runtime.h>

#include <cmath>

#include "kernels/cuda/common.cuh"
#include "kernels/cuda/dispatch.cuh"
#include "kernels/cuda_ops.h"

namespace rlft::kernels::cuda_ops {

namespace {

using cuda_detail::kWarp;
using cuda_detail::warp_allreduce;

constexpr int kAttnWarps = 4;  // rows per block of 128 threads
constexpr int kPerLane = kMaxHeadSize / kWarp;

__device__ __forceinline__ float exp_t(float x) { return expf(x); }
__device__ __forceinline__ double exp_t(double x) { return ::exp(x); }

template <typename T>
__device__ __forceinline__ T shfl(T x, int lane) {
  return __shfl_sync(cuda_detail::kFullMask, x, lane);
}

template <typename T>
__device__ __forceinline__ T infinity() {
  return T(INFINITY);
}

struct Max {
  template <typename T>
  __device__ __forceinline__ T operator()(T a, T b) const {
    return a > b ? a : b;
  }
};

// Whether key j is visible to the query at position pos (= P + i); mask_b is the batch row's
// [Tk] key mask or null.
__device__ __forceinline__ bool visible(int64_t pos, int64_t j, const uint8_t* mask_b,
                                        bool self_visible) {
  if (j > pos) return false;
  if (mask_b == nullptr || mask_b[j] != 0) return true;
  return self_visible && j == pos;
}

template <typename T>
__device__ __forceinline__ const T* row_of(const T* p, const HeadStrides& s, int64_t b, int64_t t,
                                           int64_t h) {
  return p + b * s.batch + t * s.row + h * s.head;
}
template <typename T>
__device__ __forceinline__ T* row_of(T* p, const HeadStrides& s, int64_t b, int64_t t, int64_t h) {
  return p + b * s.batch + t * s.row + h * s.head;
}

template <typename T>
__device__ __forceinline__ T dot(const T* a_shared, const T* b, int64_t n) {
  T acc = T(0);
  for (int64_t c = 0; c < n; ++c) acc += a_shared[c] * b[c];
  return acc;
}

template <typename T>
__global__ void __launch_bounds__(kAttnWarps* kWarp)
    attention_forward_kernel(AttentionShape d, const T* q, HeadStrides qs, const T* k,
                             HeadStrides ks, const T* v, HeadStrides vs, T* out, HeadStrides os,
                             T* lse, const uint8_t* mask) {
  __shared__ T q_sm[kAttnWarps][kMaxHeadSize];
  const int warp = threadIdx.x / kWarp, lane = threadIdx.x % kWarp;
  const T inf = infinity<T>();
  const int64_t rows = d.B * d.NH * d.T, P = d.Tk - d.T;
  for (int64_t row = int64_t(blockIdx.x) * kAttnWarps + warp; row < rows;
       row += int64_t(gridDim.x) * kAttnWarps) {
    const int64_t i = row % d.T, bh = row / d.T, h = bh % d.NH, b = bh / d.NH;
    const T* qi = row_of(q, qs, b, i, h);
    for (int64_t c = lane; c < d.HS; c += kWarp) q_sm[warp][c] = qi[c];
    __syncwarp();
    const uint8_t* mask_b = mask ? mask + b * d.Tk : nullptr;
    const int64_t pos = P + i, lim = pos + 1;
    T acc[kPerLane];
#pragma unroll
    for (int c = 0; c < kPerLane; ++c) acc[c] = T(0);
    T m = -inf;
    double l = 0;
    for (int64_t j0 = 0; j0 < lim; j0 += kWarp) {
      const int64_t j = j0 + lane;
      T s = -inf;
      if (j < lim && visible(pos, j, mask_b, d.self_visible))
        s = T(d.scale) * dot(q_sm[warp], row_of(k, ks, b, j, h), d.HS);
      // Lane 0's maximum in every lane: with a NaN score, Max's butterfly can leave lanes with
      // different answers (a > b ? a : b is not symmetric in a NaN), and the `continue` below
      // would then split the warp before the full-mask shuffles of the Sum.
      const T chunk_max = shfl(warp_allreduce(s, Max{}), 0);
      if (chunk_max == -inf) continue;  // the whole chunk is masked (the same in every lane)
      const T m_new = m > chunk_max ? m : chunk_max;
      const T corr = exp_t(m - m_new);  // 0 while m is −∞
      const T p = exp_t(s - m_new);     // 0 for a masked key
      l = l * double(corr) + double(warp_allreduce(p, cuda_detail::Sum{}));
#pragma unroll
      for (int c = 0; c < kPerLane; ++c) acc[c] *= corr;
      const int n = lim - j0 < kWarp ? int(lim - j0) : kWarp;
      for (int t = 0; t < n; ++t) {
        const T pt = shfl(p, t);
        if (pt == T(0)) continue;  // the same value in every lane: no divergence
        const T* vj = row_of(v, vs, b, j0 + t, h);
#pragma unroll
        for (int c = 0; c < kPerLane; ++c) {
          const int64_t col = lane + int64_t(c) * kWarp;
          if (col < d.HS) acc[c] += pt * vj[col];
        }
      }
      m = m_new;
    }
    T* oi = row_of(out, os, b, i, h);
    const T inv = l > 0 ? T(1.0 / l) : T(0);
#pragma unroll
    for (int c = 0; c < kPerLane; ++c) {
      const int64_t col = lane + int64_t(c) * kWarp;
      if (col < d.HS) oi[col] = acc[c] * inv;
    }
    if (lane == 0) lse[row] = l > 0 ? T(double(m) + ::log(l)) : inf;
    __syncwarp();  // q_sm is read before the next row overwrites it
  }
}

// D_i = Σ_d dO_id·out_id, one thread per query row (row = (b·NH + h)·T + i), in double.
template <typename T>
__global__ void attention_delta_kernel(AttentionShape d, const T* out, HeadStrides os,
                                       const T* dout, HeadStrides gs, T* delta) {
  const int64_t rows = d.B * d.NH * d.T;
  for (int64_t row = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; row < rows;
       row += int64_t(gridDim.x) * blockDim.x) {
    const int64_t i = row % d.T, bh = row / d.T, h = bh % d.NH, b = bh / d.NH;
    const T* o = row_of(out, os, b, i, h);
    const T* g = row_of(dout, gs, b, i, h);
    double acc = 0;
    for (int64_t c = 0; c < d.HS; ++c) acc += double(g[c]) * double(o[c]);
    delta[row] = T(acc);
  }
}

template <typename T>
__global__ void __launch_bounds__(kAttnWarps* kWarp)
    attention_dq_kernel(AttentionShape d, const T* q, HeadStrides qs, const T* k, HeadStrides ks,
                        const T* v, HeadStrides vs, const T* lse, const T* delta, const T* dout,
                        HeadStrides gs, T* dq, HeadStrides dqs, const uint8_t* mask) {
  __shared__ T q_sm[kAttnWarps][kMaxHeadSize];
  __shared__ T g_sm[kAttnWarps][kMaxHeadSize];
  const int warp = threadIdx.x / kWarp, lane = threadIdx.x % kWarp;
  const int64_t rows = d.B * d.NH * d.T, P = d.Tk - d.T;
  for (int64_t row = int64_t(blockIdx.x) * kAttnWarps + warp; row < rows;
       row += int64_t(gridDim.x) * kAttnWarps) {
    const int64_t i = row % d.T, bh = row / d.T, h = bh % d.NH, b = bh / d.NH;
    const T* qi = row_of(q, qs, b, i, h);
    const T* gi = row_of(dout, gs, b, i, h);
    for (int64_t c = lane; c < d.HS; c += kWarp) {
      q_sm[warp][c] = qi[c];
      g_sm[warp][c] = gi[c];
    }
    __syncwarp();
    const uint8_t* mask_b = mask ? mask + b * d.Tk : nullptr;
    const int64_t pos = P + i, lim = pos + 1;
    const T lse_i = lse[row], delta_i = delta[row];
    T acc[kPerLane];
#pragma unroll
    for (int c = 0; c < kPerLane; ++c) acc[c] = T(0);
    for (int64_t j0 = 0; j0 < lim; j0 += kWarp) {
      const int64_t j = j0 + lane;
      T ds = T(0);
      if (j < lim && visible(pos, j, mask_b, d.self_visible)) {
        const T p = exp_t(T(d.scale) * dot(q_sm[warp], row_of(k, ks, b, j, h), d.HS) - lse_i);
        const T dp = dot(g_sm[warp], row_of(v, vs, b, j, h), d.HS);
        ds = p * (dp - delta_i);
      }
      const int n = lim - j0 < kWarp ? int(lim - j0) : kWarp;
      for (int t = 0; t < n; ++t) {
        const T dst = shfl(ds, t);
        if (dst == T(0)) continue;
        const T* kj = row_of(k, ks, b, j0 + t, h);
#pragma unroll
        for (int c = 0; c < kPerLane; ++c) {
          const int64_t col = lane + int64_t(c) * kWarp;
          if (col < d.HS) acc[c] += dst * kj[col];
        }
      }
    }
    T* dqi = row_of(dq, dqs, b, i, h);
#pragma unroll
    for (int c = 0; c < kPerLane; ++c) {
      const int64_t col = lane + int64_t(c) * kWarp;
      if (col < d.HS) dqi[col] = T(d.scale) * acc[c];
    }
    __syncwarp();
  }
}

template <typename T>
__global__ void __launch_bounds__(kAttnWarps* kWarp)
    attention_dkdv_kernel(AttentionShape d, const T* q, HeadStrides qs, const T* k, HeadStrides ks,
                          const T* v, HeadStrides vs, const T* lse, const T* delta, const T* dout,
                          HeadStrides gs, T* dk, HeadStrides dks, T* dv, HeadStrides dvs,
                          const uint8_t* mask) {
  __shared__ T k_sm[kAttnWarps][kMaxHeadSize];
  __shared__ T v_sm[kAttnWarps][kMaxHeadSize];
  const int warp = threadIdx.x / kWarp, lane = threadIdx.x % kWarp;
  const int64_t rows = d.B * d.NH * d.Tk, P = d.Tk - d.T;
  for (int64_t row = int64_t(blockIdx.x) * kAttnWarps + warp; row < rows;
       row += int64_t(gridDim.x) * kAttnWarps) {
    const int64_t j = row % d.Tk, bh = row / d.Tk, h = bh % d.NH, b = bh / d.NH;
    const T* kj = row_of(k, ks, b, j, h);
    const T* vj = row_of(v, vs, b, j, h);
    for (int64_t c = lane; c < d.HS; c += kWarp) {
      k_sm[warp][c] = kj[c];
      v_sm[warp][c] = vj[c];
    }
    __syncwarp();
    const uint8_t* mask_b = mask ? mask + b * d.Tk : nullptr;
    T acc_k[kPerLane], acc_v[kPerLane];
#pragma unroll
    for (int c = 0; c < kPerLane; ++c) acc_k[c] = acc_v[c] = T(0);
    // Queries i with P + i ≥ j (causality), in order.
    const int64_t first = j - P > 0 ? j - P : 0;
    for (int64_t i0 = first; i0 < d.T; i0 += kWarp) {
      const int64_t i = i0 + lane;
      T p = T(0), ds = T(0);
      if (i < d.T && visible(P + i, j, mask_b, d.self_visible)) {
        const int64_t qrow = bh * d.T + i;
        p = exp_t(T(d.scale) * dot(k_sm[warp], row_of(q, qs, b, i, h), d.HS) - lse[qrow]);
        const T dp = dot(v_sm[warp], row_of(dout, gs, b, i, h), d.HS);
        ds = p * (dp - delta[qrow]);
      }
      const int n = d.T - i0 < kWarp ? int(d.T - i0) : kWarp;
      for (int t = 0; t < n; ++t) {
        const T pt = shfl(p, t), dst = shfl(ds, t);
        if (pt == T(0) && dst == T(0)) continue;
        const T* qi = row_of(q, qs, b, i0 + t, h);
        const T* gi = row_of(dout, gs, b, i0 + t, h);
#pragma unroll
        for (int c = 0; c < kPerLane; ++c) {
          const int64_t col = lane + int64_t(c) * kWarp;
          if (col < d.HS) {
            acc_v[c] += pt * gi[col];
            acc_k[c] += dst * qi[col];
          }
        }
      }
    }
    T* dkj = row_of(dk, dks, b, j, h);
    T* dvj = row_of(dv, dvs, b, j, h);
#pragma unroll
    for (int c = 0; c < kPerLane; ++c) {
      const int64_t col = lane + int64_t(c) * kWarp;
      if (col < d.HS) {
        dkj[col] = T(d.scale) * acc_k[c];
        dvj[col] = acc_v[c];
      }
    }
    __syncwarp();
  }
}

unsigned blocks_for_rows(int64_t rows) {
  const int64_t b = (rows + kAttnWarps - 1) / kAttnWarps;
  const int64_t kMax = int64_t(1) << 20;
  return unsigned(b < 1 ? 1 : (b < kMax ? b : kMax));
}

void check_shape(const AttentionShape& d, const char* what) {
  RLFT_CHECK(d.HS > 0 && d.HS <= kMaxHeadSize, what, ": head size ", d.HS, " (the CUDA kernel takes 1 to ",
             kMaxHeadSize, ")");
  RLFT_CHECK(d.Tk >= d.T, what, ": ", d.Tk, " keys for ", d.T, " queries");
}

}  // namespace

void attention_forward(Type type, const AttentionShape& d, const uint8_t* key_mask, const void* q,
                       HeadStrides qs, const void* k, HeadStrides ks, const void* v,
                       HeadStrides vs, void* out, HeadStrides os, void* lse, int device) {
  check_shape(d, "cuda attention");
  if (d.B * d.NH * d.T == 0) return;
  cuda_detail::set_device(device);
  dispatch_floating(type, "cuda attention", [&](auto tag) {
    using T = decltype(tag);
    attention_forward_kernel<T><<<blocks_for_rows(d.B * d.NH * d.T), kAttnWarps * kWarp>>>(
        d, static_cast<const T*>(q), qs, static_cast<const T*>(k), ks, static_cast<const T*>(v), vs,
        static_cast<T*>(out), os, static_cast<T*>(lse), key_mask);
  });
  RLFT_CUDA_CHECK_LAUNCH();
}

void attention_backward(Type type, const AttentionShape& d, const uint8_t* key_mask, const void* q,
                        HeadStrides qs, const void* k, HeadStrides ks, const void* v,
                        HeadStrides vs, const void* out, HeadStrides os, const void* lse,
                        const void* dout, HeadStrides gs, void* dq, HeadStrides dqs, void* dk,
                        HeadStrides dks, void* dv, HeadStrides dvs, int device) {
  check_shape(d, "cuda attention backward");
  if (d.B * d.NH * d.Tk == 0) return;
  cuda_detail::set_device(device);
  dispatch_floating(type, "cuda attention backward", [&](auto tag) {
    using T = decltype(tag);
    const int64_t qrows = d.B * d.NH * d.T;
    cuda_detail::StreamScratch delta(size_t(qrows) * sizeof(T), nullptr);
    const T* qp = static_cast<const T*>(q);
    const T* kp = static_cast<const T*>(k);
    const T* vp = static_cast<const T*>(v);
    const T* lp = static_cast<const T*>(lse);
    const T* gp = static_cast<const T*>(dout);
    if (qrows > 0) {
      attention_delta_kernel<T><<<cuda_detail::blocks_for(qrows), cuda_detail::kThreads>>>(
          d, static_cast<const T*>(out), os, gp, gs, delta.as<T>());
      RLFT_CUDA_CHECK_LAUNCH();
      attention_dq_kernel<T><<<blocks_for_rows(qrows), kAttnWarps * kWarp>>>(
          d, qp, qs, kp, ks, vp, vs, lp, delta.as<T>(), gp, gs, static_cast<T*>(dq), dqs, key_mask);
      RLFT_CUDA_CHECK_LAUNCH();
    }
    attention_dkdv_kernel<T><<<blocks_for_rows(d.B * d.NH * d.Tk), kAttnWarps * kWarp>>>(
        d, qp, qs, kp, ks, vp, vs, lp, delta.as<T>(), gp, gs, static_cast<T*>(dk), dks,
        static_cast<T*>(dv), dvs, key_mask);
    RLFT_CUDA_CHECK_LAUNCH();
  });
}

}  // namespace rlft::kernels::cuda_ops
