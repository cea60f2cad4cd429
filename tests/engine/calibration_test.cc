// Calibration statistics (sampling, values, persistence, determinism) and what calibrated
// normalisation is for: fields whose raw scores live in different bands become comparable.
#include <algorithm>
#include <cmath>
#include <map>
#include <random>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include "engine/database.h"
#include "engine/layout.h"  // IdHash: the sampling rule is part of the documented semantics.
#include "tests/engine/engine_test_util.h"
#include "tests/testing/testing.h"

namespace rosetta::engine {
namespace {

using ::rosetta::testing::RandomVectors;
using ::rosetta::testing::SeedTrace;
using ::rosetta::testing::TempDir;
using ::rosetta::testing::TestSeed;
using namespace ::rosetta::engine::testing;  // NOLINT

std::unique_ptr<Database> OpenDb(const std::string& path, size_t threads = 2) {
  DatabaseOptions o = TestOptions();
  o.search_threads = threads;
  auto db = Database::Open(path, o);
  EXPECT_TRUE(db.ok()) << db.status();
  return db.ok() ? std::move(*db) : nullptr;
}

std::map<std::pair<std::string, std::string>, CalibrationStats> StatsByKey(const CollectionInfo& info) {
  std::map<std::pair<std::string, std::string>, CalibrationStats> out;
  for (const CalibrationStats& s : info.calibration) out[{s.modality, s.field}] = s;
  return out;
}

void ExpectSameStats(const CollectionInfo& a, const CollectionInfo& b) {
  auto sa = StatsByKey(a), sb = StatsByKey(b);
  ASSERT_EQ(sa.size(), sb.size());
  for (const auto& [key, x] : sa) {
    SCOPED_TRACE(key.first + " -> " + key.second);
    ASSERT_TRUE(sb.count(key));
    const CalibrationStats& y = sb.at(key);
    EXPECT_EQ(x.samples, y.samples);
    EXPECT_EQ(x.at_vectors, y.at_vectors);
    EXPECT_EQ(x.mean, y.mean);  // bit-exact: deterministic and persisted losslessly.
    EXPECT_EQ(x.stddev, y.stddev);
    EXPECT_EQ(x.top1_mean, y.top1_mean);
  }
}

// --- statistics against an oracle of the documented sampling rule ------------------------------

CollectionSchema StatsSchema() {
  CollectionSchema s;
  s.name = "s";
  AddSpace(s, MakeSpace("v", 8, Metric::kCosine));
  AddSpace(s, MakeSpace("e", 4, Metric::kL2));
  AddField(s, MakeField("f", "v", "text"));
  AddField(s, MakeField("g", "v", "image"));
  AddField(s, MakeField("h", "v", "text"));  // a second text field: queries come from f and h.
  AddField(s, MakeField("p", "e", "point"));
  return s;
}

TEST(CalibrationTest, StatisticsFollowTheDocumentedSampling) {
  const uint64_t seed = TestSeed(7);
  SCOPED_TRACE(SeedTrace(seed));
  TempDir dir;
  auto db = OpenDb(dir.str() + "/db");
  ASSERT_NE(db, nullptr);
  const CollectionSchema schema = StatsSchema();
  ASSERT_OK(db->CreateCollection(schema));
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> u(0, 1);
  const int n = 5000;  // more than the 4096 sampled targets.
  std::vector<std::string> ids;
  for (int b = 0; b < 5; ++b) {
    std::vector<Record> batch;
    for (int i = b * 1000; i < (b + 1) * 1000; ++i) {
      Record r;
      r.id = "id" + std::to_string(i);
      ids.push_back(r.id);
      const std::vector<float> x = RandomVectors(1, 8, rng());
      if (u(rng) < 0.9) r.vectors["f"] = x;
      if (u(rng) < 0.6) r.vectors["g"] = RandomVectors(1, 8, rng());
      if (u(rng) < 0.3 || r.vectors.empty()) r.vectors["h"] = x;  // same vector as f: same record.
      std::vector<float> p = RandomVectors(1, 4, rng());
      for (float& c : p) c = std::round(c * 10);
      r.vectors["p"] = p;
      batch.push_back(std::move(r));
    }
    ASSERT_OK(db->Upsert("s", batch).status());
  }
  ASSERT_OK_AND_ASSIGN(CollectionInfo info, db->Describe("s"));
  ASSERT_OK_AND_ASSIGN(GetResult stored, db->Get("s", ids, true));
  ASSERT_EQ(stored.records.size(), size_t(n));

  // (text, f), (text, g), (text, h), (image, f), (image, g), (image, h), (point, p).
  ASSERT_EQ(info.calibration.size(), 7u);
  for (const CalibrationStats& got : info.calibration) {
    SCOPED_TRACE(got.modality + " -> " + got.field);
    const Field& field = schema.fields.at(got.field);
    const Metric metric = schema.spaces.at(field.space).metric;
    EXPECT_EQ(got.at_vectors, info.field_vectors.at(got.field));
    // Sample queries: vectors of fields of the space with modality m, smallest (hash, id, field).
    std::vector<std::tuple<uint64_t, std::string, std::string>> qkeys, tkeys;
    std::map<std::pair<std::string, std::string>, const std::vector<float>*> vec;
    for (const Record& r : stored.records) {
      for (const auto& [fname, v] : r.vectors) {
        vec[{r.id, fname}] = &v;
        const Field& g = schema.fields.at(fname);
        if (g.space == field.space && g.modality == got.modality) qkeys.push_back({IdHash(r.id), r.id, fname});
        if (fname == got.field) tkeys.push_back({IdHash(r.id), r.id, fname});
      }
    }
    std::sort(qkeys.begin(), qkeys.end());
    std::sort(tkeys.begin(), tkeys.end());
    qkeys.resize(std::min<size_t>(qkeys.size(), 256));
    tkeys.resize(std::min<size_t>(tkeys.size(), 4096));
    std::vector<std::pair<std::string, const std::vector<float>*>> targets;
    for (const auto& [th, tid, tf] : tkeys) targets.push_back({tid, vec.at({tid, tf})});
    int64_t pairs = 0;
    double sum = 0, top1_sum = 0;
    int64_t top1_n = 0;
    std::vector<double> all;
    for (const auto& [qh, qid, qf] : qkeys) {
      const std::vector<float>& q = *vec.at({qid, qf});
      double best = -1e300;
      bool any = false;
      for (const auto& [tid, tv] : targets) {
        if (tid == qid) continue;
        const std::vector<float>& t = *tv;
        double s = 0;
        for (size_t i = 0; i < q.size(); ++i) {
          s += metric == Metric::kL2 ? (double(q[i]) - t[i]) * (double(q[i]) - t[i]) : double(q[i]) * t[i];
        }
        if (metric == Metric::kL2) s = -s;
        all.push_back(s);
        sum += s;
        ++pairs;
        best = std::max(best, s);
        any = true;
      }
      if (any) {
        top1_sum += best;
        ++top1_n;
      }
    }
    const double mean = sum / double(pairs);
    double sq = 0;
    for (double s : all) sq += (s - mean) * (s - mean);
    EXPECT_EQ(got.samples, pairs);
    const double tol = 1e-5 * std::max(1.0, std::abs(mean));
    EXPECT_NEAR(got.mean, mean, tol);
    EXPECT_NEAR(got.stddev, std::sqrt(sq / double(pairs)), 1e-5 * std::max(1.0, got.stddev));
    EXPECT_NEAR(got.top1_mean, top1_sum / double(top1_n), 1e-5 * std::max(1.0, std::abs(got.top1_mean)));
    EXPECT_GT(got.top1_mean, got.mean);
  }
}

// --- persistence, refresh and determinism --------------------------------------------------------

CollectionSchema PairSchema() {
  CollectionSchema s;
  s.name = "p";
  AddSpace(s, MakeSpace("clip", 16, Metric::kCosine));
  AddField(s, MakeField("image", "clip", "image"));
  AddField(s, MakeField("caption", "clip", "text"));
  return s;
}

void ImportRows(Database& db, const std::vector<float>& images, const std::vector<float>& texts,
                size_t first, size_t count) {
  ImportOptions opt;
  opt.id_prefix = "p";
  opt.id_offset = static_cast<int64_t>(first);
  std::span<const float> im(images.data() + first * 16, count * 16);
  std::span<const float> tx(texts.data() + first * 16, count * 16);
  ASSERT_OK(db.ImportVectors("p", "image", im, count, 16, opt).status());
  ASSERT_OK(db.ImportVectors("p", "caption", tx, count, 16, opt).status());
}

TEST(CalibrationTest, StatisticsSurviveReopenAndRefreshAtTenPercent) {
  const uint64_t seed = TestSeed(11);
  SCOPED_TRACE(SeedTrace(seed));
  const std::vector<float> images = RandomVectors(200, 16, seed);
  const std::vector<float> texts = RandomVectors(200, 16, seed + 1);
  TempDir dir;
  CollectionInfo at100;
  {
    auto db = OpenDb(dir.str() + "/db");
    ASSERT_NE(db, nullptr);
    ASSERT_OK(db->CreateCollection(PairSchema()));
    ASSERT_OK_AND_ASSIGN(CollectionInfo empty, db->Describe("p"));
    EXPECT_TRUE(empty.calibration.empty());
    ImportRows(*db, images, texts, 0, 100);
    ASSERT_OK_AND_ASSIGN(at100, db->Describe("p"));
    ASSERT_EQ(at100.calibration.size(), 4u);  // {image, text} x {image, caption}.
    for (const CalibrationStats& s : at100.calibration) EXPECT_EQ(s.at_vectors, 100) << s.field;
    // +5 %: not refreshed.
    ImportRows(*db, images, texts, 100, 5);
    ASSERT_OK_AND_ASSIGN(CollectionInfo at105, db->Describe("p"));
    EXPECT_EQ(at105.field_vectors.at("image"), 105);
    ExpectSameStats(at100, at105);
  }
  {
    // Loaded at open, not recomputed: a recomputation would say at_vectors = 105.
    auto db = OpenDb(dir.str() + "/db");
    ASSERT_NE(db, nullptr);
    ASSERT_OK_AND_ASSIGN(CollectionInfo reopened, db->Describe("p"));
    ExpectSameStats(at100, reopened);
    // +10 % of 100 in total: refreshed.
    ImportRows(*db, images, texts, 105, 5);
    ASSERT_OK_AND_ASSIGN(CollectionInfo at110, db->Describe("p"));
    for (const CalibrationStats& s : at110.calibration) EXPECT_EQ(s.at_vectors, 110) << s.field;
    // Deleting records refreshes too (count moves down by >= 10 %).
    std::vector<std::string> del;
    for (int i = 0; i < 20; ++i) del.push_back("p" + std::to_string(i));
    ASSERT_OK(db->Delete("p", del).status());
    ASSERT_OK_AND_ASSIGN(CollectionInfo at90, db->Describe("p"));
    for (const CalibrationStats& s : at90.calibration) EXPECT_EQ(s.at_vectors, 90) << s.field;
  }
}

TEST(CalibrationTest, StatisticsAreDeterministicAcrossOrderAndThreads) {
  const uint64_t seed = TestSeed(12);
  SCOPED_TRACE(SeedTrace(seed));
  const size_t n = 600;  // > 256 queries.
  const std::vector<float> images = RandomVectors(n, 16, seed);
  const std::vector<float> texts = RandomVectors(n, 16, seed + 1);
  TempDir dir;
  // Database 1: one import per field, 1 search thread.
  auto db1 = OpenDb(dir.str() + "/one", 1);
  ASSERT_NE(db1, nullptr);
  ASSERT_OK(db1->CreateCollection(PairSchema()));
  ImportRows(*db1, images, texts, 0, n);
  // Database 2: the same records upserted in reverse order in small batches, 3 threads.
  auto db2 = OpenDb(dir.str() + "/two", 3);
  ASSERT_NE(db2, nullptr);
  ASSERT_OK(db2->CreateCollection(PairSchema()));
  std::vector<Record> all;
  for (size_t i = n; i-- > 0;) {
    Record r;
    r.id = "p" + std::to_string(i);
    r.vectors["image"].assign(images.begin() + i * 16, images.begin() + (i + 1) * 16);
    r.vectors["caption"].assign(texts.begin() + i * 16, texts.begin() + (i + 1) * 16);
    all.push_back(std::move(r));
  }
  ASSERT_OK(db2->Upsert("p", all).status());
  ASSERT_OK_AND_ASSIGN(CollectionInfo i1, db1->Describe("p"));
  ASSERT_OK_AND_ASSIGN(CollectionInfo i2, db2->Describe("p"));
  ExpectSameStats(i1, i2);
  // Every record has both fields: each of the 256 queries pairs with every target but its own.
  for (const CalibrationStats& s : i1.calibration) EXPECT_EQ(s.samples, 256 * int64_t(n - 1));
}

// --- what calibrated normalisation is for --------------------------------------------------------

// Space "s" (ip, 16-d): field f (text) and g (image). Component 15 carries an offset: text
// vectors and queries have 1 there. In collection "plain", g vectors have 0 there; in collection
// "offset", g vectors are 10 x the plain ones with 1000 there, so every raw g score of a text
// query is 10 x plain + 1000: a field whose scores live in a completely different band.
class OffsetFieldTest : public ::testing::Test {
 protected:
  static constexpr int kN = 400;
  static constexpr int kDim = 16;

  void SetUp() override {
    seed_ = TestSeed(99);
    db_ = OpenDb(dir_.str() + "/db");
    ASSERT_NE(db_, nullptr);
    std::mt19937_64 rng(seed_);
    std::normal_distribution<float> g(0, 1);
    for (const char* name : {"plain", "offset"}) {
      CollectionSchema s;
      s.name = name;
      AddSpace(s, MakeSpace("s", kDim, Metric::kIp));
      AddField(s, MakeField("f", "s", "text"));
      AddField(s, MakeField("g", "s", "image"));
      s.attributes["group"] = AttributeType::kInt;
      ASSERT_OK(db_->CreateCollection(s));
    }
    std::vector<Record> plain, offset;
    for (int i = 0; i < kN; ++i) {
      std::vector<float> fv(kDim), gv(kDim);
      for (int c = 0; c < kDim - 1; ++c) {
        fv[c] = g(rng);
        gv[c] = 0.6f * fv[c] + 0.8f * g(rng);  // paired, like an image and its caption.
      }
      fv[kDim - 1] = 1;
      gv[kDim - 1] = 0;
      std::vector<float> gv_off(kDim);
      for (int c = 0; c < kDim - 1; ++c) gv_off[c] = 10 * gv[c];
      gv_off[kDim - 1] = 1000;
      Record p;
      p.id = "r" + std::to_string(i);
      p.attributes["group"] = int64_t{i % 3};
      Record o = p;
      if (i % 7 != 0 || i % 5 == 0) {  // 1 in 7 lacks f ...
        p.vectors["f"] = fv;
        o.vectors["f"] = fv;
      }
      if (i % 5 != 0) {  // ... 1 in 5 lacks g.
        p.vectors["g"] = gv;
        o.vectors["g"] = gv_off;
      }
      plain.push_back(std::move(p));
      offset.push_back(std::move(o));
    }
    ASSERT_OK(db_->Upsert("plain", plain).status());
    ASSERT_OK(db_->Upsert("offset", offset).status());
    for (int q = 0; q < 8; ++q) {
      std::vector<float> v(kDim);
      for (int c = 0; c < kDim - 1; ++c) v[c] = g(rng);
      v[kDim - 1] = 1;
      queries_.push_back(v);
    }
  }

  SearchRequest Query(const std::vector<float>& v, Normalize normalize, int k = 20) {
    SearchRequest req;
    req.k = k;
    req.normalize = normalize;
    QueryInput in;
    in.vector = v;
    in.space = "s";
    in.modality = "text";
    req.inputs.push_back(in);  // targets f and g.
    return req;
  }

  uint64_t seed_ = 0;
  TempDir dir_;
  std::unique_ptr<Database> db_;
  std::vector<std::vector<float>> queries_;
};

TEST_F(OffsetFieldTest, WithoutNormalisationTheOffsetFieldDominates) {
  SCOPED_TRACE(SeedTrace(seed_));
  for (const auto& q : queries_) {
    ASSERT_OK_AND_ASSIGN(SearchResponse plain, db_->Search("plain", Query(q, Normalize::kNone)));
    ASSERT_OK_AND_ASSIGN(SearchResponse offset, db_->Search("offset", Query(q, Normalize::kNone)));
    EXPECT_NE(HitIds(plain), HitIds(offset));
    // Records with only g (renormalised to the full weight) take every place: f is irrelevant.
    for (const Hit& h : offset.results) EXPECT_TRUE(h.fields.at("f").missing) << h.id;
  }
}

TEST_F(OffsetFieldTest, CalibratedRankingIgnoresTheOffset) {
  SCOPED_TRACE(SeedTrace(seed_));
  int lacking_f = 0, total = 0;
  for (const auto& q : queries_) {
    ASSERT_OK_AND_ASSIGN(SearchResponse plain, db_->Search("plain", Query(q, Normalize::kCalibrated)));
    ASSERT_OK_AND_ASSIGN(SearchResponse offset, db_->Search("offset", Query(q, Normalize::kCalibrated)));
    // The same ranking as without the offset, with (nearly) the same normalised values.
    EXPECT_EQ(HitIds(plain), HitIds(offset));
    for (size_t i = 0; i < plain.results.size() && i < offset.results.size(); ++i) {
      EXPECT_NEAR(plain.results[i].score, offset.results[i].score, 1e-3);
      const FieldExplanation& a = plain.results[i].fields.at("g");
      const FieldExplanation& b = offset.results[i].fields.at("g");
      if (!a.missing) {
        EXPECT_NEAR(a.normalized, b.normalized, 1e-3);
        EXPECT_NEAR(b.raw, 10 * a.raw + 1000, 1e-3);
      }
    }
    for (const Hit& h : offset.results) {
      lacking_f += h.fields.at("f").missing;
      ++total;
    }
  }
  // Records lacking f are 1 in 7 of the collection; they must not crowd the top as with none.
  EXPECT_LT(lacking_f, total / 2);
}

TEST_F(OffsetFieldTest, CalibratedValuesDoNotDependOnTheQuery) {
  // Unlike minmax / zscore, a calibrated value is a property of (query, record, field): the same
  // with or without a filter that removes two thirds of the candidates.
  SCOPED_TRACE(SeedTrace(seed_));
  for (Normalize norm : {Normalize::kCalibrated, Normalize::kZScore}) {
    SearchRequest all = Query(queries_[0], norm, kN);
    SearchRequest filtered = all;
    filtered.filter.predicates.push_back(
        {Predicate::Target::kAttribute, "group", FilterOp::kEq, {int64_t{0}}});
    ASSERT_OK_AND_ASSIGN(SearchResponse a, db_->Search("offset", all));
    ASSERT_OK_AND_ASSIGN(SearchResponse f, db_->Search("offset", filtered));
    std::map<std::string, float> norm_g;
    for (const Hit& h : a.results) {
      if (!h.fields.at("g").missing) norm_g[h.id] = h.fields.at("g").normalized;
    }
    int same = 0, compared = 0;
    for (const Hit& h : f.results) {
      if (h.fields.at("g").missing) continue;
      ++compared;
      same += norm_g.at(h.id) == h.fields.at("g").normalized;
    }
    ASSERT_GT(compared, 50);
    if (norm == Normalize::kCalibrated) {
      EXPECT_EQ(same, compared);
    } else {
      EXPECT_LT(same, compared);  // zscore depends on the candidates: the contrast.
    }
  }
}

TEST_F(OffsetFieldTest, CalibratedScaleZeroIsBackgroundOneIsATypicalBestMatch) {
  SCOPED_TRACE(SeedTrace(seed_));
  double mean_sum = 0, best_sum = 0;
  for (const auto& q : queries_) {
    SearchRequest req = Query(q, Normalize::kCalibrated, kN);
    req.inputs[0].fields = {"g"};
    ASSERT_OK_AND_ASSIGN(SearchResponse r, db_->Search("offset", req));
    ASSERT_FALSE(r.results.empty());
    double sum = 0;
    for (const Hit& h : r.results) sum += h.fields.at("g").normalized;
    mean_sum += sum / double(r.results.size());
    best_sum += r.results[0].fields.at("g").normalized;
  }
  const double nq = double(queries_.size());
  EXPECT_NEAR(mean_sum / nq, 0.0, 0.3);
  EXPECT_NEAR(best_sum / nq, 1.0, 0.4);
}

TEST_F(OffsetFieldTest, CalibratedFallsBackToZScore) {
  SCOPED_TRACE(SeedTrace(seed_));
  // A query modality no field of the space has.
  SearchRequest cal = Query(queries_[1], Normalize::kCalibrated, 50);
  cal.inputs[0].modality = "smell";
  SearchRequest z = cal;
  z.normalize = Normalize::kZScore;
  ASSERT_OK_AND_ASSIGN(SearchResponse a, db_->Search("offset", cal));
  ASSERT_OK_AND_ASSIGN(SearchResponse b, db_->Search("offset", z));
  ASSERT_EQ(HitIds(a), HitIds(b));
  for (size_t i = 0; i < a.results.size(); ++i) EXPECT_EQ(a.results[i].score, b.results[i].score);
  // A field with a single vector has no statistics.
  CollectionSchema s;
  s.name = "single";
  AddSpace(s, MakeSpace("s", 2, Metric::kIp));
  AddField(s, MakeField("f", "s", "text"));
  ASSERT_OK(db_->CreateCollection(s));
  Record r;
  r.id = "only";
  r.vectors["f"] = {1, 2};
  ASSERT_OK(db_->Upsert("single", {r}).status());
  ASSERT_OK_AND_ASSIGN(CollectionInfo info, db_->Describe("single"));
  EXPECT_TRUE(info.calibration.empty());
  SearchRequest one;
  QueryInput in;
  in.vector = {1, 1};
  in.space = "s";
  one.inputs.push_back(in);
  ASSERT_OK_AND_ASSIGN(SearchResponse single, db_->Search("single", one));
  ASSERT_EQ(single.results.size(), 1u);
  EXPECT_EQ(single.results[0].fields.at("f").normalized, 0.0f);  // zscore of one value.
}

TEST(KernelConsistencyTest, RawScoreDoesNotDependOnOtherRows) {
  // The blocked kernel scores a page of rows at once; a record's raw score must be the same bits
  // whether it is alone or surrounded by other rows.
  const uint64_t seed = TestSeed(5);
  SCOPED_TRACE(SeedTrace(seed));
  TempDir dir;
  auto db = OpenDb(dir.str() + "/db");
  ASSERT_NE(db, nullptr);
  CollectionSchema s;
  s.name = "k";
  AddSpace(s, MakeSpace("s", 37, Metric::kIp));
  AddField(s, MakeField("f", "s", "text"));
  ASSERT_OK(db->CreateCollection(s));
  const std::vector<float> data = RandomVectors(600, 37, seed);
  ImportOptions opt;
  opt.id_prefix = "x";
  ASSERT_OK(db->ImportVectors("k", "f", std::span<const float>(data.data(), 37), 1, 37, opt).status());
  SearchRequest req;
  req.k = 600;
  req.normalize = Normalize::kNone;
  QueryInput in;
  in.space = "s";
  in.vector = RandomVectors(1, 37, seed + 1);
  req.inputs.push_back(in);
  ASSERT_OK_AND_ASSIGN(SearchResponse alone, db->Search("k", req));
  ASSERT_EQ(alone.results.size(), 1u);
  const float raw0 = alone.results[0].fields.at("f").raw;
  opt.id_offset = 1;
  ASSERT_OK(db->ImportVectors("k", "f", std::span<const float>(data.data() + 37, 599 * 37), 599, 37, opt).status());
  ASSERT_OK_AND_ASSIGN(SearchResponse crowd, db->Search("k", req));
  ASSERT_EQ(crowd.results.size(), 600u);
  std::map<std::string, float> raw;
  for (const Hit& h : crowd.results) raw[h.id] = h.fields.at("f").raw;
  EXPECT_EQ(raw.at("x0"), raw0);
  // And each equals the dot product to float precision.
  for (int i = 0; i < 600; i += 37) {
    double dot = 0;
    for (int c = 0; c < 37; ++c) dot += double(in.vector[c]) * data[i * 37 + c];
    EXPECT_NEAR(raw.at("x" + std::to_string(i)), dot, 1e-4 * std::max(1.0, std::abs(dot)));
  }
}

}  // namespace
}  // namespace rosetta::engine
