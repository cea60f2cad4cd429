// The GPU fused-scoring API for builds without the CUDA kernels (compiled instead of
// gpu_fused_cuda.cc): the GPU entry points report Unavailable. The CPU reference
// (gpu_fused_reference.cc) exists in every build.
#include <memory>
#include <utility>

#include "kernels/gpu_fused.h"

namespace rosetta::kernels {
namespace {

absl::Status NoCuda() {
  return absl::UnavailableError(
      "GPU fused scoring unavailable: this build has no CUDA kernels (nvcc was not found or "
      "ROSETTA_ENABLE_CUDA=OFF)");
}

}  // namespace

struct GpuFieldSet::Impl {};

GpuFieldSet::GpuFieldSet(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
GpuFieldSet::~GpuFieldSet() = default;
size_t GpuFieldSet::rows() const { return 0; }
size_t GpuFieldSet::fields() const { return 0; }
size_t GpuFieldSet::dim(size_t) const { return 0; }
int GpuFieldSet::device() const { return 0; }
size_t GpuFieldSet::device_bytes() const { return 0; }

absl::StatusOr<std::unique_ptr<GpuFieldSet>> GpuFieldSet::Upload(size_t,
                                                                std::span<const FusedFieldData>,
                                                                int) {
  return NoCuda();
}

absl::StatusOr<std::vector<std::vector<Scored>>> GpuFusedSearch(const GpuFieldSet&, size_t,
                                                                const FusedParams&) {
  return NoCuda();
}

absl::StatusOr<std::vector<RankCount>> GpuRankCounts(const GpuFieldSet&, size_t,
                                                     const RankCountParams&) {
  return NoCuda();
}

}  // namespace rosetta::kernels
