// Test hooks (see store_testing.h). They live in the storage library because only storage/ may
// include RocksDB; they use default options since they write a handful of keys.
#include "storage/store_testing.h"

#include <memory>
#include <vector>

#include "absl/strings/str_cat.h"
#include "rocksdb/db.h"
#include "storage/rocksdb_util.h"

namespace rosetta::storage::test_hooks {

using internal::FromRocks;

absl::Status CreatePlainRocksDb(const std::string& path, bool with_data) {
  rocksdb::Options o;
  o.create_if_missing = true;
  rocksdb::DB* raw = nullptr;
  rocksdb::Status s = rocksdb::DB::Open(o, path, &raw);
  if (!s.ok()) return FromRocks(s, absl::StrCat("creating plain RocksDB at ", path));
  std::unique_ptr<rocksdb::DB> db(raw);
  if (with_data) {
    rocksdb::WriteOptions w;
    w.sync = true;
    s = db->Put(w, "some-key", "some-value");
    if (!s.ok()) return FromRocks(s, "writing to the plain RocksDB");
  }
  return FromRocks(db->Close(), "closing the plain RocksDB");
}

absl::Status PutRaw(const std::string& path, std::string_view cf, std::string_view key,
                    std::string_view value) {
  rocksdb::DBOptions o;
  std::vector<std::string> names;
  rocksdb::Status s = rocksdb::DB::ListColumnFamilies(o, path, &names);
  if (!s.ok()) return FromRocks(s, absl::StrCat("listing column families of ", path));
  std::vector<rocksdb::ColumnFamilyDescriptor> descs;
  for (const auto& n : names) descs.emplace_back(n, rocksdb::ColumnFamilyOptions());
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  rocksdb::DB* db = nullptr;
  s = rocksdb::DB::Open(o, path, descs, &handles, &db);
  if (!s.ok()) return FromRocks(s, absl::StrCat("opening ", path));
  absl::Status result =
      absl::NotFoundError(absl::StrCat("no column family '", std::string(cf), "'"));
  for (auto* h : handles) {
    if (h->GetName() != cf) continue;
    rocksdb::WriteOptions w;
    w.sync = true;
    result = FromRocks(db->Put(w, h, rocksdb::Slice(key.data(), key.size()),
                               rocksdb::Slice(value.data(), value.size())),
                       "raw put");
  }
  for (auto* h : handles) db->DestroyColumnFamilyHandle(h).PermitUncheckedError();
  db->Close().PermitUncheckedError();
  delete db;
  return result;
}

}  // namespace rosetta::storage::test_hooks
