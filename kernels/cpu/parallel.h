// Loops split among OpenMP threads that stay out of the OpenMP runtime when they would run on
// one thread.
//
// An OpenMP `if` clause that is false does not skip the runtime: GCC's libgomp still starts a
// team of one thread and ends it at a barrier, whose last arrival wakes the team's waiters with
// a futex system call whether any thread waits or not. A 60k-step PPO CartPole run on one
// thread made 143k futex calls that way (strace -c), one per small op: linear's bias copy,
// softmax rows, sums, ratio_clip, GAE. These helpers test the condition in C++ instead and run
// the loop inline when it is false or when OpenMP has one thread to give.
#pragma once

#include <omp.h>

#include <cstdint>

namespace rlft::kernels {

// Whether a loop asked to run in parallel gets more than one thread.
inline bool use_threads(bool parallel) { return parallel && omp_get_max_threads() > 1; }

// body(i) for i in [0, n): statically split among the threads when use_threads(parallel),
// else in order on this thread. Iterations must be independent (results do not depend on the
// split).
template <class F>
inline void parallel_for(int64_t n, bool parallel, F&& body) {
  if (use_threads(parallel)) {
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; ++i) body(i);
    return;
  }
  for (int64_t i = 0; i < n; ++i) body(i);
}

// region(thread, threads) on every thread of a team when use_threads(parallel), else
// region(0, 1) on this thread.
template <class F>
inline void parallel_region(bool parallel, F&& region) {
  if (use_threads(parallel)) {
#pragma omp parallel
    region(int64_t(omp_get_thread_num()), int64_t(omp_get_num_threads()));
    return;
  }
  region(int64_t(0), int64_t(1));
}

// [begin, end) of thread t of nt over n items, contiguous, in thread order.
inline int64_t share_begin(int64_t n, int64_t t, int64_t nt) { return n * t / nt; }

// f(begin, end) over [0, n) cut into one contiguous share per thread (parallel_region's team),
// shares that are empty skipped: f(0, n) on this thread when not use_threads(parallel).
template <class F>
inline void parallel_ranges(int64_t n, bool parallel, F&& f) {
  parallel_region(parallel, [&](int64_t t, int64_t nt) {
    const int64_t b = share_begin(n, t, nt), e = share_begin(n, t + 1, nt);
    if (e > b) f(b, e);
  });
}

}  // namespace rlft::kernels
