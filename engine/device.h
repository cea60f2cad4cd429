// The search device: where exhaustive searches find their candidates (issue 6;
// docs/architecture.md "Search devices", docs/query-semantics.md "Search devices").
//
// A DeviceBackend is the engine's view of an accelerator. It holds mirrors ("chunks") of
// collection rows as derived copies (RocksDB and the CPU copies stay the source of truth) and
// answers two questions on them: the fused top-k of a batch of queries (kernels::GpuFusedSearch
// semantics) and, for the explanations, how many rows score above each of some raw scores in a
// field (kernels::GpuRankCounts). Two implementations:
//   - the CUDA backend (MakeCudaDeviceBackend): GpuFieldSet mirrors, GpuFusedSearch and
//     GpuRankCounts on one GPU;
//   - the reference backend (MakeReferenceDeviceBackend): the same contract computed on the CPU by
//     the kernels' references (kernels::FusedReferenceSearch, RankCountsReference), which agree
//     bit for bit with the GPU kernels (tests/cuda). Tests run the engine's device path with it
//     on machines without a GPU; it is not a fast path.
// Every error is a Status; the engine answers the query on the CPU when a backend call fails
// (DeviceStats::fallbacks) and never aborts.
//
// Thread safety: every method may be called concurrently; a chunk is immutable once uploaded.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "kernels/gpu_fused.h"

namespace rosetta::engine {

// Rows mirrored on a device: `rows` rows sharing one row space over the collection's fields.
class DeviceChunk {
 public:
  virtual ~DeviceChunk() = default;
  virtual size_t rows() const = 0;
  virtual size_t device_bytes() const = 0;
};

class DeviceBackend {
 public:
  virtual ~DeviceBackend() = default;

  // "cuda:0 NVIDIA H100 80GB HBM3", "reference (CPU emulation of the device path)".
  virtual std::string Name() const = 0;
  // Device memory in all (the default mirror budget is 80 % of it).
  virtual size_t MemoryBytes() const = 0;
  // The device bytes Upload would hold for these fields (to check a budget before uploading).
  // Default: GpuFieldSet's layout (fp32 rows padded to 4 floats, a presence bitmap and record
  // weights per field), an upper bound of its device_bytes().
  virtual size_t EstimateBytes(size_t rows, std::span<const kernels::FusedFieldData> fields) const;

  // Copies `rows` rows of `fields` (kernels::GpuFieldSet::Upload's contract) to the device.
  virtual absl::StatusOr<std::unique_ptr<DeviceChunk>> Upload(
      size_t rows, std::span<const kernels::FusedFieldData> fields) = 0;
  // kernels::GpuFusedSearch on a chunk (ids are the chunk's row numbers).
  virtual absl::StatusOr<std::vector<std::vector<kernels::Scored>>> Search(
      const DeviceChunk& chunk, size_t nq, const kernels::FusedParams& params) = 0;
  // kernels::GpuRankCounts on a chunk.
  virtual absl::StatusOr<std::vector<kernels::RankCount>> RankCounts(
      const DeviceChunk& chunk, size_t nq, const kernels::RankCountParams& params) = 0;
};

// The CUDA backend on device `ordinal`. FailedPrecondition when the build has no CUDA kernels or
// no device is usable (no device, or a driver too old: kernels::CudaDeviceCount() == 0),
// InvalidArgument for an ordinal out of range.
absl::StatusOr<std::shared_ptr<DeviceBackend>> MakeCudaDeviceBackend(int ordinal);

// The CPU emulation of the device path (see the top of this file). `memory_bytes` is what
// MemoryBytes() reports.
std::shared_ptr<DeviceBackend> MakeReferenceDeviceBackend(size_t memory_bytes = size_t{1} << 30);

}  // namespace rosetta::engine
