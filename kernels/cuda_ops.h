// The CUDA kernels behind the engine's generic ops (engine/ops_*.cpp), as plain C++: no CUDA
// type appears here, so the engine's g++ code includes it. Every pointer is a DEVICE pointer
// to the first element of its operand (storage + offset), every call runs on the legacy
// default stream of `device` (so it is ordered with the blocking copies of
// kernels/cuda_runtime.h) and is asynchronous unless it says otherwise. Every launch is
// checked: a failure throws rlft::Error with the file, the line and CUDA's error string.
//
// Defined in kernels/cuda/{elementwise,reduce,gemm,softmax,layer_norm,index,attention,optim}.cu when
// the CUDA backend is built; kernels/cpu/cuda_stub.cpp defines them otherwise, each throwing
// rlft::Error("<what>: rlft was built without the CUDA backend ...").
//
// The CPU reference of every entry point is the CPU branch of the engine op that calls it;
// tests/engine/test_cuda_ops.cpp checks each against it.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>

namespace rlft::kernels::cuda_ops {

// Element types, in the order of rlft::DType (the engine static_asserts the match).
enum class Type : uint8_t { f32, f64, i64, b8 };

constexpr int kMaxDims = 8;
constexpr int kMaxOperands = 4;

// The index space of an elementwise op: one shape shared by up to four operands, each with
// its own element strides (0 along a broadcast dimension). Operand 0 is the output.
struct Geometry {
  int ndim = 0;
  int operands = 0;
  int64_t numel = 1;
  int64_t shape[kMaxDims] = {};
  int64_t strides[kMaxOperands][kMaxDims] = {};
  // Every operand is dense row-major over the whole index space (element i at offset i):
  // the kernels then skip the index arithmetic.
  bool contiguous = true;
};

// Builds the geometry of `K` operands over `shape`, squeezed: size-1 dimensions are dropped
// and neighbouring dimensions that are contiguous for every operand are merged (the rule of
// kernels/cpu/strided.h), so a contiguous tensor is one dimension and a transposed matrix two.
template <size_t K>
Geometry make_geometry(int ndim, const int64_t* shape,
                       const std::array<const int64_t*, K>& strides) {
  static_assert(K >= 1 && K <= size_t(kMaxOperands), "1 to 4 operands");
  Geometry g;
  g.operands = int(K);
  int n = 0;
  for (int d = 0; d < ndim; ++d) {
    g.numel *= shape[d];
    if (shape[d] == 1) continue;
    g.shape[n] = shape[d];
    for (size_t k = 0; k < K; ++k) g.strides[k][n] = strides[k][d];
    ++n;
  }
  if (g.numel == 0) {
    g.ndim = 0;
    return g;
  }
  int m = 0;
  for (int d = 0; d < n; ++d) {
    if (m > 0) {
      bool merge = true;
      for (size_t k = 0; k < K; ++k)
        if (g.strides[k][m - 1] != g.strides[k][d] * g.shape[d]) merge = false;
      if (merge) {
        g.shape[m - 1] *= g.shape[d];
        for (size_t k = 0; k < K; ++k) g.strides[k][m - 1] = g.strides[k][d];
        continue;
      }
    }
    g.shape[m] = g.shape[d];
    for (size_t k = 0; k < K; ++k) g.strides[k][m] = g.strides[k][d];
    ++m;
  }
  for (int d = m; d < kMaxDims; ++d) {
    g.shape[d] = 0;
    for (size_t k = 0; k < K; ++k) g.strides[k][d] = 0;
  }
  g.ndim = m;
  g.contiguous = true;
  if (m == 1) {
    for (size_t k = 0; k < K; ++k)
      if (g.strides[k][0] != 1) g.contiguous = false;
  } else if (m > 1) {
    g.contiguous = false;
  }
  return g;
}

// Makes `device` current for the calling thread, for the kernels of kernels/*.h that run on
// the current device (softmax_logprob, ratio_clip, gae).
void set_device_for(int device);

// ---- elementwise (kernels/cuda/elementwise.cu) ------------------------------------------
// out = f(in) for floating `type` (out and in of that type); s0, s1 are the scalar arguments.
// clang-format off
enum class Unary : uint8_t {
  neg, exp, log, sqrt, abs, sign, tanh, sigmoid, relu, gelu, softplus,
  tanh_backward,     // 1 − y²  (y = tanh x)
  sigmoid_backward,  // y·(1 − y)
  add_scalar,        // x + s0
  mul_scalar,        // x · s0
  rsub_scalar,       // s0 − x
  rdiv_scalar,       // s0 / x
  pow_scalar,        // x^s0 (x·x when s0 = 2)
  clamp,             // min(max(x, s0), s1)
  inf_to_zero,       // 0 where x is ±inf (logsumexp's shift)
  dropout_mask,      // u < s0 ? 0 : s1
};
// out = f(a, b). Arithmetic: floating `type`, out of that type. Comparisons (eq … ge): any
// `type`, out is bool (one byte 0/1).
enum class Binary : uint8_t {
  add, sub, mul, div, minimum, maximum,
  relu_backward,   // y > 0 ? g : 0          (a = g, b = y)
  gelu_backward,   // g · gelu'(x)           (a = g, b = x)
  clamp_backward,  // s0 ≤ x ≤ s1 ? g : 0    (a = g, b = x)
  eq, ne, lt, le, gt, ge,
};
// clang-format on
inline bool is_comparison(Binary op) { return op >= Binary::eq; }

// Geometry operands: unary (out, in); binary (out, a, b); where (out, cond, a, b);
// copy (dst, src); fill (dst).
void unary(Unary op, Type type, const Geometry& g, void* out, const void* in, double s0, double s1,
           int device);
void binary(Binary op, Type type, const Geometry& g, void* out, const void* a, const void* b,
            double s0, double s1, int device);
// out = cond ? a : b for any `type` (cond bool).
void where(Type type, const Geometry& g, void* out, const uint8_t* cond, const void* a,
           const void* b, int device);
// dst = src converted from src_type to dst_type (any pair; the same type is a strided copy).
void copy(Type dst_type, Type src_type, const Geometry& g, void* dst, const void* src, int device);
void fill(Type type, const Geometry& g, void* dst, double value, int device);
// out[i] = uniform [0, 1) from Philox4x32 (engine/rng.h): block first_block + i/4, lane i%4,
// 24-bit float as on the CPU (engine/ops_nn.cpp rand()); floating `type`, contiguous out.
void uniform(Type type, int64_t n, uint64_t seed, uint64_t first_block, void* out, int device);
// out[2j], out[2j+1] = N(0, 1) pair from Philox4x32 block first_block + j by Box-Muller in
// double, as engine/ops_nn.cpp randn(); floating `type`, contiguous out.
void normal(Type type, int64_t n, uint64_t seed, uint64_t first_block, void* out, int device);
// out[i] = T(start + i·step) with the product rounded before the sum, as Tensor::arange;
// any `type`, contiguous out.
void arange(Type type, int64_t n, double start, double step, void* out, int device);

// ---- reductions over the middle axis of contiguous [outer, R, inner] (reduce.cu) ----------
// `column_version`: 0 picks by shape (what the engine uses); 1 or 2 forces, for tests and
// benchmarks, reduce.cu's "columns 1" or "columns 2" kernel when inner > 1, its "rows" (a block
// per row) or "split rows" kernel when inner == 1. Every version gives a deterministic result.
// out[o, i] = Σ_r in[o, r, i], accumulated in double (floating types).
void sum(Type type, int64_t outer, int64_t R, int64_t inner, const void* in, void* out, int device,
         int column_version = 0);
// values[o, i] / indices[o, i] of the max (is_max) or min over r: the first extreme index,
// a NaN wins (the first one), as kernels/cpu/reduce.h. Any type; values or indices may be null.
void extreme(Type type, int64_t outer, int64_t R, int64_t inner, const void* in, void* values,
             int64_t* indices, bool is_max, int device, int column_version = 0);

// out[o, r, i] = Σ_{s ≤ r} in[o, s, i] (reverse: Σ_{s ≥ r}), a running sum in double (floating
// types) or int64 (i64) rounded once per output, as kernels/cpu/reduce.h cumsum_middle: the
// same bits. f32, f64 or i64; in and out may not overlap.
void cumsum(Type type, int64_t outer, int64_t R, int64_t inner, const void* in, void* out,
            bool reverse, int device);

// ---- GEMM through cuBLAS (gemm.cu) ----------------------------------------------------------
// Row-major C[b] = alpha·op(A[b])·op(B[b]) + beta·C[b] for b < batch, the arguments of
// kernels/cpu/gemm.h: op(A) is [M, K]; ta: A is stored as [K, M] row-major with leading
// dimension lda (else [M, K]); likewise tb for B ([N, K] else [K, N]); sa, sb, sc are the
// batch strides in elements (0: the same matrix for every b). Floating `type`.
void gemm(Type type, bool ta, bool tb, int64_t batch, int64_t M, int64_t N, int64_t K, double alpha,
          const void* A, int64_t lda, int64_t sa, const void* B, int64_t ldb, int64_t sb,
          double beta, void* C, int64_t ldc, int64_t sc, int device);
// TF32 tensor cores for float GEMMs (10-bit mantissa products, as PyTorch's
// torch.backends.cuda.matmul.allow_tf32); off by default.
void set_allow_tf32(bool allow);
bool allow_tf32();

// ---- softmax family, one block per row of contiguous [N, V] (softmax.cu) --------------------
void softmax_rows(Type type, int64_t N, int64_t V, const void* x, void* y, bool log_space,
                  int device);
void softmax_rows_backward(Type type, int64_t N, int64_t V, const void* y, const void* g, void* dx,
                           bool log_space, int device);
// loss[i] = lse_i − x[i, t_i], lse saved in double (0 and 0 where t_i == ignore_index, and
// where t_i is outside [0, V): check_targets reports those).
void cross_entropy_rows(Type type, int64_t N, int64_t V, const void* x, const int64_t* t,
                        int64_t ignore_index, void* loss, double* lse, int device);
// dx[i, :] = g[i]·(softmax(x_i) − onehot(t_i)); zero rows where ignored or out of range.
void cross_entropy_rows_backward(Type type, int64_t N, int64_t V, const void* x, const int64_t* t,
                                 int64_t ignore_index, const double* lse, const void* g, void* dx,
                                 int device);

// ---- layer norm over the last dimension of contiguous [N, C] (layer_norm.cu) ----------------
// The arguments of kernels/cpu/layer_norm.h; w, b may be null; mean, rstd: [N] doubles.
void layer_norm_forward(Type type, int64_t N, int64_t C, const void* x, const void* w,
                        const void* b, double eps, void* y, double* mean, double* rstd, int device);
// dx, dw, db may be null (not computed); dw, db are overwritten. `dwdb_version`: 0 picks by
// shape; 1 or 2 forces layer_norm.cu's dw/db version 1 or 2 (tests, benchmarks).
void layer_norm_backward(Type type, int64_t N, int64_t C, const void* x, const void* w,
                         const double* mean, const double* rstd, const void* g, void* dx, void* dw,
                         void* db, int device, int dwdb_version = 0);

// ---- indexing (index.cu) --------------------------------------------------------------------
// Indices are checked on the device, not on the host (which cost a copy of the indices and a
// synchronisation per call): an index outside [0, n) reads as 0 (select, gather) or adds
// nothing (index_add, scatter_add), and the first such index per device is recorded, with
// the op that met it, in host-mapped memory. check_index_faults(device) throws it as
// rlft::Error ("embedding: index 7 out of range [0, 4) at position 3 (found on cuda:0,
// reported at the next synchronisation)") and clears it. copy_device_to_host and synchronize
// (kernels/cuda_runtime.h) call it once they have waited for the device, so any later host
// read of a device result (item, to_vector, .to(cpu)) reports a bad index of any earlier op
// on that device — like PyTorch's device-side asserts, the error surfaces at a later call,
// but the process stays usable. A correct program pays one compare per element and one load
// from pinned memory per device-to-host copy. The same synchronisations also report a diverged
// Adam step (check_adam_faults, below).
enum class IndexOp : uint8_t { embedding, index_select, gather, cross_entropy, one_hot };
void check_index_faults(int device);
// Class indices (a loss's targets, one_hot's input), checked the same way: the first one
// outside [0, n_classes) that is not ignore_index is recorded as a fault of `op`. Unless
// `valid` is null, valid[i] = 1 where t[i] is in range and is not ignore_index, else 0 (in
// `type`: Σ valid is cross-entropy's divisor without a copy to the host); the loss kernels
// read an out-of-range row as ignored.
void check_targets(Type type, const int64_t* t, int64_t n, int64_t n_classes, int64_t ignore_index,
                   void* valid, int device, IndexOp op = IndexOp::cross_entropy);
// out[o, i, j] = src[o, idx[i], j] for contiguous src [outer, n_src, inner], out [outer, k, inner].
void index_select(Type type, int64_t outer, int64_t n_src, int64_t inner, const void* src,
                  const int64_t* idx, int64_t k, void* out, int device,
                  IndexOp op = IndexOp::index_select);
// dst[o, idx[i], j] += src[o, i, j] (atomicAdd: repeated indices accumulate); floating type.
void index_add(Type type, int64_t outer, int64_t n_dst, int64_t inner, void* dst,
               const int64_t* idx, int64_t k, const void* src, int device,
               IndexOp op = IndexOp::index_select);
// Geometry (out, index, a) over the index's shape, a's stride 0 along `dim`:
// out[p] = a[p with index[p] along dim] (a_dim_stride: a's stride of dim; n_dim: a's size of
// dim, the bound of the index). Any type.
void gather(Type type, const Geometry& g, void* out, const int64_t* index, const void* a,
            int64_t a_dim_stride, int64_t n_dim, int device);
// Geometry (src, index, dst): dst[p with index[p] along dim] += src[p] (atomicAdd); floating.
void scatter_add(Type type, const Geometry& g, const void* src, const int64_t* index, void* dst,
                 int64_t dst_dim_stride, int64_t n_dim, int device);

// ---- fused causal self-attention (attention.cu) -----------------------------------------------
// kernels/cpu/attention.h's forward and backward with device pointers: q [B, T, NH, HS], k and
// v [B, Tk, NH, HS], out [B, T, NH, HS] addressed through their strides (element (b, t, h, d)
// at p[b·batch + t·row + h·head + d]); lse [B, NH, T] contiguous in the element type; key_mask
// a device [B, Tk] byte mask (nonzero = real key) or null. Floating `type`, HS ≤ kMaxHeadSize.
// The backward overwrites every element of dq, dk and dv.
constexpr int kMaxHeadSize = 256;
struct AttentionShape {
  int64_t B = 0, T = 0, Tk = 0, NH = 0, HS = 0;
  double scale = 1.0;
  bool self_visible = true;
};
struct HeadStrides {
  int64_t batch = 0, row = 0, head = 0;
};
void attention_forward(Type type, const AttentionShape& d, const uint8_t* key_mask, const void* q,
                       HeadStrides qs, const void* k, HeadStrides ks, const void* v,
                       HeadStrides vs, void* out, HeadStrides os, void* lse, int device);
void attention_backward(Type type, const AttentionShape& d, const uint8_t* key_mask, const void* q,
                        HeadStrides qs, const void* k, HeadStrides ks, const void* v,
                        HeadStrides vs, const void* out, HeadStrides os, const void* lse,
                        const void* dout, HeadStrides gs, void* dq, HeadStrides dqs, void* dk,
                        HeadStrides dks, void* dv, HeadStrides dvs, int device);

// ---- optimisers (optim.cu), contiguous parameters ---------------------------------------------
// The update of engine/optim.cpp, in the parameter's type, element by element.
struct AdamArgs {
  double beta1, beta2, decay, l2, step_size, sqrt_bc2, eps;
  bool decoupled;
  int64_t step = 0;  // the optimiser's step count (1 on the first step), for the report below
  // How the launch maps blocks to elements (0 is kAdamLayoutGrid; the engine's optimisers pass
  // optim::cuda_adam_layout(), engine/optim.h).
  int layout = 0;
};
// Adam's launch layouts. chunked (the engine's default, optim::cuda_adam_layout): one block per
// chunk of kAdamChunk elements of one tensor, the blocks of all the launch's tensors in one flat
// x grid (no block without work), each thread's kAdamChunk / 256 elements loaded before any is
// written. grid: x blocks sized for the launch's largest tensor, y = its tensors, each block a
// grid-stride loop over its tensor (blocks past a smaller tensor's end exit at once). Both run
// the same per-element code, without FMA contraction, so they write the same bits (and the
// CPU's).
constexpr int kAdamLayoutGrid = 1, kAdamLayoutChunked = 2;
constexpr int kAdamChunk = 1024;
// The chunked layout's map from blocks to elements (host and device code; tested on the CPU by
// Optim.CudaAdamChunksCoverEveryElementOnce). Tensor i of a launch owns blocks
// [first_block[i], first_block[i + 1]): adam_first_blocks fills first_block[0..count] from the
// tensors' sizes and returns the launch's block count. Block b of tensor i updates the elements
// [begin, begin + kAdamChunk) ∩ [0, n_i) with begin = (b − first_block[i])·kAdamChunk.
struct AdamChunk {
  int tensor;
  int64_t begin;
};
inline int64_t adam_first_blocks(const int64_t* n, int count, int64_t* first_block) {
  int64_t blocks = 0;
  for (int i = 0; i < count; ++i) {
    first_block[i] = blocks;
    blocks += (n[i] + kAdamChunk - 1) / kAdamChunk;
  }
  first_block[count] = blocks;
  return blocks;
}
// (A scan of at most kAdamTensorsPerLaunch words, the same for every thread of a block.)
template <typename FirstBlocks>
#ifdef __CUDACC__
__host__ __device__
#endif
    inline AdamChunk
    adam_chunk(int64_t block, const FirstBlocks& first_block, int count) {
  int i = 0;
  while (i + 1 < count && first_block[i + 1] <= block) ++i;
  return {i, (block - first_block[i]) * kAdamChunk};
}
// One parameter with its gradient and moment buffers (n elements each, of one type).
struct AdamTensor {
  void* w;
  const void* g;
  void* m;
  void* v;
  int64_t n;
  // For the report below: the parameter's index in the optimiser's list, and its shape (host
  // memory, copied during the call; null: the report gives the element count).
  int64_t index = 0;
  const int64_t* shape = nullptr;
  int ndim = 0;
};
// Every tensor of `tensors` (all of `type`) in as few launches as possible: up to
// kAdamTensorsPerLaunch tensors per launch, their pointers passed in the kernel's arguments.
// A step that leaves an element of a parameter NaN or ±inf is reported like a bad index
// (above), without a synchronisation per step: the kernel tests each updated weight in its
// registers, the first parameter found non-finite on the device (its index, the step) goes to
// a host-mapped slot, and check_adam_faults(device) — called by copy_device_to_host and
// synchronize after check_index_faults, so at the next synchronisation — throws the CPU's error
// ("Adam: step 3 made parameter 1 (shape [4,5]) non-finite: training diverged (…)", then where it
// was found) and clears the slot. With several parameters non-finite at once, the one reported is
// the first found (the CPU stops at the lowest index).
constexpr int kAdamTensorsPerLaunch = 24;
void adam_step(Type type, const AdamTensor* tensors, int count, const AdamArgs& args, int device);
void check_adam_faults(int device);
// SGD in double per element as on the CPU; v may be null (no momentum).
void sgd_step(Type type, int64_t n, void* w, const void* g, void* v, double lr, double momentum,
              double dampening, double weight_decay, bool nesterov, bool first, int device);

}  // namespace rlft::kernels::cuda_ops
