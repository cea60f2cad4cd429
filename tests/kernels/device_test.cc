// Accelerator discovery: must work (and report 0 devices) on machines without a GPU or driver.
#include "kernels/device.h"

#include "gtest/gtest.h"

namespace rosetta::kernels {
namespace {

TEST(Device, CountIsNeverNegativeAndStable) {
  const int n = CudaDeviceCount();
  EXPECT_GE(n, 0);
  EXPECT_EQ(CudaDeviceCount(), n);
  if (!BuiltWithCuda()) {
    EXPECT_EQ(n, 0);
  }
}

TEST(Device, BuiltWithCudaMatchesBuildFlag) {
#if defined(ROSETTA_HAVE_CUDA)
  EXPECT_TRUE(BuiltWithCuda());
#else
  EXPECT_FALSE(BuiltWithCuda());
#endif
}

}  // namespace
}  // namespace rosetta::kernels
