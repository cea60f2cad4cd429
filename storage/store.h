// Durable storage for Rosetta collections, on RocksDB.
//
// This is the only module that includes <rocksdb/...>. It persists, per collection:
//   - the catalog entry (collection id, name, schema as JSON),
//   - record metadata (attributes, per-record fusion weights, provenance),
//   - vectors, one key per (record, field), stored as raw little-endian float32 (bit-exact),
//   - small named blobs of derived state (e.g. calibration statistics).
// Everything the engine keeps in memory is derived from this and rebuilt at open.
//
// Column families: "catalog", "records", "vectors", "stats" (plus RocksDB's "default", unused).
// Key encoding (version byte first, big-endian integers so that keys sort by collection then id):
//   catalog: [0x01][name bytes]                                   -> CollectionMeta
//   records: [0x01][collection u32][id length u16][id bytes]     -> encoded RecordMeta
//   vectors: [0x01][collection u32][id length u16][id bytes][field u16] -> [0x01][float32 LE...]
//   stats:   [0x01][collection u32][name bytes]                  -> opaque bytes
// Ids sort by (length, bytes), the same in "records" and "vectors", so a collection scan merges
// both in one pass.
//
// Format details (format version 1; all of it implemented in storage/keys.cc):
//   - The catalog also holds two internal keys that start with 0x00 (so they never collide with a
//     collection name): [0x00]"format_version" -> u32 BE (1), written once when the database is
//     created, and [0x00]"next_collection_id" -> u32 BE, the next id to hand out. Collection ids
//     start at 1 and are never reused, also across DropCollection and reopen.
//   - CollectionMeta value: [0x01][id u32 BE][name][schema_json], where a string is a LEB128
//     varint byte length followed by the bytes.
//   - RecordMeta value (EncodeRecordMeta): [0x01], then the weights (varint count; per entry in
//     ascending key order: string name, float32 LE), then the attributes (varint count; per entry
//     in ascending key order: string name, a type tag byte and its payload: 0 string: string,
//     1 int64: 8 bytes LE two's complement, 2 double: 8 bytes LE IEEE 754, 3 bool: one byte 0/1,
//     4 string list: varint count + strings), then the provenance (string source, string
//     collected_at, varint count + strings steps, string dataset_version, string encoder).
//     Varints are canonical (no trailing zero groups) and map keys strictly ascending; anything
//     else, unknown versions or tags, truncation and trailing bytes decode as DataLoss.
//   - Vector value: [0x01] then the float32 components, little-endian, bit-exact (NaN payloads,
//     -0.0 and denormals included). Only little-endian hosts are supported (static_assert).
//   - Record ids are at most 65535 bytes (the u16 length); Commit rejects a batch holding a
//     longer one with InvalidArgument and writes nothing.
//
// Errors from RocksDB map to absl codes as: Corruption -> DataLoss, IOError -> Unavailable
// (out of space -> ResourceExhausted), InvalidArgument -> InvalidArgument, NotSupported ->
// Unimplemented, Busy/TryAgain/ShutdownInProgress -> Unavailable, TimedOut/Expired ->
// DeadlineExceeded, Aborted -> Aborted, anything else -> Internal; the message names the
// operation and the database path and carries RocksDB's own text.
//
// Durability: Commit() (and Await()) return OK only after the batch is in the WAL; with
// SyncPolicy::kAlways the WAL is fsync'ed before returning. One Batch is atomic: after a crash it
// is wholly present or wholly absent. Its writes become visible to reads (GetRecord, ScanRecords)
// only once they are durable per the policy (RocksDB inserts a synced write into its memtable
// after the sync).
//
// Group commit. Batches pass through one commit queue per store, in the order they were
// enqueued. When a write is in progress, the batches queued behind it are written together by
// the next writer (the "leader", one of the waiting callers): one RocksDB WriteBatch holding all
// of them in queue order, so one WAL append and one fsync serve them all. Each batch stays atomic
// (the group is); the group is bounded to about kMaxGroupBytes (a batch larger than that is
// written alone). Callers that must order their batches without holding their own lock across
// the fsync (the engine: the writers of one collection) call Enqueue under their lock and Await
// outside it.
//
// A failed write leaves the store read-only. The batches of the failed group and every batch
// already queued behind it (which may have been built on the assumption that the failed one
// applied) fail with the write's error; every later write (Commit, Enqueue, CreateCollection,
// DropCollection) fails with FailedPrecondition naming the original error, until the database is
// reopened. RocksDB itself stops accepting writes after a failed WAL write or sync, and retrying
// an fsync that failed is not safe (the kernel may have dropped the dirty pages), so this makes
// that state explicit instead of letting callers retry into it.
//
// Thread safety: a Store may be used from any number of threads concurrently.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "schema/types.h"

namespace rosetta::storage {

enum class SyncPolicy {
  kAlways,  // fsync the WAL before acknowledging each commit. Default.
  kNone,    // write the WAL without fsync: survives a process crash, not a power loss.
            // Destroying the Store syncs the WAL once, so a clean shutdown loses nothing.
};

const char* SyncPolicyName(SyncPolicy p);  // "always" | "none"

struct StoreOptions {
  // Testing only: when set, called by the commit leader before each group write; a non-OK status
  // fails that group as if RocksDB's write had failed (and so leaves the store read-only).
  std::function<absl::Status()> commit_fault_for_testing;
  // Create the directory (and its parents) and the database if missing. Default: true. When
  // false, a missing directory or an empty one fails Open with NotFound.
  bool create_if_missing = true;
  SyncPolicy sync = SyncPolicy::kAlways;
};

// A collection's catalog entry.
struct CollectionMeta {
  uint32_t id = 0;  // unique, never reused within one database.
  std::string name;
  std::string schema_json;  // SchemaToJson(schema), serialized.
};

// The non-vector part of a record.
struct RecordMeta {
  std::map<std::string, float> weights;
  std::map<std::string, AttributeValue> attributes;
  Provenance provenance;
};

// Encodes / decodes RecordMeta (a versioned binary format; decoding rejects truncated or unknown
// versions with DataLoss).
std::string EncodeRecordMeta(const RecordMeta& meta);
absl::StatusOr<RecordMeta> DecodeRecordMeta(std::string_view bytes);

// A set of writes applied atomically by Store::Commit. Building a batch touches no database.
// An id longer than 65535 bytes is remembered as an error that Commit returns (InvalidArgument)
// without writing any of the batch. A moved-from Batch is empty and may be reused.
class Batch {
 public:
  Batch();
  ~Batch();
  Batch(Batch&&) noexcept;
  Batch& operator=(Batch&&) noexcept;

  void PutMeta(uint32_t collection, std::string_view id, const RecordMeta& meta);
  void PutVector(uint32_t collection, std::string_view id, uint16_t field,
                 std::span<const float> v);
  void DeleteVector(uint32_t collection, std::string_view id, uint16_t field);
  // Deletes the record's metadata and its vectors for every field id in `fields`.
  void DeleteRecord(uint32_t collection, std::string_view id, std::span<const uint16_t> fields);
  void PutStat(uint32_t collection, std::string_view name, std::string_view bytes);
  void DeleteStat(uint32_t collection, std::string_view name);

  size_t count() const;  // operations added.
  size_t bytes() const;  // approximate payload size.
  // The first invalid operation (an id longer than 65535 bytes), if any: Commit / Enqueue would
  // return it without writing anything.
  absl::Status status() const;

 private:
  friend class Store;
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// A batch handed to the commit queue (Store::Enqueue); Await it exactly once. Copyable handle.
class CommitTicket {
 public:
  CommitTicket();
  ~CommitTicket();
  CommitTicket(const CommitTicket&);
  CommitTicket& operator=(const CommitTicket&);

 private:
  friend class Store;
  struct State;
  std::shared_ptr<State> state_;
};

// Counters of the commit queue since the store was opened.
struct CommitStats {
  int64_t batches = 0;  // non-empty batches written (or failed) through the queue.
  int64_t groups = 0;   // RocksDB writes (each one WAL append, one fsync under kAlways).
};

// One record as read back by a scan or a point lookup.
struct StoredRecord {
  std::string id;
  RecordMeta meta;
  std::vector<std::pair<uint16_t, std::vector<float>>> vectors;  // by field id, ascending.
};

class Store {
 public:
  // Opens (or creates, per options) the database in directory `path`.
  // On success the store is ready for use. On failure nothing is left open. A second Open of the
  // same directory, in this or another process, fails with FailedPrecondition (RocksDB's LOCK
  // file), naming the path. A directory that is not a Rosetta database fails with
  // InvalidArgument: a path that is not a directory, a non-empty directory without a RocksDB
  // database, or a RocksDB database that holds data but no Rosetta format marker (an existing
  // but empty RocksDB database, e.g. one whose creation was interrupted, is adopted). A database
  // written in an unknown (newer) format version fails with FailedPrecondition. Unreadable
  // RocksDB metadata is DataLoss.
  //
  // Tuning (fixed here, not options): write buffers of 64 MiB for records and 128 MiB for
  // vectors, LZ4 compression for records / catalog / stats when the RocksDB build supports it and
  // none for vectors (float32 does not compress), a shared 64 MiB block cache, bloom filters on
  // records, at most 1024 open files, RocksDB's LOG files capped at 5 x 16 MiB.
  static absl::StatusOr<std::unique_ptr<Store>> Open(const std::string& path,
                                                     const StoreOptions& options);
  ~Store();

  // --- catalog ---------------------------------------------------------------------------------
  // Creates the catalog entry for `name` with a fresh id (returned); AlreadyExists if taken,
  // InvalidArgument if `name` is empty, ResourceExhausted once 2^32 - 2 ids have been handed out.
  // Synced per the sync policy.
  absl::StatusOr<uint32_t> CreateCollection(const std::string& name,
                                            const std::string& schema_json);
  absl::StatusOr<std::vector<CollectionMeta>> ListCollections() const;
  // Removes the catalog entry and every record, vector and stat of the collection, atomically
  // (one WriteBatch with a DeleteRange per column family; space is reclaimed by later
  // compactions). NotFound if no collection `meta.name` exists; FailedPrecondition if it exists
  // with an id other than `meta.id` (it was dropped and re-created), and then nothing is deleted.
  // Synced per the sync policy.
  absl::Status DropCollection(const CollectionMeta& meta);

  // --- records ---------------------------------------------------------------------------------
  // Applies `batch` atomically; see the durability contract above. Operations apply in the order
  // they were added (a later put or delete of the same key wins). An empty batch is a no-op.
  // Storage does not check that `collection` exists: that is the caller's job.
  // Same as Await(Enqueue(batch)).
  absl::Status Commit(Batch&& batch);

  // Group commit (see above). Enqueue takes the batch and returns at once: InvalidArgument for a
  // batch holding an invalid operation, FailedPrecondition when the store is read-only after a
  // failed write (nothing is queued then). An empty batch gives a ticket that awaits as OK.
  // Batches apply in Enqueue order. Await blocks until the batch is durable per the policy (OK),
  // or failed; the waiting thread may itself perform the group write.
  absl::StatusOr<CommitTicket> Enqueue(Batch&& batch);
  absl::Status Await(const CommitTicket& ticket);

  // About the largest group written as one RocksDB write.
  static constexpr size_t kMaxGroupBytes = size_t{64} << 20;

  // Point lookups. NotFound-free: an absent record is std::nullopt. Meta and vectors are read
  // from one snapshot; vectors without a meta entry are DataLoss. An id longer than 65535 bytes
  // cannot be stored, so it is std::nullopt.
  absl::StatusOr<std::optional<StoredRecord>> GetRecord(uint32_t collection,
                                                        std::string_view id) const;

  // Calls fn for every record of the collection (ordered by id length, then id bytes) from a
  // consistent snapshot. A vector whose record has no metadata entry is reported as DataLoss.
  // Stops early and returns fn's status if fn returns non-OK.
  absl::Status ScanRecords(uint32_t collection,
                           const std::function<absl::Status(StoredRecord&&)>& fn) const;

  // --- derived state ---------------------------------------------------------------------------
  absl::StatusOr<std::optional<std::string>> GetStat(uint32_t collection,
                                                     std::string_view name) const;
  // Calls fn(name, bytes) for every stat of the collection whose name starts with `prefix`, in
  // name order, from a consistent snapshot; stops early and returns fn's status if non-OK.
  absl::Status ScanStats(uint32_t collection, std::string_view prefix,
                         const std::function<absl::Status(std::string_view name,
                                                          std::string_view bytes)>& fn) const;

  // --- info ------------------------------------------------------------------------------------
  const std::string& path() const;
  SyncPolicy sync_policy() const;
  std::string Describe() const;  // e.g. "rocksdb 7.8.3 (sync: always)".
  CommitStats commit_stats() const;
  // OK, or the FailedPrecondition every write gets after a failed write (see above).
  absl::Status writable() const;

 private:
  struct Impl;
  explicit Store(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace rosetta::storage
