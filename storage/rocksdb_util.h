// rocksdb::Status -> absl::Status (storage-internal; includes RocksDB, so only storage/*.cc may
// include it).
#pragma once

#include <string_view>

#include "absl/status/status.h"
#include "rocksdb/status.h"

namespace rosetta::storage::internal {

// OK stays OK; otherwise an absl::Status whose message is "<context>: <RocksDB's text>", with the
// code mapping documented in storage/store.h.
absl::Status FromRocks(const rocksdb::Status& s, std::string_view context);

}  // namespace rosetta::storage::internal
