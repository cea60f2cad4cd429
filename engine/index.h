// Internal to the engine: sealed segments and their IVF-PQ indexes.
//
// A sealed segment is a fixed set of rows ("members") of a collection's row space, frozen when the
// segment was sealed, with one kernels::IvfPqIndex per ivf_pq field that has at least
// kMinIndexVectors vectors among the members (fields with fewer stay exhaustively scanned in that
// segment). Index entries are identified by member position, not by row, so that a persisted
// segment survives a reopen, which renumbers rows: the artifact stores the members' record ids
// and, per indexed field, a fingerprint of each member's vector; at load, a member whose record is
// gone or whose vector changed since is dead (its index entries are skipped; the record's current
// version is scanned exhaustively until a later segment indexes it).
//
// Members deleted or replaced after sealing stay in the index and are skipped at search time via
// the row tombstones, like every other row.
//
// Artifact format (one stats blob per segment, key SegmentStatKey(id)), little-endian:
//   "RSSEG001" | u32 version (1) | u64 segment id | u64 member count
//   | per member: u32 id length, id bytes
//   | u32 index count | per index: u16 field id, u32 name length, name,
//       u64 fingerprint per member (0 = the member had no vector of the field),
//       u64 index length, kernels::IvfPqIndex::Serialize bytes
//   | u64 FNV-1a checksum of everything before it.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/layout.h"
#include "engine/segment.h"
#include "kernels/ivf_pq.h"
#include "schema/types.h"

namespace rosetta::kernels {
class ThreadPool;
}

namespace rosetta::engine {

inline constexpr uint32_t kDeadMember = UINT32_MAX;
// A field's index is built in a segment only when the segment holds at least this many of its
// vectors (PQ needs 2^nbits training vectors per codebook; below a few thousand vectors an
// exhaustive scan is as fast).
inline constexpr size_t kMinIndexVectors = 1000;
inline constexpr uint32_t kSegmentFormatVersion = 1;
// A non-exact query whose index scans read fewer code bytes than this (the codes of its probed
// lists) runs on the calling thread only: at a few GB/s per core that is tens of microseconds, about what
// waking the pool's workers costs.
inline constexpr size_t kParallelIndexScanBytes = size_t{256} << 10;

struct SealedFieldIndex {
  size_t field = 0;
  std::shared_ptr<const kernels::IvfPqIndex> index;
  int64_t vectors = 0;  // entries in the index.
};

struct SealedSegment {
  uint64_t id = 0;
  std::vector<uint32_t> member_rows;     // member position -> row, or kDeadMember.
  std::vector<SealedFieldIndex> fields;  // built indexes, by field id ascending.
  // Fields the segment leaves to the exhaustive scan (too few vectors), by field id.
  std::vector<size_t> flat_fields;
  int64_t bytes = 0;  // memory of the indexes.

  const SealedFieldIndex* Find(size_t field) const {
    for (const auto& f : fields) {
      if (f.field == field) return &f;
    }
    return nullptr;
  }
};

// The stats key of a segment's artifact ("segment/" + 16 hex digits), and its prefix.
std::string SegmentStatKey(uint64_t id);
inline constexpr std::string_view kSegmentStatPrefix = "segment/";

// Resolves a field's IndexSpec for a segment holding `vectors` of its vectors.
kernels::IvfPqParams ResolveIvfPqParams(const FieldSpec& field, size_t vectors);

// Builds the indexes of every ivf_pq field over `member_rows` (rows < snapshot.rows) and encodes
// the artifact into *artifact. `cancel` (optional) is polled between fields: Cancelled when set.
// Errors from the kernels (InvalidArgument: e.g. m does not divide dim) name the field.
absl::StatusOr<std::shared_ptr<SealedSegment>> BuildSealedSegment(
    const Layout& layout, const Snapshot& snapshot, uint64_t id, std::vector<uint32_t> member_rows,
    std::string* artifact, kernels::ThreadPool* pool, const std::atomic<bool>* cancel = nullptr);

// Decodes an artifact against the current rows: `row_of_id` maps a record id to its current row
// (nullopt: no such record); `vector_of` returns a row's vector of a field (nullptr: absent).
// DataLoss (naming the key) for a damaged artifact; the caller then rebuilds the segment.
absl::StatusOr<std::shared_ptr<SealedSegment>> LoadSealedSegment(
    const Layout& layout, std::string_view artifact,
    const std::function<std::optional<size_t>(const std::string&)>& row_of_id,
    const std::function<const float*(size_t field, size_t row)>& vector_of);

// The coverage (per field id) of a list of segments over the segment's first `rows` rows
// (rows <= segment.writer_rows(); called by the writer).
std::shared_ptr<const CoveredRows> ComputeCovered(const Layout& layout, const SealedList& sealed,
                                                  const Segment& segment, size_t rows);

// Candidate generation for a non-exact search (request validated): per targeted field, the best
// `refine` candidates of every ready segment's index (nprobe lists) and of an exact scan of the
// rows no index covers, live and passing the filter. Returns the union as ascending rows and the
// plan per targeted field. Returns nullopt when no targeted field has a ready index (the caller
// runs the exhaustive search). Uses `pool` only when the probed lists hold at least
// kParallelIndexScanBytes of codes, and says which in CandidateUnion::pool.
// The work is proportional to the candidates and the probed lists, not to the collection: the
// uncovered scan visits only the pages FieldCoverage leaves open.
struct CandidateUnion {
  std::vector<uint32_t> rows;  // ascending, distinct.
  std::vector<FieldPlan> plan;
  // The pool the candidates were gathered with (nullptr: a small query, kept on the calling
  // thread), for re-scoring them the same way.
  kernels::ThreadPool* pool = nullptr;
};
absl::StatusOr<std::optional<CandidateUnion>> GatherCandidates(const Layout& layout,
                                                               const Snapshot& snapshot,
                                                               const SearchRequest& request,
                                                               kernels::ThreadPool* pool);

// Fingerprint of a vector (FNV-1a over its float bits; never 0).
uint64_t VectorFingerprint(const float* v, size_t dim);

}  // namespace rosetta::engine
