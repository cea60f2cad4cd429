// Internal to kernels/gpu_*_cuda.cc: the checks and error conversion every GPU entry point shares.
// Plain C++ (no CUDA header): the device backends report gpu::Error, this turns it into Status.
#pragma once

#include <string_view>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "kernels/cuda/gpu_backend.h"
#include "kernels/device.h"

namespace rosetta::kernels::internal {

inline absl::Status ToStatus(const gpu::Error& e) {
  if (e.ok()) return absl::OkStatus();
  return absl::Status(static_cast<absl::StatusCode>(e.code), e.message);
}

// Unavailable when no device is usable (`what` names the feature, e.g. "GPU search");
// InvalidArgument for a device index out of range.
inline absl::Status CheckCudaDevice(int device, const char* what) {
  const int count = CudaDeviceCount();
  if (count == 0) {
    return absl::UnavailableError(absl::StrCat(
        what, " unavailable: no usable CUDA device (none present, or the driver is missing or "
              "older than the CUDA runtime)"));
  }
  if (device < 0 || device >= count) {
    return absl::InvalidArgumentError(
        absl::StrCat("CUDA device ", device, " does not exist (", count, " usable)"));
  }
  return absl::OkStatus();
}

}  // namespace rosetta::kernels::internal
