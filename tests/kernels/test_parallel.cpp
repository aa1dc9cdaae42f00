// kernels/cpu/parallel.h: loops split among OpenMP threads only when asked and when OpenMP has
// more than one thread; otherwise inline, in order, outside the OpenMP runtime.
#include <gtest/gtest.h>
#include <omp.h>

#include <vector>

#include "kernels/cpu/parallel.h"

namespace rk = rlft::kernels;

namespace {

// Restores OpenMP's thread count after a test changed it.
struct ThreadsGuard {
  int saved = omp_get_max_threads();
  ~ThreadsGuard() { omp_set_num_threads(saved); }
};

TEST(Parallel, EveryIndexRunsOnceOnAnyNumberOfThreads) {
  ThreadsGuard guard;
  for (int threads : {1, 2, 3}) {
    omp_set_num_threads(threads);
    for (bool parallel : {false, true}) {
      std::vector<int> seen(1001, 0);
      rk::parallel_for(int64_t(seen.size()), parallel, [&](int64_t i) { ++seen[size_t(i)]; });
      for (size_t i = 0; i < seen.size(); ++i)
        ASSERT_EQ(seen[i], 1) << "index " << i << ", " << threads << " threads, parallel "
                              << parallel;
    }
  }
  int calls = 0;
  rk::parallel_for(0, true, [&](int64_t) { ++calls; });
  EXPECT_EQ(calls, 0);
}

TEST(Parallel, OneThreadOrNotAskedRunsInlineInOrder) {
  ThreadsGuard guard;
  omp_set_num_threads(1);
  EXPECT_FALSE(rk::use_threads(true));
  std::vector<int64_t> order;
  rk::parallel_for(5, true, [&](int64_t i) {
    EXPECT_FALSE(omp_in_parallel()) << "no OpenMP region for one thread";
    order.push_back(i);
  });
  EXPECT_EQ(order, (std::vector<int64_t>{0, 1, 2, 3, 4}));
  omp_set_num_threads(2);
  EXPECT_TRUE(rk::use_threads(true));
  EXPECT_FALSE(rk::use_threads(false));
  rk::parallel_region(false, [&](int64_t t, int64_t nt) {
    EXPECT_FALSE(omp_in_parallel());
    EXPECT_EQ(t, 0);
    EXPECT_EQ(nt, 1);
  });
}

TEST(Parallel, RegionSharesCoverEveryItemOnce) {
  ThreadsGuard guard;
  omp_set_num_threads(3);
  std::vector<int> seen(100, 0);
  rk::parallel_region(true, [&](int64_t t, int64_t nt) {
    for (int64_t i = rk::share_begin(100, t, nt); i < rk::share_begin(100, t + 1, nt); ++i)
      ++seen[size_t(i)];  // distinct items: no two threads write one
  });
  for (size_t i = 0; i < seen.size(); ++i) ASSERT_EQ(seen[i], 1) << i;
  EXPECT_EQ(rk::share_begin(7, 0, 3), 0);
  EXPECT_EQ(rk::share_begin(7, 3, 3), 7);
}

}  // namespace
