// The GPU IVF-PQ API for builds without the CUDA kernels (compiled instead of
// gpu_ivf_pq_cuda.cc): every entry point reports Unavailable, so callers use the CPU index.
#include <memory>
#include <utility>

#include "kernels/gpu_ivf_pq.h"

namespace rosetta::kernels {
namespace {

absl::Status NoCuda() {
  return absl::UnavailableError(
      "GPU IVF-PQ unavailable: this build has no CUDA kernels (nvcc was not found or "
      "ROSETTA_ENABLE_CUDA=OFF)");
}

}  // namespace

struct GpuIvfPqIndex::Impl {};

GpuIvfPqIndex::GpuIvfPqIndex(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
GpuIvfPqIndex::~GpuIvfPqIndex() = default;
size_t GpuIvfPqIndex::size() const { return 0; }
size_t GpuIvfPqIndex::d() const { return 0; }
size_t GpuIvfPqIndex::nlist() const { return 0; }
size_t GpuIvfPqIndex::m() const { return 0; }
size_t GpuIvfPqIndex::nbits() const { return 0; }
FlatMetric GpuIvfPqIndex::metric() const { return FlatMetric::kL2; }
int GpuIvfPqIndex::device() const { return 0; }
bool GpuIvfPqIndex::has_refine_vectors() const { return false; }
size_t GpuIvfPqIndex::device_bytes() const { return 0; }

absl::StatusOr<std::unique_ptr<GpuIvfPqIndex>> GpuIvfPqIndex::Upload(const IvfPqIndex&,
                                                                    const GpuIvfPqOptions&) {
  return NoCuda();
}

absl::StatusOr<std::vector<std::vector<Scored>>> GpuIvfPqIndex::Search(
    const float*, size_t, size_t, const GpuIvfPqSearchParams&) const {
  return NoCuda();
}

}  // namespace rosetta::kernels
