// The GPU search API for builds without the CUDA kernels (compiled instead of
// gpu_search_cuda.cc): every entry point reports Unavailable, so callers fall back to the CPU.
#include <memory>
#include <utility>

#include "kernels/gpu_search.h"

namespace rosetta::kernels {
namespace {

absl::Status NoCuda() {
  return absl::UnavailableError(
      "GPU search unavailable: this build has no CUDA kernels (nvcc was not found or "
      "ROSETTA_ENABLE_CUDA=OFF)");
}

}  // namespace

struct GpuMatrix::Impl {};

GpuMatrix::GpuMatrix(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
GpuMatrix::~GpuMatrix() = default;
size_t GpuMatrix::rows() const { return 0; }
size_t GpuMatrix::dim() const { return 0; }
GpuStorage GpuMatrix::storage() const { return GpuStorage::kFloat32; }
int GpuMatrix::device() const { return 0; }
size_t GpuMatrix::device_bytes() const { return 0; }

absl::StatusOr<std::unique_ptr<GpuMatrix>> GpuMatrix::Upload(const float*, size_t, size_t,
                                                             const GpuMatrixOptions&) {
  return NoCuda();
}

absl::StatusOr<std::vector<std::vector<Scored>>> GpuFlatSearch(const GpuMatrix&, const float*,
                                                               size_t, size_t,
                                                               const GpuSearchParams&) {
  return NoCuda();
}

absl::StatusOr<GpuDeviceInfo> GetGpuDeviceInfo(int) { return NoCuda(); }

absl::StatusOr<double> GpuTimeDeviceCopy(int, size_t, int) { return NoCuda(); }

absl::StatusOr<double> GpuTimeGemmOnly(const GpuMatrix&, size_t, int) { return NoCuda(); }

}  // namespace rosetta::kernels
