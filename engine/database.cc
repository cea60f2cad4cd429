#include "engine/database.h"

#include <chrono>
#include <condition_variable>
#include <deque>
#include <iostream>
#include <map>
#include <thread>
#include <tuple>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include <mutex>
#include <shared_mutex>
#include "engine/calibration.h"
#include "engine/device.h"
#include "engine/device_search.h"
#include "engine/index.h"
#include "engine/layout.h"
#include "engine/search.h"
#include "engine/segment.h"
#include "engine/telemetry.h"
#include "kernels/device.h"
#include "kernels/parallel.h"
#include "kernels/simd.h"
#include "schema/json.h"
#include "schema/status_macros.h"
#include "schema/text.h"
#include "schema/validate.h"

namespace rosetta::engine {

// One collection in memory: the resolved schema, its storage id and the growing segment.
//
// Writes (group commit). A writer, under write_mu: checks its input against row_of, builds the
// storage batch, applies the change to the segment's writer state and to row_of, stages an
// immutable snapshot of the result (not yet visible) and enqueues the batch in the store's
// commit queue. It then releases write_mu, so the next writer can stage and enqueue while this
// one waits for the fsync, and the store writes all the batches queued meanwhile with one WAL
// append and one fsync. Once its batch is durable the writer publishes its staged snapshot
// (unless a later one is already published: batches become durable in enqueue order), and only
// then acknowledges. Readers only take segment.snapshot(), so they never see a write that is not
// durable. Enqueue order equals staging order because both happen under write_mu, so RocksDB
// applies one collection's batches in the order their effects were staged in memory.
// A failed commit makes the store read-only (storage/store.h): the staged state of the failed
// batches (and of those queued behind them) is never published, and every later write fails.
class Collection {
 public:
  Collection(storage::CollectionMeta meta, std::shared_ptr<const Layout> layout)
      : meta_(std::move(meta)), layout_(std::move(layout)), segment_(layout_) {
    for (const FieldSpec& f : layout_->fields) has_ivf |= f.index.type == IndexType::kIvfPq;
  }

  const storage::CollectionMeta& meta() const { return meta_; }
  uint32_t id() const { return meta_.id; }
  const Layout& layout() const { return *layout_; }
  Segment& segment() { return segment_; }
  const Segment& segment() const { return segment_; }

  // Serialises writers (std::mutex rather than absl::Mutex so that ThreadSanitizer, which cannot
  // see inside the uninstrumented system Abseil, checks the engine's synchronisation).
  std::mutex write_mu;
  bool dropped = false;  // guarded by write_mu.
  // Current row of every live id, as staged (including writes not yet durable). Guarded by
  // write_mu.
  absl::flat_hash_map<std::string, size_t> row_of;

  // --- Indexes (engine/index.h). Guarded by write_mu unless said otherwise. ---
  // A sealed segment whose index build is queued, running or failed.
  struct BuildJob {
    uint64_t id = 0;
    std::vector<uint32_t> members;          // rows, ascending.
    std::shared_ptr<const Snapshot> snap;   // published when sealed; holds every member.
    std::string error;                      // non-empty: the build failed.
    std::vector<uint64_t> replaces;         // ready segments this one rebuilds (merged).
  };
  bool has_ivf = false;                     // constant: some field is ivf_pq.
  std::vector<uint64_t> assigned;           // rows in a sealed segment (ready or building).
  int64_t assigned_count = 0;
  uint64_t next_segment_id = 1;
  std::vector<std::shared_ptr<BuildJob>> jobs;
  std::atomic<bool> cancel_builds{false};   // set by DropCollection (any thread may read).

  // The device mirror of the rows (engine/device_search.h); null on the CPU. Set at creation.
  std::shared_ptr<DeviceMirror> mirror;

  // Writes enqueued and not yet finished (published or failed); DropCollection waits for zero.
  std::mutex flight_mu;
  std::condition_variable flight_cv;
  int64_t in_flight = 0;  // guarded by flight_mu.

 private:
  storage::CollectionMeta meta_;
  std::shared_ptr<const Layout> layout_;
  Segment segment_;
};

namespace {

absl::Status CollectionNotFound(const std::string& name) {
  return absl::NotFoundError("collection " + Quote(name) + " not found");
}

bool SameMeta(const storage::RecordMeta& a, const storage::RecordMeta& b) {
  return a.weights == b.weights && a.attributes == b.attributes && a.provenance == b.provenance;
}

absl::Status Annotate(const absl::Status& s, const std::string& prefix) {
  return absl::Status(s.code(), prefix + std::string(s.message()));
}

}  // namespace

struct Database::Impl {
  std::unique_ptr<storage::Store> store;
  DatabaseOptions options;
  std::unique_ptr<kernels::ThreadPool> own_pool;
  kernels::ThreadPool* pool = nullptr;
  // The search device (engine/device_search.h), or null: exhaustive searches on the CPU only.
  std::unique_ptr<DeviceSearcher> device;
  std::string device_name = "cpu";

  std::mutex catalog_mu;  // serialises CreateCollection / DropCollection.

  // Latency telemetry of the public operations (Stats()).
  struct Telemetry {
    std::chrono::steady_clock::time_point opened = std::chrono::steady_clock::now();
    LatencyHistogram search, search_batch, upsert, import, get, delete_;
  } telemetry;
  template <typename F>
  auto Timed(LatencyHistogram& histogram, F&& f) {
    const auto start = std::chrono::steady_clock::now();
    auto result = f();
    histogram.Record(std::chrono::steady_clock::now() - start, !result.ok());
    return result;
  }
  mutable std::shared_mutex map_mu;
  std::map<std::string, std::shared_ptr<Collection>> collections;  // guarded by map_mu.

  absl::StatusOr<std::shared_ptr<Collection>> Find(const std::string& name) const {
    std::shared_lock<std::shared_mutex> lock(map_mu);
    auto it = collections.find(name);
    if (it == collections.end()) return CollectionNotFound(name);
    return it->second;
  }

  absl::StatusOr<std::shared_ptr<Collection>> Load(const storage::CollectionMeta& meta);

  // --- index builds: one background builder thread per database ---
  std::mutex build_mu;
  std::condition_variable build_cv;
  std::deque<std::pair<std::shared_ptr<Collection>, std::shared_ptr<Collection::BuildJob>>>
      build_queue;  // guarded by build_mu.
  bool stopping = false;  // guarded by build_mu.
  std::shared_ptr<Collection> running;  // whose build runs now; guarded by build_mu.
  std::thread builder;
  void BuilderLoop();
  void StopBuilder() {
    {
      std::lock_guard<std::mutex> lock(build_mu);
      stopping = true;
      for (auto& [c, job] : build_queue) c->cancel_builds = true;
      if (running) running->cancel_builds = true;
    }
    build_cv.notify_all();
    if (builder.joinable()) builder.join();
  }
  ~Impl() { StopBuilder(); }
  // Under c.write_mu: seals the published, live rows of no segment into a new segment and queues
  // its build. `force`: at any size (BuildIndex); else only from options.seal_rows rows.
  void MaybeSealLocked(const std::shared_ptr<Collection>& c, bool force);
  void Queue(const std::shared_ptr<Collection>& c, std::shared_ptr<Collection::BuildJob> job);
  // Builds a job's segment and installs it (persisted through the commit queue, then published).
  void RunBuild(const std::shared_ptr<Collection>& c, const std::shared_ptr<Collection::BuildJob>& job);
  IndexBuildProgress ProgressLocked(const Collection& c) const;  // c.write_mu held.

  // One validated query on one snapshot: through the indexes when the request allows it and a
  // targeted field has a ready index, else exhaustive. An indexed query that reads less than
  // kParallelIndexScanBytes of codes runs on the calling thread alone: waking pool workers
  // would cost about as much as the scan, and concurrent clients then each keep a core busy
  // instead of queueing on the shared pool.
  // An exhaustive query goes to the search device when there is one and it takes the query's
  // shape (engine/device_search.h); a device error or a boundary fallback answers it here.
  absl::StatusOr<SearchResponse> SearchOne(const std::shared_ptr<Collection>& cp,
                                           const Snapshot& snap,
                                           const SearchRequest& request) const {
    const Collection& c = *cp;
    const Layout& layout = c.layout();
    ASSIGN_OR_RETURN(std::optional<CandidateUnion> candidates,
                     GatherCandidates(layout, snap, request, pool));
    if (!candidates.has_value()) {
      if (device != nullptr && c.mirror != nullptr) {
        ScheduleMirror(cp, snap);
        if (device->Eligible(layout, snap, request)) {
          std::optional<absl::StatusOr<SearchResponse>> r =
              device->SearchOne(*c.mirror, layout, snap, request, pool);
          if (r.has_value()) return std::move(*r);
        } else {
          device->CountCpuQuery();
        }
      }
      return ExecuteSearch(layout, snap, request, pool);
    }
    ASSIGN_OR_RETURN(SearchResponse response, ExecuteSearch(layout, snap, request, candidates->pool,
                                                            nullptr, &candidates->rows));
    response.exact = false;
    response.plan = std::move(candidates->plan);
    return response;
  }

  // Queues an upload of the collection's new rows on the device's upload thread when `snap` has
  // enough of them (engine/device_search.h); the query itself never waits for it.
  void ScheduleMirror(const std::shared_ptr<Collection>& c, const Snapshot& snap) const {
    if (device == nullptr || c->mirror == nullptr || !device->Stale(*c->mirror, snap)) return;
    DeviceSearcher* dev = device.get();
    device->ScheduleRefresh(*c->mirror, [dev, c] {
      (void)dev->Refresh(*c->mirror, c->layout(), *c->segment().snapshot());
    });
  }

  // Under c.write_mu, after a write's changes were applied to the segment's writer state:
  // refreshes stale calibration statistics (adding them to `batch`, to be persisted with the
  // write) and stages the snapshot to publish once the batch is durable.
  std::shared_ptr<const Snapshot> StageWrite(Collection& c, storage::Batch* batch);

  // Under c.write_mu: enqueues the staged write. The caller must then call AwaitWrite (after
  // releasing write_mu) if and only if this returns OK.
  absl::StatusOr<storage::CommitTicket> EnqueueWrite(Collection& c, storage::Batch&& batch);
  // Without c.write_mu: waits for durability, then publishes `staged`.
  absl::Status AwaitWrite(Collection& c, const storage::CommitTicket& ticket,
                          std::shared_ptr<const Snapshot> staged);
};

std::shared_ptr<const Snapshot> Database::Impl::StageWrite(Collection& c, storage::Batch* batch) {
  std::shared_ptr<const Snapshot> snap = c.segment().Stage();
  std::shared_ptr<const CalibrationSet> fresh =
      RefreshCalibration(c.layout(), *snap, *snap->calibration,
                         options.calibration_refresh_fraction, pool);
  if (fresh == nullptr) return snap;
  batch->PutStat(c.id(), kCalibrationStatKey, EncodeCalibration(*fresh));
  c.segment().SetCalibration(std::move(fresh));
  return c.segment().Stage();
}

absl::StatusOr<storage::CommitTicket> Database::Impl::EnqueueWrite(Collection& c,
                                                                    storage::Batch&& batch) {
  ASSIGN_OR_RETURN(storage::CommitTicket ticket, store->Enqueue(std::move(batch)));
  std::lock_guard<std::mutex> lock(c.flight_mu);
  ++c.in_flight;
  return ticket;
}

absl::Status Database::Impl::AwaitWrite(Collection& c, const storage::CommitTicket& ticket,
                                        std::shared_ptr<const Snapshot> staged) {
  absl::Status s = store->Await(ticket);
  if (s.ok()) c.segment().Publish(std::move(staged));
  std::lock_guard<std::mutex> lock(c.flight_mu);
  if (--c.in_flight == 0) c.flight_cv.notify_all();
  return s;
}

absl::StatusOr<std::shared_ptr<Collection>> Database::Impl::Load(
    const storage::CollectionMeta& meta) {
  const std::string what = "collection \"" + meta.name + "\"";
  auto json = ParseJsonText(meta.schema_json, what + " schema");
  if (!json.ok()) {
    return absl::DataLossError(what + ": catalog entry: stored schema is not valid JSON: " +
                               std::string(json.status().message()));
  }
  auto schema = SchemaFromJson(*json);
  if (!schema.ok()) {
    return absl::DataLossError(what + ": catalog entry: stored schema is invalid: " +
                               std::string(schema.status().message()));
  }
  auto layout = Layout::Make(*schema);
  if (!layout.ok()) return absl::DataLossError(what + ": " + std::string(layout.status().message()));
  auto c = std::make_shared<Collection>(meta, *layout);
  if (device != nullptr) c->mirror = device->NewMirror();
  const Layout& lay = c->layout();
  std::lock_guard<std::mutex> lock(c->write_mu);
  std::shared_ptr<const RowMeta> previous;
  std::vector<const float*> ptrs(lay.fields.size());
  RETURN_IF_ERROR(store->ScanRecords(meta.id, [&](storage::StoredRecord&& rec) -> absl::Status {
    std::fill(ptrs.begin(), ptrs.end(), nullptr);
    for (const auto& [fid, v] : rec.vectors) {
      if (fid >= lay.fields.size()) {
        return absl::DataLossError(what + ": record " + Quote(rec.id) + ": vector for unknown field id " +
                                   std::to_string(fid));
      }
      if (v.size() != lay.fields[fid].dim) {
        return absl::DataLossError(what + ": record " + Quote(rec.id) + ": field " +
                                   Quote(lay.fields[fid].name) + ": stored vector has " +
                                   std::to_string(v.size()) + " components, expected " +
                                   std::to_string(lay.fields[fid].dim));
      }
      ptrs[fid] = v.data();
    }
    // Consecutive records with equal metadata (typical of imports) share one RowMeta.
    if (previous == nullptr || !SameMeta(previous->meta, rec.meta)) {
      previous = MakeRowMeta(lay, std::move(rec.meta));
    }
    RowInfo info{rec.id, IdHash(rec.id), previous};
    const size_t row = c->segment().Append(std::move(info), ptrs);
    c->row_of[rec.id] = row;
    return absl::OkStatus();
  }));
  auto blob = store->GetStat(meta.id, kCalibrationStatKey);
  if (!blob.ok()) return blob.status();
  if (blob->has_value()) {
    auto set = DecodeCalibration(lay, **blob,
                                 what + ": stats key \"" + std::string(kCalibrationStatKey) + "\"");
    if (!set.ok()) return set.status();
    c->segment().SetCalibration(std::make_shared<const CalibrationSet>(std::move(*set)));
  }
  // Sealed segments: their artifacts map onto the rows just loaded (engine/index.h).
  storage::Batch stats;
  if (c->has_ivf) {
    auto sealed = std::make_shared<SealedList>();
    Segment& seg = c->segment();
    c->assigned.assign((seg.writer_rows() + 63) / 64, 0);
    RETURN_IF_ERROR(store->ScanStats(
        meta.id, kSegmentStatPrefix,
        [&](std::string_view name, std::string_view bytes) -> absl::Status {
          auto loaded = LoadSealedSegment(
              lay, bytes,
              [&](const std::string& id) -> std::optional<size_t> {
                auto it = c->row_of.find(id);
                if (it == c->row_of.end()) return std::nullopt;
                return it->second;
              },
              [&](size_t field, size_t row) { return seg.WriterVector(field, row); });
          if (!loaded.ok()) {
            // Derived data: drop the damaged artifact; its rows are indexed again when sealed.
            stats.DeleteStat(meta.id, name);
            return absl::OkStatus();
          }
          std::shared_ptr<SealedSegment> s = *std::move(loaded);
          c->next_segment_id = std::max(c->next_segment_id, s->id + 1);
          for (uint32_t row : s->member_rows) {
            if (row == kDeadMember) continue;
            uint64_t& word = c->assigned[row >> 6];
            const uint64_t bit = uint64_t{1} << (row & 63);
            if (!(word & bit)) ++c->assigned_count;
            word |= bit;
          }
          sealed->push_back(std::move(s));
          return absl::OkStatus();
        }));
    seg.SetSealed(sealed, ComputeCovered(lay, *sealed, seg, seg.writer_rows()));
  }
  // Loaded statistics are kept; only missing or stale ones are computed. If persisting them
  // fails they are still used in memory (and the store is then read-only: see store.h).
  std::shared_ptr<const Snapshot> snap = StageWrite(*c, &stats);
  if (stats.count() > 0) (void)store->Commit(std::move(stats));
  c->segment().Publish(std::move(snap));
  MaybeSealLocked(c, /*force=*/false);
  return c;
}

Database::Database(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Database::~Database() {
  if (impl_) impl_->StopBuilder();  // before the store closes.
}

absl::StatusOr<std::unique_ptr<Database>> Database::Open(const std::string& path,
                                                         const DatabaseOptions& options) {
  auto impl = std::make_unique<Impl>();
  impl->options = options;
  if (options.search_threads == 0) {
    impl->pool = &kernels::DefaultThreadPool();
  } else {
    impl->own_pool = std::make_unique<kernels::ThreadPool>(options.search_threads);
    impl->pool = impl->own_pool.get();
  }
  // The search device, resolved before anything is opened (a `cuda` request without a usable
  // GPU fails here, with nothing changed on disk).
  std::shared_ptr<DeviceBackend> backend = options.device_backend;
  if (backend == nullptr && options.device == DeviceKind::kCuda) {
    ASSIGN_OR_RETURN(backend, MakeCudaDeviceBackend(options.cuda_device));
  } else if (backend == nullptr && options.device == DeviceKind::kAuto &&
             kernels::BuiltWithCuda() && kernels::CudaDeviceCount() > 0) {
    absl::StatusOr<std::shared_ptr<DeviceBackend>> cuda = MakeCudaDeviceBackend(options.cuda_device);
    if (cuda.ok()) {
      backend = std::move(*cuda);
    } else {
      std::cerr << "rosetta: device: auto: " << cuda.status().message() << "; searching on the CPU"
                << std::endl;
    }
  }
  if (backend != nullptr) {
    DeviceSearchOptions dso;
    dso.memory_budget = options.device_memory_budget != 0
                            ? options.device_memory_budget
                            : static_cast<size_t>(0.8 * static_cast<double>(backend->MemoryBytes()));
    dso.batch_wait = options.device_batch_wait;
    dso.max_batch = options.device_max_batch;
    dso.chunk_rows = options.device_chunk_rows;
    impl->device_name = backend->Name();
    impl->device = std::make_unique<DeviceSearcher>(std::move(backend), dso);
  }
  ASSIGN_OR_RETURN(impl->store, storage::Store::Open(path, options.store));
  {
    Impl* raw = impl.get();
    impl->builder = std::thread([raw] { raw->BuilderLoop(); });
  }
  ASSIGN_OR_RETURN(std::vector<storage::CollectionMeta> metas, impl->store->ListCollections());
  for (const auto& meta : metas) {
    ASSIGN_OR_RETURN(std::shared_ptr<Collection> c, impl->Load(meta));
    if (impl->device != nullptr) {
      // Mirror the loaded rows now rather than on the first query (errors are logged; the rows
      // are then searched on the CPU).
      (void)impl->device->Refresh(*c->mirror, c->layout(), *c->segment().snapshot());
    }
    std::unique_lock<std::shared_mutex> lock(impl->map_mu);
    impl->collections[meta.name] = std::move(c);
  }
  return std::unique_ptr<Database>(new Database(std::move(impl)));
}

absl::Status Database::CreateCollection(const CollectionSchema& schema) {
  RETURN_IF_ERROR(ValidateSchema(schema));
  ASSIGN_OR_RETURN(std::shared_ptr<const Layout> layout, Layout::Make(schema));
  std::lock_guard<std::mutex> catalog(impl_->catalog_mu);
  {
    std::shared_lock<std::shared_mutex> lock(impl_->map_mu);
    if (impl_->collections.count(schema.name)) {
      return absl::AlreadyExistsError("collection \"" + schema.name + "\" already exists");
    }
  }
  storage::CollectionMeta meta;
  meta.name = schema.name;
  meta.schema_json = DumpJson(SchemaToJson(schema));
  ASSIGN_OR_RETURN(meta.id, impl_->store->CreateCollection(meta.name, meta.schema_json));
  auto c = std::make_shared<Collection>(std::move(meta), std::move(layout));
  if (impl_->device != nullptr) c->mirror = impl_->device->NewMirror();
  std::unique_lock<std::shared_mutex> lock(impl_->map_mu);
  impl_->collections[schema.name] = std::move(c);
  return absl::OkStatus();
}

std::vector<std::string> Database::ListCollections() const {
  std::shared_lock<std::shared_mutex> lock(impl_->map_mu);
  std::vector<std::string> names;
  for (const auto& [name, c] : impl_->collections) names.push_back(name);
  return names;
}

absl::StatusOr<CollectionInfo> Database::Describe(const std::string& name) const {
  ASSIGN_OR_RETURN(std::shared_ptr<Collection> c, impl_->Find(name));
  std::shared_ptr<const Snapshot> snap = c->segment().snapshot();
  CollectionInfo info;
  info.schema = c->layout().schema;
  info.records = snap->live_records;
  for (const FieldSpec& f : c->layout().fields) info.field_vectors[f.name] = snap->field_vectors[f.id];
  info.segments = 1;
  info.storage = impl_->store->Describe();
  info.kernel_backend = KernelBackend();
  info.device = impl_->device_name;
  if (impl_->device != nullptr && c->mirror != nullptr) {
    std::tie(info.device_rows, info.device_bytes) = DeviceSearcher::MirrorSize(*c->mirror);
  }
  for (const auto& [key, stats] : *snap->calibration) info.calibration.push_back(stats);
  // Segments: the ready sealed ones (from the snapshot), those being built, then the growing one.
  const Layout& layout = c->layout();
  auto live_members = [&](const std::vector<uint32_t>& rows) {
    int64_t live = 0;
    for (uint32_t r : rows) live += r != kDeadMember && r < snap->rows && snap->Live(r);
    return live;
  };
  int64_t growing_rows = 0;
  std::vector<std::shared_ptr<Collection::BuildJob>> jobs;
  {
    std::lock_guard<std::mutex> lock(c->write_mu);
    jobs = c->jobs;
    growing_rows = static_cast<int64_t>(snap->rows) - c->assigned_count;
  }
  for (const auto& seg : *snap->sealed) {
    SegmentInfo si;
    si.id = static_cast<int64_t>(seg->id);
    si.state = "ready";
    si.rows = static_cast<int64_t>(seg->member_rows.size());
    si.live = live_members(seg->member_rows);
    for (const SealedFieldIndex& fi : seg->fields) {
      SegmentFieldIndex f;
      f.field = layout.fields[fi.field].name;
      f.index = "ivf_pq";
      f.state = "ready";
      f.vectors = fi.vectors;
      f.nlist = static_cast<int64_t>(fi.index->nlist());
      f.m = static_cast<int64_t>(fi.index->m());
      f.nbits = static_cast<int64_t>(fi.index->nbits());
      f.bytes_per_vector = fi.index->BytesPerVector();
      si.fields.push_back(std::move(f));
    }
    for (size_t fid : seg->flat_fields) {
      SegmentFieldIndex f;
      f.field = layout.fields[fid].name;
      f.index = "flat";
      f.state = "ready";
      si.fields.push_back(std::move(f));
    }
    std::sort(si.fields.begin(), si.fields.end(),
              [](const SegmentFieldIndex& a, const SegmentFieldIndex& b) { return a.field < b.field; });
    info.segment_list.push_back(std::move(si));
  }
  for (const auto& job : jobs) {
    bool published = false;
    for (const auto& seg : *snap->sealed) published |= seg->id == job->id;
    if (published) continue;  // just installed: shown as ready above.
    SegmentInfo si;
    si.id = static_cast<int64_t>(job->id);
    si.state = job->error.empty() ? "building" : "failed";
    si.rows = static_cast<int64_t>(job->members.size());
    si.live = live_members(job->members);
    for (const FieldSpec& f : layout.fields) {
      if (f.index.type != IndexType::kIvfPq) continue;
      SegmentFieldIndex fi;
      fi.field = f.name;
      fi.index = "ivf_pq";
      fi.state = job->error.empty() ? "building" : "failed: " + job->error;
      si.fields.push_back(std::move(fi));
    }
    info.segment_list.push_back(std::move(si));
  }
  std::sort(info.segment_list.begin(), info.segment_list.end(),
            [](const SegmentInfo& a, const SegmentInfo& b) { return a.id < b.id; });
  if (c->has_ivf) {
    SegmentInfo growing;
    growing.state = "growing";
    growing.rows = std::max<int64_t>(0, growing_rows);
    info.segment_list.push_back(std::move(growing));
  }
  info.segments = static_cast<int64_t>(info.segment_list.size());
  if (info.segments == 0) info.segments = 1;
  return info;
}

absl::Status Database::DropCollection(const std::string& name) {
  std::lock_guard<std::mutex> catalog(impl_->catalog_mu);
  ASSIGN_OR_RETURN(std::shared_ptr<Collection> c, impl_->Find(name));
  c->cancel_builds = true;
  std::lock_guard<std::mutex> write(c->write_mu);
  {
    // No writer can stage while we hold write_mu; let those already enqueued finish, so that
    // none of their batches is written after the drop's range deletions.
    std::unique_lock<std::mutex> flight(c->flight_mu);
    c->flight_cv.wait(flight, [&] { return c->in_flight == 0; });
  }
  RETURN_IF_ERROR(impl_->store->DropCollection(c->meta()));
  c->dropped = true;  // writers that already hold the collection now fail with NotFound.
  std::unique_lock<std::shared_mutex> lock(impl_->map_mu);
  impl_->collections.erase(name);
  return absl::OkStatus();
}

absl::StatusOr<WriteResult> Database::Upsert(const std::string& name,
                                             std::vector<Record> records) {
  return impl_->Timed(impl_->telemetry.upsert, [&]() -> absl::StatusOr<WriteResult> {
    ASSIGN_OR_RETURN(std::shared_ptr<Collection> c, impl_->Find(name));
    if (records.size() > kMaxBatchRecords) {
      return absl::InvalidArgumentError("upsert: " + std::to_string(records.size()) +
                                        " records in one call; at most " +
                                        std::to_string(kMaxBatchRecords) + " per atomic batch");
    }
    const Layout& layout = c->layout();
    absl::flat_hash_map<std::string_view, size_t> position;
    position.reserve(records.size());
    for (size_t i = 0; i < records.size(); ++i) {
      Record& rec = records[i];
      const std::string where = "record " + std::to_string(i) + " (id " + Quote(rec.id) + "): ";
      absl::Status s = ValidateAndNormalizeRecord(layout.schema, rec);
      if (!s.ok()) {
        // Validation names the record by id (`record "p7": ...`); say its position instead.
        std::string msg(s.message());
        const std::string by_id = "record " + Quote(rec.id) + ": ";
        if (msg.rfind(by_id, 0) == 0) msg.erase(0, by_id.size());
        return absl::Status(s.code(), where + msg);
      }
      auto [it, inserted] = position.emplace(rec.id, i);
      if (!inserted) {
        return absl::InvalidArgumentError(where + "duplicate id (also record " +
                                          std::to_string(it->second) + ")");
      }
    }

    if (records.empty()) {
      std::lock_guard<std::mutex> lock(c->write_mu);
      if (c->dropped) return CollectionNotFound(name);
      return WriteResult{};
    }
    WriteResult result;
    storage::CommitTicket ticket;
    std::shared_ptr<const Snapshot> staged;
    {
      std::lock_guard<std::mutex> lock(c->write_mu);
      if (c->dropped) return CollectionNotFound(name);
      RETURN_IF_ERROR(impl_->store->writable());
      impl_->MaybeSealLocked(c, /*force=*/false);
      storage::Batch batch;
      for (const Record& rec : records) {
        if (c->row_of.contains(rec.id)) {
          batch.DeleteRecord(c->id(), rec.id, layout.all_field_ids);
        } else {
          ++result.created;
        }
        storage::RecordMeta meta{rec.weights, rec.attributes, rec.provenance};
        batch.PutMeta(c->id(), rec.id, meta);
        for (const auto& [field, v] : rec.vectors) {
          batch.PutVector(c->id(), rec.id, layout.fields[layout.field_index.at(field)].id, v);
        }
      }
      RETURN_IF_ERROR(batch.status());

      // Stage the change in memory (visible once durable).
      Segment& seg = c->segment();
      std::vector<const float*> ptrs(layout.fields.size());
      for (Record& rec : records) {
        auto it = c->row_of.find(rec.id);
        if (it != c->row_of.end()) seg.Tombstone(it->second);
        std::fill(ptrs.begin(), ptrs.end(), nullptr);
        for (const auto& [field, v] : rec.vectors) ptrs[layout.field_index.at(field)] = v.data();
        const uint64_t hash = IdHash(rec.id);
        auto meta = MakeRowMeta(layout, storage::RecordMeta{std::move(rec.weights),
                                                            std::move(rec.attributes),
                                                            std::move(rec.provenance)});
        const size_t row = seg.Append(RowInfo{rec.id, hash, std::move(meta)}, ptrs);
        c->row_of[rec.id] = row;
      }
      staged = impl_->StageWrite(*c, &batch);
      ASSIGN_OR_RETURN(ticket, impl_->EnqueueWrite(*c, std::move(batch)));
    }
    RETURN_IF_ERROR(impl_->AwaitWrite(*c, ticket, std::move(staged)));
    result.written = static_cast<int64_t>(records.size());
    return result;
  });
}

absl::StatusOr<WriteResult> Database::ImportVectors(const std::string& name,
                                                    const std::string& field,
                                                    std::span<const float> data, size_t rows,
                                                    size_t dim, const ImportOptions& options) {
  return impl_->Timed(impl_->telemetry.import, [&]() -> absl::StatusOr<WriteResult> {
    ASSIGN_OR_RETURN(std::shared_ptr<Collection> c, impl_->Find(name));
    const Layout& layout = c->layout();
    const FieldSpec* spec = layout.FindField(field);
    if (spec == nullptr) {
      return absl::NotFoundError("import: collection " + Quote(name) + " has no field " + Quote(field));
    }
    const Space& space = layout.schema.spaces.at(spec->space);
    if (rows > kMaxBatchRecords) {
      return absl::InvalidArgumentError("import: " + std::to_string(rows) +
                                        " rows in one call; at most " +
                                        std::to_string(kMaxBatchRecords) + " per atomic batch");
    }
    if (dim != spec->dim) {
      return absl::InvalidArgumentError("import: field " + Quote(field) + " (space " + Quote(spec->space) +
                                        ") has dim " + std::to_string(spec->dim) +
                                        ", the data has " + std::to_string(dim) + " columns");
    }
    if (data.size() != rows * dim) {
      return absl::InvalidArgumentError("import: data holds " + std::to_string(data.size()) +
                                        " floats, expected rows x dim = " +
                                        std::to_string(rows) + " x " + std::to_string(dim));
    }
    if (!options.provenance.collected_at.empty()) {
      auto t = ParseTimestampMicros(options.provenance.collected_at);
      if (!t.ok()) return Annotate(t.status(), "import: provenance: collected_at: ");
    }
    // Ids obey the same rules as upserted ones (valid UTF-8, no control characters, length).
    if (auto problem = CheckText(options.id_prefix, /*allow_control=*/false)) {
      return absl::InvalidArgumentError("import: id prefix " + Quote(options.id_prefix) + ": " +
                                        *problem);
    }
    std::vector<std::string> ids(rows);
    for (size_t i = 0; i < rows; ++i) {
      ids[i] = options.id_prefix + std::to_string(static_cast<int64_t>(i) + options.id_offset);
      if (ids[i].size() > kMaxIdBytes) {
        return absl::InvalidArgumentError("import: row " + std::to_string(i) + ": id " +
                                          Quote(ids[i]) + " is longer than " +
                                          std::to_string(kMaxIdBytes) + " bytes");
      }
    }
    // Validate every row; cosine rows are normalised into a copy.
    std::vector<float> normalised;
    const float* base = data.data();
    if (spec->metric == Metric::kCosine) normalised.resize(data.size());
    for (size_t i = 0; i < rows; ++i) {
      std::span<const float> row = data.subspan(i * dim, dim);
      RETURN_IF_ERROR(ValidateVector(space, row, "row " + std::to_string(i)));
      if (spec->metric == Metric::kCosine) {
        std::copy(row.begin(), row.end(), normalised.begin() + static_cast<ptrdiff_t>(i * dim));
        NormalizeInPlace(std::span<float>(normalised.data() + i * dim, dim));
      }
    }
    if (spec->metric == Metric::kCosine) base = normalised.data();

    if (rows == 0) {
      std::lock_guard<std::mutex> lock(c->write_mu);
      if (c->dropped) return CollectionNotFound(name);
      return WriteResult{};
    }
    WriteResult result;
    storage::CommitTicket ticket;
    std::shared_ptr<const Snapshot> staged;
    {
      std::lock_guard<std::mutex> lock(c->write_mu);
      if (c->dropped) return CollectionNotFound(name);
      RETURN_IF_ERROR(impl_->store->writable());
      impl_->MaybeSealLocked(c, /*force=*/false);
      Segment& seg = c->segment();
      const storage::RecordMeta created_meta{{}, {}, options.provenance};
      storage::Batch batch;
      for (size_t i = 0; i < rows; ++i) {
        auto it = c->row_of.find(ids[i]);
        batch.PutVector(c->id(), ids[i], spec->id, std::span<const float>(base + i * dim, dim));
        if (it == c->row_of.end()) {
          batch.PutMeta(c->id(), ids[i], created_meta);
          ++result.created;
        } else if (!options.provenance.empty()) {
          storage::RecordMeta meta = seg.WriterRow(it->second).meta->meta;
          meta.provenance = options.provenance;
          batch.PutMeta(c->id(), ids[i], meta);
        }
      }
      RETURN_IF_ERROR(batch.status());

      // Stage the change in memory (visible once durable).
      std::shared_ptr<const RowMeta> shared_created = MakeRowMeta(layout, created_meta);
      std::vector<const float*> ptrs(layout.fields.size());
      for (size_t i = 0; i < rows; ++i) {
        std::fill(ptrs.begin(), ptrs.end(), nullptr);
        std::shared_ptr<const RowMeta> meta = shared_created;
        auto it = c->row_of.find(ids[i]);
        if (it != c->row_of.end()) {
          // A new row version: the other fields and the metadata are carried over.
          const size_t old = it->second;
          for (size_t f = 0; f < ptrs.size(); ++f) ptrs[f] = seg.WriterVector(f, old);
          meta = seg.WriterRow(old).meta;
          if (!options.provenance.empty()) {
            storage::RecordMeta m = meta->meta;
            m.provenance = options.provenance;
            meta = MakeRowMeta(layout, std::move(m));
          }
          seg.Tombstone(old);
        }
        ptrs[spec->id] = base + i * dim;
        const uint64_t hash = IdHash(ids[i]);
        const size_t row = seg.Append(RowInfo{ids[i], hash, std::move(meta)}, ptrs);
        c->row_of[ids[i]] = row;
      }
      staged = impl_->StageWrite(*c, &batch);
      ASSIGN_OR_RETURN(ticket, impl_->EnqueueWrite(*c, std::move(batch)));
    }
    RETURN_IF_ERROR(impl_->AwaitWrite(*c, ticket, std::move(staged)));
    result.written = static_cast<int64_t>(rows);
    return result;
  });
}

absl::StatusOr<GetResult> Database::Get(const std::string& name,
                                        const std::vector<std::string>& ids,
                                        bool with_vectors) const {
  return impl_->Timed(impl_->telemetry.get, [&]() -> absl::StatusOr<GetResult> {
    ASSIGN_OR_RETURN(std::shared_ptr<Collection> c, impl_->Find(name));
    const Layout& layout = c->layout();
    GetResult result;
    for (const std::string& id : ids) {
      if (id.empty() || id.size() > kMaxIdBytes) {
        result.not_found.push_back(id);
        continue;
      }
      ASSIGN_OR_RETURN(std::optional<storage::StoredRecord> stored,
                       impl_->store->GetRecord(c->id(), id));
      if (!stored.has_value()) {
        result.not_found.push_back(id);
        continue;
      }
      Record rec;
      rec.id = id;
      rec.weights = std::move(stored->meta.weights);
      rec.attributes = std::move(stored->meta.attributes);
      rec.provenance = std::move(stored->meta.provenance);
      if (with_vectors) {
        for (auto& [fid, v] : stored->vectors) {
          if (fid >= layout.fields.size()) {
            return absl::DataLossError("collection " + Quote(name) + ": record " + Quote(id) +
                                       ": vector for unknown field id " + std::to_string(fid));
          }
          rec.vectors[layout.fields[fid].name] = std::move(v);
        }
      }
      result.records.push_back(std::move(rec));
    }
    return result;
  });
}

absl::StatusOr<WriteResult> Database::Delete(const std::string& name,
                                             const std::vector<std::string>& ids) {
  return impl_->Timed(impl_->telemetry.delete_, [&]() -> absl::StatusOr<WriteResult> {
    ASSIGN_OR_RETURN(std::shared_ptr<Collection> c, impl_->Find(name));
    WriteResult result;
    storage::CommitTicket ticket;
    std::shared_ptr<const Snapshot> staged;
    {
      std::lock_guard<std::mutex> lock(c->write_mu);
      if (c->dropped) return CollectionNotFound(name);
      storage::Batch batch;
      absl::flat_hash_set<std::string_view> seen;
      std::vector<size_t> rows;
      for (const std::string& id : ids) {
        if (!seen.insert(id).second) continue;  // a repeated id is deleted once.
        auto it = c->row_of.find(id);
        if (it == c->row_of.end()) {
          ++result.not_found;
          continue;
        }
        batch.DeleteRecord(c->id(), id, c->layout().all_field_ids);
        rows.push_back(it->second);
      }
      if (rows.empty()) return result;
      RETURN_IF_ERROR(impl_->store->writable());
      RETURN_IF_ERROR(batch.status());
      // Stage the change in memory (visible once durable).
      for (size_t row : rows) {
        const std::string& id = c->segment().WriterRow(row).id;
        c->row_of.erase(id);
        c->segment().Tombstone(row);
      }
      result.written = static_cast<int64_t>(rows.size());
      staged = impl_->StageWrite(*c, &batch);
      ASSIGN_OR_RETURN(ticket, impl_->EnqueueWrite(*c, std::move(batch)));
    }
    RETURN_IF_ERROR(impl_->AwaitWrite(*c, ticket, std::move(staged)));
    return result;
  });
}

absl::StatusOr<SearchResponse> Database::Search(const std::string& name,
                                                SearchRequest request) const {
  return impl_->Timed(impl_->telemetry.search, [&]() -> absl::StatusOr<SearchResponse> {
    const auto start = std::chrono::steady_clock::now();
    ASSIGN_OR_RETURN(std::shared_ptr<Collection> c, impl_->Find(name));
    RETURN_IF_ERROR(ValidateAndNormalizeQuery(c->layout().schema, request));
    std::shared_ptr<const Snapshot> snap = c->segment().snapshot();
    ASSIGN_OR_RETURN(SearchResponse response, impl_->SearchOne(c, *snap, request));
    response.took_us = std::chrono::duration_cast<std::chrono::microseconds>(
                           std::chrono::steady_clock::now() - start)
                           .count();
    return response;
  });
}

absl::StatusOr<std::vector<SearchResponse>> Database::SearchBatch(
    const std::string& name, std::vector<SearchRequest> requests) const {
  return impl_->Timed(impl_->telemetry.search_batch, [&]() -> absl::StatusOr<std::vector<SearchResponse>> {
    ASSIGN_OR_RETURN(std::shared_ptr<Collection> c, impl_->Find(name));
    for (size_t i = 0; i < requests.size(); ++i) {
      absl::Status s = ValidateAndNormalizeQuery(c->layout().schema, requests[i]);
      if (!s.ok()) return Annotate(s, "query " + std::to_string(i) + ": ");
    }
    // One snapshot for the whole batch: every query sees the same data.
    std::shared_ptr<const Snapshot> snap = c->segment().snapshot();
    const Layout& layout = c->layout();
    using Clock = std::chrono::steady_clock;
    auto micros = [](Clock::duration d) {
      return std::chrono::duration_cast<std::chrono::microseconds>(d).count();
    };
    std::vector<SearchResponse> out(requests.size());
    // Single-field ip / cosine queries without a filter, grouped by field: each group of up to
    // kMaxQueryGroup is scored in one pass over the field's vectors (the data is read once for all
    // of them instead of once per query), then fused and ranked one by one as usual.
    std::map<size_t, std::vector<size_t>> groups;  // field id -> request indices.
    std::vector<size_t> singles;
    // With a search device, the exhaustive queries it takes go to it together: those of one
    // shape share device calls (engine/device_search.h). The ones it hands back run below.
    std::vector<bool> answered(requests.size(), false);
    if (impl_->device != nullptr && c->mirror != nullptr) {
      impl_->ScheduleMirror(c, *snap);
      std::vector<size_t> picked;
      std::vector<const SearchRequest*> device_requests;
      for (size_t i = 0; i < requests.size(); ++i) {
        const bool indexed = !requests[i].exact && snap->sealed && !snap->sealed->empty();
        if (indexed) continue;
        if (impl_->device->Eligible(layout, *snap, requests[i])) {
          picked.push_back(i);
          device_requests.push_back(&requests[i]);
        } else {
          impl_->device->CountCpuQuery();
        }
      }
      if (!picked.empty()) {
        const auto start = Clock::now();
        auto results =
            impl_->device->SearchMany(*c->mirror, layout, *snap, device_requests, impl_->pool);
        // Each query is charged an equal share of the device calls and the re-scoring.
        const int64_t share = micros(Clock::now() - start) / static_cast<int64_t>(picked.size());
        for (size_t j = 0; j < picked.size(); ++j) {
          if (!results[j].has_value()) continue;  // back to the CPU path below.
          const size_t i = picked[j];
          if (!results[j]->ok()) {
            return Annotate(results[j]->status(), "query " + std::to_string(i) + ": ");
          }
          out[i] = std::move(**results[j]);
          out[i].took_us = share;
          answered[i] = true;
        }
      }
    }
    for (size_t i = 0; i < requests.size(); ++i) {
      if (answered[i]) continue;
      // Queries that may use indexes take the single path (candidates, then exact re-scoring).
      const bool indexed = !requests[i].exact && snap->sealed && !snap->sealed->empty();
      if (!indexed && GroupableQuery(layout, requests[i])) {
        groups[layout.field_index.at(requests[i].inputs[0].fields[0])].push_back(i);
      } else {
        singles.push_back(i);
      }
    }
    const size_t row_slots = snap->num_pages() * kPageRows;
    for (const auto& [field, members] : groups) {
      const FieldSpec& spec = layout.fields[field];
      for (size_t g0 = 0; g0 < members.size(); g0 += kMaxQueryGroup) {
        const auto start = Clock::now();
        const size_t nq = std::min(kMaxQueryGroup, members.size() - g0);
        std::vector<float> queries(nq * spec.dim);
        std::vector<std::vector<float>> raw(nq, std::vector<float>(row_slots));
        std::vector<float*> raw_ptrs(nq);
        for (size_t q = 0; q < nq; ++q) {
          const std::vector<float>& v = requests[members[g0 + q]].inputs[0].vector;
          std::copy(v.begin(), v.end(), queries.begin() + static_cast<ptrdiff_t>(q * spec.dim));
          raw_ptrs[q] = raw[q].data();
        }
        if (row_slots > 0) ScoreFieldGroup(*snap, spec, queries.data(), nq, raw_ptrs, impl_->pool);
        // Each query is charged an equal share of the shared scoring pass.
        const int64_t shared_us = micros(Clock::now() - start) / static_cast<int64_t>(nq);
        for (size_t q = 0; q < nq; ++q) {
          const size_t i = members[g0 + q];
          const auto own = Clock::now();
          auto r = ExecuteSearch(layout, *snap, requests[i], impl_->pool, raw_ptrs[q]);
          if (!r.ok()) return Annotate(r.status(), "query " + std::to_string(i) + ": ");
          r->took_us = shared_us + micros(Clock::now() - own);
          out[i] = std::move(*r);
        }
      }
    }
    // The other queries run in parallel over queries (each query's own parallel loops then run
    // inline on its worker); the first failing query, in request order, is reported.
    std::vector<absl::Status> failed(singles.size());
    auto run_singles = [&](size_t b, size_t e) {
      for (size_t j = b; j < e; ++j) {
        const size_t i = singles[j];
        const auto start = Clock::now();
        auto r = impl_->SearchOne(c, *snap, requests[i]);
        if (!r.ok()) {
          failed[j] = r.status();
          continue;
        }
        r->took_us = micros(Clock::now() - start);
        out[i] = std::move(*r);
      }
    };
    if (impl_->pool != nullptr && singles.size() > 1) {
      impl_->pool->ParallelFor(singles.size(), 1, run_singles);
    } else {
      run_singles(0, singles.size());
    }
    for (size_t j = 0; j < singles.size(); ++j) {
      if (!failed[j].ok()) return Annotate(failed[j], "query " + std::to_string(singles[j]) + ": ");
    }
    return out;
  });
}

absl::Status Database::SyncDeviceMirrors(const std::string& name) {
  ASSIGN_OR_RETURN(std::shared_ptr<Collection> c, impl_->Find(name));
  if (impl_->device == nullptr || c->mirror == nullptr) return absl::OkStatus();
  return impl_->device->Refresh(*c->mirror, c->layout(), *c->segment().snapshot(),
                                /*force=*/true);
}

const char* DeviceKindName(DeviceKind kind) {
  switch (kind) {
    case DeviceKind::kAuto:
      return "auto";
    case DeviceKind::kCpu:
      return "cpu";
    case DeviceKind::kCuda:
      return "cuda";
  }
  return "auto";
}

absl::StatusOr<DeviceKind> ParseDeviceKind(const std::string& name) {
  for (DeviceKind k : {DeviceKind::kAuto, DeviceKind::kCpu, DeviceKind::kCuda}) {
    if (name == DeviceKindName(k)) return k;
  }
  return absl::InvalidArgumentError("unknown device " + Quote(name) +
                                    " (expected auto, cpu or cuda)");
}

std::string Database::KernelBackend() const {
  return kernels::SimdLevelName(kernels::ActiveSimdLevel());
}

const std::string& Database::path() const { return impl_->store->path(); }

// --- Indexes -------------------------------------------------------------------------------------

void Database::Impl::MaybeSealLocked(const std::shared_ptr<Collection>& c, bool force) {
  if (!c->has_ivf || c->dropped) return;
  // Only published rows: they are durable, and the job's snapshot holds them.
  std::shared_ptr<const Snapshot> snap = c->segment().snapshot();
  const int64_t unassigned = static_cast<int64_t>(snap->rows) - c->assigned_count;
  if (!force && (!options.auto_seal || unassigned <= 0 ||
                 static_cast<size_t>(unassigned) < options.seal_rows)) {
    return;
  }
  // Merging: ready segments that are small (fewer than seal_rows / 4 live records) or mostly
  // deleted are rebuilt together with the new rows, so repeated small seals do not pile up
  // segments and deleted records leave the indexes. Not those another job already rebuilds.
  const int64_t small = std::max<int64_t>(1, static_cast<int64_t>(options.seal_rows / 4));
  std::vector<std::shared_ptr<const SealedSegment>> absorbed;
  bool any_mostly_deleted = false;
  if (c->segment().writer_sealed()) {
    for (const auto& seg : *c->segment().writer_sealed()) {
      bool claimed = false;
      for (const auto& job : c->jobs) {
        claimed |= std::find(job->replaces.begin(), job->replaces.end(), seg->id) !=
                   job->replaces.end();
      }
      if (claimed) continue;
      int64_t live = 0;
      for (uint32_t r : seg->member_rows) live += r != kDeadMember && r < snap->rows && snap->Live(r);
      const bool mostly_deleted = 2 * live < static_cast<int64_t>(seg->member_rows.size());
      if (live < small || mostly_deleted) absorbed.push_back(seg);
      any_mostly_deleted |= mostly_deleted;
    }
  }
  // Worth a build: new rows, several segments to merge, or one to compact.
  if (unassigned <= 0 && absorbed.size() < 2 && !any_mostly_deleted) return;
  auto job = std::make_shared<Collection::BuildJob>();
  job->id = c->next_segment_id++;
  job->snap = snap;
  if (c->assigned.size() < (snap->rows + 63) / 64) c->assigned.resize((snap->rows + 63) / 64, 0);
  for (size_t r = 0; r < snap->rows; ++r) {
    uint64_t& word = c->assigned[r >> 6];
    const uint64_t bit = uint64_t{1} << (r & 63);
    if (word & bit) continue;
    // Every unassigned row is assigned now (deleted ones too, so they are not counted again);
    // only live ones become members.
    word |= bit;
    ++c->assigned_count;
    if (snap->Live(r)) job->members.push_back(static_cast<uint32_t>(r));
  }
  for (const auto& seg : absorbed) {
    job->replaces.push_back(seg->id);
    for (uint32_t r : seg->member_rows) {
      if (r != kDeadMember && r < snap->rows && snap->Live(r)) job->members.push_back(r);
    }
  }
  std::sort(job->members.begin(), job->members.end());
  if (job->members.empty() && job->replaces.empty()) return;
  c->jobs.push_back(job);
  Queue(c, std::move(job));
}

void Database::Impl::Queue(const std::shared_ptr<Collection>& c,
                           std::shared_ptr<Collection::BuildJob> job) {
  {
    std::lock_guard<std::mutex> lock(build_mu);
    if (stopping) return;
    build_queue.emplace_back(c, std::move(job));
  }
  build_cv.notify_all();
}

void Database::Impl::BuilderLoop() {
  while (true) {
    std::shared_ptr<Collection> c;
    std::shared_ptr<Collection::BuildJob> job;
    {
      std::unique_lock<std::mutex> lock(build_mu);
      build_cv.wait(lock, [&] { return stopping || !build_queue.empty(); });
      if (stopping) return;
      c = std::move(build_queue.front().first);
      job = std::move(build_queue.front().second);
      build_queue.pop_front();
      running = c;
    }
    RunBuild(c, job);
    std::lock_guard<std::mutex> lock(build_mu);
    running.reset();
  }
}

void Database::Impl::RunBuild(const std::shared_ptr<Collection>& c,
                              const std::shared_ptr<Collection::BuildJob>& job) {
  if (c->cancel_builds.load()) return;
  std::string artifact;
  absl::StatusOr<std::shared_ptr<SealedSegment>> built = BuildSealedSegment(
      c->layout(), *job->snap, job->id, job->members, &artifact, pool, &c->cancel_builds);
  storage::CommitTicket ticket;
  std::shared_ptr<const Snapshot> staged;
  {
    std::lock_guard<std::mutex> lock(c->write_mu);
    if (c->dropped) return;
    if (!built.ok()) {
      job->error = std::string(built.status().message());
      return;
    }
    // Install: the segment joins the ready list and is persisted in the same (ordered) commit
    // queue as the writes, so it is published only once durable, after the writes staged before.
    Segment& seg = c->segment();
    auto sealed = std::make_shared<SealedList>();
    storage::Batch batch;
    if (seg.writer_sealed()) {
      for (const auto& old : *seg.writer_sealed()) {
        if (std::find(job->replaces.begin(), job->replaces.end(), old->id) != job->replaces.end()) {
          batch.DeleteStat(c->id(), SegmentStatKey(old->id));
        } else {
          sealed->push_back(old);
        }
      }
    }
    if (!(*built)->member_rows.empty()) sealed->push_back(*built);
    seg.SetSealed(sealed, ComputeCovered(c->layout(), *sealed, seg, seg.writer_rows()));
    if (!(*built)->member_rows.empty()) {
      batch.PutStat(c->id(), SegmentStatKey(job->id), artifact);
    }
    staged = seg.Stage();
    absl::StatusOr<storage::CommitTicket> t = EnqueueWrite(*c, std::move(batch));
    if (!t.ok()) {
      // The store is read-only: nothing more can be persisted (nor published).
      job->error = "not persisted: " + std::string(t.status().message());
      return;
    }
    ticket = *t;
  }
  absl::Status s = AwaitWrite(*c, ticket, std::move(staged));
  // The job leaves the list only once its segment is published, so that progress never shows
  // it as neither building nor ready.
  std::lock_guard<std::mutex> lock(c->write_mu);
  if (!s.ok()) {
    job->error = "not persisted: " + std::string(s.message());
    return;
  }
  c->jobs.erase(std::remove(c->jobs.begin(), c->jobs.end(), job), c->jobs.end());
}

IndexBuildProgress Database::Impl::ProgressLocked(const Collection& c) const {
  IndexBuildProgress p;
  std::shared_ptr<const Snapshot> snap = c.segment().snapshot();
  for (const auto& seg : *snap->sealed) {
    // A segment published while its job is still listed (the moment between the two) counts
    // once, as building.
    bool listed = false;
    for (const auto& job : c.jobs) listed |= job->id == seg->id;
    p.ready += !listed;
  }
  for (const auto& job : c.jobs) {
    if (job->error.empty()) {
      ++p.building;
    } else {
      ++p.failed;
    }
  }
  p.segments = p.ready + p.building + p.failed;
  p.growing_rows = std::max<int64_t>(0, static_cast<int64_t>(snap->rows) - c.assigned_count);
  return p;
}

absl::StatusOr<IndexBuildProgress> Database::BuildIndex(const std::string& name,
                                                        const std::string& field) {
  ASSIGN_OR_RETURN(std::shared_ptr<Collection> c, impl_->Find(name));
  if (!field.empty()) {
    const FieldSpec* f = c->layout().FindField(field);
    if (f == nullptr) {
      return absl::NotFoundError("build-index: collection " + Quote(name) + " has no field " +
                                 Quote(field));
    }
    if (f->index.type != IndexType::kIvfPq) {
      return absl::InvalidArgumentError("build-index: field " + Quote(field) +
                                        " has no ivf_pq index (its schema says flat)");
    }
  }
  if (!c->has_ivf) {
    return absl::InvalidArgumentError("build-index: collection " + Quote(name) +
                                      " has no field with an ivf_pq index");
  }
  std::lock_guard<std::mutex> lock(c->write_mu);
  if (c->dropped) return CollectionNotFound(name);
  RETURN_IF_ERROR(impl_->store->writable());
  for (auto& job : c->jobs) {
    if (!job->error.empty()) {
      job->error.clear();  // retry.
      impl_->Queue(c, job);
    }
  }
  impl_->MaybeSealLocked(c, /*force=*/true);
  return impl_->ProgressLocked(*c);
}

absl::StatusOr<IndexBuildProgress> Database::IndexProgress(const std::string& name) const {
  ASSIGN_OR_RETURN(std::shared_ptr<Collection> c, impl_->Find(name));
  std::lock_guard<std::mutex> lock(c->write_mu);
  return impl_->ProgressLocked(*c);
}

absl::StatusOr<IndexBuildProgress> Database::WaitForIndexes(
    const std::string& name, std::chrono::milliseconds timeout) const {
  const auto end = std::chrono::steady_clock::now() + timeout;
  while (true) {
    ASSIGN_OR_RETURN(IndexBuildProgress p, IndexProgress(name));
    if (p.done() || std::chrono::steady_clock::now() >= end) return p;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

DatabaseStats Database::Stats() const {
  DatabaseStats out;
  const Impl::Telemetry& t = impl_->telemetry;
  out.uptime_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t.opened).count();
  {
    std::shared_lock<std::shared_mutex> lock(impl_->map_mu);
    out.collections = static_cast<int64_t>(impl_->collections.size());
    for (const auto& [name, c] : impl_->collections) {
      out.records += c->segment().snapshot()->live_records;
    }
  }
  out.operations = {t.search.Summary("search"), t.search_batch.Summary("search_batch"),
                    t.upsert.Summary("upsert"), t.import.Summary("import"),
                    t.get.Summary("get"),       t.delete_.Summary("delete")};
  const storage::CommitStats commits = impl_->store->commit_stats();
  out.commit_batches = commits.batches;
  out.commit_groups = commits.groups;
  out.device = impl_->device_name;
  if (impl_->device != nullptr) {
    std::vector<std::pair<std::shared_ptr<DeviceMirror>, size_t>> rows;
    {
      std::shared_lock<std::shared_mutex> lock(impl_->map_mu);
      for (const auto& [name, c] : impl_->collections) {
        rows.emplace_back(c->mirror, c->segment().snapshot()->rows);
      }
    }
    out.device_stats = impl_->device->Stats(rows);
  }
  return out;
}

}  // namespace rosetta::engine
