// Readers search while writers upsert, replace and delete: every result is a consistent snapshot.
#include <atomic>
#include <map>
#include <random>
#include <set>
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

Record Rec(const std::string& id, std::mt19937_64& rng) {
  Record r;
  r.id = id;
  r.vectors["v"] = RandomVectors(1, kDim, rng());
  if (rng() % 2) r.vectors["w"] = RandomVectors(1, kDim, rng());
  r.attributes["kind"] = std::string(1, id[0]);
  return r;
}

TEST(ConcurrencyTest, ReadersSeeConsistentSnapshotsWhileWritersRun) {
  const uint64_t seed = TestSeed(31);
  SCOPED_TRACE(SeedTrace(seed));
  TempDir dir;
  DatabaseOptions options = TestOptions();
  options.search_threads = 2;
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<Database> db, Database::Open(dir.str() + "/db", options));
  CollectionSchema s;
  s.name = "c";
  AddSpace(s, MakeSpace("e", kDim, Metric::kCosine));
  AddField(s, MakeField("v", "e", "text"));
  AddField(s, MakeField("w", "e", "image"));
  s.attributes["kind"] = AttributeType::kString;
  ASSERT_OK(db->CreateCollection(s));

  // d*: deleted one by one; r*: replaced in whole batches; s*: never touched; u*: added.
  constexpr int kDeleted = 300, kReplaced = 40, kStatic = 300, kAdded = 300, kRounds = 40;
  std::mt19937_64 rng(seed);
  std::vector<Record> initial;
  for (int i = 0; i < kDeleted; ++i) initial.push_back(Rec("d" + std::to_string(i), rng));
  for (int i = 0; i < kReplaced; ++i) initial.push_back(Rec("r" + std::to_string(i), rng));
  for (int i = 0; i < kStatic; ++i) initial.push_back(Rec("s" + std::to_string(i), rng));
  ASSERT_OK(db->Upsert("c", initial).status());

  std::atomic<int> deleted_upto{0}, added_upto{0}, writers_left{3};
  std::atomic<int> searches{0};
  std::vector<std::thread> threads;
  threads.emplace_back([&] {
    for (int i = 0; i < kDeleted; ++i) {
      auto w = db->Delete("c", {"d" + std::to_string(i)});
      EXPECT_TRUE(w.ok() && w->written == 1) << w.status();
      deleted_upto.store(i + 1, std::memory_order_release);
    }
    --writers_left;
  });
  threads.emplace_back([&] {
    std::mt19937_64 r(seed + 1);
    for (int i = 0; i < kAdded; ++i) {
      EXPECT_OK(db->Upsert("c", {Rec("u" + std::to_string(i), r)}).status());
      added_upto.store(i + 1, std::memory_order_release);
    }
    --writers_left;
  });
  threads.emplace_back([&] {
    std::mt19937_64 r(seed + 2);
    for (int round = 0; round < kRounds; ++round) {
      std::vector<Record> batch;
      for (int i = 0; i < kReplaced; ++i) batch.push_back(Rec("r" + std::to_string(i), r));
      EXPECT_OK(db->Upsert("c", batch).status());
      // An import that creates a new version of every r* (other fields carried over).
      const std::vector<float> data = RandomVectors(kReplaced, kDim, r());
      ImportOptions opt;
      opt.id_prefix = "r";
      EXPECT_OK(db->ImportVectors("c", "v", data, kReplaced, kDim, opt).status());
    }
    --writers_left;
  });
  for (int t = 0; t < 2; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937_64 r(seed + 10 + t);
      do {
        const int deleted = deleted_upto.load(std::memory_order_acquire);
        const int added = added_upto.load(std::memory_order_acquire);
        SearchRequest req;
        req.k = 10000;
        QueryInput in;
        in.vector = RandomVectors(1, kDim, r());
        in.space = "e";
        req.inputs.push_back(in);
        req.fusion = (r() & 1) ? Fusion::kWeighted : Fusion::kRrf;
        auto res = db->Search("c", req);
        ASSERT_TRUE(res.ok()) << res.status();
        std::map<std::string, int> seen;
        for (size_t i = 0; i < res->results.size(); ++i) {
          const Hit& h = res->results[i];
          ++seen[h.id];
          if (i > 0) {
            const Hit& p = res->results[i - 1];
            ASSERT_TRUE(p.score > h.score || (p.score == h.score && p.id < h.id));
          }
          ASSERT_EQ(std::get<std::string>(h.attributes.at("kind")), std::string(1, h.id[0]));
        }
        for (const auto& [id, n] : seen) ASSERT_EQ(n, 1) << "duplicate " << id;
        // Deletes that completed before the search are invisible; adds that completed are visible.
        for (int i = 0; i < deleted; ++i) ASSERT_FALSE(seen.count("d" + std::to_string(i))) << i;
        for (int i = 0; i < added; ++i) ASSERT_TRUE(seen.count("u" + std::to_string(i))) << i;
        for (int i = 0; i < kReplaced; ++i) ASSERT_TRUE(seen.count("r" + std::to_string(i))) << i;
        for (int i = 0; i < kStatic; ++i) ASSERT_TRUE(seen.count("s" + std::to_string(i))) << i;
        ++searches;
      } while (writers_left.load() > 0);
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_GT(searches.load(), 2);

  // The final state, in memory and after a reopen.
  for (int pass = 0; pass < 2; ++pass) {
    ASSERT_OK_AND_ASSIGN(CollectionInfo info, db->Describe("c"));
    EXPECT_EQ(info.records, kReplaced + kStatic + kAdded);
    EXPECT_EQ(info.field_vectors.at("v"), kReplaced + kStatic + kAdded);
    if (pass == 0) {
      db.reset();
      ASSERT_OK_AND_ASSIGN(db, Database::Open(dir.str() + "/db", options));
    }
  }
}

}  // namespace
}  // namespace rosetta::engine
