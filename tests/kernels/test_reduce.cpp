// sum_middle's column split for a single outer slice (the bias gradient of a linear layer)
// against the plain loop: bitwise equal at one and two threads, for float and double, with a
// column count (129) that leaves uneven chunks and a row count above the threads' threshold.
#include <gtest/gtest.h>
#include <omp.h>

#include <random>
#include <vector>

#include "kernels/cpu/reduce.h"

namespace {

template <typename T>
void check(int64_t R, int64_t inner) {
  std::mt19937 rng(3);
  std::normal_distribution<double> nd;
  std::vector<T> in(static_cast<size_t>(R * inner));
  for (auto& v : in) v = T(nd(rng));
  std::vector<T> ref(static_cast<size_t>(inner));
  for (int64_t i = 0; i < inner; ++i) {
    double acc = 0;
    for (int64_t r = 0; r < R; ++r) acc += in[size_t(r * inner + i)];
    ref[size_t(i)] = T(acc);
  }
  for (int threads : {1, 2}) {
    const int saved = omp_get_max_threads();
    omp_set_num_threads(threads);
    std::vector<T> out(static_cast<size_t>(inner));
    rlft::kernels::sum_middle<T>(1, R, inner, in.data(), out.data());
    omp_set_num_threads(saved);
    EXPECT_EQ(out, ref) << R << "x" << inner << " threads " << threads;
  }
}

TEST(SumMiddle, ColumnSplitEqualsThePlainLoopBitwise) {
  check<float>(600, 129);
  check<double>(600, 129);
  check<float>(1000, 64);
  check<float>(3, 5);
}

}  // namespace
