// Device discovery with the CUDA runtime (compiled when the build has CUDA; device_nocuda.cc
// otherwise).
#include <cuda_runtime.h>

#include "kernels/device.h"

namespace rosetta::kernels {
namespace {

int QueryDeviceCount() {
  // On failure (no driver: cudaErrorInsufficientDriver; no GPU: cudaErrorNoDevice) the runtime
  // may leave `count` unset or at -1, so start from 0 and report 0 on any error.
  int count = 0;
  const cudaError_t err = cudaGetDeviceCount(&count);
  if (err != cudaSuccess) {
    cudaGetLastError();  // clear the error so that later runtime calls do not see it.
    return 0;
  }
  return count < 0 ? 0 : count;
}

}  // namespace

bool BuiltWithCuda() { return true; }

int CudaDeviceCount() {
  static const int count = QueryDeviceCount();
  return count;
}

}  // namespace rosetta::kernels
