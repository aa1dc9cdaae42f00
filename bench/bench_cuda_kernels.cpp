// Benchmarks of the CUDA versions of the three signature RL kernels (kernels/cuda/*.cu)
// against their unfused baselines, float32, on device 0.
//
// Each line reports the time per call (cudaEvent, Google Benchmark's manual time) and the
// napkin math:
//   GB/s     the fused kernel's minimal traffic per call / time (the manual of each .cu):
//              softmax_logprob fwd 4 B per logit; fwd+bwd 12 B per logit (read, read, write)
//              ratio_clip fwd 16 B per token (logp, old_logp, advantages, mask); bwd 20 B
//              gae time-major 28 B per step (5 reads, 2 writes); masked rows 20 B (3 + 2)
//            The baseline is charged the same useful bytes, so its GB/s would be the
//            effective bandwidth of the same work.
//   %peak    GB/s / the DRAM peak from the device attributes: 2 (DDR) × memory clock ×
//            bus width / 8. CUDA 13 removed cudaDeviceProp::memoryClockRate, so the clock comes
//            from cudaDeviceGetAttribute(cudaDevAttrMemoryClockRate) (kHz) and the width from
//            cudaDevAttrGlobalMemoryBusWidth (bits). H100 SXM: 2 × 2619 MHz × 5120 bit / 8
//            = 3.35 TB/s.
//   base_us  the unfused baseline's time (best of 5 after a warm-up): softmax_logprob — a
//            naive log_softmax kernel writing [N, V], a gather, an entropy pass (backward: g_ls
//            written, row sums, log_softmax backward in place); ratio_clip — separate ratio,
//            clamp·A, masked min, sum kernels (token_mean loss only, no statistics); gae —
//            version 1 (one thread per sequence).
//   speedup  base_us / the fused time.
// The forward of softmax_logprob runs with check = false (no stream synchronisation for the
// error words). ratio_clip_fwd times the forward's two kernels with the statistics left on the
// device (ratio_clip_forward_cuda_async); ratio_clip_fwd_sync the synchronous API, which copies
// them back and waits. ratio_clip_*_serial_* launch the finishing kernel the ordinary way
// (the default: programmatically dependent on sm_90+). dram_copy (a device-to-device
// cudaMemcpy) is the practical ceiling the %peak figures can be read against;
// ratio_clip_read_ceiling[_rows|_flat][_uU][_dependent]_graph the ceiling for ratio_clip's own
// shape (its loads with U groups in flight per thread, no arithmetic, one kernel; chunks of
// 1024·U tokens, a block per row, or the flat persistent grid); _bulk_uU the same bytes copied
// into shared memory by the tensor memory accelerator (sm_90+), as ratio_clip_bulk_* do.
// ratio_clip_v2_/v3_/chunked_/flat_/bulk_ lines time the opt-in versions and layouts,
// ratio_clip_[chunked_]v3_prefetch_* version 3 with each thread's next group loaded ahead,
// ratio_clip_large_* some of them at 4096×4096, *_dependent_* the first kernel launched
// programmatically dependent on the previous call's last kernel, ratio_clip_last_block_* the
// finish done by the first kernel's last block instead of a second kernel
// (kernels/cuda/ratio_clip.cu). timeline/ratio_clip_* time the fwd_graph and read_graph lines'
// calls again with the kernels' own %globaltimer stamps on, to say where a call's time goes
// (timeline() below: the first kernel's span and ramp, the finishing block's wait and span, the
// time between calls); timeline_hot/ratio_clip_* the same with nothing flushed and one call a
// replay (Flush::none). dirty_l2/* repeat a few lines under the old flush (g_flush).
// sweep/… lines time launch shapes (threads per row, loads in flight, vector loads) to choose
// the dispatchers' defaults.
//
// Targets (H100 SXM, 3.35 TB/s), to be checked when a GPU run is recorded in BENCHMARKS.md:
//   softmax_logprob forward      ≥ 80% of peak and ≥ 2.5× the unfused chain
//   softmax_logprob fwd+bwd      ≥ 70% of peak
//   ratio_clip forward           ≥ 70% of peak at B×T = 512×4096
//   gae version 2                ≥ 10× version 1 at B = 8, T = 4096; within 10% of it at
//                                B = 4096
// Without a GPU (or without the CUDA backend) the binary prints why and exits 0 having
// registered nothing.
//
// Run: build-cuda/bench_cuda_kernels --benchmark_min_time=0.2
//   (softmax_logprob at N = 16384, V = 256000 needs 48 GB of device memory for the baseline's
//   [N, V] temporary; shapes that do not fit are skipped with a message.)
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <map>
#include <memory>
#include <tuple>
#include <random>
#include <string>
#include <vector>

#include "bench/cuda_bench.h"
#include "kernels/cuda_runtime.h"

#ifdef RLFT_HAVE_CUDA
#include <cuda_runtime.h>

#include <stdexcept>

#include "kernels/cuda_ops.h"
#include "kernels/gae.h"
#include "kernels/ratio_clip.h"
#include "kernels/softmax_logprob.h"
#endif

namespace {

#ifdef RLFT_HAVE_CUDA

namespace rk = rlft::kernels;
using rlft::bench::EventTimer;
using rlft::bench::L2Flush;

double g_peak_gbps = 0.0;

using rlft::bench::peak_dram_gbps;

// Device buffer freed at scope exit.
template <typename T>
struct Buffer {
  T* p = nullptr;
  explicit Buffer(size_t n) { CUDA_OK(cudaMalloc(reinterpret_cast<void**>(&p), n * sizeof(T))); }
  ~Buffer() { cudaFree(p); }
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
};

// Fills n floats with a tiled N(0, sd²) pattern: 4M random values copied from the host, then
// doubled on the device (device-to-device copies) until the buffer is full.
void fill_random(float* d, size_t n, double mean, double sd, uint64_t seed) {
  const size_t tile = std::min(n, size_t(1) << 22);
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> normal{float(mean), float(sd)};
  std::vector<float> h(tile);
  for (float& x : h) x = normal(rng);
  CUDA_OK(cudaMemcpy(d, h.data(), tile * sizeof(float), cudaMemcpyHostToDevice));
  for (size_t filled = tile; filled < n;) {
    const size_t m = std::min(filled, n - filled);
    CUDA_OK(cudaMemcpy(d + filled, d, m * sizeof(float), cudaMemcpyDeviceToDevice));
    filled += m;
  }
}

void upload(void* d, const void* h, size_t bytes) {
  CUDA_OK(cudaMemcpy(d, h, bytes, cudaMemcpyHostToDevice));
}

bool fits(benchmark::State& state, size_t bytes) {
  size_t free_b = 0, total_b = 0;
  CUDA_OK(cudaMemGetInfo(&free_b, &total_b));
  if (bytes + (size_t(1) << 30) > free_b) {
    state.SkipWithError(("needs " + std::to_string(bytes >> 20) + " MiB of device memory, " +
                         std::to_string(free_b >> 20) + " MiB free")
                            .c_str());
    return false;
  }
  return true;
}

// How each timed region is prepared: the L2 flush before it and, for ratio_clip's batched
// calls, how many copies of the inputs the calls rotate over.
//   clean (the default): the flush READS a buffer of its own 4× the device's L2 (a row sum
//     into 4096 floats), so no input is left in the cache and the L2 holds clean lines: the
//     timed kernel's DRAM traffic is its own. ratio_clip's calls take one pass over K copies
//     spanning 4× the L2 (2 ≤ K ≤ 8): every call's inputs were last read before the flush.
//   dirty (lines named dirty_l2/…, sessions 1–7's protocol, nvbench's kind of flush): the
//     flush ZEROES a buffer 2× the L2, which leaves the L2 full of dirty lines; the timed
//     calls write them back to DRAM while they read (up to the L2's 50 MB on an H100, shared
//     by the region's calls), ratio_clip's calls take two passes over K copies spanning
//     2× the L2, and a graph's events sit on the legacy default stream (measure_graph). The
//     pair of lines measures what that protocol charged to the kernel.
//   none (the timeline_hot/ lines only): no flush, one copy of the inputs and one call per
//     replay, so whatever a call touches (its inputs, if they fit, its code, its parameters)
//     may still be in L2 at the next replay: against the clean lines, what reaching DRAM costs.
enum class Flush { clean, dirty, none };
Flush g_flush = Flush::clean;

// Sets g_flush for one benchmark's run.
struct FlushMode {
  Flush saved;
  explicit FlushMode(Flush f) : saved(g_flush) { g_flush = f; }
  ~FlushMode() { g_flush = saved; }
  FlushMode(const FlushMode&) = delete;
  FlushMode& operator=(const FlushMode&) = delete;
};

// The counters of every line: GB/s and %peak from the mean time per call over the timed
// iterations (`total` seconds), and reps when calls were batched. Returns that time per call.
double set_bandwidth(benchmark::State& state, double bytes, double total, int reps) {
  const double per_call = total / double(std::max<int64_t>(1, state.iterations()));
  const double gbps = bytes / per_call / 1e9;
  state.counters["GB/s"] = gbps;
  state.counters["%peak"] = 100.0 * gbps / g_peak_gbps;
  if (reps > 1) state.counters["reps"] = reps;
  return per_call;
}

// Times `fused` per iteration (reps calls back to back between the events, after an L2
// flush; the time per call is reported); times `baseline` (if any) best of 5, one call after
// a flush each; sets the counters. reps > 1 is for calls whose GPU time is shorter than what
// the host needs to issue them (a few µs per launch): back to back, as in a training step, the
// host runs ahead and the events see the GPU's time; such callers rotate their inputs over
// enough copies that no call finds its data in L2.
void measure(benchmark::State& state, double bytes, const std::function<void()>& fused,
             const std::function<void()>& baseline, int reps = 1) {
  EventTimer timer;
  const L2Flush flush(g_flush == Flush::dirty);
  fused();  // warm-up (and the first-touch of the stream-ordered memory pool)
  CUDA_OK(cudaDeviceSynchronize());
  double total = 0;
  for (auto _ : state) {
    flush();
    const double s = timer.seconds([&] {
      for (int r = 0; r < reps; ++r) fused();
    }) / double(reps);
    state.SetIterationTime(s);
    total += s;
  }
  const double per_call = set_bandwidth(state, bytes, total, reps);
  if (baseline) {
    baseline();
    CUDA_OK(cudaDeviceSynchronize());
    double best = 1e30;
    for (int rep = 0; rep < 5; ++rep) {
      flush();
      best = std::min(best, timer.seconds(baseline));
    }
    state.counters["base_us"] = best * 1e6;
    state.counters["speedup"] = best / per_call;
  }
}

// Times `reps` calls captured once into a CUDA graph on `stream`: the GPU's own time per call,
// without the host's cost of issuing each launch and allocation (the graph replays them). The
// events are recorded on `stream` itself, so the timed region holds the graph's kernels and
// nothing else; `stream` is a blocking stream, so it waits for the flush (on the legacy
// default stream) before the first event. Under the dirty protocol (g_flush), as until
// 2026-11-26, the events go on the legacy default stream, so that the region also holds the
// hand-over between the two streams at each end. A capture that fails is reported as the
// benchmark's error, not a crash.
// before/after (optional, untimed): called around each timed replay, on the graph's stream
// (the timeline lines reset and read the kernels' stamps there). Returns the time per call in
// seconds (0 when the capture failed).
double measure_graph(benchmark::State& state, double bytes,
                     const std::function<void(cudaStream_t)>& call, int reps,
                     const std::function<void(cudaStream_t)>& before = nullptr,
                     const std::function<void(cudaStream_t)>& after = nullptr) {
  cudaStream_t stream{};
  CUDA_OK(cudaStreamCreate(&stream));
  cudaGraph_t graph{};
  cudaGraphExec_t exec{};
  try {
    call(stream);  // warm-up outside the capture (pool set-up)
    CUDA_OK(cudaStreamSynchronize(stream));
    CUDA_OK(cudaStreamBeginCapture(stream, cudaStreamCaptureModeRelaxed));
    for (int r = 0; r < reps; ++r) call(stream);
    CUDA_OK(cudaStreamEndCapture(stream, &graph));
    CUDA_OK(cudaGraphInstantiate(&exec, graph, 0));
    CUDA_OK(cudaGraphLaunch(exec, stream));
    CUDA_OK(cudaStreamSynchronize(stream));
  } catch (const std::exception& e) {
    cudaStreamEndCapture(stream, &graph);
    (void)cudaGetLastError();
    state.SkipWithError((std::string("graph capture failed: ") + e.what()).c_str());
    for (auto _ : state) {
    }
    cudaStreamDestroy(stream);
    return 0.0;
  }
  EventTimer timer;
  const L2Flush flush(g_flush == Flush::dirty);
  double total = 0;
  for (auto _ : state) {
    if (before) before(stream);
    if (g_flush != Flush::none) flush();
    const double s = timer.seconds([&] { CUDA_OK(cudaGraphLaunch(exec, stream)); },
                                   flush.dirty ? nullptr : stream) /
                     double(reps);
    state.SetIterationTime(s);
    total += s;
    if (after) after(stream);
  }
  const double per_call = set_bandwidth(state, bytes, total, reps);
  cudaGraphExecDestroy(exec);
  cudaGraphDestroy(graph);
  cudaStreamDestroy(stream);
  return per_call;
}

// ---- softmax_logprob -------------------------------------------------------------------------

void BM_softmax_logprob(benchmark::State& state, int64_t N, int64_t V, bool backward,
                        rk::CudaLaunch launch = {}, bool sweep = false) {
  const size_t NV = size_t(N) * size_t(V);
  const size_t need = NV * sizeof(float) * (backward ? 3 : 2);
  if (!fits(state, need)) return;
  Buffer<float> x(NV), ls(NV);
  fill_random(x.p, NV, 0.0, 2.0, 1);
  std::vector<int64_t> t(static_cast<size_t>(N), 0);
  std::mt19937_64 rng(2);
  for (int64_t& v : t) v = int64_t(rng() % uint64_t(V));
  Buffer<int64_t> targets{size_t(N)};
  upload(targets.p, t.data(), t.size() * sizeof(int64_t));
  Buffer<float> logp{size_t(N)}, H{size_t(N)}, lse{size_t(N)}, gl{size_t(N)}, gh{size_t(N)};
  fill_random(gl.p, size_t(N), 0.0, 1.0, 3);
  fill_random(gh.p, size_t(N), 0.0, 1.0, 4);
  const int64_t ignore = -100;
  auto fwd = [&] {
    rk::softmax_logprob_forward_cuda<float>(x.p, N, V, V, targets.p, ignore, 1.f, logp.p, H.p,
                                            lse.p, nullptr, 2, false, launch);
  };
  auto fwd_unfused = [&] {
    rk::softmax_logprob_forward_unfused_cuda<float>(x.p, N, V, V, targets.p, ignore, 1.f, logp.p,
                                                    H.p, lse.p, ls.p);
  };
  if (!backward) {
    measure(state, 4.0 * double(NV), fwd, sweep ? nullptr : std::function<void()>(fwd_unfused));
    return;
  }
  Buffer<float> d(NV);
  auto fwd_bwd = [&] {
    fwd();
    rk::softmax_logprob_backward_cuda<float>(x.p, N, V, V, targets.p, ignore, 1.f, lse.p, H.p, gl.p,
                                             gh.p, d.p, V, false, nullptr, 2, false, launch);
  };
  auto fwd_bwd_unfused = [&] {
    fwd_unfused();
    rk::softmax_logprob_backward_unfused_cuda<float>(ls.p, N, V, targets.p, ignore, 1.f, H.p, gl.p,
                                                     gh.p, d.p);
  };
  measure(state, 12.0 * double(NV), fwd_bwd,
          sweep ? nullptr : std::function<void()>(fwd_bwd_unfused));
}

// ---- ratio_clip ------------------------------------------------------------------------------

struct ClipInputs {
  int64_t B, T;
  Buffer<float> logp, old_logp, adv, mask, ws;
  rk::RatioClipArgs<float> args;
  ClipInputs(int64_t b, int64_t t)
      : B(b),
        T(t),
        logp(size_t(b * t)),
        old_logp(size_t(b * t)),
        adv(size_t(b * t)),
        mask(size_t(b * t)),
        ws(size_t(4 * b * t)) {
    const size_t n = size_t(b * t);
    fill_random(old_logp.p, n, -2.0, 1.0, 5);
    std::vector<float> h_old(n), h_logp(n), h_mask(n);
    CUDA_OK(cudaMemcpy(h_old.data(), old_logp.p, n * sizeof(float), cudaMemcpyDeviceToHost));
    std::mt19937_64 rng(6);
    std::normal_distribution<float> x(0.0f, 0.2f);  // ratios spread on both sides of the clip
    std::uniform_real_distribution<float> u(0.f, 1.f);
    for (size_t k = 0; k < n; ++k) {
      h_logp[k] = h_old[k] + x(rng);
      h_mask[k] = u(rng) < 0.75f ? 1.f : 0.f;
    }
    upload(logp.p, h_logp.data(), n * sizeof(float));
    upload(mask.p, h_mask.data(), n * sizeof(float));
    fill_random(adv.p, n, 0.0, 1.0, 7);
    args = {.B = b, .T = t, .logp = logp.p, .old_logp = old_logp.p, .advantages = adv.p,
            .mask = mask.p};
  }
};

// The timeline lines (mode fwd_timeline / read_timeline of BM_ratio_clip): the fwd_graph and
// read_graph lines' graph of `reps` calls, replayed after the same flush, with the kernels'
// %globaltimer stamps on (rk::ratio_clip_timeline_cuda). Each call overwrites the stamps, so
// what is read after a replay is its LAST call's, made behind reps − 1 others as in the timed
// lines. Counters, µs, means over the timed replays (t0: the first block's entry):
//   main_us      the first kernel's span: its last block's exit − t0
//   ramp_us      its last block's entry − t0 (how long until the whole grid was resident)
//   block_us     its blocks' mean lifetime, release to exit
//   release_us   (forward) the finishing block's release (its pdl_wait returning) − the first
//                kernel's last exit: the dependency's latency
//   finish_us    (forward) the finishing block's exit − its release; of it fin_load_us until
//                its thread 0 has added its partial sums, fin_tree_us from there until the
//                block's totals are in shared memory (the rest: the statistics written)
//   span_us      the call's span: the last exit of either kernel − t0
//   between_us   the time per call (events / reps) − span_us: what a call costs outside its
//                kernels (the graph's launch of the next call, the gap after the previous one)
//   tick_ns      the smallest nonzero difference between two stamps of the first replay: the
//                timer's resolution, as far as these stamps show it (means over replays are
//                finer than it)
//   blocks_sm    the most first-kernel blocks any multiprocessor ran
// `call` is the fwd_graph or read_graph line's call; `finish`: it has a finishing kernel.
void timeline(benchmark::State& state, double bytes, const std::function<void(cudaStream_t)>& call,
              int reps, bool finish) {
  constexpr int kBlocks = rk::kRatioClipTimelineBlocks;
  const size_t words = size_t(rk::kRatioClipTimelineKernels) * kBlocks * 4;
  Buffer<uint64_t> tl{words};
  std::vector<uint64_t> h(words);
  std::map<std::string, double> sum;
  double tick = 0;
  int replays = 0;
  double per_call = 0;
  rk::ratio_clip_timeline_cuda(tl.p);
  try {
    per_call = measure_graph(
        state, bytes, call, reps,
        [&](cudaStream_t st) { CUDA_OK(cudaMemsetAsync(tl.p, 0, words * 8, st)); },
        [&](cudaStream_t st) {
          CUDA_OK(cudaMemcpyAsync(h.data(), tl.p, words * 8, cudaMemcpyDeviceToHost, st));
          CUDA_OK(cudaStreamSynchronize(st));
          const auto at = [&](int k, int b, int e) { return h[(size_t(k) * kBlocks + b) * 4 + e]; };
          uint64_t t0 = UINT64_MAX, last_entry = 0, last_exit = 0;
          double life = 0;
          int n = 0;
          std::map<uint64_t, int> per_sm;
          std::vector<uint64_t> all;
          for (int b = 0; b < kBlocks && at(0, b, 0) != 0; ++b, ++n) {
            t0 = std::min(t0, at(0, b, 0));
            last_entry = std::max(last_entry, at(0, b, 0));
            last_exit = std::max(last_exit, at(0, b, 2));
            life += double(at(0, b, 2) - at(0, b, 1));
            ++per_sm[at(0, b, 3)];
            if (replays == 0) all.insert(all.end(), {at(0, b, 0), at(0, b, 1), at(0, b, 2)});
          }
          if (n == 0) throw std::runtime_error("timeline: no block of the first kernel stamped");
          uint64_t end = last_exit;
          sum["main_us"] += double(last_exit - t0);
          sum["ramp_us"] += double(last_entry - t0);
          sum["block_us"] += life / n;
          int most = 0;
          for (auto [sm, count] : per_sm) most = std::max(most, count);
          sum["blocks_sm"] += most;
          if (finish) {
            if (at(1, 0, 2) == 0) throw std::runtime_error("timeline: no finishing block stamped");
            sum["release_us"] += double(int64_t(at(1, 0, 1) - last_exit));
            sum["finish_us"] += double(at(1, 0, 2) - at(1, 0, 1));
            sum["fin_load_us"] += double(at(1, 1, 0) - at(1, 0, 1));
            sum["fin_tree_us"] += double(at(1, 1, 1) - at(1, 1, 0));
            end = std::max(end, at(1, 0, 2));
          }
          sum["span_us"] += double(end - t0);
          if (replays == 0) {
            std::sort(all.begin(), all.end());
            tick = 0;
            for (size_t k = 1; k < all.size(); ++k)
              if (all[k] != all[k - 1] && (tick == 0 || double(all[k] - all[k - 1]) < tick))
                tick = double(all[k] - all[k - 1]);
          }
          ++replays;
        });
  } catch (...) {
    rk::ratio_clip_timeline_cuda(nullptr);
    throw;
  }
  rk::ratio_clip_timeline_cuda(nullptr);
  if (replays == 0) return;
  for (auto& [name, v] : sum)
    state.counters[name] = name == "blocks_sm" ? v / replays : v / replays / 1e3;  // ns → µs
  state.counters["between_us"] = per_call * 1e6 - state.counters["span_us"];
  state.counters["tick_ns"] = tick;
}

// mode: "fwd" the forward's kernels with the statistics left on the device (what the
// bandwidth target is about), calls back to back over K copies of the inputs (one pass over
// copies spanning 4× the L2, or as g_flush's comment says), against the unfused chain, which copies
// its loss back (one synchronous call, so the speed-up favours the fused kernel: "fwd_sync"
// compares like with like); "fwd_sync" the synchronous API
// (statistics copied to the host, the stream synchronised: one call per timed region) against the
// same chain; "bwd" the backward, batched like "fwd".
void BM_ratio_clip(benchmark::State& state, int64_t B, int64_t T, const std::string& mode,
                   rk::CudaLaunch launch = {}, bool sweep = false) {
  const size_t in_bytes = size_t(B * T) * 16;
  const bool dirty = g_flush == Flush::dirty;
  const size_t span = (dirty ? 2 : 4) * size_t(rlft::bench::l2_bytes());
  const int K = mode == "fwd_sync" || g_flush == Flush::none
                    ? 1
                    : int(std::clamp<size_t>((span + in_bytes - 1) / in_bytes, dirty ? 1 : 2, 8));
  const int reps = dirty ? 2 * K : K;  // calls per timed region
  if (!fits(state, size_t(B * T) * sizeof(float) * (1 + 8 * size_t(K)))) return;
  // Inputs are made once per shape and copy index and kept for the other benchmarks (drawing
  // them on the host took most of a sweep's time).
  // Never destroyed: its device buffers must not be freed after the CUDA runtime shut down.
  static auto* cache = new std::map<std::tuple<int64_t, int64_t, int>, std::unique_ptr<ClipInputs>>;
  std::vector<ClipInputs*> sets;
  for (int k = 0; k < K; ++k) {
    auto& slot = (*cache)[{B, T, k}];
    if (!slot) slot = std::make_unique<ClipInputs>(B, T);
    sets.push_back(slot.get());
  }
  ClipInputs& in = *sets[0];
  int next = 0;
  auto args = [&]() -> const rk::RatioClipArgs<float>& { return sets[size_t(next++ % K)]->args; };
  const double tokens = double(B) * double(T);
  const std::function<void()> unfused = [&] {
    benchmark::DoNotOptimize(rk::ratio_clip_loss_unfused_cuda(in.args, in.ws.p));
  };
  if (mode == "fwd") {
    Buffer<double> stats{7};
    measure(
        state, 16.0 * tokens,
        [&] { rk::ratio_clip_forward_cuda_async(args(), stats.p, nullptr, launch); },
        sweep ? nullptr : unfused, reps);
  } else if (mode == "fwd_graph" || mode == "bwd_graph" || mode == "fwd_timeline") {
    Buffer<double> stats{7};
    Buffer<float> g{size_t(B * T)};
    const bool fwd = mode != "bwd_graph";
    const std::function<void(cudaStream_t)> call = [&](cudaStream_t st) {
      if (fwd)
        rk::ratio_clip_forward_cuda_async(args(), stats.p, st, launch);
      else
        rk::ratio_clip_backward_cuda(args(), 1.0, g.p, false, st, launch);
    };
    if (mode == "fwd_timeline")
      timeline(state, 16.0 * tokens, call, reps, !launch.last_block);
    else
      measure_graph(state, (fwd ? 16.0 : 20.0) * tokens, call, reps);
  } else if (mode == "read_graph" || mode == "read_timeline") {
    const int64_t capacity = std::max<int64_t>(B * ((T + 1023) / 1024), 1 << 16);
    Buffer<float> partials{size_t(capacity)};
    const std::function<void(cudaStream_t)> call = [&](cudaStream_t st) {
      rk::ratio_clip_read_ceiling_cuda(args(), partials.p, capacity, st, launch);
    };
    if (mode == "read_timeline")
      timeline(state, 16.0 * tokens, call, reps, false);
    else
      measure_graph(state, 16.0 * tokens, call, reps);
  } else if (mode == "fwd_sync") {
    measure(
        state, 16.0 * tokens,
        [&] { benchmark::DoNotOptimize(rk::ratio_clip_forward_cuda(in.args, nullptr, launch)); },
        sweep ? nullptr : unfused);
  } else {
    Buffer<float> g{size_t(B * T)};
    measure(
        state, 20.0 * tokens,
        [&] { rk::ratio_clip_backward_cuda(args(), 1.0, g.p, false, nullptr, launch); }, nullptr,
        reps);
  }
}

// The practical ceiling for the %peak figures: a device-to-device cudaMemcpy of `mib` MiB
// (reads and writes: 2 bytes moved per byte copied).
void BM_dram_copy(benchmark::State& state, size_t mib) {
  const size_t bytes = mib << 20;
  if (!fits(state, 2 * bytes)) return;
  Buffer<char> a(bytes), b(bytes);
  CUDA_OK(cudaMemset(a.p, 1, bytes));
  measure(
      state, 2.0 * double(bytes),
      [&] { CUDA_OK(cudaMemcpyAsync(b.p, a.p, bytes, cudaMemcpyDeviceToDevice)); }, nullptr);
}

// ---- gae -------------------------------------------------------------------------------------

void BM_gae(benchmark::State& state, int64_t S, int64_t T, bool rows) {
  const size_t n = size_t(S * T);
  if (!fits(state, n * sizeof(float) * 7)) return;
  Buffer<float> r(n), v(n), nv(n), term(n), end(n), adv(n), ret(n);
  fill_random(r.p, n, 0.0, 1.0, 8);
  fill_random(v.p, n, 0.0, 1.0, 9);
  fill_random(nv.p, n, 0.0, 1.0, 10);
  std::vector<float> h_term(n), h_end(n);
  std::mt19937_64 rng(11);
  std::uniform_real_distribution<float> u(0.f, 1.f);
  for (size_t k = 0; k < n; ++k) {
    const float x = u(rng);
    h_term[k] = x < 0.01f ? 1.f : 0.f;  // rows: the action mask, mostly ones (see below)
    h_end[k] = x < 0.02f ? 1.f : 0.f;
  }
  if (rows)  // a response mask: 1 after a prompt of T/8 positions
    for (int64_t i = 0; i < S; ++i)
      for (int64_t t = 0; t < T; ++t) h_term[size_t(i * T + t)] = t >= T / 8 ? 1.f : 0.f;
  upload(term.p, h_term.data(), n * sizeof(float));
  upload(end.p, h_end.data(), n * sizeof(float));
  auto run = [&](int version) {
    if (rows)
      rk::gae_masked_rows_cuda<float>(r.p, v.p, term.p, S, T, 1.f, 0.95f, adv.p, ret.p, nullptr,
                                      version);
    else
      rk::gae_cuda<float>(r.p, v.p, nv.p, term.p, end.p, T, S, 0.99f, 0.95f, adv.p, ret.p, nullptr,
                          version);
  };
  measure(
      state, (rows ? 20.0 : 28.0) * double(n), [&] { run(2); }, [&] { run(1); });
}

void register_all() {
  auto reg = [](const std::string& name, auto fn) {
    benchmark::RegisterBenchmark(name.c_str(), fn)->UseManualTime()->Unit(benchmark::kMicrosecond);
  };
  // Vocabularies of Llama 2 (32000), Llama 3 (128256) and Gemma (256000).
  for (bool bwd : {false, true})
    for (int64_t N : {4096, 16384})
      for (int64_t V : {32000, 128256, 256000})
        reg(std::string("softmax_logprob_") + (bwd ? "fwd_bwd" : "fwd") +
                "/N=" + std::to_string(N) + "/V=" + std::to_string(V),
            [=](benchmark::State& s) { BM_softmax_logprob(s, N, V, bwd); });
  for (const char* mode : {"fwd", "fwd_graph", "fwd_sync", "bwd", "bwd_graph"})
    for (auto [B, T] : {std::pair<int64_t, int64_t>{64, 1024}, {512, 4096}})
      reg(std::string("ratio_clip_") + mode + "/B=" + std::to_string(B) + "/T=" + std::to_string(T),
          [=](benchmark::State& s) { BM_ratio_clip(s, B, T, mode); });
  // (The copy ceilings and the old protocol's lines early: a time limit that stops a run
  // stops it among the variants below.)
  for (size_t mib : {64, 1024})
    reg("dram_copy/MiB=" + std::to_string(mib), [=](benchmark::State& s) { BM_dram_copy(s, mib); });
  // The same lines under sessions 1–7's protocol (a zeroing flush that leaves the L2 dirty;
  // g_flush): the default forward, version 3, the read ceiling and the copy ceiling.
  auto dirty = [](auto fn) {
    return [fn](benchmark::State& s) {
      const FlushMode m(Flush::dirty);
      fn(s);
    };
  };
  for (auto [B, T] : {std::pair<int64_t, int64_t>{64, 1024}, {512, 4096}}) {
    const std::string shape = "/B=" + std::to_string(B) + "/T=" + std::to_string(T);
    reg("dirty_l2/ratio_clip_fwd_graph" + shape,
        dirty([=](benchmark::State& s) { BM_ratio_clip(s, B, T, "fwd_graph"); }));
    reg("dirty_l2/ratio_clip_v3_fwd_graph" + shape, dirty([=](benchmark::State& s) {
          BM_ratio_clip(s, B, T, "fwd_graph", rk::CudaLaunch{.version = 3});
        }));
    reg("dirty_l2/ratio_clip_read_ceiling_graph" + shape, dirty([=](benchmark::State& s) {
          BM_ratio_clip(s, B, T, "read_graph", rk::CudaLaunch{.unroll = 1, .chunked = 1});
        }));
  }
  reg("dirty_l2/dram_copy/MiB=64", dirty([](benchmark::State& s) { BM_dram_copy(s, 64); }));
  // Version 2 (float per token, decisions on the log-ratio) and the chunked layout (token-level
  // rows in chunks of a block each; the backward keeps a block per row): not yet defaults.
  for (auto [version, chunked] : {std::pair<int, int>{2, 0}, {1, 1}, {2, 1}, {3, 0}, {3, 1}})
    for (const char* mode : {"fwd", "fwd_graph", "bwd", "bwd_graph"})
      for (auto [B, T] : {std::pair<int64_t, int64_t>{64, 1024}, {512, 4096}}) {
        if (chunked && mode[0] == 'b') continue;  // the backward has no chunked layout
        reg(std::string("ratio_clip_") + (chunked ? "chunked_" : "") + "v" +
                std::to_string(version) + "_" + mode + "/B=" + std::to_string(B) +
                "/T=" + std::to_string(T),
            [=](benchmark::State& s) {
              rk::CudaLaunch l;
              l.version = version;
              l.chunked = chunked;
              BM_ratio_clip(s, B, T, mode, l);
            });
      }
  // Version 3 with each thread's next group loaded before it computes the current one
  // (launch.prefetch = 1), a block per row and in chunks; the sweep below has its block sizes.
  for (int chunked : {0, 1})
    for (auto [B, T] : {std::pair<int64_t, int64_t>{64, 1024}, {512, 4096}})
      reg(std::string("ratio_clip_") + (chunked ? "chunked_" : "") +
              "v3_prefetch_fwd_graph/B=" + std::to_string(B) + "/T=" + std::to_string(T),
          [=](benchmark::State& s) {
            rk::CudaLaunch l;
            l.version = 3;
            l.chunked = chunked;
            l.prefetch = 1;
            BM_ratio_clip(s, B, T, "fwd_graph", l);
          });
  // The finishing kernel launched the ordinary way (launch.serial = 1) instead of
  // programmatically dependent: what the dependent launch saves.
  for (auto [version, chunked] : {std::pair<int, int>{1, 0}, {2, 1}})
    for (auto [B, T] : {std::pair<int64_t, int64_t>{64, 1024}, {512, 4096}})
      reg(std::string("ratio_clip_") + (chunked ? "chunked_" : "") + "v" +
              std::to_string(version) + "_serial_fwd_graph/B=" + std::to_string(B) +
              "/T=" + std::to_string(T),
          [=](benchmark::State& s) {
            rk::CudaLaunch l;
            l.version = version;
            l.chunked = chunked;
            l.serial = 1;
            BM_ratio_clip(s, B, T, "fwd_graph", l);
          });
  // The flat layout (token_mean over the batch as one row, a persistent grid) and the first
  // kernel launched programmatically dependent on the previous call's finishing kernel.
  for (auto [version, chunked, dependent] :
       {std::tuple<int, int, int>{1, 2, 0}, {3, 2, 0}, {1, 0, 1}, {3, 0, 1}, {3, 2, 1}})
    for (auto [B, T] : {std::pair<int64_t, int64_t>{64, 1024}, {512, 4096}})
      reg(std::string("ratio_clip_") + (chunked ? "flat_" : "") + "v" + std::to_string(version) +
              (dependent ? "_dependent" : "") + "_fwd_graph/B=" + std::to_string(B) +
              "/T=" + std::to_string(T),
          [=](benchmark::State& s) {
            BM_ratio_clip(s, B, T, "fwd_graph", rk::CudaLaunch{0, 0, 0, version, chunked, 0, dependent});
          });
  // The forward's bulk-copy layout (sm_90+) and its read ceiling: chunks of 1024·U tokens
  // copied into shared memory (16·U KB a block at 256 threads).
  for (int version : {1, 3})
    for (int U : {1, 2, 4})
      for (int dependent : {0, 1})
        for (auto [B, T] : {std::pair<int64_t, int64_t>{64, 1024}, {512, 4096}}) {
          if (dependent && U != 1) continue;
          reg(std::string("ratio_clip_bulk_v") + std::to_string(version) + "_u" +
                  std::to_string(U) + (dependent ? "_dependent" : "") +
                  "_fwd_graph/B=" + std::to_string(B) + "/T=" + std::to_string(T),
              [=](benchmark::State& s) {
                BM_ratio_clip(s, B, T, "fwd_graph",
                              rk::CudaLaunch{0, U, 0, version, 3, 0, dependent});
              });
        }
  for (int U : {1, 2, 4})
    for (auto [B, T] : {std::pair<int64_t, int64_t>{64, 1024}, {512, 4096}})
      reg(std::string("ratio_clip_read_ceiling_bulk_u") + std::to_string(U) +
              "_graph/B=" + std::to_string(B) + "/T=" + std::to_string(T),
          [=](benchmark::State& s) {
            BM_ratio_clip(s, B, T, "read_graph", rk::CudaLaunch{0, U, 0, 0, 3});
          });
  // The finish in the first kernel's last block (launch.last_block: one kernel a call, no
  // finishing kernel), in each layout, with the first kernel programmatically dependent on the
  // previous call (the fewest gaps a call can have), and once without (against the default).
  const char* layout_prefix[] = {"", "chunked_", "flat_", "bulk_"};
  for (auto [version, chunked, dependent] : {std::tuple<int, int, int>{1, 0, 0},
                                             {1, 0, 1},
                                             {3, 0, 1},
                                             {1, 2, 1},
                                             {3, 2, 1},
                                             {1, 3, 1},
                                             {3, 3, 1}})
    for (auto [B, T] : {std::pair<int64_t, int64_t>{64, 1024}, {512, 4096}})
      reg(std::string("ratio_clip_last_block_") + layout_prefix[chunked] + "v" +
              std::to_string(version) + (dependent ? "_dependent" : "") +
              "_fwd_graph/B=" + std::to_string(B) + "/T=" + std::to_string(T),
          [=](benchmark::State& s) {
            BM_ratio_clip(s, B, T, "fwd_graph",
                          rk::CudaLaunch{.version = version,
                                         .chunked = chunked,
                                         .dependent = dependent,
                                         .last_block = 1});
          });
  // The read ceiling: the token-level forward's loads without its arithmetic (one kernel), in
  // chunks of 1024·U tokens (no layout suffix), a block per row (_rows) or flat (_flat).
  for (int layout : {1, 0, 2})
    for (int U : {1, 2, 4})
      for (int dependent : {0, 1})
        for (auto [B, T] : {std::pair<int64_t, int64_t>{64, 1024}, {512, 4096}}) {
          if (dependent && U != 1) continue;
          reg(std::string("ratio_clip_read_ceiling") +
                  (layout == 0   ? "_rows"
                   : layout == 2 ? "_flat"
                                 : "") +
                  (U > 1 ? "_u" + std::to_string(U) : "") + (dependent ? "_dependent" : "") +
                  "_graph/B=" + std::to_string(B) + "/T=" + std::to_string(T),
              [=](benchmark::State& s) {
                BM_ratio_clip(s, B, T, "read_graph",
                              rk::CudaLaunch{0, U, 0, 0, layout, 0, dependent});
              });
        }
  // Where a call's time goes at the target's shape (timeline(): the kernels' own stamps): the
  // default, version 3 in the row, chunked and flat layouts, launched programmatically dependent
  // on the previous call, with its finishing kernel launched the ordinary way (serial: does the
  // finish's 1.4 µs of loads depend on how it waited?) and with the last-block finish, and the
  // read ceilings of the three layouts.
  for (auto [name, fwd, launch] :
       {std::tuple<const char*, bool, rk::CudaLaunch>{"v1", true, {}},
        {"v3", true, {.version = 3}},
        {"v3_dependent", true, {.version = 3, .dependent = 1}},
        {"v3_serial", true, {.version = 3, .serial = 1}},
        {"chunked_v3", true, {.version = 3, .chunked = 1}},
        {"flat_v3", true, {.version = 3, .chunked = 2}},
        {"last_block_v3_dependent", true, {.version = 3, .dependent = 1, .last_block = 1}},
        {"read_ceiling_rows", false, {.unroll = 1, .chunked = 0}},
        {"read_ceiling", false, {.unroll = 1, .chunked = 1}},
        {"read_ceiling_flat", false, {.unroll = 1, .chunked = 2}}})
    for (bool hot : {false, true}) {
      if (hot && std::string(name).find("flat") != std::string::npos) continue;
      reg(std::string(hot ? "timeline_hot" : "timeline") + "/ratio_clip_" + name + "/B=512/T=4096",
          [=](benchmark::State& s) {
            const FlushMode m(hot ? Flush::none : Flush::clean);
            BM_ratio_clip(s, 512, 4096, fwd ? "fwd_timeline" : "read_timeline", launch);
          });
    }
  // At 4096×4096 (268 MB, 8× the target's shape: a call's fixed costs amortised), the streaming
  // rate of the forwards' layouts and of their read ceilings.
  for (auto [version, chunked] : {std::pair<int, int>{1, 0}, {3, 0}, {3, 2}, {3, 3}})
    reg(std::string("ratio_clip_large_") + layout_prefix[chunked] + "v" + std::to_string(version) +
            "_fwd_graph/B=4096/T=4096",
        [=](benchmark::State& s) {
          BM_ratio_clip(s, 4096, 4096, "fwd_graph", rk::CudaLaunch{0, 0, 0, version, chunked});
        });
  for (int layout : {0, 2, 3})
    reg(std::string("ratio_clip_large_read_ceiling_") + layout_prefix[layout] +
            "graph/B=4096/T=4096",
        [=](benchmark::State& s) {
          BM_ratio_clip(s, 4096, 4096, "read_graph", rk::CudaLaunch{0, 1, 0, 0, layout});
        });
  // Launch-shape sweeps (threads per row × loads in flight per thread [× vector loads]), for
  // choosing the dispatchers' defaults; filter them out with --benchmark_filter=-sweep.
  for (bool bwd : {false, true})
    for (int64_t V : {32000, 128256})
      for (int block : {128, 256, 512})
        for (int unroll : {1, 2, 4, 8})
          reg(std::string("sweep/softmax_logprob_") + (bwd ? "fwd_bwd" : "fwd") +
                  "/N=4096/V=" + std::to_string(V) + "/block=" + std::to_string(block) +
                  "/unroll=" + std::to_string(unroll),
              [=](benchmark::State& s) {
                BM_softmax_logprob(s, 4096, V, bwd, rk::CudaLaunch{block, unroll, 0}, true);
              });
  for (const char* mode : {"fwd_graph", "bwd_graph", "fwd", "bwd"})
    for (int version : {1, 2})
      for (int chunked : {0, 1})
        for (int block : {64, 128, 256, 512})
          for (int unroll : {1, 2, 4})
            for (int vec : {0, 1}) {
              if (chunked && mode[0] == 'b') continue;  // the backward has no chunked layout
              reg(std::string("sweep/ratio_clip_") + mode + "/B=512/T=4096/v" +
                      std::to_string(version) + "/chunked=" + std::to_string(chunked) +
                      "/block=" + std::to_string(block) + "/unroll=" + std::to_string(unroll) +
                      "/vec=" + std::to_string(vec),
                  [=](benchmark::State& s) {
                    BM_ratio_clip(s, 512, 4096, mode,
                                  rk::CudaLaunch{block, unroll, vec, version, chunked}, true);
                  });
            }
  for (int chunked : {0, 1, 2})
    for (int block : {128, 256, 512})
      for (int unroll : {1, 2, 4})
        reg("sweep/ratio_clip_v3_fwd_graph/B=512/T=4096/chunked=" + std::to_string(chunked) +
                "/block=" + std::to_string(block) + "/unroll=" + std::to_string(unroll),
            [=](benchmark::State& s) {
              BM_ratio_clip(s, 512, 4096, "fwd_graph",
                            rk::CudaLaunch{block, unroll, 0, 3, chunked}, true);
            });
  for (int block : {128, 256, 512})
    reg("sweep/ratio_clip_v3_prefetch_fwd_graph/B=512/T=4096/block=" + std::to_string(block),
        [=](benchmark::State& s) {
          rk::CudaLaunch l{block, 1, 0, 3};
          l.prefetch = 1;
          BM_ratio_clip(s, 512, 4096, "fwd_graph", l, true);
        });
  // The bulk-copy layout's chunk (blockDim·4·U tokens, 16·U KB at 256 threads) against its
  // read ceiling's.
  for (bool read : {false, true})
    for (int block : {128, 256, 512})
      for (int unroll : {1, 2, 4})
        reg(std::string("sweep/ratio_clip_bulk_") + (read ? "read_ceiling" : "v3_fwd") +
                "_graph/B=512/T=4096/block=" + std::to_string(block) +
                "/unroll=" + std::to_string(unroll),
            [=](benchmark::State& s) {
              BM_ratio_clip(s, 512, 4096, read ? "read_graph" : "fwd_graph",
                            rk::CudaLaunch{block, unroll, 0, 3, 3}, true);
            });
  for (bool rows : {false, true})
    for (int64_t B : {8, 64, 4096})
      for (int64_t T : {128, 4096})
        reg(std::string(rows ? "gae_masked_rows_v2" : "gae_time_major_v2") +
                "/B=" + std::to_string(B) + "/T=" + std::to_string(T),
            [=](benchmark::State& s) { BM_gae(s, B, T, rows); });
}

#endif  // RLFT_HAVE_CUDA

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  std::string reason;
  if (rlft::kernels::cuda::device_count(&reason) == 0) {
    std::printf("bench_cuda_kernels: no GPU (%s); nothing to run.\n", reason.c_str());
    return 0;
  }
#ifdef RLFT_HAVE_CUDA
  g_peak_gbps = peak_dram_gbps(0);
  std::printf("device 0: %s, DRAM peak %.0f GB/s (memory clock x bus width)\n",
              rlft::kernels::cuda::device_name(0).c_str(), g_peak_gbps);
  register_all();
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
#endif
  return 0;
}
