// sum_middle's column split for a single outer slice (the bias gradient of a linear layer)
// against the plain loop: bitwise equal at one and two threads, for float and double, with a
// column count (129) that leaves uneven chunks and a row count above the threads' threshold.
// cumsum_middle against the plain running sum, forward and reversed, at one and two threads
// (above the threads' threshold, so its rows are shared out), bitwise.
#include <gtest/gtest.h>
#include <omp.h>

#include <random>
#include <type_traits>
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

// sum_middle over any [outer, R, inner] against the plain loop. Inputs are small whole numbers,
// so every partial sum is exact and any order of additions gives the same bits.
template <typename T>
void check_outer(int64_t outer, int64_t R, int64_t inner) {
  std::vector<T> in(static_cast<size_t>(outer * R * inner));
  for (size_t k = 0; k < in.size(); ++k) in[k] = T(int64_t((k * 37) % 23) - 11);
  std::vector<T> ref(static_cast<size_t>(outer * inner));
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t i = 0; i < inner; ++i) {
      double acc = 0;
      for (int64_t r = 0; r < R; ++r) acc += double(in[size_t((o * R + r) * inner + i)]);
      ref[size_t(o * inner + i)] = T(acc);
    }
  for (int threads : {1, 2}) {
    const int saved = omp_get_max_threads();
    omp_set_num_threads(threads);
    std::vector<T> out(ref.size());
    rlft::kernels::sum_middle<T>(outer, R, inner, in.data(), out.data());
    omp_set_num_threads(saved);
    EXPECT_EQ(out, ref) << outer << "x" << R << "x" << inner << " threads " << threads;
  }
}

// Several outer slices: rows of length R (inner = 1, R not a multiple of the 4 accumulators,
// below and above the threads' threshold) and slices of several columns, each summed from zero.
TEST(SumMiddle, EveryOuterSliceEqualsThePlainLoop) {
  check_outer<float>(5, 7, 1);
  check_outer<double>(3, 1, 1);
  check_outer<float>(70, 1001, 1);
  check_outer<float>(4, 6, 3);
  check_outer<double>(9, 100, 80);
}

template <typename T>
void check_cumsum(int64_t outer, int64_t R, int64_t inner, bool reverse) {
  using Acc = std::conditional_t<std::is_floating_point_v<T>, double, int64_t>;
  std::mt19937 rng(4);
  std::normal_distribution<double> nd;
  std::vector<T> in(static_cast<size_t>(outer * R * inner));
  for (auto& v : in) v = T(nd(rng) * 100);
  std::vector<T> ref(in.size());
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t i = 0; i < inner; ++i) {
      Acc acc = 0;
      for (int64_t k = 0; k < R; ++k) {
        const size_t at = size_t((o * R + (reverse ? R - 1 - k : k)) * inner + i);
        acc += Acc(in[at]);
        ref[at] = T(acc);
      }
    }
  for (int threads : {1, 2}) {
    const int saved = omp_get_max_threads();
    omp_set_num_threads(threads);
    std::vector<T> out(in.size());
    rlft::kernels::cumsum_middle<T>(outer, R, inner, in.data(), out.data(), reverse);
    omp_set_num_threads(saved);
    EXPECT_EQ(out, ref) << outer << "x" << R << "x" << inner << " reverse " << reverse
                        << " threads " << threads;
  }
}

TEST(CumsumMiddle, EqualsThePlainRunningSumBitwiseAtAnyThreadCount) {
  for (bool reverse : {false, true}) {
    check_cumsum<float>(64, 1100, 1, reverse);  // 70k elements: rows shared out
    check_cumsum<double>(7, 300, 33, reverse);
    check_cumsum<int64_t>(5, 9000, 2, reverse);
    check_cumsum<float>(1, 5, 3, reverse);
  }
}

}  // namespace
