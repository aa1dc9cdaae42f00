// Tests of the CPU GEMM (kernels/cpu/gemm.h) against its reference, gemm_naive_f32 (the triple
// loop accumulating in double), on every micro-kernel family the CPU can run.
//
// Inputs are adversarial on purpose: sizes that are not multiples of any tile (1, 7, 33, 257),
// zero sizes, every transpose, strides larger than the rows (the padding is filled with a
// sentinel that must survive), beta = 0 over a C full of NaN (C must not be read), alpha = 0
// over NaN inputs (A and B must not be read), and shapes that cross every block boundary of
// the packed path (KC, NB, MB) as well as the RL-MLP shapes of the unpacked path.
#include <gtest/gtest.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "kernels/cpu/gemm.h"

namespace rlft::kernels {
namespace {

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
constexpr float kSentinel = -12345.0f;

struct Shape {
  int64_t M, N, K;
};

// A matrix stored rows x cols with row stride cols + pad; the padding holds kSentinel.
struct Mat {
  int64_t rows, cols, ld;
  std::vector<float> v;
  Mat(int64_t r, int64_t c, int64_t pad, std::mt19937& rng, float fill_nan = 0.0f)
      : rows(r),
        cols(c),
        ld(c + pad),
        v(static_cast<size_t>(std::max<int64_t>(r * (c + pad), 1)), kSentinel) {
    std::uniform_real_distribution<float> u(-1.0f, 1.0f);
    for (int64_t i = 0; i < r; ++i)
      for (int64_t j = 0; j < c; ++j) v[i * ld + j] = fill_nan != 0.0f ? kNaN : u(rng);
  }
  float* data() { return v.data(); }
};

// Runs gemm_f32 and the reference on the same inputs and compares them element by element.
// Tolerance: the worst-case rounding bound of a float dot product of length K is
// gamma_K * sum_k |a_k b_k| with gamma_K ~ K * 2^-24 (Higham, Accuracy and Stability, 3.1),
// whatever the summation order or blocking; alpha, beta and the final store add a few roundings.
// Entries are drawn from [-1, 1], so sum_k |a_k b_k| <= K.
// The bound is rigorous, so the test cannot flake, yet a wrong element (a missed or doubled
// term, a stale C) is off by O(|a b|), hundreds of times more at these sizes.
void check_gemm(bool ta, bool tb, Shape s, float alpha, float beta, int64_t pad, uint32_t seed) {
  SCOPED_TRACE(::testing::Message() << "isa=" << gemm_isa() << " ta=" << ta << " tb=" << tb
                                    << " M=" << s.M << " N=" << s.N << " K=" << s.K
                                    << " alpha=" << alpha << " beta=" << beta << " pad=" << pad);
  std::mt19937 rng(seed);
  Mat A(ta ? s.K : s.M, ta ? s.M : s.K, pad, rng, alpha == 0.0f ? 1.0f : 0.0f);
  Mat B(tb ? s.N : s.K, tb ? s.K : s.N, pad, rng, alpha == 0.0f ? 1.0f : 0.0f);
  Mat C(s.M, s.N, pad, rng, beta == 0.0f ? 1.0f : 0.0f);
  std::vector<float> ref = C.v;
  gemm_naive_f32(ta, tb, s.M, s.N, s.K, alpha, A.data(), A.ld, B.data(), B.ld, beta, ref.data(),
                 C.ld);
  gemm_f32(ta, tb, s.M, s.N, s.K, alpha, A.data(), A.ld, B.data(), B.ld, beta, C.data(), C.ld);

  const double gamma = (static_cast<double>(s.K) + 4.0) * std::ldexp(1.0, -24);
  const double mag = std::fabs(alpha) * static_cast<double>(s.K);  // >= |alpha| sum |a b|
  int64_t bad = 0;
  for (int64_t i = 0; i < s.M; ++i) {
    for (int64_t j = 0; j < s.N; ++j) {
      const int64_t at = i * C.ld + j;
      const double c0 = beta == 0.0f ? 0.0 : std::fabs(beta * C.v[at]);
      const double tol = gamma * (mag + c0 + std::fabs(ref[at])) + 1e-30;
      const double err = std::fabs(static_cast<double>(C.v[at]) - ref[at]);
      if (!(err <= tol) && bad++ < 5)
        ADD_FAILURE() << "C(" << i << "," << j << ") = " << C.v[at] << ", reference " << ref[at]
                      << ", |err| " << err << " > tol " << tol;
    }
    for (int64_t j = s.N; j < C.ld; ++j)
      if (C.v[i * C.ld + j] != kSentinel && bad++ < 5)
        ADD_FAILURE() << "padding C(" << i << "," << j << ") overwritten";
  }
  EXPECT_EQ(bad, 0);
}

// ---- every test below runs once per micro-kernel family ---------------------------------------

class GemmIsa : public ::testing::TestWithParam<const char*> {
 protected:
  void SetUp() override {
    const std::string got = gemm_set_isa(GetParam());
    if (got != GetParam())
      GTEST_SKIP() << "this CPU cannot run " << GetParam() << " (best: " << got << ")";
  }
  void TearDown() override { gemm_set_isa(nullptr); }
};

const bool kTrans[2] = {false, true};

TEST_P(GemmIsa, OddSizesAllTransposes) {
  const Shape shapes[] = {{1, 1, 1},     {7, 7, 7},    {33, 33, 33},   {1, 33, 7},
                          {7, 1, 257},   {33, 257, 1}, {257, 7, 33},   {2, 3, 300},
                          {13, 65, 129}, {100, 17, 5}, {257, 257, 257}};
  uint32_t seed = 1;
  for (bool ta : kTrans)
    for (bool tb : kTrans)
      for (const Shape& s : shapes) check_gemm(ta, tb, s, 1.0f, 0.0f, 0, seed++);
}

// The shapes of RL MLPs (M = batch, K/N = widths, N = 1/2 for value/action heads): the
// unpacked direct and dot tiles with their edge cases.
TEST_P(GemmIsa, RlMlpShapes) {
  const Shape shapes[] = {{1, 64, 4},     {64, 64, 4},   {512, 64, 4},    {1, 64, 64},
                          {64, 64, 64},   {512, 2, 64},  {512, 1, 64},    {1, 2, 64},
                          {64, 256, 256}, {1, 256, 256}, {512, 256, 256}, {64, 4, 512},
                          {3, 5, 17}};
  uint32_t seed = 100;
  for (bool ta : kTrans)
    for (bool tb : kTrans)
      for (const Shape& s : shapes) check_gemm(ta, tb, s, 1.0f, 0.0f, 0, seed++);
}

// Narrow outputs (value heads N = 1, policy heads N = 2..8) at a few rows: the dot tile, the
// interleaved dot (N = 2, 4 with B contiguous) and the masked direct tile, with every k tail.
TEST_P(GemmIsa, NarrowOutputs) {
  uint32_t seed = 150;
  for (bool ta : kTrans)
    for (bool tb : kTrans)
      for (int64_t m : {1, 3, 4, 5, 8, 9, 64})
        for (int64_t n : {1, 2, 3, 4, 7, 8})
          for (int64_t k : {1, 5, 16, 33, 130})
            check_gemm(ta, tb, {m, n, k}, 1.0f, 0.0f, 0, seed++);
}

// Shapes that take the packed path and cross its block boundaries: several K chunks, several
// packed B blocks per thread, ragged edge tiles.
TEST_P(GemmIsa, PackedPathBlockEdges) {
  const Shape shapes[] = {{120, 600, 450}, {50, 700, 1100}, {97, 1001, 140}, {13, 530, 260}};
  uint32_t seed = 200;
  for (bool ta : kTrans)
    for (bool tb : kTrans)
      for (const Shape& s : shapes) check_gemm(ta, tb, s, 1.0f, 0.0f, 0, seed++);
}

// More rows than one packed A block (MB = 3072): the outer i0 loop.
TEST_P(GemmIsa, PackedPathManyRows) {
  check_gemm(false, false, {3100, 40, 1100}, 1.0f, 0.0f, 0, 300);
  check_gemm(true, true, {3100, 40, 1100}, 0.5f, 1.0f, 0, 301);
}

TEST_P(GemmIsa, ZeroSizes) {
  const Shape shapes[] = {{0, 5, 7}, {5, 0, 7}, {5, 7, 0}, {0, 0, 0}, {300, 600, 0}};
  uint32_t seed = 400;
  for (bool ta : kTrans)
    for (bool tb : kTrans)
      for (const Shape& s : shapes) {
        check_gemm(ta, tb, s, 1.0f, 0.0f, 0, seed++);  // K == 0, beta == 0: C = 0 over NaN
        check_gemm(ta, tb, s, 1.0f, 0.5f, 2, seed++);  // K == 0: C = beta * C
      }
}

TEST_P(GemmIsa, AlphaBeta) {
  const Shape shapes[] = {{7, 33, 257}, {64, 64, 64}, {40, 530, 260}, {1, 2, 64}};
  const float alphas[] = {1.0f, -0.5f, 0.0f};
  const float betas[] = {0.0f, 1.0f, 0.25f};
  uint32_t seed = 500;
  for (bool ta : kTrans)
    for (bool tb : kTrans)
      for (const Shape& s : shapes)
        for (float alpha : alphas)
          for (float beta : betas) check_gemm(ta, tb, s, alpha, beta, 0, seed++);
}

TEST_P(GemmIsa, StridesLargerThanRows) {
  const Shape shapes[] = {{7, 33, 257}, {64, 64, 64}, {33, 2, 100}, {40, 530, 260}};
  uint32_t seed = 600;
  for (bool ta : kTrans)
    for (bool tb : kTrans)
      for (const Shape& s : shapes) check_gemm(ta, tb, s, 0.75f, 0.5f, 5, seed++);
}

// Determinism: each element is summed in the same order whatever the thread count, so 1 and 2
// threads give the same bits (DESIGN.md: one seed fixes every number on the CPU).
TEST_P(GemmIsa, SameBitsForAnyThreadCount) {
  // Each path, and splits that leave a thread a ragged share (13 = 12 + 1 rows, 20 = 12 + 8).
  const Shape shapes[] = {{512, 256, 256}, {600, 700, 500}, {64, 64, 64},
                          {13, 100, 256},  {20, 2, 7000},   {100, 8, 400}};
  for (const Shape& s : shapes)
    for (bool tb : kTrans) {
      std::mt19937 rng(700);
      Mat A(s.M, s.K, 0, rng), B(tb ? s.N : s.K, tb ? s.K : s.N, 0, rng);
      std::vector<float> c1(s.M * s.N), c2(s.M * s.N);
      const int saved = omp_get_max_threads();
      omp_set_num_threads(1);
      gemm_f32(false, tb, s.M, s.N, s.K, 1.0f, A.data(), A.ld, B.data(), B.ld, 0.0f, c1.data(),
               s.N);
      omp_set_num_threads(2);
      gemm_f32(false, tb, s.M, s.N, s.K, 1.0f, A.data(), A.ld, B.data(), B.ld, 0.0f, c2.data(),
               s.N);
      omp_set_num_threads(saved);
      EXPECT_EQ(c1, c2) << "M=" << s.M << " N=" << s.N << " K=" << s.K << " tb=" << tb;
    }
}

// Called from inside a parallel region (e.g. a batch of environments), each call must run
// single-threaded and still be right.
TEST_P(GemmIsa, InsideParallelRegion) {
  const Shape s{300, 600, 450};
  std::mt19937 rng(800);
  Mat A(s.M, s.K, 0, rng), B(s.K, s.N, 0, rng);
  std::vector<float> ref(s.M * s.N);
  gemm_naive_f32(false, false, s.M, s.N, s.K, 1.0f, A.data(), A.ld, B.data(), B.ld, 0.0f,
                 ref.data(), s.N);
  std::vector<std::vector<float>> out(2, std::vector<float>(s.M * s.N));
#pragma omp parallel for num_threads(2)
  for (int t = 0; t < 2; ++t)
    gemm_f32(false, false, s.M, s.N, s.K, 1.0f, A.data(), A.ld, B.data(), B.ld, 0.0f, out[t].data(),
             s.N);
  for (int t = 0; t < 2; ++t)
    for (size_t i = 0; i < ref.size(); ++i)
      ASSERT_NEAR(out[t][i], ref[i], 1e-3) << "thread " << t << " element " << i;
}

TEST_P(GemmIsa, Batched) {
  const Shape shapes[] = {{7, 33, 17}, {64, 64, 64}, {20, 300, 500}};
  for (bool ta : kTrans)
    for (bool tb : kTrans)
      for (const Shape& s : shapes) {
        SCOPED_TRACE(::testing::Message() << "ta=" << ta << " tb=" << tb << " M=" << s.M);
        const int64_t batch = 5;
        const int64_t ar = ta ? s.K : s.M, ac = ta ? s.M : s.K;
        const int64_t br = tb ? s.N : s.K, bc = tb ? s.K : s.N;
        const int64_t lda = ac + 1, ldb = bc + 2, ldc = s.N + 3;
        // Strides larger than one matrix, so gaps between matrices must stay untouched too.
        const int64_t sa = ar * lda + 7, sb = br * ldb + 5, sc = s.M * ldc + 11;
        std::mt19937 rng(900);
        std::uniform_real_distribution<float> u(-1.0f, 1.0f);
        std::vector<float> A(batch * sa), B(batch * sb), C(batch * sc);
        for (float& x : A) x = u(rng);
        for (float& x : B) x = u(rng);
        for (float& x : C) x = u(rng);
        std::vector<float> ref = C;
        for (int64_t b = 0; b < batch; ++b)
          gemm_naive_f32(ta, tb, s.M, s.N, s.K, 0.5f, A.data() + b * sa, lda, B.data() + b * sb,
                         ldb, -1.0f, ref.data() + b * sc, ldc);
        gemm_batched_f32(ta, tb, batch, s.M, s.N, s.K, 0.5f, A.data(), lda, sa, B.data(), ldb, sb,
                         -1.0f, C.data(), ldc, sc);
        // |op(A) op(B)| <= K here (entries in [-1, 1]); see check_gemm for the bound.
        const double tol = (s.K + 4.0) * std::ldexp(1.0, -24) * (0.5 * s.K + 2.0);
        for (size_t i = 0; i < C.size(); ++i) ASSERT_NEAR(C[i], ref[i], tol) << "at " << i;
      }
}

INSTANTIATE_TEST_SUITE_P(AllIsas, GemmIsa, ::testing::Values("portable", "avx2", "avx512"),
                         [](const ::testing::TestParamInfo<const char*>& p) {
                           return std::string(p.param);
                         });

// ---- dispatch ---------------------------------------------------------------------------------

TEST(GemmDispatch, EnvironmentLowersTheIsa) {
  const char* saved = std::getenv("RLFT_GEMM_ISA");
  const std::string saved_value = saved ? saved : "";
  setenv("RLFT_GEMM_ISA", "portable", 1);
  EXPECT_STREQ(gemm_set_isa(nullptr), "portable");
  EXPECT_STREQ(gemm_isa(), "portable");
  setenv("RLFT_GEMM_ISA", "avx2", 1);
  const std::string got = gemm_set_isa("");
  EXPECT_TRUE(got == "avx2" || got == "portable") << got;  // never above what was asked
  if (saved) {
    setenv("RLFT_GEMM_ISA", saved_value.c_str(), 1);
  } else {
    unsetenv("RLFT_GEMM_ISA");
  }
  gemm_set_isa(nullptr);
  const std::string best = gemm_isa();
  EXPECT_TRUE(best == "avx512" || best == "avx2" || best == "portable") << best;
}

// 0 when C = A·Bᵀ (A [8, 300], B stored [256, 300]) from a two-thread gemm_f32 matches the sum
// written out, C(i, j) = Σ_k A(i, k)·B(j, k) in double, to check_gemm's tolerance; 1 otherwise.
int column_split_error() {
  const int64_t M = 8, N = 256, K = 300;
  std::mt19937 rng(1000);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  std::vector<float> A(M * K), B(N * K), C(M * N, kNaN);
  for (float& x : A) x = u(rng);
  for (float& x : B) x = u(rng);
  omp_set_num_threads(2);
  gemm_f32(false, true, M, N, K, 1.0f, A.data(), K, B.data(), K, 0.0f, C.data(), N);
  const double tol = (K + 4.0) * std::ldexp(1.0, -24) * (K + 2.0);
  for (int64_t i = 0; i < M; ++i)
    for (int64_t j = 0; j < N; ++j) {
      double s = 0.0;
      for (int64_t k = 0; k < K; ++k) s += double(A[i * K + k]) * double(B[j * K + k]);
      if (!(std::fabs(C[i * N + j] - s) <= tol)) return 1;
    }
  return 0;
}

// The unpacked path split between two threads by columns (M = 8: one unit of rows; N = 256:
// many units of columns; 8·256·300 multiply-adds: two threads) with B stored transposed, [N, K]:
// each thread must read the rows of B that hold its columns of op(B). Checked against the sum
// written out, C(i, j) = Σ_k A(i, k)·B(j, k) in double (tolerance as check_gemm's), in a fresh
// process (a threadsafe death test): there no earlier parallel call of this binary has made
// the GEMM back off to one thread on a busy machine, so the first call really is split.
TEST(GemmThreads, ColumnSplitOfTheUnpackedPathReadsATransposedBsOwnRows) {
  const std::string style = GTEST_FLAG_GET(death_test_style);
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(std::exit(column_split_error()), ::testing::ExitedWithCode(0), "");
  GTEST_FLAG_SET(death_test_style, style);
}

// ---- the unpacked path over packed copies (direct_gemm_packed, AVX2) --------------------------

// C from gemm_f32 on `threads` threads with the unpacked path's packed reads on or off, on the
// inputs of check_gemm's seed (C starts as NaN with beta = 0, as random values otherwise).
std::vector<float> gemm_with_packing(bool packing, bool ta, bool tb, Shape s, float alpha,
                                     float beta, int64_t pad, int threads, uint32_t seed) {
  std::mt19937 rng(seed);
  Mat A(ta ? s.K : s.M, ta ? s.M : s.K, pad, rng);
  Mat B(tb ? s.N : s.K, tb ? s.K : s.N, pad, rng);
  Mat C(s.M, s.N, pad, rng, beta == 0.0f ? 1.0f : 0.0f);
  const bool before = gemm_set_direct_packing(packing);
  omp_set_num_threads(threads);
  gemm_f32(ta, tb, s.M, s.N, s.K, alpha, A.data(), A.ld, B.data(), B.ld, beta, C.data(), C.ld);
  omp_set_num_threads(omp_get_num_procs());
  gemm_set_direct_packing(before);
  return C.v;
}

// The packed copies change where the tiles read, never what they add: C must have the bits of
// the in-place tiles for every transpose, ragged rows (the last panel's masked A rows with
// trans_a) and ragged columns (a last strip of 5 or 13 columns: KU partial sums on AVX2),
// padded strides, alpha/beta, and a split between two threads. And the packed reads must have
// been taken (the call counter), so that the comparison is not of the in-place path with itself.
TEST(GemmDirectPacking, SameBitsAsTheInPlaceTiles) {
  if (std::string(gemm_set_isa("avx2")) != "avx2")
    GTEST_SKIP() << "this CPU cannot run avx2 (best: " << gemm_isa() << "), the one family that "
                 << "packs its unpacked path";
  // Packed: from 128 rows and 8192 elements of B (use_direct_packing); the last two are just
  // below, one in rows, one in B's size.
  const Shape shapes[] = {{2048, 384, 128}, {384, 128, 2048}, {130, 37, 257}, {133, 16, 600},
                          {197, 133, 64},   {128, 64, 128},   {127, 64, 128}, {128, 63, 128}};
  uint32_t seed = 3000;
  for (bool ta : kTrans)
    for (bool tb : kTrans)
      for (const Shape& s : shapes)
        for (int threads : {1, 2}) {
          const float alpha = seed % 2 ? 1.0f : 0.75f, beta = seed % 3 ? 0.0f : -0.5f;
          const int64_t pad = seed % 4 == 0 ? 3 : 0;
          SCOPED_TRACE(::testing::Message()
                       << "ta=" << ta << " tb=" << tb << " M=" << s.M << " N=" << s.N
                       << " K=" << s.K << " threads=" << threads << " alpha=" << alpha
                       << " beta=" << beta << " pad=" << pad);
          const int64_t calls = gemm_direct_packing_calls();
          const std::vector<float> in_place =
              gemm_with_packing(false, ta, tb, s, alpha, beta, pad, threads, seed);
          EXPECT_EQ(gemm_direct_packing_calls(), calls);
          const std::vector<float> packed =
              gemm_with_packing(true, ta, tb, s, alpha, beta, pad, threads, seed);
          // Shapes the dot tile takes (no trans_a, trans_b with M <= K/4) never pack.
          const bool dot = !ta && tb && s.M <= std::max<int64_t>(8, s.K / 4);
          const bool packs = !dot && s.M >= 128 && s.N * s.K >= 8192;
          EXPECT_EQ(gemm_direct_packing_calls() > calls, packs);
          ASSERT_EQ(packed.size(), in_place.size());
          EXPECT_EQ(0, std::memcmp(packed.data(), in_place.data(), packed.size() * sizeof(float)))
              << "packed and in-place tiles differ";
          check_gemm(ta, tb, s, alpha, beta, pad, seed);  // and both are right
          ++seed;
        }
  gemm_set_isa(nullptr);
}

// ---- float64 ----------------------------------------------------------------------------------

// Reference for f64: the triple loop in long double.
void naive_f64(bool ta, bool tb, int64_t M, int64_t N, int64_t K, double alpha, const double* A,
               int64_t lda, const double* B, int64_t ldb, double beta, double* C, int64_t ldc) {
  for (int64_t i = 0; i < M; ++i)
    for (int64_t j = 0; j < N; ++j) {
      long double s = 0.0L;
      for (int64_t k = 0; k < K; ++k)
        s += static_cast<long double>(ta ? A[k * lda + i] : A[i * lda + k]) *
             (tb ? B[j * ldb + k] : B[k * ldb + j]);
      long double c = alpha * s;
      if (beta != 0.0) c += beta * static_cast<long double>(C[i * ldc + j]);
      C[i * ldc + j] = static_cast<double>(c);
    }
}

TEST(GemmF64, MatchesLongDoubleLoop) {
  const Shape shapes[] = {{1, 1, 1},      {7, 33, 257}, {33, 7, 1}, {64, 64, 64},
                          {130, 70, 300}, {0, 3, 3},    {3, 3, 0}};
  const double alphas[] = {1.0, -0.5};
  const double betas[] = {0.0, 0.25};
  std::mt19937 rng(1000);
  std::uniform_real_distribution<double> u(-1.0, 1.0);
  for (bool ta : kTrans)
    for (bool tb : kTrans)
      for (const Shape& s : shapes)
        for (double alpha : alphas)
          for (double beta : betas) {
            SCOPED_TRACE(::testing::Message() << "ta=" << ta << " tb=" << tb << " M=" << s.M
                                              << " N=" << s.N << " K=" << s.K);
            const int64_t lda = (ta ? s.M : s.K) + 1, ldb = (tb ? s.K : s.N) + 2, ldc = s.N + 3;
            std::vector<double> A(std::max<int64_t>(1, (ta ? s.K : s.M) * lda));
            std::vector<double> B(std::max<int64_t>(1, (tb ? s.N : s.K) * ldb));
            std::vector<double> C(std::max<int64_t>(1, s.M * ldc));
            for (double& x : A) x = u(rng);
            for (double& x : B) x = u(rng);
            for (double& x : C) x = beta == 0.0 ? std::nan("") : u(rng);
            std::vector<double> ref = C;
            naive_f64(ta, tb, s.M, s.N, s.K, alpha, A.data(), lda, B.data(), ldb, beta, ref.data(),
                      ldc);
            gemm_f64(ta, tb, s.M, s.N, s.K, alpha, A.data(), lda, B.data(), ldb, beta, C.data(),
                     ldc);
            // Entries in [-1,1]: |error| <= K * 2^-53 * K (the bound of check_gemm, doubled).
            const double tol = 2.0 * (s.K + 4.0) * std::ldexp(1.0, -53) * (s.K + 1.0);
            for (int64_t i = 0; i < s.M; ++i)
              for (int64_t j = 0; j < s.N; ++j)
                ASSERT_NEAR(C[i * ldc + j], ref[i * ldc + j], tol) << "C(" << i << "," << j << ")";
          }
}

// alpha = 0 only scales C (the manual in gemm.cpp): A and B are not read, so a NaN or an infinity
// in them does not reach C (0·NaN would be NaN): C becomes 0.25·C, and with beta = 0 over NaN, 0.
TEST(GemmF64, AlphaZeroOnlyScalesC) {
  const int64_t M = 3, N = 4, K = 5;
  std::vector<double> A(M * K, std::nan("")), B(K * N, std::numeric_limits<double>::infinity());
  std::vector<double> C(M * N), D(M * N, std::nan(""));
  for (size_t i = 0; i < C.size(); ++i) C[i] = double(i) - 5;
  gemm_f64(false, false, M, N, K, 0.0, A.data(), K, B.data(), N, 0.25, C.data(), N);
  for (size_t i = 0; i < C.size(); ++i) EXPECT_EQ(C[i], 0.25 * (double(i) - 5)) << i;
  gemm_f64(true, true, M, N, K, 0.0, A.data(), M, B.data(), K, 0.0, D.data(), N);
  for (double d : D) EXPECT_EQ(d, 0.0);
}

TEST(GemmF64, Batched) {
  const int64_t batch = 4, M = 9, N = 13, K = 21;
  std::mt19937 rng(1100);
  std::uniform_real_distribution<double> u(-1.0, 1.0);
  std::vector<double> A(batch * M * K), B(batch * N * K), C(batch * M * N);
  for (double& x : A) x = u(rng);
  for (double& x : B) x = u(rng);
  for (double& x : C) x = u(rng);
  std::vector<double> ref = C;
  for (int64_t b = 0; b < batch; ++b)
    naive_f64(false, true, M, N, K, 2.0, A.data() + b * M * K, K, B.data() + b * N * K, K, 0.5,
              ref.data() + b * M * N, N);
  gemm_batched_f64(false, true, batch, M, N, K, 2.0, A.data(), K, M * K, B.data(), K, N * K, 0.5,
                   C.data(), N, M * N);
  for (size_t i = 0; i < C.size(); ++i) ASSERT_NEAR(C[i], ref[i], 1e-13) << "at " << i;
}

}  // namespace
}  // namespace rlft::kernels
