// LayerNorm (kernels/cpu/layer_norm.cpp: rows, and for dw/db columns, split between threads,
// loops cloned for AVX-512/AVX2) against the one-thread loops it replaced, kept here as the
// references: forward and backward bitwise equal for float and double, with and without the
// affine parameters, at one and two threads. Sizes are odd (C = 129, 7) so vector tails and uneven column chunks
// occur; 300 x 129 is above the threads' threshold.
#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>
#include <random>
#include <vector>

#include "kernels/cpu/lane_sum.h"
#include "kernels/cpu/layer_norm.h"

namespace rk = rlft::kernels;

namespace {

template <typename T>
void reference_forward(int64_t N, int64_t C, const T* x, const T* w, const T* b, double eps, T* y,
                       double* mean, double* rstd) {
  for (int64_t i = 0; i < N; ++i) {
    const T* xr = x + i * C;
    const double mu = rk::lane_sum(C, [&](int64_t j) { return double(xr[j]); }) / double(C);
    const double v = rk::lane_sum(C, [&](int64_t j) {
      const double d = double(xr[j]) - mu;
      return d * d;
    });
    const double r = 1.0 / std::sqrt(v / double(C) + eps);
    mean[i] = mu;
    rstd[i] = r;
    T* yr = y + i * C;
    const T scale = T(r), shift = T(-mu * r);
    for (int64_t j = 0; j < C; ++j) yr[j] = xr[j] * scale + shift;
    if (w)
      for (int64_t j = 0; j < C; ++j) yr[j] *= w[j];
    if (b)
      for (int64_t j = 0; j < C; ++j) yr[j] += b[j];
  }
}

template <typename T>
void reference_backward(int64_t N, int64_t C, const T* x, const T* w, const double* mean,
                        const double* rstd, const T* g, T* dx, T* dw, T* db) {
  std::vector<double> acc_w(static_cast<size_t>(C), 0.0), acc_b(static_cast<size_t>(C), 0.0);
  for (int64_t i = 0; i < N; ++i) {
    const T* xr = x + i * C;
    const T* gr = g + i * C;
    const double mu = mean[i], r = rstd[i];
    const auto gh_at = [&](int64_t j) { return double(gr[j]) * (w ? double(w[j]) : 1.0); };
    const double sum_g = rk::lane_sum(C, gh_at);
    const double sum_gx =
        rk::lane_sum(C, [&](int64_t j) { return gh_at(j) * (double(xr[j]) - mu) * r; });
    for (int64_t j = 0; j < C; ++j) acc_w[size_t(j)] += double(gr[j]) * ((double(xr[j]) - mu) * r);
    for (int64_t j = 0; j < C; ++j) acc_b[size_t(j)] += double(gr[j]);
    const double mg = sum_g / double(C), mgx = sum_gx / double(C);
    for (int64_t j = 0; j < C; ++j) {
      const double xh = (double(xr[j]) - mu) * r;
      const double gh = double(gr[j]) * (w ? double(w[j]) : 1.0);
      dx[i * C + j] = T(r * (gh - mg - xh * mgx));
    }
  }
  for (int64_t j = 0; j < C; ++j) dw[j] = T(acc_w[size_t(j)]), db[j] = T(acc_b[size_t(j)]);
}

template <typename T>
void check(int64_t N, int64_t C, bool affine) {
  std::mt19937 rng(7);
  std::normal_distribution<double> nd;
  std::vector<T> x(static_cast<size_t>(N * C)), g(static_cast<size_t>(N * C)),
      w(static_cast<size_t>(C));
  for (auto& v : x) v = T(3.0 * nd(rng) + 1.0);
  for (auto& v : g) v = T(nd(rng));
  for (auto& v : w) v = T(1.0 + 0.5 * nd(rng));
  std::vector<double> mean(static_cast<size_t>(N)), rstd(static_cast<size_t>(N));
  std::vector<T> y(static_cast<size_t>(N * C));
  std::vector<T> bias(w.rbegin(), w.rend());
  const T* wp = affine ? w.data() : nullptr;
  const T* bp = affine ? bias.data() : nullptr;
  reference_forward(N, C, x.data(), wp, bp, 1e-5, y.data(), mean.data(), rstd.data());
  for (int threads : {1, 2}) {
    const int saved = omp_get_max_threads();
    omp_set_num_threads(threads);
    std::vector<T> y1(y.size());
    std::vector<double> mean1(mean.size()), rstd1(rstd.size());
    rk::layer_norm_forward(N, C, x.data(), wp, bp, 1e-5, y1.data(), mean1.data(), rstd1.data());
    omp_set_num_threads(saved);
    EXPECT_EQ(y1, y) << N << "x" << C << " threads " << threads;
    EXPECT_EQ(mean1, mean) << N << "x" << C << " threads " << threads;
    EXPECT_EQ(rstd1, rstd) << N << "x" << C << " threads " << threads;
  }
  std::vector<T> dx0(static_cast<size_t>(N * C)), dw0(static_cast<size_t>(C)),
      db0(static_cast<size_t>(C));
  reference_backward(N, C, x.data(), affine ? w.data() : nullptr, mean.data(), rstd.data(),
                     g.data(), dx0.data(), dw0.data(), db0.data());
  for (int threads : {1, 2}) {
    const int saved = omp_get_max_threads();
    omp_set_num_threads(threads);
    std::vector<T> dx(static_cast<size_t>(N * C)), dw(static_cast<size_t>(C)),
        db(static_cast<size_t>(C));
    rk::layer_norm_backward(N, C, x.data(), affine ? w.data() : nullptr, mean.data(), rstd.data(),
                            g.data(), dx.data(), dw.data(), db.data());
    omp_set_num_threads(saved);
    EXPECT_EQ(dx, dx0) << N << "x" << C << " threads " << threads;
    EXPECT_EQ(dw, dw0) << N << "x" << C << " threads " << threads;
    EXPECT_EQ(db, db0) << N << "x" << C << " threads " << threads;
  }
}

TEST(LayerNorm, ForwardAndBackwardBitwiseEqualToTheOneThreadLoops) {
  for (bool affine : {true, false}) {
    check<float>(300, 129, affine);
    check<double>(300, 129, affine);
    check<float>(5, 7, affine);
    check<double>(1, 1, affine);
  }
}

}  // namespace
