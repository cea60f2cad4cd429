// Store on a real RocksDB in a temporary directory: catalog, commits, reopen, scans, errors.
#include "storage/store.h"

#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "storage/keys.h"
#include "storage/store_testing.h"
#include "tests/storage/status_expect.h"
#include "tests/testing/testing.h"

extern char** environ;

namespace rosetta::storage {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

uint32_t Bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}
float FromBits(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

RecordMeta MetaWithTitle(const std::string& title) {
  RecordMeta m;
  m.attributes["title"] = title;
  m.attributes["n"] = int64_t{static_cast<int64_t>(title.size())};
  m.weights["image"] = 0.75f;
  m.provenance.source = "unit-test";
  return m;
}

std::string Title(const StoredRecord& r) {
  return std::get<std::string>(r.meta.attributes.at("title"));
}

class StoreTest : public ::testing::Test {
 protected:
  std::string db_path() const { return (dir_.path() / "db").string(); }

  std::unique_ptr<Store> OpenOrDie(SyncPolicy sync = SyncPolicy::kAlways) {
    StoreOptions o;
    o.sync = sync;
    auto s = Store::Open(db_path(), o);
    EXPECT_TRUE(s.ok()) << s.status();
    return s.ok() ? std::move(s).value() : nullptr;
  }

  // All records of a collection, in scan order.
  static std::vector<StoredRecord> ScanAll(const Store& store, uint32_t collection) {
    std::vector<StoredRecord> out;
    absl::Status s = store.ScanRecords(collection, [&](StoredRecord&& r) {
      out.push_back(std::move(r));
      return absl::OkStatus();
    });
    EXPECT_TRUE(s.ok()) << s;
    return out;
  }

  testing::TempDir dir_;
};

// --- catalog -------------------------------------------------------------------------------------

TEST_F(StoreTest, CreateListDropCollectionsAndIdsAreNeverReused) {
  {
    auto store = OpenOrDie();
    ASSERT_NE(store, nullptr);
    ASSERT_OK_AND_ASSIGN(auto empty, store->ListCollections());
    EXPECT_TRUE(empty.empty());

    ASSERT_OK_AND_ASSIGN(uint32_t b, store->CreateCollection("b", R"({"name":"b"})"));
    ASSERT_OK_AND_ASSIGN(uint32_t a, store->CreateCollection("a", R"({"name":"a"})"));
    ASSERT_OK_AND_ASSIGN(uint32_t c, store->CreateCollection("c", "{}"));
    EXPECT_EQ(b, 1u);
    EXPECT_EQ(a, 2u);
    EXPECT_EQ(c, 3u);
    EXPECT_STATUS_IS(store->CreateCollection("a", "{}"), absl::StatusCode::kAlreadyExists,
                     "collection 'a' already exists (id 2)");
    EXPECT_STATUS_IS(store->CreateCollection("", "{}"), absl::StatusCode::kInvalidArgument,
                     "empty");

    ASSERT_OK_AND_ASSIGN(auto list, store->ListCollections());
    ASSERT_EQ(list.size(), 3u);
    EXPECT_EQ(list[0].name, "a");
    EXPECT_EQ(list[0].id, 2u);
    EXPECT_EQ(list[0].schema_json, R"({"name":"a"})");
    EXPECT_EQ(list[1].name, "b");
    EXPECT_EQ(list[2].name, "c");

    ASSERT_OK(store->DropCollection(list[1]));  // b, id 1
    EXPECT_STATUS_IS(store->DropCollection(list[1]), absl::StatusCode::kNotFound,
                     "collection 'b' does not exist");
    ASSERT_OK_AND_ASSIGN(uint32_t b2, store->CreateCollection("b", "{}"));
    EXPECT_EQ(b2, 4u);  // not 1 again.
    // The stale meta (id 1) must not drop the new "b".
    EXPECT_STATUS_IS(store->DropCollection(list[1]), absl::StatusCode::kFailedPrecondition,
                     "has id 4, not 1");
    ASSERT_OK(store->DropCollection(CollectionMeta{4, "b", "{}"}));
  }
  {
    auto store = OpenOrDie();
    ASSERT_NE(store, nullptr);
    ASSERT_OK_AND_ASSIGN(auto list, store->ListCollections());
    ASSERT_EQ(list.size(), 2u);
    EXPECT_EQ(list[0].name, "a");
    EXPECT_EQ(list[1].name, "c");
    ASSERT_OK_AND_ASSIGN(uint32_t d, store->CreateCollection("d", "{}"));
    EXPECT_EQ(d, 5u);  // the counter survived the reopen, ids 1 and 4 stay retired.
  }
}

// --- commit and reopen ---------------------------------------------------------------------------

TEST_F(StoreTest, EverythingSurvivesReopenBitExact) {
  const std::vector<float> special = {0.0f,
                                      -0.0f,
                                      std::numeric_limits<float>::denorm_min(),
                                      -FromBits(0x007FFFFF),
                                      std::numeric_limits<float>::min(),
                                      std::numeric_limits<float>::max(),
                                      std::numeric_limits<float>::lowest(),
                                      1e30f,
                                      -1e-30f,
                                      std::numeric_limits<float>::infinity(),
                                      FromBits(0x7FC0DEAD)};
  const std::vector<float> big = testing::RandomVectors(1, 4096, 7);
  RecordMeta meta;
  meta.weights = {{"image", 0.25f}, {"caption", -0.0f}};
  meta.attributes = {{"s", std::string("héllo\0x", 7)},
                     {"i", std::numeric_limits<int64_t>::min()},
                     {"d", 1e-310},
                     {"b", true},
                     {"l", std::vector<std::string>{"x", "", "日本"}}};
  meta.provenance = {
      "flickr8k", "2025-08-09T10:00:00Z", {"resize 224", "center-crop"}, "v1", "enc@1"};
  uint32_t coll = 0;
  {
    auto store = OpenOrDie();
    ASSERT_NE(store, nullptr);
    ASSERT_OK_AND_ASSIGN(coll, store->CreateCollection("c", "{}"));
    Batch b;
    b.PutMeta(coll, "rec-1", meta);
    b.PutVector(coll, "rec-1", 3, special);
    b.PutVector(coll, "rec-1", 0, big);
    b.PutVector(coll, "rec-1", 65535, std::vector<float>{});
    b.PutMeta(coll, "rec-2", RecordMeta{});
    b.PutStat(coll, "calibration", std::string("\0\x01\xff", 3));
    EXPECT_EQ(b.count(), 6u);
    EXPECT_GE(b.bytes(), 4096u * 4);
    ASSERT_OK(store->Commit(std::move(b)));
  }
  auto store = OpenOrDie();
  ASSERT_NE(store, nullptr);
  ASSERT_OK_AND_ASSIGN(auto rec, store->GetRecord(coll, "rec-1"));
  ASSERT_TRUE(rec.has_value());
  EXPECT_EQ(rec->id, "rec-1");
  EXPECT_TRUE(rec->meta.attributes == meta.attributes);
  EXPECT_EQ(rec->meta.provenance, meta.provenance);
  ASSERT_EQ(rec->meta.weights.size(), 2u);
  EXPECT_EQ(Bits(rec->meta.weights.at("caption")), Bits(-0.0f));
  ASSERT_EQ(rec->vectors.size(), 3u);  // ascending field ids.
  EXPECT_EQ(rec->vectors[0].first, 0);
  EXPECT_EQ(rec->vectors[1].first, 3);
  EXPECT_EQ(rec->vectors[2].first, 65535);
  ASSERT_EQ(rec->vectors[0].second.size(), big.size());
  EXPECT_EQ(std::memcmp(rec->vectors[0].second.data(), big.data(), big.size() * 4), 0);
  ASSERT_EQ(rec->vectors[1].second.size(), special.size());
  for (size_t i = 0; i < special.size(); ++i) {
    EXPECT_EQ(Bits(rec->vectors[1].second[i]), Bits(special[i])) << i;
  }
  EXPECT_TRUE(rec->vectors[2].second.empty());

  ASSERT_OK_AND_ASSIGN(auto rec2, store->GetRecord(coll, "rec-2"));
  ASSERT_TRUE(rec2.has_value());
  EXPECT_TRUE(rec2->vectors.empty());
  EXPECT_TRUE(rec2->meta.attributes.empty());

  ASSERT_OK_AND_ASSIGN(auto stat, store->GetStat(coll, "calibration"));
  ASSERT_TRUE(stat.has_value());
  EXPECT_EQ(*stat, std::string("\0\x01\xff", 3));
  ASSERT_OK_AND_ASSIGN(auto no_stat, store->GetStat(coll, "other"));
  EXPECT_FALSE(no_stat.has_value());
}

TEST_F(StoreTest, SyncNoneAlsoSurvivesACleanReopen) {
  uint32_t coll = 0;
  {
    auto store = OpenOrDie(SyncPolicy::kNone);
    ASSERT_NE(store, nullptr);
    EXPECT_EQ(store->sync_policy(), SyncPolicy::kNone);
    EXPECT_EQ(store->Describe(), "rocksdb 7.8.3 (sync: none)");
    ASSERT_OK_AND_ASSIGN(coll, store->CreateCollection("c", "{}"));
    Batch b;
    b.PutMeta(coll, "x", MetaWithTitle("x"));
    b.PutVector(coll, "x", 1, std::vector<float>{1, 2});
    ASSERT_OK(store->Commit(std::move(b)));
  }
  auto store = OpenOrDie();
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(store->Describe(), "rocksdb 7.8.3 (sync: always)");
  EXPECT_EQ(store->path(), db_path());
  auto all = ScanAll(*store, coll);
  ASSERT_EQ(all.size(), 1u);
  EXPECT_EQ(Title(all[0]), "x");
  EXPECT_EQ(all[0].vectors[0].second, (std::vector<float>{1, 2}));
}

TEST_F(StoreTest, LaterOperationsInABatchWinAndDeletesApply) {
  auto store = OpenOrDie();
  ASSERT_NE(store, nullptr);
  ASSERT_OK_AND_ASSIGN(uint32_t coll, store->CreateCollection("c", "{}"));
  {
    Batch b;
    for (const char* id : {"keep", "gone", "revived"}) {
      b.PutMeta(coll, id, MetaWithTitle(id));
      b.PutVector(coll, id, 1, std::vector<float>{1});
      b.PutVector(coll, id, 2, std::vector<float>{2});
    }
    ASSERT_OK(store->Commit(std::move(b)));
  }
  {
    Batch b;
    const uint16_t fields[] = {1, 2};
    b.DeleteRecord(coll, "gone", fields);
    b.DeleteRecord(coll, "revived", fields);
    b.PutMeta(coll, "revived", MetaWithTitle("second life"));
    b.DeleteVector(coll, "keep", 2);
    b.PutMeta(coll, "new", MetaWithTitle("first"));
    b.PutMeta(coll, "new", MetaWithTitle("last"));
    ASSERT_OK(store->Commit(std::move(b)));
  }
  ASSERT_OK_AND_ASSIGN(auto gone, store->GetRecord(coll, "gone"));
  EXPECT_FALSE(gone.has_value());
  ASSERT_OK_AND_ASSIGN(auto revived, store->GetRecord(coll, "revived"));
  ASSERT_TRUE(revived.has_value());
  EXPECT_EQ(Title(*revived), "second life");
  EXPECT_TRUE(revived->vectors.empty());
  ASSERT_OK_AND_ASSIGN(auto keep, store->GetRecord(coll, "keep"));
  ASSERT_TRUE(keep.has_value());
  ASSERT_EQ(keep->vectors.size(), 1u);
  EXPECT_EQ(keep->vectors[0].first, 1);
  ASSERT_OK_AND_ASSIGN(auto fresh, store->GetRecord(coll, "new"));
  ASSERT_TRUE(fresh.has_value());
  EXPECT_EQ(Title(*fresh), "last");
}

TEST_F(StoreTest, BatchWithAnInvalidIdWritesNothing) {
  auto store = OpenOrDie();
  ASSERT_NE(store, nullptr);
  ASSERT_OK_AND_ASSIGN(uint32_t coll, store->CreateCollection("c", "{}"));
  Batch b;
  b.PutMeta(coll, "fine", MetaWithTitle("fine"));
  b.PutVector(coll, "fine", 0, std::vector<float>{1, 2, 3});
  const std::string too_long(70000, 'x');
  b.PutVector(coll, too_long, 0, std::vector<float>{1});
  b.PutStat(coll, "s", "v");
  EXPECT_STATUS_IS(store->Commit(std::move(b)), absl::StatusCode::kInvalidArgument,
                   "record id of 70000 bytes is longer than the 65535-byte maximum");
  EXPECT_TRUE(ScanAll(*store, coll).empty());
  ASSERT_OK_AND_ASSIGN(auto stat, store->GetStat(coll, "s"));
  EXPECT_FALSE(stat.has_value());
  ASSERT_OK_AND_ASSIGN(auto rec, store->GetRecord(coll, too_long));
  EXPECT_FALSE(rec.has_value());

  // The moved-from batch is empty and reusable.
  EXPECT_EQ(b.count(), 0u);
  EXPECT_EQ(b.bytes(), 0u);
  b.PutMeta(coll, "after", MetaWithTitle("after"));
  EXPECT_EQ(b.count(), 1u);
  ASSERT_OK(store->Commit(std::move(b)));
  ASSERT_OK(store->Commit(Batch()));  // empty: a no-op.
  EXPECT_EQ(ScanAll(*store, coll).size(), 1u);

  // The longest allowed id works.
  const std::string longest(65535, 'y');
  Batch c;
  c.PutMeta(coll, longest, MetaWithTitle("long"));
  c.PutVector(coll, longest, 9, std::vector<float>{4});
  ASSERT_OK(store->Commit(std::move(c)));
  ASSERT_OK_AND_ASSIGN(auto got, store->GetRecord(coll, longest));
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(got->id, longest);
  EXPECT_EQ(got->vectors.size(), 1u);
}

TEST_F(StoreTest, ALargeBatchIsWhollyVisibleAfterReopen) {
  constexpr int kRecords = 2000;
  uint32_t coll = 0;
  const std::vector<float> vecs = testing::RandomVectors(kRecords, 16, 99);
  {
    auto store = OpenOrDie();
    ASSERT_NE(store, nullptr);
    ASSERT_OK_AND_ASSIGN(coll, store->CreateCollection("c", "{}"));
    Batch b;
    for (int i = 0; i < kRecords; ++i) {
      const std::string id = absl::StrCat("r", i);
      b.PutMeta(coll, id, MetaWithTitle(id));
      b.PutVector(coll, id, 0, std::span<const float>(vecs.data() + i * 16, 16));
    }
    b.PutStat(coll, "count", std::to_string(kRecords));
    ASSERT_OK(store->Commit(std::move(b)));
  }
  auto store = OpenOrDie();
  ASSERT_NE(store, nullptr);
  auto all = ScanAll(*store, coll);
  ASSERT_EQ(all.size(), static_cast<size_t>(kRecords));
  for (const auto& r : all) {
    const int i = std::stoi(r.id.substr(1));
    EXPECT_EQ(Title(r), r.id);
    ASSERT_EQ(r.vectors.size(), 1u);
    EXPECT_EQ(std::memcmp(r.vectors[0].second.data(), vecs.data() + i * 16, 64), 0) << r.id;
  }
  ASSERT_OK_AND_ASSIGN(auto stat, store->GetStat(coll, "count"));
  EXPECT_EQ(stat.value_or(""), std::to_string(kRecords));
}

TEST_F(StoreTest, ConcurrentCommitsAllPersist) {
  constexpr int kThreads = 4;
  constexpr int kCommitsPerThread = 25;
  uint32_t coll = 0;
  {
    auto store = OpenOrDie(SyncPolicy::kAlways);
    ASSERT_NE(store, nullptr);
    ASSERT_OK_AND_ASSIGN(coll, store->CreateCollection("c", "{}"));
    std::vector<std::thread> threads;
    std::vector<absl::Status> errors(kThreads);
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, t] {
        for (int i = 0; i < kCommitsPerThread; ++i) {
          Batch b;
          for (int j = 0; j < 2; ++j) {
            const std::string id = absl::StrCat("t", t, "-", i, "-", j);
            b.PutMeta(coll, id, MetaWithTitle(id));
            b.PutVector(coll, id, static_cast<uint16_t>(t), std::vector<float>{float(t), float(i)});
          }
          absl::Status s = store->Commit(std::move(b));
          if (!s.ok() && errors[t].ok()) errors[t] = s;
        }
      });
    }
    // Readers run alongside: every scan sees whole batches (an even count of records).
    for (int k = 0; k < 5; ++k) {
      size_t n = 0;
      ASSERT_OK(store->ScanRecords(coll, [&](StoredRecord&&) {
        ++n;
        return absl::OkStatus();
      }));
      EXPECT_EQ(n % 2, 0u);
    }
    for (auto& th : threads) th.join();
    for (const auto& e : errors) EXPECT_OK(e);
  }
  auto store = OpenOrDie();
  ASSERT_NE(store, nullptr);
  auto all = ScanAll(*store, coll);
  EXPECT_EQ(all.size(), static_cast<size_t>(kThreads * kCommitsPerThread * 2));
  for (int t = 0; t < kThreads; ++t) {
    for (int i = 0; i < kCommitsPerThread; ++i) {
      ASSERT_OK_AND_ASSIGN(auto r, store->GetRecord(coll, absl::StrCat("t", t, "-", i, "-1")));
      ASSERT_TRUE(r.has_value()) << t << " " << i;
      ASSERT_EQ(r->vectors.size(), 1u);
      EXPECT_EQ(r->vectors[0].first, t);
      EXPECT_EQ(r->vectors[0].second, (std::vector<float>{float(t), float(i)}));
    }
  }
}

// --- drop ----------------------------------------------------------------------------------------

TEST_F(StoreTest, DropRemovesOnlyThatCollection) {
  std::vector<CollectionMeta> metas;
  {
    auto store = OpenOrDie();
    ASSERT_NE(store, nullptr);
    // Three neighbours so that the dropped one has data on both sides of its key range.
    for (const char* name : {"left", "mid", "right"}) {
      ASSERT_OK_AND_ASSIGN(uint32_t id, store->CreateCollection(name, "{}"));
      Batch b;
      for (const char* rid : {"a", "b", "zz"}) {
        b.PutMeta(id, rid, MetaWithTitle(absl::StrCat(name, "/", rid)));
        b.PutVector(id, rid, 0, std::vector<float>{float(id)});
      }
      b.PutStat(id, "calibration", name);
      ASSERT_OK(store->Commit(std::move(b)));
    }
    ASSERT_OK_AND_ASSIGN(metas, store->ListCollections());
    ASSERT_EQ(metas.size(), 3u);
    ASSERT_EQ(metas[1].name, "mid");
    ASSERT_OK(store->DropCollection(metas[1]));
    EXPECT_TRUE(ScanAll(*store, metas[1].id).empty());
  }
  auto store = OpenOrDie();
  ASSERT_NE(store, nullptr);
  ASSERT_OK_AND_ASSIGN(auto list, store->ListCollections());
  ASSERT_EQ(list.size(), 2u);
  EXPECT_EQ(list[0].name, "left");
  EXPECT_EQ(list[1].name, "right");
  EXPECT_TRUE(ScanAll(*store, metas[1].id).empty());
  ASSERT_OK_AND_ASSIGN(auto gone_stat, store->GetStat(metas[1].id, "calibration"));
  EXPECT_FALSE(gone_stat.has_value());
  ASSERT_OK_AND_ASSIGN(auto gone_rec, store->GetRecord(metas[1].id, "a"));
  EXPECT_FALSE(gone_rec.has_value());
  for (const auto& m : list) {
    auto all = ScanAll(*store, m.id);
    ASSERT_EQ(all.size(), 3u) << m.name;
    EXPECT_EQ(Title(all[0]), m.name + "/a");
    EXPECT_EQ(all[0].vectors[0].second[0], float(m.id));
    ASSERT_OK_AND_ASSIGN(auto stat, store->GetStat(m.id, "calibration"));
    EXPECT_EQ(stat.value_or(""), m.name);
  }
}

TEST_F(StoreTest, DropOfTheLastPossibleIdRangeIsBounded) {
  // Writes under collection 0xFFFFFFFF (never handed out, but the range end must still work) and
  // checks that dropping a real collection leaves it alone.
  auto store = OpenOrDie();
  ASSERT_NE(store, nullptr);
  ASSERT_OK_AND_ASSIGN(uint32_t id, store->CreateCollection("c", "{}"));
  Batch b;
  b.PutMeta(0xFFFFFFFF, "x", MetaWithTitle("x"));
  b.PutMeta(id, "y", MetaWithTitle("y"));
  ASSERT_OK(store->Commit(std::move(b)));
  ASSERT_OK(store->DropCollection(CollectionMeta{id, "c", "{}"}));
  EXPECT_EQ(ScanAll(*store, 0xFFFFFFFF).size(), 1u);
  EXPECT_TRUE(ScanAll(*store, id).empty());
}

// --- scans and lookups ---------------------------------------------------------------------------

TEST_F(StoreTest, ScanOrderIsLengthThenBytesAndStopsEarly) {
  auto store = OpenOrDie();
  ASSERT_NE(store, nullptr);
  ASSERT_OK_AND_ASSIGN(uint32_t coll, store->CreateCollection("c", "{}"));
  ASSERT_OK_AND_ASSIGN(uint32_t other, store->CreateCollection("other", "{}"));
  const std::vector<std::string> ids = {"b",  "aa",  "a", "\xff", std::string("\0", 1),
                                        "ab", "abc", "B", "ba"};
  Batch b;
  for (const auto& id : ids) {
    b.PutMeta(coll, id, MetaWithTitle(id));
    // Fields written out of order; the scan returns them ascending.
    b.PutVector(coll, id, 7, std::vector<float>{7});
    b.PutVector(coll, id, 2, std::vector<float>{2});
    b.PutMeta(other, id, MetaWithTitle("other"));
  }
  ASSERT_OK(store->Commit(std::move(b)));

  std::vector<std::string> seen;
  ASSERT_OK(store->ScanRecords(coll, [&](StoredRecord&& r) {
    seen.push_back(r.id);
    EXPECT_EQ(Title(r), r.id);
    EXPECT_EQ(r.vectors.size(), 2u);
    if (r.vectors.size() == 2) {
      EXPECT_EQ(r.vectors[0].first, 2);
      EXPECT_EQ(r.vectors[1].first, 7);
    }
    return absl::OkStatus();
  }));
  EXPECT_THAT(seen,
              ElementsAre(std::string("\0", 1), "B", "a", "b", "\xff", "aa", "ab", "ba", "abc"));

  int calls = 0;
  absl::Status stop = store->ScanRecords(coll, [&](StoredRecord&& r) {
    ++calls;
    return calls == 3 ? absl::CancelledError("enough") : absl::OkStatus();
  });
  EXPECT_EQ(stop.code(), absl::StatusCode::kCancelled);
  EXPECT_EQ(stop.message(), "enough");
  EXPECT_EQ(calls, 3);

  EXPECT_TRUE(ScanAll(*store, 12345).empty());  // unknown collection: nothing.
}

TEST_F(StoreTest, ScanSeesASnapshot) {
  auto store = OpenOrDie(SyncPolicy::kNone);
  ASSERT_NE(store, nullptr);
  ASSERT_OK_AND_ASSIGN(uint32_t coll, store->CreateCollection("c", "{}"));
  Batch b;
  b.PutMeta(coll, "a", MetaWithTitle("a"));
  b.PutMeta(coll, "b", MetaWithTitle("b"));
  ASSERT_OK(store->Commit(std::move(b)));
  std::vector<std::string> seen;
  ASSERT_OK(store->ScanRecords(coll, [&](StoredRecord&& r) {
    seen.push_back(Title(r));
    if (r.id == "a") {
      // Written during the scan: invisible to it.
      Batch w;
      w.PutMeta(coll, "b", MetaWithTitle("changed"));
      w.PutMeta(coll, "c", MetaWithTitle("c"));
      EXPECT_OK(store->Commit(std::move(w)));
    }
    return absl::OkStatus();
  }));
  EXPECT_THAT(seen, ElementsAre("a", "b"));
  EXPECT_EQ(ScanAll(*store, coll).size(), 3u);
}

TEST_F(StoreTest, GetRecordAbsentIsNullopt) {
  auto store = OpenOrDie();
  ASSERT_NE(store, nullptr);
  ASSERT_OK_AND_ASSIGN(uint32_t coll, store->CreateCollection("c", "{}"));
  Batch b;
  b.PutMeta(coll, "ab", MetaWithTitle("ab"));
  b.PutVector(coll, "ab", 1, std::vector<float>{1});
  ASSERT_OK(store->Commit(std::move(b)));
  for (const std::string id : {"a", "abc", "", "b"}) {
    ASSERT_OK_AND_ASSIGN(auto r, store->GetRecord(coll, id));
    EXPECT_FALSE(r.has_value()) << id;
  }
  ASSERT_OK_AND_ASSIGN(auto wrong_coll, store->GetRecord(coll + 1, "ab"));
  EXPECT_FALSE(wrong_coll.has_value());
  ASSERT_OK_AND_ASSIGN(auto r, store->GetRecord(coll, "ab"));
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->vectors.size(), 1u);
}

TEST_F(StoreTest, VectorsWithoutMetaAreDataLoss) {
  auto store = OpenOrDie();
  ASSERT_NE(store, nullptr);
  ASSERT_OK_AND_ASSIGN(uint32_t coll, store->CreateCollection("c", "{}"));
  Batch b;
  b.PutMeta(coll, "b", MetaWithTitle("b"));
  b.PutVector(coll, "b", 0, std::vector<float>{1});
  b.PutVector(coll, "a", 4, std::vector<float>{1});  // orphan, before the first record.
  ASSERT_OK(store->Commit(std::move(b)));
  EXPECT_STATUS_IS(store->ScanRecords(coll, [](StoredRecord&&) { return absl::OkStatus(); }),
                   absl::StatusCode::kDataLoss, "record 'a' of collection 1");
  EXPECT_STATUS_IS(store->GetRecord(coll, "a"), absl::StatusCode::kDataLoss,
                   "has vectors but no metadata entry");

  Batch fix;
  fix.DeleteVector(coll, "a", 4);
  fix.PutVector(coll, "zzz", 1, std::vector<float>{1});  // orphan, after the last record.
  ASSERT_OK(store->Commit(std::move(fix)));
  int calls = 0;
  EXPECT_STATUS_IS(store->ScanRecords(coll,
                                      [&](StoredRecord&&) {
                                        ++calls;
                                        return absl::OkStatus();
                                      }),
                   absl::StatusCode::kDataLoss, "record 'zzz' of collection 1 in '" + db_path());
  EXPECT_EQ(calls, 1);  // "b" was delivered before the orphan was found.
}

TEST_F(StoreTest, DamagedValuesOnDiskAreDataLoss) {
  uint32_t coll = 0;
  {
    auto store = OpenOrDie();
    ASSERT_NE(store, nullptr);
    ASSERT_OK_AND_ASSIGN(coll, store->CreateCollection("c", "{}"));
    Batch b;
    b.PutMeta(coll, "ok", MetaWithTitle("ok"));
    ASSERT_OK(store->Commit(std::move(b)));
  }
  ASSERT_OK(test_hooks::PutRaw(db_path(), "records", internal::RecordKey(coll, "bad"),
                               std::string("\x01\x05", 2)));
  ASSERT_OK(test_hooks::PutRaw(db_path(), "vectors", internal::VectorKey(coll, "ok", 1),
                               std::string("\x01\x00\x00", 3)));
  auto store = OpenOrDie();
  ASSERT_NE(store, nullptr);
  EXPECT_STATUS_IS(store->GetRecord(coll, "bad"), absl::StatusCode::kDataLoss,
                   "record 'bad' in '" + db_path() + "': record metadata is");
  EXPECT_STATUS_IS(store->GetRecord(coll, "ok"), absl::StatusCode::kDataLoss,
                   "record 'ok' field 1");
  // "ok" (2 bytes) sorts before "bad" (3 bytes): the scan stops at its damaged vector.
  EXPECT_STATUS_IS(store->ScanRecords(coll, [](StoredRecord&&) { return absl::OkStatus(); }),
                   absl::StatusCode::kDataLoss, "record 'ok' field 1");
}

// --- open errors ---------------------------------------------------------------------------------

TEST_F(StoreTest, SecondOpenInTheSameProcessIsFailedPrecondition) {
  auto store = OpenOrDie();
  ASSERT_NE(store, nullptr);
  auto second = Store::Open(db_path(), StoreOptions());
  EXPECT_STATUS_IS(second, absl::StatusCode::kFailedPrecondition, db_path());
  EXPECT_STATUS_IS(second, absl::StatusCode::kFailedPrecondition, "already open");
  store.reset();
  EXPECT_NE(OpenOrDie(), nullptr);  // the lock went with the first store.
}

// --- child processes -----------------------------------------------------------------------------
//
// Some tests need a second process. They re-run this binary on one DISABLED_ helper test (so the
// helpers never run on their own), passing parameters through the environment.

constexpr const char* kChildPathEnv = "ROSETTA_STORE_CHILD_PATH";
constexpr int kAckFd = 3;  // the crash writer reports acknowledged batches on this descriptor.

// Spawns this binary running `test` with kChildPathEnv=path; if ack_pipe_write >= 0 it becomes
// the child's descriptor kAckFd. Returns the child's pid, or -1.
pid_t SpawnChild(const std::string& test, const std::string& path, int ack_pipe_write = -1) {
  const std::string exe = std::filesystem::read_symlink("/proc/self/exe").string();
  std::vector<std::string> env_strings;
  for (char** e = environ; *e != nullptr; ++e) env_strings.emplace_back(*e);
  env_strings.push_back(absl::StrCat(kChildPathEnv, "=", path));
  std::vector<char*> envp;
  for (auto& e : env_strings) envp.push_back(e.data());
  envp.push_back(nullptr);
  std::string a0 = exe, a1 = "--gtest_filter=" + test, a2 = "--gtest_also_run_disabled_tests";
  char* argv[] = {a0.data(), a1.data(), a2.data(), nullptr};
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  if (ack_pipe_write >= 0) posix_spawn_file_actions_adddup2(&actions, ack_pipe_write, kAckFd);
  pid_t pid = -1;
  const int rc = posix_spawn(&pid, exe.c_str(), &actions, nullptr, argv, envp.data());
  posix_spawn_file_actions_destroy(&actions);
  return rc == 0 ? pid : -1;
}

// Exit code 3: Open failed with FailedPrecondition naming the path.
TEST(StoreChild, DISABLED_TryOpen) {
  const char* path = std::getenv(kChildPathEnv);
  if (path == nullptr) GTEST_SKIP() << "helper for SecondOpenInAnotherProcessIsFailedPrecondition";
  auto s = Store::Open(path, StoreOptions());
  int code = 4;
  if (s.ok()) {
    code = 0;
  } else if (s.status().code() == absl::StatusCode::kFailedPrecondition &&
             absl::StrContains(s.status().message(), path)) {
    code = 3;
  } else {
    std::fprintf(stderr, "child open: %s\n", s.status().ToString().c_str());
  }
  std::fflush(stderr);
  std::_Exit(code);
}

TEST_F(StoreTest, SecondOpenInAnotherProcessIsFailedPrecondition) {
  auto store = OpenOrDie();
  ASSERT_NE(store, nullptr);
  const pid_t pid = SpawnChild("StoreChild.DISABLED_TryOpen", db_path());
  ASSERT_GT(pid, 0);
  int wstatus = 0;
  ASSERT_EQ(waitpid(pid, &wstatus, 0), pid);
  ASSERT_TRUE(WIFEXITED(wstatus));
  EXPECT_EQ(WEXITSTATUS(wstatus), 3) << "0: child opened a locked database; 4: wrong error";
}

constexpr int kCrashBatchRecords = 40;

// Commits batches 0, 1, 2, ... of kCrashBatchRecords records each (sync: none) and writes each
// acknowledged batch number to kAckFd, until killed.
TEST(StoreChild, DISABLED_CrashWriter) {
  const char* path = std::getenv(kChildPathEnv);
  if (path == nullptr) GTEST_SKIP() << "helper for ABatchIsAllOrNothingWhenTheWriterIsKilled";
  StoreOptions o;
  o.sync = SyncPolicy::kNone;
  auto store = Store::Open(path, o);
  if (!store.ok()) std::_Exit(5);
  auto coll = (*store)->CreateCollection("c", "{}");
  if (!coll.ok()) std::_Exit(6);
  const std::vector<float> v = testing::RandomVectors(1, 256, 1);
  for (int batch = 0;; ++batch) {
    Batch b;
    for (int j = 0; j < kCrashBatchRecords; ++j) {
      const std::string id = absl::StrCat("b", batch, "-", j);
      b.PutMeta(*coll, id, MetaWithTitle(absl::StrCat(batch)));
      b.PutVector(*coll, id, 0, v);
    }
    if (!(*store)->Commit(std::move(b)).ok()) std::_Exit(7);
    const std::string ack = absl::StrCat(batch, "\n");
    if (write(kAckFd, ack.data(), ack.size()) != static_cast<ssize_t>(ack.size())) std::_Exit(8);
  }
}

TEST_F(StoreTest, ABatchIsAllOrNothingWhenTheWriterIsKilled) {
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  const pid_t pid = SpawnChild("StoreChild.DISABLED_CrashWriter", db_path(), fds[1]);
  close(fds[1]);
  ASSERT_GT(pid, 0);
  // Read acknowledgements until a few batches are in, then kill the writer mid-stream.
  int last_acked = -1;
  std::string buf;
  char chunk[256];
  while (last_acked < 20) {
    const ssize_t n = read(fds[0], chunk, sizeof(chunk));
    if (n <= 0) break;
    buf.append(chunk, n);
    size_t nl;
    while ((nl = buf.find('\n')) != std::string::npos) {
      last_acked = std::stoi(buf.substr(0, nl));
      buf.erase(0, nl + 1);
    }
  }
  kill(pid, SIGKILL);
  int wstatus = 0;
  ASSERT_EQ(waitpid(pid, &wstatus, 0), pid);
  close(fds[0]);
  ASSERT_TRUE(WIFSIGNALED(wstatus))
      << "the writer exited by itself with code " << WEXITSTATUS(wstatus);
  ASSERT_GE(last_acked, 20);

  auto store = OpenOrDie();
  ASSERT_NE(store, nullptr);
  ASSERT_OK_AND_ASSIGN(auto list, store->ListCollections());
  ASSERT_EQ(list.size(), 1u);
  std::map<int, int> per_batch;  // batch -> records present.
  ASSERT_OK(store->ScanRecords(list[0].id, [&](StoredRecord&& r) {
    const int batch = std::stoi(Title(r));
    EXPECT_EQ(r.vectors.size(), 1u) << r.id;
    ++per_batch[batch];
    return absl::OkStatus();
  }));
  // Every acknowledged batch survived the kill (the WAL was written before Commit returned)...
  for (int b = 0; b <= last_acked; ++b) EXPECT_EQ(per_batch[b], kCrashBatchRecords) << b;
  // ...and every batch present is whole, with no gaps (one sequential writer).
  int expected_next = 0;
  for (const auto& [batch, count] : per_batch) {
    EXPECT_EQ(batch, expected_next);
    EXPECT_EQ(count, kCrashBatchRecords) << "batch " << batch << " is partial";
    expected_next = batch + 1;
  }
}

TEST_F(StoreTest, NonDatabaseDirectoryIsInvalidArgument) {
  std::filesystem::create_directories(db_path());
  std::ofstream(db_path() + "/notes.txt") << "not a database";
  EXPECT_STATUS_IS(Store::Open(db_path(), StoreOptions()), absl::StatusCode::kInvalidArgument,
                   "'" + db_path() + "' is not a Rosetta database");
  // Nothing was written into it.
  int entries = 0;
  for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator(db_path())) ++entries;
  EXPECT_EQ(entries, 1);

  const std::string file = (dir_.path() / "plain-file").string();
  std::ofstream(file) << "x";
  EXPECT_STATUS_IS(Store::Open(file, StoreOptions()), absl::StatusCode::kInvalidArgument,
                   "is not a directory");
}

TEST_F(StoreTest, ForeignRocksDbWithDataIsInvalidArgumentAndEmptyOneIsAdopted) {
  const std::string foreign = (dir_.path() / "foreign").string();
  ASSERT_OK(test_hooks::CreatePlainRocksDb(foreign, /*with_data=*/true));
  EXPECT_STATUS_IS(Store::Open(foreign, StoreOptions()), absl::StatusCode::kInvalidArgument,
                   "'" + foreign + "' is a RocksDB database but not a Rosetta database");

  const std::string empty = (dir_.path() / "empty-rocksdb").string();
  ASSERT_OK(test_hooks::CreatePlainRocksDb(empty, /*with_data=*/false));
  auto s = Store::Open(empty, StoreOptions());
  ASSERT_OK(s);
  EXPECT_OK((*s)->CreateCollection("c", "{}"));
}

TEST_F(StoreTest, MissingDirectoryWithoutCreateIsNotFound) {
  StoreOptions o;
  o.create_if_missing = false;
  EXPECT_STATUS_IS(Store::Open(db_path(), o), absl::StatusCode::kNotFound, db_path());
  EXPECT_FALSE(std::filesystem::exists(db_path()));
  std::filesystem::create_directories(db_path());
  EXPECT_STATUS_IS(Store::Open(db_path(), o), absl::StatusCode::kNotFound, "empty directory");
  EXPECT_STATUS_IS(Store::Open("", o), absl::StatusCode::kInvalidArgument, "empty");

  // Nested parents are created when allowed.
  const std::string nested = (dir_.path() / "x" / "y" / "db").string();
  auto s = Store::Open(nested, StoreOptions());
  EXPECT_OK(s);
}

TEST_F(StoreTest, UnknownFormatVersionIsRejected) {
  { ASSERT_NE(OpenOrDie(), nullptr); }
  ASSERT_OK(test_hooks::PutRaw(db_path(), "catalog", internal::kFormatVersionKey,
                               internal::EncodeU32(2)));
  EXPECT_STATUS_IS(Store::Open(db_path(), StoreOptions()), absl::StatusCode::kFailedPrecondition,
                   "format version 2; this build reads only version 1");
  // The failed open left nothing locked or half-open: a fixed marker opens again.
  ASSERT_OK(test_hooks::PutRaw(db_path(), "catalog", internal::kFormatVersionKey,
                               internal::EncodeU32(1)));
  EXPECT_NE(OpenOrDie(), nullptr);
}

TEST(SyncPolicyTest, Names) {
  EXPECT_STREQ(SyncPolicyName(SyncPolicy::kAlways), "always");
  EXPECT_STREQ(SyncPolicyName(SyncPolicy::kNone), "none");
}

}  // namespace
}  // namespace rosetta::storage
