// Tests of the GPT model and of generation: gradients against finite differences (float64),
// memorisation, KV-cache and log-prob consistency, padding invariance, heads, names, errors;
// and (GPTCuda.*, skipped without a GPU) the same model on cuda:0 against the CPU.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>
#include <tuple>
#include <cstring>
#include <set>

#include "engine/checkpoint.h"
#include "engine/fs.h"
#include "engine/optim.h"
#include "engine/safetensors.h"
#include "models/generate.h"
#include "models/gpt.h"
#include "test_util.h"

using namespace rlft;
using namespace rlft::models;

namespace {

GPTConfig tiny_config(DType dtype = DType::f32) {
  GPTConfig c;
  c.vocab_size = 11;
  c.block_size = 16;
  c.n_layer = 2;
  c.n_head = 2;
  c.n_embd = 8;
  c.dtype = dtype;
  return c;
}

Tensor random_tokens(int64_t B, int64_t T, int64_t V, uint64_t seed) {
  Generator g(seed);
  std::vector<int64_t> v(static_cast<size_t>(B * T));
  for (auto& x : v) x = int64_t(g.below(uint64_t(V)));
  return Tensor::from_vector(v, {B, T});
}

// Three left-padded prompts of the tiny config's vocabulary (pad 10, EOS 3) and the sampling
// settings the generation tests share: 9 new tokens at temperature 0.7.
struct GenerationCase {
  Tensor prompts =
      Tensor::from_vector(std::vector<int64_t>{10, 10, 1, 2, 3, 4, 5, 6, 10, 7, 8, 9}, {3, 4});
  Tensor pmask =
      Tensor::from_vector(std::vector<double>{0, 0, 1, 1, 1, 1, 1, 1, 0, 1, 1, 1}, {3, 4});
  SamplingConfig sampling = [] {
    SamplingConfig sc;
    sc.max_new_tokens = 9;
    sc.temperature = 0.7;
    sc.eos_id = 3;
    sc.pad_id = 10;
    return sc;
  }();
};

double max_abs_diff(const Tensor& a, const Tensor& b) {
  const std::vector<double> x = a.to_vector(), y = b.to_vector();
  EXPECT_EQ(x.size(), y.size());
  double m = 0;
  for (size_t i = 0; i < x.size() && i < y.size(); ++i) m = std::max(m, std::abs(x[i] - y[i]));
  return m;
}

}  // namespace

TEST(GPT, NamesShapesAndNamedConfigs) {
  Generator gen(0);
  GPTConfig c = GPTConfig::named("micro");
  c.vocab_size = 259;
  c.value_head = c.reward_head = true;
  GPT model(c, gen);
  std::set<std::string> names;
  for (auto& [n, t] : model.named_parameters()) names.insert(n);
  for (const char* n :
       {"wte.weight", "wpe.weight", "h.0.ln_1.weight", "h.0.ln_1.bias", "h.0.attn.c_attn.weight",
        "h.0.attn.c_attn.bias", "h.0.attn.c_proj.weight", "h.0.ln_2.weight", "h.0.mlp.c_fc.weight",
        "h.0.mlp.c_proj.weight", "h.3.mlp.c_proj.bias", "ln_f.weight", "ln_f.bias",
        "value_head.weight", "value_head.bias", "reward_head.weight", "reward_head.bias"})
    EXPECT_TRUE(names.count(n)) << n;
  EXPECT_FALSE(names.count("lm_head.weight"));  // tied to wte
  EXPECT_FALSE(names.count("h.4.ln_1.weight"));
  for (auto& [n, t] : model.named_parameters()) {
    if (n == "h.0.attn.c_attn.weight") {
      EXPECT_EQ(t.shape(), Shape({384, 128}));  // [out, in]
    } else if (n == "h.0.mlp.c_fc.weight") {
      EXPECT_EQ(t.shape(), Shape({512, 128}));
    } else if (n == "wpe.weight") {
      EXPECT_EQ(t.shape(), Shape({128, 128}));
    }
  }
  // Per block 12C² + 13C; embeddings (V + block) C; ln_f 2C; heads 2(C + 1).
  const int64_t C = 128;
  EXPECT_EQ(model.num_parameters(),
            4 * (12 * C * C + 13 * C) + (259 + 128) * C + 2 * C + 2 * (C + 1));
  EXPECT_EQ(GPTConfig::named("nano").n_layer, 2);
  EXPECT_EQ(GPTConfig::named("mini").n_embd, 256);
  EXPECT_THROW(GPTConfig::named("huge"), Error);
  GPTConfig u = tiny_config();
  u.tie_weights = false;
  GPT untied(u, gen);
  bool has_head = false;
  for (auto& [n, t] : untied.named_parameters()) has_head = has_head || n == "lm_head.weight";
  EXPECT_TRUE(has_head);
  EXPECT_EQ(GPTConfig::from_json(c.to_json()).to_json().dump(), c.to_json().dump());
}

TEST(GPT, InitStatistics) {
  // GPT-2 init: std 0.02, residual projections 0.02/sqrt(2N), biases 0, LayerNorm 1/0.
  Generator gen(3);
  GPTConfig c = GPTConfig::named("micro");
  GPT model(c, gen);
  auto stdev = [](const Tensor& t) {
    const std::vector<double> v = t.to_vector();
    double s = 0, s2 = 0;
    for (double x : v) s += x, s2 += x * x;
    const double m = s / double(v.size());
    return std::sqrt(s2 / double(v.size()) - m * m);
  };
  EXPECT_NEAR(stdev(model.h[0]->attn->c_attn->weight), 0.02, 0.001);
  EXPECT_NEAR(stdev(model.h[0]->mlp->c_proj->weight), 0.02 / std::sqrt(8.0), 0.0005);
  EXPECT_NEAR(stdev(model.wte->weight), 0.02, 0.001);
  EXPECT_EQ(max(abs(model.h[1]->attn->c_attn->bias)).item(), 0.0);
  EXPECT_EQ(min(model.h[1]->ln_2->weight).item(), 1.0);
  EXPECT_EQ(max(abs(model.ln_f->bias)).item(), 0.0);
}

// Central differences on a few entries of every parameter of a float64 GPT (with padding, both
// heads, untied LM head). Loss mixes LM cross-entropy, values and rewards so every head and
// every block parameter receives a gradient.
TEST(GPT, GradientCheckFloat64) {
  Generator gen(7);
  GPTConfig c = tiny_config(DType::f64);
  c.tie_weights = false;
  c.value_head = c.reward_head = true;
  GPT model(c, gen);
  // The init is tiny (std 0.02); perturb every parameter so attention is far from uniform
  // and the check exercises non-trivial softmax and layer-norm Jacobians.
  {
    NoGradGuard ng;
    for (auto& [n, p] : model.named_parameters())
      p.copy_(add(p, mul(randn(p.shape(), &gen, DType::f64), 0.3)));
  }
  const int64_t B = 2, T = 6;
  const Tensor tokens = random_tokens(B, T, c.vocab_size, 11);
  const Tensor mask =
      Tensor::from_vector(std::vector<double>{0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1}, {B, T});
  std::vector<int64_t> tv = tokens.to_int_vector(), targets(static_cast<size_t>(B * T));
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t < T; ++t)
      targets[size_t(b * T + t)] =
          (t + 1 < T && (b == 1 || t >= 2)) ? tv[size_t(b * T + t + 1)] : -100;
  const Tensor target = Tensor::from_vector(targets, {B * T});
  const Tensor wv = randn({B, T}, &gen, DType::f64), wr = randn({B}, &gen, DType::f64);
  auto loss_fn = [&]() {
    const Tensor hidden = model.forward(tokens, mask);
    const Tensor ce = cross_entropy(model.lm_logits(hidden).reshape({B * T, -1}), target);
    return add(add(ce, sum(mul(model.values(hidden), wv))),
               sum(mul(model.rewards(hidden, mask), wr)));
  };
  model.zero_grad();
  loss_fn().backward();
  Generator pick(99);
  const double h = 1e-6;
  int checked = 0;
  for (auto& [name, p] : model.named_parameters()) {
    ASSERT_TRUE(p.grad().defined()) << name;
    const std::vector<double> analytic = p.grad().to_vector();
    double* data = p.data<double>();
    for (int k = 0; k < 3; ++k) {
      int64_t i = int64_t(pick.below(uint64_t(p.numel())));
      if (name == "wpe.weight")
        i = int64_t(pick.below(uint64_t(4 * c.n_embd)));  // positions 0..3 are used
      const double orig = data[i];
      double lp, lm;
      {
        NoGradGuard ng;
        data[i] = orig + h;
        lp = loss_fn().item();
        data[i] = orig - h;
        lm = loss_fn().item();
        data[i] = orig;
      }
      const double numeric = (lp - lm) / (2 * h);
      // float64 central differences: truncation error O(h²·f''') and rounding O(ε/h) ≈ 1e-10.
      EXPECT_NEAR(analytic[size_t(i)], numeric, 1e-6 + 1e-5 * std::abs(numeric))
          << name << "[" << i << "]";
      ++checked;
    }
  }
  EXPECT_GT(checked, 60);
}

TEST(GPT, MemorisesSixteenSequences) {
  Generator gen(1);
  GPTConfig c = tiny_config();
  c.vocab_size = 20;
  c.n_embd = 32;
  c.n_head = 4;
  GPT model(c, gen);
  // Row b starts with token b, so every next token is determined by its prefix and the loss
  // can go to zero.
  const int64_t B = 16, T = 12;
  std::vector<int64_t> v = random_tokens(B, T + 1, c.vocab_size, 5).to_int_vector();
  for (int64_t b = 0; b < B; ++b) v[size_t(b * (T + 1))] = b;
  const Tensor data = Tensor::from_vector(v, {B, T + 1});
  const Tensor x = data.narrow(1, 0, T).contiguous(),
               y = data.narrow(1, 1, T).contiguous().reshape({B * T});
  optim::AdamW opt(model.parameters(), 1e-2, 0.9, 0.99, 1e-8, 0.0);
  double loss_value = 1e9;
  int step = 0;
  for (; step < 400 && loss_value >= 0.05; ++step) {
    const Tensor loss = cross_entropy(model.lm_logits(model.forward(x)).reshape({B * T, -1}), y);
    opt.zero_grad();
    loss.backward();
    opt.step();
    loss_value = loss.item();
  }
  EXPECT_LT(loss_value, 0.05) << "after " << step << " steps";
}

TEST(GPT, PaddedBatchGivesTheSameLogitsAsEachSequenceAlone) {
  Generator gen(2);
  GPTConfig c = tiny_config();
  GPT model(c, gen);
  model.eval();
  const std::vector<int64_t> lengths = {3, 7, 5};
  const int64_t T = 7, B = 3;
  std::vector<int64_t> toks(static_cast<size_t>(B * T), 10);  // PAD = 10
  std::vector<double> mask(static_cast<size_t>(B * T), 0.0);
  std::vector<Tensor> alone;
  for (int64_t b = 0; b < B; ++b) {
    const Tensor seq = random_tokens(1, lengths[size_t(b)], 10, 100 + uint64_t(b));
    const std::vector<int64_t> s = seq.to_int_vector();
    for (int64_t t = 0; t < lengths[size_t(b)]; ++t) {
      toks[size_t(b * T + T - lengths[size_t(b)] + t)] = s[size_t(t)];
      mask[size_t(b * T + T - lengths[size_t(b)] + t)] = 1;
    }
    alone.push_back(model.lm_logits(model.forward(seq)));  // [1, L, V]
  }
  const Tensor batch_logits = model.lm_logits(
      model.forward(Tensor::from_vector(toks, {B, T}), Tensor::from_vector(mask, {B, T})));
  for (int64_t b = 0; b < B; ++b) {
    const int64_t L = lengths[size_t(b)];
    const Tensor rows = batch_logits.select(0, b).narrow(0, T - L, L);
    // Same math, different GEMM blockings: float32 rounding only.
    EXPECT_LT(max_abs_diff(rows, alone[size_t(b)].select(0, 0)), 1e-5) << "sequence " << b;
  }
}

// Dropout is a training-time op only: in eval mode a GPT with dropout 0.5 gives exactly the
// logits of the same weights with dropout 0 (embedding, attention and MLP dropout all off), with
// and without a padding mask, while in train mode its logits differ (dropout does act there).
// Both models are built from one seed (dropout draws nothing at init), so their weights match.
TEST(GPT, DropoutIsOffInEvalMode) {
  GPTConfig c = tiny_config(DType::f64);
  GPTConfig cd = c;
  cd.dropout = 0.5;
  Generator g1(7), g2(7);
  GPT plain(c, g1), with_dropout(cd, g2);
  plain.eval();
  with_dropout.eval();
  const Tensor tokens = random_tokens(2, 6, 11, 9);
  const Tensor mask =
      Tensor::from_vector(std::vector<double>{0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1}, {2, 6});
  for (const Tensor& m : {Tensor(), mask}) {
    const Tensor expected = plain.lm_logits(plain.forward(tokens, m));
    EXPECT_EQ(max_abs_diff(with_dropout.lm_logits(with_dropout.forward(tokens, m)), expected), 0.0);
    with_dropout.train();
    EXPECT_GT(max_abs_diff(with_dropout.lm_logits(with_dropout.forward(tokens, m)), expected),
              1e-3);
    with_dropout.eval();
  }
}

// The composed attention path's additive mask, built from B·Tk key flags with tensor ops on the
// model's device, against the rule written out element by element: 0 where query i (position
// past + i) sees key j (j < past + i with key j real, or j = past + i itself), −∞ elsewhere;
// with and without a cache's past keys, rows of pads, and in float and double.
TEST(GPT, AdditiveAttentionMaskFollowsTheRule) {
  std::mt19937_64 rng(5);
  int64_t checked = 0;
  for (auto [B, T, past] : {std::tuple<int64_t, int64_t, int64_t>{1, 1, 0}, {3, 7, 0}, {2, 1, 9},
                            {4, 5, 3}, {2, 16, 0}}) {
    const int64_t Tk = past + T, H = 3;
    std::vector<bool> real(size_t(B * Tk));
    for (size_t n = 0; n < real.size(); ++n) real[n] = rng() % 3 != 0;
    for (int64_t j = 0; j < Tk; ++j) real[size_t(j)] = false;  // row 0: every key a pad
    for (DType dt : {DType::f32, DType::f64}) {
      const Tensor m = additive_attention_mask(real, B, T, Tk, past, H, dt, Device::cpu());
      ASSERT_EQ(m.shape(), Shape({B, H, T, Tk}));
      ASSERT_EQ(m.dtype(), dt);
      const std::vector<double> v = m.to_vector();
      for (int64_t b = 0; b < B; ++b)
        for (int64_t h = 0; h < H; ++h)
          for (int64_t i = 0; i < T; ++i)
            for (int64_t j = 0; j < Tk; ++j) {
              const int64_t qi = past + i;
              const bool sees = j == qi || (j < qi && real[size_t(b * Tk + j)]);
              const double got = v[size_t(((b * H + h) * T + i) * Tk + j)];
              ASSERT_EQ(got, sees ? 0.0 : -std::numeric_limits<double>::infinity())
                  << "b=" << b << " h=" << h << " i=" << i << " j=" << j << " past=" << past;
              ++checked;
            }
    }
  }
  EXPECT_GT(checked, 2000);
  EXPECT_NE(rlft::testing::error_of([] {
              additive_attention_mask({true, true}, 1, 2, 3, 0, 1, DType::f32, Device::cpu());
            }).find("additive_attention_mask: 2 key flags for B = 1 rows of Tk = 3 keys"),
            std::string::npos);
  // No flags: every key real, the causal mask (as all-true flags give it).
  for (auto [T, past] : {std::pair<int64_t, int64_t>{6, 0}, {2, 4}}) {
    const Tensor none =
        additive_attention_mask(Tensor(), 2, T, past + T, past, 3, DType::f32, Device::cpu());
    const Tensor all = additive_attention_mask(std::vector<bool>(size_t(2 * (past + T)), true), 2,
                                               T, past + T, past, 3, DType::f32, Device::cpu());
    EXPECT_EQ(none.to_vector(), all.to_vector()) << "past=" << past;
  }
  EXPECT_NE(
      rlft::testing::error_of([] {
        additive_attention_mask(Tensor::ones({1, 3}), 1, 2, 3, 0, 1, DType::f32, Device::cpu());
      })
          .find("key flags [1,3] float32 on cpu for B = 1 rows of Tk = 3 keys (expected bool [1,3] "
                "on "
                "cpu)"),
      std::string::npos);
}

// Position ids from the key flags with a cumsum (GPT::forward without a cache): each row counts
// its real tokens from 0; pads get 0.
TEST(GPT, PositionIdsCountEachRowsRealTokens) {
  const Tensor real = Tensor::from_bools({false, false, true, true, true,  //
                                          true, true, true, true, true,    //
                                          true, false, true, false, true},
                                         {3, 5});
  EXPECT_EQ(position_ids(real, 3, 5, Device::cpu()).to_int_vector(),
            std::vector<int64_t>({0, 0, 0, 1, 2, 0, 1, 2, 3, 4, 0, 0, 1, 0, 2}));
  EXPECT_EQ(position_ids(real, 3, 5, Device::cpu()).dtype(), DType::i64);
  EXPECT_EQ(position_ids(Tensor(), 2, 3, Device::cpu()).to_int_vector(),
            std::vector<int64_t>({0, 1, 2, 0, 1, 2}));
  EXPECT_EQ(
      position_ids(Tensor::from_bools({true, false}, {2, 1}), 2, 1, Device::cpu()).to_int_vector(),
      std::vector<int64_t>({0, 0}));
  EXPECT_NE(rlft::testing::error_of([&] {
              position_ids(real, 5, 3, Device::cpu());
            }).find("position_ids: flags [3,5] bool (expected bool [5,3])"),
            std::string::npos);
}

// More tokens than the context, of which the real ones fit: the host path (which counts each
// row's real tokens) takes them, and the real positions' logits are the unpadded sequence's.
TEST(GPT, ARowLongerThanTheContextWhoseRealTokensFitIsAccepted) {
  Generator gen(12);
  GPT model(tiny_config(), gen);  // block_size 16
  model.eval();
  const Tensor seq = random_tokens(1, 16, 10, 21);
  std::vector<int64_t> toks(18, 10);
  std::vector<double> mask(18, 0.0);
  const std::vector<int64_t> s = seq.to_int_vector();
  for (int64_t t = 0; t < 16; ++t) toks[size_t(t + 2)] = s[size_t(t)], mask[size_t(t + 2)] = 1;
  const Tensor padded = model.lm_logits(
      model.forward(Tensor::from_vector(toks, {1, 18}), Tensor::from_vector(mask, {1, 18})));
  EXPECT_LT(max_abs_diff(padded.select(0, 0).narrow(0, 2, 16),
                         model.lm_logits(model.forward(seq)).select(0, 0)),
            1e-5);
  mask[0] = 1;  // 17 real tokens: more than the context
  EXPECT_NE(rlft::testing::error_of([&] {
              model.forward(Tensor::from_vector(toks, {1, 18}), Tensor::from_vector(mask, {1, 18}));
            }).find("gpt: sequence 0 has more than block_size = 16 real tokens"),
            std::string::npos);
}

TEST(GPT, KVCacheLogitsEqualFullRecompute) {
  Generator gen(4);
  GPTConfig c = tiny_config();
  GPT model(c, gen);
  model.eval();
  NoGradGuard ng;
  const int64_t B = 2, Tp = 4, steps = 6;
  const Tensor all = random_tokens(B, Tp + steps, 10, 9);
  std::vector<double> m(static_cast<size_t>(B * (Tp + steps)), 1.0);
  m[0] = m[1] = 0;  // row 0 has two left pads
  const Tensor mask = Tensor::from_vector(m, {B, Tp + steps});
  KVCache cache = model.make_cache(B, Tp + steps);
  Tensor cached = model.lm_logits(
      model.forward(all.narrow(1, 0, Tp).contiguous(), mask.narrow(1, 0, Tp).contiguous(), &cache));
  const Tensor full = model.lm_logits(model.forward(all, mask));  // [B, Tp + steps, V]
  EXPECT_LT(max_abs_diff(cached.narrow(1, 2, Tp - 2), full.narrow(1, 2, Tp - 2)), 1e-5);
  for (int64_t s = 0; s < steps; ++s) {
    const Tensor step = all.narrow(1, Tp + s, 1).contiguous();
    cached = model.lm_logits(model.forward(step, mask.narrow(1, Tp + s, 1).contiguous(), &cache));
    EXPECT_LT(max_abs_diff(cached.select(1, 0), full.select(1, Tp + s)), 1e-5) << "step " << s;
  }
  EXPECT_EQ(cache.length, Tp + steps);
  EXPECT_EQ(cache.next_position[0], Tp + steps - 2);
}

TEST(GPT, GenerationLogProbsEqualAFullForward) {
  Generator gen(5);
  GPTConfig c = tiny_config();
  GPT model(c, gen);
  model.train();  // generate() must switch dropout off and restore the flag
  const GenerationCase gc;
  const Tensor &prompts = gc.prompts, &pmask = gc.pmask;
  SamplingConfig sc = gc.sampling;
  sc.top_k = 6;
  sc.top_p = 0.9;
  Generator sample_gen(42);
  const Generation g = generate(model, prompts, pmask, sc, sample_gen);
  EXPECT_TRUE(model.is_training());
  ASSERT_EQ(g.tokens.size(0), 3);
  const int64_t Ttot = g.tokens.size(1);
  EXPECT_LE(Ttot, 4 + 9);
  EXPECT_EQ(g.prompt_length, 4);
  const Tensor full = sequence_log_probs(model, g.tokens, g.attention_mask, sc.temperature);
  EXPECT_LT(max_abs_diff(mul(full, g.response_mask), g.log_probs), 2e-5);
  // Masks: response positions follow the prompt, stop after EOS, log-probs are negative there.
  const std::vector<double> rm = g.response_mask.to_vector(), lp = g.log_probs.to_vector();
  const std::vector<int64_t> tk = g.tokens.to_int_vector();
  for (int64_t b = 0; b < 3; ++b) {
    int64_t n = 0;
    bool ended = false;
    for (int64_t t = 4; t < Ttot; ++t) {
      const size_t i = size_t(b * Ttot + t);
      EXPECT_EQ(rm[i], ended ? 0.0 : 1.0) << b << "," << t;
      if (ended) {
        EXPECT_EQ(tk[i], 10);
      }
      if (!ended) {
        EXPECT_LT(lp[i], 0.0);
        ++n;
      }
      if (tk[i] == 3 && !ended) ended = true;
    }
    EXPECT_EQ(n, g.response_lengths[size_t(b)]);
  }
  // Same seed, same result; greedy with and without the cache agree.
  Generator again(42);
  EXPECT_EQ(generate(model, prompts, pmask, sc, again).tokens.to_int_vector(),
            g.tokens.to_int_vector());
  sc.greedy = true;
  Generator g1(1), g2(1);
  const Generation with = generate(model, prompts, pmask, sc, g1);
  sc.use_cache = false;
  const Generation without = generate(model, prompts, pmask, sc, g2);
  EXPECT_EQ(with.tokens.to_int_vector(), without.tokens.to_int_vector());
  EXPECT_LT(max_abs_diff(with.log_probs, without.log_probs), 1e-5);
}

namespace {

// Greedy decoding of 8 new tokens (PAD 10) by the tiny model (seed 6) on B random prompts of 3
// tokens. It is deterministic, so a free run (no EOS) fixes each row's tokens, and a run that
// declares one of those tokens EOS must stop each row at its first occurrence of it.
struct GreedyEosRuns {
  GreedyEosRuns(int64_t B, uint64_t prompt_seed) : prompts(random_tokens(B, 3, 10, prompt_seed)) {
    sc.greedy = true;
    sc.max_new_tokens = 8;
    sc.pad_id = 10;
    Generator g0(0);
    free_run = generate(model, prompts, Tensor(), sc, g0);
  }
  // The run with `eos_id` as EOS.
  Generation stopped(int64_t eos_id) {
    sc.eos_id = eos_id;
    Generator g1(0);
    return generate(model, prompts, Tensor(), sc, g1);
  }
  // Each row's response length with `eos_id` as EOS, read off the free run: up to and including
  // the first `eos_id` among its 8 generated tokens, else 8.
  std::vector<int64_t> lengths_at(int64_t eos_id) const {
    const std::vector<int64_t> ft = free_run.tokens.to_int_vector();
    const int64_t B = prompts.size(0), W = free_run.tokens.size(1);
    std::vector<int64_t> lengths(size_t(B), 8);
    for (int64_t b = 0; b < B; ++b)
      for (int64_t t = 0; t < 8; ++t)
        if (ft[size_t(b * W + 3 + t)] == eos_id) {
          lengths[size_t(b)] = t + 1;
          break;
        }
    return lengths;
  }
  Generator gen{6};
  GPT model{tiny_config(), gen};
  Tensor prompts;
  SamplingConfig sc;
  Generation free_run;
};

}  // namespace

TEST(GPT, GenerationStopsEachRowAtEos) {
  GreedyEosRuns runs(4, 77);
  ASSERT_EQ(runs.free_run.tokens.size(1), 3 + 8);
  const int64_t eos = runs.free_run.tokens.to_int_vector()[3];  // row 0's first generated token
  const Generation stopped = runs.stopped(eos);
  EXPECT_EQ(stopped.response_lengths[0], 1);
  const std::vector<int64_t> expect = runs.lengths_at(eos);
  for (int64_t b = 0; b < 4; ++b)
    EXPECT_EQ(stopped.response_lengths[size_t(b)], expect[size_t(b)]) << "row " << b;
}

// When every row has stopped, generation ends there: the outputs are [B, Tp + S] with S the
// longest response, not Tp + max_new_tokens. Greedy decoding of the same model and prompts is
// deterministic, so a free run (no EOS) fixes each row's tokens; declaring row 0's second
// generated token EOS makes row 0 stop after 2 tokens and every other row at its first
// occurrence of that id (or after 8). The stopped run must be the free run cut at
// S = max(lengths) columns, with each row's tail past its EOS filled with PAD (10), attention
// and response mask 0 there, log-prob 0; the response positions up to and including EOS carry
// attention mask 1, response mask 1 and the free run's log-probs.
TEST(GPT, GenerationEndsWhenEveryRowHasStopped) {
  GreedyEosRuns runs(2, 5);
  ASSERT_EQ(runs.free_run.tokens.size(1), 3 + 8);
  const std::vector<int64_t> ft = runs.free_run.tokens.to_int_vector();
  const std::vector<double> flp = runs.free_run.log_probs.to_vector();
  const int64_t eos = ft[4];  // row 0's second generated token
  const std::vector<int64_t> lengths = runs.lengths_at(eos);
  ASSERT_LE(lengths[0], 2);
  const int64_t S = std::max(lengths[0], lengths[1]);
  ASSERT_LT(S, 8) << "pick a case where every row stops early";
  const Generation stopped = runs.stopped(eos);
  EXPECT_EQ(stopped.response_lengths, lengths);
  ASSERT_EQ(stopped.tokens.size(1), 3 + S);
  ASSERT_EQ(stopped.attention_mask.size(1), 3 + S);
  const std::vector<int64_t> tk = stopped.tokens.to_int_vector();
  const std::vector<double> am = stopped.attention_mask.to_vector(),
                            rm = stopped.response_mask.to_vector(),
                            lp = stopped.log_probs.to_vector();
  const int64_t W = 3 + S;
  for (int64_t b = 0; b < 2; ++b)
    for (int64_t t = 0; t < W; ++t) {
      const size_t i = size_t(b * W + t);
      const bool prompt = t < 3, response = !prompt && t - 3 < lengths[size_t(b)];
      EXPECT_EQ(am[i], prompt || response ? 1.0 : 0.0) << b << "," << t;
      EXPECT_EQ(rm[i], response ? 1.0 : 0.0) << b << "," << t;
      if (prompt || response) {
        EXPECT_EQ(tk[i], ft[size_t(b * 11 + t)]) << b << "," << t;
        EXPECT_NEAR(lp[i], flp[size_t(b * 11 + t)], 1e-6) << b << "," << t;
      } else {
        EXPECT_EQ(tk[i], 10) << b << "," << t;
        EXPECT_EQ(lp[i], 0.0) << b << "," << t;
      }
    }
}

// generate() applies top-k and top-p, each on its own, to the distribution it samples from:
// top_k = 1 keeps only the most likely token, and so does top_p = 1e-9 (the first token's mass
// already reaches it; at least one token stays), so both must reproduce greedy decoding token
// for token at τ = 1, where the tiny model's distribution is near uniform and an unfiltered draw
// would almost surely pick other tokens. The log-probs stay those of the untruncated
// softmax(ℓ/τ), i.e. greedy's.
TEST(GPT, GenerationAppliesTopKAndTopPOnTheirOwn) {
  Generator gen(5);
  GPT model(tiny_config(), gen);
  const GenerationCase gc;
  SamplingConfig sc = gc.sampling;
  sc.temperature = 1.0;
  sc.eos_id = -1;
  sc.greedy = true;
  Generator g0(42);
  const Generation greedy = generate(model, gc.prompts, gc.pmask, sc, g0);
  sc.greedy = false;
  for (const auto& [top_k, top_p] : {std::pair<int64_t, double>{1, 1.0}, {0, 1e-9}}) {
    sc.top_k = top_k;
    sc.top_p = top_p;
    Generator g1(42);
    const Generation sampled = generate(model, gc.prompts, gc.pmask, sc, g1);
    EXPECT_EQ(sampled.tokens.to_int_vector(), greedy.tokens.to_int_vector())
        << "top_k " << top_k << " top_p " << top_p;
    EXPECT_LT(max_abs_diff(sampled.log_probs, greedy.log_probs), 1e-6);
  }
  // Without a filter the same seed does not follow the greedy path (so the check above bites).
  sc.top_k = 0;
  sc.top_p = 1.0;
  Generator g2(42);
  EXPECT_NE(generate(model, gc.prompts, gc.pmask, sc, g2).tokens.to_int_vector(),
            greedy.tokens.to_int_vector());
}

// The context limit counts a prompt's real tokens plus max_new_tokens, and the limit itself is
// allowed: with block_size 16, a prompt of 5 positions of which 3 are real (2 left pads) takes
// max_new_tokens = 13 (3 + 13 = 16, although 5 + 13 = 18 positions are stored) and generates 13
// tokens; 14 is refused.
TEST(GPT, GenerationFillsTheContextExactly) {
  Generator gen(7);
  GPT model(tiny_config(), gen);
  const Tensor prompt = Tensor::from_vector(std::vector<int64_t>{10, 10, 4, 5, 6}, {1, 5});
  const Tensor pmask = Tensor::from_vector(std::vector<double>{0, 0, 1, 1, 1}, {1, 5});
  SamplingConfig sc;
  sc.greedy = true;
  sc.pad_id = 10;
  sc.max_new_tokens = 13;
  Generator g(0);
  const Generation out = generate(model, prompt, pmask, sc, g);
  EXPECT_EQ(out.tokens.size(1), 5 + 13);
  EXPECT_EQ(out.response_lengths, std::vector<int64_t>{13});
  sc.max_new_tokens = 14;
  EXPECT_THROW(generate(model, prompt, pmask, sc, g), Error);
}

TEST(GPT, TopKTopPFilter) {
  std::vector<double> p = {0.1, 0.4, 0.2, 0.3};
  filter_top_k_top_p(p, 2, 1.0);
  EXPECT_NEAR(p[1], 0.4 / 0.7, 1e-12);
  EXPECT_NEAR(p[3], 0.3 / 0.7, 1e-12);
  EXPECT_EQ(p[0], 0.0);
  EXPECT_EQ(p[2], 0.0);
  std::vector<double> q = {0.1, 0.4, 0.2, 0.3};
  filter_top_k_top_p(q, 0, 0.65);  // 0.4 + 0.3 reaches 0.65
  EXPECT_NEAR(q[1] + q[3], 1.0, 1e-12);
  EXPECT_EQ(q[2], 0.0);
  std::vector<double> r = {0.1, 0.4, 0.2, 0.3};
  filter_top_k_top_p(r, 0, 0.01);  // at least one token stays
  EXPECT_EQ(r[1], 1.0);
}

// Top-p after top-k is a fraction of the mass the top k keep, not of the whole distribution:
// p = [0.1, 0.4, 0.2, 0.3], k = 3 keeps 0.4 + 0.3 + 0.2 = 0.9, so top_p = 0.75 needs
// 0.75·0.9 = 0.675, which 0.4 + 0.3 = 0.7 reaches: tokens 1 and 3 stay, renormalised to
// 0.4/0.7 = 4/7 and 0.3/0.7 = 3/7. (Against the whole mass, 0.75, token 2 would stay too.)
TEST(GPT, TopPIsAFractionOfTheTopKMass) {
  std::vector<double> p = {0.1, 0.4, 0.2, 0.3};
  filter_top_k_top_p(p, 3, 0.75);
  EXPECT_EQ(p[0], 0.0);
  EXPECT_NEAR(p[1], 4.0 / 7, 1e-12);
  EXPECT_EQ(p[2], 0.0);
  EXPECT_NEAR(p[3], 3.0 / 7, 1e-12);
}

// Sampling (no top-k or top-p) draws from softmax(ℓ/τ): at τ = 1e-6 the logits' gaps are
// multiplied by 10^6, so every token but the argmax has probability ~e^(−10^6·gap) = 0 and
// the draw is the greedy token, each with log p_τ = −log(1 + Σ e^(−10^6·gap)) = 0. The tiny
// model's logits differ by far more than 1e-5, so the sampled rows are the greedy rows exactly
// and every response log-prob is 0 to 1e-6. (Sampling from softmax(ℓ), τ ignored, would pick
// other tokens of its near-uniform distribution, whose log p_τ are about −10^6·gap.)
TEST(GPT, SamplingAtANearZeroTemperatureIsGreedy) {
  Generator gen(5);
  GPT model(tiny_config(), gen);
  const GenerationCase gc;
  SamplingConfig sc = gc.sampling;
  sc.temperature = 1e-6;
  Generator g1(42);
  const Generation sampled = generate(model, gc.prompts, gc.pmask, sc, g1);
  sc.greedy = true;
  Generator g2(42);
  const Generation greedy = generate(model, gc.prompts, gc.pmask, sc, g2);
  EXPECT_EQ(sampled.tokens.to_int_vector(), greedy.tokens.to_int_vector());
  EXPECT_EQ(sampled.response_lengths, greedy.response_lengths);
  const std::vector<double> lp = sampled.log_probs.to_vector(),
                            rm = sampled.response_mask.to_vector();
  ASSERT_EQ(lp.size(), rm.size());
  double responses = 0;
  for (size_t i = 0; i < lp.size(); ++i) {
    responses += rm[i];
    if (rm[i] != 0) {
      EXPECT_NEAR(lp[i], 0.0, 1e-6) << i;
    }
  }
  EXPECT_GT(responses, 0.0);
}

TEST(GPT, RewardsReadTheLastRealToken) {
  Generator gen(8);
  GPTConfig c = tiny_config();
  c.reward_head = c.value_head = true;
  GPT model(c, gen);
  const Tensor tokens = random_tokens(2, 5, 10, 3);
  const Tensor mask =
      Tensor::from_vector(std::vector<double>{1, 1, 1, 0, 0, 1, 1, 1, 1, 1}, {2, 5});
  const Tensor hidden = model.forward(tokens, mask);
  const std::vector<double> all =
      linear(hidden, model.reward_head->weight, model.reward_head->bias).to_vector();
  const std::vector<double> r = model.rewards(hidden, mask).to_vector();
  EXPECT_DOUBLE_EQ(r[0], all[2]);
  EXPECT_DOUBLE_EQ(r[1], all[9]);
  EXPECT_EQ(model.values(hidden).shape(), Shape({2, 5}));
}

TEST(GPT, ErrorsNameTheProblem) {
  Generator gen(9);
  GPT model(tiny_config(), gen);
  try {
    model.forward(random_tokens(1, 17, 10, 1));
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("block_size = 16"), std::string::npos) << e.what();
  }
  KVCache cache = model.make_cache(1, 4);
  EXPECT_THROW(model.forward(random_tokens(1, 2, 10, 1), Tensor(), &cache), Error);  // grad mode on
  SamplingConfig sc;
  sc.max_new_tokens = 20;
  Generator g(0);
  EXPECT_THROW(generate(model, random_tokens(1, 2, 10, 1), Tensor(), sc, g),
               Error);  // exceeds context
  const Tensor right_padded = Tensor::from_vector(std::vector<double>{1, 0}, {1, 2});
  sc.max_new_tokens = 2;
  EXPECT_THROW(generate(model, random_tokens(1, 2, 10, 1), right_padded, sc, g), Error);
  EXPECT_THROW(GPTConfig{.n_head = 3}.validate(), Error);
}

namespace {

// The golden tests' model (float64, weights set by each test) and left-padded batch.
GPTConfig golden_config() {
  GPTConfig c;
  c.vocab_size = 7;
  c.block_size = 8;
  c.n_layer = 2;
  c.n_head = 2;
  c.n_embd = 8;
  c.dtype = DType::f64;
  return c;
}
Tensor golden_tokens() {
  return Tensor::from_vector(std::vector<int64_t>{6, 6, 1, 2, 3, 0, 4, 5, 1, 2}, {2, 5});
}
Tensor golden_mask() {
  return Tensor::from_vector(std::vector<double>{0, 0, 1, 1, 1, 1, 1, 1, 1, 1}, {2, 5});
}

}  // namespace

// Golden logits from an independent numpy implementation of the model (the reference script in
// docs/checkpoints.md), for weights set by a formula so they do not depend on rlft's RNG.
// To regenerate: run this test (it writes test_tmp/gpt_golden.safetensors under the build
// directory), then with the script of docs/checkpoints.md saved as gpt_numpy.py:
//   python3 gpt_numpy.py <build>/test_tmp/gpt_golden.safetensors
//       '[[6,6,1,2,3],[0,4,5,1,2]]' '[[0,0,1,1,1],[1,1,1,1,1]]'
// and paste the real positions' logits below.
TEST(GPT, MatchesGoldenLogitsOfANumpyReference) {
  const GPTConfig c = golden_config();
  Generator gen(0);
  GPT model(c, gen);
  int k = 0;
  for (auto& [name, p] : model.named_parameters()) {
    double* d = p.data<double>();
    for (int64_t i = 0; i < p.numel(); ++i)
      d[i] = 0.5 * std::sin(0.37 * double(i) + 1.3 * double(k));
    ++k;
  }
  const std::string dir = std::string(RLFT_BINARY_DIR) + "/test_tmp";
  fs::make_dirs(dir);
  save_checkpoint(dir + "/gpt_golden.safetensors", model, nullptr,
                  {{"model_config", c.to_json().dump()}});
  const Tensor tokens = golden_tokens(), mask = golden_mask();
  const std::vector<double> logits = model.lm_logits(model.forward(tokens, mask)).to_vector();
  const std::vector<double> golden = {
      -0.27921839958184019,  0.13795761602218493,   0.0078399553271253954, -0.15337970681389348,
      0.29387550928850797,   -0.42470710575071624,  0.54157205022874089,   -0.55624174254140646,
      0.35729479513454332,   -0.14659807478572814,  -0.068919578070125637, 0.28217078482990826,
      -0.48614269981787639,  0.67412763033802925,   -0.29575581058892231,  0.14936086595283163,
      0.0019458666109232136, -0.15318860862355643,  0.29939368595948301,   -0.43575308997975554,
      0.5577825906940258,    -0.3534429939765551,   0.18521296988350197,   -0.01089214801877606,
      -0.16378686620647032,  0.33307968809136829,   -0.49141905988423135,  0.63359793213549698,
      -0.57764391899663026,  0.37738853485717144,   -0.16472258763128991,  -0.053360323483891713,
      0.26968846040817335,   -0.47714779146678965,  0.66891593898220025,   -0.29980818554532074,
      0.15142348694193516,   0.0019408296516213999, -0.1552413213363463,   0.3034366441192296,
      -0.44165333939558427,  0.56534609945760506,   -0.39161108450137783,  0.23210261813782568,
      -0.064961370386217979, -0.10431615632167504,  0.270163207221782,     -0.42712584002973519,
      0.5700422798722975,    -0.44344139870579463,  0.25952297863413032,   -0.067070048366139778,
      -0.12758850552200826,  0.31805126369664133,   -0.49805478713506868,  0.66167959265994436,
  };
  // Real positions only (row 0 starts at t = 2); both sides are float64, so only summation
  // order differs.
  std::vector<double> real;
  for (int64_t b = 0; b < 2; ++b)
    for (int64_t t = b == 0 ? 2 : 0; t < 5; ++t)
      for (int64_t v = 0; v < 7; ++v) real.push_back(logits[size_t((b * 5 + t) * 7 + v)]);
  ASSERT_EQ(real.size(), golden.size());
  for (size_t i = 0; i < real.size(); ++i) EXPECT_NEAR(real[i], golden[i], 1e-10) << i;
}

// Golden gradients and optimizer steps from PyTorch (tests/data/gpt/torch_reference.safetensors,
// written by scripts/make_gpt_fixtures.py, whose docstring gives the problem and how to
// regenerate it): the golden-logits model and batch above, mean next-token cross-entropy over
// the real positions, PyTorch autograd's gradients of every parameter (the tied embedding gets
// both its uses), then three steps of clip_grad_norm_(0.4) and torch.optim.AdamW with rlft's
// decay / no-decay split. Float64 on both sides, so only summation order differs: 1e-10.
TEST(GPT, MatchesPyTorchGradientsAndAdamWSteps) {
  const safetensors::File ref = safetensors::load(std::string(RLFT_SOURCE_DIR) +
                                                  "/tests/data/gpt/torch_reference.safetensors");
  const auto values = [&](const std::string& name) {
    const safetensors::TensorRecord& r = ref.at(name);
    EXPECT_EQ(r.dtype, safetensors::DType::F64) << name;
    std::vector<double> v(r.data.size() / sizeof(double));
    std::memcpy(v.data(), r.data.data(), r.data.size());
    return v;
  };
  const auto expect_close = [](const std::vector<double>& got, const std::vector<double>& want,
                               const std::string& what) {
    ASSERT_EQ(got.size(), want.size()) << what;
    for (size_t i = 0; i < got.size(); ++i)
      EXPECT_NEAR(got[i], want[i], 1e-10) << what << "[" << i << "]";
  };
  const GPTConfig c = golden_config();
  Generator gen(0);
  GPT model(c, gen);
  std::vector<Tensor> params, decay, no_decay;
  for (auto& [name, p] : model.named_parameters()) {
    const std::vector<double> w = values("param." + name);
    ASSERT_EQ(int64_t(w.size()), p.numel()) << name;
    std::copy(w.begin(), w.end(), p.data<double>());
    params.push_back(p);
    (p.dim() >= 2 ? decay : no_decay).push_back(p);
  }
  const Tensor tokens = golden_tokens(), mask = golden_mask();
  // Position t predicts token t + 1 where both are real: 6 of the 10 positions.
  const Tensor targets =
      Tensor::from_vector(std::vector<int64_t>{-100, -100, 2, 3, -100, 4, 5, 1, 2, -100}, {10});
  const auto loss_fn = [&] {
    return cross_entropy(model.lm_logits(model.forward(tokens, mask)).reshape({10, 7}), targets);
  };

  optim::AdamW opt_decay(decay, 1e-2, 0.9, 0.99, 1e-8, 0.1);
  optim::AdamW opt_no_decay(no_decay, 1e-2, 0.9, 0.99, 1e-8, 0.0);
  std::vector<double> losses, norms;
  for (int step = 0; step < 3; ++step) {
    model.zero_grad();
    const Tensor loss = loss_fn();
    loss.backward();
    if (step == 0)
      for (auto& [name, p] : model.named_parameters())
        expect_close(p.grad().to_vector(), values("grad." + name), "grad." + name);
    norms.push_back(optim::clip_grad_norm(params, 0.4));
    losses.push_back(loss.item());
    opt_decay.step();
    opt_no_decay.step();
  }
  {
    NoGradGuard no_grad;
    losses.push_back(loss_fn().item());
  }
  expect_close(losses, values("losses"), "losses");
  expect_close(norms, values("grad_norms"), "grad_norms");
  for (auto& [name, p] : model.named_parameters())
    expect_close(p.to_vector(), values("step3." + name), "step3." + name);
}

// ---- the same model on a GPU ----------------------------------------------------------------
// Each test builds one model on the host and a copy moved to cuda:0 (the same weights), and
// skips with the runtime's reason where no GPU answers. Float32 on the GPU differs from the CPU
// in the last bits (another summation order, FMA; and the CPU runs the fused attention op, the
// GPU the composed one), so values are compared at 1e-5 — a few hundred ulp of numbers of
// order 1 — and sampled or greedy tokens exactly: on these seeds no two candidates are that
// close.

namespace {

const Device kGpu = Device::cuda(0);

std::shared_ptr<GPT> gpu_copy(const GPTConfig& c, const GPT& cpu_model) {
  Generator scratch(0);
  auto m = std::make_shared<GPT>(c, scratch);
  m->to(kGpu);
  m->copy_from(cpu_model);
  return m;
}

}  // namespace

TEST(GPTCuda, ForwardLogitsRewardsAndValuesMatchTheCpu) {
  RLFT_SKIP_WITHOUT_GPU();
  Generator gen(8);
  GPTConfig c = tiny_config();
  c.reward_head = c.value_head = true;
  GPT cpu(c, gen);
  const auto gpu = gpu_copy(c, cpu);
  EXPECT_TRUE(gpu->device().is_cuda());
  const Tensor tokens = random_tokens(2, 5, 10, 3);
  const Tensor mask =
      Tensor::from_vector(std::vector<double>{0, 1, 1, 1, 0, 1, 1, 1, 1, 1}, {2, 5});
  const Tensor h_cpu = cpu.forward(tokens, mask), h_gpu = gpu->forward(tokens.to(kGpu), mask);
  EXPECT_TRUE(h_gpu.device().is_cuda());
  EXPECT_LT(max_abs_diff(cpu.lm_logits(h_cpu), gpu->lm_logits(h_gpu)), 1e-5);
  // the mask may also live on the device
  EXPECT_LT(max_abs_diff(cpu.rewards(h_cpu, mask), gpu->rewards(h_gpu, mask.to(kGpu))), 1e-5);
  EXPECT_LT(max_abs_diff(cpu.values(h_cpu), gpu->values(h_gpu)), 1e-5);
  // Tokens left on the host are an error naming both devices.
  const std::string msg = rlft::testing::error_of([&] { gpu->forward(tokens, mask); });
  EXPECT_NE(msg.find("gpt: tokens on cpu but the model on cuda:0"), std::string::npos) << msg;
}

// The composed path's mask and the position ids built on the device: the CPU's values.
TEST(GPTCuda, AdditiveAttentionMaskAndPositionIdsOnTheDeviceAreTheCpus) {
  RLFT_SKIP_WITHOUT_GPU();
  const std::string flags = "101100111011011111";  // [2, 9]: 1 a real key
  std::vector<bool> real;
  for (char ch : flags) real.push_back(ch == '1');
  for (auto [T, past] : {std::pair<int64_t, int64_t>{9, 0}, {4, 5}}) {
    const Tensor c = additive_attention_mask(real, 2, T, 9, past, 2, DType::f32, Device::cpu());
    const Tensor g = additive_attention_mask(real, 2, T, 9, past, 2, DType::f32, kGpu);
    EXPECT_TRUE(g.device().is_cuda());
    EXPECT_EQ(g.to(Device::cpu()).to_vector(), c.to_vector()) << "T=" << T << " past=" << past;
  }
  EXPECT_EQ(
      additive_attention_mask(Tensor(), 2, 4, 9, 5, 2, DType::f32, kGpu).to_vector(),
      additive_attention_mask(Tensor(), 2, 4, 9, 5, 2, DType::f32, Device::cpu()).to_vector());
  // The position ids GPT::forward builds there from the same flags (cumsum, where).
  const Tensor f = Tensor::from_bools(real, {2, 9});
  const Tensor pg = position_ids(f.to(kGpu), 2, 9, kGpu);
  EXPECT_TRUE(pg.device().is_cuda());
  EXPECT_EQ(pg.to_int_vector(), position_ids(f, 2, 9, Device::cpu()).to_int_vector());
}

TEST(GPTCuda, KVCacheLogitsEqualFullRecompute) {
  RLFT_SKIP_WITHOUT_GPU();
  Generator gen(4);
  GPTConfig c = tiny_config();
  GPT cpu(c, gen);
  const auto model = gpu_copy(c, cpu);
  model->eval();
  NoGradGuard ng;
  const int64_t B = 2, Tp = 4, steps = 6;
  const Tensor all = random_tokens(B, Tp + steps, 10, 9).to(kGpu);
  std::vector<double> m(static_cast<size_t>(B * (Tp + steps)), 1.0);
  m[0] = m[1] = 0;  // row 0 has two left pads
  const Tensor mask = Tensor::from_vector(m, {B, Tp + steps});
  KVCache cache = model->make_cache(B, Tp + steps);
  EXPECT_TRUE(cache.keys[0].device().is_cuda());
  Tensor cached = model->lm_logits(model->forward(all.narrow(1, 0, Tp).contiguous(),
                                                  mask.narrow(1, 0, Tp).contiguous(), &cache));
  const Tensor full = model->lm_logits(model->forward(all, mask));
  EXPECT_LT(max_abs_diff(cached.narrow(1, 2, Tp - 2), full.narrow(1, 2, Tp - 2)), 1e-5);
  for (int64_t s = 0; s < steps; ++s) {
    const Tensor step = all.narrow(1, Tp + s, 1).contiguous();
    cached = model->lm_logits(model->forward(step, mask.narrow(1, Tp + s, 1).contiguous(), &cache));
    EXPECT_LT(max_abs_diff(cached.select(1, 0), full.select(1, Tp + s)), 1e-5) << "step " << s;
  }
}

TEST(GPTCuda, GenerationMatchesTheCpuAndAFullForward) {
  RLFT_SKIP_WITHOUT_GPU();
  Generator gen(5);
  GPTConfig c = tiny_config();
  GPT cpu(c, gen);
  const auto gpu = gpu_copy(c, cpu);
  const GenerationCase gc;
  const Tensor &prompts = gc.prompts, &pmask = gc.pmask;
  SamplingConfig sc = gc.sampling;
  // Greedy, then sampled without and with the top-k/top-p filter (the host-side path): the
  // same tokens as the CPU (one Philox stream on the host), log-probs within float rounding.
  for (const int mode : {0, 1, 2}) {
    sc.greedy = mode == 0;
    sc.top_k = mode == 2 ? 6 : 0;
    sc.top_p = mode == 2 ? 0.9 : 1.0;
    Generator g_cpu(42), g_gpu(42);
    const Generation a = generate(cpu, prompts, pmask, sc, g_cpu);
    const Generation b = generate(*gpu, prompts, pmask, sc, g_gpu);
    for (const Tensor* t : {&b.tokens, &b.attention_mask, &b.response_mask, &b.log_probs})
      EXPECT_TRUE(t->device().is_cuda()) << "mode " << mode;
    EXPECT_EQ(b.tokens.to_int_vector(), a.tokens.to_int_vector()) << "mode " << mode;
    EXPECT_EQ(b.response_mask.to_vector(), a.response_mask.to_vector()) << "mode " << mode;
    EXPECT_EQ(b.response_lengths, a.response_lengths) << "mode " << mode;
    EXPECT_LT(max_abs_diff(b.log_probs, a.log_probs), 1e-5) << "mode " << mode;
    // On the device, the cached log-probs are those of one full forward pass.
    const Tensor full = sequence_log_probs(*gpu, b.tokens, b.attention_mask, sc.temperature);
    EXPECT_TRUE(full.device().is_cuda());
    EXPECT_LT(max_abs_diff(mul(full, b.response_mask), b.log_probs), 2e-5) << "mode " << mode;
  }
  // Without the cache (the whole prefix again every step) greedy agrees too.
  sc.greedy = true;
  sc.use_cache = false;
  Generator g1(1), g2(1);
  sc.top_k = 0;
  sc.top_p = 1.0;
  EXPECT_EQ(generate(*gpu, prompts, pmask, sc, g1).tokens.to_int_vector(),
            generate(cpu, prompts, pmask, sc, g2).tokens.to_int_vector());
}
