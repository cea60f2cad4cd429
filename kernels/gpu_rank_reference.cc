// Per-field rank counts (kernels/gpu_fused.h): the argument checks and the threshold binning the
// GPU path (gpu_fused_cuda.cc + kernels/cuda/rank_counts.cu) shares with the CPU reference, and
// the reference itself. Compiled in every build.
//
// Why bins rather than comparing every row with every threshold: per_query may be kGpuMaxK (the
// engine asks for the rank of every hit of a top-1024), and rows x per_query comparisons would
// dominate the raw scores. Sorting a query's thresholds once turns each row into one binary
// search and at most two increments; the counts are then suffix sums of the bins. Being integer
// sums, they come out the same whatever order the rows are counted in.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <exception>
#include <limits>
#include <new>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "kernels/cuda/fused_fields_math.cuh"
#include "kernels/gpu_fused.h"

namespace rosetta::kernels {
namespace internal {

absl::Status CheckRankCountParams(std::span<const size_t> dims, size_t nq,
                                  const RankCountParams& params, const char* who) {
  if (params.field >= dims.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat(who, ": field ", params.field, " of ", dims.size()));
  }
  if (params.metric != FlatMetric::kInnerProduct && params.metric != FlatMetric::kL2) {
    return absl::InvalidArgumentError(absl::StrCat(who, ": unknown metric"));
  }
  if (nq > static_cast<size_t>(std::numeric_limits<int32_t>::max()) / 2) {
    return absl::InvalidArgumentError(absl::StrCat(who, ": nq=", nq, " is too large"));
  }
  if (nq == 0) {
    if (!params.thresholds.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(
          who, ": ", params.thresholds.size(), " thresholds for nq=0 queries (must be none)"));
    }
    return absl::OkStatus();
  }
  if (params.queries == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat(who, ": null queries with nq > 0"));
  }
  if (params.thresholds.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(who, ": no thresholds"));
  }
  if (params.thresholds.size() % nq != 0) {
    return absl::InvalidArgumentError(absl::StrCat(who, ": ", params.thresholds.size(),
                                                   " thresholds are not a multiple of nq=", nq));
  }
  const size_t per_query = params.thresholds.size() / nq;
  if (per_query > kGpuMaxK) {
    return absl::InvalidArgumentError(absl::StrCat(
        who, ": ", per_query, " thresholds per query; at most ", kGpuMaxK, " are supported"));
  }
  for (size_t i = 0; i < params.thresholds.size(); ++i) {
    if (!std::isfinite(params.thresholds[i])) {
      return absl::InvalidArgumentError(absl::StrCat(who, ": threshold ", i % per_query,
                                                     " of query ", i / per_query, " is ",
                                                     params.thresholds[i], " (must be finite)"));
    }
  }
  return absl::OkStatus();
}

RankBins PrepareRankBins(size_t nq, const RankCountParams& params) {
  RankBins bins;
  bins.per_query = params.thresholds.size() / nq;
  std::vector<std::vector<float>> distinct(nq);
  for (size_t q = 0; q < nq; ++q) {
    const auto t = params.thresholds.subspan(q * bins.per_query, bins.per_query);
    distinct[q].assign(t.begin(), t.end());
    std::sort(distinct[q].begin(), distinct[q].end());
    // == merges -0 and +0, as the comparisons of the counts do.
    distinct[q].erase(std::unique(distinct[q].begin(), distinct[q].end()), distinct[q].end());
    bins.width = std::max(bins.width, distinct[q].size());
  }
  bins.sorted.assign(nq * bins.width, std::numeric_limits<float>::infinity());
  bins.slot.resize(nq * bins.per_query);
  for (size_t q = 0; q < nq; ++q) {
    std::copy(distinct[q].begin(), distinct[q].end(), bins.sorted.begin() + q * bins.width);
    for (size_t j = 0; j < bins.per_query; ++j) {
      // The threshold itself is in the list: below(t) is its position.
      bins.slot[q * bins.per_query + j] = gpu::RankBinBelow(
          distinct[q].data(), static_cast<uint32_t>(distinct[q].size()),
          params.thresholds[q * bins.per_query + j]);
    }
  }
  return bins;
}

std::vector<RankCount> RankCountsFromBins(const RankBins& bins, size_t nq,
                                          std::span<const uint64_t> counters) {
  const size_t w = bins.width;
  const size_t per = bins.bins_per_query();
  std::vector<RankCount> out(nq * bins.per_query);
  std::vector<int64_t> greater(w);
  for (size_t q = 0; q < nq; ++q) {
    const uint64_t* c = counters.data() + q * per;
    // greater(u_i) = rows with below(s) > i = the bins i + 1 .. w.
    int64_t above = 0;
    for (size_t i = w; i-- > 0;) {
      above += static_cast<int64_t>(c[i + 1]);
      greater[i] = above;
    }
    for (size_t j = 0; j < bins.per_query; ++j) {
      const uint32_t s = bins.slot[q * bins.per_query + j];
      out[q * bins.per_query + j] = RankCount{greater[s], static_cast<int64_t>(c[w + 1 + s])};
    }
  }
  return out;
}

}  // namespace internal

absl::StatusOr<std::vector<RankCount>> RankCountsReference(size_t rows,
                                                           std::span<const FusedFieldData> fields,
                                                           size_t nq,
                                                           const RankCountParams& params) {
  constexpr const char* kWho = "RankCountsReference";
  if (absl::Status s = internal::CheckFusedFields(rows, fields, kWho); !s.ok()) return s;
  std::vector<size_t> dims;
  for (const FusedFieldData& f : fields) dims.push_back(f.dim);
  if (absl::Status s = internal::CheckRankCountParams(dims, nq, params, kWho); !s.ok()) return s;
  if (nq == 0) return std::vector<RankCount>{};
  try {
    const internal::RankBins bins = internal::PrepareRankBins(nq, params);
    const uint32_t w = static_cast<uint32_t>(bins.width);
    const size_t per = bins.bins_per_query();
    std::vector<uint64_t> counters(nq * per, 0);
    const FusedFieldData& f = fields[params.field];
    for (size_t r = 0; r < rows; ++r) {
      if (r / 64 < params.skip.size() && ((params.skip[r / 64] >> (r % 64)) & 1u) != 0) continue;
      if (!f.present.empty() && ((f.present[r / 64] >> (r % 64)) & 1u) == 0) continue;
      const float* v = f.vectors + r * f.dim;
      for (size_t q = 0; q < nq; ++q) {
        const float s = FusedRawScore(params.metric, params.queries + q * f.dim, v, f.dim);
        if (std::isnan(s)) continue;
        const float* sorted = bins.sorted.data() + q * w;
        const uint32_t b = gpu::RankBinBelow(sorted, w, s);
        uint64_t* c = counters.data() + q * per;
        ++c[b];
        if (b < w && sorted[b] == s) ++c[w + 1 + b];
      }
    }
    return internal::RankCountsFromBins(bins, nq, counters);
  } catch (const std::bad_alloc&) {
    return absl::ResourceExhaustedError(absl::StrCat(kWho, ": out of host memory"));
  } catch (const std::exception& ex) {
    return absl::InternalError(absl::StrCat(kWho, ": ", ex.what()));
  }
}

}  // namespace rosetta::kernels
