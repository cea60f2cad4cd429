// Internal to the engine: the growing segment and its immutable snapshots.
//
// Layout in memory. Rows are append-only and numbered 0, 1, 2, ... in write order. They live in
// fixed-size pages of kPageRows rows that are never reallocated or moved once created:
//   - per row, a RowInfo (id, id hash, metadata, pre-parsed per-field weights and timestamp);
//   - per field, a page-local slab of kPageRows x dim float32 (row-major, allocated zeroed on the
//     first vector of that field in the page, so sparse fields cost nothing in pages without them)
//     and a presence bitmap.
// A row is immutable once published: an upsert of an existing id tombstones the old row and
// appends a new one; an import into an existing record appends a new row version with the other
// fields copied. The tombstone bitmap is copy-on-write per write batch: a batch that tombstones
// anything copies the bitmap once, sets its bits and publishes the copy.
//
// Snapshots. A Snapshot is {row count, shared_ptr to the page directory, shared_ptr<const>
// tombstones, shared_ptr<const> calibration, live counts}. Readers take the current snapshot
// pointer under a short mutex and then read, without locks, only rows below the snapshot's row
// count: those rows (their RowInfo, vectors and presence bits) were completely written before the
// snapshot was published and are never modified again. The writer meanwhile appends rows beyond
// that count in the same pages; the only memory both touch concurrently are the presence-bit words
// and slab pointers, which are atomics (readers mask the bits to their row count). The page
// directory is itself copy-on-grow (a new vector when a page is added), so a reader's directory
// never changes under it.
//
// Thread safety: Segment's writer methods (Append*, Tombstone, SetCalibration, Stage, Publish())
// must be serialised by the caller (the collection's writer mutex); snapshot() and
// Publish(snapshot) may be called from any thread at any time.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include <mutex>
#include "engine/layout.h"
#include "schema/types.h"
#include "storage/store.h"

namespace rosetta::engine {

inline constexpr size_t kPageRows = 256;
inline constexpr size_t kPageShift = 8;
inline constexpr size_t kPageWords = kPageRows / 64;
static_assert((size_t{1} << kPageShift) == kPageRows);

// The non-vector part of a row, resolved for search. Immutable and shared: rows created by one
// import share one instance.
struct RowMeta {
  storage::RecordMeta meta;
  // Record weight per field id; empty = 1 for every field.
  std::vector<float> field_weights;
  // provenance.collected_at parsed to microseconds since the epoch (for filters), if given.
  std::optional<int64_t> collected_at_us;

  float FieldWeight(size_t field) const {
    return field_weights.empty() ? 1.0f : field_weights[field];
  }
};

// Builds a RowMeta: resolves per-field weights and parses collected_at. The metadata must have
// passed validation (an unparsable collected_at is left unset).
std::shared_ptr<const RowMeta> MakeRowMeta(const Layout& layout, storage::RecordMeta meta);

struct RowInfo {
  std::string id;
  uint64_t id_hash = 0;
  std::shared_ptr<const RowMeta> meta;  // never null.
};

class Page {
 public:
  explicit Page(const Layout& layout);
  Page(const Page&) = delete;
  Page& operator=(const Page&) = delete;

  const RowInfo& row(size_t i) const { return rows_[i]; }
  RowInfo& mutable_row(size_t i) { return rows_[i]; }

  // The field's slab (kPageRows x dim, row-major) or nullptr if no row of the page has it.
  const float* FieldData(size_t field) const {
    return slabs_[field].data.load(std::memory_order_acquire);
  }
  // Presence word w (rows 64w .. 64w+63) of `field`. Bits of rows beyond a reader's snapshot
  // may be set concurrently by the writer: readers mask them.
  uint64_t PresentWord(size_t field, size_t w) const {
    return slabs_[field].present[w].load(std::memory_order_relaxed);
  }
  bool Present(size_t field, size_t i) const {
    return (PresentWord(field, i >> 6) >> (i & 63)) & 1;
  }

  // Writer only: copies `v` (dim floats) into row i of `field` and marks it present.
  void SetVector(size_t field, size_t i, const float* v);

 private:
  struct Slab {
    std::atomic<float*> data{nullptr};
    std::atomic<uint64_t> present[kPageWords] = {};
  };
  std::vector<size_t> dims_;
  std::unique_ptr<Slab[]> slabs_;
  std::vector<std::unique_ptr<float[]>> owners_;  // writer-only; backs slabs_[f].data.
  std::unique_ptr<RowInfo[]> rows_;
};

using PageDirectory = std::vector<std::shared_ptr<Page>>;

struct SealedSegment;  // engine/index.h
using SealedList = std::vector<std::shared_ptr<const SealedSegment>>;
// The rows of one field whose vectors a ready sealed index serves, computed over the first `rows`
// rows (every row from `rows` on is uncovered).
struct FieldCoverage {
  size_t rows = 0;
  std::vector<uint64_t> bits;  // (rows + 63) / 64 words; bit set = covered.
  // Pages entirely below `rows` holding a vector of the field that no index covers, ascending:
  // with the pages from rows / kPageRows on, the only pages the uncovered scan must visit (row
  // presence never changes once written, and deletes only remove rows).
  std::vector<uint32_t> open_pages;
};
// Per field id: the field's coverage, or nullptr for a field no index covers.
using CoveredRows = std::vector<std::shared_ptr<const FieldCoverage>>;

// Calibration statistics keyed by (query modality, field id).
using CalibrationSet = std::map<std::pair<std::string, size_t>, CalibrationStats>;

struct Snapshot {
  // Order of staging (Segment::Stage); a published snapshot is never replaced by an older one.
  uint64_t seq = 0;
  size_t rows = 0;
  std::shared_ptr<const PageDirectory> pages;
  std::shared_ptr<const std::vector<uint64_t>> tombstones;  // bits beyond its size: live.
  std::shared_ptr<const CalibrationSet> calibration;
  int64_t live_records = 0;
  std::vector<int64_t> field_vectors;  // live vectors per field id.
  // False when no row of the segment ever had record weights: search then skips the per-row
  // metadata lookup (every record weight is 1).
  bool any_record_weights = false;
  // Sealed segments whose indexes are built (searchable), and the rows they cover per field.
  std::shared_ptr<const SealedList> sealed;
  std::shared_ptr<const CoveredRows> covered;

  // Whether row r's vector of `field` is served by a sealed index.
  bool Covered(size_t field, size_t r) const {
    if (!covered || field >= covered->size() || !(*covered)[field]) return false;
    const auto& bits = (*covered)[field]->bits;
    return (r >> 6) < bits.size() && ((bits[r >> 6] >> (r & 63)) & 1);
  }

  size_t num_pages() const { return (rows + kPageRows - 1) >> kPageShift; }
  const Page& page(size_t p) const { return *(*pages)[p]; }
  const RowInfo& row(size_t r) const { return page(r >> kPageShift).row(r & (kPageRows - 1)); }
  bool Present(size_t field, size_t r) const {
    return page(r >> kPageShift).Present(field, r & (kPageRows - 1));
  }
  const float* Vector(size_t field, size_t dim, size_t r) const {
    return page(r >> kPageShift).FieldData(field) + (r & (kPageRows - 1)) * dim;
  }
  // Tombstone word w (rows 64w .. 64w+63).
  uint64_t TombstoneWord(size_t w) const {
    return w < tombstones->size() ? (*tombstones)[w] : 0;
  }
  bool Live(size_t r) const { return !((TombstoneWord(r >> 6) >> (r & 63)) & 1); }
  // Mask of the rows of word w that are below `rows`.
  uint64_t RowMask(size_t w) const {
    const size_t begin = w * 64;
    if (begin + 64 <= rows) return ~uint64_t{0};
    if (begin >= rows) return 0;
    return (uint64_t{1} << (rows - begin)) - 1;
  }
};

class Segment {
 public:
  explicit Segment(std::shared_ptr<const Layout> layout);

  // --- writer side (callers serialise) ---------------------------------------------------------
  // Appends a row; `vectors[f]` is the vector of field id f or nullptr. Returns the row number.
  size_t Append(RowInfo info, std::span<const float* const> vectors);
  // Marks a published or pending row deleted (copy-on-write once per batch).
  void Tombstone(size_t row);
  void SetCalibration(std::shared_ptr<const CalibrationSet> calibration);
  // Replaces the ready sealed segments and their coverage (published with the next Stage).
  void SetSealed(std::shared_ptr<const SealedList> sealed, std::shared_ptr<const CoveredRows> covered);
  const std::shared_ptr<const SealedList>& writer_sealed() const { return sealed_; }
  // Captures every change so far in a new immutable snapshot without publishing it (the engine
  // stages a write, makes it durable outside the writer lock, then publishes what it staged).
  std::shared_ptr<const Snapshot> Stage();
  // Stage() and publish it at once.
  void Publish();

  // --- any thread ------------------------------------------------------------------------------
  // Makes `snap` (from Stage) the current snapshot, unless one staged later is already current:
  // writes that become durable together may publish in any order, and the latest wins.
  void Publish(std::shared_ptr<const Snapshot> snap);
  // The writer's view of a row (published or pending).
  const RowInfo& WriterRow(size_t r) const;
  const float* WriterVector(size_t field, size_t r) const;  // nullptr if absent.
  // Presence word w (rows 64w .. 64w+63, w < (writer_rows() + 63) / 64) of `field`, writer's view.
  uint64_t WriterPresentWord(size_t field, size_t w) const {
    return (*pages_)[w / kPageWords]->PresentWord(field, w % kPageWords);
  }
  size_t writer_rows() const { return rows_; }
  const std::vector<int64_t>& writer_field_vectors() const { return field_vectors_; }

  std::shared_ptr<const Snapshot> snapshot() const;

 private:
  std::shared_ptr<const Layout> layout_;
  // Writer state.
  size_t rows_ = 0;
  std::shared_ptr<const PageDirectory> pages_;
  std::shared_ptr<const std::vector<uint64_t>> tombstones_;
  std::shared_ptr<std::vector<uint64_t>> pending_tombstones_;  // copy being edited, if any.
  std::shared_ptr<const CalibrationSet> calibration_;
  int64_t live_records_ = 0;
  std::vector<int64_t> field_vectors_;
  bool any_record_weights_ = false;
  uint64_t staged_seq_ = 0;
  std::shared_ptr<const SealedList> sealed_;
  std::shared_ptr<const CoveredRows> covered_;
  // Published state.
  mutable std::mutex snapshot_mu_;
  std::shared_ptr<const Snapshot> snapshot_;  // guarded by snapshot_mu_.
};

}  // namespace rosetta::engine
