// The CUDA backend answers when a GPU is present; otherwise these tests skip with the reason.
#include <gtest/gtest.h>

#include "kernels/cuda_runtime.h"

namespace {

TEST(CudaRuntime, SelftestAxpyMatchesCpu) {
  std::string reason;
  if (rlft::kernels::cuda::device_count(&reason) == 0) GTEST_SKIP() << "no GPU: " << reason;
  std::printf("device 0: %s\n", rlft::kernels::cuda::device_name(0).c_str());
  // Both sides compute a·x + y in float with one rounding per operation: bitwise equal
  // unless the device fuses into an FMA, which changes the last bit at most.
  EXPECT_LE(rlft::kernels::cuda::selftest_axpy(1 << 20 | 7), 1e-5);
}

TEST(CudaRuntime, NoDeviceGivesAReason) {
  std::string reason;
  if (rlft::kernels::cuda::device_count(&reason) > 0) GTEST_SKIP() << "a GPU is present";
  EXPECT_FALSE(reason.empty());
}

}  // namespace
