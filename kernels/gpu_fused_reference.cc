// CPU reference of fused multi-field scoring (kernels/gpu_fused.h) and the argument checks the GPU
// path shares. The per-row steps are those of kernels/cuda/fused_fields_math.cuh, so this file
// states the computation once more only as loops: raw scores, weights, then contributions in term
// order. Compiled in every build (with or without CUDA).
#include <cmath>
#include <cstdint>
#include <exception>
#include <limits>
#include <new>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "kernels/cuda/fused_fields_math.cuh"
#include "kernels/cuda/select_network.h"
#include "kernels/gpu_fused.h"

namespace rosetta::kernels {
namespace internal {

absl::Status CheckFusedFields(size_t rows, std::span<const FusedFieldData> fields,
                              const char* who) {
  if (fields.empty()) return absl::InvalidArgumentError(absl::StrCat(who, ": no fields"));
  if (rows >= static_cast<size_t>(gpu::kSentinelId)) {
    return absl::InvalidArgumentError(
        absl::StrCat(who, ": rows=", rows, " must be below 2^31 - 1 (row ids are int32)"));
  }
  const size_t words = (rows + 63) / 64;
  for (size_t f = 0; f < fields.size(); ++f) {
    const FusedFieldData& field = fields[f];
    if (field.dim == 0 || field.dim > (size_t{1} << 24)) {
      return absl::InvalidArgumentError(
          absl::StrCat(who, ": field ", f, " has dim=", field.dim, " (must be in [1, 2^24])"));
    }
    if (rows > std::numeric_limits<size_t>::max() / 8 / (field.dim + 4)) {
      return absl::InvalidArgumentError(absl::StrCat(who, ": field ", f, " is too large"));
    }
    if (rows > 0 && field.vectors == nullptr) {
      return absl::InvalidArgumentError(
          absl::StrCat(who, ": field ", f, " has null vectors with rows > 0"));
    }
    if (!field.present.empty() && field.present.size() < words) {
      return absl::InvalidArgumentError(
          absl::StrCat(who, ": field ", f, " presence bitmap has ", field.present.size(),
                       " words; ", words, " are needed for ", rows, " rows"));
    }
    if (!field.record_weights.empty()) {
      if (field.record_weights.size() != rows) {
        return absl::InvalidArgumentError(
            absl::StrCat(who, ": field ", f, " has ", field.record_weights.size(),
                         " record weights for ", rows, " rows"));
      }
      for (size_t r = 0; r < rows; ++r) {
        const float w = field.record_weights[r];
        if (!std::isfinite(w) || w < 0) {
          return absl::InvalidArgumentError(absl::StrCat(
              who, ": field ", f, " record weight of row ", r, " is ", w,
              " (must be finite and >= 0)"));
        }
      }
    }
  }
  return absl::OkStatus();
}

absl::Status CheckFusedParams(std::span<const size_t> dims, size_t nq, const FusedParams& params,
                              const char* who) {
  if (params.k == 0 || params.k > kGpuMaxK) {
    return absl::InvalidArgumentError(
        absl::StrCat(who, ": k=", params.k, " must be in [1, ", kGpuMaxK, "]"));
  }
  if (params.terms.empty() || params.terms.size() > kFusedMaxTerms) {
    return absl::InvalidArgumentError(absl::StrCat(who, ": ", params.terms.size(),
                                                   " terms; 1 to ", kFusedMaxTerms,
                                                   " are supported"));
  }
  if (nq > static_cast<size_t>(std::numeric_limits<int32_t>::max()) / 2) {
    return absl::InvalidArgumentError(absl::StrCat(who, ": nq=", nq, " is too large"));
  }
  std::vector<bool> used(dims.size(), false);
  for (size_t t = 0; t < params.terms.size(); ++t) {
    const FusedTerm& term = params.terms[t];
    if (term.field >= dims.size()) {
      return absl::InvalidArgumentError(absl::StrCat(who, ": term ", t, " names field ",
                                                     term.field, " of ", dims.size()));
    }
    if (used[term.field]) {
      return absl::InvalidArgumentError(
          absl::StrCat(who, ": field ", term.field, " is targeted twice (term ", t, ")"));
    }
    used[term.field] = true;
    if (term.metric != FlatMetric::kInnerProduct && term.metric != FlatMetric::kL2) {
      return absl::InvalidArgumentError(absl::StrCat(who, ": term ", t, " has an unknown metric"));
    }
    if (!std::isfinite(term.weight) || term.weight < 0) {
      return absl::InvalidArgumentError(absl::StrCat(who, ": term ", t, " weight ", term.weight,
                                                     " must be finite and >= 0"));
    }
    if (nq > 0 && term.queries == nullptr) {
      return absl::InvalidArgumentError(
          absl::StrCat(who, ": term ", t, " has null queries with nq > 0"));
    }
    for (const auto& [name, values] :
         {std::pair<const char*, std::span<const double>>{"scale", term.scale},
          std::pair<const char*, std::span<const double>>{"offset", term.offset}}) {
      if (!values.empty() && values.size() != nq) {
        return absl::InvalidArgumentError(absl::StrCat(who, ": term ", t, " has ", values.size(),
                                                       " ", name, " values for ", nq, " queries"));
      }
      for (size_t q = 0; q < values.size(); ++q) {
        if (!std::isfinite(values[q])) {
          return absl::InvalidArgumentError(
              absl::StrCat(who, ": term ", t, " ", name, " of query ", q, " is not finite"));
        }
      }
    }
  }
  return absl::OkStatus();
}

}  // namespace internal

// The device runs the same steps over rows zero-padded to 4 floats: a padding step adds 0 x 0 to
// the chain, which leaves a non-zero sum unchanged. The one difference it can make is the sign of
// a zero: the chain starts at +0 and rounds to nearest, so it holds -0 only after a step whose
// exact result is a negative value too small for a subnormal, and a padding step turns that -0
// into +0. The two compare equal, so neither the rank counts nor the fused scores (whose double
// sums start at +0) can tell them apart.
float FusedRawScore(FlatMetric metric, const float* query, const float* vector, size_t dim) {
  const bool l2 = metric == FlatMetric::kL2;
  float acc = 0.f;
  for (size_t i = 0; i < dim; ++i) acc = gpu::FusedRawStep(l2, query[i], vector[i], acc);
  return l2 ? -acc : acc;
}

absl::StatusOr<std::vector<std::vector<Scored>>> FusedReferenceSearch(
    size_t rows, std::span<const FusedFieldData> fields, size_t nq, const FusedParams& params) {
  constexpr const char* kWho = "FusedReferenceSearch";
  if (absl::Status s = internal::CheckFusedFields(rows, fields, kWho); !s.ok()) return s;
  std::vector<size_t> dims;
  for (const FusedFieldData& f : fields) dims.push_back(f.dim);
  if (absl::Status s = internal::CheckFusedParams(dims, nq, params, kWho); !s.ok()) return s;
  try {
    const int missing = params.missing == FusedMissing::kRenormalize ? gpu::kFusedRenormalize
                        : params.missing == FusedMissing::kZero      ? gpu::kFusedZero
                                                                     : gpu::kFusedRequire;
    const size_t nt = params.terms.size();
    auto has = [&](const FusedFieldData& f, size_t r) {
      return f.present.empty() || ((f.present[r / 64] >> (r % 64)) & 1u) != 0;
    };
    auto record_weight = [&](const FusedFieldData& f, size_t r) {
      return f.record_weights.empty() ? 1.0f : f.record_weights[r];
    };
    std::vector<TopK> tops;
    tops.reserve(nq);
    for (size_t q = 0; q < nq; ++q) tops.emplace_back(params.k);
    for (size_t r = 0; r < rows; ++r) {
      if (r / 64 < params.skip.size() && ((params.skip[r / 64] >> (r % 64)) & 1u) != 0) continue;
      gpu::FusedWeights w;
      for (const FusedTerm& t : params.terms) {
        const FusedFieldData& f = fields[t.field];
        gpu::FusedAddField(w, has(f, r), t.weight, record_weight(f, r));
      }
      if (!gpu::FusedEligible(w, missing, static_cast<int>(nt))) continue;
      const double factor = gpu::FusedFactor(w, missing);
      for (size_t q = 0; q < nq; ++q) {
        double sum = 0;
        for (const FusedTerm& t : params.terms) {
          const FusedFieldData& f = fields[t.field];
          if (!has(f, r)) continue;
          const float raw =
              FusedRawScore(t.metric, t.queries + q * f.dim, f.vectors + r * f.dim, f.dim);
          const double scale = t.scale.empty() ? 1.0 : t.scale[q];
          const double offset = t.offset.empty() ? 0.0 : t.offset[q];
          sum = gpu::FusedAccumulate(
              sum, gpu::FusedContribution(t.weight, record_weight(f, r), factor, scale, offset, raw));
        }
        tops[q].Push(static_cast<float>(sum), static_cast<int64_t>(r));
      }
    }
    std::vector<std::vector<Scored>> out(nq);
    for (size_t q = 0; q < nq; ++q) out[q] = tops[q].TakeSorted();
    return out;
  } catch (const std::bad_alloc&) {
    return absl::ResourceExhaustedError(absl::StrCat(kWho, ": out of host memory"));
  } catch (const std::exception& ex) {
    return absl::InternalError(absl::StrCat(kWho, ": ", ex.what()));
  }
}

}  // namespace rosetta::kernels
