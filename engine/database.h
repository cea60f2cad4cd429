// The Rosetta engine: durable cross-modal collections with exact fused search.
//
// A Database owns one storage::Store and the in-memory state derived from it (one Collection per
// catalog entry). In memory, a collection is a set of segments: a growing segment that receives
// writes (sealed segments with IVF-PQ indexes come with the index work; Describe reports
// segments = 1 today). Readers take an immutable snapshot (record rows, vectors, tombstones as of
// one moment) and search it while writers go on; deletes and replaced records are tombstones
// honoured by every snapshot taken after the write.
//
// In-memory layout (engine/segment.h). Field ids are the index of the field in the schema's
// name-ordered field map (schemas are immutable), also used as the uint16 field id of storage
// keys. Rows are append-only, in pages of 256 rows that are never moved: per row the id, a hash
// of the id and the metadata (attributes, record weights, provenance; shared between the rows an
// import creates); per field and page a row-major float32 slab (allocated on the page's first
// vector of that field) and a presence bitmap. An upsert of an existing id tombstones the old row
// and appends a new one; an import into an existing record appends a new row version with the
// record's other vectors and metadata copied. The tombstone bitmap is copy-on-write, one copy per
// write batch. A snapshot is {row count, page directory, tombstones, calibration statistics, live
// counts}, published by pointer swap under a mutex; a reader holds it as long as it likes and
// never blocks a writer beyond that pointer copy. The id -> current row map belongs to the
// writers. Rows of deleted records stay in memory until the next open (no compaction yet).
//
// Writes: every write is validated in full before anything is written (a batch is all-or-nothing,
// see kMaxBatchRecords) and acknowledged only after its storage batch is durable, i.e. the WAL
// holds it under the configured sync policy (storage::Store's group commit). Writers of one
// collection stage their change in memory one at a time (one mutex per collection) and enqueue
// the batch in that order; they wait for durability outside the mutex, so concurrent writers
// (of one or of several collections) share one WAL append and one fsync. A staged change becomes
// visible to readers only once its batch is durable (the snapshot staged with it is then
// published), so a reader never sees an unacknowledged write, and a write's own caller sees it as
// soon as the call returns. After a failed commit the database is read-only until it is reopened:
// the write fails with the storage error, writes queued behind it fail with Aborted, and every
// later write fails with FailedPrecondition; reads keep working on the last published state.
// DropCollection waits for the collection's writes already enqueued.
//
// Calibration (normalize = calibrated, engine/calibration.h): with every write, the
// (query modality, field) statistics that are missing or stale (the field's live vector count
// moved by >= calibration_refresh_fraction since they were computed) are recomputed from the
// deterministic samples described in docs/query-semantics.md, persisted as one stats blob
// ("calibration") in the write's own batch, and published with it. At open they are loaded,
// not recomputed; only statistics that are missing or stale by the same rule are computed then,
// with the same deterministic result (and persisted; if that fails they are used in memory).
//
// Search (engine/search.h): exact over its candidates, parallel over pages on the search thread
// pool; results do not depend on the number of threads. Candidates are every live row, unless
// the request allows indexes (`exact` false, the default) and a targeted field has a ready
// sealed index: then the union of every field's index and uncovered-row candidates
// (engine/index.h, docs/query-semantics.md "Indexes"), re-scored exactly.
//
// Thread safety: all methods may be called concurrently from any number of threads.
#pragma once

#include <chrono>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "schema/types.h"
#include "storage/store.h"

namespace rosetta::engine {

// The largest number of records one Upsert / ImportVectors call commits as one atomic batch.
// Larger calls are rejected with InvalidArgument (the CLI splits large imports into batches of
// this size; each batch is atomic, see docs/cli.md).
inline constexpr size_t kMaxBatchRecords = 65536;

// Where exhaustive searches run (docs/architecture.md "Search devices").
enum class DeviceKind {
  kAuto,  // a CUDA GPU when the build has the CUDA kernels and a device is usable, else the CPU.
  kCpu,   // the CPU only.
  kCuda,  // a CUDA GPU; Database::Open fails (FailedPrecondition) when none is usable.
};
const char* DeviceKindName(DeviceKind kind);  // "auto" | "cpu" | "cuda"
// Exact, case-sensitive; InvalidArgument naming the accepted values otherwise.
absl::StatusOr<DeviceKind> ParseDeviceKind(const std::string& name);

class DeviceBackend;  // engine/device.h

struct DatabaseOptions {
  storage::StoreOptions store;
  // Worker threads for search; 0 = hardware concurrency. Default: 0.
  size_t search_threads = 0;
  // Recompute a (modality, field) calibration when the field's vector count has changed by at
  // least this fraction since the last computation (and always when none exists). Default: 0.1.
  double calibration_refresh_fraction = 0.1;
  // Indexes (collections with ivf_pq fields only): the growing segment is sealed once it holds
  // this many rows not yet in a sealed segment (deleted ones included), and the sealed segment's
  // IVF-PQ indexes are built in the background. Default: 262144. build-index seals at any size.
  size_t seal_rows = 262144;
  // Build indexes in the background at all (false: only BuildIndex starts builds; tests).
  bool auto_seal = true;

  // --- Search device (engine/device.h, docs/architecture.md "Search devices") ---
  // Default kAuto: the GPU when there is one, else the CPU; Database::Stats().device says which.
  DeviceKind device = DeviceKind::kAuto;
  // CUDA device ordinal (kAuto / kCuda).
  int cuda_device = 0;
  // Device bytes the collections' mirrors may hold in all; 0 = 80 % of the device's memory at
  // open. Rows beyond the budget are searched on the CPU.
  size_t device_memory_budget = 0;
  // Dynamic batching: a query bound for the device waits at most this long for concurrent
  // queries of the same shape to share its device call. 0 = no waiting (a query still joins a
  // batch that is forming). Default 200 us.
  std::chrono::microseconds device_batch_wait{200};
  // The most queries one device call takes (1 .. 1024).
  size_t device_max_batch = 64;
  // A collection's rows are mirrored in chunks; a new chunk is uploaded once this many published
  // rows are not mirrored yet (until then they are scored on the CPU). Default 16384.
  size_t device_chunk_rows = 16384;
  // Tests and tools: a device backend to use instead of the one `device` selects (e.g.
  // MakeReferenceDeviceBackend(), the device path's CPU emulation). Overrides `device`.
  std::shared_ptr<DeviceBackend> device_backend;
};

// Options of ImportVectors: record ids are id_prefix + decimal(row + id_offset).
struct ImportOptions {
  std::string id_prefix;
  int64_t id_offset = 0;
  // Set as the provenance of records the import creates; for existing records, replaces their
  // provenance only when non-empty.
  Provenance provenance;
};

class Collection;

class Database {
 public:
  // Opens or creates the database in `path` and loads every collection (rebuilding in-memory
  // state from storage). Errors: those of storage::Store::Open; DataLoss if stored data is
  // corrupt (naming the collection and key).
  static absl::StatusOr<std::unique_ptr<Database>> Open(const std::string& path,
                                                        const DatabaseOptions& options = {});
  ~Database();

  // InvalidArgument for an invalid schema (ValidateSchema), AlreadyExists if the name is taken.
  absl::Status CreateCollection(const CollectionSchema& schema);
  std::vector<std::string> ListCollections() const;  // sorted by name.
  // NotFound for an unknown collection (likewise every method below taking a name).
  absl::StatusOr<CollectionInfo> Describe(const std::string& name) const;
  absl::Status DropCollection(const std::string& name);

  // Inserts or replaces whole records, atomically. Each record is validated (and cosine vectors
  // normalised); the first invalid record fails the call with an error naming it and its position
  // ("record 7 (id \"p7\"): ..."), and nothing is written. Duplicate ids within one call are an
  // error.
  absl::StatusOr<WriteResult> Upsert(const std::string& name, std::vector<Record> records);

  // Sets field `field` of `rows` records from a row-major rows x dim float32 matrix, atomically:
  // record i gets row i. Records that do not exist are created (with no other fields); existing
  // records keep their other fields and metadata. Every row is validated first (an error names
  // the row: "row 17: component 3 is NaN"), cosine rows are normalised (into a copy), nothing is
  // written on error. NotFound for an unknown field; InvalidArgument if dim is not the field's
  // space dim, data.size() != rows * dim, rows > kMaxBatchRecords, an id would exceed
  // kMaxIdBytes, or options.provenance.collected_at is not RFC 3339.
  absl::StatusOr<WriteResult> ImportVectors(const std::string& name, const std::string& field,
                                            std::span<const float> data, size_t rows, size_t dim,
                                            const ImportOptions& options);

  // Point lookups; ids that do not exist are listed in GetResult::not_found.
  absl::StatusOr<GetResult> Get(const std::string& name, const std::vector<std::string>& ids,
                                bool with_vectors) const;

  // Deletes records atomically; ids that do not exist are counted in WriteResult::not_found. An id
  // listed twice is deleted (and counted) once.
  absl::StatusOr<WriteResult> Delete(const std::string& name, const std::vector<std::string>& ids);

  // Exact fused search; see docs/query-semantics.md. The request is validated against the
  // schema (InvalidArgument naming the problem).
  absl::StatusOr<SearchResponse> Search(const std::string& name, SearchRequest request) const;

  // Several queries at once (results in order). Equivalent to calling Search for each (bit for
  // bit), on one snapshot taken for the whole batch. Queries with one input targeting one ip or
  // cosine field and no filter are grouped by field and scored up to 8 at a time in one pass over
  // the field's vectors; each query's took_us then includes an equal share of its group's
  // scoring pass. Every request is validated before any work; an error names the query
  // ("query 3: ...").
  absl::StatusOr<std::vector<SearchResponse>> SearchBatch(const std::string& name,
                                                          std::vector<SearchRequest> requests) const;

  // Indexes (docs/query-semantics.md, "Indexes"). BuildIndex seals the rows not yet in a sealed
  // segment (if any) into a new segment and queues the builds of its ivf_pq indexes, plus the
  // retry of failed builds; it returns at once with the progress. `field` empty = every ivf_pq
  // field (a segment's fields are always built together; naming one only checks it).
  // InvalidArgument when the collection (or `field`) has no ivf_pq index; NotFound for an
  // unknown field.
  absl::StatusOr<IndexBuildProgress> BuildIndex(const std::string& name, const std::string& field);
  absl::StatusOr<IndexBuildProgress> IndexProgress(const std::string& name) const;
  // Waits until no build of the collection is queued or running, at most `timeout`; returns the
  // progress then (done() false on timeout).
  absl::StatusOr<IndexBuildProgress> WaitForIndexes(const std::string& name,
                                                     std::chrono::milliseconds timeout) const;

  // Search device (DatabaseOptions::device): uploads the collection's published rows that are
  // not mirrored yet, within the budget, on the calling thread (searches otherwise schedule that
  // upload on the device's own thread and never wait for it). For benchmarks and tests that want
  // the mirror complete before timing. OK without a device; NotFound for an unknown collection;
  // the upload's error otherwise (the rows then stay on the CPU).
  absl::Status SyncDeviceMirrors(const std::string& name);

  // Telemetry since Open: per public operation (search, search_batch, upsert, import, get,
  // delete, in that order) the count, errors and latency percentiles measured around the whole
  // call (validation, the wait for durability and the publication included); the group-commit
  // counters; collections and live records. Cheap (reads counters); callable from any thread.
  DatabaseStats Stats() const;

  // Name of the CPU kernel backend in use ("avx512" | "avx2" | "scalar").
  std::string KernelBackend() const;
  const std::string& path() const;

 private:
  struct Impl;
  explicit Database(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace rosetta::engine
