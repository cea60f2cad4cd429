// IVF-PQ indexes in the engine: sealing, background builds, recall at the default settings,
// reopen without retraining, correctness under concurrent writes, fused queries over indexed
// fields, and damaged artifacts.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "engine/database.h"
#include "kernels/kmeans.h"
#include "schema/array_io.h"
#include "tests/engine/engine_test_util.h"
#include "tests/testing/testing.h"

namespace rosetta::engine {
namespace {

using ::rosetta::testing::SeedTrace;
using ::rosetta::testing::TempDir;
using ::rosetta::testing::TestSeed;
using namespace ::rosetta::engine::testing;  // NOLINT
using std::chrono::seconds;

DatabaseOptions IndexOptions() {
  DatabaseOptions o = TestOptions();
  o.search_threads = 2;
  o.auto_seal = false;  // the tests seal with BuildIndex.
  return o;
}

CollectionSchema OneField(const std::string& name, int dim, Metric metric, IndexSpec index) {
  CollectionSchema s;
  s.name = name;
  AddSpace(s, MakeSpace("e", dim, metric));
  Field f = MakeField("v", "e", "image");
  f.index = index;
  AddField(s, f);
  s.attributes["group"] = AttributeType::kInt;
  return s;
}

IndexSpec IvfPq(int64_t nbits = 0) {
  IndexSpec ix;
  ix.type = IndexType::kIvfPq;
  ix.nbits = nbits;
  return ix;
}

SearchRequest Query(const float* v, size_t dim, int k, bool exact) {
  SearchRequest req;
  req.k = k;
  QueryInput in;
  in.vector.assign(v, v + dim);
  in.space = "e";
  req.inputs.push_back(std::move(in));
  req.exact = exact;
  req.explain = false;
  req.with_attributes = false;
  return req;
}

// Clustered synthetic vectors: 50 centres, points = centre + 0.25 N(0, 1).
std::vector<float> Clustered(size_t n, size_t dim, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> g;
  std::vector<float> centres(50 * dim);
  std::mt19937_64 crng(99);
  for (float& c : centres) c = g(crng);
  std::vector<float> out(n * dim);
  for (size_t i = 0; i < n; ++i) {
    const size_t c = rng() % 50;
    for (size_t j = 0; j < dim; ++j) out[i * dim + j] = centres[c * dim + j] + 0.25f * g(rng);
  }
  return out;
}

double RecallAt10(const std::vector<std::string>& got, const std::vector<std::string>& want) {
  std::set<std::string> w(want.begin(), want.end());
  int hit = 0;
  for (const auto& id : got) hit += w.count(id);
  return want.empty() ? 1.0 : static_cast<double>(hit) / static_cast<double>(want.size());
}

TEST(IndexTest, Sift10kRecallAtDefaultsReopensWithoutRetraining) {
  ROSETTA_REQUIRE_SHARED_DATA("sift10k_siftsmall", data);
  ASSERT_OK_AND_ASSIGN(Matrix<float> base, ReadFloatMatrix(data + "/base.npy"));
  ASSERT_OK_AND_ASSIGN(Matrix<float> queries, ReadFloatMatrix(data + "/query.npy"));
  TempDir dir;
  const std::string path = dir.str() + "/db";
  std::vector<std::vector<std::string>> indexed_ids;
  double recall = 0;
  {
    ASSERT_OK_AND_ASSIGN(std::unique_ptr<Database> db, Database::Open(path, IndexOptions()));
    ASSERT_OK(db->CreateCollection(OneField("sift", 128, Metric::kL2, IvfPq())));
    ImportOptions opt;
    opt.id_prefix = "s";
    ASSERT_OK(db->ImportVectors("sift", "v", base.data, base.rows, base.cols, opt).status());
    ASSERT_OK_AND_ASSIGN(IndexBuildProgress p, db->BuildIndex("sift", ""));
    EXPECT_EQ(p.segments, 1);
    ASSERT_OK_AND_ASSIGN(p, db->WaitForIndexes("sift", seconds(120)));
    ASSERT_TRUE(p.done());
    EXPECT_EQ(p.ready, 1);
    EXPECT_EQ(p.failed, 0);
    EXPECT_EQ(p.growing_rows, 0);
    ASSERT_OK_AND_ASSIGN(CollectionInfo info, db->Describe("sift"));
    ASSERT_EQ(info.segment_list.size(), 2u);  // one sealed, the (empty) growing one.
    EXPECT_EQ(info.segment_list[0].state, "ready");
    ASSERT_EQ(info.segment_list[0].fields.size(), 1u);
    EXPECT_EQ(info.segment_list[0].fields[0].index, "ivf_pq");
    EXPECT_EQ(info.segment_list[0].fields[0].vectors, 10000);
    EXPECT_GT(info.segment_list[0].fields[0].bytes_per_vector, 0);
    EXPECT_EQ(info.segment_list[1].state, "growing");

    for (size_t q = 0; q < queries.rows; ++q) {
      ASSERT_OK_AND_ASSIGN(SearchResponse approx,
                           db->Search("sift", Query(queries.row(q), 128, 10, false)));
      ASSERT_OK_AND_ASSIGN(SearchResponse exact,
                           db->Search("sift", Query(queries.row(q), 128, 10, true)));
      EXPECT_FALSE(approx.exact);
      EXPECT_TRUE(exact.exact);
      ASSERT_EQ(approx.plan.size(), 1u);
      EXPECT_EQ(approx.plan[0].index, "ivf_pq");
      EXPECT_EQ(approx.plan[0].indexed_segments, 1);
      EXPECT_EQ(approx.plan[0].scanned_rows, 0);
      EXPECT_TRUE(exact.plan.empty());
      recall += RecallAt10(HitIds(approx), HitIds(exact));
      indexed_ids.push_back(HitIds(approx));
      // Re-ranked exactly: every returned score is the exact score.
      for (const Hit& h : approx.results) {
        for (const Hit& e : exact.results) {
          if (e.id == h.id) EXPECT_EQ(e.score, h.score) << h.id;
        }
      }
    }
    recall /= static_cast<double>(queries.rows);
    std::printf("[ figures ] SIFT10K, 8-bit IVF-PQ at default nprobe/refine: recall@10 = %.3f\n",
                recall);
    EXPECT_GE(recall, 0.95);
  }
  // Reopen: the index is loaded, not retrained, and answers identically.
  const uint64_t kmeans_before = kernels::KMeansRunCount();
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<Database> db, Database::Open(path, IndexOptions()));
  ASSERT_OK_AND_ASSIGN(IndexBuildProgress p, db->IndexProgress("sift"));
  EXPECT_EQ(p.ready, 1);
  EXPECT_EQ(p.growing_rows, 0);
  for (size_t q = 0; q < queries.rows; ++q) {
    ASSERT_OK_AND_ASSIGN(SearchResponse approx,
                         db->Search("sift", Query(queries.row(q), 128, 10, false)));
    EXPECT_EQ(HitIds(approx), indexed_ids[q]) << "query " << q;
  }
  EXPECT_EQ(kernels::KMeansRunCount(), kmeans_before) << "k-means ran at reopen";
}

TEST(IndexTest, WritesAfterSealingAreFoundAndDeletesHonoured) {
  const uint64_t seed = TestSeed(11);
  SCOPED_TRACE(SeedTrace(seed));
  constexpr size_t kDim = 16, kN = 3000;
  TempDir dir;
  const std::string path = dir.str() + "/db";
  std::vector<float> data = Clustered(kN, kDim, seed);
  {
    ASSERT_OK_AND_ASSIGN(std::unique_ptr<Database> db, Database::Open(path, IndexOptions()));
    ASSERT_OK(db->CreateCollection(OneField("c", kDim, Metric::kCosine, IvfPq(4))));
    ImportOptions opt;
    opt.id_prefix = "r";
    ASSERT_OK(db->ImportVectors("c", "v", data, kN, kDim, opt).status());
    ASSERT_OK(db->BuildIndex("c", "v").status());
    ASSERT_OK_AND_ASSIGN(IndexBuildProgress p, db->WaitForIndexes("c", seconds(60)));
    ASSERT_EQ(p.ready, 1);
    // Delete r0..r99; move r100..r199 to where r0's vector was; add n0..n49 (growing).
    std::vector<std::string> gone;
    for (int i = 0; i < 100; ++i) gone.push_back("r" + std::to_string(i));
    ASSERT_OK(db->Delete("c", gone).status());
    std::vector<float> target(data.begin(), data.begin() + kDim);
    std::vector<Record> moved;
    for (int i = 100; i < 200; ++i) {
      Record r;
      r.id = "r" + std::to_string(i);
      r.vectors["v"] = target;
      moved.push_back(r);
    }
    ASSERT_OK(db->Upsert("c", moved).status());
    SearchRequest req = Query(target.data(), kDim, 100, false);
    ASSERT_OK_AND_ASSIGN(SearchResponse r, db->Search("c", req));
    EXPECT_FALSE(r.exact);
    ASSERT_EQ(r.results.size(), 100u);
    std::set<std::string> ids;
    for (const Hit& h : r.results) {
      ids.insert(h.id);
      EXPECT_NE(h.id.substr(0, 1) + std::to_string(std::stoi(h.id.substr(1)) / 100), "r0")
          << "deleted record " << h.id << " returned";
    }
    EXPECT_EQ(ids.size(), 100u) << "duplicates in the results";
    // The 100 moved records are exact matches of the query: all of them rank first.
    for (int i = 100; i < 200; ++i) EXPECT_TRUE(ids.count("r" + std::to_string(i))) << i;
    ASSERT_EQ(r.plan.size(), 1u);
    EXPECT_EQ(r.plan[0].scanned_rows, 100);  // the moved versions: not covered by the index.
    ASSERT_OK_AND_ASSIGN(SearchResponse exact, db->Search("c", Query(target.data(), kDim, 100, true)));
    const std::vector<std::string> exact_ids = HitIds(exact);
    EXPECT_EQ(std::set<std::string>(exact_ids.begin(), exact_ids.end()), ids);
  }
  // After reopen the changed members are dead in the loaded index and still found exactly once.
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<Database> db, Database::Open(path, IndexOptions()));
  std::vector<float> target(data.begin(), data.begin() + kDim);
  ASSERT_OK_AND_ASSIGN(SearchResponse r, db->Search("c", Query(target.data(), kDim, 100, false)));
  std::set<std::string> ids;
  for (const Hit& h : r.results) ids.insert(h.id);
  EXPECT_EQ(ids.size(), 100u);
  for (int i = 100; i < 200; ++i) EXPECT_TRUE(ids.count("r" + std::to_string(i))) << i;
  ASSERT_EQ(r.plan.size(), 1u);
  EXPECT_EQ(r.plan[0].scanned_rows, 100);
}

TEST(IndexTest, SearchesStayCorrectWhileSegmentsSealAndBuildUnderWrites) {
  const uint64_t seed = TestSeed(23);
  SCOPED_TRACE(SeedTrace(seed));
  constexpr size_t kDim = 8, kN = 4000;
  TempDir dir;
  DatabaseOptions options = IndexOptions();
  options.auto_seal = true;
  options.seal_rows = 1500;  // several segments seal during the run.
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<Database> db, Database::Open(dir.str() + "/db", options));
  ASSERT_OK(db->CreateCollection(OneField("c", kDim, Metric::kL2, IvfPq())));
  std::vector<float> data = Clustered(kN, kDim, seed);
  std::atomic<bool> done{false};
  std::atomic<int> deleted_upto{0};
  std::atomic<int> failures{0};
  std::thread writer([&] {
    for (size_t b = 0; b < kN; b += 200) {
      ImportOptions opt;
      opt.id_prefix = "r";
      opt.id_offset = static_cast<int64_t>(b);
      if (!db->ImportVectors("c", "v", std::span<const float>(data).subspan(b * kDim, 200 * kDim),
                             200, kDim, opt).ok()) {
        ++failures;
      }
      // Delete the first 10 of each batch once written.
      std::vector<std::string> ids;
      for (size_t i = b; i < b + 10; ++i) ids.push_back("r" + std::to_string(i));
      if (!db->Delete("c", ids).ok()) ++failures;
      deleted_upto = static_cast<int>(b + 200);
    }
    done = true;
  });
  std::mt19937_64 rng(seed);
  int searches = 0;
  while (!done.load() || searches < 20) {
    const int upto = deleted_upto.load();
    const size_t q = rng() % kN;
    auto r = db->Search("c", Query(data.data() + q * kDim, kDim, 50, false));
    ASSERT_TRUE(r.ok()) << r.status();
    std::set<std::string> seen;
    for (const Hit& h : r->results) {
      ASSERT_TRUE(seen.insert(h.id).second) << "duplicate " << h.id;
      const int n = std::stoi(h.id.substr(1));
      if (n < upto) EXPECT_GE(n % 200, 10) << "deleted " << h.id << " returned";
    }
    ++searches;
  }
  writer.join();
  EXPECT_EQ(failures.load(), 0);
  ASSERT_OK_AND_ASSIGN(IndexBuildProgress p, db->WaitForIndexes("c", seconds(60)));
  EXPECT_TRUE(p.done());
  EXPECT_GE(p.ready, 2);
  EXPECT_EQ(p.failed, 0);
  // Every live record is findable by its own vector.
  for (size_t q = 0; q < kN; q += 97) {
    if (q % 200 < 10) continue;
    ASSERT_OK_AND_ASSIGN(SearchResponse r, db->Search("c", Query(data.data() + q * kDim, kDim, 5, false)));
    const auto ids = HitIds(r);
    EXPECT_NE(std::find(ids.begin(), ids.end(), "r" + std::to_string(q)), ids.end()) << q;
  }
}

TEST(IndexTest, FusedQueryOverTwoIndexedFieldsKeepsTheExactFusedRecall) {
  ROSETTA_REQUIRE_SHARED_DATA("flickr8k_tinyclip-vit40m_1k", data);
  ASSERT_OK_AND_ASSIGN(Matrix<float> images, ReadFloatMatrix(data + "/image_emb.npy"));
  ASSERT_OK_AND_ASSIGN(Matrix<float> texts, ReadFloatMatrix(data + "/text_emb.npy"));
  TempDir dir;
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<Database> db, Database::Open(dir.str() + "/db", IndexOptions()));
  CollectionSchema s;
  s.name = "flickr";
  AddSpace(s, MakeSpace("clip", 512, Metric::kCosine));
  Field image = MakeField("image", "clip", "image");
  image.index = IvfPq();
  Field caption = MakeField("caption", "clip", "text");
  caption.index = IvfPq();
  AddField(s, image);
  AddField(s, caption);
  ASSERT_OK(db->CreateCollection(s));
  // Records p0..p999 with image i and caption i, written as whole records.
  std::vector<Record> records;
  for (size_t i = 0; i < images.rows; ++i) {
    Record r;
    r.id = "p" + std::to_string(i);
    r.vectors["image"].assign(images.row(i), images.row(i) + 512);
    r.vectors["caption"].assign(texts.row(i), texts.row(i) + 512);
    records.push_back(std::move(r));
  }
  ASSERT_OK(db->Upsert("flickr", records).status());
  ASSERT_OK(db->BuildIndex("flickr", "").status());
  ASSERT_OK_AND_ASSIGN(IndexBuildProgress p, db->WaitForIndexes("flickr", seconds(120)));
  ASSERT_OK_AND_ASSIGN(CollectionInfo info, db->Describe("flickr"));
  ASSERT_EQ(p.ready, 1) << "segment state: " << info.segment_list[0].state << " / "
                        << (info.segment_list[0].fields.empty() ? ""
                                                                : info.segment_list[0].fields[0].state);
  ASSERT_EQ(info.segment_list[0].fields.size(), 2u);
  EXPECT_EQ(info.segment_list[0].fields[0].index, "ivf_pq");
  EXPECT_EQ(info.segment_list[0].fields[1].index, "ivf_pq");

  // A caption query over both fields (image and caption), weighted fusion of calibrated scores;
  // the relevant record for caption i is p<i>. To keep the task non-trivial, the query is the
  // mean of caption i and a neighbour caption.
  double exact_recall = 0, indexed_recall = 0;
  int n = 0;
  for (size_t i = 0; i + 1 < texts.rows; i += 5) {
    SearchRequest req;
    req.k = 10;
    QueryInput in;
    in.vector.resize(512);
    for (size_t j = 0; j < 512; ++j) in.vector[j] = texts.row(i)[j] + 0.5f * texts.row(i + 1)[j];
    in.space = "clip";
    in.modality = "text";
    req.inputs.push_back(in);
    req.explain = false;
    req.exact = true;
    ASSERT_OK_AND_ASSIGN(SearchResponse exact, db->Search("flickr", req));
    req.exact = false;
    ASSERT_OK_AND_ASSIGN(SearchResponse approx, db->Search("flickr", req));
    ASSERT_EQ(approx.plan.size(), 2u);
    const std::string want = "p" + std::to_string(i);
    const auto e = HitIds(exact), a = HitIds(approx);
    exact_recall += std::find(e.begin(), e.end(), want) != e.end();
    indexed_recall += std::find(a.begin(), a.end(), want) != a.end();
    ++n;
  }
  exact_recall /= n;
  indexed_recall /= n;
  std::printf("[ figures ] Flickr8k fused caption query over image+caption: recall@10 exact %.3f, "
              "with IVF-PQ on both fields %.3f\n", exact_recall, indexed_recall);
  EXPECT_GE(indexed_recall, 0.99 * exact_recall);
}

// With every list probed and a refine larger than the collection, the indexed plan's candidates
// are every eligible record, so the restricted search (which works in the candidates' compact
// space) must reproduce the exhaustive response exactly: ids, scores and every explanation
// member, for every fusion, normalisation and missing policy, with and without a filter, with
// record weights, records lacking a field, deletes, replaced indexed records and rows written
// after sealing (scanned, not indexed).
TEST(IndexTest, FullCandidateSetReproducesTheExhaustiveResponseExactly) {
  const uint64_t seed = TestSeed(23);
  SCOPED_TRACE(SeedTrace(seed));
  constexpr size_t kDim = 16, kN = 2400;
  TempDir dir;
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<Database> db, Database::Open(dir.str() + "/db", IndexOptions()));
  CollectionSchema schema;
  schema.name = "c";
  AddSpace(schema, MakeSpace("e", kDim, Metric::kCosine));
  Field img = MakeField("img", "e", "image", 0.7f);
  img.index = IvfPq(8);
  Field cap = MakeField("cap", "e", "text", 0.3f);
  cap.index = IvfPq(4);
  AddField(schema, img);
  AddField(schema, cap);
  schema.attributes["group"] = AttributeType::kInt;
  ASSERT_OK(db->CreateCollection(schema));
  std::vector<float> a = Clustered(kN + 200, kDim, seed);
  std::vector<float> b = Clustered(kN + 200, kDim, seed + 1);
  std::mt19937_64 rng(seed);
  auto make = [&](size_t i, const std::string& id) {
    Record r;
    r.id = id;
    const size_t kind = rng() % 10;
    if (kind != 0) r.vectors["img"].assign(a.begin() + i * kDim, a.begin() + (i + 1) * kDim);
    if (kind >= 2) r.vectors["cap"].assign(b.begin() + i * kDim, b.begin() + (i + 1) * kDim);
    if (kind == 0) r.vectors["cap"].assign(b.begin() + i * kDim, b.begin() + (i + 1) * kDim);
    if (rng() % 5 == 0) r.weights["cap"] = 0.25f + static_cast<float>(rng() % 8) * 0.25f;
    r.attributes["group"] = static_cast<int64_t>(rng() % 4);
    return r;
  };
  std::vector<Record> records;
  for (size_t i = 0; i < kN; ++i) records.push_back(make(i, "r" + std::to_string(i)));
  ASSERT_OK(db->Upsert("c", records).status());
  ASSERT_OK(db->BuildIndex("c", "").status());
  ASSERT_OK_AND_ASSIGN(IndexBuildProgress p, db->WaitForIndexes("c", seconds(60)));
  ASSERT_EQ(p.ready, 1);
  // After sealing: deletes, replaced indexed records, and new records (all uncovered).
  std::vector<std::string> gone;
  for (size_t i = 0; i < 150; ++i) gone.push_back("r" + std::to_string(rng() % kN));
  ASSERT_OK(db->Delete("c", gone).status());
  std::vector<Record> later;
  for (size_t i = 0; i < 100; ++i) later.push_back(make(kN + i, "r" + std::to_string(i * 23 + 7)));
  for (size_t i = 100; i < 200; ++i) later.push_back(make(kN + i, "n" + std::to_string(i)));
  ASSERT_OK(db->Upsert("c", later).status());

  std::vector<float> q(a.begin() + 5 * kDim, a.begin() + 6 * kDim);
  for (float& x : q) x += 0.1f;
  int compared = 0;
  int64_t scanned = 0;  // uncovered rows the indexed plan scanned, summed over the fields.
  auto compare_all = [&](Database& db) {
  for (Fusion fusion : {Fusion::kWeighted, Fusion::kMax, Fusion::kRrf}) {
    for (Normalize norm : {Normalize::kNone, Normalize::kMinMax, Normalize::kZScore,
                           Normalize::kCalibrated}) {
      for (Missing missing : {Missing::kRenormalize, Missing::kZero, Missing::kRequire}) {
        for (int filtered = 0; filtered < 2; ++filtered) {
          SCOPED_TRACE(::testing::Message() << "fusion " << static_cast<int>(fusion) << " normalize "
                                            << static_cast<int>(norm) << " missing "
                                            << static_cast<int>(missing) << " filter " << filtered);
          SearchRequest req = Query(q.data(), kDim, 25, true);
          req.fusion = fusion;
          req.normalize = norm;
          req.missing = missing;
          req.explain = true;
          if (filtered) {
            req.filter.predicates.push_back(
                {Predicate::Target::kAttribute, "group", FilterOp::kLt, {int64_t{3}}});
          }
          ASSERT_OK_AND_ASSIGN(SearchResponse exact, db.Search("c", req));
          req.exact = false;
          req.nprobe = 65536;
          req.refine = 100000;
          ASSERT_OK_AND_ASSIGN(SearchResponse indexed, db.Search("c", req));
          ASSERT_FALSE(indexed.exact);
          ASSERT_EQ(indexed.plan.size(), 2u);
          ExpectSameHits(exact, indexed);
          scanned = indexed.plan[0].scanned_rows + indexed.plan[1].scanned_rows;
          ++compared;
        }
      }
    }
  }
  };
  {
    SCOPED_TRACE("before reopen");
    compare_all(*db);
  }
  EXPECT_GT(scanned, 0);
  // After a reopen rows are renumbered: the records written after sealing now sit among the
  // indexed ones, in pages the uncovered scan must still visit.
  const std::string path = db->path();
  db.reset();
  ASSERT_OK_AND_ASSIGN(db, Database::Open(path, IndexOptions()));
  {
    SCOPED_TRACE("after reopen");
    compare_all(*db);
  }
  EXPECT_GT(scanned, 0);
  EXPECT_EQ(compared, 144);
}

TEST(IndexTest, ADamagedArtifactIsDroppedAndRebuilt) {
  constexpr size_t kDim = 8, kN = 2000;
  TempDir dir;
  const std::string path = dir.str() + "/db";
  std::vector<float> data = Clustered(kN, kDim, 5);
  {
    ASSERT_OK_AND_ASSIGN(std::unique_ptr<Database> db, Database::Open(path, IndexOptions()));
    ASSERT_OK(db->CreateCollection(OneField("c", kDim, Metric::kL2, IvfPq())));
    ImportOptions opt;
    opt.id_prefix = "r";
    ASSERT_OK(db->ImportVectors("c", "v", data, kN, kDim, opt).status());
    ASSERT_OK(db->BuildIndex("c", "").status());
    ASSERT_OK_AND_ASSIGN(IndexBuildProgress p, db->WaitForIndexes("c", seconds(60)));
    ASSERT_EQ(p.ready, 1);
  }
  {
    // Damage the artifact in place through the store.
    ASSERT_OK_AND_ASSIGN(std::unique_ptr<storage::Store> store, storage::Store::Open(path, {}));
    ASSERT_OK_AND_ASSIGN(auto metas, store->ListCollections());
    std::string key, blob;
    ASSERT_OK(store->ScanStats(metas[0].id, "segment/", [&](std::string_view k, std::string_view b) {
      key = std::string(k);
      blob = std::string(b);
      return absl::OkStatus();
    }));
    ASSERT_FALSE(key.empty());
    blob[blob.size() / 2] ^= 0x5a;
    storage::Batch b;
    b.PutStat(metas[0].id, key, blob);
    ASSERT_OK(store->Commit(std::move(b)));
  }
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<Database> db, Database::Open(path, IndexOptions()));
  ASSERT_OK_AND_ASSIGN(IndexBuildProgress p, db->IndexProgress("c"));
  EXPECT_EQ(p.ready, 0);
  EXPECT_EQ(p.growing_rows, static_cast<int64_t>(kN));
  // Searches are exhaustive meanwhile, and correct.
  ASSERT_OK_AND_ASSIGN(SearchResponse r, db->Search("c", Query(data.data(), kDim, 1, false)));
  EXPECT_EQ(HitIds(r), std::vector<std::string>{"r0"});
  EXPECT_TRUE(r.exact);
  ASSERT_OK(db->BuildIndex("c", "").status());
  ASSERT_OK_AND_ASSIGN(p, db->WaitForIndexes("c", seconds(60)));
  EXPECT_EQ(p.ready, 1);
}

TEST(IndexTest, BuildIndexErrors) {
  TempDir dir;
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<Database> db, Database::Open(dir.str() + "/db", IndexOptions()));
  ASSERT_OK(db->CreateCollection(OneField("flat", 4, Metric::kL2, IndexSpec{})));
  EXPECT_STATUS(db->BuildIndex("flat", "").status(), absl::StatusCode::kInvalidArgument,
                "has no field with an ivf_pq index");
  EXPECT_STATUS(db->BuildIndex("flat", "v").status(), absl::StatusCode::kInvalidArgument,
                "field \"v\" has no ivf_pq index");
  EXPECT_STATUS(db->BuildIndex("flat", "nope").status(), absl::StatusCode::kNotFound,
                "has no field \"nope\"");
  EXPECT_STATUS(db->BuildIndex("missing", "").status(), absl::StatusCode::kNotFound, "not found");
  // Too few vectors for an index: the segment keeps the field flat, searches stay exact.
  ASSERT_OK(db->CreateCollection(OneField("small", 4, Metric::kL2, IvfPq())));
  std::vector<float> v = {1, 2, 3, 4};
  ASSERT_OK(db->ImportVectors("small", "v", v, 1, 4, ImportOptions{}).status());
  ASSERT_OK(db->BuildIndex("small", "").status());
  ASSERT_OK_AND_ASSIGN(IndexBuildProgress p, db->WaitForIndexes("small", seconds(30)));
  EXPECT_EQ(p.ready, 1);
  ASSERT_OK_AND_ASSIGN(CollectionInfo info, db->Describe("small"));
  ASSERT_EQ(info.segment_list.size(), 2u);
  ASSERT_EQ(info.segment_list[0].fields.size(), 1u);
  EXPECT_EQ(info.segment_list[0].fields[0].index, "flat");
  ASSERT_OK_AND_ASSIGN(SearchResponse r, db->Search("small", Query(v.data(), 4, 1, false)));
  EXPECT_TRUE(r.exact);
  EXPECT_EQ(r.results.size(), 1u);
}

}  // namespace
}  // namespace rosetta::engine

namespace rosetta::engine {
namespace {

TEST(IndexMergeTest, SmallSegmentsAreMergedAndMostlyDeletedOnesCompacted) {
  constexpr size_t kDim = 8;
  TempDir dir;
  const std::string path = dir.str() + "/db";
  DatabaseOptions options = IndexOptions();
  options.seal_rows = 4000;  // "small" = fewer than 1000 live records.
  std::vector<float> data = Clustered(2500, kDim, 17);
  auto import = [&](Database& db, size_t from, size_t n) {
    ImportOptions opt;
    opt.id_prefix = "r";
    opt.id_offset = static_cast<int64_t>(from);
    return db.ImportVectors("c", "v", std::span<const float>(data).subspan(from * kDim, n * kDim),
                            n, kDim, opt);
  };
  auto build = [&](Database& db) -> IndexBuildProgress {
    EXPECT_OK(db.BuildIndex("c", "").status());
    auto p = db.WaitForIndexes("c", seconds(60));
    EXPECT_TRUE(p.ok() && p->done() && p->failed == 0);
    return p.ok() ? *p : IndexBuildProgress{};
  };
  {
    ASSERT_OK_AND_ASSIGN(std::unique_ptr<Database> db, Database::Open(path, options));
    ASSERT_OK(db->CreateCollection(OneField("c", kDim, Metric::kL2, IvfPq())));
    ASSERT_OK(import(*db, 0, 1500).status());
    EXPECT_EQ(build(*db).ready, 1);
    ASSERT_OK(import(*db, 1500, 500).status());
    EXPECT_EQ(build(*db).ready, 2);  // 1500 (not small) + 500 (too few to index: flat).
    ASSERT_OK(import(*db, 2000, 500).status());
    // The 500-record segment is small: rebuilt with the 500 new rows into one of 1000.
    EXPECT_EQ(build(*db).ready, 2);
    ASSERT_OK_AND_ASSIGN(CollectionInfo info, db->Describe("c"));
    ASSERT_EQ(info.segment_list.size(), 3u);
    EXPECT_EQ(info.segment_list[0].rows, 1500);
    EXPECT_EQ(info.segment_list[1].rows, 1000);
    EXPECT_EQ(info.segment_list[1].fields[0].index, "ivf_pq");
    // Delete 1000 of the first segment's 1500: it is mostly deleted and gets compacted, merged
    // with the other small one (1000 live is not small, so that one stays).
    std::vector<std::string> gone;
    for (int i = 0; i < 1000; ++i) gone.push_back("r" + std::to_string(i));
    ASSERT_OK(db->Delete("c", gone).status());
    EXPECT_EQ(build(*db).ready, 2);
    ASSERT_OK_AND_ASSIGN(info, db->Describe("c"));
    ASSERT_EQ(info.segment_list.size(), 3u);
    EXPECT_EQ(info.segment_list[0].rows, 1000);  // the untouched one (ids sort by segment id).
    EXPECT_EQ(info.segment_list[1].rows, 500);   // the compacted one: its live records only.
    EXPECT_EQ(info.segment_list[1].live, 500);
  }
  // Replaced artifacts were deleted: reopening finds exactly the two segments.
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<Database> db, Database::Open(path, options));
  ASSERT_OK_AND_ASSIGN(IndexBuildProgress p, db->IndexProgress("c"));
  EXPECT_EQ(p.ready, 2);
  EXPECT_EQ(p.growing_rows, 0);
  ASSERT_OK_AND_ASSIGN(SearchResponse r, db->Search("c", Query(data.data() + 1200 * kDim, kDim, 1, false)));
  EXPECT_EQ(HitIds(r), std::vector<std::string>{"r1200"});
}

}  // namespace
}  // namespace rosetta::engine

namespace rosetta::engine {
namespace {

TEST(L2ScoreTest, AnExactMatchScoresPositiveZeroOnEveryPath) {
  TempDir dir;
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<Database> db, Database::Open(dir.str() + "/db", IndexOptions()));
  ASSERT_OK(db->CreateCollection(OneField("c", 8, Metric::kL2, IvfPq())));
  std::vector<float> data = Clustered(1200, 8, 3);
  ImportOptions opt;
  opt.id_prefix = "r";
  ASSERT_OK(db->ImportVectors("c", "v", data, 1200, 8, opt).status());
  for (int round = 0; round < 2; ++round) {  // exhaustive, then through the index.
    if (round == 1) {
      ASSERT_OK(db->BuildIndex("c", "").status());
      ASSERT_OK_AND_ASSIGN(IndexBuildProgress p, db->WaitForIndexes("c", seconds(60)));
      ASSERT_EQ(p.ready, 1);
    }
    for (bool exact : {true, false}) {
      SearchRequest req = Query(data.data(), 8, 3, exact);
      req.normalize = Normalize::kNone;
      req.explain = true;
      ASSERT_OK_AND_ASSIGN(SearchResponse r, db->Search("c", req));
      ASSERT_FALSE(r.results.empty());
      EXPECT_EQ(r.results[0].id, "r0");
      EXPECT_EQ(r.results[0].score, 0.0f);
      EXPECT_FALSE(std::signbit(r.results[0].score)) << "round " << round << " exact " << exact;
      EXPECT_FALSE(std::signbit(r.results[0].fields.at("v").raw));
    }
  }
}

}  // namespace
}  // namespace rosetta::engine
