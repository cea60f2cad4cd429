#include "engine/device.h"

#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "kernels/device.h"
#include "kernels/gpu_search.h"

namespace rosetta::engine {
namespace {

// DeviceBackend::EstimateBytes's default (see engine/device.h).
size_t FieldBytes(size_t rows, std::span<const kernels::FusedFieldData> fields) {
  size_t bytes = 0;
  for (const kernels::FusedFieldData& f : fields) {
    bytes += rows * ((f.dim + 3) / 4 * 4) * sizeof(float);
    bytes += (rows + 63) / 64 * sizeof(uint64_t);
    if (!f.record_weights.empty()) bytes += rows * sizeof(float);
  }
  return bytes;
}

class CudaChunk final : public DeviceChunk {
 public:
  explicit CudaChunk(std::unique_ptr<kernels::GpuFieldSet> set) : set_(std::move(set)) {}
  size_t rows() const override { return set_->rows(); }
  size_t device_bytes() const override { return set_->device_bytes(); }
  const kernels::GpuFieldSet& set() const { return *set_; }

 private:
  std::unique_ptr<kernels::GpuFieldSet> set_;
};

class CudaBackend final : public DeviceBackend {
 public:
  CudaBackend(int ordinal, std::string name, size_t memory)
      : ordinal_(ordinal), name_(std::move(name)), memory_(memory) {}
  std::string Name() const override { return name_; }
  size_t MemoryBytes() const override { return memory_; }
  absl::StatusOr<std::unique_ptr<DeviceChunk>> Upload(
      size_t rows, std::span<const kernels::FusedFieldData> fields) override {
    absl::StatusOr<std::unique_ptr<kernels::GpuFieldSet>> set =
        kernels::GpuFieldSet::Upload(rows, fields, ordinal_);
    if (!set.ok()) return set.status();
    return std::unique_ptr<DeviceChunk>(new CudaChunk(std::move(*set)));
  }
  absl::StatusOr<std::vector<std::vector<kernels::Scored>>> Search(
      const DeviceChunk& chunk, size_t nq, const kernels::FusedParams& params) override {
    return kernels::GpuFusedSearch(static_cast<const CudaChunk&>(chunk).set(), nq, params);
  }
  absl::StatusOr<std::vector<kernels::RankCount>> RankCounts(
      const DeviceChunk& chunk, size_t nq, const kernels::RankCountParams& params) override {
    return kernels::GpuRankCounts(static_cast<const CudaChunk&>(chunk).set(), nq, params);
  }

 private:
  int ordinal_;
  std::string name_;
  size_t memory_;
};

// The reference backend keeps host copies of what it was given (the caller's buffers are
// temporary), exactly what a device mirror holds.
class ReferenceChunk final : public DeviceChunk {
 public:
  ReferenceChunk(size_t rows, std::span<const kernels::FusedFieldData> fields) : rows_(rows) {
    vectors_.resize(fields.size());
    present_.resize(fields.size());
    weights_.resize(fields.size());
    for (size_t f = 0; f < fields.size(); ++f) {
      vectors_[f].assign(fields[f].vectors, fields[f].vectors + rows * fields[f].dim);
      present_[f].assign(fields[f].present.begin(), fields[f].present.end());
      weights_[f].assign(fields[f].record_weights.begin(), fields[f].record_weights.end());
      kernels::FusedFieldData d;
      d.dim = fields[f].dim;
      data_.push_back(d);
    }
    for (size_t f = 0; f < fields.size(); ++f) {
      data_[f].vectors = vectors_[f].data();
      data_[f].present = present_[f];
      data_[f].record_weights = weights_[f];
    }
    bytes_ = FieldBytes(rows, data_);
  }
  size_t rows() const override { return rows_; }
  size_t device_bytes() const override { return bytes_; }
  std::span<const kernels::FusedFieldData> fields() const { return data_; }

 private:
  size_t rows_;
  size_t bytes_ = 0;
  std::vector<std::vector<float>> vectors_;
  std::vector<std::vector<uint64_t>> present_;
  std::vector<std::vector<float>> weights_;
  std::vector<kernels::FusedFieldData> data_;
};

class ReferenceBackend final : public DeviceBackend {
 public:
  explicit ReferenceBackend(size_t memory) : memory_(memory) {}
  std::string Name() const override { return "reference (CPU emulation of the device path)"; }
  size_t MemoryBytes() const override { return memory_; }
  absl::StatusOr<std::unique_ptr<DeviceChunk>> Upload(
      size_t rows, std::span<const kernels::FusedFieldData> fields) override {
    if (absl::Status s = kernels::internal::CheckFusedFields(rows, fields, "reference Upload");
        !s.ok()) {
      return s;
    }
    return std::unique_ptr<DeviceChunk>(new ReferenceChunk(rows, fields));
  }
  absl::StatusOr<std::vector<std::vector<kernels::Scored>>> Search(
      const DeviceChunk& chunk, size_t nq, const kernels::FusedParams& params) override {
    const auto& c = static_cast<const ReferenceChunk&>(chunk);
    return kernels::FusedReferenceSearch(c.rows(), c.fields(), nq, params);
  }
  absl::StatusOr<std::vector<kernels::RankCount>> RankCounts(
      const DeviceChunk& chunk, size_t nq, const kernels::RankCountParams& params) override {
    const auto& c = static_cast<const ReferenceChunk&>(chunk);
    return kernels::RankCountsReference(c.rows(), c.fields(), nq, params);
  }

 private:
  size_t memory_;
};

}  // namespace

size_t DeviceBackend::EstimateBytes(size_t rows,
                                    std::span<const kernels::FusedFieldData> fields) const {
  return FieldBytes(rows, fields);
}

absl::StatusOr<std::shared_ptr<DeviceBackend>> MakeCudaDeviceBackend(int ordinal) {
  if (!kernels::BuiltWithCuda()) {
    return absl::FailedPreconditionError(
        "device cuda: this build of Rosetta has no CUDA kernels (nvcc was not found when it was "
        "built); use --device auto or cpu");
  }
  const int count = kernels::CudaDeviceCount();
  if (count == 0) {
    return absl::FailedPreconditionError(
        "device cuda: no usable CUDA device (none present, or the NVIDIA driver is missing or too "
        "old for this build's CUDA runtime); use --device auto or cpu");
  }
  if (ordinal < 0 || ordinal >= count) {
    return absl::InvalidArgumentError(absl::StrCat("device cuda: CUDA device ", ordinal,
                                                   " does not exist (", count, " usable)"));
  }
  absl::StatusOr<kernels::GpuDeviceInfo> info = kernels::GetGpuDeviceInfo(ordinal);
  if (!info.ok()) {
    return absl::Status(info.status().code(),
                        absl::StrCat("device cuda: ", info.status().message()));
  }
  return std::shared_ptr<DeviceBackend>(new CudaBackend(
      ordinal, absl::StrCat("cuda:", ordinal, " ", info->name), info->total_bytes));
}

std::shared_ptr<DeviceBackend> MakeReferenceDeviceBackend(size_t memory_bytes) {
  return std::make_shared<ReferenceBackend>(memory_bytes);
}

}  // namespace rosetta::engine
