// `rosetta eval`: the metric functions, synthetic checks against a brute-force oracle written in
// the test, and the recalls of the real data sets (skipped when ../shared/data is absent).
#include <algorithm>
#include <cstdint>
#include <fstream>
#include <numeric>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "schema/array_io.h"
#include "tests/testing/testing.h"
#include "tests/tools/cli_harness.h"
#include "tools/cli/eval.h"

namespace rosetta::testing {
namespace {

using ::testing::HasSubstr;
using J = nlohmann::ordered_json;  // keeps the key order of the output.
using rosetta::cli::PairRecall;
using rosetta::cli::Percentile;
using rosetta::cli::RowOfId;
using rosetta::cli::RowRecall;

J ParseOut(const CliRun& r) {
  try {
    return J::parse(r.out);
  } catch (const std::exception& e) {
    ADD_FAILURE() << "stdout is not one JSON document: " << e.what() << "\n" << Describe(r);
    return J::object();
  }
}

void WriteIvecs(const std::string& path, const std::vector<std::vector<int32_t>>& rows) {
  std::ofstream f(path, std::ios::binary);
  for (const auto& row : rows) {
    int32_t d = static_cast<int32_t>(row.size());
    f.write(reinterpret_cast<const char*>(&d), 4);
    f.write(reinterpret_cast<const char*>(row.data()), 4 * row.size());
  }
}

// ---- metrics ----------------------------------------------------------------------------------

TEST(EvalMetricsTest, PairRecall) {
  const std::vector<std::string> ids = {"p3", "p1", "p7"};
  EXPECT_EQ(PairRecall(ids, "p3", 1), 1.0);
  EXPECT_EQ(PairRecall(ids, "p1", 1), 0.0);
  EXPECT_EQ(PairRecall(ids, "p1", 2), 1.0);
  EXPECT_EQ(PairRecall(ids, "p7", 10), 1.0);
  EXPECT_EQ(PairRecall(ids, "p9", 10), 0.0);
  EXPECT_EQ(PairRecall({}, "p9", 10), 0.0);
}

TEST(EvalMetricsTest, RowOfId) {
  EXPECT_EQ(RowOfId("p17", "p"), 17);
  EXPECT_EQ(RowOfId("0", ""), 0);
  EXPECT_EQ(RowOfId("img_0", "img_"), 0);
  EXPECT_EQ(RowOfId("q17", "p"), std::nullopt);
  EXPECT_EQ(RowOfId("p", "p"), std::nullopt);
  EXPECT_EQ(RowOfId("p-1", "p"), std::nullopt);
  EXPECT_EQ(RowOfId("p+1", "p"), std::nullopt);
  EXPECT_EQ(RowOfId("p017", "p"), std::nullopt);
  EXPECT_EQ(RowOfId("p1x", "p"), std::nullopt);
  EXPECT_EQ(RowOfId("p99999999999999999999", "p"), std::nullopt);
}

TEST(EvalMetricsTest, RowRecall) {
  const std::vector<int64_t> truth = {4, 2, 9, 7, 1};
  // top-2 of the results {p2, p5} vs true top-2 {4, 2}: 1 / 2.
  EXPECT_DOUBLE_EQ(RowRecall({"p2", "p5", "p4"}, "p", truth, 2), 0.5);
  // top-3 {2, 5, 4} vs {4, 2, 9}: 2 / 3.
  EXPECT_DOUBLE_EQ(RowRecall({"p2", "p5", "p4"}, "p", truth, 3), 2.0 / 3.0);
  // Ids that do not parse are misses; duplicates count once.
  EXPECT_DOUBLE_EQ(RowRecall({"x4", "p2", "p2"}, "p", truth, 3), 1.0 / 3.0);
  // Fewer truth columns than k: the denominator is the truth's size.
  EXPECT_DOUBLE_EQ(RowRecall({"p9", "p0", "p4"}, "p", std::vector<int64_t>{4}, 10), 1.0);
  // Negative entries are padding.
  EXPECT_DOUBLE_EQ(RowRecall({"p4"}, "p", std::vector<int64_t>{4, -1}, 2), 1.0);
  EXPECT_DOUBLE_EQ(RowRecall({"p4"}, "p", std::vector<int64_t>{}, 2), 0.0);
}

TEST(EvalMetricsTest, Percentile) {
  std::vector<double> v(100);
  std::iota(v.begin(), v.end(), 1.0);  // 1..100
  std::reverse(v.begin(), v.end());
  EXPECT_EQ(Percentile(v, 50), 50.0);
  EXPECT_EQ(Percentile(v, 99), 99.0);
  EXPECT_EQ(Percentile(v, 100), 100.0);
  EXPECT_EQ(Percentile({7.0}, 99), 7.0);
  EXPECT_EQ(Percentile({3.0, 1.0, 2.0}, 50), 2.0);
  EXPECT_EQ(Percentile({}, 50), 0.0);
}

// ---- synthetic --------------------------------------------------------------------------------

class EvalTest : public ::testing::Test {
 protected:
  CliRun Run(std::vector<std::string> args, const std::string& stdin_text = "") {
    return RunOn(data_, std::move(args), stdin_text);
  }
  std::string Path(const std::string& name) const { return (tmp_.path() / name).string(); }
  void Create(const std::string& schema) {
    CliRun r = Run({"create-collection", "--schema", "-"}, schema);
    ASSERT_EQ(r.exit_code, 0) << Describe(r);
  }
  void Import(const std::string& collection, const std::string& field, const std::string& path,
              const std::string& prefix = "") {
    CliRun r = Run({"import", collection, "--field", field, "--vectors", path, "--id-prefix",
                    prefix});
    ASSERT_EQ(r.exit_code, 0) << Describe(r);
  }

  TempDir tmp_;
  std::string data_ = (tmp_.path() / "data").string();
};

TEST_F(EvalTest, SyntheticL2AgainstBruteForce) {
  const uint64_t seed = TestSeed(20260101);
  SCOPED_TRACE(SeedTrace(seed));
  const size_t n = 300, nq = 40, d = 8;
  Matrix<float> base{n, d, ClusteredVectors(n, d, 10, seed)};
  Matrix<float> queries{nq, d, RandomVectors(nq, d, seed + 1)};
  ASSERT_OK(WriteNpy(Path("base.npy"), base));
  ASSERT_OK(WriteNpy(Path("q.npy"), queries));
  Create(R"({"name": "syn", "spaces": {"e": {"dim": 8, "metric": "l2", "encoder": "syn@1"}},
             "fields": {"v": {"space": "e", "modality": "x"}}})");
  Import("syn", "v", Path("base.npy"), "b");

  // The oracle: exact l2 top-20 in double precision, written as .ivecs.
  std::vector<std::vector<int32_t>> truth(nq);
  for (size_t q = 0; q < nq; ++q) {
    std::vector<std::pair<double, int32_t>> dist;
    for (size_t i = 0; i < n; ++i) {
      double s = 0;
      for (size_t j = 0; j < d; ++j) {
        double diff = double(queries.row(q)[j]) - double(base.row(i)[j]);
        s += diff * diff;
      }
      dist.emplace_back(s, static_cast<int32_t>(i));
    }
    std::sort(dist.begin(), dist.end());
    for (size_t t = 0; t < 20; ++t) truth[q].push_back(dist[t].second);
  }
  WriteIvecs(Path("gt.ivecs"), truth);
  CliRun r = Run({"eval", "syn", "--queries", Path("q.npy"), "--space", "e", "--truth",
                  Path("gt.ivecs"), "--id-prefix", "b", "--k", "20"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  J j = ParseOut(r);
  EXPECT_EQ(j["queries"], nq);
  EXPECT_DOUBLE_EQ(j["recall@1"].get<double>(), 1.0);
  EXPECT_DOUBLE_EQ(j["recall@5"].get<double>(), 1.0);
  EXPECT_DOUBLE_EQ(j["recall@10"].get<double>(), 1.0);
  EXPECT_DOUBLE_EQ(j["recall@20"].get<double>(), 1.0);
  EXPECT_GT(j["qps"].get<double>(), 0.0);
  EXPECT_GT(j["latency_us"]["p99"].get<double>(), 0.0);
  EXPECT_GE(j["latency_us"]["p99"].get<double>(), j["latency_us"]["p50"].get<double>());
  std::vector<std::string> keys;
  for (auto it = j.begin(); it != j.end(); ++it) keys.push_back(it.key());
  EXPECT_EQ(keys.size(), 7u);

  // A wrong prefix maps no id back to a row: every recall is 0 (the metric can fail).
  CliRun wrong = Run({"eval", "syn", "--queries", Path("q.npy"), "--space", "e", "--truth",
                      Path("gt.ivecs"), "--id-prefix", "x"});
  ASSERT_EQ(wrong.exit_code, 0) << Describe(wrong);
  EXPECT_EQ(ParseOut(wrong)["recall@10"].get<double>(), 0.0);
  EXPECT_FALSE(ParseOut(wrong).contains("recall@20"));

  // The truth of query i+1 for query i: recall is what the oracle says it is.
  std::vector<std::vector<int32_t>> shifted(truth.begin() + 1, truth.end());
  shifted.push_back(truth[0]);
  WriteIvecs(Path("shifted.ivecs"), shifted);
  double expected = 0;
  for (size_t q = 0; q < nq; ++q) {
    std::vector<int32_t> a(truth[q].begin(), truth[q].begin() + 10);
    std::vector<int32_t> b(shifted[q].begin(), shifted[q].begin() + 10);
    std::sort(a.begin(), a.end());
    std::sort(b.begin(), b.end());
    std::vector<int32_t> both;
    std::set_intersection(a.begin(), a.end(), b.begin(), b.end(), std::back_inserter(both));
    expected += both.size() / 10.0;
  }
  expected /= nq;
  CliRun s = Run({"eval", "syn", "--queries", Path("q.npy"), "--space", "e", "--truth",
                  Path("shifted.ivecs"), "--id-prefix", "b"});
  ASSERT_EQ(s.exit_code, 0) << Describe(s);
  EXPECT_NEAR(ParseOut(s)["recall@10"].get<double>(), expected, 1e-12);
}

TEST_F(EvalTest, PairsAndQueryFile) {
  // Queries equal to the base rows: with pairs truth, each query's own record ranks first.
  const uint64_t seed = TestSeed(7);
  SCOPED_TRACE(SeedTrace(seed));
  Matrix<float> base{50, 6, RandomVectors(50, 6, seed)};
  ASSERT_OK(WriteNpy(Path("base.npy"), base));
  Create(R"({"name": "p", "spaces": {"e": {"dim": 6, "metric": "cosine", "encoder": "x@1"}},
             "fields": {"a": {"space": "e", "modality": "image"},
                        "b": {"space": "e", "modality": "text"}},
             "attributes": {"keep": "bool"}})");
  Import("p", "a", Path("base.npy"), "id");
  CliRun r = Run({"eval", "p", "--queries", Path("base.npy"), "--space", "e", "--modality",
                  "image", "--fields", "a", "--truth", "pairs", "--id-prefix", "id", "--k", "3"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  J j = ParseOut(r);
  EXPECT_EQ(j["recall@1"].get<double>(), 1.0);
  EXPECT_EQ(j["recall@3"].get<double>(), 1.0);
  std::vector<std::string> keys;
  for (auto it = j.begin(); it != j.end(); ++it) keys.push_back(it.key());
  EXPECT_EQ(keys, (std::vector<std::string>{"queries", "recall@1", "recall@3", "recall@5",
                                            "recall@10", "qps", "latency_us"}));

  // The query file's filter applies: no record has the attribute, so nothing is found.
  std::ofstream(Path("q.json")) << R"({"k": 7, "filter": {"attributes": {"keep": true}},
                                       "inputs": [{"vector": [1], "space": "ignored"}]})";
  CliRun f = Run({"eval", "p", "--queries", Path("base.npy"), "--space", "e", "--fields", "a",
                  "--truth", "pairs", "--id-prefix", "id", "--query-file", Path("q.json")});
  ASSERT_EQ(f.exit_code, 0) << Describe(f);
  J fj = ParseOut(f);
  EXPECT_EQ(fj["recall@10"].get<double>(), 0.0);
  EXPECT_TRUE(fj.contains("recall@7"));  // k from the query file.

  // Text output.
  CliRun t = RunOn(data_, {"eval", "p", "--queries", Path("base.npy"), "--space", "e", "--truth",
                           "pairs", "--id-prefix", "id"},
                   "", false);
  ASSERT_EQ(t.exit_code, 0) << Describe(t);
  EXPECT_THAT(t.out, ::testing::StartsWith("queries: 50\nrecall@1: 1\nrecall@5: 1\nrecall@10: 1\n"
                                           "qps: "));
  EXPECT_THAT(t.out, HasSubstr("\nlatency p50: "));
  EXPECT_THAT(t.out, HasSubstr("\nlatency p99: "));
}

TEST_F(EvalTest, Errors) {
  Matrix<float> base{4, 3, RandomVectors(4, 3, 1)};
  ASSERT_OK(WriteNpy(Path("base.npy"), base));
  Matrix<float> q2{4, 2, RandomVectors(4, 2, 2)};
  ASSERT_OK(WriteNpy(Path("q2.npy"), q2));
  Create(R"({"name": "e", "spaces": {"s": {"dim": 3, "metric": "ip", "encoder": "x@1"}},
             "fields": {"f": {"space": "s", "modality": "m"}}})");
  Import("e", "f", Path("base.npy"));
  auto expect_error = [](const CliRun& r, const std::string& code, const std::string& substr) {
    EXPECT_EQ(r.exit_code, 1) << Describe(r);
    EXPECT_EQ(r.out, "");
    EXPECT_THAT(r.err, ::testing::StartsWith(code.empty() ? "error: " : "error: " + code + ": "))
        << Describe(r);
    EXPECT_THAT(r.err, HasSubstr(substr)) << Describe(r);
  };
  expect_error(Run({"eval", "e", "--queries", Path("base.npy"), "--space", "t", "--truth",
                    "pairs"}),
               "NOT_FOUND", "no space \"t\"");
  expect_error(Run({"eval", "e", "--queries", Path("q2.npy"), "--space", "s", "--truth", "pairs"}),
               "INVALID_ARGUMENT", "rows have 2 components; space \"s\" expects 3");
  WriteIvecs(Path("gt3.ivecs"), {{0}, {1}, {2}});
  expect_error(Run({"eval", "e", "--queries", Path("base.npy"), "--space", "s", "--truth",
                    Path("gt3.ivecs")}),
               "INVALID_ARGUMENT", "3 rows for 4 queries");
  expect_error(Run({"eval", "e", "--queries", Path("base.npy"), "--space", "s", "--fields", "g",
                    "--truth", "pairs"}),
               "", "query: ");
  expect_error(Run({"eval", "nope", "--queries", Path("base.npy"), "--space", "s", "--truth",
                    "pairs"}),
               "NOT_FOUND", "nope");
}

// ---- real data --------------------------------------------------------------------------------

TEST_F(EvalTest, Flickr8kTextToImagePairs) {
  ROSETTA_REQUIRE_SHARED_DATA("flickr8k_tinyclip-vit40m_1k", dir);
  Create(R"({"name": "flickr",
             "spaces": {"clip": {"dim": 512, "metric": "cosine",
                                 "encoder": "tinyclip-vit40m-32@laion400m"}},
             "fields": {"image": {"space": "clip", "modality": "image", "weight": 0.6},
                        "caption": {"space": "clip", "modality": "text", "weight": 0.4}}})");
  Import("flickr", "image", dir + "/image_emb.npy", "p");
  CliRun r = Run({"eval", "flickr", "--queries", dir + "/text_emb.npy", "--space", "clip",
                  "--modality", "text", "--fields", "image", "--truth", "pairs", "--id-prefix",
                  "p"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  J j = ParseOut(r);
  EXPECT_EQ(j["queries"], 1000);
  // The data set's README: brute-force text->image recall@1 0.520, @5 0.785, @10 0.863.
  EXPECT_NEAR(j["recall@1"].get<double>(), 0.520, 1e-9);
  EXPECT_NEAR(j["recall@5"].get<double>(), 0.785, 1e-9);
  EXPECT_NEAR(j["recall@10"].get<double>(), 0.863, 1e-9);

  // Against the exact text->image top-100 (.npy of row indices): exact search finds all of it.
  CliRun t = Run({"eval", "flickr", "--queries", dir + "/text_emb.npy", "--space", "clip",
                  "--modality", "text", "--fields", "image", "--truth",
                  dir + "/gt_text2image_ip_top100.npy", "--id-prefix", "p", "--k", "100"});
  ASSERT_EQ(t.exit_code, 0) << Describe(t);
  EXPECT_EQ(ParseOut(t)["recall@10"].get<double>(), 1.0);
  EXPECT_EQ(ParseOut(t)["recall@100"].get<double>(), 1.0);
}

TEST_F(EvalTest, SiftSmallIvecsTruth) {
  ROSETTA_REQUIRE_SHARED_DATA("sift10k_siftsmall", dir);
  Create(R"({"name": "sift", "spaces": {"sift": {"dim": 128, "metric": "l2", "encoder": "sift@1"}},
             "fields": {"v": {"space": "sift", "modality": "image"}}})");
  Import("sift", "v", dir + "/siftsmall_base.fvecs");
  CliRun r = Run({"eval", "sift", "--queries", dir + "/siftsmall_query.fvecs", "--space", "sift",
                  "--truth", dir + "/siftsmall_groundtruth.ivecs", "--k", "100"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  J j = ParseOut(r);
  EXPECT_EQ(j["queries"], 100);
  EXPECT_EQ(j["recall@10"].get<double>(), 1.0);
  EXPECT_EQ(j["recall@100"].get<double>(), 1.0);
  // The same through the .npy copies of the queries and the truth.
  CliRun n = Run({"eval", "sift", "--queries", dir + "/query.npy", "--space", "sift", "--truth",
                  dir + "/gt_l2_top100.npy", "--k", "100"});
  ASSERT_EQ(n.exit_code, 0) << Describe(n);
  EXPECT_EQ(ParseOut(n)["recall@100"].get<double>(), 1.0);
}

}  // namespace
}  // namespace rosetta::testing
