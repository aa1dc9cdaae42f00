// Benchmarks of the engine's ops on CUDA tensors (engine/ops*.cpp -> kernels/cuda_ops.h), the
// comparisons issue #4 asks for at the engine level, float32, on device 0:
//
//   gemm/...          engine matmul on device tensors against cuBLAS called directly on the
//                     same buffers (no engine: no output allocation, no shape checks, no
//                     dispatch). Counters: TFLOP/s of the engine call (2·batch·M·N·K / time),
//                     cublas_us (the direct call, best of 5) and vs_cublas = cublas time /
//                     engine time (target ≥ 0.90). Shapes: a square 4096³, the GPT-2-small MLP
//                     projection of 8 × 1024 tokens (8192 × 3072 × 768) and its weight
//                     gradient (768 × 3072 × 8192, the transposed case), and attention scores
//                     batched over 12 heads × 16 sequences (192 × [1024, 64] · [64, 1024]).
//                     `_tf32` rows turn rlft::cuda::set_allow_tf32 on for both sides.
//   softmax_logprob/… the engine's fused op (kernels/cuda/softmax_logprob.cu) against the same
//                     result composed from engine ops, each a separate kernel with [N, V]
//                     intermediates: log_softmax, gather of the target, exp·mul·sum for the
//                     entropy. `fwd_bwd` rows also run the backward of Σ log p + Σ H through
//                     autograd. Counter speedup = composed time / fused time (target ≥ 2.5 for
//                     the forward); GB/s charges the fused op's minimal traffic (4 B per logit
//                     forward, 12 B forward + backward, as bench_cuda_kernels does). The
//                     engine op checks its targets (one stream synchronisation per call),
//                     which bench_cuda_kernels' kernel-level rows do not.
//   ratio_clip/…      the fused PPO surrogate op against exp, mul, clamp, mul, minimum, mul by
//                     the mask, sum / sum as separate engine ops (16 B per token of minimal
//                     traffic forward).
//   column_sum/…,     the engine's sum (or max) over dim 0 of [R, C] (kernels/cuda/reduce.cu,
//   column_max/…      picks its column version by shape) against reduce.cu's version 1 (one
//                     thread per column) called on the same buffers. GB/s charges one read of
//                     the input; v1_us, speedup = v1 time / engine time. Shapes from bias
//                     gradients of B·T = 64k tokens (C = 64, 768), a square 4096², a GPT-2
//                     vocabulary row count (C = 50257, R = 1024) and a 3-action head over 1M rows.
//   row_sum/…,        the same over dim 1 (the last: reduce.cu's rows or split rows by shape)
//   row_max/…         against version 1 (a block of 256 threads per row); R = 1 is the shape of
//                     every full reduction (sum(x), mean(x): one row of all the elements).
//   layer_norm_bwd/…  kernels/cuda/layer_norm.cu's backward (dx, dw, db) as the engine calls it
//                     (dw/db version by shape) against the same call forcing dw/db version 1
//                     (one thread per column). GB/s charges the minimal 12 B per element
//                     (read x and g, write dx).
//   attention/…       the fused causal self-attention op (kernels/cuda/attention.cu, version 1)
//                     on a [B, T, 3, NH, HS] qkv against the composed engine path (permutes,
//                     matmul, add of the −∞ mask, softmax, matmul) that the GPT uses on the
//                     device today. TFLOP/s counts the causal half of the products (2·2·B·NH·
//                     T²/2·HS forward; ×3.5 with the backward); composed_us, speedup as above.
//   adamw/…           one fused AdamW step (optim::AdamW::step: kernels/cuda/optim.cu, every
//                     parameter in launches of up to 24 tensors, with its divergence check)
//                     over the parameter shapes of GPT-2 small (124M) and of the toy `mini`
//                     GPT. GB/s charges the minimal 28 B per parameter (read w, g, m, v; write
//                     w, m, v) and %peak divides by the DRAM peak of the device attributes.
//                     adamw/… is the default (chunked) launch layout, adamw_grid/… the grid
//                     one (optim::set_cuda_adam_layout; kernels/cuda_ops.h). Before
//                     2026-11-27 grid was the default: adamw/… timed it, adamw_chunked/…
//                     chunked.
// Timing: cudaEvents around each call on the default stream (the engine's), Google Benchmark's
// manual time, each call after a clean L2 flush (bench/cuda_bench.h: a read of 4× the L2, so
// no input is in the cache; as bench_cuda_kernels' default protocol, since 2026-11-26 — figures
// before then ran on whatever the previous call left in the L2) and a device synchronisation
// (so the engine's host overhead is not hidden behind the flush); the composed / direct
// baselines are timed best of 5 after a warm-up. Host
// overhead of the engine (allocation from the caching allocator, checks) shows only where it
// is longer than the GPU work it launches.
//
// Without a GPU (or without the CUDA backend) the binary prints why and exits 0.
// Run: ./build/bench_cuda_engine --benchmark_min_time=0.2
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <functional>
#include <string>
#include <vector>

#include "bench/cuda_bench.h"
#include "engine/cuda.h"
#include "engine/ops.h"
#include "engine/optim.h"
#include "kernels/cuda_ops.h"
#include "models/gpt.h"

#ifdef RLFT_HAVE_CUDA
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <stdexcept>
#endif

namespace {

#ifdef RLFT_HAVE_CUDA

using namespace rlft;
using rlft::bench::EventTimer;
using rlft::bench::L2Flush;

void cublas_ok(cublasStatus_t s, const char* what) {
  if (s != CUBLAS_STATUS_SUCCESS) throw std::runtime_error(std::string(what) + ": cuBLAS status " + std::to_string(int(s)));
}
#define CUBLAS_OK(call) cublas_ok((call), #call)

const Device kDev = Device::cuda(0);

// Skips the benchmark (with a message) when `bytes` plus 1 GiB of headroom is not free.
bool fits(benchmark::State& state, double bytes) {
  size_t free_b = 0, total_b = 0;
  CUDA_OK(cudaMemGetInfo(&free_b, &total_b));
  const double cached = double(cuda::memory_stats(0).cached);
  if (bytes + double(size_t(1) << 30) > double(free_b) + cached) {
    state.SkipWithError(("needs " + std::to_string(int64_t(bytes) >> 20) + " MiB of device memory, " +
                         std::to_string(free_b >> 20) + " MiB free")
                            .c_str());
    return false;
  }
  return true;
}

// A [rows, cols] float32 device tensor of N(0, sd²) values: 64 random rows drawn on the host,
// tiled on the device (the values only need to look like logits, not be independent).
Tensor device_randn(int64_t rows, int64_t cols, double sd, uint64_t seed) {
  Generator gen(seed);
  const int64_t tile = std::min<int64_t>(rows, 64);
  const Tensor small = mul(randn({tile, cols}, &gen), sd).to(kDev);
  if (tile == rows) return small;
  const int64_t reps = (rows + tile - 1) / tile;
  return small.unsqueeze(0).expand({reps, tile, cols}).contiguous().reshape({reps * tile, cols}).narrow(0, 0, rows).contiguous();
}

// Times `engine` per iteration (manual time); `baseline` best of 5; returns the baseline's
// seconds (0 without one).
double measure(benchmark::State& state, const std::function<void()>& engine, const std::function<void()>& baseline) {
  EventTimer timer;
  const L2Flush flush;
  engine();  // warm-up: cuBLAS handle, allocator bins
  cuda::synchronize(0);
  double total = 0;
  for (auto _ : state) {
    flush();
    CUDA_OK(cudaDeviceSynchronize());  // the engine's host overhead stays in the timed region
    const double s = timer.seconds(engine);
    state.SetIterationTime(s);
    total += s;
  }
  state.counters["us"] = 1e6 * total / double(std::max<int64_t>(1, state.iterations()));
  if (!baseline) return 0;
  baseline();
  cuda::synchronize(0);
  double best = 1e30;
  for (int rep = 0; rep < 5; ++rep) {
    flush();
    CUDA_OK(cudaDeviceSynchronize());
    best = std::min(best, timer.seconds(baseline));
  }
  return best;
}

double per_call(benchmark::State& state) { return state.counters["us"] * 1e-6; }

// ---- GEMM: engine matmul vs cuBLAS directly ---------------------------------------------------

cublasHandle_t raw_handle() {
  static cublasHandle_t h = [] {
    cublasHandle_t x = nullptr;
    CUBLAS_OK(cublasCreate(&x));
    return x;
  }();
  return h;
}

// C = A·B with A [batch, M, K] (or, with trans_a, A stored [batch, K, M] and used transposed),
// B [batch, K, N], row-major, as matmul sees them.
void BM_gemm(benchmark::State& state, int64_t batch, int64_t M, int64_t N, int64_t K, bool trans_a, bool tf32) {
  if (!fits(state, 4.0 * double(batch) * double(M * K + K * N + 2 * M * N))) return;
  cuda::set_allow_tf32(tf32);
  const Tensor a_store = device_randn(batch * (trans_a ? K : M), trans_a ? M : K, 1.0, 1)
                             .reshape({batch, trans_a ? K : M, trans_a ? M : K});
  const Tensor b = device_randn(batch * K, N, 1.0, 2).reshape({batch, K, N});
  const Tensor a = trans_a ? a_store.transpose(1, 2) : a_store;  // a strided view: matmul's trans path
  const Tensor a2 = batch == 1 ? a.select(0, 0) : a, b2 = batch == 1 ? b.select(0, 0) : b;
  Tensor c_raw = Tensor::empty({batch, M, N}, DType::f32, kDev);
  cublasHandle_t h = raw_handle();
  CUBLAS_OK(cublasSetMathMode(h, tf32 ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH));
  const float one = 1.f, zero = 0.f;
  // Row-major C = op(A)·B is column-major Cᵀ = Bᵀ·op(A)ᵀ: cuBLAS's first operand is B.
  auto direct = [&] {
    CUBLAS_OK(cublasSgemmStridedBatched(h, CUBLAS_OP_N, trans_a ? CUBLAS_OP_T : CUBLAS_OP_N, int(N), int(M), int(K),
                                        &one, b.data<float>(), int(N), (long long)(K * N), a_store.data<float>(),
                                        int(trans_a ? M : K), (long long)(M * K), &zero, c_raw.data<float>(), int(N),
                                        (long long)(M * N), int(batch)));
  };
  auto engine = [&] { benchmark::DoNotOptimize(matmul(a2, b2)); };
  const double raw = measure(state, engine, direct);
  const double t = per_call(state);
  state.counters["TFLOP/s"] = 2.0 * double(batch) * double(M) * double(N) * double(K) / t / 1e12;
  state.counters["cublas_us"] = raw * 1e6;
  state.counters["vs_cublas"] = raw / t;
  cuda::set_allow_tf32(false);
}

// ---- softmax_logprob: fused op vs composed engine ops -------------------------------------------

void BM_softmax_logprob(benchmark::State& state, int64_t N, int64_t V, bool backward) {
  // Composed path's peak: logits, log_softmax, exp, the product (and as many gradients).
  if (!fits(state, 4.0 * double(N) * double(V) * (backward ? 8 : 4))) return;
  Tensor logits = device_randn(N, V, 2.0, 3);
  std::vector<int64_t> tgt(static_cast<size_t>(N));
  for (int64_t i = 0; i < N; ++i) tgt[size_t(i)] = (i * 7919) % V;
  const Tensor targets = Tensor::from_vector(tgt, {N}).to(kDev);
  if (backward) logits.set_requires_grad(true);
  auto run = [&](bool fused) {
    Tensor lp, H;
    if (fused) {
      std::tie(lp, H) = softmax_logprob(logits, targets);
    } else {
      const Tensor ls = log_softmax(logits, -1);
      lp = gather(ls, 1, targets.unsqueeze(1)).squeeze(1);
      H = neg(sum(mul(exp(ls), ls), {-1}));
    }
    if (backward) {
      add(sum(lp), sum(H)).backward();
      logits.zero_grad();
    } else {
      benchmark::DoNotOptimize(lp);
    }
  };
  // Without requires_grad (the forward rows) no graph is recorded.
  auto fused = [&] { run(true); };
  auto composed = [&] { run(false); };
  const double base = measure(state, fused, composed);
  const double t = per_call(state);
  state.counters["GB/s"] = (backward ? 12.0 : 4.0) * double(N) * double(V) / t / 1e9;
  state.counters["composed_us"] = base * 1e6;
  state.counters["speedup"] = base / t;
}

// ---- ratio_clip: fused op vs composed engine ops ------------------------------------------------

void BM_ratio_clip(benchmark::State& state, int64_t B, int64_t T) {
  if (!fits(state, 4.0 * double(B * T) * 12)) return;
  const Tensor lp = mul(device_randn(B, T, 1.0, 4), 0.1), old = mul(device_randn(B, T, 1.0, 5), 0.1);
  const Tensor adv = device_randn(B, T, 1.0, 6);
  const Tensor mask = gt(device_randn(B, T, 1.0, 7), -1.0).to(DType::f32);  // ~84% ones
  const double eps = 0.2;
  auto fused = [&] { benchmark::DoNotOptimize(ratio_clip(lp, old, adv, mask).loss); };
  auto composed = [&] {
    const Tensor ratio = exp(sub(lp, old));
    const Tensor surrogate = minimum(mul(ratio, adv), mul(clamp(ratio, 1 - eps, 1 + eps), adv));
    benchmark::DoNotOptimize(neg(div(sum(mul(surrogate, mask)), sum(mask))));
  };
  const double base = measure(state, fused, composed);
  const double t = per_call(state);
  state.counters["GB/s"] = 16.0 * double(B * T) / t / 1e9;
  state.counters["composed_us"] = base * 1e6;
  state.counters["speedup"] = base / t;
}

// ---- column reductions and LayerNorm's dw/db: picked version vs version 1 ------------------------

namespace co = kernels::cuda_ops;

// Over dim 0 of [R, C] (columns: outer 1, inner C) or over dim 1 (rows: outer R, inner 1).
void BM_reduce(benchmark::State& state, int64_t R, int64_t C, bool is_max, int dim) {
  if (!fits(state, 4.0 * double(R * C))) return;
  const Tensor x = device_randn(R, C, 1.0, 8);
  const int64_t outer = dim == 0 ? 1 : R, len = dim == 0 ? R : C, inner = dim == 0 ? C : 1;
  Tensor v1_out = Tensor::empty({outer * inner}, DType::f32, kDev);
  Tensor v1_idx = Tensor::empty({outer * inner}, DType::i64, kDev);
  auto engine = [&] { benchmark::DoNotOptimize(is_max ? max(x, dim) : sum(x, {dim})); };
  auto v1 = [&] {
    if (is_max) {
      co::extreme(co::Type::f32, outer, len, inner, x.raw_data(), v1_out.raw_data(), v1_idx.data<int64_t>(),
                  true, 0, 1);
    } else {
      co::sum(co::Type::f32, outer, len, inner, x.raw_data(), v1_out.raw_data(), 0, 1);
    }
  };
  const double base = measure(state, engine, v1);
  const double t = per_call(state);
  state.counters["GB/s"] = 4.0 * double(R * C) / t / 1e9;
  state.counters["v1_us"] = base * 1e6;
  state.counters["speedup"] = base / t;
}

void BM_layer_norm_backward(benchmark::State& state, int64_t N, int64_t C) {
  if (!fits(state, 4.0 * double(N * C) * 4)) return;
  const Tensor x = device_randn(N, C, 1.0, 9), g = device_randn(N, C, 1.0, 10);
  const Tensor w = device_randn(1, C, 1.0, 11).reshape({C});
  Tensor y = Tensor::empty({N, C}, DType::f32, kDev), dx = Tensor::empty({N, C}, DType::f32, kDev);
  Tensor dw = Tensor::empty({C}, DType::f32, kDev), db = Tensor::empty({C}, DType::f32, kDev);
  Tensor stats = Tensor::empty({2 * N}, DType::f64, kDev);
  double* mean = stats.data<double>();
  co::layer_norm_forward(co::Type::f32, N, C, x.raw_data(), w.raw_data(), nullptr, 1e-5, y.raw_data(), mean,
                         mean + N, 0);
  auto run = [&](int version) {
    co::layer_norm_backward(co::Type::f32, N, C, x.raw_data(), w.raw_data(), mean, mean + N, g.raw_data(),
                            dx.raw_data(), dw.raw_data(), db.raw_data(), 0, version);
  };
  const double base = measure(state, [&] { run(0); }, [&] { run(1); });
  const double t = per_call(state);
  state.counters["GB/s"] = 12.0 * double(N * C) / t / 1e9;
  state.counters["v1_us"] = base * 1e6;
  state.counters["speedup"] = base / t;
}

// ---- fused causal self-attention vs the composed path ---------------------------------------------

void BM_attention(benchmark::State& state, int64_t B, int64_t T, int64_t NH, int64_t HS, bool backward) {
  if (!fits(state, 4.0 * double(B * NH * T) * double(T) * (backward ? 4 : 2))) return;
  Tensor qkv = device_randn(B * T * 3, NH * HS, 1.0, 12).reshape({B, T, 3, NH, HS});
  if (backward) qkv.set_requires_grad(true);
  std::vector<double> bias(size_t(T * T), 0.0);
  for (int64_t i = 0; i < T; ++i)
    for (int64_t j = i + 1; j < T; ++j) bias[size_t(i * T + j)] = -1e30;
  const Tensor mask = Tensor::from_vector(bias, {1, 1, T, T}).to(DType::f32).to(kDev);
  auto run = [&](bool fused) {
    Tensor y;
    if (fused) {
      y = causal_self_attention(qkv);
    } else {
      const Tensor q = qkv.select(2, 0).permute({0, 2, 1, 3}), k = qkv.select(2, 1).permute({0, 2, 1, 3});
      const Tensor v = qkv.select(2, 2).permute({0, 2, 1, 3});
      const Tensor att = softmax(add(mul(matmul(q, k.transpose(-2, -1)), 1.0 / std::sqrt(double(HS))), mask), -1);
      y = matmul(att, v).permute({0, 2, 1, 3}).reshape({B, T, NH * HS});
    }
    if (backward) {
      sum(y).backward();
      qkv.zero_grad();
    } else {
      benchmark::DoNotOptimize(y);
    }
  };
  const double base = measure(state, [&] { run(true); }, [&] { run(false); });
  const double t = per_call(state);
  const double flops = 2.0 * double(B * NH) * double(T) * double(T) * double(HS) * (backward ? 3.5 : 1.0);
  state.counters["TFLOP/s"] = flops / t / 1e12;
  state.counters["composed_us"] = base * 1e6;
  state.counters["speedup"] = base / t;
}

// ---- a toy GPT's forward: the host's share -------------------------------------------------------
// The micro GPT (4 layers, C 128, 4 heads) on the device, a left-padded batch (row b has b % 7
// pads) under NoGradGuard: one call is GPT::forward, host work included (the events bracket
// the launches). attention_mask/ lines time the composed path's additive mask alone
// (models::additive_attention_mask: built on the device from B·Tk flags since session 16,
// where the host used to write B·T·Tk values and upload them).
std::vector<double> left_pad_mask(int64_t B, int64_t T) {
  std::vector<double> m(size_t(B * T), 1.0);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t < b % 7 && t < T; ++t) m[size_t(b * T + t)] = 0.0;
  return m;
}

void BM_gpt_forward(benchmark::State& state, int64_t B, int64_t T) {
  Generator gen(3);
  models::GPTConfig c = models::GPTConfig::named("micro");
  models::GPT model(c, gen);
  model.to(kDev);
  model.eval();
  std::vector<int64_t> ids(size_t(B * T));
  for (size_t i = 0; i < ids.size(); ++i) ids[i] = int64_t((i * 7919) % 256);
  const Tensor tokens = Tensor::from_vector(ids, {B, T}).to(kDev);
  const Tensor mask = Tensor::from_vector(left_pad_mask(B, T), {B, T}).to(kDev);
  NoGradGuard ng;
  measure(state, [&] { benchmark::DoNotOptimize(model.forward(tokens, mask)); }, nullptr);
  state.counters["tokens/s"] = double(B * T) / per_call(state);
}

void BM_attention_mask(benchmark::State& state, int64_t B, int64_t T, int64_t NH) {
  std::vector<bool> real(size_t(B * T));
  const std::vector<double> m = left_pad_mask(B, T);
  for (size_t i = 0; i < real.size(); ++i) real[i] = m[i] != 0;
  measure(
      state,
      [&] {
        benchmark::DoNotOptimize(
            models::additive_attention_mask(real, B, T, T, 0, NH, DType::f32, kDev));
      },
      nullptr);
  state.counters["GB/s"] = 4.0 * double(B * NH * T * T) / per_call(state) / 1e9;
}

// ---- AdamW: the fused step over a model's parameters -------------------------------------------

// The parameter shapes of a GPT-2-style model (token and position embeddings, per block two
// LayerNorms, the fused QKV, the attention projection and the 4× MLP, the final LayerNorm).
std::vector<Shape> gpt_parameter_shapes(int64_t vocab, int64_t ctx, int64_t layers, int64_t C) {
  std::vector<Shape> s = {{vocab, C}, {ctx, C}};
  for (int64_t l = 0; l < layers; ++l) {
    for (const Shape& x : std::vector<Shape>{{C},
                                             {C},
                                             {C, 3 * C},
                                             {3 * C},
                                             {C, C},
                                             {C},
                                             {C},
                                             {C},
                                             {C, 4 * C},
                                             {4 * C},
                                             {4 * C, C},
                                             {C}})
      s.push_back(x);
  }
  s.push_back({C});
  s.push_back({C});
  return s;
}

void BM_adamw(benchmark::State& state, const std::vector<Shape>& shapes,
              const std::string& layout) {
  int64_t n = 0;
  for (const Shape& sh : shapes) n += sh.numel();
  if (!fits(state, 4.0 * 4.0 * double(n))) return;
  std::vector<Tensor> params;
  for (size_t i = 0; i < shapes.size(); ++i) {
    Tensor p = Tensor::zeros(shapes[i], DType::f32, kDev);
    p.set_requires_grad(true);
    p.set_grad(device_randn(shapes[i].numel(), 1, 0.01, 10 + i).reshape(shapes[i]));
    params.push_back(p);
  }
  optim::AdamW opt(params, 3e-4, 0.9, 0.95, 1e-8, 0.1);
  optim::set_cuda_adam_layout(layout);
  measure(
      state, [&] { opt.step(); }, nullptr);
  optim::set_cuda_adam_layout("");
  cuda::synchronize(0);  // a divergence would be reported here (it cannot: finite gradients)
  const double gbps = 28.0 * double(n) / per_call(state) / 1e9;
  state.counters["params_M"] = double(n) / 1e6;
  state.counters["GB/s"] = gbps;
  state.counters["%peak"] = 100.0 * gbps / rlft::bench::peak_dram_gbps(0);
}

void register_all() {
  auto reg = [](const std::string& name, std::function<void(benchmark::State&)> fn) {
    benchmark::RegisterBenchmark(name.c_str(), fn)->UseManualTime()->Unit(benchmark::kMicrosecond);
  };
  struct Shape3 {
    const char* name;
    int64_t batch, M, N, K;
    bool trans_a;
  };
  const Shape3 shapes[] = {{"square_4096", 1, 4096, 4096, 4096, false},
                           {"mlp_8192x3072x768", 1, 8192, 3072, 768, false},
                           {"mlp_wgrad_768x3072x8192_At", 1, 768, 3072, 8192, true},
                           {"attn_192x1024x1024x64", 192, 1024, 1024, 64, false}};
  for (const Shape3& s : shapes)
    for (bool tf32 : {false, true})
      reg(std::string("gemm/") + s.name + (tf32 ? "_tf32" : ""),
          [=](benchmark::State& st) { BM_gemm(st, s.batch, s.M, s.N, s.K, s.trans_a, tf32); });
  for (bool bwd : {false, true})
    for (int64_t N : {4096, 16384})
      for (int64_t V : {32768, 131072}) {
        if (bwd && N > 4096) continue;  // the composed backward's [N, V] temporaries
        reg(std::string("softmax_logprob/") + (bwd ? "fwd_bwd" : "fwd") + "/N=" + std::to_string(N) +
                "/V=" + std::to_string(V),
            [=](benchmark::State& st) { BM_softmax_logprob(st, N, V, bwd); });
      }
  for (auto [B, T] : {std::pair<int64_t, int64_t>{64, 1024}, {512, 4096}})
    reg("ratio_clip/B=" + std::to_string(B) + "/T=" + std::to_string(T),
        [=](benchmark::State& st) { BM_ratio_clip(st, B, T); });
  const std::pair<int64_t, int64_t> columns[] = {{65536, 64}, {65536, 768}, {4096, 4096}, {1024, 50257}, {1 << 20, 3}};
  for (bool is_max : {false, true})
    for (auto [R, C] : columns)
      reg(std::string(is_max ? "column_max" : "column_sum") + "/R=" + std::to_string(R) + "/C=" + std::to_string(C),
          [=](benchmark::State& st) { BM_reduce(st, R, C, is_max, 0); });
  // Over the last dim: one row of 2M (a full reduction's shape), few long rows, many rows.
  const std::pair<int64_t, int64_t> rows[] = {{1, 1 << 21}, {8, 1 << 18}, {64, 32768}, {4096, 4096}};
  for (bool is_max : {false, true})
    for (auto [R, C] : rows)
      reg(std::string(is_max ? "row_max" : "row_sum") + "/R=" + std::to_string(R) + "/C=" + std::to_string(C),
          [=](benchmark::State& st) { BM_reduce(st, R, C, is_max, 1); });
  for (auto [N, C] : {std::pair<int64_t, int64_t>{8192, 768}, {16384, 1024}, {65536, 64}, {1024, 4096}})
    reg("layer_norm_bwd/N=" + std::to_string(N) + "/C=" + std::to_string(C),
        [=](benchmark::State& st) { BM_layer_norm_backward(st, N, C); });
  // GPT-2 small's heads at two lengths, and the toy GPTs' training batches (micro: 32 × 64,
  // 4 heads of 32; mini: 16 × 128, 8 heads of 32).
  struct AttnShape {
    int64_t B, T, NH, HS;
  };
  for (bool bwd : {false, true})
    for (const AttnShape a : {AttnShape{8, 256, 12, 64}, {8, 1024, 12, 64}, {32, 64, 4, 32}, {16, 128, 8, 32}})
      reg(std::string("attention/") + (bwd ? "fwd_bwd" : "fwd") + "/B=" + std::to_string(a.B) + "/T=" +
              std::to_string(a.T) + "/NH=" + std::to_string(a.NH) + "/HS=" + std::to_string(a.HS),
          [=](benchmark::State& st) { BM_attention(st, a.B, a.T, a.NH, a.HS, bwd); });
  for (auto [B, T] : {std::pair<int64_t, int64_t>{16, 128}, {64, 128}}) {
    const std::string shape = "/B=" + std::to_string(B) + "/T=" + std::to_string(T);
    reg("gpt_forward/micro" + shape, [=](benchmark::State& st) { BM_gpt_forward(st, B, T); });
    reg("attention_mask" + shape + "/NH=4",
        [=](benchmark::State& st) { BM_attention_mask(st, B, T, 4); });
  }
  const std::vector<Shape> gpt2_small = gpt_parameter_shapes(50257, 1024, 12, 768);
  const std::vector<Shape> mini = gpt_parameter_shapes(256, 128, 6, 256);
  for (const char* layout : {"chunked", "grid"}) {
    const std::string prefix = std::string(layout) == "grid" ? "adamw_grid/" : "adamw/";
    reg(prefix + "gpt2_small", [=](benchmark::State& st) { BM_adamw(st, gpt2_small, layout); });
    reg(prefix + "mini", [=](benchmark::State& st) { BM_adamw(st, mini, layout); });
  }
}

#endif  // RLFT_HAVE_CUDA

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  std::string reason;
  if (rlft::cuda::device_count(&reason) == 0) {
    std::printf("bench_cuda_engine: no GPU (%s); nothing to run.\n", reason.c_str());
    return 0;
  }
#ifdef RLFT_HAVE_CUDA
  std::printf("device 0: %s\n", rlft::kernels::cuda::device_name(0).c_str());
  register_all();
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
#endif
  return 0;
}
