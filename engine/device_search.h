// Internal to the engine: exhaustive searches whose candidates a search device produces
// (engine/device.h; docs/query-semantics.md "Search devices" has the user-facing contract).
//
// Mirrors. Each collection's rows are mirrored to the device in chunks: a chunk is a copy of
// rows [begin, end) (whole pages, every field, presence bitmaps and record weights), immutable
// like the rows themselves (rows are append-only and never change once published; deletes are
// tombstones, passed per query). A new chunk covers the published rows not mirrored yet once
// there are at least DatabaseOptions::device_chunk_rows of them; more than kMaxChunks chunks are
// merged into one. Chunks are uploaded at open (Refresh) and otherwise on the searcher's own
// thread (ScheduleRefresh, when a query finds enough new rows): no query waits for an upload, and
// meanwhile the unmirrored rows are searched on the CPU. The mirrors of all collections share
// DatabaseOptions::device_memory_budget; rows beyond it stay on the CPU.
//
// A query takes the device path when (the rest take the CPU path, counted in cpu_queries): the
// plan is exhaustive (no ready index narrows the candidates), fusion is `weighted`, normalisation
// is `none` or `calibrated` with statistics for every targeted field (an affine map known before
// scoring; minmax and zscore need every candidate's score first), at most
// kernels::kFusedMaxTerms fields are targeted, k + kDeviceMargin <= kernels::kGpuMaxK, and some
// rows are mirrored.
//
// Execution of a query on the device path:
//   1. skip bitmap over the mirrored rows: tombstones, and rows the filter rejects (evaluated on
//      the CPU);
//   2. per chunk, the device's fused top-k' (k' = k + kDeviceMargin) under the device's
//      arithmetic; concurrent queries of the same shape share one call (dynamic batching);
//   3. boundary check: a chunk that returned k' rows may hold more rows near the k-th best
//      score; when its last score is within the tolerance (kDeviceTolerance, relative) of the
//      k-th best device score, the query is answered on the CPU instead (boundary_fallbacks).
//      Otherwise every row that can be in the exact top-k is among the candidates, whatever the
//      small differences between device and CPU arithmetic;
//   4. the candidates plus every unmirrored row are re-scored exactly on the CPU (ExecuteSearch
//      restricted to them): scores, ties by id and explanations are the CPU path's;
//   5. with explain, each hit's rank in each field is counted on the device over the mirrored
//      rows (kernels::GpuRankCounts, with the hit's raw score as the device computes it) plus on
//      the CPU over the unmirrored ones; a rank tie (another row with the same raw score, to be
//      ordered by id) sends the query to the CPU path (boundary_fallbacks).
// A device error in any step answers the query on the CPU path, logs one line to stderr and
// counts in `fallbacks`.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <cstddef>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/device.h"
#include "engine/layout.h"
#include "engine/segment.h"
#include "schema/types.h"

namespace rosetta::kernels {
class ThreadPool;
}

namespace rosetta::engine {

// Extra candidates per chunk beyond k (step 3 above).
inline constexpr size_t kDeviceMargin = 16;
// Relative tolerance of the boundary check: device and CPU scores of a row may differ by the
// order of fp32 additions; rows this close to the k-th best score go to the CPU path.
inline constexpr double kDeviceTolerance = 1e-4;
// The most chunks a collection's mirror keeps before merging them.
inline constexpr size_t kMaxChunks = 8;

struct DeviceSearchOptions {
  size_t memory_budget = 0;  // bytes for every mirror together.
  std::chrono::microseconds batch_wait{200};
  size_t max_batch = 64;
  size_t chunk_rows = 16384;
};

// One collection's mirror (owned by the collection; see the top of this file).
class DeviceMirror;

class DeviceSearcher {
 public:
  DeviceSearcher(std::shared_ptr<DeviceBackend> backend, DeviceSearchOptions options);
  ~DeviceSearcher();

  const std::string& name() const { return name_; }
  std::shared_ptr<DeviceMirror> NewMirror();

  // Uploads the chunks `snap` calls for, on the calling thread (at open, and
  // Database::SyncDeviceMirrors). Errors are logged and returned; the rows stay on the CPU.
  // `force`: upload any whole pages not mirrored yet (not only device_chunk_rows of them), and
  // retry after a failed upload.
  absl::Status Refresh(DeviceMirror& mirror, const Layout& layout, const Snapshot& snap,
                       bool force = false);
  // Whether `snap` has enough unmirrored rows for a new chunk and no upload is running or queued.
  bool Stale(DeviceMirror& mirror, const Snapshot& snap);
  // Queues `refresh` (which must call Refresh) on the searcher's upload thread, once per mirror
  // at a time (Stale is false meanwhile). Pending jobs are dropped at destruction.
  void ScheduleRefresh(DeviceMirror& mirror, std::function<void()> refresh);

  // Whether the device path takes this validated request (the rules at the top of this file),
  // given that the plan is exhaustive.
  bool Eligible(const Layout& layout, const Snapshot& snap, const SearchRequest& request) const;

  // Answers eligible validated requests (all on `snap`, exhaustive plan) through the device;
  // out[i] is nullopt when request i must be answered on the CPU path instead (a device error
  // or a boundary fallback, already counted and logged). Requests of the same shape share
  // device calls (up to max_batch queries each). `pool`: for the CPU re-scoring.
  std::vector<std::optional<absl::StatusOr<SearchResponse>>> SearchMany(
      DeviceMirror& mirror, const Layout& layout, const Snapshot& snap,
      const std::vector<const SearchRequest*>& requests, kernels::ThreadPool* pool);

  // One request, through the dynamic batcher: waits up to batch_wait for concurrent requests of
  // the same shape (same collection, snapshot and targets, no filter) to share the device call.
  std::optional<absl::StatusOr<SearchResponse>> SearchOne(DeviceMirror& mirror,
                                                          const Layout& layout,
                                                          const Snapshot& snap,
                                                          const SearchRequest& request,
                                                          kernels::ThreadPool* pool);

  void CountCpuQuery() { cpu_queries_.fetch_add(1, std::memory_order_relaxed); }
  // The counters; unmirrored rows from `published_rows` (each collection's published rows, with
  // its mirror).
  DeviceStats Stats(
      const std::vector<std::pair<std::shared_ptr<DeviceMirror>, size_t>>& published_rows) const;
  // Mirror rows and bytes of one collection (describe).
  static std::pair<int64_t, int64_t> MirrorSize(const DeviceMirror& mirror);

 private:
  struct Prepared;
  struct Batch;
  absl::Status Prepare(const Layout& layout, const Snapshot& snap, const SearchRequest& request,
                       DeviceMirror& mirror, Prepared* p) const;
  absl::StatusOr<std::vector<std::vector<std::vector<kernels::Scored>>>> RunDevice(
      const std::vector<Prepared*>& group);
  // RunDevice, then each query's candidates (or the device error) into its Prepared.
  void RunAndStore(const std::vector<Prepared*>& group);
  std::optional<absl::StatusOr<SearchResponse>> Finish(Prepared& p, kernels::ThreadPool* pool);

  std::shared_ptr<DeviceBackend> backend_;
  DeviceSearchOptions options_;
  std::string name_;
  // Device bytes of every mirror (shared with the mirrors, which give theirs back when dropped).
  std::shared_ptr<std::atomic<int64_t>> used_bytes_ = std::make_shared<std::atomic<int64_t>>(0);
  std::atomic<int64_t> searches_{0}, batches_{0}, fallbacks_{0}, boundary_fallbacks_{0},
      cpu_queries_{0};

  // The upload thread (started on first use).
  std::mutex jobs_mu_;
  std::condition_variable jobs_cv_;
  std::deque<std::function<void()>> jobs_;  // guarded by jobs_mu_.
  bool stopping_ = false;                    // guarded by jobs_mu_.
  std::thread uploader_;

  std::mutex batch_mu_;
  std::condition_variable batch_cv_;
  std::vector<std::shared_ptr<Batch>> open_batches_;  // guarded by batch_mu_.
};

}  // namespace rosetta::engine
