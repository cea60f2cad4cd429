// Engine CRUD, durability across reopen, and "bad input leaves nothing written".
#include <cmath>
#include <limits>
#include <map>
#include <string>
#include <vector>

#include "engine/database.h"
#include "tests/engine/engine_test_util.h"
#include "tests/testing/testing.h"

namespace rosetta::engine {
namespace {

using ::rosetta::testing::TempDir;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::UnorderedElementsAre;
using namespace ::rosetta::engine::testing;  // NOLINT

// Space "clip" (cosine, 4-d) with fields image/caption; space "geo" (l2, 3-d) with field point.
CollectionSchema TestSchema(const std::string& name = "c") {
  CollectionSchema s;
  s.name = name;
  AddSpace(s, MakeSpace("clip", 4, Metric::kCosine));
  AddSpace(s, MakeSpace("geo", 3, Metric::kL2));
  AddField(s, MakeField("image", "clip", "image"));
  AddField(s, MakeField("caption", "clip", "text", 0.5f));
  AddField(s, MakeField("point", "geo", "point"));
  s.attributes["lang"] = AttributeType::kString;
  s.attributes["year"] = AttributeType::kInt;
  s.attributes["tags"] = AttributeType::kStringList;
  return s;
}

Record MakeRecord(const std::string& id, std::map<std::string, std::vector<float>> vectors) {
  Record r;
  r.id = id;
  r.vectors = std::move(vectors);
  return r;
}

std::unique_ptr<Database> OpenDb(const TempDir& dir) {
  auto db = Database::Open(dir.str() + "/db", TestOptions());
  EXPECT_TRUE(db.ok()) << db.status();
  return db.ok() ? std::move(*db) : nullptr;
}

SearchRequest QueryImage(std::vector<float> v, int k = 10) {
  SearchRequest req;
  req.k = k;
  QueryInput in;
  in.vector = std::move(v);
  in.space = "clip";
  in.fields = {"image"};
  req.inputs.push_back(in);
  req.normalize = Normalize::kNone;
  return req;
}

TEST(CrudTest, CreateListDescribeDrop) {
  TempDir dir;
  {
    auto db = OpenDb(dir);
    ASSERT_NE(db, nullptr);
    EXPECT_THAT(db->ListCollections(), ElementsAre());
    ASSERT_OK(db->CreateCollection(TestSchema("b")));
    ASSERT_OK(db->CreateCollection(TestSchema("a")));
    EXPECT_STATUS(db->CreateCollection(TestSchema("a")), absl::StatusCode::kAlreadyExists, "\"a\"");
    CollectionSchema bad = TestSchema("bad");
    bad.fields["image"].space = "nope";
    EXPECT_STATUS(db->CreateCollection(bad), absl::StatusCode::kInvalidArgument, "nope");
    EXPECT_THAT(db->ListCollections(), ElementsAre("a", "b"));

    ASSERT_OK_AND_ASSIGN(CollectionInfo info, db->Describe("a"));
    EXPECT_EQ(info.schema.name, "a");
    EXPECT_EQ(info.schema.fields.size(), 3u);
    EXPECT_EQ(info.schema.fields.at("caption").weight, 0.5f);
    EXPECT_EQ(info.records, 0);
    EXPECT_EQ(info.segments, 1);
    EXPECT_EQ(info.field_vectors.size(), 3u);
    for (const auto& [f, n] : info.field_vectors) EXPECT_EQ(n, 0) << f;
    EXPECT_EQ(info.kernel_backend, db->KernelBackend());
    EXPECT_THAT(info.storage, HasSubstr("rocksdb"));
    EXPECT_TRUE(info.calibration.empty());

    ASSERT_OK(db->Upsert("b", {MakeRecord("x", {{"image", {1, 0, 0, 0}}})}).status());
    ASSERT_OK(db->DropCollection("b"));
    EXPECT_STATUS(db->Describe("b"), absl::StatusCode::kNotFound, "\"b\"");
    EXPECT_STATUS(db->DropCollection("b"), absl::StatusCode::kNotFound, "\"b\"");
    EXPECT_THAT(db->ListCollections(), ElementsAre("a"));
  }
  {
    auto db = OpenDb(dir);
    ASSERT_NE(db, nullptr);
    EXPECT_THAT(db->ListCollections(), ElementsAre("a"));
    // A re-created collection of a dropped name starts empty.
    ASSERT_OK(db->CreateCollection(TestSchema("b")));
    ASSERT_OK_AND_ASSIGN(CollectionInfo info, db->Describe("b"));
    EXPECT_EQ(info.records, 0);
    ASSERT_OK_AND_ASSIGN(GetResult got, db->Get("b", {"x"}, true));
    EXPECT_TRUE(got.records.empty());
  }
}

TEST(CrudTest, UpsertGetSurvivesReopenBitExact) {
  TempDir dir;
  const std::vector<float> img1 = {0.3f, -1.7f, 2.25f, 0.001f};
  const std::vector<float> cap1 = {1e-3f, 5.0f, -0.5f, 3.0f};
  const std::vector<float> pt1 = {1.5f, -2.0f, 1e-7f};
  Record r1 = MakeRecord("r1", {{"image", img1}, {"caption", cap1}, {"point", pt1}});
  r1.weights["caption"] = 2.5f;
  r1.attributes["lang"] = std::string("en");
  r1.attributes["year"] = int64_t{2021};
  r1.attributes["tags"] = std::vector<std::string>{"dog", "park"};
  r1.provenance.source = "flickr8k";
  r1.provenance.collected_at = "2025-08-09T10:00:00Z";
  r1.provenance.steps = {"resize 224", "center-crop"};
  r1.provenance.dataset_version = "v1";
  r1.provenance.encoder = "tinyclip@1";
  Record r2 = MakeRecord("r2 ünïcode", {{"point", {0, 0, 1}}});

  auto check = [&](Database& db) {
    ASSERT_OK_AND_ASSIGN(GetResult got, db.Get("c", {"r1", "nope", "r2 ünïcode"}, true));
    ASSERT_EQ(got.records.size(), 2u);
    EXPECT_THAT(got.not_found, ElementsAre("nope"));
    const Record& g1 = got.records[0];
    EXPECT_EQ(g1.id, "r1");
    ASSERT_EQ(g1.vectors.size(), 3u);
    // Cosine vectors are stored normalised; l2 vectors as given. Bit-exact either way.
    EXPECT_EQ(g1.vectors.at("image"), Normalised(img1));
    EXPECT_EQ(g1.vectors.at("caption"), Normalised(cap1));
    EXPECT_EQ(g1.vectors.at("point"), pt1);
    EXPECT_EQ(g1.weights, r1.weights);
    EXPECT_EQ(g1.attributes, r1.attributes);
    EXPECT_EQ(g1.provenance, r1.provenance);
    EXPECT_EQ(got.records[1].id, "r2 ünïcode");
    EXPECT_EQ(got.records[1].vectors.size(), 1u);
    ASSERT_OK_AND_ASSIGN(GetResult no_vectors, db.Get("c", {"r1"}, false));
    ASSERT_EQ(no_vectors.records.size(), 1u);
    EXPECT_TRUE(no_vectors.records[0].vectors.empty());
    EXPECT_EQ(no_vectors.records[0].provenance, r1.provenance);

    ASSERT_OK_AND_ASSIGN(CollectionInfo info, db.Describe("c"));
    EXPECT_EQ(info.records, 2);
    EXPECT_EQ(info.field_vectors.at("image"), 1);
    EXPECT_EQ(info.field_vectors.at("caption"), 1);
    EXPECT_EQ(info.field_vectors.at("point"), 2);

    // Search sees the same data, with attributes and provenance.
    ASSERT_OK_AND_ASSIGN(SearchResponse res, db.Search("c", QueryImage(img1)));
    ASSERT_EQ(res.results.size(), 1u);
    EXPECT_EQ(res.results[0].id, "r1");
    EXPECT_NEAR(res.results[0].score, 1.0f, 1e-6);
    EXPECT_EQ(res.results[0].attributes, r1.attributes);
    EXPECT_EQ(res.results[0].provenance, r1.provenance);
  };
  {
    auto db = OpenDb(dir);
    ASSERT_NE(db, nullptr);
    ASSERT_OK(db->CreateCollection(TestSchema()));
    ASSERT_OK_AND_ASSIGN(WriteResult w, db->Upsert("c", {r1, r2}));
    EXPECT_EQ(w.written, 2);
    EXPECT_EQ(w.created, 2);
    check(*db);
  }
  {
    auto db = OpenDb(dir);
    ASSERT_NE(db, nullptr);
    check(*db);
  }
}

TEST(CrudTest, UpsertReplacesWholeRecord) {
  TempDir dir;
  {
    auto db = OpenDb(dir);
    ASSERT_NE(db, nullptr);
    ASSERT_OK(db->CreateCollection(TestSchema()));
    Record a = MakeRecord("a", {{"image", {1, 0, 0, 0}}, {"point", {1, 1, 1}}});
    a.attributes["lang"] = std::string("en");
    ASSERT_OK(db->Upsert("c", {a, MakeRecord("b", {{"image", {0, 1, 0, 0}}})}).status());
    // Replace "a": no image any more, no attributes.
    ASSERT_OK_AND_ASSIGN(WriteResult w,
                         db->Upsert("c", {MakeRecord("a", {{"caption", {0, 0, 1, 0}}})}));
    EXPECT_EQ(w.written, 1);
    EXPECT_EQ(w.created, 0);
  }
  auto db = OpenDb(dir);
  ASSERT_NE(db, nullptr);
  ASSERT_OK_AND_ASSIGN(GetResult got, db->Get("c", {"a"}, true));
  ASSERT_EQ(got.records.size(), 1u);
  EXPECT_EQ(got.records[0].vectors.size(), 1u);
  EXPECT_TRUE(got.records[0].vectors.count("caption"));
  EXPECT_TRUE(got.records[0].attributes.empty());
  ASSERT_OK_AND_ASSIGN(SearchResponse res, db->Search("c", QueryImage({1, 0, 0, 0})));
  EXPECT_THAT(HitIds(res), ElementsAre("b"));  // "a" has no image any more.
  ASSERT_OK_AND_ASSIGN(CollectionInfo info, db->Describe("c"));
  EXPECT_EQ(info.records, 2);
  EXPECT_EQ(info.field_vectors.at("image"), 1);
  EXPECT_EQ(info.field_vectors.at("point"), 0);
  EXPECT_EQ(info.field_vectors.at("caption"), 1);
}

TEST(CrudTest, ImportCreatesAndExtendsRecords) {
  TempDir dir;
  const std::vector<float> images = {1, 0, 0, 0,  0, 2, 0, 0,  0, 0, 3, 0};
  const std::vector<float> points = {1, 2, 3,  4, 5, 6};
  Provenance prov;
  prov.source = "import-test";
  prov.dataset_version = "v2";
  {
    auto db = OpenDb(dir);
    ASSERT_NE(db, nullptr);
    ASSERT_OK(db->CreateCollection(TestSchema()));
    Record existing = MakeRecord("p1", {{"caption", {0, 0, 0, 1}}});
    existing.attributes["lang"] = std::string("de");
    existing.provenance.source = "old";
    ASSERT_OK(db->Upsert("c", {existing}).status());

    ImportOptions opt;
    opt.id_prefix = "p";
    ASSERT_OK_AND_ASSIGN(WriteResult w, db->ImportVectors("c", "image", images, 3, 4, opt));
    EXPECT_EQ(w.written, 3);
    EXPECT_EQ(w.created, 2);  // p0, p2; p1 existed.
    // Second import into another field, ids p1, p2 (offset 1), with provenance.
    ImportOptions opt2;
    opt2.id_prefix = "p";
    opt2.id_offset = 1;
    opt2.provenance = prov;
    ASSERT_OK_AND_ASSIGN(w, db->ImportVectors("c", "point", points, 2, 3, opt2));
    EXPECT_EQ(w.written, 2);
    EXPECT_EQ(w.created, 0);
  }
  auto db = OpenDb(dir);
  ASSERT_NE(db, nullptr);
  ASSERT_OK_AND_ASSIGN(GetResult got, db->Get("c", {"p0", "p1", "p2"}, true));
  ASSERT_EQ(got.records.size(), 3u);
  const Record& p0 = got.records[0];
  EXPECT_EQ(p0.vectors.size(), 1u);
  EXPECT_EQ(p0.vectors.at("image"), (std::vector<float>{1, 0, 0, 0}));
  EXPECT_TRUE(p0.provenance.empty());
  const Record& p1 = got.records[1];
  EXPECT_EQ(p1.vectors.size(), 3u);  // the caption it had, plus image and point.
  EXPECT_EQ(p1.vectors.at("caption"), (std::vector<float>{0, 0, 0, 1}));
  EXPECT_EQ(p1.vectors.at("image"), (std::vector<float>{0, 1, 0, 0}));  // normalised.
  EXPECT_EQ(p1.vectors.at("point"), (std::vector<float>{1, 2, 3}));
  EXPECT_EQ(std::get<std::string>(p1.attributes.at("lang")), "de");  // kept.
  EXPECT_EQ(p1.provenance, prov);                                    // replaced.
  EXPECT_EQ(got.records[2].vectors.at("point"), (std::vector<float>{4, 5, 6}));
  ASSERT_OK_AND_ASSIGN(CollectionInfo info, db->Describe("c"));
  EXPECT_EQ(info.records, 3);
  EXPECT_EQ(info.field_vectors.at("image"), 3);
  EXPECT_EQ(info.field_vectors.at("caption"), 1);
  EXPECT_EQ(info.field_vectors.at("point"), 2);
  // The in-memory row versions agree: p1 is found once, by image and by caption.
  SearchRequest req = QueryImage({0, 1, 0, 0}, 10);
  req.inputs[0].fields = {"image", "caption"};
  ASSERT_OK_AND_ASSIGN(SearchResponse res, db->Search("c", req));
  EXPECT_THAT(HitIds(res), UnorderedElementsAre("p0", "p1", "p2"));
  EXPECT_EQ(res.results[0].id, "p1");
}

TEST(CrudTest, DeleteSurvivesReopen) {
  TempDir dir;
  {
    auto db = OpenDb(dir);
    ASSERT_NE(db, nullptr);
    ASSERT_OK(db->CreateCollection(TestSchema()));
    ASSERT_OK(db->Upsert("c", {MakeRecord("a", {{"image", {1, 0, 0, 0}}}),
                               MakeRecord("b", {{"image", {1, 1, 0, 0}}}),
                               MakeRecord("c", {{"image", {1, 1, 1, 0}}})})
                  .status());
    ASSERT_OK_AND_ASSIGN(WriteResult w, db->Delete("c", {"b", "zz", "b"}));
    EXPECT_EQ(w.written, 1);
    EXPECT_EQ(w.not_found, 1);
    ASSERT_OK_AND_ASSIGN(SearchResponse res, db->Search("c", QueryImage({1, 1, 0, 0})));
    EXPECT_THAT(HitIds(res), ElementsAre("c", "a"));
    ASSERT_OK_AND_ASSIGN(w, db->Delete("c", {"b"}));
    EXPECT_EQ(w.written, 0);
    EXPECT_EQ(w.not_found, 1);
  }
  auto db = OpenDb(dir);
  ASSERT_NE(db, nullptr);
  ASSERT_OK_AND_ASSIGN(GetResult got, db->Get("c", {"a", "b", "c"}, false));
  EXPECT_THAT(got.not_found, ElementsAre("b"));
  ASSERT_OK_AND_ASSIGN(SearchResponse res, db->Search("c", QueryImage({1, 1, 0, 0})));
  EXPECT_THAT(HitIds(res), ElementsAre("c", "a"));
  ASSERT_OK_AND_ASSIGN(CollectionInfo info, db->Describe("c"));
  EXPECT_EQ(info.records, 2);
  // Re-inserting a deleted id works.
  ASSERT_OK_AND_ASSIGN(WriteResult w, db->Upsert("c", {MakeRecord("b", {{"image", {0, 0, 0, 1}}})}));
  EXPECT_EQ(w.created, 1);
}

// --- bad input ---------------------------------------------------------------------------------

class BadInputTest : public ::testing::Test {
 protected:
  void SetUp() override {
    db_ = OpenDb(dir_);
    ASSERT_NE(db_, nullptr);
    ASSERT_OK(db_->CreateCollection(TestSchema()));
    Record keep = MakeRecord("keep", {{"image", {1, 2, 3, 4}}});
    ASSERT_OK(db_->Upsert("c", {keep}).status());
  }

  // Only "keep" exists, unchanged; checked now and after a reopen.
  void ExpectUnchanged(const std::vector<std::string>& ids) {
    for (int pass = 0; pass < 2; ++pass) {
      SCOPED_TRACE(pass == 0 ? "before reopen" : "after reopen");
      ASSERT_OK_AND_ASSIGN(GetResult got, db_->Get("c", ids, true));
      EXPECT_TRUE(got.records.empty()) << got.records[0].id;
      ASSERT_OK_AND_ASSIGN(GetResult keep, db_->Get("c", {"keep"}, true));
      ASSERT_EQ(keep.records.size(), 1u);
      EXPECT_EQ(keep.records[0].vectors.size(), 1u);
      EXPECT_EQ(keep.records[0].vectors.at("image"), Normalised({1, 2, 3, 4}));
      ASSERT_OK_AND_ASSIGN(CollectionInfo info, db_->Describe("c"));
      EXPECT_EQ(info.records, 1);
      EXPECT_EQ(info.field_vectors.at("image"), 1);
      EXPECT_EQ(info.field_vectors.at("point"), 0);
      if (pass == 0) {
        db_.reset();
        db_ = OpenDb(dir_);
        ASSERT_NE(db_, nullptr);
      }
    }
  }

  TempDir dir_;
  std::unique_ptr<Database> db_;
};

TEST_F(BadInputTest, WrongDimension) {
  EXPECT_STATUS(db_->Upsert("c", {MakeRecord("x", {{"image", {1, 2, 3}}})}),
                absl::StatusCode::kInvalidArgument,
                "record 0 (id \"x\"): field \"image\": expected 4 components");
  ExpectUnchanged({"x"});
}

TEST_F(BadInputTest, NaNNamesTheComponent) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  EXPECT_STATUS(db_->Upsert("c", {MakeRecord("x", {{"point", {1, 2, nan}}})}),
                absl::StatusCode::kInvalidArgument, "field \"point\": component 2 is NaN");
  ExpectUnchanged({"x"});
}

TEST_F(BadInputTest, VectorOfTheWrongSpace) {
  // A 3-d (geo) vector given for a clip field, and a clip query against a geo field.
  EXPECT_STATUS(db_->Upsert("c", {MakeRecord("x", {{"caption", {1, 2, 3}}})}),
                absl::StatusCode::kInvalidArgument, "field \"caption\"");
  SearchRequest req = QueryImage({1, 0, 0, 0});
  req.inputs[0].fields = {"point"};
  EXPECT_STATUS(db_->Search("c", req), absl::StatusCode::kInvalidArgument,
                "field \"point\" is in space \"geo\"");
  ExpectUnchanged({"x"});
}

TEST_F(BadInputTest, UnknownField) {
  EXPECT_STATUS(db_->Upsert("c", {MakeRecord("x", {{"nope", {1, 2, 3, 4}}})}),
                absl::StatusCode::kInvalidArgument, "unknown field \"nope\"");
  const std::vector<float> data = {1, 2, 3, 4};
  EXPECT_STATUS(db_->ImportVectors("c", "nope", data, 1, 4, {}), absl::StatusCode::kNotFound,
                "no field \"nope\"");
  ExpectUnchanged({"x", "0"});
}

TEST_F(BadInputTest, UnknownCollection) {
  const std::vector<float> data = {1, 2, 3, 4};
  EXPECT_STATUS(db_->Upsert("zz", {MakeRecord("x", {{"image", {1, 2, 3, 4}}})}),
                absl::StatusCode::kNotFound, "collection \"zz\"");
  EXPECT_STATUS(db_->ImportVectors("zz", "image", data, 1, 4, {}), absl::StatusCode::kNotFound,
                "collection \"zz\"");
  EXPECT_STATUS(db_->Get("zz", {"x"}, true), absl::StatusCode::kNotFound, "collection \"zz\"");
  EXPECT_STATUS(db_->Delete("zz", {"x"}), absl::StatusCode::kNotFound, "collection \"zz\"");
  EXPECT_STATUS(db_->Search("zz", QueryImage({1, 0, 0, 0})), absl::StatusCode::kNotFound,
                "collection \"zz\"");
  EXPECT_STATUS(db_->SearchBatch("zz", {QueryImage({1, 0, 0, 0})}), absl::StatusCode::kNotFound,
                "collection \"zz\"");
  EXPECT_STATUS(db_->Describe("zz"), absl::StatusCode::kNotFound, "collection \"zz\"");
  ExpectUnchanged({"x"});
}

TEST_F(BadInputTest, DuplicateIdsInOneCall) {
  EXPECT_STATUS(db_->Upsert("c", {MakeRecord("x", {{"image", {1, 2, 3, 4}}}),
                                  MakeRecord("y", {{"image", {1, 2, 3, 4}}}),
                                  MakeRecord("x", {{"image", {4, 3, 2, 1}}})}),
                absl::StatusCode::kInvalidArgument,
                "record 2 (id \"x\"): duplicate id (also record 0)");
  ExpectUnchanged({"x", "y"});
}

TEST_F(BadInputTest, BatchIsAllOrNothing) {
  std::vector<Record> batch;
  std::vector<std::string> ids;
  for (int i = 0; i < 10; ++i) {
    ids.push_back("b" + std::to_string(i));
    batch.push_back(MakeRecord(ids.back(), {{"image", {1, float(i), 0, 0}}}));
  }
  batch[5].attributes["year"] = std::string("not a number");
  EXPECT_STATUS(db_->Upsert("c", batch), absl::StatusCode::kInvalidArgument,
                "record 5 (id \"b5\"): attribute \"year\"");
  // Replacing "keep" inside a failed batch must not touch it either.
  batch[5] = MakeRecord("keep", {{"image", {0, 0, 0, std::numeric_limits<float>::infinity()}}});
  EXPECT_STATUS(db_->Upsert("c", batch), absl::StatusCode::kInvalidArgument,
                "record 5 (id \"keep\"): field \"image\": component 3 is +inf");
  ExpectUnchanged(ids);
}

TEST_F(BadInputTest, ImportRejectsBadRowsAndShapes) {
  std::vector<float> data(20 * 4, 0.5f);
  data[17 * 4 + 3] = std::numeric_limits<float>::quiet_NaN();
  ImportOptions opt;
  opt.id_prefix = "i";
  EXPECT_STATUS(db_->ImportVectors("c", "image", data, 20, 4, opt),
                absl::StatusCode::kInvalidArgument, "row 17: component 3 is NaN");
  data[17 * 4 + 3] = 0.5f;
  // A zero vector in a cosine space.
  std::fill(data.begin() + 9 * 4, data.begin() + 10 * 4, 0.0f);
  EXPECT_STATUS(db_->ImportVectors("c", "image", data, 20, 4, opt),
                absl::StatusCode::kInvalidArgument, "row 9: is a zero vector");
  EXPECT_STATUS(db_->ImportVectors("c", "image", data, 16, 5, opt),
                absl::StatusCode::kInvalidArgument, "has dim 4, the data has 5 columns");
  EXPECT_STATUS(db_->ImportVectors("c", "image", data, 21, 4, opt),
                absl::StatusCode::kInvalidArgument, "expected rows x dim");
  opt.provenance.collected_at = "yesterday";
  std::fill(data.begin(), data.end(), 0.5f);
  EXPECT_STATUS(db_->ImportVectors("c", "image", data, 20, 4, opt),
                absl::StatusCode::kInvalidArgument, "collected_at");
  opt.provenance.collected_at.clear();
  opt.id_prefix = "bad\x01";
  EXPECT_STATUS(db_->ImportVectors("c", "image", data, 20, 4, opt),
                absl::StatusCode::kInvalidArgument, "import: id prefix");
  opt.id_prefix = std::string(kMaxIdBytes - 1, 'x');
  EXPECT_STATUS(db_->ImportVectors("c", "image", data, 20, 4, opt),
                absl::StatusCode::kInvalidArgument, "row 10: id");  // "x...x10" is too long.
  std::vector<std::string> ids;
  for (int i = 0; i < 20; ++i) ids.push_back("i" + std::to_string(i));
  ExpectUnchanged(ids);
}

TEST_F(BadInputTest, TooManyRecordsInOneCall) {
  std::vector<Record> many(kMaxBatchRecords + 1);
  for (size_t i = 0; i < many.size(); ++i) many[i].id = "m" + std::to_string(i);
  EXPECT_STATUS(db_->Upsert("c", std::move(many)), absl::StatusCode::kInvalidArgument,
                "at most 65536");
  std::vector<float> data((kMaxBatchRecords + 1) * 3, 1.0f);
  EXPECT_STATUS(db_->ImportVectors("c", "point", data, kMaxBatchRecords + 1, 3, {}),
                absl::StatusCode::kInvalidArgument, "at most 65536");
  ExpectUnchanged({"m0"});
}

TEST_F(BadInputTest, InvalidQueriesAreRejected) {
  SearchRequest req = QueryImage({1, 0, 0, 0});
  req.k = 0;
  EXPECT_STATUS(db_->Search("c", req), absl::StatusCode::kInvalidArgument, "k must be");
  req = QueryImage({1, 0, 0});
  EXPECT_STATUS(db_->Search("c", req), absl::StatusCode::kInvalidArgument, "expected 4 components");
  req = QueryImage({1, 0, 0, 0});
  req.filter.predicates.push_back({Predicate::Target::kAttribute, "nope", FilterOp::kEq, {int64_t{1}}});
  EXPECT_STATUS(db_->Search("c", req), absl::StatusCode::kInvalidArgument, "\"nope\"");
  // In a batch, the error names the query.
  EXPECT_STATUS(db_->SearchBatch("c", {QueryImage({1, 0, 0, 0}), req}),
                absl::StatusCode::kInvalidArgument, "query 1: ");
}

}  // namespace
}  // namespace rosetta::engine
