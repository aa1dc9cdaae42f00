// Batched autoregressive sampling from a GPT with a KV cache, and the per-token log-probs
// every RL algorithm needs.
//
// generate(): the prompts [B, Tp] are left-padded (every row's last prompt position is a real
// token). The prompt batch is run once (prefill), filling the cache; then each step feeds one
// token per row. A row stops after it emits EOS (or when max_new_tokens is reached); from then
// on it is filled with PAD and masked out. The loop ends when every row has stopped.
//
// Sampling at step t, for logits ℓ [B, V] of the last position:
//   z = ℓ / τ                      (τ = temperature)
//   greedy:  y = argmax ℓ
//   else:    p = softmax(z); keep the k most likely (top_k > 0), then the smallest set of most
//            likely tokens whose mass reaches top_p (top_p < 1); renormalise; y ~ p (Philox
//            stream of `gen`, one uniform per row per step)
//   log_prob = log softmax(z)[y]   — under the temperature-scaled distribution, without the
//            top-k/top-p truncation: exactly what sequence_log_probs() recomputes from a full
//            forward pass over the generated tokens (tests/models/test_gpt.cpp).
//
// All output tensors are aligned with `tokens`: entry [b, t] is about token t, and they are on
// the model's device. The prompts may be on any device (they are read on the host).
#pragma once

#include <cstdint>
#include <vector>

#include "models/gpt.h"

namespace rlft::models {

struct SamplingConfig {
  int64_t max_new_tokens = 64;  // at most this many tokens per row
  double temperature = 1.0;     // τ > 0; scales the logits before softmax
  int64_t top_k = 0;            // keep the k most likely tokens (0 = all)
  double top_p = 1.0;           // nucleus: smallest set with mass >= top_p (1 = all)
  bool greedy = false;          // argmax instead of sampling (log-probs still use τ)
  bool use_cache = true;        // false: recompute the whole prefix every step (reference, bench)
  int64_t eos_id = -1;          // a row stops after emitting it (-1: never)
  int64_t pad_id = 0;           // fills a row after it stops
};

struct Generation {
  Tensor tokens;  // [B, Tp + S] int64: the prompts then S generated steps (S ≤ max_new_tokens)
  Tensor attention_mask;  // [B, Tp + S] model dtype: 1 on real prompt tokens and on response tokens
  Tensor response_mask;   // [B, Tp + S] model dtype: 1 on generated tokens up to and including EOS
  Tensor log_probs;  // [B, Tp + S] model dtype: log p_τ(token | prefix) where response_mask is 1,
                     // else 0
  int64_t prompt_length = 0;              // Tp
  std::vector<int64_t> response_lengths;  // [B] tokens generated per row (EOS included)
};

// prompt_mask [B, Tp] (nonzero = real); undefined means no padding. Runs under NoGradGuard
// and in eval mode (dropout off); the model's training flag is restored afterwards.
Generation generate(GPT& model, const Tensor& prompt_tokens, const Tensor& prompt_mask,
                    const SamplingConfig& cfg, Generator& gen);

// log softmax(logits / τ)[targets] per row: logits [N, V], targets [N] int64 → [N]
// (differentiable in the logits). The engine's fused softmax_logprob op, without the entropy.
Tensor token_log_probs(const Tensor& logits, const Tensor& targets, double temperature = 1.0);

// One full forward pass (softmax_logprob over the logits): out[b, t] = log p_τ(tokens[b, t] |
// tokens[b, < t]) for t ≥ 1, and out[b, 0] = 0. tokens [B, T], attention_mask [B, T] or undefined →
// [B, T] (differentiable).
Tensor sequence_log_probs(GPT& model, const Tensor& tokens, const Tensor& attention_mask,
                          double temperature = 1.0);

// The sampling filter alone, on one row of probabilities (in place, renormalised): top-k then
// top-p, ties broken by token id. Exposed for tests.
void filter_top_k_top_p(std::vector<double>& probs, int64_t top_k, double top_p);

}  // namespace rlft::models
