// cross_entropy_rows and its backward in float (kernels/cpu/softmax.cpp: loops cloned for
// AVX-512/AVX2, rows split between threads, a 16-lane running max) against the one-thread
// loops they replaced, kept here as the reference: bitwise equal at one and two threads.
// Rows are spiked (one large logit) so the max matters, some targets are ignored, and
// V = 259 leaves vector tails.
#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include "kernels/cpu/fast_math.h"
#include "kernels/cpu/lane_sum.h"
#include "kernels/cpu/softmax.h"

namespace rk = rlft::kernels;

namespace {

double reference_lse(const float* x, int64_t V) {
  float m = -std::numeric_limits<float>::infinity();
  for (int64_t j = 0; j < V; ++j) m = std::max(m, x[j]);
  const double s = rk::lane_sum(V, [&](int64_t j) { return double(rk::exp_fast(x[j] - m)); });
  return double(m) + std::log(s);
}

TEST(CrossEntropyRows, ClonedFloatRowsEqualTheOneThreadLoopBitwise) {
  const int64_t N = 300, V = 259, ignore = -100;
  std::mt19937 rng(5);
  std::normal_distribution<double> nd;
  std::vector<float> x(static_cast<size_t>(N * V)), g(static_cast<size_t>(N));
  std::vector<int64_t> t(static_cast<size_t>(N));
  for (auto& v : x) v = float(2.0 * nd(rng));
  for (int64_t i = 0; i < N; ++i) {
    x[size_t(i * V + (i * 37) % V)] += 12.0f;  // a spike per row
    t[size_t(i)] = i % 7 == 3 ? ignore : (i * 11) % V;
    g[size_t(i)] = float(nd(rng));
  }
  std::vector<float> loss0(static_cast<size_t>(N)), dx0(x.size());
  std::vector<double> lse0(static_cast<size_t>(N));
  for (int64_t i = 0; i < N; ++i) {
    if (t[size_t(i)] == ignore) {
      loss0[size_t(i)] = 0, lse0[size_t(i)] = 0;
      for (int64_t j = 0; j < V; ++j) dx0[size_t(i * V + j)] = 0;
      continue;
    }
    lse0[size_t(i)] = reference_lse(&x[size_t(i * V)], V);
    loss0[size_t(i)] = float(lse0[size_t(i)] - double(x[size_t(i * V + t[size_t(i)])]));
    for (int64_t j = 0; j < V; ++j)
      dx0[size_t(i * V + j)] = float(double(g[size_t(i)]) *
                                     double(rk::exp_fast(float(double(x[size_t(i * V + j)]) - lse0[size_t(i)]))));
    float& d = dx0[size_t(i * V + t[size_t(i)])];
    d = float(double(d) - double(g[size_t(i)]));
  }
  for (int threads : {1, 2}) {
    const int saved = omp_get_max_threads();
    omp_set_num_threads(threads);
    std::vector<float> loss(static_cast<size_t>(N)), dx(x.size());
    std::vector<double> lse(static_cast<size_t>(N));
    rk::cross_entropy_rows(N, V, x.data(), t.data(), ignore, loss.data(), lse.data());
    rk::cross_entropy_rows_backward(N, V, x.data(), t.data(), ignore, lse.data(), g.data(), dx.data());
    omp_set_num_threads(saved);
    EXPECT_EQ(loss, loss0) << "threads " << threads;
    EXPECT_EQ(lse, lse0) << "threads " << threads;
    EXPECT_EQ(dx, dx0) << "threads " << threads;
  }
}

}  // namespace
