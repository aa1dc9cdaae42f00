// Parity tests of the CUDA kernels (kernels/cuda/*.cu) against their CPU references
// (kernels/cpu/*.cpp, themselves tested against unfused double-precision chains in
// test_rl_kernels.cpp), forward and backward, every version, float and double; and the caching
// device allocator.
//
// Every GPU test starts with RLFT_REQUIRE_GPU(): without a device (or without the CUDA
// backend) it skips with the runtime's reason. The test that a machine without a device gives
// a non-empty reason is CudaRuntime.NoDeviceGivesAReason (test_cuda_runtime.cpp). The size
// classes of the allocator are plain host arithmetic and are tested everywhere.
//
// Inputs are adversarial on purpose, and each generator says why. Tolerances:
//   softmax_logprob, float: the GPU accumulates per thread in float (the CPU in double): at
//     most V/(4·512) = 128 additions of 4-term partial sums per thread at V = 256k and a
//     9-level tree give ≲ 1e-5 relative error in s = Σ e^{z−m} (typically ~1e-6), i.e.
//     ≲ 1e-5 absolute in lse and logp and in the entropy (version 1: 512 scalar additions per
//     thread, typically ~1e-6 too); 5e-5·max(1, |ref|) leaves a margin
//     while an indexing or rescaling bug gives O(1). The backward inherits the float
//     lse/entropy: 5e-5·max(1, max|dlogits|).
//   softmax_logprob, double: the same arithmetic in double: 1e-10.
//   ratio_clip: GPU and CPU evaluate the same double expressions per token; only the order of
//     the sums differs (and CUDA's exp may differ from glibc's by an ulp), so 1e-10 relative
//     for the double outputs and the loss; the clip fractions are ratios of integer counts and
//     must agree to 1e-14; float gradients are the same double value rounded: 3e-7 relative.
//   gae: the carry is double on both sides; the scan composes the maps in a different order
//     (products of γλ over a segment, FMA contraction): 1e-10·max(1, |ref|) in double; float
//     outputs are the rounded doubles: 3e-7·max(1, |ref|).
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <mutex>
#include <random>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "engine/error.h"
#include "kernels/cuda_allocator.h"
#include "kernels/cuda_launch.h"
#include "kernels/cuda_runtime.h"
#include "kernels/gae.h"
#include "kernels/ratio_clip.h"
#include "kernels/softmax_logprob.h"
#include "tests/kernels/gae_problems.h"
#include "tests/kernels/ratio_clip_modes.h"

#ifdef RLFT_HAVE_CUDA
#include <cuda_runtime.h>
#endif

namespace rk = rlft::kernels;

namespace {

// ---- runs everywhere ------------------------------------------------------------------------

// 512-byte granules up to 1 MiB, then quarter-octave classes 2^k·{1, 1.25, 1.5, 1.75}.
TEST(CudaAllocator, SizeClasses) {
  EXPECT_EQ(rk::cuda_alloc_size_class(0), 0u);
  EXPECT_EQ(rk::cuda_alloc_size_class(1), 512u);
  EXPECT_EQ(rk::cuda_alloc_size_class(512), 512u);
  EXPECT_EQ(rk::cuda_alloc_size_class(513), 1024u);
  EXPECT_EQ(rk::cuda_alloc_size_class(1 << 20), size_t(1) << 20);
  EXPECT_EQ(rk::cuda_alloc_size_class((1 << 20) + 1), size_t(5) << 18);          // 1.25 MiB
  EXPECT_EQ(rk::cuda_alloc_size_class((size_t(3) << 20) + 1), size_t(7) << 19);  // 3.5 MiB
  EXPECT_EQ(rk::cuda_alloc_size_class(size_t(1) << 34), size_t(1) << 34);
  EXPECT_EQ(rk::cuda_alloc_size_class((size_t(1) << 34) + 1), size_t(5) << 32);
  // Every class holds the request, wastes at most 25% above 1 MiB (512 B below), and the
  // classes are monotone.
  size_t previous = 0;
  for (size_t b = 1; b < (size_t(1) << 40); b = b * 9 / 8 + 1) {
    const size_t c = rk::cuda_alloc_size_class(b);
    ASSERT_GE(c, b);
    ASSERT_GE(c, previous);
    if (b > (size_t(1) << 20))
      ASSERT_LE(double(c), 1.25 * double(b)) << b;
    else
      ASSERT_LT(c - b, 512u) << b;
    ASSERT_EQ(c % 512, 0u) << b;
    previous = c;
  }
}

// Launch shapes are checked on the host before anything reaches the device.
TEST(CudaLaunch, BadShapesAreClearErrors) {
  rk::check_launch("op", {});
  rk::check_launch("op", {32, 1, 1});
  rk::check_launch("op", {512, 8, 0});
  auto message = [](const rk::CudaLaunch& l) -> std::string {
    try {
      rk::check_launch("my_op", l);
    } catch (const rlft::Error& e) {
      return e.what();
    }
    return "";
  };
  EXPECT_NE(message({48, 0, 0}).find("my_op: launch.block must be 0 or a power of two"),
            std::string::npos);
  EXPECT_NE(message({1024, 0, 0}).find("got 1024"), std::string::npos);
  EXPECT_NE(message({16, 0, 0}).find("launch.block"), std::string::npos);
  EXPECT_NE(message({0, 3, 0}).find("launch.unroll must be 0, 1, 2, 4 or 8, got 3"),
            std::string::npos);
  EXPECT_NE(message({0, 0, 2}).find("launch.vec must be 0 or 1, got 2"), std::string::npos);
  EXPECT_NE(message({0, 0, 0, -1}).find("launch.version must be >= 0, got -1"), std::string::npos);
  rk::check_launch("op", {0, 0, 0, 0, 2, 0, 1});
  EXPECT_NE(message({0, 0, 0, 0, 4}).find("launch.chunked must be 0, 1, 2 or 3, got 4"),
            std::string::npos);
  EXPECT_NE(message({0, 0, 0, 0, 0, -1}).find("launch.serial must be 0 or 1, got -1"),
            std::string::npos);
  EXPECT_NE(message({0, 0, 0, 0, 0, 0, 2}).find("launch.dependent must be 0 or 1, got 2"),
            std::string::npos);
  EXPECT_NE(message({0, 0, 0, 0, 0, 0, 0, 3}).find("launch.last_block must be 0 or 1, got 3"),
            std::string::npos);
  EXPECT_NE(message({0, 0, 0, 0, 0, 0, 0, 0, -1}).find("launch.prefetch must be 0 or 1, got -1"),
            std::string::npos);
}

// A launch spelled as text (RLFT_RATIO_CLIP_LAUNCH): every field by name, each bad item named.
TEST(CudaLaunch, ParsedFromTextAndFilledIntoTheFieldsACallerLeavesZero) {
  using Fields = std::array<int, 9>;
  auto fields = [](const rk::CudaLaunch& l) {
    return Fields{l.block,  l.unroll,    l.vec,        l.version, l.chunked,
                  l.serial, l.dependent, l.last_block, l.prefetch};
  };
  EXPECT_EQ(fields(rk::parse_launch("block=128,unroll=2,vec=1,version=3,chunked=2,serial=1,"
                                    "dependent=1,last_block=1,prefetch=1",
                                    "VAR")),
            (Fields{128, 2, 1, 3, 2, 1, 1, 1, 1}));
  EXPECT_EQ(fields(rk::parse_launch("dependent=1,block=64", "VAR")),
            (Fields{64, 0, 0, 0, 0, 0, 1, 0, 0}));
  EXPECT_EQ(fields(rk::parse_launch("prefetch=1,version=3", "VAR")),
            (Fields{0, 0, 0, 3, 0, 0, 0, 0, 1}));
  EXPECT_EQ(fields(rk::parse_launch("", "VAR")), Fields{});
  auto message = [](const char* text) -> std::string {
    try {
      rk::parse_launch(text, "VAR");
    } catch (const rlft::Error& e) {
      return e.what();
    }
    return "";
  };
  EXPECT_NE(message("version").find("VAR: 'version' is not field=value"), std::string::npos);
  EXPECT_NE(message("verison=3").find("VAR: unknown launch field 'verison'"), std::string::npos);
  EXPECT_NE(message("version=3,version=2").find("'version' is given twice"), std::string::npos);
  EXPECT_NE(message("block=2x").find("'block' needs an integer, got '2x'"), std::string::npos);
  EXPECT_NE(message("block=").find("'block' needs an integer, got ''"), std::string::npos);
  EXPECT_NE(message("chunked=7").find("VAR: launch.chunked must be 0, 1, 2 or 3, got 7"),
            std::string::npos);
  EXPECT_EQ(message("block=256,"), "");  // a trailing comma is allowed

  // The caller's non-zero fields win; its zeros take the defaults'.
  EXPECT_EQ(fields(rk::with_defaults({0, 4, 0, 2}, {256, 1, 1, 3, 3, 0, 1, 1, 1})),
            (Fields{256, 4, 1, 2, 3, 0, 1, 1, 1}));

  // Read from the environment at every call.
  const char* var = "RLFT_TEST_LAUNCH_FROM_ENV";
  ::unsetenv(var);
  EXPECT_EQ(rk::launch_from_env(var).version, 0);
  ::setenv(var, "version=3,chunked=3", 1);
  EXPECT_EQ(rk::launch_from_env(var).chunked, 3);
  ::setenv(var, "chunked=9", 1);
  try {
    rk::launch_from_env(var);
    ADD_FAILURE() << "a malformed variable must throw";
  } catch (const rlft::Error& e) {
    EXPECT_NE(std::string(e.what()).find("RLFT_TEST_LAUNCH_FROM_ENV: launch.chunked"),
              std::string::npos)
        << e.what();
  }
  ::unsetenv(var);
}

#ifndef RLFT_HAVE_CUDA

TEST(CudaKernels, NeedTheCudaBackend) {
  std::string reason;
  rk::cuda::device_count(&reason);
  GTEST_SKIP() << "no GPU: " << reason;
}

#else  // RLFT_HAVE_CUDA

#define RLFT_REQUIRE_GPU()                                                            \
  do {                                                                                \
    std::string reason_;                                                              \
    if (rk::cuda::device_count(&reason_) == 0) GTEST_SKIP() << "no GPU: " << reason_; \
  } while (0)

constexpr size_t ix(int64_t i) { return static_cast<size_t>(i); }
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kInf = std::numeric_limits<double>::infinity();

void cuda_ok(cudaError_t e, const char* what) {
  if (e != cudaSuccess) throw std::runtime_error(std::string(what) + ": " + cudaGetErrorString(e));
}
#define CUDA_OK(call) cuda_ok((call), #call)

// Device memory holding a copy of a host vector. `offset` elements are left unused before the
// data, so offset 1 gives a pointer that is not 16-byte aligned (cudaMalloc aligns to 256).
template <typename T>
class DeviceArray {
 public:
  DeviceArray() = default;
  DeviceArray(size_t n, size_t offset) : n_(n), offset_(offset) {
    if (n + offset > 0)
      CUDA_OK(cudaMalloc(reinterpret_cast<void**>(&base_), (n + offset) * sizeof(T)));
  }
  explicit DeviceArray(const std::vector<T>& host, size_t offset = 0)
      : DeviceArray(host.size(), offset) {
    upload(host);
  }
  ~DeviceArray() {
    if (base_) cudaFree(base_);
  }
  DeviceArray(const DeviceArray&) = delete;
  DeviceArray& operator=(const DeviceArray&) = delete;
  T* get() const { return n_ > 0 ? base_ + offset_ : nullptr; }
  void upload(const std::vector<T>& host) {
    if (host.size() != n_) throw std::runtime_error("DeviceArray::upload: size mismatch");
    if (n_ > 0) CUDA_OK(cudaMemcpy(get(), host.data(), n_ * sizeof(T), cudaMemcpyHostToDevice));
  }
  std::vector<T> download() const {
    std::vector<T> host(n_);
    if (n_ > 0) CUDA_OK(cudaMemcpy(host.data(), get(), n_ * sizeof(T), cudaMemcpyDeviceToHost));
    return host;
  }

 private:
  T* base_ = nullptr;
  size_t n_ = 0, offset_ = 0;
};

template <typename To, typename From>
std::vector<To> cast(const std::vector<From>& v) {
  return std::vector<To>(v.begin(), v.end());
}

// |a − b| ≤ tol·max(1, |b|); NaN matches NaN, equal infinities match.
::testing::AssertionResult close(double a, double b, double tol) {
  if (std::isnan(a) && std::isnan(b)) return ::testing::AssertionSuccess();
  if (a == b) return ::testing::AssertionSuccess();
  if (std::abs(a - b) <= tol * std::max(1.0, std::abs(b))) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure()
         << a << " vs CPU " << b << " (diff " << a - b << ", tol " << tol << "·max(1,|ref|))";
}

template <typename Real>
const char* real_name() {
  return sizeof(Real) == 4 ? "float" : "double";
}

// =============================================================================================
// softmax_logprob
// =============================================================================================

struct SoftmaxCase {
  int64_t N, V;
  int64_t pad = 0;  // ld = V + pad; the padding holds NaN, so reading past V shows
  double tau = 1.0;
  int64_t x_offset = 0;  // logits start this many elements into their allocation
  int64_t d_pad = 2;     // dlogits ld = V + d_pad; the padding must stay untouched
  int64_t d_offset = 0;  // dlogits start offset (≠ x_offset: rows aligned differently)
  bool neg_inf = false;  // a few −inf logits (masked vocabulary), one first in its row
};

std::string describe(const SoftmaxCase& c) {
  return rlft::str("N=", c.N, " V=", c.V, " pad=", c.pad, " tau=", c.tau, " x_offset=", c.x_offset,
                   " d_pad=", c.d_pad, " d_offset=", c.d_offset, c.neg_inf ? " -inf" : "");
}

struct SoftmaxData {
  std::vector<double> logits;  // [N, ld]
  std::vector<int64_t> targets;
  std::vector<double> g_logp, g_entropy;
};

constexpr int64_t kIgnore = -100;

// N(0, 2²) logits with a +30 spike in two rows of three (p ≈ 1 there, so onehot − p cancels
// and the entropy is tiny; the online max changes late in the row when the spike sits at the
// end), the target on the spike in every other spiked row (logp ≈ 0) and elsewhere in the
// others (logp ≈ −30); every fourth row ignored and full of NaN (must not be read); one row in
// five with zero upstream gradients (the backward's fill path).
SoftmaxData make_softmax(const SoftmaxCase& c, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> normal(0.0, 2.0);
  std::uniform_int_distribution<int64_t> tok(0, c.V - 1);
  std::uniform_real_distribution<double> u(-1.0, 1.0);
  const int64_t ld = c.V + c.pad;
  SoftmaxData D;
  D.logits.assign(ix(c.N * ld), kNaN);
  for (int64_t n = 0; n < c.N; ++n) {
    double* row = D.logits.data() + n * ld;
    for (int64_t v = 0; v < c.V; ++v) row[v] = normal(rng);
    int64_t t = tok(rng);
    if (n % 3 != 2) {
      const int64_t spike = n % 2 == 0 ? c.V - 1 : (n * 7919 + 3) % c.V;
      row[spike] += 30.0;
      if (n % 6 == 0) t = spike;
    }
    if (c.neg_inf && c.V > 2 && n % 3 == 1) {
      row[0] = -kInf;  // first element: the running max starts at −inf
      row[c.V / 2] = -kInf;
      if (t == 0 || t == c.V / 2) t = 1;
    }
    if (n % 4 == 1) {
      t = kIgnore;
      for (int64_t v = 0; v < c.V; ++v) row[v] = kNaN;
    }
    D.targets.push_back(t);
    const bool zero_grad = n % 5 == 3;
    D.g_logp.push_back(zero_grad ? 0.0 : u(rng));
    D.g_entropy.push_back(zero_grad ? 0.0 : u(rng));
  }
  return D;
}

template <typename Real>
double softmax_tol() {
  return sizeof(Real) == 4 ? 5e-5 : 1e-10;
}

// Forward and backward of `version` on the GPU against the CPU reference in double on the
// same rounded inputs; then the accumulate mode.
template <typename Real>
void expect_softmax_parity(const SoftmaxCase& c, int version, uint64_t seed,
                           rk::CudaLaunch launch = {}) {
  SCOPED_TRACE(describe(c) + " version=" + std::to_string(version) + " " + real_name<Real>() +
               rlft::str(" block=", launch.block, " unroll=", launch.unroll));
  const SoftmaxData D = make_softmax(c, seed);
  const int64_t N = c.N, V = c.V, ld = V + c.pad, ld_d = V + c.d_pad;
  const std::vector<Real> x = cast<Real>(D.logits);
  const std::vector<double> xd = cast<double>(x);
  const double tol = softmax_tol<Real>();

  std::vector<double> logp(ix(N)), H(ix(N)), lse(ix(N)), dref(ix(N * V));
  rk::softmax_logprob_forward_cpu<double>(xd.data(), N, V, ld, D.targets.data(), kIgnore, c.tau,
                                          logp.data(), H.data(), lse.data());
  const std::vector<double> gl = cast<double>(cast<Real>(D.g_logp));
  const std::vector<double> gh = cast<double>(cast<Real>(D.g_entropy));
  rk::softmax_logprob_backward_cpu<double>(xd.data(), N, V, ld, D.targets.data(), kIgnore, c.tau,
                                           lse.data(), H.data(), gl.data(), gh.data(), dref.data(),
                                           V);

  DeviceArray<Real> d_x(x, ix(c.x_offset));
  DeviceArray<int64_t> d_t(D.targets);
  const std::vector<Real> sentinel(ix(N), Real(-7));
  DeviceArray<Real> d_logp(sentinel), d_H(sentinel), d_lse(sentinel);
  rk::softmax_logprob_forward_cuda<Real>(d_x.get(), N, V, ld, d_t.get(), kIgnore, Real(c.tau),
                                         d_logp.get(), d_H.get(), d_lse.get(), nullptr, version,
                                         true, launch);
  const std::vector<Real> g_logp = d_logp.download(), g_H = d_H.download(),
                          g_lse = d_lse.download();
  for (int64_t n = 0; n < N; ++n) {
    SCOPED_TRACE("row " + std::to_string(n));
    EXPECT_TRUE(close(g_logp[ix(n)], logp[ix(n)], tol)) << "logp";
    EXPECT_TRUE(close(g_H[ix(n)], H[ix(n)], tol)) << "entropy";
    EXPECT_TRUE(close(g_lse[ix(n)], lse[ix(n)], tol)) << "lse";
  }

  DeviceArray<Real> d_gl(cast<Real>(gl)), d_gh(cast<Real>(gh));
  DeviceArray<Real> d_d(std::vector<Real>(ix(N * ld_d), Real(123)), ix(c.d_offset));
  rk::softmax_logprob_backward_cuda<Real>(d_x.get(), N, V, ld, d_t.get(), kIgnore, Real(c.tau),
                                          d_lse.get(), d_H.get(), d_gl.get(), d_gh.get(), d_d.get(),
                                          ld_d, false, nullptr, version, true, launch);
  const std::vector<Real> g_d = d_d.download();
  double gmax = 0;
  for (double g : dref) gmax = std::max(gmax, std::abs(g));
  for (int64_t n = 0; n < N; ++n) {
    for (int64_t v = 0; v < V; ++v) {
      const double a = g_d[ix(n * ld_d + v)], b = dref[ix(n * V + v)];
      ASSERT_LE(std::abs(a - b), tol * std::max(1.0, gmax))
          << "dlogits row " << n << " v=" << v << ": " << a << " vs CPU " << b;
    }
    for (int64_t v = V; v < ld_d; ++v)
      ASSERT_EQ(g_d[ix(n * ld_d + v)], Real(123)) << "wrote past V in row " << n;
  }

  // accumulate: the same gradient added to what is there, so exactly twice the first result
  rk::softmax_logprob_backward_cuda<Real>(d_x.get(), N, V, ld, d_t.get(), kIgnore, Real(c.tau),
                                          d_lse.get(), d_H.get(), d_gl.get(), d_gh.get(), d_d.get(),
                                          ld_d, true, nullptr, version, true, launch);
  const std::vector<Real> g_d2 = d_d.download();
  for (size_t k = 0; k < g_d.size(); ++k) {
    const bool padding = int64_t(k) % ld_d >= V;
    ASSERT_EQ(g_d2[k], padding ? Real(123) : Real(2) * g_d[k]) << "accumulate, element " << k;
  }
}

std::vector<SoftmaxCase> softmax_cases() {
  std::vector<SoftmaxCase> cs;
  // V = 1 (p = 1, everything 0); tiny V below one float4; V not a multiple of 4 with padded
  // rows (odd ld: every row starts at a different alignment); misaligned base pointers;
  // logits and dlogits aligned differently (the backward's scalar path); temperature.
  cs.push_back({9, 1});
  cs.push_back({7, 2, 1});
  cs.push_back({7, 3, 0, 0.7, 1});
  cs.push_back({6, 5, 3, 1.0, 0, 1, 1});
  cs.push_back({8, 31, 1, 1.0, 1, 3, 0, true});
  cs.push_back({6, 64, 0, 1.0, 0, 0, 0, true});
  cs.push_back({9, 100, 3, 0.7, 2, 2, 1});
  cs.push_back({5, 1000, 1, 1.0, 1, 2, 3, true});
  cs.push_back({6, 4097, 0, 1.3, 1, 1, 0});
  // GPT-2's vocabulary (odd), and 256k: 512 threads, 128 float4 per thread per row.
  cs.push_back({5, 50257, 0, 1.0, 0, 3, 2, true});
  cs.push_back({3, 262144, 0, 1.0, 0, 0, 0});
  return cs;
}

TEST(SoftmaxLogprobCuda, Version1MatchesCpu) {
  RLFT_REQUIRE_GPU();
  uint64_t seed = 100;
  for (const SoftmaxCase& c : softmax_cases()) {
    expect_softmax_parity<double>(c, 1, ++seed);
    expect_softmax_parity<float>(c, 1, ++seed);
  }
}

TEST(SoftmaxLogprobCuda, Version2MatchesCpu) {
  RLFT_REQUIRE_GPU();
  uint64_t seed = 200;
  for (const SoftmaxCase& c : softmax_cases()) {
    expect_softmax_parity<double>(c, 2, ++seed);
    expect_softmax_parity<float>(c, 2, ++seed);
  }
}

// Version 2 at every launch shape (threads per row 32…512, 1…8 vector loads in flight):
// V around the boundaries of the unrolled loop and its remainder, misaligned rows, −inf.
TEST(SoftmaxLogprobCuda, Version2EveryLaunchShapeMatchesCpu) {
  RLFT_REQUIRE_GPU();
  const std::vector<SoftmaxCase> cases = {{7, 3, 0, 0.7, 1},
                                          {5, 1000, 1, 1.0, 1, 2, 3, true},
                                          {6, 4097, 0, 1.3, 1, 1, 0},
                                          {4, 32000, 0, 1.0, 0, 0, 0, true},
                                          {3, 50257, 0, 1.0, 0, 3, 2, true}};
  uint64_t seed = 400;
  for (int block : {32, 128, 512})
    for (int unroll : {1, 2, 4, 8})
      for (const SoftmaxCase& c : cases) {
        expect_softmax_parity<float>(c, 2, ++seed, {block, unroll, 0});
        if (c.V <= 4097) expect_softmax_parity<double>(c, 2, ++seed, {block, unroll, 0});
      }
}

TEST(SoftmaxLogprobCuda, DefaultVersionMatchesCpu) {
  RLFT_REQUIRE_GPU();
  expect_softmax_parity<float>({17, 32000, 0, 1.0, 0, 0, 0, true}, 0, 300);
  expect_softmax_parity<double>({4, 777, 1, 0.9, 1, 1, 0}, 0, 301);
}

// Null optional outputs and gradients: entropy/lse not written, a null g_logp or g_entropy is
// zero (compared with the CPU given the same nulls).
TEST(SoftmaxLogprobCuda, NullOptionalArguments) {
  RLFT_REQUIRE_GPU();
  const SoftmaxCase c{6, 300};
  const SoftmaxData D = make_softmax(c, 7);
  const int64_t N = c.N, V = c.V;
  DeviceArray<double> d_x(D.logits);
  DeviceArray<int64_t> d_t(D.targets);
  DeviceArray<double> d_logp(std::vector<double>(ix(N), -7.0));
  rk::softmax_logprob_forward_cuda<double>(d_x.get(), N, V, V, d_t.get(), kIgnore, 1.0,
                                           d_logp.get(), nullptr, nullptr);
  std::vector<double> logp(ix(N)), H(ix(N)), lse(ix(N));
  rk::softmax_logprob_forward_cpu<double>(D.logits.data(), N, V, V, D.targets.data(), kIgnore, 1.0,
                                          logp.data(), H.data(), lse.data());
  const std::vector<double> g = d_logp.download();
  for (int64_t n = 0; n < N; ++n) EXPECT_TRUE(close(g[ix(n)], logp[ix(n)], 1e-10));
  DeviceArray<double> d_lse(lse), d_H(H), d_gl(D.g_logp), d_gh(D.g_entropy);
  for (int which = 0; which < 2; ++which) {
    SCOPED_TRACE(which == 0 ? "g_entropy null" : "g_logp null");
    std::vector<double> ref(ix(N * V));
    rk::softmax_logprob_backward_cpu<double>(
        D.logits.data(), N, V, V, D.targets.data(), kIgnore, 1.0, lse.data(), H.data(),
        which == 1 ? nullptr : D.g_logp.data(), which == 0 ? nullptr : D.g_entropy.data(),
        ref.data(), V);
    DeviceArray<double> d_d(std::vector<double>(ix(N * V), 5.0));
    rk::softmax_logprob_backward_cuda<double>(
        d_x.get(), N, V, V, d_t.get(), kIgnore, 1.0, d_lse.get(), which == 0 ? nullptr : d_H.get(),
        which == 1 ? nullptr : d_gl.get(), which == 0 ? nullptr : d_gh.get(), d_d.get(), V);
    const std::vector<double> got = d_d.download();
    for (size_t k = 0; k < got.size(); ++k) ASSERT_TRUE(close(got[k], ref[k], 1e-10)) << k;
  }
}

// The CPU version's errors: a target outside [0, V) that is not ignore_index, a row of −inf,
// a row with a NaN. With check = false nothing throws and only the bad row is NaN.
TEST(SoftmaxLogprobCuda, BadInputs) {
  RLFT_REQUIRE_GPU();
  const int64_t N = 4, V = 10;
  std::vector<float> x(ix(N * V), 0.5f);
  std::vector<int64_t> t = {1, 2, 3, 4};
  for (int version : {1, 2}) {
    SCOPED_TRACE("version " + std::to_string(version));
    DeviceArray<float> d_out(std::vector<float>(ix(N), -7.f)), d_lse(ix(N), 0), d_H(ix(N), 0);
    DeviceArray<float> d_d(ix(N * V), 0);
    {  // target out of range
      std::vector<int64_t> bad = t;
      bad[2] = V;
      DeviceArray<float> d_x(x);
      DeviceArray<int64_t> d_t(bad);
      EXPECT_THROW(rk::softmax_logprob_forward_cuda<float>(d_x.get(), N, V, V, d_t.get(), kIgnore,
                                                           1.f, d_out.get(), d_H.get(), d_lse.get(),
                                                           nullptr, version),
                   rlft::Error);
      EXPECT_THROW(rk::softmax_logprob_backward_cuda<float>(
                       d_x.get(), N, V, V, d_t.get(), kIgnore, 1.f, d_lse.get(), nullptr,
                       d_out.get(), nullptr, d_d.get(), V, false, nullptr, version),
                   rlft::Error);
      rk::softmax_logprob_forward_cuda<float>(d_x.get(), N, V, V, d_t.get(), kIgnore, 1.f,
                                              d_out.get(), d_H.get(), d_lse.get(), nullptr, version,
                                              false);
      const std::vector<float> out = d_out.download();
      EXPECT_TRUE(std::isnan(out[2]));
      EXPECT_NEAR(out[0], -std::log(10.0), 1e-6);
    }
    for (double poison : {-kInf, kNaN}) {  // a row with no finite logit, a row with a NaN
      std::vector<float> xb = x;
      if (std::isnan(poison)) {
        xb[ix(1 * V + 7)] = float(poison);
      } else {
        for (int64_t v = 0; v < V; ++v) xb[ix(1 * V + v)] = float(poison);
      }
      DeviceArray<float> d_x(xb);
      DeviceArray<int64_t> d_t(t);
      try {
        rk::softmax_logprob_forward_cuda<float>(d_x.get(), N, V, V, d_t.get(), kIgnore, 1.f,
                                                d_out.get(), d_H.get(), d_lse.get(), nullptr,
                                                version);
        ADD_FAILURE() << "no error for poison " << poison;
      } catch (const rlft::Error& e) {
        EXPECT_NE(std::string(e.what()).find("row 1"), std::string::npos) << e.what();
      }
    }
  }
  // Host-side argument checks, before any launch.
  EXPECT_THROW(rk::softmax_logprob_forward_cuda<float>(nullptr, 1, 0, 0, nullptr, kIgnore, 1.f,
                                                       nullptr, nullptr, nullptr),
               rlft::Error);
  EXPECT_THROW(rk::softmax_logprob_forward_cuda<float>(nullptr, 1, 4, 4, nullptr, kIgnore, 0.f,
                                                       nullptr, nullptr, nullptr),
               rlft::Error);
  // A launch field the kernels do not use is named (launch.vec: the scalar kernel is version 1).
  try {
    rk::softmax_logprob_forward_cuda<float>(nullptr, 0, 4, 4, nullptr, kIgnore, 1.f, nullptr,
                                            nullptr, nullptr, nullptr, 2, true, {0, 0, 1});
    ADD_FAILURE() << "launch.vec = 1 accepted";
  } catch (const rlft::Error& e) {
    EXPECT_NE(std::string(e.what()).find("launch.vec is not used here"), std::string::npos)
        << e.what();
  }
  // N = 0 is a no-op that touches nothing.
  rk::softmax_logprob_forward_cuda<float>(nullptr, 0, 4, 4, nullptr, kIgnore, 1.f, nullptr, nullptr,
                                          nullptr);
  rk::softmax_logprob_backward_cuda<float>(nullptr, 0, 4, 4, nullptr, kIgnore, 1.f, nullptr,
                                           nullptr, nullptr, nullptr, nullptr, 4);
}

// The unfused baseline of the benchmark computes the same thing (so its timings compare like
// with like): forward outputs and the gradient, float and double.
template <typename Real>
void expect_unfused_parity(uint64_t seed) {
  SCOPED_TRACE(real_name<Real>());
  const SoftmaxCase c{7, 1001};
  const SoftmaxData D = make_softmax(c, seed);
  const int64_t N = c.N, V = c.V;
  const std::vector<Real> x = cast<Real>(D.logits);
  const std::vector<double> xd = cast<double>(x);
  std::vector<double> logp(ix(N)), H(ix(N)), lse(ix(N)), dref(ix(N * V));
  rk::softmax_logprob_forward_cpu<double>(xd.data(), N, V, V, D.targets.data(), kIgnore, 1.0,
                                          logp.data(), H.data(), lse.data());
  const std::vector<double> gl = cast<double>(cast<Real>(D.g_logp));
  const std::vector<double> gh = cast<double>(cast<Real>(D.g_entropy));
  rk::softmax_logprob_backward_cpu<double>(xd.data(), N, V, V, D.targets.data(), kIgnore, 1.0,
                                           lse.data(), H.data(), gl.data(), gh.data(), dref.data(),
                                           V);
  DeviceArray<Real> d_x(x), d_ls(ix(N * V), 0), d_logp(ix(N), 0), d_H(ix(N), 0), d_lse(ix(N), 0);
  DeviceArray<int64_t> d_t(D.targets);
  rk::softmax_logprob_forward_unfused_cuda<Real>(d_x.get(), N, V, V, d_t.get(), kIgnore, Real(1),
                                                 d_logp.get(), d_H.get(), d_lse.get(), d_ls.get());
  const double tol = softmax_tol<Real>();
  const std::vector<Real> a = d_logp.download(), b = d_H.download(), l = d_lse.download();
  for (int64_t n = 0; n < N; ++n) {
    EXPECT_TRUE(close(a[ix(n)], logp[ix(n)], tol)) << "logp row " << n;
    EXPECT_TRUE(close(b[ix(n)], H[ix(n)], tol)) << "entropy row " << n;
    EXPECT_TRUE(close(l[ix(n)], lse[ix(n)], tol)) << "lse row " << n;
  }
  DeviceArray<Real> d_gl(cast<Real>(gl)), d_gh(cast<Real>(gh)), d_d(ix(N * V), 0);
  rk::softmax_logprob_backward_unfused_cuda<Real>(d_ls.get(), N, V, d_t.get(), kIgnore, Real(1),
                                                  d_H.get(), d_gl.get(), d_gh.get(), d_d.get());
  const std::vector<Real> d = d_d.download();
  double gmax = 0;
  for (double g : dref) gmax = std::max(gmax, std::abs(g));
  for (size_t k = 0; k < d.size(); ++k)
    ASSERT_LE(std::abs(double(d[k]) - dref[k]), tol * std::max(1.0, gmax)) << "dlogits " << k;
}

TEST(SoftmaxLogprobCuda, UnfusedBaselineMatchesCpu) {
  RLFT_REQUIRE_GPU();
  expect_unfused_parity<double>(400);
  expect_unfused_parity<float>(401);
}

// =============================================================================================
// ratio_clip
// =============================================================================================

// One sweep point on one shape.
struct ClipCase : rlft::test::RatioClipMode {
  int64_t B = 0, T = 0;
};

// The default mode (token level, token_mean, a mask) at B×T.
ClipCase clip_case(int64_t B, int64_t T) {
  ClipCase c;
  c.B = B;
  c.T = T;
  return c;
}

std::string describe(const ClipCase& c) {
  return rlft::str("B=", c.B, " T=", c.T, " level=", rk::ratio_level_name(c.level),
                   " agg=", rk::aggregation_name(c.agg), c.adv_per_seq ? " adv/seq" : "",
                   c.per_token_bounds ? " per-token bounds" : "", c.with_mask ? " mask" : "", " dual=", c.dual,
                   " normalizer=", c.normalizer);
}

struct ClipData {
  std::vector<double> logp, old_logp, adv, mask, lower, upper;
};

// Log-ratios in five regimes relative to each token's bounds — inside (0.2..0.8 of the way
// from lo to hi), below lo, above hi, beyond −20 and beyond +20 (the clamp) — with both signs
// of A, |A| ≥ 0.05 (no regime collapses to A = 0). In the sequence levels one regime per row
// with ±0.02 scatter, so the row mean lands in it. Masks: 75% ones, an all-masked row, a
// one-token row; masked tokens hold NaN logp (must be ignored). Per-token bounds are DCPO's,
// from q = exp(old_logp). No value sits exactly on a bound (probability 0), so the CPU's and
// CUDA's exp, which may differ by an ulp, take the same branches.
ClipData make_clip(const ClipCase& c, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> u01(0.0, 1.0);
  auto U = [&](double a, double b) { return a + (b - a) * u01(rng); };
  const int64_t B = c.B, T = c.T, BT = B * T;
  const double eps_low = 0.2, eps_high = 0.2;
  ClipData D;
  D.old_logp.resize(ix(BT));
  for (double& x : D.old_logp) x = -U(0.01, 6.0);
  if (c.per_token_bounds) {
    D.lower.resize(ix(BT));
    D.upper.resize(ix(BT));
    for (int64_t k = 0; k < BT; ++k) {
      const double q = std::exp(D.old_logp[ix(k)]);
      D.lower[ix(k)] = std::min(0.5 + 0.5 * std::sqrt(std::max(1.0 - 4.0 * 0.16 / q, 0.0)), 10.0);
      D.upper[ix(k)] = std::min(0.5 + 0.5 * std::sqrt(1.0 + 4.0 * 0.2 / q), 10.0);
    }
  }
  D.adv.resize(ix(c.adv_per_seq ? B : BT));
  for (double& a : D.adv) a = (u01(rng) < 0.5 ? -1.0 : 1.0) * U(0.05, 2.0);
  auto draw = [&](int regime, double lo, double hi) {
    switch (regime) {
      case 0:
        return std::log(lo + (hi - lo) * U(0.2, 0.8));
      case 1:
        return std::log(lo * U(0.3, 0.9));
      case 2:
        return std::log(hi * U(1.1, 3.0));
      case 3:
        return -U(20.5, 25.0);
      default:
        return U(20.5, 25.0);
    }
  };
  std::uniform_int_distribution<int> regime(0, 4);
  D.logp.resize(ix(BT));
  for (int64_t i = 0; i < B; ++i) {
    const int row_regime = regime(rng);
    double row_x = 0.0;
    for (int64_t t = 0; t < T; ++t) {
      const int64_t k = i * T + t;
      const double lo = c.per_token_bounds ? D.lower[ix(k)] : 1.0 - eps_low;
      const double hi = c.per_token_bounds ? D.upper[ix(k)] : 1.0 + eps_high;
      double x;
      if (c.level == rk::RatioLevel::token) {
        x = draw(regime(rng), lo, hi);
      } else {
        if (t == 0) row_x = draw(row_regime, 1.0 - eps_low, 1.0 + eps_high);
        x = row_x + U(-0.02, 0.02);
      }
      D.logp[ix(k)] = D.old_logp[ix(k)] + x;
    }
  }
  if (c.with_mask) {
    D.mask.resize(ix(BT));
    for (double& w : D.mask) w = u01(rng) < 0.75 ? 1.0 : 0.0;
    if (B > 1)
      for (int64_t t = 0; t < T; ++t) D.mask[ix(T + t)] = 0.0;
    if (B > 2)
      for (int64_t t = 0; t < T; ++t) D.mask[ix(2 * T + t)] = t == T / 2 ? 1.0 : 0.0;
    for (int64_t k = 0; k < BT; ++k)
      if (D.mask[ix(k)] == 0.0) D.logp[ix(k)] = kNaN;
  }
  return D;
}

// The same problem as host arrays (for the CPU) and device arrays (for the GPU).
template <typename Real>
struct ClipBuffers {
  std::vector<Real> logp, old_logp, adv, mask, lower, upper;
  DeviceArray<Real> d_logp, d_old, d_adv, d_mask, d_lower, d_upper;
  rk::RatioClipArgs<Real> host, dev;
  ClipBuffers(const ClipCase& c, const ClipData& D)
      : logp(cast<Real>(D.logp)),
        old_logp(cast<Real>(D.old_logp)),
        adv(cast<Real>(D.adv)),
        mask(cast<Real>(D.mask)),
        lower(cast<Real>(D.lower)),
        upper(cast<Real>(D.upper)),
        d_logp(logp),
        d_old(old_logp),
        d_adv(adv),
        d_mask(mask),
        d_lower(lower),
        d_upper(upper) {
    host.B = dev.B = c.B;
    host.T = dev.T = c.T;
    host.advantages_per_sequence = dev.advantages_per_sequence = c.adv_per_seq;
    host.dual_clip = dev.dual_clip = c.dual;
    host.level = dev.level = c.level;
    host.aggregation = dev.aggregation = c.agg;
    host.normalizer = dev.normalizer = c.normalizer;
    auto hp = [](const std::vector<Real>& v) { return v.empty() ? nullptr : v.data(); };
    host.logp = hp(logp);
    host.old_logp = hp(old_logp);
    host.advantages = hp(adv);
    host.mask = hp(mask);
    host.lower = hp(lower);
    host.upper = hp(upper);
    dev.logp = d_logp.get();
    dev.old_logp = d_old.get();
    dev.advantages = d_adv.get();
    dev.mask = d_mask.get();
    dev.lower = d_lower.get();
    dev.upper = d_upper.get();
  }
};

std::string describe(const rk::CudaLaunch& l) {
  return rlft::str("launch{block=", l.block, " unroll=", l.unroll, " vec=", l.vec,
                   " version=", l.version, " chunked=", l.chunked, " serial=", l.serial,
                   " dependent=", l.dependent, " last_block=", l.last_block,
                   " prefetch=", l.prefetch, "}");
}

template <typename Real>
void expect_clip_parity(const ClipCase& c, uint64_t seed, rk::CudaLaunch launch = {}) {
  SCOPED_TRACE(describe(c) + " " + real_name<Real>() + " " + describe(launch));
  const ClipData D = make_clip(c, seed);
  ClipBuffers<Real> buf(c, D);
  // The reference: the CPU's version 1, the scalar loop in double with libm's exp.
  const rk::RatioClipStats ref = rk::ratio_clip_forward_cpu<Real>(buf.host, 1);
  const rk::RatioClipStats got = rk::ratio_clip_forward_cuda<Real>(buf.dev, nullptr, launch);
  // Version 2 (float data, scalar bounds) computes e^x in float: the loss, k3 and the
  // gradients carry float's relative error (expf: ≤ 2 ulp); the clip decisions, the counts and
  // k1 are the CPU's (kernels/ratio_clip_math.h).
  // Version 3 (float data, scalar bounds, token level, 16-byte groups) computes the whole
  // token in float and sums a thread's tokens in float: the loss, k1 and k3 carry float's
  // relative error (the test data keep every log-ratio ≥ 10% away from a bound, so the
  // decisions and the counts are still the CPU's); its backward is version 2's.
  // The flat layout (token_mean, per-token advantages) reads the batch as one row of B·T
  // tokens: 16-byte groups whenever B·T is a multiple of 4.
  // (The bulk layout, chunked = 3, runs flat's arithmetic where it does not apply.)
  const bool flat = (launch.chunked == 2 || launch.chunked == 3) &&
                    c.level == rk::RatioLevel::token && c.agg == rk::Aggregation::token_mean &&
                    !c.adv_per_seq;
  const bool v2 = launch.version >= 2 && sizeof(Real) == 4 && !c.per_token_bounds;
  const bool v3 = v2 && launch.version == 3 && c.level == rk::RatioLevel::token &&
                  (flat ? c.B * c.T : c.T) % 4 == 0 && launch.vec == 0;
  const double vtol = v3 ? 1e-5 : v2 ? 1e-6 : 1e-10;
  EXPECT_TRUE(close(got.loss, ref.loss, vtol)) << "loss";
  EXPECT_TRUE(close(got.clip_frac_low, ref.clip_frac_low, 1e-14)) << "clip_frac_low";
  EXPECT_TRUE(close(got.clip_frac_high, ref.clip_frac_high, 1e-14)) << "clip_frac_high";
  EXPECT_TRUE(close(got.dual_clip_frac, ref.dual_clip_frac, 1e-14)) << "dual_clip_frac";
  EXPECT_TRUE(close(got.approx_kl_k1, ref.approx_kl_k1, v3 ? 1e-5 : 1e-10)) << "k1";
  EXPECT_TRUE(close(got.approx_kl_k3, ref.approx_kl_k3, vtol)) << "k3";
  EXPECT_EQ(got.tokens, ref.tokens);

  const double g_loss = 0.75;
  const int64_t BT = c.B * c.T;
  std::vector<Real> g_ref(ix(BT), Real(-9));
  rk::ratio_clip_backward_cpu<Real>(buf.host, g_loss, g_ref.data(), false, 1);
  DeviceArray<Real> d_g(std::vector<Real>(ix(BT), Real(-9)));
  rk::ratio_clip_backward_cuda<Real>(buf.dev, g_loss, d_g.get(), false, nullptr, launch);
  const std::vector<Real> g = d_g.download();
  const double gtol = v2 ? 1e-6 : sizeof(Real) == 4 ? 3e-7 : 1e-10;
  for (int64_t k = 0; k < BT; ++k)
    ASSERT_TRUE(close(double(g[ix(k)]), double(g_ref[ix(k)]), gtol)) << "g_logp[" << k << "]";
  // The upstream gradient read on the device (as the engine passes it): 1.5 · 0.5 = 0.75
  // exactly, so the same bits.
  DeviceArray<Real> d_half(std::vector<Real>{Real(0.5)});
  DeviceArray<Real> d_g2(std::vector<Real>(ix(BT), Real(-9)));
  rk::ratio_clip_backward_cuda<Real>(buf.dev, 1.5, d_g2.get(), false, nullptr, launch,
                                     d_half.get());
  EXPECT_EQ(d_g2.download(), g) << "g_loss read on the device";
}

std::vector<ClipCase> every_clip_mode(int64_t B, int64_t T) {
  std::vector<ClipCase> out;
  for (const rlft::test::RatioClipMode& m : rlft::test::every_ratio_clip_mode()) {
    ClipCase c;
    static_cast<rlft::test::RatioClipMode&>(c) = m;
    c.B = B;
    c.T = T;
    out.push_back(c);
  }
  return out;
}

// Every level × aggregation × option on small odd shapes (1×1: one token; 3×17: the
// all-masked and one-token rows; 5×300: several tokens per thread).
TEST(RatioClipCuda, EveryModeMatchesCpu) {
  RLFT_REQUIRE_GPU();
  uint64_t seed = 1000;
  for (auto [B, T] : {std::pair<int64_t, int64_t>{1, 1}, {3, 17}, {5, 300}})
    for (const ClipCase& c : every_clip_mode(B, T)) {
      expect_clip_parity<double>(c, ++seed);
      expect_clip_parity<float>(c, ++seed);
    }
}

// Longer rows (T = 4099: 512 threads, the unrolled loop's tail) and a realistic batch.
TEST(RatioClipCuda, LargerShapesMatchCpu) {
  RLFT_REQUIRE_GPU();
  uint64_t seed = 5000;
  for (auto [B, T] : {std::pair<int64_t, int64_t>{3, 4099}, {64, 1024}})
    for (const ClipCase& c : every_clip_mode(B, T)) {
      if (c.normalizer > 0 || c.dual > 0) continue;  // covered above; keep the test short
      expect_clip_parity<float>(c, ++seed);
    }
}

// Every launch shape (threads per row, token groups in flight, 16-byte vector loads or
// scalar ones) gives the CPU's results: T divisible by the vector width (the vector path) and
// not (the scalar fallback), in float and double, on the modes whose loops differ (token level
// with the row-count pre-pass, both sequence levels, per-token bounds, per-sequence A).
TEST(RatioClipCuda, EveryLaunchShapeMatchesCpu) {
  RLFT_REQUIRE_GPU();
  // {block, unroll, vec, version, chunked, serial}; the chunked ones apply to the token level
  // only
  const std::vector<rk::CudaLaunch> launches = {
      {32, 1, 0},       {64, 4, 0},      {128, 2, 0},       {512, 1, 0},
      {256, 4, 1},      {64, 1, 1},      {512, 2, 1},       {64, 1, 0, 0, 1},
      {32, 2, 1, 0, 1}, {256, 1, 0, 1, 1}, {128, 0, 0, 0, 0, 1}, {64, 2, 1, 1, 1, 1}};
  std::vector<ClipCase> cases;
  for (const ClipCase& c : every_clip_mode(5, 1024)) {
    const bool per_token_bounds = c.per_token_bounds;
    if (c.normalizer > 0 || c.dual > 0) continue;
    if (c.level != rk::RatioLevel::token && per_token_bounds) continue;
    cases.push_back(c);
  }
  uint64_t seed = 7000;
  for (const rk::CudaLaunch& l : launches) {
    for (size_t k = 0; k < cases.size(); k += 3) {  // a third of the modes per launch, rotating
      ClipCase c = cases[(k + size_t(seed)) % cases.size()];
      expect_clip_parity<float>(c, ++seed, l);
      c.T = 1027;  // not a multiple of 4 (or 2): the scalar path whatever vec says
      expect_clip_parity<float>(c, ++seed, l);
      c.T = 66;  // a multiple of 2, not of 4: double's vector path, float's scalar one
      expect_clip_parity<double>(c, ++seed, l);
    }
  }
}

// Version 2 (float per token, clip decisions on the log-ratio) and the chunked layout (token-
// level rows in chunks of a block each, either version) against the CPU in every mode, at odd
// and vector-friendly shapes and several launch shapes (1 to 32 chunks per row, the last one
// partial); double data and per-token bounds run version 1's arithmetic under a version-2
// request (the tolerances above follow).
TEST(RatioClipCuda, Version2AndChunksEveryModeMatchCpu) {
  RLFT_REQUIRE_GPU();
  uint64_t seed = 9000;
  // {block, unroll, vec, version, chunked, serial, dependent, last_block, prefetch}; the last
  // six: version 3 with each thread's next group loaded ahead
  const std::vector<rk::CudaLaunch> launches = {
      {0, 0, 0, 2, 0},  {32, 1, 1, 2, 0},     {128, 2, 0, 2, 0},       {256, 4, 0, 2, 0},
      {0, 0, 0, 2, 1},  {32, 1, 0, 2, 1},     {64, 1, 1, 2, 1},        {128, 2, 0, 2, 1},
      {32, 4, 1, 1, 1}, {0, 0, 0, 1, 1},      {64, 0, 0, 2, 0, 1},     {0, 0, 0, 3, 0},
      {0, 0, 0, 3, 1},  {128, 2, 0, 3, 1},    {512, 1, 0, 3, 0},       {64, 4, 0, 3, 0},
      {32, 1, 1, 3, 0}, {256, 1, 0, 3, 1, 1}, {0, 0, 0, 1, 2},         {0, 0, 0, 3, 2},
      {64, 2, 0, 2, 2}, {32, 1, 1, 3, 2},     {512, 4, 0, 1, 2, 1, 1}, {128, 1, 0, 3, 2, 0, 1},
      {0, 0, 0, 3, 0, 0, 0, 0, 1},            {32, 1, 0, 3, 0, 0, 0, 0, 1},
      {512, 0, 0, 3, 0, 0, 1, 1, 1},          {64, 0, 0, 3, 1, 0, 0, 0, 1},
      {128, 1, 0, 3, 2, 0, 1, 0, 1},          {0, 0, 1, 3, 0, 0, 0, 0, 1}};
  size_t which = 0;
  for (auto [B, T] : {std::pair<int64_t, int64_t>{1, 1}, {3, 17}, {5, 300}, {4, 1024}})
    for (const ClipCase& c : every_clip_mode(B, T)) {
      const rk::CudaLaunch& l = launches[which++ % launches.size()];
      expect_clip_parity<float>(c, ++seed, l);
      if (which % 5 == 0) expect_clip_parity<double>(c, ++seed, l);
    }
  // run-to-run bitwise: no atomics in version 2 either
  ClipCase c = clip_case(64, 999);
  const ClipData D = make_clip(c, 1);
  ClipBuffers<float> buf(c, D);
  for (const rk::CudaLaunch& l :
       {rk::CudaLaunch{0, 0, 0, 2, 0}, rk::CudaLaunch{0, 0, 0, 2, 1}, rk::CudaLaunch{0, 0, 0, 1, 1},
        rk::CudaLaunch{0, 0, 0, 3, 0}, rk::CudaLaunch{0, 0, 0, 3, 1}, rk::CudaLaunch{0, 0, 0, 1, 2},
        rk::CudaLaunch{0, 0, 0, 3, 2, 0, 1}, rk::CudaLaunch{0, 0, 0, 3, 0, 0, 0, 0, 1}}) {
    const rk::RatioClipStats a = rk::ratio_clip_forward_cuda<float>(buf.dev, nullptr, l);
    const rk::RatioClipStats b = rk::ratio_clip_forward_cuda<float>(buf.dev, nullptr, l);
    EXPECT_EQ(std::memcmp(&a, &b, sizeof(a)), 0) << describe(l);
  }
  EXPECT_THROW(rk::ratio_clip_forward_cuda<float>(buf.dev, nullptr, {0, 0, 0, 4, 0}), rlft::Error);
  EXPECT_THROW(rk::ratio_clip_forward_cuda<float>(buf.dev, nullptr, {0, 0, 0, 0, 4}), rlft::Error);
  EXPECT_THROW(rk::ratio_clip_forward_cuda<float>(buf.dev, nullptr, {0, 0, 0, 0, 0, 0, 2}),
               rlft::Error);
  // prefetch holds one group ahead: no unroll beyond 1
  EXPECT_THROW(rk::ratio_clip_forward_cuda<float>(buf.dev, nullptr, {0, 2, 0, 3, 0, 0, 0, 0, 1}),
               rlft::Error);
  // prefetch gives the sums of version 3 without it, to the bit: each thread computes the same
  // groups in the same order (T = 1000: 16-byte groups, so version 3's kernel runs)
  const ClipCase c4 = clip_case(64, 1000);
  ClipBuffers<float> buf4(c4, make_clip(c4, 2));
  const rk::RatioClipStats plain =
      rk::ratio_clip_forward_cuda<float>(buf4.dev, nullptr, {0, 1, 0, 3});
  const rk::RatioClipStats ahead =
      rk::ratio_clip_forward_cuda<float>(buf4.dev, nullptr, {0, 1, 0, 3, 0, 0, 0, 0, 1});
  EXPECT_EQ(std::memcmp(&plain, &ahead, sizeof(plain)), 0);
}

// The flat layout reads the batch as one row of B·T tokens cut into one chunk per resident
// block, the bulk layout in chunks of blockDim·4·U tokens copied into shared memory (sm_90+;
// elsewhere, and for B·T not a multiple of 4, the flat layout runs): chunks cross row
// boundaries (T not a multiple of 4 while B·T is, so 16-byte groups straddle rows; T = 1:
// every group spans four rows), the grid is smaller or larger than B, and every version and
// dependent launch gives the CPU's results, the same bits on every run; modes they do not
// cover (per-sequence advantages, other aggregations) run a block per row and still match.
TEST(RatioClipCuda, FlatAndBulkLayoutsMatchCpuAcrossRowBoundaries) {
  RLFT_REQUIRE_GPU();
  uint64_t seed = 11000;
  for (auto [B, T] :
       {std::pair<int64_t, int64_t>{6, 1026}, {4096, 1}, {2, 4}, {3, 7}, {300, 517}, {64, 1024}})
    for (int version : {1, 2, 3})
      for (int layout : {2, 3})
        for (int dependent : {0, 1}) {
          ClipCase c = clip_case(B, T);
          const rk::CudaLaunch l{0, 0, 0, version, layout, 0, dependent};
          expect_clip_parity<float>(c, ++seed, l);
          c.with_mask = false;
          expect_clip_parity<float>(c, ++seed, l);
          c.normalizer = 123.0;
          c.dual = 3.0;
          expect_clip_parity<float>(c, ++seed, l);
        }
  // Every mode, each with one of the two layouts (alternating), T not a multiple of 4 while
  // B·T is (the modes the layouts do not cover fall back, and still match).
  size_t which = 0;
  for (const ClipCase& c : every_clip_mode(6, 262))
    expect_clip_parity<float>(c, ++seed, rk::CudaLaunch{0, 0, 0, 3, 2 + int(which++ % 2)});
  // The bulk layout's chunk sizes (blockDim·4·U tokens; 64 threads × U = 4: 1024; 512 × 4:
  // 8192, 128 KB of shared memory) and a vec = 1 request (the flat layout's scalar loads).
  for (const rk::CudaLaunch& l : {rk::CudaLaunch{64, 4, 0, 3, 3}, rk::CudaLaunch{512, 4, 0, 1, 3},
                                  rk::CudaLaunch{32, 2, 0, 2, 3}, rk::CudaLaunch{0, 0, 1, 3, 3}})
    expect_clip_parity<float>(clip_case(70, 1000), ++seed, l);
  ClipCase c = clip_case(300, 517);
  const ClipData D = make_clip(c, 5);
  ClipBuffers<float> buf(c, D);
  for (const rk::CudaLaunch& l : {rk::CudaLaunch{0, 0, 0, 1, 2}, rk::CudaLaunch{0, 0, 0, 3, 2},
                                  rk::CudaLaunch{0, 0, 0, 1, 3}, rk::CudaLaunch{0, 0, 0, 3, 3}}) {
    const rk::RatioClipStats a = rk::ratio_clip_forward_cuda<float>(buf.dev, nullptr, l);
    const rk::RatioClipStats b = rk::ratio_clip_forward_cuda<float>(buf.dev, nullptr, l);
    EXPECT_EQ(std::memcmp(&a, &b, sizeof(a)), 0) << describe(l);
  }
}

// The asynchronous forward leaves the same 7 statistics on the device that the synchronous one
// returns (bitwise: the same kernels), zeros for an empty batch, and checks its arguments.
TEST(RatioClipCuda, AsyncForwardLeavesTheStatisticsOnTheDevice) {
  RLFT_REQUIRE_GPU();
  ClipCase c = clip_case(9, 640);
  c.dual = 3.0;
  const ClipData D = make_clip(c, 123);
  ClipBuffers<float> buf(c, D);
  const rk::RatioClipStats sync = rk::ratio_clip_forward_cuda<float>(buf.dev);
  DeviceArray<double> stats(std::vector<double>(7, -1.0));
  rk::ratio_clip_forward_cuda_async<float>(buf.dev, stats.get());
  const std::vector<double> got = stats.download();
  const double want[7] = {sync.loss,         sync.clip_frac_low, sync.clip_frac_high,
                          sync.dual_clip_frac, sync.approx_kl_k1, sync.approx_kl_k3,
                          sync.tokens};
  for (int k = 0; k < 7; ++k) EXPECT_EQ(got[ix(k)], want[k]) << "statistic " << k;
  EXPECT_GT(sync.tokens, 0.0);
  rk::RatioClipArgs<float> empty;
  rk::ratio_clip_forward_cuda_async<float>(empty, stats.get());
  for (double v : stats.download()) EXPECT_EQ(v, 0.0);
  EXPECT_THROW(rk::ratio_clip_forward_cuda_async<float>(buf.dev, nullptr), rlft::Error);
  EXPECT_THROW(rk::ratio_clip_forward_cuda_async<float>(buf.dev, stats.get(), nullptr, {0, 8, 0}),
               rlft::Error);
  EXPECT_THROW(rk::ratio_clip_forward_cuda<float>(buf.dev, nullptr, {48, 0, 0}), rlft::Error);
}

// Captures one asynchronous forward of `args` per launch into a graph on a fresh stream
// (thread-local capture mode), replays it `replays` times, and checks the k-th call's 7
// statistics against want[k], bit for bit, after every replay.
void expect_graph_replays(const rk::RatioClipArgs<float>& args,
                          const std::vector<rk::CudaLaunch>& launches,
                          const std::vector<rk::RatioClipStats>& want, int replays) {
  ASSERT_EQ(launches.size(), want.size());
  const size_t n = launches.size();
  cudaStream_t stream{};
  CUDA_OK(cudaStreamCreate(&stream));
  DeviceArray<double> stats(std::vector<double>(7 * n, -1.0));
  cudaGraph_t graph{};
  cudaGraphExec_t exec{};
  CUDA_OK(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal));
  for (size_t k = 0; k < n; ++k)
    rk::ratio_clip_forward_cuda_async<float>(args, stats.get() + 7 * k, stream, launches[k]);
  CUDA_OK(cudaStreamEndCapture(stream, &graph));
  CUDA_OK(cudaGraphInstantiate(&exec, graph, 0));
  for (int rep = 0; rep < replays; ++rep) {
    CUDA_OK(cudaGraphLaunch(exec, stream));
    CUDA_OK(cudaStreamSynchronize(stream));
    const std::vector<double> got = stats.download();
    for (size_t k = 0; k < n; ++k) {
      const rk::RatioClipStats& w = want[k];
      const double expect[7] = {w.loss,         w.clip_frac_low, w.clip_frac_high, w.dual_clip_frac,
                                w.approx_kl_k1, w.approx_kl_k3,  w.tokens};
      for (size_t j = 0; j < 7; ++j)
        EXPECT_EQ(got[7 * k + j], expect[j]) << "replay " << rep << ", call " << k << " "
                                             << describe(launches[k]) << ", statistic " << j;
    }
  }
  CUDA_OK(cudaGraphExecDestroy(exec));
  CUDA_OK(cudaGraphDestroy(graph));
  CUDA_OK(cudaStreamDestroy(stream));
}

// The finishing kernel launched programmatically dependent on the row kernel (the default on
// sm_90+) and the ordinary way (launch.serial = 1), and the first kernel launched
// programmatically dependent too (launch.dependent = 1), give the same bits in every
// aggregation (the four layouts in turn) and version; and the asynchronous forward captured into a
// CUDA graph (as a training step may be) and replayed twice leaves the same statistics as the
// direct call.
TEST(RatioClipCuda, DependentAndSerialFinishAgreeAlsoInAGraph) {
  RLFT_REQUIRE_GPU();
  uint64_t seed = 4242;
  int which = 0;
  for (ClipCase c : every_clip_mode(37, 1000)) {
    const ClipData D = make_clip(c, ++seed);
    ClipBuffers<float> buf(c, D);
    if (c.level != rk::RatioLevel::token) {  // a block per row: its finish, in a kernel or not
      const rk::RatioClipStats a = rk::ratio_clip_forward_cuda<float>(buf.dev);
      const rk::RatioClipStats e =
          rk::ratio_clip_forward_cuda<float>(buf.dev, nullptr, {0, 0, 0, 0, 0, 0, 0, 1});
      EXPECT_EQ(std::memcmp(&a, &e, sizeof(a)), 0) << describe(c) << " last_block";
      continue;
    }
    const int chunked = which++ % 4;  // the four layouts in turn
    for (int version : {1, 2, 3}) {
      const rk::CudaLaunch dep{0, 0, 0, version, chunked, 0}, ser{0, 0, 0, version, chunked, 1},
          first{0, 0, 0, version, chunked, 0, 1}, last{0, 0, 0, version, chunked, 0, 0, 1},
          both{0, 0, 0, version, chunked, 0, 1, 1};
      const rk::RatioClipStats a = rk::ratio_clip_forward_cuda<float>(buf.dev, nullptr, dep);
      const rk::RatioClipStats b = rk::ratio_clip_forward_cuda<float>(buf.dev, nullptr, ser);
      const rk::RatioClipStats d = rk::ratio_clip_forward_cuda<float>(buf.dev, nullptr, first);
      EXPECT_EQ(std::memcmp(&a, &b, sizeof(a)), 0) << describe(c) << " " << describe(dep);
      EXPECT_EQ(std::memcmp(&a, &d, sizeof(a)), 0) << describe(c) << " " << describe(first);
      // The finish in the first kernel's last block: the same partial sums added in the same
      // order, so the same bits (the stream's counter back at 0 after every call, whatever
      // the grid).
      // (One forward more per case, for memcheck's time share: alone for version 1, with a
      // dependent first kernel for the others.)
      const rk::CudaLaunch& l = version == 1 ? last : both;
      const rk::RatioClipStats e = rk::ratio_clip_forward_cuda<float>(buf.dev, nullptr, l);
      EXPECT_EQ(std::memcmp(&a, &e, sizeof(a)), 0) << describe(c) << " " << describe(l);
    }
  }
  ClipCase c = clip_case(200, 2048);
  const ClipData D = make_clip(c, 99);
  ClipBuffers<float> buf(c, D);
  // The third call's first kernel is programmatically dependent on the second call's
  // finishing kernel (which lets its dependents be scheduled at once); the fourth finishes in
  // its last block, so each replay must find the stream's counter back at 0.
  const rk::CudaLaunch v2_chunks{0, 0, 0, 2, 1, 0}, v3_flat_dependent{0, 0, 0, 3, 2, 0, 1},
      last_block{0, 0, 0, 1, 0, 0, 1, 1};
  const rk::RatioClipStats want = rk::ratio_clip_forward_cuda<float>(buf.dev);
  const rk::RatioClipStats v2 =
      rk::ratio_clip_forward_cuda<float>(buf.dev, nullptr, {0, 0, 0, 2, 1, 1});
  const rk::RatioClipStats v3 =
      rk::ratio_clip_forward_cuda<float>(buf.dev, nullptr, {0, 0, 0, 3, 2, 1});
  expect_graph_replays(buf.dev, {{}, v2_chunks, v3_flat_dependent, last_block},
                       {want, v2, v3, want}, 2);
}

// The finishing kernel and the last-block finish (other block sizes, the partial sums written
// by the same kernel) add the partial sums in the same order, so the same bits: over many rows
// (1100: 35 partial sums a lane, three batches of loads), rows of 3 chunks, the aggregations
// that need each row's own total, and rows of 513 chunks. Each also against the CPU.
TEST(RatioClipCuda, FinishingKernelAndLastBlockFinishAgreeOnManyRows) {
  RLFT_REQUIRE_GPU();
  struct Shape {
    int64_t B, T;
    int chunked;
    rk::Aggregation agg;
  };
  uint64_t seed = 777;
  for (const Shape& sh : {Shape{1100, 64, 0, rk::Aggregation::token_mean},
                          Shape{1100, 64, 0, rk::Aggregation::seq_mean_token_mean},
                          Shape{400, 2500, 1, rk::Aggregation::only_token_mean},
                          Shape{400, 2500, 1, rk::Aggregation::token_mean},
                          Shape{2, 1024 * 513, 1, rk::Aggregation::seq_mean_token_sum}}) {
    ClipCase c = clip_case(sh.B, sh.T);
    c.agg = sh.agg;
    for (int version : {1, 3}) {
      const rk::CudaLaunch kernel{.version = version, .chunked = sh.chunked},
          last{.version = version, .chunked = sh.chunked, .last_block = 1};
      SCOPED_TRACE(describe(c) + " " + describe(kernel));
      const ClipData D = make_clip(c, ++seed);
      ClipBuffers<float> buf(c, D);
      const rk::RatioClipStats a = rk::ratio_clip_forward_cuda<float>(buf.dev, nullptr, kernel);
      const rk::RatioClipStats b = rk::ratio_clip_forward_cuda<float>(buf.dev, nullptr, last);
      EXPECT_EQ(std::memcmp(&a, &b, sizeof(a)), 0)
          << "loss " << a.loss << " vs " << b.loss << ", k3 " << a.approx_kl_k3 << " vs "
          << b.approx_kl_k3;
      expect_clip_parity<float>(c, seed, kernel);
    }
  }
}

// The last-block finish's counters may first be needed inside a stream capture (thread-local
// mode, where a plain cudaMalloc is refused): under ctest this test is its own process, so
// its captured call is the one that allocates them. Each replay gives the finishing kernel's
// statistics.
TEST(RatioClipCuda, LastBlockFinishFirstCalledInsideACapture) {
  RLFT_REQUIRE_GPU();
  ClipCase c = clip_case(64, 512);
  const ClipData D = make_clip(c, 7);
  ClipBuffers<float> buf(c, D);
  // (The finishing kernel's forward first: the memory pool's set-up is not what is tested.)
  const rk::RatioClipStats want = rk::ratio_clip_forward_cuda<float>(buf.dev);
  expect_graph_replays(buf.dev, {{0, 0, 0, 0, 0, 0, 0, 1}}, {want}, 3);
}

// The benchmarks' read ceiling reads every token of the four arrays once in each layout: in
// chunks (1024·U tokens a chunk, the last one partial) its per-chunk sums match the host's; a
// block per row gives the row sums; flat (the batch as one row, one chunk per resident block)
// sums to the total; through bulk copies (sm_90+) each chunk of the flattened batch gives its
// sum; too small a `partials` is an error naming the size it needs.
// The timeline (measurement only; bench_cuda_kernels' timeline/ lines): with it on, every
// block of the first kernel stamps entry ≤ release ≤ exit and its multiprocessor, the
// finishing block is released no earlier than the first kernel's last block exited (its
// dependency, whichever way it is launched) and stamps its phases in order, nothing is
// stamped past a block-per-row grid, the default launch's statistics are those of a run
// without it; once off, nothing is written.
TEST(RatioClipCuda, TimelineStampsEveryBlockAndReleasesTheFinishAfterThem) {
  RLFT_REQUIRE_GPU();
  ClipCase c = clip_case(64, 1000);
  const ClipData D = make_clip(c, 17);
  ClipBuffers<float> buf(c, D);
  constexpr int kBlocks = rk::kRatioClipTimelineBlocks;
  const size_t words = size_t(rk::kRatioClipTimelineKernels) * kBlocks * 4;
  const uint64_t unset = 0x5a5a5a5a5a5a5a5aull;
  DeviceArray<uint64_t> tl(std::vector<uint64_t>(words, unset));
  int sms = 0;
  CUDA_OK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0));
  const rk::RatioClipStats want = rk::ratio_clip_forward_cuda<float>(buf.dev);
  for (const rk::CudaLaunch& l : {rk::CudaLaunch{}, rk::CudaLaunch{.version = 3, .serial = 1},
                                  rk::CudaLaunch{.version = 1, .chunked = 1, .dependent = 1}}) {
    SCOPED_TRACE(describe(l));
    tl.upload(std::vector<uint64_t>(words, unset));
    rk::ratio_clip_timeline_cuda(tl.get());
    const rk::RatioClipStats got = rk::ratio_clip_forward_cuda<float>(buf.dev, nullptr, l);
    rk::ratio_clip_timeline_cuda(nullptr);
    if (l.version == 0) {  // the default launch: the same bits as without the stamps
      EXPECT_EQ(std::memcmp(&got, &want, sizeof(got)), 0);
    }
    const std::vector<uint64_t> h = tl.download();
    const auto at = [&](int k, int b, int e) {
      return h[(size_t(k) * kBlocks + size_t(b)) * 4 + e];
    };
    // The grid: a block per row, or (chunked) at least that many; its blocks are stamped in
    // slots 0, 1, ..., the first slot left as it was is past the grid.
    int grid = 0;
    while (grid < kBlocks && at(0, grid, 0) != unset) ++grid;
    if (l.chunked == 0) {
      EXPECT_EQ(grid, int(c.B));
    } else {
      EXPECT_GE(grid, int(c.B));
    }
    uint64_t last_exit = 0;
    for (int b = 0; b < grid; ++b) {
      ASSERT_NE(at(0, b, 2), unset) << "block " << b << " has no exit stamp";
      EXPECT_LE(at(0, b, 0), at(0, b, 1)) << "block " << b;
      EXPECT_LE(at(0, b, 1), at(0, b, 2)) << "block " << b;
      EXPECT_LT(at(0, b, 3), uint64_t(sms)) << "block " << b;
      last_exit = std::max(last_exit, at(0, b, 2));
    }
    ASSERT_NE(at(1, 0, 1), unset) << "the finishing block was not stamped";
    EXPECT_LE(at(1, 0, 0), at(1, 0, 1));
    EXPECT_GE(at(1, 0, 1), last_exit) << "the finish was released before the row kernel ended";
    EXPECT_LE(at(1, 0, 1), at(1, 0, 2));
    // The finish's phases in block 1's slots: its loads added, then its totals, then the exit.
    ASSERT_NE(at(1, 1, 0), unset);
    ASSERT_NE(at(1, 1, 1), unset);
    EXPECT_LE(at(1, 0, 1), at(1, 1, 0));
    EXPECT_LE(at(1, 1, 0), at(1, 1, 1));
    EXPECT_LE(at(1, 1, 1), at(1, 0, 2));
    EXPECT_EQ(at(1, 2, 0), unset);
  }
  tl.upload(std::vector<uint64_t>(words, unset));
  (void)rk::ratio_clip_forward_cuda<float>(buf.dev);
  const std::vector<uint64_t> h = tl.download();
  EXPECT_EQ(std::count(h.begin(), h.end(), unset), std::ptrdiff_t(words)) << "written while off";
}

TEST(RatioClipCuda, ReadCeilingSumsEveryLoad) {
  RLFT_REQUIRE_GPU();
  const int64_t B = 3, T = 2100;  // 525 groups of 4: U = 1: chunks of 256, 256, 13 groups
  std::mt19937_64 rng(31);
  std::normal_distribution<float> normal(0.f, 1.f);
  std::vector<std::vector<float>> h(4, std::vector<float>(ix(B * T)));
  for (auto& v : h)
    for (float& x : v) x = normal(rng);
  DeviceArray<float> logp(h[0]), old_logp(h[1]), adv(h[2]), mask(h[3]);
  const rk::RatioClipArgs<float> a{.B = B,
                                   .T = T,
                                   .logp = logp.get(),
                                   .old_logp = old_logp.get(),
                                   .advantages = adv.get(),
                                   .mask = mask.get()};
  // Σ and Σ|·| of the four arrays over tokens [k0, k1) of the flattened batch.
  const auto host_sum = [&](int64_t k0, int64_t k1) {
    double sum = 0, scale = 0;
    for (int64_t k = k0; k < k1; ++k)
      for (const auto& v : h) {
        sum += v[ix(k)];
        scale += std::fabs(v[ix(k)]);
      }
    return std::pair<double, double>{sum, scale};
  };
  const int64_t capacity = 1 << 16;
  for (int U : {1, 2, 4})
    for (int layout : {1, 0, 2})
      for (int dependent : {0, 1}) {
        SCOPED_TRACE(rlft::str("U=", U, " layout=", layout, " dependent=", dependent));
        DeviceArray<float> partials(std::vector<float>(ix(capacity), -1.f));
        const int64_t blocks = rk::ratio_clip_read_ceiling_cuda(
            a, partials.get(), capacity, nullptr, rk::CudaLaunch{0, U, 0, 0, layout, 0, dependent});
        const std::vector<float> got = partials.download();
        if (layout == 1) {
          const int64_t chunks = (T + 1024 * U - 1) / (1024 * U), per_chunk = 1024 * U;
          ASSERT_EQ(blocks, B * chunks);
          for (int64_t b = 0; b < blocks; ++b) {
            const int64_t row = b / chunks, t0 = (b % chunks) * per_chunk;
            const auto [want, scale] =
                host_sum(row * T + t0, row * T + std::min(t0 + per_chunk, T));
            EXPECT_NEAR(got[ix(b)], want, 1e-5 * scale) << "chunk " << b;
          }
        } else if (layout == 0) {
          ASSERT_EQ(blocks, B);
          for (int64_t i = 0; i < B; ++i) {
            const auto [want, scale] = host_sum(i * T, (i + 1) * T);
            EXPECT_NEAR(got[ix(i)], want, 1e-5 * scale) << "row " << i;
          }
        } else {
          ASSERT_GE(blocks, 1);
          ASSERT_LE(blocks, B * T / 4);
          double total = 0;
          for (int64_t b = 0; b < blocks; ++b) total += got[ix(b)];
          EXPECT_EQ(got[ix(blocks)], -1.f) << "wrote past its blocks";
          const auto [want, scale] = host_sum(0, B * T);
          EXPECT_NEAR(total, want, 1e-5 * scale);
        }
      }
  // Bulk copies (sm_90+): a partial per chunk of 256·4·U tokens of the flattened batch (the
  // last one partial).
  int major = 0;
  CUDA_OK(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, 0));
  for (int U : {1, 2, 4})
    for (int dependent : {0, 1}) {
      SCOPED_TRACE(rlft::str("bulk U=", U, " dependent=", dependent));
      DeviceArray<float> partials(std::vector<float>(ix(capacity), -1.f));
      const rk::CudaLaunch l{0, U, 0, 0, 3, 0, dependent};
      if (major < 9) {
        EXPECT_THROW(rk::ratio_clip_read_ceiling_cuda(a, partials.get(), capacity, nullptr, l),
                     rlft::Error);
        continue;
      }
      const int64_t blocks =
          rk::ratio_clip_read_ceiling_cuda(a, partials.get(), capacity, nullptr, l);
      const int64_t chunk = 1024 * U;
      ASSERT_EQ(blocks, (B * T + chunk - 1) / chunk);
      const std::vector<float> got = partials.download();
      for (int64_t c = 0; c < blocks; ++c) {
        const auto [want, scale] = host_sum(c * chunk, std::min((c + 1) * chunk, B * T));
        EXPECT_NEAR(got[ix(c)], want, 1e-5 * scale) << "chunk " << c;
      }
      EXPECT_EQ(got[ix(blocks)], -1.f) << "wrote past its chunks";
    }
  DeviceArray<float> partials(std::vector<float>(ix(B * 3), -1.f));
  rk::RatioClipArgs<float> no_mask = a;
  no_mask.mask = nullptr;
  EXPECT_THROW(rk::ratio_clip_read_ceiling_cuda(no_mask, partials.get(), B * 3), rlft::Error);
  EXPECT_THROW(rk::ratio_clip_read_ceiling_cuda(a, partials.get(), B * 3, nullptr, {0, 3, 0}),
               rlft::Error);
  try {
    rk::ratio_clip_read_ceiling_cuda(a, partials.get(), 2, nullptr, {0, 1, 0, 0, 1});
    ADD_FAILURE() << "a capacity of 2 for 9 chunks was accepted";
  } catch (const rlft::Error& e) {
    EXPECT_NE(std::string(e.what()).find("partials must hold 9 floats"), std::string::npos)
        << e.what();
  }
}

// The kernels' per-call scratch (stream-ordered) stays in the device's pool across
// synchronisations, so a training loop does not map memory every call, until
// cuda_empty_cache() gives it back.
TEST(RatioClipCuda, ScratchPoolKeepsItsMemoryUntilEmptyCache) {
  RLFT_REQUIRE_GPU();
  ClipCase c = clip_case(64, 128);
  const ClipData D = make_clip(c, 5);
  ClipBuffers<float> buf(c, D);
  CUDA_OK(cudaSetDevice(0));
  (void)rk::ratio_clip_forward_cuda<float>(buf.dev);  // synchronises
  cudaMemPool_t pool{};
  CUDA_OK(cudaDeviceGetDefaultMemPool(&pool, 0));
  uint64_t threshold = 0, reserved = 0;
  CUDA_OK(cudaMemPoolGetAttribute(pool, cudaMemPoolAttrReleaseThreshold, &threshold));
  EXPECT_EQ(threshold, UINT64_MAX);
  CUDA_OK(cudaMemPoolGetAttribute(pool, cudaMemPoolAttrReservedMemCurrent, &reserved));
  EXPECT_GT(reserved, 0u) << "the pool gave its memory back at the synchronisation";
  rk::cuda_empty_cache();
  CUDA_OK(cudaMemPoolGetAttribute(pool, cudaMemPoolAttrReservedMemCurrent, &reserved));
  EXPECT_EQ(reserved, 0u);
  // and the next call still works
  EXPECT_GT(rk::ratio_clip_forward_cuda<float>(buf.dev).tokens, 0.0);
}

// Same inputs, same bits: no float atomics anywhere (forward stats and gradients).
TEST(RatioClipCuda, RunToRunBitwiseReproducible) {
  RLFT_REQUIRE_GPU();
  ClipCase c = clip_case(300, 777);
  c.agg = rk::Aggregation::seq_mean_token_mean;
  const ClipData D = make_clip(c, 77);
  ClipBuffers<float> buf(c, D);
  const rk::RatioClipStats a = rk::ratio_clip_forward_cuda<float>(buf.dev);
  const rk::RatioClipStats b = rk::ratio_clip_forward_cuda<float>(buf.dev);
  EXPECT_EQ(std::memcmp(&a, &b, sizeof(a)), 0);
  DeviceArray<float> g1(ix(c.B * c.T), 0), g2(ix(c.B * c.T), 0);
  rk::ratio_clip_backward_cuda<float>(buf.dev, 1.0, g1.get());
  rk::ratio_clip_backward_cuda<float>(buf.dev, 1.0, g2.get());
  EXPECT_EQ(g1.download(), g2.download());
}

// accumulate adds to what g_logp holds; an all-masked batch gives zero everything.
TEST(RatioClipCuda, AccumulateAndAllMasked) {
  RLFT_REQUIRE_GPU();
  ClipCase c = clip_case(4, 33);
  const ClipData D = make_clip(c, 3);
  ClipBuffers<double> buf(c, D);
  std::vector<double> ref(ix(c.B * c.T), 0.25);
  rk::ratio_clip_backward_cpu<double>(buf.host, 2.0, ref.data(), true, 1);
  DeviceArray<double> d_g(std::vector<double>(ix(c.B * c.T), 0.25));
  rk::ratio_clip_backward_cuda<double>(buf.dev, 2.0, d_g.get(), true);
  const std::vector<double> g = d_g.download();
  for (size_t k = 0; k < g.size(); ++k) ASSERT_TRUE(close(g[k], ref[k], 1e-10)) << k;

  ClipData Z = D;
  std::fill(Z.mask.begin(), Z.mask.end(), 0.0);
  ClipBuffers<double> zb(c, Z);
  const rk::RatioClipStats s = rk::ratio_clip_forward_cuda<double>(zb.dev);
  EXPECT_EQ(s.loss, 0.0);
  EXPECT_EQ(s.tokens, 0.0);
  EXPECT_EQ(s.clip_frac_low + s.clip_frac_high + s.dual_clip_frac, 0.0);
  DeviceArray<double> d_z(std::vector<double>(ix(c.B * c.T), 9.0));
  rk::ratio_clip_backward_cuda<double>(zb.dev, 1.0, d_z.get());
  for (double v : d_z.download()) ASSERT_EQ(v, 0.0);
  // Empty shapes and the CPU's argument checks.
  rk::RatioClipArgs<double> e;
  EXPECT_EQ(rk::ratio_clip_forward_cuda<double>(e).loss, 0.0);
  e.B = 2;
  e.T = 3;
  EXPECT_THROW(rk::ratio_clip_forward_cuda<double>(e), rlft::Error);  // null inputs
  e = buf.dev;
  e.dual_clip = 0.5;
  EXPECT_THROW(rk::ratio_clip_forward_cuda<double>(e), rlft::Error);
}

// The benchmark's unfused baseline computes PPO's token_mean loss like the fused kernel.
TEST(RatioClipCuda, UnfusedBaselineMatchesCpu) {
  RLFT_REQUIRE_GPU();
  ClipCase c = clip_case(7, 301);
  const ClipData D = make_clip(c, 11);
  ClipBuffers<double> buf(c, D);
  const rk::RatioClipStats ref = rk::ratio_clip_forward_cpu<double>(buf.host, 1);
  DeviceArray<double> ws(ix(4 * c.B * c.T), 0);
  EXPECT_TRUE(close(rk::ratio_clip_loss_unfused_cuda<double>(buf.dev, ws.get()), ref.loss, 1e-10));
  c.dual = 3.0;
  ClipBuffers<double> dual(c, D);
  EXPECT_THROW(rk::ratio_clip_loss_unfused_cuda<double>(dual.dev, ws.get()), rlft::Error);
}

// =============================================================================================
// gae
// =============================================================================================

using GaeData = rlft::test::GaeProblem;

// tests/kernels/gae_problems.h's problem with NaN at a termination's next value (never read
// into the arithmetic).
GaeData make_gae(int64_t T, int64_t N, uint64_t seed) {
  std::mt19937_64 rng(seed);
  return rlft::test::random_gae(rng, T, N, kNaN);
}

template <typename Real>
double gae_tol() {
  return sizeof(Real) == 4 ? 3e-7 : 1e-10;
}

// flags: 0 = both flag arrays, 1 = terminations only (episode_end null), 2 = neither.
template <typename Real>
void expect_gae_parity(const GaeData& D, int version, int flags, double gamma, double lambda,
                       bool with_returns) {
  SCOPED_TRACE(rlft::str("T=", D.T, " N=", D.N, " version=", version, " flags=", flags,
                         " gamma=", gamma, " lambda=", lambda, with_returns ? "" : " no returns",
                         " ", real_name<Real>()));
  const std::vector<Real> r = cast<Real>(D.rewards), v = cast<Real>(D.values),
                          nv = cast<Real>(D.next_values), term = cast<Real>(D.terminated),
                          end = cast<Real>(D.episode_end);
  const Real* h_term = flags < 2 ? term.data() : nullptr;
  const Real* h_end = flags < 1 ? end.data() : nullptr;
  // Without termination flags the NaN next values would be used: give them numbers.
  std::vector<Real> nv_used = nv;
  if (flags == 2)
    for (Real& x : nv_used)
      if (std::isnan(double(x))) x = Real(0.5);
  const size_t TN = ix(D.T * D.N);
  std::vector<Real> adv(TN), ret(TN);
  rk::gae_cpu<Real>(r.data(), v.data(), nv_used.data(), h_term, h_end, D.T, D.N, Real(gamma),
                    Real(lambda), adv.data(), ret.data());
  DeviceArray<Real> d_r(r), d_v(v), d_nv(nv_used), d_term(term), d_end(end);
  DeviceArray<Real> d_adv(std::vector<Real>(TN, Real(-3))), d_ret(std::vector<Real>(TN, Real(-3)));
  rk::gae_cuda<Real>(d_r.get(), d_v.get(), d_nv.get(), flags < 2 ? d_term.get() : nullptr,
                     flags < 1 ? d_end.get() : nullptr, D.T, D.N, Real(gamma), Real(lambda),
                     d_adv.get(), with_returns ? d_ret.get() : nullptr, nullptr, version);
  const std::vector<Real> ga = d_adv.download(), gr = d_ret.download();
  const double tol = gae_tol<Real>();
  for (size_t k = 0; k < TN; ++k) {
    ASSERT_TRUE(close(ga[k], adv[k], tol))
        << "advantages[t=" << k / ix(D.N) << ", n=" << k % ix(D.N) << "]";
    if (with_returns)
      ASSERT_TRUE(close(gr[k], ret[k], tol)) << "returns[" << k << "]";
    else
      ASSERT_EQ(gr[k], Real(-3)) << "returns written though null";
  }
}

// Odd sizes around the tile (8 environments) and the chunk (256 steps): 1×1, T = 2, 7×3,
// 129×5, one chunk exactly (256×8), one step more (257×9), 300×70, T = 4099 (17 chunks, the
// last partial), N = 1030 (129 tiles, the last with 6 environments).
TEST(GaeCuda, TimeMajorMatchesCpuEveryVersion) {
  RLFT_REQUIRE_GPU();
  uint64_t seed = 9000;
  const std::vector<std::pair<int64_t, int64_t> > shapes = {
      {1, 1}, {2, 1}, {7, 3}, {129, 5}, {256, 8}, {257, 9}, {300, 70}, {4099, 3}, {33, 1030}};
  for (auto [T, N] : shapes) {
    const GaeData D = make_gae(T, N, ++seed);
    for (int version : {0, 1, 2}) {
      expect_gae_parity<double>(D, version, 0, 0.99, 0.95, true);
      expect_gae_parity<float>(D, version, 0, 0.99, 0.95, true);
    }
  }
}

// Absent flag arrays, no returns, and the corner discounts: γλ = 1 (no decay: the scan's
// products stay 1 and the sums run over whole episodes) and λ = 0 (every c_t = 0: one-step TD).
TEST(GaeCuda, TimeMajorOptionsAndDiscounts) {
  RLFT_REQUIRE_GPU();
  const GaeData D = make_gae(600, 11, 42);
  for (int version : {1, 2}) {
    for (int flags : {0, 1, 2}) expect_gae_parity<double>(D, version, flags, 0.99, 0.95, true);
    expect_gae_parity<float>(D, version, 0, 0.99, 0.95, false);
    expect_gae_parity<double>(D, version, 0, 1.0, 1.0, true);
    expect_gae_parity<double>(D, version, 0, 0.9, 0.0, true);
    expect_gae_parity<double>(D, version, 2, 1.0, 1.0, true);
  }
}

// λ = 0 with a NaN reward: the GPU drops the carry where γλ = 0 and the CPU too (a NaN stays
// at its step instead of reaching the episode's earlier steps through 0·NaN).
TEST(GaeCuda, LambdaZeroKeepsANaNAtItsStepAsTheCpu) {
  RLFT_REQUIRE_GPU();
  GaeData D = make_gae(600, 11, 43);
  for (size_t k = 7; k < D.rewards.size(); k += 97) D.rewards[k] = kNaN;
  for (int version : {1, 2}) {
    expect_gae_parity<double>(D, version, 0, 0.9, 0.0, true);
    expect_gae_parity<float>(D, version, 0, 0.9, 0.0, true);
  }
}

struct RowsData {
  int64_t B = 0, T = 0;
  std::vector<double> rewards, values, mask;
};

// Row patterns, by row index mod 5: one contiguous response [s, e) (DeepSpeed-Chat's case),
// holes (each position masked with p = 0.6), all masked out, all in, a single response token.
// Rewards and values at unmasked positions are NaN: they must never be read into the sums.
RowsData make_rows(int64_t B, int64_t T, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> normal(0.0, 1.0);
  std::uniform_real_distribution<double> u01(0.0, 1.0);
  std::uniform_int_distribution<int64_t> pos(0, T - 1);
  RowsData D;
  D.B = B;
  D.T = T;
  D.mask.assign(ix(B * T), 0.0);
  for (int64_t i = 0; i < B; ++i) {
    double* m = D.mask.data() + i * T;
    switch (i % 5) {
      case 0: {
        int64_t s = pos(rng), e = pos(rng);
        if (s > e) std::swap(s, e);
        for (int64_t t = s; t <= e; ++t) m[t] = 1.0;
        break;
      }
      case 1:
        for (int64_t t = 0; t < T; ++t) m[t] = u01(rng) < 0.6 ? 1.0 : 0.0;
        break;
      case 2:
        break;
      case 3:
        for (int64_t t = 0; t < T; ++t) m[t] = 1.0;
        break;
      default:
        m[pos(rng)] = 1.0;
    }
  }
  D.rewards.resize(ix(B * T));
  D.values.resize(ix(B * T));
  for (size_t k = 0; k < D.mask.size(); ++k) {
    D.rewards[k] = D.mask[k] != 0 ? normal(rng) : kNaN;
    D.values[k] = D.mask[k] != 0 ? normal(rng) : kNaN;
  }
  return D;
}

template <typename Real>
void expect_rows_parity(const RowsData& D, int version, bool with_mask, double gamma, double lambda,
                        bool with_returns) {
  SCOPED_TRACE(rlft::str("B=", D.B, " T=", D.T, " version=", version, with_mask ? "" : " no mask",
                         " gamma=", gamma, " lambda=", lambda, with_returns ? "" : " no returns",
                         " ", real_name<Real>()));
  std::vector<Real> r = cast<Real>(D.rewards), v = cast<Real>(D.values), m = cast<Real>(D.mask);
  if (!with_mask)  // every position counts: give the NaN placeholders numbers
    for (size_t k = 0; k < r.size(); ++k)
      if (m[k] == Real(0)) r[k] = v[k] = Real(0.25);
  const size_t BT = ix(D.B * D.T);
  std::vector<Real> adv(BT), ret(BT);
  rk::gae_masked_rows_cpu<Real>(r.data(), v.data(), with_mask ? m.data() : nullptr, D.B, D.T,
                                Real(gamma), Real(lambda), adv.data(), ret.data());
  DeviceArray<Real> d_r(r), d_v(v), d_m(m);
  DeviceArray<Real> d_adv(std::vector<Real>(BT, Real(-3))), d_ret(std::vector<Real>(BT, Real(-3)));
  rk::gae_masked_rows_cuda<Real>(d_r.get(), d_v.get(), with_mask ? d_m.get() : nullptr, D.B, D.T,
                                 Real(gamma), Real(lambda), d_adv.get(),
                                 with_returns ? d_ret.get() : nullptr, nullptr, version);
  const std::vector<Real> ga = d_adv.download(), gr = d_ret.download();
  const double tol = gae_tol<Real>();
  for (size_t k = 0; k < BT; ++k) {
    ASSERT_TRUE(close(ga[k], adv[k], tol))
        << "advantages[i=" << k / ix(D.T) << ", t=" << k % ix(D.T) << "]";
    if (with_returns)
      ASSERT_TRUE(close(gr[k], ret[k], tol)) << "returns[" << k << "]";
    else
      ASSERT_EQ(gr[k], Real(-3)) << "returns written though null";
  }
}

// Odd sizes: 1×1, 3×17, 5×300, T = 4099 (17 chunks), 9×257 (two tiles, the second with one
// row; one step past a chunk), T = 1, 7×513.
TEST(GaeCuda, MaskedRowsMatchCpuEveryVersion) {
  RLFT_REQUIRE_GPU();
  uint64_t seed = 12000;
  const std::vector<std::pair<int64_t, int64_t> > shapes = {{1, 1},   {3, 17}, {5, 300}, {2, 4099},
                                                            {9, 257}, {16, 1}, {7, 513}};
  for (auto [B, T] : shapes) {
    const RowsData D = make_rows(B, T, ++seed);
    for (int version : {0, 1, 2}) {
      expect_rows_parity<double>(D, version, true, 1.0, 0.95, true);
      expect_rows_parity<float>(D, version, true, 1.0, 0.95, true);
    }
  }
}

TEST(GaeCuda, MaskedRowsOptionsAndDiscounts) {
  RLFT_REQUIRE_GPU();
  const RowsData D = make_rows(10, 700, 5);
  for (int version : {1, 2}) {
    expect_rows_parity<double>(D, version, false, 1.0, 0.95, true);
    expect_rows_parity<float>(D, version, true, 0.99, 0.95, false);
    expect_rows_parity<double>(D, version, true, 1.0, 1.0, true);
    expect_rows_parity<double>(D, version, true, 0.9, 0.0, true);
  }
}

TEST(GaeCuda, EmptyAndInvalid) {
  RLFT_REQUIRE_GPU();
  rk::gae_cuda<float>(nullptr, nullptr, nullptr, nullptr, nullptr, 0, 5, 0.99f, 0.95f, nullptr,
                      nullptr);
  rk::gae_masked_rows_cuda<float>(nullptr, nullptr, nullptr, 3, 0, 1.f, 0.95f, nullptr, nullptr);
  EXPECT_THROW(rk::gae_cuda<float>(nullptr, nullptr, nullptr, nullptr, nullptr, 2, 2, 1.5f, 0.95f,
                                   nullptr, nullptr),
               rlft::Error);
  EXPECT_THROW(rk::gae_masked_rows_cuda<float>(nullptr, nullptr, nullptr, 2, 2, 1.f, 0.95f, nullptr,
                                               nullptr),
               rlft::Error);
  DeviceArray<float> a(4, 0);
  EXPECT_THROW(rk::gae_masked_rows_cuda<float>(a.get(), a.get(), nullptr, 2, 2, 1.f, 0.95f, a.get(),
                                               nullptr, nullptr, 7),
               rlft::Error);  // no version 7
}

// =============================================================================================
// caching allocator
// =============================================================================================

// A freed block is handed out again for any request of the same size class without a
// cudaMalloc; another class gets a new block; the statistics follow; empty_cache gives the
// cached blocks back; the memory works.
TEST(CudaAllocator, ReuseAndStatistics) {
  RLFT_REQUIRE_GPU();
  rk::cuda_empty_cache();
  const rk::CudaMemoryStats s0 = rk::cuda_memory_stats(0);
  void* p = rk::cuda_alloc(1000, 0);
  ASSERT_NE(p, nullptr);
  rk::CudaMemoryStats s = rk::cuda_memory_stats(0);
  EXPECT_EQ(s.allocated - s0.allocated, 1024u);
  EXPECT_EQ(s.requested - s0.requested, 1000u);
  EXPECT_EQ(s.reserved - s0.reserved, 1024u);
  EXPECT_EQ(s.cuda_mallocs - s0.cuda_mallocs, 1u);
  EXPECT_GE(s.peak_allocated, s.allocated);
  rk::cuda_free(p);
  s = rk::cuda_memory_stats(0);
  EXPECT_EQ(s.allocated, s0.allocated);
  EXPECT_EQ(s.cached - s0.cached, 1024u);
  EXPECT_EQ(s.reserved - s0.reserved, 1024u);

  void* q = rk::cuda_alloc(700, 0);  // same class (1024): the same block, no cudaMalloc
  EXPECT_EQ(q, p);
  s = rk::cuda_memory_stats(0);
  EXPECT_EQ(s.cuda_mallocs - s0.cuda_mallocs, 1u);
  EXPECT_EQ(s.cache_hits - s0.cache_hits, 1u);
  EXPECT_EQ(s.cached, s0.cached);
  void* r = rk::cuda_alloc(1500, 0);  // class 1536: a new block
  EXPECT_NE(r, q);
  void* big = rk::cuda_alloc((size_t(3) << 20) + 1, 0);  // class 3.5 MiB
  s = rk::cuda_memory_stats(0);
  EXPECT_EQ(s.cuda_mallocs - s0.cuda_mallocs, 3u);
  EXPECT_EQ(s.allocated - s0.allocated, 1024u + 1536u + (size_t(7) << 19));
  EXPECT_GE(s.peak_allocated - s0.allocated, 1024u + 1536u + (size_t(7) << 19));

  // The blocks are real device memory.
  std::vector<unsigned char> host(700, 0);
  CUDA_OK(cudaMemset(q, 0x5a, 700));
  CUDA_OK(cudaMemcpy(host.data(), q, 700, cudaMemcpyDeviceToHost));
  EXPECT_EQ(std::count(host.begin(), host.end(), 0x5a), 700);
  CUDA_OK(cudaMemset(big, 0, (size_t(3) << 20) + 1));

  rk::cuda_free(q);
  rk::cuda_free(r);
  rk::cuda_free(big);
  rk::cuda_free(nullptr);  // no-op
  s = rk::cuda_memory_stats(0);
  EXPECT_EQ(s.allocated, s0.allocated);
  EXPECT_EQ(s.requested, s0.requested);
  rk::cuda_reset_peak_memory_stats(0);
  EXPECT_EQ(rk::cuda_memory_stats(0).peak_allocated, s.allocated);
  rk::cuda_empty_cache();
  s = rk::cuda_memory_stats(0);
  EXPECT_EQ(s.cached, 0u);
  EXPECT_EQ(s.reserved, s.allocated);
  EXPECT_GE(s.cuda_frees - s0.cuda_frees, 3u);
  EXPECT_EQ(rk::cuda_alloc(0, 0), nullptr);
}

TEST(CudaAllocator, BadFreesAndDevices) {
  RLFT_REQUIRE_GPU();
  int stack_value = 0;
  EXPECT_THROW(rk::cuda_free(&stack_value), rlft::Error);
  void* p = rk::cuda_alloc(64, 0);
  rk::cuda_free(p);
  EXPECT_THROW(rk::cuda_free(p), rlft::Error);  // double free
  EXPECT_THROW(rk::cuda_alloc(64, -1), rlft::Error);
  std::string reason;
  const int n = rk::cuda::device_count(&reason);
  EXPECT_THROW(rk::cuda_alloc(64, n), rlft::Error);  // a device that does not exist
  const rk::CudaMemoryStats none = rk::cuda_memory_stats(63);
  EXPECT_EQ(none.reserved, 0u);
}

// Eight threads allocating and freeing blocks of a few classes at once: no block is ever
// handed to two owners, and the books balance at the end.
TEST(CudaAllocator, ThreadSafe) {
  RLFT_REQUIRE_GPU();
  const rk::CudaMemoryStats s0 = rk::cuda_memory_stats(0);
  std::mutex mu;
  std::set<void*> owned;
  std::vector<std::string> errors;
  auto worker = [&](int id) {
    std::mt19937 rng{uint32_t(id)};
    std::vector<void*> mine;
    for (int it = 0; it < 2000; ++it) {
      if (mine.empty() || (rng() % 3 != 0 && mine.size() < 16)) {
        void* p = rk::cuda_alloc(size_t(1) << (6 + rng() % 8), 0);
        std::lock_guard<std::mutex> lock(mu);
        if (!owned.insert(p).second) errors.push_back("block handed out twice");
        mine.push_back(p);
      } else {
        void* p = mine.back();
        mine.pop_back();
        {
          std::lock_guard<std::mutex> lock(mu);
          owned.erase(p);
        }
        rk::cuda_free(p);
      }
    }
    for (void* p : mine) {
      {
        std::lock_guard<std::mutex> lock(mu);
        owned.erase(p);
      }
      rk::cuda_free(p);
    }
  };
  std::vector<std::thread> threads;
  for (int id = 0; id < 8; ++id) threads.emplace_back(worker, id);
  for (std::thread& t : threads) t.join();
  EXPECT_TRUE(errors.empty()) << errors.front();
  const rk::CudaMemoryStats s = rk::cuda_memory_stats(0);
  EXPECT_EQ(s.allocated, s0.allocated);
  EXPECT_EQ(s.requested, s0.requested);
  EXPECT_EQ(s.alloc_calls - s0.alloc_calls,
            s.cache_hits - s0.cache_hits + s.cuda_mallocs - s0.cuda_mallocs);
}

#endif  // RLFT_HAVE_CUDA

}  // namespace
