// The embedded client: the Client interface (net/client.h) served by an engine::Database running
// in this process on a data directory. This is what `rosetta --data DIR` uses.
//
// Semantics are exactly the engine's (engine/database.h): the same validation, the same error
// codes and messages, the same atomicity (one Upsert / Import call = one atomic batch of at most
// engine::kMaxBatchRecords records). The embedded client adds only:
//   - the batch-size check of the Client contract, done before the engine is called;
//   - Info(): {version kRosettaVersion, mode "embedded", the kernel backend, the data directory};
//   - Stats() is Database::Stats(): no per-request latencies, connection or byte counters.
//
// Thread safety: as engine::Database, every method may be called concurrently.
#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "engine/database.h"
#include "net/client.h"

namespace rosetta {

// The Rosetta version reported by Info() and `rosetta --version`.
inline constexpr char kRosettaVersion[] = "0.1.0";

// Opens (creating it, and any missing parent directories, when options.store.create_if_missing is
// set, the default) the database in `data_dir`. Errors are those of engine::Database::Open (e.g.
// FailedPrecondition when another process holds the directory), plus InvalidArgument for an
// empty path and the filesystem error when the directory cannot be created. When the open
// fails, the directories this call created are removed again if they are still empty (a failed
// open, e.g. options.device kCuda without a usable GPU, leaves nothing behind).
absl::StatusOr<std::unique_ptr<Client>> OpenEmbeddedClient(const std::string& data_dir,
                                                          const engine::DatabaseOptions& options);

}  // namespace rosetta
