// The exhaustive search ranks single-field queries without record weights on a fast path (one
// inline affine map instead of FuseRow) while the reported scores come from FuseRow: the order
// must be exactly (reported score desc, id asc), and every top-k must be the prefix of the full
// ranking, for every normalisation, missing policy, fusion and metric, with tied vectors.
#include <algorithm>
#include <random>
#include <string>
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

TEST(SingleFieldRankingTest, OrderIsReportedScoreThenIdAndTopKIsAPrefix) {
  const uint64_t seed = TestSeed(31);
  SCOPED_TRACE(SeedTrace(seed));
  constexpr int kDim = 8;
  constexpr int kN = 700;
  for (Metric metric : {Metric::kCosine, Metric::kIp, Metric::kL2}) {
    SCOPED_TRACE(::testing::Message() << "metric " << static_cast<int>(metric));
    TempDir dir;
    ASSERT_OK_AND_ASSIGN(std::unique_ptr<Database> db, Database::Open(dir.str() + "/db", TestOptions()));
    CollectionSchema schema;
    schema.name = "c";
    AddSpace(schema, MakeSpace("e", kDim, metric));
    AddField(schema, MakeField("v", "e", "image", 0.6f));
    AddField(schema, MakeField("w", "e", "text", 0.4f));
    ASSERT_OK(db->CreateCollection(schema));
    std::mt19937_64 rng(seed);
    std::uniform_int_distribution<int> small(-2, 2);  // few distinct values: many exact ties.
    std::vector<Record> records;
    for (int i = 0; i < kN; ++i) {
      Record r;
      r.id = "r" + std::to_string((i * 7919) % kN);  // ids not in insertion order.
      std::vector<float> v(kDim);
      for (float& x : v) x = static_cast<float>(small(rng));
      if (metric != Metric::kL2 && std::all_of(v.begin(), v.end(), [](float x) { return x == 0; })) {
        v[0] = 1;
      }
      if (i % 5 != 0) r.vectors["v"] = v;
      r.vectors["w"] = v;
      records.push_back(std::move(r));
    }
    ASSERT_OK(db->Upsert("c", records).status());
    std::vector<float> q(kDim);
    for (float& x : q) x = static_cast<float>(small(rng)) + 0.5f;
    for (Normalize norm : {Normalize::kNone, Normalize::kMinMax, Normalize::kZScore,
                           Normalize::kCalibrated}) {
      for (Missing missing : {Missing::kRenormalize, Missing::kZero, Missing::kRequire}) {
        for (Fusion fusion : {Fusion::kWeighted, Fusion::kMax}) {
          SCOPED_TRACE(::testing::Message() << "normalize " << static_cast<int>(norm) << " missing "
                                            << static_cast<int>(missing) << " fusion "
                                            << static_cast<int>(fusion));
          SearchRequest req;
          QueryInput in;
          in.vector = q;
          in.space = "e";
          in.fields = {"v"};
          req.inputs.push_back(in);
          req.normalize = norm;
          req.missing = missing;
          req.fusion = fusion;
          req.exact = true;
          req.with_attributes = false;
          req.k = kN;
          ASSERT_OK_AND_ASSIGN(SearchResponse all, db->Search("c", req));
          ASSERT_EQ(all.results.size(), static_cast<size_t>(kN - kN / 5));  // records with v.
          for (size_t i = 1; i < all.results.size(); ++i) {
            const Hit& a = all.results[i - 1];
            const Hit& b = all.results[i];
            ASSERT_TRUE(a.score > b.score || (a.score == b.score && a.id < b.id))
                << "position " << i << ": " << a.id << " " << a.score << " before " << b.id << " "
                << b.score;
          }
          for (int k : {1, 10, 37}) {
            req.k = k;
            ASSERT_OK_AND_ASSIGN(SearchResponse top, db->Search("c", req));
            ASSERT_EQ(top.results.size(), static_cast<size_t>(k));
            for (int i = 0; i < k; ++i) {
              EXPECT_EQ(top.results[i].id, all.results[i].id) << "k " << k << " position " << i;
              EXPECT_EQ(top.results[i].score, all.results[i].score);
            }
          }
        }
      }
    }
  }
}

}  // namespace
}  // namespace rosetta::engine
