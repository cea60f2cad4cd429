#include "net/embedded_client.h"

#include <filesystem>
#include <system_error>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "schema/status_macros.h"

namespace rosetta {
namespace {

class EmbeddedClient final : public Client {
 public:
  explicit EmbeddedClient(std::unique_ptr<engine::Database> db) : db_(std::move(db)) {}

  absl::StatusOr<ServerInfo> Info() override {
    ServerInfo info;
    info.version = kRosettaVersion;
    info.mode = "embedded";
    info.kernel_backend = db_->KernelBackend();
    info.data_dir = db_->path();
    // The device is resolved once at open; Stats() is the engine's one place that names it.
    info.device = db_->Stats().device;
    return info;
  }

  absl::Status CreateCollection(const CollectionSchema& schema) override {
    return db_->CreateCollection(schema);
  }

  absl::StatusOr<std::vector<std::string>> ListCollections() override {
    return db_->ListCollections();
  }

  absl::StatusOr<CollectionInfo> Describe(const std::string& collection) override {
    return db_->Describe(collection);
  }

  absl::Status DropCollection(const std::string& collection) override {
    return db_->DropCollection(collection);
  }

  absl::StatusOr<WriteResult> Upsert(const std::string& collection,
                                     std::vector<Record> records) override {
    // The engine enforces the same limit; checking here keeps the Client contract independent of
    // which implementation is behind it (the remote client checks before sending).
    if (records.size() > engine::kMaxBatchRecords) {
      return absl::InvalidArgumentError(
          absl::StrCat("upsert: ", records.size(), " records in one call; at most ",
                       engine::kMaxBatchRecords, " per atomic batch"));
    }
    return db_->Upsert(collection, std::move(records));
  }

  absl::StatusOr<WriteResult> Import(const ImportRequest& request) override {
    if (request.rows > engine::kMaxBatchRecords) {
      return absl::InvalidArgumentError(
          absl::StrCat("import: ", request.rows, " rows in one call; at most ",
                       engine::kMaxBatchRecords, " per atomic batch"));
    }
    if (request.data.size() != request.rows * request.dim) {
      return absl::InvalidArgumentError(
          absl::StrCat("import: ", request.data.size(), " floats given for ", request.rows,
                       " rows of ", request.dim, " components"));
    }
    engine::ImportOptions options;
    options.id_prefix = request.id_prefix;
    options.id_offset = request.id_offset;
    options.provenance = request.provenance;
    return db_->ImportVectors(request.collection, request.field, request.data, request.rows,
                              request.dim, options);
  }

  absl::StatusOr<GetResult> Get(const std::string& collection,
                                const std::vector<std::string>& ids, bool with_vectors) override {
    return db_->Get(collection, ids, with_vectors);
  }

  absl::StatusOr<WriteResult> Delete(const std::string& collection,
                                     const std::vector<std::string>& ids) override {
    return db_->Delete(collection, ids);
  }

  absl::StatusOr<std::vector<SearchResponse>> Search(
      const std::string& collection, std::vector<SearchRequest> requests) override {
    if (requests.empty()) return std::vector<SearchResponse>{};
    if (requests.size() == 1) {
      // A single query goes through Search so that took_us is that query's own time.
      ASSIGN_OR_RETURN(SearchResponse response,
                       db_->Search(collection, std::move(requests.front())));
      std::vector<SearchResponse> responses;
      responses.push_back(std::move(response));
      return responses;
    }
    return db_->SearchBatch(collection, std::move(requests));
  }

  absl::StatusOr<IndexBuildProgress> BuildIndex(const std::string& collection,
                                                const std::string& field) override {
    return db_->BuildIndex(collection, field);
  }

  absl::StatusOr<IndexBuildProgress> IndexProgress(const std::string& collection) override {
    return db_->IndexProgress(collection);
  }

  absl::StatusOr<DatabaseStats> Stats() override { return db_->Stats(); }

 private:
  std::unique_ptr<engine::Database> db_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<Client>> OpenEmbeddedClient(const std::string& data_dir,
                                                          const engine::DatabaseOptions& options) {
  if (data_dir.empty()) return absl::InvalidArgumentError("data directory: empty path");
  // The directories this call creates, deepest first: removed again (when still empty) if the
  // open fails, e.g. `--device cuda` on a machine without a GPU, so that a failed start leaves
  // nothing behind.
  std::vector<std::filesystem::path> created;
  if (options.store.create_if_missing) {
    std::error_code ec;
    for (std::filesystem::path p = std::filesystem::absolute(data_dir, ec).lexically_normal();
         !ec && !p.empty() && !std::filesystem::exists(p, ec) && p != p.parent_path();
         p = p.parent_path()) {
      if (p.has_filename()) created.push_back(p);
    }
    ec.clear();
    // RocksDB creates only the last path component; `--data a/b/c` should just work.
    std::filesystem::create_directories(data_dir, ec);
    if (ec) {
      return absl::InvalidArgumentError(
          absl::StrCat("data directory \"", data_dir, "\": cannot create: ", ec.message()));
    }
  }
  absl::StatusOr<std::unique_ptr<engine::Database>> db = engine::Database::Open(data_dir, options);
  if (!db.ok()) {
    for (const std::filesystem::path& p : created) {
      std::error_code ec;
      if (!std::filesystem::is_empty(p, ec) || ec || !std::filesystem::remove(p, ec)) break;
    }
    return db.status();
  }
  return std::unique_ptr<Client>(new EmbeddedClient(std::move(*db)));
}

}  // namespace rosetta
