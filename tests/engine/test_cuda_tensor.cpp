// Tensors on a CUDA device: allocation through the caching allocator, copies both ways
// (contiguous and strided views), item/to_vector, gradients through .to(), and clear errors
// where the backend or the device is missing. The GPU tests skip with the runtime's reason
// when no device answers.
#include <gtest/gtest.h>

#include "engine/cuda.h"
#include "engine/ops.h"
#include "tests/test_util.h"

namespace rlft {
namespace {

#define RLFT_REQUIRE_GPU()                                                  \
  do {                                                                      \
    std::string reason_;                                                    \
    if (cuda::device_count(&reason_) == 0) GTEST_SKIP() << "no GPU: " << reason_; \
  } while (0)

TEST(CudaTensor, RoundTripKeepsValuesAndDtype) {
  RLFT_REQUIRE_GPU();
  for (DType dt : {DType::f32, DType::f64, DType::i64}) {
    const Tensor a = Tensor::from_vector(std::vector<double>{1.5, -2, 3, 4e6, 0, 7}, {2, 3}).to(dt);
    const Tensor g = a.to(Device::cuda());
    EXPECT_TRUE(g.device().is_cuda());
    EXPECT_EQ(g.dtype(), dt);
    EXPECT_EQ(g.shape(), a.shape());
    const Tensor back = g.to(Device::cpu());
    EXPECT_TRUE(back.device().is_cpu());
    EXPECT_EQ(back.to_vector(), a.to_vector()) << dt;
    EXPECT_EQ(g.to_vector(), a.to_vector()) << "to_vector straight from the device";
  }
  EXPECT_EQ(Tensor::from_vector(std::vector<double>{2.5}, {1}).to(Device::cuda()).item(), 2.5);
}

TEST(CudaTensor, StridedViewsCopyTheirOwnElements) {
  RLFT_REQUIRE_GPU();
  std::vector<double> v(24);
  for (size_t i = 0; i < v.size(); ++i) v[i] = double(i);
  const Tensor g = Tensor::from_vector(v, {2, 3, 4}).to(Device::cuda());
  const Tensor view = g.transpose(0, 2).narrow(1, 1, 2);  // non-contiguous, offset 4
  const Tensor expect = Tensor::from_vector(v, {2, 3, 4}).transpose(0, 2).narrow(1, 1, 2);
  EXPECT_EQ(view.to(Device::cpu()).to_vector(), expect.to_vector());
  // A CPU view copied to the device arrives contiguous with the view's elements.
  EXPECT_EQ(expect.to(Device::cuda()).to_vector(), expect.to_vector());
}

TEST(CudaTensor, GradientFlowsBackThroughTo) {
  RLFT_REQUIRE_GPU();
  const Tensor x = Tensor::from_vector(std::vector<double>{1, 2, 3}, {3}).set_requires_grad();
  const Tensor y = x.to(Device::cuda()).to(Device::cpu());
  sum(mul(y, y)).backward();
  EXPECT_EQ(x.grad().to_vector(), (std::vector<double>{2, 4, 6}));
}

TEST(CudaTensor, AllocatorReusesFreedBlocks) {
  RLFT_REQUIRE_GPU();
  { const Tensor warm = Tensor::empty({1000}, DType::f32, Device::cuda()); }
  const auto before = cuda::memory_stats(0);
  for (int i = 0; i < 10; ++i) {
    const Tensor t = Tensor::empty({1000}, DType::f32, Device::cuda());
  }
  const auto after = cuda::memory_stats(0);
  EXPECT_EQ(after.cuda_mallocs, before.cuda_mallocs) << "same-size tensors come from the cache";
  EXPECT_EQ(after.alloc_calls - before.alloc_calls, 10u);
  cuda::synchronize();
}

TEST(CudaTensor, MultinomialOnTheDeviceDrawsTheCpuSamples) {
  // Every engine op now runs on device tensors; multinomial samples on the host from the same
  // generator stream, so both devices draw the same indices and leave the stream in one place.
  RLFT_REQUIRE_GPU();
  const Tensor probs = Tensor::from_vector(std::vector<double>{0.1, 0.2, 0.7, 0.5, 0.5, 0, 0, 0, 1}, {3, 3});
  Generator gc(9), gg(9);
  const Tensor on_cpu = multinomial(probs, &gc);
  const Tensor on_gpu = multinomial(probs.to(Device::cuda()), &gg);
  EXPECT_TRUE(on_gpu.device().is_cuda());
  EXPECT_EQ(on_gpu.to_vector(), on_cpu.to_vector());
  EXPECT_EQ(gg.offset(), gc.offset());
}

TEST(CudaTensor, WithoutAGpuEveryDevicePathIsOneClearError) {
  std::string reason;
  if (cuda::device_count(&reason) > 0) GTEST_SKIP() << "a GPU is present";
  const std::string to_msg = testing::error_of([] { (void)Tensor::ones({2}).to(Device::cuda()); });
  EXPECT_NE(to_msg, "<no error>");
  const std::string empty_msg =
      testing::error_of([] { (void)Tensor::empty({2}, DType::f32, Device::cuda(1)); });
  EXPECT_NE(empty_msg, "<no error>");
  // "tensor allocation on cuda:0: no CUDA device (<the runtime's reason>)"
  EXPECT_EQ(to_msg.rfind("tensor allocation on cuda:0: no CUDA device (", 0), 0u) << to_msg;
  EXPECT_NE(to_msg.find(reason), std::string::npos) << to_msg;
  EXPECT_EQ(empty_msg.rfind("tensor allocation on cuda:1: no CUDA device", 0), 0u) << empty_msg;
  EXPECT_THROW(cuda::synchronize(), Error);
}

}  // namespace
}  // namespace rlft
