// Every tensor op of the engine. Each checks its inputs (shapes, dtypes, devices) and throws
// rlft::Error naming the op and the offending values, runs a kernel of kernels/, and, when
// an input requires grad, records its backward (engine/autograd.h).
//
// Shape vocabulary: B batch, T time/sequence, C channels/classes, V vocabulary, N rows.
#pragma once

#include <cstdint>
#include <vector>

#include "engine/rng.h"
#include "kernels/ratio_clip.h"
#include "engine/tensor.h"

namespace rlft {

// ---- elementwise, broadcasting (NumPy rules) -----------------------------------------
Tensor add(const Tensor& a, const Tensor& b);
Tensor sub(const Tensor& a, const Tensor& b);
Tensor mul(const Tensor& a, const Tensor& b);
Tensor div(const Tensor& a, const Tensor& b);
Tensor minimum(const Tensor& a, const Tensor& b);  // gradient to the smaller (ties: a)
Tensor maximum(const Tensor& a, const Tensor& b);  // gradient to the larger (ties: a)
// With a scalar.
Tensor add(const Tensor& a, double s);
Tensor mul(const Tensor& a, double s);
Tensor rsub(double s, const Tensor& a);  // s - a
Tensor rdiv(double s, const Tensor& a);  // s / a

Tensor neg(const Tensor& a);
Tensor pow(const Tensor& a, double exponent);
Tensor exp(const Tensor& a);
Tensor log(const Tensor& a);
Tensor sqrt(const Tensor& a);
Tensor abs(const Tensor& a);
Tensor tanh(const Tensor& a);
Tensor sigmoid(const Tensor& a);
Tensor relu(const Tensor& a);
Tensor gelu(const Tensor& a);  // tanh approximation (GPT-2)
Tensor softplus(const Tensor& a);
// Gradient 1 on [lo, hi], bounds included (PyTorch up to its 2.1x releases; later ones give 0
// at a scalar bound), 0 outside.
Tensor clamp(const Tensor& a, double lo, double hi);
Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b);  // cond: bool

// Comparisons (bool result, no gradient).
Tensor eq(const Tensor& a, const Tensor& b);
Tensor ne(const Tensor& a, const Tensor& b);
Tensor lt(const Tensor& a, const Tensor& b);
Tensor le(const Tensor& a, const Tensor& b);
Tensor gt(const Tensor& a, const Tensor& b);
Tensor ge(const Tensor& a, const Tensor& b);
Tensor lt(const Tensor& a, double s);
Tensor gt(const Tensor& a, double s);
Tensor logical_not(const Tensor& a);

// ---- reductions ------------------------------------------------------------------------
// Over `dims` (empty = all dimensions), keeping reduced dims as size 1 when keepdim.
Tensor sum(const Tensor& a, const std::vector<int64_t>& dims = {}, bool keepdim = false);
Tensor mean(const Tensor& a, const std::vector<int64_t>& dims = {}, bool keepdim = false);
// Variance with `correction` (1: unbiased, as torch.var's default; 0: population).
Tensor var(const Tensor& a, const std::vector<int64_t>& dims = {}, int correction = 1,
           bool keepdim = false);
Tensor max(const Tensor& a, int64_t dim, bool keepdim = false);  // gradient to the first max
Tensor min(const Tensor& a, int64_t dim, bool keepdim = false);
Tensor max(const Tensor& a);  // over all elements; ties share the gradient evenly (as torch)
Tensor min(const Tensor& a);
Tensor argmax(const Tensor& a, int64_t dim, bool keepdim = false);  // int64, no gradient
Tensor logsumexp(const Tensor& a, int64_t dim, bool keepdim = false);
// Inclusive prefix sums along dim (torch.cumsum): f32 and f64 keep their dtype, i64 and bool give
// int64; a running sum in double (int64) rounded once per element, the same bits on CPU and CUDA.
// Gradient (floating types): the suffix sums of the incoming gradient.
Tensor cumsum(const Tensor& a, int64_t dim);

// ---- linear algebra --------------------------------------------------------------------
// [M,K] @ [K,N]; batched [..., M, K] @ [..., K, N] with broadcast batch dims; 1-d operands
// are promoted as in NumPy.
Tensor matmul(const Tensor& a, const Tensor& b);
// x [..., in] · weight [out, in]^T + bias [out] (bias may be undefined).
Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias = Tensor());

// ---- neural-network ops ----------------------------------------------------------------
Tensor softmax(const Tensor& a, int64_t dim = -1);
Tensor log_softmax(const Tensor& a, int64_t dim = -1);
// logits [N, C], targets [N] int64; mean over targets != ignore_index ("mean"), or "sum",
// or "none" (per-row, 0 at ignored rows).
Tensor cross_entropy(const Tensor& logits, const Tensor& targets, int64_t ignore_index = -100,
                     const char* reduction = "mean");
// weight [V, C], indices int64 of any shape -> [..., C].
// Out-of-range indices (embedding, gather, index_select): an error naming the op, the index
// and its position — at once on the CPU; on a CUDA device at the next call that waits for it
// (a copy to the host, cuda::synchronize), since the kernels check them without a host round
// trip (kernels/cuda_ops.h); the result then holds 0 where the index was bad.
Tensor embedding(const Tensor& weight, const Tensor& indices);
// Over the last dimension, with optional affine weight/bias [C].
Tensor layer_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, double eps = 1e-5);
// Zeroes with probability p and scales by 1/(1-p) when training; identity otherwise.
Tensor dropout(const Tensor& a, double p, bool training, Generator* gen = nullptr);

// Fused causal self-attention (kernels/cpu/attention.h; on CUDA kernels/cuda/attention.cu, head
// size ≤ 256). qkv [B, T, 3, NH, HS] is the fused QKV projection's output viewed per head
// (q, k, v of T positions; any strides with HS contiguous); returns y [B, T, NH·HS] =
// concat_heads(softmax(q·kᵀ/√HS + M)·v) without permuting anything. Key j is visible to query i when j ≤ P + i (P = Tk − T earlier
// positions) and key_mask[b, j] ≠ 0, or when j = P + i and self_visible. Rows with no
// visible key give 0 and no gradient. Differentiable with respect to qkv, keys and values.
struct AttentionOptions {
  Tensor key_mask;            // [B, Tk] any dtype, nonzero = real key; undefined = all real
  bool self_visible = true;   // a query sees its own key even when the mask hides it
  Tensor keys, values;        // optional [B, NH, Tk, HS] (a KV cache whose last T positions
                              // hold this call's keys): used instead of qkv's k and v
};
Tensor causal_self_attention(const Tensor& qkv, const AttentionOptions& options = {});

// ---- shape and indexing ----------------------------------------------------------------
Tensor concat(const std::vector<Tensor>& tensors, int64_t dim = 0);
Tensor stack(const std::vector<Tensor>& tensors, int64_t dim = 0);
// out[i][j] = a[i][index[i][j]] along `dim` (index int64, same rank as a).
Tensor gather(const Tensor& a, int64_t dim, const Tensor& index);
// Rows (along dim) picked by a 1-d int64 index.
Tensor index_select(const Tensor& a, int64_t dim, const Tensor& index);
// a with value where mask (bool, broadcast to a) is true; gradient 0 there.
Tensor masked_fill(const Tensor& a, const Tensor& mask, double value);
// int64 [...] -> [..., num_classes] of `dtype` (no gradient).
Tensor one_hot(const Tensor& indices, int64_t num_classes, DType dtype = DType::f32);

// ---- random ----------------------------------------------------------------------------
// Drawn directly on `device` from the generator's counter-based stream: a CUDA tensor holds
// the CPU's values for the same (seed, offset) and leaves the generator where the CPU would —
// bitwise for rand; for randn within the last ulp of the double Box-Muller (CUDA's log, cos,
// sin vs glibc's), so float32 values are almost always the same bits.
Tensor rand(const Shape& shape, Generator* gen = nullptr, DType dtype = DType::f32,
            Device device = Device::cpu());  // U[0,1)
Tensor randn(const Shape& shape, Generator* gen = nullptr, DType dtype = DType::f32,
             Device device = Device::cpu());  // N(0,1)
// Indices sampled from the categorical distributions of each row of probs [N, C] -> [N].
Tensor multinomial(const Tensor& probs, Generator* gen = nullptr);

// ---- fused RL ops (kernels/softmax_logprob.h, kernels/ratio_clip.h, kernels/gae.h) ------
// Log-probability of `targets` and entropy of softmax(logits / temperature) per row, in one
// pass and without an [N, V] intermediate: logits [..., V], targets [...] int64 ->
// (log_probs [...], entropy [...]). Rows whose target is ignore_index get 0 and no gradient.
// Differentiable with respect to logits through both outputs.
std::pair<Tensor, Tensor> softmax_logprob(const Tensor& logits, const Tensor& targets, double temperature = 1.0,
                                          int64_t ignore_index = -100);

// The clipped surrogate (PPO / DAPO / DCPO / GSPO) with its statistics, one fused op.
struct RatioClipOptions {
  double eps_low = 0.2, eps_high = 0.2;  // ratio bounds 1 − eps_low, 1 + eps_high
  double dual_clip = 0;                  // c > 1 turns the dual clip on (for A < 0)
  kernels::RatioLevel level = kernels::RatioLevel::token;
  kernels::Aggregation aggregation = kernels::Aggregation::token_mean;
  double normalizer = 0;                 // 0: from this batch (see kernels/ratio_clip.h)
  Tensor lower, upper;                   // optional per-token bounds [B, T] (DCPO)
};
struct RatioClipResult {
  Tensor loss;                   // scalar, differentiable with respect to log_probs
  kernels::RatioClipStats stats; // clip fractions, approx KL k1/k3, token count
};
// log_probs, old_log_probs, mask: [B, T] (a 1-d [N] batch is treated as [N, 1]);
// advantages [B, T] or [B] (per sequence). mask may be undefined (all ones).
RatioClipResult ratio_clip(const Tensor& log_probs, const Tensor& old_log_probs, const Tensor& advantages,
                           const Tensor& mask, const RatioClipOptions& options = {});

// Generalised advantage estimation (no gradient). Time-major [T, N] rollouts:
// δ_t = r_t + γ·next_v_t·(1 − terminated_t) − v_t; A_t = δ_t + γλ·(1 − episode_end_t)·A_{t+1}.
// Returns (advantages, returns = advantages + values).
std::pair<Tensor, Tensor> gae(const Tensor& rewards, const Tensor& values, const Tensor& next_values,
                              const Tensor& terminated, const Tensor& episode_end, double gamma, double lambda);
// Language-model rows [B, T]: the recursion runs over positions where action_mask is 1, the
// value after the last response token is 0 (DeepSpeed-Chat's get_advantages_and_returns).
std::pair<Tensor, Tensor> gae_masked(const Tensor& rewards, const Tensor& values, const Tensor& action_mask,
                                     double gamma, double lambda);

// ---- operators -------------------------------------------------------------------------
inline Tensor operator+(const Tensor& a, const Tensor& b) { return add(a, b); }
inline Tensor operator-(const Tensor& a, const Tensor& b) { return sub(a, b); }
inline Tensor operator*(const Tensor& a, const Tensor& b) { return mul(a, b); }
inline Tensor operator/(const Tensor& a, const Tensor& b) { return div(a, b); }
inline Tensor operator-(const Tensor& a) { return neg(a); }
inline Tensor operator+(const Tensor& a, double s) { return add(a, s); }
inline Tensor operator+(double s, const Tensor& a) { return add(a, s); }
inline Tensor operator-(const Tensor& a, double s) { return add(a, -s); }
inline Tensor operator-(double s, const Tensor& a) { return rsub(s, a); }
inline Tensor operator*(const Tensor& a, double s) { return mul(a, s); }
inline Tensor operator*(double s, const Tensor& a) { return mul(a, s); }
inline Tensor operator/(const Tensor& a, double s) { return mul(a, 1.0 / s); }
inline Tensor operator/(double s, const Tensor& a) { return rdiv(s, a); }

// Checks that all defined tensors live on one device and returns it (`op` names the caller).
Device common_device(const char* op, std::initializer_list<const Tensor*> tensors);

}  // namespace rlft
