// softmax_logprob, CUDA — the manual.
//
// Computes, per row n of logits [N, V] with z = logits/τ and target t (kernels/softmax_logprob.h):
//   lse = log Σ exp(z),  logp = z_t − lse,  H = −Σ p log p = log s − u/s,
//   dlogits = (1/τ)·( g_logp·(onehot(t) − p) − g_H·p·(log p + H) ),  p = exp(z − lse),
// where, relative to the running max m, s = Σ e^{z−m} and u = Σ e^{z−m}·(z − m). A new max
// m' rescales both sums by α = e^{m−m'}: s' = α·s, u' = α·(u + (m − m')·s) (the online
// softmax of Milakov & Gimelshein 2018, carrying u for the entropy); two partial states
// (m1, s1, u1), (m2, s2, u2) combine the same way with M = max(m1, m2), so per-thread states
// merge in a warp-shuffle + shared-memory tree. Ignored rows are not read; their outputs are 0.
//
// Memory traffic per logit (Real = 4 or 8 bytes), version 2:
//   forward  : read the logit once                                   = 1·sizeof(Real)
//   backward : read the logit, write dlogits                         = 2·sizeof(Real)
//              (3 with accumulate); ignored rows and rows with zero upstream gradient only
//              write zeros (1·sizeof(Real)).
// The unfused baseline (softmax_logprob_forward_unfused_cuda: log_softmax reading the row
// three times and writing [N, V], a gather, an entropy pass over [N, V]) moves 6·sizeof(Real)
// per logit forward; its backward (g_ls written, summed, rescaled in place) 6·sizeof(Real).
// Compute: one exp per logit in each direction (float: expf, ~10 instructions; H100 has ~35
// FP32 instructions per logit of headroom at 3.35 TB/s), so the kernels are memory-bound.
//
// Tested against (tests/kernels/test_cuda_kernels.cpp): softmax_logprob_forward_cpu and
// softmax_logprob_backward_cpu (double accumulation, themselves tested against the unfused
// chain and finite differences) on the same rounded inputs, every output, both versions, float
// and double: spiked logits, V = 1, 2, 3, 5, 31, 4097, 50257 (not multiples of 4), 262144,
// misaligned rows (odd ld, base pointer off 16 bytes), logits and dlogits aligned
// differently, −inf logits, temperature, ignore_index rows holding NaN, the error cases.
//
// Versions:
//   version 1 (softmax_logprob_forward_kernel1 / backward_kernel1): naive, one block per row,
//     scalar loads, three passes forward (max, Σ exp, entropy from lse) and one backward. Kept
//     as the readable baseline the fused version is measured against.
//   version 2 (…_kernel2): one block per row, ONE pass forward with the online state above;
//     16-byte vector loads (float4 / double2) on the aligned body of each row, scalar head and
//     tail (so any V and any ld work: rows of an odd ld start at different alignments), U
//     independent vector loads in flight per thread per iteration (CudaLaunch::unroll, 1…8;
//     default 2), whose U·kVec values enter the online state as one group, warp-shuffle then
//     shared-memory combination. The backward vectorises when the logits row and the dlogits
//     row share their alignment and falls back to coalesced scalar accesses otherwise. Block
//     size 32…512 threads by V so each thread has ≥ 32 vector loads (V = 32000: 128 threads;
//     V up to 256k and beyond: the row is looped over, nothing is sized by V). On an H100:
//     81–93% of peak DRAM bandwidth forward, 83–88% forward + backward (BENCHMARKS.md; with
//     the earlier ≥ 8 loads rule, 512 threads at V = 32000 ran at 74%). The default.
#include <cuda_runtime.h>

#include <climits>
#include <cmath>
#include <cstdint>
#include <type_traits>

#include "engine/error.h"
#include "kernels/cuda/common.cuh"
#include "kernels/cuda_launch.h"
#include "kernels/softmax_logprob.h"

namespace rlft::kernels {
namespace {

using cuda_detail::Acc;
using cuda_detail::block_allreduce;
using cuda_detail::block_sum;
using cuda_detail::kMaxWarps;
using cuda_detail::Vec16;

constexpr unsigned long long kNoError = ~0ull;
constexpr int kMaxBlock = 512;

__device__ __forceinline__ float dev_exp(float x) { return expf(x); }
__device__ __forceinline__ double dev_exp(double x) { return exp(x); }
__device__ __forceinline__ float dev_log(float x) { return logf(x); }
__device__ __forceinline__ double dev_log(double x) { return log(x); }
template <typename A>
__device__ __forceinline__ A neg_inf() {
  return A(-INFINITY);
}
template <typename A>
__device__ __forceinline__ A quiet_nan() {
  return A(NAN);
}

// The online state of one thread (or of a merged group): max m, s = Σ e^{z−m},
// u = Σ e^{z−m}·(z−m). Empty: m = −inf, s = 0. No member initialisers: it lives in shared
// memory.
template <typename A>
struct Online {
  A m, s, u;
};

template <typename A>
__device__ __forceinline__ Online<A> shfl_xor(const Online<A>& v, int o) {
  return {cuda_detail::shfl_xor(v.m, o), cuda_detail::shfl_xor(v.s, o),
          cuda_detail::shfl_xor(v.u, o)};
}

// Moves the state to a larger max mn (a no-op on an empty state). A NaN in s stays NaN.
template <typename A>
__device__ __forceinline__ void rescale(Online<A>& st, A mn) {
  if (st.s != A(0)) {
    const A d = st.m - mn, a = dev_exp(d);
    st.u = a * (st.u + d * st.s);
    st.s = a * st.s;
  }
  st.m = mn;
}

// Adds K values of z. The max is taken NaN-blind (comparisons with NaN are false), then every
// z ≠ −inf adds e^{z−m}: a NaN makes s NaN, which the caller reports as a bad row; −inf
// (masked vocabulary) adds nothing. Summing the K terms first adds one rounding per K values.
template <typename A, int K>
__device__ __forceinline__ void online_add(Online<A>& st, const A (&z)[K]) {
  A cm = neg_inf<A>();
#pragma unroll
  for (int k = 0; k < K; ++k) cm = z[k] > cm ? z[k] : cm;
  if (cm > st.m) rescale(st, cm);
  A ps = A(0), pu = A(0);
#pragma unroll
  for (int k = 0; k < K; ++k) {
    if (z[k] != neg_inf<A>()) {
      const A d = z[k] - st.m, e = dev_exp(d);
      ps += e;
      pu += e * d;
    }
  }
  st.s += ps;
  st.u += pu;
}

template <typename A>
__device__ __forceinline__ void online_add1(Online<A>& st, A z) {
  const A zz[1] = {z};
  online_add(st, zz);
}

// Merge of two states; exactly symmetric in its arguments, so every lane of a butterfly
// reduction ends with the same bits.
struct CombineOnline {
  template <typename A>
  __device__ __forceinline__ Online<A> operator()(const Online<A>& a, const Online<A>& b) const {
    if (b.s == A(0)) return a;
    if (a.s == A(0)) return b;
    const A M = a.m > b.m ? a.m : b.m;
    const A da = a.m - M, db = b.m - M;
    const A ea = dev_exp(da), eb = dev_exp(db);
    return {M, ea * a.s + eb * b.s, ea * (a.u + da * a.s) + eb * (b.u + db * b.s)};
  }
};

struct MaxOp {
  template <typename A>
  __device__ __forceinline__ A operator()(A a, A b) const {
    return a > b ? a : b;
  }
};

// Writes the outputs of a row that cannot be computed: 0 for an ignored row, NaN for a bad one.
template <typename Real>
__device__ __forceinline__ void write_row_outputs(int64_t row, Real value, Real* logp,
                                                  Real* entropy, Real* lse) {
  logp[row] = value;
  if (entropy) entropy[row] = value;
  if (lse) lse[row] = value;
}

// errors[0]: first row with a bad target; errors[1]: first row with no finite logit. atomicMin
// on integers keeps the smallest row index, whatever the block order.
__device__ __forceinline__ void report(unsigned long long* errors, int which, int64_t row) {
  if (errors) atomicMin(errors + which, static_cast<unsigned long long>(row));
}

__device__ __forceinline__ bool bad_target(int64_t t, int64_t ignore_index, int64_t V) {
  return t != ignore_index && (t < 0 || t >= V);
}

// ---- forward, version 1: three passes over the row, scalar loads ---------------------------
template <typename Real>
__global__ void __launch_bounds__(kMaxBlock)
    softmax_logprob_forward_kernel1(const Real* __restrict__ logits, int64_t N, int64_t V,
                                    int64_t ld, const int64_t* __restrict__ targets,
                                    int64_t ignore_index, typename Acc<Real>::type inv_tau,
                                    Real* logp, Real* entropy, Real* lse,
                                    unsigned long long* errors) {
  using A = typename Acc<Real>::type;
  __shared__ A smem[kMaxWarps];
  for (int64_t row = blockIdx.x; row < N; row += gridDim.x) {
    const int64_t t = targets[row];
    if (t == ignore_index) {
      if (threadIdx.x == 0) write_row_outputs(row, Real(0), logp, entropy, lse);
      continue;
    }
    if (bad_target(t, ignore_index, V)) {
      if (threadIdx.x == 0) {
        write_row_outputs(row, quiet_nan<Real>(), logp, entropy, lse);
        report(errors, 0, row);
      }
      continue;
    }
    const Real* x = logits + row * ld;
    A m = neg_inf<A>();
    for (int64_t v = threadIdx.x; v < V; v += blockDim.x) {
      const A z = A(x[v]) * inv_tau;
      m = z > m ? z : m;
    }
    m = block_allreduce(m, MaxOp{}, smem);
    A s = A(0);
    for (int64_t v = threadIdx.x; v < V; v += blockDim.x) {
      const A z = A(x[v]) * inv_tau;
      if (z != neg_inf<A>()) s += dev_exp(z - m);
    }
    s = block_sum(s, smem);
    const A row_lse = m + dev_log(s);
    A plogp = A(0);  // Σ p·log p
    for (int64_t v = threadIdx.x; v < V; v += blockDim.x) {
      const A z = A(x[v]) * inv_tau;
      if (z != neg_inf<A>()) {
        const A lp = z - row_lse;
        plogp += dev_exp(lp) * lp;
      }
    }
    plogp = block_sum(plogp, smem);
    if (threadIdx.x == 0) {
      if (!(s > A(0))) {
        write_row_outputs(row, quiet_nan<Real>(), logp, entropy, lse);
        report(errors, 1, row);
      } else {
        logp[row] = Real(A(x[t]) * inv_tau - row_lse);
        if (entropy) entropy[row] = Real(-plogp);
        if (lse) lse[row] = Real(row_lse);
      }
    }
  }
}

// ---- forward, version 2: one pass, vector loads --------------------------------------------
// U: vector loads issued together per thread (all U·kVec values then enter the online state
// as one group: one max, at most one rescale).
template <typename Real, int U>
__global__ void __launch_bounds__(kMaxBlock)
    softmax_logprob_forward_kernel2(const Real* __restrict__ logits, int64_t N, int64_t V,
                                    int64_t ld, const int64_t* __restrict__ targets,
                                    int64_t ignore_index, typename Acc<Real>::type inv_tau,
                                    Real* logp, Real* entropy, Real* lse,
                                    unsigned long long* errors) {
  using A = typename Acc<Real>::type;
  using VT = Vec16<Real>;
  using Vec = typename VT::type;
  constexpr int kVec = VT::n;
  __shared__ Online<A> smem[kMaxWarps];
  const int64_t bd = blockDim.x;
  for (int64_t row = blockIdx.x; row < N; row += gridDim.x) {
    const int64_t t = targets[row];
    if (t == ignore_index) {
      if (threadIdx.x == 0) write_row_outputs(row, Real(0), logp, entropy, lse);
      continue;
    }
    if (bad_target(t, ignore_index, V)) {
      if (threadIdx.x == 0) {
        write_row_outputs(row, quiet_nan<Real>(), logp, entropy, lse);
        report(errors, 0, row);
      }
      continue;
    }
    const Real* x = logits + row * ld;
    Online<A> st{neg_inf<A>(), A(0), A(0)};
    // head: the elements before the first 16-byte boundary of this row
    int64_t head = cuda_detail::elements_to_16b(x);
    head = head < V ? head : V;
    for (int64_t v = threadIdx.x; v < head; v += bd) online_add1(st, A(x[v]) * inv_tau);
    // body: whole 16-byte vectors, U independent loads in flight per thread
    const int64_t nvec = (V - head) / kVec;
    const Vec* xv = reinterpret_cast<const Vec*>(x + head);
    int64_t i = threadIdx.x;
    for (; i + (U - 1) * bd < nvec; i += U * bd) {
      Vec w[U];
#pragma unroll
      for (int u = 0; u < U; ++u) w[u] = __ldg(xv + i + u * bd);
      A z[U * kVec];
#pragma unroll
      for (int u = 0; u < U; ++u)
#pragma unroll
        for (int k = 0; k < kVec; ++k) z[u * kVec + k] = A(VT::get(w[u], k)) * inv_tau;
      online_add(st, z);
    }
    for (; i < nvec; i += bd) {
      const Vec w = __ldg(xv + i);
      A z[kVec];
#pragma unroll
      for (int k = 0; k < kVec; ++k) z[k] = A(VT::get(w, k)) * inv_tau;
      online_add(st, z);
    }
    // tail: what is left after the last whole vector
    for (int64_t v = head + nvec * kVec + threadIdx.x; v < V; v += bd)
      online_add1(st, A(x[v]) * inv_tau);

    st = block_allreduce(st, CombineOnline{}, smem);
    if (threadIdx.x == 0) {
      if (!(st.s > A(0))) {  // all −inf, or a NaN
        write_row_outputs(row, quiet_nan<Real>(), logp, entropy, lse);
        report(errors, 1, row);
      } else {
        const A log_s = dev_log(st.s), row_lse = st.m + log_s;
        logp[row] = Real(A(x[t]) * inv_tau - row_lse);
        if (entropy) entropy[row] = Real(log_s - st.u / st.s);
        if (lse) lse[row] = Real(row_lse);
      }
    }
  }
}

// ---- backward ------------------------------------------------------------------------------
// dz for one logit (already multiplied by 1/τ): g_logp·(1[v=t] − p) − g_H·p·(log p + H).
template <typename A>
struct GradRow {
  A inv_tau, lse, H, gl, gh;
  int64_t t;
  __device__ __forceinline__ A operator()(A xv, int64_t v) const {
    const A z = xv * inv_tau;
    A dz = v == t ? gl : A(0);
    if (z != neg_inf<A>()) {  // a −inf logit has p = 0 and no gradient
      const A lp = z - lse, p = dev_exp(lp);
      dz -= p * (gl + gh * (lp + H));
    }
    return dz * inv_tau;
  }
};

// Decides what a row's backward does; returns true when the gradient must be computed.
// Otherwise the row is filled with `fill` (0, or NaN for a bad target) unless accumulating
// zeros.
template <typename Real, typename A>
__device__ __forceinline__ bool backward_row_setup(int64_t row, int64_t V, int64_t ignore_index,
                                                   const int64_t* targets, const Real* g_logp,
                                                   const Real* g_entropy, bool accumulate,
                                                   unsigned long long* errors, A* gl, A* gh,
                                                   int64_t* t, Real* fill, bool* do_fill) {
  *t = targets[row];
  *gl = g_logp ? A(g_logp[row]) : A(0);
  *gh = g_entropy ? A(g_entropy[row]) : A(0);
  if (bad_target(*t, ignore_index, V)) {
    if (threadIdx.x == 0) report(errors, 0, row);
    *fill = quiet_nan<Real>();
    *do_fill = true;
    return false;
  }
  if (*t == ignore_index || (*gl == A(0) && *gh == A(0))) {
    *fill = Real(0);
    *do_fill = !accumulate;
    return false;
  }
  return true;
}

template <typename Real>
__global__ void __launch_bounds__(kMaxBlock)
    softmax_logprob_backward_kernel1(const Real* __restrict__ logits, int64_t N, int64_t V,
                                     int64_t ld, const int64_t* __restrict__ targets,
                                     int64_t ignore_index, typename Acc<Real>::type inv_tau,
                                     const Real* __restrict__ lse, const Real* __restrict__ entropy,
                                     const Real* g_logp, const Real* g_entropy, Real* dlogits,
                                     int64_t ld_d, bool accumulate, unsigned long long* errors) {
  using A = typename Acc<Real>::type;
  for (int64_t row = blockIdx.x; row < N; row += gridDim.x) {
    Real* dx = dlogits + row * ld_d;
    A gl, gh;
    int64_t t;
    Real fill;
    bool do_fill;
    if (!backward_row_setup(row, V, ignore_index, targets, g_logp, g_entropy, accumulate, errors,
                            &gl, &gh, &t, &fill, &do_fill)) {
      if (do_fill)
        for (int64_t v = threadIdx.x; v < V; v += blockDim.x) dx[v] = fill;
      continue;
    }
    const GradRow<A> grad{inv_tau, A(lse[row]), entropy ? A(entropy[row]) : A(0), gl, gh, t};
    const Real* x = logits + row * ld;
    for (int64_t v = threadIdx.x; v < V; v += blockDim.x) {
      const A d = grad(A(x[v]), v);
      dx[v] = accumulate ? Real(A(dx[v]) + d) : Real(d);
    }
  }
}

template <typename Real, int U>
__global__ void __launch_bounds__(kMaxBlock)
    softmax_logprob_backward_kernel2(const Real* __restrict__ logits, int64_t N, int64_t V,
                                     int64_t ld, const int64_t* __restrict__ targets,
                                     int64_t ignore_index, typename Acc<Real>::type inv_tau,
                                     const Real* __restrict__ lse, const Real* __restrict__ entropy,
                                     const Real* g_logp, const Real* g_entropy, Real* dlogits,
                                     int64_t ld_d, bool accumulate, unsigned long long* errors) {
  using A = typename Acc<Real>::type;
  using VT = Vec16<Real>;
  using Vec = typename VT::type;
  constexpr int kVec = VT::n;
  const int64_t bd = blockDim.x;
  for (int64_t row = blockIdx.x; row < N; row += gridDim.x) {
    Real* dx = dlogits + row * ld_d;
    A gl, gh;
    int64_t t;
    Real fill;
    bool do_fill;
    if (!backward_row_setup(row, V, ignore_index, targets, g_logp, g_entropy, accumulate, errors,
                            &gl, &gh, &t, &fill, &do_fill)) {
      if (do_fill)
        for (int64_t v = threadIdx.x; v < V; v += bd) dx[v] = fill;
      continue;
    }
    const GradRow<A> grad{inv_tau, A(lse[row]), entropy ? A(entropy[row]) : A(0), gl, gh, t};
    const Real* x = logits + row * ld;
    const int64_t head_x = cuda_detail::elements_to_16b(x);
    const int64_t head_d = cuda_detail::elements_to_16b(static_cast<const Real*>(dx));
    // Vector path only when both rows reach a 16-byte boundary after the same element count;
    // otherwise the whole row is the scalar "head" (still coalesced, just narrower accesses).
    int64_t head = head_x == head_d ? head_x : V;
    head = head < V ? head : V;
    for (int64_t v = threadIdx.x; v < head; v += bd) {
      const A d = grad(A(x[v]), v);
      dx[v] = accumulate ? Real(A(dx[v]) + d) : Real(d);
    }
    const int64_t nvec = (V - head) / kVec;
    const Vec* xv = reinterpret_cast<const Vec*>(x + head);
    Vec* dv = reinterpret_cast<Vec*>(dx + head);
    auto do_vec = [&](int64_t i, const Vec& w) {
      Vec out;
      if (accumulate) out = dv[i];
#pragma unroll
      for (int k = 0; k < kVec; ++k) {
        const A d = grad(A(VT::get(w, k)), head + i * kVec + k);
        VT::set(out, k, accumulate ? Real(A(VT::get(out, k)) + d) : Real(d));
      }
      dv[i] = out;
    };
    int64_t i = threadIdx.x;
    for (; i + (U - 1) * bd < nvec; i += U * bd) {
      Vec w[U];
#pragma unroll
      for (int u = 0; u < U; ++u) w[u] = __ldg(xv + i + u * bd);
#pragma unroll
      for (int u = 0; u < U; ++u) do_vec(i + u * bd, w[u]);
    }
    for (; i < nvec; i += bd) do_vec(i, __ldg(xv + i));
    for (int64_t v = head + nvec * kVec + threadIdx.x; v < V; v += bd) {
      const A d = grad(A(x[v]), v);
      dx[v] = accumulate ? Real(A(dx[v]) + d) : Real(d);
    }
  }
}

// ---- unfused baseline ----------------------------------------------------------------------
// log_softmax, the naive way: a max pass, a sum pass, a pass writing z − lse to [N, V].
template <typename Real>
__global__ void __launch_bounds__(kMaxBlock)
    log_softmax_naive_kernel(const Real* __restrict__ logits, int64_t N, int64_t V, int64_t ld,
                             typename Acc<Real>::type inv_tau, Real* __restrict__ out, Real* lse) {
  using A = typename Acc<Real>::type;
  __shared__ A smem[kMaxWarps];
  for (int64_t row = blockIdx.x; row < N; row += gridDim.x) {
    const Real* x = logits + row * ld;
    A m = neg_inf<A>();
    for (int64_t v = threadIdx.x; v < V; v += blockDim.x) {
      const A z = A(x[v]) * inv_tau;
      m = z > m ? z : m;
    }
    m = block_allreduce(m, MaxOp{}, smem);
    A s = A(0);
    for (int64_t v = threadIdx.x; v < V; v += blockDim.x) s += dev_exp(A(x[v]) * inv_tau - m);
    s = block_sum(s, smem);
    const A row_lse = m + dev_log(s);
    for (int64_t v = threadIdx.x; v < V; v += blockDim.x)
      out[row * V + v] = Real(A(x[v]) * inv_tau - row_lse);
    if (lse && threadIdx.x == 0) lse[row] = Real(row_lse);
  }
}

template <typename Real>
__global__ void gather_kernel(const Real* __restrict__ ls, int64_t N, int64_t V,
                              const int64_t* __restrict__ targets, int64_t ignore_index, Real* logp,
                              Real* lse) {
  const int64_t row = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (row >= N) return;
  const int64_t t = targets[row];
  if (t == ignore_index) {
    logp[row] = Real(0);
    if (lse) lse[row] = Real(0);
  } else {
    logp[row] = t >= 0 && t < V ? ls[row * V + t] : quiet_nan<Real>();
  }
}

template <typename Real>
__global__ void __launch_bounds__(kMaxBlock)
    entropy_from_log_softmax_kernel(const Real* __restrict__ ls, int64_t N, int64_t V,
                                    const int64_t* __restrict__ targets, int64_t ignore_index,
                                    Real* entropy) {
  using A = typename Acc<Real>::type;
  __shared__ A smem[kMaxWarps];
  for (int64_t row = blockIdx.x; row < N; row += gridDim.x) {
    A acc = A(0);
    for (int64_t v = threadIdx.x; v < V; v += blockDim.x) {
      const A l = A(ls[row * V + v]);
      if (l != neg_inf<A>()) acc += dev_exp(l) * l;
    }
    acc = block_sum(acc, smem);
    if (threadIdx.x == 0) entropy[row] = targets[row] == ignore_index ? Real(0) : Real(-acc);
  }
}

// g_ls = onehot·g_logp − g_H·p·(ls + 1): gather's backward plus the entropy's backward.
template <typename Real>
__global__ void __launch_bounds__(kMaxBlock)
    grad_log_softmax_kernel(const Real* __restrict__ ls, int64_t N, int64_t V,
                            const int64_t* __restrict__ targets, int64_t ignore_index,
                            const Real* g_logp, const Real* g_entropy, Real* __restrict__ g) {
  using A = typename Acc<Real>::type;
  for (int64_t row = blockIdx.x; row < N; row += gridDim.x) {
    const int64_t t = targets[row];
    const bool ignored = t == ignore_index;
    const A gl = g_logp && !ignored ? A(g_logp[row]) : A(0);
    const A gh = g_entropy && !ignored ? A(g_entropy[row]) : A(0);
    for (int64_t v = threadIdx.x; v < V; v += blockDim.x) {
      const A l = A(ls[row * V + v]);
      A d = v == t ? gl : A(0);
      // An ignored row's log-softmax may be NaN (its logits are never read by the fused
      // kernel): skip it, or 0·NaN would poison the zero gradient.
      if (!ignored && l != neg_inf<A>()) d -= gh * dev_exp(l) * (l + A(1));
      g[row * V + v] = Real(d);
    }
  }
}

template <typename Real>
__global__ void __launch_bounds__(kMaxBlock)
    row_sum_kernel(const Real* __restrict__ g, int64_t N, int64_t V, Real* __restrict__ sums) {
  using A = typename Acc<Real>::type;
  __shared__ A smem[kMaxWarps];
  for (int64_t row = blockIdx.x; row < N; row += gridDim.x) {
    A acc = A(0);
    for (int64_t v = threadIdx.x; v < V; v += blockDim.x) acc += A(g[row * V + v]);
    acc = block_sum(acc, smem);
    if (threadIdx.x == 0) sums[row] = Real(acc);
  }
}

// log_softmax's backward in place: g ← (g − p·Σg)/τ.
template <typename Real>
__global__ void __launch_bounds__(kMaxBlock)
    log_softmax_backward_kernel(const Real* __restrict__ ls, int64_t N, int64_t V,
                                const int64_t* __restrict__ targets, int64_t ignore_index,
                                const Real* __restrict__ sums, typename Acc<Real>::type inv_tau,
                                Real* __restrict__ g) {
  using A = typename Acc<Real>::type;
  for (int64_t row = blockIdx.x; row < N; row += gridDim.x) {
    if (targets[row] == ignore_index) continue;  // g is already 0 there (the fused contract)
    const A sum = A(sums[row]);
    for (int64_t v = threadIdx.x; v < V; v += blockDim.x) {
      const int64_t k = row * V + v;
      g[k] = Real((A(g[k]) - dev_exp(A(ls[k])) * sum) * inv_tau);
    }
  }
}

// ---- host side -----------------------------------------------------------------------------

// Threads per row: enough that every thread has ≥ 32 vector loads, 32…512. Fewer threads per
// row keep more rows (blocks) per SM, whose start-up and final reductions then overlap the
// others' streaming: at V = 32000 on an H100, 128 threads ran at 84% of peak DRAM bandwidth,
// 512 (the earlier ≥ 8 loads rule) at 74% (BENCHMARKS.md, launch sweep).
int block_for(int64_t V, int vec) {
  const int64_t loads = (V + vec - 1) / vec;
  int bd = kMaxBlock;
  while (bd > 32 && loads < 32 * int64_t(bd)) bd /= 2;
  return bd;
}

// Version 2's launch: the dispatcher's rule unless `l` pins a field.
constexpr int kDefaultUnroll = 2;
template <typename Real>
int block_v2(int64_t V, const CudaLaunch& l) {
  return l.block ? l.block : block_for(V, Vec16<Real>::n);
}

// Calls f(std::integral_constant<int, U>) for U = launch.unroll (0: the default).
template <typename F>
void with_unroll(int unroll, F f) {
  switch (unroll == 0 ? kDefaultUnroll : unroll) {
    case 1: f(std::integral_constant<int, 1>{}); break;
    case 2: f(std::integral_constant<int, 2>{}); break;
    case 4: f(std::integral_constant<int, 4>{}); break;
    default: f(std::integral_constant<int, 8>{}); break;
  }
}

// The launch fields this kernel reads (block, unroll); version is its own argument here.
void check_softmax_launch(const char* op, const CudaLaunch& launch) {
  check_launch(op, launch);
  RLFT_CHECK(launch.version == 0 && launch.chunked == 0, op,
             ": launch.version and launch.chunked are not used here (pass `version`), got ",
             launch.version, " and ", launch.chunked);
  // Version 2 is the vectorised kernel and version 1 the scalar one: a scalar version 2 would
  // be neither, so the choice is `version`, not launch.vec.
  RLFT_CHECK(launch.vec == 0, op,
             ": launch.vec is not used here (version 1 is the scalar kernel), got ", launch.vec);
  RLFT_CHECK(
      launch.serial == 0 && launch.dependent == 0 && launch.last_block == 0 && launch.prefetch == 0,
      op,
      ": launch.serial, launch.dependent, launch.last_block and launch.prefetch are "
      "not used here, got ",
      launch.serial, ", ", launch.dependent, ", ", launch.last_block, " and ", launch.prefetch);
}

void check_common(const char* op, const void* logits, int64_t N, int64_t V, int64_t ld,
                  const int64_t* targets, double temperature, int version) {
  RLFT_CHECK(N >= 0 && V >= 1, op, ": need N >= 0 and V >= 1, got N=", N, " V=", V);
  RLFT_CHECK(ld >= V, op, ": row stride ", ld, " < V=", V);
  RLFT_CHECK(temperature > 0 && std::isfinite(temperature), op, ": temperature must be > 0, got ",
             temperature);
  RLFT_CHECK(version >= 0 && version <= 2, op, ": version must be 0, 1 or 2, got ", version);
  if (N == 0) return;
  RLFT_CHECK(logits != nullptr && targets != nullptr, op, ": logits and targets are required");
}

// Errors recorded by the kernels, read back after the launch (check = true).
class ErrorWords {
 public:
  ErrorWords(bool enabled, cudaStream_t stream)
      : scratch_(enabled ? 2 * sizeof(unsigned long long) : 0, stream), stream_(stream) {
    if (enabled)
      RLFT_CUDA_CHECK(cudaMemsetAsync(ptr(), 0xff, 2 * sizeof(unsigned long long), stream));
    enabled_ = enabled;
  }
  unsigned long long* ptr() const { return scratch_.as<unsigned long long>(); }
  // Waits for the stream and throws the CPU version's messages.
  void raise_if_any(const char* op, const int64_t* targets, int64_t ignore_index, int64_t V) {
    if (!enabled_) return;
    unsigned long long host[2];
    RLFT_CUDA_CHECK(cudaMemcpyAsync(host, ptr(), sizeof(host), cudaMemcpyDeviceToHost, stream_));
    RLFT_CUDA_CHECK(cudaStreamSynchronize(stream_));
    if (host[0] != kNoError) {
      const int64_t row = int64_t(host[0]);
      int64_t t = 0;
      RLFT_CUDA_CHECK(cudaMemcpy(&t, targets + row, sizeof(t), cudaMemcpyDeviceToHost));
      throw Error(str(op, ": targets[", row, "]=", t, " outside [0, V=", V,
                      ") and not ignore_index=", ignore_index));
    }
    if (host[1] != kNoError)
      throw Error(str(op, ": row ", int64_t(host[1]),
                      " has no finite logit (all -inf or NaN; weights that blew up in training "
                      "give this: a smaller learning rate?)"));
  }

 private:
  cuda_detail::StreamScratch scratch_;
  cudaStream_t stream_;
  bool enabled_ = false;
};

}  // namespace

template <typename Real>
void softmax_logprob_forward_cuda(const Real* logits, int64_t N, int64_t V, int64_t ld_logits,
                                  const int64_t* targets, int64_t ignore_index, Real temperature,
                                  Real* logp, Real* entropy, Real* lse, CUstream_st* stream,
                                  int version, bool check, CudaLaunch launch) {
  constexpr const char* op = "softmax_logprob_forward_cuda";
  check_common(op, logits, N, V, ld_logits, targets, double(temperature), version);
  check_softmax_launch(op, launch);
  if (N == 0) return;
  RLFT_CHECK(logp != nullptr, op, ": logp output is required");
  using A = typename Acc<Real>::type;
  const A inv_tau = A(1.0 / double(temperature));
  ErrorWords errors(check, stream);
  const unsigned grid = cuda_detail::grid_for_rows(N);
  if (version == 1) {
    softmax_logprob_forward_kernel1<Real><<<grid, launch.block ? launch.block : block_for(V, 1),
                                            0, stream>>>(logits, N, V, ld_logits, targets,
                                                         ignore_index, inv_tau, logp, entropy, lse,
                                                         errors.ptr());
  } else {
    with_unroll(launch.unroll, [&](auto u) {
      softmax_logprob_forward_kernel2<Real, decltype(u)::value>
          <<<grid, block_v2<Real>(V, launch), 0, stream>>>(logits, N, V, ld_logits, targets,
                                                           ignore_index, inv_tau, logp, entropy,
                                                           lse, errors.ptr());
    });
  }
  RLFT_CUDA_CHECK_LAUNCH();
  errors.raise_if_any(op, targets, ignore_index, V);
}

template <typename Real>
void softmax_logprob_backward_cuda(const Real* logits, int64_t N, int64_t V, int64_t ld_logits,
                                   const int64_t* targets, int64_t ignore_index, Real temperature,
                                   const Real* lse, const Real* entropy, const Real* g_logp,
                                   const Real* g_entropy, Real* dlogits, int64_t ld_dlogits,
                                   bool accumulate, CUstream_st* stream, int version, bool check,
                                   CudaLaunch launch) {
  constexpr const char* op = "softmax_logprob_backward_cuda";
  check_common(op, logits, N, V, ld_logits, targets, double(temperature), version);
  check_softmax_launch(op, launch);
  RLFT_CHECK(ld_dlogits >= V, op, ": dlogits row stride ", ld_dlogits, " < V=", V);
  if (N == 0) return;
  RLFT_CHECK(lse != nullptr && dlogits != nullptr, op, ": lse and dlogits are required");
  RLFT_CHECK(g_entropy == nullptr || entropy != nullptr, op,
             ": g_entropy given but the saved entropy is null");
  using A = typename Acc<Real>::type;
  const A inv_tau = A(1.0 / double(temperature));
  ErrorWords errors(check, stream);
  const unsigned grid = cuda_detail::grid_for_rows(N);
  if (version == 1) {
    softmax_logprob_backward_kernel1<Real><<<grid, launch.block ? launch.block : block_for(V, 1),
                                             0, stream>>>(
        logits, N, V, ld_logits, targets, ignore_index, inv_tau, lse, entropy, g_logp, g_entropy,
        dlogits, ld_dlogits, accumulate, errors.ptr());
  } else {
    with_unroll(launch.unroll, [&](auto u) {
      softmax_logprob_backward_kernel2<Real, decltype(u)::value>
          <<<grid, block_v2<Real>(V, launch), 0, stream>>>(
              logits, N, V, ld_logits, targets, ignore_index, inv_tau, lse, entropy, g_logp,
              g_entropy, dlogits, ld_dlogits, accumulate, errors.ptr());
    });
  }
  RLFT_CUDA_CHECK_LAUNCH();
  errors.raise_if_any(op, targets, ignore_index, V);
}

template <typename Real>
void softmax_logprob_forward_unfused_cuda(const Real* logits, int64_t N, int64_t V,
                                          int64_t ld_logits, const int64_t* targets,
                                          int64_t ignore_index, Real temperature, Real* logp,
                                          Real* entropy, Real* lse, Real* log_softmax,
                                          CUstream_st* stream) {
  constexpr const char* op = "softmax_logprob_forward_unfused_cuda";
  check_common(op, logits, N, V, ld_logits, targets, double(temperature), 0);
  if (N == 0) return;
  RLFT_CHECK(logp && entropy && log_softmax, op, ": logp, entropy and log_softmax are required");
  using A = typename Acc<Real>::type;
  const A inv_tau = A(1.0 / double(temperature));
  const unsigned grid = cuda_detail::grid_for_rows(N);
  const int bd = block_for(V, 1);
  log_softmax_naive_kernel<Real>
      <<<grid, bd, 0, stream>>>(logits, N, V, ld_logits, inv_tau, log_softmax, lse);
  RLFT_CUDA_CHECK_LAUNCH();
  gather_kernel<Real><<<unsigned((N + 255) / 256), 256, 0, stream>>>(log_softmax, N, V, targets,
                                                                     ignore_index, logp, lse);
  RLFT_CUDA_CHECK_LAUNCH();
  entropy_from_log_softmax_kernel<Real>
      <<<grid, bd, 0, stream>>>(log_softmax, N, V, targets, ignore_index, entropy);
  RLFT_CUDA_CHECK_LAUNCH();
}

template <typename Real>
void softmax_logprob_backward_unfused_cuda(const Real* log_softmax, int64_t N, int64_t V,
                                           const int64_t* targets, int64_t ignore_index,
                                           Real temperature, const Real* entropy,
                                           const Real* g_logp, const Real* g_entropy, Real* dlogits,
                                           CUstream_st* stream) {
  constexpr const char* op = "softmax_logprob_backward_unfused_cuda";
  check_common(op, log_softmax, N, V, V, targets, double(temperature), 0);
  if (N == 0) return;
  RLFT_CHECK(dlogits != nullptr, op, ": dlogits is required");
  (void)entropy;  // the chain rule through log_softmax does not need the saved entropy
  using A = typename Acc<Real>::type;
  const A inv_tau = A(1.0 / double(temperature));
  const unsigned grid = cuda_detail::grid_for_rows(N);
  const int bd = block_for(V, 1);
  cuda_detail::StreamScratch sums(size_t(N) * sizeof(Real), stream);
  grad_log_softmax_kernel<Real><<<grid, bd, 0, stream>>>(log_softmax, N, V, targets, ignore_index,
                                                         g_logp, g_entropy, dlogits);
  RLFT_CUDA_CHECK_LAUNCH();
  row_sum_kernel<Real><<<grid, bd, 0, stream>>>(dlogits, N, V, sums.as<Real>());
  RLFT_CUDA_CHECK_LAUNCH();
  log_softmax_backward_kernel<Real>
      <<<grid, bd, 0, stream>>>(log_softmax, N, V, targets, ignore_index, sums.as<Real>(),
                                inv_tau, dlogits);
  RLFT_CUDA_CHECK_LAUNCH();
}

#define RLFT_INSTANTIATE(Real)                                                                     \
  template void softmax_logprob_forward_cuda<Real>(const Real*, int64_t, int64_t, int64_t,         \
                                                   const int64_t*, int64_t, Real, Real*, Real*,    \
                                                   Real*, CUstream_st*, int, bool, CudaLaunch);    \
  template void softmax_logprob_backward_cuda<Real>(                                               \
      const Real*, int64_t, int64_t, int64_t, const int64_t*, int64_t, Real, const Real*,          \
      const Real*, const Real*, const Real*, Real*, int64_t, bool, CUstream_st*, int, bool,        \
      CudaLaunch);                                                                                 \
  template void softmax_logprob_forward_unfused_cuda<Real>(const Real*, int64_t, int64_t, int64_t, \
                                                           const int64_t*, int64_t, Real, Real*,   \
                                                           Real*, Real*, Real*, CUstream_st*);     \
  template void softmax_logprob_backward_unfused_cuda<Real>(                                       \
      const Real*, int64_t, int64_t, const int64_t*, int64_t, Real, const Real*, const Real*,      \
      const Real*, Real*, CUstream_st*);
RLFT_INSTANTIATE(float)
RLFT_INSTANTIATE(double)
#undef RLFT_INSTANTIATE

}  // namespace rlft::kernels
