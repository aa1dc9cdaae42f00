// Fused causal self-attention on the CPU (the manual is at the top of attention.cpp).
//
// Shapes: B batch, T query positions, Tk key positions (Tk ≥ T; the first P = Tk − T keys are
// earlier positions, e.g. a KV cache, and query i sits at position P + i), NH heads, HS head
// size. q is [B, T, NH, HS], k and v are [B, Tk, NH, HS], the output [B, T, NH, HS], each
// addressed through a HeadView (any strides, the HS elements of one head contiguous), so q, k
// and v are read in place from the fused QKV projection's [B, T, 3, NH, HS] output (or from a
// [B, NH, Tk, HS] cache) and the output lands as [B, T, NH·HS] with no transpose.
//
// Key j is visible to query i when j ≤ P + i (causal) and key_mask[b·Tk + j] ≠ 0 (padding
// mask; null = all real) or, with self_visible, when j = P + i (a query always sees itself,
// so a padding query's row is never empty). A query with no visible key gets output 0,
// log-sum-exp +∞ and zero gradients.
#pragma once

#include <cstdint>

namespace rlft::kernels {

// Element (b, t, h, d) of a [B, rows, NH, HS] operand is p[b·batch + t·row + h·head + d].
template <typename T>
struct HeadView {
  T* p = nullptr;
  int64_t batch = 0, row = 0, head = 0;
};

struct AttentionDims {
  int64_t B = 0, T = 0, Tk = 0, NH = 0, HS = 0;
  double scale = 1.0;                 // applied to q·k (1/√HS in a transformer)
  const uint8_t* key_mask = nullptr;  // [B, Tk], nonzero = real key; null = all real
  bool self_visible = true;
};

// out = softmax(scale·q·kᵀ + mask)·v per (batch, head); lse [B, NH, T] (contiguous) receives
// each query row's log-sum-exp of its visible scaled scores (+∞ for an empty row), which is all
// the backward needs to recompute the probabilities.
template <typename T>
void attention_forward(const AttentionDims& d, HeadView<const T> q, HeadView<const T> k,
                       HeadView<const T> v, HeadView<T> out, T* lse);

// Gradients of the forward above: with dO the gradient of out, P the probabilities
// (recomputed from lse) and D_i = Σ_d dO_id·out_id,
//   dV = Pᵀ·dO,  dS = P ⊙ (dO·Vᵀ − D),  dQ = scale·dS·K,  dK = scale·dSᵀ·Q.
// dq, dk and dv are overwritten (every element, including keys no query sees).
template <typename T>
void attention_backward(const AttentionDims& d, HeadView<const T> q, HeadView<const T> k,
                        HeadView<const T> v, HeadView<const T> out, const T* lse,
                        HeadView<const T> dout, HeadView<T> dq, HeadView<T> dk, HeadView<T> dv);

}  // namespace rlft::kernels
