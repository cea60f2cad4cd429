// The GPU fused-scoring API for CUDA builds (gpu_fused_nocuda.cc otherwise): validates arguments
// (the checks shared with the CPU reference, gpu_fused_reference.cc) and calls the C++17 CUDA
// backend (kernels/cuda/fused_fields_backend.cuh), turning its errors into statuses.
#include <cstdint>
#include <exception>
#include <memory>
#include <new>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "kernels/cuda/fused_fields_backend.cuh"
#include "kernels/cuda/fused_fields_math.cuh"
#include "kernels/device.h"
#include "kernels/gpu_fused.h"
#include "kernels/gpu_status_internal.h"

namespace rosetta::kernels {
namespace {

using internal::CheckCudaDevice;
using internal::ToStatus;

}  // namespace

struct GpuFieldSet::Impl {
  gpu::FieldSetDevice* set = nullptr;
  size_t rows = 0;
  std::vector<size_t> dims;
  int device = 0;
  ~Impl() {
    if (set != nullptr) gpu::DestroyFieldSetDevice(set);
  }
};

GpuFieldSet::GpuFieldSet(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
GpuFieldSet::~GpuFieldSet() = default;
size_t GpuFieldSet::rows() const { return impl_->rows; }
size_t GpuFieldSet::fields() const { return impl_->dims.size(); }
size_t GpuFieldSet::dim(size_t field) const {
  return field < impl_->dims.size() ? impl_->dims[field] : 0;
}
int GpuFieldSet::device() const { return impl_->device; }
size_t GpuFieldSet::device_bytes() const { return gpu::FieldSetDeviceBytes(impl_->set); }

absl::StatusOr<std::unique_ptr<GpuFieldSet>> GpuFieldSet::Upload(
    size_t rows, std::span<const FusedFieldData> fields, int device) {
  if (absl::Status s = internal::CheckFusedFields(rows, fields, "GpuFieldSet::Upload"); !s.ok()) {
    return s;
  }
  if (absl::Status s = CheckCudaDevice(device, "GPU fused scoring"); !s.ok()) return s;
  try {
    std::vector<gpu::FieldHostData> host(fields.size());
    auto impl = std::make_unique<Impl>();
    impl->rows = rows;
    impl->device = device;
    for (size_t f = 0; f < fields.size(); ++f) {
      host[f].vectors = fields[f].vectors;
      host[f].dim = fields[f].dim;
      host[f].present = fields[f].present.empty() ? nullptr : fields[f].present.data();
      host[f].record_weights =
          fields[f].record_weights.empty() ? nullptr : fields[f].record_weights.data();
      impl->dims.push_back(fields[f].dim);
    }
    const gpu::Error e =
        gpu::CreateFieldSetDevice(rows, host.data(), host.size(), device, &impl->set);
    if (!e.ok()) return ToStatus(gpu::Error{e.code, "GpuFieldSet::Upload: " + e.message});
    return std::unique_ptr<GpuFieldSet>(new GpuFieldSet(std::move(impl)));
  } catch (const std::bad_alloc&) {
    return absl::ResourceExhaustedError("GpuFieldSet::Upload: out of host memory");
  } catch (const std::exception& ex) {
    return absl::InternalError(absl::StrCat("GpuFieldSet::Upload: ", ex.what()));
  }
}

absl::StatusOr<std::vector<std::vector<Scored>>> GpuFusedSearch(const GpuFieldSet& set, size_t nq,
                                                                const FusedParams& params) {
  const GpuFieldSet::Impl& x = *set.impl_;
  if (absl::Status s = internal::CheckFusedParams(x.dims, nq, params, "GpuFusedSearch"); !s.ok()) {
    return s;
  }
  try {
    std::vector<gpu::FusedTermRequest> terms(params.terms.size());
    for (size_t t = 0; t < terms.size(); ++t) {
      const FusedTerm& in = params.terms[t];
      terms[t].field = in.field;
      terms[t].l2 = in.metric == FlatMetric::kL2;
      terms[t].weight = in.weight;
      terms[t].queries = in.queries;
      terms[t].scale = in.scale.empty() ? nullptr : in.scale.data();
      terms[t].offset = in.offset.empty() ? nullptr : in.offset.data();
    }
    gpu::FusedRequest r;
    r.nq = nq;
    r.k = static_cast<uint32_t>(params.k);
    r.terms = terms.data();
    r.term_count = terms.size();
    r.missing = params.missing == FusedMissing::kRenormalize ? gpu::kFusedRenormalize
                : params.missing == FusedMissing::kZero      ? gpu::kFusedZero
                                                             : gpu::kFusedRequire;
    r.skip = params.skip.empty() ? nullptr : params.skip.data();
    r.skip_words = params.skip.size();
    r.want_stats = params.stats != nullptr;
    std::vector<gpu::SelEntry> flat(nq * params.k);
    gpu::FusedStats stats;
    const gpu::Error e = gpu::FusedSearch(x.set, r, flat.data(), &stats);
    if (!e.ok()) return ToStatus(gpu::Error{e.code, "GpuFusedSearch: " + e.message});
    if (params.stats != nullptr) {
      params.stats->device_ms = stats.device_ms;
      params.stats->passes = stats.passes;
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
    return absl::ResourceExhaustedError("GpuFusedSearch: out of host memory");
  } catch (const std::exception& ex) {
    return absl::InternalError(absl::StrCat("GpuFusedSearch: ", ex.what()));
  }
}

absl::StatusOr<std::vector<RankCount>> GpuRankCounts(const GpuFieldSet& set, size_t nq,
                                                     const RankCountParams& params) {
  constexpr const char* kWho = "GpuRankCounts";
  const GpuFieldSet::Impl& x = *set.impl_;
  if (absl::Status s = internal::CheckRankCountParams(x.dims, nq, params, kWho); !s.ok()) {
    return s;
  }
  if (nq == 0) return std::vector<RankCount>{};
  try {
    const internal::RankBins bins = internal::PrepareRankBins(nq, params);
    std::vector<uint64_t> counters(nq * bins.bins_per_query(), 0);
    if (x.rows > 0) {
      gpu::RankCountRequest r;
      r.field = params.field;
      r.l2 = params.metric == FlatMetric::kL2;
      r.nq = nq;
      r.queries = params.queries;
      r.sorted = bins.sorted.data();
      r.width = static_cast<uint32_t>(bins.width);
      r.skip = params.skip.empty() ? nullptr : params.skip.data();
      r.skip_words = params.skip.size();
      const gpu::Error e = gpu::RankCounts(x.set, r, counters.data());
      if (!e.ok()) return ToStatus(gpu::Error{e.code, std::string(kWho) + ": " + e.message});
    }
    return internal::RankCountsFromBins(bins, nq, counters);
  } catch (const std::bad_alloc&) {
    return absl::ResourceExhaustedError(absl::StrCat(kWho, ": out of host memory"));
  } catch (const std::exception& ex) {
    return absl::InternalError(absl::StrCat(kWho, ": ", ex.what()));
  }
}

}  // namespace rosetta::kernels
