// GPT: a GPT-2-style decoder-only transformer on the engine, with optional value and reward
// heads so that the policy, the critic and the reward model of RLHF share one backbone class.
//
// Shapes: B batch, T time (query positions), Tk key positions (past + current), C = n_embd,
// NH = n_head, HS = C / NH head size, V vocabulary.
//
//   x_0      = wte[tokens] + wpe[positions]                             [B, T, C]
//   for each block l = 1 … N (pre-LayerNorm):
//     q, k, v = split(LN_1(x) W_attn^T + b_attn)  into NH heads          [B, NH, T, HS] each
//     A       = softmax(q k^T / √HS + M)          M = 0 where allowed, −∞ where masked
//     x       = x + (concat_heads(A v) W_proj^T + b_proj)
//     x       = x + W_fc2 · gelu(W_fc1 · LN_2(x) + b_fc1) + b_fc2       (hidden width 4C)
//   h        = LN_f(x_N)                                                 forward() returns h
//   logits   = h · wte^T          (tied; untied: h · lm_head^T)          [B, T, V]
//   values   = h · w_v + b_v                                             [B, T]  (critic)
//   reward   = (h · w_r + b_r) at the last non-pad token of each row     [B]     (reward model)
//
// On the CPU, A and A·v are one fused op (causal_self_attention, engine/ops.h) that reads q,
// k, v from the projection's output in place and never stores A; elsewhere (CUDA), and when
// attention dropout is active, the composed ops above run as written.
//
// The mask M is causal (key j ≤ query i) and, given an attention_mask, also hides padding
// keys. A query always sees itself, so a pad query's row is never all −∞ (its output is
// garbage that nothing downstream reads). Positions count real tokens only: with left padding,
// the first real token of every row has position 0, so a padded batch gives each sequence the
// same logits it gets alone (tests/models/test_gpt.cpp).
//
// Init (GPT-2): Linear and embedding weights ~ N(0, 0.02), the residual projections
// (attn.c_proj, mlp.c_proj) ~ N(0, 0.02/√(2N)), biases 0, LayerNorm weight 1 and bias 0.
//
// Tensor names follow Hugging Face's GPT-2 (`wte.weight`, `wpe.weight`, `h.0.ln_1.weight`,
// `h.0.attn.c_attn.weight`, `h.0.attn.c_proj.weight`, `h.0.ln_2.weight`, `h.0.mlp.c_fc.weight`,
// `h.0.mlp.c_proj.weight`, `ln_f.weight`, … plus `lm_head.weight` when untied,
// `value_head.weight/bias`, `reward_head.weight/bias`). One difference: our Linear stores its
// weight as [out, in] like torch.nn.Linear, while HF GPT-2's Conv1D stores [in, out]; transpose
// the four matrices per block (c_attn, attn.c_proj, c_fc, mlp.c_proj) to move between them
// (docs/checkpoints.md).
//
// The model works in float32 (default) or float64 (GPTConfig::dtype; the gradient checks), on
// the CPU or, after to(Device::cuda(i)), on a GPU: the tokens must then be on that device too;
// the attention mask may be anywhere (it is moved there; without a KV cache the positions and
// the attention's mask are built there from it, with a cache they are built on the host).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "engine/json.h"
#include "engine/nn.h"

namespace rlft::models {

struct GPTConfig {
  int64_t vocab_size = 259;  // V (tokenizer's vocab_size, specials included)
  int64_t block_size = 128;  // context: the largest position + 1 (HF GPT-2: n_positions)
  int64_t n_layer = 4;       // N blocks
  int64_t n_head = 4;        // NH; must divide n_embd
  int64_t n_embd = 128;      // C
  double dropout = 0.0;      // on embeddings, attention probabilities and residual branches
  bool tie_weights = true;   // LM head = token embedding (GPT-2); false adds lm_head.weight
  bool value_head = false;   // adds value_head (critic, one scalar per position)
  bool reward_head = false;  // adds reward_head (reward model, read at the last real token)
  DType dtype = DType::f32;  // f32, or f64 for gradient checks

  // "nano" (2 layers, C 64, 2 heads, context 64), "micro" (4, 128, 4, 128),
  // "mini" (6, 256, 8, 256); other names are an error listing these.
  static GPTConfig named(const std::string& name);
  // Limits of validate(): far above the named models, far below what would exhaust memory.
  static constexpr int64_t kMaxVocab = int64_t(1) << 24, kMaxBlockSize = int64_t(1) << 20,
                           kMaxLayers = 1024, kMaxEmbd = 65536,
                           kMaxParameters = int64_t(1) << 31;  // 8 GiB of float32 weights
  void validate() const;  // sizes positive and within the limits, NH | C; errors name the field
  double parameter_count() const;  // the weights of GPT(*this), counted without building it
  json::Value to_json() const;
  static GPTConfig from_json(const json::Value& v);
};

// Keys and values of every layer for incremental decoding (inference only: grad mode off).
struct KVCache {
  std::vector<Tensor> keys, values;  // per layer [B, NH, capacity, HS]
  int64_t batch = 0, capacity = 0;
  int64_t length = 0;                  // positions filled so far
  std::vector<uint8_t> key_mask;       // [B, capacity]: 1 where the key is a real token
  std::vector<int64_t> next_position;  // [B]: real tokens seen so far = next position id
};

// The attention mask of one forward, built once and shared by every layer, in the form the
// attention path of this forward reads (GPT::forward picks the path):
//   fused (the CPU, unless attention dropout is active): key_mask [B, Tk] (b8, 1 = real key),
//     undefined when every key is real; causality is the op's own (causal_self_attention).
//   composed (other devices, or dropout > 0 while training): bias [B, NH, T, Tk], 0 where key j
//     is visible to query i and −∞ where not.
struct AttentionMask {
  bool fused = false;
  Tensor key_mask;
  Tensor bias;
};

// The composed path's additive mask [B, n_head, T, Tk] of `dtype` on `device`: 0 where query i
// (position past + i) sees key j — j < past + i and key j real, or j = past + i itself (a pad
// query attends to itself, so no row is empty) — and −∞ elsewhere. key_real: a bool [B, Tk]
// tensor on `device` (true: a real token), or undefined when every key is real (the causal
// mask). Built where the model lives from the flags and two aranges, so the host neither loops
// over nor uploads B·T·Tk values (GPT::forward's composed path, which a GPU always takes).
Tensor additive_attention_mask(const Tensor& key_real, int64_t B, int64_t T, int64_t Tk,
                               int64_t past, int64_t n_head, DType dtype, Device device);
// The same from B·Tk host flags (row-major [B, Tk]): one upload of B·Tk bytes.
Tensor additive_attention_mask(const std::vector<bool>& key_real, int64_t B, int64_t T,
                               int64_t Tk, int64_t past, int64_t n_head, DType dtype,
                               Device device);

// Position ids [B, T] (int64) on the device of `real` (a bool [B, T] tensor, true: a real token):
// each row counts its real tokens from 0, so a left-padded row starts at 0 at its first real
// token; a pad gets 0 (nothing reads it). Undefined `real`: 0..T-1 in every row, on `device`.
// Built with a cumsum where the tokens are, nothing read back.
Tensor position_ids(const Tensor& real, int64_t B, int64_t T, Device device);

// The attention and the block take a mask and a cache, so their forward hides Module's
// one-tensor forward on purpose: a one-tensor call does not compile. Clang warns of the hiding.
#if defined(__clang__)
#pragma clang diagnostic push
#pragma clang diagnostic ignored "-Woverloaded-virtual"
#endif
class CausalSelfAttention : public nn::Module {
 public:
  CausalSelfAttention(const GPTConfig& cfg, Generator& gen);
  // x [B, T, C]; with a cache, k and v of this call are appended to layer `layer` of it and
  // attention runs over all cached keys.
  Tensor forward(const Tensor& x, const AttentionMask& mask, KVCache* cache, int layer);
  std::shared_ptr<nn::Linear> c_attn, c_proj;

 private:
  int64_t n_head_;
  double dropout_;
  Generator* dropout_gen_ = nullptr;
  friend class GPT;
};

class GPTMLP : public nn::Module {
 public:
  GPTMLP(const GPTConfig& cfg, Generator& gen);
  Tensor forward(const Tensor& x) override;
  std::shared_ptr<nn::Linear> c_fc, c_proj;

 private:
  double dropout_;
  Generator* dropout_gen_ = nullptr;
  friend class GPT;
};

class GPTBlock : public nn::Module {
 public:
  GPTBlock(const GPTConfig& cfg, Generator& gen);
  Tensor forward(const Tensor& x, const AttentionMask& mask, KVCache* cache, int layer);
  std::shared_ptr<nn::LayerNorm> ln_1, ln_2;
  std::shared_ptr<CausalSelfAttention> attn;
  std::shared_ptr<GPTMLP> mlp;
};
#if defined(__clang__)
#pragma clang diagnostic pop
#endif

class GPT : public nn::Module {
 public:
  // Parameters are initialised from `gen` (GPT-2 init, see above).
  GPT(const GPTConfig& cfg, Generator& gen);

  const GPTConfig& config() const { return cfg_; }
  // Where the parameters live (Module::to moves them); inputs must be there too.
  Device device() const { return wte->weight.device(); }

  // tokens [B, T] int64 → hidden states h [B, T, C] (after ln_f), all positions real.
  Tensor forward(const Tensor& tokens) override;
  // attention_mask [B, T] (any dtype; nonzero = real token, 0 = padding; undefined = all
  // real). With a cache (grad mode must be off), the tokens continue the cached sequences:
  // their keys are appended and their positions continue each row's count of real tokens.
  Tensor forward(const Tensor& tokens, const Tensor& attention_mask, KVCache* cache = nullptr);

  // h [..., C] → logits [..., V].
  Tensor lm_logits(const Tensor& hidden) const;
  // h [B, T, C] → values [B, T] (needs value_head).
  Tensor values(const Tensor& hidden) const;
  // h [B, T, C] → rewards [B]: the reward head at the last position whose mask is nonzero
  // (the last position when the mask is undefined). Needs reward_head.
  Tensor rewards(const Tensor& hidden, const Tensor& attention_mask = Tensor()) const;

  // An empty cache for `batch` sequences of up to `capacity` positions, on the model's device.
  KVCache make_cache(int64_t batch, int64_t capacity) const;

  // The stream dropout draws from; set its state to make a training step reproducible.
  Generator& dropout_generator() { return *dropout_gen_; }

  std::shared_ptr<nn::Embedding> wte, wpe;
  std::vector<std::shared_ptr<GPTBlock>> h;
  std::shared_ptr<nn::LayerNorm> ln_f;
  std::shared_ptr<nn::Linear> lm_head, value_head, reward_head;  // null unless configured

 private:
  GPTConfig cfg_;
  std::shared_ptr<Generator> dropout_gen_;
};

}  // namespace rlft::models
