// Writers of one collection share fsyncs (group commit) without changing what readers see: the
// in-memory state published after concurrent writes equals the state rebuilt from RocksDB, a
// write is invisible until durable, a failed commit publishes nothing and makes the database
// read-only, and DropCollection waits for writes already enqueued.
#include <atomic>
#include <chrono>
#include <map>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "engine/database.h"
#include "tests/engine/engine_test_util.h"
#include "tests/testing/testing.h"

namespace rosetta::engine {
namespace {

using ::rosetta::testing::RandomVectors;
using ::rosetta::testing::SeedTrace;
using ::rosetta::testing::TempDir;
using ::rosetta::testing::TestSeed;
using namespace ::rosetta::engine::testing;  // NOLINT

constexpr int kDim = 8;

CollectionSchema Schema() {
  CollectionSchema s;
  s.name = "c";
  AddSpace(s, MakeSpace("e", kDim, Metric::kCosine));
  AddField(s, MakeField("v", "e", "text"));
  AddField(s, MakeField("w", "e", "image"));
  s.attributes["writer"] = AttributeType::kInt;
  return s;
}

SearchRequest AllOf(std::vector<float> q) {
  SearchRequest req;
  req.k = 10000;
  QueryInput in;
  in.vector = std::move(q);
  in.space = "e";
  req.inputs.push_back(std::move(in));
  return req;
}

// Every hit as "id score-bits" lines plus the per-record attribute, in rank order.
std::vector<std::string> Fingerprint(const SearchResponse& r) {
  std::vector<std::string> out;
  for (const Hit& h : r.results) {
    uint32_t bits;
    std::memcpy(&bits, &h.score, 4);
    std::string line = h.id + " " + std::to_string(bits);
    auto it = h.attributes.find("writer");
    if (it != h.attributes.end()) line += " w" + std::to_string(std::get<int64_t>(it->second));
    out.push_back(line);
  }
  return out;
}

TEST(GroupCommitTest, ConcurrentWritersLeaveMemoryEqualToStorage) {
  const uint64_t seed = TestSeed(77);
  SCOPED_TRACE(SeedTrace(seed));
  TempDir dir;
  DatabaseOptions options = TestOptions();
  options.store.sync = storage::SyncPolicy::kAlways;  // make the fsyncs worth sharing.
  const std::string path = dir.str() + "/db";
  std::vector<std::vector<std::string>> before;
  std::vector<std::vector<float>> queries;
  {
    ASSERT_OK_AND_ASSIGN(std::unique_ptr<Database> db, Database::Open(path, options));
    ASSERT_OK(db->CreateCollection(Schema()));
    // 6 writers race on 30 shared ids with upserts, field imports and deletes.
    constexpr int kWriters = 6, kOps = 60, kIds = 30;
    std::atomic<int> failures{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < kWriters; ++t) {
      threads.emplace_back([&, t] {
        std::mt19937_64 rng(seed + t);
        for (int op = 0; op < kOps; ++op) {
          const std::string id = "id" + std::to_string(rng() % kIds);
          absl::Status s;
          switch (rng() % 3) {
            case 0: {
              Record r;
              r.id = id;
              r.vectors["v"] = RandomVectors(1, kDim, rng());
              if (rng() & 1) r.vectors["w"] = RandomVectors(1, kDim, rng());
              r.attributes["writer"] = int64_t{t * 1000 + op};
              s = db->Upsert("c", {r}).status();
              break;
            }
            case 1: {
              ImportOptions io;
              io.id_prefix = "id";
              io.id_offset = static_cast<int64_t>(rng() % kIds);
              std::vector<float> v = RandomVectors(1, kDim, rng());
              s = db->ImportVectors("c", "w", v, 1, kDim, io).status();
              break;
            }
            default:
              s = db->Delete("c", {id}).status();
          }
          if (!s.ok()) {
            ADD_FAILURE() << s;
            ++failures;
          }
        }
      });
    }
    for (auto& th : threads) th.join();
    ASSERT_EQ(failures.load(), 0);
    std::mt19937_64 rng(seed);
    for (int i = 0; i < 5; ++i) queries.push_back(RandomVectors(1, kDim, rng()));
    for (const auto& q : queries) {
      ASSERT_OK_AND_ASSIGN(SearchResponse r, db->Search("c", AllOf(q)));
      before.push_back(Fingerprint(r));
    }
    ASSERT_FALSE(before[0].empty());
  }
  // The state rebuilt from RocksDB alone is the one that was published.
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<Database> db, Database::Open(path, options));
  for (size_t i = 0; i < queries.size(); ++i) {
    ASSERT_OK_AND_ASSIGN(SearchResponse r, db->Search("c", AllOf(queries[i])));
    EXPECT_EQ(Fingerprint(r), before[i]) << "query " << i;
  }
}

TEST(GroupCommitTest, AWriteIsInvisibleUntilDurable) {
  TempDir dir;
  DatabaseOptions options = TestOptions();
  Database* raw = nullptr;
  std::atomic<bool> armed{false};
  std::atomic<int> checks{0};
  // Runs in the committing thread just before the storage write: the record must be invisible to
  // searches and point reads until then.
  options.store.commit_fault_for_testing = [&]() -> absl::Status {
    if (!armed.load()) return absl::OkStatus();
    auto got = raw->Get("c", {"new"}, false);
    EXPECT_TRUE(got.ok() && got->records.empty()) << "Get saw an undurable write";
    auto res = raw->Search("c", AllOf(std::vector<float>(kDim, 1.0f)));
    EXPECT_TRUE(res.ok());
    if (res.ok()) {
      for (const Hit& h : res->results) EXPECT_NE(h.id, "new") << "Search saw an undurable write";
      EXPECT_EQ(res->results.size(), 1u);
    }
    ++checks;
    return absl::OkStatus();
  };
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<Database> db, Database::Open(dir.str() + "/db", options));
  raw = db.get();
  ASSERT_OK(db->CreateCollection(Schema()));
  Record old;
  old.id = "old";
  old.vectors["v"] = std::vector<float>(kDim, 1.0f);
  ASSERT_OK(db->Upsert("c", {old}).status());
  armed = true;
  Record rec;
  rec.id = "new";
  rec.vectors["v"] = std::vector<float>(kDim, 1.0f);
  ASSERT_OK(db->Upsert("c", {rec}).status());
  EXPECT_EQ(checks.load(), 1);
  armed = false;
  // Acknowledged: visible at once to the writer.
  ASSERT_OK_AND_ASSIGN(SearchResponse r, db->Search("c", AllOf(std::vector<float>(kDim, 1.0f))));
  EXPECT_EQ(r.results.size(), 2u);
}

TEST(GroupCommitTest, AFailedCommitPublishesNothingAndMakesTheDatabaseReadOnly) {
  TempDir dir;
  const std::string path = dir.str() + "/db";
  std::atomic<bool> fail{false};
  DatabaseOptions options = TestOptions();
  options.store.commit_fault_for_testing = [&]() -> absl::Status {
    return fail.load() ? absl::UnavailableError("injected: fsync failed") : absl::OkStatus();
  };
  {
    ASSERT_OK_AND_ASSIGN(std::unique_ptr<Database> db, Database::Open(path, options));
    ASSERT_OK(db->CreateCollection(Schema()));
    Record keep;
    keep.id = "keep";
    keep.vectors["v"] = std::vector<float>(kDim, 1.0f);
    ASSERT_OK(db->Upsert("c", {keep}).status());

    fail = true;
    Record lost = keep;
    lost.id = "lost";
    EXPECT_STATUS(db->Upsert("c", {lost}).status(), absl::StatusCode::kUnavailable,
                  "injected: fsync failed");
    EXPECT_STATUS(db->Delete("c", {"keep"}).status(), absl::StatusCode::kFailedPrecondition,
                  "read-only after a failed write");
    std::vector<float> v(kDim, 0.5f);
    EXPECT_STATUS(db->ImportVectors("c", "w", v, 1, kDim, ImportOptions{}).status(),
                  absl::StatusCode::kFailedPrecondition, "read-only");
    // Readers see the last durable state.
    ASSERT_OK_AND_ASSIGN(SearchResponse r, db->Search("c", AllOf(std::vector<float>(kDim, 1.0f))));
    EXPECT_EQ(HitIds(r), std::vector<std::string>{"keep"});
    ASSERT_OK_AND_ASSIGN(CollectionInfo info, db->Describe("c"));
    EXPECT_EQ(info.records, 1);
    ASSERT_OK_AND_ASSIGN(GetResult got, db->Get("c", {"keep", "lost"}, false));
    EXPECT_EQ(got.records.size(), 1u);
  }
  fail = false;
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<Database> db, Database::Open(path, options));
  ASSERT_OK_AND_ASSIGN(SearchResponse r, db->Search("c", AllOf(std::vector<float>(kDim, 1.0f))));
  EXPECT_EQ(HitIds(r), std::vector<std::string>{"keep"});
  Record again;
  again.id = "again";
  again.vectors["v"] = std::vector<float>(kDim, 1.0f);
  ASSERT_OK(db->Upsert("c", {again}).status());
}

TEST(GroupCommitTest, DropWaitsForWritesAlreadyEnqueued) {
  TempDir dir;
  const std::string path = dir.str() + "/db";
  DatabaseOptions options = TestOptions();
  Database* raw = nullptr;
  std::atomic<bool> armed{false};
  std::atomic<bool> dropped{false};
  std::thread dropper;
  options.store.commit_fault_for_testing = [&]() -> absl::Status {
    if (!armed.exchange(false)) return absl::OkStatus();
    // The upsert is enqueued and being written: a concurrent drop must wait for it.
    dropper = std::thread([&] {
      EXPECT_OK(raw->DropCollection("c"));
      dropped = true;
    });
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    EXPECT_FALSE(dropped.load()) << "the drop did not wait for the enqueued write";
    return absl::OkStatus();
  };
  {
    ASSERT_OK_AND_ASSIGN(std::unique_ptr<Database> db, Database::Open(path, options));
    raw = db.get();
    ASSERT_OK(db->CreateCollection(Schema()));
    Record rec;
    rec.id = "r";
    rec.vectors["v"] = std::vector<float>(kDim, 1.0f);
    armed = true;
    ASSERT_OK(db->Upsert("c", {rec}).status());
    dropper.join();
    EXPECT_TRUE(dropped.load());
    EXPECT_STATUS(db->Describe("c").status(), absl::StatusCode::kNotFound, "not found");
    // Re-created empty: nothing of the old collection comes back.
    ASSERT_OK(db->CreateCollection(Schema()));
  }
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<Database> db, Database::Open(path, options));
  ASSERT_OK_AND_ASSIGN(CollectionInfo info, db->Describe("c"));
  EXPECT_EQ(info.records, 0);
}

}  // namespace
}  // namespace rosetta::engine
