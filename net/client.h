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
};

}  // namespace rosetta
