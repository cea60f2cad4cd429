// The GPU search API for CUDA builds (gpu_search_nocuda.cc otherwise): validates arguments,
// calls the C++17 CUDA backend (kernels/cuda/gpu_backend.h) and turns its errors into statuses.
// The backend lives behind a plain interface because the .cu files are compiled as C++17 and
// without Abseil, while this header uses std::span and absl::Status.
#include <cstdint>
#include <exception>
#include <limits>
#include <memory>
#include <new>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "kernels/cuda/gpu_backend.h"
#include "kernels/gpu_status_internal.h"
#include "kernels/device.h"
#include "kernels/gpu_search.h"

namespace rosetta::kernels {
namespace {

using internal::CheckCudaDevice;
using internal::ToStatus;

// Largest row count: ids are int32 on the device and kSentinelId is reserved.
constexpr size_t kMaxRows = static_cast<size_t>(gpu::kSentinelId) - 1;
// Largest dimension: the padded dimension is a cuBLAS int.
constexpr size_t kMaxDim = size_t{1} << 24;

}  // namespace

struct GpuMatrix::Impl {
  gpu::DeviceMatrix* matrix = nullptr;
  size_t n = 0;
  size_t d = 0;
  GpuStorage storage = GpuStorage::kFloat32;
  int device = 0;
  ~Impl() {
    if (matrix != nullptr) gpu::DestroyDeviceMatrix(matrix);
  }
};

GpuMatrix::GpuMatrix(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
GpuMatrix::~GpuMatrix() = default;
size_t GpuMatrix::rows() const { return impl_->n; }
size_t GpuMatrix::dim() const { return impl_->d; }
GpuStorage GpuMatrix::storage() const { return impl_->storage; }
int GpuMatrix::device() const { return impl_->device; }
size_t GpuMatrix::device_bytes() const { return gpu::DeviceMatrixBytes(impl_->matrix); }

absl::StatusOr<std::unique_ptr<GpuMatrix>> GpuMatrix::Upload(const float* vectors, size_t n,
                                                             size_t d,
                                                             const GpuMatrixOptions& options) {
  if (d == 0 || d > kMaxDim) {
    return absl::InvalidArgumentError(
        absl::StrCat("GpuMatrix::Upload: dimension d=", d, " must be in [1, ", kMaxDim, "]"));
  }
  if (n > kMaxRows) {
    return absl::InvalidArgumentError(absl::StrCat("GpuMatrix::Upload: n=", n,
                                                   " rows exceed the maximum of ", kMaxRows,
                                                   " (ids are int32 on the device)"));
  }
  if (n > 0 && vectors == nullptr) {
    return absl::InvalidArgumentError("GpuMatrix::Upload: vectors is null with n > 0");
  }
  if (n > std::numeric_limits<size_t>::max() / 8 / (d + 32)) {
    return absl::InvalidArgumentError(
        absl::StrCat("GpuMatrix::Upload: n=", n, " x d=", d, " overflows the byte count"));
  }
  if (absl::Status s = CheckCudaDevice(options.device, "GPU search"); !s.ok()) return s;
  try {
    auto impl = std::make_unique<Impl>();
    impl->n = n;
    impl->d = d;
    impl->storage = options.storage;
    impl->device = options.device;
    const gpu::Error e = gpu::CreateDeviceMatrix(
        vectors, n, d, options.storage == GpuStorage::kFloat16, options.device, &impl->matrix);
    if (!e.ok()) {
      return ToStatus(gpu::Error{e.code, "GpuMatrix::Upload: " + e.message});
    }
    return std::unique_ptr<GpuMatrix>(new GpuMatrix(std::move(impl)));
  } catch (const std::bad_alloc&) {
    return absl::ResourceExhaustedError("GpuMatrix::Upload: out of host memory");
  } catch (const std::exception& ex) {
    return absl::InternalError(absl::StrCat("GpuMatrix::Upload: ", ex.what()));
  }
}

absl::StatusOr<std::vector<std::vector<Scored>>> GpuFlatSearch(const GpuMatrix& base,
                                                               const float* queries, size_t nq,
                                                               size_t d,
                                                               const GpuSearchParams& params) {
  if (params.k == 0 || params.k > kGpuMaxK) {
    return absl::InvalidArgumentError(
        absl::StrCat("GpuFlatSearch: k=", params.k, " must be in [1, ", kGpuMaxK, "]"));
  }
  if (d != base.dim()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "GpuFlatSearch: query dimension d=", d, " does not match the matrix's ", base.dim()));
  }
  if (nq > 0 && queries == nullptr) {
    return absl::InvalidArgumentError("GpuFlatSearch: queries is null with nq > 0");
  }
  if (nq > static_cast<size_t>(std::numeric_limits<int32_t>::max()) / 2 ||
      nq > std::numeric_limits<size_t>::max() / 8 / (d + 32) / kGpuMaxK) {
    return absl::InvalidArgumentError(
        absl::StrCat("GpuFlatSearch: nq=", nq, " queries are too many for one call"));
  }
  try {
    gpu::SearchRequest r;
    r.queries = queries;
    r.nq = nq;
    r.k = static_cast<uint32_t>(params.k);
    r.l2 = params.metric == FlatMetric::kL2;
    r.skip = params.skip.empty() ? nullptr : params.skip.data();
    r.skip_words = params.skip.size();
    switch (params.path) {
      case GpuPath::kAuto: r.path = gpu::PathChoice::kAuto; break;
      case GpuPath::kFused: r.path = gpu::PathChoice::kFused; break;
      case GpuPath::kTiled: r.path = gpu::PathChoice::kTiled; break;
    }
    r.fused_max_batch = params.fused_max_batch;
    r.scratch_bytes = params.scratch_bytes == 0 ? kGpuDefaultScratchBytes : params.scratch_bytes;
    r.tile_rows = params.tile_rows;
    r.want_stats = params.stats != nullptr;
    std::vector<gpu::SelEntry> flat(nq * params.k);
    gpu::SearchStats stats;
    const gpu::Error e = gpu::Search(base.impl_->matrix, r, flat.data(), &stats);
    if (!e.ok()) return ToStatus(gpu::Error{e.code, "GpuFlatSearch: " + e.message});
    if (params.stats != nullptr) {
      // No path ran for an empty batch or matrix.
      params.stats->path = stats.passes == 0 ? GpuPath::kAuto
                           : stats.fused     ? GpuPath::kFused
                                             : GpuPath::kTiled;
      params.stats->device_ms = stats.device_ms;
      params.stats->passes = stats.passes;
      params.stats->tiles = stats.tiles;
    }
    std::vector<std::vector<Scored>> out(nq);
    for (size_t q = 0; q < nq; ++q) {
      const gpu::SelEntry* row = flat.data() + q * params.k;
      size_t count = 0;
      while (count < params.k && row[count].id != gpu::kSentinelId) ++count;
      out[q].reserve(count);
      for (size_t i = 0; i < count; ++i) out[q].push_back(Scored{row[i].score, row[i].id});
    }
    return out;
  } catch (const std::bad_alloc&) {
    return absl::ResourceExhaustedError("GpuFlatSearch: out of host memory");
  } catch (const std::exception& ex) {
    return absl::InternalError(absl::StrCat("GpuFlatSearch: ", ex.what()));
  }
}

absl::StatusOr<GpuDeviceInfo> GetGpuDeviceInfo(int device) {
  if (absl::Status s = CheckCudaDevice(device, "GPU search"); !s.ok()) return s;
  try {
    gpu::DeviceInfo info;
    const gpu::Error e = gpu::QueryDeviceInfo(device, &info);
    if (!e.ok()) return ToStatus(e);
    GpuDeviceInfo out;
    out.device = device;
    out.name = info.name;
    out.compute_major = info.compute_major;
    out.compute_minor = info.compute_minor;
    out.multiprocessors = info.multiprocessors;
    out.total_bytes = info.total_bytes;
    out.free_bytes = info.free_bytes;
    out.shared_bytes_per_block = info.shared_bytes_per_block;
    out.l2_bytes = info.l2_bytes;
    out.driver_version = info.driver_version;
    out.runtime_version = info.runtime_version;
    return out;
  } catch (const std::exception& ex) {
    return absl::InternalError(absl::StrCat("GetGpuDeviceInfo: ", ex.what()));
  }
}

absl::StatusOr<double> GpuTimeDeviceCopy(int device, size_t bytes, int reps) {
  if (absl::Status s = CheckCudaDevice(device, "GPU search"); !s.ok()) return s;
  if (bytes < 4) return absl::InvalidArgumentError("GpuTimeDeviceCopy: bytes must be >= 4");
  try {
    double seconds = 0;
    const gpu::Error e = gpu::TimeDeviceCopy(device, bytes, reps, &seconds);
    if (!e.ok()) return ToStatus(e);
    return seconds;
  } catch (const std::exception& ex) {
    return absl::InternalError(absl::StrCat("GpuTimeDeviceCopy: ", ex.what()));
  }
}

absl::StatusOr<double> GpuTimeGemmOnly(const GpuMatrix& base, size_t nq, int reps) {
  if (base.rows() == 0 || nq == 0 || nq > static_cast<size_t>(std::numeric_limits<int>::max())) {
    return absl::InvalidArgumentError("GpuTimeGemmOnly: needs rows > 0 and 0 < nq < 2^31");
  }
  try {
    double seconds = 0;
    const gpu::Error e = gpu::TimeGemmOnly(base.impl_->matrix, nq, reps, &seconds);
    if (!e.ok()) return ToStatus(e);
    return seconds;
  } catch (const std::exception& ex) {
    return absl::InternalError(absl::StrCat("GpuTimeGemmOnly: ", ex.what()));
  }
}

}  // namespace rosetta::kernels
