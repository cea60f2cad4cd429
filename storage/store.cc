// Store and Batch on RocksDB. Contracts in storage/store.h; encodings in storage/keys.cc.
#include "storage/store.h"

#include <algorithm>
#include <filesystem>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>
#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "rocksdb/cache.h"
#include "rocksdb/convenience.h"
#include "rocksdb/db.h"
#include "rocksdb/filter_policy.h"
#include "rocksdb/options.h"
#include "rocksdb/table.h"
#include "rocksdb/version.h"
#include "rocksdb/write_batch.h"
#include "schema/status_macros.h"
#include "storage/keys.h"
#include "storage/rocksdb_util.h"

namespace rosetta::storage {

namespace fs = std::filesystem;
using internal::FromRocks;
using internal::Sv;

namespace {
// Record ids and names are arbitrary bytes: escape them for error messages.
std::string Esc(std::string_view s) { return absl::CHexEscape(Sv(s)); }
}  // namespace

const char* SyncPolicyName(SyncPolicy p) {
  switch (p) {
    case SyncPolicy::kAlways:
      return "always";
    case SyncPolicy::kNone:
      return "none";
  }
  return "unknown";
}

// =================================================================================================
// Batch
// =================================================================================================

struct Batch::Impl {
  enum class Cf : uint8_t { kRecords, kVectors, kStats };
  struct Op {
    Cf cf;
    bool is_delete;
    std::string key;
    std::string value;
  };

  // Keys are encoded when the operation is added, so Commit only copies bytes into the
  // WriteBatch. (A WriteBatch cannot be built here: it needs the column family handles, which
  // belong to an open Store.)
  std::vector<Op> ops;
  size_t bytes = 0;
  absl::Status error;  // the first invalid operation; Commit returns it and writes nothing.

  bool CheckId(std::string_view id, std::string_view op) {
    if (id.size() <= internal::kMaxIdBytes) return true;
    if (error.ok()) {
      error = absl::InvalidArgumentError(absl::StrCat(
          Sv(op), ": record id of ", id.size(), " bytes is longer than the ", internal::kMaxIdBytes,
          "-byte maximum (id starts with \"", Esc(id.substr(0, 32)), "\")"));
    }
    return false;
  }
  void Add(Cf cf, bool is_delete, std::string key, std::string value) {
    bytes += key.size() + value.size();
    ops.push_back(Op{cf, is_delete, std::move(key), std::move(value)});
  }
};

Batch::Batch() : impl_(std::make_unique<Impl>()) {}
Batch::~Batch() = default;
Batch::Batch(Batch&& other) noexcept : impl_(std::move(other.impl_)) {}
Batch& Batch::operator=(Batch&& other) noexcept {
  impl_ = std::move(other.impl_);
  return *this;
}

// A moved-from Batch has no Impl; the mutators recreate one so that it is reusable.
#define ROSETTA_BATCH_IMPL_() (impl_ ? *impl_ : *(impl_ = std::make_unique<Impl>()))

void Batch::PutMeta(uint32_t collection, std::string_view id, const RecordMeta& meta) {
  Impl& impl = ROSETTA_BATCH_IMPL_();
  if (!impl.CheckId(id, "PutMeta")) return;
  impl.Add(Impl::Cf::kRecords, false, internal::RecordKey(collection, id), EncodeRecordMeta(meta));
}

void Batch::PutVector(uint32_t collection, std::string_view id, uint16_t field,
                      std::span<const float> v) {
  Impl& impl = ROSETTA_BATCH_IMPL_();
  if (!impl.CheckId(id, "PutVector")) return;
  impl.Add(Impl::Cf::kVectors, false, internal::VectorKey(collection, id, field),
           internal::EncodeVectorValue(v));
}

void Batch::DeleteVector(uint32_t collection, std::string_view id, uint16_t field) {
  Impl& impl = ROSETTA_BATCH_IMPL_();
  if (!impl.CheckId(id, "DeleteVector")) return;
  impl.Add(Impl::Cf::kVectors, true, internal::VectorKey(collection, id, field), "");
}

void Batch::DeleteRecord(uint32_t collection, std::string_view id,
                         std::span<const uint16_t> fields) {
  Impl& impl = ROSETTA_BATCH_IMPL_();
  if (!impl.CheckId(id, "DeleteRecord")) return;
  impl.Add(Impl::Cf::kRecords, true, internal::RecordKey(collection, id), "");
  for (uint16_t f : fields) {
    impl.Add(Impl::Cf::kVectors, true, internal::VectorKey(collection, id, f), "");
  }
}

void Batch::DeleteStat(uint32_t collection, std::string_view name) {
  Impl& impl = ROSETTA_BATCH_IMPL_();
  impl.Add(Impl::Cf::kStats, true, internal::StatKey(collection, name), std::string());
}

void Batch::PutStat(uint32_t collection, std::string_view name, std::string_view bytes) {
  Impl& impl = ROSETTA_BATCH_IMPL_();
  impl.Add(Impl::Cf::kStats, false, internal::StatKey(collection, name), std::string(bytes));
}

#undef ROSETTA_BATCH_IMPL_

size_t Batch::count() const { return impl_ ? impl_->ops.size() : 0; }
size_t Batch::bytes() const { return impl_ ? impl_->bytes : 0; }
absl::Status Batch::status() const { return impl_ ? impl_->error : absl::OkStatus(); }

// One queued batch. Fields after `batch` are guarded by Store::Impl::queue_mu.
struct CommitTicket::State {
  Batch batch;
  bool done = false;
  absl::Status status;
};

CommitTicket::CommitTicket() = default;
CommitTicket::~CommitTicket() = default;
CommitTicket::CommitTicket(const CommitTicket&) = default;
CommitTicket& CommitTicket::operator=(const CommitTicket&) = default;

// =================================================================================================
// Store
// =================================================================================================

namespace {

constexpr const char* kCatalogCf = "catalog";
constexpr const char* kRecordsCf = "records";
constexpr const char* kVectorsCf = "vectors";
constexpr const char* kStatsCf = "stats";

bool Lz4Supported() {
  for (auto c : rocksdb::GetSupportedCompressions()) {
    if (c == rocksdb::kLZ4Compression) return true;
  }
  return false;
}

rocksdb::DBOptions MakeDbOptions() {
  rocksdb::DBOptions o;
  o.create_if_missing = true;  // Open() decides beforehand whether creating is allowed.
  o.create_missing_column_families = true;
  // A bounded table cache: unlimited (-1) keeps every SST open, which can exhaust the process's
  // descriptors on a big database next to the server's sockets.
  o.max_open_files = 1024;
  const unsigned hw = std::thread::hardware_concurrency();
  o.max_background_jobs = static_cast<int>(std::clamp(hw == 0 ? 2u : hw / 2, 2u, 8u));
  // Smooth out SST writes instead of one large fsync per file.
  o.bytes_per_sync = 1 << 20;
  o.keep_log_file_num = 5;
  o.max_log_file_size = 16 << 20;
  return o;
}

struct CfTuning {
  rocksdb::ColumnFamilyOptions catalog, records, vectors, stats;
};

CfTuning MakeCfOptions() {
  // One block cache for every column family, so the memory bound is global.
  static const std::shared_ptr<rocksdb::Cache> cache = rocksdb::NewLRUCache(64 << 20);
  const rocksdb::CompressionType lz4_or_none =
      Lz4Supported() ? rocksdb::kLZ4Compression : rocksdb::kNoCompression;

  auto base = [&](size_t write_buffer, size_t block_size, bool bloom,
                  rocksdb::CompressionType compression) {
    rocksdb::ColumnFamilyOptions o;
    o.write_buffer_size = write_buffer;
    o.compression = compression;
    o.bottommost_compression = compression;
    o.level_compaction_dynamic_level_bytes = true;
    rocksdb::BlockBasedTableOptions t;
    t.block_cache = cache;
    t.block_size = block_size;
    if (bloom) t.filter_policy.reset(rocksdb::NewBloomFilterPolicy(10));
    o.table_factory.reset(rocksdb::NewBlockBasedTableFactory(t));
    return o;
  };
  CfTuning t;
  t.catalog = base(4 << 20, 4 << 10, false, lz4_or_none);
  // Records are looked up by key (GetRecord, upsert existence checks): bloom filters pay off.
  t.records = base(64 << 20, 16 << 10, true, lz4_or_none);
  // Vectors are read by prefix scans, a few KiB per value, incompressible.
  t.vectors = base(128 << 20, 64 << 10, false, rocksdb::kNoCompression);
  t.vectors.max_write_buffer_number = 4;
  t.stats = base(4 << 20, 4 << 10, false, lz4_or_none);
  return t;
}

bool IsLockError(const rocksdb::Status& s) {
  // PosixFileSystem::LockFile: in this process "lock hold by current process ...", in another
  // "While lock file: <path>/LOCK: Resource temporarily unavailable". Both are plain IOErrors.
  if (!s.IsIOError()) return false;
  const std::string m = s.ToString();
  return absl::StrContains(m, "lock hold by current process") ||
         absl::StrContains(m, "While lock file") || absl::StrContains(m, "/LOCK");
}

absl::Status FsError(const std::error_code& ec, std::string_view what, const std::string& path) {
  std::string msg = absl::StrCat(Sv(what), " '", path, "': ", ec.message());
  if (ec == std::errc::permission_denied || ec == std::errc::operation_not_permitted) {
    return absl::PermissionDeniedError(msg);
  }
  if (ec == std::errc::no_space_on_device) return absl::ResourceExhaustedError(msg);
  if (ec == std::errc::not_a_directory) return absl::InvalidArgumentError(msg);
  return absl::UnavailableError(msg);
}

}  // namespace

struct Store::Impl {
  std::string path;
  SyncPolicy sync = SyncPolicy::kAlways;
  rocksdb::DB* db = nullptr;
  std::vector<rocksdb::ColumnFamilyHandle*> handles;  // every open column family.
  rocksdb::ColumnFamilyHandle* catalog = nullptr;
  rocksdb::ColumnFamilyHandle* records = nullptr;
  rocksdb::ColumnFamilyHandle* vectors = nullptr;
  rocksdb::ColumnFamilyHandle* stats = nullptr;

  // The commit queue (see "Group commit" in store.h).
  std::function<absl::Status()> commit_fault;  // testing only.
  mutable std::mutex queue_mu;
  std::condition_variable queue_cv;
  std::deque<std::shared_ptr<CommitTicket::State>> queue;  // guarded by queue_mu.
  bool writing = false;                                   // a leader is writing a group.
  absl::Status failed;                                    // first failed write; sticky.
  CommitStats commit_stats;                               // guarded by queue_mu.

  // The status every write gets once `failed` is set. queue_mu held.
  absl::Status ReadOnlyError() const {
    return absl::FailedPreconditionError(absl::StrCat(
        "the database in '", path,
        "' is read-only after a failed write (reopen it once the cause is fixed): ",
        failed.message()));
  }
  // Records a failed write (catalog writes; the queue records its own). Returns `s`.
  absl::Status NoteFailure(absl::Status s) {
    if (!s.ok()) {
      std::lock_guard<std::mutex> lock(queue_mu);
      if (failed.ok()) failed = s;
    }
    return s;
  }
  absl::Status Writable() const {
    std::lock_guard<std::mutex> lock(queue_mu);
    return failed.ok() ? absl::OkStatus() : ReadOnlyError();
  }
  // Writes the batches of one group as one RocksDB write.
  absl::Status WriteGroup(const std::vector<std::shared_ptr<CommitTicket::State>>& group);

  // Serialises catalog read-modify-writes (name check + id counter).
  std::mutex catalog_mu;
  uint32_t next_id = 0;  // guarded by catalog_mu; mirrors kNextCollectionIdKey.

  ~Impl() {
    if (db == nullptr) return;
    // Under kNone the WAL is written but not synced per commit; a clean close should not lose
    // acknowledged writes to a power cut that happens after the process exited normally.
    if (sync == SyncPolicy::kNone) db->SyncWAL().PermitUncheckedError();
    for (auto* h : handles) db->DestroyColumnFamilyHandle(h).PermitUncheckedError();
    handles.clear();
    db->Close().PermitUncheckedError();
    delete db;
    db = nullptr;
  }

  rocksdb::WriteOptions WriteOpts() const {
    rocksdb::WriteOptions w;
    w.sync = (sync == SyncPolicy::kAlways);
    return w;
  }

  absl::Status Initialize();
};

namespace {

// True if every column family of the RocksDB database at `path` is empty. Opened read-only:
// this runs before we decide whether the directory is ours, and must not write to it.
absl::StatusOr<bool> ForeignDatabaseIsEmpty(const std::string& path,
                                            const std::vector<std::string>& cf_names) {
  std::vector<rocksdb::ColumnFamilyDescriptor> descs;
  for (const auto& n : cf_names) descs.emplace_back(n, rocksdb::ColumnFamilyOptions());
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  rocksdb::DB* db = nullptr;
  rocksdb::DBOptions o;
  o.max_open_files = 64;
  rocksdb::Status s = rocksdb::DB::OpenForReadOnly(o, path, descs, &handles, &db);
  if (!s.ok()) return FromRocks(s, absl::StrCat("inspecting the RocksDB database at '", path, "'"));
  bool empty = true;
  absl::Status status;
  for (auto* h : handles) {
    std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(rocksdb::ReadOptions(), h));
    it->SeekToFirst();
    if (it->Valid()) empty = false;
    if (!it->status().ok() && status.ok()) {
      status = FromRocks(it->status(), absl::StrCat("inspecting '", path, "'"));
    }
    if (!empty) break;
  }
  for (auto* h : handles) db->DestroyColumnFamilyHandle(h).PermitUncheckedError();
  db->Close().PermitUncheckedError();
  delete db;
  if (!status.ok()) return status;
  return empty;
}

}  // namespace

absl::Status Store::Impl::Initialize() {
  std::string value;
  rocksdb::Status s = db->Get(
      rocksdb::ReadOptions(), catalog,
      rocksdb::Slice(internal::kFormatVersionKey.data(), internal::kFormatVersionKey.size()),
      &value);
  if (s.ok()) {
    auto version = internal::DecodeU32(value, "format version marker");
    if (!version.ok()) return version.status();
    if (*version != internal::kFormatVersion) {
      return absl::FailedPreconditionError(
          absl::StrCat("the database at '", path, "' has Rosetta storage format version ", *version,
                       "; this build reads only version ", internal::kFormatVersion,
                       " (was it written by a newer Rosetta?)"));
    }
    s = db->Get(rocksdb::ReadOptions(), catalog,
                rocksdb::Slice(internal::kNextCollectionIdKey.data(),
                               internal::kNextCollectionIdKey.size()),
                &value);
    if (s.IsNotFound()) {
      return absl::DataLossError(
          absl::StrCat("the database at '", path, "' has no next-collection-id entry"));
    }
    RETURN_IF_ERROR(FromRocks(s, absl::StrCat("reading the catalog of '", path, "'")));
    auto next = internal::DecodeU32(value, "next collection id");
    if (!next.ok()) return next.status();
    if (*next == 0) {
      return absl::DataLossError(
          absl::StrCat("the database at '", path, "' has next collection id 0"));
    }
    next_id = *next;
    return absl::OkStatus();
  }
  if (!s.IsNotFound()) {
    return FromRocks(s, absl::StrCat("reading the format marker of '", path, "'"));
  }

  // No marker: either we just created the database (or a previous creation was interrupted
  // before the marker was written), or this is someone else's RocksDB database that happens to
  // have a "catalog" column family. Only an entirely empty database is adopted.
  for (auto* h : handles) {
    std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(rocksdb::ReadOptions(), h));
    it->SeekToFirst();
    RETURN_IF_ERROR(FromRocks(it->status(), absl::StrCat("inspecting '", path, "'")));
    if (it->Valid()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "'", path, "' is a RocksDB database but not a Rosetta database: column family '",
          h->GetName(), "' holds data and there is no Rosetta format marker"));
    }
  }
  rocksdb::WriteBatch wb;
  RETURN_IF_ERROR(FromRocks(
      wb.Put(catalog,
             rocksdb::Slice(internal::kFormatVersionKey.data(), internal::kFormatVersionKey.size()),
             internal::EncodeU32(internal::kFormatVersion)),
      "encoding the format marker"));
  RETURN_IF_ERROR(FromRocks(wb.Put(catalog,
                                   rocksdb::Slice(internal::kNextCollectionIdKey.data(),
                                                  internal::kNextCollectionIdKey.size()),
                                   internal::EncodeU32(1)),
                            "encoding the collection id counter"));
  rocksdb::WriteOptions w;
  w.sync = true;  // creation is rare; always make it durable.
  RETURN_IF_ERROR(
      FromRocks(db->Write(w, &wb), absl::StrCat("writing the format marker to '", path, "'")));
  next_id = 1;
  return absl::OkStatus();
}

Store::Store(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Store::~Store() = default;

absl::StatusOr<std::unique_ptr<Store>> Store::Open(const std::string& path,
                                                   const StoreOptions& options) {
  if (path.empty()) return absl::InvalidArgumentError("storage path is empty");

  // --- decide what the directory is, before RocksDB touches it --------------------------------
  std::error_code ec;
  const fs::file_status st = fs::status(path, ec);
  if (ec && ec != std::errc::no_such_file_or_directory) {
    return FsError(ec, "cannot access storage directory", path);
  }
  bool existing_db = false;
  if (fs::exists(st)) {
    if (!fs::is_directory(st)) {
      return absl::InvalidArgumentError(
          absl::StrCat("storage path '", path, "' exists and is not a directory"));
    }
    existing_db = fs::exists(fs::path(path) / "CURRENT", ec);
    if (!existing_db) {
      const bool empty = fs::is_empty(path, ec);
      if (ec) return FsError(ec, "cannot list storage directory", path);
      if (!empty) {
        return absl::InvalidArgumentError(
            absl::StrCat("'", path,
                         "' is not a Rosetta database: the directory is not empty and holds no "
                         "RocksDB database (no CURRENT file)"));
      }
      if (!options.create_if_missing) {
        return absl::NotFoundError(absl::StrCat("no database in the empty directory '", path,
                                                "' (create_if_missing is false)"));
      }
    }
  } else {
    if (!options.create_if_missing) {
      return absl::NotFoundError(absl::StrCat("storage directory '", path,
                                              "' does not exist (create_if_missing is false)"));
    }
    fs::create_directories(path, ec);
    if (ec) return FsError(ec, "cannot create storage directory", path);
  }

  // --- column families --------------------------------------------------------------------------
  const rocksdb::DBOptions db_options = MakeDbOptions();
  std::vector<std::string> cf_names;
  if (existing_db) {
    rocksdb::Status s = rocksdb::DB::ListColumnFamilies(db_options, path, &cf_names);
    RETURN_IF_ERROR(FromRocks(s, absl::StrCat("reading the RocksDB database at '", path, "'")));
    if (std::find(cf_names.begin(), cf_names.end(), kCatalogCf) == cf_names.end()) {
      ASSIGN_OR_RETURN(const bool empty, ForeignDatabaseIsEmpty(path, cf_names));
      if (!empty) {
        return absl::InvalidArgumentError(
            absl::StrCat("'", path, "' is a RocksDB database but not a Rosetta database (no '",
                         kCatalogCf, "' column family)"));
      }
    }
  }
  const CfTuning tuning = MakeCfOptions();
  const std::pair<const char*, const rocksdb::ColumnFamilyOptions*> ours[] = {
      {kCatalogCf, &tuning.catalog},
      {kRecordsCf, &tuning.records},
      {kVectorsCf, &tuning.vectors},
      {kStatsCf, &tuning.stats},
  };
  std::vector<rocksdb::ColumnFamilyDescriptor> descs;
  descs.emplace_back(rocksdb::kDefaultColumnFamilyName, rocksdb::ColumnFamilyOptions());
  for (const auto& [name, opts] : ours) descs.emplace_back(name, *opts);
  // Column families we do not know (a newer layout) must still be opened: RocksDB refuses to
  // open a database without all of them. The format marker check below then decides.
  for (const auto& n : cf_names) {
    const bool known =
        std::any_of(descs.begin(), descs.end(), [&](const auto& d) { return d.name == n; });
    if (!known) descs.emplace_back(n, rocksdb::ColumnFamilyOptions());
  }

  auto impl = std::make_unique<Impl>();
  impl->path = path;
  impl->sync = options.sync;
  impl->commit_fault = options.commit_fault_for_testing;
  rocksdb::Status s = rocksdb::DB::Open(db_options, path, descs, &impl->handles, &impl->db);
  if (!s.ok()) {
    impl->handles.clear();
    impl->db = nullptr;
    if (IsLockError(s)) {
      return absl::FailedPreconditionError(absl::StrCat(
          "the database at '", path,
          "' is already open (in this or another process; RocksDB holds its LOCK file): ",
          s.ToString()));
    }
    return FromRocks(s, absl::StrCat("opening the database at '", path, "'"));
  }
  for (auto* h : impl->handles) {
    const std::string& n = h->GetName();
    if (n == kCatalogCf) impl->catalog = h;
    if (n == kRecordsCf) impl->records = h;
    if (n == kVectorsCf) impl->vectors = h;
    if (n == kStatsCf) impl->stats = h;
  }
  if (!impl->catalog || !impl->records || !impl->vectors || !impl->stats) {
    return absl::InternalError(
        absl::StrCat("opening '", path, "': a Rosetta column family is missing after open"));
  }
  RETURN_IF_ERROR(impl->Initialize());  // on error ~Impl closes the database.
  return std::unique_ptr<Store>(new Store(std::move(impl)));
}

// --- catalog -------------------------------------------------------------------------------------

absl::StatusOr<uint32_t> Store::CreateCollection(const std::string& name,
                                                 const std::string& schema_json) {
  if (name.empty()) return absl::InvalidArgumentError("collection name is empty");
  Impl& d = *impl_;
  std::lock_guard<std::mutex> lock(d.catalog_mu);
  const std::string key = internal::CatalogKey(name);
  std::string existing;
  rocksdb::Status s = d.db->Get(rocksdb::ReadOptions(), d.catalog, key, &existing);
  if (s.ok()) {
    auto meta = internal::DecodeCollectionMeta(existing);
    return absl::AlreadyExistsError(
        absl::StrCat("collection '", name, "' already exists",
                     meta.ok() ? absl::StrCat(" (id ", meta->id, ")") : std::string()));
  }
  if (!s.IsNotFound()) {
    return FromRocks(s, absl::StrCat("reading the catalog of '", d.path, "'"));
  }
  if (d.next_id == 0xFFFFFFFFu) {
    return absl::ResourceExhaustedError(
        absl::StrCat("no collection ids left in '", d.path, "' (ids are never reused)"));
  }
  const uint32_t id = d.next_id;
  rocksdb::WriteBatch wb;
  RETURN_IF_ERROR(FromRocks(
      wb.Put(d.catalog, key, internal::EncodeCollectionMeta(CollectionMeta{id, name, schema_json})),
      "encoding the catalog entry"));
  RETURN_IF_ERROR(FromRocks(wb.Put(d.catalog,
                                   rocksdb::Slice(internal::kNextCollectionIdKey.data(),
                                                  internal::kNextCollectionIdKey.size()),
                                   internal::EncodeU32(id + 1)),
                            "encoding the collection id counter"));
  RETURN_IF_ERROR(d.Writable());
  RETURN_IF_ERROR(d.NoteFailure(
      FromRocks(d.db->Write(d.WriteOpts(), &wb),
                absl::StrCat("creating collection '", name, "' in '", d.path, "'"))));
  d.next_id = id + 1;
  return id;
}

absl::StatusOr<std::vector<CollectionMeta>> Store::ListCollections() const {
  const Impl& d = *impl_;
  const std::string lo(1, internal::kKeyVersion);
  const std::string hi(1, internal::kKeyVersion + 1);
  rocksdb::Slice lo_s(lo), hi_s(hi);
  rocksdb::ReadOptions ro;
  ro.iterate_lower_bound = &lo_s;
  ro.iterate_upper_bound = &hi_s;
  std::unique_ptr<rocksdb::Iterator> it(d.db->NewIterator(ro, d.catalog));
  std::vector<CollectionMeta> out;
  for (it->Seek(lo_s); it->Valid(); it->Next()) {
    const std::string_view key(it->key().data(), it->key().size());
    auto meta =
        internal::DecodeCollectionMeta(std::string_view(it->value().data(), it->value().size()));
    const std::string_view name = key.substr(1);
    if (!meta.ok()) {
      return absl::DataLossError(absl::StrCat("catalog entry for collection '", Esc(name), "' in '",
                                              d.path, "': ", meta.status().message()));
    }
    if (meta->name != name) {
      return absl::DataLossError(absl::StrCat("catalog entry under key '", Esc(name), "' in '",
                                              d.path, "' names collection '", Esc(meta->name),
                                              "'"));
    }
    out.push_back(*std::move(meta));
  }
  RETURN_IF_ERROR(FromRocks(it->status(), absl::StrCat("listing collections in '", d.path, "'")));
  return out;
}

absl::Status Store::DropCollection(const CollectionMeta& meta) {
  Impl& d = *impl_;
  std::lock_guard<std::mutex> lock(d.catalog_mu);
  const std::string key = internal::CatalogKey(meta.name);
  std::string existing;
  rocksdb::Status s = d.db->Get(rocksdb::ReadOptions(), d.catalog, key, &existing);
  if (s.IsNotFound()) {
    return absl::NotFoundError(
        absl::StrCat("collection '", meta.name, "' does not exist in '", d.path, "'"));
  }
  RETURN_IF_ERROR(FromRocks(s, absl::StrCat("reading the catalog of '", d.path, "'")));
  ASSIGN_OR_RETURN(const CollectionMeta stored, internal::DecodeCollectionMeta(existing));
  if (stored.id != meta.id) {
    return absl::FailedPreconditionError(
        absl::StrCat("collection '", meta.name, "' has id ", stored.id, ", not ", meta.id,
                     " (dropped and re-created since?); nothing was dropped"));
  }
  const std::string lo = internal::CollectionPrefix(meta.id);
  const std::string hi = internal::CollectionPrefixEnd(meta.id);
  rocksdb::WriteBatch wb;
  RETURN_IF_ERROR(FromRocks(wb.Delete(d.catalog, key), "encoding the drop"));
  for (auto* cf : {d.records, d.vectors, d.stats}) {
    RETURN_IF_ERROR(FromRocks(wb.DeleteRange(cf, lo, hi), "encoding the drop"));
  }
  RETURN_IF_ERROR(d.Writable());
  return d.NoteFailure(FromRocks(
      d.db->Write(d.WriteOpts(), &wb),
      absl::StrCat("dropping collection '", meta.name, "' (id ", meta.id, ") in '", d.path, "'")));
}

// --- records -------------------------------------------------------------------------------------

absl::Status Store::Commit(Batch&& batch) {
  ASSIGN_OR_RETURN(CommitTicket ticket, Enqueue(std::move(batch)));
  return Await(ticket);
}

absl::StatusOr<CommitTicket> Store::Enqueue(Batch&& batch) {
  auto state = std::make_shared<CommitTicket::State>();
  state->batch = std::move(batch);  // consumed whatever happens.
  RETURN_IF_ERROR(state->batch.status());
  CommitTicket ticket;
  ticket.state_ = state;
  Impl& d = *impl_;
  std::lock_guard<std::mutex> lock(d.queue_mu);
  if (!d.failed.ok()) return d.ReadOnlyError();
  if (state->batch.count() == 0) {
    state->done = true;
  } else {
    d.queue.push_back(std::move(state));
  }
  return ticket;
}

absl::Status Store::Await(const CommitTicket& ticket) {
  if (ticket.state_ == nullptr) {
    return absl::InvalidArgumentError("Await: a default-constructed CommitTicket");
  }
  Impl& d = *impl_;
  CommitTicket::State& mine = *ticket.state_;
  std::unique_lock<std::mutex> lock(d.queue_mu);
  while (!mine.done) {
    if (d.writing || d.queue.empty()) {
      // Another caller is writing (our batch may be in its group); wait for it to finish.
      d.queue_cv.wait(lock);
      continue;
    }
    // Lead: take the queue's head group (our batch is in the queue, not yet taken: groups are
    // taken from the front and completed before `writing` is cleared).
    d.writing = true;
    std::vector<std::shared_ptr<CommitTicket::State>> group;
    size_t bytes = 0;
    while (!d.queue.empty()) {
      const size_t b = d.queue.front()->batch.bytes();
      if (!group.empty() && bytes + b > kMaxGroupBytes) break;
      bytes += b;
      group.push_back(std::move(d.queue.front()));
      d.queue.pop_front();
    }
    lock.unlock();
    absl::Status s = d.commit_fault ? d.commit_fault() : absl::OkStatus();
    if (s.ok()) s = d.WriteGroup(group);
    lock.lock();
    d.commit_stats.groups += 1;
    d.commit_stats.batches += static_cast<int64_t>(group.size());
    for (auto& t : group) {
      t->status = s;
      t->done = true;
      t->batch = Batch();  // free the payload now; the ticket may be held for a while.
    }
    if (!s.ok()) {
      if (d.failed.ok()) d.failed = s;
      // Batches queued behind a failed one may depend on it (the engine builds each batch on the
      // state its predecessors leave): none of them is written.
      const absl::Status behind = absl::AbortedError(absl::StrCat(
          "not written: an earlier write in the commit queue failed: ", s.message()));
      for (auto& t : d.queue) {
        t->status = behind;
        t->done = true;
        t->batch = Batch();
      }
      d.commit_stats.batches += static_cast<int64_t>(d.queue.size());
      d.queue.clear();
    }
    d.writing = false;
    d.queue_cv.notify_all();
  }
  return mine.status;
}

absl::Status Store::Impl::WriteGroup(
    const std::vector<std::shared_ptr<CommitTicket::State>>& group) {
  size_t bytes = 0, ops = 0;
  for (const auto& t : group) {
    bytes += t->batch.impl_->bytes;
    ops += t->batch.impl_->ops.size();
  }
  rocksdb::WriteBatch wb(bytes + 16 * ops + 64);
  for (const auto& t : group) {
    for (const auto& op : t->batch.impl_->ops) {
      rocksdb::ColumnFamilyHandle* cf = op.cf == Batch::Impl::Cf::kRecords   ? records
                                        : op.cf == Batch::Impl::Cf::kVectors ? vectors
                                                                             : stats;
      rocksdb::Status s = op.is_delete ? wb.Delete(cf, op.key) : wb.Put(cf, op.key, op.value);
      if (!s.ok()) return FromRocks(s, "building the write batch");
    }
  }
  return FromRocks(db->Write(WriteOpts(), &wb),
                   group.size() == 1
                       ? absl::StrCat("committing ", ops, " operations to '", path, "'")
                       : absl::StrCat("committing ", group.size(), " batches (", ops,
                                      " operations) to '", path, "'"));
}

namespace {

// Appends the vectors of record `record_key` at `it` (which must be positioned at or before
// them) to `out`, leaving `it` at the first vector of a later record. A vector of an earlier
// record has no meta entry: DataLoss.
absl::Status CollectVectors(rocksdb::Iterator* it, std::string_view record_key,
                            std::vector<std::pair<uint16_t, std::vector<float>>>* out,
                            const std::string& path) {
  for (; it->Valid(); it->Next()) {
    const std::string_view vkey(it->key().data(), it->key().size());
    ASSIGN_OR_RETURN(const internal::ParsedVectorKey pk, internal::ParseVectorKey(vkey));
    const int cmp = pk.record.compare(record_key);
    if (cmp > 0) break;
    if (cmp < 0) {
      return absl::DataLossError(
          absl::StrCat("record '", Esc(pk.id), "' of collection ", pk.collection, " in '", path,
                       "' has a vector (field ", pk.field, ") but no metadata entry"));
    }
    auto v = internal::DecodeVectorValue(std::string_view(it->value().data(), it->value().size()));
    if (!v.ok()) {
      return absl::DataLossError(absl::StrCat("record '", Esc(pk.id), "' field ", pk.field, " in '",
                                              path, "': ", v.status().message()));
    }
    out->emplace_back(pk.field, *std::move(v));
  }
  return FromRocks(it->status(), absl::StrCat("reading vectors from '", path, "'"));
}

absl::StatusOr<RecordMeta> DecodeMetaFor(std::string_view bytes, std::string_view id,
                                         const std::string& path) {
  auto meta = DecodeRecordMeta(bytes);
  if (!meta.ok()) {
    return absl::DataLossError(
        absl::StrCat("record '", Esc(id), "' in '", path, "': ", meta.status().message()));
  }
  return meta;
}

}  // namespace

absl::StatusOr<std::optional<StoredRecord>> Store::GetRecord(uint32_t collection,
                                                             std::string_view id) const {
  if (id.size() > internal::kMaxIdBytes) return std::optional<StoredRecord>();  // cannot exist.
  const Impl& d = *impl_;
  const rocksdb::Snapshot* snap = d.db->GetSnapshot();
  struct Release {
    rocksdb::DB* db;
    const rocksdb::Snapshot* s;
    ~Release() { db->ReleaseSnapshot(s); }
  } release{d.db, snap};

  const std::string rkey = internal::RecordKey(collection, id);
  rocksdb::ReadOptions ro;
  ro.snapshot = snap;
  std::string value;
  rocksdb::Status s = d.db->Get(ro, d.records, rkey, &value);
  const bool has_meta = s.ok();
  if (!has_meta && !s.IsNotFound()) {
    return FromRocks(s, absl::StrCat("reading record '", Esc(id), "' from '", d.path, "'"));
  }

  // Every vectors key of this record starts with rkey, and no other key does: the id length
  // inside rkey pins the id's extent.
  const std::string hi = internal::PrefixSuccessor(rkey);
  rocksdb::Slice lo_s(rkey), hi_s(hi);
  ro.iterate_lower_bound = &lo_s;
  ro.iterate_upper_bound = &hi_s;
  std::unique_ptr<rocksdb::Iterator> it(d.db->NewIterator(ro, d.vectors));
  it->Seek(lo_s);
  if (!has_meta) {
    RETURN_IF_ERROR(FromRocks(it->status(), "reading vectors"));
    if (it->Valid()) {
      return absl::DataLossError(absl::StrCat("record '", Esc(id), "' of collection ", collection,
                                              " in '", d.path,
                                              "' has vectors but no metadata entry"));
    }
    return std::optional<StoredRecord>();
  }
  StoredRecord rec;
  rec.id = std::string(id);
  ASSIGN_OR_RETURN(rec.meta, DecodeMetaFor(value, id, d.path));
  RETURN_IF_ERROR(CollectVectors(it.get(), rkey, &rec.vectors, d.path));
  return std::optional<StoredRecord>(std::move(rec));
}

absl::Status Store::ScanRecords(uint32_t collection,
                                const std::function<absl::Status(StoredRecord&&)>& fn) const {
  const Impl& d = *impl_;
  const rocksdb::Snapshot* snap = d.db->GetSnapshot();
  struct Release {
    rocksdb::DB* db;
    const rocksdb::Snapshot* s;
    ~Release() { db->ReleaseSnapshot(s); }
  } release{d.db, snap};

  const std::string lo = internal::CollectionPrefix(collection);
  const std::string hi = internal::CollectionPrefixEnd(collection);
  rocksdb::Slice lo_s(lo), hi_s(hi);
  rocksdb::ReadOptions ro;
  ro.snapshot = snap;
  ro.iterate_lower_bound = &lo_s;
  ro.iterate_upper_bound = &hi_s;
  ro.fill_cache = false;        // a full scan would only evict the point-lookup working set.
  ro.readahead_size = 2 << 20;  // sequential reads.
  std::unique_ptr<rocksdb::Iterator> rit(d.db->NewIterator(ro, d.records));
  std::unique_ptr<rocksdb::Iterator> vit(d.db->NewIterator(ro, d.vectors));
  rit->Seek(lo_s);
  vit->Seek(lo_s);
  for (; rit->Valid(); rit->Next()) {
    const std::string_view rkey(rit->key().data(), rit->key().size());
    ASSIGN_OR_RETURN(const internal::ParsedRecordKey pk, internal::ParseRecordKey(rkey));
    StoredRecord rec;
    rec.id = std::string(pk.id);
    ASSIGN_OR_RETURN(
        rec.meta,
        DecodeMetaFor(std::string_view(rit->value().data(), rit->value().size()), pk.id, d.path));
    RETURN_IF_ERROR(CollectVectors(vit.get(), rkey, &rec.vectors, d.path));
    RETURN_IF_ERROR(fn(std::move(rec)));
  }
  RETURN_IF_ERROR(FromRocks(
      rit->status(), absl::StrCat("scanning collection ", collection, " in '", d.path, "'")));
  // Vectors after the last record have no meta entry either.
  if (vit->Valid()) {
    const std::string_view vkey(vit->key().data(), vit->key().size());
    ASSIGN_OR_RETURN(const internal::ParsedVectorKey pk, internal::ParseVectorKey(vkey));
    return absl::DataLossError(
        absl::StrCat("record '", Esc(pk.id), "' of collection ", pk.collection, " in '", d.path,
                     "' has a vector (field ", pk.field, ") but no metadata entry"));
  }
  return FromRocks(vit->status(),
                   absl::StrCat("scanning collection ", collection, " in '", d.path, "'"));
}

// --- derived state -------------------------------------------------------------------------------

absl::StatusOr<std::optional<std::string>> Store::GetStat(uint32_t collection,
                                                          std::string_view name) const {
  const Impl& d = *impl_;
  std::string value;
  rocksdb::Status s =
      d.db->Get(rocksdb::ReadOptions(), d.stats, internal::StatKey(collection, name), &value);
  if (s.IsNotFound()) return std::optional<std::string>();
  RETURN_IF_ERROR(FromRocks(s, absl::StrCat("reading stat '", Esc(name), "' from '", d.path, "'")));
  return std::optional<std::string>(std::move(value));
}

absl::Status Store::ScanStats(
    uint32_t collection, std::string_view prefix,
    const std::function<absl::Status(std::string_view, std::string_view)>& fn) const {
  const Impl& d = *impl_;
  const std::string lo = internal::StatKey(collection, prefix);
  const size_t name_at = internal::StatKey(collection, "").size();
  rocksdb::ReadOptions ro;
  std::unique_ptr<rocksdb::Iterator> it(d.db->NewIterator(ro, d.stats));
  for (it->Seek(lo); it->Valid(); it->Next()) {
    const std::string_view key(it->key().data(), it->key().size());
    if (key.size() < lo.size() || key.substr(0, lo.size()) != lo) break;
    RETURN_IF_ERROR(fn(key.substr(name_at), std::string_view(it->value().data(), it->value().size())));
  }
  return FromRocks(it->status(), absl::StrCat("scanning stats of '", d.path, "'"));
}

// --- info ----------------------------------------------------------------------------------------

const std::string& Store::path() const { return impl_->path; }
SyncPolicy Store::sync_policy() const { return impl_->sync; }

CommitStats Store::commit_stats() const {
  std::lock_guard<std::mutex> lock(impl_->queue_mu);
  return impl_->commit_stats;
}

absl::Status Store::writable() const { return impl_->Writable(); }

std::string Store::Describe() const {
  return absl::StrCat("rocksdb ", ROCKSDB_MAJOR, ".", ROCKSDB_MINOR, ".", ROCKSDB_PATCH,
                      " (sync: ", SyncPolicyName(impl_->sync), ")");
}

}  // namespace rosetta::storage
