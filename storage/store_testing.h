// Test hooks for storage's own tests: they write RocksDB databases directly, bypassing Store, to
// build states Store never produces (foreign databases, future format versions, damaged values).
// Production code must not call these.
#pragma once

#include <string>
#include <string_view>

#include "absl/status/status.h"

namespace rosetta::storage::test_hooks {

// Creates a plain RocksDB database at `path` with only the default column family; if
// `with_data`, it holds one key.
absl::Status CreatePlainRocksDb(const std::string& path, bool with_data);

// Opens the (closed) database at `path` with all its column families and writes `key` ->
// `value` into column family `cf` ("catalog", "records", "vectors", "stats").
absl::Status PutRaw(const std::string& path, std::string_view cf, std::string_view key,
                    std::string_view value);

}  // namespace rosetta::storage::test_hooks
