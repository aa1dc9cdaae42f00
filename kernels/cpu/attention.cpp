// Fused causal self-attention, CPU — the manual.
//
// What it computes (declarations and the masking rule in attention.h)
//   For each batch row b and head h, with S = scale·Q·Kᵀ [T, Tk] and M the mask (0 where key j
//   is visible to query i, −∞ where not):
//     P = softmax_rows(S + M),  out = P·V,  lse_i = log Σ_j e^{S_ij + M_ij}
//   Backward (FlashAttention's recomputation: Dao et al. 2022, arXiv 2205.14135, Alg. 4):
//     P = e^{S + M − lse} recomputed,  D_i = Σ_d dO_id·out_id  (= Σ_j P_ij·dP_ij),
//     dV = Pᵀ·dO,  dP = dO·Vᵀ,  dS = P ⊙ (dP − D),  dQ = scale·dS·K,  dK = scale·dSᵀ·Q.
//   Only lse (one number per query row) is saved between forward and backward: no [B, NH, T, Tk]
//   tensor exists at any time.
//
// Loop structure (version 1, this file; the float row loops are cloned for AVX-512/AVX2, see
// softmax_block_f32)
//   OpenMP over the B·NH (batch, head) pairs, each done by one thread from start to end; the
//   queries of a pair in blocks of kQueryBlock rows. Block [i0, i1) sees keys [0, P + i1) only
//   (causality), so the score block S_blk [rows, P + i1] skips the upper triangle in whole
//   blocks: at T = Tk = 128 and blocks of 64, 3/4 of the full T×Tk products are done.
//     forward:  S_blk = scale·Q_blk·Kᵀ (GEMM) → masked softmax per row in place, lse → out_blk =
//               S_blk·V (GEMM)
//     backward: dK = dV = 0; per block: S_blk recomputed (GEMM) → P; dV += Pᵀ·dO_blk (GEMM);
//               dP = dO_blk·Vᵀ (GEMM); dS = P ⊙ (dP − D) in place; dQ_blk = scale·dS·K (GEMM);
//               dK += scale·dSᵀ·Q_blk (GEMM)
//   The products go through the engine's GEMM (kernels/cpu/gemm.h; inside the parallel region
//   it runs on one thread and picks its AVX-512/AVX2 micro-kernels at run time), which takes
//   the row strides of q, k, v (3·C in the fused QKV layout) and of the output (C) as they are.
//   Score blocks live in per-thread scratch of kQueryBlock·Tk elements (16 KiB in float at
//   T = Tk = 64; the backward holds two: P and dS).
//
// Memory traffic per (batch, head), with N = T·HS, Nk = Tk·HS elements:
//   forward reads q (N), k and v (Nk, from cache after the first block), writes out (N) and
//   lse (T); backward reads q, k, v, out, dO, lse and writes dq, dk, dv: about 5N + 4Nk. The
//   unfused chain (matmul, add mask, softmax, matmul, and the head transposes) writes and
//   reads B·NH·T·Tk scores, probabilities and their gradients several times over, plus a
//   permuted copy of q, k, v, out and of their gradients.
//
// Exponentials: exp_fast in float (fast_math.h, < 1 ulp), std::exp in double; row sums in
// double (lane_sum). A row with no visible key (possible only without self_visible) gets
// out = 0, lse = +∞, so the recomputed P is 0 and every gradient through it is 0.
//
// Reference: the unfused composition of engine ops the GPT used before (matmul, add of the
// −∞ mask, softmax, matmul, permute) — tests/engine/test_attention.cpp checks the output and
// the three gradients against it in float32 and float64 (left padding, empty rows, KV cache),
// and the gradients against central finite differences in float64.
#include "kernels/cpu/attention.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <type_traits>
#include <vector>

#include "kernels/cpu/fast_math.h"
#include "kernels/cpu/gemm.h"
#include "kernels/cpu/lane_sum.h"
#include "kernels/cpu/parallel.h"
#include "kernels/cpu/target_clones.h"

namespace rlft::kernels {
namespace {

// Query rows per block: smaller blocks skip more of the masked upper triangle but make more,
// smaller GEMM calls. bench_lm could not tell 16, 32 and 64 apart on micro (T = 64) nor 32
// from 64 on mini (T = 128, within 2%, at load 7); 64 keeps the GEMM calls few.
constexpr int64_t kQueryBlock = 64;

template <typename T>
void gemm_t(bool ta, bool tb, int64_t M, int64_t N, int64_t K, T alpha, const T* A, int64_t lda,
            const T* B, int64_t ldb, T beta, T* C, int64_t ldc) {
  if constexpr (std::is_same_v<T, float>) {
    gemm_f32(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
  } else {
    gemm_f64(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
  }
}

template <typename T>
inline T exp_t(T x) {
  if constexpr (std::is_same_v<T, float>)
    return exp_fast(x);
  else
    return std::exp(x);
}

// Additive key masks [B, Tk]: 0 for a real key, −∞ for padding (empty when there is no mask).
template <typename T>
std::vector<T> key_bias(const AttentionDims& d) {
  std::vector<T> bias;
  if (!d.key_mask) return bias;
  bias.resize(size_t(d.B * d.Tk));
  for (int64_t i = 0; i < d.B * d.Tk; ++i)
    bias[size_t(i)] = d.key_mask[i] ? T(0) : -std::numeric_limits<T>::infinity();
  return bias;
}

// s[0, lim) += bias[0, lim), except the query's own key (lim − 1) when self_visible.
template <typename T>
inline void apply_key_bias(T* s, const T* bias, int64_t lim, bool self_visible) {
  if (!bias) return;
  const T self = s[lim - 1];
  for (int64_t j = 0; j < lim; ++j) s[j] += bias[j];
  if (self_visible) s[lim - 1] = self;
}

// max of s[0, n) in 16 independent lanes (a single running max is one dependency chain that
// does not vectorise); max is exact, so the result is the sequential one.
template <typename T>
[[gnu::always_inline]] inline T row_max(const T* s, int64_t n) {
  constexpr int kLanes = 16;
  T acc[kLanes];
  for (int k = 0; k < kLanes; ++k) acc[k] = -std::numeric_limits<T>::infinity();
  int64_t j = 0;
  for (; j + kLanes <= n; j += kLanes)
    for (int k = 0; k < kLanes; ++k) acc[k] = std::max(acc[k], s[j + k]);
  for (; j < n; ++j) acc[0] = std::max(acc[0], s[j]);
  for (int k = 1; k < kLanes; ++k) acc[0] = std::max(acc[0], acc[k]);
  return acc[0];
}

// Forward, one query block of `rows` rows (row r sees keys [0, lim0 + r)): the scores S
// [rows, kend] become the probabilities in place, lse[r] their log-sum-exp.
template <typename T>
[[gnu::always_inline]] inline void softmax_block(int64_t rows, int64_t kend, int64_t lim0, T* S,
                                                 const T* bias, bool self_visible, T* lse) {
  const T inf = std::numeric_limits<T>::infinity();
  for (int64_t r = 0; r < rows; ++r) {
    T* s = S + r * kend;
    const int64_t lim = lim0 + r;
    apply_key_bias(s, bias, lim, self_visible);
    const T m = row_max(s, lim);
    std::fill(s + lim, s + kend, T(0));
    if (m == -inf) {  // no visible key: out = 0, P = 0 in the backward
      std::fill(s, s + lim, T(0));
      lse[r] = inf;
      continue;
    }
    for (int64_t j = 0; j < lim; ++j) s[j] = exp_t<T>(s[j] - m);
    const double l = lane_sum(lim, [&](int64_t j) { return double(s[j]); });
    const T inv = T(1.0 / l);
    for (int64_t j = 0; j < lim; ++j) s[j] *= inv;
    lse[r] = T(double(m) + std::log(l));
  }
}

// Backward: P = e^{S + M − lse} in place, zero outside the visible keys.
template <typename T>
[[gnu::always_inline]] inline void probs_block(int64_t rows, int64_t kend, int64_t lim0, T* S,
                                               const T* bias, bool self_visible, const T* lse) {
  for (int64_t r = 0; r < rows; ++r) {
    T* s = S + r * kend;
    const int64_t lim = lim0 + r;
    apply_key_bias(s, bias, lim, self_visible);
    const T l = lse[r];
    for (int64_t j = 0; j < lim; ++j) s[j] = exp_t<T>(s[j] - l);
    std::fill(s + lim, s + kend, T(0));
  }
}

// Backward: dS = P ⊙ (dP − D) in place of dP.
template <typename T>
[[gnu::always_inline]] inline void dscores_block(int64_t rows, int64_t kend, const T* P, T* dS,
                                                 const T* delta) {
  for (int64_t r = 0; r < rows; ++r) {
    const T* p = P + r * kend;
    T* g = dS + r * kend;
    const T dr = delta[r];
    for (int64_t j = 0; j < kend; ++j) g[j] = p[j] * (g[j] - dr);
  }
}

// The float row loops cloned for AVX-512/AVX2 (target_clones; attention.cpp is compiled with
// -ffp-contract=off, so every clone rounds like the portable code). They were 4% of a micro
// training step in portable SSE2. Double (the gradient checks) runs the templates directly.
RLFT_CLONES void softmax_block_f32(int64_t rows, int64_t kend, int64_t lim0, float* S,
                                   const float* bias, bool self_visible, float* lse) {
  softmax_block(rows, kend, lim0, S, bias, self_visible, lse);
}
RLFT_CLONES void probs_block_f32(int64_t rows, int64_t kend, int64_t lim0, float* S,
                                 const float* bias, bool self_visible, const float* lse) {
  probs_block(rows, kend, lim0, S, bias, self_visible, lse);
}
RLFT_CLONES void dscores_block_f32(int64_t rows, int64_t kend, const float* P, float* dS,
                                   const float* delta) {
  dscores_block(rows, kend, P, dS, delta);
}
template <typename T>
void softmax_rows(int64_t rows, int64_t kend, int64_t lim0, T* S, const T* bias, bool self_visible,
                  T* lse) {
  if constexpr (std::is_same_v<T, float>)
    softmax_block_f32(rows, kend, lim0, S, bias, self_visible, lse);
  else
    softmax_block(rows, kend, lim0, S, bias, self_visible, lse);
}
template <typename T>
void probs_rows(int64_t rows, int64_t kend, int64_t lim0, T* S, const T* bias, bool self_visible,
                const T* lse) {
  if constexpr (std::is_same_v<T, float>)
    probs_block_f32(rows, kend, lim0, S, bias, self_visible, lse);
  else
    probs_block(rows, kend, lim0, S, bias, self_visible, lse);
}
template <typename T>
void dscores_rows(int64_t rows, int64_t kend, const T* P, T* dS, const T* delta) {
  if constexpr (std::is_same_v<T, float>)
    dscores_block_f32(rows, kend, P, dS, delta);
  else
    dscores_block(rows, kend, P, dS, delta);
}

bool parallel_pairs(const AttentionDims& d) {
  return d.B * d.NH > 1 &&
         double(d.B * d.NH) * double(d.T) * double(d.Tk) * double(d.HS) >= 65536.0 &&
         omp_get_max_threads() > 1;
}

template <typename T>
const T* at(HeadView<const T> x, int64_t b, int64_t t, int64_t h) {
  return x.p + b * x.batch + t * x.row + h * x.head;
}
template <typename T>
T* at(HeadView<T> x, int64_t b, int64_t t, int64_t h) {
  return x.p + b * x.batch + t * x.row + h * x.head;
}

}  // namespace

template <typename T>
void attention_forward(const AttentionDims& d, HeadView<const T> q, HeadView<const T> k,
                       HeadView<const T> v, HeadView<T> out, T* lse) {
  const int64_t B = d.B, T_ = d.T, Tk = d.Tk, NH = d.NH, HS = d.HS, P = Tk - T_;
  const std::vector<T> bias = key_bias<T>(d);
  parallel_region(parallel_pairs(d), [&](int64_t t, int64_t nt) {
    std::vector<T> scores(size_t(std::min(kQueryBlock, T_) * Tk));
    for (int64_t bh = share_begin(B * NH, t, nt); bh < share_begin(B * NH, t + 1, nt); ++bh) {
      const int64_t b = bh / NH, h = bh % NH;
      const T* kb = at(k, b, 0, h);
      const T* vb = at(v, b, 0, h);
      const T* biasb = bias.empty() ? nullptr : bias.data() + b * Tk;
      T* lse_bh = lse + bh * T_;
      for (int64_t i0 = 0; i0 < T_; i0 += kQueryBlock) {
        const int64_t rows = std::min(kQueryBlock, T_ - i0), kend = P + i0 + rows;
        T* S = scores.data();
        gemm_t<T>(false, true, rows, kend, HS, T(d.scale), at(q, b, i0, h), q.row, kb, k.row, T(0),
                  S, kend);
        // Row r sees keys [0, P + i0 + r + 1) (causality).
        softmax_rows<T>(rows, kend, P + i0 + 1, S, biasb, d.self_visible, lse_bh + i0);
        gemm_t<T>(false, false, rows, HS, kend, T(1), S, kend, vb, v.row, T(0), at(out, b, i0, h),
                  out.row);
      }
    }
  });
}

template <typename T>
void attention_backward(const AttentionDims& d, HeadView<const T> q, HeadView<const T> k,
                        HeadView<const T> v, HeadView<const T> out, const T* lse,
                        HeadView<const T> dout, HeadView<T> dq, HeadView<T> dk, HeadView<T> dv) {
  const int64_t B = d.B, T_ = d.T, Tk = d.Tk, NH = d.NH, HS = d.HS, P = Tk - T_;
  const std::vector<T> bias = key_bias<T>(d);
  parallel_region(parallel_pairs(d), [&](int64_t t, int64_t nt) {
    const size_t block = size_t(std::min(kQueryBlock, T_) * Tk);
    std::vector<T> probs(block), dprobs(block), delta(static_cast<size_t>(kQueryBlock));
    for (int64_t bh = share_begin(B * NH, t, nt); bh < share_begin(B * NH, t + 1, nt); ++bh) {
      const int64_t b = bh / NH, h = bh % NH;
      const T* kb = at(k, b, 0, h);
      const T* vb = at(v, b, 0, h);
      T* dkb = at(dk, b, 0, h);
      T* dvb = at(dv, b, 0, h);
      const T* biasb = bias.empty() ? nullptr : bias.data() + b * Tk;
      const T* lse_bh = lse + bh * T_;
      for (int64_t j = 0; j < Tk; ++j) {
        std::fill(dkb + j * dk.row, dkb + j * dk.row + HS, T(0));
        std::fill(dvb + j * dv.row, dvb + j * dv.row + HS, T(0));
      }
      for (int64_t i0 = 0; i0 < T_; i0 += kQueryBlock) {
        const int64_t rows = std::min(kQueryBlock, T_ - i0), kend = P + i0 + rows;
        const T* qi = at(q, b, i0, h);
        const T* doi = at(dout, b, i0, h);
        T* S = probs.data();
        T* dS = dprobs.data();
        for (int64_t r = 0; r < rows; ++r) {
          const T* o = at(out, b, i0 + r, h);
          const T* g = doi + r * dout.row;
          delta[size_t(r)] =
              T(lane_sum(HS, [&](int64_t c) { return double(g[c]) * double(o[c]); }));
        }
        // P = e^{S + M − lse}, zero outside the visible keys.
        gemm_t<T>(false, true, rows, kend, HS, T(d.scale), qi, q.row, kb, k.row, T(0), S, kend);
        probs_rows<T>(rows, kend, P + i0 + 1, S, biasb, d.self_visible, lse_bh + i0);
        gemm_t<T>(true, false, kend, HS, rows, T(1), S, kend, doi, dout.row, T(1), dvb, dv.row);
        gemm_t<T>(false, true, rows, kend, HS, T(1), doi, dout.row, vb, v.row, T(0), dS, kend);
        dscores_rows<T>(rows, kend, S, dS, delta.data());
        gemm_t<T>(false, false, rows, HS, kend, T(d.scale), dS, kend, kb, k.row, T(0),
                  at(dq, b, i0, h), dq.row);
        gemm_t<T>(true, false, kend, HS, rows, T(d.scale), dS, kend, qi, q.row, T(1), dkb, dk.row);
      }
    }
  });
}

template void attention_forward<float>(const AttentionDims&, HeadView<const float>,
                                       HeadView<const float>, HeadView<const float>,
                                       HeadView<float>, float*);
template void attention_forward<double>(const AttentionDims&, HeadView<const double>,
                                        HeadView<const double>, HeadView<const double>,
                                        HeadView<double>, double*);
template void attention_backward<float>(const AttentionDims&, HeadView<const float>,
                                        HeadView<const float>, HeadView<const float>,
                                        HeadView<const float>, const float*, HeadView<const float>,
                                        HeadView<float>, HeadView<float>, HeadView<float>);
template void attention_backward<double>(const AttentionDims&, HeadView<const double>,
                                         HeadView<const double>, HeadView<const double>,
                                         HeadView<const double>, const double*,
                                         HeadView<const double>, HeadView<double>, HeadView<double>,
                                         HeadView<double>);

}  // namespace rlft::kernels
