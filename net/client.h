// The Rosetta client interface: every operation the CLI (and applications) can perform.
//
// Two implementations: EmbeddedClient (net/embedded_client.h) runs the engine in-process on a
// data directory; the remote client (over the wire protocol, next) talks to a rosettad server.
// Both return the same values for the same operations, which is what makes `rosetta --data` and
// `rosetta --server` print identical output.
//
// Errors are absl::Status values with the engine's codes (InvalidArgument, NotFound,
// AlreadyExists, ...). No method throws.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "schema/types.h"

namespace rosetta {

struct ImportRequest {
  std::string collection;
  std::string field;
  std::span<const float> data;  // row-major rows x dim.
  size_t rows = 0;
  size_t dim = 0;
  std::string id_prefix;
  int64_t id_offset = 0;
  Provenance provenance;
};

// Information about the endpoint (embedded engine or server).
struct ServerInfo {
  std::string version;         // Rosetta version.
  std::string mode;            // "embedded" | "server".
  std::string kernel_backend;  // "avx512" | "avx2" | "scalar".
  std::string data_dir;
  // Search device of the database (DatabaseStats::device): "cpu" or "cuda:<ordinal> <name>";
  // "" when a server does not report it.
  std::string device;
};

class Client {
 public:
  virtual ~Client() = default;

  virtual absl::StatusOr<ServerInfo> Info() = 0;
  virtual absl::Status CreateCollection(const CollectionSchema& schema) = 0;
  virtual absl::StatusOr<std::vector<std::string>> ListCollections() = 0;
  virtual absl::StatusOr<CollectionInfo> Describe(const std::string& collection) = 0;
  virtual absl::Status DropCollection(const std::string& collection) = 0;
  // At most engine::kMaxBatchRecords records per call; one call is atomic.
  virtual absl::StatusOr<WriteResult> Upsert(const std::string& collection,
                                             std::vector<Record> records) = 0;
  // At most engine::kMaxBatchRecords rows per call; one call is atomic.
  virtual absl::StatusOr<WriteResult> Import(const ImportRequest& request) = 0;
  virtual absl::StatusOr<GetResult> Get(const std::string& collection,
                                        const std::vector<std::string>& ids,
                                        bool with_vectors) = 0;
  virtual absl::StatusOr<WriteResult> Delete(const std::string& collection,
                                             const std::vector<std::string>& ids) = 0;
  virtual absl::StatusOr<std::vector<SearchResponse>> Search(
      const std::string& collection, std::vector<SearchRequest> requests) = 0;

  // Indexes and telemetry. Added after the operations above: Client implementations that do not
  // override them (test doubles, older implementations) answer UNIMPLEMENTED `build-index is not
  // supported by this client` (index-progress, stats likewise); EmbeddedClient and the remote
  // client implement them.

  // Indexes (engine::Database::BuildIndex, docs/query-semantics.md "Indexes"): seals the rows not
  // yet in a sealed segment into a new one and queues its ivf_pq index builds (and the retry of
  // failed builds); returns at once with the progress. `field` "" = every ivf_pq field (naming
  // one only checks that it has an ivf_pq index). InvalidArgument when the collection (or the
  // field) has no ivf_pq index, NotFound for an unknown collection or field.
  virtual absl::StatusOr<IndexBuildProgress> BuildIndex(const std::string& collection,
                                                        const std::string& field);
  // The progress of a collection's index builds (done() when nothing is queued or running).
  virtual absl::StatusOr<IndexBuildProgress> IndexProgress(const std::string& collection);

  // Telemetry since the database was opened (engine::Database::Stats). Through a server, also
  // the server's per-request latencies (DatabaseStats::requests, "request.<type>") and the
  // transport's connection and byte counters; embedded, those are empty / zero.
  virtual absl::StatusOr<DatabaseStats> Stats();
};

// Polls client.IndexProgress(collection) every `poll` until the builds are done (done()) or
// `timeout` has passed (milliseconds::max(): no limit), and returns the last progress (done()
// false after a timeout). Calls
// `on_progress` (if set) with every progress it reads, the last one included. Errors: those of
// IndexProgress.
absl::StatusOr<IndexBuildProgress> WaitForIndexes(
    Client& client, const std::string& collection, std::chrono::milliseconds timeout,
    std::chrono::milliseconds poll = std::chrono::milliseconds(200),
    const std::function<void(const IndexBuildProgress&)>& on_progress = nullptr);

}  // namespace rosetta
