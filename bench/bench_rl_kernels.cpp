// Benchmarks of the three signature RL kernels' CPU versions (kernels/softmax_logprob.h,
// kernels/ratio_clip.h, kernels/gae.h) against the unfused chains a PyTorch eager program runs
// (every step a loop that writes a temporary, as in the tests' references), float32. The
// `fused` lines run each kernel's default (version 2 of softmax_logprob and ratio_clip), the
// `fused_v1` lines version 1, the scalar reference. PyTorch itself on the same shapes:
// scripts/bench_torch_kernels.py.
//
// Each line reports the time per call and the napkin math:
//   GB/s   = the fused kernel's minimal traffic per call / time (the manual of each .cpp:
//            softmax_logprob fwd 1·4 B per logit, bwd 2·4 B; ratio_clip fwd 4·4 B per token,
//            bwd 5·4 B; gae 7·4 B per step, masked rows 5·4 B). The unfused lines use the
//            same useful byte count, so their GB/s is the effective bandwidth of the same work.
//   %peak  = GB/s / the STREAM-triad bandwidth measured at start-up with the same thread count
//            (printed in the context as triad_gbps_1t / triad_gbps_2t).
//   ns/el  = time per logit, token or step.
// Times are process CPU time at t = 1 and wall-clock time at t = 2 (see LoopTimer).
// Argument t is the OpenMP thread count of the fused kernel (the unfused chains are serial).
// Single-thread benchmarks run first, so idle OpenMP workers spinning after a parallel region
// do not steal the second core from a serial one.
// Run (2 cores shared with others, keep it short):
//   build-rlk/bench_rl_kernels --benchmark_min_time=0.2
#include <benchmark/benchmark.h>
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <random>
#include <string>
#include <vector>

#include "kernels/gae.h"
#include "kernels/ratio_clip.h"
#include "kernels/softmax_logprob.h"

namespace {

namespace rk = rlft::kernels;

double g_triad_gbps[3] = {0, 0, 0};  // by thread count 1, 2

// STREAM triad a = b + s·c over 3 × 64 MB (far beyond the caches): 3 arrays moved per
// element (the write-allocate read of `a` is not counted, as in STREAM). Best of 8.
double measure_triad_gbps(int threads) {
  const int64_t n = int64_t(1) << 24;
  std::vector<float> a(size_t(n), 0.f), b(size_t(n), 1.f), c(size_t(n), 2.f);
  double best = 0;
  for (int trial = 0; trial < 8; ++trial) {
    const auto t0 = std::chrono::steady_clock::now();
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int64_t i = 0; i < n; ++i) a[size_t(i)] = b[size_t(i)] + 0.5f * c[size_t(i)];
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    benchmark::DoNotOptimize(a.data());
    best = std::max(best, 3.0 * 4.0 * double(n) / s / 1e9);
  }
  return best;
}

// Seconds of the timed loop, measured around it (Google Benchmark's own rate counters would
// print "GB/s=…/s"): process CPU time for t = 1, which other jobs on the shared cores do not
// inflate, and wall-clock time for t = 2, where CPU time would count both threads.
struct LoopTimer {
  static double cpu_now() {
    timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return double(ts.tv_sec) + 1e-9 * double(ts.tv_nsec);
  }
  std::chrono::steady_clock::time_point wall0 = std::chrono::steady_clock::now();
  double cpu0 = cpu_now();
  double seconds(int threads) const {
    if (threads == 1) return cpu_now() - cpu0;
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - wall0).count();
  }
};

void report(benchmark::State& state, const LoopTimer& timer, double bytes, double elements,
            int threads) {
  const double s = timer.seconds(threads) / double(state.iterations());
  state.counters["GB/s"] = bytes / s / 1e9;
  state.counters["%peak"] = bytes / s / 1e9 / g_triad_gbps[threads] * 100.0;
  state.counters["ns/el"] = s / elements * 1e9;
}

std::vector<float> random_floats(size_t n, float scale, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> d(0.f, scale);
  std::vector<float> v(n);
  for (float& x : v) x = d(rng);
  return v;
}

// ---- softmax_logprob ------------------------------------------------------------------------

struct SoftmaxData {
  int64_t N, V;
  std::vector<float> logits, logp, entropy, lse, g_logp, g_entropy, dlogits;
  std::vector<float> ls, p, g_ls;  // the unfused chain's [N, V] temporaries
  std::vector<int64_t> targets;
  SoftmaxData(int64_t N_, int64_t V_)
      : N(N_),
        V(V_),
        logits(random_floats(size_t(N * V), 3.f, 1)),
        logp(size_t(N)),
        entropy(size_t(N)),
        lse(size_t(N)),
        g_logp(random_floats(size_t(N), 1.f, 2)),
        g_entropy(random_floats(size_t(N), 1.f, 3)),
        dlogits(size_t(N * V)),
        ls(size_t(N * V)),
        p(size_t(N * V)),
        g_ls(size_t(N * V)),
        targets(size_t(N)) {
    for (int64_t n = 0; n < N; ++n) targets[size_t(n)] = (n * 7919) % V;
  }
};

// log_softmax (max pass, sum pass, write), gather, p = exp(ls) (write), H = −Σ p·ls.
void softmax_forward_unfused(SoftmaxData& d) {
  const int64_t N = d.N, V = d.V;
  for (int64_t n = 0; n < N; ++n) {
    const float* x = d.logits.data() + n * V;
    float* ls = d.ls.data() + n * V;
    float mx = x[0];
    for (int64_t v = 1; v < V; ++v) mx = std::max(mx, x[v]);
    float sum = 0;
    for (int64_t v = 0; v < V; ++v) sum += std::exp(x[v] - mx);
    const float lse = mx + std::log(sum);
    for (int64_t v = 0; v < V; ++v) ls[v] = x[v] - lse;
    d.lse[size_t(n)] = lse;
  }
  for (int64_t n = 0; n < N; ++n) d.logp[size_t(n)] = d.ls[size_t(n * V + d.targets[size_t(n)])];
  for (size_t k = 0; k < d.p.size(); ++k) d.p[k] = std::exp(d.ls[k]);
  for (int64_t n = 0; n < N; ++n) {
    float h = 0;
    for (int64_t v = 0; v < V; ++v) h -= d.p[size_t(n * V + v)] * d.ls[size_t(n * V + v)];
    d.entropy[size_t(n)] = h;
  }
}

// Autograd's order: gather backward (zeros + scatter), entropy backward onto ls, then
// log_softmax backward g_z = g_ls − p·Σ g_ls, using the saved p and ls.
void softmax_backward_unfused(SoftmaxData& d) {
  const int64_t N = d.N, V = d.V;
  std::fill(d.g_ls.begin(), d.g_ls.end(), 0.f);
  for (int64_t n = 0; n < N; ++n)
    d.g_ls[size_t(n * V + d.targets[size_t(n)])] = d.g_logp[size_t(n)];
  for (int64_t n = 0; n < N; ++n)
    for (int64_t v = 0; v < V; ++v) {
      const size_t k = size_t(n * V + v);
      d.g_ls[k] += d.g_entropy[size_t(n)] * (-d.p[k] * (d.ls[k] + 1.f));
    }
  for (int64_t n = 0; n < N; ++n) {
    float s = 0;
    for (int64_t v = 0; v < V; ++v) s += d.g_ls[size_t(n * V + v)];
    for (int64_t v = 0; v < V; ++v) {
      const size_t k = size_t(n * V + v);
      d.dlogits[k] = d.g_ls[k] - d.p[k] * s;
    }
  }
}

void softmax_forward_fused(SoftmaxData& d, int version) {
  rk::softmax_logprob_forward_cpu<float>(d.logits.data(), d.N, d.V, d.V, d.targets.data(), -100,
                                         1.f, d.logp.data(), d.entropy.data(), d.lse.data(),
                                         version);
}
void softmax_backward_fused(SoftmaxData& d, int version) {
  rk::softmax_logprob_backward_cpu<float>(
      d.logits.data(), d.N, d.V, d.V, d.targets.data(), -100, 1.f, d.lse.data(), d.entropy.data(),
      d.g_logp.data(), d.g_entropy.data(), d.dlogits.data(), d.V, false, version);
}

// kVersion 0: the unfused chain; 1, 2: the fused kernel's version (2 is the float default).
template <int kVersion, bool kBackward>
void BM_softmax_logprob(benchmark::State& state) {
  constexpr bool kFused = kVersion > 0;
  const int64_t N = state.range(0), V = state.range(1);
  const int threads = kFused ? int(state.range(2)) : 1;
  omp_set_num_threads(threads);
  SoftmaxData d(N, V);
  if (kFused)
    softmax_forward_fused(d, kVersion);
  else
    softmax_forward_unfused(d);
  const LoopTimer timer;
  for (auto _ : state) {
    if (kBackward) {
      if (kFused)
        softmax_backward_fused(d, kVersion);
      else
        softmax_backward_unfused(d);
      benchmark::DoNotOptimize(d.dlogits.data());
    } else {
      if (kFused)
        softmax_forward_fused(d, kVersion);
      else
        softmax_forward_unfused(d);
      benchmark::DoNotOptimize(d.logp.data());
    }
    benchmark::ClobberMemory();
  }
  const double elems = double(N) * double(V);
  report(state, timer, (kBackward ? 2.0 : 1.0) * 4.0 * elems, elems, threads);
}

// ---- ratio_clip -----------------------------------------------------------------------------

struct ClipData {
  int64_t B, T;
  std::vector<float> logp, old_logp, adv, mask, g;
  // the unfused chain's temporaries
  std::vector<float> log_ratio, ratio, surr1, clipped, surr2, loss_tok, masked, is_low, is_high, k3,
      g_min, g_surr1, g_surr2, g_ratio;
  rk::RatioClipArgs<float> args;
  ClipData(int64_t B_, int64_t T_) : B(B_), T(T_) {
    const size_t n = size_t(B * T);
    old_logp = random_floats(n, 1.f, 4);
    for (float& x : old_logp) x = -std::abs(x) - 0.01f;
    logp = random_floats(n, 0.15f, 5);  // ≈ 1/3 of tokens outside [0.8, 1.2]
    for (size_t k = 0; k < n; ++k) logp[k] += old_logp[k];
    adv = random_floats(n, 1.f, 6);
    mask.assign(n, 1.f);
    for (int64_t i = 0; i < B && T > 1; ++i)  // responses of different lengths
      for (int64_t t = T - (i * 37) % (T / 2); t < T; ++t) mask[size_t(i * T + t)] = 0.f;
    g.resize(n);
    for (auto* v : {&log_ratio, &ratio, &surr1, &clipped, &surr2, &loss_tok, &masked, &is_low,
                    &is_high, &k3, &g_min, &g_surr1, &g_surr2, &g_ratio})
      v->resize(n);
    args = {.B = B,
            .T = T,
            .logp = logp.data(),
            .old_logp = old_logp.data(),
            .advantages = adv.data(),
            .mask = T > 1 ? mask.data() : nullptr,  // PPO's flat [N] passes no mask
            .eps_low = 0.2,
            .eps_high = 0.28};
  }
};

// One elementwise pass per PyTorch op, then the reductions (token_mean, clip fractions, k1, k3).
double ratio_clip_forward_unfused(ClipData& d) {
  const size_t n = d.logp.size();
  const float lo = 0.8f, hi = 1.28f;
  for (size_t k = 0; k < n; ++k)
    d.log_ratio[k] = std::clamp(d.logp[k] - d.old_logp[k], -20.f, 20.f);
  for (size_t k = 0; k < n; ++k) d.ratio[k] = std::exp(d.log_ratio[k]);
  for (size_t k = 0; k < n; ++k) d.surr1[k] = d.ratio[k] * d.adv[k];
  for (size_t k = 0; k < n; ++k) d.clipped[k] = std::clamp(d.ratio[k], lo, hi);
  for (size_t k = 0; k < n; ++k) d.surr2[k] = d.clipped[k] * d.adv[k];
  for (size_t k = 0; k < n; ++k) d.loss_tok[k] = -std::min(d.surr1[k], d.surr2[k]);
  for (size_t k = 0; k < n; ++k) d.masked[k] = d.loss_tok[k] * d.mask[k];
  for (size_t k = 0; k < n; ++k) d.is_low[k] = float(d.adv[k] < 0 && d.ratio[k] < lo) * d.mask[k];
  for (size_t k = 0; k < n; ++k) d.is_high[k] = float(d.adv[k] > 0 && d.ratio[k] > hi) * d.mask[k];
  for (size_t k = 0; k < n; ++k) d.k3[k] = ((d.ratio[k] - 1.f) - d.log_ratio[k]) * d.mask[k];
  double sum = 0, tokens = 0, low = 0, high = 0, k1 = 0, k3 = 0;
  for (size_t k = 0; k < n; ++k) sum += d.masked[k];
  for (size_t k = 0; k < n; ++k) tokens += d.mask[k];
  for (size_t k = 0; k < n; ++k) low += d.is_low[k];
  for (size_t k = 0; k < n; ++k) high += d.is_high[k];
  for (size_t k = 0; k < n; ++k) k1 += (d.old_logp[k] - d.logp[k]) * d.mask[k];
  for (size_t k = 0; k < n; ++k) k3 += d.k3[k];
  benchmark::DoNotOptimize(low + high + k1 + k3);
  return sum / tokens;
}

// Autograd through mean, mask, min, clamp, exp and clamp, one pass per node, reading the
// tensors the forward saved (ratio, surr1, surr2).
void ratio_clip_backward_unfused(ClipData& d) {
  const size_t n = d.logp.size();
  double tokens = 0;
  for (size_t k = 0; k < n; ++k) tokens += d.mask[k];
  const float inv = float(1.0 / tokens);
  const float lo = 0.8f, hi = 1.28f;
  for (size_t k = 0; k < n; ++k) d.g_min[k] = -inv * d.mask[k];  // mean, mask, negation
  for (size_t k = 0; k < n; ++k) d.g_surr1[k] = d.surr2[k] < d.surr1[k] ? 0.f : d.g_min[k];
  for (size_t k = 0; k < n; ++k) d.g_surr2[k] = d.surr2[k] < d.surr1[k] ? d.g_min[k] : 0.f;
  for (size_t k = 0; k < n; ++k)
    d.g_ratio[k] = d.g_surr1[k] * d.adv[k] +
                   (d.ratio[k] >= lo && d.ratio[k] <= hi ? d.g_surr2[k] * d.adv[k] : 0.f);
  for (size_t k = 0; k < n; ++k) d.g_ratio[k] *= d.ratio[k];  // exp
  for (size_t k = 0; k < n; ++k)                              // clamp of the log-ratio
    d.g[k] = std::abs(d.logp[k] - d.old_logp[k]) <= 20.f ? d.g_ratio[k] : 0.f;
}

// kVersion 0: the unfused chain; 1, 2: the fused kernel's CPU version (2 is the default).
template <int kVersion, bool kBackward>
void BM_ratio_clip(benchmark::State& state) {
  constexpr bool kFused = kVersion > 0;
  const int64_t B = state.range(0), T = state.range(1);
  const int threads = kFused ? int(state.range(2)) : 1;
  omp_set_num_threads(threads);
  ClipData d(B, T);
  if (!kFused) ratio_clip_forward_unfused(d);  // the backward reads the saved ratio, surr1, surr2
  const LoopTimer timer;
  for (auto _ : state) {
    if (kBackward) {
      if (kFused)
        rk::ratio_clip_backward_cpu<float>(d.args, 1.0, d.g.data(), false, kVersion);
      else
        ratio_clip_backward_unfused(d);
      benchmark::DoNotOptimize(d.g.data());
    } else {
      if (kFused)
        benchmark::DoNotOptimize(rk::ratio_clip_forward_cpu<float>(d.args, kVersion).loss);
      else
        benchmark::DoNotOptimize(ratio_clip_forward_unfused(d));
    }
    benchmark::ClobberMemory();
  }
  const double elems = double(B) * double(T);
  report(state, timer, (kBackward ? 5.0 : 4.0) * 4.0 * elems, elems, threads);
}

// ---- gae ------------------------------------------------------------------------------------

struct GaeData {
  int64_t T, N;
  std::vector<float> r, v, nv, term, end, adv, ret, delta;
  GaeData(int64_t T_, int64_t N_)
      : T(T_),
        N(N_),
        r(random_floats(size_t(T * N), 1.f, 7)),
        v(random_floats(size_t(T * N), 1.f, 8)),
        nv(size_t(T * N)),
        term(size_t(T * N)),
        end(size_t(T * N)),
        adv(size_t(T * N)),
        ret(size_t(T * N)),
        delta(size_t(T * N)) {
    std::mt19937_64 rng(9);
    std::uniform_real_distribution<float> u(0.f, 1.f);
    for (size_t k = 0; k < term.size(); ++k) {
      const float x = u(rng);
      term[k] = x < 0.01f;
      end[k] = x < 0.015f;
    }
    for (int64_t t = 0; t < T; ++t)
      for (int64_t n = 0; n < N; ++n)
        nv[size_t(t * N + n)] = t + 1 < T ? v[size_t((t + 1) * N + n)] : 0.5f;
  }
};

// The tests' reference shape: δ materialised in a pass, then one environment at a time from
// the back (stride N), then returns in a pass.
void gae_unfused(GaeData& d, float gamma, float lambda) {
  const size_t n = d.r.size();
  for (size_t k = 0; k < n; ++k) d.delta[k] = d.r[k] + gamma * d.nv[k] * (1.f - d.term[k]) - d.v[k];
  for (int64_t e = 0; e < d.N; ++e) {
    float last = 0.f;
    for (int64_t t = d.T - 1; t >= 0; --t) {
      const size_t k = size_t(t * d.N + e);
      const float not_end = 1.f - std::max(d.term[k], d.end[k]);
      last = d.delta[k] + gamma * lambda * not_end * last;
      d.adv[k] = last;
    }
  }
  for (size_t k = 0; k < n; ++k) d.ret[k] = d.adv[k] + d.v[k];
}

template <bool kFused>
void BM_gae(benchmark::State& state) {
  const int64_t T = state.range(0), N = state.range(1);
  const int threads = kFused ? int(state.range(2)) : 1;
  omp_set_num_threads(threads);
  GaeData d(T, N);
  const LoopTimer timer;
  for (auto _ : state) {
    if (kFused)
      rk::gae_cpu<float>(d.r.data(), d.v.data(), d.nv.data(), d.term.data(), d.end.data(), T, N,
                         0.99f, 0.95f, d.adv.data(), d.ret.data());
    else
      gae_unfused(d, 0.99f, 0.95f);
    benchmark::DoNotOptimize(d.adv.data());
    benchmark::ClobberMemory();
  }
  const double elems = double(T) * double(N);
  report(state, timer, 7.0 * 4.0 * elems, elems, threads);
}

void BM_gae_masked_rows(benchmark::State& state) {
  const int64_t B = state.range(0), T = state.range(1);
  const int threads = int(state.range(2));
  omp_set_num_threads(threads);
  GaeData d(B, T);  // reuse the arrays: r, v as [B, T], term as a (mostly 0) mask → use 1 − term
  for (float& m : d.term) m = 1.f - m;
  const LoopTimer timer;
  for (auto _ : state) {
    rk::gae_masked_rows_cpu<float>(d.r.data(), d.v.data(), d.term.data(), B, T, 1.f, 0.95f,
                                   d.adv.data(), d.ret.data());
    benchmark::DoNotOptimize(d.adv.data());
    benchmark::ClobberMemory();
  }
  const double elems = double(B) * double(T);
  report(state, timer, 5.0 * 4.0 * elems, elems, threads);
}

// The fused and unfused float chains agree (so the comparison is of the same work).
void check_unfused_agrees() {
  double err = 0;
  for (int version : {1, 2}) {
    SoftmaxData a(8, 300), b(8, 300);
    softmax_forward_fused(a, version);
    softmax_forward_unfused(b);
    softmax_backward_fused(a, version);
    softmax_backward_unfused(b);
    for (size_t k = 0; k < a.logp.size(); ++k)
      err = std::max({err, double(std::abs(a.logp[k] - b.logp[k])),
                      double(std::abs(a.entropy[k] - b.entropy[k]))});
    for (size_t k = 0; k < a.dlogits.size(); ++k)
      err = std::max(err, double(std::abs(a.dlogits[k] - b.dlogits[k])));
  }
  for (int version : {1, 2}) {
    ClipData c(16, 64);
    const double fused_loss = rk::ratio_clip_forward_cpu<float>(c.args, version).loss;
    err = std::max(err, std::abs(fused_loss - ratio_clip_forward_unfused(c)));
    std::vector<float> g(c.g.size());
    rk::ratio_clip_backward_cpu<float>(c.args, 1.0, g.data(), false, version);
    ratio_clip_backward_unfused(c);
    for (size_t k = 0; k < g.size(); ++k) err = std::max(err, double(std::abs(g[k] - c.g[k])));
  }
  GaeData e(50, 3), f(50, 3);
  rk::gae_cpu<float>(e.r.data(), e.v.data(), e.nv.data(), e.term.data(), e.end.data(), 50, 3, 0.99f,
                     0.95f, e.adv.data(), e.ret.data());
  gae_unfused(f, 0.99f, 0.95f);
  for (size_t k = 0; k < e.adv.size(); ++k)
    err = std::max(err, double(std::abs(e.ret[k] - f.ret[k])));
  if (err > 1e-3) {
    std::fprintf(stderr, "bench_rl_kernels: fused and unfused disagree by %g\n", err);
    std::exit(1);
  }
}

void softmax_args(benchmark::internal::Benchmark* b, int threads) {
  // the small rows first: PPO's minibatch of 128 over CartPole's 2 actions, and 8 logits, where
  // version 0 turns from version 1 to 2
  b->Args({128, 2, threads})->Args({128, 8, threads});
  for (int64_t N : {64, 512})
    for (int64_t V : {256, 32000}) b->Args({N, V, threads});
  b->Unit(benchmark::kMicrosecond)->ArgNames({"N", "V", "t"});
}
void clip_args(benchmark::internal::Benchmark* b, int threads) {
  // PPO's flat [128] minibatch (B = 128 rows of T = 1), rows of 16 (where version 0 turns from
  // version 1 to 2), then the LM shape
  b->Args({128, 1, threads})
      ->Args({128, 16, threads})
      ->Args({64, 1024, threads})
      ->Unit(benchmark::kMicrosecond)
      ->ArgNames({"B", "T", "t"});
}
void gae_args(benchmark::internal::Benchmark* b, int threads) {
  b->Args({128, 8, threads})->Args({2048, 4, threads});
  b->Unit(benchmark::kMicrosecond)->ArgNames({"T", "N", "t"});
}

void register_all() {
  using benchmark::RegisterBenchmark;
  // serial first (fused at t=1 and the unfused chains), then the fused kernels at t=2
  for (int t : {1, 2}) {
    softmax_args(RegisterBenchmark("softmax_logprob_fwd/fused", BM_softmax_logprob<2, false>), t);
    softmax_args(RegisterBenchmark("softmax_logprob_bwd/fused", BM_softmax_logprob<2, true>), t);
    softmax_args(RegisterBenchmark("softmax_logprob_fwd/fused_v1", BM_softmax_logprob<1, false>),
                 t);
    softmax_args(RegisterBenchmark("softmax_logprob_bwd/fused_v1", BM_softmax_logprob<1, true>), t);
    if (t == 1) {
      softmax_args(RegisterBenchmark("softmax_logprob_fwd/unfused", BM_softmax_logprob<0, false>),
                   t);
      softmax_args(RegisterBenchmark("softmax_logprob_bwd/unfused", BM_softmax_logprob<0, true>),
                   t);
    }
    clip_args(RegisterBenchmark("ratio_clip_fwd/fused", BM_ratio_clip<2, false>), t);
    clip_args(RegisterBenchmark("ratio_clip_bwd/fused", BM_ratio_clip<2, true>), t);
    clip_args(RegisterBenchmark("ratio_clip_fwd/fused_v1", BM_ratio_clip<1, false>), t);
    clip_args(RegisterBenchmark("ratio_clip_bwd/fused_v1", BM_ratio_clip<1, true>), t);
    if (t == 1) {
      clip_args(RegisterBenchmark("ratio_clip_fwd/unfused", BM_ratio_clip<0, false>), t);
      clip_args(RegisterBenchmark("ratio_clip_bwd/unfused", BM_ratio_clip<0, true>), t);
    }
    gae_args(RegisterBenchmark("gae/fused", BM_gae<true>), t);
    if (t == 1) gae_args(RegisterBenchmark("gae/unfused", BM_gae<false>), t);
    clip_args(RegisterBenchmark("gae_masked_rows/fused", BM_gae_masked_rows), t);
  }
}

}  // namespace

int main(int argc, char** argv) {
  check_unfused_agrees();
  g_triad_gbps[1] = measure_triad_gbps(1);
  g_triad_gbps[2] = measure_triad_gbps(2);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.1f", g_triad_gbps[1]);
  benchmark::AddCustomContext("triad_gbps_1t", buf);
  std::snprintf(buf, sizeof buf, "%.1f", g_triad_gbps[2]);
  benchmark::AddCustomContext("triad_gbps_2t", buf);
  register_all();
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
