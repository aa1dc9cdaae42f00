// Batched sampling with a KV cache, and per-token log-probs (see generate.h).
#include "models/generate.h"

#include <algorithm>
#include <numeric>

namespace rlft::models {

Tensor token_log_probs(const Tensor& logits, const Tensor& targets, double temperature) {
  RLFT_CHECK(temperature > 0, "token_log_probs: temperature must be positive, got ", temperature);
  RLFT_CHECK(logits.dim() == 2 && targets.dim() == 1 && targets.size(0) == logits.size(0),
             "token_log_probs: logits [N, V] and targets [N] expected, got ", logits.shape(),
             " and ", targets.shape());
  return softmax_logprob(logits, targets, temperature).first;
}

Tensor sequence_log_probs(GPT& model, const Tensor& tokens, const Tensor& attention_mask,
                          double temperature) {
  const int64_t B = tokens.size(0), T = tokens.size(1);
  RLFT_CHECK(T >= 2, "sequence_log_probs: need at least 2 tokens per row, got ", tokens.shape());
  const Tensor hidden = model.forward(tokens, attention_mask);        // [B, T, C]
  const Tensor logits = model.lm_logits(hidden.narrow(1, 0, T - 1));  // [B, T-1, V]
  const Tensor lp =
      softmax_logprob(logits, tokens.narrow(1, 1, T - 1), temperature).first;  // [B, T-1]
  return concat({Tensor::zeros({B, 1}, lp.dtype(), lp.device()), lp}, 1);
}

void filter_top_k_top_p(std::vector<double>& probs, int64_t top_k, double top_p) {
  const int64_t V = int64_t(probs.size());
  const bool use_k = top_k > 0 && top_k < V, use_p = top_p < 1.0;
  if (!use_k && !use_p) return;
  std::vector<int64_t> order(static_cast<size_t>(V));
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](int64_t a, int64_t b) { return probs[size_t(a)] > probs[size_t(b)]; });
  int64_t keep = use_k ? top_k : V;
  if (use_p) {
    double kept_mass = 0;
    for (int64_t i = 0; i < keep; ++i) kept_mass += probs[size_t(order[size_t(i)])];
    double cum = 0;
    int64_t n = 0;
    while (n < keep) {
      cum += probs[size_t(order[size_t(n)])];
      ++n;
      if (cum >= top_p * kept_mass) break;
    }
    keep = std::max<int64_t>(n, 1);
  }
  double total = 0;
  for (int64_t i = 0; i < keep; ++i) total += probs[size_t(order[size_t(i)])];
  std::vector<double> out(size_t(V), 0.0);
  for (int64_t i = 0; i < keep; ++i)
    out[size_t(order[size_t(i)])] = probs[size_t(order[size_t(i)])] / total;
  probs.swap(out);
}

Generation generate(GPT& model, const Tensor& prompt_tokens, const Tensor& prompt_mask,
                    const SamplingConfig& cfg, Generator& gen) {
  RLFT_CHECK(
      prompt_tokens.defined() && prompt_tokens.dim() == 2 && prompt_tokens.dtype() == DType::i64,
      "generate: prompt tokens must be int64 [B, Tp]");
  RLFT_CHECK(cfg.max_new_tokens > 0, "generate: max_new_tokens must be positive, got ",
             cfg.max_new_tokens);
  RLFT_CHECK(cfg.temperature > 0, "generate: temperature must be positive, got ", cfg.temperature);
  RLFT_CHECK(cfg.top_p > 0 && cfg.top_p <= 1, "generate: top_p must be in (0, 1], got ", cfg.top_p);
  RLFT_CHECK(cfg.top_k >= 0, "generate: top_k must be >= 0, got ", cfg.top_k);
  const GPTConfig& mc = model.config();
  const int64_t B = prompt_tokens.size(0), Tp = prompt_tokens.size(1), V = mc.vocab_size;
  RLFT_CHECK(cfg.pad_id >= 0 && cfg.pad_id < V, "generate: pad_id ", cfg.pad_id,
             " out of range [0, ", V, ")");
  RLFT_CHECK(cfg.eos_id < V, "generate: eos_id ", cfg.eos_id, " out of range [0, ", V, ")");

  const int64_t capacity = Tp + cfg.max_new_tokens;
  std::vector<int64_t> tokens(size_t(B * capacity), cfg.pad_id);
  std::vector<double> attn(size_t(B * capacity), 0.0), resp(size_t(B * capacity), 0.0),
      logp(size_t(B * capacity), 0.0);
  {
    const std::vector<int64_t> pt = prompt_tokens.to_int_vector();
    const std::vector<double> pm =
        prompt_mask.defined() ? prompt_mask.to_vector() : std::vector<double>(size_t(B * Tp), 1.0);
    RLFT_CHECK(prompt_mask.defined() ? prompt_mask.shape() == prompt_tokens.shape() : true,
               "generate: prompt mask ", prompt_mask.defined() ? prompt_mask.shape() : Shape{},
               " does not match prompt tokens ", prompt_tokens.shape());
    for (int64_t b = 0; b < B; ++b) {
      int64_t n_real = 0;
      for (int64_t t = 0; t < Tp; ++t) {
        tokens[size_t(b * capacity + t)] = pt[size_t(b * Tp + t)];
        attn[size_t(b * capacity + t)] = pm[size_t(b * Tp + t)] != 0 ? 1.0 : 0.0;
        n_real += pm[size_t(b * Tp + t)] != 0;
      }
      RLFT_CHECK(pm[size_t(b * Tp + Tp - 1)] != 0, "generate: prompt ", b,
                 " ends with padding; prompts must be left-padded");
      RLFT_CHECK(n_real + cfg.max_new_tokens <= mc.block_size, "generate: prompt ", b, " has ",
                 n_real, " tokens; with max_new_tokens = ", cfg.max_new_tokens,
                 " it exceeds the model's context of ", mc.block_size);
    }
  }

  NoGradGuard no_grad;
  const bool was_training = model.is_training();
  model.eval();
  struct Restore {
    GPT& m;
    bool on;
    ~Restore() { m.train(on); }
  } restore{model, was_training};

  // On a GPU the model, the cache and the logits stay on the device; the bookkeeping (tokens,
  // masks, which rows finished) stays on the host, where the loop decides. Per step that costs
  // one host→device copy of B token ids and two device→host copies of B values (the chosen ids
  // and their log-probs), each a synchronisation; top-k/top-p sampling copies the [B, V]
  // probabilities over as well (the filter is a host loop), and so does multinomial (the
  // engine samples on the host, from the same Philox stream as the CPU). The masks passed to
  // the model stay on the host: GPT::forward reads them there.
  const Device dev = model.device();
  KVCache cache;
  if (cfg.use_cache) cache = model.make_cache(B, capacity);
  auto prefix = [&](int64_t len, const std::vector<int64_t>& v) {
    std::vector<int64_t> out(static_cast<size_t>(B * len));
    for (int64_t b = 0; b < B; ++b)
      std::copy_n(v.begin() + b * capacity, len, out.begin() + b * len);
    return Tensor::from_vector(out, {B, len}).to(dev);
  };
  auto prefix_mask = [&](int64_t len) {
    std::vector<double> out(static_cast<size_t>(B * len));
    for (int64_t b = 0; b < B; ++b)
      std::copy_n(attn.begin() + b * capacity, len, out.begin() + b * len);
    return Tensor::from_vector(out, {B, len});
  };
  // Logits [B, V] for the next token after the first `len` positions.
  auto next_logits = [&](int64_t len) {
    Tensor hidden;
    if (!cfg.use_cache) {
      hidden = model.forward(prefix(len, tokens), prefix_mask(len));
    } else if (cache.length == 0) {
      hidden = model.forward(prefix(len, tokens), prefix_mask(len), &cache);
    } else {
      std::vector<int64_t> step(static_cast<size_t>(B));
      std::vector<double> step_mask(static_cast<size_t>(B));
      for (int64_t b = 0; b < B; ++b) {
        step[size_t(b)] = tokens[size_t(b * capacity + len - 1)];
        step_mask[size_t(b)] = attn[size_t(b * capacity + len - 1)];
      }
      hidden = model.forward(Tensor::from_vector(step, {B, 1}).to(dev),
                             Tensor::from_vector(step_mask, {B, 1}), &cache);
    }
    return model.lm_logits(hidden.select(1, hidden.size(1) - 1));
  };

  std::vector<bool> finished(size_t(B), false);
  Generation out;
  out.prompt_length = Tp;
  out.response_lengths.assign(size_t(B), 0);
  int64_t len = Tp;
  for (int64_t s = 0; s < cfg.max_new_tokens; ++s) {
    const Tensor logits = next_logits(len);  // [B, V]
    const Tensor z = cfg.temperature == 1.0 ? logits : mul(logits, 1.0 / cfg.temperature);
    const Tensor log_softmax_z = log_softmax(z, -1);
    Tensor next;
    if (cfg.greedy) {
      next = argmax(logits, -1);
    } else if (cfg.top_k == 0 && cfg.top_p >= 1.0) {
      next = multinomial(exp(log_softmax_z), &gen);
    } else {
      std::vector<double> probs = exp(log_softmax_z).to_vector(), row(static_cast<size_t>(V));
      for (int64_t b = 0; b < B; ++b) {
        std::copy_n(probs.begin() + b * V, V, row.begin());
        filter_top_k_top_p(row, cfg.top_k, cfg.top_p);
        std::copy_n(row.begin(), V, probs.begin() + b * V);
      }
      next = multinomial(Tensor::from_vector(probs, {B, V}), &gen).to(dev);
    }
    const std::vector<int64_t> ids = next.to_int_vector();
    const std::vector<double> lps = token_log_probs(logits, next, cfg.temperature).to_vector();
    bool all_done = true;
    for (int64_t b = 0; b < B; ++b) {
      const size_t at = size_t(b * capacity + len);
      if (finished[size_t(b)]) continue;  // stays PAD, masked out
      tokens[at] = ids[size_t(b)];
      attn[at] = resp[at] = 1.0;
      logp[at] = lps[size_t(b)];
      ++out.response_lengths[size_t(b)];
      if (ids[size_t(b)] == cfg.eos_id) finished[size_t(b)] = true;
      all_done = all_done && finished[size_t(b)];
    }
    ++len;
    if (all_done) break;
  }

  auto take = [&](const std::vector<double>& v) {
    std::vector<double> o(static_cast<size_t>(B * len));
    for (int64_t b = 0; b < B; ++b) std::copy_n(v.begin() + b * capacity, len, o.begin() + b * len);
    return Tensor::from_vector(o, {B, len}).to(mc.dtype).to(dev);
  };
  out.tokens = prefix(len, tokens);
  out.attention_mask = take(attn);
  out.response_mask = take(resp);
  out.log_probs = take(logp);
  return out;
}

}  // namespace rlft::models
