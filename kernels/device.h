// Accelerator discovery, usable from any code: this header includes no CUDA header, and links
// whether or not the build compiled the CUDA kernels (kernels/cuda/device.cu when nvcc was found,
// kernels/device_nocuda.cc otherwise).
#pragma once

namespace rosetta::kernels {

// True when this binary was built with the CUDA kernels (ROSETTA_HAVE_CUDA). Says nothing about
// whether a GPU is present: see CudaDeviceCount().
bool BuiltWithCuda();

// The number of CUDA devices usable by this process: 0 when the build has no CUDA, when there is
// no device, or when the driver is missing or too old for the runtime (the runtime then reports
// cudaErrorNoDevice / cudaErrorInsufficientDriver, which are not errors for the caller). Queried
// once per process; thread-safe. Never negative.
int CudaDeviceCount();

}  // namespace rosetta::kernels
