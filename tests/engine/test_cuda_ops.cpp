// Engine ops on CUDA tensors against the CPU path, which is the reference: every op forward
// and backward (gradients through autograd), at odd sizes (1, 7, 33, 1000, 4097 elements),
// non-contiguous and broadcast inputs, reductions over first/middle/last/several dims, and
// adversarial values (spiked logits, large layer-norm offsets). Plus an MLP trained 3 AdamW
// steps and a tiny GPT forward+backward on both devices.
//
// Tolerances: float32 results are compared with rtol 1e-5 plus a small atol (float math on
// the GPU — expf, tanhf, FMA contraction, a different summation order — differs from the CPU
// in the last few ulp; the CPU's float tanh is itself a ~1e-7 approximation); float64 with
// rtol 1e-12. Ops whose result goes through a long sum (matmul, reductions) get atol scaled
// by the magnitude of the terms (stated at each use).
//
// The GPU tests skip with the runtime's reason when no device answers; the host-side pieces
// (kernels/cuda_ops.h's geometry squeezing, the TF32 flag) run everywhere.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>

#include "engine/cuda.h"
#include "engine/nn.h"
#include "engine/ops.h"
#include "engine/optim.h"
#include "kernels/cuda_ops.h"
#include "models/gpt.h"
#include "tests/test_util.h"

namespace rlft {
namespace {

#define RLFT_REQUIRE_GPU()                                                        \
  do {                                                                            \
    std::string reason_;                                                          \
    if (cuda::device_count(&reason_) == 0) GTEST_SKIP() << "no GPU: " << reason_; \
  } while (0)

const Device kGpu = Device::cuda(0);

// Random normal values (seeded) as a CPU tensor of `dt`, scaled.
Tensor random(const Shape& shape, DType dt, uint64_t seed, double scale = 1.0) {
  Generator g(seed);
  return mul(randn(shape, &g, DType::f64), scale).to(dt);
}

double rtol_of(DType dt) { return dt == DType::f64 ? 1e-12 : 1e-5; }
double atol_of(DType dt) { return dt == DType::f64 ? 1e-12 : 1e-6; }

// Elementwise |gpu − cpu| ≤ atol + rtol·|cpu| (NaN matches NaN, inf matches the same inf).
void expect_close(const Tensor& gpu, const Tensor& cpu, double rtol, double atol,
                  const std::string& what) {
  ASSERT_TRUE(gpu.defined()) << what << ": gpu tensor undefined";
  ASSERT_TRUE(cpu.defined()) << what << ": cpu tensor undefined";
  EXPECT_TRUE(gpu.device().is_cuda()) << what << ": result on " << gpu.device();
  ASSERT_EQ(gpu.shape(), cpu.shape()) << what;
  EXPECT_EQ(gpu.dtype(), cpu.dtype()) << what;
  const std::vector<double> g = gpu.to_vector(), c = cpu.to_vector();
  int bad = 0;
  for (size_t i = 0; i < c.size(); ++i) {
    if (std::isnan(c[i]) && std::isnan(g[i])) continue;
    if (std::isinf(c[i]) && g[i] == c[i]) continue;
    if (!(std::abs(g[i] - c[i]) <= atol + rtol * std::abs(c[i]))) {
      if (++bad <= 5)
        ADD_FAILURE() << what << ": element " << i << " gpu " << g[i] << " cpu " << c[i];
    }
  }
  EXPECT_EQ(bad, 0) << what << ": " << bad << " of " << c.size() << " elements differ";
}
void expect_close(const Tensor& gpu, const Tensor& cpu, DType dt, const std::string& what,
                  double atol_scale = 1) {
  expect_close(gpu, cpu, rtol_of(dt), atol_of(dt) * atol_scale, what);
}

// Runs f on CPU inputs and on their device copies (all requiring grad when floating), checks
// the outputs, then backpropagates sum(out · w) with the same random w on both and checks
// every input's gradient.
void check_op(const std::string& name, const std::vector<Tensor>& cpu_inputs,
              const std::function<Tensor(const std::vector<Tensor>&)>& f, double atol_scale = 1) {
  std::vector<Tensor> xc, xg;
  for (const Tensor& t : cpu_inputs) {
    Tensor c = t.detach().clone();
    if (is_floating(c.dtype())) c.set_requires_grad();
    Tensor g = t.detach().to(kGpu);
    if (is_floating(g.dtype())) g.set_requires_grad();
    xc.push_back(c);
    xg.push_back(g);
  }
  const Tensor yc = f(xc), yg = f(xg);
  const DType dt = yc.dtype();
  if (!is_floating(dt)) {
    EXPECT_EQ(yg.to_vector(), yc.to_vector()) << name;
    return;
  }
  expect_close(yg, yc, dt, name + " forward", atol_scale);
  if (!yc.requires_grad()) return;
  const Tensor w = random(yc.shape(), dt, 99);
  sum(mul(yc, w)).backward();
  sum(mul(yg, w.to(kGpu))).backward();
  for (size_t i = 0; i < xc.size(); ++i) {
    if (!xc[i].requires_grad()) continue;
    const Tensor gc = xc[i].grad(), gg = xg[i].grad();
    ASSERT_EQ(gc.defined(), gg.defined()) << name << " grad " << i;
    if (gc.defined())
      expect_close(gg, gc, dt, name + " grad of input " + std::to_string(i), atol_scale);
  }
}

const std::vector<int64_t> kSizes = {1, 7, 33, 1000, 4097};

// ---- host-side pieces (run everywhere) --------------------------------------------------

TEST(CudaOpsGeometry, ContiguousOperandsSqueezeToOneDimension) {
  const Shape shape{2, 3, 4};
  const Shape st = contiguous_strides(shape);
  const auto g =
      kernels::cuda_ops::make_geometry<2>(shape.size(), shape.data(), {st.data(), st.data()});
  EXPECT_EQ(g.ndim, 1);
  EXPECT_EQ(g.numel, 24);
  EXPECT_EQ(g.shape[0], 24);
  EXPECT_TRUE(g.contiguous);
}

TEST(CudaOpsGeometry, TransposedAndBroadcastOperandsKeepTheirStrides) {
  // out [3, 2] contiguous; a = a [2, 3] transposed (strides 1, 3); b broadcast along dim 0.
  const Shape shape{3, 2};
  const Shape so{2, 1}, sa{1, 3}, sb{0, 1};
  const auto g = kernels::cuda_ops::make_geometry<3>(shape.size(), shape.data(),
                                                     {so.data(), sa.data(), sb.data()});
  EXPECT_EQ(g.ndim, 2);
  EXPECT_FALSE(g.contiguous);
  EXPECT_EQ(g.strides[1][0], 1);
  EXPECT_EQ(g.strides[1][1], 3);
  EXPECT_EQ(g.strides[2][0], 0);
}

TEST(CudaOpsGeometry, SizeOneDimsDropAndMergeableDimsMerge) {
  // [4, 1, 5, 6] with the first operand contiguous and the second a column slice of a wider
  // [4, 5, 8] buffer: dims 2 and 3 cannot merge for operand 1 (stride 8 ≠ 6·1).
  const Shape shape{4, 1, 5, 6};
  const Shape s0 = contiguous_strides(shape);
  const Shape s1{40, 40, 8, 1};
  const auto g =
      kernels::cuda_ops::make_geometry<2>(shape.size(), shape.data(), {s0.data(), s1.data()});
  EXPECT_EQ(g.ndim, 2);  // [4·5, 6]: dims 0 and 2 merge (30 = 5·6 and 40 = 5·8), 3 stays
  EXPECT_EQ(g.shape[0], 20);
  EXPECT_EQ(g.shape[1], 6);
  EXPECT_EQ(g.strides[1][0], 8);
  EXPECT_FALSE(g.contiguous);
}

TEST(CudaOpsGeometry, EmptyAndScalarShapes) {
  const Shape empty{3, 0, 2};
  const Shape se = contiguous_strides(empty);
  EXPECT_EQ(kernels::cuda_ops::make_geometry<1>(empty.size(), empty.data(), {se.data()}).numel, 0);
  const Shape scalar;
  const auto g = kernels::cuda_ops::make_geometry<1>(0, scalar.data(), {scalar.data()});
  EXPECT_EQ(g.numel, 1);
  EXPECT_EQ(g.ndim, 0);
  EXPECT_TRUE(g.contiguous);
}

TEST(CudaOps, Tf32IsOptInAndTogglable) {
  EXPECT_FALSE(cuda::allow_tf32()) << "TF32 must be off by default";
  cuda::set_allow_tf32(true);
  EXPECT_TRUE(cuda::allow_tf32());
  cuda::set_allow_tf32(false);
  EXPECT_FALSE(cuda::allow_tf32());
}

// ---- errors ----------------------------------------------------------------------------

TEST(CudaOps, MixedDevicesAreOneClearError) {
  RLFT_REQUIRE_GPU();
  const Tensor c = Tensor::ones({3}), g = Tensor::ones({3}).to(kGpu);
  const std::string msg = testing::error_of([&] { (void)add(c, g); });
  EXPECT_NE(msg.find("add: tensors on different devices (cpu and cuda:0)"), std::string::npos)
      << msg;
  EXPECT_NE(testing::error_of([&] {
              (void)matmul(g.reshape({1, 3}), c.reshape({3, 1}));
            }).find("matmul"),
            std::string::npos);
  EXPECT_NE(testing::error_of([&] { (void)where(gt(g, 0.0), g, c); }).find("where"),
            std::string::npos);
}

// Indices (and cross_entropy's targets) are checked by the device kernels, not on the host: a
// bad one reads as 0 (adds nothing backward) and the first is reported, naming the op, by the next
// synchronising call (a copy to the host, cuda::synchronize) — then cleared, so the next one is
// reported too.
TEST(CudaOps, BadIndicesOnTheDeviceAreReportedAtTheNextSynchronisation) {
  RLFT_REQUIRE_GPU();
  const Tensor w = Tensor::ones({4, 3}).to(kGpu);
  const Tensor idx = Tensor::from_vector(std::vector<int64_t>{0, 4}, {2}).to(kGpu);
  const Tensor out = embedding(w, idx);  // returns without a host round trip
  std::string msg = testing::error_of([&] { (void)out.to_vector(); });
  EXPECT_NE(msg.find("embedding: index 4 out of range [0, 4) at position 1"), std::string::npos) << msg;
  EXPECT_EQ(out.to_vector(), (std::vector<double>{1, 1, 1, 0, 0, 0})) << "reported once; the bad row reads 0";

  const Tensor a = Tensor::ones({5, 7}).to(kGpu);
  const Tensor sel = Tensor::from_vector(std::vector<int64_t>{6, -1, 2}, {3}).to(kGpu);
  (void)index_select(a, 1, sel);
  msg = testing::error_of([&] { cuda::synchronize(0); });
  EXPECT_NE(msg.find("index_select: index -1 out of range [0, 7) at position 1"), std::string::npos) << msg;

  const Tensor gidx = Tensor::from_vector(std::vector<int64_t>{0, 1, 2, 3, 4, 9}, {2, 3}).to(kGpu);
  Tensor src = Tensor::ones({2, 7}).to(kGpu);
  src.set_requires_grad();
  const Tensor gathered = gather(src, 1, gidx);
  msg = testing::error_of([&] { (void)gathered.to_vector(); });
  EXPECT_NE(msg.find("gather: index 9 out of range [0, 7) at position 5"), std::string::npos) << msg;
  sum(gathered).backward();  // the bad index adds nothing (and is reported again)
  msg = testing::error_of([&] { (void)src.grad().to_vector(); });
  EXPECT_NE(msg.find("gather: index 9 out of range [0, 7)"), std::string::npos) << msg;
  EXPECT_EQ(src.grad().to_vector(),
            (std::vector<double>{1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 1, 1, 0, 0}));

  // cross_entropy's targets: a bad one is reported the same way, and its row reads as ignored
  // (loss 0, no gradient, not counted in the mean): here the mean is row 0's log 4 alone.
  Tensor logits = Tensor::zeros({3, 4}).to(kGpu);
  logits.set_requires_grad();
  const Tensor tgt = Tensor::from_vector(std::vector<int64_t>{2, 4, -100}, {3}).to(kGpu);
  const Tensor ce = cross_entropy(logits, tgt);
  msg = testing::error_of([&] { (void)ce.item(); });
  EXPECT_NE(msg.find("cross_entropy: index 4 out of range [0, 4) at position 1"), std::string::npos)
      << msg;
  EXPECT_NEAR(ce.item(), std::log(4.0), 1e-6);
  ce.backward();
  const std::vector<double> want{0.25, 0.25, -0.75, 0.25, 0, 0, 0, 0, 0, 0, 0, 0};
  const std::vector<double> got = logits.grad().to_vector();
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < want.size(); ++i) EXPECT_NEAR(got[i], want[i], 1e-6) << "dlogits " << i;

  // one_hot: the bad index's row is all zeros.
  const Tensor oh = one_hot(Tensor::from_vector(std::vector<int64_t>{1, -2}, {2}).to(kGpu), 3);
  msg = testing::error_of([&] { (void)oh.to_vector(); });
  EXPECT_NE(msg.find("one_hot: index -2 out of range [0, 3) at position 1"), std::string::npos)
      << msg;
  EXPECT_EQ(oh.to_vector(), (std::vector<double>{0, 1, 0, 0, 0, 0}));
  EXPECT_NO_THROW(cuda::synchronize(0)) << "nothing pending";
}

// ---- elementwise -----------------------------------------------------------------------

TEST(CudaOps, UnaryOpsMatchTheCpuForwardAndBackward) {
  RLFT_REQUIRE_GPU();
  using F = std::function<Tensor(const Tensor&)>;
  // Inputs in (−3, 3); log/sqrt/pow/rdiv get positive inputs (|x| + 0.1).
  const std::vector<std::pair<std::string, F>> ops = {
      {"neg", [](const Tensor& x) { return neg(x); }},
      {"exp", [](const Tensor& x) { return exp(x); }},
      {"log", [](const Tensor& x) { return log(add(abs(x), 0.1)); }},
      {"sqrt", [](const Tensor& x) { return sqrt(add(abs(x), 0.1)); }},
      {"abs", [](const Tensor& x) { return abs(x); }},
      {"tanh", [](const Tensor& x) { return tanh(x); }},
      {"sigmoid", [](const Tensor& x) { return sigmoid(mul(x, 10.0)); }},
      {"relu", [](const Tensor& x) { return relu(x); }},
      {"gelu", [](const Tensor& x) { return gelu(x); }},
      {"softplus", [](const Tensor& x) { return softplus(mul(x, 20.0)); }},
      {"add_scalar", [](const Tensor& x) { return add(x, 2.5); }},
      {"mul_scalar", [](const Tensor& x) { return mul(x, -1.5); }},
      {"rsub", [](const Tensor& x) { return rsub(1.0, x); }},
      {"rdiv", [](const Tensor& x) { return rdiv(2.0, add(abs(x), 0.1)); }},
      {"pow2", [](const Tensor& x) { return pow(x, 2.0); }},
      {"pow1.5", [](const Tensor& x) { return pow(add(abs(x), 0.1), 1.5); }},
      {"clamp", [](const Tensor& x) { return clamp(x, -0.5, 0.7); }},
  };
  for (DType dt : {DType::f32, DType::f64}) {
    for (int64_t n : kSizes) {
      const Tensor x = random({n}, dt, 1 + n);
      for (const auto& [name, f] : ops) {
        check_op(
            name + " n=" + std::to_string(n) + " " + dtype_name(dt), {x},
            [&op = f](const std::vector<Tensor>& in) { return op(in[0]); }, /*atol_scale=*/10);
      }
    }
  }
}

TEST(CudaOps, UnaryOpsOnNonContiguousViews) {
  RLFT_REQUIRE_GPU();
  const Tensor x = random({33, 7}, DType::f32, 5);
  check_op("tanh of a transpose", {x},
           [](const std::vector<Tensor>& in) { return tanh(in[0].t()); });
  check_op("exp of a narrow", {x},
           [](const std::vector<Tensor>& in) { return exp(in[0].narrow(1, 2, 4)); });
  check_op("gelu of a permuted 3-d view", {random({4, 5, 6}, DType::f64, 6)},
           [](const std::vector<Tensor>& in) {
             return gelu(in[0].permute({2, 0, 1}));
           });
}

TEST(CudaOps, BinaryOpsBroadcastLikeTheCpu) {
  RLFT_REQUIRE_GPU();
  using F = std::function<Tensor(const Tensor&, const Tensor&)>;
  const std::vector<std::pair<std::string, F>> ops = {
      {"add", [](const Tensor& a, const Tensor& b) { return add(a, b); }},
      {"sub", [](const Tensor& a, const Tensor& b) { return sub(a, b); }},
      {"mul", [](const Tensor& a, const Tensor& b) { return mul(a, b); }},
      {"div", [](const Tensor& a, const Tensor& b) { return div(a, add(abs(b), 0.5)); }},
      {"minimum", [](const Tensor& a, const Tensor& b) { return minimum(a, b); }},
      {"maximum", [](const Tensor& a, const Tensor& b) { return maximum(a, b); }},
  };
  const std::vector<std::pair<Shape, Shape>> shapes = {
      {{1}, {1}},      {{7}, {7}},          {{4097}, {4097}}, {{1000}, {1}},
      {{7, 33}, {33}}, {{4, 1, 5}, {3, 1}}, {{1, 33}, {7, 1}}};
  for (DType dt : {DType::f32, DType::f64}) {
    for (const auto& [sa, sb] : shapes) {
      const Tensor a = random(sa, dt, 11), b = random(sb, dt, 12);
      for (const auto& [name, f] : ops) {
        check_op(
            name + " " + sa.to_string() + " " + sb.to_string() + " " + dtype_name(dt), {a, b},
            [&op = f](const std::vector<Tensor>& in) { return op(in[0], in[1]); }, 10);
      }
    }
  }
  // Non-contiguous operands: a transposed matrix against a contiguous one and a column.
  const Tensor a = random({33, 7}, DType::f32, 13), b = random({7, 33}, DType::f32, 14);
  check_op("mul of a transpose", {a, b},
           [](const std::vector<Tensor>& in) { return mul(in[0].t(), in[1]); });
  check_op("add of an expanded column", {a, random({7, 1}, DType::f32, 15)},
           [](const std::vector<Tensor>& in) {
             return add(in[0].t(), in[1].expand({7, 33}));
           });
}

TEST(CudaOps, ComparisonsWhereAndMasks) {
  RLFT_REQUIRE_GPU();
  for (DType dt : {DType::f32, DType::f64, DType::i64}) {
    // Small integers so ties occur.
    const Tensor a = mul(random({7, 33}, DType::f64, 21), 2.0).to(DType::i64).to(dt);
    const Tensor b = mul(random({33}, DType::f64, 22), 2.0).to(DType::i64).to(dt);
    const Tensor ag = a.to(kGpu), bg = b.to(kGpu);
    using F = std::function<Tensor(const Tensor&, const Tensor&)>;
    for (const auto& [name, f] : std::vector<std::pair<std::string, F>>{
             {"eq", [](const Tensor&x, const Tensor&y) { return eq(x, y); }},
             {"ne", [](const Tensor&x, const Tensor&y) { return ne(x, y); }},
             {"lt", [](const Tensor&x, const Tensor&y) { return lt(x, y); }},
             {"le", [](const Tensor&x, const Tensor&y) { return le(x, y); }},
             {"gt", [](const Tensor&x, const Tensor&y) { return gt(x, y); }},
             {"ge", [](const Tensor&x, const Tensor&y) { return ge(x, y); }}}) {
      const Tensor rg = f(ag, bg);
      EXPECT_TRUE(rg.device().is_cuda());
      EXPECT_EQ(rg.dtype(), DType::b8);
      EXPECT_EQ(rg.to_vector(), f(a, b).to_vector()) << name << " " << dt;
    }
    EXPECT_EQ(logical_not(lt(ag, bg)).to_vector(), logical_not(lt(a, b)).to_vector());
    EXPECT_EQ(where(lt(ag, bg), ag, bg).to_vector(), where(lt(a, b), a, b).to_vector());
  }
  // where and masked_fill with gradients, the mask broadcast.
  const Tensor x = random({5, 33}, DType::f32, 23), y = random({33}, DType::f32, 24);
  const Tensor mask = gt(random({5, 1}, DType::f32, 25), 0.0);
  check_op("where", {x, y}, [&](const std::vector<Tensor>& in) {
    return where(mask.to(in[0].device()), in[0], in[1]);
  });
  check_op("masked_fill", {x}, [&](const std::vector<Tensor>& in) {
    return masked_fill(in[0], mask.to(in[0].device()), -1e9);
  });
  check_op("lt with a scalar", {x}, [](const std::vector<Tensor>& in) { return lt(in[0], 0.25); });
}

TEST(CudaOps, DtypeCastsContiguousCopiesAndFills) {
  RLFT_REQUIRE_GPU();
  // Non-negative values: a negative float converted to bool (uint8) is undefined behaviour in
  // C++ and in CUDA alike, so the two devices need not agree there.
  const Tensor x = mul(abs(random({7, 33}, DType::f64, 31)), 3.0);
  for (DType from : {DType::f32, DType::f64, DType::i64, DType::b8}) {
    const Tensor src = from == DType::b8 ? gt(x, 1.0) : x.to(from);
    for (DType to : {DType::f32, DType::f64, DType::i64, DType::b8}) {
      EXPECT_EQ(src.to(kGpu).to(to).to_vector(), src.to(to).to_vector()) << from << " -> " << to;
      EXPECT_EQ(src.to(kGpu).t().to(to).to_vector(), src.t().to(to).to_vector())
          << "transposed " << from << " -> " << to;
    }
  }
  const Tensor v = random({4, 5, 6}, DType::f32, 32);
  EXPECT_EQ(v.to(kGpu).permute({2, 0, 1}).contiguous().to_vector(),
            v.permute({2, 0, 1}).contiguous().to_vector());
  EXPECT_EQ(v.to(kGpu).narrow(2, 1, 3).transpose(0, 1).contiguous().to_vector(),
            v.narrow(2, 1, 3).transpose(0, 1).contiguous().to_vector());
  EXPECT_EQ(Tensor::zeros({1000}, DType::f32, kGpu).to_vector(), std::vector<double>(1000, 0.0));
  EXPECT_EQ(Tensor::full({4097}, 2.5, DType::f64, kGpu).to_vector(),
            std::vector<double>(4097, 2.5));
  EXPECT_EQ(Tensor::ones({7}, DType::i64, kGpu).to_vector(), std::vector<double>(7, 1.0));
  // Filling a strided view touches only its elements.
  const Tensor g = Tensor::zeros({4, 6}, DType::f32, kGpu);
  g.narrow(1, 2, 3).fill_(7);
  const Tensor c = Tensor::zeros({4, 6});
  c.narrow(1, 2, 3).fill_(7);
  EXPECT_EQ(g.to_vector(), c.to_vector());
  // copy_ across devices, both ways, into views and with broadcasting.
  const Tensor dst = Tensor::zeros({4, 6}, DType::f32, kGpu);
  dst.narrow(1, 1, 3).copy_(Tensor::full({3}, 2.0));
  const Tensor ref = Tensor::zeros({4, 6});
  ref.narrow(1, 1, 3).copy_(Tensor::full({3}, 2.0));
  EXPECT_EQ(dst.to_vector(), ref.to_vector());
  const Tensor host = Tensor::zeros({6, 4});
  host.copy_(dst.t());
  EXPECT_EQ(host.to_vector(), ref.t().contiguous().to_vector());
}

TEST(CudaOps, ConcatStackAndViewsBackward) {
  RLFT_REQUIRE_GPU();
  const Tensor a = random({3, 7}, DType::f32, 41), b = random({3, 33}, DType::f32, 42);
  check_op("concat dim 1", {a, b}, [](const std::vector<Tensor>& in) {
    return concat({in[0], in[1]}, 1);
  });
  check_op("concat dim 0 of transposes", {a, random({5, 3}, DType::f32, 43)},
           [](const std::vector<Tensor>& in) {
             return concat({in[0].t(), in[1]}, 0);
           });
  check_op("stack", {a, random({3, 7}, DType::f32, 44)}, [](const std::vector<Tensor>& in) {
    return stack({in[0], in[1]}, 1);
  });
  check_op("narrow/select/expand", {random({5, 1, 6}, DType::f64, 45)},
           [](const std::vector<Tensor>& in) {
             return mul(in[0].narrow(0, 1, 3).expand({3, 4, 6}), in[0].select(0, 4));
           });
}

// ---- reductions --------------------------------------------------------------------------

TEST(CudaOps, ReductionsOverAnyDims) {
  RLFT_REQUIRE_GPU();
  const std::vector<std::vector<int64_t>> dim_sets = {{}, {0}, {1}, {2}, {0, 2}, {1, 2}, {-1}};
  for (DType dt : {DType::f32, DType::f64}) {
    const Tensor x = random({5, 7, 33}, dt, 51);
    for (const auto& dims : dim_sets) {
      std::string d = "[";
      for (int64_t v : dims) d += std::to_string(v) + ",";
      d += "] " + std::string(dtype_name(dt));
      // Sums of up to 1155 terms of magnitude ~1: allow a little more absolute error.
      check_op(
          "sum " + d, {x}, [&](const std::vector<Tensor>& in) { return sum(in[0], dims); }, 10);
      check_op(
          "sum keepdim " + d, {x},
          [&](const std::vector<Tensor>& in) { return sum(in[0], dims, true); }, 10);
      check_op(
          "mean " + d, {x}, [&](const std::vector<Tensor>& in) { return mean(in[0], dims); }, 10);
      check_op(
          "var " + d, {x}, [&](const std::vector<Tensor>& in) { return var(in[0], dims); }, 10);
    }
    for (int64_t dim : {0, 1, 2}) {
      const std::string d = std::to_string(dim) + " " + dtype_name(dt);
      check_op("max " + d, {x}, [&](const std::vector<Tensor>& in) { return max(in[0], dim); });
      check_op("min keepdim " + d, {x},
               [&](const std::vector<Tensor>& in) { return min(in[0], dim, true); });
      check_op("argmax " + d, {x},
               [&](const std::vector<Tensor>& in) { return argmax(in[0], dim); });
      check_op(
          "logsumexp " + d, {x},
          [&](const std::vector<Tensor>& in) { return logsumexp(in[0], dim); }, 10);
    }
    for (int64_t n : kSizes) {
      const Tensor v = random({n}, dt, 52 + n);
      check_op(
          "sum of all n=" + std::to_string(n), {v},
          [](const std::vector<Tensor>& in) { return sum(in[0]); }, 100);
      check_op("max of all n=" + std::to_string(n), {v},
               [](const std::vector<Tensor>& in) { return max(in[0]); });
    }
  }
  // Ties pick the first index; NaN wins; integer argmax.
  const Tensor t = Tensor::from_vector(std::vector<double>{1, 3, 3, 0, NAN, 2, 5, 5, 1}, {3, 3});
  EXPECT_EQ(argmax(t.to(kGpu), 1).to_vector(), argmax(t, 1).to_vector());
  EXPECT_EQ(argmax(t.to(kGpu), 0).to_vector(), argmax(t, 0).to_vector());
  const Tensor ti = Tensor::from_vector(std::vector<int64_t>{4, -2, 9, 9, 0, 1}, {2, 3});
  EXPECT_EQ(argmax(ti.to(kGpu), 1).to_vector(), argmax(ti, 1).to_vector());
  EXPECT_EQ(min(ti.to(kGpu), 0).to_vector(), min(ti, 0).to_vector());
  // Broadcasting backward (sum_to) through an add of a [33] bias to [7, 33].
  check_op("sum_to through broadcast",
           {random({7, 33}, DType::f32, 53), random({33}, DType::f32, 54)},
           [](const std::vector<Tensor>& in) { return add(in[0], in[1]); });
}

// Column reductions (inner > 1) take one of three layouts in kernels/cuda/reduce.cu, picked by
// shape; each shape below names the path it exercises (kernels/cuda/column_reduce.cuh's plan:
// 32-column tiles with 8 row slices, or all of inner < 32 columns with 256/inner slices; row
// splits over blocks when the tiles number fewer than 512).
struct ColumnCase {
  Shape shape;
  int64_t dim;
  const char* path;
};
const std::vector<ColumnCase> kColumnCases = {
    {{3, 5, 40}, 1, "version 1: R=5 below 8 slices"},
    {{40, 100, 520}, 1, "version 2, 680 tiles: no split"},
    {{9, 4097}, 0, "version 2, few rows many columns: 129 tiles, R too short to split"},
    {{20000, 37}, 0, "version 2, many rows few columns: 2 tiles, 78 row splits"},
    {{100000, 3}, 0, "version 2, inner < 32: 3 columns × 85 slices, 36 row splits"},
    {{7, 30000, 2}, 1, "version 2, inner = 2 and outer = 7: 128 slices, 7 row splits"},
    {{2, 4097, 33}, 1, "version 2, a half-empty second tile, 16 row splits"},
    // inner == 1 (the last dim): a block per row, or rows cut among blocks when too few.
    {{1, 300001}, 1, "split rows: one row, 36 row splits"},
    {{5, 100003}, 1, "split rows: 5 rows, 12 row splits each"},
    {{3, 9000}, 1, "rows: 3 rows too short to cut (8192 elements a split)"},
    {{520, 3000}, 1, "rows: 520 rows fill the GPU, a block each"},
};

// x rounded to a multiple of 0.5 (on the host; the engine has no round op).
Tensor halves(const Tensor& x) {
  std::vector<double> v = x.to_vector();
  for (double& e : v) e = std::round(e * 2) / 2;
  return Tensor::from_vector(v, x.shape()).to(x.dtype());
}

TEST(CudaOps, CumsumIsTheCpus) {
  RLFT_REQUIRE_GPU();
  // The same running sums in double (int64) as the CPU: the same bits, forward and backward.
  for (DType dt : {DType::f32, DType::f64}) {
    const Tensor x = random({5, 7, 33}, dt, 61);
    for (int64_t dim : {0, 1, 2, -1}) {
      check_op(
          "cumsum " + std::to_string(dim) + " " + dtype_name(dt), {x},
          [&](const std::vector<Tensor>& in) { return cumsum(in[0], dim); }, 0);
      EXPECT_EQ(cumsum(x.to(kGpu), dim).to_vector(), cumsum(x, dim).to_vector()) << dim;
    }
    for (int64_t n : kSizes) {
      const Tensor v = random({3, n}, dt, 62 + n);
      check_op(
          "cumsum rows n=" + std::to_string(n), {v},
          [](const std::vector<Tensor>& in) { return cumsum(in[0], 1); }, 0);
    }
  }
  const Tensor i =
      Tensor::from_vector(std::vector<int64_t>{(int64_t(1) << 53), 1, -4, 7, 0, 1}, {2, 3});
  EXPECT_EQ(cumsum(i.to(kGpu), 1).to_vector(), cumsum(i, 1).to_vector());
  EXPECT_EQ(cumsum(i.to(kGpu), 0).to_vector(), cumsum(i, 0).to_vector());
  const Tensor m = Tensor::from_bools({true, false, true, true, false, true}, {2, 3});
  const Tensor mg = cumsum(m.to(kGpu), 1);
  EXPECT_EQ(mg.dtype(), DType::i64);
  EXPECT_EQ(mg.to_vector(), cumsum(m, 1).to_vector());
}

TEST(CudaOps, ColumnReductionsAtEveryShape) {
  RLFT_REQUIRE_GPU();
  for (DType dt : {DType::f32, DType::f64}) {
    for (const ColumnCase& c : kColumnCases) {
      const std::string s = std::string(c.path) + " " + dtype_name(dt);
      const Tensor x = random(c.shape, dt, 201 + c.shape.numel());
      const int64_t R = c.shape[c.dim];
      // Both devices add in double and round once; the orders differ, so float results may
      // differ by an ulp of the sum (|sum| ~ √R).
      const double scale = std::sqrt(double(R)) * 10;
      check_op(
          "sum " + s, {x}, [&](const std::vector<Tensor>& in) { return sum(in[0], {c.dim}); },
          scale);
      check_op(
          "mean " + s, {x}, [&](const std::vector<Tensor>& in) { return mean(in[0], {c.dim}); },
          scale);
      // Values rounded to multiples of 0.5: many ties, which must go to the first index as on
      // the CPU, whatever order the row slices and splits meet in.
      const Tensor ties = halves(x);
      check_op("max " + s, {ties},
               [&](const std::vector<Tensor>& in) { return max(in[0], c.dim); });
      check_op("min " + s, {ties},
               [&](const std::vector<Tensor>& in) { return min(in[0], c.dim); });
      EXPECT_EQ(argmax(ties.to(kGpu), c.dim).to_vector(), argmax(ties, c.dim).to_vector()) << s;
      // One NaN late in a column: it wins over every number, in whichever split it lies.
      Tensor nan_in = ties.clone();
      nan_in.narrow(c.dim, R - 1, 1).narrow(int64_t(c.shape.size()) - 1, 0, 1).fill_(NAN);
      EXPECT_EQ(argmax(nan_in.to(kGpu), c.dim).to_vector(), argmax(nan_in, c.dim).to_vector())
          << "NaN " << s;
    }
  }
  const Tensor xi = Tensor::from_vector(std::vector<int64_t>(20000 * 37, 3), {20000, 37});
  EXPECT_EQ(argmax(xi.to(kGpu), 0).to_vector(), std::vector<double>(37, 0.0))
      << "all equal: the first index";
  // A full reduction is one row of every element: 2.1M elements in 256 row splits.
  for (DType dt : {DType::f32, DType::f64}) {
    const Tensor x = random({700, 3001}, dt, 211);
    const double scale = std::sqrt(700.0 * 3001.0) * 10;
    check_op(std::string("full sum ") + dtype_name(dt), {x},
             [&](const std::vector<Tensor>& in) { return sum(in[0]); }, scale);
    check_op(std::string("full mean ") + dtype_name(dt), {x},
             [&](const std::vector<Tensor>& in) { return mean(in[0]); }, scale);
    const Tensor ties = halves(x);
    EXPECT_EQ(argmax(ties.reshape({-1}).to(kGpu), 0).to_vector(),
              argmax(ties.reshape({-1}), 0).to_vector())
        << "full argmax " << dtype_name(dt);
  }
}

// The forced versions agree with each other, and a reduction repeated gives the same bits (no
// atomics anywhere).
TEST(CudaOps, ColumnReductionVersionsAgreeAndRepeat) {
  RLFT_REQUIRE_GPU();
  namespace co = kernels::cuda_ops;
  for (const ColumnCase& c : kColumnCases) {
    int64_t outer = 1, inner = 1;
    for (int64_t d = 0; d < c.dim; ++d) outer *= c.shape[d];
    for (int64_t d = c.dim + 1; d < int64_t(c.shape.size()); ++d) inner *= c.shape[d];
    const int64_t R = c.shape[c.dim];
    const Tensor x = random(c.shape, DType::f32, 301).to(kGpu);
    std::vector<std::vector<double>> sums, maxes, args;
    for (int version : {1, 2, 2}) {
      Tensor out = Tensor::empty({outer * inner}, DType::f32, kGpu);
      Tensor values = Tensor::empty({outer * inner}, DType::f32, kGpu);
      Tensor idx = Tensor::empty({outer * inner}, DType::i64, kGpu);
      co::sum(co::Type::f32, outer, R, inner, x.raw_data(), out.raw_data(), 0, version);
      co::extreme(co::Type::f32, outer, R, inner, x.raw_data(), values.raw_data(),
                  idx.data<int64_t>(), true, 0, version);
      sums.push_back(out.to_vector());
      maxes.push_back(values.to_vector());
      args.push_back(idx.to_vector());
    }
    EXPECT_EQ(sums[1], sums[2]) << "version 2 repeated, " << c.path;
    EXPECT_EQ(maxes[0], maxes[1]) << c.path;
    EXPECT_EQ(args[0], args[1]) << c.path;
    for (size_t k = 0; k < sums[0].size(); ++k)
      ASSERT_NEAR(sums[1][k], sums[0][k], 1e-6 * (1 + std::abs(sums[0][k]))) << c.path << " " << k;
  }
  EXPECT_THROW(co::sum(co::Type::f32, 2, 3, 4, nullptr, nullptr, 0, 3), Error);
  EXPECT_THROW(co::sum(co::Type::f32, 2, 3, 1, nullptr, nullptr, 0, 3), Error);
}

// ---- matmul / linear ---------------------------------------------------------------------

TEST(CudaOps, MatmulAllTransposeCasesAndBatches) {
  RLFT_REQUIRE_GPU();
  for (DType dt : {DType::f32, DType::f64}) {
    const std::string s = dtype_name(dt);
    const int64_t M = 33, K = 7, N = 65;
    // Stored row-major or as transposed views: all four (ta, tb) combinations.
    const Tensor a = random({M, K}, dt, 61), at = random({K, M}, dt, 62);
    const Tensor b = random({K, N}, dt, 63), bt = random({N, K}, dt, 64);
    // K-term dot products of unit normals: atol ~ 1e-6·√K·(a few).
    check_op(
        "matmul NN " + s, {a, b},
        [](const std::vector<Tensor>& in) { return matmul(in[0], in[1]); }, 10);
    check_op(
        "matmul TN " + s, {at, b},
        [](const std::vector<Tensor>& in) { return matmul(in[0].t(), in[1]); }, 10);
    check_op(
        "matmul NT " + s, {a, bt},
        [](const std::vector<Tensor>& in) { return matmul(in[0], in[1].t()); }, 10);
    check_op(
        "matmul TT " + s, {at, bt},
        [](const std::vector<Tensor>& in) { return matmul(in[0].t(), in[1].t()); }, 10);
    check_op(
        "matmul batched broadcast " + s, {random({2, 1, 5, K}, dt, 65), random({3, K, 4}, dt, 66)},
        [](const std::vector<Tensor>& in) { return matmul(in[0], in[1]); }, 10);
    check_op(
        "matmul batched transposed " + s, {random({3, K, 5}, dt, 67), random({3, 4, K}, dt, 68)},
        [](const std::vector<Tensor>& in) {
          return matmul(in[0].transpose(1, 2), in[1].transpose(1, 2));
        },
        10);
    check_op(
        "matmul vector @ matrix " + s, {random({K}, dt, 69), b},
        [](const std::vector<Tensor>& in) { return matmul(in[0], in[1]); }, 10);
    check_op(
        "matmul matrix @ vector " + s, {a, random({K}, dt, 70)},
        [](const std::vector<Tensor>& in) { return matmul(in[0], in[1]); }, 10);
    check_op("matmul 1x1 " + s, {random({1, 1}, dt, 71), random({1, 1}, dt, 72)},
             [](const std::vector<Tensor>& in) { return matmul(in[0], in[1]); });
    // A long inner dimension: 1000-term sums.
    check_op(
        "matmul K=1000 " + s, {random({7, 1000}, dt, 73), random({1000, 33}, dt, 74)},
        [](const std::vector<Tensor>& in) { return matmul(in[0], in[1]); }, 100);
    check_op(
        "linear with bias " + s,
        {random({4, 3, K}, dt, 75), random({N, K}, dt, 76), random({N}, dt, 77)},
        [](const std::vector<Tensor>& in) { return linear(in[0], in[1], in[2]); }, 10);
    check_op(
        "linear without bias " + s, {random({5, K}, dt, 78), random({N, K}, dt, 79)},
        [](const std::vector<Tensor>& in) { return linear(in[0], in[1]); }, 10);
    check_op(
        "linear of a transposed input " + s, {random({K, 5}, dt, 80), random({N, K}, dt, 81)},
        [](const std::vector<Tensor>& in) { return linear(in[0].t(), in[1]); }, 10);
  }
}

TEST(CudaOps, Tf32MatmulIsCloseButOptIn) {
  RLFT_REQUIRE_GPU();
  const Tensor a = random({64, 256}, DType::f32, 82), b = random({256, 48}, DType::f32, 83);
  const Tensor ref = matmul(a, b);
  cuda::set_allow_tf32(true);
  const Tensor fast = matmul(a.to(kGpu), b.to(kGpu));
  cuda::set_allow_tf32(false);
  // TF32 rounds the inputs to 10 mantissa bits: ~1e-3 relative per product, √256 terms.
  expect_close(fast, ref, 1e-2, 5e-2, "tf32 matmul");
  expect_close(matmul(a.to(kGpu), b.to(kGpu)), ref, 1e-5, 1e-4,
               "matmul after tf32 is switched off");
}

// ---- neural-network ops ------------------------------------------------------------------

TEST(CudaOps, SoftmaxAndLogSoftmaxWithSpikedLogits) {
  RLFT_REQUIRE_GPU();
  for (DType dt : {DType::f32, DType::f64}) {
    for (int64_t V : kSizes) {
      // Spikes: one logit per row 30 above the rest, so softmax is far from flat and the max
      // subtraction matters; a −inf entry is a masked-out class.
      Tensor x = random({3, V}, dt, 91 + V, 2.0);
      std::vector<double> v = x.to_vector();
      for (int64_t r = 0; r < 3; ++r) v[size_t(r * V + (r * 7) % V)] += 30;
      if (V > 1) v[size_t(V - 1)] = -INFINITY;
      x = Tensor::from_vector(v, {3, V}).to(dt);
      const std::string s = "V=" + std::to_string(V) + " " + dtype_name(dt);
      check_op("softmax " + s, {x},
               [](const std::vector<Tensor>& in) { return softmax(in[0], -1); });
      check_op(
          "log_softmax " + s, {x},
          [](const std::vector<Tensor>& in) { return log_softmax(in[0], -1); }, 10);
    }
    const Tensor x = random({5, 7, 33}, dt, 92, 3.0);
    check_op("softmax over dim 0", {x},
             [](const std::vector<Tensor>& in) { return softmax(in[0], 0); });
    check_op(
        "log_softmax over dim 1", {x},
        [](const std::vector<Tensor>& in) { return log_softmax(in[0], 1); }, 10);
  }
}

TEST(CudaOps, CrossEntropyAllReductionsWithIgnoredRows) {
  RLFT_REQUIRE_GPU();
  for (DType dt : {DType::f32, DType::f64}) {
    for (int64_t C : {1, 7, 1000}) {
      const int64_t N = 33;
      const Tensor logits = random({N, C}, dt, 101 + C, 3.0);
      std::vector<int64_t> t(N);
      for (int64_t i = 0; i < N; ++i) t[size_t(i)] = i % 5 == 0 ? -100 : (i * 13) % C;
      const Tensor targets = Tensor::from_vector(t, {N});
      for (const char* red : {"mean", "sum", "none"}) {
        check_op(
            std::string("cross_entropy ") + red + " C=" + std::to_string(C) + " " + dtype_name(dt),
            {logits},
            [&](const std::vector<Tensor>& in) {
              return cross_entropy(in[0], targets.to(in[0].device()), -100, red);
            },
            10);
      }
    }
  }
}

TEST(CudaOps, LayerNormWithLargeMagnitudes) {
  RLFT_REQUIRE_GPU();
  for (DType dt : {DType::f32, DType::f64}) {
    for (int64_t C : {1, 7, 33, 1000, 4097}) {
      // An offset of 1e3 on unit noise: a one-pass variance would cancel; two passes do not.
      const Tensor x = add(random({5, C}, dt, 111 + C), 1e3);
      const Tensor w = random({C}, dt, 112), b = random({C}, dt, 113);
      const std::string s = "C=" + std::to_string(C) + " " + dtype_name(dt);
      // Gradients of normalised values carry rstd ~ 1: the float atol covers C-term sums.
      check_op(
          "layer_norm affine " + s, {x, w, b},
          [](const std::vector<Tensor>& in) { return layer_norm(in[0], in[1], in[2]); }, 100);
      check_op(
          "layer_norm plain " + s, {x},
          [](const std::vector<Tensor>& in) { return layer_norm(in[0], Tensor(), Tensor()); }, 100);
    }
  }
}

// LayerNorm's dw/db are column sums over the N rows (kernels/cuda/layer_norm.cu picks version
// 1 below 8 rows, else column_reduce.cuh's tiles with row splits when C/32 tiles are few).
TEST(CudaOps, LayerNormBackwardAtEveryShape) {
  RLFT_REQUIRE_GPU();
  struct Case {
    int64_t N, C;
    const char* path;
  };
  const Case cases[] = {{3, 768, "version 1: N=3"},
                        {50, 1, "version 2, C=1: 256 slices"},
                        {50, 33, "version 2, 2 tiles, no split"},
                        {6000, 768, "version 2, 24 tiles, 23 row splits"},
                        {20000, 7, "version 2, C=7: 36 slices, 17 row splits"},
                        {300, 20000, "version 2, 625 tiles: no split"}};
  for (DType dt : {DType::f32, DType::f64}) {
    for (const Case& c : cases) {
      const Tensor x = add(random({c.N, c.C}, dt, 211 + c.C), 3.0);
      const Tensor w = random({c.C}, dt, 212), b = random({c.C}, dt, 213);
      const std::string s = std::string(c.path) + " " + dtype_name(dt);
      // dw, db are sums of N terms of magnitude ~1, added in double on both devices in
      // different orders: float results may differ by an ulp of |sum| ~ √N.
      const double scale = 100 * std::sqrt(double(c.N));
      check_op(
          "layer_norm " + s, {x, w, b},
          [](const std::vector<Tensor>& in) { return layer_norm(in[0], in[1], in[2]); }, scale);
    }
  }
  // The forced versions agree, and version 2 repeats bit for bit.
  namespace co = kernels::cuda_ops;
  const int64_t N = 6000, C = 768;
  const Tensor x = random({N, C}, DType::f32, 221).to(kGpu), g = random({N, C}, DType::f32, 222).to(kGpu);
  Tensor y = Tensor::empty({N, C}, DType::f32, kGpu);
  Tensor stats = Tensor::empty({2 * N}, DType::f64, kGpu);
  double* mean = stats.data<double>();
  co::layer_norm_forward(co::Type::f32, N, C, x.raw_data(), nullptr, nullptr, 1e-5, y.raw_data(), mean,
                         mean + N, 0);
  std::vector<std::vector<double>> dws, dbs;
  for (int version : {1, 2, 2}) {
    Tensor dw = Tensor::empty({C}, DType::f32, kGpu), db = Tensor::empty({C}, DType::f32, kGpu);
    co::layer_norm_backward(co::Type::f32, N, C, x.raw_data(), nullptr, mean, mean + N, g.raw_data(),
                            nullptr, dw.raw_data(), db.raw_data(), 0, version);
    dws.push_back(dw.to_vector());
    dbs.push_back(db.to_vector());
  }
  EXPECT_EQ(dws[1], dws[2]);
  EXPECT_EQ(dbs[1], dbs[2]);
  for (int64_t j = 0; j < C; ++j) {
    ASSERT_NEAR(dws[1][size_t(j)], dws[0][size_t(j)], 1e-6 * (1 + std::abs(dws[0][size_t(j)]))) << j;
    ASSERT_NEAR(dbs[1][size_t(j)], dbs[0][size_t(j)], 1e-6 * (1 + std::abs(dbs[0][size_t(j)]))) << j;
  }
}

TEST(CudaOps, EmbeddingGatherIndexSelectOneHot) {
  RLFT_REQUIRE_GPU();
  for (DType dt : {DType::f32, DType::f64}) {
    const Tensor w = random({11, 33}, dt, 121);
    // Repeated indices: the backward must accumulate (atomicAdd) into the same row.
    const Tensor idx = Tensor::from_vector(std::vector<int64_t>{3, 0, 3, 10, 3, 7}, {2, 3});
    check_op(std::string("embedding ") + dtype_name(dt), {w}, [&](const std::vector<Tensor>& in) {
      return embedding(in[0], idx.to(in[0].device()));
    });
    const Tensor sel = Tensor::from_vector(std::vector<int64_t>{2, 2, 0, 6}, {4});
    const Tensor a = random({5, 7, 3}, dt, 122);
    check_op(std::string("index_select dim 1 ") + dtype_name(dt), {a},
             [&](const std::vector<Tensor>& in) {
               return index_select(in[0], 1, sel.to(in[0].device()));
             });
    check_op(std::string("index_select dim 0 of a transpose ") + dtype_name(dt), {a},
             [&](const std::vector<Tensor>& in) {
               return index_select(in[0].transpose(0, 1), 0, sel.to(in[0].device()));
             });
    std::vector<int64_t> gi;
    for (int i = 0; i < 5 * 4 * 3; ++i) gi.push_back((i * 5) % 7);
    const Tensor gidx = Tensor::from_vector(gi, {5, 4, 3});
    check_op(
        std::string("gather dim 1 ") + dtype_name(dt), {a},
        [&](const std::vector<Tensor>& in) { return gather(in[0], 1, gidx.to(in[0].device())); });
    check_op(std::string("gather of a permuted view ") + dtype_name(dt),
             {random({7, 5, 3}, dt, 123)}, [&](const std::vector<Tensor>& in) {
               return gather(in[0].permute({1, 0, 2}), 1, gidx.to(in[0].device()));
             });
  }
  const Tensor ids = Tensor::from_vector(std::vector<int64_t>{0, 4, 2, 4}, {2, 2});
  EXPECT_EQ(one_hot(ids.to(kGpu), 5).to_vector(), one_hot(ids, 5).to_vector());
  EXPECT_EQ(one_hot(ids.to(kGpu), 5, DType::i64).dtype(), DType::i64);
}

TEST(CudaOps, DropoutDrawsTheSameMaskAsTheCpu) {
  RLFT_REQUIRE_GPU();
  for (DType dt : {DType::f32, DType::f64}) {
    for (int64_t n : kSizes) {
      Generator gc(1234), gg(1234);
      gc.reserve(5);
      gg.reserve(5);  // a stream already in use: the offset must carry over
      const Tensor x = random({n}, dt, 131);
      const Tensor yc = dropout(x, 0.3, true, &gc);
      const Tensor yg = dropout(x.to(kGpu), 0.3, true, &gg);
      EXPECT_EQ(yg.to_vector(), yc.to_vector()) << "n=" << n << " " << dt;
      EXPECT_EQ(gg.offset(), gc.offset()) << "both devices consume the same blocks";
    }
  }
  check_op("dropout backward", {random({7, 33}, DType::f32, 132)},
           [](const std::vector<Tensor>& in) {
             Generator g(77);
             return dropout(in[0], 0.5, true, &g);
           });
}

// rand, randn and arange are created on the device from the same counter-based stream (and the
// same arithmetic) as on the CPU; the generator ends where the CPU's does.
TEST(CudaOps, RandRandnAndArangeOnTheDeviceMatchTheCpu) {
  RLFT_REQUIRE_GPU();
  for (DType dt : {DType::f32, DType::f64}) {
    for (const Shape& shape : std::vector<Shape>{{0}, {1}, {7}, {33}, {1000}, {4097}, {7, 33}}) {
      const std::string s = shape.numel() == 0 ? "empty" : std::to_string(shape.numel());
      Generator gc(4321), gg(4321);
      gc.reserve(3);
      gg.reserve(3);  // a stream already in use: the offset must carry over
      const Tensor uc = rand(shape, &gc, dt), ug = rand(shape, &gg, dt, kGpu);
      EXPECT_TRUE(ug.device().is_cuda());
      EXPECT_EQ(ug.shape(), uc.shape());
      EXPECT_EQ(ug.to_vector(), uc.to_vector()) << "rand n=" << s << " " << dt;
      EXPECT_EQ(gg.offset(), gc.offset());
      const Tensor nc = randn(shape, &gc, dt), ng = randn(shape, &gg, dt, kGpu);
      EXPECT_EQ(gg.offset(), gc.offset());
      // Box-Muller through CUDA's double log/cos/sin (1-2 ulp from glibc's): doubles agree to
      // ~1e-15; a float is the same bits unless the double lies within an ulp of a float
      // rounding boundary, so allow one float ulp (and count how often it happens).
      const std::vector<double> a = ng.to_vector(), b = nc.to_vector();
      ASSERT_EQ(a.size(), b.size());
      int not_bitwise = 0;
      for (size_t i = 0; i < a.size(); ++i) {
        if (a[i] != b[i]) ++not_bitwise;
        const double tol = dt == DType::f64 ? 1e-14 * (1 + std::abs(b[i]))
                                            : 1.2e-7 * std::abs(b[i]) + 1e-30;
        EXPECT_NEAR(a[i], b[i], tol) << "randn n=" << s << " element " << i << " " << dt;
      }
      if (dt == DType::f32) {
        EXPECT_LE(not_bitwise, 2) << "randn n=" << s;
      }
    }
  }
  for (DType dt : {DType::i64, DType::f32, DType::f64}) {
    EXPECT_EQ(Tensor::arange(4097, dt, kGpu).to_vector(), Tensor::arange(4097, dt).to_vector()) << dt;
    EXPECT_EQ(Tensor::arange(-3.0, 3.0, 0.01, dt, kGpu).to_vector(),
              Tensor::arange(-3.0, 3.0, 0.01, dt).to_vector()) << dt;
    EXPECT_EQ(Tensor::arange(5.0, 0.0, -0.7, dt, kGpu).to_vector(),
              Tensor::arange(5.0, 0.0, -0.7, dt).to_vector()) << dt;
  }
  EXPECT_TRUE(Tensor::arange(3, DType::i64, kGpu).device().is_cuda());
  EXPECT_EQ(Tensor::arange(0, DType::i64, kGpu).numel(), 0);
  // The initialisers draw where their tensor lives; uniform_ is bitwise the CPU's.
  Generator gc(9), gg(9);
  const Tensor pc = Tensor::empty({33, 7}), pg = Tensor::empty({33, 7}, DType::f32, kGpu);
  nn::uniform_(pc, -0.5, 0.5, gc);
  nn::uniform_(pg, -0.5, 0.5, gg);
  EXPECT_EQ(pg.to_vector(), pc.to_vector());
  nn::normal_(pc, 1.0, 0.02, gc);
  nn::normal_(pg, 1.0, 0.02, gg);
  expect_close(pg, pc, 1.2e-7, 1e-30, "normal_");
}

// ---- fused causal self-attention ----------------------------------------------------------

// kernels/cuda/attention.cu against the CPU kernel through the engine op, forward and the
// gradients of qkv (and of a KV cache's keys and values). Shapes exercise each path: T = 33
// and Tk = 70 leave partial 32-key (or 32-query) chunks; HS = 5 (< one column per lane), 64,
// 80 (three columns per lane, the last partial) and 256 (the limit); left padding with one
// single-token row; self_visible off so padding queries have empty rows (output 0, no
// gradient); a KV cache with padding among the cached keys; q, k, v scaled ×3 so the softmax
// rows are peaked. Float tolerances: sums of up to Tk·HS products in a different order
// (the CPU's GEMM vs per-lane dot products), exp within 2 ulp.
TEST(CudaOps, FusedAttentionMatchesTheCpu) {
  RLFT_REQUIRE_GPU();
  struct Case {
    int64_t B, T, NH, HS, P;
    bool mask, self_visible;
    const char* what;
  };
  const Case cases[] = {{2, 7, 3, 5, 0, false, true, "HS=5, no mask"},
                        {3, 33, 2, 64, 0, true, true, "T=33 HS=64, left padding"},
                        {3, 33, 2, 80, 0, true, false, "HS=80, padding rows empty"},
                        {2, 9, 2, 80, 61, true, true, "KV cache P=61 (Tk=70) with padding"},
                        {1, 5, 1, 256, 0, false, true, "HS=256"}};
  for (DType dt : {DType::f32, DType::f64}) {
    for (const Case& c : cases) {
      const int64_t Tk = c.T + c.P;
      const std::string s = std::string(c.what) + " " + dtype_name(dt);
      AttentionOptions opt;
      opt.self_visible = c.self_visible;
      Tensor mask;
      if (c.mask) {
        std::vector<bool> m(size_t(c.B * Tk));
        for (int64_t b = 0; b < c.B; ++b) {
          const int64_t real = b == 0 ? 1 : Tk - 3 * b;  // row 0: one real token at the end
          for (int64_t j = 0; j < Tk; ++j) m[size_t(b * Tk + j)] = j >= Tk - real;
        }
        mask = Tensor::from_bools(m, {c.B, Tk});
      }
      const Tensor qkv = random({c.B, c.T, 3, c.NH, c.HS}, dt, 401 + c.HS, 3.0);
      const std::vector<Tensor> inputs =
          c.P > 0 ? std::vector<Tensor>{qkv, random({c.B, c.NH, Tk, c.HS}, dt, 402, 3.0),
                                        random({c.B, c.NH, Tk, c.HS}, dt, 403)}
                  : std::vector<Tensor>{qkv};
      check_op(
          "attention " + s, inputs,
          [&](const std::vector<Tensor>& in) {
            AttentionOptions o = opt;
            if (mask.defined()) o.key_mask = mask.to(in[0].device());
            if (in.size() == 3) o.keys = in[1], o.values = in[2];
            return causal_self_attention(in[0], o);
          },
          100 * std::sqrt(double(Tk * c.HS)));
    }
  }
  // A float mask (not bool) left on the CPU for the device's qkv (copied over), and a head
  // size past the kernel's limit.
  const Tensor x = random({2, 6, 3, 2, 8}, DType::f32, 404);
  check_op("attention of a float mask on the host", {x}, [](const std::vector<Tensor>& in) {
    AttentionOptions o;
    o.key_mask = Tensor::from_vector(std::vector<float>{0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1}, {2, 6});
    return causal_self_attention(in[0], o);
  });
  const std::string msg = testing::error_of(
      [] { (void)causal_self_attention(Tensor::zeros({1, 2, 3, 1, 257}, DType::f32, kGpu)); });
  EXPECT_NE(msg.find("head size 257"), std::string::npos) << msg;
}

// A NaN key (a diverged model) makes every query that sees it NaN, on the GPU as on the CPU,
// and leaves the queries before it exact. Key 33 sits in the last, partly visible 32-key chunk
// of queries 33..39: before the fix each lane's warp maximum of a NaN score could differ, the
// lanes split at the chunk's `continue` and the full-mask shuffles after it were undefined.
TEST(CudaOps, FusedAttentionWithANaNKeyGivesTheCpusNaNRows) {
  RLFT_REQUIRE_GPU();
  const int64_t T = 40, HS = 8;
  std::vector<double> x = random({1, T, 3, 1, HS}, DType::f64, 405).to_vector();
  x[size_t((33 * 3 + 1) * HS + 2)] = std::nan("");  // k[33][2]
  const Tensor qkv = Tensor::from_vector(x, {1, T, 3, 1, HS}).to(DType::f32);
  const std::vector<double> cpu = causal_self_attention(qkv).to_vector(),
                            gpu = causal_self_attention(qkv.to(kGpu)).to_vector();
  ASSERT_EQ(gpu.size(), cpu.size());
  for (size_t i = 0; i < cpu.size(); ++i) {
    const int64_t query = int64_t(i) / HS;
    EXPECT_EQ(std::isnan(cpu[i]), query >= 33) << "cpu, query " << query;
    EXPECT_EQ(std::isnan(gpu[i]), query >= 33) << "gpu, query " << query;
    if (query < 33) {
      EXPECT_NEAR(gpu[i], cpu[i], 1e-5) << "query " << query;
    }
  }
}

// ---- fused RL ops on the device ----------------------------------------------------------

TEST(CudaOps, FusedRlOpsDispatchToTheirKernels) {
  RLFT_REQUIRE_GPU();
  const int64_t B = 4, T = 7, V = 33;
  const Tensor logits = random({B, T, V}, DType::f32, 141, 2.0);
  std::vector<int64_t> t;
  for (int64_t i = 0; i < B * T; ++i) t.push_back(i % 6 == 0 ? -100 : (i * 5) % V);
  const Tensor targets = Tensor::from_vector(t, {B, T});
  // The kernel accumulates float in float (kernels/softmax_logprob.h allows 5e-5).
  const Tensor lc = logits.detach().clone().set_requires_grad(),
               lg = logits.to(kGpu).set_requires_grad();
  auto [lp_c, ent_c] = softmax_logprob(lc, targets);
  auto [lp_g, ent_g] = softmax_logprob(lg, targets.to(kGpu));
  expect_close(lp_g, lp_c, 5e-5, 5e-5, "softmax_logprob logp");
  expect_close(ent_g, ent_c, 5e-5, 5e-5, "softmax_logprob entropy");
  sum(add(lp_c, mul(ent_c, 0.1))).backward();
  sum(add(lp_g, mul(ent_g, 0.1))).backward();
  expect_close(lg.grad(), lc.grad(), 5e-5, 5e-5, "softmax_logprob dlogits");

  const Tensor lp = random({B, T}, DType::f64, 142, 0.3),
               old = random({B, T}, DType::f64, 143, 0.3);
  const Tensor adv = random({B, T}, DType::f64, 144),
               mask = gt(random({B, T}, DType::f64, 145), -0.5).to(DType::f64);
  const Tensor xc = lp.detach().clone().set_requires_grad(), xg = lp.to(kGpu).set_requires_grad();
  const RatioClipResult rc = ratio_clip(xc, old, adv, mask);
  const RatioClipResult rg = ratio_clip(xg, old.to(kGpu), adv.to(kGpu), mask.to(kGpu));
  EXPECT_NEAR(rg.loss.item(), rc.loss.item(), 1e-12);
  EXPECT_NEAR(rg.stats.clip_frac_low + rg.stats.clip_frac_high,
              rc.stats.clip_frac_low + rc.stats.clip_frac_high, 1e-12);
  rc.loss.backward();
  rg.loss.backward();
  expect_close(xg.grad(), xc.grad(), 1e-12, 1e-14, "ratio_clip gradient");

  const Tensor r = random({T, B}, DType::f32, 146), v = random({T, B}, DType::f32, 147);
  const Tensor nv = random({T, B}, DType::f32, 148),
               done = gt(random({T, B}, DType::f32, 149), 0.8).to(DType::f32);
  auto [ac, rtc] = gae(r, v, nv, done, done, 0.99, 0.95);
  auto [ag, rtg] =
      gae(r.to(kGpu), v.to(kGpu), nv.to(kGpu), done.to(kGpu), done.to(kGpu), 0.99, 0.95);
  expect_close(ag, ac, 1e-5, 1e-5, "gae advantages");
  expect_close(rtg, rtc, 1e-5, 1e-5, "gae returns");
}

// ---- optimisers, an MLP and a GPT ---------------------------------------------------------

TEST(CudaOps, AdamWAndSgdStepsMatchTheCpu) {
  RLFT_REQUIRE_GPU();
  for (bool decoupled : {true, false}) {
    const Tensor w0 = random({7, 33}, DType::f64, 151), g0 = random({7, 33}, DType::f64, 152);
    Tensor wc = w0.clone().detach().set_requires_grad(), wg = w0.to(kGpu).set_requires_grad();
    optim::Adam oc({wc}, 1e-2, 0.9, 0.999, 1e-8, 0.1, decoupled),
        og({wg}, 1e-2, 0.9, 0.999, 1e-8, 0.1, decoupled);
    for (int s = 0; s < 3; ++s) {
      wc.set_grad(mul(g0, double(s + 1)));
      wg.set_grad(mul(g0, double(s + 1)).to(kGpu));
      oc.step();
      og.step();
    }
    // Every product and sum rounded on its own on both sides (kernels/cuda/optim.cu), IEEE
    // division and square root: the CPU's bits, in the default layout.
    EXPECT_EQ(wg.to_vector(), wc.to_vector()) << (decoupled ? "AdamW" : "Adam");
  }
  {
    // 30 float parameters of odd sizes: two multi-tensor launches (24 + 6), one parameter
    // without a gradient (skipped, as on the CPU).
    std::vector<Tensor> pc, pg, grads;
    for (int i = 0; i < 30; ++i) {
      const int64_t n = kSizes[size_t(i) % kSizes.size()] + i;
      const Tensor w0 = random({n}, DType::f32, 200 + uint64_t(i));
      pc.push_back(w0.clone().detach().set_requires_grad());
      pg.push_back(w0.to(kGpu).set_requires_grad());
      grads.push_back(random({n}, DType::f32, 300 + uint64_t(i)));
    }
    optim::Adam oc(pc, 1e-3, 0.9, 0.999, 1e-8, 0.01, true),
        og(pg, 1e-3, 0.9, 0.999, 1e-8, 0.01, true);
    for (int s = 0; s < 3; ++s) {
      for (size_t i = 0; i < pc.size(); ++i) {
        if (i == 17) continue;
        pc[i].set_grad(mul(grads[i], double(s + 1)));
        pg[i].set_grad(mul(grads[i], double(s + 1)).to(kGpu));
      }
      oc.step();
      og.step();
    }
    for (size_t i = 0; i < pc.size(); ++i)
      EXPECT_EQ(pg[i].to_vector(), pc[i].to_vector()) << "multi-tensor AdamW " << i;
    // clip_grad_norm over the 29 gradients (the device's Σ g² copied back once): the CPU's
    // norm and clipped gradients; a list that mixes CPU and device parameters adds both.
    for (size_t i = 0; i < pc.size(); ++i) {
      if (i == 17) continue;
      pc[i].set_grad(mul(grads[i], 10.0));
      pg[i].set_grad(mul(grads[i], 10.0).to(kGpu));
    }
    const double norm_cpu = optim::clip_grad_norm(pc, 1.0), norm_gpu = optim::clip_grad_norm(pg, 1.0);
    EXPECT_GT(norm_cpu, 1.0);
    EXPECT_NEAR(norm_gpu, norm_cpu, 1e-9 * norm_cpu);
    for (size_t i = 0; i < pc.size(); ++i)
      if (i != 17) expect_close(pg[i].grad(), pc[i].grad(), 1e-6, 1e-7, "clipped " + std::to_string(i));
    for (size_t i = 0; i < 4; ++i) {
      pc[i].set_grad(grads[i]);
      pg[i].set_grad(grads[i].to(kGpu));
    }
    const double all_cpu = optim::clip_grad_norm({pc[0], pc[1], pc[2], pc[3]}, 1e9);
    EXPECT_NEAR(optim::clip_grad_norm({pc[0], pg[1], pc[2], pg[3]}, 1e9), all_cpu, 1e-9 * all_cpu);
  }
  const Tensor w0 = random({1000}, DType::f32, 153), g0 = random({1000}, DType::f32, 154);
  Tensor wc = w0.clone().detach().set_requires_grad(), wg = w0.to(kGpu).set_requires_grad();
  optim::SGD sc({wc}, 0.1, 0.9, 0.01, true), sg({wg}, 0.1, 0.9, 0.01, true);
  for (int s = 0; s < 3; ++s) {
    wc.set_grad(g0);
    wg.set_grad(g0.to(kGpu));
    sc.step();
    sg.step();
  }
  EXPECT_EQ(wg.to_vector(), wc.to_vector()) << "SGD nesterov";
  wc.set_grad(mul(g0, 100.0));
  wg.set_grad(mul(g0, 100.0).to(kGpu));
  EXPECT_NEAR(optim::clip_grad_norm({wg}, 1.0), optim::clip_grad_norm({wc}, 1.0), 1e-3);
  expect_close(wg.grad(), wc.grad(), 1e-6, 1e-7, "clipped gradient");
}

// A fused Adam step that leaves a weight NaN or ±inf is found by the kernel and thrown, with
// the CPU's message (the parameter's index and shape, the step), at the next synchronisation;
// the step itself does not synchronise. The first divergence is the one reported, once; the
// slot is then clear, so later steps (and later divergences) are reported normally.
TEST(CudaOps, AdamStepThatDivergesIsReportedAtTheNextSynchronisation) {
  RLFT_REQUIRE_GPU();
  {
    // Parameter 1 of three, [4, 5] in double, gets one NaN gradient; parameter 2 has none.
    Tensor a = Tensor::ones({3}, DType::f64).to(kGpu).set_requires_grad();
    Tensor b = Tensor::ones({4, 5}, DType::f64).to(kGpu).set_requires_grad();
    Tensor c = Tensor::ones({2}, DType::f64).to(kGpu).set_requires_grad();
    optim::Adam adam({a, b, c}, 0.1);
    std::vector<double> gb(20, 0.5);
    gb[13] = std::nan("");
    a.set_grad(Tensor::full({3}, 0.5, DType::f64).to(kGpu));
    b.set_grad(Tensor::from_vector(gb, {4, 5}).to(kGpu));
    adam.step();
    adam.step();  // step 2 is NaN too, but step 1 is reported: the first divergence
    const std::string msg = testing::error_of([&] { cuda::synchronize(0); });
    EXPECT_NE(msg.find("Adam: step 1 made parameter 1 (shape [4,5]) non-finite: training diverged "
                       "(a smaller learning rate, or gradient clipping?)"),
              std::string::npos)
        << msg;
    EXPECT_NE(msg.find("cuda:0"), std::string::npos) << msg;
    EXPECT_NO_THROW(cuda::synchronize(0)) << "reported once";
    // The update itself went through, as the CPU's: parameter 0 moved by lr, 1 is NaN at 13.
    const std::vector<double> wa = a.to_vector(), wb = b.to_vector();
    EXPECT_NEAR(wa[0], 0.8, 1e-6);
    EXPECT_TRUE(std::isnan(wb[13]));
  }
  {
    // 30 float parameters (two launches: 24 + 6): step 1 is sane, then parameter 27 (in the
    // second launch) gets an infinite gradient: m/√v = inf/inf = NaN. Reported by a plain read.
    std::vector<Tensor> ps;
    for (int i = 0; i < 30; ++i)
      ps.push_back(
          random({3, int64_t(i) + 1}, DType::f32, 400 + uint64_t(i)).to(kGpu).set_requires_grad());
    optim::AdamW opt(ps, 1e-3);
    for (int s = 0; s < 2; ++s) {
      for (int i = 0; i < 30; ++i)
        ps[size_t(i)].set_grad(Tensor::full({3, int64_t(i) + 1}, 0.25).to(kGpu));
      if (s == 1) ps[27].set_grad(Tensor::full({3, 28}, INFINITY).to(kGpu));
      opt.step();
      if (s == 0) {
        EXPECT_NO_THROW((void)ps[0].to_vector()) << "a sane step reports nothing";
      }
    }
    const std::string msg = testing::error_of([&] { (void)ps[0].to_vector(); });
    EXPECT_NE(
        msg.find("Adam: step 2 made parameter 27 (shape [3,28]) non-finite: training diverged"),
        std::string::npos)
        << msg;
  }
  // Fresh parameters step normally afterwards (the slot and its claim were cleared), as the CPU.
  const Tensor w0 = random({5, 9}, DType::f32, 155), g0 = random({5, 9}, DType::f32, 156);
  Tensor wc = w0.clone().detach().set_requires_grad(), wg = w0.to(kGpu).set_requires_grad();
  optim::AdamW oc({wc}, 1e-2), og({wg}, 1e-2);
  for (int s = 0; s < 2; ++s) {
    wc.set_grad(g0);
    wg.set_grad(g0.to(kGpu));
    oc.step();
    og.step();
  }
  EXPECT_NO_THROW(cuda::synchronize(0));
  expect_close(wg, wc, 1e-6, 1e-7, "AdamW after a reported divergence");
  // And a second divergence is reported too (the claim was released).
  wg.set_grad(Tensor::full({5, 9}, NAN).to(kGpu));
  og.step();
  EXPECT_NE(testing::error_of([&] {
              cuda::synchronize(0);
            }).find("Adam: step 3 made parameter 0 (shape [5,9]) non-finite"),
            std::string::npos);
  EXPECT_NO_THROW(cuda::synchronize(0)) << "nothing pending";
}

// The chunked launch layout of the fused Adam step (kernels/cuda_ops.h, the default) against the
// grid layout and the CPU: the same per-element code without FMA contraction, so the same bits
// in the weights and both moments (the first H200 run, with nvcc's contraction, found the two
// layouts a few ulp apart), over
// tensors that end inside, at and just past a chunk (1023, 1024, 1025 elements), one of 69
// chunks, and two launches (24 + 6 tensors); both against the CPU; float and double. Then a
// weight that diverges in a later chunk of a tensor in the second launch is reported with its
// parameter and shape, as in the grid layout.
TEST(CudaOps, AdamChunkedLayoutWritesTheGridLayoutsBits) {
  RLFT_REQUIRE_GPU();
  struct Restore {
    ~Restore() { optim::set_cuda_adam_layout(""); }
  } restore;
  for (DType dt : {DType::f32, DType::f64}) {
    std::vector<int64_t> sizes = {1023, 1024, 1025, 1, 70001, 33, 2048, 5000};
    while (sizes.size() < 30) sizes.push_back(int64_t(sizes.size()) * 97 + 3);
    std::vector<Tensor> pc, pgrid, pchunk, grads;
    for (size_t i = 0; i < sizes.size(); ++i) {
      const Tensor w0 = random({sizes[i]}, dt, 500 + uint64_t(i));
      pc.push_back(w0.clone().detach().set_requires_grad());
      pgrid.push_back(w0.to(kGpu).set_requires_grad());
      pchunk.push_back(w0.to(kGpu).set_requires_grad());
      grads.push_back(random({sizes[i]}, dt, 600 + uint64_t(i)));
    }
    optim::AdamW oc(pc, 1e-3), ogrid(pgrid, 1e-3), ochunk(pchunk, 1e-3);
    for (int s = 0; s < 3; ++s) {
      for (size_t i = 0; i < sizes.size(); ++i) {
        const Tensor g = mul(grads[i], double(s + 1));
        pc[i].set_grad(g);
        pgrid[i].set_grad(g.to(kGpu));
        pchunk[i].set_grad(g.to(kGpu));
      }
      oc.step();
      optim::set_cuda_adam_layout("grid");
      ogrid.step();
      optim::set_cuda_adam_layout("chunked");
      ochunk.step();
    }
    const std::string type = dt == DType::f32 ? " (float)" : " (double)";
    for (size_t i = 0; i < sizes.size(); ++i) {
      EXPECT_EQ(pchunk[i].to_vector(), pgrid[i].to_vector()) << "parameter " << i << type;
      EXPECT_EQ(pchunk[i].to_vector(), pc[i].to_vector()) << "parameter " << i << type << " (CPU)";
    }
    const auto sgrid = ogrid.state(), schunk = ochunk.state(), scpu = oc.state();
    ASSERT_EQ(sgrid.size(), schunk.size());
    ASSERT_EQ(scpu.size(), schunk.size());
    for (size_t k = 0; k < sgrid.size(); ++k) {
      EXPECT_EQ(schunk[k].second.to_vector(), sgrid[k].second.to_vector()) << sgrid[k].first << type;
      EXPECT_EQ(schunk[k].second.to_vector(), scpu[k].second.to_vector())
          << scpu[k].first << type << " (CPU)";
    }
  }
  optim::set_cuda_adam_layout("chunked");
  std::vector<Tensor> ps;
  for (int i = 0; i < 30; ++i)
    ps.push_back(random({3, 1000}, DType::f32, 700 + uint64_t(i)).to(kGpu).set_requires_grad());
  optim::AdamW opt(ps, 1e-3);
  std::vector<double> bad(3000, 0.25);
  bad[2500] = std::nan("");  // chunk 2 of parameter 27
  for (int i = 0; i < 30; ++i)
    ps[size_t(i)].set_grad(i == 27 ? Tensor::from_vector(bad, {3, 1000}).to(DType::f32).to(kGpu)
                                   : Tensor::full({3, 1000}, 0.25).to(kGpu));
  opt.step();
  EXPECT_NE(testing::error_of([&] {
              cuda::synchronize(0);
            }).find("Adam: step 1 made parameter 27 (shape [3,1000]) non-finite"),
            std::string::npos);
  EXPECT_NO_THROW(cuda::synchronize(0)) << "reported once";
}

TEST(CudaOps, MlpTrainingStepsGiveTheSameLosses) {
  RLFT_REQUIRE_GPU();
  // linear → tanh → linear, MSE to random targets, AdamW, 3 steps: losses agree within float
  // tolerance (each step's rounding differences compound a little, hence 1e-4 relative).
  std::vector<double> losses[2];
  std::vector<Tensor> final_params[2];
  for (int dev = 0; dev < 2; ++dev) {
    Generator gen(7);
    nn::Sequential mlp;
    mlp.push_back(std::make_shared<nn::Linear>(33, 64, true, gen));
    mlp.push_back(std::make_shared<nn::Tanh>());
    mlp.push_back(std::make_shared<nn::Linear>(64, 7, true, gen));
    const Device d = dev == 0 ? Device::cpu() : kGpu;
    mlp.to(d);
    optim::Adam opt(mlp.parameters(), 1e-2, 0.9, 0.999, 1e-8, 0.01, true);
    const Tensor x = random({16, 33}, DType::f32, 161).to(d),
                 y = random({16, 7}, DType::f32, 162).to(d);
    for (int step = 0; step < 3; ++step) {
      opt.zero_grad();
      const Tensor diff = sub(mlp.forward(x), y);
      const Tensor loss = mean(mul(diff, diff));
      loss.backward();
      opt.step();
      losses[dev].push_back(loss.item());
    }
    for (const Tensor& p : mlp.parameters()) final_params[dev].push_back(p.to(Device::cpu()));
  }
  for (int s = 0; s < 3; ++s)
    EXPECT_NEAR(losses[1][size_t(s)], losses[0][size_t(s)], 1e-4 * losses[0][size_t(s)]);
  for (size_t i = 0; i < final_params[0].size(); ++i) {
    const std::vector<double> a = final_params[0][i].to_vector(),
                              b = final_params[1][i].to_vector();
    for (size_t k = 0; k < a.size(); ++k)
      EXPECT_NEAR(b[k], a[k], 1e-4) << "parameter " << i << " element " << k;
  }
}

TEST(CudaOps, TinyGptForwardBackwardMatchesTheCpu) {
  RLFT_REQUIRE_GPU();
  models::GPTConfig cfg = models::GPTConfig::named("nano");
  cfg.vocab_size = 37;
  cfg.block_size = 16;
  Generator gen(3);
  models::GPT cpu_model(cfg, gen);
  Generator gen2(3);
  models::GPT gpu_model(cfg, gen2);
  gpu_model.to(kGpu);
  std::vector<int64_t> tok;
  for (int i = 0; i < 2 * 11; ++i) tok.push_back((i * 7 + 3) % cfg.vocab_size);
  const Tensor tokens = Tensor::from_vector(tok, {2, 11});
  std::vector<int64_t> next(tok.begin() + 1, tok.end());
  next.push_back(0);
  const Tensor targets = Tensor::from_vector(next, {22});
  auto loss_of = [&](models::GPT& m, Device d) {
    const Tensor h = m.forward(tokens.to(d));
    const Tensor logits = m.lm_logits(h).reshape({22, cfg.vocab_size});
    return cross_entropy(logits, targets.to(d));
  };
  const Tensor lc = loss_of(cpu_model, Device::cpu());
  const Tensor lg = loss_of(gpu_model, kGpu);
  EXPECT_NEAR(lg.item(), lc.item(), 1e-5 * std::abs(lc.item()));
  lc.backward();
  lg.backward();
  const auto pc = cpu_model.named_parameters(), pg = gpu_model.named_parameters();
  ASSERT_EQ(pc.size(), pg.size());
  for (size_t i = 0; i < pc.size(); ++i) {
    ASSERT_TRUE(pg[i].second.grad().defined()) << pg[i].first;
    // Gradients through 2 blocks of float attention/MLP: 1e-4 relative plus 1e-6 absolute.
    expect_close(pg[i].second.grad(), pc[i].second.grad(), 1e-4, 1e-6, "gpt grad " + pc[i].first);
  }
}

}  // namespace
}  // namespace rlft
