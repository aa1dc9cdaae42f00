// Optimiser steps, clipping and schedules against hand-computed values; nn modules.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <memory>

#include "engine/cuda.h"
#include "engine/nn.h"
#include "engine/optim.h"
#include "kernels/cuda_ops.h"
#include "tests/test_util.h"

namespace rlft {
namespace {

Tensor param(double v) {
  return Tensor::from_vector(std::vector<double>{v}, {1}).set_requires_grad();
}
void set_grad(const Tensor& p, double g) {
  p.set_grad(Tensor::from_vector(std::vector<double>{g}, {1}));
}
double val(const Tensor& p) { return p.item(); }

TEST(Optim, SgdMomentumAndNesterov) {
  // θ=1, g=1 every step, lr 0.1, μ 0.9. Plain momentum: v1=1 → 0.9; v2=1.9 → 0.71.
  Tensor p = param(1);
  optim::SGD sgd({p}, 0.1, 0.9);
  set_grad(p, 1);
  sgd.step();
  EXPECT_NEAR(val(p), 0.9, 1e-12);
  sgd.step();
  EXPECT_NEAR(val(p), 0.71, 1e-12);
  // Nesterov: d = g + μ·v: step 1 d=1.9 → 0.81; step 2 v=1.9, d=2.71 → 0.539.
  Tensor q = param(1);
  optim::SGD nes({q}, 0.1, 0.9, 0, true);
  set_grad(q, 1);
  nes.step();
  EXPECT_NEAR(val(q), 0.81, 1e-12);
  nes.step();
  EXPECT_NEAR(val(q), 0.539, 1e-12);
}

// Dampening scales each new gradient's share of the momentum buffer from the second step on
// (buf = μ·buf + (1 − dampening)·g, as PyTorch's; the first buffer is g itself). θ = 1, g = 1 every
// step, lr 0.1, μ 0.9, dampening 0.5: buf 1 → θ 0.9; buf 0.9 + 0.5 = 1.4 → 0.76; buf 1.26 + 0.5 =
// 1.76 → 0.584.
TEST(Optim, SgdDampeningScalesTheNewGradientAfterTheFirstStep) {
  Tensor p = param(1);
  optim::SGD sgd({p}, 0.1, 0.9, 0, false, 0.5);
  set_grad(p, 1);
  sgd.step();
  EXPECT_NEAR(val(p), 0.9, 1e-12);
  sgd.step();
  EXPECT_NEAR(val(p), 0.76, 1e-12);
  sgd.step();
  EXPECT_NEAR(val(p), 0.584, 1e-12);
}

// SGD refuses Nesterov momentum with dampening (or without momentum), negative momentum and a
// negative learning rate, naming the value.
TEST(Optim, SgdRefusesBadHyperparameters) {
  EXPECT_EQ(testing::error_of([] { optim::SGD({param(1)}, 0.1, 0.9, 0, true, 0.5); }),
            "SGD: Nesterov needs momentum > 0 and no dampening");
  EXPECT_EQ(testing::error_of([] { optim::SGD({param(1)}, 0.1, 0, 0, true); }),
            "SGD: Nesterov needs momentum > 0 and no dampening");
  EXPECT_EQ(testing::error_of([] { optim::SGD({param(1)}, 0.1, -0.5); }),
            "SGD: momentum must be >= 0, got -0.5");
  EXPECT_EQ(testing::error_of([] { optim::SGD({param(1)}, -0.1); }),
            "optimizer: learning rate must be finite and >= 0, got -0.1");
}

// An SGD state's 'step' must be a whole count of steps: 2.5 is refused, naming it; 3 loads.
TEST(Optim, SgdLoadsOnlyAWholeStepCount) {
  optim::SGD sgd({param(1)}, 0.1, 0.9);
  const auto state = [](double s) {
    return std::vector<std::pair<std::string, Tensor>>{
        {"step", Tensor::from_vector(std::vector<double>{s}, {1})}};
  };
  EXPECT_EQ(testing::error_of([&] { sgd.load_state(state(2.5)); }),
            "optimizer state: 'step' is 2.5, not a count of steps (a whole number >= 0)");
  sgd.load_state(state(3));
  EXPECT_EQ(sgd.state()[0].second.item(), 3.0);
}

// SGD's state holds each parameter's momentum buffer under PyTorch's name, momentum_buffer.<i>,
// and a fresh optimiser that loads it continues as the original would. θ = 1, g = 1, lr 0.1, μ 0.9:
// buffers 1 then 1.9 (θ 0.9, then 0.71); the third step, from the loaded state: buffer 2.71,
// θ = 0.71 − 0.271 = 0.439.
TEST(Optim, SgdStateCarriesTheMomentumBuffer) {
  Tensor p = param(1);
  optim::SGD a({p}, 0.1, 0.9);
  set_grad(p, 1);
  a.step();
  a.step();
  const auto st = a.state();
  ASSERT_EQ(st.size(), 2u);
  EXPECT_EQ(st[0].first, "step");
  EXPECT_EQ(st[1].first, "momentum_buffer.0");
  EXPECT_NEAR(st[1].second.item(), 1.9, 1e-12);
  Tensor q = param(val(p));
  optim::SGD b({q}, 0.1, 0.9);
  b.load_state(st);
  set_grad(q, 1);
  b.step();
  EXPECT_NEAR(val(q), 0.439, 1e-12);
}

// A step that leaves a weight non-finite (a NaN gradient, or a learning rate that overflows)
// stops training with the cause, naming the step and the parameter.
TEST(Optim, AdamStepThatDivergesIsAnError) {
  Tensor a = param(1), b = param(2);
  optim::Adam adam({a, b}, 0.1);
  set_grad(a, 0.5);
  set_grad(b, std::nan(""));
  EXPECT_EQ(testing::error_of([&] { adam.step(); }),
            "Adam: step 1 made parameter 1 (shape [1]) non-finite: training diverged (a smaller "
            "learning rate, or gradient clipping?)");
  optim::Adam huge({param(1)}, 1e308);
  set_grad(huge.params()[0], 1e-300);
  EXPECT_NE(testing::error_of([&] {
              for (int i = 0; i < 3; ++i) huge.step();
            }).find("non-finite: training diverged"),
            std::string::npos);
}

// The fused CUDA step's launch layout (engine/optim.h): a name from set_cuda_adam_layout, else
// from RLFT_ADAM_LAUNCH, else chunked; an unknown name is an error naming it and its origin. (The
// layouts' values are compared on a GPU: CudaOps.AdamChunkedLayoutWritesTheGridLayoutsBits.)
TEST(Optim, CudaAdamLayoutIsChosenByNameAndABadNameIsAnError) {
  EXPECT_EQ(optim::parse_cuda_adam_layout("grid", "x"), kernels::cuda_ops::kAdamLayoutGrid);
  EXPECT_EQ(optim::parse_cuda_adam_layout("chunked", "x"), kernels::cuda_ops::kAdamLayoutChunked);
  EXPECT_EQ(testing::error_of([] { optim::parse_cuda_adam_layout("Chunked", "--flag"); }),
            "--flag: unknown Adam launch layout 'Chunked' (layouts: grid, chunked)");
  ::unsetenv("RLFT_ADAM_LAUNCH");
  optim::set_cuda_adam_layout("");
  EXPECT_EQ(optim::cuda_adam_layout(), "chunked");
  ::setenv("RLFT_ADAM_LAUNCH", "grid", 1);
  EXPECT_EQ(optim::cuda_adam_layout(), "grid");
  ::setenv("RLFT_ADAM_LAUNCH", "tiled", 1);
  EXPECT_EQ(testing::error_of([] { (void)optim::cuda_adam_layout(); }),
            "RLFT_ADAM_LAUNCH: unknown Adam launch layout 'tiled' (layouts: grid, chunked)");
  // The setter's choice wins over the environment; a bad name leaves the choice as it was.
  ::setenv("RLFT_ADAM_LAUNCH", "grid", 1);
  optim::set_cuda_adam_layout("chunked");
  EXPECT_EQ(optim::cuda_adam_layout(), "chunked");
  EXPECT_EQ(testing::error_of([] { optim::set_cuda_adam_layout("fast"); }),
            "set_cuda_adam_layout: unknown Adam launch layout 'fast' (layouts: grid, chunked)");
  EXPECT_EQ(optim::cuda_adam_layout(), "chunked");
  optim::set_cuda_adam_layout("");
  EXPECT_EQ(optim::cuda_adam_layout(), "grid");
  ::unsetenv("RLFT_ADAM_LAUNCH");
  EXPECT_EQ(optim::cuda_adam_layout(), "chunked");
  // A CPU step never reads the layout: a bad environment does not stop CPU training.
  ::setenv("RLFT_ADAM_LAUNCH", "tiled", 1);
  Tensor p = param(1);
  optim::Adam adam({p}, 0.1);
  set_grad(p, 1);
  EXPECT_NO_THROW(adam.step());
  ::unsetenv("RLFT_ADAM_LAUNCH");
}

// The chunked Adam layout's map from blocks to elements (kernels/cuda_ops.h), as the kernel
// walks it: every element of every tensor of a launch is in exactly one block's chunk, each
// block's chunk starts inside its tensor, and an empty tensor owns no block.
TEST(Optim, CudaAdamChunksCoverEveryElementOnce) {
  namespace co = kernels::cuda_ops;
  const std::vector<int64_t> sizes = {1023, 1024, 1025, 1, 0, 70001, 33, 2048, 0, 5000};
  std::vector<int64_t> first(sizes.size() + 1);
  const int count = int(sizes.size());
  const int64_t blocks = co::adam_first_blocks(sizes.data(), count, first.data());
  EXPECT_EQ(blocks, 1 + 1 + 2 + 1 + 0 + 69 + 1 + 2 + 0 + 5);  // ⌈n / 1024⌉ each, by hand
  std::vector<std::vector<int>> seen(sizes.size());
  for (size_t i = 0; i < sizes.size(); ++i) seen[i].assign(size_t(sizes[i]), 0);
  for (int64_t b = 0; b < blocks; ++b) {
    const co::AdamChunk c = co::adam_chunk(b, first, count);
    ASSERT_GE(c.tensor, 0);
    ASSERT_LT(c.tensor, count);
    ASSERT_GE(c.begin, 0) << "block " << b;
    ASSERT_LT(c.begin, sizes[size_t(c.tensor)])
        << "block " << b << " starts past tensor " << c.tensor;
    EXPECT_EQ(c.begin % co::kAdamChunk, 0);
    for (int64_t k = c.begin; k < std::min(c.begin + co::kAdamChunk, sizes[size_t(c.tensor)]); ++k)
      ++seen[size_t(c.tensor)][size_t(k)];
  }
  for (size_t i = 0; i < sizes.size(); ++i)
    for (size_t k = 0; k < seen[i].size(); ++k)
      ASSERT_EQ(seen[i][k], 1) << "tensor " << i << " element " << k;
  // A launch of empty tensors has no blocks (adam_step then launches nothing).
  const int64_t empty[2] = {0, 0};
  int64_t first2[3];
  EXPECT_EQ(co::adam_first_blocks(empty, 2, first2), 0);
}

TEST(Optim, AdamFirstTwoSteps) {
  // lr 0.1, betas (0.9, 0.999), eps 1e-8, gradients 0.5 then -1.0. By hand:
  // step 1: m=0.05, v=2.5e-4, m̂=0.5, v̂=0.25 → θ = 1 − 0.1·0.5/(0.5+1e-8) = 0.900000002
  // step 2: m=−0.055, v=1.24975e-3, m̂=−0.2894737, v̂=0.6251876 → θ = 0.9366103542405654
  Tensor p = param(1);
  optim::Adam adam({p}, 0.1);
  set_grad(p, 0.5);
  adam.step();
  EXPECT_NEAR(val(p), 0.900000002, 1e-12);
  set_grad(p, -1.0);
  adam.step();
  EXPECT_NEAR(val(p), 0.9366103542405654, 1e-12);
}

TEST(Optim, AdamWDecouplesDecayAndAdamAddsL2) {
  // With a zero gradient Adam's step is 0/(0+eps) = 0, so AdamW only decays: θ·(1 − lr·wd).
  Tensor p = param(1);
  optim::AdamW adamw({p}, 0.1, 0.9, 0.999, 1e-8, 0.1);
  set_grad(p, 0);
  adamw.step();
  EXPECT_NEAR(val(p), 0.99, 1e-12);
  // Adam with L2 decay sees g = 0 + wd·θ = 0.1 and takes a full first step of lr.
  Tensor q = param(1);
  optim::Adam adam({q}, 0.1, 0.9, 0.999, 1e-8, 0.1);
  set_grad(q, 0);
  adam.step();
  EXPECT_NEAR(val(q), 0.9, 1e-6);
}

// The float update runs in kernels/cpu/optim.cpp's cloned loop (AVX-512/AVX2/portable): over
// three steps of Adam (L2) and AdamW on 1037 weights (vector tails) it must give bitwise the
// weights of the formula applied element by element here, in float, with the scalars rounded
// to float as the optimiser rounds them; a NaN gradient anywhere in the vector is still found.
TEST(Optim, FloatAdamKernelEqualsTheFormulaBitwise) {
  const int64_t n = 1037;
  std::vector<float> w0(n), grads[3];
  for (int64_t k = 0; k < n; ++k) w0[size_t(k)] = std::sin(0.37f * float(k)) * 2.0f;
  for (int s = 0; s < 3; ++s) {
    grads[s].resize(n);
    for (int64_t k = 0; k < n; ++k)
      grads[s][size_t(k)] =
          std::cos(0.11f * float(k * (s + 2))) * std::pow(10.0f, float(k % 7) - 3.0f);
  }
  const double lr = 1e-2, b1 = 0.9, b2 = 0.999, eps = 1e-8, wd = 0.05;
  for (const bool decoupled : {false, true}) {
    SCOPED_TRACE(decoupled ? "AdamW" : "Adam");
    Tensor p = Tensor::from_vector(w0, {n}).set_requires_grad();
    std::unique_ptr<optim::Adam> opt;
    if (decoupled)
      opt = std::make_unique<optim::AdamW>(std::vector<Tensor>{p}, lr, b1, b2, eps, wd);
    else
      opt = std::make_unique<optim::Adam>(std::vector<Tensor>{p}, lr, b1, b2, eps, wd);
    optim::Adam& adam = *opt;
    std::vector<float> w = w0, m(n, 0.0f), v(n, 0.0f);
    for (int s = 0; s < 3; ++s) {
      p.set_grad(Tensor::from_vector(grads[s], {n}));
      adam.step();
      const double bc1 = 1 - std::pow(b1, s + 1), bc2 = 1 - std::pow(b2, s + 1);
      const float fb1 = float(b1), fb2 = float(b2), one = 1.0f, decay = float(1 - lr * wd),
                  l2 = float(wd), ss = float(lr / bc1), sb = float(std::sqrt(bc2)), e = float(eps);
      for (int64_t k = 0; k < n; ++k) {
        const size_t i = size_t(k);
        float g = grads[s][i];
        if (decoupled)
          w[i] *= decay;
        else
          g += l2 * w[i];
        m[i] = fb1 * m[i] + (one - fb1) * g;
        v[i] = fb2 * v[i] + (one - fb2) * g * g;
        w[i] -= ss * m[i] / (std::sqrt(v[i]) / sb + e);
      }
      ASSERT_EQ(p.to_float_vector(), w) << "step " << s + 1;
    }
    std::vector<float> bad = grads[0];
    bad[1030] = std::nanf("");  // in the last vector's tail
    p.set_grad(Tensor::from_vector(bad, {n}));
    EXPECT_NE(testing::error_of([&] { adam.step(); }).find("step 4 made parameter 0"),
              std::string::npos);
  }
}

// With a gradient as well as a decay, and θ ≠ 1 (so wd·θ ≠ wd): θ = 3, g = −0.15, lr 0.1, wd 0.1.
// Adam (L2): g' = g + wd·θ = 0.15 > 0; Adam's first step is lr·g'/(|g'| + eps) → θ = 2.9.
// AdamW (PyTorch order: decay first, then the Adam step): θ = 3·(1 − 0.01) + 0.1 = 3.07
// (decaying after the step would give 3.1·0.99 = 3.069).
TEST(Optim, WeightDecayWithAGradientByHand) {
  Tensor q = param(3);
  optim::Adam adam({q}, 0.1, 0.9, 0.999, 1e-8, 0.1);
  set_grad(q, -0.15);
  adam.step();
  EXPECT_NEAR(val(q), 3 - 0.1 * 0.15 / (0.15 + 1e-8), 1e-12);
  Tensor p = param(3);
  optim::AdamW adamw({p}, 0.1, 0.9, 0.999, 1e-8, 0.1);
  set_grad(p, -0.15);
  adamw.step();
  EXPECT_NEAR(val(p), 3 * 0.99 + 0.1 * 0.15 / (0.15 + 1e-8), 1e-12);
}

TEST(Optim, StateRoundTrip) {
  Tensor p = param(1), q = param(1);
  optim::Adam a({p}, 0.1), b({q}, 0.1);
  set_grad(p, 0.5);
  a.step();
  b.load_state(a.state());
  q.copy_(p);
  set_grad(p, -1);
  set_grad(q, -1);
  a.step();
  b.step();
  EXPECT_EQ(val(p), val(q));
  EXPECT_EQ(b.steps(), 2);
  optim::Adam c({param(1)}, 0.1);
  auto st = a.state();
  auto entry = [&](const std::string& name) -> Tensor& {
    for (auto& [k, t] : st)
      if (k == name) return t;
    throw Error("no entry " + name);
  };
  entry("exp_avg.0") = Tensor::zeros({2}, DType::f64);
  try {
    c.load_state(st);
    FAIL() << "shape mismatch accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("'exp_avg.0' has shape [2] but parameter 0 has [1]"),
              std::string::npos);
  }
}

// Step counts are each parameter's, as PyTorch's state['step']: a parameter that first gets a
// gradient at the optimiser's 6th step takes exactly the steps it would take alone from its
// first (Adam's bias correction counts its own updates: it used to count the optimiser's, a
// first update ~3x too large at step 6), and SGD's momentum buffer starts at that first step's
// direction even with dampening. A checkpoint holds the counts; a state without them (written
// before they existed) gives every parameter with moments the optimiser's count.
TEST(Optim, StepCountsArePerParameterAsPyTorchs) {
  const std::vector<double> grads = {0.3, -1.2, 0.7, 0.05, -0.4};
  auto run_adam = [&](bool late, bool decoupled) {
    Tensor p = param(1), q = param(2);
    optim::Adam opt(late ? std::vector<Tensor>{p, q} : std::vector<Tensor>{q}, 0.1, 0.9, 0.999,
                    1e-8, decoupled ? 0.1 : 0.0, decoupled);
    if (late)
      for (int s = 0; s < 5; ++s) {  // p trains alone; q has no gradient
        set_grad(p, 0.5);
        opt.step();
      }
    std::vector<double> path;
    for (double g : grads) {
      if (late) set_grad(p, 0.5);
      set_grad(q, g);
      opt.step();
      path.push_back(val(q));
    }
    return path;
  };
  for (bool decoupled : {false, true})
    EXPECT_EQ(run_adam(true, decoupled), run_adam(false, decoupled));
  auto run_sgd = [&](bool late) {
    Tensor p = param(1), q = param(2);
    optim::SGD opt(late ? std::vector<Tensor>{p, q} : std::vector<Tensor>{q}, 0.1, 0.9, 0.01, false,
                   0.5);
    if (late)
      for (int s = 0; s < 3; ++s) {
        set_grad(p, 0.5);
        opt.step();
      }
    std::vector<double> path;
    for (double g : grads) {
      set_grad(q, g);
      opt.step();
      path.push_back(val(q));
    }
    return path;
  };
  EXPECT_EQ(run_sgd(true), run_sgd(false));
  // By hand, SGD's first step of q (μ 0.9, dampening 0.5, wd 0.01): buf = d = 0.3 + 0.02.
  EXPECT_NEAR(run_sgd(true)[0], 2 - 0.1 * 0.32, 1e-15);

  // The counts in a checkpoint, and a state from before them.
  Tensor p = param(1), q = param(2);
  optim::Adam a({p, q}, 0.1);
  set_grad(p, 0.5);
  a.step();
  a.step();
  set_grad(q, 0.5);
  a.step();
  std::vector<std::pair<std::string, Tensor>> st = a.state();
  for (auto& e : st) e.second = e.second.clone();  // the moments, as of now (a steps on below)
  bool found = false;
  for (const auto& [k, t] : st)
    if (k == "param_steps") {
      found = true;
      EXPECT_EQ(t.to_vector(), (std::vector<double>{3, 1}));
    }
  EXPECT_TRUE(found);
  const double p3 = val(p), q3 = val(q);  // after 3 steps, as the state holds them
  auto next_q = [&](const std::vector<std::pair<std::string, Tensor>>& state) {
    Tensor p2 = param(p3), q2 = param(q3);
    optim::Adam b({p2, q2}, 0.1);
    b.load_state(state);
    set_grad(p2, 0.5);
    set_grad(q2, -0.25);
    b.step();
    return val(q2);
  };
  set_grad(p, 0.5);
  set_grad(q, -0.25);
  a.step();
  EXPECT_EQ(next_q(st), val(q));  // the resumed optimiser takes the same step
  std::vector<std::pair<std::string, Tensor>> old_format;
  for (const auto& e : st)
    if (e.first != "param_steps") old_format.push_back(e);
  // Without the counts q is taken to have had all 3 steps: its next update is its 4th, not its
  // 2nd, and differs.
  EXPECT_NE(next_q(old_format), val(q));
  auto bad = st;
  for (auto& [k, t] : bad)
    if (k == "param_steps") t = Tensor::from_vector(std::vector<int64_t>{3, -1}, {2});
  optim::Adam c({param(1), param(2)}, 0.1);
  EXPECT_NE(rlft::testing::error_of([&] {
              c.load_state(bad);
            }).find("optimizer state: 'param_steps' holds -1, not a count of steps"),
            std::string::npos);
}

// A damaged optimiser state is named and leaves the optimiser as it was: a moment without its
// pair (a resume used to read the missing second moment's null data: a segfault), an entry
// this optimiser never writes, a slot index past the parameters, a count that disagrees with
// the moments, a bad value after good ones.
TEST(Optim, DamagedStateIsNamedAndReplacesNothing) {
  Tensor p = param(1), q = param(2);
  optim::Adam a({p, q}, 0.1);
  set_grad(p, 0.5);
  set_grad(q, -0.25);
  a.step();
  const auto good = a.state();
  auto without = [&](const std::string& drop) {
    std::vector<std::pair<std::string, Tensor>> out;
    for (const auto& e : good)
      if (e.first != drop) out.push_back(e);
    return out;
  };
  auto with = [&](const std::string& name, const Tensor& t) {
    auto out = good;
    out.emplace_back(name, t);
    return out;
  };
  auto replaced = [&](const std::string& name, const Tensor& t) {
    auto out = good;
    for (auto& [k, v] : out)
      if (k == name) v = t;
    return out;
  };
  struct Case {
    std::vector<std::pair<std::string, Tensor>> state;
    std::string expect;
  };
  const Case cases[] = {
      {without("exp_avg_sq.1"), "optimizer state: 'exp_avg.1' without 'exp_avg_sq.1'"},
      {without("exp_avg.0"), "optimizer state: 'exp_avg_sq.0' without 'exp_avg.0'"},
      {with("bogus", Tensor::zeros({1})), "optimizer state: unexpected entry 'bogus'"},
      {with("exp_avg.2", Tensor::zeros({1})), "unexpected entry 'exp_avg.2'"},
      {with("exp_avg.01", Tensor::zeros({1})), "unexpected entry 'exp_avg.01'"},
      {with("momentum_buffer.0", Tensor::zeros({1})), "unexpected entry 'momentum_buffer.0'"},
      {replaced("param_steps", Tensor::from_vector(std::vector<int64_t>{1, 0}, {2})),
       "optimizer state: parameter 1 has moments but 'param_steps' counts 0 steps for it"},
      {replaced("exp_avg_sq.1", Tensor::from_vector(std::vector<double>{-1}, {1})),
       "'exp_avg_sq.1' holds -1 at flat index 0"},
  };
  for (const Case& c : cases) {
    Tensor p2 = param(3), q2 = param(4);
    optim::Adam b({p2, q2}, 0.1);
    set_grad(p2, 1);
    set_grad(q2, 1);
    b.step();
    b.step();
    const auto before = b.state();
    EXPECT_NE(rlft::testing::error_of([&] { b.load_state(c.state); }).find(c.expect),
              std::string::npos)
        << c.expect << "\n"
        << rlft::testing::error_of([&] { b.load_state(c.state); });
    const auto after = b.state();
    ASSERT_EQ(after.size(), before.size());
    for (size_t i = 0; i < after.size(); ++i) {
      EXPECT_EQ(after[i].first, before[i].first);
      EXPECT_EQ(after[i].second.to_vector(), before[i].second.to_vector()) << after[i].first;
    }
  }
  optim::Adam ok({param(1), param(2)}, 0.1);
  EXPECT_EQ(rlft::testing::error_of([&] { ok.load_state(good); }), "<no error>");
  optim::SGD sgd({param(1)}, 0.1, 0.9);
  EXPECT_NE(rlft::testing::error_of([&] {
              sgd.load_state(good);
            }).find("optimizer state: unexpected entry"),
            std::string::npos);
}

// A weight-decay mask exempts parameters from the decay and nothing else: with zero gradients
// Adam's own update is 0, so the decayed matrix shrinks by lr·wd a step and the exempt bias
// stays; matrices_decay picks the tensors of two or more dimensions.
TEST(Optim, WeightDecayMaskExemptsBiasesAndKeepsOneState) {
  Tensor w = Tensor::from_vector(std::vector<double>{1, 2, 3, 4}, {2, 2}).set_requires_grad();
  Tensor b = Tensor::from_vector(std::vector<double>{5, 6}, {2}).set_requires_grad();
  optim::AdamW opt({w, b}, 0.1, 0.9, 0.999, 1e-8, 0.5);
  EXPECT_EQ(optim::matrices_decay({w, b}), (std::vector<bool>{true, false}));
  opt.set_weight_decay_mask(optim::matrices_decay({w, b}));
  for (int s = 0; s < 2; ++s) {
    w.set_grad(Tensor::zeros({2, 2}, DType::f64));
    b.set_grad(Tensor::zeros({2}, DType::f64));
    opt.step();
  }
  const double f = 1 - 0.1 * 0.5;
  std::vector<double> want;
  for (double x : {1.0, 2.0, 3.0, 4.0}) want.push_back(x * f * f);
  EXPECT_EQ(w.to_vector(), want);
  EXPECT_EQ(b.to_vector(), (std::vector<double>{5, 6}));
  for (const auto& [name, t] : opt.state())  // one optimiser's names, as without a mask
    EXPECT_TRUE(name == "step" || name == "param_steps" || name.rfind("exp_avg", 0) == 0) << name;
  EXPECT_NE(rlft::testing::error_of([&] {
              opt.set_weight_decay_mask({true});
            }).find("Adam: weight-decay mask of 1 entries for 2 parameters"),
            std::string::npos);
}

TEST(Optim, ClipGradNorm) {
  Tensor a = param(0), b = param(0);
  set_grad(a, 3);
  set_grad(b, 4);
  EXPECT_NEAR(optim::clip_grad_norm({a, b}, 1.0), 5.0, 1e-12);
  EXPECT_NEAR(a.grad().item(), 0.6, 1e-6);
  EXPECT_NEAR(b.grad().item(), 0.8, 1e-6);
  // Below the threshold nothing changes.
  EXPECT_NEAR(optim::clip_grad_norm({a, b}, 10.0), 1.0, 1e-6);
  EXPECT_NEAR(a.grad().item(), 0.6, 1e-6);
  // grad_norm measures without scaling, however large the norm.
  set_grad(a, 30);
  set_grad(b, 40);
  EXPECT_NEAR(optim::grad_norm({a, b}), 50.0, 1e-12);
  EXPECT_EQ(a.grad().item(), 30.0);
  EXPECT_EQ(b.grad().item(), 40.0);
}

// A norm just over max_norm is scaled too, by max_norm/(norm + 1e-6): grads (3, 4) have norm 5;
// max_norm 4 gives coef 4/(5 + 1e-6) = 0.79999984, so (2.39999952, 3.19999936) and a new norm
// of 4 (to 1e-6). A rule that clips only far over the threshold (coef < 0.5) leaves them.
TEST(Optim, ClipGradNormScalesANormJustOverTheMax) {
  Tensor a = param(0), b = param(0);
  set_grad(a, 3);
  set_grad(b, 4);
  EXPECT_NEAR(optim::clip_grad_norm({a, b}, 4.0), 5.0, 1e-12);
  const double coef = 4.0 / (5.0 + 1e-6);
  EXPECT_NEAR(a.grad().item(), 3 * coef, 1e-12);
  EXPECT_NEAR(b.grad().item(), 4 * coef, 1e-12);
  EXPECT_NEAR(optim::grad_norm({a, b}), 4.0, 1e-6);
}

// The float loops of clip_grad_norm (kernels/cpu/optim.cpp, cloned): the norm is the eight-
// accumulator sum in its stated order, to the bit, and each gradient is scaled as
// float(double(g)·coef), over sizes that leave vector tails.
TEST(Optim, ClipGradNormFloatLoopsEqualTheFormulaBitwise) {
  const auto check = [](const std::vector<std::vector<float>>& grads) {
    std::vector<Tensor> params;
    double total = 0;
    for (const std::vector<float>& g : grads) {
      const int64_t n = int64_t(g.size());
      params.push_back(Tensor::zeros({n}, DType::f32).set_requires_grad());
      params.back().set_grad(Tensor::from_vector(g, {n}));
      double acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
      size_t k = 0;
      for (; k + 8 <= g.size(); k += 8)
        for (size_t j = 0; j < 8; ++j) acc[j] += double(g[k + j]) * double(g[k + j]);
      for (; k < g.size(); ++k) acc[0] += double(g[k]) * double(g[k]);
      for (double a : acc) total += a;
    }
    const double norm = std::sqrt(total), coef = 0.5 / (norm + 1e-6);
    ASSERT_LT(coef, 1.0);
    EXPECT_EQ(optim::clip_grad_norm(params, 0.5), norm);
    for (size_t i = 0; i < params.size(); ++i) {
      std::vector<float> want = grads[i];
      for (float& x : want) x = float(double(x) * coef);
      EXPECT_EQ(params[i].grad().to_float_vector(), want) << "parameter " << i;
    }
  };
  std::vector<std::vector<float>> grads;
  for (const int64_t n : {1, 7, 8, 9, 1037}) {
    std::vector<float> g(static_cast<size_t>(n));
    for (int64_t k = 0; k < n; ++k)
      g[size_t(k)] = std::sin(0.7f * float(k + n)) * std::pow(10.0f, float(k % 7) - 3.0f);
    grads.push_back(g);
  }
  check(grads);
  // The order made visible: 1, then seven tail terms of 2^-54, each lost when added to 1 on its
  // own; added together first (another accumulator for the tail) they would make the norm
  // 1 + 2^-52, not 1.
  const float t = std::ldexp(1.0f, -27);
  check({{1, 0, 0, 0, 0, 0, 0, 0, t, t, t, t, t, t, t}});
}

TEST(Optim, Schedules) {
  optim::LRSchedule lin{optim::LRSchedule::Kind::linear, 1.0, 0.0, 0, 10};
  EXPECT_DOUBLE_EQ(lin.at(0), 1.0);
  EXPECT_DOUBLE_EQ(lin.at(5), 0.5);
  EXPECT_DOUBLE_EQ(lin.at(10), 0.0);
  optim::LRSchedule cos{optim::LRSchedule::Kind::cosine, 1.0, 0.0, 2, 12};
  EXPECT_DOUBLE_EQ(cos.at(0), 0.5);  // warmup (step+1)/warmup
  EXPECT_DOUBLE_EQ(cos.at(1), 1.0);
  EXPECT_DOUBLE_EQ(cos.at(2), 1.0);
  EXPECT_NEAR(cos.at(7), 0.5, 1e-12);  // halfway through the cosine
  EXPECT_NEAR(cos.at(12), 0.0, 1e-12);
  EXPECT_THROW(optim::LRSchedule::parse("step"), Error);
}

// Schedules that end above zero (e.g. --min-lr-ratio): they decay to end_lr, not to 0.
// linear 1 → 0.2 over 10: lr(5) = 1 + (0.2 − 1)·0.5 = 0.6. cosine 1 → 0.2, warmup 2, total 12:
// lr = 0.2 + 0.5·0.8·(1 + cos(π·(s − 2)/10)): lr(4) = 0.2 + 0.4·(1 + cos(0.2π)), lr(7) = 0.6.
TEST(Optim, SchedulesDecayToANonZeroEnd) {
  optim::LRSchedule lin{optim::LRSchedule::Kind::linear, 1.0, 0.2, 0, 10};
  EXPECT_DOUBLE_EQ(lin.at(0), 1.0);
  EXPECT_NEAR(lin.at(5), 0.6, 1e-12);
  EXPECT_NEAR(lin.at(10), 0.2, 1e-12);
  EXPECT_NEAR(lin.at(20), 0.2, 1e-12);  // stays at the end past the total
  optim::LRSchedule cos{optim::LRSchedule::Kind::cosine, 1.0, 0.2, 2, 12};
  EXPECT_DOUBLE_EQ(cos.at(0), 0.5);  // warmup is to base_lr, independent of end_lr
  EXPECT_DOUBLE_EQ(cos.at(2), 1.0);
  EXPECT_NEAR(cos.at(4), 0.2 + 0.4 * (1 + std::cos(0.2 * M_PI)), 1e-12);
  EXPECT_NEAR(cos.at(7), 0.6, 1e-12);
  EXPECT_NEAR(cos.at(12), 0.2, 1e-12);
  EXPECT_NEAR(cos.at(50), 0.2, 1e-12);
}

TEST(Nn, ParameterNamesAndCounts) {
  Generator gen(0);
  nn::Sequential mlp;
  mlp.push_back(std::make_shared<nn::Linear>(4, 8, true, gen));
  mlp.push_back(nn::make_activation("tanh"));
  mlp.push_back(std::make_shared<nn::Linear>(8, 2, true, gen));
  auto names = mlp.named_parameters();
  ASSERT_EQ(names.size(), 4u);
  EXPECT_EQ(names[0].first, "0.weight");
  EXPECT_EQ(names[3].first, "2.bias");
  EXPECT_EQ(mlp.num_parameters(), 4 * 8 + 8 + 8 * 2 + 2);
  EXPECT_EQ(mlp.forward(Tensor::zeros({5, 4})).shape(), Shape({5, 2}));
  mlp.eval();
  EXPECT_FALSE(mlp[0]->is_training());
  EXPECT_THROW(nn::make_activation("swish"), Error);
}

// A parameter's name may not contain '.', the separator of nested modules' names.
TEST(Nn, ParameterNamesMayNotContainADot) {
  struct Dotted : nn::Module {
    Dotted() { register_parameter("a.b", Tensor::zeros({1})); }
  };
  EXPECT_EQ(testing::error_of([] { Dotted d; }),
            "register_parameter: name 'a.b' may not contain '.'");
}

// copy_from takes another module's values only where every parameter has the same name and
// shape: a Linear(2, 1) is not broadcast into a Linear(2, 3).
TEST(Nn, CopyFromRefusesParametersOfAnotherShape) {
  Generator gen(0);
  nn::Linear a(2, 3, true, gen), b(2, 1, true, gen);
  EXPECT_EQ(testing::error_of([&] { a.copy_from(b); }),
            "copy_from: parameter weight [3,2] does not match weight [1,2]");
}

TEST(Nn, LinearInitBoundsAndOrthogonal) {
  Generator gen(3);
  nn::Linear l(16, 32, true, gen);
  const double bound = 1.0 / 4.0;
  for (double v : l.weight.to_vector()) EXPECT_LE(std::abs(v), bound);
  l.init_orthogonal(std::sqrt(2.0), 0.0, gen);
  // W is 32x16 with orthonormal columns times gain: WᵀW = 2·I.
  Tensor wtw = matmul(l.weight.detach().t(), l.weight.detach());
  const auto m = wtw.to_vector();
  for (int i = 0; i < 16; ++i)
    for (int j = 0; j < 16; ++j) EXPECT_NEAR(m[i * 16 + j], i == j ? 2.0 : 0.0, 1e-5);
  for (double v : l.bias.to_vector()) EXPECT_EQ(v, 0.0);
  // Wide matrices get orthonormal rows.
  nn::Linear wide(16, 4, false, gen);
  wide.init_orthogonal(1.0, 0.0, gen);
  const auto r = matmul(wide.weight.detach(), wide.weight.detach().t()).to_vector();
  for (int i = 0; i < 4; ++i)
    for (int j = 0; j < 4; ++j) EXPECT_NEAR(r[i * 4 + j], i == j ? 1.0 : 0.0, 1e-5);
}

// The initialisers' ranges as stated in nn.h: Linear's weight and bias ~ U(−1/√in, 1/√in) (here
// ±1/4), the whole range (of 16·32 weights some lie within 10% of either end; the 32 biases lie
// inside it with both signs); Embedding's weight ~ N(0, 1) (512 draws: mean within 0.2 of 0,
// standard deviation within 0.15 of 1); LayerNorm starts as the identity map, weight 1 and bias 0.
TEST(Nn, InitialisersDrawFromTheirStatedDistributions) {
  Generator gen(5);
  nn::Linear l(16, 32, true, gen);
  const std::vector<double> w = l.weight.to_vector(), b = l.bias.to_vector();
  EXPECT_GT(*std::max_element(w.begin(), w.end()), 0.9 * 0.25);
  EXPECT_LT(*std::min_element(w.begin(), w.end()), -0.9 * 0.25);
  for (double v : b) EXPECT_LE(std::abs(v), 0.25);
  EXPECT_LT(*std::min_element(b.begin(), b.end()), 0.0);
  EXPECT_GT(*std::max_element(b.begin(), b.end()), 0.0);
  nn::Embedding e(64, 8, gen);
  const std::vector<double> x = e.weight.to_vector();
  double m = 0, ss = 0;
  for (double v : x) m += v / double(x.size());
  for (double v : x) ss += (v - m) * (v - m) / double(x.size());
  EXPECT_NEAR(m, 0.0, 0.2);
  EXPECT_NEAR(std::sqrt(ss), 1.0, 0.15);
  nn::LayerNorm ln(6);
  EXPECT_EQ(ln.weight.to_vector(), std::vector<double>(6, 1.0));
  EXPECT_EQ(ln.bias.to_vector(), std::vector<double>(6, 0.0));
}

TEST(Nn, MlpFitsAFunction) {
  // A 2-layer tanh MLP learns y = sin(x) on [-2, 2] with Adam: MSE falls below 1e-3.
  Generator gen(1);
  nn::Sequential mlp;
  mlp.push_back(std::make_shared<nn::Linear>(1, 32, true, gen));
  mlp.push_back(std::make_shared<nn::Tanh>());
  mlp.push_back(std::make_shared<nn::Linear>(32, 1, true, gen));
  Tensor x = Tensor::arange(-2.0, 2.0, 0.05).reshape({-1, 1});
  std::vector<float> ys;
  for (double v : x.to_vector()) ys.push_back(float(std::sin(v)));
  Tensor y = Tensor::from_vector(ys, x.shape());
  optim::Adam opt(mlp.parameters(), 1e-2);
  double loss = 0;
  for (int step = 0; step < 1500; ++step) {
    Tensor diff = sub(mlp.forward(x), y);
    Tensor l = mean(mul(diff, diff));
    opt.zero_grad();
    l.backward();
    opt.step();
    loss = l.item();
  }
  EXPECT_LT(loss, 1e-3);
}

}  // namespace
}  // namespace rlft

namespace rlft {
namespace {

// Module::to moves parameters in place: the same tensor objects (an optimizer built before
// keeps updating them), new dtype and values converted, gradients dropped; a failing move
// (a device that is not there) changes nothing.
TEST(ModuleTo, ConvertsParametersInPlaceAndKeepsOptimizersWorking) {
  Generator gen(3);
  nn::Linear lin(3, 2, true, gen);
  const std::vector<double> w0 = lin.weight.to_vector();
  optim::SGD opt(lin.parameters(), 0.5);
  lin.to(DType::f64);
  EXPECT_EQ(lin.weight.dtype(), DType::f64);
  EXPECT_EQ(lin.bias.dtype(), DType::f64);
  for (size_t i = 0; i < w0.size(); ++i)
    EXPECT_EQ(lin.weight.to_vector()[i], w0[i]);  // float → double exact
  // The optimizer holds the same tensors: a step on a float64 gradient updates them.
  sum(lin.forward(Tensor::ones({1, 3}, DType::f64))).backward();
  opt.step();
  EXPECT_NEAR(lin.weight.to_vector()[0], w0[0] - 0.5 * 1.0, 1e-12);  // d/dW of Σ(W·1 + b) = 1
  lin.to(DType::f64);                                                // already there: nothing to do
  EXPECT_EQ(lin.weight.dtype(), DType::f64);
  EXPECT_THROW(lin.to(DType::i64), Error);
}

TEST(ModuleTo, AFailedDeviceMoveLeavesTheModuleAsItWas) {
  if (cuda::device_count() > 0) GTEST_SKIP() << "a GPU is present: the move would succeed";
  Generator gen(4);
  nn::Linear lin(4, 4, true, gen);
  const std::vector<double> w = lin.weight.to_vector();
  const std::string msg = testing::error_of([&] { lin.to(Device::cuda(0)); });
  EXPECT_NE(msg.find("cuda:0"), std::string::npos) << msg;
  EXPECT_TRUE(lin.weight.device().is_cpu());
  EXPECT_TRUE(lin.bias.device().is_cpu());
  EXPECT_EQ(lin.weight.to_vector(), w);
}

}  // namespace
}  // namespace rlft
