// Device discovery for builds without the CUDA kernels (compiled instead of cuda/device.cu).
#include "kernels/device.h"

namespace rosetta::kernels {

bool BuiltWithCuda() { return false; }

int CudaDeviceCount() { return 0; }

}  // namespace rosetta::kernels
