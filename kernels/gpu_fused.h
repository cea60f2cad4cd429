// Exact fused multi-field scoring on a CUDA GPU (issue 6, kernel 3), and its CPU reference.
// Usable from any code: no CUDA header here; without the CUDA kernels (gpu_fused_nocuda.cc) the GPU
// entry points return Unavailable, while the CPU reference (gpu_fused_reference.cc) exists in
// every build.
//
// The computation (the "weighted" fusion of docs/query-semantics.md, for one row space shared by
// F fields, e.g. one segment's image and caption vectors). For query q, row r and each targeted
// term t (a field f with a query vector, metric, query weight and affine normalisation), in term
// order (the engine passes them in field-name order, which fixes the summation order):
//   raw_t(r)  = <q_t, v_f(r)> (kInnerProduct) or -||q_t - v_f(r)||^2 (kL2), fp32 (a chain of fused
//               multiply-adds in element order);
//   n_t(r)    = scale_t[q] x raw + offset_t[q]   (normalize "none": scale 1, offset 0; minmax,
//               zscore and calibrated are affine maps whose parameters the host computes);
//   w_t(r)    = weight_t x record_weight_f(r)    (record weight 1 when the field has none);
//   P         = the terms whose field row r has (presence bitmap);
//   missing policy: kRenormalize multiplies the present weights by S_T / S_P, where S_T sums
//               w_t(r) over the present terms plus weight_t over the missing ones and S_P sums
//               w_t(r) over P (S_P = 0: factor 0, score 0, still a candidate); kZero and kRequire
//               use factor 1, and kRequire admits only rows having every targeted field;
//   c_t(r)    = float32(w_t(r) x factor x n_t(r)), computed in double;
//   score     = float32 of the double sum of the c_t(r) over P in term order.
// Candidates: rows with at least one targeted field, passing the missing policy and not excluded
// by the skip bitmap (deleted rows and the filter's complement, prepared by the host).
// Result per query: the min(k, candidates) best rows, score descending then row ascending (exact
// over the scores as computed, as kernels::TopK orders them), ids being row numbers.
//
// The GPU and the reference run the same per-row code (kernels/cuda/fused_fields_math.cuh), with
// explicitly rounded double operations on the device and the same fp32 fmaf chains for raw scores,
// so their results agree bit for bit, ties included (measured on an H100: 96 searches of
// tests/cuda/gpu_fused_test.cc, bench/results/2026-11-25-gpu-h100-ivfpq).
//
// Storage: fields are uploaded as fp32 rows padded to a multiple of 4 floats, with their presence
// bitmap and record weights; queries are uploaded per call. No fp16 storage yet.
//
// Threading: a GpuFieldSet is immutable after Upload; GpuFusedSearch may run concurrently on it
// (each call allocates its own stream and scratch). Calls block until results are on the host.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "kernels/flat_search.h"
#include "kernels/gpu_search.h"
#include "kernels/topk.h"

namespace rosetta::kernels {

enum class FusedMissing { kRenormalize, kZero, kRequire };

// Most terms (targeted fields) one fused query may have.
inline constexpr size_t kFusedMaxTerms = 16;

// One field's data over the shared row space (host memory, read during Upload / the reference).
struct FusedFieldData {
  // rows x dim row-major floats; the contents of rows that lack the field are ignored.
  const float* vectors = nullptr;
  size_t dim = 0;
  // Bit r of present[r / 64] set = row r has this field; empty = every row has it. When given,
  // it must cover every row (at least ceil(rows / 64) words).
  std::span<const uint64_t> present = {};
  // Per-row weight of this field (finite, >= 0), rows floats; empty = 1 for every row.
  std::span<const float> record_weights = {};
};

// One targeted field of a query batch.
struct FusedTerm {
  size_t field = 0;  // index into the field set
  FlatMetric metric = FlatMetric::kInnerProduct;
  // Query weight (schema or query weight times input weight): finite, >= 0.
  double weight = 1.0;
  // nq x dim(field) row-major query vectors (host).
  const float* queries = nullptr;
  // Affine normalisation per query: n = scale[q] x raw + offset[q]. Each empty (scale 1 /
  // offset 0 for every query) or nq finite values.
  std::span<const double> scale = {};
  std::span<const double> offset = {};
};

struct GpuFusedStats {
  double device_ms = 0;  // CUDA-event time from the query upload to the results being ready
  size_t passes = 0;     // query groups (shared-memory bound)
};

struct FusedParams {
  size_t k = 10;  // 1..kGpuMaxK
  // The targeted fields, in summation order; 1..kFusedMaxTerms terms on distinct fields.
  std::span<const FusedTerm> terms = {};
  FusedMissing missing = FusedMissing::kRenormalize;
  // Optional: bit r of skip[r / 64] set = row r is excluded; rows beyond the bitmap are not.
  std::span<const uint64_t> skip = {};
  // GPU only, optional: filled when the search succeeds.
  GpuFusedStats* stats = nullptr;
};

struct RankCount;        // below (per-field ranks)
struct RankCountParams;  // below

// Fields resident in device memory, sharing one row space. Create with Upload.
class GpuFieldSet {
 public:
  // Copies `fields` (each rows x dim, presence, record weights) to the device. rows may be 0.
  // Errors: InvalidArgument (no field, a field with dim 0 or null vectors with rows > 0, a short
  // presence bitmap, record weights of the wrong length or not finite and >= 0, rows >= 2^31 - 1,
  // bad device ordinal), Unavailable (no CUDA build or device), ResourceExhausted, Internal.
  static absl::StatusOr<std::unique_ptr<GpuFieldSet>> Upload(
      size_t rows, std::span<const FusedFieldData> fields, int device = 0);
  ~GpuFieldSet();
  GpuFieldSet(const GpuFieldSet&) = delete;
  GpuFieldSet& operator=(const GpuFieldSet&) = delete;

  size_t rows() const;
  size_t fields() const;
  size_t dim(size_t field) const;
  int device() const;
  size_t device_bytes() const;

  struct Impl;

 private:
  friend absl::StatusOr<std::vector<std::vector<Scored>>> GpuFusedSearch(const GpuFieldSet& set,
                                                                         size_t nq,
                                                                         const FusedParams& params);
  friend absl::StatusOr<std::vector<RankCount>> GpuRankCounts(const GpuFieldSet& set, size_t nq,
                                                              const RankCountParams& params);
  explicit GpuFieldSet(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// The fused top-k of nq queries on the device (see the top of this file). nq may be 0.
// Errors: InvalidArgument (see FusedReferenceSearch), ResourceExhausted, Internal.
absl::StatusOr<std::vector<std::vector<Scored>>> GpuFusedSearch(const GpuFieldSet& set, size_t nq,
                                                                const FusedParams& params);

// The CPU reference of GpuFusedSearch over host fields (plain C++, one thread, every build).
// Errors (InvalidArgument, naming the term or field): k outside [1, kGpuMaxK], no terms or more
// than kFusedMaxTerms, a field index out of range or targeted twice, a weight not finite and
// >= 0, null queries with nq > 0, scale / offset of the wrong length or not finite, a metric other
// than kInnerProduct / kL2; and the field checks of GpuFieldSet::Upload.
absl::StatusOr<std::vector<std::vector<Scored>>> FusedReferenceSearch(
    size_t rows, std::span<const FusedFieldData> fields, size_t nq, const FusedParams& params);

// --- Per-field ranks of given scores (the explanations' `rank`, issue 6) ---
//
// For query q and each of its thresholds t_j: over the rows that have the field and are not
// skipped, `greater` = rows whose raw score (the same fp32 fmaf chain as the fused search's raw_t,
// see FusedRawScore) is > t_j, and `equal` = rows whose raw score == t_j. NaN raw scores count in
// neither. The engine passes, per hit, the hit's own raw score computed by FusedRawScore, so the
// hit's rank in the field is 1 + greater (+ the equal rows that precede it by id, which the
// engine resolves itself).
//
// nq may be 0 (thresholds then empty, result empty); rows may be 0 (every count 0).
//
// How the counts are computed (GPU and reference alike): per query the thresholds are sorted and
// deduplicated (padded with +infinity to the widest query's count, `width`); each counted row
// with a non-NaN raw score s adds 1 to bin `below(s)` = the number of distinct thresholds < s
// (a binary search) and, when the threshold at that position equals s, to that threshold's
// `equal` bin; then greater(u_i) = the sum of the bins above i. So one pass costs
// O(rows x (dim + log width)) per query, whatever per_query is.
// The kernel (kernels/cuda/rank_counts.cu): one pass over the rows per group of up to 8 queries
// (as many as shared memory holds); one thread per row (grid-stride), the row read once as float4
// for the whole group with FusedRawStep's fmaf chain (the fused kernel's arithmetic); each block
// keeps the group's sorted thresholds and 32-bit bins in shared memory (shared atomics; bin 0,
// which feeds no count, is never incremented), and at its end adds its non-zero bins to 64-bit
// global counters with atomicAdd; the host then forms the suffix sums. Integer sums: the counts
// are exact and independent of scheduling. Like GpuFusedSearch, GpuRankCounts may run
// concurrently on one GpuFieldSet and blocks until the counts are on the host.
struct RankCountParams {
  size_t field = 0;  // index into the field set
  FlatMetric metric = FlatMetric::kInnerProduct;
  const float* queries = nullptr;  // nq x dim(field) row-major (host)
  // nq x per_query thresholds, query-major (per_query = thresholds.size() / nq, 1 .. kGpuMaxK);
  // each finite, in any order.
  std::span<const float> thresholds = {};
  // Optional: bit r of skip[r / 64] set = row r is not counted (FusedParams::skip's convention).
  std::span<const uint64_t> skip = {};
};

struct RankCount {
  int64_t greater = 0;
  int64_t equal = 0;
};

// Result: nq x per_query counts, in the thresholds' order. Errors: InvalidArgument (field out of
// range, null queries with nq > 0, thresholds empty / not a multiple of nq / per_query above
// kGpuMaxK / not finite, a metric other than kInnerProduct / kL2), ResourceExhausted, Internal.
absl::StatusOr<std::vector<RankCount>> GpuRankCounts(const GpuFieldSet& set, size_t nq,
                                                     const RankCountParams& params);
// The CPU reference (every build, one thread); errors as above plus the field checks of Upload.
absl::StatusOr<std::vector<RankCount>> RankCountsReference(size_t rows,
                                                           std::span<const FusedFieldData> fields,
                                                           size_t nq,
                                                           const RankCountParams& params);

// The raw score raw_t of the top of this file for one (query, vector) pair, as the device and
// the references compute it (bit for bit): <q, v> or -||q - v||^2 as an fp32 fmaf chain in
// element order. Every build.
float FusedRawScore(FlatMetric metric, const float* query, const float* vector, size_t dim);

namespace internal {
// Argument checks shared by the reference and the GPU path. `dims` = each field's dimension.
absl::Status CheckFusedFields(size_t rows, std::span<const FusedFieldData> fields,
                              const char* who);
absl::Status CheckFusedParams(std::span<const size_t> dims, size_t nq, const FusedParams& params,
                              const char* who);
// The RankCountParams checks of GpuRankCounts (the field checks excluded).
absl::Status CheckRankCountParams(std::span<const size_t> dims, size_t nq,
                                  const RankCountParams& params, const char* who);

// The thresholds of a rank count prepared for binning (see "How the counts are computed" above).
struct RankBins {
  size_t per_query = 0;
  size_t width = 0;            // the most distinct thresholds of one query (>= 1)
  std::vector<float> sorted;   // nq x width: each query's distinct thresholds ascending, +inf pad
  std::vector<uint32_t> slot;  // nq x per_query: each threshold's position in its query's list
  // Counters per query (bins): [0, width] rows by below(s), then width `equal` counters.
  size_t bins_per_query() const { return 2 * width + 1; }
};
// Expects params already checked; nq > 0. Throws std::bad_alloc when out of memory.
// (below(s) itself is gpu::RankBinBelow in kernels/cuda/fused_fields_math.cuh, run by both sides.)
RankBins PrepareRankBins(size_t nq, const RankCountParams& params);
// Counts from nq x bins_per_query() counters, in the thresholds' order.
std::vector<RankCount> RankCountsFromBins(const RankBins& bins, size_t nq,
                                          std::span<const uint64_t> counters);
}  // namespace internal

}  // namespace rosetta::kernels
