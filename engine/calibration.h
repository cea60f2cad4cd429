// Internal to the engine: calibration statistics for normalize=calibrated.
//
// For a field f and a query modality m (any modality among the fields of f's space):
//   sample queries: up to kCalibrationQueries vectors of modality m, taken from the fields of f's
//     space whose modality is m, from the live records with the smallest IdHash(id) (ties: id,
//     then field id) -- a uniform sample that is stable as data grows (a new record enters only
//     if its hash is among the smallest);
//   sample targets: up to kCalibrationTargets vectors of f, by the same rule;
//   every (query, target) pair whose two vectors come from different records is scored with the
//     space's metric (raw score, as in search). mean / stddev (population) are over those pairs,
//     top1_mean is the mean over the sample queries (with at least one pair) of their best score.
// Computation is deterministic given the data and the kernel level: the pair scores come from the
// SIMD kernels, and every reduction runs in double precision in a fixed order, independent of the
// number of threads.
//
// Refresh rule (RefreshCalibration): (m, f) is (re)computed when it has no statistics, or when the
// field's live vector count differs from the statistics' at_vectors by at least
// `refresh_fraction` x at_vectors. Statistics that cannot be computed (f has < 2 vectors, or no
// pair exists) are absent; search then falls back to zscore for that field.
//
// Persistence: the whole set of a collection is one stats blob (key kCalibrationStatKey), in a
// versioned little-endian binary format that round-trips doubles bit-exactly.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "engine/layout.h"
#include "engine/segment.h"

namespace rosetta::kernels {
class ThreadPool;
}

namespace rosetta::engine {

inline constexpr size_t kCalibrationQueries = 256;
inline constexpr size_t kCalibrationTargets = 4096;
inline constexpr char kCalibrationStatKey[] = "calibration";

// Returns the refreshed set, or nullptr when nothing changed. `snapshot` must reflect the data.
// `computed` (optional) is incremented once per (m, f) computation.
std::shared_ptr<const CalibrationSet> RefreshCalibration(const Layout& layout,
                                                         const Snapshot& snapshot,
                                                         const CalibrationSet& current,
                                                         double refresh_fraction,
                                                         kernels::ThreadPool* pool,
                                                         int64_t* computed = nullptr);

std::string EncodeCalibration(const CalibrationSet& set);
// DataLoss on a malformed blob or one naming a field the layout lacks; `what` prefixes messages.
absl::StatusOr<CalibrationSet> DecodeCalibration(const Layout& layout, std::string_view bytes,
                                                 const std::string& what);

}  // namespace rosetta::engine
