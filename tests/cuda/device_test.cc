// GPU-side checks of device discovery (CTest label `cuda`): skipped with a message where the build
// has no CUDA or the machine has no usable device/driver.
#include "kernels/device.h"

#include "gtest/gtest.h"

namespace rosetta::kernels {
namespace {

TEST(CudaDevice, DiscoversAtLeastOneDevice) {
  if (CudaDeviceCount() == 0) {
    GTEST_SKIP() << "no usable CUDA device (built with CUDA: " << (BuiltWithCuda() ? "yes" : "no")
                 << "); GPU test skipped";
  }
  EXPECT_TRUE(BuiltWithCuda()) << "a device was reported by a build without CUDA";
  EXPECT_GE(CudaDeviceCount(), 1);
}

}  // namespace
}  // namespace rosetta::kernels
