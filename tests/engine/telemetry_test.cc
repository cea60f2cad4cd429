// Latency histograms (bucket layout, percentiles, concurrency) and Database::Stats.
#include "engine/telemetry.h"

#include <chrono>
#include <random>
#include <thread>
#include <vector>

#include "engine/database.h"
#include "tests/engine/engine_test_util.h"
#include "tests/testing/testing.h"

namespace rosetta::engine {
namespace {

using ::rosetta::testing::SeedTrace;
using ::rosetta::testing::TempDir;
using ::rosetta::testing::TestSeed;
using namespace ::rosetta::engine::testing;  // NOLINT
using std::chrono::microseconds;
using std::chrono::nanoseconds;

TEST(LatencyHistogramTest, BucketsTileTheRangeWithinOneSixteenth) {
  const uint64_t seed = TestSeed(5);
  SCOPED_TRACE(SeedTrace(seed));
  // Consecutive buckets are contiguous.
  for (size_t b = 0; b + 1 < LatencyHistogram::kBuckets; ++b) {
    ASSERT_EQ(LatencyHistogram::BucketHigh(b), LatencyHistogram::BucketLow(b + 1)) << b;
  }
  EXPECT_EQ(LatencyHistogram::BucketOf(0), 0u);
  EXPECT_EQ(LatencyHistogram::BucketOf(~uint64_t{0}), LatencyHistogram::kBuckets - 1);
  std::mt19937_64 rng(seed);
  for (int i = 0; i < 100000; ++i) {
    const uint64_t v = rng() >> (rng() % 64);
    const size_t b = LatencyHistogram::BucketOf(v);
    ASSERT_LT(b, LatencyHistogram::kBuckets);
    ASSERT_LE(LatencyHistogram::BucketLow(b), v) << v;
    if (b + 1 < LatencyHistogram::kBuckets) ASSERT_LT(v, LatencyHistogram::BucketHigh(b)) << v;
    const double width = static_cast<double>(LatencyHistogram::BucketHigh(b) -
                                             LatencyHistogram::BucketLow(b));
    if (v >= 16) ASSERT_LE(width / static_cast<double>(v), 1.0 / 16) << v;
  }
}

TEST(LatencyHistogramTest, PercentilesOfAKnownDistribution) {
  LatencyHistogram h;
  LatencyStats empty = h.Summary("nothing");
  EXPECT_EQ(empty.operation, "nothing");
  EXPECT_EQ(empty.count, 0);
  EXPECT_EQ(empty.p99_us, 0);
  // 1, 2, ..., 1000 µs, in a shuffled order; 10 of them failed.
  std::vector<int> us(1000);
  for (int i = 0; i < 1000; ++i) us[i] = i + 1;
  std::shuffle(us.begin(), us.end(), std::mt19937(3));
  for (int i = 0; i < 1000; ++i) h.Record(microseconds(us[i]), i < 10);
  h.Record(nanoseconds(-5));  // clamped to 0.
  const LatencyStats s = h.Summary("op");
  EXPECT_EQ(s.count, 1001);
  EXPECT_EQ(s.errors, 10);
  EXPECT_NEAR(s.mean_us, 500500.0 / 1001, 1e-6);
  EXPECT_EQ(s.max_us, 1000);
  EXPECT_NEAR(s.p50_us, 500, 500 / 16.0);
  EXPECT_NEAR(s.p90_us, 900, 900 / 16.0);
  EXPECT_NEAR(s.p99_us, 990, 990 / 16.0);
  EXPECT_LE(s.p99_us, s.max_us);
}

TEST(LatencyHistogramTest, ConcurrentRecordersLoseNothing) {
  LatencyHistogram h;
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 20000; ++i) h.Record(nanoseconds(1 + (i * 7919 + t) % 100000), i % 100 == 0);
    });
  }
  for (auto& th : threads) th.join();
  const LatencyStats s = h.Summary("op");
  EXPECT_EQ(s.count, 80000);
  EXPECT_EQ(s.errors, 800);
}

TEST(DatabaseStatsTest, CountsOperationsErrorsAndCommits) {
  TempDir dir;
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<Database> db,
                       Database::Open(dir.str() + "/db", TestOptions()));
  CollectionSchema s;
  s.name = "c";
  AddSpace(s, MakeSpace("e", 4, Metric::kCosine));
  AddField(s, MakeField("v", "e", "text"));
  ASSERT_OK(db->CreateCollection(s));
  Record a;
  a.id = "a";
  a.vectors["v"] = {1, 0, 0, 0};
  Record b = a;
  b.id = "b";
  ASSERT_OK(db->Upsert("c", {a}).status());
  ASSERT_OK(db->Upsert("c", {b}).status());
  Record bad = a;
  bad.vectors["v"] = {1, 0, 0};  // wrong dim.
  EXPECT_FALSE(db->Upsert("c", {bad}).ok());
  SearchRequest req;
  QueryInput in;
  in.vector = {1, 0, 0, 0};
  in.space = "e";
  req.inputs.push_back(in);
  ASSERT_OK(db->Search("c", req).status());
  ASSERT_OK(db->Search("c", req).status());
  ASSERT_OK(db->Delete("c", {"a"}).status());
  EXPECT_FALSE(db->Search("nope", req).ok());

  const DatabaseStats st = db->Stats();
  EXPECT_EQ(st.collections, 1);
  EXPECT_EQ(st.records, 1);
  EXPECT_GE(st.uptime_s, 0);
  std::map<std::string, LatencyStats> by_name;
  std::vector<std::string> order;
  for (const LatencyStats& l : st.operations) {
    by_name[l.operation] = l;
    order.push_back(l.operation);
  }
  EXPECT_EQ(order, (std::vector<std::string>{"search", "search_batch", "upsert", "import", "get",
                                             "delete"}));
  EXPECT_EQ(by_name["upsert"].count, 3);
  EXPECT_EQ(by_name["upsert"].errors, 1);
  EXPECT_EQ(by_name["search"].count, 3);
  EXPECT_EQ(by_name["search"].errors, 1);
  EXPECT_EQ(by_name["delete"].count, 1);
  EXPECT_EQ(by_name["import"].count, 0);
  EXPECT_GT(by_name["upsert"].max_us, 0);
  // Two upserts and a delete, each its own durable batch (calibration rides along).
  EXPECT_EQ(st.commit_batches, 3);
  EXPECT_GE(st.commit_groups, 1);
  EXPECT_LE(st.commit_groups, st.commit_batches);
  // No server in embedded mode.
  EXPECT_TRUE(st.requests.empty());
  EXPECT_EQ(st.connections_accepted, 0);
}

}  // namespace
}  // namespace rosetta::engine
