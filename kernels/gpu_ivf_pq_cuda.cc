// The GPU IVF-PQ API for CUDA builds (gpu_ivf_pq_nocuda.cc otherwise): validates arguments,
// flattens the CPU index through its public inspection API (lists, unpacked codes, centroids,
// codebooks) and calls the C++17 CUDA backend (kernels/cuda/ivf_pq_backend.cuh), turning its
// errors into statuses.
#include <algorithm>
#include <cstring>
#include <exception>
#include <limits>
#include <memory>
#include <new>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "kernels/cuda/ivf_pq_backend.cuh"
#include "kernels/device.h"
#include "kernels/gpu_ivf_pq.h"
#include "kernels/gpu_status_internal.h"

namespace rosetta::kernels {
namespace {

using internal::CheckCudaDevice;
using internal::ToStatus;

}  // namespace

struct GpuIvfPqIndex::Impl {
  gpu::IvfPqDeviceIndex* index = nullptr;
  size_t n = 0, d = 0, nlist = 0, m = 0, nbits = 0;
  FlatMetric metric = FlatMetric::kL2;
  int device = 0;
  bool refine = false;
  ~Impl() {
    if (index != nullptr) gpu::DestroyIvfPqDeviceIndex(index);
  }
};

GpuIvfPqIndex::GpuIvfPqIndex(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
GpuIvfPqIndex::~GpuIvfPqIndex() = default;
size_t GpuIvfPqIndex::size() const { return impl_->n; }
size_t GpuIvfPqIndex::d() const { return impl_->d; }
size_t GpuIvfPqIndex::nlist() const { return impl_->nlist; }
size_t GpuIvfPqIndex::m() const { return impl_->m; }
size_t GpuIvfPqIndex::nbits() const { return impl_->nbits; }
FlatMetric GpuIvfPqIndex::metric() const { return impl_->metric; }
int GpuIvfPqIndex::device() const { return impl_->device; }
bool GpuIvfPqIndex::has_refine_vectors() const { return impl_->refine; }
size_t GpuIvfPqIndex::device_bytes() const { return gpu::IvfPqDeviceBytes(impl_->index); }

absl::StatusOr<std::unique_ptr<GpuIvfPqIndex>> GpuIvfPqIndex::Upload(
    const IvfPqIndex& index, const GpuIvfPqOptions& options) {
  if (!index.trained()) {
    return absl::InvalidArgumentError("GpuIvfPqIndex::Upload: the index is not trained");
  }
  if (options.refine_rows > 0 && options.refine_vectors == nullptr) {
    return absl::InvalidArgumentError(
        "GpuIvfPqIndex::Upload: refine_vectors is null with refine_rows > 0");
  }
  if (options.refine_rows > std::numeric_limits<size_t>::max() / 4 / index.d()) {
    return absl::InvalidArgumentError("GpuIvfPqIndex::Upload: refine_rows overflows the size");
  }
  if (absl::Status s = CheckCudaDevice(options.device, "GPU IVF-PQ"); !s.ok()) return s;
  try {
    const size_t nlist = index.nlist(), m = index.m(), d = index.d();
    const size_t stride = (m + 15) / 16 * 16;
    std::vector<uint64_t> offsets(nlist + 1, 0);
    for (size_t l = 0; l < nlist; ++l) offsets[l + 1] = offsets[l] + index.list_size(l);
    const size_t n = offsets[nlist];
    std::vector<uint8_t> codes(n * stride, 0);
    std::vector<int32_t> ids(n);
    int64_t max_id = -1;
    for (size_t l = 0; l < nlist; ++l) {
      const std::span<const uint32_t> list_ids = index.list_ids(l);
      for (size_t i = 0; i < list_ids.size(); ++i) {
        const uint32_t id = list_ids[i];
        if (id >= static_cast<uint32_t>(gpu::kSentinelId)) {
          return absl::InvalidArgumentError(absl::StrCat(
              "GpuIvfPqIndex::Upload: id ", id, " in list ", l,
              " is too large for the device (ids must be below 2^31 - 1)"));
        }
        const size_t v = offsets[l] + i;
        ids[v] = static_cast<int32_t>(id);
        max_id = std::max<int64_t>(max_id, id);
        index.GetCode(l, i, codes.data() + v * stride);
      }
    }
    if (options.refine_vectors != nullptr && max_id >= 0 &&
        static_cast<size_t>(max_id) >= options.refine_rows) {
      return absl::InvalidArgumentError(absl::StrCat(
          "GpuIvfPqIndex::Upload: refine_rows=", options.refine_rows,
          " does not cover the largest stored id ", max_id));
    }
    gpu::IvfPqHostData h;
    h.d = d;
    h.nlist = nlist;
    h.m = m;
    h.ksub = index.pq().ksub();
    h.n = n;
    h.l2 = index.metric() == FlatMetric::kL2;
    h.centroids = index.centroids().data();
    h.codebooks = index.pq().codebooks().data();
    h.list_offsets = offsets.data();
    h.codes = codes.data();
    h.code_stride = stride;
    h.ids = ids.data();
    h.max_id = static_cast<int32_t>(max_id);
    h.refine_vectors = options.refine_vectors;
    h.refine_rows = options.refine_vectors != nullptr ? options.refine_rows : 0;
    h.device = options.device;

    auto impl = std::make_unique<Impl>();
    impl->n = n;
    impl->d = d;
    impl->nlist = nlist;
    impl->m = m;
    impl->nbits = index.nbits();
    impl->metric = index.metric();
    impl->device = options.device;
    impl->refine = options.refine_vectors != nullptr;
    const gpu::Error e = gpu::CreateIvfPqDeviceIndex(h, &impl->index);
    if (!e.ok()) return ToStatus(gpu::Error{e.code, "GpuIvfPqIndex::Upload: " + e.message});
    return std::unique_ptr<GpuIvfPqIndex>(new GpuIvfPqIndex(std::move(impl)));
  } catch (const std::bad_alloc&) {
    return absl::ResourceExhaustedError("GpuIvfPqIndex::Upload: out of host memory");
  } catch (const std::exception& ex) {
    return absl::InternalError(absl::StrCat("GpuIvfPqIndex::Upload: ", ex.what()));
  }
}

absl::StatusOr<std::vector<std::vector<Scored>>> GpuIvfPqIndex::Search(
    const float* queries, size_t nq, size_t d, const GpuIvfPqSearchParams& params) const {
  const Impl& x = *impl_;
  if (params.k == 0 || params.k > kGpuMaxK) {
    return absl::InvalidArgumentError(
        absl::StrCat("GpuIvfPqIndex::Search: k=", params.k, " must be in [1, ", kGpuMaxK, "]"));
  }
  const size_t candidates = std::max(params.k, params.refine);
  if (params.refine > 0 && candidates > kGpuMaxK) {
    return absl::InvalidArgumentError(absl::StrCat("GpuIvfPqIndex::Search: refine=", params.refine,
                                                   " exceeds the device maximum of ", kGpuMaxK));
  }
  if (params.refine > 0 && !x.refine) {
    return absl::InvalidArgumentError(
        "GpuIvfPqIndex::Search: refine > 0 needs refine vectors (GpuIvfPqOptions::refine_vectors)");
  }
  if (d != x.d) {
    return absl::InvalidArgumentError(absl::StrCat(
        "GpuIvfPqIndex::Search: query dimension d=", d, " does not match the index's ", x.d));
  }
  if (nq > 0 && queries == nullptr) {
    return absl::InvalidArgumentError("GpuIvfPqIndex::Search: queries is null with nq > 0");
  }
  size_t nprobe = params.nprobe == 0 ? DefaultNprobe(x.nlist) : params.nprobe;
  nprobe = std::min(nprobe, x.nlist);
  if (nprobe > kGpuMaxK && nprobe < x.nlist) {
    return absl::InvalidArgumentError(absl::StrCat(
        "GpuIvfPqIndex::Search: nprobe=", nprobe, " must be <= ", kGpuMaxK,
        " or >= nlist=", x.nlist, " (every list) on the GPU"));
  }
  if (nq > std::numeric_limits<size_t>::max() / kGpuMaxK / 8 / (d + 1)) {
    return absl::InvalidArgumentError(
        absl::StrCat("GpuIvfPqIndex::Search: nq=", nq, " queries are too many for one call"));
  }
  try {
    gpu::IvfPqRequest r;
    r.queries = queries;
    r.nq = nq;
    r.k = static_cast<uint32_t>(params.k);
    r.refine = params.refine > 0;
    r.candidates = static_cast<uint32_t>(r.refine ? candidates : params.k);
    r.nprobe = static_cast<uint32_t>(nprobe);
    r.skip = params.skip.empty() ? nullptr : params.skip.data();
    r.skip_words = params.skip.size();
    r.scratch_bytes = params.scratch_bytes == 0 ? kGpuDefaultScratchBytes : params.scratch_bytes;
    r.want_stats = params.stats != nullptr;
    std::vector<gpu::SelEntry> flat(nq * params.k);
    gpu::IvfPqStats stats;
    const gpu::Error e = gpu::IvfPqSearch(x.index, r, flat.data(), &stats);
    if (!e.ok()) return ToStatus(gpu::Error{e.code, "GpuIvfPqIndex::Search: " + e.message});
    if (params.stats != nullptr) {
      params.stats->device_ms = stats.device_ms;
      params.stats->query_blocks = stats.query_blocks;
      params.stats->shared_lut = stats.shared_lut;
      params.stats->nprobe = nprobe;
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
    return absl::ResourceExhaustedError("GpuIvfPqIndex::Search: out of host memory");
  } catch (const std::exception& ex) {
    return absl::InternalError(absl::StrCat("GpuIvfPqIndex::Search: ", ex.what()));
  }
}

}  // namespace rosetta::kernels
