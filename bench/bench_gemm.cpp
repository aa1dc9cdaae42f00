// Benchmarks of the CPU GEMM (kernels/cpu/gemm.h): rlft vs OpenBLAS cblas_sgemm vs the naive
// reference (and rlft_inplace: rlft with its unpacked path reading A and B in place, as before
// direct_gemm_packed), square sizes 64..2048 and the shapes of RL MLPs, at 1 and 2 threads.
//
// Each line reports GFLOP/s (2*M*N*K per call) and peak%, where
//   peak = threads x 32 FP32 FLOP/cycle (Zen 4 / Skylake-X: one 512-bit FMA, or two 256-bit,
//          per cycle per core) x the clock measured at start-up (a chain of dependent integer
//          adds, 1 cycle each, on one core; printed in the context as cpu_clock_ghz; with two
//          threads both cores are assumed to run at that clock).
// Time: 1 thread, this thread's CPU time (robust on a machine shared with other work);
// 2 threads, wall time (real_time in the name).
// Run (2 cores shared with others, keep it short):
//   build-gemm/bench_gemm --benchmark_min_time=0.2
//   build-gemm/bench_gemm --benchmark_filter='square' --benchmark_min_time=0.2
//   build-gemm/bench_gemm --benchmark_min_time=0.2 --benchmark_repetitions=3
//       --benchmark_report_aggregates_only=true   (BENCHMARKS.md; also reports "max", the best
//       repetition)
// Implementations are registered grouped (all rlft, then OpenBLAS, then naive) so that one
// library's idle worker threads, which spin for a while after a call, do not slow the other.
#include <benchmark/benchmark.h>
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <ctime>
#include <random>
#include <string>
#include <vector>

#include "kernels/cpu/gemm.h"

#ifdef RLFT_HAVE_OPENBLAS
#include <cblas.h>
extern "C" void openblas_set_num_threads(int);
#endif

namespace {

using rlft::kernels::gemm_f32;
using rlft::kernels::gemm_naive_f32;

constexpr double kFlopPerCycle = 32.0;  // per core, FP32 (see the header)

// Core clock in Hz: 1000 dependent adds per iteration run at one per cycle. Short trials, the
// fastest kept, so that a trial preempted by another process does not count.
double measure_clock_hz() {
  double best = 0.0;
  for (int trial = 0; trial < 40; ++trial) {
    uint64_t x = 0;
    const int64_t iters = 2000;
    const auto t0 = std::chrono::steady_clock::now();
    for (int64_t i = 0; i < iters; ++i) {
#if defined(__x86_64__)
#define RLFT_ADD10                                                         \
  "add $1, %0\n\tadd $1, %0\n\tadd $1, %0\n\tadd $1, %0\n\tadd $1, %0\n\t" \
  "add $1, %0\n\tadd $1, %0\n\tadd $1, %0\n\tadd $1, %0\n\tadd $1, %0\n\t"
#define RLFT_ADD100                                                                       \
  RLFT_ADD10 RLFT_ADD10 RLFT_ADD10 RLFT_ADD10 RLFT_ADD10 RLFT_ADD10 RLFT_ADD10 RLFT_ADD10 \
      RLFT_ADD10 RLFT_ADD10
      asm volatile(RLFT_ADD100 RLFT_ADD100 RLFT_ADD100 RLFT_ADD100 RLFT_ADD100 RLFT_ADD100
                       RLFT_ADD100 RLFT_ADD100 RLFT_ADD100 RLFT_ADD100
                   : "+r"(x));
#else
      x += 1000;
#endif
    }
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    benchmark::DoNotOptimize(x);
    best = std::max(best, 1000.0 * static_cast<double>(iters) / s);
  }
  return best;
}

// Seconds of this thread's CPU time (1 thread: immune to time slices lost to other processes)
// or of wall time (several threads: the CPU time of the main thread would miss the workers').
double now_s(int threads) {
  timespec t;
  clock_gettime(threads == 1 ? CLOCK_THREAD_CPUTIME_ID : CLOCK_MONOTONIC, &t);
  return static_cast<double>(t.tv_sec) + 1e-9 * static_cast<double>(t.tv_nsec);
}

double g_clock_hz = 0.0;

enum class Impl { rlft, rlft_inplace, openblas, naive };
const char* impl_name(Impl impl) {
  return impl == Impl::rlft           ? "rlft"
         : impl == Impl::rlft_inplace ? "rlft_inplace"
         : impl == Impl::openblas     ? "openblas"
                                      : "naive";
}

struct Problem {
  bool ta, tb;
  int64_t M, N, K;
  std::vector<float> A, B, C;
  Problem(bool ta_, bool tb_, int64_t M_, int64_t N_, int64_t K_)
      : ta(ta_), tb(tb_), M(M_), N(N_), K(K_), A(M * K), B(K * N), C(M * N) {
    std::mt19937 rng(42);
    std::uniform_real_distribution<float> u(-1.0f, 1.0f);
    for (float& x : A) x = u(rng);
    for (float& x : B) x = u(rng);
  }
  int64_t lda() const { return ta ? M : K; }
  int64_t ldb() const { return tb ? K : N; }
};

void run(benchmark::State& state, Impl impl, bool ta, bool tb, int64_t M, int64_t N, int64_t K,
         int threads) {
  Problem p(ta, tb, M, N, K);
  // Only the library being measured is told the thread count: calling into OpenBLAS would wake
  // its thread pool, whose spinning workers would then compete with rlft's.
  const bool ours = impl == Impl::rlft || impl == Impl::rlft_inplace;
  if (ours) omp_set_num_threads(threads);
  // rlft_inplace: the unpacked path's tiles read A and B where they lie (the same bits).
  rlft::kernels::gemm_set_direct_packing(impl != Impl::rlft_inplace);
#ifdef RLFT_HAVE_OPENBLAS
  if (impl == Impl::openblas) openblas_set_num_threads(threads);
#endif
  const double t0 = now_s(threads);
  for (auto _ : state) {
    switch (impl) {
      case Impl::rlft:
      case Impl::rlft_inplace:
        gemm_f32(ta, tb, M, N, K, 1.0f, p.A.data(), p.lda(), p.B.data(), p.ldb(), 0.0f, p.C.data(),
                 N);
        break;
      case Impl::naive:
        gemm_naive_f32(ta, tb, M, N, K, 1.0f, p.A.data(), p.lda(), p.B.data(), p.ldb(), 0.0f,
                       p.C.data(), N);
        break;
      case Impl::openblas:
#ifdef RLFT_HAVE_OPENBLAS
        cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans,
                    static_cast<int>(M), static_cast<int>(N), static_cast<int>(K), 1.0f, p.A.data(),
                    static_cast<int>(p.lda()), p.B.data(), static_cast<int>(p.ldb()), 0.0f,
                    p.C.data(), static_cast<int>(N));
#endif
        break;
    }
    benchmark::ClobberMemory();
  }
  const double seconds = now_s(threads) - t0;
  const double gflops = 2.0 * static_cast<double>(M) * N * K *
                        static_cast<double>(state.iterations()) / seconds * 1e-9;
  state.counters["GFLOP/s"] = gflops;
  state.counters["peak%"] = 100.0 * gflops / (threads * kFlopPerCycle * g_clock_hz * 1e-9);
  rlft::kernels::gemm_set_direct_packing(true);
  if (ours) {
    state.SetLabel(rlft::kernels::gemm_isa());
    omp_set_num_threads(omp_get_num_procs());
  }
}

void register_all() {
  std::vector<Impl> impls = {Impl::rlft, Impl::rlft_inplace};
#ifdef RLFT_HAVE_OPENBLAS
  impls.push_back(Impl::openblas);
#endif
  impls.push_back(Impl::naive);
  const int thread_counts[] = {1, 2};
  struct Shape {
    const char* family;
    bool ta, tb;
    int64_t M, N, K;
  };
  std::vector<Shape> shapes;
  for (int64_t n : {64, 128, 256, 512, 1024, 2048})
    shapes.push_back({"square", false, false, n, n, n});
  // RL MLP layers: M = batch, (K, N) = (in, out) widths; nn: W stored [in,out], nt: W stored
  // [out,in] (y = x W^T, the PyTorch Linear layout).
  for (bool tb : {false, true})
    for (int64_t m : {1, 64, 512})
      for (auto kn : {std::pair<int64_t, int64_t>{4, 64}, {64, 64}, {64, 2}, {256, 256}})
        shapes.push_back({"rl", false, tb, m, kn.second, kn.first});
  // The micro GPT's training step (bench_lm BM_TrainStep_micro: 2048 tokens, width 128): per
  // linear layer y = x·Wᵀ (nt), dx = dy·W (nn) and dW = dyᵀ·x (tn), for the fused QKV
  // projection (out 384) and the MLP's two layers (128 → 512 → 128).
  // gpt_mini: the same for mini (bench_lm BM_TrainStep_mini: 2048 tokens, width 256).
  for (auto io : {std::pair<int64_t, int64_t>{128, 384},
                  {128, 512},
                  {512, 128},
                  {256, 768},
                  {256, 256},
                  {256, 1024},
                  {1024, 256}}) {
    const int64_t T = 2048, in = io.first, out = io.second;
    const char* family = in == 256 || out == 256 ? "gpt_mini" : "gpt";
    shapes.push_back({family, false, true, T, out, in});
    shapes.push_back({family, false, false, T, in, out});
    shapes.push_back({family, true, false, out, in, T});
  }

  for (Impl impl : impls)
    for (int threads : thread_counts)
      for (const Shape& s : shapes) {
        const bool small = s.M * s.N * s.K <= 256LL * 256 * 256;
        if (impl == Impl::naive && (threads > 1 || !small)) continue;  // too slow to matter
        // Packing only changes the unpacked path's shapes (not the large squares).
        if (impl == Impl::rlft_inplace && std::string(s.family) == "square" && s.M > 512) continue;
        char name[160];
        std::snprintf(name, sizeof name, "%s/%s/%s%s/M:%lld/N:%lld/K:%lld/threads:%d", s.family,
                      impl_name(impl), s.ta ? "t" : "n", s.tb ? "t" : "n",
                      static_cast<long long>(s.M), static_cast<long long>(s.N),
                      static_cast<long long>(s.K), threads);
        auto* b = benchmark::RegisterBenchmark(
            name, [=](benchmark::State& st) { run(st, impl, s.ta, s.tb, s.M, s.N, s.K, threads); });
        if (threads > 1) b->UseRealTime();
        // With --benchmark_repetitions: the best repetition's GFLOP/s (and, in the same row,
        // the longest time), the one least disturbed by other processes on a shared machine.
        b->ComputeStatistics("max", [](const std::vector<double>& v) {
          return *std::max_element(v.begin(), v.end());
        });
      }
}

}  // namespace

int main(int argc, char** argv) {
  g_clock_hz = measure_clock_hz();
  benchmark::AddCustomContext("cpu_clock_ghz", std::to_string(g_clock_hz * 1e-9));
  benchmark::AddCustomContext("peak_gflops_per_core",
                              std::to_string(kFlopPerCycle * g_clock_hz * 1e-9));
  benchmark::AddCustomContext("rlft_gemm_isa", rlft::kernels::gemm_isa());
  if (std::FILE* f = std::fopen("/proc/loadavg", "r")) {  // how shared the machine was
    char line[128] = {};
    if (std::fgets(line, sizeof line, f) != nullptr) {
      std::string s(line);
      if (!s.empty() && s.back() == '\n') s.pop_back();
      benchmark::AddCustomContext("loadavg_at_start", s);
    }
    std::fclose(f);
  }
  register_all();
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
