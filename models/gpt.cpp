// GPT-2-style decoder (see gpt.h for the architecture in math).
#include "models/gpt.h"

#include <cmath>
#include <limits>

namespace rlft::models {

// ---- config ------------------------------------------------------------------------------

GPTConfig GPTConfig::named(const std::string& name) {
  GPTConfig c;
  if (name == "nano") {
    c.n_layer = 2;
    c.n_embd = 64;
    c.n_head = 2;
    c.block_size = 64;
  } else if (name == "micro") {
    c.n_layer = 4;
    c.n_embd = 128;
    c.n_head = 4;
    c.block_size = 128;
  } else if (name == "mini") {
    c.n_layer = 6;
    c.n_embd = 256;
    c.n_head = 8;
    c.block_size = 256;
  } else {
    throw Error(str("gpt: unknown model '", name, "' (expected nano, micro or mini)"));
  }
  return c;
}

namespace {
std::string describe_size(const GPTConfig& c) {
  return str("a model of vocab_size ", c.vocab_size, ", block_size ", c.block_size, ", n_layer ",
             c.n_layer, ", n_embd ", c.n_embd);
}
}  // namespace

void GPTConfig::validate() const {
  RLFT_CHECK(vocab_size > 0, "gpt: vocab_size must be positive, got ", vocab_size);
  RLFT_CHECK(block_size > 0, "gpt: block_size must be positive, got ", block_size);
  RLFT_CHECK(n_layer > 0, "gpt: n_layer must be positive, got ", n_layer);
  RLFT_CHECK(n_head > 0 && n_embd > 0 && n_embd % n_head == 0, "gpt: n_embd (", n_embd,
             ") must be a positive multiple of n_head (", n_head, ")");
  RLFT_CHECK(dropout >= 0 && dropout < 1, "gpt: dropout must be in [0, 1), got ", dropout);
  RLFT_CHECK(is_floating(dtype), "gpt: dtype must be float32 or float64, got ", dtype);
  // Sizes a toy engine can build: a mistyped option or a corrupt checkpoint's config must be an
  // error here, not minutes of allocating (or the OOM killer) in the constructor.
  RLFT_CHECK(vocab_size <= kMaxVocab, "gpt: vocab_size ", vocab_size, " is over the limit of ",
             kMaxVocab);
  RLFT_CHECK(block_size <= kMaxBlockSize, "gpt: block_size ", block_size, " is over the limit of ",
             kMaxBlockSize);
  RLFT_CHECK(n_layer <= kMaxLayers, "gpt: n_layer ", n_layer, " is over the limit of ", kMaxLayers);
  RLFT_CHECK(n_embd <= kMaxEmbd, "gpt: n_embd ", n_embd, " is over the limit of ", kMaxEmbd);
  const double params = parameter_count();
  RLFT_CHECK(params <= double(kMaxParameters), "gpt: ", describe_size(*this), " has ",
             int64_t(params), " parameters, over the limit of ", kMaxParameters);
}

double GPTConfig::parameter_count() const {
  const double C = double(n_embd), V = double(vocab_size), T = double(block_size);
  // Per block: c_attn 3C·C + 3C, c_proj C·C + C, c_fc 4C·C + 4C, mlp c_proj 4C·C + C, two
  // layer norms 4C.
  const double block = 12 * C * C + 13 * C;
  return (V + T) * C + double(n_layer) * block + 2 * C + (tie_weights ? 0 : V * C) +
         (value_head ? C + 1 : 0) + (reward_head ? C + 1 : 0);
}

json::Value GPTConfig::to_json() const {
  json::Value v = json::Value::object();
  v.set("vocab_size", vocab_size);
  v.set("block_size", block_size);
  v.set("n_layer", n_layer);
  v.set("n_head", n_head);
  v.set("n_embd", n_embd);
  v.set("dropout", dropout);
  v.set("tie_weights", tie_weights);
  v.set("value_head", value_head);
  v.set("reward_head", reward_head);
  v.set("dtype", dtype_name(dtype));
  return v;
}

GPTConfig GPTConfig::from_json(const json::Value& v) {
  GPTConfig c;
  c.vocab_size = v.at("vocab_size").as_int();
  c.block_size = v.at("block_size").as_int();
  c.n_layer = v.at("n_layer").as_int();
  c.n_head = v.at("n_head").as_int();
  c.n_embd = v.at("n_embd").as_int();
  c.dropout = v.get_or("dropout", 0.0);
  c.tie_weights = v.get_or("tie_weights", true);
  c.value_head = v.get_or("value_head", false);
  c.reward_head = v.get_or("reward_head", false);
  const std::string dt = v.get_or("dtype", "float32");
  RLFT_CHECK(dt == "float32" || dt == "float64", "gpt: dtype '", dt,
             "' in config (expected float32 or float64)");
  c.dtype = dt == "float64" ? DType::f64 : DType::f32;
  c.validate();
  return c;
}

namespace {

void init_linear(nn::Linear& l, double std, Generator& gen) {
  nn::normal_(l.weight, 0.0, std, gen);
  if (l.bias.defined()) l.bias.fill_(0.0);
}

}  // namespace

// ---- attention ------------------------------------------------------------------------------

CausalSelfAttention::CausalSelfAttention(const GPTConfig& cfg, Generator& gen)
    : n_head_(cfg.n_head), dropout_(cfg.dropout) {
  c_attn = register_module("c_attn",
                           std::make_shared<nn::Linear>(cfg.n_embd, 3 * cfg.n_embd, true, gen));
  c_proj =
      register_module("c_proj", std::make_shared<nn::Linear>(cfg.n_embd, cfg.n_embd, true, gen));
}

Tensor CausalSelfAttention::forward(const Tensor& x, const AttentionMask& mask, KVCache* cache,
                                    int layer) {
  const int64_t B = x.size(0), T = x.size(1), C = x.size(2), NH = n_head_, HS = C / NH;
  if (mask.fused) {
    // One op reads q, k, v from the projection's [B, T, 3, NH, HS] view and writes y as
    // [B, T, C]: no permutes, no [B, NH, T, Tk] scores in memory (engine/ops_attention.cpp).
    const Tensor qkv = c_attn->forward(x).view({B, T, 3, NH, HS});
    AttentionOptions opt;
    opt.key_mask = mask.key_mask;
    if (cache) {
      const int64_t L = cache->length;
      cache->keys[size_t(layer)].narrow(2, L, T).copy_(qkv.select(2, 1).permute({0, 2, 1, 3}));
      cache->values[size_t(layer)].narrow(2, L, T).copy_(qkv.select(2, 2).permute({0, 2, 1, 3}));
      opt.keys = cache->keys[size_t(layer)].narrow(2, 0, L + T);
      opt.values = cache->values[size_t(layer)].narrow(2, 0, L + T);
    }
    const Tensor y = causal_self_attention(qkv, opt);
    return dropout(c_proj->forward(y), dropout_, is_training(), dropout_gen_);
  }
  const Tensor& mask_bias = mask.bias;
  // One GEMM for q, k and v, then a view [3, B, NH, T, HS].
  const Tensor qkv = c_attn->forward(x).reshape({B, T, 3, NH, HS}).permute({2, 0, 3, 1, 4});
  const Tensor q = mul(qkv.select(0, 0), 1.0 / std::sqrt(double(HS)));  // scaled before the GEMM
  Tensor k = qkv.select(0, 1), v = qkv.select(0, 2);
  if (cache) {
    const int64_t L = cache->length;
    cache->keys[size_t(layer)].narrow(2, L, T).copy_(k);
    cache->values[size_t(layer)].narrow(2, L, T).copy_(v);
    k = cache->keys[size_t(layer)].narrow(2, 0, L + T);
    v = cache->values[size_t(layer)].narrow(2, 0, L + T);
  }
  Tensor att = add(matmul(q, k.transpose(-2, -1)), mask_bias);  // [B, NH, T, Tk]
  att = softmax(att, -1);
  att = dropout(att, dropout_, is_training(), dropout_gen_);
  const Tensor y = matmul(att, v).permute({0, 2, 1, 3}).reshape({B, T, C});  // heads side by side
  return dropout(c_proj->forward(y), dropout_, is_training(), dropout_gen_);
}

// ---- MLP and block -----------------------------------------------------------------------------

GPTMLP::GPTMLP(const GPTConfig& cfg, Generator& gen) : dropout_(cfg.dropout) {
  c_fc =
      register_module("c_fc", std::make_shared<nn::Linear>(cfg.n_embd, 4 * cfg.n_embd, true, gen));
  c_proj = register_module("c_proj",
                           std::make_shared<nn::Linear>(4 * cfg.n_embd, cfg.n_embd, true, gen));
}

Tensor GPTMLP::forward(const Tensor& x) {
  return dropout(c_proj->forward(gelu(c_fc->forward(x))), dropout_, is_training(),
                 dropout_gen_);
}

GPTBlock::GPTBlock(const GPTConfig& cfg, Generator& gen) {
  ln_1 = register_module("ln_1", std::make_shared<nn::LayerNorm>(cfg.n_embd));
  attn = register_module("attn", std::make_shared<CausalSelfAttention>(cfg, gen));
  ln_2 = register_module("ln_2", std::make_shared<nn::LayerNorm>(cfg.n_embd));
  mlp = register_module("mlp", std::make_shared<GPTMLP>(cfg, gen));
}

Tensor GPTBlock::forward(const Tensor& x, const AttentionMask& mask, KVCache* cache, int layer) {
  const Tensor x1 = add(x, attn->forward(ln_1->forward(x), mask, cache, layer));
  return add(x1, mlp->forward(ln_2->forward(x1)));
}

// ---- GPT ------------------------------------------------------------------------------------

GPT::GPT(const GPTConfig& cfg, Generator& gen)
    : cfg_(cfg), dropout_gen_(std::make_shared<Generator>(gen.seed() + 1)) {
  cfg_.validate();
  // The layers' own (PyTorch) init is replaced below; build them from a scratch stream so the
  // GPT-2 init alone decides what `gen` yields.
  Generator scratch(0);
  wte =
      register_module("wte", std::make_shared<nn::Embedding>(cfg.vocab_size, cfg.n_embd, scratch));
  wpe =
      register_module("wpe", std::make_shared<nn::Embedding>(cfg.block_size, cfg.n_embd, scratch));
  auto blocks = register_module("h", std::make_shared<nn::Sequential>());
  for (int64_t l = 0; l < cfg.n_layer; ++l) {
    h.push_back(std::make_shared<GPTBlock>(cfg, scratch));
    blocks->push_back(h.back());
  }
  ln_f = register_module("ln_f", std::make_shared<nn::LayerNorm>(cfg.n_embd));
  if (!cfg.tie_weights)
    lm_head = register_module(
        "lm_head", std::make_shared<nn::Linear>(cfg.n_embd, cfg.vocab_size, false, scratch));
  if (cfg.value_head)
    value_head =
        register_module("value_head", std::make_shared<nn::Linear>(cfg.n_embd, 1, true, scratch));
  if (cfg.reward_head)
    reward_head =
        register_module("reward_head", std::make_shared<nn::Linear>(cfg.n_embd, 1, true, scratch));
  to(cfg.dtype);

  // GPT-2 init.
  const double std = 0.02, proj_std = 0.02 / std::sqrt(2.0 * double(cfg.n_layer));
  nn::normal_(wte->weight, 0.0, std, gen);
  nn::normal_(wpe->weight, 0.0, std, gen);
  for (auto& b : h) {
    init_linear(*b->attn->c_attn, std, gen);
    init_linear(*b->attn->c_proj, proj_std, gen);
    init_linear(*b->mlp->c_fc, std, gen);
    init_linear(*b->mlp->c_proj, proj_std, gen);
    b->attn->dropout_gen_ = dropout_gen_.get();
    b->mlp->dropout_gen_ = dropout_gen_.get();
  }
  if (lm_head) init_linear(*lm_head, std, gen);
  if (value_head) init_linear(*value_head, std, gen);
  if (reward_head) init_linear(*reward_head, std, gen);
}

Tensor GPT::forward(const Tensor& tokens) { return forward(tokens, Tensor(), nullptr); }

KVCache GPT::make_cache(int64_t batch, int64_t capacity) const {
  RLFT_CHECK(batch > 0 && capacity > 0, "gpt: cache needs a positive batch and capacity, got ",
             batch, " and ", capacity);
  KVCache c;
  c.batch = batch;
  c.capacity = capacity;
  const int64_t HS = cfg_.n_embd / cfg_.n_head;
  for (int64_t l = 0; l < cfg_.n_layer; ++l) {
    c.keys.push_back(Tensor::zeros({batch, cfg_.n_head, capacity, HS}, cfg_.dtype, device()));
    c.values.push_back(Tensor::zeros({batch, cfg_.n_head, capacity, HS}, cfg_.dtype, device()));
  }
  c.key_mask.assign(size_t(batch * capacity), 0);
  c.next_position.assign(size_t(batch), 0);
  return c;
}

Tensor additive_attention_mask(const Tensor& key_real, int64_t B, int64_t T, int64_t Tk,
                               int64_t past, int64_t n_head, DType dtype, Device device) {
  RLFT_CHECK(!key_real.defined() || (key_real.shape() == Shape({B, Tk}) &&
                                     key_real.dtype() == DType::b8 && key_real.device() == device),
             "additive_attention_mask: key flags ",
             key_real.defined()
                 ? str(key_real.shape(), " ", key_real.dtype(), " on ", key_real.device())
                 : std::string("(none)"),
             " for B = ", B, " rows of Tk = ", Tk, " keys (expected bool ", Shape({B, Tk}), " on ",
             device, ")");
  RLFT_CHECK(past >= 0 && past + T <= Tk, "additive_attention_mask: past ", past, " + T ", T,
             " must be within Tk ", Tk);
  // query positions past + i down, key positions j across (f32: exact for any context)
  const Tensor q = Tensor::arange(double(past), double(past + T), 1.0, DType::f32, device)
                       .reshape({T, 1});
  const Tensor k = Tensor::arange(0.0, double(Tk), 1.0, DType::f32, device).reshape({1, Tk});
  // visible: key j's flag where j < qi, else j = qi ([T, Tk] and [B, 1, 1, Tk] broadcast to
  // [B, 1, T, Tk]); without flags, j ≤ qi
  const Tensor visible = key_real.defined()
                             ? where(lt(k, q), key_real.reshape({B, 1, 1, Tk}), eq(k, q))
                             : le(k, q).reshape({1, 1, T, Tk});
  const Tensor bias = where(visible, Tensor::zeros({}, dtype, device),
                            Tensor::full({}, -std::numeric_limits<double>::infinity(), dtype, device));
  return bias.expand({B, n_head, T, Tk}).contiguous();  // the scores' shape: the add's fast path
}

Tensor additive_attention_mask(const std::vector<bool>& key_real, int64_t B, int64_t T, int64_t Tk,
                               int64_t past, int64_t n_head, DType dtype, Device device) {
  RLFT_CHECK(int64_t(key_real.size()) == B * Tk, "additive_attention_mask: ", key_real.size(),
             " key flags for B = ", B, " rows of Tk = ", Tk, " keys");
  return additive_attention_mask(Tensor::from_bools(key_real, {B, Tk}).to(device), B, T, Tk, past,
                                 n_head, dtype, device);
}

Tensor position_ids(const Tensor& real, int64_t B, int64_t T, Device device) {
  if (!real.defined())
    return Tensor::arange(T, DType::i64, device).reshape({1, T}).expand({B, T}).contiguous();
  RLFT_CHECK(real.shape() == Shape({B, T}) && real.dtype() == DType::b8, "position_ids: flags ",
             real.shape(), " ", real.dtype(), " (expected bool ", Shape({B, T}), ")");
  // The real tokens before t: the prefix sums of the flags shifted right by one.
  const Tensor shifted =
      concat({Tensor::zeros({B, 1}, DType::b8, real.device()), real.narrow(1, 0, T - 1)}, 1);
  return where(real, cumsum(shifted, 1), Tensor::zeros({}, DType::i64, real.device()));
}

Tensor GPT::forward(const Tensor& tokens, const Tensor& attention_mask, KVCache* cache) {
  RLFT_CHECK(tokens.defined() && tokens.dim() == 2 && tokens.dtype() == DType::i64,
             "gpt: tokens must be an int64 tensor [B, T], got ",
             tokens.defined() ? tokens.shape() : Shape{},
             tokens.defined() ? str(" ", tokens.dtype()) : std::string(" (undefined)"));
  RLFT_CHECK(tokens.device() == device(), "gpt: tokens on ", tokens.device(), " but the model on ",
             device(), " (move the batch with .to(model.device()))");
  const int64_t B = tokens.size(0), T = tokens.size(1);
  RLFT_CHECK(T > 0 && B > 0, "gpt: empty batch ", tokens.shape());
  if (attention_mask.defined()) {
    RLFT_CHECK(attention_mask.shape() == tokens.shape(), "gpt: attention_mask ",
               attention_mask.shape(), " does not match tokens ", tokens.shape());
  }
  const int64_t past = cache ? cache->length : 0, Tk = past + T;
  if (cache) {
    RLFT_CHECK(!grad_enabled(), "gpt: the KV cache is for inference; run it under NoGradGuard");
    RLFT_CHECK(cache->batch == B && int64_t(cache->keys.size()) == cfg_.n_layer,
               "gpt: cache for batch ", cache->batch, " and ", cache->keys.size(),
               " layers used with batch ", B, " and ", cfg_.n_layer, " layers");
    RLFT_CHECK(Tk <= cache->capacity, "gpt: cache of ", cache->capacity, " positions cannot take ",
               T, " more after ", past);
  }

  // Key j is visible to query i when j ≤ past + i and key j is a real token, or j is the query
  // itself (a pad query attends to itself, so no row is empty). The fused op (the CPU, unless
  // attention dropout is active: the composed path keeps dropout's random stream as it was)
  // takes the per-key mask and applies causality itself; the composed path gets the additive
  // mask [B, NH, T, Tk] (0 or −∞). On CUDA the composed path (cuBLAS batched products) is used:
  // the fused kernel's version 1 measured 3–7× slower than it on an H200 (BENCHMARKS.md).
  AttentionMask mask;
  mask.fused = device().is_cpu() && !(is_training() && cfg_.dropout > 0);
  Tensor positions;  // [B, T] int64: each row counts its real tokens (pads get 0, read by none)
  if (!cache && T <= cfg_.block_size) {
    // Training and scoring (no cache, every row within the context): the position ids and the
    // key flags are built from the mask where the model lives, nothing read back, so on a GPU
    // the forward queues its kernels without waiting for the device.
    const Tensor real =
        attention_mask.defined()
            ? ne(attention_mask.to(device()), Tensor::zeros({}, attention_mask.dtype(), device()))
            : Tensor();
    positions = position_ids(real, B, T, device());
    if (mask.fused) {
      // On the CPU the flags are at hand: a mask without pads is no mask.
      bool any_pad = false;
      if (real.defined()) {
        const uint8_t* f = real.data<uint8_t>();
        for (int64_t n = 0; n < B * T && !any_pad; ++n) any_pad = f[n] == 0;
      }
      if (any_pad) mask.key_mask = real;
    } else {
      mask.bias = additive_attention_mask(real, B, T, Tk, 0, cfg_.n_head, cfg_.dtype, device());
    }
  } else {
    // With a cache (decoding) the positions continue each row's count, and the cache keeps the
    // key flags on the host; a row longer than the context is named here.
    std::vector<int64_t> real(size_t(B * T), 1);
    if (attention_mask.defined()) {
      const std::vector<double> m = attention_mask.to_vector();
      for (size_t i = 0; i < m.size(); ++i) real[i] = m[i] != 0;
    }
    std::vector<int64_t> pos(size_t(B * T), 0);
    for (int64_t b = 0; b < B; ++b) {
      int64_t n = cache ? cache->next_position[size_t(b)] : 0;
      for (int64_t t = 0; t < T; ++t) {
        if (!real[size_t(b * T + t)]) continue;
        RLFT_CHECK(n < cfg_.block_size, "gpt: sequence ", b,
                   " has more than block_size = ", cfg_.block_size,
                   " real tokens (the model's context)");
        pos[size_t(b * T + t)] = n++;
      }
    }
    // Which keys are real tokens [B, Tk]: the cache's past keys, then this call's.
    std::vector<bool> keys(size_t(B * Tk));
    bool any_pad = false;
    for (int64_t b = 0; b < B; ++b)
      for (int64_t j = 0; j < Tk; ++j) {
        const bool k = j < past ? cache->key_mask[size_t(b * cache->capacity + j)] != 0
                                : real[size_t(b * T + (j - past))] != 0;
        keys[size_t(b * Tk + j)] = k;
        any_pad = any_pad || !k;
      }
    if (mask.fused) {
      if (any_pad) mask.key_mask = Tensor::from_bools(keys, {B, Tk});
    } else {
      mask.bias =
          additive_attention_mask(keys, B, T, Tk, past, cfg_.n_head, cfg_.dtype, tokens.device());
    }
    if (cache) {
      for (int64_t b = 0; b < B; ++b)
        for (int64_t t = 0; t < T; ++t) {
          cache->key_mask[size_t(b * cache->capacity + past + t)] =
              uint8_t(real[size_t(b * T + t)]);
          cache->next_position[size_t(b)] += real[size_t(b * T + t)];
        }
    }
    positions = Tensor::from_vector(pos, {B, T}).to(tokens.device());
  }

  Tensor x = add(wte->forward(tokens), wpe->forward(positions));  // [B, T, C]
  x = dropout(x, cfg_.dropout, is_training(), dropout_gen_.get());
  for (size_t l = 0; l < h.size(); ++l) x = h[l]->forward(x, mask, cache, int(l));
  if (cache) cache->length = Tk;
  return ln_f->forward(x);
}

Tensor GPT::lm_logits(const Tensor& hidden) const {
  return linear(hidden, lm_head ? lm_head->weight : wte->weight);
}

Tensor GPT::values(const Tensor& hidden) const {
  RLFT_CHECK(value_head, "gpt: this model has no value head (GPTConfig::value_head)");
  return value_head->forward(hidden).squeeze(-1);
}

Tensor GPT::rewards(const Tensor& hidden, const Tensor& attention_mask) const {
  RLFT_CHECK(reward_head, "gpt: this model has no reward head (GPTConfig::reward_head)");
  RLFT_CHECK(hidden.dim() == 3, "gpt: rewards needs hidden states [B, T, C], got ", hidden.shape());
  const int64_t B = hidden.size(0), T = hidden.size(1);
  std::vector<int64_t> last(size_t(B), T - 1);
  if (attention_mask.defined()) {
    RLFT_CHECK(attention_mask.shape() == Shape({B, T}), "gpt: rewards: attention_mask ",
               attention_mask.shape(), " does not match hidden ", hidden.shape());
    const std::vector<double> m = attention_mask.to_vector();
    for (int64_t b = 0; b < B; ++b) {
      int64_t t = T - 1;
      while (t >= 0 && m[size_t(b * T + t)] == 0) --t;
      RLFT_CHECK(t >= 0, "gpt: rewards: sequence ", b, " has no real token");
      last[size_t(b)] = t;
    }
  }
  const Tensor r = reward_head->forward(hidden).squeeze(-1);  // [B, T]
  return gather(r, 1, Tensor::from_vector(last, {B, 1}).to(r.device())).squeeze(1);
}

}  // namespace rlft::models
